import { performance } from "node:perf_hooks";

/**
 * Milliseconds on a clock every process on the machine shares (the epoch, with sub-millisecond
 * resolution), so that a publisher's send time and a client's receipt time can be compared.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The event every benchmark message travels as; its data carries the publisher's clock. */
export const BENCH_EVENT = "bench";
export interface BenchData {
  /** When the publisher sent it, in ms on the shared clock. */
  t: number;
  seq: number;
}

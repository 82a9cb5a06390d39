import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { ownUsage } from "../src/ipc.js";

/** Keeps the calling thread on a CPU for `ms`. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

describe("a node's own usage", () => {
  it.runIf(process.platform === "linux")("tells the JavaScript thread's CPU time from the process's, which other threads add to", async () => {
    const before = ownUsage();
    spin(200);
    // Another thread of the same process busy meanwhile: counted in the process's CPU time only.
    const busy = new Worker("const until = Date.now() + 300; while (Date.now() < until) {}", { eval: true });
    await new Promise((resolve) => busy.once("exit", resolve));
    const after = ownUsage();
    const whole = after.cpuUs - before.cpuUs;
    const main = (after.mainThreadCpuUs ?? Number.NaN) - (before.mainThreadCpuUs ?? Number.NaN);
    expect(main).toBeGreaterThan(150_000);
    expect(whole - main).toBeGreaterThan(200_000);
  });

  it("reads the young generation's size apart from the rest of the heap", () => {
    const usage = ownUsage();
    expect(usage.youngGenerationBytes).toBeGreaterThan(0);
    expect(usage.youngGenerationBytes).toBeLessThan(usage.heapTotalBytes);
  });
});

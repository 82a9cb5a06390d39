import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { ownUsage } from "../src/ipc.js";

/** A fixed amount of work (not a span of time: a loaded machine stretches the time, not the work). */
const WORK = "let sum = 0; for (let i = 0; i < 30_000_000; i++) sum = (sum + i * i) % 1_000_003;";

describe("a node's own usage", () => {
  it.runIf(process.platform === "linux")(
    "tells the JavaScript thread's CPU time from the process's, which other threads add to",
    async () => {
      const main = (usage: ReturnType<typeof ownUsage>) => usage.mainThreadCpuUs ?? Number.NaN;
      const start = ownUsage();
      new Function(WORK)();
      const worked = ownUsage();
      // The same work on another thread of the process while this one waits.
      const other = new Worker(WORK, { eval: true });
      await new Promise((resolve) => other.once("exit", resolve));
      const waited = ownUsage();
      const ownWhileWorking = main(worked) - main(start);
      const othersWhileWorking = worked.cpuUs - start.cpuUs - ownWhileWorking;
      const ownWhileWaiting = main(waited) - main(worked);
      const othersWhileWaiting = waited.cpuUs - worked.cpuUs - ownWhileWaiting;
      expect(ownWhileWorking).toBeGreaterThan(2 * othersWhileWorking);
      expect(othersWhileWaiting).toBeGreaterThan(2 * ownWhileWaiting);
    },
  );

  it("reads the young generation's size apart from the rest of the heap", () => {
    const usage = ownUsage();
    expect(usage.youngGenerationBytes).toBeGreaterThan(0);
    expect(usage.youngGenerationBytes).toBeLessThan(usage.heapTotalBytes);
  });

  it.runIf(process.platform === "linux")("counts the process's read and write system calls, a socket's or a file's", () => {
    const calls = () => ownUsage().systemCalls ?? { reads: Number.NaN, writes: Number.NaN };
    const file = join(mkdtempSync(join(tmpdir(), "switchboard-usage-")), "calls");
    const fd = openSync(file, "w+");
    try {
      const start = calls();
      for (let index = 0; index < 100; index++) writeSync(fd, "x");
      const written = calls();
      for (let index = 0; index < 50; index++) readSync(fd, Buffer.alloc(1), 0, 1, index);
      const read = calls();
      // Reading /proc/self/io is a read of its own, and the test runner's threads may make a few more.
      expect(written.writes - start.writes).toBeGreaterThanOrEqual(100);
      expect(written.writes - start.writes).toBeLessThan(110);
      expect(read.reads - written.reads).toBeGreaterThanOrEqual(50);
      expect(read.writes - written.writes).toBeLessThan(10);
    } finally {
      closeSync(fd);
      rmSync(dirname(file), { recursive: true, force: true });
    }
  });
});

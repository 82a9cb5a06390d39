import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pinToCpus } from "../src/workers.js";

/** The CPUs the kernel lets a process run on, as /proc writes them ("0", "0-1"). */
function allowedCpus(pid: number): string | undefined {
  return /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
}

describe("binding a process to cores", () => {
  const children: ReturnType<typeof spawn>[] = [];
  const originalPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = originalPath;
    for (const child of children.splice(0)) child.kill();
  });
  // A process that waits, and ends when the test kills it or after a minute at most.
  const sleeper = () => {
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60_000)"], { stdio: "ignore" });
    children.push(child);
    return child;
  };

  it("binds a running process to the cores given", () => {
    const child = sleeper();
    expect(pinToCpus(child.pid, "0")).toBeNull();
    expect(allowedCpus(child.pid ?? 0)).toBe("0");
  });

  it("says why, instead of throwing, when taskset is missing, the cores do not exist or there is no pid", () => {
    const child = sleeper();
    expect(pinToCpus(child.pid, "4095")).toMatch(/^taskset failed: /);
    const empty = mkdtempSync(join(tmpdir(), "no-taskset-"));
    try {
      process.env.PATH = empty;
      expect(pinToCpus(child.pid, "0")).toMatch(/^taskset failed: .*ENOENT/);
    } finally {
      process.env.PATH = originalPath;
      rmSync(empty, { recursive: true });
    }
    expect(allowedCpus(child.pid ?? 0)).not.toBe("0");
    expect(pinToCpus(undefined, "0")).toBe("the process has no pid");
  });
});

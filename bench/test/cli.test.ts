import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const RUN = fileURLToPath(new URL("../src/run.ts", import.meta.url));
// Each case starts a TypeScript process; on a busy 2-core machine that alone can take seconds.
const SPAWN_TIMEOUT_MS = 30_000;

/** Runs the suite's command line; a refused option must end it before any server starts. */
function bench(...args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", RUN, ...args], { encoding: "utf8", timeout: SPAWN_TIMEOUT_MS });
}

describe("the bench command line", () => {
  it.each([
    [["--allocations"], "--allocations goes with --profile"],
    [["--stack", "both"], "--stack must be ours or plain, not both"],
    [["--only", "storm,nothing"], "--only: unknown scenario nothing"],
    [["--sockets=-3"], "--sockets must be a whole number of 1 or more, not -3"],
    [["--sockets", "-3"], "Option '--sockets' argument is ambiguous"],
    [["--socket", "5"], "Unknown option '--socket'"],
    [["--pinned-sockets", "0"], "--pinned-sockets must be a whole number of 1 or more, not 0"],
    [["--node-flags=--trace-gc trace-gc-verbose"], "--node-flags takes flags that start with --, not trace-gc-verbose"],
  ])("refuses %j with exit code 2 and says why, before starting Redis", (args, message) => {
    const result = bench(...args);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stdout).not.toContain("redis-server");
  }, SPAWN_TIMEOUT_MS + 5_000);
});

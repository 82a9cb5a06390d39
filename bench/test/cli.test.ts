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

// A quick run of one scenario: Redis, the nodes and the load start and stop within seconds.
const RUN_TIMEOUT_MS = 90_000;
/** The processes that printed V8's --trace-gc lines ("[<pid>:0x…] … ms: Scavenge …"), by pid. */
function tracingProcesses(output: string): Set<string> {
  return new Set(
    [...output.matchAll(/^\[(\d+):0x[0-9a-f]+\]\s+[\d.]+ ms: (?:Scavenge|Mark-Compact|Mark-sweep)/gm)].map((match) => match[1] ?? ""),
  );
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
    [["--turns-sockets", "x"], "--turns-sockets must be a whole number of 1 or more, not x"],
    [["--node-flags=--trace-gc trace-gc-verbose"], "--node-flags takes flags that start with --, not trace-gc-verbose"],
  ])(
    "refuses %j with exit code 2 and says why, before starting Redis",
    (args, message) => {
      const result = bench(...args);
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(message);
      expect(result.stdout).not.toContain("redis-server");
    },
    SPAWN_TIMEOUT_MS + 5_000,
  );

  it(
    "hands --node-flags to the server nodes of both stacks and to nothing else, and publishes nothing from such a run",
    () => {
      // The pinned pair starts one server node per stack and one of ours with PRESENCE=0, each next to
      // two load processes and its own Redis.
      const run = (...flags: string[]) =>
        spawnSync(process.execPath, ["--import", "tsx", RUN, "--quick", "--only", "pinned", ...flags], {
          encoding: "utf8",
          timeout: RUN_TIMEOUT_MS,
        });
      const traced = run("--node-flags=--trace-gc");
      expect(traced.status, traced.stderr).toBe(0);
      expect(tracingProcesses(traced.stdout).size).toBe(3);
      expect(traced.stdout).toMatch(/written: \S*results\/partial\/latest\.json/);
      const untraced = run();
      expect(untraced.status, untraced.stderr).toBe(0);
      expect(tracingProcesses(untraced.stdout).size).toBe(0);
    },
    2 * RUN_TIMEOUT_MS + 5_000,
  );
});

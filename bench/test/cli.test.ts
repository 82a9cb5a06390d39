import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import type { Report } from "../src/report.js";
import { PINNED_TARGETED } from "../src/scenarios.js";

const RUN = fileURLToPath(new URL("../src/run.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
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
    [["--variant", "/nonexistent/switchboard"], "--variant: /nonexistent/switchboard has no built gateway (apps/gateway/dist/index.js)"],
    [["--variant", ROOT, "--stack", "plain"], "--variant goes with our stack"],
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
    "takes a relative --variant from where npm was run (INIT_CWD), not from the suite's own directory",
    () => {
      const result = spawnSync(process.execPath, ["--import", "tsx", RUN, "--variant", "../no-such-checkout"], {
        encoding: "utf8",
        timeout: SPAWN_TIMEOUT_MS,
        env: { ...process.env, INIT_CWD: "/srv/switchboard" },
      });
      expect(result.status).toBe(2);
      expect(result.stderr).toContain("--variant: /srv/no-such-checkout has no built gateway");
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

  it(
    "runs a cluster of the --variant checkout's gateway beside ours on the pinned layout, and reports ours against it",
    () => {
      // A stand-in checkout whose gateway is this one's, saying so when a node loads it.
      const checkout = mkdtempSync(join(tmpdir(), "switchboard-variant-"));
      try {
        const entry = join(checkout, "apps", "gateway", "dist", "index.js");
        mkdirSync(dirname(entry), { recursive: true });
        const ours = pathToFileURL(join(ROOT, "apps", "gateway", "dist", "index.js")).href;
        writeFileSync(entry, `process.stdout.write("variant gateway loaded\\n");\nexport * from ${JSON.stringify(ours)};\n`);
        const run = spawnSync(process.execPath, ["--import", "tsx", RUN, "--quick", "--only", "pinned", "--variant", checkout], {
          encoding: "utf8",
          timeout: RUN_TIMEOUT_MS,
        });
        expect(run.status, run.stderr).toBe(0);
        // One variant node on the pinned layout; ours, the plain one and ours with PRESENCE=0 load their own.
        expect(run.stdout.match(/^variant gateway loaded$/gm)).toHaveLength(1);
        const report = JSON.parse(readFileSync(join(ROOT, "bench", "results", "partial", "latest.json"), "utf8")) as Report;
        expect(report.variant?.checkout).toBe(checkout);
        const burst = report.variant?.comparison.find(
          (row) => row.scenario === `${PINNED_TARGETED}, burst` && row.metric === "server CPU per delivery",
        );
        expect(burst?.variant).toBeGreaterThan(0);
        expect(burst?.ratio).toBeGreaterThan(0);
        expect(run.stdout).toContain("## Against the variant build");
      } finally {
        rmSync(checkout, { recursive: true, force: true });
      }
    },
    RUN_TIMEOUT_MS + 5_000,
  );
});

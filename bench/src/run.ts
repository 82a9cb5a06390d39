import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startRedis } from "@switchboard/e2e/harness/redis";
import { README_PATH, writeReadmeTables } from "./readme-table.js";
import { takingTurns } from "./turns.js";
import { describeCheckout, variantCheckout } from "./variant.js";
import { Progress } from "./progress.js";
import {
  type Report,
  againstVariant,
  checkTargets,
  combine,
  isPublishedRun,
  machine,
  missingCompanions,
  redisServerVersion,
  writeReport,
} from "./report.js";
import type { Stack } from "./cluster.js";
import {
  FULL_SIZES,
  isOursOnly,
  TURNS_LAYOUTS,
  QUICK_SIZES,
  type RunOptions,
  SCENARIO_NAMES,
  type ScenarioName,
  type Sizes,
  StackRun,
} from "./scenarios.js";

const USAGE = `npm run bench [-- options]

  --quick             small sizes, a few seconds: checks the suite itself (results in bench/results/partial/)
  --sockets <n>       sockets for the main scenarios (default ${FULL_SIZES.sockets})
  --messages <n>      messages in each targeted burst (default ${FULL_SIZES.burstMessages})
  --growth-sockets <n> sockets for the cost-growth scenario (default ${FULL_SIZES.growthSockets})
  --service-requests <n> round trips in each services run (default ${FULL_SIZES.serviceRequests})
  --pinned-sockets <n> sockets for the storm on one pinned node per stack, taking turns (default ${FULL_SIZES.pinnedSockets})
  --turns-sockets <n> sockets for the storm on two nodes per stack, taking turns (default ${FULL_SIZES.turnsSockets})
  --rounds <n>        rounds of every scenario, figures are medians (default 5; 1 with --quick)
  --only <list>       some of ${SCENARIO_NAMES.join(",")} (the two-node connect storm runs
                      whenever one of storm,targeted,fanout,raw,http does, as it connects their sockets)
  --stack <name>      ours or plain: one stack only (no ratios)
  --profile           the nodes write a V8 CPU profile of each phase, and a heap snapshot once the
                      sockets are connected, to bench/results/profiles/
                      (summarise one with: npm run profile -w @switchboard/bench -- <file>)
  --allocations       with --profile: a sampling profile of what each phase allocates (garbage
                      included) instead of CPU time, as <phase>-<stack>-<node>.heapprofile
  --node-flags <flags> Node/V8 flags for the server nodes of both stacks, space-separated (for
                      example --node-flags=--trace-gc: each node prints its collections)
  --variant <dir>     another checkout of this repository, installed and built: on the layouts
                      taking turns (pinned, turns) a cluster of its gateway takes its turns beside
                      ours, and the report gives ours against it, round by round
  --help`;

const OPTIONS = {
  quick: { type: "boolean", default: false },
  sockets: { type: "string" },
  messages: { type: "string" },
  "growth-sockets": { type: "string" },
  "service-requests": { type: "string" },
  "pinned-sockets": { type: "string" },
  "turns-sockets": { type: "string" },
  only: { type: "string" },
  rounds: { type: "string" },
  stack: { type: "string" },
  profile: { type: "boolean", default: false },
  allocations: { type: "boolean", default: false },
  "node-flags": { type: "string" },
  variant: { type: "string" },
  help: { type: "boolean", default: false },
} as const;

/** The options given, or a refusal that names the bad one (`--sockets -3`, an unknown `--socket`…). */
function readOptions() {
  try {
    return parseArgs({ options: OPTIONS }).values;
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}
const options = readOptions();
if (options.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) fail(`--${name} must be a whole number of 1 or more, not ${value}`);
  return parsed;
}

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

const only = options.only === undefined ? null : new Set(options.only.split(",").map((name) => name.trim()));
for (const name of only ?? []) if (!(SCENARIO_NAMES as readonly string[]).includes(name)) fail(`--only: unknown scenario ${name}`);
if (options.stack !== undefined && options.stack !== "ours" && options.stack !== "plain")
  fail(`--stack must be ours or plain, not ${options.stack}`);
const stacks: Stack[] = options.stack === undefined ? ["plain", "ours"] : [options.stack];
if (options.allocations && !options.profile) fail("--allocations goes with --profile");
const nodeFlags = options["node-flags"]?.split(" ").filter((flag) => flag.length > 0) ?? [];
for (const flag of nodeFlags) if (!flag.startsWith("--")) fail(`--node-flags takes flags that start with --, not ${flag}`);
if (options.variant !== undefined && !stacks.includes("ours")) fail("--variant goes with our stack");
const variant = options.variant === undefined ? null : variantCheckout(options.variant, process.env.INIT_CWD ?? process.cwd());
if (variant !== null && "problem" in variant) fail(variant.problem);

const base = options.quick ? QUICK_SIZES : FULL_SIZES;
const sizes: Sizes = {
  ...base,
  sockets: positive("sockets", options.sockets, base.sockets),
  burstMessages: positive("messages", options.messages, base.burstMessages),
  growthSockets: positive("growth-sockets", options["growth-sockets"], base.growthSockets),
  serviceRequests: positive("service-requests", options["service-requests"], base.serviceRequests),
  pinnedSockets: positive("pinned-sockets", options["pinned-sockets"], base.pinnedSockets),
  turnsSockets: positive("turns-sockets", options["turns-sockets"], base.turnsSockets),
};
const rounds = positive("rounds", options.rounds, options.quick ? 1 : 5);
// The pools share the sockets; more than ~5,000 in one process makes the load generator the bottleneck.
sizes.clientProcesses = Math.max(sizes.clientProcesses, Math.ceil(sizes.sockets / 5000));

const progress = new Progress();
const redis = await startRedis();
const redisVersion = redisServerVersion();
progress.line(`redis-server ${redisVersion} on ${redis.url}; ${options.quick ? "quick run" : "full run"}`);

const profileDirectory = options.profile ? fileURLToPath(new URL("../results/profiles/", import.meta.url)) : null;
const runOptions: RunOptions = {
  only: only as ReadonlySet<ScenarioName> | null,
  profileDirectory,
  allocations: options.allocations,
  nodeFlags,
  variant: variant?.checkout ?? null,
};
const runs = {
  plain: new StackRun("plain", sizes, redis.url, progress, runOptions),
  ours: new StackRun("ours", sizes, redis.url, progress, runOptions),
};
try {
  // The same load against each stack in turn, never both at once (the runs taking turns hold a cluster of
  // each, but they take the load by turns); rounds even out the noise of a shared machine.
  for (let round = 1; round <= rounds; round++) {
    if (rounds > 1) progress.line(`round ${round} of ${rounds}`);
    // Every other round runs the stacks the other way round, so what a stack inherits from the one before
    // it (a warm or busy machine, memory the kernel has yet to reclaim) falls on each stack alike.
    const order = round % 2 === 1 ? stacks : [...stacks].reverse();
    for (const stack of order) await runs[stack].mainScenarios();
    for (const layout of TURNS_LAYOUTS)
      if (only === null || only.has(layout.name))
        await takingTurns(
          stacks.map((stack) => runs[stack]),
          layout,
          sizes,
          progress,
          round,
          runOptions,
        );
    if (stacks.includes("ours")) {
      await runs.ours.featureCosts();
      await runs.ours.services();
    }
    for (const stack of order) await runs[stack].costGrowth();
  }
} finally {
  await redis.stop();
}

const results = combine(runs.ours.results, runs.plain.results);
const report: Report = {
  date: new Date().toISOString(),
  mode: options.quick ? "quick" : "full",
  machine: machine(redisVersion),
  sizes,
  rounds,
  results,
  // A quick run's sizes are too small for its figures to mean anything.
  targets: options.quick ? [] : checkTargets(results),
  problems: [...runs.plain.problems, ...runs.ours.problems],
};
if (variant !== null)
  report.variant = {
    checkout: variant.checkout,
    commit: describeCheckout(variant.checkout),
    oursCommit: describeCheckout(fileURLToPath(new URL("../..", import.meta.url))),
    comparison: againstVariant(results),
  };
const published = isPublishedRun({ quick: options.quick, only, stacks, profile: options.profile, nodeFlags, variant: runOptions.variant });
const directory = fileURLToPath(new URL(published ? "../results/" : "../results/partial/", import.meta.url));
const files = await writeReport(directory, report);
if (published) {
  // The README's tables are the published run's, written from it rather than copied by hand.
  writeReadmeTables(README_PATH, report);
  files.push(README_PATH);
}
process.stdout.write(`\n${readFileSync(files[1]!, "utf8")}\nwritten: ${files.join(", ")}\n`);

if (options.quick) {
  // The quick run exists so that the suite cannot rot: every figure must be there for both stacks.
  const missing = results.filter((row) => row.ours === null || (row.plain === null && !isOursOnly(row.scenario)));
  const failures = [
    ...report.problems,
    ...missing.map((row) => `no figure for ${row.scenario} / ${row.metric}`),
    ...missingCompanions(results).map((row) => `no row for ${row}`),
  ];
  if (failures.length > 0) {
    process.stderr.write(`bench --quick failed:\n${failures.map((failure) => `  - ${failure}`).join("\n")}\n`);
    process.exit(1);
  }
}
process.exit(0);

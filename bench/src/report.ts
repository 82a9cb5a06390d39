import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem, type as osType, release } from "node:os";
import { join } from "node:path";
import { View, parse } from "vega";
import { type TopLevelSpec, compile } from "vega-lite";
import {
  ADDED_RSS_METRIC,
  ADDED_RSS_YOUNG_ASIDE_METRIC,
  ALLOCATED_PER_CONNECTION,
  ALLOCATED_PER_DELIVERY,
  COST_GROWTH,
  COST_GROWTH_ROOM_CHANNELS,
  FULL_COLLECTIONS,
  GC_PAUSE_PER_CONNECTION,
  GC_PAUSE_PER_DELIVERY,
  MAIN_THREAD_PER_CONNECTION,
  MAIN_THREAD_PER_DELIVERY,
  type Measurement,
  OURS_WITH_LIFECYCLE,
  OURS_WITHOUT_PRESENCE,
  PINNED_PATH_SCENARIOS,
  PINNED_STORM,
  PINNED_STORM_WITHOUT_PRESENCE,
  READ_CALLS_PER_CONNECTION,
  READ_CALLS_PER_DELIVERY,
  type Sizes,
  TWO_NODE_FANOUT,
  TWO_NODE_PATH_SCENARIOS,
  TWO_NODE_STORM,
  TWO_NODE_TARGETED,
  WRITE_CALLS_PER_CONNECTION,
  WRITE_CALLS_PER_DELIVERY,
  takesTurns,
} from "./scenarios.js";
import { median, round } from "./stats.js";
import { VARIANT_BUILD } from "./variant.js";

/** One line of the results: a figure of both stacks and ours/plain. */
export interface ResultRow {
  scenario: string;
  metric: string;
  unit: string;
  ours: number | null;
  plain: number | null;
  /** ours / plain; null unless both stacks delivered everything they were sent. */
  ratio: number | null;
  /** Each round's own figures, in the order the rounds ran (null where a round measured nothing). */
  rounds: { ours: (number | null)[]; plain: (number | null)[] };
  /**
   * The lowest and highest of the rounds' own ratios: each round runs both stacks back to back, so
   * this is how far the ratio moves with the machine's noise. Null without a ratio or with one round.
   */
  ratioRange: [number, number] | null;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  redis: string;
}

export interface Report {
  date: string;
  mode: "full" | "quick";
  machine: Machine;
  sizes: Sizes;
  rounds: number;
  results: ResultRow[];
  targets: TargetCheck[];
  problems: string[];
  /** With --variant: ours against the cluster of another checkout's gateway that took turns with it. */
  variant?: VariantReport;
}

export interface VariantReport {
  /** The other checkout, and the commits of both (`git describe --always --dirty`; null outside git). */
  checkout: string;
  commit: string | null;
  oursCommit: string | null;
  comparison: VariantComparison[];
}

/** One figure of ours beside the same figure of the variant build, measured in the same rounds by turns. */
export interface VariantComparison {
  /** The scenario of ours; the variant's is the same with VARIANT_BUILD. */
  scenario: string;
  metric: string;
  unit: string;
  ours: number | null;
  variant: number | null;
  /** The median of the rounds' own ratios ours / variant; null where no round had both figures. */
  ratio: number | null;
  /** The lowest and highest of those ratios; null with fewer than two. */
  ratioRange: [number, number] | null;
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** Whether the median figure meets the target. */
  met: boolean | null;
  /** In how many rounds the round's own figure met it; null with one round or nothing measured. */
  roundsMet: { met: number; of: number } | null;
}

export function machine(redisVersion: string): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${osType()} ${release()}`,
    node: process.version,
    redis: redisVersion,
  };
}

export function redisServerVersion(): string {
  const output = execFileSync("redis-server", ["--version"], { encoding: "utf8" });
  return /v=(\S+)/.exec(output)?.[1] ?? output.trim();
}

/** One figure from several rounds: the median, complete only if every round was. */
function merged(
  measurements: Measurement[],
): Map<string, { value: number | null; values: (number | null)[]; complete: boolean; measurement: Measurement }> {
  const groups = new Map<string, Measurement[]>();
  for (const measurement of measurements) {
    const key = `${measurement.scenario}\u0000${measurement.metric}`;
    groups.set(key, [...(groups.get(key) ?? []), measurement]);
  }
  return new Map(
    [...groups].map(([key, group]) => {
      const values = group.flatMap((m) => (m.value === null ? [] : [m.value]));
      return [
        key,
        {
          value: values.length === group.length ? median(values) : null,
          values: group.map((m) => m.value),
          complete: group.every((m) => m.complete),
          measurement: group[0]!,
        },
      ];
    }),
  );
}

/** Pairs the two stacks' figures (medians over the rounds), in the order the scenarios ran. */
export function combine(ours: Measurement[], plain: Measurement[]): ResultRow[] {
  const oursByKey = merged(ours);
  const plainByKey = merged(plain);
  const keys = [...oursByKey.keys(), ...[...plainByKey.keys()].filter((key) => !oursByKey.has(key))];
  return keys.map((key) => {
    const o = oursByKey.get(key);
    const p = plainByKey.get(key);
    const { scenario, metric, unit } = (o ?? p)!.measurement;
    const bothComplete = o?.complete === true && p?.complete === true;
    const ratio = bothComplete && o.value !== null && p.value !== null && p.value !== 0 ? o.value / p.value : null;
    const rounded = (values: (number | null)[] | undefined) => (values ?? []).map((value) => (value === null ? null : round(value)));
    const rounds = { ours: rounded(o?.values), plain: rounded(p?.values) };
    return {
      scenario,
      metric,
      unit,
      ours: o?.value == null ? null : round(o.value),
      plain: p?.value == null ? null : round(p.value),
      ratio: ratio === null ? null : round(ratio),
      rounds,
      // From the figures as the row shows them, so the targets' per-round counts agree with it.
      ratioRange: ratio === null ? null : extremes(roundRatios(rounds.ours, rounds.plain)),
    };
  });
}

/**
 * The ratio of each round's two figures, rounded as every figure is shown (rounds where either is
 * missing, or the divisor is 0, left out): a round exactly at a target's limit meets it, whatever
 * the last bits of the division.
 */
function roundRatios(dividends: (number | null)[], divisors: (number | null)[]): number[] {
  const ratios: number[] = [];
  for (let index = 0; index < Math.min(dividends.length, divisors.length); index++) {
    const dividend = dividends[index];
    const divisor = divisors[index];
    if (dividend != null && divisor != null && divisor !== 0) ratios.push(round(dividend / divisor));
  }
  return ratios;
}

/** Our figure in one row against ours in another: the ratio of the medians, and each round's own. */
function oursAgainst(row: ResultRow | undefined, base: ResultRow | undefined): { ratio: number | null; ratios: number[] } {
  const value = row?.ours ?? null;
  const baseValue = base?.ours ?? null;
  if (value === null || baseValue === null || baseValue === 0) return { ratio: null, ratios: [] };
  return { ratio: value / baseValue, ratios: roundRatios(row?.rounds.ours ?? [], base?.rounds.ours ?? []) };
}

/** How many of the rounds' figures pass `meets`; null with fewer than two. */
function roundsMeeting(values: number[], meets: (value: number) => boolean): TargetCheck["roundsMet"] {
  return values.length < 2 ? null : { met: values.filter(meets).length, of: values.length };
}

function find(rows: ResultRow[], scenario: (name: string) => boolean, metric: string): ResultRow | undefined {
  return rows.find((row) => scenario(row.scenario) && row.metric === metric);
}

/** The two memory targets, ≤ plain and ≤ 8 KB, on one slope of memory per socket added. */
function rssTargets(checks: TargetCheck[], rss: ResultRow | undefined, qualifier: string): void {
  // A slope of zero or less is a reading that memory the allocator had kept mapped was reused (or
  // given back) while sockets were added; it measures nothing, and meets no target.
  const rssMeasured = rss?.ours != null && rss.ours > 0 && rss.plain != null && rss.plain > 0;
  const slopes = (values: (number | null)[] | undefined) => (values ?? []).map((value) => (value !== null && value > 0 ? value : null));
  const rssRatios = rss?.ratio == null || !rssMeasured ? [] : roundRatios(slopes(rss.rounds.ours), slopes(rss.rounds.plain));
  checks.push({
    target: `RSS per idle socket ≤ plain${qualifier}`,
    measured:
      rss?.ratio == null
        ? "not measured"
        : rssMeasured
          ? `${rss.ratio}×${spread(rss.ratioRange, "×", "readings")}`
          : `not measurable (${rss.ours} KB against ${rss.plain} KB)`,
    met: rss?.ratio == null || !rssMeasured ? null : rss.ratio <= 1,
    roundsMet: roundsMeeting(rssRatios, (ratio) => ratio <= 1),
  });
  const oursSlopes = rss?.ours == null || rss.ours <= 0 ? [] : slopes(rss.rounds.ours).filter((value) => value !== null);
  checks.push({
    target: `RSS per idle socket ≤ 8 KB${qualifier}`,
    measured:
      rss?.ours == null
        ? "not measured"
        : rss.ours > 0
          ? `${rss.ours} KB${spread(extremes(oursSlopes), " KB", "readings")}`
          : `not measurable (${rss.ours} KB)`,
    met: rss?.ours == null || rss.ours <= 0 ? null : rss.ours <= 8,
    roundsMet: roundsMeeting(oursSlopes, (slope) => slope <= 8),
  });
}

/**
 * The figures that go with a CPU figure, split as the README reads them: the JavaScript thread's
 * share, its collection pauses, what the heap allocated and the system calls made, and for a burst
 * the full collections within it.
 */
const CONNECTION_COMPANIONS = [
  MAIN_THREAD_PER_CONNECTION,
  GC_PAUSE_PER_CONNECTION,
  ALLOCATED_PER_CONNECTION,
  READ_CALLS_PER_CONNECTION,
  WRITE_CALLS_PER_CONNECTION,
];
const BURST_COMPANIONS = [
  MAIN_THREAD_PER_DELIVERY,
  GC_PAUSE_PER_DELIVERY,
  FULL_COLLECTIONS,
  ALLOCATED_PER_DELIVERY,
  READ_CALLS_PER_DELIVERY,
  WRITE_CALLS_PER_DELIVERY,
];

/** The companion figures (above) that a scenario with a storm's or a burst's CPU figure lacks, as `scenario / metric`. */
export function missingCompanions(rows: readonly ResultRow[]): string[] {
  const metrics = new Map<string, Set<string>>();
  for (const row of rows) metrics.set(row.scenario, (metrics.get(row.scenario) ?? new Set()).add(row.metric));
  const missing: string[] = [];
  for (const [scenario, recorded] of metrics) {
    const burst = scenario.endsWith(", burst") || scenario.startsWith(COST_GROWTH);
    const wanted = [
      ...(recorded.has("server CPU per connection") ? CONNECTION_COMPANIONS : []),
      ...(burst && recorded.has("server CPU per delivery") ? BURST_COMPANIONS : []),
    ];
    for (const metric of wanted) if (!recorded.has(metric)) missing.push(`${scenario} / ${metric}`);
  }
  return missing;
}

/**
 * Ours against the variant build, figure by figure: every row measured on the variant's cluster
 * beside the same row of ours. The rounds' own ratios are taken, as on every layout taking turns, so
 * that a drift of the machine between rounds falls on both builds alike.
 */
export function againstVariant(rows: readonly ResultRow[]): VariantComparison[] {
  const comparisons: VariantComparison[] = [];
  for (const variant of rows) {
    if (!variant.scenario.includes(VARIANT_BUILD)) continue;
    const scenario = variant.scenario.replace(VARIANT_BUILD, "");
    const ours = rows.find((row) => row.scenario === scenario && row.metric === variant.metric);
    if (ours === undefined) continue;
    const ratios = roundRatios(ours.rounds.ours, variant.rounds.ours);
    comparisons.push({
      scenario,
      metric: variant.metric,
      unit: variant.unit,
      ours: ours.ours,
      variant: variant.ours,
      ratio: ratios.length === 0 ? null : round(median(ratios)),
      ratioRange: ratios.length < 2 ? null : extremes(ratios),
    });
  }
  return comparisons;
}

/** How a run was asked for, as far as where its results go depends on it. */
export interface RunKind {
  quick: boolean;
  /** The scenarios asked for with --only; null for all. */
  only: ReadonlySet<string> | null;
  stacks: readonly string[];
  profile: boolean;
  /** Flags handed to the server nodes with --node-flags. */
  nodeFlags: readonly string[];
  /** The checkout given with --variant, or null. */
  variant: string | null;
}

/**
 * Only a full run of both stacks with every scenario, and the nodes as they run in production,
 * replaces the published results and the README's tables; any other goes to results/partial/.
 */
export function isPublishedRun(run: RunKind): boolean {
  return !run.quick && run.only === null && run.stacks.length === 2 && !run.profile && run.nodeFlags.length === 0 && run.variant === null;
}

/**
 * A target's figure, read from the rows it compares. Where they come from a layout taking turns (see
 * turns.ts), it is the median of the rounds' own figures (`perRound`): each round there compares the
 * two sides batch by batch in the same minutes, and the VM's speed, which moves between rounds, falls
 * on both alike, where two medians taken from different rounds would bring that drift back (both may
 * fall in the one slowest or fastest round); `ofMedians` is shown with it. Elsewhere it is `ofMedians`.
 */
function reading(
  scenarios: readonly (ResultRow | undefined)[],
  ofMedians: number | null,
  perRound: number[],
  unit: string,
  label = "",
): { value: number | null; measured: string } {
  if (ofMedians === null) return { value: null, measured: "not measured" };
  const range = extremes(perRound);
  const byRounds = scenarios.every((row) => row !== undefined && takesTurns(row.scenario));
  // With one round there is no spread, and nothing to take the median of.
  if (!byRounds || range === null) return { value: ofMedians, measured: `${ofMedians}${unit}${label}${spread(range, unit)}` };
  const value = round(median(perRound));
  return {
    value,
    measured: `${value}${unit}${label}, median of the rounds' own (rounds ${range[0]}–${range[1]}${unit}; from the medians ${ofMedians}${unit})`,
  };
}

/** The goals the gateway is held to, checked against this run. */
export function checkTargets(rows: ResultRow[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ratioAtMost = (target: string, row: ResultRow | undefined, limit: number) => {
    const ratios = row?.ratio == null ? [] : roundRatios(row.rounds.ours, row.rounds.plain);
    const { value, measured } = reading([row], row?.ratio ?? null, ratios, "×");
    checks.push({
      target,
      measured,
      met: value === null ? null : value <= limit,
      roundsMet: roundsMeeting(ratios, (ratio) => ratio <= limit),
    });
  };
  ratioAtMost(
    "connect storm ≤ 1.1× (server CPU per connection, a JWT verified for each)",
    find(rows, (s) => s === "connect storm", "server CPU per connection"),
    1.1,
  );
  // The same target on the steadier measurement (see turns.ts).
  ratioAtMost(
    "connect storm on pinned nodes taking turns ≤ 1.1× (server CPU per connection)",
    find(rows, (s) => s === PINNED_STORM, "server CPU per connection"),
    1.1,
  );
  ratioAtMost(
    "connect storm on two nodes taking turns ≤ 1.1× (server CPU per connection)",
    find(rows, (s) => s === TWO_NODE_STORM, "server CPU per connection"),
    1.1,
  );
  ratioAtMost(
    "fanout ≤ 1.0× (server CPU per delivery)",
    find(rows, (s) => s === "fanout, burst", "server CPU per delivery"),
    1.0,
  );
  ratioAtMost(
    "fanout on two nodes taking turns ≤ 1.0× (server CPU per delivery)",
    find(rows, (s) => s === `${TWO_NODE_FANOUT}, burst`, "server CPU per delivery"),
    1.0,
  );
  ratioAtMost(
    "targeted at 2 nodes ≤ 1.0× (server CPU per delivery)",
    find(rows, (s) => s === "targeted, burst", "server CPU per delivery"),
    1.0,
  );
  ratioAtMost(
    "targeted at 2 nodes taking turns ≤ 1.0× (server CPU per delivery)",
    find(rows, (s) => s === `${TWO_NODE_TARGETED}, burst`, "server CPU per delivery"),
    1.0,
  );
  ratioAtMost(
    "p99 at a steady 2,000 targeted msgs/s ≤ 1.0×",
    find(rows, (s) => s.startsWith("targeted, steady"), "latency p99"),
    1.0,
  );
  // Sockets added to nodes that hold every socket already: what an idle socket costs, without the
  // idle node's own memory (which moves between starts) in the figure; then the same with V8's
  // young generation aside, which grows while the sockets connect and is not held per socket.
  rssTargets(
    checks,
    find(rows, (s) => s === "connect storm", ADDED_RSS_METRIC),
    "",
  );
  rssTargets(
    checks,
    find(rows, (s) => s === "connect storm", ADDED_RSS_YOUNG_ASIDE_METRIC),
    ", young generation aside",
  );
  // What a setting adds to the storm, in percent of the storm without it. Each round runs both
  // storms, so a round's own share is free of the drift between rounds.
  const addedShare = (target: string, withIt: ResultRow | undefined, withoutIt: ResultRow | undefined, limitPercent: number | null) => {
    const { ratio, ratios } = oursAgainst(withIt, withoutIt);
    const percent = (value: number) => round((value - 1) * 100);
    const shares = ratios.map(percent);
    const { value: share, measured } = reading([withIt, withoutIt], ratio === null ? null : percent(ratio), shares, "%");
    checks.push({
      target,
      measured,
      met: share === null || limitPercent === null ? null : share <= limitPercent,
      roundsMet: limitPercent === null ? null : roundsMeeting(shares, (value) => value <= limitPercent),
    });
  };
  const storm = find(rows, (s) => s === "connect storm", "server CPU per connection");
  addedShare(
    "presence slows the connect storm by ≤ 10% (server CPU per connection, PRESENCE=1 against PRESENCE=0)",
    storm,
    find(rows, (s) => s === OURS_WITHOUT_PRESENCE, "server CPU per connection"),
    10,
  );
  // The same on pinned nodes taking turns, where a round's figure moves by a few percent rather than tens.
  addedShare(
    "presence slows the connect storm on pinned nodes taking turns by ≤ 10% (PRESENCE=1 against PRESENCE=0)",
    find(rows, (s) => s === PINNED_STORM, "server CPU per connection"),
    find(rows, (s) => s === PINNED_STORM_WITHOUT_PRESENCE, "server CPU per connection"),
    10,
  );
  // No target: what LIFECYCLE_EVENTS=1 costs is shown so an operator can weigh it.
  addedShare(
    "what lifecycle records add to the connect storm (server CPU per connection, LIFECYCLE_EVENTS=1 against off; no target)",
    find(rows, (s) => s === OURS_WITH_LIFECYCLE, "server CPU per connection"),
    storm,
    null,
  );
  const versusEmitter = (target: string, scenario: string, limit: number, emitterScenario = "targeted, burst") => {
    const path = find(rows, (s) => s === scenario, "server CPU per delivery");
    const emitter = find(rows, (s) => s === emitterScenario, "server CPU per delivery");
    const against = oursAgainst(path, emitter);
    const { ratios } = against;
    const { value: ratio, measured } = reading(
      [path, emitter],
      against.ratio === null ? null : round(against.ratio),
      ratios,
      "×",
      " our emitter path",
    );
    checks.push({
      target,
      measured,
      met: ratio === null ? null : ratio <= limit,
      roundsMet: roundsMeeting(ratios, (value) => value <= limit),
    });
  };
  versusEmitter("raw frames ≤ the emitter path (server CPU per delivery)", "raw publishers, burst", 1.0);
  // The same two on our pinned node and on our two nodes, the three paths taking turns batch by batch (see turns.ts).
  versusEmitter(
    "raw frames on a pinned node, the paths taking turns ≤ the emitter path (server CPU per delivery)",
    PINNED_PATH_SCENARIOS.raw,
    1.0,
    PINNED_PATH_SCENARIOS.emitter,
  );
  versusEmitter(
    "raw frames on two nodes, the paths taking turns ≤ the emitter path (server CPU per delivery)",
    TWO_NODE_PATH_SCENARIOS.raw,
    1.0,
    TWO_NODE_PATH_SCENARIOS.emitter,
  );
  versusEmitter("HTTP publish ≤ 1.5× the emitter path (server CPU per delivery), batches", "http publish, 100 per request, burst", 1.5);
  versusEmitter(
    "HTTP publish on a pinned node, the paths taking turns ≤ 1.5× the emitter path (server CPU per delivery), batches",
    PINNED_PATH_SCENARIOS["http-batch"],
    1.5,
    PINNED_PATH_SCENARIOS.emitter,
  );
  versusEmitter(
    "HTTP publish on two nodes, the paths taking turns ≤ 1.5× the emitter path (server CPU per delivery), batches",
    TWO_NODE_PATH_SCENARIOS["http-batch"],
    1.5,
    TWO_NODE_PATH_SCENARIOS.emitter,
  );
  versusEmitter(
    "HTTP publish ≤ 1.5× the emitter path (server CPU per delivery), one message per request",
    "http publish, 1 per request, burst",
    1.5,
  );
  return checks;
}

function cell(value: number | null, unit = ""): string {
  return value === null ? "–" : `${value}${unit}`;
}

/** The lowest and highest of some values, rounded; null with fewer than two. */
function extremes(values: number[]): [number, number] | null {
  return values.length < 2 ? null : [round(Math.min(...values)), round(Math.max(...values))];
}

/** " (rounds 0.95–1.1×)", or nothing without a spread. */
function spread(range: [number, number] | null, unit: string, over = "rounds"): string {
  return range === null ? "" : ` (${over} ${range[0]}–${range[1]}${unit})`;
}

function verdict(check: TargetCheck, rounds: number): string {
  if (check.met === null) return "–";
  // Memory is read on each node: two readings a round.
  const counted =
    check.roundsMet === null
      ? ""
      : ` (${check.roundsMet.met} of ${check.roundsMet.of} ${check.roundsMet.of === rounds ? "rounds" : "readings"})`;
  return `${check.met ? "yes" : "**no**"}${counted}`;
}

/** The targets of the run and whether each was met, in Markdown: in latest.md and in the README. */
export function targetsTable(report: Report): string {
  if (report.targets.length === 0) return "Checked on full runs only.";
  return [
    "| Target | Measured | Met |",
    "| --- | --- | --- |",
    ...report.targets.map((check) => `| ${check.target} | ${check.measured} | ${verdict(check, report.rounds)} |`),
  ].join("\n");
}

export function markdown(report: Report): string {
  const m = report.machine;
  const lines = [
    `# Benchmark results (${report.mode})`,
    "",
    `${report.date} · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB · ${m.os} · Node ${m.node} · Redis ${m.redis}`,
    "",
    `${report.sizes.sockets} sockets on 2 nodes for the main scenarios; cost growth with ${report.sizes.growthSockets} sockets on ${report.sizes.growthNodes.join(", ")} nodes.`,
    `Each figure is the median of ${report.rounds} round${report.rounds === 1 ? "" : "s"}; in each round the two stacks take the same load in turn.`,
    "Each burst follows an unmeasured tenth of its messages sent the same way, so that no path is measured while V8 is still compiling it.",
    "Ratio is ours / plain (socket.io + @socket.io/redis-adapter + @socket.io/redis-emitter): below 1 is better, except for rates (conn/s, msgs/s).",
    "A ratio is only given when both stacks delivered everything they were sent. It is the ratio of the medians; in brackets, the lowest and highest of the rounds' own ratios (each round runs both stacks back to back), which is how far the machine's noise moves it.",
    "The plain stack has no services: their rows are ours only, next to their floor (the same requests and replies through Redis, without the gateway).",
    "For HTTP publish, the plain stack answers on an endpoint written by hand on node:http: the key compared as a string, the JSON body parsed, io.to(room).emit() for each message, then 202.",
    "",
    ...figuresTable(
      "Plain",
      report.results.map((row) => ({ ...row, other: row.plain })),
    ),
    "",
    "## Targets",
    "",
    "On the layouts taking turns a target is read as the median of the rounds' own ratios, as each round compares the two sides batch by batch in the same minutes; the ratio of the medians is shown with it. Elsewhere it is read as the ratio of the medians.",
    "",
    targetsTable(report),
  ];
  if (report.variant !== undefined) lines.push("", variantSection(report.variant));
  if (report.problems.length > 0) lines.push("", "## Problems in this run", "", ...report.problems.map((problem) => `- ${problem}`));
  return `${lines.join("\n")}\n`;
}

function variantSection(variant: VariantReport): string {
  return [
    "## Against the variant build",
    "",
    `Ours (${variant.oursCommit ?? "not in git"}) against the gateway of ${variant.checkout} (${variant.commit ?? "not in git"}), its cluster taking its turns with the others batch by batch.`,
    "The ratio is ours / variant, the median of the rounds' own ratios; in brackets, the lowest and highest of them. Two builds alike differ by several percent in a round: only the median of several rounds says anything.",
    "",
    ...figuresTable(
      "Variant",
      variant.comparison.map((row) => ({ ...row, other: row.variant })),
    ),
  ].join("\n");
}

/** One line of figuresTable: ours, the other side's figure, and their ratio with its range. */
type FigurePair = Pick<ResultRow, "scenario" | "metric" | "unit" | "ours" | "ratio" | "ratioRange"> & { other: number | null };

/** A table of ours beside another side's figures (the plain stack's, or a variant build's), with their ratio and its range. */
function figuresTable(otherName: string, rows: readonly FigurePair[]): string[] {
  return [
    `| Scenario | Metric | Ours | ${otherName} | Ratio |`,
    "| --- | --- | ---: | ---: | ---: |",
    ...rows.map(
      (row) =>
        `| ${row.scenario} | ${row.metric} (${row.unit}) | ${cell(row.ours)} | ${cell(row.other)} | ${cell(row.ratio, "×")}${row.ratioRange === null ? "" : ` (${row.ratioRange[0]}–${row.ratioRange[1]})`} |`,
    ),
  ];
}

async function svg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  return view.toSVG();
}

type ConcatPanel = Extract<TopLevelSpec, { hconcat: unknown }>["hconcat"][number];
const CHART_CONFIG = { font: "sans-serif", background: "white" } as const;
const ROOM_CHANNELS_SERIES = "ours, REDIS_SUBSCRIPTIONS=rooms";
const STACK_COLOURS = { domain: ["ours", ROOM_CHANNELS_SERIES, "plain"], range: ["#1f77b4", "#ff7f0e", "#bbbbbb"] };

/** Cost growth: server µs per delivery and Redis messages per node, by cluster size. */
export function costGrowthChart(rows: ResultRow[]): TopLevelSpec {
  const values = rows
    .filter((row) => row.scenario.startsWith(COST_GROWTH))
    .flatMap((row) => {
      const nodes = Number(/(\d+) node/.exec(row.scenario)?.[1]);
      const metric = `${row.metric} (${row.unit})`;
      // The room-channel rows carry the plain stack's figures again, for their ratio: drawn once.
      if (row.scenario.startsWith(COST_GROWTH_ROOM_CHANNELS))
        return row.ours === null ? [] : [{ nodes, stack: ROOM_CHANNELS_SERIES, metric, value: row.ours }];
      return (["ours", "plain"] as const).flatMap((stack) => (row[stack] === null ? [] : [{ nodes, stack, metric, value: row[stack] }]));
    });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Cost growth: the targeted burst on 1, 2 and 4 nodes",
    config: CHART_CONFIG,
    data: { values },
    facet: { column: { field: "metric", type: "nominal", title: null } },
    resolve: { scale: { y: "independent" } },
    spec: {
      width: 260,
      height: 200,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "nodes", type: "ordinal", title: "nodes", axis: { labelAngle: 0 } },
        y: { field: "value", type: "quantitative", title: null },
        color: { field: "stack", type: "nominal", scale: STACK_COLOURS },
      },
    },
  };
}

/** Latency percentiles of the targeted steady run and of single broadcasts. */
export function latencyChart(rows: ResultRow[]): TopLevelSpec {
  const values = rows
    .filter((row) => row.unit === "ms" && (row.scenario.startsWith("targeted, steady") || row.scenario.startsWith("fanout, one broadcast")))
    .flatMap((row) =>
      (["ours", "plain"] as const).flatMap((stack) =>
        row[stack] === null
          ? []
          : [
              {
                panel: row.scenario.startsWith("targeted") ? "targeted, steady rate" : "one broadcast to every socket",
                metric: row.metric
                  .replace(" (median of runs)", "")
                  .replace("latency to the last socket", "last socket")
                  .replace("latency ", ""),
                stack,
                value: row[stack],
              },
            ],
      ),
    );
  const panel = (name: string): ConcatPanel => ({
    title: name,
    transform: [{ filter: { field: "panel", equal: name } }],
    width: { step: 28 },
    height: 200,
    mark: "bar",
    encoding: {
      x: { field: "metric", type: "nominal", title: null, axis: { labelAngle: 0 } },
      xOffset: { field: "stack", type: "nominal" },
      y: { field: "value", type: "quantitative", title: "ms" },
      color: { field: "stack", type: "nominal", scale: STACK_COLOURS },
    },
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Latency, publisher to client (ms)",
    config: CHART_CONFIG,
    data: { values },
    hconcat: [panel("targeted, steady rate"), panel("one broadcast to every socket")],
  };
}

/** Writes latest.json, latest.md and the two charts into `directory`. */
export async function writeReport(directory: string, report: Report): Promise<string[]> {
  mkdirSync(directory, { recursive: true });
  const files = {
    "latest.json": `${JSON.stringify(report, null, 2)}\n`,
    "latest.md": markdown(report),
    "cost-growth.svg": await svg(costGrowthChart(report.results)),
    "latency.svg": await svg(latencyChart(report.results)),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(directory, name), content);
  return Object.keys(files).map((name) => join(directory, name));
}

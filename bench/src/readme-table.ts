import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Report, type ResultRow, targetsTable } from "./report.js";
import {
  ADDED_CPU_METRIC,
  ADDED_RSS_METRIC,
  ADDED_RSS_YOUNG_ASIDE_METRIC,
  ALLOCATED_PER_ADDED_CONNECTION,
  ALLOCATED_PER_CONNECTION,
  ALLOCATED_PER_DELIVERY,
  COST_GROWTH,
  COST_GROWTH_ROOM_CHANNELS,
  OURS_WITH_LIFECYCLE,
  OURS_WITHOUT_PRESENCE,
  PINNED_PATH_SCENARIOS,
  PINNED_STORM,
  PINNED_STORM_WITHOUT_PRESENCE,
  PINNED_TARGETED,
  SERVICES_FLOOR,
  TWO_NODE_FANOUT,
  TWO_NODE_PATH_SCENARIOS,
  TWO_NODE_STORM,
  TWO_NODE_TARGETED,
  WRITE_CALLS_PER_CONNECTION,
  WRITE_CALLS_PER_DELIVERY,
} from "./scenarios.js";

/** The project's README, whose table this writes, and the published results it is written from. */
export const README_PATH = fileURLToPath(new URL("../../README.md", import.meta.url));
export const PUBLISHED_RESULTS_PATH = fileURLToPath(new URL("../results/latest.json", import.meta.url));

/** Where a block of the README written from the results sits: between two comments. */
export interface Markers {
  start: string;
  end: string;
}

/** The README's table of the main figures, and its table of targets: written from the results, never by hand. */
export const TABLE_MARKERS: Markers = {
  start: "<!-- bench table: written by the benchmark from bench/results/latest.json -->",
  end: "<!-- end of bench table -->",
};
export const TARGETS_MARKERS: Markers = {
  start: "<!-- bench targets: written by the benchmark from bench/results/latest.json -->",
  end: "<!-- end of bench targets -->",
};

type Side = "ours" | "plain";

const LATENCIES = ["latency p50", "latency p99", "latency p99.9"] as const;
const FANOUT_LATENCIES = ["latency p50 (median of runs)", "latency to the last socket (median of runs)"] as const;

/** The README's table of the main figures of a full run, in Markdown. */
export function readmeTable(report: Report): string {
  const sizes = report.sizes;
  const find = (scenario: string, metric: string): ResultRow | undefined =>
    report.results.find((row) => row.scenario === scenario && row.metric === metric);
  const value = (scenario: string, metric: string, side: Side): number | null => find(scenario, metric)?.[side] ?? null;
  const figure = (scenario: string, metric: string, side: Side, unit: string) => withUnit(number(value(scenario, metric, side)), unit);
  const ratio = (scenario: string, metric: string): string => {
    const row = find(scenario, metric);
    if (!row || row.ratio === null) return "–";
    return row.ratioRange === null ? times(row.ratio) : `${times(row.ratio)} (${range(row.ratioRange)})`;
  };
  const both = (label: string, what: string, scenario: string, metric: string, unit: string, ratioText = ratio(scenario, metric)) =>
    `| ${label === "" ? "" : `${label} `}| ${what} | ${figure(scenario, metric, "ours", unit)} | ${figure(scenario, metric, "plain", unit)} | ${ratioText} |`;
  /** A continuation row whose figure is named as its metric, with the ratio alone (no rounds' range). */
  const ratioRow = (scenario: string, metric: string, unit: string) =>
    both("", metric, scenario, metric, unit, ratioOnly(find(scenario, metric)));
  const of = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b);
  const several = (scenarios: string[], metric: string, side: Side, unit: string) =>
    withUnit(scenarios.map((scenario) => number(value(scenario, metric, side))).join(" / "), unit);
  const ratios = (scenarios: string[], metric: string) => scenarios.map((scenario) => ratioOnly(find(scenario, metric))).join(" / ");

  const storm = "connect storm";
  const steady = `targeted, steady ${sizes.steadyRate} msgs/s`;
  const fanoutOne = `fanout, one broadcast to ${sizes.sockets} sockets`;
  const emitterCpu = value("targeted, burst", "server CPU per delivery", "ours");
  const emitterAllocated = value("targeted, burst", ALLOCATED_PER_DELIVERY, "ours");
  const growth = sizes.growthNodes.map((nodes) => `${COST_GROWTH}, ${nodes} node${nodes === 1 ? "" : "s"}`);
  const rooms = sizes.growthNodes.map((nodes) => `${COST_GROWTH_ROOM_CHANNELS}, ${nodes} node${nodes === 1 ? "" : "s"}`);
  const services = ["services, 1 instance", "services, 2 instances"];
  /** Our three publish paths where they took turns: each figure, and raw frames and HTTP batches against the emitter path. */
  const pathsRow = (paths: typeof PINNED_PATH_SCENARIOS, label: string, metric: string, unit: string) => {
    const emitter = value(paths.emitter, metric, "ours");
    const against = (scenario: string) => timesOrDash(of(value(scenario, metric, "ours"), emitter));
    const scenarios = [paths.emitter, paths.raw, paths["http-batch"]];
    return `| ${label === "" ? "" : `${label} `}| ${metric} | ${several(scenarios, metric, "ours", unit)} | – | raw ${against(paths.raw)}, HTTP ${against(paths["http-batch"])} our emitter path |`;
  };
  /** A storm's rows: its CPU per connection, then what it allocated per connection, each with the rounds' ratios, then its writes. */
  const stormRows = (label: string, scenario: string) => [
    both(label, "server CPU per connection", scenario, "server CPU per connection", "µs"),
    both("", ALLOCATED_PER_CONNECTION, scenario, ALLOCATED_PER_CONNECTION, "KB"),
    ratioRow(scenario, WRITE_CALLS_PER_CONNECTION, ""),
  ];
  /** A burst's rows: its CPU per delivery with the rounds' ratios, then what it allocated and the writes it made per delivery. */
  const burstRows = (label: string, scenario: string) => [
    both(label, "server CPU per delivery", scenario, "server CPU per delivery", "µs"),
    ratioRow(scenario, ALLOCATED_PER_DELIVERY, "B"),
    ratioRow(scenario, WRITE_CALLS_PER_DELIVERY, ""),
  ];
  const addedRss = find(storm, ADDED_RSS_METRIC);
  const metricRatios = (scenario: string, metrics: readonly string[]) =>
    metrics.map((metric) => ratioOnly(find(scenario, metric))).join(" / ");
  const steadyLatency = (side: Side) => withUnit(LATENCIES.map((metric) => number(value(steady, metric, side))).join(" / "), "ms");
  const fanoutLatency = (side: Side) =>
    withUnit(FANOUT_LATENCIES.map((metric) => number(value(fanoutOne, metric, side))).join(" / "), "ms");
  const serviceLatency = (scenario: string) =>
    `${number(value(scenario, "latency p50", "ours"))} / ${number(value(scenario, "latency p99", "ours"))} ms`;

  const rows = [
    "| scenario | figure | Switchboard | plain | ratio |",
    "| --- | --- | ---: | ---: | ---: |",
    both(`connect storm, ${thousands(sizes.sockets)} sockets`, "server CPU per connection", storm, "server CPU per connection", "µs"),
    both("", "time to all connected", storm, "time to all connected", "s"),
    both("", ADDED_CPU_METRIC, storm, ADDED_CPU_METRIC, "µs"),
    both("", `${ALLOCATED_PER_CONNECTION}, garbage included`, storm, ALLOCATED_PER_CONNECTION, "KB"),
    both("", ALLOCATED_PER_ADDED_CONNECTION, storm, ALLOCATED_PER_ADDED_CONNECTION, "KB"),
    ratioRow(storm, "heap per socket", "KB"),
    both(
      "",
      "RSS per socket, counted from the idle node (median node)",
      storm,
      "RSS per 1,000 sockets per node",
      "KB",
      ratioOnly(find(storm, "RSS per 1,000 sockets per node")),
    ),
    both(
      "",
      `${ADDED_RSS_METRIC} (slope)`,
      storm,
      ADDED_RSS_METRIC,
      "KB",
      addedRss?.ratio == null
        ? "–"
        : `${times(addedRss.ratio)}${addedRss.ratioRange ? ` (${range(addedRss.ratioRange)} over ${addedRss.rounds.ours.length} readings, one per node per round)` : ""}`,
    ),
    both(
      "",
      "RSS per socket added, young generation aside (slope)",
      storm,
      ADDED_RSS_YOUNG_ASIDE_METRIC,
      "KB",
      ratioOnly(find(storm, ADDED_RSS_YOUNG_ASIDE_METRIC)),
    ),
    both(
      "",
      "heap per socket added to a loaded node (slope)",
      storm,
      "heap per socket added to a loaded node",
      "KB",
      ratioOnly(find(storm, "heap per socket added to a loaded node")),
    ),
    ratioRow(storm, "RSS per node, every socket connected", "MB"),
    ratioRow(storm, "server CPU at rest, every socket connected", "ms/s"),
    `| | server CPU with LIFECYCLE_EVENTS=1 / with PRESENCE=0 | ${several([OURS_WITH_LIFECYCLE, OURS_WITHOUT_PRESENCE], "server CPU per connection", "ours", "µs")} | – | |`,
    ...stormRows(`pinned nodes taking turns: connect storm, ${thousands(sizes.pinnedSockets)} sockets`, PINNED_STORM),
    `| | server CPU per connection with PRESENCE=0 | ${figure(PINNED_STORM_WITHOUT_PRESENCE, "server CPU per connection", "ours", "µs")} | – | |`,
    ...burstRows(`pinned nodes taking turns: targeted burst, ${thousands(sizes.pinnedMessages)} messages`, `${PINNED_TARGETED}, burst`),
    pathsRow(
      PINNED_PATH_SCENARIOS,
      `pinned node taking turns: emitter / raw frames / HTTP batches of 100, ${thousands(sizes.pinnedMessages)} messages each`,
      "server CPU per delivery",
      "µs",
    ),
    pathsRow(PINNED_PATH_SCENARIOS, "", ALLOCATED_PER_DELIVERY, "B"),
    ...stormRows(`two nodes taking turns: connect storm, ${thousands(sizes.turnsSockets)} sockets`, TWO_NODE_STORM),
    ...burstRows(`two nodes taking turns: targeted burst, ${thousands(sizes.turnsMessages)} messages`, `${TWO_NODE_TARGETED}, burst`),
    ...burstRows(
      `two nodes taking turns: fanout burst, ${thousands(sizes.turnsBroadcasts)} broadcasts to every socket`,
      `${TWO_NODE_FANOUT}, burst`,
    ),
    pathsRow(
      TWO_NODE_PATH_SCENARIOS,
      `two nodes taking turns: emitter / raw frames / HTTP batches of 100, ${thousands(sizes.turnsMessages)} messages each`,
      "server CPU per delivery",
      "µs",
    ),
    pathsRow(TWO_NODE_PATH_SCENARIOS, "", ALLOCATED_PER_DELIVERY, "B"),
    `| targeted, steady ${thousands(sizes.steadyRate)}/s | latency p50 / p99 / p99.9 | ${steadyLatency("ours")} | ${steadyLatency("plain")} | ${metricRatios(steady, LATENCIES)} |`,
    ratioRow(steady, "server CPU per delivery", "µs"),
    both("targeted, burst", "server CPU per delivery", "targeted, burst", "server CPU per delivery", "µs"),
    both("", ALLOCATED_PER_DELIVERY, "targeted, burst", ALLOCATED_PER_DELIVERY, "B"),
    `| fanout to ${thousands(sizes.sockets)} sockets | p50 / last socket | ${fanoutLatency("ours")} | ${fanoutLatency("plain")} | ${metricRatios(fanoutOne, FANOUT_LATENCIES)} |`,
    both("fanout, burst", "server CPU per delivery", "fanout, burst", "server CPU per delivery", "µs"),
    ratioRow("fanout, burst", ALLOCATED_PER_DELIVERY, "B"),
    both(
      "raw publishers, burst",
      "server CPU per delivery",
      "raw publishers, burst",
      "server CPU per delivery",
      "µs",
      `${ratioOnly(find("raw publishers, burst", "server CPU per delivery"))} (${timesOrDash(of(value("raw publishers, burst", "server CPU per delivery", "ours"), emitterCpu))} our emitter path)`,
    ),
    both(
      "",
      ALLOCATED_PER_DELIVERY,
      "raw publishers, burst",
      ALLOCATED_PER_DELIVERY,
      "B",
      `${ratioOnly(find("raw publishers, burst", ALLOCATED_PER_DELIVERY))} (${timesOrDash(of(value("raw publishers, burst", ALLOCATED_PER_DELIVERY, "ours"), emitterAllocated))} our emitter path)`,
    ),
    ...(
      [
        ["1 per request", "http publish, 1 per request, burst"],
        ["100 per request", "http publish, 100 per request, burst"],
      ] as const
    ).map(([label, scenario]) =>
      both(
        `http publish, ${label}`,
        "server CPU per delivery",
        scenario,
        "server CPU per delivery",
        "µs",
        `${ratio(scenario, "server CPU per delivery")}; ${timesOrDash(of(value(scenario, "server CPU per delivery", "ours"), emitterCpu))} our emitter path`,
      ),
    ),
    `| cost growth, ${sizes.growthNodes.join(" / ")} nodes | server CPU per delivery | ${several(growth, "server CPU per delivery", "ours", "µs")} | ${several(growth, "server CPU per delivery", "plain", "µs")} | ${ratios(growth, "server CPU per delivery")} |`,
    `| | Redis messages per node per message | ${several(growth, "Redis messages received per node per message", "ours", "")} | ${several(growth, "Redis messages received per node per message", "plain", "")} | |`,
    `| cost growth with \`REDIS_SUBSCRIPTIONS=rooms\`, ${sizes.growthNodes.join(" / ")} nodes | server CPU per delivery | ${several(rooms, "server CPU per delivery", "ours", "µs")} | ${several(growth, "server CPU per delivery", "plain", "µs")} | ${ratios(rooms, "server CPU per delivery")} |`,
    `| | Redis messages per node per message | ${several(rooms, "Redis messages received per node per message", "ours", "")} | ${several(growth, "Redis messages received per node per message", "plain", "")} | |`,
    `| | ${ALLOCATED_PER_DELIVERY} | ${several(rooms, ALLOCATED_PER_DELIVERY, "ours", "B")} | ${several(growth, ALLOCATED_PER_DELIVERY, "plain", "B")} | ${ratios(rooms, ALLOCATED_PER_DELIVERY)} |`,
    `| | server CPU per connection, ${thousands(sizes.growthSockets)} sockets | ${several(rooms, "server CPU per connection", "ours", "µs")} | ${several(growth, "server CPU per connection", "plain", "µs")} | ${ratios(rooms, "server CPU per connection")} (${ratios(growth, "server CPU per connection")} with \`pattern\`) |`,
    `| services, 1 / 2 instances | round trips per second | ${several(services, "round trips per second", "ours", "")} | – | floor ${number(value(SERVICES_FLOOR, "round trips per second", "ours"))} |`,
    `| | latency p50 / p99 | ${services.map(serviceLatency).join(", ")} | – | floor ${serviceLatency(SERVICES_FLOOR)} |`,
    `| | gateway CPU per round trip | ${several(services, "gateway CPU per round trip", "ours", "µs")} | – | |`,
  ];
  return rows.join("\n");
}

/** Rewrites the README's blocks of results (the table and the targets); throws when their markers are not there. */
export function writeReadmeTables(readmePath: string, report: Report): void {
  const readme = readFileSync(readmePath, "utf8");
  writeFileSync(readmePath, withBlock(withBlock(readme, TABLE_MARKERS, readmeTable(report)), TARGETS_MARKERS, targetsTable(report)));
}

/** `readme` with the text between `markers` replaced by `text`. */
export function withBlock(readme: string, markers: Markers, text: string): string {
  const block = blockBounds(readme, markers);
  if (block === null) throw new Error(`the README has no markers ${markers.start} … ${markers.end}`);
  return `${readme.slice(0, block.start)}\n${text}\n${readme.slice(block.end)}`;
}

/** The text between `markers` in the README, or null without them. */
export function blockIn(readme: string, markers: Markers): string | null {
  const block = blockBounds(readme, markers);
  return block === null ? null : readme.slice(block.start, block.end).trim();
}

/** Where the text between `markers` starts and ends, or null when they are not both there, in order. */
function blockBounds(readme: string, markers: Markers): { start: number; end: number } | null {
  const start = readme.indexOf(markers.start);
  const end = readme.indexOf(markers.end);
  return start < 0 || end < start ? null : { start: start + markers.start.length, end };
}

/** Three significant digits below 100 (no trailing zeros), whole numbers above, with thousands separated. */
function number(value: number | null): string {
  if (value === null) return "–";
  if (Math.abs(value) >= 100) return thousands(Math.round(value));
  return String(Number(value.toPrecision(3)));
}

function thousands(value: number): string {
  return value.toLocaleString("en-US");
}

/** A figure with its unit; a missing one is a dash alone. */
function withUnit(text: string, unit: string): string {
  return unit === "" || text === "–" ? text : `${text} ${unit}`;
}

function times(ratio: number): string {
  return `${ratio.toFixed(2)}×`;
}

function timesOrDash(ratio: number | null): string {
  return ratio === null ? "–" : times(ratio);
}

function ratioOnly(row: ResultRow | undefined): string {
  return row?.ratio == null ? "–" : times(row.ratio);
}

function range([low, high]: [number, number]): string {
  return `${low.toFixed(2)}–${high.toFixed(2)}`;
}

import { describe, expect, it } from "vitest";
import {
  type Report,
  againstVariant,
  checkTargets,
  combine,
  costGrowthChart,
  isPublishedRun,
  markdown,
  missingCompanions,
} from "../src/report.js";
import {
  ADDED_RSS_METRIC,
  ADDED_RSS_YOUNG_ASIDE_METRIC,
  ALLOCATED_PER_CONNECTION,
  ALLOCATED_PER_DELIVERY,
  COST_GROWTH_ROOM_CHANNELS,
  FULL_COLLECTIONS,
  GC_PAUSE_PER_CONNECTION,
  GC_PAUSE_PER_DELIVERY,
  MAIN_THREAD_PER_CONNECTION,
  MAIN_THREAD_PER_DELIVERY,
  type Measurement,
  PINNED_PATH_SCENARIOS,
  PINNED_STORM,
  PINNED_STORM_WITHOUT_PRESENCE,
  PINNED_TARGETED,
  READ_CALLS_PER_CONNECTION,
  READ_CALLS_PER_DELIVERY,
  TWO_NODE_FANOUT,
  TWO_NODE_PATH_SCENARIOS,
  TWO_NODE_STORM,
  TWO_NODE_TARGETED,
  WRITE_CALLS_PER_CONNECTION,
  WRITE_CALLS_PER_DELIVERY,
} from "../src/scenarios.js";
import { leastSquaresSlope, percentile, round } from "../src/stats.js";
import { VARIANT_BUILD } from "../src/variant.js";

const measured = (scenario: string, metric: string, value: number | null, complete = true): Measurement => ({
  scenario,
  metric,
  unit: "µs",
  value,
  complete,
});

/** One measurement a round, in the order of the rounds. */
const byRound = (scenario: string, metric: string, values: number[]): Measurement[] =>
  values.map((value) => measured(scenario, metric, value));
/** A scenario's CPU per connection, and per delivery, one figure a round. */
const connections = (scenario: string, values: number[]) => byRound(scenario, "server CPU per connection", values);
const cpu = (scenario: string, values: number[]) => byRound(scenario, "server CPU per delivery", values);

describe("the report", () => {
  it("is published, with the README's table, only from a full run of both stacks, every scenario and the nodes unchanged", () => {
    const full = { quick: false, only: null, stacks: ["plain", "ours"], profile: false, nodeFlags: [], variant: null };
    expect(isPublishedRun(full)).toBe(true);
    expect(isPublishedRun({ ...full, quick: true })).toBe(false);
    expect(isPublishedRun({ ...full, only: new Set(["targeted"]) })).toBe(false);
    expect(isPublishedRun({ ...full, stacks: ["ours"] })).toBe(false);
    expect(isPublishedRun({ ...full, profile: true })).toBe(false);
    expect(isPublishedRun({ ...full, nodeFlags: ["--trace-gc"] })).toBe(false);
    expect(isPublishedRun({ ...full, variant: "/elsewhere/switchboard" })).toBe(false);
  });

  it("names each storm or burst that lacks a figure of its CPU's split, its collections or its allocation", () => {
    const figures = (scenario: string, metrics: string[]) => metrics.map((metric) => measured(scenario, metric, 1));
    const storm = [
      "server CPU per connection",
      MAIN_THREAD_PER_CONNECTION,
      GC_PAUSE_PER_CONNECTION,
      ALLOCATED_PER_CONNECTION,
      READ_CALLS_PER_CONNECTION,
      WRITE_CALLS_PER_CONNECTION,
    ];
    const burst = [
      "server CPU per delivery",
      MAIN_THREAD_PER_DELIVERY,
      GC_PAUSE_PER_DELIVERY,
      FULL_COLLECTIONS,
      ALLOCATED_PER_DELIVERY,
      READ_CALLS_PER_DELIVERY,
      WRITE_CALLS_PER_DELIVERY,
    ];
    const complete = [
      ...figures(PINNED_STORM, storm),
      ...figures("targeted, burst", burst),
      ...figures("cost growth, 2 nodes", [...storm, ...burst]),
      // A steady load is not a burst: its CPU figure stands alone.
      ...figures("targeted, steady 2000 msgs/s", ["server CPU per delivery"]),
    ];
    expect(missingCompanions(combine(complete, complete))).toEqual([]);
    const lacking = complete.filter(
      (row) =>
        !(row.scenario === PINNED_STORM && row.metric === GC_PAUSE_PER_CONNECTION) &&
        !(row.scenario === "cost growth, 2 nodes" && row.metric === FULL_COLLECTIONS),
    );
    expect(missingCompanions(combine(lacking, lacking))).toEqual([
      `${PINNED_STORM} / ${GC_PAUSE_PER_CONNECTION}`,
      `cost growth, 2 nodes / ${FULL_COLLECTIONS}`,
    ]);
  });

  it("takes the median of the rounds and gives a ratio only when both stacks delivered everything", () => {
    const ours = [
      measured("targeted, burst", "server CPU per delivery", 30),
      measured("targeted, burst", "server CPU per delivery", 10),
      measured("targeted, burst", "server CPU per delivery", 20),
    ];
    const plain = [
      measured("targeted, burst", "server CPU per delivery", 20),
      measured("fanout, burst", "server CPU per delivery", 5, false),
    ];
    const rows = combine([...ours, measured("fanout, burst", "server CPU per delivery", 5)], plain);
    expect(rows).toEqual([
      {
        scenario: "targeted, burst",
        metric: "server CPU per delivery",
        unit: "µs",
        ours: 20,
        plain: 20,
        ratio: 1,
        rounds: { ours: [30, 10, 20], plain: [20] },
        ratioRange: null,
      },
      {
        scenario: "fanout, burst",
        metric: "server CPU per delivery",
        unit: "µs",
        ours: 5,
        plain: 5,
        ratio: null,
        rounds: { ours: [5], plain: [5] },
        ratioRange: null,
      },
    ]);
  });

  it("pairs each round's figures: the spread of the rounds' own ratios, and in how many rounds a target was met", () => {
    const storm = (values: number[]) => connections("connect storm", values);
    // The machine slows down from round to round; each round's ratio stays close to 1.2.
    const rows = combine(storm([120, 240, 360]), storm([100, 200, 290]));
    expect(rows[0]).toMatchObject({
      ours: 240,
      plain: 200,
      ratio: 1.2,
      rounds: { ours: [120, 240, 360], plain: [100, 200, 290] },
      ratioRange: [1.2, 1.24],
    });
    expect(checkTargets(rows).find((check) => check.target.startsWith("connect storm"))).toEqual({
      target: expect.any(String),
      measured: "1.2× (rounds 1.2–1.24×)",
      met: false,
      roundsMet: { met: 0, of: 3 },
    });
    const report = {
      date: "",
      mode: "full",
      machine: { cpu: "", cores: 2, memoryGiB: 24, os: "", node: "", redis: "" },
      rounds: 3,
      results: rows,
      targets: checkTargets(rows),
      problems: [],
    };
    const written = markdown({
      ...report,
      sizes: { sockets: 10_000, growthSockets: 2000, growthNodes: [1, 2, 4] } as Report["sizes"],
    } as Report);
    expect(written).toContain("| connect storm | server CPU per connection (µs) | 240 | 200 | 1.2× (1.2–1.24) |");
    expect(written).toContain("| 1.2× (rounds 1.2–1.24×) | **no** (0 of 3 rounds) |");
    const mixed = checkTargets(combine(storm([105, 120, 100]), storm([100, 100, 100]))).find((check) =>
      check.target.startsWith("connect storm"),
    );
    expect(mixed).toMatchObject({ measured: "1.05× (rounds 1–1.2×)", met: true, roundsMet: { met: 2, of: 3 } });
    // A round counts as the row shows it: 1.101 is shown as 1.1× and meets a 1.1× target, as the median does.
    expect(
      checkTargets(combine(storm([1101, 1101]), storm([1000, 1000]))).find((check) => check.target.startsWith("connect storm")),
    ).toMatchObject({ measured: "1.1× (rounds 1.1–1.1×)", met: true, roundsMet: { met: 2, of: 2 } });
    // A round that measured nothing leaves no median, so neither a ratio nor a spread.
    expect(
      combine([...storm([100]), measured("connect storm", "server CPU per connection", null), ...storm([100])], storm([100, 100, 50]))[0]
        ?.ratioRange,
    ).toBeNull();
  });

  it("draws cost growth for both stacks and for ours with room channels, the plain stack's figures once", () => {
    const growth = (scenario: string, value: number) => measured(scenario, "server CPU per delivery", value);
    const rows = combine(
      [
        growth("cost growth, 1 node", 30),
        growth("cost growth, 2 nodes", 40),
        growth(`${COST_GROWTH_ROOM_CHANNELS}, 1 node`, 31),
        growth(`${COST_GROWTH_ROOM_CHANNELS}, 2 nodes`, 32),
      ],
      // The plain stack's run stands against both of ours.
      [
        growth("cost growth, 1 node", 28),
        growth("cost growth, 2 nodes", 38),
        growth(`${COST_GROWTH_ROOM_CHANNELS}, 1 node`, 28),
        growth(`${COST_GROWTH_ROOM_CHANNELS}, 2 nodes`, 38),
      ],
    );
    expect(rows.find((row) => row.scenario === `${COST_GROWTH_ROOM_CHANNELS}, 2 nodes`)).toMatchObject({
      ours: 32,
      plain: 38,
      ratio: 0.842,
    });
    const { values } = costGrowthChart(rows).data as { values: { nodes: number; stack: string; value: number }[] };
    expect(values.map(({ nodes, stack, value }) => `${stack} ${nodes} ${value}`).sort()).toEqual(
      [
        "ours 1 30",
        "ours 2 40",
        "ours, REDIS_SUBSCRIPTIONS=rooms 1 31",
        "ours, REDIS_SUBSCRIPTIONS=rooms 2 32",
        "plain 1 28",
        "plain 2 38",
      ].sort(),
    );
  });

  it("checks each target against its row and says what was not measured", () => {
    const rows = combine(
      [
        measured("fanout, burst", "server CPU per delivery", 9),
        measured("connect storm", "server CPU per connection", 300),
        measured("connect storm, PRESENCE=0", "server CPU per connection", 280),
        measured(PINNED_STORM, "server CPU per connection", 210),
      ],
      [
        measured("fanout, burst", "server CPU per delivery", 10),
        measured("connect storm", "server CPU per connection", 200),
        measured(PINNED_STORM, "server CPU per connection", 200),
      ],
    );
    const checks = checkTargets(rows);
    expect(checks.find((check) => check.target.startsWith("fanout"))).toMatchObject({ measured: "0.9×", met: true });
    expect(checks.find((check) => check.target.startsWith("connect storm"))).toMatchObject({ measured: "1.5×", met: false });
    expect(checks.find((check) => check.target.startsWith("presence"))).toMatchObject({ measured: "7.14%", met: true });
    // The storm's target is checked on each measurement of it, the pinned one against its own row.
    expect(checks.find((check) => check.target.startsWith("connect storm on pinned nodes"))).toMatchObject({
      measured: "1.05×",
      met: true,
    });
    expect(checks.find((check) => check.target.startsWith("targeted"))).toMatchObject({ measured: "not measured", met: null });
  });

  it("gives what presence and lifecycle records add to the storm per round, and judges only presence", () => {
    const rows = combine(
      [
        ...connections("connect storm", [110, 120, 100]),
        ...connections("connect storm, PRESENCE=0", [100, 100, 100]),
        ...connections("connect storm, LIFECYCLE_EVENTS=1", [121, 120, 105]),
        ...connections(PINNED_STORM, [104, 103, 112]),
        ...connections(PINNED_STORM_WITHOUT_PRESENCE, [100, 100, 100]),
      ],
      [...connections("connect storm", [100, 100, 100]), ...connections(PINNED_STORM, [90, 90, 90])],
    );
    const checks = checkTargets(rows);
    // Each round's storm with presence against the same round's without, on pinned nodes as on two.
    expect(checks.find((check) => check.target.startsWith("presence slows the connect storm on pinned nodes"))).toEqual({
      target: expect.any(String),
      measured: "4%, median of the rounds' own (rounds 3–12%; from the medians 4%)",
      met: true,
      roundsMet: { met: 2, of: 3 },
    });
    expect(checks.find((check) => check.target.startsWith("presence"))).toEqual({
      target: expect.any(String),
      measured: "10% (rounds 0–20%)",
      met: true,
      roundsMet: { met: 2, of: 3 },
    });
    expect(checks.find((check) => check.target.startsWith("what lifecycle"))).toEqual({
      target: expect.any(String),
      measured: "9.09% (rounds 0–10%)",
      met: null,
      roundsMet: null,
    });
  });

  it("checks raw frames and HTTP batches on the pinned node against the emitter batches that took turns with them there", () => {
    const rows = combine(
      [
        // The two-node emitter burst is far cheaper: the pinned paths must not be judged against it.
        ...cpu("targeted, burst", [10, 10, 10]),
        ...cpu(PINNED_PATH_SCENARIOS.emitter, [50, 40, 60]),
        ...cpu(PINNED_PATH_SCENARIOS.raw, [49, 42, 60]),
        ...cpu(PINNED_PATH_SCENARIOS["http-batch"], [80, 56, 84]),
      ],
      [],
    );
    const checks = checkTargets(rows);
    expect(checks.find((check) => check.target.startsWith("raw frames on a pinned node"))).toEqual({
      target: expect.any(String),
      measured: "1× our emitter path, median of the rounds' own (rounds 0.98–1.05×; from the medians 0.98×)",
      met: true,
      roundsMet: { met: 2, of: 3 },
    });
    expect(checks.find((check) => check.target.startsWith("HTTP publish on a pinned node"))).toEqual({
      target: expect.any(String),
      measured: "1.4× our emitter path, median of the rounds' own (rounds 1.4–1.6×; from the medians 1.6×)",
      met: true,
      roundsMet: { met: 2, of: 3 },
    });
  });

  it("checks the two nodes taking turns against their own rows: storm, targeted, fanout, and our paths against their emitter batches", () => {
    const rows = combine(
      [
        // The two-node runs one stack after the other: ours far dearer there, to show it is not what is read.
        ...connections("connect storm", [200, 200, 200]),
        ...cpu("targeted, burst", [20, 20, 20]),
        ...cpu("fanout, burst", [20, 20, 20]),
        ...connections(TWO_NODE_STORM, [105, 112, 100]),
        ...cpu(`${TWO_NODE_TARGETED}, burst`, [50, 52, 49]),
        ...cpu(`${TWO_NODE_FANOUT}, burst`, [10, 11, 10]),
        ...cpu(TWO_NODE_PATH_SCENARIOS.emitter, [50, 40, 60]),
        ...cpu(TWO_NODE_PATH_SCENARIOS.raw, [49, 42, 60]),
        ...cpu(TWO_NODE_PATH_SCENARIOS["http-batch"], [80, 56, 84]),
      ],
      [
        ...connections("connect storm", [100, 100, 100]),
        ...cpu("targeted, burst", [10, 10, 10]),
        ...cpu("fanout, burst", [10, 10, 10]),
        ...connections(TWO_NODE_STORM, [100, 100, 100]),
        ...cpu(`${TWO_NODE_TARGETED}, burst`, [50, 50, 50]),
        ...cpu(`${TWO_NODE_FANOUT}, burst`, [10, 10, 10]),
      ],
    );
    const check = (start: string) => checkTargets(rows).find((target) => target.target.startsWith(start));
    expect(check("connect storm on two nodes taking turns")).toMatchObject({
      measured: "1.05×, median of the rounds' own (rounds 1–1.12×; from the medians 1.05×)",
      met: true,
      roundsMet: { met: 2, of: 3 },
    });
    expect(check("targeted at 2 nodes taking turns")).toMatchObject({
      measured: "1×, median of the rounds' own (rounds 0.98–1.04×; from the medians 1×)",
      met: true,
      roundsMet: { met: 2, of: 3 },
    });
    expect(check("fanout on two nodes taking turns")).toMatchObject({
      measured: "1×, median of the rounds' own (rounds 1–1.1×; from the medians 1×)",
      met: true,
      roundsMet: { met: 2, of: 3 },
    });
    expect(check("targeted at 2 nodes ≤")).toMatchObject({ measured: "2× (rounds 2–2×)", met: false });
    expect(check("raw frames on two nodes")).toMatchObject({ measured: expect.stringMatching(/^1× our emitter path, median/), met: true });
    expect(check("HTTP publish on two nodes")).toMatchObject({
      measured: expect.stringMatching(/^1.4× our emitter path, median/),
      met: true,
    });
  });

  it("reads a layout taking turns by the median of its rounds' own ratios, and one stack after the other by the ratio of the medians", () => {
    // Both stacks' medians fall in the second round, the one whose own ratio is the highest.
    const ours = [100, 116, 140];
    const plain = [95, 100, 135];
    const rows = combine(
      [...connections("connect storm", ours), ...connections(TWO_NODE_STORM, ours), ...connections(PINNED_STORM, ours)],
      [...connections("connect storm", plain), ...connections(TWO_NODE_STORM, plain), ...connections(PINNED_STORM, plain)],
    );
    const check = (start: string) => checkTargets(rows).find((target) => target.target.startsWith(start));
    // The row itself keeps ours / plain of the medians.
    expect(rows.find((row) => row.scenario === TWO_NODE_STORM)?.ratio).toBe(1.16);
    expect(check("connect storm ≤")).toEqual({
      target: expect.any(String),
      measured: "1.16× (rounds 1.04–1.16×)",
      met: false,
      roundsMet: { met: 2, of: 3 },
    });
    for (const layout of ["connect storm on two nodes taking turns", "connect storm on pinned nodes taking turns"])
      expect(check(layout)).toEqual({
        target: expect.any(String),
        measured: "1.05×, median of the rounds' own (rounds 1.04–1.16×; from the medians 1.16×)",
        met: true,
        roundsMet: { met: 2, of: 3 },
      });
  });

  it("compares ours with the variant build by the median of the rounds' own ratios, in latest.md too", () => {
    const burst = `${PINNED_TARGETED}, burst`;
    const variantBurst = `${PINNED_TARGETED}${VARIANT_BUILD}, burst`;
    // The medians (44 and 40) come from different rounds: their ratio, 1.1, is in none of the rounds.
    const rows = combine(
      [...cpu(burst, [40, 50, 44]), ...cpu(variantBurst, [38, 52, 40]), ...connections(`${PINNED_STORM}${VARIANT_BUILD}`, [300])],
      cpu(burst, [39, 49, 45]),
    );
    const comparison = againstVariant(rows);
    // The variant's storm has no row of ours to stand beside: left out.
    expect(comparison).toEqual([
      {
        scenario: burst,
        metric: "server CPU per delivery",
        unit: "µs",
        ours: 44,
        variant: 40,
        ratio: 1.05,
        ratioRange: [0.962, 1.1],
      },
    ]);
    // Variant rows are ours only, and no target reads them.
    expect(rows.find((row) => row.scenario === variantBurst)).toMatchObject({ plain: null, ratio: null });
    expect(checkTargets(rows)).toEqual(checkTargets(rows.filter((row) => !row.scenario.includes(VARIANT_BUILD))));
    const report: Report = {
      date: "",
      mode: "full",
      machine: { cpu: "", cores: 2, memoryGiB: 24, os: "", node: "", redis: "" },
      sizes: { sockets: 10_000, growthSockets: 2000, growthNodes: [1, 2, 4] } as Report["sizes"],
      rounds: 3,
      results: rows,
      targets: [],
      problems: [],
    };
    expect(markdown(report)).not.toContain("## Against the variant build");
    const written = markdown({
      ...report,
      variant: { checkout: "/elsewhere/switchboard", commit: "abc1234-dirty", oursCommit: "def5678", comparison },
    });
    expect(written).toContain("## Against the variant build");
    expect(written).toContain("Ours (def5678) against the gateway of /elsewhere/switchboard (abc1234-dirty)");
    expect(written).toContain(`| ${burst} | server CPU per delivery (µs) | 44 | 40 | 1.05× (0.962–1.1) |`);
  });

  it("meets no memory target with a slope of zero or less: memory reused while sockets were added measures nothing", () => {
    const rssTargets = (ours: number, plain: number) =>
      checkTargets(
        combine([measured("connect storm", ADDED_RSS_METRIC, ours)], [measured("connect storm", ADDED_RSS_METRIC, plain)]),
      ).filter((check) => check.target.startsWith("RSS per idle socket"));
    expect(rssTargets(12, 12.5)).toMatchObject([
      { measured: "0.96×", met: true },
      { measured: "12 KB", met: false },
      { measured: "not measured", met: null },
      { measured: "not measured", met: null },
    ]);
    expect(rssTargets(-23.7, -4)).toMatchObject([
      { measured: "not measurable (-23.7 KB against -4 KB)", met: null },
      { measured: "not measurable (-23.7 KB)", met: null },
      { measured: "not measured", met: null },
      { measured: "not measured", met: null },
    ]);
    expect(rssTargets(7, -4)).toMatchObject([
      { met: null },
      { measured: "7 KB", met: true },
      { measured: "not measured", met: null },
      { measured: "not measured", met: null },
    ]);
  });

  it("checks the memory targets again on the slope with the young generation aside, each on its own figure", () => {
    const rows = combine(
      [measured("connect storm", ADDED_RSS_METRIC, 22.6), measured("connect storm", ADDED_RSS_YOUNG_ASIDE_METRIC, 7.9)],
      [measured("connect storm", ADDED_RSS_METRIC, 22), measured("connect storm", ADDED_RSS_YOUNG_ASIDE_METRIC, 10.5)],
    );
    expect(checkTargets(rows).filter((check) => check.target.startsWith("RSS per idle socket"))).toMatchObject([
      { target: "RSS per idle socket ≤ plain", measured: "1.03×", met: false },
      { target: "RSS per idle socket ≤ 8 KB", measured: "22.6 KB", met: false },
      { target: "RSS per idle socket ≤ plain, young generation aside", measured: "0.752×", met: true },
      { target: "RSS per idle socket ≤ 8 KB, young generation aside", measured: "7.9 KB", met: true },
    ]);
  });
});

describe("statistics", () => {
  it("reads percentiles by nearest rank and rounds to three significant digits", () => {
    const sorted = Float64Array.from({ length: 100 }, (_, index) => index + 1);
    expect([percentile(sorted, 0.5), percentile(sorted, 0.99), percentile(sorted, 0.999), percentile(sorted, 1)]).toEqual([
      50, 99, 100, 100,
    ]);
    expect(percentile(new Float64Array(), 0.5)).toBeNaN();
    expect([round(0.123456), round(12.345), round(1234.5)]).toEqual([0.123, 12.3, 1235]);
  });

  it("fits a least-squares slope through noisy readings, and none through a single x", () => {
    expect(
      leastSquaresSlope([
        [0, 100],
        [1, 112],
        [2, 118],
        [3, 134],
      ]),
    ).toBeCloseTo(10.8, 10);
    expect(
      leastSquaresSlope([
        [0, 5],
        [10, 5],
      ]),
    ).toBe(0);
    expect(
      leastSquaresSlope([
        [3, 1],
        [3, 9],
      ]),
    ).toBeNaN();
  });
});

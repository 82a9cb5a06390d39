import { createClient } from "redis";
import { BENCH_API_KEY, BENCH_SECRET, type Cluster, type Stack, startCluster } from "./cluster.js";
import type { NodeUsage, Usage } from "./ipc.js";
import { type Worker, startWorker } from "./workers.js";
import type { CallReply, CallersApi } from "./load/callers.js";
import type { ClientsApi } from "./load/clients.js";
import type { ServiceWorkerApi } from "./load/service.js";
import { now } from "./load/clock.js";
import { HTTP_BATCH, type PublishArgs, type PublisherApi, type PublishMode } from "./load/publisher.js";
import type { Progress } from "./progress.js";
import { leastSquaresSlope, median, percentile, sortedSamples } from "./stats.js";
import { VARIANT_BUILD } from "./variant.js";

/** The size knobs of every scenario. */
export interface Sizes {
  sockets: number;
  clientProcesses: number;
  steadyRate: number;
  steadySeconds: number;
  /** How long the nodes are watched holding every socket with nothing sent, after as long again not counted. */
  restSeconds: number;
  /**
   * Messages in each two-node burst (targeted, raw, HTTP batches): enough that every node of both
   * stacks runs full collections within it. V8 starts one when the old generation reaches a limit set
   * at the last, and a shorter burst ends just before that point on one stack and just after it on
   * the other, which moved a burst's ratio by tens of percent.
   */
  burstMessages: number;
  httpMessages: number;
  fanoutRepeats: number;
  fanoutBurst: number;
  growthSockets: number;
  growthMessages: number;
  growthNodes: number[];
  /** How long idle nodes are left before their memory is read. */
  settleMs: number;
  /** Sockets calling the echo service, one call in flight each. */
  serviceCallers: number;
  /** Requests in each services run. */
  serviceRequests: number;
  /** Requests each service instance handles at once. */
  serviceConcurrency: number;
  /** Sockets each of the pinned nodes takes in their connect storm (see turns.ts). */
  pinnedSockets: number;
  /** Messages the pinned nodes each take in their targeted burst. */
  pinnedMessages: number;
  /** Sockets each stack's two nodes take together when the stacks take turns (see turns.ts). */
  turnsSockets: number;
  /** Messages each stack's two nodes take in their targeted burst, taking turns. */
  turnsMessages: number;
  /** Broadcasts to every socket each stack's two nodes take in their fanout burst, taking turns. */
  turnsBroadcasts: number;
}

export const FULL_SIZES: Sizes = {
  sockets: 10_000,
  clientProcesses: 2,
  steadyRate: 2000,
  steadySeconds: 5,
  restSeconds: 5,
  burstMessages: 200_000,
  httpMessages: 20_000,
  fanoutRepeats: 5,
  fanoutBurst: 20,
  growthSockets: 2000,
  growthMessages: 20_000,
  growthNodes: [1, 2, 4],
  settleMs: 1000,
  serviceCallers: 50,
  serviceRequests: 20_000,
  serviceConcurrency: 64,
  pinnedSockets: 4000,
  pinnedMessages: 50_000,
  turnsSockets: 4000,
  turnsMessages: 50_000,
  turnsBroadcasts: 40,
};

/** Each burst is preceded by 1/WARM_UP_SHARE of its messages, unmeasured. */
export const WARM_UP_SHARE = 10;

/** How many steps the sockets added to loaded nodes come in: the memory slope is fitted over them. */
const ADDED_STEPS = 4;

/** The metric the RSS targets are checked against. */
export const ADDED_RSS_METRIC = "RSS per socket added to a loaded node";
/**
 * The same slope with V8's young generation taken out of each reading: the young generation grows
 * towards its cap while the added sockets connect, on both stacks alike, and a node pays that once,
 * not per socket it holds. The targets are checked against both figures.
 */
export const ADDED_RSS_YOUNG_ASIDE_METRIC = "RSS per socket added to a loaded node, young generation aside";
/**
 * The part of a storm's or a burst's CPU spent on the nodes' JavaScript threads; the rest is on V8's
 * own threads (compiling hot functions, helping collections) and libuv's.
 */
export const MAIN_THREAD_PER_CONNECTION = "server CPU per connection, JavaScript thread";
export const MAIN_THREAD_PER_DELIVERY = "server CPU per delivery, JavaScript thread";
/** Of that, the time in collections; and the full collections, which land where the heap reaches its limit. */
export const GC_PAUSE_PER_CONNECTION = "collection pauses per connection, JavaScript thread";
export const GC_PAUSE_PER_DELIVERY = "collection pauses per delivery, JavaScript thread";
export const FULL_COLLECTIONS = "full collections during the burst";
/** Server CPU per connection of the sockets added to nodes that already hold every socket (warm nodes). */
export const ADDED_CPU_METRIC = "server CPU per connection added to a loaded node";
/**
 * What the nodes' heaps allocated, garbage included. Unlike CPU time it barely moves between runs, and
 * what a path allocates is what its collections cost, on V8's own threads as much as on the main one.
 */
export const ALLOCATED_PER_CONNECTION = "heap allocated per connection";
export const ALLOCATED_PER_DELIVERY = "heap allocated per delivery";
export const ALLOCATED_PER_ADDED_CONNECTION = `${ALLOCATED_PER_CONNECTION} added to a loaded node`;
/**
 * The nodes' system calls: reads (from Redis and the clients) and writes (to them). Counted, not timed,
 * so they show where a path makes the kernel work more often, which its CPU time, split by thread, cannot.
 */
export const READ_CALLS_PER_CONNECTION = "read system calls per connection";
export const WRITE_CALLS_PER_CONNECTION = "write system calls per connection";
export const READ_CALLS_PER_DELIVERY = "read system calls per delivery";
export const WRITE_CALLS_PER_DELIVERY = "write system calls per delivery";

export const QUICK_SIZES: Sizes = {
  sockets: 200,
  clientProcesses: 1,
  steadyRate: 500,
  steadySeconds: 1,
  restSeconds: 1,
  burstMessages: 2000,
  httpMessages: 500,
  fanoutRepeats: 2,
  fanoutBurst: 3,
  growthSockets: 100,
  growthMessages: 500,
  growthNodes: [1, 2],
  settleMs: 200,
  serviceCallers: 10,
  serviceRequests: 300,
  serviceConcurrency: 16,
  pinnedSockets: 100,
  pinnedMessages: 2000,
  turnsSockets: 100,
  turnsMessages: 2000,
  turnsBroadcasts: 8,
};

/** One figure of one stack. `complete` is false when a run lost messages or connections. */
export interface Measurement {
  scenario: string;
  metric: string;
  unit: string;
  value: number | null;
  complete: boolean;
}

export const SITE = "bench.example";
/** The scenario of the storm against nodes that count no presence. */
export const OURS_WITHOUT_PRESENCE = "connect storm, PRESENCE=0";
/** The scenario of the storm against nodes that record each socket in the lifecycle stream. */
export const OURS_WITH_LIFECYCLE = "connect storm, LIFECYCLE_EVENTS=1";
/** Cost growth again, with the gateway's nodes subscribed to their own rooms' channels only. */
export const COST_GROWTH = "cost growth";
export const COST_GROWTH_ROOM_CHANNELS = "cost growth, REDIS_SUBSCRIPTIONS=rooms";
/** The floor of the services scenario: the same requests and replies through Redis, without the gateway. */
export const SERVICES_FLOOR = "services, direct Redis round trip (floor)";
const SERVICE_NAME = "bench-echo";
/** How long deliveries may stall before a scenario counts what it got. */
const STALL_MS = 5000;

/** What a scenario asks a publisher for; the users it targets default to the run's own. */
type PublishRequest = Pick<PublishArgs, "mode" | "target" | "count" | "ratePerSecond"> & Partial<Pick<PublishArgs, "users">>;

export interface Load {
  clients: Worker<ClientsApi>[];
  publisher: Worker<PublisherApi>;
}

/** Scenarios that can be picked with --only; the two-node connect storm runs with any of MAIN_SCENARIOS, as it connects their sockets. */
export const SCENARIO_NAMES = ["storm", "targeted", "fanout", "raw", "http", "growth", "services", "pinned", "turns"] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];
/** The scenarios of the two-node run that starts with the connect storm. */
const MAIN_SCENARIOS: readonly ScenarioName[] = ["storm", "targeted", "fanout", "raw", "http"];

/** Our three ways of publishing, compared with each other where they take turns on the same nodes. */
type PathScenarios = Readonly<Record<"emitter" | "raw" | "http-batch", string>>;
const pathScenarios = (prefix: string): PathScenarios =>
  ({
    emitter: `${prefix}: emitter`,
    raw: `${prefix}: raw frames`,
    "http-batch": `${prefix}: http publish, ${HTTP_BATCH} per request`,
  }) satisfies Partial<Record<PublishMode, string>>;

/** The handshake measured on one node of each stack at once, bound to a core the load does not use (see turns.ts). */
export const PINNED_STORM = "connect storm, pinned nodes taking turns";
/** The targeted burst on those nodes. */
export const PINNED_TARGETED = "targeted, pinned nodes taking turns";
/** The pinned storm on a third node, of ours with PRESENCE=0, taking its turns with the other two. */
export const PINNED_STORM_WITHOUT_PRESENCE = `${PINNED_STORM}, PRESENCE=0`;
/**
 * Our emitter, raw-frame and HTTP batch paths on our pinned node, taking turns with each other batch
 * by batch, so that they are compared on the same node in the same minutes (see turns.ts).
 */
export const PINNED_PATHS = "publish paths, pinned node taking turns";
export const PINNED_PATH_SCENARIOS = pathScenarios(PINNED_PATHS);

/** The two-node storm, targeted and fanout bursts with both stacks' clusters up at once, taking the load by turns (see turns.ts). */
export const TWO_NODE_STORM = "connect storm, two nodes taking turns";
export const TWO_NODE_TARGETED = "targeted, two nodes taking turns";
export const TWO_NODE_FANOUT = "fanout, two nodes taking turns";
/** Our three publish paths taking turns on our two nodes. */
export const TWO_NODE_PATHS = "publish paths, two nodes taking turns";
export const TWO_NODE_PATH_SCENARIOS = pathScenarios(TWO_NODE_PATHS);

/** What a run of the stacks taking turns measures, and the scenarios it records its figures under. */
export interface TurnsLayout {
  /** `pinned` or `turns`, as --only names it. */
  name: ScenarioName;
  /** Nodes of each stack, each with every socket of its stack spread over them. */
  nodes: number;
  /** Whether the nodes are bound to one core and the load to the other. */
  pinned: boolean;
  sockets: (sizes: Sizes) => number;
  messages: (sizes: Sizes) => number;
  /** Broadcasts to every socket of a stack; none without a fanout scenario. */
  broadcasts: (sizes: Sizes) => number;
  storm: string;
  /** The storm again on a cluster of ours with PRESENCE=0, taking its turns with the others; null for none. */
  stormWithoutPresence: string | null;
  /** The targeted burst; its figures go under `${targeted}, burst`. */
  targeted: string;
  /** The fanout burst (`${fanout}, burst`), or null for none. */
  fanout: string | null;
  /** Our publish paths taking turns on our cluster, and the scenario of each. */
  pathsName: string;
  paths: PathScenarios;
}

export const PINNED_LAYOUT: TurnsLayout = {
  name: "pinned",
  nodes: 1,
  pinned: true,
  sockets: (sizes) => sizes.pinnedSockets,
  messages: (sizes) => sizes.pinnedMessages,
  broadcasts: () => 0,
  storm: PINNED_STORM,
  stormWithoutPresence: PINNED_STORM_WITHOUT_PRESENCE,
  targeted: PINNED_TARGETED,
  fanout: null,
  pathsName: PINNED_PATHS,
  paths: PINNED_PATH_SCENARIOS,
};

export const TWO_NODE_LAYOUT: TurnsLayout = {
  name: "turns",
  nodes: 2,
  pinned: false,
  sockets: (sizes) => sizes.turnsSockets,
  messages: (sizes) => sizes.turnsMessages,
  broadcasts: (sizes) => sizes.turnsBroadcasts,
  storm: TWO_NODE_STORM,
  stormWithoutPresence: null,
  targeted: TWO_NODE_TARGETED,
  fanout: TWO_NODE_FANOUT,
  pathsName: TWO_NODE_PATHS,
  paths: TWO_NODE_PATH_SCENARIOS,
};

/** Every layout taking turns, in the order a run takes them. */
export const TURNS_LAYOUTS: readonly TurnsLayout[] = [PINNED_LAYOUT, TWO_NODE_LAYOUT];

/** Whether a scenario's figures come from a layout taking turns (its storm, bursts or publish paths). */
export function takesTurns(scenario: string): boolean {
  return TURNS_LAYOUTS.some((layout) =>
    [layout.storm, layout.targeted, layout.fanout, layout.pathsName].some((name) => name !== null && scenario.startsWith(name)),
  );
}

/** Scenarios that only the gateway has: no plain figure, no ratio. */
const OURS_ONLY = [OURS_WITHOUT_PRESENCE, OURS_WITH_LIFECYCLE, "services", PINNED_STORM_WITHOUT_PRESENCE, PINNED_PATHS, TWO_NODE_PATHS];

/** Whether a scenario is measured on the gateway alone: a setting, a path or a build of ours that the plain stack has no counterpart for. */
export function isOursOnly(scenario: string): boolean {
  return OURS_ONLY.some((name) => scenario.startsWith(name)) || scenario.includes(VARIANT_BUILD);
}

export interface RunOptions {
  /** Only these scenarios; null runs all. */
  only: ReadonlySet<ScenarioName> | null;
  /** Where the nodes write CPU profiles; null for none. */
  profileDirectory: string | null;
  /** The profiles are of allocations instead of CPU time. */
  allocations: boolean;
  /** Node and V8 flags for the server nodes of both stacks, never for the load (`--node-flags`). */
  nodeFlags: readonly string[];
  /** Another checkout whose gateway takes its turns beside ours on the layouts taking turns (`--variant`); null for none. */
  variant: string | null;
}

export class StackRun {
  readonly results: Measurement[] = [];
  /** Problems that make a figure unusable; the run reports them and fails in quick mode. */
  readonly problems: string[] = [];
  /** Users 0 … users - 1 are connected to this run's two-node cluster; targeted messages pick among them. */
  private users = 0;

  constructor(
    readonly stack: Stack,
    private readonly sizes: Sizes,
    private readonly redisUrl: string,
    private readonly progress: Progress,
    private readonly options: RunOptions,
  ) {}

  /** Starts `nodes` server nodes of this run's stack, with `env` for ours. */
  private startCluster(nodes: number, env: Record<string, string> = {}): Promise<Cluster> {
    return startCluster(this.stack, nodes, this.redisUrl, { env, nodeFlags: this.options.nodeFlags });
  }

  private wanted(name: ScenarioName): boolean {
    return this.options.only === null || this.options.only.has(name);
  }

  /** Profiles the nodes while `phase` runs, when asked to. */
  private async profiled<T>(cluster: Cluster, label: string, phase: () => Promise<T>): Promise<T> {
    const directory = this.options.profileDirectory;
    if (directory === null) return phase();
    await cluster.profileStart(this.options.allocations);
    const result = await phase();
    const slug = label
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "");
    await cluster.profileStop(`${directory}/${slug}-${this.stack}`);
    return result;
  }

  record(scenario: string, metric: string, unit: string, value: number | null, complete: boolean): void {
    this.results.push({ scenario, metric, unit, value: value !== null && Number.isFinite(value) ? value : null, complete });
  }

  /** A storm's CPU per connection, with its JavaScript thread's share, its collection pauses and what it allocated. */
  recordConnectionCost(scenario: string, spent: Spent, connected: number, complete: boolean): void {
    this.record(scenario, ALLOCATED_PER_CONNECTION, "KB", spent.allocatedBytes / connected / 1000, complete);
    this.record(scenario, "server CPU per connection", "µs", spent.cpuUs / connected, complete);
    this.record(scenario, MAIN_THREAD_PER_CONNECTION, "µs", perUnit(spent.mainThreadUs, connected), complete);
    this.record(scenario, GC_PAUSE_PER_CONNECTION, "µs", spent.gcPauseUs / connected, complete);
    this.record(scenario, READ_CALLS_PER_CONNECTION, "calls", perUnit(spent.systemCalls?.reads ?? null, connected), complete);
    this.record(scenario, WRITE_CALLS_PER_CONNECTION, "calls", perUnit(spent.systemCalls?.writes ?? null, connected), complete);
  }

  /** A burst's CPU per delivery, with its JavaScript thread's share, its collections and what it allocated. */
  recordDeliveryCost(scenario: string, spent: Spent, delivered: number, complete: boolean): void {
    this.record(scenario, "server CPU per delivery", "µs", spent.cpuUs / delivered, complete);
    this.record(scenario, MAIN_THREAD_PER_DELIVERY, "µs", perUnit(spent.mainThreadUs, delivered), complete);
    this.record(scenario, GC_PAUSE_PER_DELIVERY, "µs", spent.gcPauseUs / delivered, complete);
    this.record(scenario, FULL_COLLECTIONS, "collections", spent.fullCollections, complete);
    this.record(scenario, ALLOCATED_PER_DELIVERY, "B", spent.allocatedBytes / delivered, complete);
    this.record(scenario, READ_CALLS_PER_DELIVERY, "calls", perUnit(spent.systemCalls?.reads ?? null, delivered), complete);
    this.record(scenario, WRITE_CALLS_PER_DELIVERY, "calls", perUnit(spent.systemCalls?.writes ?? null, delivered), complete);
  }

  /** Connect storm, targeted (steady and burst), fanout, raw publishers and HTTP publish on two nodes. */
  async mainScenarios(): Promise<void> {
    const { sizes } = this;
    if (!MAIN_SCENARIOS.some((name) => this.wanted(name))) return;
    await this.flushRedis();
    const cluster = await this.startCluster(2);
    const load = await this.startLoad(cluster);
    try {
      const connected = await this.connectStorm(cluster, load, sizes.sockets, "connect storm");
      const complete = connected === sizes.sockets;
      await this.atRest(cluster, complete);
      await this.addedSockets(cluster, complete);
      if (this.wanted("targeted")) {
        await this.targetedSteady(cluster, load, complete);
        await this.burst(cluster, load, "targeted", "emitter", "user", sizes.burstMessages, 1, complete);
      }
      if (this.wanted("fanout")) {
        await this.fanoutSingle(load, connected, complete);
        await this.burst(cluster, load, "fanout", "emitter", "site", sizes.fanoutBurst, connected, complete);
      }
      if (this.wanted("raw")) await this.burst(cluster, load, "raw publishers", "raw", "user", sizes.burstMessages, 1, complete);
      if (this.wanted("http")) {
        await this.burst(cluster, load, "http publish, 1 per request", "http", "user", sizes.httpMessages, 1, complete);
        await this.burst(cluster, load, `http publish, ${HTTP_BATCH} per request`, "http-batch", "user", sizes.burstMessages, 1, complete);
      }
    } finally {
      await this.stopLoad(load);
      await cluster.stop();
    }
  }

  /**
   * What one more idle socket costs a node that already holds every socket: a pool of its own adds
   * half as many sockets again in ADDED_STEPS steps, each node's memory is read after a GC before the
   * first and after each step, and the figure is the least-squares slope of memory over the node's
   * sockets. Unlike the storm's figures, counted from an idle node, it does not include what a node
   * held before its first socket (which varies by tens of MB between starts of the same build) nor
   * the code compiled for the first connections; a slope over several readings is steadier than one
   * difference, as what V8 and the allocator keep mapped after a GC moves by MBs between readings. It
   * runs before any message is sent, so no burst's freed buffers are reused by the added sockets. The
   * added sockets leave again. Their CPU per connection is recorded too: that of nodes that have taken the
   * storm, though each step starts by compiling again what the gc() before it threw away.
   */
  private async addedSockets(cluster: Cluster, stormComplete: boolean): Promise<void> {
    const nodes = cluster.urls.length;
    const perStep = Math.max(nodes, Math.round(this.sizes.sockets / 2 / ADDED_STEPS));
    const pool = startWorker<ClientsApi>("load/clients");
    this.progress.line(`${this.stack}: ${perStep * ADDED_STEPS} sockets added to the ${this.users} connected, in ${ADDED_STEPS} steps`);
    try {
      const readings: { sockets: number; usage: Usage[] }[] = [{ sockets: 0, usage: await this.settledUsage(cluster) }];
      let complete = stormComplete;
      let added = 0;
      let cpuUs = 0;
      let allocatedBytes = 0;
      for (let step = 0; step < ADDED_STEPS; step++) {
        const firstUid = this.users + step * perStep;
        await pool.call(
          "prepare",
          { stack: this.stack, urls: cluster.urls, firstUid, count: perStep, site: SITE, secret: BENCH_SECRET, concurrency: 500 },
          300_000,
        );
        const cpuBefore = await cluster.usage();
        const reply = await this.profiled(cluster, `added sockets ${step + 1}`, () => pool.call("connect", {}, 300_000));
        const cpuAfter = await cluster.usage();
        const spent = spentBetween(cpuBefore, cpuAfter);
        cpuUs += spent.cpuUs;
        allocatedBytes += spent.allocatedBytes;
        if (reply.failed > 0) {
          complete = false;
          this.problems.push(`${this.stack}: ${reply.failed} of ${perStep} added sockets failed to connect (${reply.errors.join("; ")})`);
        }
        added += reply.connected;
        readings.push({ sockets: added / nodes, usage: await this.settledUsage(cluster) });
      }
      // Nodes that have taken the storm have compiled their hot paths, but each step follows a gc(), which keeps
      // no unused maps and so throws away optimized code that depended on them: a step compiles some again.
      this.record("connect storm", ADDED_CPU_METRIC, "µs", cpuUs / added, complete);
      this.record("connect storm", ALLOCATED_PER_ADDED_CONNECTION, "KB", allocatedBytes / added / 1000, complete);
      for (let index = 0; index < nodes; index++) {
        const slope = (bytes: (usage: Usage) => number) =>
          leastSquaresSlope(readings.map((reading) => [reading.sockets, bytes(reading.usage[index]!)]));
        this.record("connect storm", ADDED_RSS_METRIC, "KB", slope((usage) => usage.rssBytes) / 1000, complete);
        this.record(
          "connect storm",
          ADDED_RSS_YOUNG_ASIDE_METRIC,
          "KB",
          slope((usage) => usage.rssBytes - usage.youngGenerationBytes) / 1000,
          complete,
        );
        this.record(
          "connect storm",
          "heap per socket added to a loaded node",
          "KB",
          slope((usage) => usage.heapUsedBytes) / 1000,
          complete,
        );
      }
    } finally {
      await pool.call("close", {}, 30_000).catch(() => null);
      await pool.stop();
    }
  }

  /**
   * Ours only: the connect storm again with PRESENCE=0, to show what counting presence costs, and
   * with LIFECYCLE_EVENTS=1, to show what recording every socket in the lifecycle stream costs.
   */
  async featureCosts(): Promise<void> {
    if (this.stack !== "ours" || !this.wanted("storm")) return;
    for (const [scenario, env] of [
      [OURS_WITHOUT_PRESENCE, { PRESENCE: "0" }],
      [OURS_WITH_LIFECYCLE, { LIFECYCLE_EVENTS: "1" }],
    ] as const) {
      await this.flushRedis();
      const cluster = await this.startCluster(2, env);
      const load = await this.startLoad(cluster);
      try {
        await this.connectStorm(cluster, load, this.sizes.sockets, scenario);
      } finally {
        await this.stopLoad(load);
        await cluster.stop();
      }
    }
  }

  /**
   * Ours only: request → result round trips (each caller socket makes hundreds a second, so the
   * per-socket event rate limit is lifted) through two nodes to an echo service with 1 and 2
   * instances (each its own process), next to the same requests written straight to the service's
   * stream and answered on a Redis channel: the floor, what Redis and the service cost without the
   * gateway and Socket.IO.
   */
  async services(): Promise<void> {
    const { sizes } = this;
    if (this.stack !== "ours" || !this.wanted("services")) return;
    let floorP50: number | null = null;
    for (const instances of [1, 2]) {
      await this.flushRedis();
      const cluster = await this.startCluster(2, { SERVICE_POLICY: "bench-*", CLIENT_EVENT_RATE: "1000000" });
      const workers = Array.from({ length: instances }, () => startWorker<ServiceWorkerApi>("load/service"));
      const callers = startWorker<CallersApi>("load/callers");
      try {
        await Promise.all(
          workers.map((worker, index) =>
            worker.call("start", {
              redisUrl: this.redisUrl,
              name: SERVICE_NAME,
              concurrency: sizes.serviceConcurrency,
              instanceId: `bench-${index}`,
            }),
          ),
        );
        const opened = await callers.call("open", { urls: cluster.urls, sockets: sizes.serviceCallers, secret: BENCH_SECRET, site: SITE });
        if (opened.connected < sizes.serviceCallers)
          this.problems.push(`services: ${opened.connected} of ${sizes.serviceCallers} callers connected (${opened.errors.join("; ")})`);
        if (instances === 1) {
          this.progress.line(`${this.stack}: ${SERVICES_FLOOR}, ${sizes.serviceRequests} requests`);
          const floor = await this.roundTrips(SERVICES_FLOOR, null, workers, (count) =>
            callers.call(
              "direct",
              { service: SERVICE_NAME, count, maxMs: 120_000, redisUrl: this.redisUrl, concurrency: sizes.serviceCallers },
              180_000,
            ),
          );
          floorP50 = floor.p50;
        }
        const scenario = `services, ${instances} instance${instances === 1 ? "" : "s"}`;
        this.progress.line(`${this.stack}: ${scenario}, ${sizes.serviceRequests} requests from ${sizes.serviceCallers} sockets on 2 nodes`);
        const run = await this.roundTrips(scenario, cluster, workers, (count) =>
          callers.call("call", { service: SERVICE_NAME, count, maxMs: 120_000 }, 180_000),
        );
        this.record(scenario, "latency p50 against the floor", "×", floorP50 === null ? null : run.p50 / floorP50, run.complete);
      } finally {
        await callers.call("close", {}).catch(() => null);
        await Promise.allSettled(workers.map((worker) => worker.call("close", {}, 30_000)));
        await Promise.all([callers.stop(), ...workers.map((worker) => worker.stop())]);
        await cluster.stop();
      }
    }
  }

  /** One run of round trips (after a warm-up of a tenth of it): throughput, latency, CPU of the gateway and of the service. */
  private async roundTrips(
    scenario: string,
    cluster: Cluster | null,
    workers: Worker<ServiceWorkerApi>[],
    run: (count: number) => Promise<CallReply>,
  ): Promise<{ p50: number; complete: boolean }> {
    await run(Math.ceil(this.sizes.serviceRequests / 10));
    const before = await Promise.all([
      cluster?.usage() ?? Promise.resolve([]),
      Promise.all(workers.map((worker) => worker.call("usage", {}))),
    ]);
    const reply = await run(this.sizes.serviceRequests);
    const after = await Promise.all([
      cluster?.usage() ?? Promise.resolve([]),
      Promise.all(workers.map((worker) => worker.call("usage", {}))),
    ]);
    const complete = reply.failed === 0 && reply.completed === this.sizes.serviceRequests;
    if (!complete)
      this.problems.push(
        `${scenario}: ${reply.completed} of ${this.sizes.serviceRequests} round trips completed (${reply.errors.join("; ")})`,
      );
    const latencies = sortedSamples([reply.samples]);
    const p50 = percentile(latencies, 0.5);
    this.record(scenario, "round trips per second", "req/s", reply.completed / (reply.elapsedMs / 1000), complete);
    this.record(scenario, "latency p50", "ms", p50, complete);
    this.record(scenario, "latency p99", "ms", percentile(latencies, 0.99), complete);
    if (cluster !== null)
      this.record(scenario, "gateway CPU per round trip", "µs", cpuDelta(before[0], after[0]) / reply.completed, complete);
    const serviceCpu = after[1].reduce((total, usage, index) => total + usage.cpuUs - before[1][index]!.cpuUs, 0);
    this.record(scenario, "service CPU per round trip", "µs", serviceCpu / reply.completed, complete);
    return { p50, complete };
  }

  /**
   * The targeted burst with 1, 2, 4… nodes: Redis messages each node receives, server µs per
   * delivery. Ours runs it twice: as configured by default, and with REDIS_SUBSCRIPTIONS=rooms.
   */
  async costGrowth(): Promise<void> {
    const { sizes } = this;
    if (!this.wanted("growth")) return;
    const variants: [string, Record<string, string>][] =
      this.stack === "ours"
        ? [
            [COST_GROWTH, {}],
            [COST_GROWTH_ROOM_CHANNELS, { REDIS_SUBSCRIPTIONS: "rooms" }],
          ]
        : [[COST_GROWTH, {}]];
    for (const [name, env] of variants) {
      for (const nodes of sizes.growthNodes) {
        await this.flushRedis();
        const cluster = await this.startCluster(nodes, env);
        const load = await this.startLoad(cluster);
        try {
          const scenario = `${name}, ${nodes} node${nodes === 1 ? "" : "s"}`;
          const recordedBefore = this.results.length;
          const connected = await this.connectStorm(cluster, load, sizes.growthSockets, scenario, "cpu");
          const result = await this.burst(
            cluster,
            load,
            scenario,
            "adapter",
            "user",
            sizes.growthMessages,
            1,
            connected === sizes.growthSockets,
          );
          const perNode = result.receivers === null ? null : result.receivers / result.published / nodes;
          this.record(scenario, "Redis messages received per node per message", "msgs", perNode, result.complete);
          // The plain stack has one way to subscribe: its figures stand against both of ours.
          if (this.stack === "plain")
            this.copyRecords(recordedBefore, `${COST_GROWTH_ROOM_CHANNELS}, ${nodes} node${nodes === 1 ? "" : "s"}`);
        } finally {
          await this.stopLoad(load);
          await cluster.stop();
        }
      }
    }
  }

  /** Records the figures recorded since the `from`th once more, under the scenario `to` (the run keeps every round's). */
  private copyRecords(from: number, to: string): void {
    for (const row of this.results.slice(from)) this.results.push({ ...row, scenario: to });
  }

  private async flushRedis(): Promise<void> {
    const redis = createClient({ url: this.redisUrl });
    await redis.connect();
    await redis.flushAll();
    await redis.quit();
  }

  private async startLoad(cluster: Cluster): Promise<Load> {
    const clients = Array.from({ length: this.sizes.clientProcesses }, () => startWorker<ClientsApi>("load/clients"));
    const publisher = startWorker<PublisherApi>("load/publisher");
    await publisher.call("open", { stack: this.stack, redisUrl: this.redisUrl, httpUrls: cluster.urls, apiKey: BENCH_API_KEY });
    return { clients, publisher };
  }

  private async stopLoad(load: Load): Promise<void> {
    await Promise.allSettled([...load.clients.map((client) => client.call("close", {}, 30_000)), load.publisher.call("close", {}, 30_000)]);
    await Promise.all([...load.clients.map((client) => client.stop()), load.publisher.stop()]);
  }

  /** Connects `count` sockets at once (ours verifies a JWT for each); records every figure of the storm, or (`cpu`) only the CPU it took per connection. */
  private async connectStorm(
    cluster: Cluster,
    load: Load,
    count: number,
    scenario: string,
    figures: "all" | "cpu" = "all",
  ): Promise<number> {
    const before = await cluster.usage(true);
    const perProcess = Math.ceil(count / load.clients.length);
    const done = new Array<number>(load.clients.length).fill(0);
    const bar = this.progress.bar(`${this.stack}: ${scenario}, ${count} sockets`, count);
    for (const [index, client] of load.clients.entries()) {
      client.onNotice("progress", (value) => {
        done[index] = Number(value);
        bar.update(done.reduce((total, part) => total + part, 0));
      });
    }
    this.users = count;
    // Every pool signs its tokens first; the storm starts when all of them are ready.
    await Promise.all(
      load.clients.map((client, index) => {
        const firstUid = index * perProcess;
        const share = Math.max(0, Math.min(perProcess, count - firstUid));
        return client.call(
          "prepare",
          { stack: this.stack, urls: cluster.urls, firstUid, count: share, site: SITE, secret: BENCH_SECRET, concurrency: 500 },
          300_000,
        );
      }),
    );
    const replies = await this.profiled(cluster, scenario, () =>
      Promise.all(load.clients.map((client) => client.call("connect", {}, 300_000))),
    );
    // CPU now, memory once the nodes have settled: the forced GC of the memory reading is not the storm's.
    const cpuAfter = await cluster.usage();
    bar.stop();
    const connected = replies.reduce((total, reply) => total + reply.connected, 0);
    const failed = replies.reduce((total, reply) => total + reply.failed, 0);
    if (failed > 0)
      this.problems.push(
        `${this.stack} ${scenario}: ${failed} of ${count} sockets failed to connect (${replies.flatMap((reply) => reply.errors).join("; ")})`,
      );
    const complete = connected === count;
    this.recordConnectionCost(scenario, spentBetween(before, cpuAfter), connected, complete);
    if (figures === "cpu") return connected;
    const elapsedMs = Math.max(...replies.map((reply) => reply.finishedAtMs)) - Math.min(...replies.map((reply) => reply.startedAtMs));
    const after = await this.settledUsage(cluster);
    if (this.options.profileDirectory !== null) await cluster.heapSnapshot(`${this.options.profileDirectory}/connected-${this.stack}`);
    const socketsPerNode = connected / cluster.urls.length;
    this.record(scenario, "time to all connected", "s", elapsedMs / 1000, complete);
    this.record(scenario, "connections per second", "conn/s", connected / (elapsedMs / 1000), complete);
    this.record(scenario, "failed connections", "sockets", failed, true);
    // One figure per node: the report takes the median over nodes and rounds, as what the allocator
    // keeps mapped after a GC jumps between runs by several KB per socket.
    for (const [index, usage] of after.entries()) {
      this.record(
        scenario,
        "RSS per 1,000 sockets per node",
        "MB",
        (usage.rssBytes - before[index]!.rssBytes) / socketsPerNode / 1000,
        complete,
      );
      // The figure above depends on what an idle node happened to hold before the storm (it varies by
      // 20 MB between starts of the same node); the node's whole RSS once every socket is in does not.
      this.record(scenario, "RSS per node, every socket connected", "MB", usage.rssBytes / 1e6, complete);
      this.record(
        scenario,
        "heap per socket",
        "KB",
        (usage.heapUsedBytes - before[index]!.heapUsedBytes) / socketsPerNode / 1000,
        complete,
      );
    }
    return connected;
  }

  /** Usage after a GC, once the nodes had a moment to settle. */
  private async settledUsage(cluster: Cluster): Promise<Usage[]> {
    await new Promise((resolve) => setTimeout(resolve, this.sizes.settleMs));
    return cluster.usage(true);
  }

  /**
   * What holding the sockets costs with nothing sent: heartbeats, timers, each node's own probes.
   * Spread over a steady load's messages, it is part of that load's CPU per delivery. The first
   * `restSeconds` are not counted: V8 is still compiling the storm's code and returning its memory on
   * its own threads then, seconds of work that a node at rest does not keep doing.
   */
  private async atRest(cluster: Cluster, connectedAll: boolean): Promise<void> {
    const seconds = this.sizes.restSeconds;
    this.progress.line(`${this.stack}: every socket connected, nothing sent, for ${2 * seconds} s (the last ${seconds} s counted)`);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const before = await cluster.usage();
    await this.profiled(cluster, "at rest", () => new Promise((resolve) => setTimeout(resolve, seconds * 1000)));
    const after = await cluster.usage();
    this.record(
      "connect storm",
      "server CPU at rest, every socket connected",
      "ms/s",
      cpuDelta(before, after) / 1000 / seconds,
      connectedAll,
    );
  }

  private async targetedSteady(cluster: Cluster, load: Load, connectedAll: boolean): Promise<void> {
    const { sizes } = this;
    const count = sizes.steadyRate * sizes.steadySeconds;
    const scenario = `targeted, steady ${sizes.steadyRate} msgs/s`;
    this.progress.line(`${this.stack}: ${scenario} for ${sizes.steadySeconds} s`);
    const run = await this.publishAndWait(
      cluster,
      load,
      { mode: "emitter", target: "user", count, ratePerSecond: sizes.steadyRate },
      count,
    );
    const latencies = sortedSamples(await this.latencySamples(load));
    const complete = connectedAll && run.delivered === count;
    this.record(scenario, "latency p50", "ms", percentile(latencies, 0.5), complete);
    this.record(scenario, "latency p99", "ms", percentile(latencies, 0.99), complete);
    this.record(scenario, "latency p99.9", "ms", percentile(latencies, 0.999), complete);
    this.record(scenario, "server CPU per delivery", "µs", run.spent.cpuUs / run.delivered, complete);
  }

  /** Single broadcasts to the site room of every socket, one at a time. */
  private async fanoutSingle(load: Load, sockets: number, connectedAll: boolean): Promise<void> {
    const scenario = `fanout, one broadcast to ${sockets} sockets`;
    this.progress.line(`${this.stack}: ${scenario}, ${this.sizes.fanoutRepeats} times`);
    const p50s: number[] = [];
    const lasts: number[] = [];
    let complete = connectedAll;
    for (let repeat = 0; repeat < this.sizes.fanoutRepeats; repeat++) {
      await Promise.all(load.clients.map((client) => client.call("reset", {})));
      const sent = await load.publisher.call(
        "publish",
        this.publishArgs({ mode: "emitter", target: "site", count: 1, ratePerSecond: null }),
      );
      const { delivered } = await this.waitForDeliveries(load, sockets);
      complete &&= sent.published === 1 && delivered === sockets;
      const latencies = sortedSamples(await this.latencySamples(load));
      p50s.push(percentile(latencies, 0.5));
      lasts.push(latencies[latencies.length - 1] ?? Number.NaN);
    }
    this.record(scenario, "latency p50 (median of runs)", "ms", median(p50s), complete);
    this.record(scenario, "latency to the last socket (median of runs)", "ms", median(lasts), complete);
  }

  /** Publishes `count` messages as fast as the publisher can; each reaches `perMessage` sockets. */
  async burst(
    cluster: Cluster,
    load: Load,
    scenario: string,
    mode: PublishMode,
    target: "user" | "site",
    count: number,
    perMessage: number,
    connectedAll: boolean,
  ): Promise<{ published: number; receivers: number | null; complete: boolean }> {
    const expected = count * perMessage;
    // A tenth of the burst first, unmeasured, in the same mode: a path's first messages are spent
    // while V8 compiles it, which would otherwise land on whichever burst uses that path first.
    const warmUp = Math.ceil(count / WARM_UP_SHARE);
    await this.publishAndWait(cluster, load, { mode, target, count: warmUp, ratePerSecond: null }, warmUp * perMessage);
    const bar = this.progress.bar(`${this.stack}: ${scenario}, burst of ${count} messages (${mode}), after ${warmUp} unmeasured`, expected);
    const run = await this.profiled(cluster, `${scenario} ${mode}`, () =>
      this.publishAndWait(cluster, load, { mode, target, count, ratePerSecond: null }, expected, (delivered) => bar.update(delivered)),
    );
    bar.stop();
    const complete = connectedAll && run.delivered === expected && run.published === count;
    const label = scenario.startsWith(COST_GROWTH) ? scenario : `${scenario}, burst`;
    this.recordDeliveryCost(label, run.spent, run.delivered, complete);
    this.record(label, "deliveries per second", "msgs/s", run.delivered / (run.durationMs / 1000), complete);
    if (!scenario.startsWith(COST_GROWTH)) {
      const latencies = sortedSamples(await this.latencySamples(load));
      this.record(label, "latency p99", "ms", percentile(latencies, 0.99), complete);
    }
    return { published: run.published, receivers: run.receivers, complete };
  }

  /** `users` defaults to the sockets of this run's own storm; another cluster (of the stacks taking turns) names its own. */
  private publishArgs(args: PublishRequest): PublishArgs {
    const maxMs = args.ratePerSecond === null ? 120_000 : (args.count / args.ratePerSecond) * 1000 + 30_000;
    return { users: this.users, ...args, site: SITE, maxMs };
  }

  /** Publishes `args` and waits for `expected` deliveries: what arrived, and the nodes' CPU time meanwhile. */
  async publishAndWait(
    cluster: Cluster,
    load: Load,
    args: PublishRequest,
    expected: number,
    onProgress?: (delivered: number) => void,
  ): Promise<{ delivered: number; published: number; receivers: number | null; spent: Spent; durationMs: number }> {
    await Promise.all(load.clients.map((client) => client.call("reset", {})));
    const before = await cluster.usage();
    const startedAt = now();
    const sent = await load.publisher.call("publish", this.publishArgs(args), 300_000);
    if (sent.failed > 0) this.problems.push(`${this.stack} ${args.mode}: ${sent.failed} publishes failed (${sent.errors.join("; ")})`);
    const { delivered, lastAtMs } = await this.waitForDeliveries(load, expected, onProgress);
    const after = await cluster.usage();
    if (delivered < expected)
      this.problems.push(`${this.stack} ${args.mode} to ${args.target}: ${delivered} of ${expected} deliveries arrived`);
    return {
      delivered,
      published: sent.published,
      receivers: sent.receivers,
      spent: spentBetween(before, after),
      durationMs: Math.max(1, lastAtMs - startedAt),
    };
  }

  /** Waits until `expected` deliveries arrived, or they stall; returns what arrived and when the last did. */
  private async waitForDeliveries(
    load: Load,
    expected: number,
    onProgress?: (delivered: number) => void,
  ): Promise<{ delivered: number; lastAtMs: number }> {
    let delivered = 0;
    let lastAtMs = 0;
    let changedAt = Date.now();
    while (true) {
      const counts = await Promise.all(load.clients.map((client) => client.call("received", {})));
      const total = counts.reduce((sum, count) => sum + count.count, 0);
      lastAtMs = counts.reduce((latest, count) => Math.max(latest, count.lastAtMs), 0);
      if (total !== delivered) changedAt = Date.now();
      delivered = total;
      onProgress?.(delivered);
      if (delivered >= expected || Date.now() - changedAt > STALL_MS) return { delivered, lastAtMs };
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async latencySamples(load: Load): Promise<number[][]> {
    return (await Promise.all(load.clients.map((client) => client.call("latencies", {})))).map((reply) => reply.samples);
  }
}

/** How much a reading grew between two readings of each node, summed over the nodes. */
function grown<U extends Usage>(before: U[], after: U[], reading: (usage: U) => number): number {
  return after.reduce((total, usage, index) => total + reading(usage) - reading(before[index]!), 0);
}

/** The nodes' CPU time between two readings (µs). */
const cpuDelta = (before: Usage[], after: Usage[]) => grown(before, after, (usage) => usage.cpuUs);
/** A total per unit, unknown where the total is (and not finite, so not recorded, for no units). */
const perUnit = (total: number | null, count: number) => (total === null ? null : total / count);

/** What the nodes spent between two readings, summed over the nodes. */
export interface Spent {
  cpuUs: number;
  /** The part of `cpuUs` on the nodes' JavaScript threads; null where a node cannot tell. */
  mainThreadUs: number | null;
  gcPauseUs: number;
  fullCollections: number;
  allocatedBytes: number;
  /** The nodes' read and write system calls; null where a node cannot tell. */
  systemCalls: Usage["systemCalls"];
}

export const NOTHING_SPENT: Spent = Object.freeze({
  cpuUs: 0,
  mainThreadUs: 0,
  gcPauseUs: 0,
  fullCollections: 0,
  allocatedBytes: 0,
  systemCalls: { reads: 0, writes: 0 },
});

export function spentBetween(before: NodeUsage[], after: NodeUsage[]): Spent {
  const mainThreadKnown = [...before, ...after].every((usage) => usage.mainThreadCpuUs !== null);
  const callsKnown = [...before, ...after].every((usage) => usage.systemCalls !== null);
  return {
    cpuUs: cpuDelta(before, after),
    mainThreadUs: mainThreadKnown ? grown(before, after, (usage) => usage.mainThreadCpuUs ?? 0) : null,
    gcPauseUs: grown(before, after, (usage) => usage.gcPauseUs),
    fullCollections: grown(before, after, (usage) => usage.fullCollections),
    allocatedBytes: grown(before, after, (usage) => usage.allocatedBytes),
    systemCalls: callsKnown
      ? {
          reads: grown(before, after, (usage) => usage.systemCalls?.reads ?? 0),
          writes: grown(before, after, (usage) => usage.systemCalls?.writes ?? 0),
        }
      : null,
  };
}

/** Two spans' spending together; the JavaScript thread's share stays unknown once one span's is. */
export function addSpent(a: Spent, b: Spent): Spent {
  return {
    cpuUs: a.cpuUs + b.cpuUs,
    mainThreadUs: a.mainThreadUs === null || b.mainThreadUs === null ? null : a.mainThreadUs + b.mainThreadUs,
    gcPauseUs: a.gcPauseUs + b.gcPauseUs,
    fullCollections: a.fullCollections + b.fullCollections,
    allocatedBytes: a.allocatedBytes + b.allocatedBytes,
    systemCalls:
      a.systemCalls === null || b.systemCalls === null
        ? null
        : { reads: a.systemCalls.reads + b.systemCalls.reads, writes: a.systemCalls.writes + b.systemCalls.writes },
  };
}

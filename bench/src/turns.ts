import { availableParallelism } from "node:os";
import { type RedisServer, startRedis } from "@switchboard/e2e/harness/redis";
import { BENCH_API_KEY, BENCH_SECRET, type Cluster, type Stack, startCluster } from "./cluster.js";
import { type Worker, pinToCpus, startWorker } from "./workers.js";
import type { ClientsApi } from "./load/clients.js";
import type { PublisherApi } from "./load/publisher.js";
import type { Progress } from "./progress.js";
import { VARIANT_BUILD, VARIANT_CHECKOUT_ENV } from "./variant.js";
import {
  type Load,
  NOTHING_SPENT,
  SITE,
  type Sizes,
  type RunOptions,
  type Spent,
  type StackRun,
  type TurnsLayout,
  WARM_UP_SHARE,
  addSpent,
  spentBetween,
} from "./scenarios.js";

/** With a pinned layout, the core the measured nodes share, and the one everything else is bound to. */
const NODE_CPU = "0";
const LOAD_CPU = "1";
/** How many batches each stack's sockets and messages come in, the stacks taking turns. */
const BATCHES = 8;
/** Handshakes in flight at once. */
const CONCURRENCY = 100;

/** One cluster with everything that loads it: its own Redis, a client pool, a publisher. */
interface Side {
  stack: Stack;
  /** The run its figures go to. */
  run: StackRun;
  /** The stack, and the setting it runs with if any, in progress lines and problems. */
  label: string;
  /** The scenario its storm is recorded under. */
  storm: string;
  /** Whether it takes the bursts after the storm. */
  bursts: boolean;
  /** Added to the scenarios of its bursts: VARIANT_BUILD on the cluster of the variant build, else nothing. */
  suffix: string;
  redis: RedisServer;
  cluster: Cluster;
  load: Load & { clients: [Worker<ClientsApi>] };
}

/**
 * The connect storm and the bursts on a cluster of each stack at once — one node each, or two — taking
 * the load in turns, batch by batch. In the two-node scenarios run one stack after the other, the VM's
 * own speed changes between the stacks' turns, and where their full collections fall differs: a
 * round's ratio there moves by tens of percent. Here a change of speed lasting longer than a batch
 * falls on every cluster alike. Each cluster has its own Redis, as both stacks use the adapter's
 * channel names.
 *
 * With the pinned layout the nodes are bound to core 0 and everything else — client pools,
 * publishers, each cluster's own Redis — to core 1, so the load never runs on a measured node's core;
 * a third node, of ours with PRESENCE=0, takes its turns in the storm, so that what counting presence
 * costs is read as steadily as the stacks' ratio. With --variant, on either layout, a cluster of ours
 * built from another checkout takes its turns in everything but the publish paths, its figures going
 * under the same scenarios with VARIANT_BUILD. With the two-node layout nothing is bound: the nodes
 * share both cores with the load and Redis, as in the two-node scenarios, and a message for a user
 * reaches both nodes of its stack, one of which holds the user's socket. Last, our cluster takes the
 * same messages from each of our publish paths in turns (publishPaths), for the raw-frame and HTTP
 * targets.
 */
export async function takingTurns(
  runs: StackRun[],
  layout: TurnsLayout,
  sizes: Sizes,
  progress: Progress,
  round: number,
  options: RunOptions,
): Promise<void> {
  const refuse = (why: string) => {
    for (const run of runs) run.problems.push(`${run.stack} ${layout.storm}: not measured: ${why}`);
  };
  if (layout.pinned && availableParallelism() < 2) return refuse("it needs 2 CPUs");
  const redisServers: RedisServer[] = [];
  const workers: Worker<ClientsApi | PublisherApi>[] = [];
  const sides: Side[] = [];
  try {
    const plan = runs.map((run) => ({ run, label: run.stack as string, storm: layout.storm, bursts: true, suffix: "", env: {} }));
    const ours = runs.find((run) => run.stack === "ours");
    if (ours && layout.stormWithoutPresence !== null)
      plan.push({
        run: ours,
        label: "ours, PRESENCE=0",
        storm: layout.stormWithoutPresence,
        bursts: false,
        suffix: "",
        env: { PRESENCE: "0" },
      });
    if (ours && options.variant !== null)
      plan.push({
        run: ours,
        label: "ours, variant build",
        storm: `${layout.storm}${VARIANT_BUILD}`,
        bursts: true,
        suffix: VARIANT_BUILD,
        env: { [VARIANT_CHECKOUT_ENV]: options.variant },
      });
    for (const { run, label, storm, bursts, suffix, env } of plan) {
      const redis = await startRedis();
      redisServers.push(redis);
      const cluster = await startCluster(run.stack, layout.nodes, redis.url, { nodeFlags: options.nodeFlags, env });
      const load = {
        clients: [startWorker<ClientsApi>("load/clients")] as [Worker<ClientsApi>],
        publisher: startWorker<PublisherApi>("load/publisher"),
      };
      workers.push(load.clients[0], load.publisher);
      sides.push({ stack: run.stack, run, label, storm, bursts, suffix, redis, cluster, load });
      await load.publisher.call("open", { stack: run.stack, redisUrl: redis.url, httpUrls: cluster.urls, apiKey: BENCH_API_KEY });
    }
    if (layout.pinned)
      for (const side of sides) {
        const loadPids = [side.redis.pid, side.load.clients[0].child.pid, side.load.publisher.child.pid];
        const unpinned = side.cluster.pin(NODE_CPU) ?? loadPids.map((pid) => pinToCpus(pid, LOAD_CPU)).find((why) => why !== null) ?? null;
        if (unpinned !== null) return refuse(`could not bind the processes to cores (${unpinned})`);
      }
    // With --profile, each node's profile spans every phase; it is idle while the others take their turns.
    const directory = options.profileDirectory;
    if (directory !== null) await Promise.all(sides.map((side) => side.cluster.profileStart(options.allocations)));
    const { ready, users } = await storm(sides, layout.sockets(sizes), round, progress);
    const bursting = sides.filter((side) => side.bursts);
    const readyToBurst = new Set([...ready].filter((side) => side.bursts));
    const burst = { sides: bursting, ready: readyToBurst, users, round, progress };
    await bursts(burst, layout.targeted, "user", layout.messages(sizes), 1);
    // Every socket of a side is in its site: the unmeasured first ones too.
    if (layout.fanout !== null) await bursts(burst, layout.fanout, "site", layout.broadcasts(sizes), users);
    const oursSide = bursting.find((side) => side.stack === "ours" && side.suffix === "");
    if (oursSide && ready.has(oursSide)) await publishPaths(oursSide, layout, users, layout.messages(sizes), round, progress);
    if (directory !== null)
      await Promise.all(sides.map((side) => side.cluster.profileStop(`${directory}/${layout.name}-${side.label.replace(/\W+/g, "-")}`)));
  } finally {
    await Promise.allSettled(workers.map((worker) => worker.call("close", {}, 30_000)));
    await Promise.all(workers.map((worker) => worker.stop()));
    await Promise.all(sides.map((side) => side.cluster.stop()));
    await Promise.all(redisServers.map((redis) => redis.stop()));
  }
}

/**
 * The takers in the order they take batch number `batch` of round `round`: each batch starts one place
 * further on than the one before, and each round one further than the last, so every taker goes first,
 * in the middle and last in turn. With three takers or more none takes two turns in a row; with two,
 * each does as often as the other. (Reversing the order each batch left the middle one of three nodes
 * always in the middle, never following its own turn as the other two did.)
 */
export function turnsOf<T>(takers: readonly T[], round: number): (batch: number) => T[] {
  return (batch) => {
    const first = (batch + round) % takers.length;
    return [...takers.slice(first), ...takers.slice(0, first)];
  };
}

/** Splits `total` into BATCHES and hands each batch, `[offset, count]`, to each taker in the order `turns` gives for it. */
async function byTurns<T>(
  total: number,
  turns: (batch: number) => readonly T[],
  take: (taker: T, offset: number, count: number) => Promise<void>,
): Promise<void> {
  const perBatch = Math.ceil(total / BATCHES);
  for (let batch = 0, offset = 0; offset < total; batch++, offset += perBatch) {
    for (const taker of turns(batch)) await take(taker, offset, Math.min(perBatch, total - offset));
  }
}

const names = (sides: Iterable<Side>) => [...sides].map((side) => side.label).join(" and ");

/**
 * Connects `count` sockets (after the unmeasured ones) to each side's nodes by turns. Returns the sides
 * that connected them all, and how many users each of those holds: users 0 … users - 1.
 */
async function storm(sides: Side[], count: number, round: number, progress: Progress): Promise<{ ready: Set<Side>; users: number }> {
  const warmUp = Math.ceil(count / WARM_UP_SHARE);
  const connect = async (side: Side, firstUid: number, share: number) => {
    const pool = side.load.clients[0];
    // Tokens are signed before the node's CPU time is read: signing is the client's work.
    await pool.call(
      "prepare",
      { stack: side.stack, urls: side.cluster.urls, firstUid, count: share, site: SITE, secret: BENCH_SECRET, concurrency: CONCURRENCY },
      300_000,
    );
    const before = await side.cluster.usage();
    const reply = await pool.call("connect", {}, 300_000);
    return { ...reply, spent: spentBetween(before, await side.cluster.usage()) };
  };
  progress.line(`${names(sides)}: ${sides[0]?.storm}, ${count} sockets each in ${BATCHES} batches by turns, after ${warmUp} unmeasured`);
  const totals = new Map(sides.map((side) => [side, { connected: 0, failed: 0, spent: NOTHING_SPENT, errors: [] as string[] }]));
  // The first handshakes run while V8 is still compiling the path: not counted, as for each burst.
  for (const side of sides) totals.get(side)!.failed += (await connect(side, 0, warmUp)).failed;
  await byTurns(count, turnsOf(sides, round), async (side, offset, share) => {
    const reply = await connect(side, warmUp + offset, share);
    const total = totals.get(side)!;
    total.connected += reply.connected;
    total.failed += reply.failed;
    total.spent = addSpent(total.spent, reply.spent);
    total.errors.push(...reply.errors);
  });
  const ready = new Set<Side>();
  for (const side of sides) {
    const total = totals.get(side)!;
    const complete = total.failed === 0 && total.connected === count;
    if (total.failed > 0)
      side.run.problems.push(
        `${side.label} ${side.storm}: ${total.failed} sockets failed to connect (${total.errors.slice(0, 5).join("; ")})`,
      );
    side.run.recordConnectionCost(side.storm, total.spent, total.connected, complete);
    if (complete) ready.add(side);
  }
  return { ready, users: warmUp + count };
}

/** The sides that take the bursts, those of them whose storm connected every socket, and those sockets' users. */
interface BurstPlan {
  sides: Side[];
  ready: ReadonlySet<Side>;
  users: number;
  round: number;
  progress: Progress;
}

/**
 * A burst of `messages` to each side's users (`user`, each to one socket) or to its site (`site`, each
 * to `perMessage` sockets), by turns, recorded under `${scenario}${suffix}, burst`; a side whose storm fell
 * short (not in `ready`) measures nothing.
 */
async function bursts(plan: BurstPlan, scenario: string, target: "user" | "site", messages: number, perMessage: number): Promise<void> {
  const { sides, ready, users, round, progress } = plan;
  const bar = progress.bar(
    `${names(ready)}: ${scenario}, ${messages} messages each (${perMessage} socket${perMessage === 1 ? "" : "s"} each) in ${BATCHES} bursts by turns`,
    messages * perMessage * ready.size,
  );
  const publish = (side: Side, count: number) =>
    side.run.publishAndWait(side.cluster, side.load, { mode: "emitter", target, count, ratePerSecond: null, users }, count * perMessage);
  const totals = new Map(sides.map((side): [Side, Delivered] => [side, { delivered: 0, spent: NOTHING_SPENT, complete: ready.has(side) }]));
  for (const side of ready) await publish(side, Math.ceil(messages / WARM_UP_SHARE));
  let done = 0;
  await byTurns(
    messages,
    turnsOf(
      sides.filter((side) => ready.has(side)),
      round,
    ),
    async (side, _offset, count) => {
      if (!(await addBatch(totals.get(side)!, count, count * perMessage, () => publish(side, count)))) return;
      done += count * perMessage;
      bar.update(done);
    },
  );
  bar.stop();
  // A side that delivered nothing divides by zero: record() keeps no figure that is not finite.
  for (const [side, total] of totals)
    side.run.recordDeliveryCost(`${scenario}${side.suffix}, burst`, total.spent, total.delivered, total.complete);
}

/** What a side, or a path, delivered over its batches, and the CPU it took. */
interface Delivered {
  delivered: number;
  spent: Spent;
  complete: boolean;
}

/**
 * Publishes one batch of `count` messages, `expected` deliveries, and adds it to `total`; false,
 * publishing nothing, once `total` lost messages: it has no figure to give, and sits out the rest.
 */
async function addBatch(
  total: Delivered,
  count: number,
  expected: number,
  publish: () => Promise<{ delivered: number; published: number; spent: Spent }>,
): Promise<boolean> {
  if (!total.complete) return false;
  const run = await publish();
  total.delivered += run.delivered;
  total.spent = addSpent(total.spent, run.spent);
  total.complete &&= run.delivered === expected && run.published === count;
  return true;
}

/**
 * Our three ways of publishing, each `messages` to the cluster's users, taking turns on our cluster
 * batch by batch. Compared with each other, they share the nodes, their heaps and the minutes they
 * run in; in the two-node run each comes as one burst after the other, where a drift of the VM between
 * bursts lands on one path alone.
 */
async function publishPaths(
  side: Side,
  { paths, pathsName }: Pick<TurnsLayout, "paths" | "pathsName">,
  users: number,
  messages: number,
  round: number,
  progress: Progress,
): Promise<void> {
  const modes = Object.keys(paths) as (keyof typeof paths)[];
  const bar = progress.bar(
    `${side.label}: ${pathsName}, ${messages} messages each by ${modes.join(", ")} in ${BATCHES} batches by turns`,
    messages * modes.length,
  );
  const publish = (mode: (typeof modes)[number], count: number) =>
    side.run.publishAndWait(side.cluster, side.load, { mode, target: "user", count, ratePerSecond: null, users }, count);
  for (const mode of modes) await publish(mode, Math.ceil(messages / WARM_UP_SHARE));
  const totals = new Map(modes.map((mode): [typeof mode, Delivered] => [mode, { delivered: 0, spent: NOTHING_SPENT, complete: true }]));
  let done = 0;
  await byTurns(messages, turnsOf(modes, round), async (mode, _offset, count) => {
    if (!(await addBatch(totals.get(mode)!, count, count, () => publish(mode, count)))) return;
    done += count;
    bar.update(done);
  });
  bar.stop();
  for (const [mode, total] of totals) side.run.recordDeliveryCost(paths[mode], total.spent, total.delivered, total.complete);
}

import { availableParallelism } from "node:os";
import { type RedisServer, startRedis } from "@switchboard/e2e/harness/redis";
import { BENCH_API_KEY, BENCH_SECRET, type Cluster, type Stack, startCluster } from "./cluster.js";
import { type Worker, pinToCpus, startWorker } from "./ipc.js";
import type { ClientsApi } from "./load/clients.js";
import type { PublisherApi } from "./load/publisher.js";
import type { Progress } from "./progress.js";
import { type Load, PINNED_STORM, PINNED_TARGETED, SITE, type Sizes, type StackRun, WARM_UP_SHARE } from "./scenarios.js";

/** The core the measured nodes share, and the one everything else is bound to. */
const NODE_CPU = "0";
const LOAD_CPU = "1";
/** How many batches each stack's sockets and messages come in, the stacks taking turns. */
const BATCHES = 8;
/** Handshakes in flight at once. */
const CONCURRENCY = 100;

/** One stack's node with everything that loads it: its own Redis, a client pool, a publisher. */
interface Side {
  stack: Stack;
  run: StackRun;
  redis: RedisServer;
  cluster: Cluster;
  load: Load & { clients: [Worker<ClientsApi>] };
}

/**
 * The connect storm and the targeted burst on one node of each stack at once. Both nodes are bound to
 * core 0 and everything else — client pools, publishers, each stack's own Redis — to core 1, and the
 * two nodes take the load in turns, batch by batch. In the two-node scenarios the nodes, the load and
 * Redis share both cores, and the VM's own speed changes between the stacks' turns: a round's ratio
 * there moves by tens of percent. Here the load never runs on a measured node's core, and a change of
 * speed lasting longer than a batch falls on both stacks alike. Each stack has its own Redis, as both
 * stacks use the adapter's channel names.
 */
export async function pinnedPair(runs: StackRun[], sizes: Sizes, progress: Progress, round: number, profiling: { directory: string | null; allocations: boolean }): Promise<void> {
  const refuse = (why: string) => {
    for (const run of runs) run.problems.push(`${run.stack} ${PINNED_STORM}: not measured: ${why}`);
  };
  if (availableParallelism() < 2) return refuse("it needs 2 CPUs");
  const redisServers: RedisServer[] = [];
  const workers: Worker<ClientsApi | PublisherApi>[] = [];
  const sides: Side[] = [];
  try {
    for (const run of runs) {
      const redis = await startRedis();
      redisServers.push(redis);
      const cluster = await startCluster(run.stack, 1, redis.url);
      const load = { clients: [startWorker<ClientsApi>("load/clients")] as [Worker<ClientsApi>], publisher: startWorker<PublisherApi>("load/publisher") };
      workers.push(load.clients[0], load.publisher);
      sides.push({ stack: run.stack, run, redis, cluster, load });
      await load.publisher.call("open", { stack: run.stack, redisUrl: redis.url, httpUrls: cluster.urls, apiKey: BENCH_API_KEY });
    }
    for (const side of sides) {
      const loadPids = [side.redis.pid, side.load.clients[0].child.pid, side.load.publisher.child.pid];
      const unpinned = side.cluster.pin(NODE_CPU) ?? loadPids.map((pid) => pinToCpus(pid, LOAD_CPU)).find((why) => why !== null) ?? null;
      if (unpinned !== null) return refuse(`could not bind the processes to cores (${unpinned})`);
    }
    // Odd rounds start with the first stack, even ones with the other.
    const turns = (batch: number) => ((batch + round) % 2 === 0 ? sides : [...sides].reverse());
    // With --profile, each node's profile spans both phases; it is idle while the other node takes its turn.
    const { directory } = profiling;
    if (directory !== null) await Promise.all(sides.map((side) => side.cluster.profileStart(profiling.allocations)));
    await storm(sides, sizes.pinnedSockets, turns, progress);
    await targeted(sides, sizes.burstMessages, turns, progress);
    if (directory !== null) await Promise.all(sides.map((side) => side.cluster.profileStop(`${directory}/pinned-${side.stack}`)));
  } finally {
    await Promise.allSettled(workers.map((worker) => worker.call("close", {}, 30_000)));
    await Promise.all(workers.map((worker) => worker.stop()));
    await Promise.all(sides.map((side) => side.cluster.stop()));
    await Promise.all(redisServers.map((redis) => redis.stop()));
  }
}

async function storm(sides: Side[], count: number, turns: (batch: number) => Side[], progress: Progress): Promise<void> {
  const warmUp = Math.ceil(count / WARM_UP_SHARE);
  const perBatch = Math.ceil(count / BATCHES);
  const connect = async (side: Side, firstUid: number, share: number) => {
    const pool = side.load.clients[0];
    // Tokens are signed before the node's CPU time is read: signing is the client's work.
    await pool.call("prepare", { stack: side.stack, urls: side.cluster.urls, firstUid, count: share, site: SITE, secret: BENCH_SECRET, concurrency: CONCURRENCY }, 300_000);
    const [before] = await side.cluster.usage();
    const reply = await pool.call("connect", {}, 300_000);
    const [after] = await side.cluster.usage();
    return { ...reply, cpuUs: after!.cpuUs - before!.cpuUs };
  };
  progress.line(`${sides.map((side) => side.stack).join(" and ")}: ${PINNED_STORM}, ${count} sockets each in ${BATCHES} batches by turns, after ${warmUp} unmeasured`);
  // The first handshakes run while V8 is still compiling the path: not counted, as for each burst.
  const totals = new Map(sides.map((side) => [side, { connected: 0, failed: 0, cpuUs: 0, errors: [] as string[] }]));
  for (const side of sides) {
    const warm = await connect(side, 0, warmUp);
    totals.get(side)!.failed += warm.failed;
  }
  for (let batch = 0, firstUid = warmUp; firstUid < warmUp + count; batch++, firstUid += perBatch) {
    const share = Math.min(perBatch, warmUp + count - firstUid);
    for (const side of turns(batch)) {
      const reply = await connect(side, firstUid, share);
      const total = totals.get(side)!;
      total.connected += reply.connected;
      total.failed += reply.failed;
      total.cpuUs += reply.cpuUs;
      total.errors.push(...reply.errors);
    }
  }
  for (const side of sides) {
    const total = totals.get(side)!;
    if (total.failed > 0) side.run.problems.push(`${side.stack} ${PINNED_STORM}: ${total.failed} sockets failed to connect (${total.errors.slice(0, 5).join("; ")})`);
    side.run.record(PINNED_STORM, "server CPU per connection", "µs", total.cpuUs / total.connected, total.failed === 0 && total.connected === count);
    side.run.users = total.connected === count ? warmUp + count : 0;
  }
}

async function targeted(sides: Side[], messages: number, turns: (batch: number) => Side[], progress: Progress): Promise<void> {
  const perBatch = Math.ceil(messages / BATCHES);
  const bar = progress.bar(`${sides.map((side) => side.stack).join(" and ")}: ${PINNED_TARGETED}, ${messages} messages each in ${BATCHES} bursts by turns`, messages * sides.length);
  let done = 0;
  const totals = new Map(sides.map((side) => [side, { delivered: 0, cpuUs: 0, complete: side.run.users > 0 }]));
  for (const side of sides) {
    if (side.run.users === 0) continue;
    const warmUp = Math.ceil(messages / WARM_UP_SHARE);
    await side.run.publishAndWait(side.cluster, side.load, { mode: "emitter", target: "user", count: warmUp, ratePerSecond: null }, warmUp);
  }
  for (let batch = 0, sent = 0; sent < messages; batch++, sent += perBatch) {
    const count = Math.min(perBatch, messages - sent);
    for (const side of turns(batch)) {
      const total = totals.get(side)!;
      if (!total.complete) continue;
      const run = await side.run.publishAndWait(side.cluster, side.load, { mode: "emitter", target: "user", count, ratePerSecond: null }, count);
      total.delivered += run.delivered;
      total.cpuUs += run.cpuUs;
      total.complete &&= run.delivered === count && run.published === count;
      done += count;
      bar.update(done);
    }
  }
  bar.stop();
  for (const side of sides) {
    const total = totals.get(side)!;
    side.run.record(`${PINNED_TARGETED}, burst`, "server CPU per delivery", "µs", total.delivered === 0 ? null : total.cpuUs / total.delivered, total.complete);
  }
}

import type { Identity } from "@switchboard/protocol";
import type { PresenceShare } from "./connection.js";
import type { FastifyBaseLogger } from "fastify";
import type { NodeInfo, PresenceCrossing, PresenceDelta, SharedState } from "./state.js";

export interface PresenceDeps {
  state: SharedState;
  logger: FastifyBaseLogger;
  info: () => NodeInfo;
  /** What every authenticated socket of this node adds to presence now: what a resync writes in full. */
  shares: () => Iterable<PresenceShare>;
  /** Told of users whose first socket on a site arrived, or whose last one left. */
  onCrossings: (crossings: PresenceCrossing[]) => void;
  /** False when nothing listens to `onCrossings` (PRESENCE_EVENTS off): the writes then skip them. */
  reportCrossings: boolean;
  /** Whether the shared state can be written now (Redis is there). */
  ready: () => boolean;
  /** Told of each write or heartbeat that failed (switchboard_presence_write_failures_total). */
  writeFailed: () => void;
  /** False with PRESENCE=0: nothing is counted; the node still beats, for /api/v1/info. */
  countSockets: boolean;
  /** How long changes are batched before they are written. */
  flushMs: number;
  /** How often the node says it is alive and looks for nodes that are not. */
  heartbeatMs: number;
  nodeTtlMs: number;
}

/** The longest wait between attempts to write presence after failures in a row. */
const RETRY_MAX_MS = 10_000;

/**
 * This node's share of cluster-wide presence. Sockets coming and going are counted in a batch of
 * changes, written `flushMs` after the first of them (one atomic script per batch) so a connect storm
 * costs a few writes, not one per socket, and a node whose sockets stay put writes nothing. Whenever
 * the broker becomes ready the node takes back whatever it wrote before and writes its whole share
 * again, read from its sockets (`shares`) rather than kept in a copy of its own, so an outage or a
 * Redis restart leaves nothing counted twice or lost. A node that stops takes its share back; one
 * that crashes has it taken back by the others once its heartbeat is older than `nodeTtlMs`.
 */
export class PresenceTracker {
  /** What changed since the last write. */
  private pending = new Tally();
  private resyncNeeded = true;
  private queue: Promise<void> = Promise.resolve();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Armed by the first change after a write, so a node whose sockets do not change never wakes for it. */
  private flushTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /**
   * Writes failed in a row. Each failure has the next write rewrite the node's whole share, so
   * the wait doubles with each one: a Redis that keeps refusing (out of memory, a key of the wrong
   * type) must not be sent every socket's presence every flushMs.
   */
  private failures = 0;

  constructor(
    private readonly node: string,
    private readonly deps: PresenceDeps,
  ) {}

  start(): void {
    this.heartbeatTimer = setInterval(() => this.schedule(() => this.heartbeat()), this.deps.heartbeatMs);
    this.heartbeatTimer.unref();
    this.armFlush();
  }

  /** The broker became ready: write the node's whole share again. */
  resync(): void {
    this.resyncNeeded = true;
    this.schedule(() => this.flush());
    this.schedule(() => this.heartbeat());
  }

  socketAdmitted(identity: Identity): void {
    this.change("user", identity.user, identity.user, 1);
    if (identity.site !== null) this.change("site", identity.site, identity.user, 1);
  }

  socketLeft(identity: Identity, rooms: Iterable<string>): void {
    this.change("user", identity.user, identity.user, -1);
    if (identity.site !== null) this.change("site", identity.site, identity.user, -1);
    for (const room of rooms) this.change("room", room, identity.user, -1);
  }

  roomJoined(identity: Identity, room: string): void {
    this.change("room", room, identity.user, 1);
  }

  roomLeft(identity: Identity, room: string): void {
    this.change("room", room, identity.user, -1);
  }

  /** Stops the timers and takes this node's share back, as a stopping node does. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.schedule(async () => {
      if (!this.deps.ready()) return;
      const crossings = await this.deps.state.takeBackNode(this.node);
      this.deps.onCrossings(crossings);
    });
    await this.queue;
  }

  private change(kind: PresenceDelta["kind"], key: string, user: string, delta: number): void {
    if (!this.deps.countSockets) return;
    this.pending.add(kind, key, user, delta);
    this.armFlush();
  }

  /** A write in `delayMs` (`flushMs` by default), unless one is already due. */
  private armFlush(delayMs = this.deps.flushMs): void {
    if (this.flushTimer !== null || this.stopped) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.schedule(() => this.flush());
    }, delayMs);
    this.flushTimer.unref();
  }

  /** One state operation at a time: a flush and a resync never interleave. */
  private schedule(operation: () => Promise<void>): void {
    this.queue = this.queue.then(operation).catch((err: unknown) => {
      // Redis went away or refused mid-write: what was written is unknown, so everything is written again.
      this.resyncNeeded = true;
      this.failures++;
      this.deps.writeFailed();
      const retryInMs = Math.min(this.deps.flushMs * 2 ** this.failures, RETRY_MAX_MS);
      this.armFlush(retryInMs);
      const fields = { err: err instanceof Error ? err.message : String(err), failures: this.failures, retryInMs };
      // Once per run of failures: a Redis that is away is logged by the broker already.
      if (this.failures === 1) this.deps.logger.warn(fields, "presence not written; will write it again");
      else this.deps.logger.debug(fields, "presence not written; will write it again");
    });
  }

  private async flush(): Promise<void> {
    if (!this.deps.ready()) {
      // Written in full once the broker is ready again (resync); until then changes only add up.
      this.resyncNeeded = true;
      return;
    }
    let deltas: PresenceDelta[];
    const crossings: PresenceCrossing[] = [];
    if (this.resyncNeeded) {
      this.resyncNeeded = false;
      crossings.push(...(await this.deps.state.takeBackNode(this.node)));
      // Read together, after the take-back: a socket that came or went while it ran is in the whole
      // share written now, and not in a batch of changes written again later.
      this.pending = new Tally();
      deltas = this.deps.countSockets ? this.wholeShare() : [];
    } else {
      if (this.pending.empty()) return;
      deltas = this.pending.deltas();
      this.pending = new Tally();
    }
    crossings.push(...(await this.deps.state.applyPresence(this.node, deltas, this.deps.reportCrossings)));
    if (this.failures > 0) this.deps.logger.info({ failures: this.failures }, "presence written again");
    this.failures = 0;
    // A user who left and came back within one resync is neither: report only real changes.
    this.deps.onCrossings(netCrossings(crossings));
  }

  private wholeShare(): PresenceDelta[] {
    const whole = new Tally();
    for (const { identity, rooms } of this.deps.shares()) {
      whole.add("user", identity.user, identity.user, 1);
      if (identity.site !== null) whole.add("site", identity.site, identity.user, 1);
      for (const room of rooms) whole.add("room", room, identity.user, 1);
    }
    return whole.deltas();
  }

  private async heartbeat(): Promise<void> {
    if (!this.deps.ready()) return;
    await this.deps.state.heartbeat(this.deps.info(), this.deps.nodeTtlMs);
    for (const dead of await this.deps.state.deadNodes()) {
      if (dead === this.node) continue;
      const crossings = await this.deps.state.takeBackNode(dead);
      this.deps.logger.warn({ deadNode: dead, offline: crossings.length }, "took back the presence of a node whose heartbeat stopped");
      this.deps.onCrossings(crossings);
    }
  }
}

/**
 * Socket counts by kind, key and user, kept compact: the user kind (whose key is the user) is a
 * flat map of numbers, and sites and rooms a map of users each.
 */
class Tally {
  private readonly users = new Map<string, number>();
  private readonly keyed = { site: new Map<string, Map<string, number>>(), room: new Map<string, Map<string, number>>() };

  add(kind: PresenceDelta["kind"], key: string, user: string, delta: number): void {
    if (kind === "user") {
      bump(this.users, user, delta);
      return;
    }
    const byKey = this.keyed[kind];
    let counts = byKey.get(key);
    if (!counts) {
      counts = new Map();
      byKey.set(key, counts);
    }
    bump(counts, user, delta);
    if (counts.size === 0) byKey.delete(key);
  }

  empty(): boolean {
    return this.users.size === 0 && this.keyed.site.size === 0 && this.keyed.room.size === 0;
  }

  deltas(): PresenceDelta[] {
    const deltas: PresenceDelta[] = [];
    // forEach rather than for…of over entries: no [key, value] pair is made per change, and in a loop
    // over a flush's changes it is about ten times faster.
    this.users.forEach((delta, user) => {
      deltas.push({ kind: "user", key: user, user, delta });
    });
    for (const kind of ["site", "room"] as const) {
      this.keyed[kind].forEach((counts, key) => {
        counts.forEach((delta, user) => {
          deltas.push({ kind, key, user, delta });
        });
      });
    }
    return deltas;
  }
}

function bump(counts: Map<string, number>, key: string, delta: number): void {
  const count = (counts.get(key) ?? 0) + delta;
  if (count === 0) counts.delete(key);
  else counts.set(key, count);
}

function netCrossings(crossings: PresenceCrossing[]): PresenceCrossing[] {
  const last = new Map<string, PresenceCrossing & { first: boolean }>();
  for (const crossing of crossings) {
    const id = `${crossing.site}\u0000${crossing.user}`;
    const earlier = last.get(id);
    last.set(id, { site: crossing.site, user: crossing.user, online: crossing.online, first: earlier ? earlier.first : !crossing.online });
  }
  // Online then offline (or the reverse) within one batch cancel out.
  return [...last.values()]
    .filter((crossing) => crossing.online !== crossing.first)
    .map(({ site, user, online }) => ({ site, user, online }));
}

import type { Identity, LifecycleRecord, LifecycleType } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { Metrics } from "./metrics.js";
import type { SharedState } from "./state.js";

/** How often buffered records are written, and how many go in one write. */
const FLUSH_MS = 100;
const BATCH = 1000;
/** Records kept while Redis is away; beyond this (and a tenth more) the oldest are dropped (and counted). */
const BUFFER_LIMIT = 10_000;

export interface LifecycleDeps {
  state: SharedState;
  nodeId: string;
  maxLen: number;
  metrics: Metrics;
  logger: FastifyBaseLogger;
  /** Whether Redis can be written now. */
  ready(): boolean;
  /** A node silent this long (no records, no heartbeat) is gone (PRESENCE_NODE_TTL_MS); looked for every third of it. */
  nodeTtlMs: number;
}

/**
 * LIFECYCLE_EVENTS: sockets connecting, disconnecting, subscribing and unsubscribing, as records in
 * one Redis Stream that services read with consumer groups of their own (so one that was down catches
 * up). Records are buffered and written in batches every FLUSH_MS — a connect storm costs a few
 * writes, not one per socket — and kept while Redis is away, up to BUFFER_LIMIT.
 */
export class LifecycleLog {
  private buffer: LifecycleRecord[] = [];
  private flushing: Promise<void> | null = null;
  private previousRunClaimed = false;
  /** Since when Redis has been reachable without a break; null while it is not. */
  private readySince: number | null = null;
  private readonly timers: NodeJS.Timeout[];

  constructor(private readonly deps: LifecycleDeps) {
    this.timers = [
      setInterval(() => void this.flush(), FLUSH_MS),
      setInterval(() => void this.sweep(), Math.max(100, Math.floor(deps.nodeTtlMs / 3))),
    ];
    for (const timer of this.timers) timer.unref();
  }

  record(type: LifecycleType, identity: Identity, socket: string, detail: { room?: string; reason?: string } = {}): void {
    this.push({
      type,
      user: identity.user,
      site: identity.site ?? "",
      socket,
      node: this.deps.nodeId,
      room: detail.room ?? "",
      reason: detail.reason ?? "",
      time: Date.now(),
    });
  }

  /** Writes what is buffered (as far as Redis lets it) and stops. */
  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await this.flush();
  }

  /**
   * Looks for nodes gone silent (no records, no heartbeat) that left a list of sockets, and reports
   * those sockets disconnected; of the nodes looking, the first to claim a list reports it. A claim
   * that fails is tried again at the next look. Nothing is claimed until Redis has been reachable for
   * a whole PRESENCE_NODE_TTL_MS, so that after an outage live nodes have beaten again first.
   */
  private async sweep(): Promise<void> {
    if (!this.deps.ready()) {
      this.readySince = null;
      return;
    }
    this.readySince ??= Date.now();
    if (Date.now() - this.readySince < this.deps.nodeTtlMs) return;
    try {
      for (const node of await this.deps.state.goneLifecycleNodes(this.deps.nodeTtlMs)) {
        if (node === this.deps.nodeId) continue;
        const records = await this.goneRecords(node);
        for (const record of records) this.push(record);
        if (records.length > 0)
          this.deps.logger.info(
            { goneNode: node, sockets: records.length },
            "reported the sockets of a node that went silent as disconnected",
          );
      }
    } catch (err) {
      this.deps.logger.debug(
        { err: err instanceof Error ? err.message : String(err) },
        "could not look for gone nodes' sockets; will look again",
      );
    }
  }

  private push(record: LifecycleRecord): void {
    this.buffer.push(record);
    // Trimmed a tenth at a time: while Redis is away, each new record would otherwise shift the whole buffer.
    if (this.buffer.length >= BUFFER_LIMIT + BUFFER_LIMIT / 10) {
      const dropped = this.buffer.length - BUFFER_LIMIT;
      this.buffer.splice(0, dropped);
      this.deps.metrics.lifecycleDropped(dropped);
    }
  }

  private flush(): Promise<void> {
    this.flushing ??= this.writeAll().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async goneRecords(node: string): Promise<LifecycleRecord[]> {
    const sockets = await this.deps.state.claimLifecycleSockets(node);
    const time = Date.now();
    return sockets.map(({ socket, user, site }) => ({
      type: "disconnected",
      user,
      site,
      socket,
      node,
      room: "",
      reason: "node_gone",
      time,
    }));
  }

  private async writeAll(): Promise<void> {
    if (!this.previousRunClaimed && this.deps.ready()) {
      // A node restarted under the same NODE_ID before the others noticed it was gone: the sockets
      // of its previous run are reported first, before this run's records list sockets again.
      const records = await this.goneRecords(this.deps.nodeId).catch(() => null);
      if (records === null) return;
      this.previousRunClaimed = true;
      this.buffer.unshift(...records);
    }
    while (this.buffer.length > 0 && this.deps.ready()) {
      const batch = this.buffer.splice(0, BATCH);
      try {
        await this.deps.state.writeLifecycle(batch, this.deps.maxLen);
      } catch (err) {
        // Redis went away mid-write: the batch goes back in front, and is written again later.
        this.buffer.unshift(...batch);
        this.deps.logger.debug({ err: err instanceof Error ? err.message : String(err) }, "lifecycle records not written yet");
        return;
      }
    }
  }
}

import type { AdapterSubscriber } from "./adapter-guard.js";

type Listener = (message: Buffer, channel: Buffer) => unknown;
type Room = string | number;

/** What of the adapter the room channels follow: its room events, and its sockets' own rooms. */
export interface RoomSource {
  on(event: "create-room" | "delete-room", listener: (room: Room) => void): unknown;
  sids: ReadonlyMap<string, unknown>;
}

/**
 * Subscribes a node to the broadcast channels of the rooms it holds, rather than to every room's.
 *
 * @socket.io/redis-adapter subscribes each node to the pattern `socket.io#/#*`: every node receives,
 * and skips, every message for a room it does not hold, so a message costs more with each node.
 * Given to the adapter as its subscriber, this turns that pattern into the channel `socket.io#/#`
 * (broadcasts to several rooms or to all) plus one channel `socket.io#/#<room>#` for each room
 * with a socket on this node, subscribed when the room is created here and dropped when it empties.
 * Publishers of the adapter format already name a single room in the channel, so nothing changes
 * for them. A socket's own room (its id) gets no channel, as in the sharded adapter's "dynamic"
 * mode: a message for one socket id travels on `socket.io#/#`.
 *
 * One SUBSCRIBE is in flight at a time: what changes meanwhile goes in the next one, sent as soon as
 * Redis answered, so a connect storm costs a command per round trip rather than one per socket, and
 * a lone socket waits for no timer. Whoever must know that a room's messages arrive waits for
 * `settled()`: the gateway welcomes a socket, and acknowledges a subscription, only then.
 */
export class RoomChannels implements AdapterSubscriber {
  /** The adapter's broadcast channel, `socket.io#/#`, once it subscribed to its pattern. */
  private prefix: string | null = null;
  private listener: Listener | null = null;
  /** The room channels asked of the subscriber. */
  private readonly subscribed = new Set<string>();
  /** Rooms created (true) or emptied (false) since the last flush. */
  private readonly changes = new Map<string, boolean>();
  /** A flush is queued for the next turn of the event loop. */
  private flushQueued = false;
  /** Settles the next flush's subscriptions; made only when somebody waits for them. */
  private resolveQueued: ((settles: void | PromiseLike<void>) => void) | null = null;
  private queued: Promise<void> | null = null;
  /** The last SUBSCRIBE Redis has not answered yet. */
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly subscriber: AdapterSubscriber,
    private readonly onFailure: (err: unknown) => void,
  ) {}

  /** Follows the adapter's rooms; called once, from the adapter's constructor. */
  follow(adapter: RoomSource): void {
    // A socket is still in `sids` as its own room is created and deleted.
    adapter.on("create-room", (room) => {
      if (!adapter.sids.has(String(room))) this.change(String(room), true);
    });
    adapter.on("delete-room", (room) => {
      if (!adapter.sids.has(String(room))) this.change(String(room), false);
    });
  }

  /** How many room channels this node holds. */
  get size(): number {
    return this.subscribed.size;
  }

  /**
   * Null when Redis holds every room channel asked for so far; otherwise a promise settled once it
   * does, or once the subscriber gave up (Redis away: then nothing reaches the node anyway, and the
   * channels are subscribed again when it returns).
   */
  settled(): Promise<void> | null {
    if (this.changes.size === 0) return this.inFlight;
    // Resolved with the flush's SUBSCRIBE once it is sent, the promise then settles with its answer.
    this.queued ??= new Promise<void>((resolve) => {
      this.resolveQueued = resolve;
    });
    return this.queued;
  }

  pSubscribe(patterns: string | string[], listener: Listener, bufferMode: true): Promise<void> {
    const list = typeof patterns === "string" ? [patterns] : patterns;
    const broadcastPattern = list.length === 1 && list[0]?.endsWith("#*") ? list[0] : null;
    if (broadcastPattern === null || this.prefix !== null) return this.subscriber.pSubscribe(patterns, listener, bufferMode);
    this.prefix = broadcastPattern.slice(0, -1);
    this.listener = listener;
    return this.subscriber.subscribe(this.prefix, listener, bufferMode);
  }

  pUnsubscribe(patterns: string | string[], listener: Listener | undefined, bufferMode: true): Promise<void> {
    const list = typeof patterns === "string" ? [patterns] : patterns;
    if (this.prefix === null || list.length !== 1 || list[0] !== `${this.prefix}*`)
      return this.subscriber.pUnsubscribe(patterns, listener, bufferMode);
    // The adapter closes: its channel and every room channel go.
    const channels = [this.prefix, ...this.subscribed];
    this.subscribed.clear();
    this.changes.clear();
    this.releaseWaiters(null);
    this.prefix = null;
    this.listener = null;
    return this.subscriber.unsubscribe(channels, listener, bufferMode);
  }

  subscribe(channels: string | string[], listener: Listener, bufferMode: true): Promise<void> {
    return this.subscriber.subscribe(channels, listener, bufferMode);
  }

  unsubscribe(channels: string | string[], listener: Listener | undefined, bufferMode: true): Promise<void> {
    return this.subscriber.unsubscribe(channels, listener, bufferMode);
  }

  on(event: "error", listener: (err: Error) => void): unknown {
    return this.subscriber.on(event, listener);
  }

  off(event: "error", listener: (err: Error) => void): unknown {
    return this.subscriber.off(event, listener);
  }

  listenerCount(event: string): number {
    return this.subscriber.listenerCount(event);
  }

  private change(room: string, held: boolean): void {
    if (this.prefix === null) return;
    this.changes.set(room, held);
    this.queueFlush();
  }

  /** Flushes in the next turn, unless a SUBSCRIBE is in flight: its answer flushes what came meanwhile. */
  private queueFlush(): void {
    if (this.flushQueued || this.inFlight !== null) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    const { prefix, listener } = this;
    if (prefix === null || listener === null) {
      this.changes.clear();
      this.releaseWaiters(null);
      return;
    }
    const added: string[] = [];
    const removed: string[] = [];
    // forEach rather than for…of over entries: no [room, held] pair is made per change (this runs for
    // every room a storm of connections creates, and is ten times faster so in a loop).
    this.changes.forEach((held, room) => {
      const channel = `${prefix}${room}#`;
      // A room emptied and created again before the flush (a user's only socket reconnecting) changes nothing.
      if (held === this.subscribed.has(channel)) return;
      if (held) {
        this.subscribed.add(channel);
        added.push(channel);
      } else {
        this.subscribed.delete(channel);
        removed.push(channel);
      }
    });
    this.changes.clear();
    if (removed.length > 0) this.subscriber.unsubscribe(removed, listener, true).catch(this.onFailure);
    if (added.length > 0) {
      // Redis answers a connection's commands in order: once this is answered, every earlier one was.
      const answered: Promise<void> = this.subscriber
        .subscribe(added, listener, true)
        .catch(this.onFailure)
        .then(() => {
          this.inFlight = null;
          if (this.changes.size > 0) this.queueFlush();
        });
      this.inFlight = answered;
    }
    this.releaseWaiters(this.inFlight);
  }

  /** Hands whoever waits for the changes just flushed what settles them (nothing: at once). */
  private releaseWaiters(settles: Promise<void> | null): void {
    this.resolveQueued?.(settles ?? undefined);
    this.resolveQueued = null;
    this.queued = null;
  }
}

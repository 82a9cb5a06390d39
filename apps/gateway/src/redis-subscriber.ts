import type { createClient } from "@redis/client";
import type { AdapterSubscriber } from "./adapter-guard.js";

export type RedisClient = ReturnType<typeof createClient>;
type Listener = (message: Buffer, channel: Buffer) => unknown;

/**
 * The node's Redis subscriber connection, replaceable while the node runs.
 *
 * Subscriptions are recorded here and sent to a client only once that client is ready: node-redis v4
 * both replays SUBSCRIBE commands queued while it was connecting and resubscribes from its own
 * state, so the replies outnumber the commands and its reply queue throws, ending the process.
 * After a reconnection of the same client node-redis resubscribes by itself; a replacement client
 * (see `replace`) is given every recorded subscription once it is ready.
 */
export class ResilientSubscriber implements AdapterSubscriber {
  private client: RedisClient;
  /** Whether the current client has been given the recorded subscriptions at least once. */
  private applied = false;
  private readonly recorded: Subscriptions = { channels: new Map(), patterns: new Map() };
  /** What the current client was sent; node-redis keeps these across its own reconnections. */
  private sent: Subscriptions = { channels: new Map(), patterns: new Map() };
  /**
   * What was removed while the current client was away: node-redis resubscribes to it from its own
   * state when it returns, so it is unsubscribed then (a node drops room channels at any time).
   */
  private dropped = { channels: new Set<string>(), patterns: new Set<string>() };
  private readonly errorListeners = new Set<(err: Error) => void>();

  constructor(
    private readonly createSubscriber: () => RedisClient,
    private readonly onApplyFailure: (err: unknown) => void,
    /** Called whenever the current client holds every subscription again. */
    private readonly onApplied: () => void = () => {},
  ) {
    this.client = this.start();
  }

  /** True when the current client is connected and holds every subscription. */
  isReady(): boolean {
    return this.client.isReady && this.applied;
  }

  subscribe(channels: string | string[], listener: Listener): Promise<void> {
    return this.add("channels", channels, listener);
  }

  pSubscribe(patterns: string | string[], listener: Listener): Promise<void> {
    return this.add("patterns", patterns, listener);
  }

  unsubscribe(channels: string | string[], listener: Listener | undefined): Promise<void> {
    return this.remove("channels", channels, listener);
  }

  pUnsubscribe(patterns: string | string[], listener: Listener | undefined): Promise<void> {
    return this.remove("patterns", patterns, listener);
  }

  on(event: "error", listener: (err: Error) => void): this {
    this.errorListeners.add(listener);
    this.client.on(event, listener);
    return this;
  }

  off(event: "error", listener: (err: Error) => void): this {
    this.errorListeners.delete(listener);
    this.client.off(event, listener);
    return this;
  }

  listenerCount(event: string): number {
    return this.client.listenerCount(event);
  }

  /** The current client, for connection-state events. */
  get current(): RedisClient {
    return this.client;
  }

  /**
   * Swaps in a new connection with every subscription, then drops the old one. For a subscriber
   * that looks healthy but receives nothing; messages published in between may be lost.
   */
  replace(): RedisClient {
    const old = this.client;
    this.onApplied();
    this.client = this.start();
    old.disconnect().catch(() => {});
    return this.client;
  }

  async close(): Promise<void> {
    const client = this.client;
    if (!client.isOpen) return;
    await (client.isReady ? client.quit() : client.disconnect()).catch(() => client.disconnect().catch(() => {}));
  }

  private start(): RedisClient {
    const client = this.createSubscriber();
    this.applied = false;
    this.sent = { channels: new Map(), patterns: new Map() };
    this.dropped = { channels: new Set(), patterns: new Set() };
    for (const listener of this.errorListeners) client.on("error", listener);
    // Every ready: the first connection, or a reconnection after which something was added meanwhile.
    client.on("ready", () => {
      if (this.client !== client) return;
      this.unsubscribeDropped(client);
      this.sendMissing(client).then(
        () => {
          if (this.client !== client) return;
          this.applied = true;
          this.onApplied();
        },
        (err: unknown) => this.onApplyFailure(err),
      );
    });
    client.connect().catch(() => {});
    return client;
  }

  /**
   * Sends the current client the recorded subscriptions it does not hold yet, of `names` or of all:
   * one command per kind and listener, however many names (a node may hold thousands of room channels).
   */
  private sendMissing(client: RedisClient, only?: { kind: keyof Subscriptions; names: readonly string[] }): Promise<unknown> {
    const pending: Promise<void>[] = [];
    for (const kind of only ? [only.kind] : (["channels", "patterns"] as const)) {
      const missing = new Map<Listener, string[]>();
      for (const name of only ? only.names : this.recorded[kind].keys()) {
        for (const listener of listenersOf(this.recorded[kind].get(name))) {
          if (holds(this.sent[kind].get(name), listener)) continue;
          mark(this.sent[kind], name, listener);
          const names = missing.get(listener);
          if (names) names.push(name);
          else missing.set(listener, [name]);
        }
      }
      for (const [listener, names] of missing) {
        pending.push(kind === "channels" ? client.subscribe(names, listener, true) : client.pSubscribe(names, listener, true));
      }
    }
    return Promise.all(pending);
  }

  private add(kind: keyof Subscriptions, names: string | string[], listener: Listener): Promise<void> {
    const list = typeof names === "string" ? [names] : names;
    for (const name of list) mark(this.recorded[kind], name, listener);
    // A client that is not ready would queue the command and replay it twice: it gets it on its next ready.
    if (!this.client.isReady) return Promise.resolve();
    return this.sendMissing(this.client, { kind, names: list }).then(
      () => {},
      (err: unknown) => this.onApplyFailure(err),
    );
  }

  private unsubscribeDropped(client: RedisClient): void {
    for (const kind of ["channels", "patterns"] as const) {
      const stale = [...this.dropped[kind]].filter((name) => !this.recorded[kind].has(name));
      this.dropped[kind].clear();
      if (stale.length === 0) continue;
      (kind === "channels" ? client.unsubscribe(stale) : client.pUnsubscribe(stale)).catch((err: unknown) => this.onApplyFailure(err));
    }
  }

  private remove(kind: keyof Subscriptions, names: string | string[], listener: Listener | undefined): Promise<void> {
    const list = typeof names === "string" ? [names] : names;
    const away = !this.client.isReady;
    for (const table of [this.recorded[kind], this.sent[kind]]) {
      for (const name of list) {
        if (away && table === this.sent[kind] && table.has(name)) this.dropped[kind].add(name);
        unmark(table, name, listener);
      }
    }
    if (away) return Promise.resolve();
    const client = this.client;
    return (kind === "channels" ? client.unsubscribe(list, listener, true) : client.pUnsubscribe(list, listener, true)).catch(() => {});
  }
}

/**
 * The listeners of each name: one listener as itself, several in a set. Nearly every name has one
 * (a node may hold a channel for each of thousands of rooms), and a set each would cost memory per room.
 */
type Listeners = Listener | Set<Listener>;

interface Subscriptions {
  channels: Map<string, Listeners>;
  patterns: Map<string, Listeners>;
}

function listenersOf(listeners: Listeners | undefined): Iterable<Listener> {
  if (listeners === undefined) return [];
  return listeners instanceof Set ? listeners : [listeners];
}

function holds(listeners: Listeners | undefined, listener: Listener): boolean {
  return listeners === listener || (listeners instanceof Set && listeners.has(listener));
}

function mark(table: Map<string, Listeners>, name: string, listener: Listener): void {
  const listeners = table.get(name);
  if (listeners === undefined) table.set(name, listener);
  else if (listeners instanceof Set) listeners.add(listener);
  else if (listeners !== listener) table.set(name, new Set([listeners, listener]));
}

/** Takes `listener` off `name`, or every listener when there is none. */
function unmark(table: Map<string, Listeners>, name: string, listener: Listener | undefined): void {
  const listeners = table.get(name);
  if (listener === undefined || listeners === listener) table.delete(name);
  else if (listeners instanceof Set) {
    listeners.delete(listener);
    if (listeners.size === 0) table.delete(name);
  }
}

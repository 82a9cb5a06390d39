import type { createClient } from "redis";
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
    for (const listener of this.errorListeners) client.on("error", listener);
    // Every ready: the first connection, or a reconnection after which something was added meanwhile.
    client.on("ready", () => {
      if (this.client !== client) return;
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

  /** Sends the current client every recorded subscription it does not hold yet. */
  private sendMissing(client: RedisClient): Promise<unknown> {
    const pending: Promise<void>[] = [];
    for (const kind of ["channels", "patterns"] as const) {
      for (const [name, listeners] of this.recorded[kind]) {
        for (const listener of listeners) {
          if (this.sent[kind].get(name)?.has(listener)) continue;
          mark(this.sent[kind], name, listener);
          pending.push(kind === "channels" ? client.subscribe(name, listener, true) : client.pSubscribe(name, listener, true));
        }
      }
    }
    return Promise.all(pending);
  }

  private add(kind: keyof Subscriptions, names: string | string[], listener: Listener): Promise<void> {
    for (const name of typeof names === "string" ? [names] : names) mark(this.recorded[kind], name, listener);
    // A client that is not ready would queue the command and replay it twice: it gets it on its next ready.
    if (!this.client.isReady) return Promise.resolve();
    return this.sendMissing(this.client).then(
      () => {},
      (err: unknown) => this.onApplyFailure(err),
    );
  }

  private remove(kind: keyof Subscriptions, names: string | string[], listener: Listener | undefined): Promise<void> {
    const list = typeof names === "string" ? [names] : names;
    for (const table of [this.recorded[kind], this.sent[kind]]) {
      for (const name of list) {
        const listeners = table.get(name);
        if (listener) listeners?.delete(listener);
        if (!listener || listeners?.size === 0) table.delete(name);
      }
    }
    // Only the adapter's close unsubscribes; a client that is not connected is about to be closed anyway.
    if (!this.client.isReady) return Promise.resolve();
    const client = this.client;
    return (kind === "channels" ? client.unsubscribe(list, listener, true) : client.pUnsubscribe(list, listener, true)).catch(() => {});
  }
}

interface Subscriptions {
  channels: Map<string, Set<Listener>>;
  patterns: Map<string, Set<Listener>>;
}

function mark(table: Map<string, Set<Listener>>, name: string, listener: Listener): void {
  const listeners = table.get(name) ?? new Set<Listener>();
  table.set(name, listeners.add(listener));
}

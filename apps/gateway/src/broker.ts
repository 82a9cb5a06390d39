import { RedisAdapter } from "@socket.io/redis-adapter";
import { RAW_FRAME_CHANNEL, arrayFrameProblem } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import { decode as decodeMsgpack, encode as encodeMsgpack } from "notepack.io";
import { createClient } from "redis";
import { Adapter, type BroadcastOptions } from "socket.io-adapter";
import type { Namespace } from "socket.io";
import type { Metrics } from "./metrics.js";
import { exceptUnauthenticated } from "./rooms.js";

/** The Socket.IO adapter class for a namespace (Socket.IO calls it with `new`). */
export type AdapterFactory = typeof Adapter;

/** Everything the gateway does with Redis, behind one small interface. */
export interface Broker {
  mode: "redis" | "memory";
  adapter: AdapterFactory;
  /** Calls `handler` with each frame published on the raw channel (never in memory mode). */
  onRawFrame(handler: (frame: Buffer) => void): Promise<void>;
  /** True when Redis is connected and subscribed (always true in memory mode). */
  ready(): boolean;
  close(): Promise<void>;
}

export interface BrokerDeps {
  logger: FastifyBaseLogger;
  metrics: Metrics;
}

type RedisClient = ReturnType<typeof createClient>;
type BufferListener = (message: Buffer, channel: Buffer) => unknown;

/** Thrown by the guarded parser for a frame it has already logged and counted. */
class DroppedFrame extends Error {}

export function createBroker(redisUrl: string | null, deps: BrokerDeps): Broker {
  if (redisUrl === null) {
    return {
      mode: "memory",
      adapter: LocalAdapter,
      onRawFrame: async () => {},
      ready: () => true,
      close: async () => {},
    };
  }
  const { logger, metrics } = deps;
  const pub = createClient({ url: redisUrl, socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) } });
  const sub = pub.duplicate();
  const reported = new Map<string, string>();
  for (const [role, client] of [["publisher", pub], ["subscriber", sub]] as const) {
    client.on("error", (err: Error) => {
      // node-redis reports every failed reconnect; log each distinct failure once.
      if (reported.get(role) === err.message) return;
      reported.set(role, err.message);
      logger.warn({ role, err: err.message }, "redis connection error");
    });
    client.on("ready", () => {
      reported.delete(role);
      logger.info({ role }, "redis ready");
    });
  }
  // Connection attempts go on in the background: the node serves its local sockets while Redis
  // is away, and commands issued meanwhile (the adapter's subscriptions) are sent once it is back.
  pub.connect().catch(() => {});
  sub.connect().catch(() => {});

  const drop = (channel: string, reason: "frame_not_msgpack" | "frame_invalid", detail: string): void => {
    metrics.framesDropped.inc({ channel, reason });
    logger.warn({ channel, code: reason, detail }, "dropped a frame");
  };

  const parser = guardedParser(drop);
  const guardedSub = new GuardedSubscriber(
    sub,
    (err) => {
      if (!(err instanceof DroppedFrame)) drop("adapter", "frame_invalid", err instanceof Error ? err.message : String(err));
    },
    (message) => {
      const problem = requestProblem(message);
      if (problem !== null) drop("adapter", problem.code, problem.detail);
      return problem === null;
    },
  );
  let rawSubscribed = false;

  return {
    mode: "redis",
    adapter: class extends ClusterAdapter {
      constructor(nsp: Namespace) {
        super(nsp, pub, guardedSub, { parser });
      }
    },
    async onRawFrame(handler) {
      await sub.subscribe(
        RAW_FRAME_CHANNEL,
        (message: Buffer) => {
          try {
            handler(message);
          } catch (err) {
            logger.error({ err }, "raw frame handler failed");
          }
        },
        true,
      );
      rawSubscribed = true;
    },
    ready: () => pub.isReady && sub.isReady && rawSubscribed,
    async close() {
      await Promise.allSettled([pub.isOpen ? pub.quit() : pub.disconnect(), sub.isOpen ? sub.quit() : sub.disconnect()]);
    },
  };
}

/** The in-memory adapter of a single node, keeping unauthenticated sockets out of broadcasts. */
class LocalAdapter extends Adapter {
  override broadcast(packet: unknown, opts: BroadcastOptions): void {
    super.broadcast(packet, { ...opts, except: exceptUnauthenticated(opts.except) });
  }
}

/** The Redis adapter, keeping unauthenticated sockets out of broadcasts that start on this node. */
class ClusterAdapter extends RedisAdapter {
  override broadcast(packet: unknown, opts: BroadcastOptions): void {
    super.broadcast(packet, { ...opts, except: exceptUnauthenticated(opts.except) });
  }
}

/**
 * The adapter's parser, with the checks the stock adapter lacks: it decodes a broadcast without
 * try/catch and trusts its shape, so one bad frame would throw inside the Redis client. Here a
 * frame that is not MessagePack or not `[uid, packet, opts]` is logged, counted and dropped, and
 * every broadcast from another node or an emitter leaves unauthenticated sockets out.
 */
function guardedParser(drop: (channel: string, reason: "frame_not_msgpack" | "frame_invalid", detail: string) => void) {
  return {
    encode: (value: unknown): Buffer => encodeMsgpack(value),
    decode(message: Buffer): unknown {
      let value: unknown;
      try {
        value = decodeMsgpack(message);
      } catch (err) {
        drop("adapter", "frame_not_msgpack", err instanceof Error ? err.message : String(err));
        throw new DroppedFrame();
      }
      if (Array.isArray(value)) {
        const problem = value.length === 3 ? arrayFrameProblem(value) : "expected [uid, packet, opts]";
        if (problem !== null) {
          drop("adapter", "frame_invalid", problem);
          throw new DroppedFrame();
        }
        const opts = (value[2] ?? {}) as { except?: Iterable<string> };
        value[2] = opts;
        opts.except = exceptUnauthenticated(opts.except);
        return value;
      }
      if (typeof value === "object" && value !== null) {
        // A request or response between nodes; the adapter checks its type itself.
        const opts = (value as { opts?: { except?: unknown } }).opts;
        if (typeof opts === "object" && opts !== null) opts.except = exceptUnauthenticated(Array.isArray(opts.except) ? opts.except : undefined);
        return value;
      }
      drop("adapter", "frame_invalid", "not an array or a map");
      throw new DroppedFrame();
    },
  };
}

/**
 * Hands the adapter a subscriber whose listeners cannot throw into the Redis client: an error
 * there would break the client's reply parser and every later message on the connection.
 */
class GuardedSubscriber {
  private readonly guarded = new WeakMap<BufferListener, BufferListener>();

  constructor(
    private readonly client: RedisClient,
    private readonly onFailure: (err: unknown) => void,
    private readonly acceptRequest: (message: Buffer) => boolean,
  ) {}

  /** The adapter's broadcast channels: the guarded parser checks each frame as it decodes it. */
  pSubscribe(patterns: string | string[], listener: BufferListener, bufferMode: true): Promise<void> {
    return this.client.pSubscribe(patterns, this.guard(listener), bufferMode);
  }

  /**
   * The adapter's request and response channels. Its handler there is async and its promise is
   * dropped, so a failure could not be caught afterwards: the shape is checked before it runs.
   */
  subscribe(channels: string | string[], listener: BufferListener, bufferMode: true): Promise<void> {
    return this.client.subscribe(channels, this.guard(listener, this.acceptRequest), bufferMode);
  }

  pUnsubscribe(patterns: string | string[], listener: BufferListener, bufferMode: true): Promise<void> {
    return this.client.pUnsubscribe(patterns, this.guarded.get(listener), bufferMode);
  }

  unsubscribe(channels: string | string[], listener: BufferListener, bufferMode: true): Promise<void> {
    return this.client.unsubscribe(channels, this.guarded.get(listener), bufferMode);
  }

  on(event: "error", listener: (err: Error) => void): this {
    this.client.on(event, listener);
    return this;
  }

  off(event: "error", listener: (err: Error) => void): this {
    this.client.off(event, listener);
    return this;
  }

  listenerCount(event: string): number {
    return this.client.listenerCount(event);
  }

  private guard(listener: BufferListener, accept: (message: Buffer) => boolean = () => true): BufferListener {
    let wrapped = this.guarded.get(listener);
    if (!wrapped) {
      wrapped = (message, channel) => {
        try {
          if (!accept(message)) return;
          const result = listener(message, channel);
          // The request handler is async: its failures arrive as rejections.
          if (result instanceof Promise) result.catch(this.onFailure);
        } catch (err) {
          this.onFailure(err);
        }
      };
      this.guarded.set(listener, wrapped);
    }
    return wrapped;
  }
}

// Request types of @socket.io/redis-adapter 8 whose handlers read `opts` without checking it.
const REQUESTS_NEEDING_OPTS = new Set([5, 7]);
const REQUESTS_WITH_OPTIONAL_OPTS = new Set([2, 3, 4]);
const SERVER_SIDE_EMIT = 6;
// Namespace events a server-side emit must never fire: they would call connection handlers with a fake socket.
const NAMESPACE_EVENTS = new Set(["connect", "connection", "disconnect", "disconnecting", "new_namespace", "newListener", "removeListener"]);

/** Why a message on the adapter's request or response channel cannot be handed to the adapter. */
function requestProblem(message: Buffer): { code: "frame_not_msgpack" | "frame_invalid"; detail: string } | null {
  let value: unknown;
  try {
    // The adapter reads a message that starts with "{" as JSON and anything else as MessagePack.
    value = message[0] === 0x7b ? JSON.parse(message.toString()) : decodeMsgpack(message);
  } catch (err) {
    return { code: "frame_not_msgpack", detail: err instanceof Error ? err.message : String(err) };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { code: "frame_invalid", detail: "a request must be a map" };
  const request = value as { type?: unknown; opts?: unknown; data?: unknown };
  const optsProblem = (required: boolean): string | null => {
    if (request.opts === undefined || request.opts === null) return required ? "opts is missing" : null;
    if (typeof request.opts !== "object" || Array.isArray(request.opts)) return "opts must be a map";
    const { rooms, except } = request.opts as { rooms?: unknown; except?: unknown };
    for (const list of [rooms, except]) if (list !== undefined && list !== null && !Array.isArray(list)) return "opts.rooms and opts.except must be lists";
    return null;
  };
  let problem: string | null = null;
  if (typeof request.type === "number" && REQUESTS_NEEDING_OPTS.has(request.type)) problem = optsProblem(true);
  else if (typeof request.type === "number" && REQUESTS_WITH_OPTIONAL_OPTS.has(request.type)) problem = optsProblem(false);
  else if (request.type === SERVER_SIDE_EMIT) {
    const data = request.data;
    if (!Array.isArray(data) || typeof data[0] !== "string" || NAMESPACE_EVENTS.has(data[0])) problem = "a server-side emit needs data [event, ...args] with a non-reserved event";
  }
  return problem === null ? null : { code: "frame_invalid", detail: problem };
}

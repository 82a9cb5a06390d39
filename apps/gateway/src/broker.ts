import type { SwitchboardError } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { Adapter } from "socket.io-adapter";
import type { DropFrame, GuardLimits } from "./adapter-guard.js";
import { createMemoryBroker } from "./broker-memory.js";
import { createRedisBroker } from "./broker-redis.js";
import type { Metrics } from "./metrics.js";
import type { SharedState } from "./state.js";

/** The Socket.IO adapter class for a namespace (Socket.IO calls it with `new`). */
export type AdapterFactory = typeof Adapter;

/**
 * The broker: everything a node does with Redis, behind one contract, with one implementation per
 * mode — `memory` (one node, no Redis) and `redis` (classic pub/sub through @socket.io/redis-adapter,
 * by default on the channels of the node's own rooms: see room-channels.ts).
 *
 * - `adapter` delivers Socket.IO broadcasts to every node's sockets, each socket once.
 * - `publish` hands a message for the cluster's sockets to Redis in the adapter's own format, on
 *   the channel of its room when it has one, so it reaches only the nodes holding that room.
 * - `onRawFrame` / `publishRaw` carry raw frames: every node receives every frame.
 * - `publish` and `publishRaw` resolve only once Redis took the message; otherwise they reject with a
 *   {@link SwitchboardError} (`redis_unavailable`, `publish_timeout`, `frame_too_large`), so
 *   nobody is told a message was sent when it was not.
 * - Nothing waits for Redis to be up: a node starts, serves its own sockets and answers
 *   `ready() === false` while Redis is away, and catches up by itself when it returns.
 * - Delivery is at-most-once: what is published while Redis is away is refused, not queued.
 */
export interface Broker {
  mode: "redis" | "memory";
  adapter: AdapterFactory;
  /** Calls `handler` with each raw frame, on every node. Frames over FRAME_MAX_BYTES are dropped before it. */
  onRawFrame(handler: (frame: Buffer) => void): void;
  /** Calls `handler` with each reply services send this node (its own reply channel); none in memory mode. */
  onServiceReply(handler: (message: Buffer) => void): void;
  /** Publishes an encoded raw frame to every node; resolves once Redis took it. */
  publishRaw(frame: Uint8Array): Promise<void>;
  /** Sends a message to the cluster's sockets in its rooms (every authenticated one when there are none); resolves once Redis took it. */
  publish(message: OutboundMessage): Promise<void>;
  /** Several messages, in order and all or none; resolves once Redis took them all. */
  publishBatch(messages: readonly OutboundMessage[]): Promise<void>;
  /**
   * A counter of `points` per `durationSeconds` per key, shared by every node: kept in Redis, and
   * in this node's memory while Redis is away (so admission never waits for Redis). In memory
   * mode it is this node's own.
   */
  createRateLimiter(options: RateLimiterOptions): ConnectionRateLimiter;
  /** What nodes share besides messages: revocations, registered routes, presence, live nodes. */
  state: SharedState;
  /**
   * Null when this node receives the broadcasts of every room its sockets joined so far; otherwise
   * a promise settled once it does (see room-channels.ts). A socket is told it joined a room only
   * then, so a message published after the telling reaches it.
   */
  roomsSubscribed(): Promise<void> | null;
  /** True when the node can serve the whole cluster: Redis connected and every subscription held. */
  ready(): boolean;
  /**
   * Calls `listener` each time the broker becomes ready: at start, after Redis returns, after the
   * subscriber was replaced. Whatever a node mirrors from the shared state is read again then,
   * since control frames published meanwhile were missed.
   */
  onReady(listener: () => void): void;
  /** Whether Redis is there: `none` in memory mode. */
  redisState(): "none" | "ready" | "unavailable";
  close(): Promise<void>;
}

/** A message for the sockets of the cluster, as the HTTP API, the node itself and clients publish one. */
export interface OutboundMessage {
  /** Empty: every authenticated socket. */
  rooms: readonly string[];
  except: readonly string[];
  event: string;
  args: readonly unknown[];
}

/** Counts one point for `key`: resolves while the key has points left, rejects with a RateLimiterRes past them. */
export interface ConnectionRateLimiter {
  consume(key: string): Promise<unknown>;
}

export interface RateLimiterOptions {
  points: number;
  durationSeconds: number;
  /** Names the counter in Redis: `switchboard:rate:<name>:<key>`. */
  name: string;
}

export interface BrokerDeps {
  logger: FastifyBaseLogger;
  metrics: Metrics;
  limits: GuardLimits;
  dropFrame: DropFrame;
  nodeId: string;
  /** How often the node checks that its subscriber still receives (0: never). */
  probeIntervalMs: number;
  /** `rooms`: the adapter receives only the broadcasts for rooms this node holds (see room-channels.ts); `pattern`: all. */
  subscriptions: "rooms" | "pattern";
  /** A node whose heartbeat is older than this is gone. */
  nodeTtlMs: number;
  /** REDIS_MAX_PENDING_COMMANDS: commands waiting for Redis past this fail at once with `redis_unavailable`. */
  maxPendingCommands: number;
}

export function createBroker(redisUrl: string | null, deps: BrokerDeps): Broker {
  return redisUrl === null ? createMemoryBroker(deps) : createRedisBroker(redisUrl, deps);
}

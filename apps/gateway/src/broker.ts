import { RedisAdapter } from "@socket.io/redis-adapter";
import { RAW_FRAME_CHANNEL, SwitchboardError } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from "rate-limiter-flexible";
import { createClient } from "redis";
import { Adapter, type BroadcastOptions } from "socket.io-adapter";
import type { Namespace } from "socket.io";
import { type DropFrame, type GuardLimits, createAdapterGuard } from "./adapter-guard.js";
import { exceptUnauthenticated } from "./rooms.js";

/** The Socket.IO adapter class for a namespace (Socket.IO calls it with `new`). */
export type AdapterFactory = typeof Adapter;

/** Everything the gateway does with Redis, behind one small interface. */
export interface Broker {
  mode: "redis" | "memory";
  adapter: AdapterFactory;
  /**
   * Calls `handler` with each frame published on the raw channel, on every node (in memory mode,
   * each frame given to `publishRaw`). Frames over FRAME_MAX_BYTES are dropped before it.
   */
  onRawFrame(handler: (frame: Buffer) => void): Promise<void>;
  /**
   * Publishes an encoded raw frame to every node and resolves once Redis took it. Rejects with
   * `redis_unavailable` while Redis is down and `publish_timeout` when it does not confirm in time,
   * so nobody is told a message was sent when it was not.
   */
  publishRaw(frame: Uint8Array): Promise<void>;
  /**
   * A counter of `points` per `durationSeconds` per key, shared by every node: kept in Redis, and
   * in this node's memory while Redis is away (so admission never waits for Redis). In memory
   * mode it is this node's own.
   */
  createRateLimiter(options: RateLimiterOptions): RateLimiterAbstract;
  /** True when Redis is connected and subscribed (always true in memory mode). */
  ready(): boolean;
  close(): Promise<void>;
}

export interface RateLimiterOptions {
  points: number;
  durationSeconds: number;
  /** Names the counter in Redis: `switchboard:rate:<name>:<key>`. */
  name: string;
}

export interface BrokerDeps {
  logger: FastifyBaseLogger;
  limits: GuardLimits;
  dropFrame: DropFrame;
}

type RedisClient = ReturnType<typeof createClient>;

/** How long a publish waits for Redis to confirm it. */
const PUBLISH_TIMEOUT_MS = 5000;
/** How long closing waits for Redis to acknowledge QUIT before dropping the connection. */
const QUIT_TIMEOUT_MS = 2000;

export function createBroker(redisUrl: string | null, deps: BrokerDeps): Broker {
  return redisUrl === null ? createMemoryBroker(deps) : createRedisBroker(redisUrl, deps);
}

function createMemoryBroker(deps: BrokerDeps): Broker {
  let handler: ((frame: Buffer) => void) | null = null;
  return {
    mode: "memory",
    adapter: LocalAdapter,
    async onRawFrame(next) {
      handler = next;
    },
    // One node is the whole cluster: the frame takes the same delivery path as one from Redis.
    async publishRaw(frame) {
      const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      if (bytes.length > deps.limits.frameMaxBytes) throw new SwitchboardError("frame_too_large");
      handler?.(bytes);
    },
    createRateLimiter: (options) => memoryRateLimiter(options),
    ready: () => true,
    close: async () => {},
  };
}

function memoryRateLimiter(options: RateLimiterOptions): RateLimiterMemory {
  return new RateLimiterMemory({ points: options.points, duration: options.durationSeconds, keyPrefix: options.name });
}

function createRedisBroker(redisUrl: string, deps: BrokerDeps): Broker {
  const { logger, limits, dropFrame } = deps;
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

  const guard = createAdapterGuard(limits, dropFrame);
  const guardedSub = guard.guard(sub);
  let rawSubscribed = false;

  return {
    mode: "redis",
    adapter: class extends ClusterAdapter {
      constructor(nsp: Namespace) {
        super(nsp, pub, guardedSub, { parser: guard.parser });
      }
    },
    async onRawFrame(handler) {
      await sub.subscribe(
        RAW_FRAME_CHANNEL,
        (message: Buffer) => {
          if (message.length > limits.frameMaxBytes) {
            dropFrame(RAW_FRAME_CHANNEL, "frame_too_large", `${message.length} bytes is more than FRAME_MAX_BYTES (${limits.frameMaxBytes})`);
            return;
          }
          try {
            handler(message);
          } catch (err) {
            // The handler checks what it decodes; anything still thrown is reported as a drop, never into the Redis client.
            dropFrame(RAW_FRAME_CHANNEL, "frame_invalid", err instanceof Error ? err.message : String(err));
          }
        },
        true,
      );
      rawSubscribed = true;
    },
    async publishRaw(frame) {
      if (frame.byteLength > limits.frameMaxBytes) throw new SwitchboardError("frame_too_large");
      // The offline queue would replay this minutes later, after the caller was told it failed.
      if (!pub.isReady) throw new SwitchboardError("redis_unavailable");
      await publishWithin(pub, RAW_FRAME_CHANNEL, Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
    },
    createRateLimiter: (options) =>
      new RateLimiterRedis({
        storeClient: pub,
        useRedisPackage: true,
        points: options.points,
        duration: options.durationSeconds,
        keyPrefix: `switchboard:rate:${options.name}`,
        rejectIfRedisNotReady: true,
        insuranceLimiter: memoryRateLimiter(options),
      }),
    ready: () => pub.isReady && sub.isReady && rawSubscribed,
    async close() {
      await Promise.allSettled([closeClient(pub), closeClient(sub)]);
    },
  };
}

async function publishWithin(client: RedisClient, channel: string, message: Buffer): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SwitchboardError("publish_timeout")), PUBLISH_TIMEOUT_MS);
  });
  try {
    await Promise.race([client.publish(channel, message), timeout]);
  } catch (err) {
    if (err instanceof SwitchboardError) throw err;
    throw new SwitchboardError("redis_unavailable", undefined, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

async function closeClient(client: RedisClient): Promise<void> {
  if (!client.isOpen) return;
  if (!client.isReady) return client.disconnect();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
  });
  await Promise.race([client.quit().then(() => {}), late]);
  clearTimeout(timer);
  if (client.isOpen) await client.disconnect().catch(() => {});
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

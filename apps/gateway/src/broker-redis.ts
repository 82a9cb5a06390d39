import { RedisAdapter } from "@socket.io/redis-adapter";
import {
  AnswerTimeouts,
  Deadlines,
  RAW_FRAME_CHANNEL,
  SwitchboardError,
  isCommandQueueFull,
  packWith,
  replyChannel,
} from "@switchboard/protocol";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { createClient } from "@redis/client";
import type { Namespace } from "socket.io";
import type { BroadcastOptions } from "socket.io-adapter";
import { createAdapterGuard } from "./adapter-guard.js";
import { memoryRateLimiter } from "./broker-memory.js";
import type { Broker, BrokerDeps, ConnectionRateLimiter, OutboundMessage } from "./broker.js";
import { asBuffer, packetOf } from "./broker-frames.js";
import { detailed } from "./errors.js";
import { type RedisClient, ResilientSubscriber } from "./redis-subscriber.js";
import { RoomChannels } from "./room-channels.js";
import { exceptUnauthenticated } from "./rooms.js";
import { createRedisState } from "./state-redis.js";

/** The adapter's broadcast channel for the namespace `/`; a broadcast to one room goes on `<it><room>#`. */
const ADAPTER_CHANNEL = "socket.io#/#";
/** The sender of what a node publishes for the cluster: not an adapter, so every node delivers it, the sender too. */
const PUBLISHER_UID = "switchboard";
const NO_FLAGS = Object.freeze({});
const copyToBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes);

/** Publishes each (channel, message) pair of ARGV, in order. */
const PUBLISH_ALL = `for i = 1, #ARGV, 2 do redis.call("PUBLISH", ARGV[i], ARGV[i + 1]) end return #ARGV / 2`;

/** How long a publish waits for Redis to confirm it. */
const PUBLISH_TIMEOUT_MS = 5000;
/** How long a handshake waits for the shared connection-rate counter before this node's own counts it. */
const RATE_LIMIT_WAIT_MS = 500;
/** How long a read or change of the shared state (presence, revocations, routes, services) waits for Redis. */
const STATE_COMMAND_TIMEOUT_MS = 5000;
/** How long closing waits for Redis to acknowledge QUIT before dropping the connection. */
const QUIT_TIMEOUT_MS = 2000;
/** The longest wait between reconnection attempts: a Redis that returns is used again within a second. */
const RECONNECT_MAX_DELAY_MS = 1000;
/** Probes in a row that the subscriber may miss before it is replaced. */
export const PROBE_MISSES = 3;

/** Classic Redis pub/sub: @socket.io/redis-adapter behind the adapter guard, and the raw channel. */
export function createRedisBroker(redisUrl: string, deps: BrokerDeps): Broker {
  const { logger, metrics, limits, dropFrame, nodeId } = deps;
  const options = {
    url: redisUrl,
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, RECONNECT_MAX_DELAY_MS) },
  };
  // No offline queue: a publish while Redis is away fails at once instead of piling up in memory
  // and being replayed minutes later, after its caller was told it failed. And a bound on what waits
  // for an answer: a Redis that is connected but does not answer (paused, overloaded, a network that
  // drops packets without a reset) would otherwise have every command kept until the connection dies.
  const pub = createClient({ ...options, disableOfflineQueue: true, commandsQueueMaxLength: deps.maxPendingCommands });
  const connection = watchConnection(deps);
  connection.watch(pub, "publisher");
  pub.connect().catch(() => {});

  const onSubscribeFailure = (err: unknown) =>
    logger.warn({ err: err instanceof Error ? err.message : String(err) }, "redis subscription failed");
  const sub = new ResilientSubscriber(
    () => {
      const client = createClient(options);
      connection.watch(client, "subscriber");
      return client;
    },
    onSubscribeFailure,
    () => readiness.check(),
  );
  connection.setSubscriber(() => sub.current);
  // Ready means: commands go through, and every subscription is held.
  const readiness = watchReadiness(() => pub.isReady && sub.isReady());
  pub.on("ready", () => readiness.check());
  pub.on("end", () => readiness.check());
  pub.on("error", () => readiness.check());

  /** A command refused because REDIS_MAX_PENDING_COMMANDS wait already, as `redis_unavailable`; null for any other failure. */
  const queueFull = (err: unknown): SwitchboardError | null => {
    if (!isCommandQueueFull(err)) return null;
    metrics.limitHits.inc({ kind: "redis_commands" });
    const { message } = detailed(
      "redis_unavailable",
      `it has not answered the ${deps.maxPendingCommands} commands already waiting (REDIS_MAX_PENDING_COMMANDS)`,
    );
    return new SwitchboardError("redis_unavailable", message, { cause: err });
  };
  const redisUnavailable = (err: unknown) => queueFull(err) ?? new SwitchboardError("redis_unavailable", undefined, { cause: err });
  /** Settles with Redis's answer, or with publish_timeout when Redis has not answered in time. */
  const confirmedWithin = (send: () => Promise<unknown>): Promise<unknown> => publishTimeouts.within(send, redisUnavailable);

  const guard = createAdapterGuard(limits, dropFrame, () => metrics.messageReceived("adapter"));
  const guardedSub = guard.guard(sub);
  const adapterPublisher = publisherForAdapter(pub, (err) => {
    queueFull(err);
    metrics.publishFailures.inc();
    deps.logger.debug({ err: err.message }, "a broadcast could not be handed to Redis");
  });
  /** The room channels of each namespace's adapter (the gateway has one namespace, `/`). */
  const roomChannels: RoomChannels[] = [];
  metrics.readRoomChannels(() => roomChannels.reduce((count, channels) => count + channels.size, 0));
  const probe = deps.probeIntervalMs > 0 ? startProbe(pub, sub, deps) : null;

  /** A message as @socket.io/redis-adapter publishes one, under a uid no node has (so the taking node delivers it too), with its channel. */
  function adapterFrame(message: OutboundMessage): [string, Buffer] {
    const { rooms, except } = message;
    // The shared encoder writes into one buffer, copied out into Node's pool of small buffers: notepack.io,
    // which the adapter's parser uses, builds each frame from an array of its parts, four times the
    // garbage, and a copy of its own (an ArrayBuffer a frame) costs more than the encoding.
    // Encoding only reads the message's lists, so they go in as they are.
    const frame = packWith([PUBLISHER_UID, packetOf(message), { rooms, except, flags: NO_FLAGS }], copyToBuffer);
    if (frame.length > limits.frameMaxBytes) throw new SwitchboardError("frame_too_large");
    return [rooms.length === 1 ? `${ADAPTER_CHANNEL}${rooms[0]}#` : ADAPTER_CHANNEL, frame];
  }

  return {
    mode: "redis",
    adapter: class extends ClusterAdapter {
      constructor(nsp: Namespace) {
        const channels = deps.subscriptions === "rooms" ? new RoomChannels(sub, onSubscribeFailure) : null;
        super(nsp, adapterPublisher, channels === null ? guardedSub : guard.guard(channels), { parser: guard.parser });
        if (channels !== null) {
          channels.follow(this);
          roomChannels.push(channels);
        }
        guard.ownUid(String(this.uid));
        guard.localRooms(this.rooms);
      }
    },
    onRawFrame(handler) {
      sub.subscribe(RAW_FRAME_CHANNEL, (message: Buffer) => {
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
      });
    },
    onServiceReply(handler) {
      sub.subscribe(replyChannel(nodeId), (message: Buffer) => {
        if (message.length > limits.frameMaxBytes) {
          dropFrame("replies", "frame_too_large", `${message.length} bytes is more than FRAME_MAX_BYTES (${limits.frameMaxBytes})`);
          return;
        }
        try {
          handler(message);
        } catch (err) {
          dropFrame("replies", "frame_invalid", err instanceof Error ? err.message : String(err));
        }
      });
    },
    async publish(message) {
      const [channel, frame] = adapterFrame(message);
      if (!pub.isReady) throw new SwitchboardError("redis_unavailable");
      await confirmedWithin(() => pub.publish(channel, frame));
    },
    async publishBatch(messages) {
      // One command for the whole batch: the messages go out in order, all or none, and the node pays
      // for one command and one reply instead of one per message.
      const command: (string | Buffer)[] = ["EVAL", PUBLISH_ALL, "0"];
      for (const message of messages) command.push(...adapterFrame(message));
      if (!pub.isReady) throw new SwitchboardError("redis_unavailable");
      await confirmedWithin(() => pub.sendCommand(command));
    },
    async publishRaw(frame) {
      if (frame.byteLength > limits.frameMaxBytes) throw new SwitchboardError("frame_too_large");
      if (!pub.isReady) throw new SwitchboardError("redis_unavailable");
      await confirmedWithin(() => pub.publish(RAW_FRAME_CHANNEL, asBuffer(frame)));
    },
    createRateLimiter(rate) {
      const local = memoryRateLimiter(rate);
      const shared = new RateLimiterRedis({
        storeClient: pub,
        useRedisPackage: true,
        points: rate.points,
        duration: rate.durationSeconds,
        keyPrefix: `switchboard:rate:${rate.name}`,
        rejectIfRedisNotReady: true,
        insuranceLimiter: local,
      });
      return answeredWithin(shared, local);
    },
    state: createRedisState(
      {
        // Within a deadline: an API call or a presence read must not wait for good on a Redis that stopped answering.
        command: (args: (string | Buffer)[]) =>
          stateTimeouts.within(
            () => pub.sendCommand(args),
            (err) => queueFull(err) ?? (err instanceof Error ? err : new Error(String(err))),
          ),
      },
      () => deps.nodeTtlMs,
    ),
    roomsSubscribed() {
      let pending: Promise<void> | null = null;
      for (const channels of roomChannels) {
        const settled = channels.settled();
        if (settled !== null) pending = pending === null ? settled : Promise.all([pending, settled]).then(() => {});
      }
      return pending;
    },
    ready: () => pub.isReady && sub.isReady(),
    onReady: (listener) => readiness.listeners.add(listener),
    redisState: () => (pub.isReady && sub.isReady() ? "ready" : "unavailable"),
    async close() {
      probe?.stop();
      connection.stop();
      await Promise.allSettled([closeClient(pub), sub.close()]);
    },
  };

  function startProbe(publisher: RedisClient, subscriber: ResilientSubscriber, { probeIntervalMs }: BrokerDeps) {
    // Each node publishes numbered probes on its own channel and checks its subscriber receives them:
    // a connection can stay up at TCP level and deliver nothing (Centrifugo issue 1189).
    const channel = `switchboard:probe:${nodeId}`;
    let sent = 0;
    let received = 0;
    // The highest number published so far: anyone may publish on the channel, and a number above it
    // (say 1e308) would otherwise count every later probe as received and switch the check off for good.
    let issued = 0;
    subscriber.subscribe(channel, (message: Buffer) => {
      const number = message.length <= 16 ? Number(message.toString()) : Number.NaN;
      if (Number.isSafeInteger(number) && number <= issued) received = Math.max(received, number);
    });
    const timer = setInterval(() => {
      if (!publisher.isReady || !subscriber.isReady()) return;
      if (sent - received >= PROBE_MISSES) {
        metrics.subscriberRecreations.inc();
        logger.warn(
          { missedProbes: sent - received, intervalMs: probeIntervalMs },
          "the redis subscriber received none of its probes; replaced it",
        );
        received = sent;
        subscriber.replace();
        return;
      }
      const next = sent + 1;
      issued = Math.max(issued, next);
      publisher.publish(channel, String(next)).then(
        () => {
          sent = Math.max(sent, next);
        },
        () => {},
      );
    }, probeIntervalMs);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }
}

/** Calls listeners each time `isReady` turns from false to true; `check` is called on every change. */
function watchReadiness(isReady: () => boolean) {
  let ready = false;
  const listeners = new Set<() => void>();
  return {
    listeners,
    check() {
      const now = isReady();
      if (now && !ready) for (const listener of listeners) listener();
      ready = now;
    },
  };
}

/**
 * Follows both connections and reports an outage once, with its cause, rather than on every retry;
 * and its end, with how long it lasted. Also keeps `switchboard_redis_connected{role}`.
 */
function watchConnection({ logger, metrics }: BrokerDeps) {
  let state: "starting" | "up" | "down" = "starting";
  let downSince = 0;
  let cause = "";
  let publisher: RedisClient | null = null;
  let subscriber: () => RedisClient | null = () => null;
  let stopped = false;

  const update = () => {
    if (stopped) return;
    const pubReady = publisher?.isReady === true;
    const subReady = subscriber()?.isReady === true;
    metrics.redisConnected.set({ role: "publisher" }, pubReady ? 1 : 0);
    metrics.redisConnected.set({ role: "subscriber" }, subReady ? 1 : 0);
    if (pubReady && subReady) {
      if (state === "down") logger.info({ downForMs: Date.now() - downSince }, "redis is available again");
      else if (state === "starting") logger.info("redis ready");
      state = "up";
    } else if (state !== "down" && cause !== "") {
      logger.warn(
        { cause },
        state === "starting"
          ? "redis is not available yet; retrying in the background"
          : "redis is unavailable; retrying in the background",
      );
      state = "down";
      downSince = Date.now();
    }
  };

  return {
    watch(client: RedisClient, role: "publisher" | "subscriber") {
      if (role === "publisher") publisher = client;
      client.on("error", (err: Error) => {
        cause = err.message;
        update();
      });
      for (const event of ["ready", "end", "reconnecting"] as const) client.on(event, update);
    },
    setSubscriber(current: () => RedisClient) {
      subscriber = current;
    },
    stop() {
      stopped = true;
    },
  };
}

/**
 * The publisher as the adapter sees it: its broadcasts are fire-and-forget, so a publish that fails
 * while Redis is away must be caught here (it would end the process as an unhandled rejection).
 * The adapter also calls sendCommand (PUBSUB NUMSUB) and checks that the subscribe methods exist.
 */
function publisherForAdapter(pub: RedisClient, onFailure: (err: Error) => void) {
  return {
    publish: (channel: string, message: Buffer | string) =>
      pub.publish(channel, message).catch((err: unknown) => {
        onFailure(err instanceof Error ? err : new Error(String(err)));
        return 0;
      }),
    sendCommand: (args: string[]) => pub.sendCommand(args),
    pSubscribe: () => Promise.reject(new Error("the publisher does not subscribe")),
    sSubscribe: () => Promise.reject(new Error("the publisher does not subscribe")),
    on: (event: "error", listener: (err: Error) => void) => pub.on(event, listener),
    off: (event: "error", listener: (err: Error) => void) => pub.off(event, listener),
    listenerCount: (event: string) => pub.listenerCount(event),
  };
}

/**
 * The shared counter's answer, or this node's own when Redis has not answered within
 * RATE_LIMIT_WAIT_MS. The insurance limiter covers a Redis that is away; a connected one that stops
 * answering would otherwise hold every new connection until it answers again.
 */
function answeredWithin(shared: ConnectionRateLimiter, local: ConnectionRateLimiter): ConnectionRateLimiter {
  return {
    consume(key) {
      return new Promise((resolve, reject) => {
        let settled = false;
        const useLocal = () => {
          if (settled) return;
          settled = true;
          local.consume(key).then(resolve, reject);
        };
        const deadline = rateLimitDeadlines.add(Date.now() + RATE_LIMIT_WAIT_MS, useLocal);
        const answered = (settle: (value: unknown) => void) => (value: unknown) => {
          if (settled) return;
          settled = true;
          rateLimitDeadlines.remove(deadline, useLocal);
          settle(value);
        };
        shared.consume(key).then(answered(resolve), answered(reject));
      });
    },
  };
}
const rateLimitDeadlines = new Deadlines<() => void>((useLocal) => useLocal());

/** One timer for every publish in flight, rather than one each: a node may publish tens of thousands a second. */
const publishTimeouts = new AnswerTimeouts(PUBLISH_TIMEOUT_MS, () => new SwitchboardError("publish_timeout"));
/**
 * Commands on the shared state (presence, revocations, routes, the service registry, heartbeats) that
 * Redis has not answered in time fail with redis_unavailable. One still queued is sent later, in order
 * on the same connection: presence rewrites the node's share in full after a failure, and the API's
 * changes (a kick, a revocation, a route) may be repeated.
 */
const stateTimeouts = new AnswerTimeouts(
  STATE_COMMAND_TIMEOUT_MS,
  () => new SwitchboardError("redis_unavailable", `Redis has not answered within ${STATE_COMMAND_TIMEOUT_MS / 1000} s.`),
);

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

/** The Redis adapter, keeping unauthenticated sockets out of broadcasts that start on this node. */
class ClusterAdapter extends RedisAdapter {
  override broadcast(packet: unknown, opts: BroadcastOptions): void {
    const except = exceptUnauthenticated(opts.except, this.rooms);
    // Written out rather than spread: V8 copies a spread object with an added property slowly.
    super.broadcast(packet, except === opts.except ? opts : { rooms: opts.rooms, except, flags: opts.flags });
  }
}

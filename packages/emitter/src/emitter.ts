import { createHmac } from "node:crypto";
import { Emitter } from "@socket.io/redis-emitter";
import {
  AnswerTimeouts,
  ERRORS,
  RAW_FRAME_CHANNEL,
  SwitchboardError,
  allowUser,
  encodeEveryoneFrame,
  encodeRawFrame,
  isCommandQueueFull,
  isPublishableEvent,
  kickUser,
  normaliseSiteHost,
  preview,
  readRoomCount,
  readSitePresence,
  readUserPresence,
  sealFrame,
  siteRoom,
  userIdOf,
  userRoom,
} from "@switchboard/protocol";
import type {
  AppEventName,
  AppEvents,
  ControlTransport,
  KickOptions,
  Publishable,
  RawFrame,
  RedisCommander,
  RoomCount,
  SitePresence,
  UserPresence,
} from "@switchboard/protocol";
import { type OwnedConnection, type PublishClient, commandRunner, defaultErrorReporter, openConnection } from "./redis.js";

export interface EmitterOptions {
  /** A Redis URL (the emitter opens and closes its own connection) or a connected client. */
  redis: string | PublishClient;
  /**
   * Channel prefix; must match the gateway's adapter key.
   * @default "socket.io"
   */
  key?: string;
  /**
   * How long a publish may wait for Redis to take the frame before it rejects with
   * `redis_unavailable` (not connected) or `publish_timeout` (sent, not confirmed). One timer serves
   * every publish in flight, so the rejection comes at this moment or up to 100 ms after it. A
   * presence read or a kick's stored refusal that Redis has not answered by then fails with `redis_unavailable`.
   * @default 5000
   */
  publishTimeoutMs?: number;
  /**
   * How long a publish waits for a connection the emitter opened that is not ready (still
   * connecting, or reconnecting after Redis went away) before it fails with `redis_unavailable`.
   * Past it, a publish fails at once instead of waiting out `publishTimeoutMs` for a Redis that is down.
   * @default 1000
   */
  connectWaitMs?: number;
  /**
   * With a URL: how many commands may wait for Redis's answer at once on the emitter's connection.
   * Past it a publish fails at once with `redis_unavailable` rather than waiting in memory, as it
   * would for as long as a Redis that is connected but not answering (paused, overloaded) keeps it.
   * @default 50000
   */
  maxPendingCommands?: number;
  /**
   * Signs every message with this key (a `kid` of the gateway's FRAME_SIGNING_KEYS and its secret).
   * Messages then go out as signed raw frames on `socket.io#emitter`, the one channel a publisher
   * restricted by a Redis ACL may write; so do `disconnectUser`'s control frames.
   * @default none: messages go out in the standard socket.io adapter format, unsigned
   */
  signingKey?: { kid: string; secret: string };
  /**
   * Receives Redis connection errors. They never throw into the host process.
   * @default a one-line warning on stderr for each distinct error
   */
  onError?: (error: Error) => void;
}

/** What Redis said when it took a frame. */
export interface PublishResult {
  /** How many Redis subscriptions received it; 0 means no gateway node is listening. */
  subscribers: number;
}

/** A set of target rooms; every `emit` resolves once Redis took the frame. */
export interface Target<Events extends object = AppEvents> {
  /** Leaves out the sockets in these rooms. */
  except(room: string | string[]): Target<Events>;
  emit<Event extends AppEventName<Events>>(event: Publishable<Event>, data?: Events[Event]): Promise<PublishResult>;
}

/**
 * Publishes to the cluster. `Events`, the application's event map (see `AppEvents`), types what
 * `emit` takes; the clients of `@switchboard/client` take the same map.
 */
export interface SwitchboardEmitter<Events extends object = AppEvents> {
  toUser(userId: string | number): Target<Events>;
  toSite(host: string): Target<Events>;
  to(room: string | string[]): Target<Events>;
  /** Emits to every authenticated socket on every node. */
  emit<Event extends AppEventName<Events>>(event: Publishable<Event>, data?: Events[Event]): Promise<PublishResult>;
  /** Sends `kicked` to each of the user's sockets, then disconnects them. */
  /**
   * Kicks a user off the cluster: every socket gets `kicked` `{ code: "kicked", message, reason }` and
   * is disconnected; with `refuseReconnect` (the default) the user's tokens issued at or before the
   * kick are refused with `token_revoked` on every node for `refuseForSeconds`. The same
   * implementation as the gateway's `POST /api/v1/users/:id/disconnect`. A string is the reason.
   */
  disconnectUser(userId: string | number, options?: string | KickOptions): Promise<void>;
  /** Lifts a kick's refusal. */
  allowUser(userId: string | number): Promise<void>;
  /** Cluster-wide presence, as the gateways keep it in Redis. */
  presence: {
    user(userId: string | number): Promise<UserPresence>;
    site(host: string, page?: { cursor?: string | null; limit?: number }): Promise<SitePresence>;
    roomCount(room: string): Promise<RoomCount>;
  };
  /** Publishes a map-layout raw frame on `socket.io#emitter`, as non-Node publishers do. */
  publishFrame(frame: RawFrame): Promise<PublishResult>;
  /** Stops publishing; closes the Redis connection if the emitter opened it. */
  close(): Promise<void>;
}

export function createEmitter<Events extends object = AppEvents>(options: EmitterOptions): SwitchboardEmitter<Events> {
  const timeoutMs = options.publishTimeoutMs ?? 5000;
  const connectWaitMs = Math.min(options.connectWaitMs ?? 1000, timeoutMs);
  const onError = options.onError ?? defaultErrorReporter();
  const maxPendingCommands = options.maxPendingCommands ?? 50_000;
  if (!Number.isSafeInteger(maxPendingCommands) || maxPendingCommands < 1)
    throw new SwitchboardError("invalid_request", "maxPendingCommands must be a whole number of 1 or more");
  const owned: OwnedConnection | null =
    typeof options.redis === "string" ? openConnection(options.redis, onError, maxPendingCommands) : null;
  const client = owned ? owned.client : (options.redis as PublishClient);
  if (!owned && typeof client.on === "function" && client.listenerCount?.("error") === 0) client.on("error", onError);
  let closed = false;

  const signingKey = options.signingKey ?? null;
  if (
    signingKey !== null &&
    (typeof signingKey.kid !== "string" ||
      signingKey.kid.length === 0 ||
      typeof signingKey.secret !== "string" ||
      signingKey.secret.length === 0)
  ) {
    throw new SwitchboardError("invalid_request", "signingKey needs a non-empty kid and secret");
  }

  /** Commands beyond publishing (presence, kicks), through the same connection and its checks. */
  function commander(): RedisCommander {
    const run = commandRunner(client);
    if (run === null)
      throw new SwitchboardError("invalid_request", "this needs a client that runs commands: node-redis (sendCommand) or ioredis (call)");
    return {
      async command(args) {
        if (closed) throw new SwitchboardError("emitter_closed");
        if (owned && !(await owned.whenReady(connectWaitMs))) throw new SwitchboardError("redis_unavailable");
        return commandTimeouts.within(() => run(args), unavailable);
      },
    };
  }

  function controlTransport(): ControlTransport {
    const redis = commander();
    return {
      setKey: (key, value, ttlMs) => redis.command(["SET", key, value, "PX", String(Math.max(1, Math.round(ttlMs)))]),
      deleteKey: (key) => redis.command(["DEL", key]),
      publishFrame: (frame, channel) => publish(channel, rawMessage(frame)),
    };
  }

  /** The raw-channel form of a frame: signed when the emitter holds a key. */
  function rawMessage(frame: Uint8Array): Buffer {
    const bytes = signingKey === null ? frame : signFrame(frame, signingKey);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  // One timer for every publish in flight rather than one each: a service may publish thousands a second.
  // Kept alive: a script awaiting a publish gets its answer or its timeout before the process ends.
  const publishTimeouts = new AnswerTimeouts(timeoutMs, () => new SwitchboardError("publish_timeout"), true);
  // Presence reads and a kick's refusal wait no longer than a publish: a Redis that stopped answering fails them.
  const commandTimeouts = new AnswerTimeouts(
    timeoutMs,
    () => new SwitchboardError("redis_unavailable", `Redis has not answered within ${timeoutMs} ms.`),
    true,
  );
  const unavailable = (err: unknown) => {
    const why = isCommandQueueFull(err)
      ? `${maxPendingCommands} commands wait for Redis's answer already (maxPendingCommands)`
      : errorText(err);
    return new SwitchboardError("redis_unavailable", `${ERRORS.redis_unavailable.message} (${why})`, { cause: err });
  };

  function publish(channel: string, message: Buffer | string): Promise<PublishResult> {
    if (closed) return Promise.reject(new SwitchboardError("emitter_closed"));
    if (owned && !owned.isReady()) {
      return owned.whenReady(connectWaitMs).then((ready) => {
        if (!ready) throw new SwitchboardError("redis_unavailable");
        return confirmed(channel, message);
      });
    }
    return confirmed(channel, message);
  }

  /** Settles with Redis's answer, or with publish_timeout when Redis has not answered in time. */
  function confirmed(channel: string, message: Buffer | string): Promise<PublishResult> {
    return publishTimeouts
      .within(() => client.publish(channel, message), unavailable)
      .then((subscribers) => ({ subscribers: typeof subscribers === "number" ? subscribers : 0 }));
  }

  // @socket.io/redis-emitter builds the standard adapter frames but fires its publish and forgets
  // it; handing it this client lets the one publish each emit makes be awaited and mapped to a code.
  let captured: Promise<PublishResult> | null = null;
  const capturingClient = {
    publish(channel: string, message: Buffer | string): void {
      captured = publish(channel, message);
    },
  };
  const socketIoEmitter = new Emitter(capturingClient, { key: options.key ?? "socket.io" });

  /** Runs one emit of the socket.io emitter, and answers with the publish it made. */
  function published(send: () => void): Promise<PublishResult> {
    captured = null;
    encoding(send);
    // It publishes synchronously within emit() or throws; were that ever to change, a message not
    // sent must not be reported as published.
    const sent =
      captured ??
      Promise.reject(
        new SwitchboardError("invalid_request", "the socket.io emitter published nothing for this message (nothing was sent)"),
      );
    captured = null;
    return sent;
  }

  function target(resolveRooms: () => string[], exceptRooms: string[] = []): Target<Events> {
    return {
      except: (room) => target(resolveRooms, [...exceptRooms, ...(Array.isArray(room) ? room : [room])]),
      async emit(event: string, data?: unknown) {
        const rooms = resolveRooms();
        checkRooms(rooms);
        checkRooms(exceptRooms);
        checkEvent(event);
        if (signingKey !== null) {
          const frame: RawFrame = exceptRooms.length > 0 ? { room: rooms, event, data, except: exceptRooms } : { room: rooms, event, data };
          return publish(RAW_FRAME_CHANNEL, rawMessage(encoding(() => encodeRawFrame(frame))));
        }
        // Each operator copies its rooms into a new Set: one more only when there are exceptions.
        return published(() => {
          const operator = socketIoEmitter.to(rooms);
          (exceptRooms.length > 0 ? operator.except(exceptRooms) : operator).emit(event, data);
        });
      },
    };
  }

  return {
    toUser: (userId) => target(() => [userRoom(userId)]),
    toSite: (host) => target(() => [siteRoom(host)]),
    to: (room) => target(() => (Array.isArray(room) ? [...room] : [room])),
    async emit(event: string, data?: unknown) {
      checkEvent(event);
      if (signingKey !== null) return publish(RAW_FRAME_CHANNEL, rawMessage(encoding(() => encodeEveryoneFrame(event, data))));
      return published(() => socketIoEmitter.emit(event, data));
    },
    async disconnectUser(userId, options = {}) {
      await kickUser(controlTransport(), userId, typeof options === "string" ? { reason: options } : options);
    },
    async allowUser(userId) {
      await allowUser(controlTransport(), userId);
    },
    presence: {
      user: (userId) => readUserPresence(commander(), userIdOf(userId)),
      site: (host, page = {}) => {
        const normalised = normaliseSiteHost(host);
        if (normalised === null) return Promise.reject(new SwitchboardError("invalid_room", `Not a site host: ${preview(host)}`));
        return readSitePresence(commander(), normalised, page.cursor ?? null, page.limit ?? 100);
      },
      roomCount: (room) => readRoomCount(commander(), room),
    },
    async publishFrame(frame) {
      return publish(RAW_FRAME_CHANNEL, rawMessage(encodeRawFrame(frame)));
    },
    async close() {
      closed = true;
      await owned?.close();
    },
  };
}

/**
 * Runs an encoder on a caller's data: what MessagePack cannot hold (a BigInt, a symbol, a function)
 * or what nests past the stack (a cycle) is refused with a code, like every other bad input.
 */
function encoding<T>(encode: () => T): T {
  try {
    return encode();
  } catch (err) {
    if (err instanceof SwitchboardError) throw err;
    const reason =
      err instanceof RangeError ? "it nests too deeply, or refers to itself" : err instanceof Error ? err.message : String(err);
    throw new SwitchboardError("invalid_request", `the data cannot be encoded as MessagePack: ${reason}`, { cause: err });
  }
}

/** Wraps a frame in a signed envelope: HMAC-SHA256 over "<ts>." and the frame's bytes. */
function signFrame(frame: Uint8Array, key: { kid: string; secret: string }): Uint8Array {
  return sealFrame(frame, key.kid, (payload) => createHmac("sha256", key.secret).update(payload).digest());
}

function checkEvent(event: unknown): void {
  if (!isPublishableEvent(event)) {
    throw new SwitchboardError("invalid_event", `Not a publishable event name: ${preview(event)}`);
  }
}

function checkRooms(rooms: unknown[]): void {
  for (const room of rooms) {
    if (typeof room !== "string" || room.length === 0) {
      throw new SwitchboardError("invalid_room", `Not a room name: ${preview(room)}`);
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

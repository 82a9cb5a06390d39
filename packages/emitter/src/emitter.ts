import { Emitter } from "@socket.io/redis-emitter";
import {
  ERRORS,
  RAW_FRAME_CHANNEL,
  SERVER_EVENTS,
  SwitchboardError,
  encodeRawFrame,
  isPublishableEvent,
  preview,
  siteRoom,
  userRoom,
} from "@switchboard/protocol";
import type { RawFrame } from "@switchboard/protocol";
import { type OwnedConnection, type PublishClient, defaultErrorReporter, openConnection } from "./redis.js";

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
   * `redis_unavailable` (not connected) or `publish_timeout` (sent, not confirmed).
   * @default 5000
   */
  publishTimeoutMs?: number;
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
export interface Target {
  /** Leaves out the sockets in these rooms. */
  except(room: string | string[]): Target;
  emit(event: string, data?: unknown): Promise<PublishResult>;
}

export interface SwitchboardEmitter {
  toUser(userId: string | number): Target;
  toSite(host: string): Target;
  to(room: string | string[]): Target;
  /** Emits to every authenticated socket on every node. */
  emit(event: string, data?: unknown): Promise<PublishResult>;
  /** Sends `kicked` to each of the user's sockets, then disconnects them. */
  disconnectUser(userId: string | number, message?: string): Promise<void>;
  /** Publishes a map-layout raw frame on `socket.io#emitter`, as non-Node publishers do. */
  publishFrame(frame: RawFrame): Promise<PublishResult>;
  /** Stops publishing; closes the Redis connection if the emitter opened it. */
  close(): Promise<void>;
}

export function createEmitter(options: EmitterOptions): SwitchboardEmitter {
  const timeoutMs = options.publishTimeoutMs ?? 5000;
  const onError = options.onError ?? defaultErrorReporter();
  const owned: OwnedConnection | null = typeof options.redis === "string" ? openConnection(options.redis, onError) : null;
  const client = owned ? owned.client : (options.redis as PublishClient);
  if (!owned && typeof client.on === "function" && client.listenerCount?.("error") === 0) client.on("error", onError);
  let closed = false;

  async function publish(channel: string, message: Buffer | string): Promise<PublishResult> {
    if (closed) throw new SwitchboardError("emitter_closed");
    if (owned && !(await owned.whenReady(timeoutMs))) throw new SwitchboardError("redis_unavailable");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SwitchboardError("publish_timeout")), timeoutMs);
    });
    try {
      const subscribers = await Promise.race([client.publish(channel, message), timeout]);
      return { subscribers: typeof subscribers === "number" ? subscribers : 0 };
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      throw new SwitchboardError("redis_unavailable", `${ERRORS.redis_unavailable.message} (${errorText(err)})`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  // @socket.io/redis-emitter builds the standard adapter frames but fires its publish and forgets
  // it; handing it this client lets every publish it makes be awaited and mapped to a code.
  let captured: Promise<PublishResult>[] = [];
  const capturingClient = {
    publish(channel: string, message: Buffer | string): void {
      captured.push(publish(channel, message));
    },
  };
  const socketIoEmitter = new Emitter(capturingClient, { key: options.key ?? "socket.io" });

  function settle(send: () => void): Promise<PublishResult[]> {
    captured = [];
    send();
    const sent = captured;
    captured = [];
    return Promise.all(sent);
  }

  function target(resolveRooms: () => string[], exceptRooms: string[] = []): Target {
    return {
      except: (room) => target(resolveRooms, [...exceptRooms, ...(Array.isArray(room) ? room : [room])]),
      async emit(event, data) {
        const rooms = resolveRooms();
        checkRooms([...rooms, ...exceptRooms]);
        checkEvent(event);
        const [result] = await settle(() => socketIoEmitter.to(rooms).except(exceptRooms).emit(event, data));
        return result ?? { subscribers: 0 };
      },
    };
  }

  return {
    toUser: (userId) => target(() => [userRoom(userId)]),
    toSite: (host) => target(() => [siteRoom(host)]),
    to: (room) => target(() => (Array.isArray(room) ? [...room] : [room])),
    async emit(event, data) {
      checkEvent(event);
      const [result] = await settle(() => socketIoEmitter.emit(event, data));
      return result ?? { subscribers: 0 };
    },
    async disconnectUser(userId, message = ERRORS.kicked.message) {
      const room = userRoom(userId);
      // One connection publishes both in order, so each socket sees `kicked` before it is closed.
      await settle(() => {
        socketIoEmitter.to(room).emit(SERVER_EVENTS.kicked, { code: "kicked", message });
        socketIoEmitter.in(room).disconnectSockets(true);
      });
    },
    async publishFrame(frame) {
      const bytes = encodeRawFrame(frame);
      return publish(RAW_FRAME_CHANNEL, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    },
    async close() {
      closed = true;
      await owned?.close();
    },
  };
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

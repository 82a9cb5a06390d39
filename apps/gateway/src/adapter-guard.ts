import {
  type FrameLimits,
  NOT_WHOLE_MSGPACK,
  arrayFrameProblem,
  isWholeMsgpackValue,
  nestsDeeperThan,
  preview,
} from "@switchboard/protocol";
import { decode as decodeMsgpack, encode as encodeMsgpack } from "notepack.io";
import { UNAUTHENTICATED_ROOM } from "./rooms.js";

/**
 * Hardening of @socket.io/redis-adapter 8. The stock adapter trusts every message on its Redis
 * channels: it decodes broadcasts without try/catch (one bad frame throws inside the Redis client),
 * and its request handler is async with its promise dropped, so a request of an unexpected shape
 * (`rooms: 5`, `packet: null`) ends the process on an unhandled rejection. Here every message is
 * size-checked, decoded and checked against the request types below before the adapter sees it.
 */

/** Why a frame was dropped, as counted in `switchboard_frames_dropped_total{reason}`. */
export type DropReason =
  | "frame_not_msgpack"
  | "frame_invalid"
  | "frame_too_large"
  | "frame_unsigned"
  | "frame_signature_invalid"
  | "route_unknown"
  | "route_incomplete";
export type DropFrame = (channel: string, reason: DropReason, detail: string) => void;

export interface GuardLimits {
  frameMaxBytes: number;
  payloadMaxDepth: number;
}

/** The request types of @socket.io/redis-adapter 8 (its `RequestType` enum). */
export const RequestType = {
  SOCKETS: 0,
  ALL_ROOMS: 1,
  REMOTE_JOIN: 2,
  REMOTE_LEAVE: 3,
  REMOTE_DISCONNECT: 4,
  REMOTE_FETCH: 5,
  SERVER_SIDE_EMIT: 6,
  BROADCAST: 7,
  BROADCAST_CLIENT_COUNT: 8,
  BROADCAST_ACK: 9,
} as const;

// Namespace events a server-side emit must never fire: they would call connection handlers with a fake
// socket, and `error`, emitted on an EventEmitter without an error listener, throws (the adapter's
// request handler does not catch it, so the process would end on an unhandled rejection).
const NAMESPACE_EVENTS: ReadonlySet<string> = new Set([
  "connect",
  "connection",
  "disconnect",
  "disconnecting",
  "error",
  "new_namespace",
  "newListener",
  "removeListener",
]);
// A request wraps its payload a few levels down (request → packet → data → arguments).
const FRAMING_DEPTH = 4;
const ADAPTER_CHANNEL = "adapter";

type Refused = { ok: false; reason: DropReason; detail: string };
type Checked = { ok: true; value: unknown } | Refused;
type RedisMessageListener = (message: Buffer, channel: Buffer) => unknown;

/** The subscriber calls the adapter makes on a node-redis v4 client. */
export interface AdapterSubscriber {
  pSubscribe(patterns: string | string[], listener: RedisMessageListener, bufferMode: true): Promise<void>;
  subscribe(channels: string | string[], listener: RedisMessageListener, bufferMode: true): Promise<void>;
  pUnsubscribe(patterns: string | string[], listener: RedisMessageListener | undefined, bufferMode: true): Promise<void>;
  unsubscribe(channels: string | string[], listener: RedisMessageListener | undefined, bufferMode: true): Promise<void>;
  on(event: "error", listener: (err: Error) => void): unknown;
  off(event: "error", listener: (err: Error) => void): unknown;
  listenerCount(event: string): number;
}

export interface AdapterGuard {
  /** The `parser` option of the adapter. */
  parser: { encode(value: unknown): Buffer; decode(message: Buffer): unknown };
  /** Wraps the subscriber the adapter is given. */
  guard(subscriber: AdapterSubscriber): AdapterSubscriber;
  /** Names this node's own adapter, whose broadcasts come back from Redis and are not messages to count. */
  ownUid(uid: string): void;
  /** The adapter's rooms: broadcasts leave out unauthenticated sockets only where there are some. */
  localRooms(rooms: ReadonlyMap<string, unknown>): void;
}

/**
 * @param onMessage called for each broadcast that passed the checks (a message from another node
 *   or a Redis emitter, on its way to this node's sockets)
 */
export function createAdapterGuard(limits: GuardLimits, drop: DropFrame, onMessage: () => void = () => {}): AdapterGuard {
  /**
   * Request and response messages are checked before the adapter sees them; the adapter then gets
   * a placeholder whose first byte is not "{" (so it does not parse JSON itself) and the parser
   * hands back the value already decoded and checked, decoding nothing twice.
   */
  const checkedMessages = new WeakMap<Buffer, unknown>();
  const frameLimits: FrameLimits = { maxDepth: limits.payloadMaxDepth };
  const ownUids = new Set<string>();
  // Until the adapter says otherwise, every broadcast is taken to need the exception.
  let rooms: ReadonlyMap<string, unknown> = new Map([[UNAUTHENTICATED_ROOM, true]]);

  const parser = {
    encode: (value: unknown): Buffer => encodeMsgpack(value),
    decode(message: Buffer): unknown {
      if (checkedMessages.has(message)) return checkedMessages.get(message);
      const checked = checkBroadcast(message, limits, frameLimits, rooms);
      if (!checked.ok) {
        drop(ADAPTER_CHANNEL, checked.reason, checked.detail);
        throw new DroppedFrame();
      }
      if (Array.isArray(checked.value) && !ownUids.has(checked.value[0] as string)) onMessage();
      return checked.value;
    },
  };

  function guard(subscriber: AdapterSubscriber): AdapterSubscriber {
    const wrappers = new WeakMap<RedisMessageListener, RedisMessageListener>();
    const onFailure = (err: unknown) => {
      if (!(err instanceof DroppedFrame)) drop(ADAPTER_CHANNEL, "frame_invalid", err instanceof Error ? err.message : String(err));
    };
    /** Runs the adapter's listener so that nothing it throws or rejects reaches the Redis client. */
    const wrap = (listener: RedisMessageListener, check?: (message: Buffer, channel: string) => Checked): RedisMessageListener => {
      let wrapped = wrappers.get(listener);
      if (wrapped) return wrapped;
      wrapped = (message, channel) => {
        try {
          let handed = message;
          if (check) {
            const checked = check(message, channel.toString());
            if (!checked.ok) return drop(ADAPTER_CHANNEL, checked.reason, checked.detail);
            handed = Buffer.from([0xc1]);
            checkedMessages.set(handed, checked.value);
          }
          const result = listener(handed, channel);
          if (result instanceof Promise) result.catch(onFailure);
        } catch (err) {
          onFailure(err);
        }
      };
      wrappers.set(listener, wrapped);
      return wrapped;
    };
    const checkRequestOrResponse = (message: Buffer, channel: string): Checked =>
      channel.includes("-response#") ? checkResponse(message, limits) : checkRequest(message, limits);
    return {
      // The broadcast channels: the parser checks each frame as the adapter decodes it.
      pSubscribe: (patterns, listener, bufferMode) => subscriber.pSubscribe(patterns, wrap(listener), bufferMode),
      subscribe: (channels, listener, bufferMode) => subscriber.subscribe(channels, wrap(listener, checkRequestOrResponse), bufferMode),
      pUnsubscribe: (patterns, listener, bufferMode) => subscriber.pUnsubscribe(patterns, listener && wrappers.get(listener), bufferMode),
      unsubscribe: (channels, listener, bufferMode) => subscriber.unsubscribe(channels, listener && wrappers.get(listener), bufferMode),
      on: (event, listener) => subscriber.on(event, listener),
      off: (event, listener) => subscriber.off(event, listener),
      listenerCount: (event) => subscriber.listenerCount(event),
    };
  }

  return {
    parser,
    guard,
    ownUid: (uid) => ownUids.add(uid),
    localRooms: (adapterRooms) => {
      rooms = adapterRooms;
    },
  };
}

/** Thrown by the parser for a frame it has already reported; the adapter's caller catches it. */
class DroppedFrame extends Error {}

function tooLarge(message: Buffer, limits: GuardLimits): Checked | null {
  return message.length > limits.frameMaxBytes
    ? { ok: false, reason: "frame_too_large", detail: `${message.length} bytes is more than FRAME_MAX_BYTES (${limits.frameMaxBytes})` }
    : null;
}

/**
 * One MessagePack message from Redis, decoded as every channel's messages are: with notepack.io, the
 * adapter's own decoder, after its lengths were checked against its bytes. Never throws.
 * @param checkedWhole the caller has already read every length and count in `message` against its
 *   bytes (a successful `peekFrameRooms` does), so that check is not made twice
 */
export function decodeRedisMessage(message: Buffer, checkedWhole = false): Checked {
  return decodeMessage(message, false, checkedWhole);
}

function decodeMessage(message: Buffer, allowJson: boolean, checkedWhole = false): Checked {
  // The adapter reads a request or response starting with "{" as JSON, anything else as MessagePack.
  const json = allowJson && message[0] === 0x7b;
  // notepack.io believes the lengths a frame declares: checked first, so a few bytes claiming a gigabyte cannot stall the node.
  if (!json && !checkedWhole && !isWholeMsgpackValue(message)) return { ok: false, reason: "frame_not_msgpack", detail: NOT_WHOLE_MSGPACK };
  try {
    const value: unknown = json ? JSON.parse(message.toString()) : decodeMsgpack(message);
    return { ok: true, value };
  } catch (err) {
    // notepack decodes recursively: a frame nested tens of thousands of levels deep overflows it.
    if (err instanceof RangeError && /call stack/.test(err.message))
      return { ok: false, reason: "frame_invalid", detail: "nested too deeply to decode" };
    return { ok: false, reason: "frame_not_msgpack", detail: err instanceof Error ? err.message.slice(0, 200) : "undecodable" };
  }
}

/** A broadcast `[uid, packet, opts]`, with unauthenticated sockets (if any are here) added to its exceptions. */
function checkBroadcast(message: Buffer, limits: GuardLimits, frameLimits: FrameLimits, localRooms: ReadonlyMap<string, unknown>): Checked {
  const decoded = tooLarge(message, limits) ?? decodeMessage(message, false);
  if (!decoded.ok) return decoded;
  const value = decoded.value;
  if (!Array.isArray(value)) return invalid(`a broadcast must be [uid, packet, opts], not ${preview(value)}`);
  const problem = value.length === 3 ? arrayFrameProblem(value, frameLimits) : "expected [uid, packet, opts]";
  if (problem !== null) return invalid(problem);
  // The adapter reads opts without checking: a frame may leave them out, the adapter may not.
  value[2] ??= {};
  if (localRooms.has(UNAUTHENTICATED_ROOM)) {
    // Set on the decoded object, which nothing else holds: a spread copy costs more than the whole check.
    const opts = value[2] as { except?: string[] };
    opts.except = withUnauthenticated(opts.except);
  }
  // The decoded value, checked and completed in place: nothing new is built for a message that passes.
  return decoded;
}

/** A request or response: within the size limit, MessagePack or JSON, a map, not nested too deeply. */
function decodeMap(
  message: Buffer,
  limits: GuardLimits,
  what: "request" | "response",
): { ok: true; value: Record<string, unknown> } | Refused {
  const decoded = tooLarge(message, limits) ?? decodeMessage(message, true);
  if (!decoded.ok) return decoded;
  const value = decoded.value;
  if (!isMap(value)) return invalid(`a ${what} must be a map, not ${preview(value)}`);
  if (nestsDeeperThan(value, limits.payloadMaxDepth + FRAMING_DEPTH)) return invalid(`the ${what} is nested too deeply`);
  return { ok: true, value };
}

function checkRequest(message: Buffer, limits: GuardLimits): Checked {
  const decoded = decodeMap(message, limits, "request");
  if (!decoded.ok) return decoded;
  const request = decoded.value;
  const problem = requestProblem(request, limits);
  if (problem !== null) return invalid(`request type ${preview(request.type)}: ${problem}`);
  if (request.type === RequestType.BROADCAST || (request.type === RequestType.REMOTE_JOIN && isMap(request.opts))) {
    // Sockets that have not authenticated receive nothing and join nothing, whoever asks.
    const opts = request.opts as Record<string, unknown>;
    opts.except = withUnauthenticated(opts.except as string[] | undefined);
  }
  return { ok: true, value: request };
}

/** What is wrong with a request of the adapter's protocol, or null when its handler can take it. */
function requestProblem(request: Record<string, unknown>, limits: GuardLimits): string | null {
  const { type } = request;
  if (request.uid !== undefined && typeof request.uid !== "string") return "uid must be a string";
  switch (type) {
    case RequestType.SOCKETS:
      return requestId(request) ?? optionalList(request.rooms, "rooms");
    case RequestType.ALL_ROOMS:
      return requestId(request);
    case RequestType.REMOTE_JOIN:
    case RequestType.REMOTE_LEAVE:
      if (request.opts !== undefined && request.opts !== null) return optsProblem(request.opts) ?? list(request.rooms, "rooms");
      return typeof request.sid === "string" && typeof request.room === "string"
        ? optionalRequestId(request)
        : "needs opts and rooms, or sid and room";
    case RequestType.REMOTE_DISCONNECT:
      if (request.close !== undefined && typeof request.close !== "boolean") return "close must be a boolean";
      if (request.opts !== undefined && request.opts !== null) return optsProblem(request.opts);
      return typeof request.sid === "string" ? optionalRequestId(request) : "needs opts, or sid";
    case RequestType.REMOTE_FETCH:
      return requestId(request) ?? optsProblem(request.opts);
    case RequestType.SERVER_SIDE_EMIT: {
      const data = request.data;
      if (!Array.isArray(data) || typeof data[0] !== "string" || NAMESPACE_EVENTS.has(data[0]))
        return "needs data [event, ...args] with a non-reserved event";
      return optionalRequestId(request);
    }
    case RequestType.BROADCAST: {
      const packetProblem = arrayFrameProblem([request.uid ?? "", request.packet, request.opts], { maxDepth: limits.payloadMaxDepth });
      return requestId(request) ?? optsProblem(request.opts) ?? packetProblem;
    }
    default:
      return "not a request type this node answers";
  }
}

function checkResponse(message: Buffer, limits: GuardLimits): Checked {
  const decoded = decodeMap(message, limits, "response");
  if (!decoded.ok) return decoded;
  const response = decoded.value;
  const problem =
    requestId(response) ??
    optionalArray(response.sockets, "sockets") ??
    optionalList(response.rooms, "rooms") ??
    (response.type === RequestType.BROADCAST_CLIENT_COUNT &&
    !(Number.isSafeInteger(response.clientCount) && (response.clientCount as number) >= 0)
      ? "clientCount must be a whole number"
      : null);
  return problem === null ? { ok: true, value: response } : invalid(`response: ${problem}`);
}

function optsProblem(opts: unknown): string | null {
  if (!isMap(opts)) return "opts must be a map";
  return (
    optionalList(opts.rooms, "opts.rooms") ??
    optionalList(opts.except, "opts.except") ??
    (opts.flags === undefined || opts.flags === null || isMap(opts.flags) ? null : "opts.flags must be a map")
  );
}

function requestId(value: Record<string, unknown>): string | null {
  return typeof value.requestId === "string" && value.requestId.length > 0 ? null : "requestId must be a non-empty string";
}

function optionalRequestId(value: Record<string, unknown>): string | null {
  return value.requestId === undefined ? null : requestId(value);
}

function list(value: unknown, name: string): string | null {
  return Array.isArray(value) && value.every((item) => typeof item === "string") ? null : `${name} must be a list of strings`;
}

function optionalList(value: unknown, name: string): string | null {
  return value === undefined || value === null ? null : list(value, name);
}

function optionalArray(value: unknown, name: string): string | null {
  return value === undefined || value === null || Array.isArray(value) ? null : `${name} must be a list`;
}

function withUnauthenticated(except: string[] | undefined): string[] {
  return [...(except ?? []), UNAUTHENTICATED_ROOM];
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function invalid(detail: string): Refused {
  return { ok: false, reason: "frame_invalid", detail };
}

import { newMessageId } from "./message-id.js";
import { pack, unpack } from "./msgpack.js";
import { isWholeMsgpackValue } from "./peek.js";
import { DEFAULT_EVENT, isPublishableEvent } from "./events.js";
import { SwitchboardError } from "./errors.js";
import { DEFAULT_MAX_DEPTH, nestsDeeperThan, preview } from "./untrusted.js";

/** The Redis channel every gateway node subscribes to for raw frames. */
export const RAW_FRAME_CHANNEL = "socket.io#emitter";

/**
 * A raw frame in the map layout, written by a MessagePack library in whatever language.
 * `event` defaults to "message"; `except` rooms are left out; `_in` adds rooms. Without `room`,
 * the event's route (EVENT_ROUTES, or one registered at run time) names the room, its `{user}`
 * and `{site}` filled from `user` and `site`. `id` and `ts` identify the message (the encoder
 * fills them in when absent).
 */
export interface RawFrame {
  room?: string | string[];
  data: unknown;
  event?: string;
  except?: string | string[];
  _in?: string | string[];
  user?: string | number;
  site?: string;
  id?: string;
  ts?: number;
}

/** What a decoded frame asks a node to do, whichever layout it came in. */
export interface Delivery {
  /** Rooms to deliver to; in the array layout, empty means every authenticated socket. */
  rooms: string[];
  except: readonly string[];
  event: string;
  /** The event arguments: `[data]` for the map layout, everything after the event for the array layout. */
  args: unknown[];
  layout: "map" | "array";
  /** Rooms `_in` adds (map layout). */
  in: readonly string[];
  /** Map layout without `room`: the event's route decides, its placeholders filled from these. */
  route: { user?: string; site?: string } | null;
  id?: string;
  ts?: number;
}

/** The empty list of rooms that a frame or a publication without `except` or `_in` (nearly every one) shares, rather than getting one of its own. */
export const NO_ROOMS: readonly string[] = Object.freeze([]);

export type DecodeResult = { ok: true; delivery: Delivery } | { ok: false; code: "frame_not_msgpack" | "frame_invalid"; reason: string };

/** Limits applied when checking a frame. */
export interface FrameLimits {
  /**
   * How deeply the event arguments may nest; deeper frames are refused as `frame_invalid`.
   * @default 32
   */
  maxDepth?: number;
}

/**
 * Checks a map-layout frame exactly as the gateway checks one from Redis, filling in `id` and `ts`;
 * throws a SwitchboardError (`invalid_event`, `invalid_room`, `frame_invalid`) naming the problem.
 */
export function checkRawFrame(frame: RawFrame, limits: FrameLimits = {}): Delivery & { id: string; ts: number } {
  const checked = checkMapFrame(frame as unknown as Record<string, unknown>, limits);
  if (typeof checked === "string") {
    throw new SwitchboardError(
      checked.startsWith("event") ? "invalid_event" : /^(room|except|_in|user|site)/.test(checked) ? "invalid_room" : "frame_invalid",
      checked,
    );
  }
  // Filled in on the checked copy: a spread of the frame with them added costs more than the whole check.
  checked.id ??= newMessageId();
  checked.ts ??= Date.now();
  return checked as Delivery & { id: string; ts: number };
}

/** Encodes a map-layout frame, validating it exactly as the gateway will. */
export function encodeRawFrame(frame: RawFrame, limits: FrameLimits = {}): Uint8Array {
  const checked = checkRawFrame(frame, limits);
  const wire: Record<string, unknown> = { event: checked.event, data: frame.data, id: checked.id, ts: checked.ts };
  if (frame.room !== undefined) wire.room = frame.room;
  if (checked.except.length > 0) wire.except = frame.except;
  if (checked.in.length > 0) wire._in = frame._in;
  if (checked.route?.user !== undefined) wire.user = checked.route.user;
  if (checked.route?.site !== undefined) wire.site = checked.route.site;
  // `undefined` inside data is left out rather than sent as nil, as JSON would.
  return pack(wire);
}

/**
 * Encodes a frame to every authenticated socket, which only the array layout can say
 * (`[packet, { rooms: [] }]`): for publishers that may write nothing but the raw channel.
 */
export function encodeEveryoneFrame(event: string, data: unknown, limits: FrameLimits = {}): Uint8Array {
  if (!isPublishableEvent(event)) throw new SwitchboardError("invalid_event", `event ${preview(event)} is not a publishable event name`);
  // Checked as the gateway will check it, as encodeRawFrame does.
  const tooDeep = dataDepthProblem(data, limits);
  if (tooDeep !== null) throw new SwitchboardError("frame_invalid", tooDeep);
  return pack([
    { type: 2, data: [event, data], nsp: "/" },
    { rooms: [], except: [] },
  ]);
}

/** Decodes a frame from the raw channel in either documented layout. Never throws. */
export function decodeRawFrame(bytes: Uint8Array, limits: FrameLimits = {}): DecodeResult {
  const decoded = decodeMsgpack(bytes);
  return decoded.ok ? readRawFrame(decoded.value, limits) : decoded;
}

/** Why bytes whose lengths and counts run past their end are refused, before any decoder reads them. */
export const NOT_WHOLE_MSGPACK = "not one whole MessagePack value: a length or count runs past its end";

/** Decodes MessagePack without throwing. */
export function decodeMsgpack(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; code: "frame_not_msgpack"; reason: string } {
  // The decoder makes an array of the length an array header claims before it reads a single item:
  // eight bytes claiming 24 million items cost it half a second and 190 MB. Checked against the bytes
  // first, no count can exceed them (every item takes at least one byte).
  if (!isWholeMsgpackValue(bytes)) return { ok: false, code: "frame_not_msgpack", reason: NOT_WHOLE_MSGPACK };
  try {
    return { ok: true, value: unpack(bytes) };
  } catch (err) {
    return { ok: false, code: "frame_not_msgpack", reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Reads an already decoded frame in either documented layout. Never throws. */
export function readRawFrame(value: unknown, limits: FrameLimits = {}): DecodeResult {
  const checked = Array.isArray(value)
    ? readArrayFrame(value, limits)
    : isPlainObject(value)
      ? checkMapFrame(value, limits)
      : "not a map or an array";
  return typeof checked === "string" ? { ok: false, code: "frame_invalid", reason: checked } : { ok: true, delivery: checked };
}

/** Says so when a frame's data nests deeper than the limit; null when it does not. */
function dataDepthProblem(data: unknown, limits: FrameLimits): string | null {
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  return nestsDeeperThan(data, maxDepth) ? `data is nested deeper than ${maxDepth} levels` : null;
}

function checkMapFrame(frame: Record<string, unknown>, limits: FrameLimits): Delivery | string {
  const routed = frame.room === undefined || frame.room === null;
  const rooms = routed ? [] : roomList(frame.room, "room");
  if (typeof rooms === "string") return rooms;
  if (!routed && rooms.length === 0) return "room is an empty list";
  if (!("data" in frame)) return "data is missing";
  const event = frame.event ?? DEFAULT_EVENT;
  if (!isPublishableEvent(event)) return `event ${preview(event)} is not a publishable event name`;
  const tooDeep = dataDepthProblem(frame.data, limits);
  if (tooDeep !== null) return tooDeep;
  const except = frame.except === undefined ? NO_ROOMS : roomList(frame.except, "except");
  if (typeof except === "string") return except;
  const added = frame._in === undefined || frame._in === null ? NO_ROOMS : roomList(frame._in, "_in");
  if (typeof added === "string") return added;
  if (frame.id !== undefined && (typeof frame.id !== "string" || frame.id.length === 0)) return "id must be a non-empty string";
  if (frame.ts !== undefined && (typeof frame.ts !== "number" || !Number.isFinite(frame.ts)))
    return "ts must be a number (ms since the epoch)";
  let route: Delivery["route"] = null;
  if (routed) {
    route = {};
    if (frame.user !== undefined) {
      if ((typeof frame.user !== "string" || frame.user.length === 0) && !Number.isSafeInteger(frame.user)) return "user must be a user id";
      route.user = String(frame.user);
    }
    if (frame.site !== undefined) {
      if (typeof frame.site !== "string") return "site must be a host";
      route.site = frame.site;
    }
  }
  // id and ts are in the literal, undefined when absent: added afterwards, each would change the object's shape.
  return {
    rooms,
    except,
    event,
    args: [frame.data],
    layout: "map",
    in: added,
    route,
    id: typeof frame.id === "string" ? frame.id : undefined,
    ts: typeof frame.ts === "number" ? frame.ts : undefined,
  };
}

interface ArrayFrameParts {
  event: string;
  data: unknown[];
  rooms: string[];
  except: string[];
}

// The one check of the array layout, shared by the raw channel and the adapter guard.
function checkArrayFrame(frame: unknown[], limits: FrameLimits): ArrayFrameParts | string {
  // Read by index, not destructured from a pair: this runs for every adapter message a node receives.
  const withUid = frame.length === 3 && typeof frame[0] === "string";
  const packet = withUid ? frame[1] : frame.length === 2 ? frame[0] : undefined;
  const opts = withUid ? frame[2] : frame.length === 2 ? frame[1] : undefined;
  if (!isPlainObject(packet)) return "array frame: expected [packet, opts] or [uid, packet, opts]";
  // 5 is BINARY_EVENT, which Socket.IO servers write when an argument holds binary data.
  if (packet.type !== 2 && packet.type !== 5) return "array frame: packet.type must be 2 (EVENT) or 5 (BINARY_EVENT)";
  if (packet.nsp !== undefined && packet.nsp !== "/") return `array frame: namespace ${preview(packet.nsp)} is not served`;
  const data = packet.data;
  if (!Array.isArray(data) || data.length === 0) return "array frame: packet.data must be [event, ...args]";
  const event = data[0];
  if (!isPublishableEvent(event)) return `array frame: event ${preview(event)} is not a publishable event name`;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  // packet.data is [event, ...args]: the arguments may nest maxDepth levels below it.
  if (nestsDeeperThan(data, maxDepth + 1)) return `array frame: data is nested deeper than ${maxDepth} levels`;
  if (opts !== undefined && opts !== null && !isPlainObject(opts)) return "array frame: opts must be a map";
  const rooms = opts?.rooms === undefined || opts.rooms === null ? [] : roomList(opts.rooms, "rooms", true);
  if (typeof rooms === "string") return `array frame: ${rooms}`;
  const except = opts?.except === undefined || opts.except === null ? [] : roomList(opts.except, "except", true);
  if (typeof except === "string") return `array frame: ${except}`;
  return { event, data, rooms, except };
}

/**
 * Reads an array-layout frame: `[packet, { rooms, flags }]` as the first socket.io-emitter
 * releases wrote it, or `[uid, packet, { rooms, except, flags }]` as every socket.io Redis
 * adapter and emitter since writes it. Returns what to deliver, or why the frame is unusable.
 */
export function readArrayFrame(frame: unknown[], limits: FrameLimits = {}): Delivery | string {
  const parts = checkArrayFrame(frame, limits);
  if (typeof parts === "string") return parts;
  return { rooms: parts.rooms, except: parts.except, event: parts.event, args: parts.data.slice(1), layout: "array", in: [], route: null };
}

/** Why an array-layout frame is unusable, or null; checks without building a delivery. */
export function arrayFrameProblem(frame: unknown[], limits: FrameLimits = {}): string | null {
  const parts = checkArrayFrame(frame, limits);
  return typeof parts === "string" ? parts : null;
}

function roomList(value: unknown, field: string, listOnly = false): string[] | string {
  if (typeof value === "string" && !listOnly) return value.length > 0 ? [value] : `${field} is an empty string`;
  if (!Array.isArray(value)) return `${field} must be ${listOnly ? "a list of strings" : "a string or a list of strings"}`;
  for (const room of value) {
    if (typeof room !== "string" || room.length === 0) return `${field} must contain only non-empty strings`;
  }
  return value as string[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/**
 * A signed raw frame: the frame's own MessagePack bytes, wrapped with who signed them and when.
 * `sig` is HMAC-SHA256 with the `kid`'s secret over the ASCII decimal `ts`, a ".", then `frame`
 * (see {@link signedPayload}): the bytes are signed as sent, so no language has to reproduce an encoding.
 */
export interface SignedEnvelope {
  /** Names the key in the gateway's FRAME_SIGNING_KEYS. */
  kid: string;
  /** When it was signed, ms since the epoch; too old or too far ahead and it is refused. */
  ts: number;
  /** 32 bytes of HMAC-SHA256. */
  sig: Uint8Array;
  /** The frame, MessagePack-encoded, in either layout. */
  frame: Uint8Array;
}

/** The bytes a signature covers: `<ts>.` followed by the frame's bytes. */
export function signedPayload(ts: number, frame: Uint8Array): Uint8Array {
  const prefix = new TextEncoder().encode(`${ts}.`);
  const payload = new Uint8Array(prefix.length + frame.length);
  payload.set(prefix);
  payload.set(frame, prefix.length);
  return payload;
}

/**
 * Seals a frame in a signed envelope. `hmac` computes HMAC-SHA256 with the `kid`'s secret (node:crypto
 * in Node); it is passed in so that this package stays free of Node's crypto for browsers.
 */
export function sealFrame(frame: Uint8Array, kid: string, hmac: (payload: Uint8Array) => Uint8Array, ts: number = Date.now()): Uint8Array {
  return encodeSignedEnvelope({ kid, ts, sig: hmac(signedPayload(ts, frame)), frame });
}

/** Encodes a signed envelope (the signature is computed by the caller, who holds the secret). */
export function encodeSignedEnvelope(envelope: SignedEnvelope): Uint8Array {
  return pack({ kid: envelope.kid, ts: envelope.ts, sig: envelope.sig, frame: envelope.frame });
}

/**
 * The signed envelope in a decoded raw frame: null when the frame is not one (it has no `sig`),
 * a reason when it is one of the wrong shape.
 */
export function readSignedEnvelope(value: unknown): SignedEnvelope | null | string {
  if (!isPlainObject(value) || !("sig" in value)) return null;
  const { kid, ts, sig, frame } = value;
  if (typeof kid !== "string" || kid.length === 0 || kid.length > 200) return "signed frame: kid must be a non-empty string";
  if (typeof ts !== "number" || !Number.isSafeInteger(ts)) return "signed frame: ts must be whole ms since the epoch";
  if (!(sig instanceof Uint8Array) || sig.length !== 32) return "signed frame: sig must be 32 bytes (binary)";
  if (!(frame instanceof Uint8Array)) return "signed frame: frame must be the frame's MessagePack bytes (binary)";
  return { kid, ts, sig, frame };
}

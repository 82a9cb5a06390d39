import { SwitchboardError } from "./errors.js";
import { pack } from "./msgpack.js";
import { RAW_FRAME_CHANNEL } from "./frames.js";
import { REDIS_KEYS } from "./redis-keys.js";
import { userIdOf } from "./rooms.js";
import { preview } from "./untrusted.js";

/**
 * A control frame: a raw frame (on `socket.io#emitter`, signed when nodes require it) that tells
 * every node to act rather than to deliver. A map with a `control` key:
 * - `kick`: disconnect every socket of `user` (after a `kicked` event carrying `reason`); with
 *   `refuseBefore` (ms since the epoch), refuse that user's tokens issued at or before it, until
 *   `refuseUntil` (ms since the epoch) when given: when the refusal stored in Redis expires;
 * - `allow`: stop refusing the user's tokens;
 * - `revoke`: refuse the token whose `jti` is given until its `exp` (seconds), and disconnect its sockets;
 * - `routes`: the registered event routes changed; read them again.
 */
export type ControlFrame =
  | { control: "kick"; user: string; reason?: string; refuseBefore?: number; refuseUntil?: number }
  | { control: "allow"; user: string }
  | { control: "revoke"; jti: string; exp: number }
  | { control: "routes" };

export function encodeControlFrame(frame: ControlFrame): Uint8Array {
  return pack(frame);
}

/** The control frame in a decoded raw frame: null when it is not one, a reason when it is one of the wrong shape. */
export function readControlFrame(value: unknown): ControlFrame | null | string {
  if (typeof value !== "object" || value === null || Array.isArray(value) || !("control" in value)) return null;
  const frame = value as Record<string, unknown>;
  const user = typeof frame.user === "string" && frame.user.length > 0 && frame.user.length <= 256 ? frame.user : null;
  switch (frame.control) {
    case "kick":
      if (user === null) return "kick: user must be a user id";
      if (frame.reason !== undefined && (typeof frame.reason !== "string" || frame.reason.length > 500))
        return "kick: reason must be a string of at most 500 characters";
      if (frame.refuseBefore !== undefined && !Number.isSafeInteger(frame.refuseBefore))
        return "kick: refuseBefore must be ms since the epoch";
      if (frame.refuseUntil !== undefined && !Number.isSafeInteger(frame.refuseUntil))
        return "kick: refuseUntil must be ms since the epoch";
      return {
        control: "kick",
        user,
        ...(typeof frame.reason === "string" ? { reason: frame.reason } : {}),
        ...(typeof frame.refuseBefore === "number" ? { refuseBefore: frame.refuseBefore } : {}),
        ...(typeof frame.refuseUntil === "number" ? { refuseUntil: frame.refuseUntil } : {}),
      };
    case "allow":
      return user === null ? "allow: user must be a user id" : { control: "allow", user };
    case "revoke":
      if (typeof frame.jti !== "string" || frame.jti.length === 0 || frame.jti.length > 256)
        return "revoke: jti must be a non-empty string";
      if (!Number.isSafeInteger(frame.exp)) return "revoke: exp must be seconds since the epoch";
      return { control: "revoke", jti: frame.jti, exp: frame.exp as number };
    case "routes":
      return { control: "routes" };
    default:
      return `control ${preview(frame.control)} is not one this server knows`;
  }
}

/** What acting on the cluster takes: a key with an expiry, and a raw frame to every node. */
export interface ControlTransport {
  /** SET key value PX ttlMs. */
  setKey(key: string, value: string, ttlMs: number): Promise<unknown>;
  deleteKey(key: string): Promise<unknown>;
  /** Publishes a raw frame on RAW_FRAME_CHANNEL (signed when the publisher signs). */
  publishFrame(frame: Uint8Array, channel: typeof RAW_FRAME_CHANNEL): Promise<unknown>;
}

export interface KickOptions {
  /** Sent to the user's sockets in `kicked` `{ code: "kicked", message, reason }`. */
  reason?: string;
  /**
   * Refuse the user's tokens issued at or before the kick, on every node, until they could no
   * longer be valid anyway.
   * @default true
   */
  refuseReconnect?: boolean;
  /**
   * How long the refusal lasts: the longest token lifetime the gateways accept (their JWT_MAX_TTL_SECONDS).
   * @default 86400
   */
  refuseForSeconds?: number;
}

/** The longest refusal a kick stores: ten years, the longest JWT_MAX_TTL_SECONDS a gateway takes. */
export const MAX_REFUSE_SECONDS = 10 * 365 * 86_400;
/** The latest `exp` a revocation takes: the last second of the year 9999. */
export const MAX_TOKEN_EXP = 253_402_300_799;

/**
 * Kicks a user off the cluster: the one implementation behind the HTTP API's disconnect route,
 * the development kick and the emitter's `disconnectUser`. The refusal is stored before the frame
 * goes out, so a socket that reconnects the moment it is kicked is already refused.
 */
export async function kickUser(
  transport: ControlTransport,
  userId: string | number,
  options: KickOptions = {},
): Promise<{ user: string; at: number }> {
  const user = userIdOf(userId);
  const at = Date.now();
  const refuse = options.refuseReconnect ?? true;
  const seconds = options.refuseForSeconds ?? 86_400;
  // Checked before anything is stored: Redis refuses an expiry it cannot hold, after the kick was half done.
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_REFUSE_SECONDS) {
    throw new SwitchboardError(
      "invalid_request",
      `refuseForSeconds must be whole seconds from 1 to ${MAX_REFUSE_SECONDS}, not ${preview(seconds)}`,
    );
  }
  if (refuse) await transport.setKey(REDIS_KEYS.revokedUser(user), String(at), seconds * 1000);
  await transport.publishFrame(
    encodeControlFrame({
      control: "kick",
      user,
      ...(options.reason !== undefined ? { reason: options.reason } : {}),
      // The refusal's end goes with it, so a node forgets it when Redis does, whatever its JWT_MAX_TTL_SECONDS.
      ...(refuse ? { refuseBefore: at, refuseUntil: at + seconds * 1000 } : {}),
    }),
    RAW_FRAME_CHANNEL,
  );
  return { user, at };
}

/** Lifts a user's refusal, on every node. */
export async function allowUser(transport: ControlTransport, userId: string | number): Promise<string> {
  const user = userIdOf(userId);
  await transport.deleteKey(REDIS_KEYS.revokedUser(user));
  await transport.publishFrame(encodeControlFrame({ control: "allow", user }), RAW_FRAME_CHANNEL);
  return user;
}

/**
 * Refuses one token by its `jti` until its `exp` (seconds since the epoch), on every node.
 * `graceSeconds`: how long past its `exp` the nodes still take a token (their clock tolerance); the
 * stored revocation lasts that much longer, so a node that starts meanwhile still refuses it.
 */
export async function revokeToken(transport: ControlTransport, jti: string, exp: number, graceSeconds = 0): Promise<void> {
  if (!Number.isSafeInteger(exp) || exp < 0 || exp > MAX_TOKEN_EXP) {
    throw new SwitchboardError(
      "invalid_request",
      `exp must be whole seconds since the epoch, at most ${MAX_TOKEN_EXP} (the end of the year 9999), not ${preview(exp)}`,
    );
  }
  const ttlMs = (exp + graceSeconds) * 1000 - Date.now();
  if (ttlMs <= 0) return;
  await transport.setKey(REDIS_KEYS.revokedToken(jti), String(exp), ttlMs);
  await transport.publishFrame(encodeControlFrame({ control: "revoke", jti, exp }), RAW_FRAME_CHANNEL);
}

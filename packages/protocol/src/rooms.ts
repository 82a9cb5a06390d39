import { SwitchboardError } from "./errors.js";
import { preview } from "./untrusted.js";

/** The room every socket of one user joins. */
export function userRoom(userId: string | number): string {
  return `user(${userIdOf(userId)})`;
}

/** The room a service broadcasts to; sockets whose `services` claim allows the service may join it. */
export function serviceRoom(name: string): string {
  return `service(${name})`;
}

/** The room every socket of one site joins; the host is normalised first. */
export function siteRoom(host: string): string {
  const normalised = normaliseSiteHost(host);
  if (normalised === null) {
    throw new SwitchboardError("invalid_room", `Not a site host: ${preview(host)}`);
  }
  return `site(${normalised})`;
}

/**
 * A user id as it appears in room names: a non-empty string, or an integer written in decimal.
 * Numbers are accepted because many systems issue numeric ids; `42` and `"42"` name the same user.
 */
export function userIdOf(userId: unknown): string {
  if (typeof userId === "string" && userId.length > 0 && userId.length <= MAX_ID_LENGTH) return userId;
  if (typeof userId === "number" && Number.isSafeInteger(userId)) return String(userId);
  throw new SwitchboardError("invalid_room", `Not a user id: ${preview(userId)}`);
}

const MAX_ID_LENGTH = 256;
// A DNS name (letters, digits, hyphens, dots, underscores seen in the wild) or a bracketed IPv6 literal.
const HOST_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;

/**
 * Normalises a site host: lower case, port removed, one trailing dot removed, so
 * `Example.COM:8443` and `example.com.` both become `example.com`.
 * Returns null for anything that is not a bare host (schemes, paths, spaces, empty).
 */
export function normaliseSiteHost(raw: unknown): string | null {
  if (typeof raw !== "string") return null;
  let host = raw.trim().toLowerCase();
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end === -1) return null;
    const rest = host.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return null;
    host = host.slice(0, end + 1);
    return IPV6_LITERAL.test(host) ? host : null;
  }
  const portAt = host.lastIndexOf(":");
  if (portAt !== -1) {
    if (!/^\d{1,5}$/.test(host.slice(portAt + 1))) return null;
    host = host.slice(0, portAt);
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host.length === 0 || host.length > 253) return null;
  return HOST_NAME.test(host) ? host : null;
}

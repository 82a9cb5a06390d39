import type { Identity } from "@switchboard/protocol";
import { siteRoom, userRoom } from "@switchboard/protocol";

/**
 * Sockets that have connected but not yet authenticated wait in this room. Every broadcast
 * leaves it out, so such a socket receives nothing, not even a message to everyone.
 * The parentheses-free name cannot collide with `user(…)` or `site(…)`.
 */
export const UNAUTHENTICATED_ROOM = "switchboard:unauthenticated";

/** The rooms an authenticated socket joins. */
export function roomsFor(identity: Identity): string[] {
  return identity.site === null ? [userRoom(identity.user)] : [userRoom(identity.user), siteRoom(identity.site)];
}

/** A broadcast's exceptions plus the unauthenticated room, as the adapter takes them. */
export function exceptUnauthenticated(except: Iterable<string> | undefined): Set<string> {
  return new Set(except).add(UNAUTHENTICATED_ROOM);
}

/** The longest room name a client may subscribe to. */
export const MAX_ROOM_LENGTH = 200;
// Rooms a socket holds by who it is, never by asking.
const RESERVED_PREFIXES = ["user(", "site(", "switchboard:"];
// Socket.IO puts every socket in a room named by its id (20 base64url characters). Such a name is
// never subscribable, or a socket could join another socket's private room under a catch-all pattern.
const SOCKET_ID_SHAPE = /^[A-Za-z0-9_-]{20}$/;

/** Why a room can never be subscribed to by a client, whatever the patterns say; null if it can be. */
export function reservedRoomProblem(room: string): string | null {
  if (RESERVED_PREFIXES.some((prefix) => room.startsWith(prefix))) return "user(), site() and internal rooms come from the token, never from a subscription";
  if (SOCKET_ID_SHAPE.test(room)) return "a name of exactly 20 letters, digits, '-' or '_' is a socket id";
  return null;
}

/** One SUBSCRIBE_ROOMS pattern, split on `*` before any placeholder is filled in. */
interface CompiledPattern {
  /** The text between wildcards, still holding `{user}` / `{site}`; one part means no wildcard. */
  parts: string[];
  needsSite: boolean;
}

/**
 * Which rooms an authenticated socket may subscribe to, from SUBSCRIBE_ROOMS patterns:
 * `*` matches any run of characters, `{user}` and `{site}` exactly the socket's own user id and site.
 * The pattern is split on `*` first and the placeholders filled in afterwards, so a `*` inside a
 * user id is a literal character, never a wildcard. With no patterns nothing may be subscribed.
 */
export function createSubscriptionPolicy(patterns: readonly string[]): (identity: Identity, room: string) => boolean {
  const compiled: CompiledPattern[] = patterns.map((pattern) => ({ parts: pattern.split("*"), needsSite: pattern.includes("{site}") }));
  return (identity, room) => {
    if (room.length === 0 || room.length > MAX_ROOM_LENGTH || reservedRoomProblem(room) !== null) return false;
    return compiled.some((pattern) => {
      if (pattern.needsSite && identity.site === null) return false;
      const site = identity.site ?? "";
      const parts = pattern.parts.map((part) => part.replaceAll("{user}", identity.user).replaceAll("{site}", site));
      return globMatches(parts, room);
    });
  };
}

/** True when `text` is `parts` joined by runs of any characters. */
function globMatches(parts: readonly string[], text: string): boolean {
  if (parts.length === 1) return parts[0] === text;
  const first = parts[0] ?? "";
  const last = parts[parts.length - 1] ?? "";
  if (text.length < first.length + last.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  const end = text.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const found = text.indexOf(middle, at);
    if (found === -1 || found + middle.length > end) return false;
    at = found + middle.length;
  }
  return true;
}

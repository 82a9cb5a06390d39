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

/**
 * A broadcast's exceptions plus the unauthenticated room, as the adapter takes them. A node whose
 * sockets all authenticated in their handshake has no such room (the adapter drops empty rooms):
 * then the exceptions are left as they are, and no set is made per message.
 */
export function exceptUnauthenticated(except: Set<string> | undefined, localRooms: ReadonlyMap<string, unknown>): Set<string> | undefined {
  if (!localRooms.has(UNAUTHENTICATED_ROOM)) return except;
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
  if (RESERVED_PREFIXES.some((prefix) => room.startsWith(prefix)))
    return "user(), site() and internal rooms come from the token, never from a subscription";
  if (SOCKET_ID_SHAPE.test(room)) return "a name of exactly 20 letters, digits, '-' or '_' is a socket id";
  return null;
}

/** One room pattern (SUBSCRIBE_ROOMS, or a token's rooms or publish claim), split on `*` before any placeholder is filled in. */
export interface CompiledPattern {
  source: string;
  /** The text between wildcards, still holding `{user}` / `{site}`; one part means no wildcard. */
  parts: string[];
  needsSite: boolean;
}

export function compilePatterns(patterns: readonly string[]): readonly CompiledPattern[] {
  return patterns.map((pattern) => ({ source: pattern, parts: pattern.split("*"), needsSite: pattern.includes("{site}") }));
}

/**
 * True when `room` matches one of the patterns: `*` matches any run of characters, `{user}` and
 * `{site}` exactly the socket's own user id and site. The pattern is split on `*` first and the
 * placeholders filled in afterwards, so a `*` inside a user id is a literal character, never a wildcard.
 */
export function matchesPattern(patterns: readonly CompiledPattern[], identity: Identity, room: string): boolean {
  if (room.length === 0 || room.length > MAX_ROOM_LENGTH) return false;
  return patterns.some((pattern) => {
    if (pattern.needsSite && identity.site === null) return false;
    const site = identity.site ?? "";
    return globMatches(
      pattern.parts.map((part) => part.replaceAll("{user}", identity.user).replaceAll("{site}", site)),
      room,
    );
  });
}

/** The patterns as this socket may use them, placeholders filled in (for `welcome`). */
export function patternsFor(patterns: readonly CompiledPattern[], identity: Identity): string[] {
  // Filled in a loop rather than filtered and mapped: every welcome asks, and most sockets have no patterns.
  const filled: string[] = [];
  for (const pattern of patterns) {
    if (pattern.needsSite && identity.site === null) continue;
    filled.push(pattern.source.replaceAll("{user}", identity.user).replaceAll("{site}", identity.site ?? ""));
  }
  return filled;
}

/** Rooms nobody publishes to from a client: internal rooms and other sockets' own rooms. */
export function unpublishableRoomProblem(room: string): string | null {
  if (room.startsWith("switchboard:")) return "internal rooms take no client messages";
  if (SOCKET_ID_SHAPE.test(room)) return "a name of exactly 20 letters, digits, '-' or '_' is a socket id";
  return null;
}

/**
 * Which rooms an authenticated socket may subscribe to: those matching SUBSCRIBE_ROOMS or its
 * token's `rooms` claim. With no patterns nothing may be subscribed. `user(…)`, `site(…)`,
 * internal and socket-id rooms never may, whatever a pattern or claim says.
 */
export function createSubscriptionPolicy(
  patterns: readonly string[],
): (identity: Identity, room: string, claimed?: readonly CompiledPattern[]) => boolean {
  const configured = compilePatterns(patterns);
  return (identity, room, claimed = []) =>
    reservedRoomProblem(room) === null && (matchesPattern(configured, identity, room) || matchesPattern(claimed, identity, room));
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

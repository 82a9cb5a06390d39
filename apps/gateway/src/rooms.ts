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

const MAX_ROOM_LENGTH = 200;
// Rooms a socket holds by who it is, never by asking.
const RESERVED_PREFIXES = ["user(", "site(", "switchboard:"];

/**
 * Which rooms an authenticated socket may subscribe to, from SUBSCRIBE_ROOMS patterns:
 * `*` matches any run of characters, `{user}` and `{site}` the socket's own user id and site.
 * With no patterns nothing may be subscribed. `user(…)`, `site(…)` and internal rooms never may.
 */
export function createSubscriptionPolicy(patterns: readonly string[]): (identity: Identity, room: unknown) => room is string {
  return (identity, room): room is string => {
    if (typeof room !== "string" || room.length === 0 || room.length > MAX_ROOM_LENGTH) return false;
    if (RESERVED_PREFIXES.some((prefix) => room.startsWith(prefix))) return false;
    return patterns.some((pattern) => {
      if (pattern.includes("{site}") && identity.site === null) return false;
      const resolved = pattern.replaceAll("{user}", identity.user).replaceAll("{site}", identity.site ?? "");
      return globMatches(resolved, room);
    });
  };
}

function globMatches(pattern: string, text: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === text;
  const first = parts[0] ?? "";
  const last = parts[parts.length - 1] ?? "";
  if (!text.startsWith(first) || !text.endsWith(last) || text.length < first.length + last.length) return false;
  let at = first.length;
  for (const middle of parts.slice(1, -1)) {
    const found = text.indexOf(middle, at);
    if (found === -1 || found + middle.length > text.length - last.length) return false;
    at = found + middle.length;
  }
  return true;
}

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

/** Adds the unauthenticated room to a broadcast's exceptions, in place. */
export function excludeUnauthenticated(except: Set<string> | string[] | undefined): Set<string> | string[] {
  if (except === undefined) return [UNAUTHENTICATED_ROOM];
  if (Array.isArray(except)) except.push(UNAUTHENTICATED_ROOM);
  else except.add(UNAUTHENTICATED_ROOM);
  return except;
}

import { REDIS_KEYS } from "./redis-keys.js";

/**
 * Reading cluster-wide presence from Redis: the same functions serve the gateway's HTTP API and
 * the emitter. Gateway nodes keep these keys (see REDIS_KEYS.presence*); a node that stops or
 * crashes has its sockets taken out of them (at once, or within PRESENCE_SWEEP_BOUND_MS).
 */

/** A Redis connection able to run one command given as its words (node-redis's sendCommand). */
export interface RedisCommander {
  command(args: string[]): Promise<unknown>;
}

export interface UserPresence {
  online: boolean;
  sockets: number;
  nodes: { node: string; sockets: number }[];
}

export interface SitePresence {
  /** Up to `limit` user ids, in id order. */
  users: string[];
  /** How many users the site has. */
  count: number;
  /** Pass it back for the next page; null on the last one. */
  cursor: string | null;
}

export interface RoomCount {
  sockets: number;
  users: number;
}

/** How long after a node's last heartbeat its sockets may still count as present. */
export const PRESENCE_SWEEP_BOUND_MS = 20_000;

export async function readUserPresence(redis: RedisCommander, user: string): Promise<UserPresence> {
  const nodes = pairs(await redis.command(["HGETALL", REDIS_KEYS.presenceUser(user)]))
    .map(([node, sockets]) => ({ node, sockets: Number(sockets) }))
    .filter((entry) => entry.sockets > 0)
    .sort((a, b) => a.node.localeCompare(b.node));
  const sockets = nodes.reduce((sum, entry) => sum + entry.sockets, 0);
  return { online: sockets > 0, sockets, nodes };
}

/** One page of a site's users; `cursor` is the last user id of the page before (or null for the first). */
export async function readSitePresence(redis: RedisCommander, host: string, cursor: string | null, limit: number): Promise<SitePresence> {
  const key = REDIS_KEYS.presenceSiteUsers(host);
  // Lexicographic ranges: "(" excludes the cursor itself, so pages neither repeat nor skip.
  const from = cursor === null ? "-" : `(${cursor}`;
  const [page, count] = await Promise.all([
    redis.command(["ZRANGE", key, from, "+", "BYLEX", "LIMIT", "0", String(limit + 1)]),
    redis.command(["ZCARD", key]),
  ]);
  const users = strings(page);
  const more = users.length > limit;
  const shown = more ? users.slice(0, limit) : users;
  return { users: shown, count: Number(count), cursor: more ? (shown.at(-1) ?? null) : null };
}

/** Sockets and users in any room: a user's, a site's, or one sockets subscribed to. */
export async function readRoomCount(redis: RedisCommander, room: string): Promise<RoomCount> {
  const user = /^user\((.+)\)$/.exec(room)?.[1];
  if (user !== undefined) {
    const presence = await readUserPresence(redis, user);
    return { sockets: presence.sockets, users: presence.online ? 1 : 0 };
  }
  const site = /^site\((.+)\)$/.exec(room)?.[1];
  const counts = strings(
    await redis.command(["HVALS", site !== undefined ? REDIS_KEYS.presenceSite(site) : REDIS_KEYS.presenceRoom(room)]),
  ).map(Number);
  const present = counts.filter((sockets) => sockets > 0);
  return { sockets: present.reduce((sum, sockets) => sum + sockets, 0), users: present.length };
}

function strings(reply: unknown): string[] {
  return Array.isArray(reply) ? reply.map((item) => String(item)) : [];
}

function pairs(reply: unknown): [string, string][] {
  const flat = strings(reply);
  const result: [string, string][] = [];
  for (let index = 0; index + 1 < flat.length; index += 2) result.push([flat[index] ?? "", flat[index + 1] ?? ""]);
  return result;
}

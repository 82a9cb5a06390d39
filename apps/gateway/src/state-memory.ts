import { REDIS_KEYS, type RoomCount, type SitePresence, type UserPresence } from "@switchboard/protocol";
import type { NodeInfo, PresenceCrossing, Revocations, SharedState } from "./state.js";

/** The shared state of a single node, kept in its memory with the same meaning as in Redis. */
export function createMemoryState(): SharedState {
  const keys = new Map<string, { value: string; expiresAt: number }>();
  const routes = new Map<string, string>();
  // kind → key → user (or node, for `user`) → sockets
  const presence = {
    user: new Map<string, Map<string, number>>(),
    site: new Map<string, Map<string, number>>(),
    room: new Map<string, Map<string, number>>(),
  };
  let self: NodeInfo | null = null;

  const live = (key: string) => {
    const entry = keys.get(key);
    if (entry && entry.expiresAt <= Date.now()) keys.delete(key);
    return keys.get(key);
  };
  const add = (table: Map<string, Map<string, number>>, key: string, field: string, delta: number) => {
    const fields = table.get(key) ?? new Map<string, number>();
    const after = (fields.get(field) ?? 0) + delta;
    if (after > 0) fields.set(field, after);
    else fields.delete(field);
    if (fields.size > 0) table.set(key, fields);
    else table.delete(key);
    return after;
  };

  return {
    async setKey(key, value, ttlMs) {
      keys.set(key, { value, expiresAt: Date.now() + ttlMs });
    },
    async deleteKey(key) {
      keys.delete(key);
    },
    async loadRevocations() {
      const revocations: Revocations = { users: new Map(), tokens: new Map() };
      const userPrefix = REDIS_KEYS.revokedUser("");
      const tokenPrefix = REDIS_KEYS.revokedToken("");
      for (const key of [...keys.keys()]) {
        const entry = live(key);
        if (!entry) continue;
        if (key.startsWith(userPrefix)) revocations.users.set(key.slice(userPrefix.length), Number(entry.value));
        else if (key.startsWith(tokenPrefix)) revocations.tokens.set(key.slice(tokenPrefix.length), Number(entry.value));
      }
      return revocations;
    },
    async loadRoutes() {
      return new Map(routes);
    },
    async setRoute(event, room, max) {
      if (!routes.has(event) && routes.size >= max) return false;
      routes.set(event, room);
      return true;
    },
    async deleteRoute(event) {
      return routes.delete(event);
    },
    async applyPresence(node, deltas, reportCrossings) {
      const crossings: PresenceCrossing[] = [];
      for (const { kind, key, user, delta } of deltas) {
        const after = add(presence[kind], key, kind === "user" ? node : user, delta);
        const before = after - delta;
        if (reportCrossings && kind === "site" && before <= 0 !== after <= 0) crossings.push({ site: key, user, online: after > 0 });
      }
      return crossings;
    },
    async takeBackNode() {
      // One node holds everything: it takes back its own presence only when it stops.
      presence.user.clear();
      presence.site.clear();
      presence.room.clear();
      return [];
    },
    async heartbeat(info) {
      self = info;
    },
    async deadNodes() {
      return [];
    },
    async nodes() {
      return self ? [self] : [];
    },
    async userPresence(user): Promise<UserPresence> {
      const nodes = [...(presence.user.get(user) ?? [])].map(([node, sockets]) => ({ node, sockets }));
      const sockets = nodes.reduce((sum, entry) => sum + entry.sockets, 0);
      return { online: sockets > 0, sockets, nodes };
    },
    async sitePresence(host, cursor, limit): Promise<SitePresence> {
      const users = [...(presence.site.get(host)?.keys() ?? [])].sort();
      const after = cursor === null ? users : users.filter((user) => user > cursor);
      const page = after.slice(0, limit);
      return { users: page, count: users.length, cursor: after.length > limit ? (page.at(-1) ?? null) : null };
    },
    async roomCount(room): Promise<RoomCount> {
      const user = /^user\((.+)\)$/.exec(room)?.[1];
      if (user !== undefined) {
        const sockets = [...(presence.user.get(user)?.values() ?? [])].reduce((sum, count) => sum + count, 0);
        return { sockets, users: sockets > 0 ? 1 : 0 };
      }
      const site = /^site\((.+)\)$/.exec(room)?.[1];
      const counts = [...((site !== undefined ? presence.site.get(site) : presence.room.get(room))?.values() ?? [])];
      return { sockets: counts.reduce((sum, count) => sum + count, 0), users: counts.length };
    },
    // Services read their requests from Redis streams: without Redis there is none to call.
    enqueueServiceRequest: async () => "no_redis",
    services: async () => [],
    service: async () => null,
    unregisterService: async () => false,
    // LIFECYCLE_EVENTS needs Redis (config refuses it without REDIS_URL).
    writeLifecycle: async () => {},
    claimLifecycleSockets: async () => [],
    goneLifecycleNodes: async () => [],
  };
}

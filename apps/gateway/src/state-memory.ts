import { REDIS_KEYS, type RoomCount, type SitePresence, type UserPresence } from "@switchboard/protocol";
import type { NodeInfo, PresenceCrossing, Revocations, SharedState } from "./state.js";

const MIN_SWEEP_AT = 1024;

/**
 * Keys with a time to live, as Redis's SET … PX keeps them. Redis forgets an expired key by itself;
 * here expired keys are swept whenever the count has doubled and whenever all are read, so keys set
 * and never read again (revocations of tokens that have expired) do not pile up.
 */
export class ExpiringKeys {
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();
  private sweepAt = MIN_SWEEP_AT;

  /** Keys held, expired ones not swept yet included. */
  get size(): number {
    return this.entries.size;
  }

  set(key: string, value: string, ttlMs: number): void {
    this.entries.set(key, { value, expiresAt: Date.now() + ttlMs });
    if (this.entries.size >= this.sweepAt) this.sweep();
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  /** Every key that has not expired, with its value and when it expires (ms since the epoch). */
  live(): [string, string, number][] {
    this.sweep();
    return [...this.entries].map(([key, entry]) => [key, entry.value, entry.expiresAt]);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
    this.sweepAt = Math.max(MIN_SWEEP_AT, 2 * this.entries.size);
  }
}

/** The shared state of a single node, kept in its memory with the same meaning as in Redis. */
export function createMemoryState(): SharedState {
  const keys = new ExpiringKeys();
  const routes = new Map<string, string>();
  // kind → key → user (or node, for `user`) → sockets
  const presence = {
    user: new Map<string, Map<string, number>>(),
    site: new Map<string, Map<string, number>>(),
    room: new Map<string, Map<string, number>>(),
  };
  let self: NodeInfo | null = null;

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
      keys.set(key, value, ttlMs);
    },
    async deleteKey(key) {
      keys.delete(key);
    },
    async loadRevocations() {
      const revocations: Revocations = { users: new Map(), tokens: new Map() };
      const userPrefix = REDIS_KEYS.revokedUser("");
      const tokenPrefix = REDIS_KEYS.revokedToken("");
      for (const [key, value, expiresAt] of keys.live()) {
        if (key.startsWith(userPrefix)) revocations.users.set(key.slice(userPrefix.length), { before: Number(value), until: expiresAt });
        else if (key.startsWith(tokenPrefix)) revocations.tokens.set(key.slice(tokenPrefix.length), Number(value));
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

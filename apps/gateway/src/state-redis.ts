import {
  KEY_PREFIX,
  LIFECYCLE_KEYS,
  lifecycleFields,
  REDIS_KEYS,
  type RedisCommander,
  SERVICE_INSTANCE_TTL_MS,
  SERVICE_KEYS,
  listServices,
  pack,
  readRoomCount,
  readService,
  readSitePresence,
  readUserPresence,
  requestFields,
  unregisterService,
} from "@switchboard/protocol";
import { asBuffer } from "./broker-frames.js";
import type { EnqueueResult, NodeInfo, PresenceCrossing, PresenceDelta, Revocations, SharedState } from "./state.js";

/**
 * Each key's value and its time to live in ms (PTTL), in pairs: what a node needs of a revocation.
 * A key of another type under the prefix reads as missing, as MGET would have it, rather than failing the read.
 */
const READ_WITH_TTL = `
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.pcall("GET", key)
  if type(value) == "table" and value.err then value = false end
  out[2 * i - 1] = value
  out[2 * i] = redis.call("PTTL", key)
end
return out
`;
/** Revocation keys read per script call, so one call never blocks Redis for long. */
const KEYS_PER_READ = 1000;

/**
 * Applies one node's presence deltas atomically. Per delta it updates the cluster-wide count
 * (user → node → sockets; site → user → sockets, with the site's user list; room → user → sockets)
 * and the node's own ledger of what it added, so the node's share can be taken back exactly when
 * it is gone. Returns the site presences that crossed zero, as flat triples (host, user, "1"/"0").
 * ARGV: prefix, node, then "take-back", or whether to return the crossings ("1"/"0") and the deltas
 * as one MessagePack array (kind, key, user, delta, kind, …): one argument rather than four per delta,
 * which the client would otherwise encode as a handful of strings each.
 */
const APPLY_PRESENCE = `
local prefix, node = ARGV[1], ARGV[2]
local ledger = prefix .. "presence:node:" .. node
local crossings = {}
local report = ARGV[3] ~= "0"
local function change(kind, key, user, delta)
  local hash, field
  if kind == "u" then hash, field = prefix .. "presence:user:" .. key, node
  elseif kind == "s" then hash, field = prefix .. "presence:site:" .. key, user
  else hash, field = prefix .. "presence:room:" .. key, user end
  local after = redis.call("HINCRBY", hash, field, delta)
  if after <= 0 then redis.call("HDEL", hash, field) end
  if kind == "s" then
    local before = after - delta
    local users = prefix .. "presence:siteusers:" .. key
    if before <= 0 and after > 0 then
      redis.call("ZADD", users, 0, user)
      if report then table.insert(crossings, key) table.insert(crossings, user) table.insert(crossings, "1") end
    elseif before > 0 and after <= 0 then
      redis.call("ZREM", users, user)
      if report then table.insert(crossings, key) table.insert(crossings, user) table.insert(crossings, "0") end
    end
  end
end
if ARGV[3] == "take-back" then
  local entries = redis.call("HGETALL", ledger)
  for i = 1, #entries, 2 do
    local entry = entries[i]
    local kind = string.sub(entry, 1, 1)
    local colon = string.find(entry, ":", 3, true)
    local length = tonumber(string.sub(entry, 3, colon - 1))
    change(kind, string.sub(entry, colon + 1, colon + length), string.sub(entry, colon + length + 1), -tonumber(entries[i + 1]))
  end
  redis.call("DEL", ledger)
  redis.call("ZREM", prefix .. "nodes", node)
  return crossings
end
local deltas = cmsgpack.unpack(ARGV[4])
for i = 1, #deltas, 4 do
  local kind, key, user, delta = deltas[i], deltas[i + 1], deltas[i + 2], deltas[i + 3]
  change(kind, key, user, delta)
  -- The ledger's field carries the key's length, so keys and users can hold any character.
  local entry = kind .. ":" .. #key .. ":" .. key .. user
  if redis.call("HINCRBY", ledger, entry, delta) <= 0 then redis.call("HDEL", ledger, entry) end
end
return crossings
`;

/**
 * Takes a gone node's list of sockets: reads the hash, deletes it and forgets the node, in one step.
 * KEYS: the node's sockets, the nodes with lists (one hash slot). ARGV: the node.
 */
const CLAIM_SOCKETS = `
local entries = redis.call("HGETALL", KEYS[1])
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], ARGV[1])
return entries
`;

/** A route, registered or replaced, unless it is new and ARGV[3] routes are registered already. */
const SET_ROUTE = `
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 0 and redis.call("HLEN", KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/**
 * Queues one service request, or says why not, in one step so that two nodes cannot both squeeze
 * into the last place of a queue. KEYS: the service's info, instances and requests (one hash slot).
 * ARGV: the oldest heartbeat that still counts as live, the queue's limit, then the entry's fields.
 */
const ENQUEUE_SERVICE_REQUEST = `
if redis.call("EXISTS", KEYS[1]) == 0 then return "service_unknown" end
if redis.call("ZCOUNT", KEYS[2], ARGV[1], "+inf") == 0 then return "service_unavailable" end
if redis.call("XLEN", KEYS[3]) >= tonumber(ARGV[2]) then return "service_busy" end
redis.call("XADD", KEYS[3], "*", unpack(ARGV, 3))
return "ok"
`;

const KIND_CODES: Record<PresenceDelta["kind"], string> = { user: "u", site: "s", room: "r" };
/** Deltas per script call: a connect storm's batch is split into calls of this size. */
const DELTAS_PER_CALL = 500;

/** A Redis connection that also takes binary arguments (node-redis's sendCommand does). */
export interface BinaryRedisCommander extends RedisCommander {
  command(args: (string | Buffer)[]): Promise<unknown>;
}

export function createRedisState(redis: BinaryRedisCommander, nodeTtlMs: () => number): SharedState {
  const run = (args: (string | Buffer)[]) => redis.command(args);

  async function scanKeys(pattern: string): Promise<string[]> {
    const found: string[] = [];
    let cursor = "0";
    do {
      const reply = (await run(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"])) as [string, string[]];
      cursor = String(reply[0]);
      found.push(...reply[1].map(String));
    } while (cursor !== "0");
    return found;
  }

  const crossingsOf = (reply: unknown): PresenceCrossing[] => {
    const flat = Array.isArray(reply) ? reply.map(String) : [];
    const crossings: PresenceCrossing[] = [];
    for (let index = 0; index + 2 < flat.length; index += 3)
      crossings.push({ site: flat[index] ?? "", user: flat[index + 1] ?? "", online: flat[index + 2] === "1" });
    return crossings;
  };

  return {
    async setKey(key, value, ttlMs) {
      await run(["SET", key, value, "PX", String(Math.max(1, Math.round(ttlMs)))]);
    },
    async deleteKey(key) {
      await run(["DEL", key]);
    },
    async loadRevocations() {
      const revocations: Revocations = { users: new Map(), tokens: new Map() };
      const found = await scanKeys(REDIS_KEYS.revokedPattern);
      const userPrefix = REDIS_KEYS.revokedUser("");
      const tokenPrefix = REDIS_KEYS.revokedToken("");
      for (let from = 0; from < found.length; from += KEYS_PER_READ) {
        const keys = found.slice(from, from + KEYS_PER_READ);
        const now = Date.now();
        const flat = (await run(["EVAL", READ_WITH_TTL, String(keys.length), ...keys])) as unknown[];
        keys.forEach((key, index) => {
          const value = flat[2 * index];
          const ttlMs = Number(flat[2 * index + 1]);
          // Gone since the scan (false), or without an expiry, which no revocation is stored with (-1).
          if (typeof value !== "string" && !Buffer.isBuffer(value)) return;
          if (key.startsWith(userPrefix)) {
            const until = ttlMs >= 0 ? now + ttlMs : Number.POSITIVE_INFINITY;
            revocations.users.set(key.slice(userPrefix.length), { before: Number(String(value)), until });
          } else if (key.startsWith(tokenPrefix)) revocations.tokens.set(key.slice(tokenPrefix.length), Number(String(value)));
        });
      }
      return revocations;
    },
    async loadRoutes() {
      const flat = ((await run(["HGETALL", REDIS_KEYS.routes])) as string[]).map(String);
      const routes = new Map<string, string>();
      for (let index = 0; index + 1 < flat.length; index += 2) routes.set(flat[index] ?? "", flat[index + 1] ?? "");
      return routes;
    },
    async setRoute(event, room, max) {
      return Number(await run(["EVAL", SET_ROUTE, "1", REDIS_KEYS.routes, event, room, String(max)])) === 1;
    },
    async deleteRoute(event) {
      return Number(await run(["HDEL", REDIS_KEYS.routes, event])) > 0;
    },
    async applyPresence(node, deltas, reportCrossings) {
      const crossings: PresenceCrossing[] = [];
      for (let from = 0; from < deltas.length; from += DELTAS_PER_CALL) {
        const flat: (string | number)[] = [];
        for (let index = from; index < Math.min(deltas.length, from + DELTAS_PER_CALL); index++) {
          const { kind, key, user, delta } = deltas[index]!;
          flat.push(KIND_CODES[kind], key, user, delta);
        }
        const reply = await run(["EVAL", APPLY_PRESENCE, "0", KEY_PREFIX, node, reportCrossings ? "1" : "0", asBuffer(pack(flat))]);
        if (reportCrossings) crossings.push(...crossingsOf(reply));
      }
      return crossings;
    },
    async takeBackNode(node) {
      return crossingsOf(await run(["EVAL", APPLY_PRESENCE, "0", KEY_PREFIX, node, "take-back"]));
    },
    async heartbeat(info, ttlMs) {
      await run(["SET", REDIS_KEYS.node(info.node), JSON.stringify(info), "PX", String(ttlMs)]);
      await run(["ZADD", REDIS_KEYS.nodes, String(Date.now()), info.node]);
    },
    async deadNodes() {
      const listed = ((await run(["ZRANGEBYSCORE", REDIS_KEYS.nodes, "-inf", String(Date.now() - nodeTtlMs())])) as string[]).map(String);
      if (listed.length === 0) return [];
      const alive = (await run(["MGET", ...listed.map((node) => REDIS_KEYS.node(node))])) as (string | null)[];
      return listed.filter((_node, index) => alive[index] === null);
    },
    async nodes() {
      const listed = ((await run(["ZRANGE", REDIS_KEYS.nodes, "0", "-1"])) as string[]).map(String);
      if (listed.length === 0) return [];
      const infos = (await run(["MGET", ...listed.map((node) => REDIS_KEYS.node(node))])) as (string | null)[];
      return infos.flatMap((info) => {
        if (info === null) return [];
        try {
          return [JSON.parse(info) as NodeInfo];
        } catch {
          return [];
        }
      });
    },
    userPresence: (user) => readUserPresence(redis, user),
    sitePresence: (host, cursor, limit) => readSitePresence(redis, host, cursor, limit),
    roomCount: (room) => readRoomCount(redis, room),
    async enqueueServiceRequest(request, maxPending) {
      const name = request.service;
      const keys = [SERVICE_KEYS.info(name), SERVICE_KEYS.instances(name), SERVICE_KEYS.requests(name)];
      const args = [String(Date.now() - SERVICE_INSTANCE_TTL_MS), String(maxPending), ...requestFields(request)];
      return String(await run(["EVAL", ENQUEUE_SERVICE_REQUEST, String(keys.length), ...keys, ...args])) as EnqueueResult;
    },
    services: () => listServices(redis),
    service: (name) => readService(redis, name),
    unregisterService: (name) => unregisterService(redis, name),
    async writeLifecycle(records, maxLen) {
      // Issued together, so node-redis sends them in one write. Each writing node says it is there,
      // so that its list of sockets is claimed only once it has been silent for long.
      const writers = [...new Set(records.map((record) => record.node))];
      const now = String(Date.now());
      await Promise.all([
        ...writers.map((node) => run(["ZADD", LIFECYCLE_KEYS.nodes, now, node])),
        ...records.flatMap((record) => {
          const writes = [run(["XADD", LIFECYCLE_KEYS.stream, "MAXLEN", "~", String(maxLen), "*", ...lifecycleFields(record)])];
          const sockets = LIFECYCLE_KEYS.sockets(record.node);
          if (record.type === "connected")
            writes.push(run(["HSET", sockets, record.socket, JSON.stringify({ user: record.user, site: record.site })]));
          if (record.type === "disconnected") writes.push(run(["HDEL", sockets, record.socket]));
          return writes;
        }),
      ]);
    },
    async goneLifecycleNodes(silentMs) {
      const quiet = ((await run(["ZRANGEBYSCORE", LIFECYCLE_KEYS.nodes, "-inf", String(Date.now() - silentMs)])) as unknown[]).map(String);
      if (quiet.length === 0) return [];
      // A node that writes no records may still be alive: its heartbeat key says so. One key per
      // command, as the keys sit in different hash slots on a Redis Cluster.
      const alive = await Promise.all(quiet.map((node) => run(["EXISTS", REDIS_KEYS.node(node)])));
      return quiet.filter((_node, index) => Number(alive[index]) === 0);
    },
    async claimLifecycleSockets(node) {
      // Read and delete in one step: of the nodes that notice, exactly one reports the sockets.
      const flat = ((await run(["EVAL", CLAIM_SOCKETS, "2", LIFECYCLE_KEYS.sockets(node), LIFECYCLE_KEYS.nodes, node])) as unknown[]).map(
        String,
      );
      const sockets: { socket: string; user: string; site: string }[] = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        try {
          const { user, site } = JSON.parse(flat[index + 1] ?? "{}") as { user?: unknown; site?: unknown };
          if (typeof user === "string") sockets.push({ socket: flat[index] ?? "", user, site: typeof site === "string" ? site : "" });
        } catch {
          // Not written by a node: skipped.
        }
      }
      return sockets;
    },
  };
}

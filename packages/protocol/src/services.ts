import type { RedisCommander } from "./presence.js";
import { KEY_PREFIX } from "./redis-keys.js";
import { preview } from "./untrusted.js";

/**
 * Backend services that clients call through the cluster: the names, keys and formats that the
 * gateway, `@switchboard/service` and services in other languages share (docs/services.md).
 */

/** A service's name: lower-case letters, digits, `.`, `_` and `-`, at most 64. */
const SERVICE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function isServiceName(name: unknown): name is string {
  return typeof name === "string" && SERVICE_NAME.test(name);
}

/**
 * Every key of one service carries the hash tag `{svc:<name>}`, so all of them sit in one slot of a
 * Redis Cluster and one script can touch them together. The index of names is the one key outside.
 */
export const SERVICE_KEYS = {
  /** The names of every registered service (a set). */
  index: `${KEY_PREFIX}services`,
  /** The service's registration (a hash: `name`, `registeredAt`); its existence is what registered means. */
  info: (name: string) => `${KEY_PREFIX}{svc:${name}}:info`,
  /** Live instances (a sorted set: instance id → its last heartbeat, ms since the epoch). */
  instances: (name: string) => `${KEY_PREFIX}{svc:${name}}:instances`,
  /** Requests waiting or being handled (a stream read by the consumer group SERVICE_GROUP). */
  requests: (name: string) => `${KEY_PREFIX}{svc:${name}}:requests`,
} as const;

/** The consumer group every instance of a service reads its requests with. */
export const SERVICE_GROUP = "instances";

/** An instance whose last heartbeat is older than this is gone; instances beat every third of it. */
export const SERVICE_INSTANCE_TTL_MS = 10_000;

/** The channel a gateway node receives its requests' replies on. */
export function replyChannel(node: string): string {
  return `${KEY_PREFIX}replies:${node}`;
}

/** Who sent a request: the caller's identity as the gateway verified it, and where its socket is. */
export interface Caller {
  user: string;
  /** Empty when the token names no site. */
  site: string;
  socket: string;
  node: string;
}

/**
 * One stream entry, all fields strings: `request` waits for a reply on `reply`; `send` wants none.
 * `payload` is JSON text. `deadline` is when the caller stops waiting (ms since the epoch; 0 for a send).
 */
export interface ServiceRequest {
  id: string;
  kind: "request" | "send";
  service: string;
  /** What a `send` is about; empty for a request. */
  event: string;
  payload: unknown;
  caller: Caller;
  deadline: number;
  /** The channel replies go to (the calling node's). */
  reply: string;
}

/** The stream fields of a request, in the documented order, as XADD takes them. */
export function requestFields(request: ServiceRequest): string[] {
  return [
    "id",
    request.id,
    "kind",
    request.kind,
    "service",
    request.service,
    "event",
    request.event,
    "payload",
    JSON.stringify(request.payload ?? null),
    "user",
    request.caller.user,
    "site",
    request.caller.site,
    "socket",
    request.caller.socket,
    "node",
    request.caller.node,
    "deadline",
    String(request.deadline),
    "reply",
    request.reply,
  ];
}

/** Reads a stream entry's fields (as XREADGROUP returns them); a string says what is wrong with it. */
export function readRequestFields(fields: Record<string, string>): ServiceRequest | string {
  const { id, kind, service, event, payload, user, site, socket, node, deadline, reply } = fields;
  if (!id || (kind !== "request" && kind !== "send") || !service || user === undefined || !socket || !node || !reply)
    return "an entry without id, kind, service, user, socket, node or reply";
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload ?? "null");
  } catch {
    return "payload is not JSON";
  }
  const due = Number(deadline ?? 0);
  return {
    id,
    kind,
    service,
    event: event ?? "",
    payload: parsed,
    caller: { user, site: site ?? "", socket, node },
    deadline: Number.isFinite(due) ? due : 0,
    reply,
  };
}

/** What a service answers a request with, on the calling node's reply channel, as JSON. */
export type ServiceReply =
  | { id: string; kind: "progress"; data: unknown }
  | { id: string; kind: "done"; data: unknown }
  | { id: string; kind: "error"; error: { code: string; message: string } };

/** Reads a reply a service published; a string says what is wrong with it. */
export function readServiceReply(value: unknown): ServiceReply | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return `a reply must be a JSON object, not ${preview(value)}`;
  const reply = value as Record<string, unknown>;
  if (typeof reply.id !== "string" || reply.id.length === 0 || reply.id.length > 100) return "a reply needs the request's id";
  switch (reply.kind) {
    case "progress":
    case "done":
      return { id: reply.id, kind: reply.kind, data: reply.data ?? null };
    case "error": {
      const error = reply.error as { code?: unknown; message?: unknown } | undefined;
      if (
        typeof error !== "object" ||
        error === null ||
        typeof error.code !== "string" ||
        error.code.length === 0 ||
        error.code.length > 100
      )
        return "an error reply needs error.code";
      const message = typeof error.message === "string" ? error.message.slice(0, 1000) : error.code;
      return { id: reply.id, kind: "error", error: { code: error.code, message } };
    }
    default:
      return `kind must be progress, done or error, not ${preview(reply.kind)}`;
  }
}

/** A service as the registry shows it. */
export interface ServiceInfo {
  name: string;
  /** When it was first registered (ms since the epoch). */
  registeredAt: number;
  /** Instances whose heartbeat is recent. */
  instances: number;
  /** Requests in its stream: waiting, and being handled. */
  queueDepth: number;
  /** Requests an instance has taken and not finished. */
  pending: number;
  /** How long the oldest of those has been pending (ms); null when none is. */
  oldestPendingAgeMs: number | null;
}

/** Reads one service from the registry; null when it is not registered. */
export async function readService(redis: RedisCommander, name: string, now: number = Date.now()): Promise<ServiceInfo | null> {
  if (!isServiceName(name)) return null;
  const registeredAt = await redis.command(["HGET", SERVICE_KEYS.info(name), "registeredAt"]);
  if (registeredAt === null || registeredAt === undefined) return null;
  const [instances, queueDepth, pending] = await Promise.all([
    redis.command(["ZCOUNT", SERVICE_KEYS.instances(name), String(now - SERVICE_INSTANCE_TTL_MS), "+inf"]),
    redis.command(["XLEN", SERVICE_KEYS.requests(name)]),
    redis.command(["XPENDING", SERVICE_KEYS.requests(name), SERVICE_GROUP]).catch(() => [0, null]),
  ]);
  // XPENDING's summary: [count, smallest id, greatest id, consumers]; an id starts with its time in ms.
  const summary = Array.isArray(pending) ? pending : [0, null];
  const oldest = typeof summary[1] === "string" ? Number(summary[1].split("-")[0]) : null;
  return {
    name,
    registeredAt: Number(registeredAt),
    instances: Number(instances),
    queueDepth: Number(queueDepth),
    pending: Number(summary[0] ?? 0),
    oldestPendingAgeMs: oldest === null || !Number.isFinite(oldest) ? null : Math.max(0, now - oldest),
  };
}

/** Every registered service, by name. */
export async function listServices(redis: RedisCommander, now: number = Date.now()): Promise<ServiceInfo[]> {
  const names = ((await redis.command(["SMEMBERS", SERVICE_KEYS.index])) as unknown[]).map(String).sort();
  const services = await Promise.all(names.map((name) => readService(redis, name, now)));
  return services.filter((service): service is ServiceInfo => service !== null);
}

/** Removes a service: its registration, instances and queued requests. False when it was not registered. */
export async function unregisterService(redis: RedisCommander, name: string): Promise<boolean> {
  if (!isServiceName(name)) return false;
  const removed = Number(await redis.command(["DEL", SERVICE_KEYS.info(name), SERVICE_KEYS.instances(name), SERVICE_KEYS.requests(name)]));
  const listed = Number(await redis.command(["SREM", SERVICE_KEYS.index, name]));
  return removed > 0 || listed > 0;
}

/** Where the gateway records sockets coming and going (LIFECYCLE_EVENTS=1), for services to read. */
export const LIFECYCLE_KEYS = {
  /** One stream of records for the whole cluster, trimmed to LIFECYCLE_MAXLEN. */
  stream: `${KEY_PREFIX}lifecycle`,
  /**
   * One node's connected sockets (a hash: socket id → JSON `{ user, site }`), so the node that finds
   * it gone can report them. Under one hash tag with `nodes`, so both change in one script.
   */
  sockets: (node: string) => `${KEY_PREFIX}{lifecycle}:sockets:${node}`,
  /** Nodes that keep a list of sockets (a sorted set: node → when it last wrote records, ms since the epoch). */
  nodes: `${KEY_PREFIX}{lifecycle}:nodes`,
} as const;

/** What happened to a socket. */
export type LifecycleType = "connected" | "disconnected" | "subscribed" | "unsubscribed";

/**
 * One record of the lifecycle stream; every field is a string there. `room` is set for
 * subscriptions; `reason` for disconnections (Socket.IO's reason, or `node_gone` when the socket's
 * node stopped beating and another node reported it).
 */
export interface LifecycleRecord {
  type: LifecycleType;
  user: string;
  site: string;
  socket: string;
  node: string;
  room: string;
  reason: string;
  /** When it happened, ms since the epoch. */
  time: number;
}

/** The stream fields of a record, in the documented order. */
export function lifecycleFields(record: LifecycleRecord): string[] {
  return [
    "type",
    record.type,
    "user",
    record.user,
    "site",
    record.site,
    "socket",
    record.socket,
    "node",
    record.node,
    "room",
    record.room,
    "reason",
    record.reason,
    "time",
    String(record.time),
  ];
}

/** Reads a record from its stream fields; null for an entry that is not one. */
export function readLifecycleRecord(fields: Record<string, string>): LifecycleRecord | null {
  const { type, user, site, socket, node, room, reason, time } = fields;
  if ((type !== "connected" && type !== "disconnected" && type !== "subscribed" && type !== "unsubscribed") || !user || !socket || !node)
    return null;
  return { type, user, site: site ?? "", socket, node, room: room ?? "", reason: reason ?? "", time: Number(time ?? 0) };
}

/**
 * Every Redis key Switchboard writes, built from one prefix, so an operator can see (and an ACL can
 * grant) exactly what belongs to it. Gateway nodes and the emitter use these same functions.
 */
export const KEY_PREFIX = "switchboard:";

export const REDIS_KEYS = {
  /** When a user was kicked with refuseReconnect (ms since the epoch); expires with the longest token lifetime. */
  revokedUser: (user: string) => `${KEY_PREFIX}revoked:user:${user}`,
  /** A single token refused by its `jti`, until its `exp`. */
  revokedToken: (jti: string) => `${KEY_PREFIX}revoked:jti:${jti}`,
  /** What SCAN matches to load every revocation. */
  revokedPattern: `${KEY_PREFIX}revoked:*`,
  /** Event → room routes registered at run time (a hash). */
  routes: `${KEY_PREFIX}routes`,
  /** The sockets of a user per node (a hash: node → sockets). */
  presenceUser: (user: string) => `${KEY_PREFIX}presence:user:${user}`,
  /** The users of a site (a hash: user → sockets). */
  presenceSite: (host: string) => `${KEY_PREFIX}presence:site:${host}`,
  /** The same users, ordered by id for paging (a sorted set, every score 0). */
  presenceSiteUsers: (host: string) => `${KEY_PREFIX}presence:siteusers:${host}`,
  /** The users of any other room (a hash: user → sockets). */
  presenceRoom: (room: string) => `${KEY_PREFIX}presence:room:${room}`,
  /** What one node added to the three above, so it can be taken back when the node is gone. */
  presenceNode: (node: string) => `${KEY_PREFIX}presence:node:${node}`,
  /** Live nodes (a sorted set scored by their last heartbeat, ms). */
  nodes: `${KEY_PREFIX}nodes`,
  /** One node's description, expiring when its heartbeats stop. */
  node: (node: string) => `${KEY_PREFIX}node:${node}`,
  /** Counters of the shared rate limits (rate-limiter-flexible's keys start with this). */
  rate: (name: string) => `${KEY_PREFIX}rate:${name}`,
} as const;

/**
 * Whether a command was refused by node-redis because its `commandsQueueMaxLength` commands already
 * wait for Redis's answer (a plain Error with this message; the gateway and the emitter both bound it).
 */
export function isCommandQueueFull(err: unknown): boolean {
  return err instanceof Error && err.message === "The queue is full";
}

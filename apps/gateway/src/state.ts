import type { LifecycleRecord, RoomCount, ServiceInfo, ServiceRequest, SitePresence, UserPresence } from "@switchboard/protocol";

/**
 * The state nodes share (kept in Redis, or in memory on a single node): revocations, the event
 * routes registered at run time, presence and the list of live nodes. Messages go through the
 * broker; this is what must still be there for a node that joins later.
 */
export interface SharedState {
  /** SET key value PX ttlMs, and DEL: what a kick or a token revocation stores. */
  setKey(key: string, value: string, ttlMs: number): Promise<void>;
  deleteKey(key: string): Promise<void>;
  /** Every revocation in force, to mirror at start-up and after Redis returns. */
  loadRevocations(): Promise<Revocations>;

  loadRoutes(): Promise<Map<string, string>>;
  /**
   * Registers or replaces an event's route; false, changing nothing, when `event` is new and `max`
   * routes are registered already. Checked and written in one step, so nodes cannot pass it together.
   */
  setRoute(event: string, room: string, max: number): Promise<boolean>;
  /** False when there was no such registered route. */
  deleteRoute(event: string): Promise<boolean>;

  /**
   * Adds one node's presence changes; returns the users whose presence on a site crossed zero, or
   * nothing without `reportCrossings` (nobody is told of them unless PRESENCE_EVENTS is on).
   */
  applyPresence(node: string, deltas: readonly PresenceDelta[], reportCrossings: boolean): Promise<PresenceCrossing[]>;
  /** Takes back everything a node added to presence (it stopped, or its heartbeat did). */
  takeBackNode(node: string): Promise<PresenceCrossing[]>;
  heartbeat(info: NodeInfo, ttlMs: number): Promise<void>;
  /** Nodes listed as live whose heartbeat has stopped. */
  deadNodes(): Promise<string[]>;
  /** The live nodes. */
  nodes(): Promise<NodeInfo[]>;
  userPresence(user: string): Promise<UserPresence>;
  sitePresence(host: string, cursor: string | null, limit: number): Promise<SitePresence>;
  roomCount(room: string): Promise<RoomCount>;

  /**
   * Queues a request for a service, atomically checking that the service is registered, has a live
   * instance, and holds fewer than `maxPending` requests; says which check failed otherwise, or
   * `no_redis` where there is no Redis for a service to register with.
   */
  enqueueServiceRequest(request: ServiceRequest, maxPending: number): Promise<EnqueueResult>;
  services(): Promise<ServiceInfo[]>;
  service(name: string): Promise<ServiceInfo | null>;
  unregisterService(name: string): Promise<boolean>;

  /**
   * Appends lifecycle records to the stream (trimmed to about `maxLen`), and keeps each node's list of
   * connected sockets in step (a `connected` adds the socket, a `disconnected` removes it).
   */
  writeLifecycle(records: readonly LifecycleRecord[], maxLen: number): Promise<void>;
  /** Takes a gone node's list of sockets, once: of several nodes asking, one gets it, the others nothing. */
  claimLifecycleSockets(node: string): Promise<{ socket: string; user: string; site: string }[]>;
  /** Nodes with a list of sockets that have neither written records nor beaten for `silentMs`: they are gone. */
  goneLifecycleNodes(silentMs: number): Promise<string[]>;
}

export type EnqueueResult = "ok" | "service_unknown" | "service_unavailable" | "service_busy" | "no_redis";

/** A kick's refusal: the user's tokens issued at or before `before` are refused until `until` (ms since the epoch). */
export interface UserRefusal {
  before: number;
  /** When its key expires in Redis. */
  until: number;
}

export interface Revocations {
  users: Map<string, UserRefusal>;
  /** jti → its exp (seconds since the epoch). */
  tokens: Map<string, number>;
}

/**
 * A change in how many sockets a user has on this node: in total (`user`, keyed by the user), on
 * a site (`site`, keyed by the host) or in a subscribed room (`room`, keyed by the room).
 */
export interface PresenceDelta {
  kind: "user" | "site" | "room";
  key: string;
  user: string;
  delta: number;
}

/** A user's first socket on a site arrived (cluster-wide), or the last one left. */
export interface PresenceCrossing {
  site: string;
  user: string;
  online: boolean;
}

export interface NodeInfo {
  node: string;
  version: string;
  /** When the node started, ms since the epoch. */
  startedAt: number;
  /** Authenticated sockets. */
  sockets: number;
}

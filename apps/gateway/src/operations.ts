import { createHmac } from "node:crypto";
import {
  type ControlFrame,
  type ControlTransport,
  type Delivery,
  type KickOptions,
  type KickedPayload,
  type RawFrame,
  MAX_REFUSE_SECONDS,
  NO_ROOMS,
  RAW_FRAME_CHANNEL,
  type RoomCount,
  SERVER_EVENTS,
  type SitePresence,
  SwitchboardError,
  type UserPresence,
  allowUser,
  userIdOf,
  checkRawFrame,
  encodeControlFrame,
  isPublishableEvent,
  preview,
  errorBody,
  kickUser,
  newMessageId,
  revokeToken,
  sealFrame,
  userRoom,
} from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { Server } from "socket.io";
import type { Broker, OutboundMessage } from "./broker.js";
import { packetOf } from "./broker-frames.js";
import type { Config } from "./config.js";
import { detailed } from "./errors.js";
import { routeProblem } from "./config.js";
import type { EventRoutes, RouteFill } from "./event-routes.js";
import type { ThrottledWarnings } from "./log-throttle.js";
import type { MessageSource, Metrics } from "./metrics.js";
import type { RevocationMirror } from "./revocations.js";
import type { NodeInfo } from "./state.js";

/** A message to publish, from the HTTP API, a development endpoint, a client or the node itself. */
export interface Publication {
  /** Where to; without it, the event's route decides. */
  room?: string | string[];
  event?: string;
  data: unknown;
  except?: string | string[];
  /** More rooms, on top of the room or route. */
  _in?: string | string[];
  /** Fill the route's {user} and {site}. */
  user?: string | number;
  site?: string;
}

/**
 * The server-side actions of a node, one implementation each, whatever asks for them: the HTTP API,
 * the development endpoints, client events, raw frames from Redis. Publishing always takes the same
 * road: a checked message handed to the broker, which carries it to the nodes holding its rooms.
 */
export interface Operations {
  /** Resolves the publication's rooms (route_unknown, route_incomplete) and publishes it cluster-wide. */
  /** `source` labels it in switchboard_messages_received_total; null for what the node sends itself. */
  publish(publication: Publication, source: MessageSource | null): Promise<{ id: string; rooms: string[] }>;
  /**
   * Several publications at once: every one is checked and its rooms resolved before any is sent
   * (a bad one is a SwitchboardError naming its index, and nothing goes out), then all are handed
   * to Redis together, in order.
   */
  publishMany(publications: readonly Publication[], source: MessageSource): Promise<{ ids: string[] }>;
  /** To every authenticated socket on every node. */
  broadcast(event: string, data: unknown, source: MessageSource): Promise<{ id: string }>;
  /** The rooms a publication goes to, or why it cannot go anywhere. */
  targets(publication: Publication): string[];
  kick(user: string | number, options: Omit<KickOptions, "refuseForSeconds">): Promise<{ user: string }>;
  allow(user: string | number): Promise<string>;
  revokeToken(jti: string, exp: number): Promise<void>;
  registerRoute(event: string, room: string): Promise<void>;
  unregisterRoute(event: string): Promise<boolean>;
  listRoutes(): ReturnType<EventRoutes["list"]>;
  presenceOfUser(user: string): Promise<UserPresence>;
  presenceOfSite(host: string, cursor: string | null, limit: number): Promise<SitePresence>;
  roomCount(room: string): Promise<RoomCount>;
  nodes(): Promise<NodeInfo[]>;
  /** Whether any of this node's sockets is in one of `rooms`. */
  holdsAny(rooms: readonly string[]): boolean;
  /**
   * Delivers a decoded frame to this node's own sockets (every node does so for every frame); `local` says
   * whether any was in its rooms. `roomsHeld`: the caller has already found one of `delivery.rooms` here.
   */
  deliver(
    delivery: Delivery,
    roomsHeld?: boolean,
  ): { ok: true; local: boolean } | { ok: false; code: "route_unknown" | "route_incomplete"; reason: string };
  /** Acts on a control frame on this node. */
  control(frame: ControlFrame): void;
  /** Reads what nodes mirror (registered routes, revocations) from the shared state again. */
  reloadShared(): Promise<void>;
}

// What deliver answers for nearly every frame, made once rather than per frame.
const DELIVERED_LOCALLY = { ok: true, local: true } as const;
const NOT_LOCAL = { ok: true, local: false } as const;
// The adapters only read a broadcast's flags.
const LOCAL_ONLY = Object.freeze({ local: true });

export interface OperationsDeps {
  io: Server;
  broker: Broker;
  config: Pick<Config, "frameSigning" | "limits" | "auth" | "presence" | "eventRoutesMax" | "revocationsMax">;
  metrics: Metrics;
  logger: FastifyBaseLogger;
  warnings: ThrottledWarnings;
  routes: EventRoutes;
  revocations: RevocationMirror;
}

export function createOperations(deps: OperationsDeps): Operations {
  const { io, broker, config, metrics, routes, revocations } = deps;
  const limits = { maxDepth: config.limits.payloadMaxDepth };
  // A node publishes under its first signing key, so nodes that require signatures accept what it sends.
  const signingKey = config.frameSigning ? [...config.frameSigning.keys][0] : undefined;
  const seal = (frame: Uint8Array) =>
    signingKey === undefined
      ? frame
      : sealFrame(frame, signingKey[0], (payload) => createHmac("sha256", signingKey[1]).update(payload).digest());
  const transport: ControlTransport = {
    setKey: (key, value, ttlMs) => broker.state.setKey(key, value, ttlMs),
    deleteKey: (key) => broker.state.deleteKey(key),
    publishFrame: (frame) => broker.publishRaw(seal(frame)),
  };
  // A token is taken up to JWT_CLOCK_TOLERANCE_SECONDS past its exp: a kick or a revocation holds that much longer.
  const tolerance = config.auth.clockToleranceSeconds;
  const refuseForSeconds = Math.min((config.auth.maxTtlSeconds ?? 86_400) + tolerance, MAX_REFUSE_SECONDS);

  // Checked on the node the request reaches, whose mirror holds what every node holds.
  const roomForRevocation = (kind: "user" | "token", key: string) => {
    if (revocations.hasRoomFor(kind, key)) return;
    deps.metrics.limitHits.inc({ kind: "revocations" });
    throw new SwitchboardError(
      "revocation_limit",
      detailed("revocation_limit", `${revocations.size} are in force (REVOCATIONS_MAX is ${config.revocationsMax})`).message,
    );
  };
  // A revocation from a path that does not check the limit (the emitter, a raw control frame), past it on this node.
  const notHeld = (count: number) => {
    if (count === 0) return;
    deps.metrics.limitHits.inc({ kind: "revocations" }, count);
    deps.warnings.warn(
      "revocations-full",
      { code: "revocation_limit", notHeld: count, held: revocations.size, max: config.revocationsMax },
      "a revocation past REVOCATIONS_MAX is not held on this node: the tokens it names are not refused here",
    );
  };

  const presenceOn = async () => {
    if (!config.presence) throw new SwitchboardError("presence_off");
  };
  const list = (value: string | string[] | undefined): readonly string[] =>
    value === undefined ? NO_ROOMS : Array.isArray(value) ? value : [value];
  /** `first` then `added`, each room once. A single room, what nearly every message names, needs no Set. */
  const distinct = (first: readonly string[], added: readonly string[]): string[] =>
    added.length === 0 && first.length === 1 ? [first[0] as string] : [...new Set([...first, ...added])];

  function resolve(
    event: string,
    explicit: readonly string[],
    added: readonly string[],
    fill: RouteFill,
  ): { ok: true; rooms: string[] } | { ok: false; code: "route_unknown" | "route_incomplete"; reason: string } {
    if (explicit.length > 0) return { ok: true, rooms: distinct(explicit, added) };
    const routed = routes.resolve(event, fill);
    if (!routed.ok) return { ok: false, code: routed.error.code as "route_unknown" | "route_incomplete", reason: routed.error.message };
    return { ok: true, rooms: distinct([routed.room], added) };
  }

  /** A publication checked as a frame from Redis would be, with its rooms resolved here, once, so every node delivers to the same ones. */
  function checked(publication: Publication): { id: string; rooms: string[]; message: OutboundMessage } {
    const rooms = operations.targets(publication);
    const unchecked: RawFrame = { room: rooms, event: publication.event ?? "message", data: publication.data ?? null };
    const { except } = publication;
    // An empty list names no room to leave out: the frame goes without one, as a publisher's would.
    if (except !== undefined && (typeof except === "string" || except.length > 0)) unchecked.except = except;
    const frame = checkRawFrame(unchecked, limits);
    return { id: frame.id, rooms, message: { rooms: frame.rooms, except: frame.except, event: frame.event, args: frame.args } };
  }

  const operations: Operations = {
    targets(publication) {
      const event = publication.event ?? "message";
      const fill: RouteFill = {};
      if (publication.user !== undefined) fill.user = publication.user;
      if (publication.site !== undefined) fill.site = publication.site;
      const resolved = resolve(event, list(publication.room), list(publication._in), fill);
      if (!resolved.ok) throw new SwitchboardError(resolved.code, resolved.reason);
      return resolved.rooms;
    },

    async publish(publication, source) {
      const { id, rooms, message } = checked(publication);
      await broker.publish(message);
      if (source !== null) metrics.messageReceived(source);
      return { id, rooms };
    },

    async publishMany(publications, source) {
      const messages = publications.map((publication, index) => {
        try {
          return checked(publication);
        } catch (err) {
          if (err instanceof SwitchboardError) throw new SwitchboardError(err.code, `messages[${index}]: ${err.message}`);
          throw err;
        }
      });
      // Issued together, the publishes share the Redis connection's pipeline.
      await broker.publishBatch(messages.map(({ message }) => message));
      for (let count = 0; count < messages.length; count++) metrics.messageReceived(source);
      return { ids: messages.map(({ id }) => id) };
    },

    async broadcast(event, data, source) {
      if (!isPublishableEvent(event))
        throw new SwitchboardError("invalid_event", `event ${preview(event)} is not a publishable event name`);
      await broker.publish({ rooms: [], except: [], event, args: [data ?? null] });
      metrics.messageReceived(source);
      return { id: newMessageId() };
    },

    async kick(user, options) {
      if (options.refuseReconnect ?? true) roomForRevocation("user", userIdOf(user));
      return kickUser(transport, user, { ...options, refuseForSeconds });
    },
    allow: (user) => allowUser(transport, user),
    async revokeToken(jti, exp) {
      // A token already past its exp (and the tolerance) takes no place: nothing is stored for it.
      if ((exp + tolerance) * 1000 > Date.now()) roomForRevocation("token", jti);
      return revokeToken(transport, jti, exp, tolerance);
    },

    async registerRoute(event, room) {
      const problem = routeProblem(event, room);
      if (problem !== null) throw new SwitchboardError("invalid_request", detailed("invalid_request", problem).message);
      if (!(await broker.state.setRoute(event, room, config.eventRoutesMax)))
        throw new SwitchboardError(
          "route_limit",
          detailed("route_limit", `${config.eventRoutesMax} routes are registered (EVENT_ROUTES_MAX); ${preview(event)} is not one of them`)
            .message,
        );
      await transport.publishFrame(encodeControlFrame({ control: "routes" }), RAW_FRAME_CHANNEL);
    },

    async unregisterRoute(event) {
      const removed = await broker.state.deleteRoute(event);
      if (removed) await transport.publishFrame(encodeControlFrame({ control: "routes" }), RAW_FRAME_CHANNEL);
      return removed;
    },

    listRoutes: () => routes.list(),
    presenceOfUser: (user) => presenceOn().then(() => broker.state.userPresence(user)),
    presenceOfSite: (host, cursor, limit) => presenceOn().then(() => broker.state.sitePresence(host, cursor, limit)),
    roomCount: (room) => presenceOn().then(() => broker.state.roomCount(room)),
    nodes: () => broker.state.nodes(),

    holdsAny(rooms) {
      const held = io.of("/").adapter.rooms;
      for (const room of rooms) if (held.has(room)) return true;
      return false;
    },

    deliver(delivery, roomsHeld = false) {
      let rooms = delivery.rooms;
      if (delivery.route !== null) {
        const resolved = resolve(delivery.event, [], delivery.in, delivery.route);
        if (!resolved.ok) return resolved;
        rooms = resolved.rooms;
      } else if (delivery.in.length > 0) {
        rooms = [...new Set([...rooms, ...delivery.in])];
      }
      const adapter = io.of("/").adapter;
      // Every node receives every raw frame; most hold none of its rooms, and stop here.
      if (!roomsHeld && rooms.length > 0 && !operations.holdsAny(rooms)) return NOT_LOCAL;
      // Straight to the adapter, as io.local.to(rooms).emit() ends up doing, without building an
      // operator per frame; the event name was checked with the frame. The adapter leaves
      // unauthenticated sockets out of this broadcast, as out of every other.
      adapter.broadcast(packetOf(delivery), { rooms: new Set(rooms), except: new Set(delivery.except), flags: LOCAL_ONLY });
      return DELIVERED_LOCALLY;
    },

    control(frame) {
      switch (frame.control) {
        case "kick": {
          if (frame.refuseBefore !== undefined && !revocations.refuseUser(frame.user, frame.refuseBefore, frame.refuseUntil)) notHeld(1);
          const room = userRoom(frame.user);
          const kicked: KickedPayload = { ...errorBody("kicked"), ...(frame.reason !== undefined ? { reason: frame.reason } : {}) };
          io.local.to(room).emit(SERVER_EVENTS.kicked, kicked);
          io.local.in(room).disconnectSockets(true);
          return;
        }
        case "allow":
          revocations.allowUser(frame.user);
          return;
        case "revoke": {
          if (!revocations.refuseToken(frame.jti, frame.exp)) notHeld(1);
          for (const socket of io.of("/").sockets.values()) {
            if ((socket.data as { session?: { jti?: string } }).session?.jti !== frame.jti) continue;
            socket.emit(SERVER_EVENTS.unauthorized, detailed("token_revoked", "this token was revoked"));
            socket.disconnect(true);
          }
          return;
        }
        case "routes":
          void broker.state.loadRoutes().then(
            (registered) => routes.setRegistered(registered),
            (err: unknown) =>
              deps.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "could not read the registered event routes"),
          );
          return;
      }
    },

    async reloadShared() {
      const [registered, revoked] = await Promise.all([broker.state.loadRoutes(), broker.state.loadRevocations()]);
      routes.setRegistered(registered);
      notHeld(revocations.replace(revoked));
    },
  };
  return operations;
}

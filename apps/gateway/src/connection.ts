import type { IncomingMessage } from "node:http";
import {
  type Deadlines,
  type AuthenticatedPayload,
  type ClientToServerEvents,
  type ConfiguredPayload,
  type ErrorBody,
  type EventErrorPayload,
  type Identity,
  type PublishReply,
  type ServiceRequestAck,
  SERVER_EVENTS,
  type ServerToClientEvents,
  SwitchboardError,
  type SubscriptionReply,
  type TokenExpiringPayload,
  type WelcomePayload,
  errorBody,
  preview,
  userRoom,
} from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import { type RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Socket } from "socket.io";
import { AuthError, type Grants, type Session, type TokenVerifier } from "./auth.js";
import type { Config } from "./config.js";
import { detailed, toWireError } from "./errors.js";
import type { Metrics } from "./metrics.js";
import type { Operations, Publication } from "./operations.js";
import {
  type ClientEventName,
  type ClientEventSchemas,
  type ClientPayload,
  EVENT_COST,
  isClientEventName,
  parsePayload,
} from "./payloads.js";
import type { PresenceTracker } from "./presence.js";
import type { CallingSocket, ServiceCalls } from "./service-calls.js";
import type { LifecycleLog } from "./lifecycle.js";
import {
  type CompiledPattern,
  UNAUTHENTICATED_ROOM,
  compilePatterns,
  matchesPattern,
  patternsFor,
  reservedRoomProblem,
  roomsFor,
  unpublishableRoomProblem,
} from "./rooms.js";

/** What a socket carries for the rest of the gateway. */
export interface SocketData {
  /** Set by the handshake middleware when the handshake carried a valid token; then by `authenticate`. */
  session?: Session;
}

/** A socket of the typed server: what clients send and what the gateway sends them. */
export type ClientSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** What an admitted socket adds to cluster-wide presence: who it is and the rooms it subscribed to. */
export interface PresenceShare {
  identity: Identity;
  rooms: Iterable<string>;
}

/**
 * The node's authenticated sockets. A user's sockets here are the members of the user's room, which
 * the adapter keeps anyway: USER_MAX_SOCKETS reads that room's size instead of a count of its own.
 */
export class AdmittedSockets {
  private readonly connections = new Set<Connection>();

  /**
   * @param max USER_MAX_SOCKETS; 0 means no limit
   * @param roomSize how many of this node's sockets are in a room
   */
  constructor(
    private readonly max: number,
    private readonly roomSize: (room: string) => number,
  ) {}

  /** True when the user may not open another socket here. */
  full(user: string): boolean {
    return this.max > 0 && this.roomSize(userRoom(user)) >= this.max;
  }

  add(connection: Connection): void {
    this.connections.add(connection);
  }

  remove(connection: Connection): void {
    this.connections.delete(connection);
  }

  /** Every authenticated socket on this node. */
  total(): number {
    return this.connections.size;
  }

  /** What each authenticated socket adds to presence, read when presence is written again in full. */
  *presenceShares(): IterableIterator<PresenceShare> {
    for (const connection of this.connections) {
      const share = connection.presenceShare();
      if (share !== null) yield share;
    }
  }
}

/** What every connection on a node shares. */
export interface ConnectionContext {
  config: Pick<Config, "nodeId" | "auth" | "limits">;
  verifier: TokenVerifier;
  logger: FastifyBaseLogger;
  metrics: Metrics;
  version: string;
  maySubscribe: (identity: Identity, room: string, claimed: readonly CompiledPattern[]) => boolean;
  /** SUBSCRIBE_ROOMS, for `welcome`. */
  subscribePatterns: readonly CompiledPattern[];
  operations: Pick<Operations, "publish" | "targets">;
  presence: PresenceTracker;
  schemas: ClientEventSchemas;
  /** Event points per socket per second (CLIENT_EVENT_RATE). */
  eventRate: RateLimiterMemory;
  /** Refused events per socket per 10 s before the socket is disconnected. */
  strikes: RateLimiterMemory;
  admitted: AdmittedSockets;
  services: ServiceCalls;
  /** LIFECYCLE_EVENTS; null when off. */
  lifecycle: LifecycleLog | null;
  /** SERVICE_POLICY: services every authenticated socket may call. */
  servicePolicy: readonly CompiledPattern[];
  /** Token expiry and its notice, for every connection of the node. */
  deadlines: Deadlines<Connection>;
  /** See Broker.roomsSubscribed. */
  roomsSubscribed(): Promise<void> | null;
}

type Ack = (reply: unknown) => void;
type Handlers = { [Event in ClientEventName]: (connection: Connection, payload: ClientPayload<Event>, ack: Ack | undefined) => void };

const NO_PATTERNS: readonly CompiledPattern[] = Object.freeze([]);
/** What a released handshake keeps of its token, headers and query: one empty object shared by every socket. */
const RELEASED = Object.freeze({});
const SERVICE_ROOM = /^service\((.+)\)$/;

/**
 * One client socket: who it is, what it subscribed to, and its timers (authentication timeout,
 * expiry notice, expiry). Every event the client sends goes through `dispatch`, which checks its
 * rate, nesting and schema before the one handler for that event sees it.
 */
export class Connection {
  /** One table for every connection: a node holds many, and a closure per event each would add up. */
  private static readonly handlers: Handlers = {
    authenticate: (connection, payload, ack) => connection.authenticate(payload.token, ack),
    subscribe: (connection, payload, ack) => connection.answerJoined(ack, connection.subscribe(payload.room)),
    unsubscribe: (connection, payload, ack) => ack?.(connection.unsubscribe(payload.room)),
    join: (connection, payload, ack) => connection.answerJoined(ack, connection.subscribe(payload.room)),
    leave: (connection, payload, ack) => ack?.(connection.unsubscribe(payload.room)),
    configure: (connection, payload, ack) => connection.configure(payload, ack),
    publish: (connection, payload, ack) => connection.publish(payload, ack),
    request: (connection, payload, ack) => connection.toService("request", payload, ack),
    send: (connection, payload, ack) => connection.toService("send", payload, ack),
  };

  private identity: Identity | null = null;
  /** Rooms joined by subscription; made on the first one, as most sockets never subscribe. */
  private subscriptions: Set<string> | null = null;
  /** What the token's claims add: rooms it may join, rooms it may publish to. */
  private claimedRooms: readonly CompiledPattern[] = NO_PATTERNS;
  private publishable: readonly CompiledPattern[] = NO_PATTERNS;
  private callable: readonly CompiledPattern[] = NO_PATTERNS;
  private authTimeout: NodeJS.Timeout | undefined;
  /** When the token expires (null: never), whether its notice went out, and its place in the deadlines. */
  private expiresAt: number | null = null;
  private expiryNoticeSent = false;
  private deadline: number | null = null;

  constructor(
    private readonly socket: ClientSocket,
    private readonly ctx: ConnectionContext,
  ) {
    // Events are handled here, never by listeners on the socket: nothing reaches a handler unchecked.
    socket.use((packet) => this.dispatch(packet));
    socket.on("disconnect", (reason) => this.closed(reason));
  }

  /** Admits a socket whose handshake carried a valid token, or waits for `authenticate`. */
  start(session: Session | undefined): void {
    if (session) {
      this.admit(session);
      return;
    }
    // Joined before any await, so no broadcast can reach the socket before it authenticates.
    this.socket.join(UNAUTHENTICATED_ROOM);
    this.authTimeout = setTimeout(() => this.reject(errorBody("auth_timeout")), this.ctx.config.auth.timeoutMs);
  }

  private dispatch(packet: unknown[]): void {
    const [event, ...args] = packet;
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as Ack) : undefined;
    const known = isClientEventName(event, this.ctx.schemas);
    this.ctx.eventRate.consume(this.socket.id, known ? EVENT_COST[event] : 1).then(
      () => this.handle(event, args, ack),
      (rejection: unknown) => this.rateLimited(event, ack, rejection),
    );
  }

  private handle(event: unknown, args: unknown[], ack: Ack | undefined): void {
    if (!this.socket.connected) return;
    if (!isClientEventName(event, this.ctx.schemas)) {
      this.refuse(event, ack, detailed("event_unknown", `${preview(event)} is not an event this server handles`));
      return;
    }
    const parsed = parsePayload(this.ctx.schemas, event, args, this.ctx.config.limits.payloadMaxDepth);
    if (!parsed.ok) {
      if (parsed.tooDeep) this.ctx.metrics.limitHits.inc({ kind: "payload_depth" });
      this.refuse(event, ack, parsed.error);
      return;
    }
    try {
      // The payload was produced by this event's own schema.
      (Connection.handlers[event] as (connection: Connection, payload: unknown, ack: Ack | undefined) => void)(this, parsed.payload, ack);
    } catch (err) {
      this.ctx.logger.error({ err, event, socket: this.socket.id }, "client event handler failed");
      this.refuse(event, ack, errorBody("internal_error"));
    }
  }

  private rateLimited(event: unknown, ack: Ack | undefined, rejection: unknown): void {
    if (!(rejection instanceof RateLimiterRes)) {
      this.ctx.logger.error({ err: rejection }, "event rate limiter failed");
      return;
    }
    if (!this.socket.connected) return;
    this.ctx.metrics.limitHits.inc({ kind: "event_rate" });
    this.refuse(event, ack, detailed("rate_limited", `more than ${this.ctx.config.limits.clientEventRate} event points in one second`));
    // Sustained excess is abuse, not a burst: the socket goes.
    this.ctx.strikes.consume(this.socket.id).catch(() => {
      if (!this.socket.connected) return;
      this.ctx.metrics.limitHits.inc({ kind: "event_rate_disconnect" });
      this.ctx.logger.warn(
        { code: "rate_limited", socket: this.socket.id, user: this.identity?.user },
        "disconnected a socket that kept exceeding CLIENT_EVENT_RATE",
      );
      this.socket.disconnect(true);
    });
  }

  /** Answers a refused event: in its acknowledgement when it asked for one, else with an `error` event. */
  private refuse(event: unknown, ack: Ack | undefined, error: ErrorBody): void {
    if (ack) {
      ack({ ok: false, error });
      return;
    }
    const payload: EventErrorPayload = typeof event === "string" ? { ...error, event: event.slice(0, 64) } : error;
    this.socket.emit(SERVER_EVENTS.error, payload);
  }

  private authenticate(token: unknown, ack: Ack | undefined): void {
    this.ctx.verifier.verify(token).then(
      (session) => this.authenticated(session, ack),
      (err: unknown) => this.authenticationFailed(err, ack),
    );
  }

  private authenticated(session: Session, ack: Ack | undefined): void {
    if (!this.socket.connected) return;
    // A fresh token must name the same user and site: rooms are not moved mid-connection.
    if (this.identity && (session.identity.user !== this.identity.user || session.identity.site !== this.identity.site)) {
      this.authenticationFailed(new AuthError("claims_invalid", "a refreshed token must name the same user and site"), ack);
      return;
    }
    const authenticated: AuthenticatedPayload = { user: session.identity.user, site: session.identity.site };
    if (this.identity) {
      this.socket.data.session = session;
      this.grant(session.grants);
      this.socket.emit(SERVER_EVENTS.authenticated, authenticated);
      ack?.(authenticated);
      this.watchExpiry(session.expiresAt);
      return;
    }
    if (this.ctx.admitted.full(session.identity.user)) {
      this.refuseUserLimit(ack);
      return;
    }
    this.socket.emit(SERVER_EVENTS.authenticated, authenticated);
    ack?.(authenticated);
    this.admit(session);
  }

  private authenticationFailed(err: unknown, ack: Ack | undefined): void {
    if (!this.socket.connected) return;
    if (!(err instanceof AuthError)) this.ctx.logger.error({ err }, "event authentication failed unexpectedly");
    else if (err.failure === "too_large") this.ctx.metrics.limitHits.inc({ kind: "token_size" });
    const body = toWireError(err);
    ack?.(body);
    this.reject(body);
  }

  private subscribe(room: string): SubscriptionReply {
    const identity = this.identity;
    if (!identity) return { ok: false, error: detailed("subscription_forbidden", "authenticate first") };
    if (this.subscriptions?.has(room)) return { ok: true, room };
    // A service's room is for its callers: the services claim and SERVICE_POLICY decide, not the room patterns.
    const service = SERVICE_ROOM.exec(room)?.[1];
    if (service !== undefined ? !this.mayCall(identity, service) : !this.ctx.maySubscribe(identity, room, this.claimedRooms)) {
      const reserved = reservedRoomProblem(room);
      return {
        ok: false,
        error: detailed("subscription_forbidden", reserved ?? `${preview(room)} is not a room this socket may subscribe to`),
      };
    }
    this.subscriptions ??= new Set();
    const subscriptions = this.subscriptions;
    if (subscriptions.size >= this.ctx.config.limits.clientMaxRooms) {
      this.ctx.metrics.limitHits.inc({ kind: "rooms_per_socket" });
      return { ok: false, error: detailed("too_many_rooms", `this socket holds ${subscriptions.size} rooms`) };
    }
    this.socket.join(room);
    subscriptions.add(room);
    this.ctx.presence.roomJoined(identity, room);
    this.ctx.lifecycle?.record("subscribed", identity, this.socket.id, { room });
    return { ok: true, room };
  }

  private unsubscribe(room: string): SubscriptionReply {
    // A socket's user, site and own rooms are not subscriptions: leaving them is refused, not pretended.
    const reserved = reservedRoomProblem(room);
    if (reserved !== null) return { ok: false, error: detailed("subscription_forbidden", reserved) };
    if (this.subscriptions?.delete(room)) {
      this.socket.leave(room);
      if (this.identity) {
        this.ctx.presence.roomLeft(this.identity, room);
        this.ctx.lifecycle?.record("unsubscribed", this.identity, this.socket.id, { room });
      }
    }
    return { ok: true, room };
  }

  /** The first brokers' `configure`: joins (true) and leaves (false) several rooms, and says which it holds. */
  private configure(rooms: Record<string, boolean>, ack: Ack | undefined): void {
    const refused: ConfiguredPayload["refused"] = [];
    for (const [room, join] of Object.entries(rooms)) {
      const reply = join ? this.subscribe(room) : this.unsubscribe(room);
      if (!reply.ok) refused.push({ room: room.slice(0, 200), error: reply.error });
    }
    const configured: ConfiguredPayload = { ok: true, rooms: [...(this.subscriptions ?? [])], refused };
    this.onceRoomsReceived(() => {
      this.socket.emit(SERVER_EVENTS.configured, configured);
      ack?.(configured);
    });
  }

  /** Acknowledges a subscription once the node receives the room's messages. */
  private answerJoined(ack: Ack | undefined, reply: SubscriptionReply): void {
    if (ack) this.onceRoomsReceived(() => ack(reply));
  }

  /**
   * Runs `then` once this node receives the broadcasts of every room the socket joined (at once
   * when it already does, as for most joins), and only if the socket is still connected.
   */
  private onceRoomsReceived(then: () => void): void {
    const pending = this.ctx.roomsSubscribed();
    if (pending === null) then();
    else
      pending.then(() => {
        if (this.socket.connected) then();
      });
  }

  /**
   * A message from the client to rooms its token's `publish` claim allows: the room it names or the
   * event's route (filled with the socket's own user and site), and each `_in` room. Every target
   * must be allowed, or nothing is sent. Without the claim nothing a client sends is broadcast.
   */
  private publish(payload: ClientPayload<"publish">, ack: Ack | undefined): void {
    const identity = this.identity;
    const answer = (reply: PublishReply) => {
      if (ack) ack(reply);
      else if (!reply.ok) this.socket.emit(SERVER_EVENTS.error, { ...reply.error, event: "publish" });
    };
    if (!identity) {
      answer({ ok: false, error: detailed("publish_forbidden", "authenticate first") });
      return;
    }
    if (this.publishable.length === 0) {
      answer({ ok: false, error: detailed("publish_forbidden", "the token has no publish claim") });
      return;
    }
    const publication: Publication = { event: payload.event, data: payload.data ?? null, user: identity.user };
    if (identity.site !== null) publication.site = identity.site;
    if (payload.room !== undefined) publication.room = payload.room;
    if (payload._in !== undefined) publication._in = payload._in;
    let rooms: string[];
    try {
      rooms = this.ctx.operations.targets(publication);
    } catch (err) {
      answer({ ok: false, error: err instanceof SwitchboardError ? err.toJSON() : errorBody("internal_error") });
      return;
    }
    for (const room of rooms) {
      const problem =
        unpublishableRoomProblem(room) ??
        (matchesPattern(this.publishable, identity, room) ? null : `${preview(room)} is not in the token's publish claim`);
      if (problem !== null) {
        answer({ ok: false, error: detailed("publish_forbidden", problem) });
        return;
      }
    }
    // The rooms were resolved above; the route is not looked up twice.
    publication.room = rooms;
    this.ctx.operations.publish(publication, "client").then(
      ({ id }) => answer({ ok: true, id }),
      (err: unknown) => answer({ ok: false, error: err instanceof SwitchboardError ? err.toJSON() : errorBody("internal_error") }),
    );
  }

  private mayCall(identity: Identity, service: string): boolean {
    return matchesPattern(this.callable, identity, service) || matchesPattern(this.ctx.servicePolicy, identity, service);
  }

  private callingSocket(): CallingSocket | null {
    const identity = this.identity;
    return identity === null ? null : { id: this.socket.id, identity, mayCall: (service) => this.mayCall(identity, service) };
  }

  /** `request` (a call to a backend service; its replies come as `reply` events) and `send` (a message that wants no reply). */
  private toService<Kind extends "request" | "send">(kind: Kind, payload: ClientPayload<Kind>, ack: Ack | undefined): void {
    const caller = this.callingSocket();
    if (!caller) {
      this.answerService(payload.service, ack, { ok: false, error: detailed("service_forbidden", "authenticate first") });
      return;
    }
    const answered =
      kind === "request"
        ? this.ctx.services.request(caller, payload as ClientPayload<"request">)
        : this.ctx.services.send(caller, payload as ClientPayload<"send">);
    answered.then(
      (answer) => this.answerService(payload.service, ack, answer),
      (err: unknown) => {
        this.ctx.logger.error({ err, event: kind }, "a service call failed unexpectedly");
        this.answerService(payload.service, ack, { ok: false, error: errorBody("internal_error") });
      },
    );
  }

  /** The acknowledgement, or, for a refusal nobody asked to be acknowledged, an `error` event. */
  private answerService(service: string, ack: Ack | undefined, answer: ServiceRequestAck): void {
    if (!this.socket.connected) return;
    if (ack) ack(answer);
    else if (!answer.ok) this.socket.emit(SERVER_EVENTS.error, { ...answer.error, event: service.slice(0, 64) });
  }

  private admit(session: Session): void {
    const identity = session.identity;
    if (this.ctx.admitted.full(identity.user)) {
      this.refuseUserLimit(undefined);
      return;
    }
    clearTimeout(this.authTimeout);
    this.identity = identity;
    this.grant(session.grants);
    this.socket.data.session = session;
    this.ctx.admitted.add(this);
    this.ctx.metrics.connectedSockets.inc();
    this.ctx.presence.socketAdmitted(identity);
    this.ctx.lifecycle?.record("connected", identity, this.socket.id);
    // Only a socket that authenticated after its handshake was put there; leaving costs an adapter call.
    if (this.socket.rooms.has(UNAUTHENTICATED_ROOM)) this.socket.leave(UNAUTHENTICATED_ROOM);
    const rooms = roomsFor(identity);
    this.socket.join(rooms);
    this.releaseHandshake();
    const welcome: WelcomePayload = {
      id: this.socket.id,
      node: this.ctx.config.nodeId,
      name: "switchboard",
      version: this.ctx.version,
      user: identity.user,
      site: identity.site,
      rooms,
      joinable: patternsFor(this.ctx.subscribePatterns, identity).concat(patternsFor(this.claimedRooms, identity)),
      publishable: patternsFor(this.publishable, identity),
    };
    // Welcomed once the node receives its rooms' messages: anything published after the welcome reaches the socket.
    this.onceRoomsReceived(() => this.socket.emit(SERVER_EVENTS.welcome, welcome));
    this.watchExpiry(session.expiresAt);
  }

  /** What the token's claims add; a refreshed token replaces them. */
  private grant(grants: Grants): void {
    this.claimedRooms = grants.rooms.length === 0 ? NO_PATTERNS : compilePatterns(grants.rooms);
    this.publishable = grants.publish.length === 0 ? NO_PATTERNS : compilePatterns(grants.publish);
    this.callable = grants.services.length === 0 ? NO_PATTERNS : compilePatterns(grants.services);
  }

  private refuseUserLimit(ack: Ack | undefined): void {
    this.ctx.metrics.limitHits.inc({ kind: "user_sockets" });
    const body = errorBody("user_connection_limit");
    ack?.(body);
    this.reject(body);
  }

  /**
   * The handshake is kept for the socket's life and is what a FETCH_SOCKETS request over Redis
   * publishes: once the socket is admitted its token, headers (cookies among them) and query are
   * dropped, and so is the HTTP request under the connection, which would otherwise stay in memory
   * with everything it references for as long as the socket lives.
   */
  private releaseHandshake(): void {
    const handshake = this.socket.handshake;
    handshake.auth = RELEASED;
    handshake.headers = RELEASED;
    handshake.query = RELEASED;
    (this.socket.conn as { request: IncomingMessage | null }).request = null;
  }

  /** Notice first, then expiry; a fresh token from `authenticate` starts both again. */
  private watchExpiry(expiresAt: number | null): void {
    this.clearDeadline();
    this.expiresAt = expiresAt;
    this.expiryNoticeSent = false;
    if (expiresAt !== null) this.deadline = this.ctx.deadlines.add(expiresAt - this.ctx.config.auth.refreshNoticeMs, this);
  }

  /** The token's notice time or expiry came (see Deadlines). */
  deadlineReached(): void {
    this.deadline = null;
    const expiresAt = this.expiresAt;
    if (expiresAt === null || !this.socket.connected) return;
    if (Date.now() >= expiresAt) {
      this.reject(detailed("token_expired", "not refreshed in time"));
      return;
    }
    if (!this.expiryNoticeSent) {
      this.expiryNoticeSent = true;
      const notice: TokenExpiringPayload = { expiresAt };
      this.socket.emit(SERVER_EVENTS.tokenExpiring, notice);
    }
    this.deadline = this.ctx.deadlines.add(expiresAt, this);
  }

  private clearDeadline(): void {
    if (this.deadline !== null) this.ctx.deadlines.remove(this.deadline, this);
    this.deadline = null;
  }

  private reject(body: ErrorBody): void {
    this.clearTimers();
    this.ctx.metrics.authFailures.inc({ code: body.code });
    this.socket.emit(SERVER_EVENTS.unauthorized, body);
    this.socket.disconnect(true);
  }

  private clearTimers(): void {
    clearTimeout(this.authTimeout);
    this.clearDeadline();
  }

  /** What this socket adds to presence, or null before it is admitted. */
  presenceShare(): PresenceShare | null {
    return this.identity === null ? null : { identity: this.identity, rooms: this.subscriptions ?? [] };
  }

  private closed(reason: string): void {
    this.clearTimers();
    if (this.identity) {
      this.ctx.lifecycle?.record("disconnected", this.identity, this.socket.id, { reason });
      this.ctx.admitted.remove(this);
      this.ctx.metrics.connectedSockets.dec();
      this.ctx.presence.socketLeft(this.identity, this.subscriptions ?? []);
    }
    this.ctx.services.forget(this.socket.id);
    this.ctx.eventRate.delete(this.socket.id).catch(() => {});
    this.ctx.strikes.delete(this.socket.id).catch(() => {});
  }
}

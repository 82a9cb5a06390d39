import type { Identity } from "./claims.js";
import type { ErrorBody } from "./errors.js";

/** The event a published message is delivered as when it names none. */
export const DEFAULT_EVENT = "message";

/** Events the gateway itself sends to clients. */
export const SERVER_EVENTS = {
  welcome: "welcome",
  authenticated: "authenticated",
  unauthorized: "unauthorized",
  kicked: "kicked",
  tokenExpiring: "token_expiring",
  /** A client event the server refused without an acknowledgement to answer through. */
  error: "error",
  /** The node is stopping: reconnect (through the balancer, to another node) after `retryAfterMs`. */
  reconnect: "reconnect",
  /** The answer to `configure`: the rooms the socket holds by asking. */
  configured: "configured",
  /** A service's answer to a `request`: progress, then its result or its error. */
  reply: "reply",
} as const;

/**
 * The response header naming the code of a refused handshake (`origin_not_allowed`, a connection
 * limit, `node_draining`). Any origin may read it, and a HEAD request for the handshake URL gets it
 * without opening a session: the one way a browser can learn why its WebSocket was refused.
 */
export const HANDSHAKE_REFUSAL_HEADER = "X-Switchboard-Error";

/** Events clients send to the gateway. */
export const CLIENT_EVENTS = {
  /** Authenticates a socket that connected without a token, or replaces the token of one that did. */
  authenticate: "authenticate",
  subscribe: "subscribe",
  unsubscribe: "unsubscribe",
  /** The first brokers' names for subscribe and unsubscribe. */
  join: "join",
  leave: "leave",
  /** Joins and leaves several rooms at once: `{ "<room>": true | false, ... }`. */
  configure: "configure",
  /** Publishes to rooms the token's `publish` claim allows. */
  publish: "publish",
  /** Calls a backend service and waits for its `reply` events. */
  request: "request",
  /** Hands a backend service a message that wants no reply. */
  send: "send",
} as const;

/** Names Socket.IO reserves, and the events the gateway sends itself: nobody may publish them. */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
  ...Object.values(SERVER_EVENTS),
]);

export function isPublishableEvent(event: unknown): event is string {
  return typeof event === "string" && event.length > 0 && event.length <= 200 && !RESERVED_EVENTS.has(event);
}

export interface WelcomePayload {
  /** The socket id. */
  id: string;
  /** The gateway node the socket is connected to (NODE_ID). */
  node: string;
  name: "switchboard";
  version: string;
  user: string;
  site: string | null;
  rooms: string[];
  /** Room patterns this socket may join (`*` matches any run of characters). */
  joinable: string[];
  /** Room patterns this socket may publish to; empty without a `publish` claim. */
  publishable: string[];
}

export type AuthenticatedPayload = Identity;
export type UnauthorizedPayload = ErrorBody;

/** Sent just before the server disconnects the socket on a kick. */
export interface KickedPayload extends ErrorBody {
  /** Why, as the kick said. */
  reason?: string;
}

export interface AuthenticatePayload {
  token: string;
}

/** Sent before the socket's token expires; answer with `authenticate` and a fresh token. */
export interface TokenExpiringPayload {
  /** When the current token expires, ms since the epoch. */
  expiresAt: number;
}

/**
 * Sent for a client event that was refused (bad payload, rate limit) when the client asked for no
 * acknowledgement; with an acknowledgement the same error comes back in it instead.
 */
export interface EventErrorPayload extends ErrorBody {
  /** The name of the refused event, when it had one. */
  event?: string;
}

/**
 * Sent by a stopping node before it closes the socket's connection. The node spreads these over
 * DRAIN_SPREAD_MS so its clients do not all land on the other nodes at once.
 */
export interface ReconnectPayload {
  /** How long to wait before reconnecting, in ms (a small random delay). */
  retryAfterMs: number;
}

export interface SubscribePayload {
  room: string;
}

/** The acknowledgement of `subscribe`, `unsubscribe`, `join` and `leave`. */
export type SubscriptionReply = { ok: true; room: string } | { ok: false; error: ErrorBody };

/** `configure`: each room to join (true) or leave (false). */
export type ConfigurePayload = Record<string, boolean>;

/** The answer to `configure` (as its acknowledgement and as the `configured` event). */
export interface ConfiguredPayload {
  ok: true;
  /** Every room the socket now holds by asking. */
  rooms: string[];
  /** Rooms of the request that were refused, with why. */
  refused: { room: string; error: ErrorBody }[];
}

/** `publish` from a client whose token carries a `publish` claim. */
export interface ClientPublishPayload {
  /** Where to; without it, the event's route (EVENT_ROUTES or a registered one). */
  room?: string;
  event: string;
  data: unknown;
  /** More rooms, each of which the claim must allow. */
  _in?: string | string[];
}

export type PublishReply = { ok: true; id: string } | { ok: false; error: ErrorBody };

/** Sent to `site(<host>)` with PRESENCE_EVENTS=1 when a user's first socket connects or last one leaves. */
export interface PresencePayload {
  user: string;
  online: boolean;
}

/** `request`: a call to a backend service. */
export interface ServiceRequestPayload {
  /** The caller's own id for the call, repeated in every `reply`; the gateway makes one when it is absent. */
  id?: string;
  service: string;
  payload?: unknown;
  /** How long the caller waits for the result (capped by SERVICE_REQUEST_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** The acknowledgement of `request` (taken and queued, or refused at once) and of `send`. */
export type ServiceRequestAck = { ok: true; id: string } | { ok: false; error: ErrorBody };

/** `send`: a message to a backend service that wants no reply. */
export interface ServiceSendPayload {
  service: string;
  event?: string;
  payload?: unknown;
}

/**
 * A service's answer to a `request`, sent to the calling socket. Zero or more `progress`, then
 * exactly one `done` or `error` (`request_timeout` when the service did not finish in time).
 */
export type ServiceReplyPayload =
  | { id: string; kind: "progress"; data: unknown }
  | { id: string; kind: "done"; data: unknown }
  | { id: string; kind: "error"; error: { code: string; message: string } };

/** A refusal of any client event, in its acknowledgement. */
export interface RefusedReply {
  ok: false;
  error: ErrorBody;
}

/** What the gateway sends to clients: its own events (publishers add their own names). */
export interface ServerToClientEvents {
  welcome: (payload: WelcomePayload) => void;
  authenticated: (payload: AuthenticatedPayload) => void;
  unauthorized: (payload: UnauthorizedPayload) => void;
  kicked: (payload: KickedPayload) => void;
  token_expiring: (payload: TokenExpiringPayload) => void;
  error: (payload: EventErrorPayload) => void;
  reconnect: (payload: ReconnectPayload) => void;
  configured: (payload: ConfiguredPayload) => void;
  reply: (payload: ServiceReplyPayload) => void;
}

/**
 * An application's own events: each name with the data it carries. Declared once and shared by the
 * application's publishers and clients, it types both ends: `createEmitter<ShopEvents>()` emits only
 * what `connect<ShopEvents>()` listens for, with the same data. Without one, any name and any data go.
 */
export type AppEvents = Record<string, unknown>;

/** The names of an application's events that can be published: the gateway's own are reserved. */
export type AppEventName<Events extends object> = Exclude<keyof Events & string, keyof ServerToClientEvents>;

/** An event name as a publisher may give it: a name of the gateway's own is refused even without a map. */
export type Publishable<Event extends string> = Event extends keyof ServerToClientEvents ? never : Event;

/** What clients send to the gateway, each with its acknowledgement's reply. */
export interface ClientToServerEvents {
  authenticate: (payload: AuthenticatePayload, ack?: (reply: AuthenticatedPayload | ErrorBody | RefusedReply) => void) => void;
  subscribe: (payload: SubscribePayload, ack?: (reply: SubscriptionReply) => void) => void;
  unsubscribe: (payload: SubscribePayload, ack?: (reply: SubscriptionReply) => void) => void;
  join: (payload: SubscribePayload, ack?: (reply: SubscriptionReply) => void) => void;
  leave: (payload: SubscribePayload, ack?: (reply: SubscriptionReply) => void) => void;
  configure: (payload: ConfigurePayload, ack?: (reply: ConfiguredPayload | RefusedReply) => void) => void;
  publish: (payload: ClientPublishPayload, ack?: (reply: PublishReply) => void) => void;
  request: (payload: ServiceRequestPayload, ack?: (reply: ServiceRequestAck) => void) => void;
  send: (payload: ServiceSendPayload, ack?: (reply: ServiceRequestAck) => void) => void;
}

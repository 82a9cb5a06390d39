import type { ErrorBody } from "./errors.js";
import type { Identity } from "./claims.js";

/** The event a raw frame is delivered as when it names none. */
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
} as const;

/** Names Socket.IO reserves; nobody may publish them. */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
]);

export function isPublishableEvent(event: unknown): event is string {
  return typeof event === "string" && event.length > 0 && !RESERVED_EVENTS.has(event);
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
}

export type AuthenticatedPayload = Identity;
export type UnauthorizedPayload = ErrorBody;
export type KickedPayload = ErrorBody;

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

/** The acknowledgement of `subscribe` and `unsubscribe`. */
export type SubscriptionReply = { ok: true; room: string } | { ok: false; error: ErrorBody };

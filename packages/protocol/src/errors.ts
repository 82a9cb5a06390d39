/**
 * The one registry of error codes that clients, publishers and operators can see.
 * A code is never reused or renamed once published; `docs/errors.md` documents each
 * one and a test keeps the two in step. `retry`: the same call, unchanged, may succeed
 * later (a limit, a node stopping, Redis or a service away), so a client or publisher
 * may try again after a backoff; otherwise something must change first.
 */
export const ERRORS = {
  token_missing: {
    audience: "client",
    retry: false,
    message: "No token was given: send it in the handshake (auth.token or Authorization: Bearer) or in the authenticate event.",
  },
  token_malformed: {
    audience: "client",
    retry: false,
    message: "The token is not a well-formed JWT.",
  },
  token_invalid_signature: {
    audience: "client",
    retry: false,
    message: "The token signature does not match the configured key.",
  },
  token_expired: {
    audience: "client",
    retry: false,
    message: "The token has expired (exp is in the past).",
  },
  token_not_yet_valid: {
    audience: "client",
    retry: false,
    message: "The token is not valid yet (nbf is in the future).",
  },
  token_algorithm_not_allowed: {
    audience: "client",
    retry: false,
    message: "The token is signed with an algorithm this server does not accept.",
  },
  token_revoked: {
    audience: "client",
    retry: false,
    message: "The token was revoked: its user was kicked after it was issued, or the token itself was revoked.",
  },
  publish_forbidden: {
    audience: "client",
    retry: false,
    message: "The token's publish claim does not allow publishing to that room, or the socket has no publish claim.",
  },
  token_claims_invalid: {
    audience: "client",
    retry: false,
    message: "The token claims are not acceptable (missing sub, wrong iss or aud, or a bad site).",
  },
  auth_unavailable: {
    audience: "client",
    retry: true,
    message: "The server could not load the keys to verify the token (JWT_JWKS_URL unreachable); retry later.",
  },
  auth_timeout: {
    audience: "client",
    retry: false,
    message: "The socket did not authenticate in time.",
  },
  origin_not_allowed: {
    audience: "client",
    retry: false,
    message: "The request Origin is not in CORS_ORIGINS.",
  },
  kicked: {
    audience: "client",
    retry: false,
    message: "The server disconnected this user.",
  },
  subscription_forbidden: {
    audience: "client",
    retry: false,
    message: "This socket may not subscribe to that room (SUBSCRIBE_ROOMS), or is not authenticated yet.",
  },
  payload_invalid: {
    audience: "client",
    retry: false,
    message:
      "The event's payload does not have the documented shape: a field is missing, of the wrong type, too long, or nested too deeply.",
  },
  event_unknown: {
    audience: "client",
    retry: false,
    message: "The server handles no client event of that name.",
  },
  rate_limited: {
    audience: "client",
    retry: true,
    message: "This socket sent events faster than CLIENT_EVENT_RATE allows; the event was not processed.",
  },
  too_many_rooms: {
    audience: "client",
    retry: false,
    message: "This socket already holds CLIENT_MAX_ROOMS subscribed rooms.",
  },
  slow_consumer: {
    audience: "client",
    retry: true,
    message: "The socket did not read its messages fast enough (more than CLIENT_MAX_BUFFER_BYTES waited for it) and was disconnected.",
  },
  message_too_large: {
    audience: "client",
    retry: false,
    message: "A message from the client was larger than CLIENT_MAX_MESSAGE_BYTES; the connection was closed.",
  },
  connection_rate_limited: {
    audience: "client",
    retry: true,
    message: "Too many connections from this address in the last second (IP_CONNECTIONS_PER_SECOND); retry later.",
  },
  ip_connection_limit: {
    audience: "client",
    retry: true,
    message: "This address already holds IP_MAX_CONNECTIONS connections to this node.",
  },
  node_connection_limit: {
    audience: "client",
    retry: true,
    message: "This node already holds MAX_CONNECTIONS connections; retry, possibly on another node.",
  },
  node_draining: {
    audience: "client",
    retry: true,
    message: "This node is shutting down and takes no new connections; connect to another node.",
  },
  user_connection_limit: {
    audience: "client",
    retry: true,
    message: "This user already holds USER_MAX_SOCKETS sockets on this node.",
  },
  request_timeout: {
    audience: "client",
    retry: true,
    message: "The server did not answer in time.",
  },
  service_unknown: {
    audience: "client",
    retry: false,
    message: "No service of that name is registered.",
  },
  service_unavailable: {
    audience: "client",
    retry: true,
    message: "The service has no live instance to take the request.",
  },
  service_busy: {
    audience: "client",
    retry: true,
    message: "The service's queue is full; try again later.",
  },
  service_forbidden: {
    audience: "client",
    retry: false,
    message: "This socket may not call that service.",
  },
  service_reply_invalid: {
    audience: "client",
    retry: false,
    message: "The service answered with data the gateway cannot pass on (nested deeper than PAYLOAD_MAX_DEPTH); the call has ended.",
  },
  connection_failed: {
    audience: "client",
    retry: true,
    message: "The server could not be reached, and the client has stopped retrying.",
  },
  internal_error: {
    audience: "client",
    retry: true,
    message: "The server failed unexpectedly; the failure is logged.",
  },
  frame_not_msgpack: {
    audience: "publisher",
    retry: false,
    message: "A frame on a Switchboard channel could not be decoded as MessagePack; it was dropped.",
  },
  frame_invalid: {
    audience: "publisher",
    retry: false,
    message: "A frame decoded but does not have a documented shape; it was dropped.",
  },
  invalid_room: {
    audience: "publisher",
    retry: false,
    message: "A room, user id or site host is empty or not a string.",
  },
  invalid_event: {
    audience: "publisher",
    retry: false,
    message: "The event name is empty, not a string, or reserved by Socket.IO.",
  },
  route_unknown: {
    audience: "publisher",
    retry: false,
    message: "The publish names no room, and its event has no route (EVENT_ROUTES or a registered one).",
  },
  route_incomplete: {
    audience: "publisher",
    retry: false,
    message: "The event's route needs a user or site that the publish does not give.",
  },
  route_limit: {
    audience: "publisher",
    retry: false,
    message: "The cluster already holds EVENT_ROUTES_MAX registered routes; remove one before registering another.",
  },
  revocation_limit: {
    audience: "publisher",
    retry: false,
    message:
      "The cluster already holds REVOCATIONS_MAX kicked users and revoked tokens in force; a new one is taken once some expire or are lifted.",
  },
  api_key_invalid: {
    audience: "publisher",
    retry: false,
    message: "The server API needs Authorization: Bearer <key> with one of the node's API_KEYS.",
  },
  frame_unsigned: {
    audience: "publisher",
    retry: false,
    message: "The gateway requires signed raw frames (FRAME_SIGNING_KEYS) and this one was not signed; it was dropped.",
  },
  frame_signature_invalid: {
    audience: "publisher",
    retry: false,
    message: "A signed raw frame names an unknown key, has a wrong signature, or is too old or too far ahead; it was dropped.",
  },
  frame_too_large: {
    audience: "publisher",
    retry: false,
    message: "A frame was larger than FRAME_MAX_BYTES; it was dropped without being decoded.",
  },
  redis_unavailable: {
    audience: "publisher",
    retry: true,
    message: "Redis could not be reached; the message was not published.",
  },
  publish_timeout: {
    audience: "publisher",
    retry: true,
    message: "Redis did not confirm the publish in time; the message may not have been published.",
  },
  invalid_request: {
    audience: "publisher",
    retry: false,
    message: "The HTTP request body is not JSON, or is missing a field, or has one of the wrong type.",
  },
  payload_too_large: {
    audience: "publisher",
    retry: false,
    message: "The HTTP request body is larger than the endpoint accepts.",
  },
  not_found: {
    audience: "publisher",
    retry: false,
    message: "There is no such HTTP endpoint on this node.",
  },
  presence_off: {
    audience: "publisher",
    retry: false,
    message: "Presence is off on this cluster (PRESENCE=0): nothing is counted.",
  },
  emitter_closed: {
    audience: "publisher",
    retry: false,
    message: "The emitter was closed; nothing more can be published with it.",
  },
  config_invalid: {
    audience: "operator",
    retry: false,
    message: "A configuration variable has a value the gateway cannot use.",
  },
} as const satisfies Record<string, { audience: ErrorAudience; retry: boolean; message: string }>;

/** Who sees an error: a connecting client, a publishing service, or the operator at start-up. */
export type ErrorAudience = "client" | "publisher" | "operator";

export type ErrorCode = keyof typeof ERRORS;

/** The codes a connecting client can see. */
export type ClientErrorCode = { [Code in ErrorCode]: (typeof ERRORS)[Code]["audience"] extends "client" ? Code : never }[ErrorCode];

/** The body every error takes on the wire. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** Whether the same call, unchanged, may succeed later (see ERRORS). */
export function isRetryable(code: ErrorCode): boolean {
  return ERRORS[code].retry;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERRORS, value);
}

/** An error that carries a stable code; `message` defaults to the registry text. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string = ERRORS[code].message, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SwitchboardError";
    this.code = code;
  }

  toJSON(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

export function errorBody(code: ErrorCode, message: string = ERRORS[code].message): ErrorBody {
  return { code, message };
}

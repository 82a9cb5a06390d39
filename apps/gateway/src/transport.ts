import {
  type AuthenticatedPayload,
  CLIENT_EVENTS,
  type ErrorBody,
  type Identity,
  SERVER_EVENTS,
  type SubscriptionReply,
  type TokenExpiringPayload,
  type WelcomePayload,
  errorBody,
} from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { Server, Socket } from "socket.io";
import { AuthError, type Session, type TokenVerifier } from "./auth.js";
import type { Config } from "./config.js";
import { detailed, toWireError } from "./errors.js";
import type { Metrics } from "./metrics.js";
import { UNAUTHENTICATED_ROOM, createSubscriptionPolicy, roomsFor } from "./rooms.js";

export interface TransportDeps {
  config: Pick<Config, "nodeId" | "auth" | "subscribeRooms">;
  verifier: TokenVerifier;
  logger: FastifyBaseLogger;
  metrics: Metrics;
  version: string;
}

interface SocketData {
  /** Set by the handshake middleware when the handshake carried a valid token. */
  session?: Session;
}

/** What the handshake carried: a token, a malformed credential, or nothing (the event flow). */
type HandshakeCredential = { token: unknown } | { malformed: string } | null;

// setTimeout cannot wait longer than this; longer waits are taken in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

function handshakeCredential(socket: Socket): HandshakeCredential {
  const auth: unknown = socket.handshake.auth;
  if (typeof auth === "object" && auth !== null && "token" in auth) return { token: auth.token };
  const header = socket.handshake.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? { token: match[1] } : { malformed: "the Authorization header is not 'Bearer <token>'" };
}

/** The named field of an event payload, or the payload itself when a client sent a bare string. */
function fieldOf(payload: unknown, field: "token" | "room"): unknown {
  if (typeof payload === "string") return payload;
  return typeof payload === "object" && payload !== null && field in payload ? (payload as Record<string, unknown>)[field] : undefined;
}

function ackOf(args: unknown[]): ((reply: unknown) => void) | undefined {
  return args.find((arg): arg is (reply: unknown) => void => typeof arg === "function");
}

/**
 * Wires authentication, token expiry and rooms into Socket.IO. A token in the handshake is
 * checked before the connection is accepted; a socket without one must send `authenticate`
 * within AUTH_TIMEOUT_MS. A connected socket is told `token_expiring` before its token runs out,
 * may send `authenticate` again with a fresh one, and is disconnected with `token_expired` if not.
 */
export function attachTransport(io: Server, deps: TransportDeps): void {
  const { config, verifier, logger, metrics } = deps;
  const maySubscribe = createSubscriptionPolicy(config.subscribeRooms);

  function refuse(body: ErrorBody): Error {
    metrics.authFailures.inc({ code: body.code });
    // socket.io-client surfaces `message` and `data` of this error in `connect_error`.
    return Object.assign(new Error(body.code), { data: body });
  }

  io.use((socket, next) => {
    const credential = handshakeCredential(socket);
    if (credential === null) return next();
    try {
      if ("malformed" in credential) throw new AuthError("malformed", credential.malformed);
      (socket.data as SocketData).session = verifier.verify(credential.token);
      next();
    } catch (err) {
      if (!(err instanceof AuthError)) logger.error({ err }, "handshake authentication failed unexpectedly");
      next(refuse(toWireError(err)));
    }
  });

  io.on("connection", (socket) => {
    let identity: Identity | null = null;
    let timer: NodeJS.Timeout | undefined;
    const subscriptions = new Set<string>();

    const schedule = (at: number, action: () => void) => {
      clearTimeout(timer);
      const wait = at - Date.now();
      timer = wait > MAX_TIMER_MS ? setTimeout(() => schedule(at, action), MAX_TIMER_MS) : setTimeout(action, Math.max(0, wait));
    };

    const reject = (body: ErrorBody) => {
      clearTimeout(timer);
      metrics.authFailures.inc({ code: body.code });
      socket.emit(SERVER_EVENTS.unauthorized, body);
      socket.disconnect(true);
    };

    // Notice first, then expiry; a fresh token from `authenticate` starts both again.
    const watchExpiry = (expiresAt: number | null) => {
      if (expiresAt === null) return clearTimeout(timer);
      const expire = () => reject(detailed("token_expired", "not refreshed in time"));
      const noticeAt = expiresAt - config.auth.refreshNoticeMs;
      schedule(noticeAt, () => {
        const notice: TokenExpiringPayload = { expiresAt };
        socket.emit(SERVER_EVENTS.tokenExpiring, notice);
        schedule(expiresAt, expire);
      });
    };

    const admit = (session: Session) => {
      identity = session.identity;
      socket.leave(UNAUTHENTICATED_ROOM);
      const rooms = roomsFor(identity);
      socket.join(rooms);
      metrics.connectedSockets.inc();
      socket.once("disconnect", () => metrics.connectedSockets.dec());
      const welcome: WelcomePayload = {
        id: socket.id,
        node: config.nodeId,
        name: "switchboard",
        version: deps.version,
        user: identity.user,
        site: identity.site,
        rooms,
      };
      socket.emit(SERVER_EVENTS.welcome, welcome);
      watchExpiry(session.expiresAt);
    };

    socket.once("disconnect", () => clearTimeout(timer));

    socket.on(CLIENT_EVENTS.authenticate, (payload: unknown, ...rest: unknown[]) => {
      const ack = ackOf(rest);
      let session: Session;
      try {
        session = verifier.verify(fieldOf(payload, "token"));
        // A fresh token must name the same user and site: rooms are not moved mid-connection.
        if (identity && (session.identity.user !== identity.user || session.identity.site !== identity.site)) {
          throw new AuthError("claims_invalid", "a refreshed token must name the same user and site");
        }
      } catch (err) {
        if (!(err instanceof AuthError)) logger.error({ err }, "event authentication failed unexpectedly");
        const body = toWireError(err);
        ack?.(body);
        reject(body);
        return;
      }
      const authenticated: AuthenticatedPayload = { user: session.identity.user, site: session.identity.site };
      socket.emit(SERVER_EVENTS.authenticated, authenticated);
      ack?.(authenticated);
      if (identity) watchExpiry(session.expiresAt);
      else admit(session);
    });

    socket.on(CLIENT_EVENTS.subscribe, (payload: unknown, ...rest: unknown[]) => {
      const room = fieldOf(payload, "room");
      let reply: SubscriptionReply;
      if (identity && maySubscribe(identity, room)) {
        socket.join(room);
        subscriptions.add(room);
        reply = { ok: true, room };
      } else {
        const why = identity ? `${JSON.stringify(room)} is not a room this socket may subscribe to` : "authenticate first";
        reply = { ok: false, error: detailed("subscription_forbidden", why) };
      }
      ackOf(rest)?.(reply);
    });

    socket.on(CLIENT_EVENTS.unsubscribe, (payload: unknown, ...rest: unknown[]) => {
      const room = fieldOf(payload, "room");
      // Only rooms the socket subscribed to itself can be left; its user and site rooms stay.
      if (typeof room === "string" && subscriptions.delete(room)) socket.leave(room);
      const reply: SubscriptionReply =
        typeof room === "string" ? { ok: true, room } : { ok: false, error: detailed("subscription_forbidden", "unsubscribe needs { room }") };
      ackOf(rest)?.(reply);
    });

    const session = (socket.data as SocketData).session;
    if (session) {
      admit(session);
    } else {
      // Joined before any await, so no broadcast can reach the socket before it authenticates.
      socket.join(UNAUTHENTICATED_ROOM);
      timer = setTimeout(() => reject(errorBody("auth_timeout")), config.auth.timeoutMs);
    }
  });
}

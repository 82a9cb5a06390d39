import {
  type AuthenticatedPayload,
  CLIENT_EVENTS,
  type ErrorBody,
  type Identity,
  SERVER_EVENTS,
  type WelcomePayload,
  errorBody,
} from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { Server, Socket } from "socket.io";
import { AuthError, type TokenVerifier } from "./auth.js";
import type { Config } from "./config.js";
import { toWireError } from "./errors.js";
import type { Metrics } from "./metrics.js";
import { UNAUTHENTICATED_ROOM, roomsFor } from "./rooms.js";

export interface TransportDeps {
  config: Pick<Config, "nodeId" | "auth">;
  verifier: TokenVerifier;
  logger: FastifyBaseLogger;
  metrics: Metrics;
  version: string;
}

interface SocketData {
  identity?: Identity;
}

/** What the handshake carried: a token, a malformed credential, or nothing (the event flow). */
type HandshakeCredential = { token: unknown } | { malformed: string } | null;

function handshakeCredential(socket: Socket): HandshakeCredential {
  const auth: unknown = socket.handshake.auth;
  if (typeof auth === "object" && auth !== null && "token" in auth) return { token: auth.token };
  const header = socket.handshake.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? { token: match[1] } : { malformed: "the Authorization header is not 'Bearer <token>'" };
}

/**
 * Wires authentication and rooms into Socket.IO: a token in the handshake is checked before the
 * connection is accepted; a socket without one must send `authenticate` within AUTH_TIMEOUT_MS.
 */
export function attachTransport(io: Server, deps: TransportDeps): void {
  const { config, verifier, logger, metrics } = deps;

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
      (socket.data as SocketData).identity = verifier.verify(credential.token);
      next();
    } catch (err) {
      if (!(err instanceof AuthError)) logger.error({ err }, "handshake authentication failed unexpectedly");
      next(refuse(toWireError(err)));
    }
  });

  function admit(socket: Socket, identity: Identity): void {
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
  }

  function awaitAuthenticateEvent(socket: Socket): void {
    // Joined before any await, so no broadcast can reach the socket before it authenticates.
    socket.join(UNAUTHENTICATED_ROOM);
    const reject = (body: ErrorBody) => {
      metrics.authFailures.inc({ code: body.code });
      socket.emit(SERVER_EVENTS.unauthorized, body);
      socket.disconnect(true);
    };
    const timer = setTimeout(() => reject(errorBody("auth_timeout")), config.auth.timeoutMs);
    socket.once("disconnect", () => clearTimeout(timer));
    socket.on(CLIENT_EVENTS.authenticate, (payload: unknown, ...rest: unknown[]) => {
      const ack = rest.find((arg): arg is (reply: unknown) => void => typeof arg === "function");
      const data = socket.data as SocketData;
      if (data.identity) {
        ack?.({ user: data.identity.user, site: data.identity.site });
        return;
      }
      clearTimeout(timer);
      const token = typeof payload === "object" && payload !== null && "token" in payload ? payload.token : typeof payload === "string" ? payload : undefined;
      let identity: Identity;
      try {
        identity = verifier.verify(token);
      } catch (err) {
        if (!(err instanceof AuthError)) logger.error({ err }, "event authentication failed unexpectedly");
        const body = toWireError(err);
        ack?.(body);
        reject(body);
        return;
      }
      data.identity = identity;
      const authenticated: AuthenticatedPayload = { user: identity.user, site: identity.site };
      socket.emit(SERVER_EVENTS.authenticated, authenticated);
      ack?.(authenticated);
      admit(socket, identity);
    });
  }

  io.on("connection", (socket) => {
    const identity = (socket.data as SocketData).identity;
    if (identity) admit(socket, identity);
    else awaitAuthenticateEvent(socket);
  });
}

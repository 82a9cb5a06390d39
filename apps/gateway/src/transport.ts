import { type IncomingMessage, type Server as HttpServer, ServerResponse } from "node:http";
import cors from "cors";
import {
  type ClientToServerEvents,
  Deadlines,
  type ErrorBody,
  type ReconnectPayload,
  SERVER_EVENTS,
  type ServerToClientEvents,
  errorBody,
} from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { Server, type Socket } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import { createAdmission } from "./admission.js";
import { AuthError, type Session, type TokenVerifier } from "./auth.js";
import { createOutboundWatch, dropConnection } from "./backpressure.js";
import type { Broker } from "./broker.js";
import type { Config } from "./config.js";
import {
  AdmittedSockets,
  type ClientSocket,
  Connection,
  type ConnectionContext,
  type PresenceShare,
  type SocketData,
} from "./connection.js";
import { toWireError } from "./errors.js";
import type { ThrottledWarnings } from "./log-throttle.js";
import type { Metrics } from "./metrics.js";
import { clientEventSchemas } from "./payloads.js";
import type { PresenceTracker } from "./presence.js";
import type { LifecycleLog } from "./lifecycle.js";
import type { ServiceCalls } from "./service-calls.js";
import { compilePatterns, createSubscriptionPolicy } from "./rooms.js";
import { coalesceAcceptWrites, coalesceBacklogWrites, coalesceUpgradeWrites } from "./write-coalescing.js";
import { TurnQueue } from "./turn-queue.js";

export interface TransportDeps {
  config: Pick<Config, "nodeId" | "auth" | "subscribeRooms" | "limits" | "http" | "corsOrigins" | "services">;
  verifier: TokenVerifier;
  logger: FastifyBaseLogger;
  warnings: ThrottledWarnings;
  metrics: Metrics;
  version: string;
  adapter: typeof Adapter;
  /** The broker's shared counters (see Broker.createRateLimiter). */
  createRateLimiter: Broker["createRateLimiter"];
  roomsSubscribed: Broker["roomsSubscribed"];
  /** True once the node is stopping. */
  draining(): boolean;
}

/** The gateway's Socket.IO server, typed by the protocol's event maps. */
export type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** The engine.io connection under a socket, as far as this module uses it. */
type EngineConnection = Socket["conn"];

/** What the handshake carried: a token, a malformed credential, or nothing (the event flow). */
type HandshakeCredential = { token: unknown } | { malformed: string } | null;

function handshakeCredential(socket: ClientSocket): HandshakeCredential {
  const auth: unknown = socket.handshake.auth;
  if (typeof auth === "object" && auth !== null && "token" in auth) return { token: auth.token };
  const header = socket.handshake.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? { token: match[1] } : { malformed: "the Authorization header is not 'Bearer <token>'" };
}

export interface Transport {
  io: GatewayServer;
  /** Starts taking sockets; each one becomes a Connection using the node's operations and presence. */
  serve(core: {
    operations: ConnectionContext["operations"];
    presence: PresenceTracker;
    services: ServiceCalls;
    lifecycle: LifecycleLog | null;
  }): void;
  /**
   * Tells every socket to reconnect elsewhere (`reconnect` `{ retryAfterMs }`), spread evenly over
   * `spreadMs`, closing each socket's transport right after its event; resolves once every socket
   * has gone, or at `deadline` (ms since the epoch), whichever comes first.
   */
  drain(spreadMs: number, deadline: number): Promise<void>;
  /** Cuts every engine.io connection at once, freeing what each buffered. */
  dropAll(): void;
  /** Authenticated sockets on this node. */
  authenticatedSockets(): number;
  /** What each authenticated socket on this node adds to cluster-wide presence. */
  presenceShares(): Iterable<PresenceShare>;
}

/** The most a drained client is asked to wait before reconnecting: jitter on top of the spread. */
const RECONNECT_JITTER_MS = 1000;

/**
 * Creates the Socket.IO server and wires admission, authentication and per-socket limits into it.
 * A token in the handshake is checked before the connection is accepted; a socket without one
 * must send `authenticate` within AUTH_TIMEOUT_MS. Each accepted socket is one Connection.
 */
export function createTransport(httpServer: HttpServer, deps: TransportDeps): Transport {
  const { config, verifier, logger, metrics } = deps;
  const { limits } = config;
  const io: GatewayServer = new Server(httpServer, {
    adapter: deps.adapter,
    maxHttpBufferSize: limits.clientMaxMessageBytes,
    // A transport that never joins the namespace is closed after the same time an unauthenticated socket gets.
    connectTimeout: config.auth.timeoutMs,
  });

  const admission = createAdmission({
    limits,
    http: config.http,
    corsOrigins: config.corsOrigins,
    metrics,
    connectionCount: () => io.engine.clientsCount,
    draining: deps.draining,
    rateLimiter: (points) => deps.createRateLimiter({ name: "connections", points, durationSeconds: 1 }),
  });
  // CORS headers for long-polling only: browsers do not apply CORS to a WebSocket upgrade (the origin
  // is checked by admission for both), and computing them for every upgrade costs each handshake.
  const corsHeaders = cors({ origin: config.corsOrigins === null ? true : [...config.corsOrigins] });
  // One engine.io middleware rather than three: engine.io chains a promise per middleware for every
  // request, a handshake's included. In order: CORS, admission, then the upgrade request released.
  io.engine.use((request: IncomingMessage, response: ServerResponse | object, next: (err?: unknown) => void) => {
    const admitted = (err?: Error) => {
      if (err) return next(err);
      // engine.io keeps the response object of a WebSocket upgrade for as long as the connection
      // lives, and through it the upgrade request; nothing after the middlewares needs it.
      if (!(response instanceof ServerResponse) && "req" in response) (response as { req: unknown }).req = null;
      next();
    };
    if (!(response instanceof ServerResponse)) return admission.middleware(request, response, admitted);
    corsHeaders(request, response, (err?: unknown) => (err ? next(err) : admission.middleware(request, response, admitted)));
  });
  io.engine.on("connection_error", (error: { req: IncomingMessage }) => admission.failed(error.req));
  coalesceUpgradeWrites(io.engine);
  coalesceBacklogWrites(io.engine);
  // Every open connection, with its client's address and whether admission counted it under that address.
  const open = new Map<EngineConnection, { address: string; counted: boolean }>();
  const watch = createOutboundWatch<EngineConnection>(limits.clientMaxBufferBytes, (connection) => {
    metrics.limitHits.inc({ kind: "slow_consumer" });
    deps.warnings.warn(
      "slow_consumer",
      { code: "slow_consumer", address: open.get(connection)?.address, limitBytes: limits.clientMaxBufferBytes },
      "dropped a slow consumer",
    );
    dropConnection(connection);
  });
  // One listener for everything a closing connection gives back, shared by all: a node holds many connections.
  function onClose(this: EngineConnection, _reason: string, description: unknown): void {
    const record = open.get(this);
    open.delete(this);
    metrics.openConnections.dec();
    if (record?.counted) admission.closed(record.address);
    if (isMessageTooLarge(description)) {
      metrics.limitHits.inc({ kind: "message_size" });
      deps.warnings.warn(
        "message_too_large",
        { code: "message_too_large", limitBytes: limits.clientMaxMessageBytes },
        "closed a connection that sent an oversized message",
      );
    }
  }
  io.engine.on("connection", (connection: EngineConnection) => {
    metrics.openConnections.inc();
    const counted = admission.opened(connection.request);
    open.set(connection, { address: counted ?? admission.addressOf(connection.request), counted: counted !== null });
    watch(connection);
    connection.on("close", onClose);
  });

  const namespace = io.of("/");
  const admitted = new AdmittedSockets(limits.userMaxSockets, (room) => namespace.adapter.rooms.get(room)?.size ?? 0);
  // Connections whose handshake was refused: their later CONNECT packets are refused without verifying again.
  const refused = new WeakMap<EngineConnection, ErrorBody>();

  function refuse(connection: EngineConnection, body: ErrorBody): Error {
    metrics.authFailures.inc({ code: body.code });
    refused.set(connection, body);
    // The CONNECT_ERROR packet goes out first (socket.io writes it on the next tick), then the transport
    // closes: a client cannot keep one connection open and try token after token on it.
    setTimeout(() => connection.close(), 0);
    // socket.io-client surfaces `message` and `data` of this error in `connect_error`.
    return Object.assign(new Error(body.code), { data: body });
  }

  type HandshakeSocket = Parameters<Parameters<typeof io.use>[0]>[0];
  type Next = (err?: Error) => void;

  function accept(socket: HandshakeSocket, next: Next, session: Session): void {
    if (admitted.full(session.identity.user)) {
      metrics.limitHits.inc({ kind: "user_sockets" });
      next(refuse(socket.conn, errorBody("user_connection_limit")));
      return;
    }
    socket.data.session = session;
    coalesceAcceptWrites(socket.conn);
    next();
  }

  function refuseToken(socket: HandshakeSocket, next: Next, err: unknown): void {
    if (!(err instanceof AuthError)) logger.error({ err }, "handshake authentication failed unexpectedly");
    else if (err.failure === "too_large") metrics.limitHits.inc({ kind: "token_size" });
    next(refuse(socket.conn, toWireError(err)));
  }

  function verifyAndAnswer(socket: HandshakeSocket, next: Next, token: unknown): void {
    let verified: Session | Promise<Session>;
    try {
      verified = verifier.verifyNow(token);
    } catch (err) {
      refuseToken(socket, next, err);
      return;
    }
    // Most keys answer at once; a key still to be fetched, or a jose algorithm, answers later.
    if (!(verified instanceof Promise)) {
      accept(socket, next, verified);
      return;
    }
    verified.then(
      (session) => accept(socket, next, session),
      (err: unknown) => refuseToken(socket, next, err),
    );
  }

  // The handshakes that arrive in one turn are verified together, after it (see TurnQueue): in a
  // storm, a token verified between everything else its connection needs costs several times one
  // verified after another.
  const toVerify = new TurnQueue<HandshakeSocket, Next, unknown>(verifyAndAnswer);

  io.use((socket, next) => {
    const earlier = refused.get(socket.conn);
    if (earlier) return next(Object.assign(new Error(earlier.code), { data: earlier }));
    const credential = handshakeCredential(socket);
    if (credential === null) return next();
    if ("malformed" in credential) return refuseToken(socket, next, new AuthError("malformed", credential.malformed));
    toVerify.add(socket, next, credential.token);
  });

  const shared = {
    config,
    verifier,
    logger,
    metrics,
    version: deps.version,
    maySubscribe: createSubscriptionPolicy(config.subscribeRooms),
    subscribePatterns: compilePatterns(config.subscribeRooms),
    servicePolicy: compilePatterns(config.services.policy),
    schemas: clientEventSchemas(),
    deadlines: new Deadlines<Connection>((connection) => connection.deadlineReached()),
    eventRate: new RateLimiterMemory({ points: limits.clientEventRate, duration: 1, keyPrefix: "" }),
    strikes: new RateLimiterMemory({ points: limits.clientEventRate, duration: 10, keyPrefix: "" }),
    admitted,
    roomsSubscribed: deps.roomsSubscribed,
  };
  return {
    io,
    serve(core) {
      const context: ConnectionContext = { ...shared, ...core };
      io.on("connection", (socket) => new Connection(socket, context).start(socket.data.session));
    },
    async drain(spreadMs, deadline) {
      const sockets = [...namespace.sockets.values()];
      const gone = Promise.all(
        sockets.map((socket) =>
          socket.connected ? new Promise<void>((resolve) => socket.once("disconnect", () => resolve())) : undefined,
        ),
      );
      const timers = sockets.map((socket, index) =>
        setTimeout(
          () => {
            if (!socket.connected) return;
            const hint: ReconnectPayload = { retryAfterMs: Math.floor(Math.random() * RECONNECT_JITTER_MS) };
            socket.emit(SERVER_EVENTS.reconnect, hint);
            // The transport, not the socket: a closed transport is what every Socket.IO client reconnects after by itself.
            socket.conn.close();
          },
          Math.floor((index * spreadMs) / Math.max(1, sockets.length)),
        ),
      );
      let waited: NodeJS.Timeout | undefined;
      await Promise.race([gone, new Promise<void>((resolve) => (waited = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
      clearTimeout(waited);
      for (const timer of timers) clearTimeout(timer);
    },
    authenticatedSockets: () => admitted.total(),
    presenceShares: () => admitted.presenceShares(),
    dropAll() {
      for (const connection of [...open.keys()]) dropConnection(connection);
    },
  };
}

/**
 * ws closes a connection whose message exceeds maxPayload (code 1009); engine.io reports it as a
 * transport error wrapping ws's RangeError, of which only the text survives.
 */
function isMessageTooLarge(description: unknown): boolean {
  return description instanceof Error && description.message.includes("Max payload size exceeded");
}

import { readFileSync } from "node:fs";
import { type Server as HttpServer, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type PresencePayload, siteRoom } from "@switchboard/protocol";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import { type TokenVerifier, createTokenVerifier } from "./auth.js";
import { proxyTrust } from "./admission.js";
import { type Broker, createBroker } from "./broker.js";
import type { Config } from "./config.js";
import { registerDevRoutes } from "./dev.js";
import { createDropReporter } from "./drops.js";
import { pathOf, registerErrorHandling, registerHttpRoutes } from "./http.js";
import { createThrottledWarnings } from "./log-throttle.js";
import { type Metrics, createMetrics } from "./metrics.js";
import { registerApi } from "./api.js";
import { EventRoutes } from "./event-routes.js";
import { createOperations } from "./operations.js";
import { createServiceCalls } from "./service-calls.js";
import { LifecycleLog } from "./lifecycle.js";
import { PresenceTracker } from "./presence.js";
import { handleRawFrame } from "./raw-frames.js";
import { RevocationMirror } from "./revocations.js";
import { type GatewayServer, createTransport } from "./transport.js";

/** The longest wait between attempts to read the shared state (revocations, routes) after they failed. */
const RELOAD_RETRY_MAX_MS = 30_000;
/** How often a node writes its batched presence changes. */
const PRESENCE_FLUSH_MS = 200;

export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

export interface Gateway {
  app: FastifyInstance;
  io: GatewayServer;
  broker: Broker;
  metrics: Metrics;
  verifier: TokenVerifier;
  logger: FastifyBaseLogger;
  /** Listens on the configured host and port; resolves to the bound URL. */
  start(): Promise<string>;
  /**
   * Stops the node: no new connections, every socket disconnected, HTTP connections finished or,
   * after DRAIN_TIMEOUT_MS, cut; then Redis is closed. Resolves within the drain timeout plus
   * the few seconds Redis may take to acknowledge.
   */
  close(): Promise<void>;
}

/** Assembles one gateway node from its parts: HTTP, Socket.IO transport, auth and the broker. */
export async function createGateway(config: Readonly<Config>): Promise<Gateway> {
  const trust = proxyTrust(config.http.trustProxy);
  const app = Fastify<HttpServer>({
    logger: {
      level: config.logLevel,
      base: { node: config.nodeId },
      // Whatever logs a request logs its path only: query strings may carry tokens.
      serializers: { req: (request: { method: string; url: string }) => ({ method: request.method, path: pathOf(request.url) }) },
    },
    // Requests are logged once, on response, by registerErrorHandling.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.httpMaxBodyBytes,
    trustProxy: trust ?? false,
    // Node's own defaults leave a client that sends one header line every few seconds connected forever.
    serverFactory: (handler) =>
      createServer(
        { headersTimeout: config.http.headersTimeoutMs, requestTimeout: config.http.requestTimeoutMs, connectionsCheckingInterval: 1000 },
        handler,
      ),
  });
  const logger = app.log;
  const metrics = createMetrics(config.nodeId);
  const warnings = createThrottledWarnings(logger);
  const dropFrame = createDropReporter({ metrics, warnings, logger });
  const toleranceMs = config.auth.clockToleranceSeconds * 1000;
  const revocations = new RevocationMirror(
    config.auth.maxTtlSeconds === null ? null : config.auth.maxTtlSeconds * 1000 + toleranceMs,
    toleranceMs,
    config.revocationsMax,
  );
  const verifier = createTokenVerifier(config.auth, { logger, isRevoked: (user, iat, jti) => revocations.check(user, iat, jti) });
  const broker = createBroker(config.redisUrl, {
    logger,
    metrics,
    dropFrame,
    limits: config.limits,
    nodeId: config.nodeId,
    probeIntervalMs: config.subscriberProbeMs,
    subscriptions: config.redisSubscriptions,
    nodeTtlMs: config.presenceNodeTtlMs,
    maxPendingCommands: config.limits.redisMaxPendingCommands,
  });
  let draining = false;

  const transport = createTransport(app.server, {
    config,
    verifier,
    logger,
    warnings,
    metrics,
    version: VERSION,
    adapter: broker.adapter,
    createRateLimiter: (options) => broker.createRateLimiter(options),
    roomsSubscribed: () => broker.roomsSubscribed(),
    draining: () => draining,
  });
  const { io } = transport;
  const routes = new EventRoutes(config.eventRoutes);
  const operations = createOperations({ io, broker, config, metrics, logger, warnings, routes, revocations });
  const startedAt = Date.now();
  const lifecycle =
    config.lifecycleMaxLen === null
      ? null
      : new LifecycleLog({
          state: broker.state,
          nodeId: config.nodeId,
          maxLen: config.lifecycleMaxLen,
          metrics,
          logger,
          ready: () => broker.ready(),
          nodeTtlMs: config.presenceNodeTtlMs,
        });
  const presence = new PresenceTracker(config.nodeId, {
    state: broker.state,
    logger,
    info: () => ({ node: config.nodeId, version: VERSION, startedAt, sockets: transport.authenticatedSockets() }),
    shares: () => transport.presenceShares(),
    reportCrossings: config.presenceEvents,
    onCrossings: (crossings) => {
      if (!config.presenceEvents) return;
      for (const { site, user, online } of crossings) {
        const payload: PresencePayload = { user, online };
        operations.publish({ room: siteRoom(site), event: "presence", data: payload }, null).catch((err: unknown) => {
          logger.debug({ err: err instanceof Error ? err.message : String(err) }, "presence event not published");
        });
      }
    },
    ready: () => broker.ready(),
    writeFailed: () => metrics.presenceWriteFailed(),
    countSockets: config.presence,
    flushMs: PRESENCE_FLUSH_MS,
    heartbeatMs: Math.floor(config.presenceNodeTtlMs / 3),
    nodeTtlMs: config.presenceNodeTtlMs,
  });
  // Read again until it is read: a node that missed it would take revoked tokens and miss registered routes.
  let reloadRetry: ReturnType<typeof setTimeout> | null = null;
  const reloadShared = (attempt: number) => {
    if (reloadRetry !== null) clearTimeout(reloadRetry);
    reloadRetry = null;
    operations.reloadShared().catch((err: unknown) => {
      const retryInMs = Math.min(1000 * 2 ** attempt, RELOAD_RETRY_MAX_MS);
      logger.warn({ err: err instanceof Error ? err.message : String(err), retryInMs }, "could not read the shared state");
      // Without Redis the next ready reads it again.
      if (!broker.ready()) return;
      reloadRetry = setTimeout(() => reloadShared(attempt + 1), retryInMs);
      reloadRetry.unref();
    });
  };
  // Whenever the broker becomes ready, what this node mirrors or contributes is read and written again:
  // control frames and presence changes of the time before were lost.
  broker.onReady(() => {
    reloadShared(0);
    presence.resync();
  });
  presence.start();
  const services = createServiceCalls({
    io,
    state: broker.state,
    config: config.services,
    nodeId: config.nodeId,
    metrics,
    logger,
    dropFrame,
    payloadMaxDepth: config.limits.payloadMaxDepth,
  });
  broker.onServiceReply((message) => services.onReply(message));
  metrics.readServiceQueues(() => (broker.ready() ? broker.state.services() : Promise.resolve([])));
  transport.serve({ operations, presence, services, lifecycle });
  // Made once: every node takes every raw frame.
  const rawFrameDeps = {
    operations,
    metrics,
    dropFrame,
    limits: { maxDepth: config.limits.payloadMaxDepth },
    signing: config.frameSigning,
  };
  broker.onRawFrame((frame) => handleRawFrame(frame, rawFrameDeps));
  registerErrorHandling(app, metrics);
  await registerHttpRoutes(app, { config, broker, metrics, version: VERSION, draining: () => draining });
  if (config.apiKeys !== null) await registerApi(app, { keys: config.apiKeys, operations, nodeId: config.nodeId, services: broker.state });
  if (config.devTools) await registerDevRoutes(app, { operations, verifier, nodeId: config.nodeId });

  let closing: Promise<void> | null = null;
  async function close(): Promise<void> {
    // From here /readyz answers 503 and new connections are refused with node_draining.
    draining = true;
    const deadline = Date.now() + config.drainTimeoutMs;
    const force = setTimeout(() => {
      // Whatever is still open at the deadline is cut: half-sent requests, WebSockets whose peer
      // does not answer the close handshake, clients that did not leave.
      transport.dropAll();
      app.server.closeAllConnections();
    }, config.drainTimeoutMs);
    try {
      await transport.drain(config.drainSpreadMs, deadline);
      io.engine.close();
      app.server.closeIdleConnections();
      await app.close();
      // Its sockets are gone: take them out of cluster-wide presence now rather than after the heartbeat.
      await presence.stop();
      await lifecycle?.close();
    } finally {
      clearTimeout(force);
      services.close();
      if (reloadRetry !== null) clearTimeout(reloadRetry);
      warnings.close();
      verifier.close();
      await broker.close();
    }
  }

  return {
    app,
    io,
    broker,
    metrics,
    verifier,
    logger,
    async start() {
      await app.listen({ port: config.port, host: config.host });
      const address = app.server.address() as AddressInfo;
      return `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
    },
    close() {
      closing ??= close();
      return closing;
    },
  };
}

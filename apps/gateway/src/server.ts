import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { Server } from "socket.io";
import { type TokenVerifier, createTokenVerifier } from "./auth.js";
import { type Broker, createBroker } from "./broker.js";
import type { Config } from "./config.js";
import { registerDevRoutes } from "./dev.js";
import { registerHttpRoutes } from "./http.js";
import { type Metrics, createMetrics } from "./metrics.js";
import { deliverRawFrame } from "./routing.js";
import { attachTransport } from "./transport.js";

export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

export interface Gateway {
  app: FastifyInstance;
  io: Server;
  broker: Broker;
  metrics: Metrics;
  verifier: TokenVerifier;
  logger: FastifyBaseLogger;
  /** Listens on the configured host and port; resolves to the bound URL. */
  start(): Promise<string>;
  close(): Promise<void>;
}

/** Assembles one gateway node from its parts: HTTP, Socket.IO transport, auth and the broker. */
export async function createGateway(config: Readonly<Config>): Promise<Gateway> {
  const app = Fastify({ logger: { level: config.logLevel, base: { node: config.nodeId } } });
  const logger = app.log;
  const metrics = createMetrics(config.nodeId);
  const verifier = createTokenVerifier(config.auth);
  const broker = createBroker(config.redisUrl, { logger, metrics });
  const allowedOrigins = config.corsOrigins === null ? null : new Set(config.corsOrigins);

  const io = new Server(app.server, {
    adapter: broker.adapter,
    cors: { origin: allowedOrigins === null ? true : [...allowedOrigins] },
    // Browsers do not apply CORS to WebSocket upgrades, so the origin is checked here for both transports.
    allowRequest: (request, callback) => {
      const origin = request.headers.origin;
      if (allowedOrigins === null || origin === undefined || allowedOrigins.has(origin)) return callback(null, true);
      metrics.authFailures.inc({ code: "origin_not_allowed" });
      callback("origin_not_allowed", false);
    },
  });

  attachTransport(io, { config, verifier, logger, metrics, version: VERSION });
  await broker.onRawFrame((frame) => deliverRawFrame(io, frame, { logger, metrics }));
  await registerHttpRoutes(app, { config, broker, metrics, version: VERSION });
  if (config.devTools) await registerDevRoutes(app, { io, verifier, nodeId: config.nodeId });

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
    async close() {
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await app.close();
      await broker.close();
    },
  };
}

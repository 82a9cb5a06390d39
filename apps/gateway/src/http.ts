import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import type { Broker } from "./broker.js";
import type { Config } from "./config.js";
import type { Metrics } from "./metrics.js";

export interface HttpDeps {
  config: Pick<Config, "nodeId" | "publicDir">;
  broker: Broker;
  metrics: Metrics;
  version: string;
}

/** HTTP routes: health, metrics, the demo page and the client bundle. */
export async function registerHttpRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { config, broker, metrics } = deps;

  // 200 when the node can serve the whole cluster; 503 while its Redis connection is down.
  app.get("/healthz", async (_request, reply) => {
    const ready = broker.ready();
    return reply.code(ready ? 200 : 503).send({
      status: ready ? "ok" : "degraded",
      node: config.nodeId,
      version: deps.version,
      mode: broker.mode,
      redis: broker.mode === "memory" ? "none" : ready ? "ready" : "unavailable",
    });
  });

  app.get("/metrics", async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  await app.register(fastifyStatic, { root: config.publicDir, index: ["index.html"] });
  // The browser bundle of @switchboard/client, which the demo page imports.
  await app.register(fastifyStatic, {
    root: dirname(fileURLToPath(import.meta.resolve("@switchboard/client/browser"))),
    prefix: "/vendor/",
    decorateReply: false,
  });
}

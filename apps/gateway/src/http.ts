import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import { type ErrorBody, SwitchboardError, errorBody } from "@switchboard/protocol";
import type { FastifyError, FastifyInstance } from "fastify";
import { z } from "zod";
import type { Broker } from "./broker.js";
import type { Config } from "./config.js";
import { describeIssue, detailed, httpStatusOf, retryAfter } from "./errors.js";
import type { Metrics } from "./metrics.js";

export interface HttpDeps {
  config: Pick<Config, "nodeId" | "publicDir" | "limits" | "devTools">;
  broker: Broker;
  metrics: Metrics;
  version: string;
  /** True from the moment the node starts stopping. */
  draining(): boolean;
}

// Probes and scrapes run every few seconds; at info they would drown everything else.
const QUIET_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);
/** The levels at which request lines are written (probes and scrapes at debug and below). */
const REQUEST_LOG_LEVELS = new Set(["info", "debug", "trace"]);

/** The path of a request URL without its query string, which may carry a token. */
export function pathOf(url: string): string {
  const at = url.indexOf("?");
  return at === -1 ? url : url.slice(0, at);
}

/**
 * Routes throw; this one handler turns every failure into `{ code, message }` with its status:
 * SwitchboardErrors keep their code, fastify's own body errors (not JSON, empty, too large, wrong
 * content type) and schema failures become `invalid_request` / `payload_too_large`, anything else
 * `internal_error` with the detail in the log only.
 */
export function registerErrorHandling(app: FastifyInstance, metrics: Metrics): void {
  app.setErrorHandler((error: FastifyError | SwitchboardError | z.ZodError, request, reply) => {
    let status: number;
    let body: ErrorBody;
    if (error instanceof SwitchboardError) {
      body = error.toJSON();
      status = httpStatusOf(body.code);
    } else if (error instanceof z.ZodError) {
      body = detailed("invalid_request", describeIssue(error, "body"));
      status = 400;
    } else if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      metrics.limitHits.inc({ kind: "http_body_size" });
      body = errorBody("payload_too_large");
      status = 413;
    } else if (error.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
      // fastify says "not valid JSON" for prototype-poisoning keys as well, which valid JSON can hold.
      body = detailed("invalid_request", "the body is not JSON, or holds a __proto__ or constructor.prototype key");
      status = 400;
    } else if (error.validation) {
      body = detailed("invalid_request", validationMessage(error));
      status = 400;
    } else if (typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) {
      // Not JSON, an empty JSON body, an unsupported content type, a schema failure: the client's mistake.
      body = detailed("invalid_request", error.message.replace(/\.$/, ""));
      status = error.statusCode === 415 ? 415 : 400;
    } else {
      request.log.error({ err: error, path: pathOf(request.url) }, "request failed");
      body = errorBody("internal_error");
      status = 500;
    }
    return reply.code(status).headers(retryAfter(body.code)).send(body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(detailed("not_found", `${request.method} ${pathOf(request.url).slice(0, 100)}`)),
  );

  // With LOG_LEVEL above info no request line would be written, so none is built (the level is set once, at start).
  if (!REQUEST_LOG_LEVELS.has(app.log.level)) return;
  app.addHook("onResponse", (request, reply, done) => {
    const path = pathOf(request.url);
    const line = { method: request.method, path: path.slice(0, 200), status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
    if (QUIET_PATHS.has(path)) request.log.debug(line, "request");
    else request.log.info(line, "request");
    done();
  });
}

/** A schema failure in words that name the field: `body/colour is not a field of this request`. */
function validationMessage(error: FastifyError): string {
  const first = error.validation?.[0];
  if (!first) return error.message.replace(/\.$/, "");
  const where = `${error.validationContext ?? "body"}${first.instancePath}`;
  const params = first.params as { additionalProperty?: unknown; missingProperty?: unknown };
  if (typeof params.additionalProperty === "string") return `${where}/${params.additionalProperty} is not a field of this request`;
  if (typeof params.missingProperty === "string") return `${where}/${params.missingProperty} is required`;
  return `${where} ${first.message ?? "is invalid"}`;
}

/** HTTP routes: health, metrics, the demo page and the client bundle. */
export async function registerHttpRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { config, broker, metrics } = deps;

  // Liveness: the process answers. A node without Redis is alive, and restarting it would not help.
  app.get("/healthz", async () => ({
    status: "ok",
    node: config.nodeId,
    version: deps.version,
    mode: broker.mode,
    redis: broker.redisState(),
    draining: deps.draining(),
    devTools: config.devTools,
  }));

  // Readiness: send this node new clients. 503 while Redis is away (it could not reach the rest of
  // the cluster) and from the moment it starts stopping.
  app.get("/readyz", async (_request, reply) => {
    if (deps.draining()) return reply.code(503).send(errorBody("node_draining"));
    if (!broker.ready()) return reply.code(503).send(errorBody("redis_unavailable"));
    return { status: "ready", node: config.nodeId };
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

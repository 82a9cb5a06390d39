import { createHash, timingSafeEqual } from "node:crypto";
import fastifySwagger from "@fastify/swagger";
import { Ajv } from "ajv";
import { MAX_TOKEN_EXP, SwitchboardError, normaliseSiteHost, userIdOf } from "@switchboard/protocol";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { detailed } from "./errors.js";
import type { Operations, Publication } from "./operations.js";
import type { SharedState } from "./state.js";

export interface ApiDeps {
  keys: readonly string[];
  operations: Operations;
  nodeId: string;
  /** The registry of services, as nodes read it from Redis. */
  services: Pick<SharedState, "services" | "service" | "unregisterService">;
}

const TAG = "server API";
/** The most messages one batch request may carry (API_MAX_BODY_BYTES bounds their size). */
export const MAX_BATCH = 1000;
const room = { type: "string", minLength: 1, maxLength: 200 } as const;
const rooms = { oneOf: [room, { type: "array", items: room, minItems: 1, maxItems: 100 }] } as const;
const userId = { oneOf: [{ type: "string", minLength: 1, maxLength: 256 }, { type: "integer" }] } as const;
const event = { type: "string", minLength: 1, maxLength: 200 } as const;
const errorReply = {
  type: "object",
  required: ["code", "message"],
  properties: { code: { type: "string" }, message: { type: "string" } },
} as const;
const errors = { 400: errorReply, 401: errorReply, 413: errorReply, 503: errorReply } as const;
const security = [{ apiKey: [] }];
const publishBody = {
  type: "object",
  required: ["data"],
  additionalProperties: false,
  properties: {
    room: rooms,
    rooms: { type: "array", items: room, minItems: 1, maxItems: 100 },
    event,
    data: {},
    except: rooms,
    _in: rooms,
    user: userId,
    site: { type: "string", maxLength: 300 },
  },
} as const;
type PublishBody = Publication & { rooms?: string[] };

/** `room` and `rooms` are one list of rooms to the operations core. */
function publicationOf(body: PublishBody): Publication {
  // Written out rather than spread: this runs for every message, and V8 copies spread objects slowly.
  const publication: Publication = { data: body.data };
  if (body.event !== undefined) publication.event = body.event;
  if (body.except !== undefined) publication.except = body.except;
  if (body._in !== undefined) publication._in = body._in;
  if (body.user !== undefined) publication.user = body.user;
  if (body.site !== undefined) publication.site = body.site;
  if (body.rooms === undefined) {
    if (body.room !== undefined) publication.room = body.room;
  } else {
    publication.room = body.room === undefined ? body.rooms : [...(Array.isArray(body.room) ? body.room : [body.room]), ...body.rooms];
  }
  return publication;
}
const idParams = { type: "object", required: ["id"], properties: { id: { type: "string", minLength: 1, maxLength: 256 } } } as const;

/**
 * The server API under /api/v1, and the first brokers' /_notify endpoints: a service that cannot
 * reach Redis, or is written in a language with no MessagePack habit, controls the cluster over
 * HTTP. Every route takes `Authorization: Bearer <one of API_KEYS>`; every body is checked by its
 * JSON schema (the OpenAPI document at /api/v1/openapi.json is generated from the same schemas);
 * every action is the operations core's, exactly as the development endpoints, client events and
 * raw frames use it.
 */
export async function registerApi(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { operations } = deps;
  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.0.3",
      info: { title: "Switchboard server API", version: "1" },
      components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "one of the node's API_KEYS" } } },
    },
    // Only the server API: health, metrics and the demo page are not part of it.
    hideUntagged: true,
  });

  // Keys are compared as SHA-256 digests, every one of them, so the time taken tells nothing.
  const digests = deps.keys.map((key) => createHash("sha256").update(key).digest());
  const authorised = (request: FastifyRequest): boolean => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "");
    if (!match) return false;
    const given = createHash("sha256")
      .update(match[1] ?? "")
      .digest();
    let found = false;
    for (const digest of digests) found = timingSafeEqual(digest, given) || found;
    return found;
  };
  // A callback hook rather than an async one: fastify chains a promise per async hook, on every request.
  const requireKey = (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    done(authorised(request) ? undefined : new SwitchboardError("api_key_invalid"));
  };

  await app.register(
    async (api) => {
      api.addHook("onRequest", requireKey);
      api.setValidatorCompiler(validatorCompiler);

      api.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

      api.post<{ Body: PublishBody }>(
        "/publish",
        {
          schema: {
            tags: [TAG],
            summary: "Publish a message to rooms, or to its event's route, on every node",
            security,
            body: publishBody,
            response: { 202: { type: "object", required: ["id"], properties: { id: { type: "string" } } }, ...errors },
          },
        },
        async (request, reply) => {
          const { id } = await operations.publish(publicationOf(request.body), "api");
          return reply.code(202).send({ id });
        },
      );

      api.post<{ Body: { messages: PublishBody[] } }>(
        "/publish/batch",
        {
          schema: {
            tags: [TAG],
            summary: `Publish up to ${MAX_BATCH} messages in one request, each as /publish takes it; all are checked before any is sent`,
            security,
            body: {
              type: "object",
              required: ["messages"],
              additionalProperties: false,
              properties: { messages: { type: "array", items: publishBody, minItems: 1, maxItems: MAX_BATCH } },
            },
            response: {
              202: { type: "object", required: ["ids"], properties: { ids: { type: "array", items: { type: "string" } } } },
              ...errors,
            },
          },
        },
        async (request, reply) => reply.code(202).send(await operations.publishMany(request.body.messages.map(publicationOf), "api")),
      );

      api.post<{ Body: { event?: string; data: unknown } }>(
        "/broadcast",
        {
          schema: {
            tags: [TAG],
            summary: "Send a message to every authenticated socket on every node",
            security,
            body: { type: "object", required: ["data"], additionalProperties: false, properties: { event, data: {} } },
            response: { 202: { type: "object", required: ["id"], properties: { id: { type: "string" } } }, ...errors },
          },
        },
        async (request, reply) =>
          reply.code(202).send(await operations.broadcast(request.body.event ?? "message", request.body.data, "api")),
      );

      api.post<{ Params: { id: string }; Body: { reason?: string; refuseReconnect?: boolean } | undefined }>(
        "/users/:id/disconnect",
        {
          schema: {
            tags: [TAG],
            summary: "Kick a user: every socket gets kicked and is disconnected; with refuseReconnect its older tokens are refused",
            security,
            params: idParams,
            body: {
              type: "object",
              additionalProperties: false,
              properties: { reason: { type: "string", maxLength: 500 }, refuseReconnect: { type: "boolean", default: true } },
            },
            response: {
              202: { type: "object", properties: { user: { type: "string" }, refuseReconnect: { type: "boolean" } } },
              ...errors,
            },
          },
        },
        async (request, reply) => {
          const refuseReconnect = request.body?.refuseReconnect ?? true;
          const reason = request.body?.reason;
          const { user } = await operations.kick(request.params.id, { refuseReconnect, ...(reason !== undefined ? { reason } : {}) });
          return reply.code(202).send({ user, refuseReconnect });
        },
      );

      api.post<{ Params: { id: string } }>(
        "/users/:id/allow",
        {
          schema: {
            tags: [TAG],
            summary: "Stop refusing a kicked user's tokens",
            security,
            params: idParams,
            response: { 200: { type: "object", properties: { user: { type: "string" } } }, ...errors },
          },
        },
        async (request) => ({ user: await operations.allow(request.params.id) }),
      );

      api.post<{ Body: { jti: string; exp: number } }>(
        "/tokens/revoke",
        {
          schema: {
            tags: [TAG],
            summary: "Refuse one token, by its jti, until its exp, on every node",
            security,
            body: {
              type: "object",
              required: ["jti", "exp"],
              additionalProperties: false,
              properties: {
                jti: { type: "string", minLength: 1, maxLength: 256 },
                exp: { type: "integer", minimum: 0, maximum: MAX_TOKEN_EXP },
              },
            },
            response: { 202: { type: "object", properties: { jti: { type: "string" }, exp: { type: "integer" } } }, ...errors },
          },
        },
        async (request, reply) => {
          await operations.revokeToken(request.body.jti, request.body.exp);
          return reply.code(202).send({ jti: request.body.jti, exp: request.body.exp });
        },
      );

      api.get<{ Params: { id: string } }>(
        "/presence/users/:id",
        {
          schema: {
            tags: [TAG],
            summary: "Whether a user is online, with its sockets per node",
            security,
            params: idParams,
            response: {
              200: {
                type: "object",
                properties: {
                  online: { type: "boolean" },
                  sockets: { type: "integer" },
                  nodes: {
                    type: "array",
                    items: { type: "object", properties: { node: { type: "string" }, sockets: { type: "integer" } } },
                  },
                },
              },
              ...errors,
            },
          },
        },
        async (request) => operations.presenceOfUser(userIdOf(request.params.id)),
      );

      api.get<{ Params: { host: string }; Querystring: { cursor?: string; limit?: number } }>(
        "/presence/sites/:host",
        {
          schema: {
            tags: [TAG],
            summary: "The users online on a site, a page at a time",
            security,
            params: { type: "object", required: ["host"], properties: { host: { type: "string", minLength: 1, maxLength: 300 } } },
            querystring: {
              type: "object",
              additionalProperties: false,
              properties: {
                cursor: { type: "string", minLength: 1, maxLength: 256 },
                limit: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
              },
            },
            response: {
              200: {
                type: "object",
                properties: {
                  users: { type: "array", items: { type: "string" } },
                  count: { type: "integer" },
                  cursor: { type: "string", nullable: true },
                },
              },
              ...errors,
            },
          },
        },
        async (request) => {
          const host = normaliseSiteHost(request.params.host);
          if (host === null) throw new SwitchboardError("invalid_room", detailed("invalid_room", "not a site host").message);
          return operations.presenceOfSite(host, request.query.cursor ?? null, request.query.limit ?? 100);
        },
      );

      api.get<{ Params: { room: string } }>(
        "/presence/rooms/:room/count",
        {
          schema: {
            tags: [TAG],
            summary: "How many sockets and users are in a room, cluster-wide",
            security,
            params: { type: "object", required: ["room"], properties: { room } },
            response: { 200: { type: "object", properties: { sockets: { type: "integer" }, users: { type: "integer" } } }, ...errors },
          },
        },
        async (request) => operations.roomCount(request.params.room),
      );

      const serviceInfo = {
        type: "object",
        required: ["name", "registeredAt", "instances", "queueDepth", "pending", "oldestPendingAgeMs"],
        properties: {
          name: { type: "string" },
          registeredAt: { type: "integer" },
          instances: { type: "integer" },
          queueDepth: { type: "integer" },
          pending: { type: "integer" },
          oldestPendingAgeMs: { type: "integer", nullable: true },
        },
      } as const;
      const serviceParams = {
        type: "object",
        required: ["name"],
        properties: { name: { type: "string", minLength: 1, maxLength: 64 } },
      } as const;

      api.get(
        "/services",
        {
          schema: {
            tags: [TAG],
            summary: "The registered services: live instances, queue depth, pending requests and the age of the oldest",
            security,
            response: {
              200: { type: "object", required: ["services"], properties: { services: { type: "array", items: serviceInfo } } },
              ...errors,
            },
          },
        },
        async () => ({ services: await deps.services.services() }),
      );

      api.get<{ Params: { name: string } }>(
        "/services/:name",
        {
          schema: {
            tags: [TAG],
            summary: "One registered service",
            security,
            params: serviceParams,
            response: { 200: serviceInfo, ...errors, 404: errorReply },
          },
        },
        async (request) => {
          const service = await deps.services.service(request.params.name);
          if (service === null) throw new SwitchboardError("service_unknown");
          return service;
        },
      );

      api.delete<{ Params: { name: string } }>(
        "/services/:name",
        {
          schema: {
            tags: [TAG],
            summary: "Remove a service with its queued requests (running instances register it again)",
            security,
            params: serviceParams,
            response: { 204: { type: "null" }, ...errors, 404: errorReply },
          },
        },
        async (request, reply) => {
          if (!(await deps.services.unregisterService(request.params.name))) throw new SwitchboardError("service_unknown");
          return reply.code(204).send();
        },
      );

      api.get(
        "/info",
        {
          schema: {
            tags: [TAG],
            summary: "The live nodes: ids, versions, uptime and sockets",
            security,
            response: {
              200: {
                type: "object",
                properties: {
                  node: { type: "string" },
                  nodes: {
                    type: "array",
                    items: {
                      type: "object",
                      properties: {
                        node: { type: "string" },
                        version: { type: "string" },
                        uptimeSeconds: { type: "integer" },
                        sockets: { type: "integer" },
                      },
                    },
                  },
                },
              },
              ...errors,
            },
          },
        },
        async () => ({
          node: deps.nodeId,
          nodes: (await operations.nodes())
            .map((info) => ({
              node: info.node,
              version: info.version,
              uptimeSeconds: Math.max(0, Math.floor((Date.now() - info.startedAt) / 1000)),
              sockets: info.sockets,
            }))
            .sort((a, b) => a.node.localeCompare(b.node)),
        }),
      );

      api.post<{ Body: { event: string; room: string } }>(
        "/events",
        {
          schema: {
            tags: [TAG],
            summary: "Register (or replace) an event's route, on every node within a second",
            security,
            body: { type: "object", required: ["event", "room"], additionalProperties: false, properties: { event, room } },
            response: {
              201: { type: "object", properties: { event: { type: "string" }, room: { type: "string" } } },
              ...errors,
              409: errorReply,
            },
          },
        },
        async (request, reply) => {
          await operations.registerRoute(request.body.event, request.body.room);
          return reply.code(201).send({ event: request.body.event, room: request.body.room });
        },
      );

      api.get(
        "/events",
        {
          schema: {
            tags: [TAG],
            summary: "The event routes in effect: EVENT_ROUTES and registered ones",
            security,
            response: {
              200: {
                type: "object",
                properties: {
                  routes: {
                    type: "array",
                    items: {
                      type: "object",
                      properties: {
                        event: { type: "string" },
                        room: { type: "string" },
                        source: { type: "string", enum: ["EVENT_ROUTES", "registered"] },
                      },
                    },
                  },
                },
              },
              ...errors,
            },
          },
        },
        async () => ({ routes: operations.listRoutes() }),
      );

      api.delete<{ Params: { event: string } }>(
        "/events/:event",
        {
          schema: {
            tags: [TAG],
            summary: "Remove a registered route (EVENT_ROUTES stay)",
            security,
            params: { type: "object", required: ["event"], properties: { event } },
            response: { 204: { type: "null" }, ...errors, 404: errorReply },
          },
        },
        async (request, reply) => {
          if (!(await operations.unregisterRoute(request.params.event))) {
            throw new SwitchboardError("not_found", detailed("not_found", `no registered route for ${request.params.event}`).message);
          }
          return reply.code(204).send();
        },
      );
    },
    { prefix: "/api/v1" },
  );

  // The first brokers' push endpoints, behind the same keys.
  await app.register(async (notify) => {
    notify.addHook("onRequest", requireKey);
    notify.setValidatorCompiler(validatorCompiler);
    const notifyReply = { 200: { type: "object", properties: { ok: { type: "boolean" } } }, ...errors, 404: errorReply };

    notify.post<{ Params: { event: string }; Body: unknown }>(
      "/_notify/:event",
      {
        schema: {
          tags: [TAG],
          summary: "Publish the body as the event's data, to the event's route",
          security,
          params: { type: "object", required: ["event"], properties: { event } },
          response: notifyReply,
        },
      },
      async (request) => {
        const data = requireBody(request.body);
        const fill = typeof data === "object" && data !== null && !Array.isArray(data) ? (data as { user?: unknown; site?: unknown }) : {};
        try {
          await operations.publish(
            {
              event: request.params.event,
              data,
              ...(typeof fill.user === "string" || typeof fill.user === "number" ? { user: fill.user } : {}),
              ...(typeof fill.site === "string" ? { site: fill.site } : {}),
            },
            "api",
          );
        } catch (err) {
          // Here an event without a route is an unknown endpoint.
          if (err instanceof SwitchboardError && err.code === "route_unknown") throw new SwitchboardError("not_found", err.message);
          throw err;
        }
        return { ok: true };
      },
    );

    notify.post<{ Params: { event: string }; Body: unknown }>(
      "/_notify_endpoint/:event",
      {
        schema: {
          tags: [TAG],
          summary: "Publish the body to the room endpoint:<body.endpoint>",
          security,
          params: { type: "object", required: ["event"], properties: { event } },
          body: { type: "object", required: ["endpoint"], properties: { endpoint: { type: "string", minLength: 1, maxLength: 190 } } },
          response: notifyReply,
        },
      },
      async (request) => {
        const body = requireBody(request.body) as { endpoint: string };
        await operations.publish({ room: `endpoint:${body.endpoint}`, event: request.params.event, data: body }, "api");
        return { ok: true };
      },
    );
  });
}

// Bodies are checked as sent: a number where a string belongs, or a field the schema does not know,
// is a 400 naming it, never silently converted or dropped. Paths and query strings are text and
// are converted to the types their schemas give.
const bodyValidator = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, strict: false });
const textValidator = new Ajv({ coerceTypes: true, removeAdditional: false, useDefaults: true, allErrors: false, strict: false });
function validatorCompiler({ schema, httpPart }: { schema: object; httpPart?: string }) {
  return (httpPart === "body" ? bodyValidator : textValidator).compile(schema);
}

function requireBody(body: unknown): unknown {
  if (body === undefined)
    throw new SwitchboardError("invalid_request", detailed("invalid_request", "the body is the event's data: send JSON").message);
  return body;
}

import { SwitchboardError, normaliseSiteHost, preview, userIdOf } from "@switchboard/protocol";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { TokenVerifier } from "./auth.js";
import type { Operations } from "./operations.js";

export interface DevDeps {
  operations: Operations;
  verifier: TokenVerifier;
  nodeId: string;
}

const tokenBody = z.object({
  user: z.union([z.string(), z.number()]),
  site: z.string().max(300).optional(),
  ttlSeconds: z.number().int().min(5).max(86_400).default(600),
});
const publishBody = z.object({ room: z.string().min(1).max(200), event: z.string().max(200).default("message"), data: z.unknown() });
const kickBody = z.object({
  user: z.union([z.string(), z.number()]),
  reason: z.string().max(500).optional(),
  refuseReconnect: z.boolean().default(false),
});
const siteQuery = z.object({ cursor: z.string().min(1).max(256).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) });

/**
 * Development endpoints: mint tokens, publish, kick and look at presence without a backend.
 * Registered only when the node generated its own secret or DEV_TOKENS=1, and never with
 * NODE_ENV=production, so in production every one of them answers 404. Each action is the
 * operations core's, exactly as the server API uses it; failures are thrown and answered by the
 * one error handler.
 */
export async function registerDevRoutes(app: FastifyInstance, deps: DevDeps): Promise<void> {
  const { operations, verifier } = deps;
  const sign = verifier.sign;
  if (!sign) return;

  app.get("/dev", async () => ({
    devTools: true,
    node: deps.nodeId,
    endpoints: ["POST /dev/token", "POST /dev/publish", "POST /dev/kick", "GET /dev/presence/sites/:host"],
  }));

  app.post("/dev/token", async (request) => {
    const body = tokenBody.parse(request.body ?? {});
    const user = userIdOf(body.user);
    let site: string | undefined;
    if (body.site !== undefined && body.site.trim() !== "") {
      const normalised = normaliseSiteHost(body.site);
      if (normalised === null) throw new SwitchboardError("invalid_room", `Not a site host: ${preview(body.site)}`);
      site = normalised;
    }
    const token = sign(site === undefined ? { sub: user } : { sub: user, site }, body.ttlSeconds);
    return { token, expiresAt: Date.now() + body.ttlSeconds * 1000 };
  });

  // Every node delivers it; a failed Redis write is a 503, never a 202.
  app.post("/dev/publish", async (request, reply) => {
    const body = publishBody.parse(request.body ?? {});
    const { id } = await operations.publish({ room: body.room, event: body.event, data: body.data ?? null }, "api");
    return reply.code(202).send({ ok: true, id });
  });

  // The same kick as the server API's; here a kicked user may reconnect at once unless asked otherwise.
  app.post("/dev/kick", async (request, reply) => {
    const body = kickBody.parse(request.body ?? {});
    await operations.kick(body.user, {
      refuseReconnect: body.refuseReconnect,
      ...(body.reason !== undefined ? { reason: body.reason } : {}),
    });
    return reply.code(202).send({ ok: true });
  });

  app.get<{ Params: { host: string } }>("/dev/presence/sites/:host", async (request) => {
    const host = normaliseSiteHost(request.params.host);
    if (host === null) throw new SwitchboardError("invalid_room", `Not a site host: ${preview(request.params.host)}`);
    const query = siteQuery.parse(request.query ?? {});
    return operations.presenceOfSite(host, query.cursor ?? null, query.limit);
  });
}

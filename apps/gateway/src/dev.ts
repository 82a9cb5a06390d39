import {
  SERVER_EVENTS,
  SwitchboardError,
  encodeRawFrame,
  errorBody,
  normaliseSiteHost,
  preview,
  userIdOf,
  userRoom,
} from "@switchboard/protocol";
import type { FastifyInstance } from "fastify";
import type { Server } from "socket.io";
import { z } from "zod";
import type { TokenVerifier } from "./auth.js";
import type { Broker } from "./broker.js";

export interface DevDeps {
  io: Server;
  broker: Broker;
  verifier: TokenVerifier;
  nodeId: string;
  payloadMaxDepth: number;
}

const tokenBody = z.object({
  user: z.union([z.string(), z.number()]),
  site: z.string().max(300).optional(),
  ttlSeconds: z.number().int().min(5).max(86_400).default(600),
});
const publishBody = z.object({ room: z.string().min(1).max(1000), event: z.string().max(200).default("message"), data: z.unknown() });
const kickBody = z.object({ user: z.union([z.string(), z.number()]) });

/**
 * Development endpoints: mint tokens, publish and kick without a backend. Registered only when
 * the node generated its own secret or DEV_TOKENS=1, and never with NODE_ENV=production, so in
 * production every one of them answers 404. Failures are thrown and answered by the one error handler.
 */
export async function registerDevRoutes(app: FastifyInstance, deps: DevDeps): Promise<void> {
  const { io, broker, verifier } = deps;
  const sign = verifier.sign;
  if (!sign) return;

  app.get("/dev", async () => ({ devTools: true, node: deps.nodeId, endpoints: ["POST /dev/token", "POST /dev/publish", "POST /dev/kick"] }));

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

  // A raw frame through the broker: every node delivers it, and a failed Redis write is a 503, never a 202.
  app.post("/dev/publish", async (request, reply) => {
    const body = publishBody.parse(request.body ?? {});
    const id = globalThis.crypto.randomUUID();
    const frame = encodeRawFrame({ room: body.room, event: body.event, data: body.data ?? null, id }, { maxDepth: deps.payloadMaxDepth });
    await broker.publishRaw(frame);
    return reply.code(202).send({ ok: true, id });
  });

  app.post("/dev/kick", async (request, reply) => {
    const room = userRoom(userIdOf(kickBody.parse(request.body ?? {}).user));
    // The kick travels through Redis to the other nodes: refused while Redis is away rather than lost.
    if (!broker.ready()) throw new SwitchboardError("redis_unavailable");
    io.to(room).emit(SERVER_EVENTS.kicked, errorBody("kicked"));
    io.in(room).disconnectSockets(true);
    return reply.code(202).send({ ok: true });
  });
}

import {
  SERVER_EVENTS,
  SwitchboardError,
  errorBody,
  isPublishableEvent,
  normaliseSiteHost,
  userIdOf,
  userRoom,
} from "@switchboard/protocol";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { Server } from "socket.io";
import { z } from "zod";
import type { TokenVerifier } from "./auth.js";

export interface DevDeps {
  io: Server;
  verifier: TokenVerifier;
  nodeId: string;
}

const tokenBody = z.object({
  user: z.union([z.string(), z.number()]),
  site: z.string().optional(),
  ttlSeconds: z.number().int().min(5).max(86_400).default(600),
});
const publishBody = z.object({ room: z.string().min(1), event: z.string().default("message"), data: z.unknown() });
const kickBody = z.object({ user: z.union([z.string(), z.number()]) });

function badRequest(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof SwitchboardError) return reply.code(400).send(err.toJSON());
  if (err instanceof z.ZodError) {
    const issue = err.issues[0];
    return reply.code(400).send(errorBody("invalid_request", `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`));
  }
  throw err;
}

/**
 * Development endpoints: mint tokens, publish and kick without a backend. Registered only when
 * the node generated its own secret or DEV_TOKENS=1, and never with NODE_ENV=production, so in
 * production every one of them answers 404.
 */
export async function registerDevRoutes(app: FastifyInstance, deps: DevDeps): Promise<void> {
  const { io, verifier } = deps;
  const sign = verifier.sign;
  if (!sign) return;

  app.get("/dev", async () => ({ devTools: true, node: deps.nodeId, endpoints: ["POST /dev/token", "POST /dev/publish", "POST /dev/kick"] }));

  app.post("/dev/token", async (request, reply) => {
    try {
      const body = tokenBody.parse(request.body ?? {});
      const user = userIdOf(body.user);
      let site: string | undefined;
      if (body.site !== undefined && body.site.trim() !== "") {
        const normalised = normaliseSiteHost(body.site);
        if (normalised === null) throw new SwitchboardError("invalid_room", `Not a site host: ${JSON.stringify(body.site)}`);
        site = normalised;
      }
      const token = sign(site === undefined ? { sub: user } : { sub: user, site }, body.ttlSeconds);
      return { token, expiresAt: Date.now() + body.ttlSeconds * 1000 };
    } catch (err) {
      return badRequest(reply, err);
    }
  });

  // Goes through the adapter, so in a cluster the message takes the same Redis path as every other message.
  app.post("/dev/publish", async (request, reply) => {
    try {
      const body = publishBody.parse(request.body ?? {});
      if (!isPublishableEvent(body.event)) throw new SwitchboardError("invalid_event", `Not a publishable event name: ${JSON.stringify(body.event)}`);
      io.to(body.room).emit(body.event, body.data ?? null);
      return reply.code(202).send({ ok: true });
    } catch (err) {
      return badRequest(reply, err);
    }
  });

  app.post("/dev/kick", async (request, reply) => {
    try {
      const room = userRoom(userIdOf(kickBody.parse(request.body ?? {}).user));
      io.to(room).emit(SERVER_EVENTS.kicked, errorBody("kicked"));
      io.in(room).disconnectSockets(true);
      return reply.code(202).send({ ok: true });
    } catch (err) {
      return badRequest(reply, err);
    }
  });
}

import {
  Deadlines,
  type ErrorBody,
  type Identity,
  SERVER_EVENTS,
  type ServiceReplyPayload,
  type ServiceRequestAck,
  errorBody,
  isCommandQueueFull,
  isServiceName,
  nestsDeeperThan,
  newMessageId,
  preview,
  readServiceReply,
  replyChannel,
} from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { Server } from "socket.io";
import type { DropFrame } from "./adapter-guard.js";
import type { ServicesConfig } from "./config.js";
import { detailed } from "./errors.js";
import type { Metrics, ServiceOutcome } from "./metrics.js";
import type { EnqueueResult, SharedState } from "./state.js";

/** The socket a call comes from, as the connection knows it. */
export interface CallingSocket {
  id: string;
  identity: Identity;
  /** Whether the socket's `services` claim or SERVICE_POLICY allows the service. */
  mayCall(service: string): boolean;
}

export interface ServiceCallsDeps {
  io: Server;
  state: SharedState;
  config: ServicesConfig;
  nodeId: string;
  metrics: Metrics;
  logger: FastifyBaseLogger;
  dropFrame: DropFrame;
  /** PAYLOAD_MAX_DEPTH: deeper data in a reply would overflow the recursive encoding of the emit. */
  payloadMaxDepth: number;
}

/**
 * Calls from this node's sockets to backend services. A request is checked (policy, size), queued
 * on the service's stream with the caller's identity and this node's reply channel, and tracked
 * until its final reply or its deadline; replies for calls that are over (timed out, caller gone)
 * are dropped and counted. Nothing is kept for a socket that has gone.
 */
export interface ServiceCalls {
  request(
    socket: CallingSocket,
    call: { id?: string | undefined; service: string; payload?: unknown; timeoutMs?: number | undefined },
  ): Promise<ServiceRequestAck>;
  send(socket: CallingSocket, message: { service: string; event?: string | undefined; payload?: unknown }): Promise<ServiceRequestAck>;
  /** A message on this node's reply channel. */
  onReply(message: Buffer): void;
  /** The socket disconnected: its calls end here, and their replies will be dropped. */
  forget(socketId: string): void;
  close(): void;
}

interface Pending {
  socketId: string;
  /** The id the caller knows the call by. */
  callerId: string;
  service: string;
  startedAt: number;
  deadlineKey: number;
}

export function createServiceCalls(deps: ServiceCallsDeps): ServiceCalls {
  const { config, metrics } = deps;
  const reply = replyChannel(deps.nodeId);
  /** Calls under way, by the id the service sees. */
  const pending = new Map<string, Pending>();
  /** The same calls by socket, so a socket's calls can be counted and forgotten. */
  const bySocket = new Map<string, Set<string>>();
  const deadlines = new Deadlines<string>((id) => expire(id));

  function emitTo(socketId: string, payload: ServiceReplyPayload): void {
    deps.io.of("/").sockets.get(socketId)?.emit(SERVER_EVENTS.reply, payload);
  }

  function end(id: string): Pending | null {
    const call = pending.get(id);
    if (!call) return null;
    pending.delete(id);
    deadlines.remove(call.deadlineKey, id);
    const calls = bySocket.get(call.socketId);
    calls?.delete(id);
    if (calls?.size === 0) bySocket.delete(call.socketId);
    return call;
  }

  function expire(id: string): void {
    const call = end(id);
    if (!call) return;
    metrics.serviceRequest(call.service, "timeout", Date.now() - call.startedAt);
    emitTo(call.socketId, {
      id: call.callerId,
      kind: "error",
      error: detailed("request_timeout", `${call.service} did not finish in time`),
    });
  }

  /** The checks a request and a send share; null when the call may go on. */
  function refusal(socket: CallingSocket, service: string, payload: unknown): { error: ErrorBody; outcome: ServiceOutcome } | null {
    if (!isServiceName(service))
      return { error: detailed("service_unknown", `${preview(service)} is not a service name`), outcome: "unknown" };
    if (!socket.mayCall(service))
      return { error: detailed("service_forbidden", `this socket may not call ${service}`), outcome: "forbidden" };
    const size = Buffer.byteLength(JSON.stringify(payload ?? null));
    if (size > config.maxPayloadBytes)
      return {
        error: detailed("payload_too_large", `${size} bytes is more than SERVICE_MAX_PAYLOAD_BYTES (${config.maxPayloadBytes})`),
        outcome: "too_large",
      };
    return null;
  }

  /**
   * Queues a call; null when queued, or why not, with the `service` label its refusal is counted
   * under: the service's name only once Redis has said the service is registered, so that names a
   * client makes up cannot add label sets to the metrics without bound.
   */
  async function enqueue(
    socket: CallingSocket,
    fields: { id: string; kind: "request" | "send"; service: string; event: string; payload: unknown; deadline: number },
  ): Promise<{ error: ErrorBody; outcome: ServiceOutcome; label: string } | null> {
    const caller = { user: socket.identity.user, site: socket.identity.site ?? "", socket: socket.id, node: deps.nodeId };
    let queued: EnqueueResult;
    try {
      const request = {
        id: fields.id,
        kind: fields.kind,
        service: fields.service,
        event: fields.event,
        payload: fields.payload,
        deadline: fields.deadline,
        caller,
        reply,
      };
      queued = await deps.state.enqueueServiceRequest(request, config.maxPending);
    } catch (err) {
      deps.logger.debug({ err: err instanceof Error ? err.message : String(err) }, "a service request could not be queued");
      // Refused at once by this node rather than lost by Redis: say which limit, as publishes do.
      const full = err instanceof Error && isCommandQueueFull(err.cause);
      const error = detailed(
        "service_unavailable",
        full
          ? "the cluster's Redis has not answered the commands already waiting on this node (REDIS_MAX_PENDING_COMMANDS)"
          : "the cluster's Redis is not reachable",
      );
      return { error, outcome: "unavailable", label: "" };
    }
    switch (queued) {
      case "ok":
        return null;
      case "no_redis":
        return {
          error: detailed("service_unavailable", "this node runs without Redis (no REDIS_URL), so no service can register with it"),
          outcome: "unavailable",
          label: "",
        };
      case "service_unknown":
        return { error: errorBody(queued), outcome: "unknown", label: "" };
      case "service_unavailable":
        return { error: errorBody(queued), outcome: "unavailable", label: fields.service };
      case "service_busy":
        return { error: errorBody(queued), outcome: "busy", label: fields.service };
    }
  }

  return {
    async request(socket, call) {
      const refused = refusal(socket, call.service, call.payload);
      if (refused) {
        metrics.serviceRequest("", refused.outcome, 0);
        return { ok: false, error: refused.error };
      }
      const calls = bySocket.get(socket.id);
      if ((calls?.size ?? 0) >= config.maxCallsPerSocket) {
        metrics.serviceRequest("", "too_many", 0);
        return {
          ok: false,
          error: detailed(
            "rate_limited",
            `this socket already waits for ${config.maxCallsPerSocket} requests (SERVICE_MAX_CALLS_PER_SOCKET)`,
          ),
        };
      }
      const callerId = call.id ?? newMessageId();
      if (calls && [...calls].some((id) => pending.get(id)?.callerId === callerId)) {
        return {
          ok: false,
          error: detailed("payload_invalid", `a request with id ${preview(callerId)} is already under way on this socket`),
        };
      }
      const id = newMessageId();
      const startedAt = Date.now();
      const deadline = startedAt + Math.min(call.timeoutMs ?? config.requestTimeoutMs, config.requestTimeoutMs);
      // Tracked before it is queued: a fast service may answer before XADD's reply is back.
      const entry: Pending = { socketId: socket.id, callerId, service: call.service, startedAt, deadlineKey: deadlines.add(deadline, id) };
      pending.set(id, entry);
      bySocket.set(socket.id, (calls ?? new Set()).add(id));
      const notQueued = await enqueue(socket, {
        id,
        kind: "request",
        service: call.service,
        event: "",
        payload: call.payload ?? null,
        deadline,
      });
      if (notQueued) {
        end(id);
        metrics.serviceRequest(notQueued.label, notQueued.outcome, 0);
        return { ok: false, error: notQueued.error };
      }
      // The socket left while the request was being queued: the call is over, its reply will be dropped.
      if (!deps.io.of("/").sockets.has(socket.id)) end(id);
      return { ok: true, id: callerId };
    },

    async send(socket, message) {
      const refused = refusal(socket, message.service, message.payload);
      if (refused) {
        metrics.serviceRequest("", refused.outcome, 0);
        return { ok: false, error: refused.error };
      }
      const id = newMessageId();
      const notQueued = await enqueue(socket, {
        id,
        kind: "send",
        service: message.service,
        event: message.event ?? "message",
        payload: message.payload ?? null,
        deadline: 0,
      });
      if (notQueued) {
        metrics.serviceRequest(notQueued.label, notQueued.outcome, 0);
        return { ok: false, error: notQueued.error };
      }
      metrics.serviceRequest(message.service, "sent", 0);
      return { ok: true, id };
    },

    onReply(message) {
      let value: unknown;
      try {
        value = JSON.parse(message.toString("utf8"));
      } catch {
        deps.dropFrame("replies", "frame_invalid", "a service reply that is not JSON");
        return;
      }
      const answer = readServiceReply(value);
      if (typeof answer === "string") {
        deps.dropFrame("replies", "frame_invalid", answer);
        return;
      }
      const call = pending.get(answer.id);
      if (!call) {
        // Timed out, or its socket left: the caller was already told, or is not there to tell.
        metrics.serviceReplyDropped();
        return;
      }
      if (answer.kind !== "error" && nestsDeeperThan(answer.data, deps.payloadMaxDepth)) {
        // The caller is told rather than left waiting: its call cannot end as the service meant it to.
        deps.dropFrame(
          "replies",
          "frame_invalid",
          `a ${answer.kind} reply's data is nested deeper than PAYLOAD_MAX_DEPTH (${deps.payloadMaxDepth})`,
        );
        end(answer.id);
        metrics.serviceRequest(call.service, "reply_invalid", Date.now() - call.startedAt);
        emitTo(call.socketId, {
          id: call.callerId,
          kind: "error",
          error: detailed("service_reply_invalid", `${call.service} answered data nested deeper than ${deps.payloadMaxDepth} levels`),
        });
        return;
      }
      if (answer.kind === "progress") {
        emitTo(call.socketId, { id: call.callerId, kind: "progress", data: answer.data });
        return;
      }
      end(answer.id);
      metrics.serviceRequest(call.service, answer.kind === "done" ? "done" : "error", Date.now() - call.startedAt);
      emitTo(
        call.socketId,
        answer.kind === "done"
          ? { id: call.callerId, kind: "done", data: answer.data }
          : { id: call.callerId, kind: "error", error: answer.error },
      );
    },

    forget(socketId) {
      for (const id of [...(bySocket.get(socketId) ?? [])]) {
        const call = end(id);
        if (call) metrics.serviceRequest(call.service, "caller_gone", Date.now() - call.startedAt);
      }
    },

    close() {
      deadlines.stop();
      pending.clear();
      bySocket.clear();
    },
  };
}

import { RAW_FRAME_CHANNEL, decodeRawFrame } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import type { Server } from "socket.io";
import type { Metrics } from "./metrics.js";

export interface RoutingDeps {
  logger: FastifyBaseLogger;
  metrics: Metrics;
}

/**
 * Delivers one raw frame to this node's own sockets. Every node receives every raw frame and
 * delivers locally, so each target socket in the cluster gets it exactly once.
 */
export function deliverRawFrame(io: Server, frame: Uint8Array, deps: RoutingDeps): void {
  const result = decodeRawFrame(frame);
  if (!result.ok) {
    deps.metrics.framesDropped.inc({ channel: RAW_FRAME_CHANNEL, reason: result.code });
    deps.logger.warn({ channel: RAW_FRAME_CHANNEL, code: result.code, detail: result.reason }, "dropped a frame");
    return;
  }
  const { rooms, except, event, args, layout } = result.delivery;
  deps.metrics.framesDelivered.inc({ channel: RAW_FRAME_CHANNEL, layout });
  // The adapter leaves unauthenticated sockets out of this broadcast, as out of every other.
  io.local.to(rooms).except(except).emit(event, ...args);
}

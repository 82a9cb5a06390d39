import { RAW_FRAME_CHANNEL, decodeRawFrame } from "@switchboard/protocol";
import type { Server } from "socket.io";
import type { DropFrame } from "./adapter-guard.js";
import type { Metrics } from "./metrics.js";

export interface RawFrameDeps {
  metrics: Metrics;
  dropFrame: DropFrame;
  payloadMaxDepth: number;
}

/**
 * Delivers one raw frame to this node's own sockets. Every node receives every raw frame and
 * delivers locally, so each target socket in the cluster gets it exactly once.
 */
export function deliverRawFrame(io: Server, frame: Uint8Array, deps: RawFrameDeps): void {
  const result = decodeRawFrame(frame, { maxDepth: deps.payloadMaxDepth });
  if (!result.ok) {
    deps.dropFrame(RAW_FRAME_CHANNEL, result.code, result.reason);
    return;
  }
  const { rooms, except, event, args, layout } = result.delivery;
  deps.metrics.framesDelivered.inc({ channel: RAW_FRAME_CHANNEL, layout });
  // The adapter leaves unauthenticated sockets out of this broadcast, as out of every other.
  io.local.to(rooms).except(except).emit(event, ...args);
}

import type { FastifyBaseLogger } from "fastify";
import type { DropFrame } from "./adapter-guard.js";
import type { ThrottledWarnings } from "./log-throttle.js";
import type { Metrics } from "./metrics.js";

/**
 * Reports a dropped frame: always counted in `switchboard_frames_dropped_total`, logged in full
 * the first time per channel and reason, then summarised (see ThrottledWarnings).
 */
export function createDropReporter(deps: { metrics: Metrics; warnings: ThrottledWarnings; logger: FastifyBaseLogger }): DropFrame {
  return (channel, reason, detail) => {
    deps.metrics.framesDropped.inc({ channel, reason });
    if (reason === "frame_too_large") deps.metrics.limitHits.inc({ kind: "frame_size" });
    deps.warnings.warn(`dropped:${channel}:${reason}`, { channel, code: reason, detail: detail.slice(0, 300) }, "dropped a frame");
  };
}

import type { FastifyBaseLogger } from "fastify";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createThrottledWarnings } from "../src/log-throttle.js";

/** A logger that records warn calls; nothing else is used. */
function recordingLogger(): { logger: FastifyBaseLogger; lines: { fields: Record<string, unknown>; message: string }[] } {
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  const logger = {
    warn: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }),
  } as unknown as FastifyBaseLogger;
  return { logger, lines };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("throttled warnings", () => {
  it("logs the first of a kind in full, then one summary per interval with the count", () => {
    vi.useFakeTimers();
    const { logger, lines } = recordingLogger();
    const warnings = createThrottledWarnings(logger, 1000);
    for (let index = 0; index < 10_000; index++)
      warnings.warn("dropped:x:frame_invalid", { channel: "x", detail: `frame ${index}` }, "dropped a frame");
    warnings.warn("dropped:x:frame_not_msgpack", { channel: "x", detail: "other" }, "dropped a frame");
    expect(lines).toHaveLength(2);
    expect(lines[0]?.fields.detail).toBe("frame 0");
    vi.advanceTimersByTime(1000);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toEqual({ fields: { channel: "x", repeated: 9999, intervalMs: 1000 }, message: "dropped a frame (repeated)" });
    // A quiet interval later, the next one is logged in full again.
    vi.advanceTimersByTime(2000);
    warnings.warn("dropped:x:frame_invalid", { channel: "x", detail: "again" }, "dropped a frame");
    expect(lines.at(-1)?.fields.detail).toBe("again");
    warnings.close();
  });
});

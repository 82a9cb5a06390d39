import type { FastifyBaseLogger } from "fastify";

/** How often a repeated warning is summarised. */
export const WARNING_SUMMARY_INTERVAL_MS = 10_000;

export interface ThrottledWarnings {
  /**
   * Logs the first warning of each `key` in full; later ones with the same key within the
   * interval are only counted, and one summary line per interval says how many there were.
   */
  warn(key: string, fields: Record<string, unknown>, message: string): void;
  /** Writes the pending summaries and stops the timer. */
  close(): void;
}

/**
 * A flood of bad input (10,000 garbage frames) must cost a handful of log lines, not 10,000.
 * Keys are a small fixed set (a channel and a code), so the map stays small.
 */
export function createThrottledWarnings(logger: FastifyBaseLogger, intervalMs: number = WARNING_SUMMARY_INTERVAL_MS): ThrottledWarnings {
  const repeats = new Map<string, { count: number; fields: Record<string, unknown>; message: string }>();
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    timer = undefined;
    for (const [key, entry] of repeats) {
      if (entry.count === 0) {
        // Quiet for a whole interval: the next one is logged in full again.
        repeats.delete(key);
        continue;
      }
      logger.warn({ ...entry.fields, repeated: entry.count, intervalMs }, `${entry.message} (repeated)`);
      entry.count = 0;
    }
    if (repeats.size > 0) schedule();
  };
  const schedule = () => {
    timer ??= setTimeout(flush, intervalMs);
    timer.unref();
  };

  return {
    warn(key, fields, message) {
      const entry = repeats.get(key);
      if (entry) {
        entry.count++;
        return;
      }
      logger.warn(fields, message);
      repeats.set(key, { count: 0, fields: pickSummaryFields(fields), message });
      schedule();
    },
    close() {
      clearTimeout(timer);
      flush();
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

// A summary names what repeated, not the detail of the first occurrence.
function pickSummaryFields(fields: Record<string, unknown>): Record<string, unknown> {
  const { detail: _detail, ...rest } = fields;
  return rest;
}

import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AnswerTimeouts, Deadlines } from "../src/deadlines.js";

describe("deadlines", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it("calls each item at its moment or within the resolution after, never before", () => {
    const due: { item: string; at: number }[] = [];
    const deadlines = new Deadlines<string>((item) => due.push({ item, at: Date.now() }), 100);
    deadlines.add(1_000_250, "a");
    deadlines.add(1_000_250, "b");
    deadlines.add(1_003_000, "c");
    vi.advanceTimersByTime(249);
    expect(due).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(due.map((entry) => entry.item)).toEqual(["a", "b"]);
    for (const entry of due) expect(entry.at - 1_000_250).toBeGreaterThanOrEqual(0);
    for (const entry of due) expect(entry.at - 1_000_250).toBeLessThanOrEqual(100);
    vi.advanceTimersByTime(3000);
    expect(due.map((entry) => entry.item)).toEqual(["a", "b", "c"]);
  });

  it("forgets a removed item, and a moment already past comes at the next tick", () => {
    const due: string[] = [];
    const deadlines = new Deadlines<string>((item) => due.push(item), 100);
    const key = deadlines.add(1_000_500, "removed");
    deadlines.add(999_000, "late");
    deadlines.remove(key, "removed");
    vi.advanceTimersByTime(100);
    expect(due).toEqual(["late"]);
    vi.advanceTimersByTime(1000);
    expect(due).toEqual(["late"]);
  });

  it("stops its timer when nothing is left and starts it again for a new item", () => {
    const due: string[] = [];
    const deadlines = new Deadlines<string>((item) => due.push(item), 100);
    deadlines.add(1_000_100, "first");
    vi.advanceTimersByTime(200);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    deadlines.add(Date.now() + 300, "second");
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(400);
    expect(due).toEqual(["first", "second"]);
  });

  it("takes an item added while items are due in a later bucket", () => {
    const due: string[] = [];
    const deadlines: Deadlines<string> = new Deadlines<string>((item) => {
      due.push(item);
      if (item === "notice") deadlines.add(Date.now(), "expiry");
    }, 100);
    deadlines.add(1_000_100, "notice");
    vi.advanceTimersByTime(100);
    expect(due).toEqual(["notice"]);
    vi.advanceTimersByTime(100);
    expect(due).toEqual(["notice", "expiry"]);
  });

  it("sleeps until its earliest deadline instead of waking every resolution", () => {
    const due: string[] = [];
    const deadlines = new Deadlines<string>((item) => due.push(item), 100);
    deadlines.add(1_000_000 + 3_600_000, "in an hour");
    deadlines.add(1_000_000 + 10_000, "in ten seconds");
    // The next timer to fire is the earliest deadline's, not a tick 100 ms on.
    vi.advanceTimersToNextTimer();
    expect(Date.now()).toBe(1_010_000);
    expect(due).toEqual(["in ten seconds"]);
    vi.advanceTimersToNextTimer();
    expect(Date.now()).toBe(1_000_000 + 3_600_000);
    expect(due).toEqual(["in ten seconds", "in an hour"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("waits in steps for a deadline further away than a timer can wait (about 24.8 days)", () => {
    const due: string[] = [];
    const deadlines = new Deadlines<string>((item) => due.push(item), 100);
    const thirtyDays = 30 * 24 * 3_600_000;
    deadlines.add(1_000_000 + thirtyDays, "in thirty days");
    vi.advanceTimersByTime(thirtyDays - 1);
    expect(due).toEqual([]);
    vi.advanceTimersByTime(101);
    expect(due).toEqual(["in thirty days"]);
  });

  it("fires every item not removed exactly once, at its moment or within the resolution after, under any adds and removes", () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant("add" as const), offsetMs: fc.integer({ min: -500, max: 20_000 }) }),
      fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 300 }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
        vi.clearAllTimers();
        vi.setSystemTime(1_000_000);
        const fired = new Map<number, number[]>();
        const deadlines = new Deadlines<number>((item) => fired.set(item, [...(fired.get(item) ?? []), Date.now()]), 100);
        /** Each item's moment, and when it was added: a moment already past is due at once. */
        const wanted = new Map<number, { at: number; addedAt: number }>();
        const live: { item: number; key: number }[] = [];
        for (const [item, next] of steps.entries()) {
          if (next.kind === "add") {
            const at = Date.now() + next.offsetMs;
            live.push({ item, key: deadlines.add(at, item) });
            wanted.set(item, { at, addedAt: Date.now() });
          } else if (next.kind === "remove" && live.length > 0) {
            const [gone] = live.splice(next.pick % live.length, 1);
            if (gone && !fired.has(gone.item)) {
              deadlines.remove(gone.key, gone.item);
              wanted.delete(gone.item);
            }
          } else if (next.kind === "advance") {
            vi.advanceTimersByTime(next.ms);
          }
        }
        vi.advanceTimersByTime(30_000);
        expect(vi.getTimerCount()).toBe(0);
        for (const [item, { at, addedAt }] of wanted) {
          const times = fired.get(item) ?? [];
          expect(times, `item ${item}`).toHaveLength(1);
          expect(times[0], `item ${item}`).toBeGreaterThanOrEqual(at);
          expect(times[0], `item ${item}`).toBeLessThanOrEqual(Math.max(at, addedAt) + 100);
        }
        for (const item of fired.keys()) expect(wanted.has(item), `removed item ${item} fired`).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});

describe("answer timeouts", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  const failed = (err: unknown) => new Error(`failed: ${err instanceof Error ? err.message : String(err)}`);

  it("settles with the answer when it comes in time", async () => {
    const timeouts = new AnswerTimeouts(1000, () => new Error("timed out"));
    await expect(timeouts.within(() => Promise.resolve(7), failed)).resolves.toBe(7);
  });

  it("fails with the timeout's error once the time is up, never before", async () => {
    const timeouts = new AnswerTimeouts(1000, () => new Error("timed out"));
    let outcome: string | null = null;
    timeouts
      .within(() => new Promise<never>(() => {}), failed)
      .catch((err: Error) => {
        outcome = err.message;
      });
    await vi.advanceTimersByTimeAsync(999);
    expect(outcome).toBeNull();
    await vi.advanceTimersByTimeAsync(101);
    expect(outcome).toBe("timed out");
  });

  it("turns a failed answer, or an ask that throws, into the caller's error", async () => {
    const timeouts = new AnswerTimeouts(1000, () => new Error("timed out"));
    await expect(timeouts.within(() => Promise.reject(new Error("closed")), failed)).rejects.toThrow("failed: closed");
    await expect(
      timeouts.within(() => {
        throw new Error("not connected");
      }, failed),
    ).rejects.toThrow("failed: not connected");
  });
});

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadlines } from "../src/deadlines.js";

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
});

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { watchHeap } from "../src/servers/allocation.js";

describe("counting what the heap allocated", () => {
  it("counts garbage collected on the way, not only what is still held", () => {
    const heap = watchHeap();
    const allocated = () => heap().allocatedBytes;
    const start = allocated();
    // 40 MB in arrays of which only the last few are kept: the young generation is collected many times over.
    const kept: number[][] = [];
    for (let index = 0; index < 50_000; index++) {
      kept.push(new Array<number>(100).fill(index));
      if (kept.length > 100) kept.shift();
    }
    const counted = allocated() - start;
    // Each array holds 100 small integers (8 bytes each, plus headers): about 42 MB allocated, of which
    // about 85 KB is still held. The count can fall a few MB short of the total (38.6 MB in one run),
    // so the bound sits well below the total, and far above what is held.
    expect(counted).toBeGreaterThan(30e6);
    expect(counted).toBeLessThan(80e6);
    expect(kept).toHaveLength(100);
  });

  it("adds up across readings", () => {
    const heap = watchHeap();
    const allocated = () => heap().allocatedBytes;
    const first = allocated();
    const garbage = Array.from({ length: 10_000 }, (_, index) => ({ index, text: `item ${index}` }));
    const second = allocated();
    expect(garbage).toHaveLength(10_000);
    expect(second).toBeGreaterThan(first + 10_000 * 16);
    expect(allocated()).toBeGreaterThanOrEqual(second);
  });

  it("counts the JavaScript thread's time in collections, and the full collections apart", () => {
    const heap = watchHeap();
    const before = heap();
    setFlagsFromString("--expose-gc");
    const collectAll = runInNewContext("gc") as () => void;
    collectAll();
    collectAll();
    const after = heap();
    expect(after.fullCollections - before.fullCollections).toBeGreaterThanOrEqual(2);
    expect(after.gcPauseUs).toBeGreaterThan(before.gcPauseUs);
  });
});

import { GCProfiler, getHeapStatistics } from "node:v8";

/** What a node's V8 heap did since it started. */
export interface HeapActivity {
  /** What the heap allocated, garbage included (bytes). */
  allocatedBytes: number;
  /** Time the JavaScript thread spent in collections and incremental marking steps (µs). */
  gcPauseUs: number;
  /** Full (mark-compact) collections. */
  fullCollections: number;
}

/**
 * Watches the V8 heap through a GC profiler. What it allocated, garbage included, is what a path
 * costs in collections, which run partly on V8's own threads and so show up in CPU time only as
 * noise. V8 keeps no running total, but between two collections the used heap grows by what was
 * allocated, so the total is that growth summed over the collections the profiler reports. The
 * pauses and the full collections say where a collection owed to earlier work landed. Returns a
 * reader of the totals so far.
 */
export function watchHeap(): () => HeapActivity {
  const totals: HeapActivity = { allocatedBytes: 0, gcPauseUs: 0, fullCollections: 0 };
  let profiler = new GCProfiler();
  let baseline = getHeapStatistics().used_heap_size;
  profiler.start();
  return () => {
    let afterLast = baseline;
    for (const collection of profiler.stop().statistics) {
      totals.allocatedBytes += Math.max(0, collection.beforeGC.heapStatistics.usedHeapSize - afterLast);
      afterLast = collection.afterGC.heapStatistics.usedHeapSize;
      totals.gcPauseUs += collection.cost;
      if (collection.gcType === "MarkSweepCompact") totals.fullCollections++;
    }
    const now = getHeapStatistics().used_heap_size;
    totals.allocatedBytes += Math.max(0, now - afterLast);
    // Restarted at each reading, so that the profiler's list of collections stays short.
    profiler = new GCProfiler();
    baseline = now;
    profiler.start();
    return { ...totals };
  };
}

import { GCProfiler, getHeapStatistics } from "node:v8";

/**
 * Counts what the V8 heap allocated, garbage included: what a path costs in collections, which runs
 * partly on V8's own threads and so shows up in CPU time only as noise. V8 keeps no running total, but
 * between two collections the used heap grows by what was allocated, so the total is that growth
 * summed over the collections a GC profiler reports. Returns a reader of the total so far (bytes).
 */
export function countHeapAllocation(): () => number {
  let total = 0;
  let profiler = new GCProfiler();
  let baseline = getHeapStatistics().used_heap_size;
  profiler.start();
  return () => {
    let afterLast = baseline;
    for (const collection of profiler.stop().statistics) {
      total += Math.max(0, collection.beforeGC.heapStatistics.usedHeapSize - afterLast);
      afterLast = collection.afterGC.heapStatistics.usedHeapSize;
    }
    const now = getHeapStatistics().used_heap_size;
    total += Math.max(0, now - afterLast);
    // Restarted at each reading, so that the profiler's list of collections stays short.
    profiler = new GCProfiler();
    baseline = now;
    profiler.start();
    return total;
  };
}

/**
 * Moments for many sockets (a token's expiry and the notice before it) on one timer. A setTimeout
 * per socket costs a Timeout object each, and a timer list for every distinct duration; here a
 * deadline is a place in a set. Deadlines are kept in buckets of `resolutionMs`; one interval fires
 * each bucket once its time has come, so an item is due at its moment or up to `resolutionMs` after,
 * never before.
 */
export class Deadlines<T> {
  private readonly buckets = new Map<number, Set<T>>();
  private timer: NodeJS.Timeout | null = null;
  /** The last bucket fired. */
  private firedThrough = 0;

  constructor(
    private readonly onDue: (item: T) => void,
    private readonly resolutionMs = 100,
  ) {}

  /** Calls `onDue(item)` at `at` (ms since the epoch); returns the key to remove it with. */
  add(at: number, item: T): number {
    if (this.timer === null) {
      this.firedThrough = Math.floor(Date.now() / this.resolutionMs) - 1;
      this.timer = setInterval(() => this.tick(), this.resolutionMs);
      this.timer.unref();
    }
    const bucket = Math.max(Math.ceil(at / this.resolutionMs), this.firedThrough + 1);
    const items = this.buckets.get(bucket);
    if (items) items.add(item);
    else this.buckets.set(bucket, new Set([item]));
    return bucket;
  }

  remove(key: number, item: T): void {
    const items = this.buckets.get(key);
    if (!items?.delete(item)) return;
    if (items.size === 0) this.buckets.delete(key);
  }

  /** Forgets every deadline. */
  stop(): void {
    this.buckets.clear();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const now = Math.floor(Date.now() / this.resolutionMs);
    const from = this.firedThrough + 1;
    // Set first: whatever onDue adds lands in a later bucket.
    this.firedThrough = now;
    for (let bucket = from; bucket <= now; bucket++) {
      const items = this.buckets.get(bucket);
      if (!items) continue;
      this.buckets.delete(bucket);
      for (const item of items) this.onDue(item);
    }
    // An idle node does not wake up for nothing.
    if (this.buckets.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

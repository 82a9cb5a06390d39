/**
 * Moments for many items (a socket's token expiry, a publish waiting for Redis) on one timer. A
 * setTimeout per item costs a Timeout object each, and a timer list for every distinct duration;
 * here a deadline is a place in a set. Deadlines are kept in buckets of `resolutionMs`, and the one timer
 * is set for the earliest bucket, so an item is due at its moment or up to `resolutionMs` after,
 * never before, and a node whose next deadline is an hour away does not wake up until then.
 */
export class Deadlines<T> {
  private readonly buckets = new Map<number, Set<T>>();
  /** The buckets that hold items, earliest first: a binary heap, with each bucket's place in it. */
  private readonly order: number[] = [];
  private readonly placeOf = new Map<number, number>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** The bucket the timer is set for. */
  private timerBucket = Number.POSITIVE_INFINITY;
  /** The last bucket fired. */
  private firedThrough: number;

  /**
   * @param keepsAlive whether a pending deadline keeps a Node process running: a socket's token
   *   expiry need not, a caller awaiting a publish's answer or its timeout must
   */
  constructor(
    private readonly onDue: (item: T) => void,
    private readonly resolutionMs = 100,
    private readonly keepsAlive = false,
  ) {
    this.firedThrough = Math.floor(Date.now() / resolutionMs) - 1;
  }

  /** Calls `onDue(item)` at `at` (ms since the epoch); returns the key to remove it with. */
  add(at: number, item: T): number {
    const bucket = Math.max(Math.ceil(at / this.resolutionMs), this.firedThrough + 1);
    const items = this.buckets.get(bucket);
    if (items) {
      items.add(item);
      return bucket;
    }
    this.buckets.set(bucket, new Set([item]));
    this.push(bucket);
    if (bucket < this.timerBucket) this.schedule(bucket);
    return bucket;
  }

  remove(key: number, item: T): void {
    const items = this.buckets.get(key);
    if (!items?.delete(item)) return;
    if (items.size > 0) return;
    this.buckets.delete(key);
    this.pull(key);
    // A timer that keeps the process alive goes with the last deadline. Otherwise it is left as it
    // is: firing early with nothing due only sets it again.
    if (this.keepsAlive && this.buckets.size === 0) this.cancel();
  }

  /** Forgets every deadline. */
  stop(): void {
    this.buckets.clear();
    this.order.length = 0;
    this.placeOf.clear();
    this.cancel();
  }

  private tick(): void {
    this.timer = null;
    this.timerBucket = Number.POSITIVE_INFINITY;
    const now = Math.floor(Date.now() / this.resolutionMs);
    // Set first: whatever onDue adds lands in a later bucket.
    this.firedThrough = Math.max(this.firedThrough, now);
    for (let bucket = this.order[0]; bucket !== undefined && bucket <= now; bucket = this.order[0]) {
      const items = this.buckets.get(bucket);
      this.buckets.delete(bucket);
      this.pull(bucket);
      for (const item of items ?? []) this.onDue(item);
    }
    const next = this.order[0];
    if (next !== undefined && next < this.timerBucket) this.schedule(next);
  }

  private schedule(bucket: number): void {
    this.cancel();
    // setTimeout takes at most 2^31 - 1 ms; a later bucket is waited for in steps.
    const delayMs = Math.min(Math.max(0, bucket * this.resolutionMs - Date.now()), 2 ** 31 - 1);
    const timer = setTimeout(() => this.tick(), delayMs);
    // Browsers' timers have no unref.
    if (!this.keepsAlive && typeof timer === "object" && timer !== null && "unref" in timer) timer.unref();
    this.timer = timer;
    this.timerBucket = bucket;
  }

  private cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerBucket = Number.POSITIVE_INFINITY;
  }

  private push(bucket: number): void {
    this.order.push(bucket);
    this.placeOf.set(bucket, this.order.length - 1);
    this.siftUp(this.order.length - 1);
  }

  /** Takes a bucket out of the heap, wherever it is. */
  private pull(bucket: number): void {
    const place = this.placeOf.get(bucket);
    if (place === undefined) return;
    this.placeOf.delete(bucket);
    const last = this.order.pop() as number;
    if (place === this.order.length) return;
    this.order[place] = last;
    this.placeOf.set(last, place);
    this.siftDown(this.siftUp(place));
  }

  private siftUp(place: number): number {
    const bucket = this.order[place] as number;
    while (place > 0) {
      const parent = (place - 1) >> 1;
      const above = this.order[parent] as number;
      if (above <= bucket) break;
      this.order[place] = above;
      this.placeOf.set(above, place);
      place = parent;
    }
    this.order[place] = bucket;
    this.placeOf.set(bucket, place);
    return place;
  }

  private siftDown(place: number): void {
    const bucket = this.order[place] as number;
    const size = this.order.length;
    for (;;) {
      let child = 2 * place + 1;
      if (child >= size) break;
      const right = child + 1;
      if (right < size && (this.order[right] as number) < (this.order[child] as number)) child = right;
      const below = this.order[child] as number;
      if (below >= bucket) break;
      this.order[place] = below;
      this.placeOf.set(below, place);
      place = child;
    }
    this.order[place] = bucket;
    this.placeOf.set(bucket, place);
  }
}

/**
 * Answers awaited with a time limit, all on one timer: a node or a service may have thousands of
 * publishes in flight, and a timer and a race per publish cost more than the publish.
 */
export class AnswerTimeouts {
  private readonly deadlines: Deadlines<(err: Error) => void>;

  /**
   * @param timedOut the error an answer that did not come within `timeoutMs` fails with
   * @param keepsAlive as for Deadlines: whether a pending answer keeps a Node process running
   */
  constructor(
    private readonly timeoutMs: number,
    timedOut: () => Error,
    keepsAlive = false,
  ) {
    this.deadlines = new Deadlines((reject) => reject(timedOut()), 100, keepsAlive);
  }

  /**
   * Settles as the answer `ask()` promises, or with the timeout's error when it has not come in
   * time (at `timeoutMs`, or up to 100 ms after). A failure, or `ask` throwing, is turned into
   * the error `failed` makes of it.
   */
  within<T>(ask: () => Promise<T>, failed: (err: unknown) => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const key = this.deadlines.add(Date.now() + this.timeoutMs, reject);
      const onFailure = (err: unknown) => {
        this.deadlines.remove(key, reject);
        reject(failed(err));
      };
      let answer: Promise<T>;
      try {
        answer = ask();
      } catch (err) {
        onFailure(err);
        return;
      }
      answer.then((value) => {
        this.deadlines.remove(key, reject);
        resolve(value);
      }, onFailure);
    });
  }
}

/**
 * Calls queued during one turn of the event loop, made together by one `setImmediate` once the
 * turn's other work (ticks, promises, the rest of its I/O callbacks) has run. A connect storm queues
 * hundreds a turn: one immediate for all of them costs none of the timers and closures that one each
 * would, and the same code run for each in a row finds itself and its data still in the processor's
 * caches, where run between everything else a connection needs it does not. Each call's three
 * arguments are kept in parallel lists, so queueing one allocates nothing of its own. Given
 * `queueMicrotask` instead, the calls are made as soon as the code that queued them has returned.
 */
export class TurnQueue<A, B, C> {
  private readonly firsts: A[] = [];
  private readonly seconds: B[] = [];
  private readonly thirds: C[] = [];
  private scheduled = false;

  /**
   * @param call made for each queued call, in the order they were queued
   * @param schedule how the run is scheduled (tests step it by hand)
   */
  constructor(
    private readonly call: (first: A, second: B, third: C) => void,
    private readonly schedule: (run: () => void) => void = setImmediate,
  ) {}

  add(first: A, second: B, third: C): void {
    this.firsts.push(first);
    this.seconds.push(second);
    this.thirds.push(third);
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(this.runQueued);
  }

  /**
   * Makes the calls queued so far; those queued while they run wait for the next turn, as they would
   * have on their own. One call's failure does not keep the others from being made: the first is
   * raised once all of them were.
   */
  private readonly runQueued = (): void => {
    this.scheduled = false;
    const count = this.firsts.length;
    let failed = false;
    let failure: unknown;
    for (let index = 0; index < count; index++) {
      try {
        this.call(this.firsts[index] as A, this.seconds[index] as B, this.thirds[index] as C);
      } catch (err) {
        if (!failed) failure = err;
        failed = true;
      }
    }
    this.firsts.splice(0, count);
    this.seconds.splice(0, count);
    this.thirds.splice(0, count);
    if (failed) throw failure;
  };
}

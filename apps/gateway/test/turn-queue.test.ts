import { describe, expect, it } from "vitest";
import { TurnQueue } from "../src/turn-queue.js";

/** A queue whose runs are stepped by hand: `runs` holds each run it asked for, not yet made. */
function steppedQueue() {
  const calls: string[] = [];
  const runs: (() => void)[] = [];
  const queue = new TurnQueue<string, number, boolean>(
    (name, count, fail) => {
      calls.push(`${name}:${count}`);
      if (name === "again") queue.add("later", count + 1, false);
      if (fail) throw new Error(`${name} failed`);
    },
    (run) => runs.push(run),
  );
  return { queue, calls, runs };
}

describe("calls queued in one turn", () => {
  it("are made together, in the order they came, by one run", () => {
    const { queue, calls, runs } = steppedQueue();
    queue.add("a", 1, false);
    queue.add("b", 2, false);
    queue.add("c", 3, false);
    expect(calls).toEqual([]);
    expect(runs).toHaveLength(1);
    runs.shift()?.();
    expect(calls).toEqual(["a:1", "b:2", "c:3"]);
    // Nothing left to run: a new call asks for a new run.
    queue.add("d", 4, false);
    expect(runs).toHaveLength(1);
    runs.shift()?.();
    expect(calls).toEqual(["a:1", "b:2", "c:3", "d:4"]);
  });

  it("leave a call queued while they run to the next run", () => {
    const { queue, calls, runs } = steppedQueue();
    queue.add("again", 1, false);
    queue.add("b", 5, false);
    runs.shift()?.();
    expect(calls).toEqual(["again:1", "b:5"]);
    expect(runs).toHaveLength(1);
    runs.shift()?.();
    expect(calls).toEqual(["again:1", "b:5", "later:2"]);
    expect(runs).toHaveLength(0);
  });

  it("are all made when one fails, and the first failure is raised after them", () => {
    const { queue, calls, runs } = steppedQueue();
    queue.add("a", 1, true);
    queue.add("b", 2, true);
    queue.add("c", 3, false);
    expect(() => runs.shift()?.()).toThrow("a failed");
    expect(calls).toEqual(["a:1", "b:2", "c:3"]);
    // The failed calls are not made again.
    queue.add("d", 4, false);
    runs.shift()?.();
    expect(calls).toEqual(["a:1", "b:2", "c:3", "d:4"]);
  });

  it("runs on its own after the turn's other work, with setImmediate", async () => {
    const order: string[] = [];
    const queue = new TurnQueue<string, null, null>((name) => order.push(name));
    queue.add("queued", null, null);
    process.nextTick(() => order.push("tick"));
    await Promise.resolve().then(() => order.push("promise"));
    order.push("synchronous");
    await new Promise((resolve) => setImmediate(resolve));
    // The call waited for the tick and the promise queued after it, and for the code that followed.
    expect(order).toHaveLength(4);
    expect(order.at(-1)).toBe("queued");
  });
});

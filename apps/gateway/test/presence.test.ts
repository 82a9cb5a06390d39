import type { Identity } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import { describe, expect, it } from "vitest";
import type { PresenceShare } from "../src/connection.js";
import { PresenceTracker } from "../src/presence.js";
import { createMemoryState } from "../src/state-memory.js";
import type { SharedState } from "../src/state.js";

const silent = { info() {}, warn() {}, error() {}, debug() {} } as unknown as FastifyBaseLogger;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Node a's tracker on `state`, with `shares` as its sockets, writing changes 10 ms after the first; `failed` counts its failed writes. */
function trackerOn(state: SharedState, shares: PresenceShare[], failed = { count: 0 }): PresenceTracker {
  return new PresenceTracker("node-a", {
    state,
    logger: silent,
    info: () => ({ node: "node-a", version: "test", startedAt: 0, sockets: shares.length }),
    shares: () => shares,
    onCrossings: () => {},
    reportCrossings: false,
    ready: () => true,
    writeFailed: () => failed.count++,
    countSockets: true,
    flushMs: 10,
    heartbeatMs: 60_000,
    nodeTtlMs: 180_000,
  });
}

/** A node's tracker on the in-memory state, whose take-back waits until `release` is called. */
function trackerWithHeldTakeBack(shares: PresenceShare[]) {
  const state = createMemoryState();
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const holding: SharedState = {
    ...state,
    takeBackNode: async (node) => {
      await held;
      return state.takeBackNode(node);
    },
  };
  return { state, tracker: trackerOn(holding, shares), release: () => release() };
}

describe("presence written again in full", () => {
  it("writes the node's sockets as they are once the take-back is done, and counts one admitted meanwhile once", async () => {
    const early: Identity = { user: "early", site: "a.example" };
    const shares: PresenceShare[] = [{ identity: early, rooms: ["topic(x)"] }];
    const { state, tracker, release } = trackerWithHeldTakeBack(shares);
    tracker.start();
    tracker.resync();
    await sleep(5);
    // A socket arrives while the take-back is still under way.
    const late: Identity = { user: "late", site: "a.example" };
    shares.push({ identity: late, rooms: [] });
    tracker.socketAdmitted(late);
    release();
    // The whole share, then several batches of changes.
    await sleep(100);
    expect(await state.userPresence("early")).toEqual({ online: true, sockets: 1, nodes: [{ node: "node-a", sockets: 1 }] });
    expect(await state.userPresence("late")).toEqual({ online: true, sockets: 1, nodes: [{ node: "node-a", sockets: 1 }] });
    expect(await state.roomCount("topic(x)")).toEqual({ sockets: 1, users: 1 });
    expect(await state.roomCount("site(a.example)")).toEqual({ sockets: 2, users: 2 });
    await tracker.stop();
  });

  it("forgets a socket that left while the take-back ran", async () => {
    const leaving: Identity = { user: "leaving", site: null };
    const shares: PresenceShare[] = [{ identity: leaving, rooms: [] }];
    const { state, tracker, release } = trackerWithHeldTakeBack(shares);
    tracker.start();
    tracker.resync();
    await sleep(5);
    shares.pop();
    tracker.socketLeft(leaving, []);
    release();
    await sleep(100);
    expect(await state.userPresence("leaving")).toEqual({ online: false, sockets: 0, nodes: [] });
    await tracker.stop();
  });
});

describe("presence batches", () => {
  /** A tracker on the in-memory state that counts its writes and fails the next `failures` of them. */
  function countingTracker() {
    const state = createMemoryState();
    const counts = { writes: 0, failures: 0 };
    const counting: SharedState = {
      ...state,
      applyPresence: async (node, deltas, reportCrossings) => {
        counts.writes++;
        if (counts.failures > 0) {
          counts.failures--;
          throw new Error("connection lost mid-write");
        }
        return state.applyPresence(node, deltas, reportCrossings);
      },
    };
    const shares: PresenceShare[] = [];
    return { state, counts, shares, tracker: trackerOn(counting, shares) };
  }

  it("writes a burst of changes in one batch, and nothing while the node's sockets stay put", async () => {
    const { state, counts, shares, tracker } = countingTracker();
    tracker.start();
    await sleep(40);
    const startWrites = counts.writes;
    for (let index = 0; index < 50; index++) {
      const identity: Identity = { user: `u${index}`, site: "a.example" };
      shares.push({ identity, rooms: [] });
      tracker.socketAdmitted(identity);
    }
    await sleep(60);
    expect(counts.writes - startWrites).toBe(1);
    expect(await state.roomCount("site(a.example)")).toEqual({ sockets: 50, users: 50 });
    const settledWrites = counts.writes;
    await sleep(100);
    expect(counts.writes).toBe(settledWrites);
    await tracker.stop();
  });

  it("writes the whole share again after a write failed, with no further change to prompt it", async () => {
    const { state, counts, shares, tracker } = countingTracker();
    tracker.start();
    await sleep(40);
    const identity: Identity = { user: "only", site: null };
    shares.push({ identity, rooms: ["topic(y)"] });
    counts.failures = 1;
    tracker.socketAdmitted(identity);
    tracker.roomJoined(identity, "topic(y)");
    await sleep(100);
    expect(counts.failures).toBe(0);
    expect(await state.userPresence("only")).toEqual({ online: true, sockets: 1, nodes: [{ node: "node-a", sockets: 1 }] });
    expect(await state.roomCount("topic(y)")).toEqual({ sockets: 1, users: 1 });
    await tracker.stop();
  });
});

describe("presence that Redis keeps refusing", () => {
  it("waits twice as long after each failed write, rather than rewriting every socket's presence every flush, and writes it once Redis takes it", async () => {
    const state = createMemoryState();
    let refusing = true;
    let attempts = 0;
    const refusingState: SharedState = {
      ...state,
      applyPresence: async (node, deltas, report) => {
        attempts++;
        if (refusing) throw new Error("OOM command not allowed when used memory > 'maxmemory'");
        return state.applyPresence(node, deltas, report);
      },
    };
    const identity: Identity = { user: "refused", site: null };
    const failed = { count: 0 };
    const tracker = trackerOn(refusingState, [{ identity, rooms: [] }], failed);
    tracker.start();
    tracker.resync();
    // Flushes 10 ms apart would make about 80 attempts in this time; doubling waits (20, 40, 80, 160, 320 ms) make 5 or 6.
    await sleep(800);
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(8);
    // Each failure is counted for switchboard_presence_write_failures_total.
    expect(failed.count).toBe(attempts);
    refusing = false;
    await waitUntil(async () => (await state.userPresence("refused")).online);
    expect(await state.userPresence("refused")).toEqual({ online: true, sockets: 1, nodes: [{ node: "node-a", sockets: 1 }] });
    await tracker.stop();
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(20);
  }
}

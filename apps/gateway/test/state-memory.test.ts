import { afterEach, describe, expect, it, vi } from "vitest";
import { ExpiringKeys, createMemoryState } from "../src/state-memory.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("the single node's keys with a time to live", () => {
  it("forgets expired keys without their being read again, so a stream of short-lived keys holds a bounded count", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const keys = new ExpiringKeys();
    let most = 0;
    for (let round = 0; round < 100; round++) {
      for (let index = 0; index < 1000; index++) keys.set(`k${round}-${index}`, "v", 1000);
      most = Math.max(most, keys.size);
      vi.setSystemTime(Date.now() + 1001);
    }
    // 100,000 keys went in, each expired a second later: at most the last few thousand are held.
    expect(most).toBeLessThan(4200);
    keys.set("lasting", "kept", 3_600_000);
    expect(keys.live()).toEqual([["lasting", "kept", Date.now() + 3_600_000]]);
  });

  it("loads only the revocations that have not expired", async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const state = createMemoryState();
    await state.setKey("switchboard:revoked:jti:short", "100", 1000);
    await state.setKey("switchboard:revoked:jti:long", "200", 60_000);
    await state.setKey("switchboard:revoked:user:42", "300", 60_000);
    vi.setSystemTime(Date.now() + 2000);
    const revocations = await state.loadRevocations();
    expect([...revocations.tokens]).toEqual([["long", 200]]);
    expect([...revocations.users]).toEqual([["42", { before: 300, until: Date.now() + 58_000 }]]);
  });
});

import { describe, expect, it } from "vitest";
import { newMessageId } from "../src/index.js";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("newMessageId", () => {
  it("makes random UUIDs, each distinct, across many refills of its random bytes", () => {
    // 256 ids a fill: 5,000 ids take the bytes of twenty fills, and the first ids after each refill.
    const ids = Array.from({ length: 5000 }, () => newMessageId());
    for (const id of ids) expect(id).toMatch(UUID_V4);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("keeps an id it handed out as it was, whatever ids follow", () => {
    const first = newMessageId();
    const copy = `${first}`;
    for (let count = 0; count < 600; count++) newMessageId();
    expect(first).toBe(copy);
  });

  it("spreads its random hex digits evenly", () => {
    // Every digit that is not fixed by the version or the variant should appear about equally often.
    const counts = new Map<string, number>();
    const samples = 4000;
    for (let count = 0; count < samples; count++) {
      const digits = newMessageId().replaceAll("-", "");
      for (let at = 0; at < 32; at++) {
        if (at === 12 || at === 16) continue;
        counts.set(digits[at] as string, (counts.get(digits[at] as string) ?? 0) + 1);
      }
    }
    const expected = (samples * 30) / 16;
    expect(counts.size).toBe(16);
    for (const seen of counts.values()) expect(Math.abs(seen - expected) / expected).toBeLessThan(0.05);
    // The variant digit takes only 8, 9, a and b, each about a quarter of the time.
    const variants = new Map<string, number>();
    for (let count = 0; count < samples; count++) {
      const variant = newMessageId()[19] as string;
      variants.set(variant, (variants.get(variant) ?? 0) + 1);
    }
    expect([...variants.keys()].sort()).toEqual(["8", "9", "a", "b"]);
    for (const seen of variants.values()) expect(Math.abs(seen - samples / 4) / (samples / 4)).toBeLessThan(0.15);
  });
});

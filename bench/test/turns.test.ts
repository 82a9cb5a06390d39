import { describe, expect, it } from "vitest";
import { turnsOf } from "../src/turns.js";

/** Every turn of `batches` batches, one after the other. */
const sequence = <T>(takers: readonly T[], round: number, batches: number) =>
  Array.from({ length: batches }, (_, batch) => turnsOf(takers, round)(batch)).flat();

/** How often each taker takes a turn straight after its own. */
const repeats = (turns: readonly string[]) => {
  const counts = new Map<string, number>();
  for (let index = 1; index < turns.length; index++)
    if (turns[index] === turns[index - 1]) counts.set(turns[index]!, (counts.get(turns[index]!) ?? 0) + 1);
  return counts;
};

describe("the turns of the scenarios taking turns", () => {
  it("with three takers, never gives one two turns in a row", () => {
    for (const round of [1, 2, 3, 4, 5]) expect(repeats(sequence(["plain", "ours", "ours-presence-0"], round, 8)).size).toBe(0);
  });

  it("puts every taker in every place, each about as often as the others", () => {
    const takers = ["plain", "ours", "ours-presence-0"];
    for (let place = 0; place < takers.length; place++) {
      const counts = new Map(takers.map((taker) => [taker, 0]));
      for (const round of [1, 2, 3, 4, 5])
        for (let batch = 0; batch < 8; batch++) {
          const taker = turnsOf(takers, round)(batch)[place]!;
          counts.set(taker, counts.get(taker)! + 1);
        }
      // 40 batches over 3 takers: 13 or 14 each in every place.
      for (const count of counts.values()) expect(count).toBeGreaterThanOrEqual(13);
    }
  });

  it("with two takers, gives each two turns in a row as often as the other", () => {
    for (const round of [1, 2]) {
      const counts = repeats(sequence(["plain", "ours"], round, 8));
      expect(Math.abs((counts.get("plain") ?? 0) - (counts.get("ours") ?? 0))).toBeLessThanOrEqual(1);
    }
  });
});

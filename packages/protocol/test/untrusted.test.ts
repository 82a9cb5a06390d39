import { describe, expect, it } from "vitest";
import { nestsDeeperThan, preview } from "../src/index.js";

/** `[[[…]]]` nested `depth` levels, built without recursion. */
function nested(depth: number): unknown {
  let value: unknown = 0;
  for (let level = 0; level < depth; level++) value = [value];
  return value;
}

describe("preview of an unchecked value", () => {
  it("quotes short strings and cuts long ones, naming their length", () => {
    expect(preview("room")).toBe('"room"');
    const long = preview("x".repeat(900_000));
    expect(long.length).toBeLessThan(120);
    expect(long).toContain("900000 characters");
  });

  it("describes containers without expanding them, however deep", () => {
    expect(preview(nested(100_000))).toBe("an array of 1 item");
    expect(preview({ a: 1 })).toBe("an object");
    expect(preview(new Uint8Array(5))).toBe("5 bytes of binary data");
    expect(preview(null)).toBe("null");
    expect(preview(42)).toBe("42");
  });
});

describe("nesting depth", () => {
  it("counts objects and arrays, not scalars", () => {
    expect(nestsDeeperThan("flat", 0)).toBe(false);
    expect(nestsDeeperThan([1], 0)).toBe(true);
    expect(nestsDeeperThan([1], 1)).toBe(false);
    expect(nestsDeeperThan({ a: [{ b: 1 }] }, 2)).toBe(true);
    expect(nestsDeeperThan({ a: [{ b: 1 }] }, 3)).toBe(false);
  });

  it("answers for 1,000,000 levels without overflowing the stack", () => {
    expect(nestsDeeperThan(nested(1_000_000), 32)).toBe(true);
    expect(nestsDeeperThan(nested(32), 32)).toBe(false);
  });

  it("does not walk into binary data", () => {
    expect(nestsDeeperThan({ blob: new Uint8Array(1000) }, 1)).toBe(false);
  });

  it("answers each value on its own: a walk that stopped early leaves nothing for the next", () => {
    // The walk stops inside the second item, with the first still to visit.
    expect(nestsDeeperThan([nested(5), nested(10)], 8)).toBe(true);
    expect(nestsDeeperThan([], 2)).toBe(false);
    expect(nestsDeeperThan({ a: nested(5), b: nested(10) }, 8)).toBe(true);
    expect(nestsDeeperThan({}, 2)).toBe(false);
  });

  it("counts only an object's own properties", () => {
    const inherited = Object.create({ deep: nested(10) }) as Record<string, unknown>;
    inherited.flat = 1;
    expect(nestsDeeperThan(inherited, 2)).toBe(false);
    expect(nestsDeeperThan(Object.assign(Object.create(null) as object, { deep: nested(3) }), 3)).toBe(true);
  });
});

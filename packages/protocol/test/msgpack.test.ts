import { decode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { pack, packWith } from "../src/index.js";

describe("packWith", () => {
  it("hands over the same bytes pack makes, and a copy taken from them outlives the next encoding", () => {
    const first = { room: "user(1)", data: { text: "first" } };
    const copy = packWith(first, (bytes) => Uint8Array.from(bytes));
    expect(copy).toEqual(pack(first));
    // The shared buffer is overwritten by the next encoding; the copy is not.
    packWith({ room: "user(2)", data: { text: "second, and longer than the first" } }, (bytes) => bytes.length);
    expect(decode(copy)).toEqual(first);
  });

  it("leaves undefined out, as pack does", () => {
    expect(packWith({ a: 1, b: undefined }, (bytes) => decode(bytes))).toEqual({ a: 1 });
  });
});

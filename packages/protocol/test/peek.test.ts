import { ExtData, encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeMsgpack, isWholeMsgpackValue, peekFrameRooms } from "../src/index.js";

/** What a full decode says the frame's `room` rooms are, when a peek may say it too; else null. */
function roomsByDecoding(bytes: Uint8Array): string[] | null {
  const decoded = decodeMsgpack(bytes);
  if (!decoded.ok) return null;
  const value = decoded.value;
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Uint8Array) return null;
  const frame = value as Record<string, unknown>;
  if ("_in" in frame || !("room" in frame)) return null;
  if (typeof frame.room === "string") return [frame.room];
  if (Array.isArray(frame.room) && frame.room.every((room) => typeof room === "string")) return frame.room as string[];
  return null;
}

const anyValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.string({ unit: "grapheme", maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }),
    // Timestamps (fixext 4 and 8, ext 8) and extensions of every size (fixext 1–16, ext 8).
    fc.date({ noInvalidDate: true }),
    fc.tuple(fc.integer({ min: 0, max: 127 }), fc.uint8Array({ maxLength: 40 })).map(([type, data]) => new ExtData(type, data)),
    fc.array(tie("value"), { maxLength: 20 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("value"), { maxKeys: 20 }),
  ),
})).value;

const roomField = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.array(fc.string({ unit: "grapheme", maxLength: 40 }), { maxLength: 40 }),
  anyValue,
);

const frameLike = fc.record(
  { room: roomField, event: anyValue, data: anyValue, except: anyValue, _in: anyValue, user: anyValue, other: anyValue },
  { requiredKeys: [] },
);

describe("peeking at a raw frame's rooms", () => {
  it("reads room as a string or a list, and the frame's other values are stepped over", () => {
    expect(peekFrameRooms(encode({ room: "user(1)", event: "e", data: { deep: [1, [2, [3]], { x: new Uint8Array(300) }] } }))).toEqual([
      "user(1)",
    ]);
    expect(peekFrameRooms(encode({ data: "x".repeat(70_000), room: ["a", "b"] }))).toEqual(["a", "b"]);
    expect(peekFrameRooms(encode({ room: "é(ü)", data: 2 ** 40 }))).toEqual(["é(ü)"]);
  });

  it("reads rooms of every length exactly, ASCII or not, one frame after another", () => {
    for (let length = 0; length <= 200; length++) {
      // Two rooms of the same length in a row, then one that differs in its last character only.
      const room = "r".repeat(length);
      const other = "s".repeat(length);
      expect(peekFrameRooms(encode({ room, data: 1 }))).toEqual([room]);
      expect(peekFrameRooms(encode({ room: [other, room], data: 1 }))).toEqual([other, room]);
      if (length > 0) {
        const changed = `${room.slice(0, -1)}\u007f`;
        expect(peekFrameRooms(encode({ room: changed, data: 1 }))).toEqual([changed]);
        const accented = `${room.slice(0, -1)}é`;
        expect(peekFrameRooms(encode({ room: [accented, room], data: 1 }))).toEqual([accented, room]);
      }
    }
    // Bytes that are not UTF-8 are left to the full decode.
    expect(
      peekFrameRooms(new Uint8Array([0x82, 0xa4, 0x72, 0x6f, 0x6f, 0x6d, 0xa2, 0x61, 0xff, 0xa4, 0x64, 0x61, 0x74, 0x61, 0x01])),
    ).toBeNull();
  });

  it("leaves to the full decode what it cannot be sure of", () => {
    expect(peekFrameRooms(encode({ room: "a", _in: "b", data: 1 }))).toBeNull();
    expect(peekFrameRooms(encode({ event: "routed", user: 1, data: 1 }))).toBeNull();
    expect(peekFrameRooms(encode([{ type: 2, data: ["e"] }, { rooms: ["a"] }]))).toBeNull();
    expect(peekFrameRooms(encode({ room: 5, data: 1 }))).toBeNull();
    expect(peekFrameRooms(new Uint8Array([...encode({ room: "a", data: 1 }), 0x00]))).toBeNull();
    expect(peekFrameRooms(new Uint8Array([0x81, 0xa4, 0x72, 0x6f, 0x6f, 0x6d]))).toBeNull();
    expect(
      peekFrameRooms(new Uint8Array([0x82, 0xa4, 0x72, 0x6f, 0x6f, 0x6d, 0xa1, 0x61, 0xa4, 0x72, 0x6f, 0x6f, 0x6d, 0xa1, 0x62])),
    ).toBeNull();
    // A map32 header claiming four billion entries, in six bytes.
    expect(peekFrameRooms(new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]))).toBeNull();
    expect(peekFrameRooms(new Uint8Array([]))).toBeNull();
  });

  it("agrees with the full decode on any map frame (seeded property test)", () => {
    fc.assert(
      fc.property(frameLike, (frame) => {
        const bytes = encode(frame, { useBigInt64: true });
        const peeked = peekFrameRooms(bytes);
        // A peek that answers must answer what decoding says; one that does not leaves it to decoding.
        if (peeked !== null) expect(peeked).toEqual(roomsByDecoding(bytes));
        else if (
          !("_in" in frame) &&
          "room" in frame &&
          (typeof frame.room === "string" || (Array.isArray(frame.room) && frame.room.every((room) => typeof room === "string")))
        ) {
          throw new Error(`a frame with a plain room list was not read: ${JSON.stringify(Object.keys(frame))}`);
        }
      }),
      { seed: 20261125, numRuns: 3000 },
    );
  });

  it("never throws on arbitrary bytes, and where they decode, answers only what decoding says", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const peeked = peekFrameRooms(bytes);
        // Bytes that do not decode are dropped by the nodes that hold their rooms: what matters is
        // that no frame which would be delivered is read with other rooms than it has.
        if (peeked !== null && decodeMsgpack(bytes).ok) expect(peeked).toEqual(roomsByDecoding(bytes));
      }),
      { seed: 20261125, numRuns: 20_000 },
    );
  });
});

describe("a peek that answers has read the whole frame", () => {
  it("answers only for bytes that are one whole MessagePack value, so the node decoding them can skip that check", () => {
    const roomed = fc.record(
      { room: fc.string({ unit: "grapheme", maxLength: 40 }), event: anyValue, data: anyValue, except: anyValue, other: anyValue },
      { requiredKeys: ["room"] },
    );
    fc.assert(
      fc.property(roomed, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (frame, at, byte, truncate) => {
        const bytes = encode(frame, { useBigInt64: true });
        const position = at % bytes.length;
        // A frame cut short, or with one byte changed: a length or count may now claim more than is there.
        const damaged = truncate ? bytes.subarray(0, position) : bytes.slice();
        if (!truncate) damaged[position] = byte;
        if (peekFrameRooms(damaged) !== null) expect(isWholeMsgpackValue(damaged)).toBe(true);
        expect(peekFrameRooms(bytes)).not.toBeNull();
      }),
      { seed: 20261206, numRuns: 2000 },
    );
  }, 30_000);
});

describe("checking that bytes are one whole MessagePack value", () => {
  it("accepts any encoded value, and refuses headers that claim more than the bytes hold", () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        expect(isWholeMsgpackValue(encode(value, { useBigInt64: true }))).toBe(true);
      }),
      { seed: 20261205, numRuns: 2000 },
    );
    // An array of eight whose first item is an extension of type 0 claiming about a gigabyte, in ten bytes.
    expect(isWholeMsgpackValue(Buffer.from("98c93e57ffa3003e12f5", "hex"))).toBe(false);
    expect(isWholeMsgpackValue(new Uint8Array([0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00]))).toBe(false);
    expect(isWholeMsgpackValue(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]))).toBe(false);
    expect(isWholeMsgpackValue(new Uint8Array([0xc0, 0xc0]))).toBe(false);
    expect(isWholeMsgpackValue(new Uint8Array([0xc1]))).toBe(false);
    expect(isWholeMsgpackValue(new Uint8Array([]))).toBe(false);
  });

  it("never throws on arbitrary bytes and accepts every byte string that decodes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const whole = isWholeMsgpackValue(bytes);
        if (decodeMsgpack(bytes).ok) expect(whole).toBe(true);
      }),
      { seed: 20261205, numRuns: 20_000 },
    );
  });
});

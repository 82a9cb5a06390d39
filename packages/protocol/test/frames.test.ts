import { decode, encode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { NOT_WHOLE_MSGPACK, decodeMsgpack, decodeRawFrame, encodeRawFrame } from "../src/index.js";

describe("raw frame codec", () => {
  it("round-trips a map frame with defaults filled in", () => {
    const bytes = encodeRawFrame({ room: "user(1)", data: { text: "hi" } });
    const wire = decode(bytes) as Record<string, unknown>;
    expect(wire.event).toBe("message");
    expect(typeof wire.id).toBe("string");
    expect(typeof wire.ts).toBe("number");
    const result = decodeRawFrame(bytes);
    expect(result).toMatchObject({
      ok: true,
      delivery: { rooms: ["user(1)"], except: [], event: "message", args: [{ text: "hi" }], layout: "map" },
    });
  });

  it("accepts a room list and except rooms", () => {
    const bytes = encode({ room: ["site(a.com)", "user(2)"], except: "user(3)", event: "news", data: [1, 2] });
    expect(decodeRawFrame(bytes)).toMatchObject({
      ok: true,
      delivery: { rooms: ["site(a.com)", "user(2)"], except: ["user(3)"], event: "news", args: [[1, 2]] },
    });
  });

  it("decodes the array layout of the first socket.io-emitter releases", () => {
    const bytes = encode([
      { type: 2, data: ["chat", "a", 1], nsp: "/" },
      { rooms: ["user(1)"], flags: {} },
    ]);
    expect(decodeRawFrame(bytes)).toMatchObject({
      ok: true,
      delivery: { rooms: ["user(1)"], event: "chat", args: ["a", 1], layout: "array" },
    });
  });

  it("reads an array frame without rooms as addressed to everyone", () => {
    const bytes = encode([{ type: 2, data: ["chat", "all"], nsp: "/" }, { flags: {} }]);
    expect(decodeRawFrame(bytes)).toMatchObject({ ok: true, delivery: { rooms: [], event: "chat", args: ["all"] } });
  });

  it("decodes the uid-prefixed array layout", () => {
    const bytes = encode(["php-emitter", { type: 2, data: ["chat", 1], nsp: "/" }, { rooms: ["site(x.org)"], except: [] }]);
    expect(decodeRawFrame(bytes)).toMatchObject({ ok: true, delivery: { rooms: ["site(x.org)"], args: [1] } });
  });

  it("reports bytes that are not MessagePack", () => {
    expect(decodeRawFrame(new TextEncoder().encode("\xc1garbage"))).toMatchObject({ ok: false, code: "frame_not_msgpack" });
    expect(decodeRawFrame(Uint8Array.of(0x92, 0x01))).toMatchObject({ ok: false, code: "frame_not_msgpack" });
  });

  it.each([
    ["a room given as a number", { room: 42, data: 1 }],
    ["an empty room list", { room: [], data: 1 }],
    ["a missing data key", { room: "user(1)" }],
    ["a reserved event", { room: "user(1)", data: 1, event: "disconnect" }],
    ["an empty event", { room: "user(1)", data: 1, event: "" }],
    ["except as a number", { room: "user(1)", data: 1, except: 5 }],
    ["a number", 17],
    ["an array frame of another namespace", [{ type: 2, data: ["x"], nsp: "/admin" }, { rooms: [] }]],
    ["an array frame with rooms as a string", [{ type: 2, data: ["x"], nsp: "/" }, { rooms: "user(1)" }]],
    ["an array frame that is not an event", [{ type: 0, nsp: "/" }, {}]],
    ["an array frame whose event is not a string", ["uid", { type: 2, data: [7], nsp: "/" }, {}]],
  ])("rejects %s as frame_invalid", (_name, value) => {
    expect(decodeRawFrame(encode(value))).toMatchObject({ ok: false, code: "frame_invalid" });
  });

  it("refuses to encode frames the gateway would drop, with a stable code", () => {
    expect(() => encodeRawFrame({ room: "", data: 1 })).toThrow(expect.objectContaining({ code: "invalid_room" }));
    expect(() => encodeRawFrame({ room: "user(1)", data: 1, event: "connect" })).toThrow(
      expect.objectContaining({ code: "invalid_event" }),
    );
  });
});

describe("frame limits", () => {
  const deep = (levels: number) => {
    let value: unknown = "leaf";
    for (let level = 0; level < levels; level++) value = { next: value };
    return value;
  };

  it("refuses data nested deeper than the limit in both layouts, and accepts it at the limit", () => {
    expect(decodeRawFrame(encode({ room: "user(1)", data: deep(32) }))).toMatchObject({ ok: true });
    expect(decodeRawFrame(encode({ room: "user(1)", data: deep(33) }))).toMatchObject({
      ok: false,
      code: "frame_invalid",
      reason: expect.stringContaining("nested deeper"),
    });
    expect(decodeRawFrame(encode([{ type: 2, data: ["e", deep(33)], nsp: "/" }, { rooms: ["user(1)"] }]))).toMatchObject({
      ok: false,
      code: "frame_invalid",
    });
    expect(decodeRawFrame(encode({ room: "user(1)", data: deep(5) }), { maxDepth: 4 })).toMatchObject({ ok: false, code: "frame_invalid" });
  });

  it("quotes at most a few dozen characters of a bad event name", () => {
    const long = decodeRawFrame(encode({ room: "user(1)", event: "e".repeat(100_000), data: 1 }));
    expect(long.ok).toBe(false);
    if (!long.ok) expect(long.reason.length).toBeLessThan(200);
    const reserved = decodeRawFrame(encode({ room: "user(1)", event: { huge: "x".repeat(100_000) }, data: 1 }));
    expect(reserved.ok).toBe(false);
    if (!reserved.ok) expect(reserved.reason.length).toBeLessThan(200);
  });
});

describe("lengths and counts a frame claims", () => {
  it("refuses a header claiming more items than the frame holds without making room for them", () => {
    // An array of 24,182,511 items in eight bytes: just under the length up to which V8 allocates
    // every slot of a new array at once (about 190 MB).
    const claim = Uint8Array.from([0xdd, 0x01, 0x71, 0x00, 0xef, 0xfe, 0xe6, 0x88]);
    const before = process.memoryUsage().heapUsed;
    const decoded = decodeMsgpack(claim);
    const grown = process.memoryUsage().heapUsed - before;
    expect(grown).toBeLessThan(16 * 1024 * 1024);
    expect(decoded).toEqual({ ok: false, code: "frame_not_msgpack", reason: NOT_WHOLE_MSGPACK });
    expect(decodeRawFrame(claim)).toMatchObject({ ok: false, code: "frame_not_msgpack" });
    // A map, a string and bytes claiming more than is there are refused alike; a whole frame still decodes.
    for (const header of [
      [0xdf, 0x00, 0x10, 0x00, 0x00],
      [0xdb, 0x00, 0x10, 0x00, 0x00, 0x61],
      [0xc6, 0x00, 0x10, 0x00, 0x00, 0x01],
    ]) {
      expect(decodeMsgpack(Uint8Array.from(header))).toEqual({ ok: false, code: "frame_not_msgpack", reason: NOT_WHOLE_MSGPACK });
    }
    expect(decodeMsgpack(encode([1, "two", { three: 3 }]))).toEqual({ ok: true, value: [1, "two", { three: 3 }] });
  });
});

describe("routing fields of the map layout", () => {
  it("leaves a frame without room to the event's route, with its user and site, and adds _in rooms", () => {
    expect(decodeRawFrame(encode({ event: "order", data: 1, user: 42, site: "a.com", _in: "topic(x)" }))).toMatchObject({
      ok: true,
      delivery: { rooms: [], route: { user: "42", site: "a.com" }, in: ["topic(x)"] },
    });
    expect(decodeRawFrame(encode({ room: "user(1)", data: 1, _in: ["a", "b"] }))).toMatchObject({
      ok: true,
      delivery: { rooms: ["user(1)"], route: null, in: ["a", "b"] },
    });
  });

  it.each([
    ["a user that is not an id", { event: "e", data: 1, user: { id: 1 } }],
    ["a site that is not a string", { event: "e", data: 1, site: 5 }],
    ["_in that is a number", { room: "a", data: 1, _in: 5 }],
  ])("refuses %s", (_what, frame) => {
    expect(decodeRawFrame(encode(frame))).toMatchObject({ ok: false, code: "frame_invalid" });
  });
});

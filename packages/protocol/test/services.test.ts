import { describe, expect, it } from "vitest";
import { SERVICE_KEYS, isServiceName, readRequestFields, readServiceReply, replyChannel, requestFields } from "../src/index.js";

describe("service requests and replies", () => {
  it("reads back the stream fields it writes, payload as JSON", () => {
    const request = {
      id: "r1",
      kind: "request" as const,
      service: "orders",
      event: "",
      payload: { items: [1, 2], note: "ünïcode" },
      caller: { user: "42", site: "", socket: "s1", node: "node-a" },
      deadline: 1_700_000_000_000,
      reply: replyChannel("node-a"),
    };
    const flat = requestFields(request);
    const fields = Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, index) => [flat[2 * index], flat[2 * index + 1]]));
    expect(readRequestFields(fields)).toEqual(request);
    expect(readRequestFields({ ...fields, payload: "{not json" })).toBe("payload is not JSON");
    expect(readRequestFields({ ...fields, kind: "other" })).toMatch(/an entry without/);
  });

  it("reads progress, done and error replies, and says what is wrong with anything else", () => {
    expect(readServiceReply({ id: "r1", kind: "progress", data: 1 })).toEqual({ id: "r1", kind: "progress", data: 1 });
    expect(readServiceReply({ id: "r1", kind: "done" })).toEqual({ id: "r1", kind: "done", data: null });
    expect(readServiceReply({ id: "r1", kind: "error", error: { code: "out_of_stock" } })).toEqual({
      id: "r1",
      kind: "error",
      error: { code: "out_of_stock", message: "out_of_stock" },
    });
    for (const bad of [
      null,
      [],
      "text",
      { id: 5, kind: "done" },
      { id: "r1", kind: "maybe" },
      { id: "r1", kind: "error", error: "x" },
      { id: "x".repeat(101), kind: "done" },
    ]) {
      expect(typeof readServiceReply(bad)).toBe("string");
    }
  });

  it("puts every key of a service in one hash slot, and accepts only plain names", () => {
    for (const key of [SERVICE_KEYS.info("orders"), SERVICE_KEYS.instances("orders"), SERVICE_KEYS.requests("orders")])
      expect(key).toContain("{svc:orders}");
    expect(["orders", "billing.v2", "a_b-c"].every(isServiceName)).toBe(true);
    expect(["", "Orders", "a b", "{x}", "x".repeat(65), 5].some(isServiceName)).toBe(false);
  });
});

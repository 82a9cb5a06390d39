import { describe, expect, it } from "vitest";
import { clientEventSchemas, parsePayload } from "../src/payloads.js";

const schemas = clientEventSchemas();
const refusal = (event: Parameters<typeof parsePayload>[1], payload: unknown) => {
  const parsed = parsePayload(schemas, event, [payload], 32);
  if (parsed.ok) throw new Error(`${JSON.stringify(payload)} was taken`);
  return parsed.error;
};

describe("refused client payloads", () => {
  it("name the field a room payload got wrong, rather than a union's 'Invalid input'", () => {
    const error = refusal("subscribe", { room: 5 });
    expect(error.code).toBe("payload_invalid");
    expect(error.message).toContain("room: Invalid input: expected string, received number");
    expect(refusal("subscribe", {}).message).toContain("room: Invalid input: expected string, received undefined");
  });

  it("name every shape a payload could have had when it has none of them", () => {
    expect(refusal("unsubscribe", 5).message).toContain("payload: expected object or string, received number");
    expect(refusal("join", null).message).toContain("payload: expected object or string, received null");
  });

  it("keep the field and message of a check that is not a union", () => {
    expect(refusal("subscribe", { room: "" }).message).toContain("room: Too small");
    expect(refusal("publish", { room: "topic(a)" }).message).toContain("event: Invalid input: expected string, received undefined");
    expect(refusal("request", { service: "s", timeoutMs: -1 }).message).toContain("timeoutMs: Too small");
  });

  it("take a bare room name, as the first releases sent it", () => {
    expect(parsePayload(schemas, "subscribe", ["topic(a)"], 32)).toEqual({ ok: true, payload: { room: "topic(a)" } });
  });
});

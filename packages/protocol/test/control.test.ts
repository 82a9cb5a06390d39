import { describe, expect, it } from "vitest";
import {
  type ControlTransport,
  MAX_REFUSE_SECONDS,
  MAX_TOKEN_EXP,
  decodeMsgpack,
  kickUser,
  readControlFrame,
  revokeToken,
} from "../src/index.js";

/** A transport that records what it was asked to do. */
function recording() {
  const calls: string[] = [];
  const transport: ControlTransport = {
    setKey: async (key, _value, ttlMs) => calls.push(`set ${key} ${ttlMs}`),
    deleteKey: async (key) => calls.push(`delete ${key}`),
    publishFrame: async () => calls.push("publish"),
  };
  return { calls, transport };
}

describe("control actions", () => {
  it("refuse a kick's refusal length outside 1 s to ten years with invalid_request, storing and publishing nothing", async () => {
    for (const refuseForSeconds of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 1e300, MAX_REFUSE_SECONDS + 1]) {
      const { calls, transport } = recording();
      await expect(kickUser(transport, "u1", { refuseForSeconds })).rejects.toMatchObject({
        name: "SwitchboardError",
        code: "invalid_request",
      });
      expect(calls).toEqual([]);
    }
    const { calls, transport } = recording();
    await kickUser(transport, "u1", { refuseForSeconds: MAX_REFUSE_SECONDS });
    expect(calls).toEqual([`set switchboard:revoked:user:u1 ${MAX_REFUSE_SECONDS * 1000}`, "publish"]);
  });

  it("refuse a revocation whose exp is not whole seconds up to the end of the year 9999, storing and publishing nothing", async () => {
    for (const exp of [-1, 1.5, Number.NaN, 1e300, 2 ** 53, MAX_TOKEN_EXP + 1]) {
      const { calls, transport } = recording();
      await expect(revokeToken(transport, "j1", exp)).rejects.toMatchObject({ name: "SwitchboardError", code: "invalid_request" });
      expect(calls).toEqual([]);
    }
    const { calls, transport } = recording();
    await revokeToken(transport, "j1", MAX_TOKEN_EXP);
    expect(calls).toEqual([expect.stringMatching(/^set switchboard:revoked:jti:j1 \d+$/), "publish"]);
  });

  it("keep a revocation in Redis for the nodes' clock tolerance past the token's exp, and publish the exp itself", async () => {
    const { transport } = recording();
    const stored: number[] = [];
    const frames: Uint8Array[] = [];
    transport.setKey = async (_key, _value, ttlMs) => {
      stored.push(ttlMs);
    };
    transport.publishFrame = async (frame) => {
      frames.push(frame);
    };
    // Already past its exp, but within the tolerance: still stored, for the rest of it.
    const exp = Math.floor(Date.now() / 1000) - 10;
    await revokeToken(transport, "j2", exp, 30);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toBeGreaterThan(15_000);
    expect(stored[0]).toBeLessThanOrEqual(20_000);
    const published = decodeMsgpack(frames[0]!);
    expect(published.ok && readControlFrame(published.value)).toEqual({ control: "revoke", jti: "j2", exp });
    // Without a tolerance, a token past its exp is refused by its own exp: nothing is stored.
    const plain = recording();
    await revokeToken(plain.transport, "j3", exp);
    expect(plain.calls).toEqual([]);
  });

  it("publish a kick with the refusal's start and end, the end being when the key stored for it expires", async () => {
    const stored: number[] = [];
    const frames: Uint8Array[] = [];
    const transport: ControlTransport = {
      setKey: async (_key, _value, ttlMs) => {
        stored.push(ttlMs);
      },
      deleteKey: async () => undefined,
      publishFrame: async (frame) => {
        frames.push(frame);
      },
    };
    const { at } = await kickUser(transport, 42, { reason: "spam", refuseForSeconds: 600 });
    expect(stored).toEqual([600_000]);
    const published = decodeMsgpack(frames[0]!);
    expect(published.ok && readControlFrame(published.value)).toEqual({
      control: "kick",
      user: "42",
      reason: "spam",
      refuseBefore: at,
      refuseUntil: at + 600_000,
    });
    // Without a refusal, neither is sent.
    await kickUser(transport, 42, { refuseReconnect: false });
    const unrefused = decodeMsgpack(frames[1]!);
    expect(unrefused.ok && readControlFrame(unrefused.value)).toEqual({ control: "kick", user: "42" });
  });

  it("read a kick's refuseUntil only as whole ms since the epoch", () => {
    for (const refuseUntil of [1.5, "1700000000000", Number.NaN, 2 ** 53, null, {}])
      expect(readControlFrame({ control: "kick", user: "1", refuseBefore: 1, refuseUntil })).toBe(
        "kick: refuseUntil must be ms since the epoch",
      );
    expect(readControlFrame({ control: "kick", user: "1", refuseBefore: 1 })).toEqual({ control: "kick", user: "1", refuseBefore: 1 });
  });
});

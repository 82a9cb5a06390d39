import { describe, expect, it } from "vitest";
import { type ControlTransport, MAX_REFUSE_SECONDS, MAX_TOKEN_EXP, kickUser, revokeToken } from "../src/index.js";

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
});

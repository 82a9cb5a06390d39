import { afterEach, describe, expect, it, vi } from "vitest";
import { RevocationMirror } from "../src/revocations.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("the revocation mirror", () => {
  it("refuses a revoked token until its exp and a kicked user's older tokens", () => {
    const mirror = new RevocationMirror(60_000);
    const now = Date.now();
    mirror.refuseToken("t1", Math.floor(now / 1000) + 60);
    mirror.refuseUser("u1", now);
    expect(mirror.check("anyone", undefined, "t1")).toBe("this token was revoked");
    expect(mirror.check("u1", Math.floor(now / 1000) - 1, undefined)).toBe("the user was kicked after this token was issued");
    expect(mirror.check("u1", Math.floor(now / 1000) + 1, undefined)).toBeNull();
    expect(mirror.check("anyone", undefined, "t2")).toBeNull();
  });

  it("keeps refusing a revoked token for JWT_CLOCK_TOLERANCE_SECONDS past its exp, as long as the token itself is still taken", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const exp = Math.floor(Date.now() / 1000) + 10;
    const strict = new RevocationMirror(60_000);
    const tolerant = new RevocationMirror(90_000, 30_000);
    strict.refuseToken("t", exp);
    tolerant.refuseToken("t", exp);
    vi.setSystemTime(exp * 1000 + 20_000);
    expect(strict.check("u", undefined, "t")).toBeNull();
    expect(tolerant.check("u", undefined, "t")).toBe("this token was revoked");
    // Revoked while already past its exp but within the tolerance: still refused.
    tolerant.refuseToken("late", exp);
    expect(tolerant.check("u", undefined, "late")).toBe("this token was revoked");
    vi.setSystemTime(exp * 1000 + 31_000);
    expect(tolerant.check("u", undefined, "t")).toBeNull();
  });

  it("does not grow for good with revocations of tokens never seen again: what has expired is swept", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const mirror = new RevocationMirror(60_000);
    // Already expired: nothing to keep.
    mirror.refuseToken("old", Math.floor(Date.now() / 1000) - 1);
    expect(mirror.size).toBe(0);
    const kept = new Set<number>();
    for (let round = 0; round < 50; round++) {
      const exp = Math.floor(Date.now() / 1000) + 1;
      for (let index = 0; index < 1000; index++) mirror.refuseToken(`r${round}-${index}`, exp);
      mirror.refuseUser(`u${round}`, Date.now());
      kept.add(mirror.size);
      // Each batch expires before the next, as do the kicks (older than any token may live).
      vi.setSystemTime(Date.now() + 61_000);
    }
    // 50,050 entries went in; at most the last batch or two are held at any time.
    expect(Math.max(...kept)).toBeLessThan(4200);
    // A revocation still in force survives every sweep.
    const lasting = Math.floor(Date.now() / 1000) + 3600;
    mirror.refuseToken("lasting", lasting);
    for (let index = 0; index < 5000; index++) mirror.refuseToken(`later-${index}`, Math.floor(Date.now() / 1000) + 1);
    vi.setSystemTime(Date.now() + 2000);
    for (let index = 0; index < 5000; index++) mirror.refuseToken(`latest-${index}`, Math.floor(Date.now() / 1000) + 1);
    expect(mirror.check("anyone", undefined, "lasting")).toBe("this token was revoked");
  });
});

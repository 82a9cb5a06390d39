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

  it("holds at most maxEntries: a new entry past it is not held, a renewed one is, and room comes back as entries expire", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const seconds = () => Math.floor(Date.now() / 1000);
    const mirror = new RevocationMirror(60_000, 0, 3);
    expect(mirror.refuseToken("soon", seconds() + 2)).toBe(true);
    expect(mirror.refuseToken("later", seconds() + 600)).toBe(true);
    expect(mirror.refuseUser("kicked", Date.now())).toBe(true);
    expect(mirror.hasRoomFor("token", "another")).toBe(false);
    expect(mirror.refuseToken("another", seconds() + 600)).toBe(false);
    expect(mirror.refuseUser("another", Date.now())).toBe(false);
    expect(mirror.check("u", undefined, "another")).toBeNull();
    expect(mirror.size).toBe(3);
    // Renewing what is held takes no new place; an already expired token needs none.
    expect(mirror.refuseToken("later", seconds() + 900)).toBe(true);
    expect(mirror.refuseUser("kicked", Date.now() + 1)).toBe(true);
    expect(mirror.refuseToken("expired", seconds() - 1)).toBe(true);
    // Once "soon" has expired, the next revocation sweeps it out and takes its place.
    vi.setSystemTime(Date.now() + 3000);
    expect(mirror.refuseToken("another", seconds() + 600)).toBe(true);
    expect(mirror.check("u", undefined, "another")).toBe("this token was revoked");
    expect(mirror.check("u", undefined, "later")).toBe("this token was revoked");
    expect(mirror.size).toBe(3);
  });

  it("sweeps a full mirror at most once a second however many revocations it is sent", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const seconds = () => Math.floor(Date.now() / 1000);
    const mirror = new RevocationMirror(null, 0, 2000);
    // 2,000 tokens that expire one second apart in pairs: past the first expiry, each second frees a few places.
    for (let index = 0; index < 2000; index++) mirror.refuseToken(`t${index}`, seconds() + 1 + Math.floor(index / 2));
    vi.setSystemTime(Date.now() + 1500);
    let taken = 0;
    for (let index = 0; index < 10_000; index++) if (mirror.refuseToken(`new${index}`, seconds() + 3600)) taken++;
    // One sweep, which freed the two places of the tokens expired at +1 s: the other 9,998 attempts found the mirror full without sweeping.
    expect(taken).toBe(2);
    vi.setSystemTime(Date.now() + 999);
    expect(mirror.refuseToken("within-the-second", seconds() + 3600)).toBe(false);
    vi.setSystemTime(Date.now() + 1);
    expect(mirror.refuseToken("a-second-later", seconds() + 3600)).toBe(true);
  });

  it("takes at most maxEntries of the shared state's revocations and says how many it left", () => {
    const mirror = new RevocationMirror(60_000, 0, 3);
    const exp = Math.floor(Date.now() / 1000) + 600;
    const left = mirror.replace({
      users: new Map([["u1", { before: Date.now(), until: Date.now() + 60_000 }]]),
      tokens: new Map([
        ["t1", exp],
        ["t2", exp],
        ["t3", exp],
        ["t4", exp],
      ]),
    });
    expect(left).toBe(2);
    expect(mirror.size).toBe(3);
    // Values that are not times, as keys written by hand may hold, refuse nothing and take no place.
    const garbled = new RevocationMirror(null, 0, 3);
    expect(
      garbled.replace({
        users: new Map([
          ["nan", { before: Number.NaN, until: Date.now() + 60_000 }],
          ["fraction", { before: 1.5, until: Date.now() + 60_000 }],
        ]),
        tokens: new Map([["text", Number("not a number")]]),
      }),
    ).toBe(0);
    expect(garbled.size).toBe(0);
    expect(garbled.check("nan", undefined, "text")).toBeNull();
    expect(mirror.check("u1", undefined, undefined)).toBe("the user was kicked after this token was issued");
  });

  it("forgets a kick when its refusal ends, whether or not the longest token lifetime is known", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const issuedBefore = Math.floor(Date.now() / 1000) - 1;
    const unbounded = new RevocationMirror(null, 0, 2);
    const bounded = new RevocationMirror(3_600_000, 0, 2);
    for (const mirror of [unbounded, bounded]) {
      expect(mirror.refuseUser("short", Date.now(), Date.now() + 10_000)).toBe(true);
      // A kick frame without refuseUntil: until the node next reads Redis, or the longest lifetime.
      expect(mirror.refuseUser("open", Date.now())).toBe(true);
      expect(mirror.check("short", issuedBefore, undefined)).toBe("the user was kicked after this token was issued");
      // A refusal already over takes no place.
      expect(mirror.refuseUser("over", Date.now() - 2000, Date.now() - 1000)).toBe(true);
      expect(mirror.size).toBe(2);
    }
    vi.setSystemTime(Date.now() + 11_000);
    for (const mirror of [unbounded, bounded]) {
      expect(mirror.check("short", issuedBefore, undefined)).toBeNull();
      expect(mirror.check("open", issuedBefore, undefined)).toBe("the user was kicked after this token was issued");
      // The place the ended refusal held is free again.
      expect(mirror.refuseUser("next", Date.now())).toBe(true);
    }
    // A kick renewed with a later end lasts to that end.
    const renewed = new RevocationMirror(null);
    renewed.refuseUser("u", Date.now(), Date.now() + 1000);
    renewed.refuseUser("u", Date.now(), Date.now() + 5000);
    vi.setSystemTime(Date.now() + 2000);
    expect(renewed.check("u", issuedBefore, undefined)).toBe("the user was kicked after this token was issued");
  });

  it("sweeps kicks whose refusal has ended on a node without a longest token lifetime", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ["Date"] });
    const mirror = new RevocationMirror(null, 0, 5000);
    for (let round = 0; round < 20; round++) {
      for (let index = 0; index < 1000; index++) mirror.refuseUser(`u${round}-${index}`, Date.now(), Date.now() + 1000);
      vi.setSystemTime(Date.now() + 2000);
    }
    // 20,000 kicks went in, never checked again; each ended before the next batch.
    expect(mirror.size).toBeLessThan(4200);
    expect(mirror.refuseUser("still-room", Date.now(), Date.now() + 1000)).toBe(true);
  });
});

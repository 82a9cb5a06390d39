import { describe, expect, it } from "vitest";
import { normaliseSiteHost, siteRoom, userIdOf, userRoom } from "../src/index.js";

describe("room names", () => {
  it("names a user's room from a string or integer id", () => {
    expect(userRoom("42")).toBe("user(42)");
    expect(userRoom(42)).toBe("user(42)");
    expect(userRoom("alice@example.com")).toBe("user(alice@example.com)");
  });

  it("rejects ids that cannot name a user", () => {
    for (const bad of ["", 1.5, Number.NaN, null, undefined, {}, "x".repeat(257)]) {
      expect(() => userIdOf(bad)).toThrow(expect.objectContaining({ code: "invalid_room" }));
    }
  });

  it("names a site's room from the normalised host", () => {
    expect(siteRoom("Example.COM:8443")).toBe("site(example.com)");
    expect(siteRoom("example.com.")).toBe("site(example.com)");
    expect(siteRoom("[::1]:3000")).toBe("site([::1])");
    expect(() => siteRoom("https://example.com/")).toThrow(expect.objectContaining({ code: "invalid_room" }));
  });

  it("normalises hosts: lower case, no port, no trailing dot", () => {
    expect(normaliseSiteHost("  Shop.Example.org ")).toBe("shop.example.org");
    expect(normaliseSiteHost("localhost:3000")).toBe("localhost");
    expect(normaliseSiteHost("a-b.example.")).toBe("a-b.example");
  });

  it("refuses values that are not bare hosts", () => {
    for (const bad of ["", ".", "exa mple.com", "example.com/path", "http://x", "x:port", "-x.com", "[::1", 42, null]) {
      expect(normaliseSiteHost(bad)).toBeNull();
    }
  });
});

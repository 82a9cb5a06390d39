import { describe, expect, it } from "vitest";
import { createSubscriptionPolicy, roomsFor } from "../src/rooms.js";

describe("rooms of a socket", () => {
  it("joins user() and, with a site, site()", () => {
    expect(roomsFor({ user: "1", site: null })).toEqual(["user(1)"]);
    expect(roomsFor({ user: "1", site: "a.com" })).toEqual(["user(1)", "site(a.com)"]);
  });
});

describe("subscription policy", () => {
  const alice = { user: "alice", site: "shop.example" };
  const policy = createSubscriptionPolicy(["topic(*)", "chat({site}).*", "inbox({user})"]);

  it("allows rooms matching a pattern, with {user} and {site} bound to the socket", () => {
    expect(policy(alice, "topic(news)")).toBe(true);
    expect(policy(alice, "chat(shop.example).lobby")).toBe(true);
    expect(policy(alice, "inbox(alice)")).toBe(true);
  });

  it("refuses other users' and sites' rooms, reserved rooms and non-strings", () => {
    expect(policy(alice, "inbox(bob)")).toBe(false);
    expect(policy(alice, "chat(other.example).lobby")).toBe(false);
    expect(policy({ user: "alice", site: null }, "chat().lobby")).toBe(false);
    expect(policy(alice, "user(bob)")).toBe(false);
    expect(policy(alice, "switchboard:unauthenticated")).toBe(false);
    expect(policy(alice, "")).toBe(false);
  });

  it("allows nothing without patterns, and reserved rooms even with a catch-all", () => {
    expect(createSubscriptionPolicy([])(alice, "topic(news)")).toBe(false);
    const all = createSubscriptionPolicy(["*"]);
    expect(all(alice, "anything")).toBe(true);
    expect(all(alice, "site(other.example)")).toBe(false);
  });
});

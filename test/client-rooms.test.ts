import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { sleep } from "./harness/ports.js";

let cluster: Cluster;
let a: string;
let b: string;

beforeAll(async () => {
  cluster = await startCluster(2, { SUBSCRIBE_ROOMS: "topic(*)", EVENT_ROUTES: JSON.stringify({ chat: "chat({site})" }) });
  [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
});
afterAll(() => cluster?.close());
afterEach(() => closeAllClients());

describe("joining rooms", () => {
  it("join and leave are subscribe and unsubscribe by their first names", async () => {
    const client = await connectUser(a, { sub: "joiner" });
    expect(await client.socket.emitWithAck("join", { room: "topic(a)" })).toEqual({ ok: true, room: "topic(a)" });
    expect(await client.socket.emitWithAck("join", "topic(b)")).toEqual({ ok: true, room: "topic(b)" });
    expect(await client.socket.emitWithAck("leave", { room: "topic(a)" })).toEqual({ ok: true, room: "topic(a)" });
    expect(await client.socket.emitWithAck("join", { room: "secret(x)" })).toMatchObject({
      ok: false,
      error: { code: "subscription_forbidden" },
    });
  });

  it("configure joins and leaves several rooms at once and answers configured with the rooms held and those refused", async () => {
    const client = await connectUser(a, { sub: "configurer" });
    const reply = await client.socket.emitWithAck("configure", {
      "topic(one)": true,
      "topic(two)": true,
      "user(bob)": true,
      "topic(three)": false,
    });
    expect(reply).toEqual({
      ok: true,
      rooms: ["topic(one)", "topic(two)"],
      refused: [{ room: "user(bob)", error: { code: "subscription_forbidden", message: expect.any(String) } }],
    });
    expect(await client.next("configured")).toEqual([reply]);
    const second = await client.socket.emitWithAck("configure", { "topic(one)": false });
    expect(second).toMatchObject({ rooms: ["topic(two)"] });
    expect(await client.socket.emitWithAck("configure", { "topic(x)": "yes" })).toMatchObject({
      ok: false,
      error: { code: "payload_invalid" },
    });
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, index) => [`topic(${index})`, true]));
    expect(await client.socket.emitWithAck("configure", many)).toMatchObject({ ok: false, error: { code: "payload_invalid" } });
  });

  it("a rooms claim lets a socket join more rooms, but never user(), site() or internal ones", async () => {
    const client = await connectUser(a, {
      sub: "claimed",
      site: "claim.example",
      rooms: ["vip({user})", "floor(*)", "user(*)", "site(*)"],
    });
    expect(await client.socket.emitWithAck("join", { room: "vip(claimed)" })).toEqual({ ok: true, room: "vip(claimed)" });
    expect(await client.socket.emitWithAck("join", { room: "floor(3)" })).toEqual({ ok: true, room: "floor(3)" });
    expect(await client.socket.emitWithAck("join", { room: "vip(other)" })).toMatchObject({
      ok: false,
      error: { code: "subscription_forbidden" },
    });
    for (const room of ["user(bob)", "site(other.example)", "switchboard:unauthenticated"]) {
      expect(await client.socket.emitWithAck("join", { room })).toMatchObject({ ok: false, error: { code: "subscription_forbidden" } });
    }
    const plain = await connectUser(a, { sub: "unclaimed" });
    expect(await plain.socket.emitWithAck("join", { room: "floor(3)" })).toMatchObject({ ok: false });
  });

  it("welcome lists the room patterns the socket may join and publish to, filled in for it", async () => {
    const client = await connectUser(b, {
      sub: "lister",
      site: "list.example",
      rooms: ["vip({user})"],
      publish: ["chat({site})", "topic(*)"],
    });
    expect((await client.next("welcome"))[0]).toMatchObject({
      joinable: ["topic(*)", "vip(lister)"],
      publishable: ["chat(list.example)", "topic(*)"],
    });
    const bare = await connectUser(b, { sub: "bare" });
    expect((await bare.next("welcome"))[0]).toMatchObject({ joinable: ["topic(*)"], publishable: [] });
  });

  it("refuses a token whose rooms or publish claim is not a list of patterns", async () => {
    const { openClient, mintToken } = await import("./harness/clients.js");
    const client = openClient(a, { auth: { token: mintToken({ sub: "bad-claim", publish: { room: "x" } }) } });
    const [err] = (await client.next("connect_error")) as [{ data: { code: string } }];
    expect(err.data.code).toBe("token_claims_invalid");
  });
});

describe("publishing from a client", () => {
  it("with a publish claim: to an allowed room on every node, answered with its id", async () => {
    const publisher = await connectUser(a, { sub: "speaker", publish: ["topic(*)"] });
    const listener = await connectUser(b, { sub: "listener" });
    expect(await listener.socket.emitWithAck("join", { room: "topic(lobby)" })).toMatchObject({ ok: true });
    const reply = await publisher.socket.emitWithAck("publish", { room: "topic(lobby)", event: "said", data: { text: "hello" } });
    expect(reply).toEqual({ ok: true, id: expect.any(String) });
    expect(await listener.next("said")).toEqual([{ text: "hello" }]);
  });

  it("to its event's route filled with its own site, and to _in rooms, each of which the claim must allow", async () => {
    const publisher = await connectUser(a, { sub: "chatter", site: "chat.example", publish: ["chat({site})", "topic(*)"] });
    const sameSite = await connectUser(b, { sub: "neighbour", site: "chat.example" });
    expect(await sameSite.socket.emitWithAck("configure", { "topic(log)": true })).toMatchObject({ ok: true });
    // A client may not join chat(...) here; the publish reaches chat(chat.example) through a rooms claim.
    const inChat = await connectUser(b, { sub: "in-chat", site: "chat.example", rooms: ["chat({site})"] });
    expect(await inChat.socket.emitWithAck("join", { room: "chat(chat.example)" })).toMatchObject({ ok: true });
    expect(await publisher.socket.emitWithAck("publish", { event: "chat", data: "hi all", _in: "topic(log)" })).toMatchObject({ ok: true });
    expect(await inChat.next("chat")).toEqual(["hi all"]);
    expect(await sameSite.next("chat")).toEqual(["hi all"]);
    expect(await publisher.socket.emitWithAck("publish", { event: "chat", data: "x", _in: ["secret(x)"] })).toMatchObject({
      ok: false,
      error: { code: "publish_forbidden" },
    });
    expect(await publisher.socket.emitWithAck("publish", { event: "unrouted", data: "x" })).toMatchObject({
      ok: false,
      error: { code: "route_unknown" },
    });
  });

  it("refuses rooms outside the claim, internal rooms, and any publish without a claim: nothing is broadcast", async () => {
    const limited = await connectUser(a, { sub: "limited", publish: ["topic(*)"] });
    const witness = await connectUser(b, { sub: "witness" });
    for (const room of ["user(witness)", "switchboard:unauthenticated", "AAAAAAAAAAAAAAAAAAAA"]) {
      expect(await limited.socket.emitWithAck("publish", { room, event: "x", data: 1 })).toMatchObject({
        ok: false,
        error: { code: "publish_forbidden" },
      });
    }
    const unclaimed = await connectUser(a, { sub: "unclaimed-publisher" });
    expect(await unclaimed.socket.emitWithAck("publish", { room: "user(witness)", event: "x", data: 1 })).toMatchObject({
      ok: false,
      error: { code: "publish_forbidden" },
    });
    // Without an acknowledgement the refusal comes back as an error event.
    unclaimed.socket.emit("publish", { room: "user(witness)", event: "x", data: 1 });
    expect((await unclaimed.next("error"))[0]).toMatchObject({ code: "publish_forbidden", event: "publish" });
    expect(await limited.socket.emitWithAck("publish", { room: "topic(x)", event: "welcome", data: 1 })).toMatchObject({
      ok: false,
      error: { code: "invalid_event" },
    });
    expect(await limited.socket.emitWithAck("publish", { room: "topic(x)", data: 1 })).toMatchObject({
      ok: false,
      error: { code: "payload_invalid" },
    });
    await sleep(100);
    expect(witness.count("x")).toBe(0);
  });
});

import { encode } from "@msgpack/msgpack";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken, openClient } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { readCounter } from "./harness/gateway.js";
import { waitFor } from "./harness/ports.js";

/** How many Redis connections are subscribed to `channel` (patterns not counted). */
async function subscribers(cluster: Cluster, channel: string): Promise<number> {
  return (await cluster.publisher.pubSubNumSub(channel))[channel] ?? 0;
}

/** A broadcast in the adapter format, as another language's socket.io emitter writes one. */
function adapterFrame(rooms: string[], event: string, data: unknown): Buffer {
  const frame = encode(["elsewhere", { type: 2, data: [event, data], nsp: "/" }, { rooms, except: [], flags: {} }]);
  return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
}

afterEach(() => closeAllClients());

describe("REDIS_SUBSCRIPTIONS=rooms: a node receives only the messages of rooms it holds", () => {
  let cluster: Cluster;
  let emitter: SwitchboardEmitter;
  let a: string;
  let b: string;

  beforeAll(async () => {
    // Per-address admission is off: one test opens 200 sockets at once from loopback.
    cluster = await startCluster(2, {
      SUBSCRIBE_ROOMS: "topic(*)",
      REDIS_SUBSCRIPTIONS: "rooms",
      IP_CONNECTIONS_PER_SECOND: "0",
      IP_MAX_CONNECTIONS: "0",
    });
    [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
    emitter = createEmitter({ redis: cluster.redis.url });
  });

  afterAll(async () => {
    await emitter?.close();
    await cluster?.close();
  });

  // First, while the nodes hold no socket: the gauge counts exactly this test's rooms.
  it("counts the room channels it holds in switchboard_redis_room_channels", async () => {
    const gauge = () => readCounter(a, "switchboard_redis_room_channels");
    expect(await gauge()).toBe(0);
    const client = await connectUser(a, { sub: "counted", site: "counted.example" });
    expect(await gauge()).toBe(2);
    client.close();
    await waitFor("both channels to go", async () => ((await gauge()) === 0 ? true : undefined));
    expect(await readCounter(b, "switchboard_redis_room_channels")).toBe(0);
  });

  it("hands a message for a room only to the nodes with a socket in it, and drops a room's channel when it empties", async () => {
    const channel = "socket.io#/#user(only-here)#";
    const onA = await connectUser(a, { sub: "only-here" });
    // Welcomed only once Redis holds the room's channel: no wait needed here.
    expect(await subscribers(cluster, channel)).toBe(1);
    expect((await emitter.toUser("only-here").emit("note", 1)).subscribers).toBe(1);
    expect(await onA.next("note")).toEqual([1]);
    expect((await emitter.toUser("nobody-anywhere").emit("note", 1)).subscribers).toBe(0);

    const onB = await connectUser(b, { sub: "only-here" });
    expect((await emitter.toUser("only-here").emit("note", 2)).subscribers).toBe(2);
    expect(await onA.next("note", (args) => args[0] === 2)).toEqual([2]);
    expect(await onB.next("note")).toEqual([2]);

    onA.close();
    await waitFor("node a to drop the room's channel", async () => ((await subscribers(cluster, channel)) === 1 ? true : undefined));
    expect((await emitter.toUser("only-here").emit("note", 3)).subscribers).toBe(1);
    expect(await onB.next("note", (args) => args[0] === 3)).toEqual([3]);
    onB.close();
    await waitFor("no node to hold the room's channel", async () => ((await subscribers(cluster, channel)) === 0 ? true : undefined));
    // Each node still holds the channel for broadcasts to several rooms or to all.
    expect(await subscribers(cluster, "socket.io#/#")).toBe(2);
  });

  it("keeps a channel while another socket of the node is in the room", async () => {
    const channel = "socket.io#/#site(shared.example)#";
    const first = await connectUser(a, { sub: "site-1", site: "shared.example" });
    const second = await connectUser(a, { sub: "site-2", site: "shared.example" });
    expect(await subscribers(cluster, channel)).toBe(1);
    first.close();
    await waitFor("the first socket to be gone", async () =>
      (await subscribers(cluster, "socket.io#/#user(site-1)#")) === 0 ? true : undefined,
    );
    expect(await subscribers(cluster, channel)).toBe(1);
    expect((await emitter.toSite("shared.example").emit("news", "still here")).subscribers).toBe(1);
    expect(await second.next("news")).toEqual(["still here"]);
  });

  it("acknowledges subscribe, join and configure only once the node receives the room", async () => {
    const client = await connectUser(b, { sub: "subscriber" });
    expect(await client.socket.emitWithAck("subscribe", { room: "topic(one)" })).toEqual({ ok: true, room: "topic(one)" });
    expect(await subscribers(cluster, "socket.io#/#topic(one)#")).toBe(1);
    expect(await client.socket.emitWithAck("join", { room: "topic(two)" })).toEqual({ ok: true, room: "topic(two)" });
    expect(await subscribers(cluster, "socket.io#/#topic(two)#")).toBe(1);
    const configured = await client.socket.emitWithAck("configure", { "topic(three)": true, "topic(four)": true, "topic(one)": false });
    expect(configured).toMatchObject({ ok: true, refused: [] });
    expect(await subscribers(cluster, "socket.io#/#topic(three)#")).toBe(1);
    expect(await subscribers(cluster, "socket.io#/#topic(four)#")).toBe(1);
    await waitFor("topic(one) to be dropped", async () =>
      (await subscribers(cluster, "socket.io#/#topic(one)#")) === 0 ? true : undefined,
    );

    await emitter.to("topic(three)").emit("topical", "three");
    expect(await client.next("topical")).toEqual(["three"]);
    expect(await client.socket.emitWithAck("unsubscribe", { room: "topic(three)" })).toEqual({ ok: true, room: "topic(three)" });
    await waitFor("topic(three) to be dropped", async () =>
      (await subscribers(cluster, "socket.io#/#topic(three)#")) === 0 ? true : undefined,
    );
  });

  it("subscribes the channels of sockets that arrive together in fewer commands than sockets", async () => {
    const subscribeCalls = async () => Number(/cmdstat_subscribe:calls=(\d+)/.exec(await cluster.publisher.info("commandstats"))?.[1] ?? 0);
    const before = await subscribeCalls();
    const together = Array.from({ length: 200 }, (_, index) => openClient(a, { auth: { token: mintToken({ sub: `together-${index}` }) } }));
    await Promise.all(together.map((client) => client.next("welcome", () => true, 10_000)));
    for (let index = 0; index < 200; index++) expect(await subscribers(cluster, `socket.io#/#user(together-${index})#`)).toBe(1);
    // One SUBSCRIBE in flight at a time: the channels that wait for it go out together in the next.
    expect(await subscribeCalls()).toBeLessThan(before + 200);
  });

  it("delivers a frame for several rooms, or for one socket id, written on socket.io#/#", async () => {
    const onA = await connectUser(a, { sub: "multi-a" });
    const onB = await connectUser(b, { sub: "multi-b" });
    expect(await cluster.publisher.publish("socket.io#/#", adapterFrame(["user(multi-a)", "user(multi-b)"], "both", "x"))).toBe(2);
    expect(await onA.next("both")).toEqual(["x"]);
    expect(await onB.next("both")).toEqual(["x"]);

    const socketId = onB.socket.id as string;
    // A socket's own room has no channel of its own: a frame for it goes on the adapter's channel.
    expect(await subscribers(cluster, `socket.io#/#${socketId}#`)).toBe(0);
    await cluster.publisher.publish("socket.io#/#", adapterFrame([socketId], "just-you", "y"));
    expect(await onB.next("just-you")).toEqual(["y"]);
  });
});

describe("REDIS_SUBSCRIPTIONS=pattern (the default): every node receives every room's messages, as with @socket.io/redis-adapter alone", () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster(2);
  });

  afterAll(async () => {
    await cluster?.close();
  });

  it("subscribes each node to the adapter's pattern and to no room's channel", async () => {
    const [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
    const onA = await connectUser(a, { sub: "patterned" });
    expect(await subscribers(cluster, "socket.io#/#user(patterned)#")).toBe(0);
    expect(await readCounter(a, "switchboard_redis_room_channels")).toBe(0);
    expect(await subscribers(cluster, "socket.io#/#")).toBe(0);
    expect(await cluster.publisher.publish("socket.io#/#user(patterned)#", adapterFrame(["user(patterned)"], "to-one", 1))).toBe(2);
    expect(await onA.next("to-one")).toEqual([1]);
    const onB = await connectUser(b, { sub: "patterned" });
    await cluster.publisher.publish("socket.io#/#user(patterned)#", adapterFrame(["user(patterned)"], "to-both", 2));
    expect(await onA.next("to-both")).toEqual([2]);
    expect(await onB.next("to-both")).toEqual([2]);
  });
});

describe("a cluster of both settings", () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster(2, {}, [{ REDIS_SUBSCRIPTIONS: "pattern" }, { REDIS_SUBSCRIPTIONS: "rooms" }]);
  });

  afterAll(async () => {
    await cluster?.close();
  });

  it("delivers a message once to each socket, whichever way its node subscribes", async () => {
    const [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
    const onPattern = await connectUser(a, { sub: "mixed" });
    const onRooms = await connectUser(b, { sub: "mixed" });
    // The pattern node and the room channel of the rooms node: two receivers.
    expect(await cluster.publisher.publish("socket.io#/#user(mixed)#", adapterFrame(["user(mixed)"], "once", 1))).toBe(2);
    expect(await cluster.publisher.publish("socket.io#/#", adapterFrame(["user(mixed)"], "once", 2))).toBe(2);
    for (const client of [onPattern, onRooms]) {
      expect(await client.next("once", (args) => args[0] === 2)).toEqual([2]);
      expect(client.count("once")).toBe(2);
    }
  });
});

describe("REDIS_SUBSCRIPTIONS=rooms with a Redis that does not answer", () => {
  it("welcomes a socket only once Redis holds its rooms' channels, and then delivers what is published to them", async () => {
    const stalled = await startCluster(1, { REDIS_SUBSCRIPTIONS: "rooms", IP_CONNECTIONS_PER_SECOND: "0" });
    try {
      const { url } = stalled.nodes[0]!;
      // Stopped, Redis keeps its connections open and answers nothing: the room's SUBSCRIBE waits.
      const client = await stalled.redis.whileStopped(async () => {
        const waiting = openClient(url, { auth: { token: mintToken({ sub: "waits-for-redis" }) } });
        const early = await waiting.next("welcome", undefined, 2000).then(
          () => "welcomed",
          () => "no welcome",
        );
        expect(early).toBe("no welcome");
        return waiting;
      });
      await client.next("welcome");
      expect(await subscribers(stalled, "socket.io#/#user(waits-for-redis)#")).toBe(1);
      await stalled.publisher.publish("socket.io#/#user(waits-for-redis)#", adapterFrame(["user(waits-for-redis)"], "note", 1));
      expect(await client.next("note")).toEqual([1]);
    } finally {
      await stalled.close();
    }
  });
});

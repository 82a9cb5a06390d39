import { encode } from "@msgpack/msgpack";
import { Emitter } from "@socket.io/redis-emitter";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type TestClient, closeAllClients, connectUser, openClient } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { readCounter } from "./harness/gateway.js";
import { EVERY_KIND_OF_DATA } from "./harness/payloads.js";
import { sleep, waitFor } from "./harness/ports.js";

let cluster: Cluster;
let emitter: SwitchboardEmitter;
let a: string;
let b: string;

const bytes = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength);

/** Publishing is asynchronous: after a marker reaches `client`, anything sent before it has too. */
async function settle(client: TestClient, room: string): Promise<void> {
  const marker = `marker-${Math.random()}`;
  await emitter.to(room).emit("marker", marker);
  await client.next("marker", (args) => args[0] === marker);
}

// Every test here runs against both ways a node subscribes to Redis: the behaviour a client or
// publisher sees must not depend on it.
describe.each(["pattern", "rooms"] as const)("REDIS_SUBSCRIPTIONS=%s", (subscriptions) => {
  beforeAll(async () => {
    cluster = await startCluster(2, { REDIS_SUBSCRIPTIONS: subscriptions });
    [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
    emitter = createEmitter({ redis: cluster.redis.url });
  });

  afterAll(async () => {
    await emitter?.close();
    await cluster?.close();
  });

  afterEach(() => closeAllClients());

  it("has each node subscribed to Redis as configured", async () => {
    // `pattern`: the nodes PSUBSCRIBE to every room's channel (NUMPAT counts distinct patterns); `rooms`: no pattern.
    const patterns = Number(await cluster.publisher.sendCommand(["PUBSUB", "NUMPAT"]));
    if (subscriptions === "pattern") expect(patterns).toBeGreaterThan(0);
    else expect(patterns).toBe(0);
  });

  describe("delivery across two gateway nodes", () => {
    it("welcomes an authenticated socket with its node, user, site and rooms", async () => {
      const client = await connectUser(b, { sub: "7", site: "Shop.Example.com:443" });
      const [welcome] = await client.next("welcome");
      expect(welcome).toMatchObject({
        node: "node-b",
        name: "switchboard",
        user: "7",
        site: "shop.example.com",
        rooms: ["user(7)", "site(shop.example.com)"],
      });
      expect(typeof (welcome as { version: unknown }).version).toBe("string");
      expect((welcome as { id: unknown }).id).toBe(client.socket.id);
    });

    it("delivers emitter messages to a user's sockets on both nodes exactly once", async () => {
      const onA = await connectUser(a, { sub: "42" });
      const onB = await connectUser(b, { sub: "42" });
      const other = await connectUser(a, { sub: "43" });
      const result = await emitter.toUser(42).emit("note", { text: "hello" });
      expect(result.subscribers).toBeGreaterThanOrEqual(2);
      expect(await onA.next("note")).toEqual([{ text: "hello" }]);
      expect(await onB.next("note")).toEqual([{ text: "hello" }]);
      await settle(onA, "user(42)");
      await settle(onB, "user(42)");
      await settle(other, "user(43)");
      expect(onA.count("note")).toBe(1);
      expect(onB.count("note")).toBe(1);
      expect(other.count("note")).toBe(0);
    });

    it("delivers emitter messages to a site's sockets on the other node", async () => {
      const shopper = await connectUser(b, { sub: "1", site: "shop.example.com" });
      const elsewhere = await connectUser(b, { sub: "2", site: "other.example.com" });
      await emitter.toSite("SHOP.example.com.").emit("sale", { pct: 20 });
      expect(await shopper.next("sale")).toEqual([{ pct: 20 }]);
      await settle(elsewhere, "site(other.example.com)");
      expect(elsewhere.count("sale")).toBe(0);
    });

    it("delivers to any room, leaves out except rooms, and reaches everyone with emit()", async () => {
      const one = await connectUser(a, { sub: "r1", site: "x.org" });
      const two = await connectUser(b, { sub: "r2", site: "x.org" });
      await emitter.toSite("x.org").except("user(r2)").emit("partial", 1);
      expect(await one.next("partial")).toEqual([1]);
      await settle(two, "user(r2)");
      expect(two.count("partial")).toBe(0);
      await emitter.emit("broadcast", "all");
      expect(await one.next("broadcast")).toEqual(["all"]);
      expect(await two.next("broadcast")).toEqual(["all"]);
    });

    it("delivers a hand-built raw msgpack frame written with a plain Redis client", async () => {
      const onA = await connectUser(a, { sub: "raw", site: "raw.example" });
      const onB = await connectUser(b, { sub: "raw" });
      const siteOnly = await connectUser(b, { sub: "raw2", site: "raw.example" });
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: "user(raw)", event: "ping", data: { n: 1 } })));
      expect(await onA.next("ping")).toEqual([{ n: 1 }]);
      expect(await onB.next("ping")).toEqual([{ n: 1 }]);
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: ["site(raw.example)"], except: "user(raw)", data: "hi" })));
      expect(await siteOnly.next("message")).toEqual(["hi"]);
      await settle(onA, "user(raw)");
      expect(onA.count("message")).toBe(0);
      expect(onA.count("ping")).toBe(1);
      expect(onB.count("ping")).toBe(1);
    });

    it("delivers a raw frame's data as written: binary, multi-byte text, floats, large and negative integers, nil, nesting", async () => {
      const onA = await connectUser(a, { sub: "raw-types" });
      const data = EVERY_KIND_OF_DATA;
      const binary = Uint8Array.of(0, 1, 127, 128, 255);
      const frame = { room: "user(raw-types)", event: "typed", data: { ...data, binary }, id: "raw-types-1", ts: Date.now() };
      await cluster.publisher.publish("socket.io#emitter", bytes(encode(frame)));
      const [received] = (await onA.next("typed")) as [Record<string, unknown>];
      const { binary: receivedBinary, ...rest } = received;
      expect(rest).toEqual(data);
      expect([...(receivedBinary as Uint8Array)]).toEqual([...binary]);
    });

    it("delivers a raw frame whose data has a __proto__ key: the client receives the rest of the map", async () => {
      const onA = await connectUser(a, { sub: "raw-proto" });
      // JSON.parse makes "__proto__" an own key, which the encoder writes like any other.
      const data = JSON.parse('{"__proto__": {"polluted": true}, "kept": 2}') as unknown;
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: "user(raw-proto)", event: "proto", data })));
      expect(await onA.next("proto")).toEqual([{ kept: 2 }]);
    });

    it("counts a raw frame on the nodes that hold its rooms only, and reads one with _in on every node", async () => {
      const onA = await connectUser(a, { sub: "held-a" });
      const onB = await connectUser(b, { sub: "held-b" });
      const delivered = () =>
        Promise.all([a, b].map((node) => readCounter(node, "switchboard_frames_delivered_total", { channel: "socket.io#emitter" })));
      const [beforeA, beforeB] = (await delivered()) as [number, number];
      // Only node a holds user(held-a): node b skips the frame undecoded, and counts nothing.
      await cluster.publisher.publish(
        "socket.io#emitter",
        bytes(encode({ data: { big: "x".repeat(5000) }, room: "user(held-a)", event: "only-a" })),
      );
      expect(await onA.next("only-a")).toEqual([{ big: "x".repeat(5000) }]);
      // Its room is held on a only, but _in adds one held on b: b must read it.
      await cluster.publisher.publish(
        "socket.io#emitter",
        bytes(encode({ room: "user(held-a)", _in: "user(held-b)", event: "both", data: 2 })),
      );
      expect(await onA.next("both")).toEqual([2]);
      expect(await onB.next("both")).toEqual([2]);
      await settle(onB, "user(held-b)");
      expect(onB.count("only-a")).toBe(0);
      expect(await delivered()).toEqual([beforeA + 2, beforeB + 1]);
    });

    it("delivers frames in the array layout of the first socket.io-emitter releases", async () => {
      const client = await connectUser(a, { sub: "legacy-array" });
      const frame = [
        { type: 2, data: ["chat", "from php", 3], nsp: "/" },
        { rooms: ["user(legacy-array)"], flags: {} },
      ];
      await cluster.publisher.publish("socket.io#emitter", bytes(encode(frame)));
      expect(await client.next("chat")).toEqual(["from php", 3]);
    });

    it("delivers what an unmodified @socket.io/redis-emitter publishes", async () => {
      const onA = await connectUser(a, { sub: "stock" });
      const onB = await connectUser(b, { sub: "stock" });
      new Emitter(cluster.publisher).to("user(stock)").emit("stock-event", { ok: true });
      expect(await onA.next("stock-event")).toEqual([{ ok: true }]);
      expect(await onB.next("stock-event")).toEqual([{ ok: true }]);
    });

    it("publishes raw frames with the emitter package's encoder", async () => {
      const client = await connectUser(b, { sub: "enc" });
      await emitter.publishFrame({ room: "user(enc)", event: "encoded", data: [1, "two"] });
      expect(await client.next("encoded")).toEqual([[1, "two"]]);
    });

    it("sends kicked and then disconnects every socket of a user", async () => {
      const onA = await connectUser(a, { sub: "kick-me" });
      const onB = await connectUser(b, { sub: "kick-me" });
      const bystander = await connectUser(b, { sub: "stay" });
      await emitter.disconnectUser("kick-me");
      for (const client of [onA, onB]) {
        expect(await client.next("kicked")).toEqual([{ code: "kicked", message: expect.any(String) }]);
        expect(await client.next("disconnect")).toEqual(["io server disconnect", undefined]);
      }
      expect(bystander.socket.connected).toBe(true);
    });
  });

  describe("unauthenticated sockets", () => {
    it("receive nothing, not even messages to everyone, until they authenticate", async () => {
      const waiting = openClient(a);
      await waiting.next("connect");
      const authed = await connectUser(a, { sub: "present" });
      await emitter.emit("everyone", 1);
      new Emitter(cluster.publisher).emit("everyone-stock", 2);
      await cluster.publisher.publish("socket.io#emitter", bytes(encode([{ type: 2, data: ["everyone-array", 3], nsp: "/" }, {}])));
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: waiting.socket.id as string, data: 4 })));
      await authed.next("everyone");
      await authed.next("everyone-stock");
      await authed.next("everyone-array");
      await sleep(200);
      expect(waiting.received.map((entry) => entry.event)).toEqual(["connect"]);
    });
  });

  describe("bad frames", () => {
    it("drops garbage on socket.io#emitter with a warning and a counter, and delivers the next good frame", async () => {
      const client = await connectUser(a, { sub: "after-garbage" });
      const before = await readCounter(a, "switchboard_frames_dropped_total", { channel: "socket.io#emitter" });
      await cluster.publisher.publish("socket.io#emitter", Buffer.from([0xc1, 0xff, 0x00]));
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: 42, data: 1 })));
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ data: 1 })));
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: "user(after-garbage)", data: "good" })));
      expect(await client.next("message")).toEqual(["good"]);
      expect(await readCounter(a, "switchboard_frames_dropped_total", { channel: "socket.io#emitter" })).toBe(before + 3);
      expect(
        await readCounter(a, "switchboard_frames_dropped_total", { channel: "socket.io#emitter", reason: "frame_not_msgpack" }),
      ).toBeGreaterThanOrEqual(1);
      // The first frame of each kind is logged in full; repeats of a kind are summarised (see "a flood of bad frames").
      const warnings = cluster.nodes[0]!.lines.filter((line) => line.includes('"dropped a frame"') && line.includes("socket.io#emitter"));
      expect(warnings.some((line) => line.includes('"code":"frame_not_msgpack"'))).toBe(true);
      expect(warnings.some((line) => line.includes('"code":"frame_invalid"'))).toBe(true);
    });

    it("survives garbage on the adapter's channels and keeps delivering", async () => {
      const onA = await connectUser(a, { sub: "adapter-garbage" });
      const onB = await connectUser(b, { sub: "adapter-garbage" });
      const before = await readCounter(b, "switchboard_frames_dropped_total", { channel: "adapter" });
      for (const channel of ["socket.io#/#", "socket.io#/#user(adapter-garbage)#"]) {
        await cluster.publisher.publish(channel, Buffer.from([0xc1, 0x00, 0xff]));
        await cluster.publisher.publish(channel, bytes(encode("just a string")));
        await cluster.publisher.publish(
          channel,
          bytes(encode(["uid", { type: 2, data: ["x"], nsp: "/" }, { rooms: "user(adapter-garbage)" }])),
        );
        await cluster.publisher.publish(channel, bytes(encode(["uid", null, null])));
      }
      for (const channel of ["socket.io-request#/#", "socket.io-response#/#"]) {
        await cluster.publisher.publish(channel, Buffer.from([0xc0]));
        await cluster.publisher.publish(channel, bytes(encode({ type: 5 })));
        await cluster.publisher.publish(channel, Buffer.from('{"type":2,"opts":null,"rooms":null}'));
        await cluster.publisher.publish(channel, Buffer.from('{"type":5}'));
      }
      new Emitter(cluster.publisher).to("user(adapter-garbage)").emit("still-alive", 1);
      expect(await onA.next("still-alive")).toEqual([1]);
      expect(await onB.next("still-alive")).toEqual([1]);
      expect(await readCounter(b, "switchboard_frames_dropped_total", { channel: "adapter" })).toBeGreaterThanOrEqual(before + 8);
      expect(onB.count("x")).toBe(0);
      for (const node of cluster.nodes) expect(node.child.exitCode).toBeNull();
      // The nodes still talk to each other through the adapter's request channel.
      await emitter.disconnectUser("adapter-garbage");
      await onA.next("disconnect");
      await onB.next("disconnect");
    });
  });

  describe("a node failure", () => {
    it("leaves the other node delivering", async () => {
      const survivor = await connectUser(a, { sub: "survivor" });
      const doomed = await connectUser(b, { sub: "survivor" });
      await cluster.nodes[1]!.kill();
      await doomed.next("disconnect");
      await emitter.toUser("survivor").emit("after-crash", 1);
      await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: "user(survivor)", event: "raw-after-crash", data: 2 })));
      expect(await survivor.next("after-crash")).toEqual([1]);
      expect(await survivor.next("raw-after-crash")).toEqual([2]);
      await waitFor("a ready survivor", async () => ((await fetch(`${a}/readyz`)).status === 200 ? true : undefined));
    });
  });
});

import { connect as tcpConnect } from "node:net";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken, openClient } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { exitCode, readCounter, startGateway } from "./harness/gateway.js";
import { sleep, waitFor } from "./harness/ports.js";
import { closeAllRaw, openRawAuthenticated } from "./harness/raw.js";

let cluster: Cluster;
let emitter: SwitchboardEmitter;
let a: string;
let b: string;

beforeAll(async () => {
  cluster = await startCluster(2, { SUBSCRIBE_ROOMS: "inbox({user}),topic(*)", DRAIN_TIMEOUT_MS: "2000" });
  [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
  emitter = createEmitter({ redis: cluster.redis.url });
});
afterAll(async () => {
  await emitter?.close();
  await cluster?.close();
});
afterEach(() => {
  closeAllClients();
  closeAllRaw();
});

/** Both nodes are up and deliver to a user with a socket on each. */
async function bothNodesDeliver(tag: string): Promise<void> {
  for (const node of cluster.nodes) expect(node.child.exitCode, `${node.nodeId} exited:\n${node.lines.slice(-5).join("\n")}`).toBeNull();
  const onA = await connectUser(a, { sub: `alive-${tag}` });
  const onB = await connectUser(b, { sub: `alive-${tag}` });
  await emitter.toUser(`alive-${tag}`).emit("alive", tag);
  expect(await onA.next("alive")).toEqual([tag]);
  expect(await onB.next("alive")).toEqual([tag]);
}

describe("a hostile client packet", () => {
  it("a subscribe whose room is 8,000 nested arrays is refused with payload_invalid and the node stays up", async () => {
    const raw = await openRawAuthenticated(a, mintToken({ sub: "nester" }));
    raw.send(`421["subscribe",{"room":${"[".repeat(8000)}${"]".repeat(8000)}}]`);
    const ack = await raw.next((message) => message.startsWith("431"));
    expect(JSON.parse(ack.slice(3))).toEqual([{ ok: false, error: { code: "payload_invalid", message: expect.any(String) } }]);
    // The same without an acknowledgement: answered with an `error` event.
    raw.send(`42["subscribe",{"room":${"[".repeat(8000)}${"]".repeat(8000)}}]`);
    const error = await raw.next((message) => message.startsWith('42["error"'));
    expect(JSON.parse(error.slice(2))).toEqual(["error", { code: "payload_invalid", message: expect.any(String), event: "subscribe" }]);
    await bothNodesDeliver("nested");
  });
});

describe("a hostile frame on the adapter's request channel", () => {
  it.each([
    ["a SOCKETS request whose rooms is a number", '{"type":0,"requestId":"r","rooms":5}'],
    ["a BROADCAST request whose packet is null", '{"type":7,"requestId":"r2","packet":null,"opts":{"rooms":[],"except":[]}}'],
    ["a BROADCAST request whose packet is a string", '{"type":7,"requestId":"r3","packet":"x","opts":{"rooms":[],"except":[]}}'],
    ["a BROADCAST request without opts", '{"type":7,"requestId":"r4","packet":{"type":2,"data":["x"],"nsp":"/"}}'],
    ["an ALL_ROOMS request with an object as requestId", '{"type":1,"requestId":{"a":1}}'],
  ])("%s is dropped, counted, and both nodes keep delivering", async (_what, frame) => {
    const before = await readCounter(b, "switchboard_frames_dropped_total", { channel: "adapter" });
    await cluster.publisher.publish("socket.io-request#/#", frame);
    await waitFor("the drop to be counted", async () =>
      (await readCounter(b, "switchboard_frames_dropped_total", { channel: "adapter" })) > before ? true : undefined,
    );
    await sleep(100);
    await bothNodesDeliver(`request-${frame.length}`);
  });
});

describe("a client that stops reading", () => {
  it("is dropped as a slow consumer once its outbound buffer passes the limit, and the node's memory stays bounded", async () => {
    const raw = await openRawAuthenticated(b, mintToken({ sub: "slow-reader" }), { answerPings: false });
    raw.ws.pause();
    // It still answers the heartbeat blindly, so engine.io alone would keep it forever.
    const pong = setInterval(() => raw.ws.send("3"), 1000);
    try {
      const blob = "x".repeat(100_000);
      for (let index = 0; index < 300; index++) await emitter.toUser("slow-reader").emit("blob", blob);
      await waitFor("the slow consumer to be dropped", async () =>
        (await readCounter(b, "switchboard_limit_hits_total", { kind: "slow_consumer" })) >= 1 ? true : undefined,
      );
      expect(cluster.nodes[1]!.lines.some((line) => line.includes('"code":"slow_consumer"'))).toBe(true);
      // Once it is dropped, what is published to its room costs nothing more. Without the limit the
      // node kept every byte: 90 MB more here grew its RSS by 66 to 158 MB.
      const rssBefore = await readCounter(b, "switchboard_process_resident_memory_bytes");
      for (let index = 0; index < 900; index++) await emitter.toUser("slow-reader").emit("blob", blob);
      await sleep(500);
      const rssAfter = await readCounter(b, "switchboard_process_resident_memory_bytes");
      expect(rssAfter - rssBefore).toBeLessThan(32 * 1024 * 1024);
    } finally {
      clearInterval(pong);
    }
    await bothNodesDeliver("slow");
  });
});

describe("room patterns", () => {
  it.each(["*", "a*", "*e"])("a token whose sub is %j cannot read inbox(alice) through inbox({user})", async (sub) => {
    const client = await connectUser(a, { sub });
    expect(await client.socket.emitWithAck("subscribe", { room: "inbox(alice)" })).toMatchObject({ ok: false, error: { code: "subscription_forbidden" } });
    expect(await client.socket.emitWithAck("subscribe", { room: `inbox(${sub})` })).toEqual({ ok: true, room: `inbox(${sub})` });
  });

  it("a socket cannot join another socket's own room even when every room is allowed", async () => {
    const node = await startGateway({ SUBSCRIBE_ROOMS: "*" });
    try {
      const victim = await connectUser(node.url, { sub: "victim" });
      const spy = await connectUser(node.url, { sub: "spy" });
      const reply = await spy.socket.emitWithAck("subscribe", { room: victim.socket.id });
      expect(reply).toMatchObject({ ok: false, error: { code: "subscription_forbidden" } });
      expect(await spy.socket.emitWithAck("subscribe", { room: "anything-else" })).toEqual({ ok: true, room: "anything-else" });
    } finally {
      await node.stop();
    }
  });
});

describe("shutdown", () => {
  it("SIGTERM exits within DRAIN_TIMEOUT_MS while an HTTP request has sent half its headers", async () => {
    const node = await startGateway({ DRAIN_TIMEOUT_MS: "1500" });
    const { port } = new URL(node.url);
    const half = tcpConnect(Number(port), "127.0.0.1");
    await new Promise<void>((resolve) => half.once("connect", () => resolve()));
    half.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    half.on("error", () => {});
    const client = await connectUser(node.url, { sub: "during-shutdown" });
    const started = Date.now();
    node.child.kill("SIGTERM");
    expect(await exitCode(node.child, 8000)).toBe(0);
    expect(Date.now() - started).toBeLessThan(1500 + 1500);
    await client.next("disconnect");
    half.destroy();
  });
});

describe("an unauthenticated socket", () => {
  it("is never sent anything by a JSON BROADCAST request with empty rooms", async () => {
    const waiting = openClient(a);
    await waiting.next("connect");
    const authed = await connectUser(a, { sub: "present-json" });
    await cluster.publisher.publish(
      "socket.io-request#/#",
      JSON.stringify({ type: 7, requestId: "bcast", uid: "x", packet: { type: 2, data: ["json-everyone", 1], nsp: "/" }, opts: { rooms: [], except: [] } }),
    );
    expect((await authed.next("json-everyone"))[0]).toBe(1);
    await sleep(200);
    expect(waiting.received.map((entry) => entry.event)).toEqual(["connect"]);
  });
});

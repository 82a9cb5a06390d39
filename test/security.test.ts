import { createHmac } from "node:crypto";
import { connect as tcpConnect } from "node:net";
import { encode } from "@msgpack/msgpack";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken, openClient } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { TEST_SECRET, exitCode, readCounter, startGateway } from "./harness/gateway.js";
import { sleep, waitFor } from "./harness/ports.js";
import { closeAllRaw, openRaw, openRawAuthenticated } from "./harness/raw.js";

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
      expect(
        cluster.nodes[1]!.lines.some((line) => line.includes('"code":"slow_consumer"') && line.includes('"address":"127.0.0.1"')),
      ).toBe(true);
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

describe("a client that keeps reading", () => {
  it("is never taken for a slow consumer, however much is sent to it over time", async () => {
    // Six times CLIENT_MAX_BUFFER_BYTES (1 MiB) in all, each blob sent once the one before arrived, so
    // nothing ever waits: a watch that counted every byte sent, not only what is queued, would drop it.
    const reader = await connectUser(b, { sub: "steady-reader" });
    const before = await readCounter(b, "switchboard_limit_hits_total", { kind: "slow_consumer" });
    const blob = "y".repeat(100_000);
    for (let index = 0; index < 60; index++) {
      await emitter.toUser("steady-reader").emit("blob", { index, blob });
      await reader.next("blob", ([data]) => (data as { index: number }).index === index);
    }
    expect(reader.socket.connected).toBe(true);
    expect(await readCounter(b, "switchboard_limit_hits_total", { kind: "slow_consumer" })).toBe(before);
  });
});

describe("room patterns", () => {
  it.each(["*", "a*", "*e"])("a token whose sub is %j cannot read inbox(alice) through inbox({user})", async (sub) => {
    const client = await connectUser(a, { sub });
    expect(await client.socket.emitWithAck("subscribe", { room: "inbox(alice)" })).toMatchObject({
      ok: false,
      error: { code: "subscription_forbidden" },
    });
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
      JSON.stringify({
        type: 7,
        requestId: "bcast",
        uid: "x",
        packet: { type: 2, data: ["json-everyone", 1], nsp: "/" },
        opts: { rooms: [], except: [] },
      }),
    );
    expect((await authed.next("json-everyone"))[0]).toBe(1);
    await sleep(200);
    expect(waiting.received.map((entry) => entry.event)).toEqual(["connect"]);
  });
});

describe("tokens, end to end", () => {
  const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
  const signed = (header: object, payload: unknown) => {
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${createHmac("sha256", TEST_SECRET).update(input).digest("base64url")}`;
  };
  const refusal = async (token: string) => {
    const client = openClient(a, { auth: { token } });
    const [err] = (await client.next("connect_error")) as [Error & { data: { code: string } }];
    return err.data.code;
  };

  it("refuses an unknown crit extension, a non-JSON payload and a stripped signature with their codes, logging no error", async () => {
    const linesBefore = cluster.nodes[0]!.lines.length;
    expect(await refusal(signed({ alg: "HS256", typ: "JWT", crit: ["b64"], b64: false }, { sub: "c" }))).toBe("token_malformed");
    expect(await refusal(signed({ alg: "HS256", typ: "JWT" }, "{not json"))).toBe("token_malformed");
    const good = mintToken({ sub: "s" });
    expect(await refusal(good.slice(0, good.lastIndexOf(".") + 1))).toBe("token_invalid_signature");
    expect(cluster.nodes[0]!.lines.slice(linesBefore).filter((line) => line.includes('"level":50'))).toEqual([]);
  });
});

describe("connections that do not authenticate", () => {
  it("a refused handshake closes its transport at once, not after Socket.IO's 45 s connect timeout", async () => {
    const raw = await openRaw(a);
    raw.send(`40${JSON.stringify({ token: "not-a-token" })}`);
    expect(await raw.next((message) => message.startsWith("44"))).toContain("token_malformed");
    const code = await Promise.race([raw.closed, sleep(3000).then(() => -1)]);
    expect(code).not.toBe(-1);
  });

  it("a thousand CONNECT attempts on one WebSocket are answered by closing it", async () => {
    const raw = await openRaw(a);
    const before = await readCounter(a, "switchboard_auth_failures_total", { code: "token_invalid_signature" });
    const forged = mintToken({ sub: "x" }, {}, "a-different-secret-of-enough-length!!");
    for (let attempt = 0; attempt < 1000; attempt++) raw.send(`40${JSON.stringify({ token: forged })}`);
    const code = await Promise.race([raw.closed, sleep(3000).then(() => -1)]);
    expect(code).not.toBe(-1);
    // One verification; the rest were refused without verifying again.
    expect((await readCounter(a, "switchboard_auth_failures_total", { code: "token_invalid_signature" })) - before).toBeLessThan(1000);
  });

  it("an engine.io connection that never joins the namespace is closed after AUTH_TIMEOUT_MS", async () => {
    const node = await startGateway({ AUTH_TIMEOUT_MS: "500" });
    try {
      const idle = await openRaw(node.url);
      const code = await Promise.race([idle.closed, sleep(3000).then(() => -1)]);
      expect(code).not.toBe(-1);
    } finally {
      await node.stop();
    }
  });
});

describe("floods and echoes", () => {
  it("a flood of authenticate events is rate limited and the socket dropped, while its neighbours are served", async () => {
    const neighbour = await connectUser(a, { sub: "neighbour" });
    const raw = await openRawAuthenticated(a, mintToken({ sub: "auth-flooder" }));
    const token = JSON.stringify({ token: mintToken({ sub: "auth-flooder" }) });
    for (let index = 0; index < 2000; index++) raw.send(`42["authenticate",${token}]`);
    await raw.next((message) => message.includes('"rate_limited"'));
    expect(await Promise.race([raw.closed, sleep(5000).then(() => -1)])).not.toBe(-1);
    expect(await neighbour.socket.emitWithAck("subscribe", { room: "topic(still-served)" })).toEqual({
      ok: true,
      room: "topic(still-served)",
    });
  });

  it("a refused room name is quoted by at most a few dozen characters", async () => {
    const client = await connectUser(a, { sub: "echo" });
    const reply = await client.socket.emitWithAck("subscribe", { room: "r".repeat(60_000) });
    expect(reply).toMatchObject({ ok: false, error: { code: "payload_invalid" } });
    expect(JSON.stringify(reply).length).toBeLessThan(500);
    const forbidden = await client.socket.emitWithAck("subscribe", { room: `nope(${"n".repeat(190)})` });
    expect(forbidden).toMatchObject({ ok: false, error: { code: "subscription_forbidden" } });
    expect(JSON.stringify(forbidden).length).toBeLessThan(500);
  });

  it("unsubscribing from a user or site room is refused and the socket stays in it", async () => {
    const client = await connectUser(a, { sub: "stays", site: "stays.example" });
    for (const room of ["user(stays)", "user(bob)", "site(stays.example)", client.socket.id as string]) {
      expect(await client.socket.emitWithAck("unsubscribe", { room })).toMatchObject({
        ok: false,
        error: { code: "subscription_forbidden" },
      });
    }
    await emitter.toUser("stays").emit("still-here", 1);
    expect(await client.next("still-here")).toEqual([1]);
  });
});

describe("the Redis side", () => {
  it("a JSON BROADCAST request for the reserved event connect is dropped and its target stays connected", async () => {
    const target = await connectUser(a, { sub: "connect-target" });
    const before = await readCounter(a, "switchboard_frames_dropped_total", { channel: "adapter" });
    await cluster.publisher.publish(
      "socket.io-request#/#",
      JSON.stringify({
        type: 7,
        requestId: "c1",
        uid: "x",
        packet: { type: 2, data: ["connect"], nsp: "/" },
        opts: { rooms: ["user(connect-target)"], except: [] },
      }),
    );
    await waitFor("the drop", async () =>
      (await readCounter(a, "switchboard_frames_dropped_total", { channel: "adapter" })) > before ? true : undefined,
    );
    await emitter.toUser("connect-target").emit("after", 1);
    expect(await target.next("after")).toEqual([1]);
    expect(target.count("disconnect")).toBe(0);
  });

  it("a server-side emit of the event error, JSON or MessagePack, is dropped and both nodes keep serving", async () => {
    const target = await connectUser(b, { sub: "error-target" });
    const before = await readCounter(a, "switchboard_frames_dropped_total", { channel: "adapter" });
    const request = { type: 6, uid: "x", data: ["error", { boom: true }] };
    await cluster.publisher.publish("socket.io-request#/#", JSON.stringify(request));
    await cluster.publisher.publish("socket.io-request#/#", Buffer.from(encode(request)));
    await waitFor("the drops", async () =>
      (await readCounter(a, "switchboard_frames_dropped_total", { channel: "adapter" })) >= before + 2 ? true : undefined,
    );
    await emitter.toUser("error-target").emit("after-error", 1);
    expect(await target.next("after-error")).toEqual([1]);
    for (const node of cluster.nodes) expect(node.child.exitCode).toBeNull();
  });

  it("answers a fetchSockets request without tokens, Authorization headers or cookies", async () => {
    const token = mintToken({ sub: "fetched" });
    const client = openClient(b, { auth: { token }, extraHeaders: { Cookie: "session=secret-cookie" } });
    await client.next("welcome");
    const viaHeader = openClient(b, { extraHeaders: { Authorization: `Bearer ${mintToken({ sub: "fetched" })}` } });
    await viaHeader.next("welcome");
    const listener = cluster.publisher.duplicate();
    await listener.connect();
    const responses: string[] = [];
    await listener.subscribe("socket.io-response#/#", (message) => responses.push(message));
    try {
      await cluster.publisher.publish(
        "socket.io-request#/#",
        JSON.stringify({ type: 5, uid: "probe", requestId: "fetch-1", opts: { rooms: ["user(fetched)"], except: [] } }),
      );
      // Each node answers; the one holding the sockets names them.
      const response = await waitFor("the fetch response of node b", () =>
        responses.find((entry) => entry.includes("fetch-1") && entry.includes("user(fetched)")),
      );
      expect(response).toContain("user(fetched)");
      expect(response).not.toContain(token.split(".")[2]);
      expect(response.toLowerCase()).not.toContain("authorization");
      expect(response).not.toContain("secret-cookie");
    } finally {
      await listener.quit();
    }
  });

  it("MessagePack headers that claim a gigabyte in ten bytes, on the broadcast, request and response channels, are dropped unread and both nodes keep delivering", async () => {
    // An array of eight whose first item is an extension of type 0 claiming about a gigabyte: a decoder
    // that believes the header allocates and fills that much before it finds the bytes missing.
    const claim = Buffer.from("98c93e57ffa3003e12f5", "hex");
    const channels = ["socket.io#/#", "socket.io-request#/#", "socket.io-response#/#"];
    const dropped = () =>
      Promise.all(
        [a, b].map((url) => readCounter(url, "switchboard_frames_dropped_total", { channel: "adapter", reason: "frame_not_msgpack" })),
      );
    const before = await dropped();
    for (const channel of channels) await cluster.publisher.publish(channel, claim);
    await waitFor("every claim dropped on both nodes", async () =>
      (await dropped()).every((count, index) => count >= (before[index] as number) + channels.length) ? true : undefined,
    );
    await bothNodesDeliver("gigabyte-claims");
  });

  it("an array header claiming 24 million items in eight bytes on the raw channel is dropped unread: no node makes room for the items", async () => {
    // A decoder that believes the header allocates every slot (about 190 MB) before it finds the items missing.
    const claim = Buffer.from("dd017100effee688", "hex");
    const heapUsed = () => Promise.all([a, b].map((url) => readCounter(url, "switchboard_nodejs_heap_size_used_bytes")));
    const dropped = () =>
      Promise.all(
        [a, b].map((url) =>
          readCounter(url, "switchboard_frames_dropped_total", { channel: "socket.io#emitter", reason: "frame_not_msgpack" }),
        ),
      );
    const [heapBefore, droppedBefore] = await Promise.all([heapUsed(), dropped()]);
    for (let sent = 0; sent < 3; sent++) await cluster.publisher.publish("socket.io#emitter", claim);
    await waitFor("every claim dropped on both nodes", async () =>
      (await dropped()).every((count, index) => count >= (droppedBefore[index] as number) + 3) ? true : undefined,
    );
    const heapAfter = await heapUsed();
    for (const [index, after] of heapAfter.entries())
      expect(after - (heapBefore[index] as number), `heap growth of node ${index}`).toBeLessThan(64 * 1024 * 1024);
    await bothNodesDeliver("array-claims");
  });

  it("a raw frame for a held room whose data nests 200,000 levels deep is dropped as frame_invalid on the node holding it, which keeps delivering", async () => {
    const holder = await connectUser(a, { sub: "deep-raw" });
    // {room: "user(deep-raw)", data: [[[…nil…]]]}, written byte by byte: no encoder builds this much nesting.
    const head = Buffer.from(encode({ room: "user(deep-raw)", data: 0 })).subarray(0, -1);
    const frame = Buffer.concat([head, Buffer.alloc(200_000, 0x91), Buffer.from([0xc0])]);
    const dropped = () => readCounter(a, "switchboard_frames_dropped_total", { channel: "socket.io#emitter", reason: "frame_invalid" });
    const before = await dropped();
    await cluster.publisher.publish("socket.io#emitter", frame);
    await waitFor("the frame dropped", async () => ((await dropped()) > before ? true : undefined));
    await cluster.publisher.publish("socket.io#emitter", Buffer.from(encode({ room: "user(deep-raw)", event: "after", data: 1 })));
    expect(await holder.next("after")).toEqual([1]);
    expect(holder.count("message")).toBe(0);
    await bothNodesDeliver("deep-raw");
  });

  it("two thousand bad frames cost a few log lines, every one of them counted", async () => {
    const node = cluster.nodes[0]!;
    const before = await readCounter(a, "switchboard_frames_dropped_total", { channel: "socket.io#emitter", reason: "frame_not_msgpack" });
    const linesBefore = node.lines.length;
    await Promise.all(Array.from({ length: 2000 }, () => cluster.publisher.publish("socket.io#emitter", Buffer.from([0xc1]))));
    await waitFor("every drop counted", async () =>
      (await readCounter(a, "switchboard_frames_dropped_total", { channel: "socket.io#emitter", reason: "frame_not_msgpack" })) ===
      before + 2000
        ? true
        : undefined,
    );
    // Its own kind of drop only: summaries of other tests' drops may fall in the same seconds.
    const own = node.lines
      .slice(linesBefore)
      .filter(
        (line) => line.includes("dropped a frame") && line.includes('"code":"frame_not_msgpack"') && line.includes("socket.io#emitter"),
      );
    expect(own.length).toBeLessThanOrEqual(2);
  });

  it("a frame whose event is a 50,000-key map writes a short log line", async () => {
    const node = cluster.nodes[0]!;
    const linesBefore = node.lines.length;
    const event = Object.fromEntries(Array.from({ length: 50_000 }, (_, index) => [`k${index}`, index]));
    // A distinct reason from the other tests' drops, so its first line is logged in full.
    await cluster.publisher.publish("socket.io#/#", Buffer.from(encode(["x", { type: 2, data: [event], nsp: "/" }, { rooms: [] }])));
    await cluster.publisher.publish("socket.io#emitter", Buffer.from(encode({ room: "user(x)", event, data: 1 })));
    await sleep(300);
    for (const line of node.lines.slice(linesBefore)) expect(line.length).toBeLessThan(2000);
  });
});

describe("HTTP", () => {
  it("answers bad bodies and unknown paths with { code, message }", async () => {
    const node = await startGateway({ JWT_SECRET: "" });
    try {
      const post = (body: string, type = "application/json") =>
        fetch(`${node.url}/dev/publish`, { method: "POST", headers: { "content-type": type }, body });
      for (const [response, status, code] of [
        [await post("{not json"), 400, "invalid_request"],
        [await post(""), 400, "invalid_request"],
        [await post("room=x", "application/x-www-form-urlencoded"), 415, "invalid_request"],
        [await post(JSON.stringify({ room: 5, data: 1 })), 400, "invalid_request"],
        [await post(JSON.stringify({ room: "user(1)", event: "connect", data: 1 })), 400, "invalid_event"],
        [await fetch(`${node.url}/no/such/path`), 404, "not_found"],
      ] as const) {
        expect(response.status).toBe(status);
        expect(await response.json()).toEqual({ code, message: expect.any(String) });
        // Nothing of these passes by waiting.
        expect(response.headers.get("retry-after")).toBeNull();
      }
      // Valid JSON that could poison a prototype is refused, and not called "not JSON" alone.
      const poisoned = await post('{"__proto__":{"polluted":1},"room":"user(1)","data":1}');
      expect(poisoned.status).toBe(400);
      expect(((await poisoned.json()) as { message: string }).message).toContain("__proto__");
      // A field that takes one of several types is named, with the types it takes.
      const token = await fetch(`${node.url}/dev/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"user":{}}',
      });
      expect(token.status).toBe(400);
      expect(((await token.json()) as { message: string }).message).toContain("user: expected string or number, received object");
    } finally {
      await node.stop();
    }
  });

  it("never writes a query string to the log", async () => {
    const node = await startGateway({ LOG_LEVEL: "debug" });
    try {
      await fetch(`${node.url}/healthz?token=SECRET-IN-QUERY`);
      await fetch(`${node.url}/nothing-here?access_token=SECRET-IN-QUERY`);
      await waitFor("the request lines", () => (node.lines.some((line) => line.includes('"path":"/nothing-here"')) ? true : undefined));
      expect(node.lines.filter((line) => line.includes("SECRET-IN-QUERY"))).toEqual([]);
      // Probes are logged at debug, not info.
      expect(node.lines.find((line) => line.includes('"path":"/healthz"'))).toContain('"level":20');
    } finally {
      await node.stop();
    }
  });

  it("refuses an unknown NODE_ENV rather than serving development endpoints", async () => {
    const node = await startGateway({ NODE_ENV: "prod", JWT_SECRET: "" }, { wait: "nothing" });
    expect(await exitCode(node.child)).toBe(1);
    expect(node.lines.join("\n")).toContain("config_invalid: NODE_ENV:");
  });

  it("answers /dev/publish with 503 redis_unavailable while Redis is down, never 202", async () => {
    const single = await startCluster(1, { DEV_TOKENS: "1" });
    try {
      const publish = () =>
        fetch(`${single.nodes[0]!.url}/dev/publish`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ room: "user(1)", data: 1 }),
        });
      expect((await publish()).status).toBe(202);
      await single.redis.stop();
      await waitFor("the node to notice", async () => ((await fetch(`${single.nodes[0]!.url}/readyz`)).status === 503 ? true : undefined));
      const response = await publish();
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ code: "redis_unavailable", message: expect.any(String) });
    } finally {
      await single.close();
    }
  });
});

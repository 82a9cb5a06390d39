import { connect as tcpConnect } from "node:net";
import { encode } from "@msgpack/msgpack";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken, openClient } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { type GatewayProcess, readCounter, startGateway } from "./harness/gateway.js";
import { sleep, waitFor } from "./harness/ports.js";
import { closeAllRaw, openRaw, openRawAuthenticated, rawUpgrade } from "./harness/raw.js";

const bytes = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength);
const hits = (url: string, kind: string) => readCounter(url, "switchboard_limit_hits_total", { kind });

afterEach(() => {
  closeAllClients();
  closeAllRaw();
});

describe("per-client limits", () => {
  let cluster: Cluster;
  let url: string;
  beforeAll(async () => {
    cluster = await startCluster(1, {
      CLIENT_MAX_MESSAGE_BYTES: "4096",
      JWT_MAX_BYTES: "1024",
      PAYLOAD_MAX_DEPTH: "8",
      CLIENT_EVENT_RATE: "20",
      CLIENT_MAX_ROOMS: "3",
      USER_MAX_SOCKETS: "2",
      SUBSCRIBE_ROOMS: "room(*)",
      FRAME_MAX_BYTES: "2048",
      API_MAX_BODY_BYTES: "2048",
      HTTP_HEADERS_TIMEOUT_MS: "1000",
      DEV_TOKENS: "1",
    });
    url = cluster.nodes[0]!.url;
  });
  afterAll(() => cluster?.close());

  it("exports every limit kind from the start, at zero or more", async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const kind of [
      "message_size",
      "token_size",
      "payload_depth",
      "event_rate",
      "event_rate_disconnect",
      "rooms_per_socket",
      "slow_consumer",
      "redis_commands",
    ]) {
      expect(text).toContain(`switchboard_limit_hits_total{kind="${kind}"`);
    }
  });

  it("CLIENT_MAX_MESSAGE_BYTES: a larger message closes the connection with WebSocket code 1009", async () => {
    const before = await hits(url, "message_size");
    const raw = await openRawAuthenticated(url, mintToken({ sub: "big-talker" }));
    raw.send(`42["subscribe",${JSON.stringify("x".repeat(5000))}]`);
    expect(await raw.closed).toBe(1009);
    await waitFor("the hit to be counted", async () => ((await hits(url, "message_size")) > before ? true : undefined));
  });

  it("JWT_MAX_BYTES: a longer token is refused with token_malformed at the handshake and in authenticate", async () => {
    const before = await hits(url, "token_size");
    const long = mintToken({ sub: "long", pad: "p".repeat(1200) });
    const client = openClient(url, { auth: { token: long } });
    const [err] = (await client.next("connect_error")) as [Error & { data: { code: string; message: string } }];
    expect(err.data).toEqual({ code: "token_malformed", message: expect.stringContaining("JWT_MAX_BYTES") });
    const viaEvent = openClient(url);
    await viaEvent.next("connect");
    viaEvent.socket.emit("authenticate", { token: long });
    expect(await viaEvent.next("unauthorized")).toEqual([{ code: "token_malformed", message: expect.any(String) }]);
    expect(await hits(url, "token_size")).toBe(before + 2);
  });

  it("PAYLOAD_MAX_DEPTH: a payload nested deeper is refused with payload_invalid", async () => {
    const before = await hits(url, "payload_depth");
    const client = await connectUser(url, { sub: "deep" });
    let room: unknown = "room(x)";
    for (let level = 0; level < 9; level++) room = { room };
    expect(await client.socket.emitWithAck("subscribe", room)).toMatchObject({ ok: false, error: { code: "payload_invalid" } });
    expect(await client.socket.emitWithAck("subscribe", { room: ["room(x)"] })).toMatchObject({
      ok: false,
      error: { code: "payload_invalid" },
    });
    expect(await client.socket.emitWithAck("subscribe", { room: "room(ok)" })).toEqual({ ok: true, room: "room(ok)" });
    expect(await hits(url, "payload_depth")).toBe(before + 1);
  });

  it("CLIENT_MAX_ROOMS: a subscription past the limit is refused with too_many_rooms", async () => {
    const client = await connectUser(url, { sub: "collector" });
    for (const room of ["room(1)", "room(2)", "room(3)"])
      expect(await client.socket.emitWithAck("subscribe", { room })).toEqual({ ok: true, room });
    expect(await client.socket.emitWithAck("subscribe", { room: "room(4)" })).toMatchObject({
      ok: false,
      error: { code: "too_many_rooms" },
    });
    expect(await client.socket.emitWithAck("unsubscribe", { room: "room(1)" })).toEqual({ ok: true, room: "room(1)" });
    expect(await client.socket.emitWithAck("subscribe", { room: "room(4)" })).toEqual({ ok: true, room: "room(4)" });
  });

  it("CLIENT_EVENT_RATE: the excess of a burst is refused with rate_limited, and a socket that keeps it up is disconnected", async () => {
    const client = await connectUser(url, { sub: "flooder" });
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        client.socket
          .timeout(3000)
          .emitWithAck("unsubscribe", { room: `room(${index})` })
          .catch(() => null),
      ),
    );
    const refused = replies.filter((reply) => (reply as { error?: { code?: string } } | null)?.error?.code === "rate_limited");
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(client.socket.connected).toBe(true);
    // No acknowledgement asked: refusals come back as `error` events.
    for (let index = 0; index < 200 && client.socket.connected; index++) client.socket.emit("unsubscribe", { room: "room(y)" });
    expect((await client.next("error", (args) => (args[0] as { code?: string }).code === "rate_limited"))[0]).toMatchObject({
      event: "unsubscribe",
    });
    await client.next("disconnect", () => true, 5000);
    expect(await hits(url, "event_rate_disconnect")).toBeGreaterThanOrEqual(1);
  });

  it("CLIENT_EVENT_RATE: authenticate costs ten event points", async () => {
    const client = await connectUser(url, { sub: "refresher" });
    const replies = await Promise.all(
      [1, 2, 3].map(() => client.socket.emitWithAck("authenticate", { token: mintToken({ sub: "refresher" }) })),
    );
    expect(replies.filter((reply) => (reply as { user?: string }).user === "refresher").length).toBeLessThanOrEqual(2);
    expect(replies.some((reply) => (reply as { error?: { code?: string } }).error?.code === "rate_limited")).toBe(true);
  });

  it("USER_MAX_SOCKETS: a user's extra socket is refused with user_connection_limit, and admitted once one leaves", async () => {
    const first = await connectUser(url, { sub: "busy" });
    await connectUser(url, { sub: "busy" });
    const third = openClient(url, { auth: { token: mintToken({ sub: "busy" }) } });
    const [err] = (await third.next("connect_error")) as [Error & { data: { code: string } }];
    expect(err.data.code).toBe("user_connection_limit");
    const viaEvent = openClient(url);
    await viaEvent.next("connect");
    viaEvent.socket.emit("authenticate", { token: mintToken({ sub: "busy" }) });
    expect(await viaEvent.next("unauthorized")).toEqual([{ code: "user_connection_limit", message: expect.any(String) }]);
    await connectUser(url, { sub: "someone-else" });
    first.close();
    await waitFor("a free place", async () => {
      const again = openClient(url, { auth: { token: mintToken({ sub: "busy" }) } });
      return Promise.race([again.next("welcome").then(() => true), again.next("connect_error").then(() => undefined)]);
    });
  });

  it("FRAME_MAX_BYTES: a larger frame on any channel is dropped before decoding and counted", async () => {
    const client = await connectUser(url, { sub: "framed" });
    const beforeRaw = await readCounter(url, "switchboard_frames_dropped_total", {
      channel: "socket.io#emitter",
      reason: "frame_too_large",
    });
    const beforeAdapter = await readCounter(url, "switchboard_frames_dropped_total", { channel: "adapter", reason: "frame_too_large" });
    const big = { room: "user(framed)", event: "big", data: "d".repeat(3000) };
    await cluster.publisher.publish("socket.io#emitter", bytes(encode(big)));
    await cluster.publisher.publish(
      "socket.io#/#",
      bytes(encode(["x", { type: 2, data: ["big", "d".repeat(3000)], nsp: "/" }, { rooms: ["user(framed)"] }])),
    );
    await cluster.publisher.publish("socket.io-request#/#", JSON.stringify({ type: 1, requestId: "r".repeat(3000) }));
    await cluster.publisher.publish("socket.io#emitter", bytes(encode({ room: "user(framed)", event: "small", data: 1 })));
    expect(await client.next("small")).toEqual([1]);
    expect(client.count("big")).toBe(0);
    expect(await readCounter(url, "switchboard_frames_dropped_total", { channel: "socket.io#emitter", reason: "frame_too_large" })).toBe(
      beforeRaw + 1,
    );
    await waitFor("both adapter drops", async () =>
      (await readCounter(url, "switchboard_frames_dropped_total", { channel: "adapter", reason: "frame_too_large" })) === beforeAdapter + 2
        ? true
        : undefined,
    );
    expect(await hits(url, "frame_size")).toBeGreaterThanOrEqual(3);
  });

  it("API_MAX_BODY_BYTES: a larger HTTP body is answered 413 payload_too_large", async () => {
    const response = await fetch(`${url}/dev/publish`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ room: "user(x)", data: "z".repeat(3000) }),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({ code: "payload_too_large", message: expect.any(String) });
    expect(await hits(url, "http_body_size")).toBeGreaterThanOrEqual(1);
  });

  it("HTTP_HEADERS_TIMEOUT_MS: a client trickling header lines is cut off", async () => {
    const { port } = new URL(url);
    const socket = tcpConnect(Number(port), "127.0.0.1");
    socket.on("error", () => {});
    const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now())));
    socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    const started = Date.now();
    const trickle = setInterval(() => socket.writable && socket.write(`X-Slow-${Date.now()}: 1\r\n`), 300);
    try {
      const at = await Promise.race([closed, sleep(8000).then(() => 0)]);
      expect(at, "the server closed the connection").toBeGreaterThan(0);
      expect(at - started).toBeLessThan(8000);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  });
});

describe("REDIS_MAX_PENDING_COMMANDS", () => {
  it("refuses what would wait past the limit for a Redis that does not answer, with redis_unavailable, and serves again once it does", async () => {
    const cluster = await startCluster(1, { REDIS_MAX_PENDING_COMMANDS: "20", DEV_TOKENS: "1" });
    try {
      const { url } = cluster.nodes[0]!;
      const client = await connectUser(url, { sub: "patient", services: ["anything"] });
      const publish = (data: number) =>
        fetch(`${url}/dev/publish`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ room: "user(patient)", event: "note", data }),
        });
      expect((await publish(0)).status).toBe(202);
      await client.next("note");
      const before = await hits(url, "redis_commands");
      // Stopped, Redis keeps its connections open and answers nothing: a publish waits for an answer.
      const answers = await cluster.redis.whileStopped(async () => {
        const sent = Array.from({ length: 60 }, (_, index) => publish(index + 1));
        // Those past the limit are refused at once; the first ones wait.
        const refused = await Promise.all(sent.slice(30));
        // A client's call to a service would wait on the same connection: refused at once too.
        expect(await client.socket.timeout(2000).emitWithAck("request", { service: "anything" })).toMatchObject({
          ok: false,
          error: { code: "service_unavailable", message: expect.stringContaining("REDIS_MAX_PENDING_COMMANDS") },
        });
        return refused;
      });
      for (const response of answers) {
        expect(response.status).toBe(503);
        // A refusal that may pass later tells HTTP clients when to try again.
        expect(response.headers.get("retry-after")).toBe("1");
        const body = (await response.json()) as { code: string; message: string };
        expect(body.code).toBe("redis_unavailable");
        expect(body.message).toContain("REDIS_MAX_PENDING_COMMANDS");
      }
      expect(await hits(url, "redis_commands")).toBeGreaterThanOrEqual(before + 30);
      // Redis answers again: the node publishes as before.
      await waitFor("a publish to go through", async () => ((await publish(1000)).status === 202 ? true : undefined));
      await client.next("note", (args) => args[0] === 1000);
    } finally {
      await cluster.close();
    }
  });
});

describe("admission limits", () => {
  let node: GatewayProcess | undefined;
  afterEach(async () => {
    await node?.stop();
    node = undefined;
  });
  const handshake = (target: string, headers: Record<string, string> = {}) =>
    fetch(`${target}/socket.io/?EIO=4&transport=polling`, { headers });

  it("IP_CONNECTIONS_PER_SECOND: a burst from one address is answered 429 connection_rate_limited", async () => {
    node = await startGateway({ IP_CONNECTIONS_PER_SECOND: "3" });
    const target = node.url;
    const responses = await Promise.all(Array.from({ length: 10 }, () => handshake(target)));
    const refused = responses.filter((response) => response.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(4);
    for (const response of refused) expect(response.headers.get("retry-after")).toBe("1");
    expect(await refused[0]!.json()).toEqual({ code: "connection_rate_limited", message: expect.any(String) });
    expect(await hits(target, "ip_connection_rate")).toBe(refused.length);
  });

  it("IP_CONNECTIONS_PER_SECOND is counted in Redis, shared by the nodes, and admission goes on while Redis is down", async () => {
    const shared = await startCluster(2, { IP_CONNECTIONS_PER_SECOND: "100" });
    try {
      expect((await handshake(shared.nodes[0]!.url)).status).toBe(200);
      const keys = await shared.publisher.keys("switchboard:rate:connections*");
      expect(keys).toEqual(["switchboard:rate:connections:127.0.0.1"]);
      await shared.redis.stop();
      expect((await handshake(shared.nodes[1]!.url)).status).toBe(200);
    } finally {
      await shared.close();
    }
  });

  it("IP_CONNECTIONS_PER_SECOND: while Redis is connected but does not answer, the node counts new connections itself rather than holding them", async () => {
    const stalled = await startCluster(1, { IP_CONNECTIONS_PER_SECOND: "3" });
    try {
      const { url } = stalled.nodes[0]!;
      expect((await handshake(url)).status).toBe(200);
      // Stopped, Redis keeps its connections open and answers nothing.
      const statuses = await stalled.redis.whileStopped(() =>
        Promise.all(
          Array.from({ length: 6 }, () => Promise.race([handshake(url).then((response) => response.status), sleep(10_000).then(() => 0)])),
        ),
      );
      // The node's own counter of 3 a second: three admitted, three refused, none left waiting.
      expect(statuses.sort()).toEqual([200, 200, 200, 429, 429, 429]);
    } finally {
      await stalled.close();
    }
  });

  it("IP_MAX_CONNECTIONS: one address past the limit is refused 429 ip_connection_limit on both transports, until one closes", async () => {
    node = await startGateway({ IP_MAX_CONNECTIONS: "2", IP_CONNECTIONS_PER_SECOND: "0" });
    const first = await openRaw(node.url);
    await openRaw(node.url);
    expect(await rawUpgrade(node.url)).toEqual({ status: 429, body: expect.stringContaining('"code":"ip_connection_limit"') });
    const refused = await handshake(node.url);
    expect(refused.status).toBe(429);
    // One of this address's connections may close: worth trying again.
    expect(refused.headers.get("retry-after")).toBe("1");
    first.close();
    const target = node.url;
    await waitFor("the address to have a free place", async () => ((await handshake(target)).status === 200 ? true : undefined));
  });

  it("MAX_CONNECTIONS: a full node answers 503 node_connection_limit", async () => {
    node = await startGateway({ MAX_CONNECTIONS: "2", IP_CONNECTIONS_PER_SECOND: "0" });
    await openRaw(node.url);
    await openRaw(node.url);
    const response = await handshake(node.url);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
    expect(await response.json()).toEqual({ code: "node_connection_limit", message: expect.any(String) });
    expect((await rawUpgrade(node.url)).status).toBe(503);
    expect(await hits(node.url, "node_connections")).toBe(2);
  });

  it("TRUST_PROXY: X-Forwarded-For names the client only through a trusted proxy", async () => {
    node = await startGateway({ IP_MAX_CONNECTIONS: "1", IP_CONNECTIONS_PER_SECOND: "0", TRUST_PROXY: "loopback" });
    await openRaw(node.url, { headers: { "X-Forwarded-For": "203.0.113.1" } });
    await openRaw(node.url, { headers: { "X-Forwarded-For": "203.0.113.2" } });
    expect((await rawUpgrade(node.url, { "X-Forwarded-For": "203.0.113.1" })).status).toBe(429);
    await node.stop();
    node = await startGateway({ IP_MAX_CONNECTIONS: "1", IP_CONNECTIONS_PER_SECOND: "0" });
    await openRaw(node.url, { headers: { "X-Forwarded-For": "203.0.113.1" } });
    // Not trusted: every connection is 127.0.0.1, whatever the header says.
    expect((await rawUpgrade(node.url, { "X-Forwarded-For": "203.0.113.2" })).status).toBe(429);
  });
});

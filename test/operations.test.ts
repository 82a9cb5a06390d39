import { type ConnectionState, connect } from "@switchboard/client";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { createClient } from "redis";
import { afterEach, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken, openClient } from "./harness/clients.js";
import { type GatewayProcess, exitCode, readCounter, startGateway } from "./harness/gateway.js";
import { freePort, sleep, waitFor } from "./harness/ports.js";
import { startProxy } from "./harness/proxy.js";
import { type RedisServer, startRedis } from "./harness/redis.js";

const stoppers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  closeAllClients();
  for (const stop of stoppers.splice(0).reverse()) await stop().catch(() => {});
});

async function node(env: Record<string, string>, wait: "ready" | "alive" = "ready"): Promise<GatewayProcess> {
  const started = await startGateway(env, { wait });
  stoppers.push(() => started.stop());
  return started;
}
async function redis(port?: number): Promise<RedisServer> {
  const started = await startRedis(port);
  stoppers.push(() => started.stop());
  return started;
}
function emitterFor(url: string): SwitchboardEmitter {
  const emitter = createEmitter({ redis: url, onError: () => {} });
  stoppers.push(() => emitter.close());
  return emitter;
}
const readyz = async (url: string) => {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};
const linesWith = (gateway: GatewayProcess, text: string) => gateway.lines.filter((line) => line.includes(text));

describe("Redis that is not there yet", () => {
  it("a node started before its Redis listens at once, is alive but not ready, and becomes ready by itself when Redis appears", async () => {
    const port = await freePort();
    const gateway = await node({ REDIS_URL: `redis://127.0.0.1:${port}` }, "alive");
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    expect(await readyz(gateway.url)).toEqual({ status: 503, body: { code: "redis_unavailable", message: expect.any(String) } });
    // A client may connect meanwhile; it hears from the cluster once Redis is there.
    const client = await connectUser(gateway.url, { sub: "early" });
    await sleep(1500);
    const server = await redis(port);
    await waitFor("the node to become ready", async () => ((await readyz(gateway.url)).status === 200 ? true : undefined));
    expect(gateway.child.exitCode).toBeNull();
    await emitterFor(server.url).toUser("early").emit("late-hello", 1);
    expect(await client.next("late-hello")).toEqual([1]);
    // One line for the outage with its cause, not one per retry.
    expect(linesWith(gateway, "redis is not available yet")).toHaveLength(1);
    expect(linesWith(gateway, "redis is not available yet")[0]).toContain("ECONNREFUSED");
  });
});

describe("a Redis restart while nodes run", () => {
  it("keeps clients connected and delivers what is published after Redis returns within 2 s", async () => {
    const first = await redis();
    const port = first.port;
    const nodes = await Promise.all([
      node({ REDIS_URL: first.url, NODE_ID: "restart-a" }),
      node({ REDIS_URL: first.url, NODE_ID: "restart-b" }),
    ]);
    const clients = await Promise.all(nodes.map((gateway) => connectUser(gateway.url, { sub: "through-restart" })));
    await first.stop();
    await waitFor("both nodes to notice", async () =>
      (await Promise.all(nodes.map((gateway) => readyz(gateway.url)))).every((r) => r.status === 503) ? true : undefined,
    );
    await sleep(1000);
    for (const client of clients) expect(client.socket.connected).toBe(true);
    const second = await redis(port);
    const back = Date.now();
    const emitter = emitterFor(second.url);
    // Published again and again from the moment Redis is back, until both sockets have one.
    let delivered = false;
    const publishing = (async () => {
      while (!delivered && Date.now() - back < 10_000) {
        await emitter
          .toUser("through-restart")
          .emit("after-restart", Date.now())
          .catch(() => {});
        await sleep(50);
      }
    })();
    const [onA, onB] = await Promise.all(clients.map((client) => client.next("after-restart", () => true, 10_000)));
    delivered = true;
    await publishing;
    expect(Math.max(Number(onA?.[0]), Number(onB?.[0])) - back).toBeLessThan(2000);
    for (const client of clients) expect(client.count("disconnect")).toBe(0);
    for (const gateway of nodes) {
      expect(linesWith(gateway, "redis is unavailable")).toHaveLength(1);
      expect(linesWith(gateway, "redis is available again")).toHaveLength(1);
    }
  });
});

describe("room channels (REDIS_SUBSCRIPTIONS=rooms) through a Redis restart", () => {
  it("drops the channel of a room emptied while Redis was away, and holds the one of a room joined meanwhile", async () => {
    const first = await redis();
    const gateway = await node({ REDIS_URL: first.url, NODE_ID: "churn", REDIS_SUBSCRIPTIONS: "rooms" });
    const leaving = await connectUser(gateway.url, { sub: "left-while-away" });
    await first.stop();
    await waitFor("the node to notice", async () => ((await readyz(gateway.url)).status === 503 ? true : undefined));
    leaving.close();
    await waitFor("the socket to be gone", async () =>
      (await readCounter(gateway.url, "switchboard_connected_sockets")) === 0 ? true : undefined,
    );
    const arriving = await connectUser(gateway.url, { sub: "came-while-away" });

    const second = await redis(first.port);
    await waitFor("the node to be ready again", async () => ((await readyz(gateway.url)).status === 200 ? true : undefined));
    const inspector = createClient({ url: second.url });
    await inspector.connect();
    stoppers.push(() => inspector.quit());
    const subscribed = async (user: string) => {
      const channel = `socket.io#/#user(${user})#`;
      return (await inspector.pubSubNumSub(channel))[channel];
    };
    // The Redis client subscribes again to what it held before the outage; what emptied meanwhile is dropped then.
    await waitFor("the emptied room's channel to be dropped", async () => ((await subscribed("left-while-away")) === 0 ? true : undefined));
    expect(await subscribed("came-while-away")).toBe(1);
    expect((await emitterFor(second.url).toUser("came-while-away").emit("hello-again", 1)).subscribers).toBe(1);
    expect(await arriving.next("hello-again")).toEqual([1]);
  });
});

describe("presence through a Redis restart", () => {
  it("writes each node's sockets again once an empty Redis returns, counting none twice", async () => {
    const key = "presence-api-key-of-at-least-32-characters";
    const first = await redis();
    const env = { REDIS_URL: first.url, API_KEYS: key, SUBSCRIBE_ROOMS: "topic(*)" };
    const [a, b] = await Promise.all([node({ ...env, NODE_ID: "again-a" }), node({ ...env, NODE_ID: "again-b" })]);
    const get = async (gateway: GatewayProcess, path: string) =>
      (await (await fetch(`${gateway.url}/api/v1/presence/${path}`, { headers: { authorization: `Bearer ${key}` } })).json()) as Record<
        string,
        unknown
      >;
    const onA = await connectUser(a.url, { sub: "returning", site: "again.example" });
    const onB = await connectUser(b.url, { sub: "returning", site: "again.example" });
    expect(await onB.socket.emitWithAck("subscribe", { room: "topic(again)" })).toMatchObject({ ok: true });
    await waitFor("both sockets counted", async () => ((await get(a, "users/returning")).sockets === 2 ? true : undefined));

    // Redis keeps nothing on disk here: the one that comes back on the same port is empty.
    await first.stop();
    await redis(first.port);
    await waitFor("both sockets counted again", async () => ((await get(b, "users/returning")).sockets === 2 ? true : undefined));
    expect(await get(a, "users/returning")).toEqual({
      online: true,
      sockets: 2,
      nodes: [
        { node: "again-a", sockets: 1 },
        { node: "again-b", sockets: 1 },
      ],
    });
    expect(await get(a, "rooms/topic(again)/count")).toEqual({ sockets: 1, users: 1 });
    expect(await get(a, "rooms/site(again.example)/count")).toEqual({ sockets: 2, users: 1 });

    onA.close();
    await waitFor("one socket left", async () => ((await get(b, "users/returning")).sockets === 1 ? true : undefined));
    // Several batches later it is still one: nothing of the rewrite is written a second time.
    await sleep(600);
    expect(await get(b, "users/returning")).toEqual({ online: true, sockets: 1, nodes: [{ node: "again-b", sockets: 1 }] });
    expect(await get(b, "rooms/topic(again)/count")).toEqual({ sockets: 1, users: 1 });
  });
});

describe("a subscriber that goes silent", () => {
  // Anyone who can publish may write on a node's probe channel: numbers it never sent must not count.
  const forgedProbes = ["1e308", "9007199254740993", "Infinity", "-1", "0x7fffffff", "not a number", "9".repeat(100_000)];
  it.each([
    ["", []],
    [", also after forged probes on its channel", forgedProbes],
  ])("is noticed by its missed probes and replaced, and delivery resumes%s", async (_, forged: string[]) => {
    const server = await redis();
    const proxy = await startProxy(server.port);
    stoppers.push(() => proxy.close());
    const gateway = await node({ REDIS_URL: proxy.url, SUBSCRIBER_PROBE_MS: "200", NODE_ID: "probed" });
    const client = await connectUser(gateway.url, { sub: "listener" });
    const emitter = emitterFor(server.url);
    await emitter.toUser("listener").emit("before", 1);
    expect(await client.next("before")).toEqual([1]);
    if (forged.length > 0) {
      const forger = createClient({ url: server.url });
      await forger.connect();
      stoppers.push(() => forger.quit());
      for (const probe of forged) expect(await forger.publish("switchboard:probe:probed", probe)).toBe(1);
      // Still live after them: the subscriber keeps receiving.
      await emitter.toUser("listener").emit("after forged probes", 1);
      expect(await client.next("after forged probes")).toEqual([1]);
    }
    expect(await readCounter(gateway.url, "switchboard_redis_subscriber_recreations_total")).toBe(0);

    proxy.silenceSubscribers();
    // Redis still counts the silent subscription, so a publisher sees nothing wrong.
    expect((await emitter.toUser("listener").emit("lost", 1)).subscribers).toBeGreaterThanOrEqual(1);
    await waitFor("the subscriber to be replaced", async () =>
      (await readCounter(gateway.url, "switchboard_redis_subscriber_recreations_total")) >= 1 ? true : undefined,
    );
    expect(linesWith(gateway, "received none of its probes")).toHaveLength(1);
    await waitFor("the node to be ready again", async () => ((await readyz(gateway.url)).status === 200 ? true : undefined));
    await emitter.toUser("listener").emit("after", 2);
    expect(await client.next("after")).toEqual([2]);
    expect(client.socket.connected).toBe(true);
  });
});

describe("graceful drain", () => {
  it("SIGTERM with 500 clients: refuses new ones at once, asks each to reconnect spread over DRAIN_SPREAD_MS, and exits 0 within DRAIN_TIMEOUT_MS", async () => {
    const drainTimeoutMs = 8000;
    const spreadMs = 2000;
    const gateway = await node({
      DRAIN_TIMEOUT_MS: String(drainTimeoutMs),
      DRAIN_SPREAD_MS: String(spreadMs),
      IP_CONNECTIONS_PER_SECOND: "0",
      IP_MAX_CONNECTIONS: "0",
    });
    const hints: { at: number; retryAfterMs: number }[] = [];
    const clients = [];
    for (let batch = 0; batch < 10; batch++) {
      const opened = Array.from({ length: 50 }, (_, index) => {
        const client = openClient(gateway.url, { auth: { token: mintToken({ sub: `drained-${batch}-${index}` }) } });
        client.socket.on("reconnect", (hint: { retryAfterMs: number }) => hints.push({ at: Date.now(), retryAfterMs: hint.retryAfterMs }));
        return client;
      });
      await Promise.all(opened.map((client) => client.next("welcome", () => true, 10_000)));
      clients.push(...opened);
    }
    expect(clients).toHaveLength(500);

    const stopping = Date.now();
    gateway.child.kill("SIGTERM");
    await waitFor(
      "readyz to say draining",
      async () => ((await readyz(gateway.url)).body.code === "node_draining" ? true : undefined),
      1000,
    );
    const refused = await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`);
    expect(refused.status).toBe(503);
    // Another node (or this one's replacement) will take the client: try again shortly.
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toEqual({ code: "node_draining", message: expect.any(String) });

    expect(await exitCode(gateway.child, drainTimeoutMs + 5000)).toBe(0);
    const drainedInMs = Date.now() - stopping;
    console.log(`drained 500 clients in ${drainedInMs} ms (spread ${spreadMs} ms, timeout ${drainTimeoutMs} ms)`);
    expect(drainedInMs).toBeLessThan(drainTimeoutMs);
    expect(hints).toHaveLength(500);
    for (const hint of hints) expect(hint.retryAfterMs).toBeGreaterThanOrEqual(0);
    for (const hint of hints) expect(hint.retryAfterMs).toBeLessThanOrEqual(1000);
    // Spread, not all at once: the last hint left well after the first.
    const times = hints.map((hint) => hint.at);
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(spreadMs / 2);
    for (const client of clients) expect(client.socket.connected).toBe(false);
  }, 60_000);
});

describe("the client SDK and a stopping node", () => {
  it("leaves on the reconnect hint and comes back by itself, to the node that took over", async () => {
    const port = await freePort();
    const first = await node({ PORT: String(port), NODE_ID: "stopping", DRAIN_TIMEOUT_MS: "3000", DRAIN_SPREAD_MS: "0" });
    const client = connect({
      url: first.url,
      token: mintToken({ sub: "follower" }),
      socket: { reconnectionDelay: 200, reconnectionDelayMax: 500 },
    });
    stoppers.push(async () => client.close());
    const states: ConnectionState[] = [];
    client.on("state", (state) => states.push(state));
    expect((await client.ready()).node).toBe("stopping");
    first.child.kill("SIGTERM");
    await waitFor("the hint to be followed", () =>
      states.some((state) => state.status === "connecting" && state.reason === "the server asked to reconnect") ? true : undefined,
    );
    expect(await exitCode(first.child)).toBe(0);
    await node({ PORT: String(port), NODE_ID: "successor" });
    const welcome = await waitFor("the client to be back", () => (client.state.status === "connected" ? client.state.welcome : undefined));
    expect(welcome.node).toBe("successor");
    expect(states.some((state) => state.status === "disconnected")).toBe(false);
  });
});

describe("the emitter while Redis is away", () => {
  it("fails fast with redis_unavailable instead of waiting out its publish timeout, and publishes again once Redis is back", async () => {
    const server = await redis();
    const emitter = createEmitter({ redis: server.url, publishTimeoutMs: 30_000, connectWaitMs: 300, onError: () => {} });
    stoppers.push(() => emitter.close());
    await emitter.toUser("x").emit("up", 1);
    await server.stop();
    const started = Date.now();
    await expect(emitter.toUser("x").emit("down", 1)).rejects.toMatchObject({ code: "redis_unavailable" });
    // Far from the 30 s publish timeout: the wait is bounded by connectWaitMs.
    expect(Date.now() - started).toBeLessThan(10_000);
    await redis(server.port);
    await waitFor("the emitter to publish again", async () =>
      (await emitter
        .toUser("x")
        .emit("back", 1)
        .catch(() => undefined))
        ? true
        : undefined,
    );
  });
});

import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { afterEach, describe, expect, it } from "vitest";
import { closeAllClients, connectUser } from "./harness/clients.js";
import { type GatewayProcess, readCounter, startGateway } from "./harness/gateway.js";
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
    const nodes = await Promise.all([node({ REDIS_URL: first.url, NODE_ID: "restart-a" }), node({ REDIS_URL: first.url, NODE_ID: "restart-b" })]);
    const clients = await Promise.all(nodes.map((gateway) => connectUser(gateway.url, { sub: "through-restart" })));
    await first.stop();
    await waitFor("both nodes to notice", async () => ((await Promise.all(nodes.map((gateway) => readyz(gateway.url)))).every((r) => r.status === 503) ? true : undefined));
    await sleep(1000);
    for (const client of clients) expect(client.socket.connected).toBe(true);
    const second = await redis(port);
    const back = Date.now();
    const emitter = emitterFor(second.url);
    // Published again and again from the moment Redis is back, until both sockets have one.
    let delivered = false;
    const publishing = (async () => {
      while (!delivered && Date.now() - back < 10_000) {
        await emitter.toUser("through-restart").emit("after-restart", Date.now()).catch(() => {});
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

describe("a subscriber that goes silent", () => {
  it("is noticed by its missed probes and replaced, and delivery resumes", async () => {
    const server = await redis();
    const proxy = await startProxy(server.port);
    stoppers.push(() => proxy.close());
    const gateway = await node({ REDIS_URL: proxy.url, SUBSCRIBER_PROBE_MS: "200" });
    const client = await connectUser(gateway.url, { sub: "listener" });
    const emitter = emitterFor(server.url);
    await emitter.toUser("listener").emit("before", 1);
    expect(await client.next("before")).toEqual([1]);
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

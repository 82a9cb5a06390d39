import { readFileSync } from "node:fs";
import { encode } from "@msgpack/msgpack";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { createService } from "@switchboard/service";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { readCounter } from "./harness/gateway.js";
import { waitFor } from "./harness/ports.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
let cluster: Cluster;
let emitter: SwitchboardEmitter;
beforeAll(async () => {
  cluster = await startCluster(2);
  emitter = createEmitter({ redis: cluster.redis.url });
});
afterAll(async () => {
  closeAllClients();
  await emitter?.close();
  await cluster?.close();
});

const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();

describe("GET /metrics", () => {
  it("exports every metric the README documents, and documents every one it exports", async () => {
    const text = await scrape(cluster.nodes[0]!.url);
    const exported = new Set([...text.matchAll(/^# TYPE (switchboard_\w+) /gm)].map((match) => match[1]));
    const documented = [...readme.matchAll(/^\| `(switchboard_[a-z_]+)` \|/gm)].map((match) => match[1] ?? "");
    expect(documented.length).toBeGreaterThan(5);
    for (const name of documented) expect(exported, name).toContain(name);
    for (const name of exported) {
      if (/^switchboard_(process_|nodejs_)/.test(name ?? "")) continue;
      expect(documented, `${name} in the README's metrics table`).toContain(name);
    }
  });

  it("has every counter at zero from the start, for every label it documents", async () => {
    const text = await scrape(cluster.nodes[1]!.url);
    for (const series of [
      'switchboard_auth_failures_total{code="token_expired",node="node-b"} 0',
      'switchboard_frames_dropped_total{channel="socket.io#emitter",reason="frame_unsigned",node="node-b"} 0',
      'switchboard_limit_hits_total{kind="slow_consumer",node="node-b"} 0',
      'switchboard_messages_received_total{source="api",node="node-b"} 0',
      'switchboard_redis_subscriber_recreations_total{node="node-b"} 0',
      'switchboard_redis_publish_failures_total{node="node-b"} 0',
      'switchboard_redis_connected{role="subscriber",node="node-b"} 1',
    ]) {
      expect(text).toContain(series);
    }
    expect(text).toMatch(/^switchboard_nodejs_eventloop_lag_seconds\{node="node-b"\} /m);
    expect(text).toMatch(/^switchboard_process_resident_memory_bytes\{node="node-b"\} /m);
  });

  it("counts connections, authenticated sockets and messages by source", async () => {
    const [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
    const before = {
      open: await readCounter(a, "switchboard_open_connections"),
      sockets: await readCounter(a, "switchboard_connected_sockets"),
      adapterA: await readCounter(a, "switchboard_messages_received_total", { source: "adapter" }),
      adapterB: await readCounter(b, "switchboard_messages_received_total", { source: "adapter" }),
      raw: await readCounter(a, "switchboard_messages_received_total", { source: "raw_frame" }),
    };
    const client = await connectUser(a, { sub: "metered" });
    expect(await readCounter(a, "switchboard_open_connections")).toBe(before.open + 1);
    expect(await readCounter(a, "switchboard_connected_sockets")).toBe(before.sockets + 1);
    await emitter.toUser("metered").emit("counted", 1);
    await client.next("counted");
    await cluster.publisher.publish("socket.io#emitter", Buffer.from(encode({ room: "user(metered)", event: "raw", data: 1 })));
    await client.next("raw");
    expect(await readCounter(a, "switchboard_messages_received_total", { source: "adapter" })).toBe(before.adapterA + 1);
    // A broadcast to one room travels on that room's channel, which a node holding no socket of it does not receive.
    expect(await readCounter(b, "switchboard_messages_received_total", { source: "adapter" })).toBe(before.adapterB);
    expect(await readCounter(a, "switchboard_messages_received_total", { source: "raw_frame" })).toBe(before.raw + 1);
    client.close();
    await waitFor("the connection to be gone", async () =>
      (await readCounter(a, "switchboard_open_connections")) === before.open ? true : undefined,
    );
  });
});

describe("a scrape while Redis does not answer", () => {
  it("answers with every figure of the node's own, leaving out the services' queue depths it reads from Redis, and has them again once Redis answers", async () => {
    const stalled = await startCluster(1);
    const service = createService({ redis: stalled.redis.url, name: "depth-watched", handler: () => null });
    try {
      const { url } = stalled.nodes[0]!;
      const depth = /^switchboard_service_queue_depth\{service="depth-watched"[^}]*\} 0$/m;
      await service.ready();
      await waitFor("the service's queue depth", async () => (depth.test(await scrape(url)) ? true : undefined));
      // Stopped, Redis keeps its connections open and answers nothing.
      await stalled.redis.whileStopped(async () => {
        const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
        expect(response.status).toBe(200);
        const text = await response.text();
        expect(text).toMatch(/^switchboard_limit_hits_total\{kind="message_size"[^}]*\} 0$/m);
        expect(text).not.toMatch(depth);
      });
      await waitFor("the queue depth again", async () => (depth.test(await scrape(url)) ? true : undefined));
    } finally {
      await service.close();
      await stalled.close();
    }
  });
});

describe("presence writes Redis refuses", () => {
  it("are counted in switchboard_presence_write_failures_total and logged once, and presence is written once Redis takes it", async () => {
    const refusing = await startCluster(1);
    try {
      const node = refusing.nodes[0]!;
      // A key of the wrong type where the user's presence goes: every write of it fails with WRONGTYPE.
      await refusing.publisher.set("switchboard:presence:user:refused-presence", "not a hash");
      await connectUser(node.url, { sub: "refused-presence" });
      await waitFor("a failed write", async () =>
        (await readCounter(node.url, "switchboard_presence_write_failures_total")) >= 2 ? true : undefined,
      );
      expect(node.lines.filter((line) => line.includes("presence not written")).length).toBe(1);
      await refusing.publisher.del("switchboard:presence:user:refused-presence");
      await waitFor(
        "the presence to be written",
        async () => ((await refusing.publisher.hGet("switchboard:presence:user:refused-presence", "node-a")) === "1" ? true : undefined),
        15_000,
      );
      await waitFor("the recovery to be logged", async () =>
        node.lines.some((line) => line.includes("presence written again")) ? true : undefined,
      );
    } finally {
      await refusing.close();
    }
  }, 30_000);
});

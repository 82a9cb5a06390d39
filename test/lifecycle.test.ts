import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type LifecycleReader, type LifecycleRecord, readLifecycle } from "@switchboard/service";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { type GatewayProcess, readCounter, startGateway } from "./harness/gateway.js";
import { waitFor } from "./harness/ports.js";
import { startRedis, stopProcess } from "./harness/redis.js";
import { scratchDir } from "./harness/scratch.js";

const STREAM = "switchboard:lifecycle";
const ENV = { LIFECYCLE_EVENTS: "1", LIFECYCLE_MAXLEN: "100", SUBSCRIBE_ROOMS: "topic(*)", PRESENCE_NODE_TTL_MS: "1500" };

let cluster: Cluster;
let a: string;
let b: string;
const readers: LifecycleReader[] = [];
const extraNodes: GatewayProcess[] = [];

beforeAll(async () => {
  cluster = await startCluster(2, ENV);
  [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
});
afterAll(async () => {
  await Promise.allSettled(extraNodes.map((node) => node.kill()));
  await cluster?.close();
});
afterEach(async () => {
  closeAllClients();
  await Promise.all(readers.splice(0).map((reader) => reader.close()));
});

/** A reader in its own group, collecting what it reads. */
async function reader(group: string, consumer?: string): Promise<LifecycleRecord[]> {
  const records: LifecycleRecord[] = [];
  const started = readLifecycle({
    redis: cluster.redis.url,
    group,
    ...(consumer ? { consumer } : {}),
    handler: (record) => void records.push(record),
  });
  readers.push(started);
  await started.ready();
  return records;
}

function ofUser(records: LifecycleRecord[], user: string): LifecycleRecord[] {
  return records.filter((record) => record.user === user);
}

describe("lifecycle records (LIFECYCLE_EVENTS=1)", () => {
  it("records connected, subscribed, unsubscribed and disconnected, in order, with who, where and why", async () => {
    const records = await reader("order");
    const before = Date.now();
    const client = await connectUser(b, { sub: "life-1", site: "life.example" });
    const socket = client.socket.id;
    expect(await client.socket.emitWithAck("join", { room: "topic(x)" })).toMatchObject({ ok: true });
    expect(await client.socket.emitWithAck("leave", { room: "topic(x)" })).toMatchObject({ ok: true });
    client.socket.disconnect();
    const mine = await waitFor("four records", () => (ofUser(records, "life-1").length >= 4 ? ofUser(records, "life-1") : undefined));
    expect(mine.map((record) => [record.type, record.room])).toEqual([
      ["connected", ""],
      ["subscribed", "topic(x)"],
      ["unsubscribed", "topic(x)"],
      ["disconnected", ""],
    ]);
    for (const record of mine) expect(record).toMatchObject({ user: "life-1", site: "life.example", socket, node: "node-b" });
    expect(mine[3]?.reason).toBe("client namespace disconnect");
    expect(mine[0]?.time).toBeGreaterThanOrEqual(before);
    expect(mine[3]?.time).toBeGreaterThanOrEqual(mine[0]?.time ?? Infinity);
  });

  it("each group reads every record; a reader that was down catches up with what it missed", async () => {
    const first = await reader("catch-up", "one");
    const other = await reader("someone-else");
    const early = await connectUser(a, { sub: "life-early" });
    await waitFor("the early record", () => (ofUser(first, "life-early").length === 1 ? true : undefined));
    await readers.shift()?.close();
    // Written while the group has no reader.
    const missed = await connectUser(a, { sub: "life-missed" });
    missed.socket.disconnect();
    early.socket.disconnect();
    await waitFor("the other group to see them", () =>
      ofUser(other, "life-missed").length === 2 && ofUser(other, "life-early").length === 2 ? true : undefined,
    );
    const back = await reader("catch-up", "two");
    const caught = await waitFor("the missed records", () => (back.length >= 3 ? back : undefined));
    expect(caught.map((record) => `${record.user} ${record.type}`)).toEqual([
      "life-missed connected",
      "life-missed disconnected",
      "life-early disconnected",
    ]);
  });

  it("the sockets of a SIGKILLed node are reported disconnected (node_gone) by a node that notices", async () => {
    const records = await reader("crash");
    const doomed = await startGateway({ REDIS_URL: cluster.redis.url, NODE_ID: "node-doomed", ...ENV });
    extraNodes.push(doomed);
    const victims = await Promise.all(["life-v1", "life-v2"].map((sub) => connectUser(doomed.url, { sub, site: "crash.example" })));
    const ids = victims.map((victim) => victim.socket.id);
    await waitFor("both connected records", () =>
      records.filter((record) => record.type === "connected" && record.node === "node-doomed").length === 2 ? true : undefined,
    );
    await doomed.kill();
    const gone = await waitFor(
      "the disconnected records",
      () => {
        const found = records.filter((record) => record.type === "disconnected" && record.node === "node-doomed");
        return found.length >= 2 ? found : undefined;
      },
      15_000,
    );
    expect(gone).toHaveLength(2);
    expect(gone.map((record) => record.socket).sort()).toEqual([...ids].sort());
    for (const record of gone) expect(record).toMatchObject({ reason: "node_gone", site: "crash.example" });
    // Reported once, though both survivors noticed.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(records.filter((record) => record.type === "disconnected" && record.node === "node-doomed")).toHaveLength(2);
  });

  it("a node that is alive but writes no records for longer than PRESENCE_NODE_TTL_MS is not taken for gone", async () => {
    const records = await reader("idle");
    const client = await connectUser(b, { sub: "life-idle" });
    await waitFor("the connected record", () => (ofUser(records, "life-idle").length === 1 ? true : undefined));
    // Node b writes nothing now; its heartbeat goes on. More than two TTLs and a few looks later:
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(ofUser(records, "life-idle").map((record) => record.type)).toEqual(["connected"]);
    expect(await cluster.publisher.hExists("switchboard:{lifecycle}:sockets:node-b", client.socket.id as string)).toBe(true);
  });

  it("a node that stops gracefully writes its sockets' disconnections before it exits, and leaves no socket list behind", async () => {
    const records = await reader("graceful");
    const node = await startGateway({ REDIS_URL: cluster.redis.url, NODE_ID: "node-leaving", ...ENV });
    extraNodes.push(node);
    await connectUser(node.url, { sub: "life-leaving" });
    await waitFor("the connected record", () => (ofUser(records, "life-leaving").length === 1 ? true : undefined));
    expect(await cluster.publisher.hLen("switchboard:{lifecycle}:sockets:node-leaving")).toBe(1);
    await node.stop();
    const found = await waitFor("the disconnected record", () =>
      ofUser(records, "life-leaving").find((record) => record.type === "disconnected"),
    );
    // The drain closes each socket (Socket.IO's reason for that is "forced close").
    expect(found).toMatchObject({ node: "node-leaving", reason: "forced close" });
    expect(await cluster.publisher.exists("switchboard:{lifecycle}:sockets:node-leaving")).toBe(0);
  });

  it("a node restarted under the same NODE_ID reports the sockets of its previous run first", async () => {
    const records = await reader("restart");
    const first = await startGateway({ REDIS_URL: cluster.redis.url, NODE_ID: "node-phoenix", ...ENV });
    extraNodes.push(first);
    const victim = await connectUser(first.url, { sub: "life-phoenix" });
    const id = victim.socket.id;
    await waitFor("the connected record", () => (ofUser(records, "life-phoenix").length === 1 ? true : undefined));
    await first.kill();
    closeAllClients();
    const second = await startGateway({ REDIS_URL: cluster.redis.url, NODE_ID: "node-phoenix", ...ENV });
    extraNodes.push(second);
    const found = await waitFor("the disconnected record", () =>
      ofUser(records, "life-phoenix").find((record) => record.type === "disconnected"),
    );
    expect(found).toMatchObject({ socket: id, node: "node-phoenix", reason: "node_gone" });
  });

  it("the stream stays near LIFECYCLE_MAXLEN however many records are written", async () => {
    const client = await connectUser(a, { sub: "life-churn" });
    // 100 subscriptions and 100 unsubscriptions: 200 records in two events.
    const rooms = Array.from({ length: 100 }, (_, index) => `topic(churn-${index})`);
    expect(await client.socket.emitWithAck("configure", Object.fromEntries(rooms.map((room) => [room, true])))).toMatchObject({ ok: true });
    expect(await client.socket.emitWithAck("configure", Object.fromEntries(rooms.map((room) => [room, false])))).toMatchObject({
      ok: true,
      rooms: [],
    });
    const length = await waitFor("the churn written", async () => {
      const last = await cluster.publisher.xRevRange(STREAM, "+", "-", { COUNT: 1 });
      return last[0]?.message.user === "life-churn" && last[0]?.message.type === "unsubscribed"
        ? cluster.publisher.xLen(STREAM)
        : undefined;
    });
    // MAXLEN ~ trims whole stream nodes (100 entries each): at most a node's worth above the limit.
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThanOrEqual(200);
  });

  it("the Python reader in docs/services.md, run as written, reads the records and catches up after being stopped", async () => {
    const doc = readFileSync(new URL("../docs/services.md", import.meta.url), "utf8");
    const source = [...doc.matchAll(/```python\n([\s\S]*?)```/g)]
      .map((match) => match[1])
      .find((block) => block?.includes("switchboard:lifecycle"));
    expect(source, "a Python lifecycle reader in docs/services.md").toBeDefined();
    const script = join(scratchDir("lifecycle-reader"), "reader.py");
    writeFileSync(script, source ?? "");
    const start = async (): Promise<{ child: ChildProcess; output: string[] }> => {
      // Debian's python3 with python3-redis (installed by scripts/test-deps.sh).
      const child = spawn("/usr/bin/python3", [script], {
        env: { PATH: process.env.PATH ?? "", REDIS_URL: cluster.redis.url, GROUP: "py-audit", CONSUMER: "py-1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const output: string[] = [];
      child.stdout?.on("data", (chunk: Buffer) =>
        output.push(
          ...chunk
            .toString()
            .split("\n")
            .filter((line) => line.length > 0),
        ),
      );
      child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
      await waitFor("the Python reader", () => (output.includes("ready") ? true : undefined), 15_000);
      return { child, output };
    };
    const first = await start();
    try {
      const client = await connectUser(a, { sub: "life-py" });
      const socket = client.socket.id;
      await waitFor("the Python reader's line", () => (first.output.includes(`connected life-py ${socket} `) ? true : undefined));
      client.socket.disconnect();
      await waitFor("the disconnection", () =>
        first.output.includes(`disconnected life-py ${socket} client namespace disconnect`) ? true : undefined,
      );
      // The reader prints a record before acknowledging it: killed in between, it would rightly read it again.
      await waitFor("the reader's acknowledgements", async () =>
        (await cluster.publisher.xPending(STREAM, "py-audit")).pending === 0 ? true : undefined,
      );
    } finally {
      await stopProcess(first.child, "SIGKILL");
    }
    // While the reader is down.
    const missed = await connectUser(b, { sub: "life-py-missed" });
    const missedSocket = missed.socket.id;
    await waitFor("the record written", async () =>
      (await cluster.publisher.xRevRange(STREAM, "+", "-", { COUNT: 1 }))[0]?.message.user === "life-py-missed" ? true : undefined,
    );
    const second = await start();
    try {
      await waitFor("the missed record", () => (second.output.includes(`connected life-py-missed ${missedSocket} `) ? true : undefined));
      expect(second.output.some((line) => line.includes(" life-py "))).toBe(false);
    } finally {
      await stopProcess(second.child, "SIGKILL");
    }
  });

  it("garbage in the stream is skipped by readers, and a socket-list entry not written by a node is ignored", async () => {
    const records = await reader("garbage");
    await cluster.publisher.xAdd(STREAM, "*", { type: "exploded", user: "x" });
    await cluster.publisher.xAdd(STREAM, "*", { nonsense: "1" });
    // A node no other part of the cluster knows of (it never beat): its list is claimed all the same.
    await cluster.publisher.hSet("switchboard:{lifecycle}:sockets:node-ghost", {
      bad: "not json",
      worse: "null",
      fine: JSON.stringify({ user: "life-ghost", site: "" }),
    });
    await cluster.publisher.zAdd("switchboard:{lifecycle}:nodes", { score: 1, value: "node-ghost" });
    const client = await connectUser(a, { sub: "life-after-garbage" });
    await waitFor("the next real record", () => (ofUser(records, "life-after-garbage").length === 1 ? true : undefined));
    const ghost = await waitFor("the ghost node's one good socket", () => ofUser(records, "life-ghost")[0], 10_000);
    expect(ghost).toMatchObject({ type: "disconnected", socket: "fine", node: "node-ghost", reason: "node_gone" });
    expect(records.every((record) => ["connected", "disconnected", "subscribed", "unsubscribed"].includes(record.type))).toBe(true);
    client.socket.disconnect();
  });
});

describe("lifecycle records while Redis is away", () => {
  it("are kept up to the buffer's bound, the oldest dropped and counted, and written in order when Redis returns", async () => {
    let redis = await startRedis();
    const port = redis.port;
    const node = await startGateway({
      REDIS_URL: redis.url,
      NODE_ID: "node-outage",
      LIFECYCLE_EVENTS: "1",
      SUBSCRIBE_ROOMS: "topic(*)",
      CLIENT_EVENT_RATE: "100000",
    });
    const reader = createClient({ url: redis.url });
    reader.on("error", () => {});
    try {
      const client = await connectUser(node.url, { sub: "life-outage" });
      await reader.connect();
      await waitFor("the connected record", async () => ((await reader.xLen(STREAM)) === 1 ? true : undefined));
      await reader.disconnect();
      await redis.stop();
      // 60 rounds of 100 subscriptions and 100 unsubscriptions: 12,000 records while Redis is away.
      for (let round = 0; round < 60; round++) {
        const rooms = Array.from({ length: 100 }, (_, index) => `topic(r${round}-${index})`);
        expect(await client.socket.emitWithAck("configure", Object.fromEntries(rooms.map((room) => [room, true])))).toMatchObject({
          ok: true,
        });
        expect(await client.socket.emitWithAck("configure", Object.fromEntries(rooms.map((room) => [room, false])))).toMatchObject({
          ok: true,
        });
      }
      // The buffer holds 10,000 and trims at 11,000: the first 2,000 records are gone.
      expect(await readCounter(node.url, "switchboard_lifecycle_dropped_total")).toBe(2000);
      redis = await startRedis(port);
      const back = createClient({ url: redis.url });
      back.on("error", () => {});
      await back.connect();
      try {
        await waitFor("the buffer written", async () => ((await back.xLen(STREAM)) >= 10_000 ? true : undefined), 20_000);
        const written = await back.xRange(STREAM, "-", "+");
        expect(written).toHaveLength(10_000);
        expect(written[0]?.message).toMatchObject({ type: "subscribed", room: "topic(r10-0)", user: "life-outage" });
        expect(written.at(-1)?.message).toMatchObject({ type: "unsubscribed", room: "topic(r59-99)" });
      } finally {
        await back.quit();
      }
    } finally {
      await node.kill();
      await redis.stop();
    }
  });
});

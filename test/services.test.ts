import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClientError, ServiceError, type SwitchboardClient, connect } from "@switchboard/client";
import { type Service, createRegistry, createService } from "@switchboard/service";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { readCounter } from "./harness/gateway.js";
import { sleep, waitFor } from "./harness/ports.js";
import { startRedis, stopProcess } from "./harness/redis.js";
import { scratchDir } from "./harness/scratch.js";

const API_KEY = "services-test-api-key-of-at-least-32-chars";
const WORKER = fileURLToPath(new URL("./harness/service-worker.ts", import.meta.url));

let cluster: Cluster;
let a: string;
let b: string;
const clients: SwitchboardClient[] = [];
const services: Service[] = [];
const workers: ChildProcess[] = [];

beforeAll(async () => {
  // public-* is open to every socket; other services need the token's services claim.
  cluster = await startCluster(
    2,
    {
      API_KEYS: API_KEY,
      SERVICE_POLICY: "public-*",
      SERVICE_MAX_PENDING: "4",
      SERVICE_REQUEST_TIMEOUT_MS: "5000",
      SERVICE_MAX_PAYLOAD_BYTES: "16384",
    },
    // Node a subscribes to every room's channel, node b only to those of the rooms it holds: what is delivered
    // through both nodes is delivered under both REDIS_SUBSCRIPTIONS settings, in a cluster that mixes them.
    [{}, { REDIS_SUBSCRIPTIONS: "rooms" }],
  );
  [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
});
afterAll(async () => {
  await Promise.all(services.splice(0).map((service) => service.close()));
  await Promise.all(workers.splice(0).map((worker) => stopProcess(worker, "SIGKILL")));
  await cluster?.close();
});
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  closeAllClients();
  await Promise.all(services.splice(0).map((service) => service.close()));
});

/** A client of the SDK, connected and welcomed, whose token grants `services`. */
async function caller(url: string, sub: string, grants: string[] = []): Promise<SwitchboardClient> {
  const client = connect({
    url,
    token: mintToken({ sub, site: "shop.example", ...(grants.length > 0 ? { services: grants } : {}) }),
    socket: { reconnection: false, transports: ["websocket"] },
  });
  clients.push(client);
  await client.ready();
  return client;
}

/** An in-process instance answering by payload.op, as the worker process does. */
async function instance(
  name: string,
  options: { concurrency?: number; visibilityTimeoutMs?: number; onError?: (error: Error) => void } = {},
): Promise<Service> {
  const service: Service = createService<{ op?: string; steps?: number; ms?: number; kind?: string }>({
    redis: cluster.redis.url,
    name,
    ...options,
    handler: async (request, context) => {
      const call = request.payload ?? {};
      if (call.op === "sleep") await sleep(call.ms ?? 1000);
      if (call.op === "deep") {
        // As a service in another language could: JSON text nested far deeper than JSON.stringify here can write.
        const data = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
        await cluster.publisher.publish(
          `switchboard:replies:${request.caller.node}`,
          `{"id":${JSON.stringify(request.id)},"kind":"${call.kind}","data":${data}}`,
        );
      }
      for (let step = 1; step <= (call.steps ?? 0); step++) await context.notify({ step });
      if (call.op === "fail") throw Object.assign(new Error("nothing left"), { code: "out_of_stock" });
      if (call.op === "bigint") return { total: 10n };
      if (call.op === "cycle") {
        const node: { self?: unknown } = {};
        node.self = node;
        await context.notify(node);
      }
      return { instance: service.instanceId, payload: call, caller: request.caller, kind: request.kind, event: request.event };
    },
  });
  services.push(service);
  await service.ready();
  return service;
}

function worker(name: string, instanceId: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER], {
    env: { PATH: process.env.PATH ?? "", REDIS_URL: cluster.redis.url, SERVICE_NAME: name, INSTANCE_ID: instanceId, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  workers.push(child);
  const lines: string[] = [];
  child.stdout?.on("data", (chunk: Buffer) =>
    lines.push(
      ...chunk
        .toString()
        .split("\n")
        .filter((line) => line.length > 0),
    ),
  );
  child.stderr?.on("data", (chunk: Buffer) =>
    lines.push(
      ...chunk
        .toString()
        .split("\n")
        .filter((line) => line.length > 0),
    ),
  );
  return waitFor(`service worker ${instanceId}`, () => (lines.includes("ready") ? { child, lines } : undefined), 15_000);
}

async function api(method: string, path: string) {
  const response = await fetch(`${a}${path}`, { method, headers: { authorization: `Bearer ${API_KEY}` } });
  const text = await response.text();
  return { status: response.status, body: text === "" ? null : (JSON.parse(text) as Record<string, unknown>) };
}

async function refusal(promise: Promise<unknown>): Promise<{ kind: string; code: string }> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ClientError) return { kind: "client", code: err.code };
    if (err instanceof ServiceError) return { kind: "service", code: err.code };
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("requests to a service", () => {
  it("delivers progress three times and then the result, in order, to the calling socket on another node", async () => {
    await instance("public-orders");
    const client = await caller(b, "buyer-1");
    const progress: unknown[] = [];
    const result = await client.request("public-orders", { steps: 3 }, { onProgress: (step) => progress.push(step) });
    expect(progress).toEqual([{ step: 1 }, { step: 2 }, { step: 3 }]);
    expect(result).toMatchObject({
      payload: { steps: 3 },
      kind: "request",
      caller: { user: "buyer-1", site: "shop.example", node: "node-b" },
    });
  });

  it("rejects with the service's own error code and message", async () => {
    await instance("public-orders");
    const client = await caller(a, "buyer-2");
    const failure = client.request("public-orders", { op: "fail" });
    await expect(failure).rejects.toBeInstanceOf(ServiceError);
    await expect(failure).rejects.toMatchObject({ code: "out_of_stock", message: "nothing left" });
  });

  it.each(["done", "progress"])(
    "ends a call with service_reply_invalid when the service answers %s data nested deeper than PAYLOAD_MAX_DEPTH, and keeps serving",
    async (kind) => {
      await instance("public-deep");
      const client = await caller(b, `deep-${kind}`);
      const counters = () =>
        Promise.all([
          readCounter(b, "switchboard_frames_dropped_total", { channel: "replies" }),
          readCounter(b, "switchboard_service_requests_total", { service: "public-deep", outcome: "reply_invalid" }),
          readCounter(b, "switchboard_service_replies_dropped_total"),
        ]);
      const [framesBefore, invalidBefore, lateBefore] = await counters();
      const progress: unknown[] = [];
      const failure = client.request("public-deep", { op: "deep", kind }, { onProgress: (step) => progress.push(step) });
      await expect(failure).rejects.toBeInstanceOf(ServiceError);
      await expect(failure).rejects.toMatchObject({ code: "service_reply_invalid" });
      expect(progress).toEqual([]);
      // The service's own done that follows finds the call over: dropped, not passed on.
      await waitFor("the late done to be dropped", async () => ((await counters())[2] > lateBefore ? true : undefined));
      expect(await counters()).toEqual([framesBefore + 1, invalidBefore + 1, lateBefore + 1]);
      expect(await client.request("public-deep", { steps: 1 })).toMatchObject({ payload: { steps: 1 } });
      for (const node of cluster.nodes) expect(node.child.exitCode).toBeNull();
    },
  );

  it.each([
    ["bigint", "result"],
    ["cycle", "progress"],
  ])("ends a call with internal_error when a Node handler's %s %s cannot be written as JSON", async (op, what) => {
    const told: string[] = [];
    await instance("public-unwritable", { onError: (error) => told.push(error.message) });
    const client = await caller(a, `unwritable-${op}`);
    const failure = client.request("public-unwritable", { op });
    await expect(failure).rejects.toBeInstanceOf(ServiceError);
    await expect(failure).rejects.toMatchObject({
      code: "internal_error",
      message: expect.stringContaining(`${what} could not be written as JSON`),
    });
    // The service's own onError is told why, as its README says.
    expect(told).toContainEqual(expect.stringContaining(`its ${what} could not be written as JSON`));
    expect(await client.request("public-unwritable", { steps: 0 })).toMatchObject({ payload: { steps: 0 } });
  });

  it("ends a call with request_timeout at its deadline, and drops and counts the answer that comes later", async () => {
    await instance("public-slow");
    const client = await caller(a, "buyer-3");
    const dropped = await readCounter(a, "switchboard_service_replies_dropped_total");
    expect(await refusal(client.request("public-slow", { op: "sleep", ms: 1200 }, { timeoutMs: 300 }))).toEqual({
      kind: "service",
      code: "request_timeout",
    });
    await waitFor(
      "the late answer to be dropped",
      async () => ((await readCounter(a, "switchboard_service_replies_dropped_total")) > dropped ? true : undefined),
      5000,
    );
    expect(await readCounter(a, "switchboard_service_requests_total", { service: "public-slow", outcome: "timeout" })).toBe(1);
  });

  it("refuses at once a service that is not registered, one without a live instance, one not allowed, and a full queue", async () => {
    const client = await caller(a, "buyer-4");
    const counted = (labels: Record<string, string>) => readCounter(a, "switchboard_service_requests_total", labels);
    const unknownBefore = await counted({ service: "", outcome: "unknown" });
    expect(await refusal(client.request("public-nobody", {}))).toEqual({ kind: "client", code: "service_unknown" });
    expect(await refusal(client.request("Not A Name", {}))).toEqual({ kind: "client", code: "service_unknown" });
    // Names a client makes up are counted without a label of their own: they cannot grow the metrics.
    const inventor = await caller(a, "buyer-4-inventor");
    for (let index = 0; index < 6; index++) await refusal(inventor.request(`public-made-up-${index}`, {}));
    expect(await counted({ service: "", outcome: "unknown" })).toBe(unknownBefore + 8);
    expect(await (await fetch(`${a}/metrics`)).text()).not.toMatch(/service="(public-nobody|public-made-up-\d+)"/);
    const gone = await instance("public-gone");
    await gone.close();
    services.splice(services.indexOf(gone), 1);
    expect(await refusal(client.request("public-gone", {}))).toEqual({ kind: "client", code: "service_unavailable" });
    // A registered service's refusals keep its name.
    expect(await counted({ service: "public-gone", outcome: "unavailable" })).toBe(1);
    await instance("private-billing");
    expect(await refusal(client.request("private-billing", {}))).toEqual({ kind: "client", code: "service_forbidden" });
    const allowed = await caller(a, "buyer-5", ["private-*"]);
    expect(await allowed.request("private-billing", { op: "echo" })).toMatchObject({ payload: { op: "echo" } });

    // SERVICE_MAX_PENDING is 4 here: four slow calls fill the queue of a one-at-a-time service.
    await instance("public-queue", { concurrency: 1 });
    const waiting = Array.from({ length: 4 }, () => client.request("public-queue", { op: "sleep", ms: 300 }));
    await sleep(100);
    expect(await refusal(client.request("public-queue", {}))).toEqual({ kind: "client", code: "service_busy" });
    expect(await counted({ service: "public-queue", outcome: "busy" })).toBe(1);
    expect(await Promise.all(waiting)).toHaveLength(4);
  });

  it("refuses an oversized payload with payload_too_large and a misshapen request with payload_invalid", async () => {
    await instance("public-orders");
    const client = await caller(a, "buyer-6");
    // Over SERVICE_MAX_PAYLOAD_BYTES (16 KiB here), under the 64 KiB a client message may have.
    expect(await refusal(client.request("public-orders", { text: "x".repeat(20 * 1024) }))).toEqual({
      kind: "client",
      code: "payload_too_large",
    });
    const raw = await connectUser(a, { sub: "raw-caller" });
    for (const bad of [
      { service: 5 },
      { service: "public-orders", timeoutMs: "soon" },
      { service: "public-orders", id: "" },
      "public-orders",
      null,
    ]) {
      expect(await raw.socket.timeout(2000).emitWithAck("request", bad)).toMatchObject({ ok: false, error: { code: "payload_invalid" } });
    }
  });

  it("has a SIGKILLed instance's pending request completed by the other instance, and the caller gets exactly one result", async () => {
    const env = { VISIBILITY_TIMEOUT_MS: "1500", CONCURRENCY: "1" };
    const doomed = await worker("public-jobs", "doomed", env);
    const client = await caller(b, "buyer-7");
    const result = client.request<{ instance: string }>("public-jobs", { op: "sleep", ms: 400 }, { timeoutMs: 5000 });
    await waitFor("the doomed instance to take it", () => (doomed.lines.some((line) => line.startsWith("took")) ? true : undefined));
    doomed.child.kill("SIGKILL");
    const survivor = await worker("public-jobs", "survivor", env);
    expect((await result).instance).toBe("survivor");
    expect(survivor.lines.filter((line) => line.startsWith("took"))).toHaveLength(1);
    const dones = await readCounter(b, "switchboard_service_requests_total", { service: "public-jobs", outcome: "done" });
    expect(dones).toBe(1);
  });

  it("forgets the calls of a socket that disconnects, and drops their answers", async () => {
    await instance("public-slow");
    const client = await caller(a, "buyer-8");
    const dropped = await readCounter(a, "switchboard_service_replies_dropped_total");
    const call = client.request("public-slow", { op: "sleep", ms: 500 });
    await sleep(100);
    client.socket.disconnect();
    expect(await refusal(call)).toEqual({ kind: "service", code: "request_timeout" });
    await waitFor(
      "the answer to be dropped",
      async () => ((await readCounter(a, "switchboard_service_replies_dropped_total")) > dropped ? true : undefined),
      5000,
    );
    expect(
      await readCounter(a, "switchboard_service_requests_total", { service: "public-slow", outcome: "caller_gone" }),
    ).toBeGreaterThanOrEqual(1);
  });
});

describe("a service in Python, as docs/services.md writes it", () => {
  it("answers a Node client's request with progress and its result", async () => {
    const doc = readFileSync(new URL("../docs/services.md", import.meta.url), "utf8");
    const source = /```python\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(source, "a ```python block in docs/services.md").toBeDefined();
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(
      [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((match) => match[1]),
      "the README shows the same service",
    ).toContain(source);
    const script = join(scratchDir("service"), "service.py");
    writeFileSync(script, source ?? "");
    // Debian's python3 with python3-redis (installed by scripts/test-deps.sh).
    const python = spawn("/usr/bin/python3", [script], {
      env: { PATH: process.env.PATH ?? "", REDIS_URL: cluster.redis.url, SERVICE_NAME: "public-py-echo" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    workers.push(python);
    const output: string[] = [];
    python.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    python.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    await waitFor("the Python service", () => (output.join("").includes("ready") ? true : undefined), 15_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${output.join("")}`);
    });
    const client = await caller(b, "py-caller");
    const progress: unknown[] = [];
    expect(await client.request("public-py-echo", { n: 1 }, { onProgress: (step) => progress.push(step) })).toEqual({
      echo: { n: 1 },
      by: "py-caller",
    });
    expect(progress).toEqual([{ seen: true }]);
  });
});

describe("fire and forget", () => {
  it("hands a send to exactly one instance, with its event and the caller", async () => {
    const seen: unknown[] = [];
    for (const name of ["one", "two"]) {
      const service = createService({
        redis: cluster.redis.url,
        name: "public-audit",
        instanceId: name,
        handler: (request) => void seen.push({ instance: name, ...request }),
      });
      services.push(service);
      await service.ready();
    }
    const client = await caller(a, "auditor");
    await client.send("public-audit", "viewed", { page: 7 });
    await waitFor("the send", () => (seen.length > 0 ? true : undefined));
    await sleep(300);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ kind: "send", event: "viewed", payload: { page: 7 }, caller: { user: "auditor" } });
    expect(await refusal(client.send("public-nobody", "x", 1))).toEqual({ kind: "client", code: "service_unknown" });
  });
});

describe("from a service to users", () => {
  it("broadcasts to the sockets that joined service(<name>), which only its callers may join, and sends directly to a user", async () => {
    const service = await instance("private-news");
    const member = await connectUser(a, { sub: "reader", services: ["private-news"] });
    const outsider = await connectUser(b, { sub: "outsider" });
    expect(await member.socket.emitWithAck("subscribe", { room: "service(private-news)" })).toEqual({
      ok: true,
      room: "service(private-news)",
    });
    expect(await outsider.socket.emitWithAck("subscribe", { room: "service(private-news)" })).toMatchObject({
      ok: false,
      error: { code: "subscription_forbidden" },
    });
    await service.broadcast("headline", { text: "hi" });
    expect(await member.next("headline")).toEqual([{ text: "hi" }]);
    await service.direct("outsider", "note", 1);
    expect(await outsider.next("note")).toEqual([1]);
    await sleep(100);
    expect(outsider.count("headline")).toBe(0);
  });
});

describe("the registry", () => {
  it("lists services with live instances and queue, shows one, and removes one, over HTTP and from Node", async () => {
    await instance("public-listed");
    const listed = await api("GET", "/api/v1/services");
    expect(listed.status).toBe(200);
    expect(((listed.body?.services ?? []) as { name: string }[]).find((service) => service.name === "public-listed")).toMatchObject({
      instances: 1,
      queueDepth: 0,
      pending: 0,
      oldestPendingAgeMs: null,
    });
    expect(await api("GET", "/api/v1/services/public-listed")).toMatchObject({
      status: 200,
      body: { name: "public-listed", instances: 1 },
    });
    expect(await api("GET", "/api/v1/services/public-never")).toMatchObject({ status: 404, body: { code: "service_unknown" } });
    const registry = createRegistry({ redis: cluster.redis.url });
    try {
      expect(await registry.exists("public-listed")).toBe(true);
      expect((await registry.get("public-listed"))?.instances).toBe(1);
      expect((await registry.list()).map((service) => service.name)).toContain("public-listed");
    } finally {
      await registry.close();
    }
    expect((await api("DELETE", "/api/v1/services/public-listed")).status).toBe(204);
    expect((await api("DELETE", "/api/v1/services/public-listed")).status).toBe(404);
  });

  it("drops and counts what is not a reply on a node's reply channel", async () => {
    const before = await readCounter(a, "switchboard_frames_dropped_total", { channel: "replies" });
    for (const garbage of ["not json", JSON.stringify({ id: 5 }), JSON.stringify({ id: "x", kind: "maybe" }), JSON.stringify([1, 2])]) {
      await cluster.publisher.publish("switchboard:replies:node-a", garbage);
    }
    await waitFor("the drops", async () =>
      (await readCounter(a, "switchboard_frames_dropped_total", { channel: "replies" })) >= before + 4 ? true : undefined,
    );
    for (const node of cluster.nodes) expect(node.child.exitCode).toBeNull();
  });
});

describe("a service whose Redis stops answering", () => {
  it("queues no more than one heartbeat and one claim meanwhile, and goes on when Redis answers again", async () => {
    const redis = await startRedis();
    const watcher = createClient({ url: redis.url });
    await watcher.connect();
    const handled: unknown[] = [];
    // Claims run every 500 ms with a one-second visibility timeout.
    const service = createService({
      redis: redis.url,
      name: "paused-redis",
      visibilityTimeoutMs: 1000,
      handler: (request) => {
        handled.push(request.payload);
        return null;
      },
      onError: () => {},
    });
    const claims = async () => Number(/cmdstat_xautoclaim:calls=(\d+)/.exec(await watcher.info("commandstats"))?.[1] ?? 0);
    try {
      await service.ready();
      await waitFor("a first claim", async () => ((await claims()) > 0 ? true : undefined));
      const before = await claims();
      await watcher.sendCommand(["CLIENT", "PAUSE", "4000", "ALL"]);
      // Eight claim ticks pass while Redis holds every command.
      await sleep(4500);
      const during = (await claims()) - before;
      expect(during).toBeLessThanOrEqual(2);
      await sleep(1200);
      expect((await claims()) - before).toBeGreaterThan(during);
    } finally {
      await service.close();
      await watcher.quit();
      await redis.stop();
    }
  });
});

import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { Session } from "node:inspector";
import type { AddressInfo } from "node:net";
import { createAdapter } from "@socket.io/redis-adapter";
import { createGateway, loadConfig } from "@switchboard/gateway";
import { createClient } from "redis";
import { dirname } from "node:path";
import { writeHeapSnapshot } from "node:v8";
import { Server } from "socket.io";
import { type NodeUsage, collectGarbage, notify, ownUsage, serveRequests } from "../ipc.js";
import { countHeapAllocation } from "./allocation.js";

/** One server node of either stack, as its own process; the parent reads its CPU time and memory. */
export type ServerApi = {
  usage: { args: { gc: boolean }; reply: NodeUsage };
  /**
   * Starts the V8 CPU profiler (for one scenario), or with `allocations` the sampling heap
   * profiler, counting objects that are already garbage when it stops.
   */
  profileStart: { args: { allocations: boolean }; reply: null };
  /** Stops it and writes the profile to `path`. */
  profileStop: { args: { path: string }; reply: null };
  /** Writes a V8 heap snapshot to `path`. */
  heapSnapshot: { args: { path: string }; reply: null };
};

const stack = process.env.STACK;
const port = Number(process.env.PORT ?? 0);
const redisUrl = process.env.REDIS_URL ?? "";

async function startOurs(): Promise<{ url: string; close(): Promise<void> }> {
  const gateway = await createGateway(loadConfig(process.env));
  const url = await gateway.start();
  return { url, close: () => gateway.close() };
}

/**
 * The stock stack users would otherwise write: socket.io with the Redis adapter, each socket
 * joined to user(<uid>) and site(<site>) from fields of the handshake that nothing verifies.
 */
async function startPlain(): Promise<{ url: string; close(): Promise<void> }> {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient]) client.on("error", (err: Error) => process.stderr.write(`plain node: redis: ${err.message}\n`));
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter(pubClient, subClient) });
  io.on("connection", (socket) => {
    const auth = socket.handshake.auth as { uid?: unknown; site?: unknown };
    socket.join([`user(${String(auth.uid)})`, `site(${String(auth.site)})`]);
  });
  await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
  const address = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    async close() {
      io.disconnectSockets(true);
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await Promise.allSettled([pubClient.quit(), subClient.quit()]);
    },
  };
}

const server = stack === "ours" ? await startOurs() : stack === "plain" ? await startPlain() : null;
if (!server) throw new Error(`STACK must be ours or plain, not ${stack}`);

const profiler = new Session();
profiler.connect();
const post = (method: string, params: object = {}) =>
  new Promise<unknown>((resolve, reject) => profiler.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));

let profiling: "cpu" | "allocations" = "cpu";
const allocated = countHeapAllocation();

serveRequests<ServerApi>({
  async profileStart({ allocations }) {
    profiling = allocations ? "allocations" : "cpu";
    if (allocations) {
      await post("HeapProfiler.enable");
      // Garbage is what costs a message path its collections, so collected objects are kept in the profile.
      await post("HeapProfiler.startSampling", { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      return null;
    }
    await post("Profiler.enable");
    // 100 µs between samples: enough detail for paths that take tens of microseconds per message.
    await post("Profiler.setSamplingInterval", { interval: 100 });
    await post("Profiler.start");
    return null;
  },
  async profileStop({ path }) {
    const { profile } = (await post(profiling === "allocations" ? "HeapProfiler.stopSampling" : "Profiler.stop")) as { profile: object };
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify(profile));
    return null;
  },
  heapSnapshot({ path }) {
    mkdirSync(dirname(path), { recursive: true });
    writeHeapSnapshot(path);
    return null;
  },
  usage({ gc }) {
    if (gc) {
      collectGarbage();
      collectGarbage();
    }
    return { ...ownUsage(), allocatedBytes: allocated() };
  },
});

process.once("SIGTERM", () => {
  server.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
});

notify("ready", server.url);

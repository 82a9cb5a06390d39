import { mkdirSync, writeFileSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import { Session } from "node:inspector";
import type { AddressInfo } from "node:net";
import { createAdapter } from "@socket.io/redis-adapter";
import type * as Gateway from "@switchboard/gateway";
import { createClient } from "redis";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import { writeHeapSnapshot } from "node:v8";
import { Server } from "socket.io";
import { type NodeUsage, collectGarbage, notify, ownUsage, serveRequests } from "../ipc.js";
import { watchHeap } from "./allocation.js";
import { VARIANT_CHECKOUT_ENV, gatewayEntry } from "../variant.js";

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

/** Our gateway: this checkout's, or with --variant another checkout's build of it. */
async function loadGateway(): Promise<typeof Gateway> {
  const checkout = process.env[VARIANT_CHECKOUT_ENV];
  if (checkout === undefined) return import("@switchboard/gateway");
  return (await import(pathToFileURL(gatewayEntry(checkout)).href)) as typeof Gateway;
}

async function startOurs(): Promise<{ url: string; close(): Promise<void> }> {
  const { createGateway, loadConfig } = await loadGateway();
  const gateway = await createGateway(loadConfig(process.env));
  const url = await gateway.start();
  return { url, close: () => gateway.close() };
}

/** One message of the plain stack's publish endpoint, as the bench's publisher sends it. */
interface PlainPublication {
  room: string;
  event: string;
  data: unknown;
}

const PLAIN_BODY_LIMIT = 1 << 20;

function isPublication(value: unknown): value is PlainPublication {
  if (typeof value !== "object" || value === null) return false;
  const { room, event } = value as Partial<PlainPublication>;
  return typeof room === "string" && typeof event === "string";
}

/**
 * A publish endpoint as a user of the plain stack writes one by hand, on node:http with no
 * framework: a bearer key compared as a string, the JSON body read whole, each message handed to
 * `io.to(room).emit()` (the adapter delivers to this node's sockets and publishes for the others,
 * without waiting for Redis), then `202`. No schema, no message ids, no confirmation from Redis.
 */
function plainPublishEndpoint(
  emit: (publication: PlainPublication) => void,
  apiKey: string,
): (request: IncomingMessage, response: ServerResponse) => void {
  const answer = (response: ServerResponse, status: number, body: string) => {
    response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    response.end(body);
  };
  return (request, response) => {
    const batch = request.url === "/api/v1/publish/batch";
    if (request.method !== "POST" || (!batch && request.url !== "/api/v1/publish")) return answer(response, 404, "{}");
    if (request.headers.authorization !== `Bearer ${apiKey}`) return answer(response, 401, "{}");
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > PLAIN_BODY_LIMIT) request.destroy();
      else chunks.push(chunk);
    });
    request.on("end", () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return answer(response, 400, "{}");
      }
      const messages = !batch ? [body] : typeof body === "object" && body !== null ? (body as { messages?: unknown }).messages : null;
      if (!Array.isArray(messages) || !messages.every(isPublication)) return answer(response, 400, "{}");
      for (const message of messages) emit(message);
      answer(response, 202, "{}");
    });
  };
}

/**
 * The stock stack users would otherwise write: socket.io with the Redis adapter, each socket
 * joined to user(<uid>) and site(<site>) from fields of the handshake that nothing verifies, and a
 * hand-written HTTP publish endpoint (API_KEYS, one key).
 */
async function startPlain(): Promise<{ url: string; close(): Promise<void> }> {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient])
    client.on("error", (err: Error) => process.stderr.write(`plain node: redis: ${err.message}\n`));
  await Promise.all([pubClient.connect(), subClient.connect()]);
  // Added before Socket.IO is attached: it then answers its own path and passes every other request on.
  const http = createServer(plainPublishEndpoint(({ room, event, data }) => io.to(room).emit(event, data), process.env.API_KEYS ?? ""));
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
const heapActivity = watchHeap();

serveRequests<ServerApi>({
  async profileStart({ allocations }) {
    profiling = allocations ? "allocations" : "cpu";
    if (allocations) {
      await post("HeapProfiler.enable");
      // Garbage is what costs a message path its collections, so collected objects are kept in the profile.
      await post("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
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
    return { ...ownUsage(), ...heapActivity() };
  },
});

process.once("SIGTERM", () => {
  server.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
});

notify("ready", server.url);

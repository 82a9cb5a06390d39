import { Agent, request } from "node:http";
import { encode } from "@msgpack/msgpack";
import { Emitter } from "@socket.io/redis-emitter";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { RAW_FRAME_CHANNEL, encodeRawFrame, siteRoom, userRoom } from "@switchboard/protocol";
import { createClient } from "redis";
import { serveRequests } from "../ipc.js";
import { now } from "./clock.js";
import { BENCH_EVENT, type BenchData } from "./message.js";

/**
 * How messages are published:
 * - `emitter`: the stack's own emitter (`@switchboard/emitter`, or `@socket.io/redis-emitter`);
 * - `raw`: bytes written with a plain Redis client: ours as a map-layout frame on
 *   `socket.io#emitter`, the plain stack in the socket.io adapter format (its only format);
 * - `adapter`: the socket.io adapter format with a plain Redis client, for both stacks;
 * - `http`: `POST /api/v1/publish`, one message per request: ours to the server API, the plain
 *   stack to the endpoint a user would write by hand (servers/node.ts);
 * - `http-batch`: `POST /api/v1/publish/batch`, HTTP_BATCH messages per request, likewise.
 */
export type PublishMode = "emitter" | "raw" | "adapter" | "http" | "http-batch";

export type PublisherApi = {
  open: { args: OpenArgs; reply: null };
  publish: { args: PublishArgs; reply: PublishReply };
  close: { args: Record<string, never>; reply: null };
};

export interface OpenArgs {
  stack: "ours" | "plain";
  redisUrl: string;
  /** Nodes the HTTP mode spreads its requests over. */
  httpUrls: string[];
  apiKey: string;
}

export interface PublishArgs {
  mode: PublishMode;
  /** `user`: to user(i) for pseudo-random i below `users`; `site`: to site(<site>). */
  target: "user" | "site";
  users: number;
  site: string;
  count: number;
  /** Messages per second; null publishes as fast as the window lets. */
  ratePerSecond: number | null;
  /** Gives up publishing after this long, whatever is left. */
  maxMs: number;
}

export interface PublishReply {
  published: number;
  failed: number;
  errors: string[];
  /** Sum of Redis PUBLISH replies (subscriptions reached), where the mode can know it. */
  receivers: number | null;
  elapsedMs: number;
}

/** Publishes in flight at once in a burst. */
const WINDOW = 512;
const HTTP_CONCURRENCY = 32;
export const HTTP_BATCH = 100;
const HTTP_BATCH_CONCURRENCY = 4;
const HTTP_TIMEOUT_MS = 30_000;

let options: OpenArgs | null = null;
let redis: ReturnType<typeof createClient> | null = null;
let ourEmitter: SwitchboardEmitter | null = null;
let plainEmitter: Emitter | null = null;

/** The same pseudo-random users for both stacks (mulberry32). */
function randomUsers(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function adapterFrame(room: string, data: BenchData): Buffer {
  return Buffer.from(
    encode(["bench-publisher", { type: 2, data: [BENCH_EVENT, data], nsp: "/" }, { rooms: [room], except: [], flags: {} }]),
  );
}

/** Sends one message; resolves with the number of subscriptions Redis reached, when known. */
async function sendOne(mode: PublishMode, room: string, uid: number | null, data: BenchData, index: number): Promise<number | null> {
  if (!options || !redis) throw new Error("publisher not open");
  switch (mode) {
    case "emitter":
      if (ourEmitter) {
        const target = uid === null ? ourEmitter.to(room) : ourEmitter.toUser(uid);
        return (await target.emit(BENCH_EVENT, data)).subscribers;
      }
      plainEmitter!.to(room).emit(BENCH_EVENT, data);
      return null;
    case "raw":
      if (options.stack === "ours")
        return await redis.publish(RAW_FRAME_CHANNEL, Buffer.from(encodeRawFrame({ room, event: BENCH_EVENT, data })));
      return await redis.publish(`socket.io#/#${room}#`, adapterFrame(room, data));
    case "adapter":
      return await redis.publish(`socket.io#/#${room}#`, adapterFrame(room, data));
    case "http":
      await post(`/api/v1/publish`, { room, event: BENCH_EVENT, data }, index);
      return null;
    case "http-batch":
      throw new Error("batches are sent by sendBatch");
  }
}

// node:http with kept-alive connections rather than fetch: fetch spends several times the CPU per
// request, and the publisher shares the two cores with the nodes it measures.
const httpAgent = new Agent({ keepAlive: true, maxSockets: HTTP_CONCURRENCY });

function post(path: string, body: unknown, index: number): Promise<void> {
  if (!options) return Promise.reject(new Error("publisher not open"));
  const url = new URL(path, options.httpUrls[index % options.httpUrls.length]);
  const authorization = `Bearer ${options.apiKey}`;
  const payload = JSON.stringify(body);
  return new Promise<void>((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        agent: httpAgent,
        headers: { authorization, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (response) => {
        response.resume();
        response.once("end", () => (response.statusCode === 202 ? resolve() : reject(new Error(`HTTP ${response.statusCode}`))));
        response.once("error", reject);
      },
    );
    req.once("error", reject);
    // A node that never answers fails its requests rather than holding the burst until the parent gives up.
    req.setTimeout(HTTP_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${HTTP_TIMEOUT_MS} ms`)));
    req.end(payload);
  });
}

async function publish(args: PublishArgs): Promise<PublishReply> {
  if (!redis) throw new Error("publisher not open");
  const next = randomUsers(args.count * 31 + args.users);
  const started = now();
  const deadline = started + args.maxMs;
  let issued = 0;
  let published = 0;
  let failed = 0;
  let receivers: number | null = 0;
  const errors: string[] = [];
  const sendIndex = async (index: number) => {
    const uid = args.target === "user" ? Math.floor(next() * args.users) : null;
    const room = uid === null ? siteRoom(args.site) : userRoom(uid);
    try {
      const reached = await sendOne(args.mode, room, uid, { t: now(), seq: index }, index);
      receivers = reached === null || receivers === null ? null : receivers + reached;
      published++;
    } catch (err) {
      failed++;
      if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
    }
  };
  if (args.ratePerSecond !== null) {
    // A steady rate: every few milliseconds, send what is due by now.
    const rate = args.ratePerSecond;
    const inFlight: Promise<void>[] = [];
    while (issued < args.count && now() < deadline) {
      const due = Math.min(args.count, Math.floor(((now() - started) * rate) / 1000) + 1);
      while (issued < due) inFlight.push(sendIndex(issued++));
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (inFlight.length > 10_000) await Promise.all(inFlight.splice(0));
    }
    await Promise.all(inFlight);
  } else if (args.mode === "emitter") {
    // Both emitters publish in windows: the plain one does not wait for Redis, so a PING after each
    // window, answered in order, bounds what is in flight; ours is awaited window by window, so that
    // Redis hands both stacks' nodes their messages in the same bursts.
    while (issued < args.count && now() < deadline) {
      const windowEnd = Math.min(args.count, issued + WINDOW);
      const sent: Promise<void>[] = [];
      while (issued < windowEnd) sent.push(sendIndex(issued++));
      await (plainEmitter ? redis.ping() : Promise.all(sent));
    }
  } else if (args.mode === "http-batch") {
    const lane = async () => {
      while (issued < args.count && now() < deadline) {
        const first = issued;
        const size = Math.min(HTTP_BATCH, args.count - first);
        issued += size;
        const messages = Array.from({ length: size }, (_, offset) => {
          const uid = args.target === "user" ? Math.floor(next() * args.users) : null;
          return {
            room: uid === null ? siteRoom(args.site) : userRoom(uid),
            event: BENCH_EVENT,
            data: { t: now(), seq: first + offset } satisfies BenchData,
          };
        });
        try {
          await post("/api/v1/publish/batch", { messages }, first / HTTP_BATCH);
          published += size;
        } catch (err) {
          failed += size;
          if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
        }
      }
    };
    await Promise.all(Array.from({ length: HTTP_BATCH_CONCURRENCY }, lane));
  } else {
    const lane = async () => {
      while (issued < args.count && now() < deadline) await sendIndex(issued++);
    };
    await Promise.all(Array.from({ length: args.mode === "http" ? HTTP_CONCURRENCY : WINDOW }, lane));
  }
  if (args.mode === "emitter" && plainEmitter) await redis.ping();
  return { published, failed, errors, receivers, elapsedMs: now() - started };
}

serveRequests<PublisherApi>({
  async open(args) {
    options = args;
    redis = createClient({ url: args.redisUrl });
    redis.on("error", () => {});
    await redis.connect();
    if (args.stack === "ours") ourEmitter = createEmitter({ redis: args.redisUrl });
    else plainEmitter = new Emitter(redis);
    return null;
  },
  publish,
  async close() {
    await ourEmitter?.close();
    await redis?.quit();
    return null;
  },
});

import jwt from "jsonwebtoken";
import { type Socket, io } from "socket.io-client";
import { notify, serveRequests } from "../ipc.js";
import { now } from "./clock.js";
import { BENCH_EVENT, type BenchData } from "./message.js";

/** A pool of Socket.IO clients in one process, each a user of its own. */
export type ClientsApi = {
  /** Makes the pool's tokens, so that signing them is not part of the storm. */
  prepare: { args: ConnectArgs; reply: null };
  connect: { args: Record<string, never>; reply: ConnectReply };
  /** Forgets every receipt so far. */
  reset: { args: Record<string, never>; reply: null };
  received: { args: Record<string, never>; reply: { count: number; lastAtMs: number } };
  latencies: { args: Record<string, never>; reply: { samples: number[]; maxBySeq: number[] } };
  close: { args: Record<string, never>; reply: null };
};

export interface ConnectArgs {
  stack: "ours" | "plain";
  urls: string[];
  /** This pool's users are firstUid … firstUid + count - 1; user i connects to urls[i % urls.length]. */
  firstUid: number;
  count: number;
  site: string;
  /** Ours: the HS256 secret the tokens are signed with. */
  secret: string;
  /** Handshakes in flight at once. */
  concurrency: number;
}

export interface ConnectReply {
  connected: number;
  failed: number;
  /** A few of the errors, to say why. */
  errors: string[];
  /** When the first handshake started and the last one ended, on the shared clock. */
  startedAtMs: number;
  finishedAtMs: number;
}

const MAX_SAMPLES = 4_000_000;
const MAX_SEQ = 100_000;
const sockets: Socket[] = [];
const samples = new Float64Array(MAX_SAMPLES);
const maxBySeq = new Float64Array(MAX_SEQ);
let sampleCount = 0;
let received = 0;
let lastAtMs = 0;
let highestSeq = -1;

function onBench(data: BenchData): void {
  const at = now();
  const latency = at - data.t;
  received++;
  lastAtMs = at;
  if (sampleCount < MAX_SAMPLES) samples[sampleCount++] = latency;
  if (data.seq >= 0 && data.seq < MAX_SEQ) {
    if (latency > (maxBySeq[data.seq] ?? 0)) maxBySeq[data.seq] = latency;
    if (data.seq > highestSeq) highestSeq = data.seq;
  }
}

function connectOne(url: string, auth: Record<string, unknown>): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, auth, timeout: 60_000 });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
    socket.on(BENCH_EVENT, onBench);
  });
}

let prepared: { args: ConnectArgs; auths: Record<string, unknown>[] } | null = null;

function prepare(args: ConnectArgs): null {
  const auths = Array.from({ length: args.count }, (_, index) => {
    const uid = args.firstUid + index;
    return args.stack === "ours"
      ? { token: jwt.sign({ sub: String(uid), site: args.site }, args.secret, { algorithm: "HS256", expiresIn: "2h" }) }
      : { uid, site: args.site };
  });
  prepared = { args, auths };
  return null;
}

async function connect(): Promise<ConnectReply> {
  if (!prepared) throw new Error("connect before prepare");
  const { args, auths } = prepared;
  prepared = null;
  const startedAtMs = now();
  let next = 0;
  let connected = 0;
  let failed = 0;
  const errors: string[] = [];
  const progress = setInterval(() => notify("progress", connected + failed), 250);
  const lane = async () => {
    while (next < args.count) {
      const index = next++;
      const uid = args.firstUid + index;
      try {
        sockets.push(await connectOne(args.urls[uid % args.urls.length]!, auths[index]!));
        connected++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, args.count) }, lane));
  clearInterval(progress);
  notify("progress", connected + failed);
  return { connected, failed, errors, startedAtMs, finishedAtMs: now() };
}

serveRequests<ClientsApi>({
  prepare,
  connect,
  reset() {
    received = 0;
    sampleCount = 0;
    lastAtMs = 0;
    maxBySeq.fill(0, 0, highestSeq + 1);
    highestSeq = -1;
    return null;
  },
  received: () => ({ count: received, lastAtMs }),
  latencies: () => ({ samples: Array.from(samples.subarray(0, sampleCount)), maxBySeq: Array.from(maxBySeq.subarray(0, highestSeq + 1)) }),
  close() {
    for (const socket of sockets.splice(0)) socket.close();
    return null;
  },
});

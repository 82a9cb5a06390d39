import { randomUUID } from "node:crypto";
import { SERVICE_KEYS, readServiceReply, replyChannel, requestFields } from "@switchboard/protocol";
import jwt from "jsonwebtoken";
import { createClient } from "redis";
import { type Socket, io } from "socket.io-client";
import { serveRequests } from "../ipc.js";
import { now } from "./clock.js";

/**
 * Callers of a service: sockets that each keep one `request` in flight (the documented wire events,
 * as any Socket.IO client would send them), or, for the floor, the same requests written straight to
 * the service's stream and answered on a Redis channel, with no gateway in between.
 */
export type CallersApi = {
  open: { args: OpenArgs; reply: { connected: number; errors: string[] } };
  /** Round trips through the cluster: `count` requests, `sockets` of them in flight at once. */
  call: { args: CallArgs; reply: CallReply };
  /** The floor: the same requests and replies through Redis alone, `concurrency` in flight. */
  direct: { args: CallArgs & { redisUrl: string; concurrency: number }; reply: CallReply };
  close: { args: Record<string, never>; reply: null };
};

export interface OpenArgs {
  urls: string[];
  sockets: number;
  secret: string;
  site: string;
}

export interface CallArgs {
  service: string;
  count: number;
  /** The run stops by itself after this long, however far it got. */
  maxMs: number;
}

export interface CallReply {
  completed: number;
  failed: number;
  errors: string[];
  /** Round-trip times in ms, request sent → result received. */
  samples: number[];
  elapsedMs: number;
}

const PAYLOAD = { item: "bench", qty: 1 };
const sockets: Socket[] = [];

async function open(args: OpenArgs): Promise<{ connected: number; errors: string[] }> {
  const errors: string[] = [];
  await Promise.all(
    Array.from({ length: args.sockets }, (_, index) => {
      const token = jwt.sign({ sub: `caller-${index}`, site: args.site }, args.secret, { algorithm: "HS256", expiresIn: "2h" });
      return new Promise<void>((resolve) => {
        const socket = io(args.urls[index % args.urls.length]!, {
          transports: ["websocket"],
          reconnection: false,
          forceNew: true,
          auth: { token },
        });
        socket.once("welcome", () => {
          sockets.push(socket);
          resolve();
        });
        socket.once("connect_error", (err) => {
          if (errors.length < 5) errors.push(err.message);
          socket.close();
          resolve();
        });
      });
    }),
  );
  return { connected: sockets.length, errors };
}

/** Runs `lanes` loops that each issue one call at a time until `count` calls were issued or time is up. */
async function lanesOf(lanes: number, args: CallArgs, once: () => Promise<void>): Promise<CallReply> {
  const samples: number[] = [];
  const errors: string[] = [];
  let issued = 0;
  let completed = 0;
  let failed = 0;
  const startedAt = now();
  const stopAt = startedAt + args.maxMs;
  const lane = async () => {
    while (issued < args.count && now() < stopAt) {
      issued++;
      const sentAt = now();
      try {
        await once();
        samples.push(now() - sentAt);
        completed++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  return { completed, failed, errors, samples, elapsedMs: now() - startedAt };
}

function callThroughCluster(socket: Socket, service: string): Promise<void> {
  const id = randomUUID();
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error("no reply within 30 s")), 30_000);
    const onReply = (reply: { id?: string; kind?: string; error?: { code?: string } }) => {
      if (reply.id !== id) return;
      if (reply.kind === "done") finish(null);
      else if (reply.kind === "error") finish(new Error(reply.error?.code ?? "error"));
    };
    function finish(error: Error | null): void {
      clearTimeout(timer);
      socket.off("reply", onReply);
      if (error) reject(error);
      else resolve();
    }
    socket.on("reply", onReply);
    socket.emit("request", { id, service, payload: PAYLOAD }, (ack: { ok?: boolean; error?: { code?: string } }) => {
      if (!ack?.ok) finish(new Error(ack?.error?.code ?? "refused"));
    });
  });
}

async function direct(args: CallArgs & { redisUrl: string; concurrency: number }): Promise<CallReply> {
  const commands = createClient({ url: args.redisUrl });
  const subscriber = commands.duplicate();
  await Promise.all([commands.connect(), subscriber.connect()]);
  const channel = replyChannel(`bench-direct-${process.pid}`);
  const waiting = new Map<string, () => void>();
  await subscriber.subscribe(channel, (message) => {
    const reply = readServiceReply(JSON.parse(message));
    if (typeof reply !== "string" && reply.kind === "done") waiting.get(reply.id)?.();
  });
  const stream = SERVICE_KEYS.requests(args.service);
  try {
    return await lanesOf(args.concurrency, args, async () => {
      const id = randomUUID();
      const answered = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no reply within 30 s")), 30_000);
        waiting.set(id, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const fields = requestFields({
        id,
        kind: "request",
        service: args.service,
        event: "",
        payload: PAYLOAD,
        caller: { user: "direct", site: "", socket: "direct", node: "direct" },
        deadline: Date.now() + 30_000,
        reply: channel,
      });
      await commands.sendCommand(["XADD", stream, "*", ...fields]);
      await answered.finally(() => waiting.delete(id));
    });
  } finally {
    await Promise.allSettled([commands.quit(), subscriber.quit()]);
  }
}

serveRequests<CallersApi>({
  open,
  call(args) {
    let next = 0;
    // As many lanes as sockets, the calls going round them: about one call in flight per socket.
    return lanesOf(sockets.length, args, () => callThroughCluster(sockets[next++ % sockets.length]!, args.service));
  },
  direct,
  close() {
    for (const socket of sockets.splice(0)) socket.close();
    return null;
  },
});

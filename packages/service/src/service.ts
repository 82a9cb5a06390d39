import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import {
  type Caller,
  SERVICE_GROUP,
  SERVICE_INSTANCE_TTL_MS,
  SERVICE_KEYS,
  type ServiceReply,
  type ServiceRequest,
  SwitchboardError,
  isServiceName,
  readRequestFields,
  serviceRoom,
} from "@switchboard/protocol";
import { createClient } from "@redis/client";
import { entriesOf } from "./streams.js";

/** A request as the handler sees it. */
export interface IncomingRequest<Payload = unknown> {
  /** The request's id, the same in every reply. */
  id: string;
  /** `request` expects a result; `send` (a client's `send`) expects none, and its replies go nowhere. */
  kind: "request" | "send";
  /** What a `send` is about; empty for a request. */
  event: string;
  payload: Payload;
  /** Who called, as the gateway verified them, and where their socket is. */
  caller: Caller;
  /** When the caller stops waiting (ms since the epoch); 0 for a send. */
  deadline: number;
}

/** What a handler may answer with, besides returning a result or throwing. */
export interface RequestContext {
  /** Progress, any number of times before the result. */
  notify(progress: unknown): Promise<void>;
  /** The result; the first of done and error is the one the caller gets. */
  done(result: unknown): Promise<void>;
  /** A failure with a code the caller can act on; `message` is for people. */
  error(error: { code: string; message?: string }): Promise<void>;
}

export type RequestHandler<Payload = unknown> = (request: IncomingRequest<Payload>, context: RequestContext) => unknown;

export interface ServiceOptions<Payload = unknown> {
  /** A Redis URL: the service opens (and closes) its own connections, one of them for blocking reads. */
  redis: string;
  /** The service's name: lower-case letters, digits, `.`, `_`, `-`. */
  name: string;
  /**
   * Handles each request. A returned value is the result (`done`), a thrown error is the failure
   * (`error`, with the error's `code` when it has one, else `internal_error`).
   */
  handler: RequestHandler<Payload>;
  /**
   * Requests this instance handles at once.
   * @default 1
   */
  concurrency?: number;
  /**
   * How long a request may stay with an instance before another instance takes it over: an
   * instance that crashed leaves its requests pending, and the others claim them after this.
   * A handler that runs longer than this may see its request run twice; the caller gets one result.
   * @default 30000
   */
  visibilityTimeoutMs?: number;
  /**
   * This instance's id in the consumer group and the registry.
   * @default "<hostname>-<pid>-<random>"
   */
  instanceId?: string;
  /**
   * Receives Redis errors and requests that could not be read; none of them throws into the host process.
   * @default one line on stderr each
   */
  onError?: (error: Error) => void;
}

export interface Service {
  readonly name: string;
  readonly instanceId: string;
  /** Resolves once the service is registered and taking requests. */
  ready(): Promise<void>;
  /** Sends `event` to every socket in the room `service(<name>)`, on every node. */
  broadcast(event: string, data?: unknown): Promise<void>;
  /** Sends `event` to every socket of one user. */
  direct(user: string | number, event: string, data?: unknown): Promise<void>;
  /** Stops taking requests, waits for those under way, leaves the registry's live instances. */
  close(): Promise<void>;
}

const BLOCK_MS = 1000;

/**
 * A timer's task that is skipped while its last run is still waiting for Redis: a Redis that is away
 * or not answering would otherwise have a command queued at every tick until it returns.
 */
function oneAtATime(task: () => Promise<void>, onError: (error: Error) => void): () => void {
  let running = false;
  return () => {
    if (running) return;
    running = true;
    task()
      .catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        running = false;
      });
  };
}

/** Starts an instance of a service: it registers, heartbeats, and handles requests until `close()`. */
export function createService<Payload = unknown>(options: ServiceOptions<Payload>): Service {
  const { name } = options;
  if (!isServiceName(name))
    throw new SwitchboardError(
      "invalid_request",
      `a service name is lower-case letters, digits, ".", "_" and "-" (at most 64), not ${JSON.stringify(name)}`,
    );
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  const visibilityTimeoutMs = Math.max(1000, options.visibilityTimeoutMs ?? 30_000);
  const instanceId = options.instanceId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const onError = options.onError ?? ((error: Error) => process.stderr.write(`@switchboard/service ${name}: ${error.message}\n`));
  const keys = { info: SERVICE_KEYS.info(name), instances: SERVICE_KEYS.instances(name), requests: SERVICE_KEYS.requests(name) };

  const commands = createClient({ url: options.redis });
  // XREADGROUP BLOCK holds its connection: it gets one of its own.
  const reader = commands.duplicate();
  for (const client of [commands, reader]) client.on("error", onError);
  const emitter: SwitchboardEmitter = createEmitter({ redis: options.redis, onError });

  let closing = false;
  let active = 0;
  let slotFreed: (() => void) | null = null;
  const running = new Set<Promise<void>>();
  const timers: NodeJS.Timeout[] = [];

  const run = (args: string[]) => commands.sendCommand(args);

  async function register(): Promise<void> {
    await Promise.all([commands.connect(), reader.connect()]);
    await run(["HSETNX", keys.info, "registeredAt", String(Date.now())]);
    await run(["HSET", keys.info, "name", name]);
    await run(["SADD", SERVICE_KEYS.index, name]);
    try {
      // From the start of the stream: a request can only be queued once an instance is live, so nothing older is lost.
      await run(["XGROUP", "CREATE", keys.requests, SERVICE_GROUP, "0", "MKSTREAM"]);
    } catch (err) {
      if (!String(err).includes("BUSYGROUP")) throw err;
    }
    await heartbeat();
    const beat = setInterval(oneAtATime(heartbeat, onError), Math.floor(SERVICE_INSTANCE_TTL_MS / 3));
    const claim = setInterval(oneAtATime(claimAbandoned, onError), Math.max(500, Math.floor(visibilityTimeoutMs / 2)));
    beat.unref();
    claim.unref();
    timers.push(beat, claim);
    void readLoop();
  }

  async function heartbeat(): Promise<void> {
    const now = Date.now();
    await run(["ZADD", keys.instances, String(now), instanceId]);
    // Instances gone for a minute are forgotten; their requests were claimed long before.
    await run(["ZREMRANGEBYSCORE", keys.instances, "-inf", String(now - 6 * SERVICE_INSTANCE_TTL_MS)]);
  }

  async function freeSlots(): Promise<number> {
    while (active >= concurrency && !closing) await new Promise<void>((resolve) => (slotFreed = resolve));
    return concurrency - active;
  }

  async function readLoop(): Promise<void> {
    while (!closing) {
      const free = await freeSlots();
      if (closing) break;
      try {
        const reply = await reader.sendCommand([
          "XREADGROUP",
          "GROUP",
          SERVICE_GROUP,
          instanceId,
          "COUNT",
          String(free),
          "BLOCK",
          String(BLOCK_MS),
          "STREAMS",
          keys.requests,
          ">",
        ]);
        for (const [entryId, fields] of entriesOf(reply)) start(entryId, fields);
      } catch (err) {
        if (closing) break;
        onError(err instanceof Error ? err : new Error(String(err)));
        // The group or stream was removed (unregister), or Redis is away: wait a little, then register again.
        await new Promise((resolve) => setTimeout(resolve, BLOCK_MS));
        await run(["XGROUP", "CREATE", keys.requests, SERVICE_GROUP, "0", "MKSTREAM"]).catch(() => {});
      }
    }
  }

  /** Takes over requests another instance took and did not finish within the visibility timeout. */
  async function claimAbandoned(): Promise<void> {
    if (closing || active >= concurrency) return;
    const reply = await run([
      "XAUTOCLAIM",
      keys.requests,
      SERVICE_GROUP,
      instanceId,
      String(visibilityTimeoutMs),
      "0-0",
      "COUNT",
      String(concurrency - active),
    ]);
    const claimed = Array.isArray(reply) ? reply[1] : null;
    for (const [entryId, fields] of entriesOf([[keys.requests, claimed]])) start(entryId, fields);
  }

  function start(entryId: string, fields: Record<string, string>): void {
    active++;
    const task = handle(entryId, fields)
      .catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        active--;
        running.delete(task);
        slotFreed?.();
        slotFreed = null;
      });
    running.add(task);
  }

  async function handle(entryId: string, fields: Record<string, string>): Promise<void> {
    const request = readRequestFields(fields);
    if (typeof request === "string") {
      onError(new Error(`dropped request ${entryId}: ${request}`));
      return finish(entryId);
    }
    // The caller has stopped waiting: the gateway has already told it request_timeout.
    if (request.kind === "request" && request.deadline > 0 && Date.now() > request.deadline) return finish(entryId);
    let answered = false;
    const answer = async (reply: ServiceReply) => {
      if (request.kind === "send") return;
      let text: string;
      try {
        text = JSON.stringify(reply);
      } catch (err) {
        // Data JSON cannot hold (a BigInt, a cycle) ends the call as an error, rather than leaving the caller to time out.
        const reason = err instanceof Error ? err.message : String(err);
        const what = reply.kind === "done" ? "result" : "progress";
        onError(new Error(`request ${request.id}: its ${what} could not be written as JSON: ${reason}`));
        answered = true;
        text = JSON.stringify({
          id: request.id,
          kind: "error",
          error: { code: "internal_error", message: `the service's ${what} could not be written as JSON: ${reason}` },
        } satisfies ServiceReply);
      }
      await commands.publish(request.reply, text);
    };
    const context: RequestContext = {
      notify: async (progress) => {
        if (!answered) await answer({ id: request.id, kind: "progress", data: progress ?? null });
      },
      done: async (result) => {
        if (answered) return;
        answered = true;
        await answer({ id: request.id, kind: "done", data: result ?? null });
      },
      error: async (error) => {
        if (answered) return;
        answered = true;
        await answer({ id: request.id, kind: "error", error: { code: String(error.code), message: error.message ?? String(error.code) } });
      },
    };
    try {
      const result = await options.handler(toIncoming(request) as IncomingRequest<Payload>, context);
      await context.done(result);
    } catch (err) {
      const code = typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : "internal_error";
      await context.error({ code, message: err instanceof Error ? err.message : String(err) });
    }
    await finish(entryId);
  }

  /** A finished request leaves the stream, so its length is what is waiting or under way. */
  async function finish(entryId: string): Promise<void> {
    await run(["XACK", keys.requests, SERVICE_GROUP, entryId]);
    await run(["XDEL", keys.requests, entryId]);
  }

  const registered = register();
  registered.catch(onError);

  return {
    name,
    instanceId,
    ready: () => registered,
    async broadcast(event, data) {
      await emitter.to(serviceRoom(name)).emit(event, data);
    },
    async direct(user, event, data) {
      await emitter.toUser(user).emit(event, data);
    },
    async close() {
      if (closing) return;
      closing = true;
      slotFreed?.();
      for (const timer of timers) clearInterval(timer);
      await registered.catch(() => {});
      await Promise.allSettled([...running]);
      await run(["ZREM", keys.instances, instanceId]).catch(() => {});
      // The reader may be blocked in XREADGROUP: it is cut rather than waited for. Whatever that read
      // would have taken stays pending in the group, and another instance claims it.
      await Promise.allSettled([commands.quit(), reader.disconnect(), emitter.close()]);
    },
  };
}

function toIncoming(request: ServiceRequest): IncomingRequest {
  return {
    id: request.id,
    kind: request.kind,
    event: request.event,
    payload: request.payload,
    caller: request.caller,
    deadline: request.deadline,
  };
}

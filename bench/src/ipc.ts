import { readFileSync } from "node:fs";
import { getHeapSpaceStatistics } from "node:v8";
import type { HeapActivity } from "./servers/allocation.js";

/**
 * Request/reply over the IPC channel of a forked worker process (a gateway node, a client pool,
 * a publisher): what both sides share, and the worker's side. The parent's side is workers.ts.
 * `Api` maps each command to its argument and reply types.
 */
export type Api = Record<string, { args: unknown; reply: unknown }>;

export interface Request {
  id: number;
  command: string;
  args: unknown;
}

export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/** A message a worker sends without being asked (progress, readiness). */
export interface Notice {
  notice: string;
  value: unknown;
}

export type Handlers<A extends Api> = { [C in keyof A]: (args: A[C]["args"]) => Promise<A[C]["reply"]> | A[C]["reply"] };

/** Inside a worker: answers the parent's requests with `handlers`. */
export function serveRequests<A extends Api>(handlers: Handlers<A>): void {
  process.on("message", (request: Request) => {
    const handler = (handlers as Record<string, ((args: unknown) => unknown) | undefined>)[request.command];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${request.command}`);
        return handler(request.args);
      })
      .then(
        (value) => process.send?.({ id: request.id, ok: true, value } satisfies Reply),
        (err: unknown) =>
          process.send?.({ id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply),
      );
  });
  // A worker never outlives the run that started it.
  process.on("disconnect", () => process.exit(0));
}

/** Inside a worker: tells the parent something it did not ask for. */
export function notify(notice: string, value: unknown): void {
  process.send?.({ notice, value } satisfies Notice);
}

const YOUNG_GENERATION_SPACES: ReadonlySet<string> = new Set(["new_space", "new_large_object_space"]);

/** What a server node reports of its own process. */
export interface Usage {
  /** User + system CPU time since the process started, in microseconds. */
  cpuUs: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Memory outside the V8 heap that V8 knows of: Buffers, ArrayBuffers. */
  externalBytes: number;
  /**
   * What V8 has committed for its young generation. It grows to its cap (16 MB a semi-space on
   * 64-bit Node) while a process allocates fast, whatever the process holds, and is part of RSS.
   */
  youngGenerationBytes: number;
  /**
   * CPU time of the thread that runs JavaScript, in microseconds; the rest of `cpuUs` is V8's own
   * threads (compiling, collecting) and libuv's. Null where the system does not give it (Linux does).
   */
  mainThreadCpuUs: number | null;
  /**
   * The process's read and write system calls so far (`syscr`, `syscw` of /proc/self/io: a socket's
   * reads and writes among them). Counts, not times: they barely move with the machine's speed, and
   * say how many writes a delivery took where its CPU time cannot. Null where the system does not give them.
   */
  systemCalls: { reads: number; writes: number } | null;
}

/** What a server node reports: its process, and what its heap did since it started. */
export interface NodeUsage extends Usage, HeapActivity {}

export function ownUsage(): Usage {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  let youngGenerationBytes = 0;
  for (const space of getHeapSpaceStatistics()) if (YOUNG_GENERATION_SPACES.has(space.space_name)) youngGenerationBytes += space.space_size;
  return {
    cpuUs: cpu.user + cpu.system,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    youngGenerationBytes,
    mainThreadCpuUs: ownThreadCpuUs(),
    systemCalls: ownSystemCalls(),
  };
}

function ownSystemCalls(): Usage["systemCalls"] {
  try {
    const io = readFileSync("/proc/self/io", "latin1");
    const reads = Number(/^syscr: (\d+)$/m.exec(io)?.[1]);
    const writes = Number(/^syscw: (\d+)$/m.exec(io)?.[1]);
    return Number.isFinite(reads) && Number.isFinite(writes) ? { reads, writes } : null;
  } catch {
    return null;
  }
}

/** The calling thread's time on a CPU, from the first field of its schedstat (nanoseconds). */
function ownThreadCpuUs(): number | null {
  try {
    const nanoseconds = Number(readFileSync("/proc/thread-self/schedstat", "latin1").split(" ", 1)[0]);
    return Number.isFinite(nanoseconds) ? nanoseconds / 1000 : null;
  } catch {
    return null;
  }
}

/** Runs a full garbage collection when the process was started with --expose-gc. */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

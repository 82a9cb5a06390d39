import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Request/reply over the IPC channel of a forked worker process (a gateway node, a client pool,
 * a publisher). `Api` maps each command to its argument and reply types.
 */
export type Api = Record<string, { args: unknown; reply: unknown }>;

interface Request {
  id: number;
  command: string;
  args: unknown;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/** A message a worker sends without being asked (progress, readiness). */
export interface Notice {
  notice: string;
  value: unknown;
}

export interface Worker<A extends Api> {
  readonly child: ChildProcess;
  call<C extends keyof A & string>(command: C, args: A[C]["args"], timeoutMs?: number): Promise<A[C]["reply"]>;
  /** Calls `listener` for each notice of this name. */
  onNotice(name: string, listener: (value: unknown) => void): void;
  /** Ends the worker: SIGTERM, then SIGKILL if it lingers. */
  stop(): Promise<void>;
}

const BENCH_DIR = fileURLToPath(new URL("..", import.meta.url));
const workers = new Set<ChildProcess>();

// An interrupted run leaves no worker behind.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of workers) child.kill("SIGKILL");
    process.exit(130);
  });
}

/**
 * Starts a worker (`servers/node`, `load/clients`, `load/publisher`) as its own Node process, from
 * the build in dist/ and with `gc()` exposed: the nodes run compiled code as they would in
 * production, without a TypeScript loader in the process being measured.
 */
export function startWorker<A extends Api>(file: string, env: Record<string, string> = {}): Worker<A> {
  const child = fork(join(BENCH_DIR, "dist", `${file}.js`), [], {
    cwd: BENCH_DIR,
    execArgv: ["--expose-gc"],
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  workers.add(child);
  let nextId = 1;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  const noticeListeners = new Map<string, ((value: unknown) => void)[]>();
  child.on("message", (message: Reply | Notice) => {
    if ("notice" in message) {
      for (const listener of noticeListeners.get(message.notice) ?? []) listener(message.value);
      return;
    }
    const waiting = pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id);
    clearTimeout(waiting.timer);
    if (message.ok) waiting.resolve(message.value);
    else waiting.reject(new Error(message.error));
  });
  child.once("exit", (code, signal) => {
    workers.delete(child);
    for (const [id, waiting] of pending) {
      pending.delete(id);
      clearTimeout(waiting.timer);
      waiting.reject(new Error(`${file} exited (${signal ?? code}) before answering`));
    }
  });
  return {
    child,
    call(command, args, timeoutMs = 120_000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${file}: ${command} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
        child.send({ id, command, args } satisfies Request);
      });
    },
    onNotice(name, listener) {
      noticeListeners.set(name, [...(noticeListeners.get(name) ?? []), listener]);
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGTERM");
      });
    },
  };
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
        (err: unknown) => process.send?.({ id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply),
      );
  });
  // A worker never outlives the run that started it.
  process.on("disconnect", () => process.exit(0));
}

/** Inside a worker: tells the parent something it did not ask for. */
export function notify(notice: string, value: unknown): void {
  process.send?.({ notice, value } satisfies Notice);
}

/** What a server node reports of its own process. */
export interface Usage {
  /** User + system CPU time since the process started, in microseconds. */
  cpuUs: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Memory outside the V8 heap that V8 knows of: Buffers, ArrayBuffers. */
  externalBytes: number;
}

/** What a server node reports: its process, and what its heap allocated since it started (garbage included). */
export interface NodeUsage extends Usage {
  allocatedBytes: number;
}

export function ownUsage(): Usage {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return { cpuUs: cpu.user + cpu.system, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed, heapTotalBytes: memory.heapTotal, externalBytes: memory.external };
}

/** Runs a full garbage collection when the process was started with --expose-gc. */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

/**
 * Binds a process and all its threads to the given CPUs (`taskset`, Linux): a process on a core of
 * its own is not slowed by the load generator's work on the same core, so its CPU time per operation
 * moves far less between runs. Returns why it could not, or null.
 */
export function pinToCpus(pid: number | undefined, cpus: string): string | null {
  if (pid === undefined) return "the process has no pid";
  try {
    execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", cpus, String(pid)], { stdio: "ignore" });
    return null;
  } catch (err) {
    return `taskset failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

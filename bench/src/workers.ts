import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stopProcess } from "@switchboard/e2e/harness/redis";
import type { Api, Notice, Reply, Request } from "./ipc.js";

/**
 * The parent's side of the workers: starting them, calling them, binding them to cores. Only the
 * run itself (under tsx) loads this module, so it may use the test harness; workers load ipc.ts.
 */

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
 * production, without a TypeScript loader in the process being measured. `nodeFlags` are more
 * Node and V8 flags for it (the server nodes get `--node-flags`).
 */
export function startWorker<A extends Api>(file: string, env: Record<string, string> = {}, nodeFlags: readonly string[] = []): Worker<A> {
  const child = fork(join(BENCH_DIR, "dist", `${file}.js`), [], {
    cwd: BENCH_DIR,
    execArgv: ["--expose-gc", ...nodeFlags],
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
    // A node closes its server on SIGTERM, which may take up to 5 s: it gets twice that.
    stop: () => stopProcess(child, "SIGTERM", 10_000),
  };
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

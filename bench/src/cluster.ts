import { freePort } from "@switchboard/e2e/harness/ports";
import type { NodeUsage } from "./ipc.js";
import { type Worker, pinToCpus, startWorker } from "./workers.js";
import type { ServerApi } from "./servers/node.js";

export type Stack = "ours" | "plain";

export const BENCH_SECRET = "switchboard-bench-secret-of-at-least-32-bytes";
export const BENCH_API_KEY = "switchboard-bench-api-key-of-at-least-32-chars";

export interface Cluster {
  stack: Stack;
  urls: string[];
  /** Each node's CPU time, memory (after a full GC when `gc`) and heap allocated so far. */
  usage(gc?: boolean): Promise<NodeUsage[]>;
  /** Starts every node's CPU profiler, or with `allocations` its sampling heap profiler. */
  profileStart(allocations: boolean): Promise<void>;
  /** Writes each node's profile as `<prefix>-<node index>.cpuprofile` (or `.heapprofile`). */
  profileStop(prefix: string): Promise<void>;
  /** Writes each node's heap as `<prefix>-<node index>.heapsnapshot`. */
  heapSnapshot(prefix: string): Promise<void>;
  /** Binds every node to `cpus` (see pinToCpus); returns why it could not, or null. */
  pin(cpus: string): string | null;
  stop(): Promise<void>;
}

/**
 * The gateway as a user would run it for load: the server API on (API_KEYS, from the common
 * settings), per-IP and per-user limits off
 * (every client of the benchmark comes from 127.0.0.1), logs at warn.
 */
function oursEnv(extra: Record<string, string>): Record<string, string> {
  return {
    JWT_SECRET: BENCH_SECRET,
    LOG_LEVEL: "warn",
    IP_CONNECTIONS_PER_SECOND: "0",
    IP_MAX_CONNECTIONS: "0",
    MAX_CONNECTIONS: "0",
    USER_MAX_SOCKETS: "0",
    ...extra,
  };
}

export interface ClusterOptions {
  /** More gateway configuration (ours). */
  env?: Record<string, string>;
  /** Node and V8 flags for every node, of either stack (`--node-flags`). */
  nodeFlags?: readonly string[];
}

/** Starts `nodes` server processes of one stack on the same Redis. */
export async function startCluster(stack: Stack, nodes: number, redisUrl: string, options: ClusterOptions = {}): Promise<Cluster> {
  const workers: Worker<ServerApi>[] = [];
  const urls: string[] = [];
  try {
    for (let index = 0; index < nodes; index++) {
      const port = await freePort();
      // Both stacks take the same key on their HTTP publish endpoint.
      const base = {
        STACK: stack,
        HOST: "127.0.0.1",
        PORT: String(port),
        REDIS_URL: redisUrl,
        NODE_ID: `${stack}-${index}`,
        API_KEYS: BENCH_API_KEY,
      };
      const worker = startWorker<ServerApi>(
        "servers/node",
        stack === "ours" ? oursEnv({ ...base, ...options.env }) : base,
        options.nodeFlags,
      );
      workers.push(worker);
      urls.push(
        await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${stack} node ${index} did not start`)), 30_000);
          worker.onNotice("ready", (url) => {
            clearTimeout(timer);
            resolve(String(url));
          });
          worker.child.once("exit", (code) => reject(new Error(`${stack} node ${index} exited with ${code}`)));
        }),
      );
    }
  } catch (err) {
    await Promise.all(workers.map((worker) => worker.stop()));
    throw err;
  }
  let profileExtension = "cpuprofile";
  return {
    stack,
    urls,
    usage: (gc = false) => Promise.all(workers.map((worker) => worker.call("usage", { gc }))),
    profileStart: async (allocations) => {
      profileExtension = allocations ? "heapprofile" : "cpuprofile";
      await Promise.all(workers.map((worker) => worker.call("profileStart", { allocations })));
    },
    heapSnapshot: async (prefix) => {
      await Promise.all(workers.map((worker, index) => worker.call("heapSnapshot", { path: `${prefix}-${index}.heapsnapshot` })));
    },
    profileStop: async (prefix) => {
      await Promise.all(workers.map((worker, index) => worker.call("profileStop", { path: `${prefix}-${index}.${profileExtension}` })));
    },
    pin: (cpus) => workers.map((worker) => pinToCpus(worker.child.pid, cpus)).find((problem) => problem !== null) ?? null,
    stop: async () => {
      await Promise.all(workers.map((worker) => worker.stop()));
    },
  };
}

import { type ChildProcess, spawn } from "node:child_process";
import { freePort } from "./ports.js";

export interface RedisServer {
  url: string;
  port: number;
  /** The redis-server process, to bind it to CPUs for a benchmark. */
  pid: number | undefined;
  /**
   * Runs `work` while the server is stopped (SIGSTOP): its connections stay open and nothing is
   * answered, as with a Redis that hangs. It goes on (SIGCONT) when `work` settles, whatever happened.
   */
  whileStopped<T>(work: () => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

/** Starts a throw-away redis-server on a free loopback port (or the given one), with nothing persisted. */
export async function startRedis(port?: number): Promise<RedisServer> {
  port ??= await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`redis-server did not start on port ${port}:\n${output}`)), 10_000);
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === "ENOENT"
          ? new Error("redis-server is not on PATH. Install it first, for example on Debian/Ubuntu: sudo apt-get install redis-server")
          : err,
      );
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${output}`));
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    async whileStopped(work) {
      child.kill("SIGSTOP");
      try {
        return await work();
      } finally {
        child.kill("SIGCONT");
      }
    },
    stop: () => stopProcess(child),
  };
}

/** Stops a process this harness started, by its own handle; SIGKILL if it lingers for `graceMs`. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

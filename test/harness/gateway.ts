import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { WaitingIsOver, freePort, sleep, waitFor } from "./ports.js";
import { stopProcess } from "./redis.js";

const MAIN = fileURLToPath(new URL("../../apps/gateway/dist/main.js", import.meta.url));
export const TEST_SECRET = "switchboard-test-secret-of-at-least-32-bytes";

export interface GatewayProcess {
  url: string;
  nodeId: string;
  child: ChildProcess;
  /** Every line the node printed so far (stdout and stderr). */
  lines: string[];
  stop(): Promise<void>;
  /** Kills the node at once, as a crash would. */
  kill(): Promise<void>;
}

/**
 * Starts one gateway node from the built code as its own OS process and waits until it is ready
 * (`/readyz` 200: listening, and with Redis, connected and subscribed). `wait: "alive"` waits only
 * for `/healthz`; `wait: "nothing"` returns at once.
 */
export async function startGateway(
  env: Record<string, string> = {},
  options: { wait?: "ready" | "alive" | "nothing" } = {},
): Promise<GatewayProcess> {
  // A port the harness chose may be taken by any process on the machine before the node listens on
  // it (an outgoing connection's ephemeral port among them): the node then exits, and another is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startGatewayOnce(env, options);
    } catch (err) {
      if (env.PORT !== undefined || attempt === 3 || !(err instanceof PortTaken)) throw err;
    }
  }
}

/** The node exited at start because its port was in use. */
class PortTaken extends WaitingIsOver {}

async function startGatewayOnce(env: Record<string, string>, options: { wait?: "ready" | "alive" | "nothing" }): Promise<GatewayProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const nodeId = env.NODE_ID ?? `node-${port}`;
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: String(port),
      NODE_ID: nodeId,
      JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const collect = (chunk: Buffer) =>
    lines.push(
      ...chunk
        .toString()
        .split("\n")
        .filter((line) => line.length > 0),
    );
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const url = `http://127.0.0.1:${port}`;
  const gateway: GatewayProcess = {
    url,
    nodeId,
    child,
    lines,
    stop: () => stopProcess(child),
    kill: () => stopProcess(child, "SIGKILL"),
  };
  const wait = options.wait ?? "ready";
  if (wait !== "nothing") {
    // Its own start-up line first: whatever answers on the port before that may be another process.
    await waitFor(`gateway ${nodeId} to log its start`, async () => {
      if (lines.some((line) => line.includes("listening on"))) return true;
      if (child.exitCode !== null) await exitedAtStart(gateway, "listened");
      return undefined;
    });
    await waitFor(`gateway ${nodeId} to be ${wait}`, async () => {
      if (child.exitCode !== null) await exitedAtStart(gateway, `was ${wait}`);
      const response = await fetch(`${url}/${wait === "ready" ? "readyz" : "healthz"}`);
      return response.status === 200 ? true : undefined;
    });
  }
  return gateway;
}

/** Ends the wait for a node that has exited, with what it printed; a PortTaken when its port was in use. */
async function exitedAtStart({ nodeId, child, lines }: GatewayProcess, before: string): Promise<never> {
  // Its last lines may still be in the pipe when it exits ('close' comes once they are through).
  await Promise.race([once(child, "close"), sleep(1000)]);
  const printed = lines.join("\n");
  const problem = `gateway ${nodeId} exited with ${child.exitCode} before it ${before}:\n${printed}`;
  throw printed.includes("EADDRINUSE") ? new PortTaken(problem) : new WaitingIsOver(problem);
}

/** Waits for a process to exit by itself and returns its exit code. */
export function exitCode(child: ChildProcess, timeoutMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("process did not exit")), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Reads one counter from a node's Prometheus metrics, summing over label sets that match. */
export async function readCounter(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

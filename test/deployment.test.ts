import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type SwitchboardClient, connect } from "@switchboard/client";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { type Socket, io } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { mintToken } from "./harness/clients.js";
import { type GatewayProcess, startGateway } from "./harness/gateway.js";
import { type Nginx, startNginx } from "./harness/nginx.js";
import { freePort, waitFor } from "./harness/ports.js";
import { type RedisServer, startRedis } from "./harness/redis.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
/** The first fenced block of `language` after `heading` in the README. */
function readmeBlock(heading: string, language: string): string {
  const from = readme.indexOf(heading);
  expect(from, `README section ${heading}`).toBeGreaterThan(-1);
  const block = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(readme.slice(from))?.[1];
  expect(block, `a ${language} block under ${heading}`).toBeDefined();
  return block ?? "";
}

describe("two nodes behind nginx, configured as the README says", () => {
  let redis: RedisServer;
  let nodes: GatewayProcess[];
  let nginx: Nginx;
  let emitter: SwitchboardEmitter;
  const sockets: Socket[] = [];
  const clients: SwitchboardClient[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    nodes = await Promise.all(["lb-a", "lb-b"].map((id) => startGateway({ REDIS_URL: redis.url, NODE_ID: id, TRUST_PROXY: "loopback" })));
    const port = await freePort();
    const config = readmeBlock("### Behind a load balancer", "nginx")
      .replace("127.0.0.1:3001", new URL(nodes[0]!.url).host)
      .replace("127.0.0.1:3002", new URL(nodes[1]!.url).host)
      .replace("listen 127.0.0.1:8080", `listen 127.0.0.1:${port}`);
    nginx = await startNginx(config, port);
    emitter = createEmitter({ redis: redis.url });
  });
  afterAll(async () => {
    for (const socket of sockets) socket.close();
    for (const client of clients) client.close();
    await emitter?.close();
    await nginx?.stop();
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  it("serves a plain socket.io-client (long-polling first, then WebSocket) and the SDK, which both survive the loss of their node", async () => {
    // Default transports: the long-polling requests of the handshake must all reach one node.
    const plain = io(nginx.url, { auth: { token: mintToken({ sub: "behind-lb" }) }, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
    sockets.push(plain);
    const welcomes: { node: string }[] = [];
    plain.on("welcome", (welcome: { node: string }) => welcomes.push(welcome));
    const plainMessages: unknown[] = [];
    plain.on("note", (data: unknown) => plainMessages.push(data));
    const sdk = connect({
      url: nginx.url,
      token: mintToken({ sub: "behind-lb" }),
      socket: { reconnectionDelay: 200, reconnectionDelayMax: 1000 },
    });
    clients.push(sdk);
    const sdkMessages: unknown[] = [];
    sdk.on("note", (data) => sdkMessages.push(data));
    const first = await sdk.ready();
    await waitFor("the plain client's welcome", () => (welcomes.length > 0 ? true : undefined));
    await waitFor("the plain client to upgrade to WebSocket", () => (plain.io.engine.transport.name === "websocket" ? true : undefined));

    await emitter.toUser("behind-lb").emit("note", 1);
    await waitFor("both to receive", () => (plainMessages.includes(1) && sdkMessages.includes(1) ? true : undefined));

    // Kill the node the SDK client is on; nginx pins one address to one node, so both are there.
    const doomed = nodes.find((node) => node.nodeId === first.node) as GatewayProcess;
    const survivor = nodes.find((node) => node !== doomed) as GatewayProcess;
    expect(welcomes[0]?.node).toBe(doomed.nodeId);
    const killedAt = Date.now();
    await doomed.kill();
    await waitFor(
      "the SDK on the other node",
      () => (sdk.state.status === "connected" && sdk.state.welcome.node === survivor.nodeId ? true : undefined),
      10_000,
    );
    await waitFor("the plain client on the other node", () => (welcomes.at(-1)?.node === survivor.nodeId ? true : undefined), 10_000);
    let delivered = false;
    const publishing = (async () => {
      while (!delivered) {
        await emitter.toUser("behind-lb").emit("note", 2);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    await waitFor(
      "both to receive on the survivor",
      () => (plainMessages.includes(2) && sdkMessages.includes(2) ? true : undefined),
      10_000,
    );
    delivered = true;
    await publishing;
    expect(Date.now() - killedAt).toBeLessThan(5000);
  });
});

describe("the README's two-node block", () => {
  it("builds first, then starts Redis and two nodes that become ready (run as written, on free ports)", async () => {
    const block = readmeBlock("### Two nodes", "sh").trim().split("\n");
    // Line one builds (the suite has built already); the rest runs exactly as written.
    expect(block[0]).toBe("npm ci && npm run build");
    const [redisPort, portA, portB] = await Promise.all([freePort(), freePort(), freePort()]);
    const script = block
      .slice(1)
      .join("\n")
      .replaceAll("6379", String(redisPort))
      .replaceAll("3001", String(portA))
      .replaceAll("3002", String(portB));
    // Its own process group, so its background jobs are stopped with it and nothing else.
    const shell: ChildProcess = spawn("bash", ["-c", `${script}\nwait`], { cwd: ROOT, detached: true, stdio: "ignore" });
    try {
      for (const port of [portA, portB]) {
        await waitFor(
          `the node on ${port}`,
          async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined),
          20_000,
        );
      }
    } finally {
      if (shell.pid !== undefined) process.kill(-shell.pid, "SIGTERM");
      await new Promise((resolve) => shell.once("exit", resolve));
    }
  });
});

describe("the container files", () => {
  const dockerfile = readFileSync(new URL("../Dockerfile", import.meta.url), "utf8");
  const lines = dockerfile.split("\n");

  it("builds with the README's commands and runs the built gateway as an unprivileged user", () => {
    const run = lines.filter((line) => line.startsWith("RUN "));
    expect(run.join(" ")).toContain("npm ci --no-audit --no-fund && npm run build");
    expect(lines.filter((line) => line.startsWith("USER ")).at(-1)).toBe("USER node");
    expect(lines.find((line) => line.startsWith("CMD "))).toBe('CMD ["node", "apps/gateway/dist/main.js"]');
    expect(lines.filter((line) => line.startsWith("FROM ")).length).toBe(2);
  });

  it("has a HEALTHCHECK whose command passes against a running node and fails without one", async () => {
    const healthcheck = lines.find((line) => line.startsWith("HEALTHCHECK "));
    const command = JSON.parse(healthcheck?.slice(healthcheck.indexOf("CMD ") + 4) ?? "[]") as string[];
    expect(command[0]).toBe("node");
    const node = await startGateway();
    try {
      const { port } = new URL(node.url);
      await promisify(execFile)(process.execPath, command.slice(1), { env: { PORT: port } });
      await expect(
        promisify(execFile)(process.execPath, command.slice(1), { env: { PORT: String(await freePort()) } }),
      ).rejects.toMatchObject({ code: 1 });
    } finally {
      await node.stop();
    }
  });

  it("compose.yaml runs Redis and two nodes that share one key and reach Redis by its service name", () => {
    const compose = parse(readFileSync(new URL("../compose.yaml", import.meta.url), "utf8")) as {
      services: Record<string, { image?: string; build?: string; environment?: Record<string, string>; ports?: string[] }>;
    };
    expect(Object.keys(compose.services).sort()).toEqual(["node-a", "node-b", "redis"]);
    const nodes = [compose.services["node-a"], compose.services["node-b"]];
    for (const node of nodes) {
      expect(node?.build).toBe(".");
      expect(node?.environment?.REDIS_URL).toBe("redis://redis:6379");
    }
    expect(nodes[0]?.environment?.JWT_SECRET).toBe(nodes[1]?.environment?.JWT_SECRET);
    expect(nodes[0]?.environment?.NODE_ID).not.toBe(nodes[1]?.environment?.NODE_ID);
    expect(nodes[0]?.ports).not.toEqual(nodes[1]?.ports);
  });
});

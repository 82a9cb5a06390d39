import { createServer } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, openClient } from "./harness/clients.js";
import { type GatewayProcess, exitCode, readCounter, startGateway } from "./harness/gateway.js";
import { waitFor } from "./harness/ports.js";

describe("a single node without Redis", () => {
  let node: GatewayProcess;
  beforeAll(async () => {
    node = await startGateway({ JWT_SECRET: "" });
  });
  afterAll(() => node?.stop());
  afterEach(() => closeAllClients());

  it("says in its start-up log that it runs on the in-memory adapter, and warns about the generated secret", async () => {
    // The node answers /readyz as it writes that line: the line may still be on its way through the pipe.
    await waitFor("the start-up line", () => (node.lines.some((line) => line.includes("in-memory adapter")) ? true : undefined));
    expect(node.lines.some((line) => line.includes('"level":40') && line.includes("generated a random development secret"))).toBe(true);
  });

  it("with its development endpoints on and no HOST, listens on 127.0.0.1 and says so, with each key once on its start-up line", async () => {
    const local = await startGateway({ JWT_SECRET: "", HOST: "" });
    try {
      expect(local.lines.some((line) => line.includes("listens on 127.0.0.1 only; set HOST"))).toBe(true);
      const start = local.lines.find((line) => line.includes("switchboard listening on")) ?? "";
      expect(start).toContain('"url":"http://127.0.0.1:');
      const keys = [...start.matchAll(/"([a-zA-Z]+)":/g)].map((match) => match[1]);
      expect(keys.length).toBe(new Set(keys).size);
    } finally {
      await local.stop();
    }
  });

  it("reports itself healthy in memory mode and serves the demo page", async () => {
    expect(await (await fetch(`${node.url}/healthz`)).json()).toMatchObject({
      status: "ok",
      mode: "memory",
      redis: "none",
      node: node.nodeId,
    });
    const page = await fetch(`${node.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
  });

  it("refuses tokens signed with any other secret", async () => {
    const client = openClient(node.url, { auth: { token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl" } });
    const [err] = (await client.next("connect_error")) as [Error];
    expect(err.message).toBe("token_invalid_signature");
  });
});

describe("a single node with a secret", () => {
  let node: GatewayProcess;
  beforeAll(async () => {
    node = await startGateway();
  });
  afterAll(() => node?.stop());
  afterEach(() => closeAllClients());

  it("welcomes a user and keeps serving after a client leaves", async () => {
    const first = await connectUser(node.url, { sub: "solo" });
    first.close();
    const second = await connectUser(node.url, { sub: "solo", site: "solo.example" });
    expect((await second.next("welcome"))[0]).toMatchObject({ user: "solo", site: "solo.example" });
  });

  it("answers a service request with service_unavailable, saying no service can register without Redis", async () => {
    const client = await connectUser(node.url, { sub: "solo-caller", services: ["*"] });
    for (const service of ["orders", "made-up-1", "made-up-2"]) {
      expect(await client.socket.timeout(2000).emitWithAck("request", { service })).toEqual({
        ok: false,
        error: { code: "service_unavailable", message: expect.stringContaining("REDIS_URL") },
      });
    }
    // Counted without the names, which no registry vouches for here.
    expect(await readCounter(node.url, "switchboard_service_requests_total", { service: "", outcome: "unavailable" })).toBe(3);
    expect(await (await fetch(`${node.url}/metrics`)).text()).not.toContain('service="made-up-1"');
  });
});

describe("start-up configuration errors", () => {
  it.each([
    ["PORT", { PORT: "eighty" }],
    ["REDIS_URL", { REDIS_URL: "localhost:6379" }],
    ["JWT_SECRET", { NODE_ENV: "production", JWT_SECRET: "" }],
    ["JWT_ALGORITHMS", { JWT_ALGORITHMS: "RS256" }],
  ])("stops with exit code 1 and a message naming %s", async (variable, env) => {
    const node = await startGateway(env, { wait: "nothing" });
    expect(await exitCode(node.child)).toBe(1);
    expect(node.lines.join("\n")).toContain(`config_invalid: ${variable}:`);
  });

  it("stops with exit code 1, saying so, when its port is taken, and the harness reports that at once", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const address = taken.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    try {
      // A port the caller names is not swapped for another: the failure comes back with what the node printed.
      const failure = await startGateway({ PORT: String(port) }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(Error);
      // Its exit is the answer, not a wait that times out.
      expect((failure as Error).message).toContain("before it listened");
      expect((failure as Error).message).toContain("EADDRINUSE");
      expect((failure as Error).message).toContain("could not start");
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

import { describe, expect, it } from "vitest";
import { ClientError, connect } from "../src/index.js";

// Port 1 (tcpmux) has no listener on any ordinary machine: connections to it are refused at once.
const UNREACHABLE_PORT = 1;

describe("client without a reachable server", () => {
  it("rejects ready() with connection_failed once it stops retrying", async () => {
    const client = connect({ url: `http://127.0.0.1:${UNREACHABLE_PORT}`, token: "t", socket: { reconnection: false } });
    const failure = await client.ready().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ClientError);
    expect(failure).toMatchObject({ code: "connection_failed" });
    client.close();
  });

  it("keeps the state at connecting while socket.io retries with backoff", async () => {
    const client = connect({
      url: `http://127.0.0.1:${UNREACHABLE_PORT}`,
      token: "t",
      socket: { reconnectionDelay: 50, reconnectionDelayMax: 100 },
    });
    const states: string[] = [];
    client.on("state", (state) => states.push(state.status));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(states.length).toBeGreaterThan(1);
    expect(new Set(states)).toEqual(new Set(["connecting"]));
    client.close();
  });

  it("reports a failing getToken as token_missing", async () => {
    const client = connect({
      url: `http://127.0.0.1:${UNREACHABLE_PORT}`,
      getToken: () => {
        throw new Error("login expired");
      },
    });
    await expect(client.ready()).rejects.toMatchObject({ code: "token_missing", message: expect.stringContaining("login expired") });
  });
});

describe("ClientError", () => {
  it("carries a code and the registry message by default", () => {
    const error = new ClientError("auth_timeout");
    expect(error.code).toBe("auth_timeout");
    expect(error.message).toMatch(/authenticate/);
  });
});

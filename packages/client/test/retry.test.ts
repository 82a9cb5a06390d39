import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { afterEach, describe, expect, it } from "vitest";
import { type ClientError, connect } from "../src/index.js";

/**
 * A Socket.IO server that refuses the first handshakes with a given error body, as a gateway's
 * middleware does, then welcomes the socket. A real server, so the client's retry goes through
 * socket.io-client's own connect_error path.
 */
async function refusingServer(body: { code: string; message: string }, refusals: number) {
  const http = createServer();
  const io = new Server(http);
  let handshakes = 0;
  io.use((_socket, next) => {
    handshakes++;
    if (handshakes > refusals) return next();
    next(Object.assign(new Error(body.message), { data: body }));
  });
  io.on("connection", (socket) => {
    socket.emit("welcome", {
      id: socket.id,
      node: "test",
      name: "switchboard",
      version: "0",
      user: "u1",
      site: null,
      rooms: ["user(u1)"],
      joinable: [],
      publishable: [],
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    handshakes: () => handshakes,
    close: () => new Promise<void>((resolve) => io.close(() => resolve())),
  };
}

const servers: { close(): Promise<void> }[] = [];
const clients: { close(): void }[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

// Short delays so the retries fit the test; the client's defaults are 1 s to 10 s.
const quickRetries = { reconnectionDelay: 50, reconnectionDelayMax: 100 };

describe("a refusal the registry marks as worth retrying", () => {
  it("reports internal_error once, keeps trying with backoff, and connects once the server takes the socket", async () => {
    const server = await refusingServer({ code: "internal_error", message: "the server failed unexpectedly" }, 3);
    servers.push(server);
    const client = connect({ url: server.url, token: "t", socket: quickRetries });
    clients.push(client);
    const errors: string[] = [];
    const states: string[] = [];
    client.on("error", (error: ClientError) => errors.push(error.code));
    client.on("state", (state) => states.push(state.status));
    expect(await client.ready()).toMatchObject({ user: "u1" });
    expect(server.handshakes()).toBe(4);
    expect(errors).toEqual(["internal_error"]);
    expect(states).not.toContain("disconnected");
    expect(states.at(-1)).toBe("connected");
  });

  it("ends the session on a refusal that is not worth retrying, trying no more", async () => {
    const server = await refusingServer({ code: "token_invalid_signature", message: "the signature does not match" }, 3);
    servers.push(server);
    const client = connect({ url: server.url, token: "t", socket: quickRetries });
    clients.push(client);
    await expect(client.ready()).rejects.toMatchObject({ code: "token_invalid_signature" });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(server.handshakes()).toBe(1);
    expect(client.state).toMatchObject({ status: "disconnected", code: "token_invalid_signature" });
  });

  it("does not retry internal_error when socket.io's reconnection is off", async () => {
    const server = await refusingServer({ code: "internal_error", message: "the server failed unexpectedly" }, 3);
    servers.push(server);
    const client = connect({ url: server.url, token: "t", socket: { reconnection: false } });
    clients.push(client);
    await expect(client.ready()).rejects.toMatchObject({ code: "internal_error" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(server.handshakes()).toBe(1);
  });
});

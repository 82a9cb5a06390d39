import { readFileSync } from "node:fs";
import { type Socket, connect } from "node:net";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken } from "./harness/clients.js";
import { type GatewayProcess, TEST_SECRET, startGateway } from "./harness/gateway.js";
import { waitFor } from "./harness/ports.js";
import { upgradeRequest } from "./harness/raw.js";

/** A client's WebSocket text frame: masked, as a client's must be (a zero key leaves the bytes as they are). */
function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const length =
    payload.length < 126 ? Buffer.from([0x80 | payload.length]) : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([Buffer.from([0x81]), length, Buffer.alloc(4), payload]);
}

/** Each chunk the client's TCP socket reads, in order. */
function chunksOf(socket: Socket): { chunks: string[]; next(): Promise<string> } {
  const chunks: string[] = [];
  let waiting: ((chunk: string) => void) | null = null;
  socket.on("data", (data: Buffer) => {
    const text = data.toString("latin1");
    chunks.push(text);
    waiting?.(text);
    waiting = null;
  });
  let read = 0;
  return {
    chunks,
    next: () =>
      new Promise<string>((resolve, reject) => {
        const index = read++;
        if (chunks[index] !== undefined) return resolve(chunks[index]);
        const timer = setTimeout(() => reject(new Error(`no chunk ${index} within 5 s; got ${JSON.stringify(chunks)}`)), 5000);
        waiting = (chunk) => {
          clearTimeout(timer);
          resolve(chunk);
        };
      }),
  };
}

/**
 * One handshake by hand: resolves once it checked that the 101 came with engine.io's open packet in
 * one read, and the CONNECT acknowledgement with welcome in the next.
 */
async function handshakeInTwoWrites(port: number, user: string): Promise<void> {
  const socket = connect(port, "127.0.0.1");
  try {
    const reader = chunksOf(socket);
    socket.write(upgradeRequest());
    // A write of a few hundred bytes on loopback arrives whole in one read, so a read holding two
    // packets means they left in one write (two writes may also share a read, never the reverse).
    const upgrade = await reader.next();
    expect(upgrade).toMatch(/^HTTP\/1\.1 101 /);
    expect(upgrade).toContain('0{"sid":"');
    socket.write(clientTextFrame(`40${JSON.stringify({ token: mintToken({ sub: user, site: "writes.example" }) })}`));
    const accepted = await reader.next();
    expect(accepted).toContain('40{"sid":"');
    expect(accepted).toContain('42["welcome",');
    expect(accepted.indexOf("40{")).toBeLessThan(accepted.indexOf('42["welcome"'));
  } finally {
    socket.destroy();
  }
}

describe("the writes of a WebSocket handshake", () => {
  let node: GatewayProcess;
  beforeAll(async () => {
    node = await startGateway();
  });
  afterAll(() => node?.stop());

  it("come in two: the 101 with engine.io's open packet, then the CONNECT acknowledgement with welcome", async () => {
    await handshakeInTwoWrites(Number(new URL(node.url).port), "writes-1");
  });

  it("come in two for each of twenty handshakes that arrive together", async () => {
    const port = Number(new URL(node.url).port);
    await Promise.all(Array.from({ length: 20 }, (_, index) => handshakeInTwoWrites(port, `writes-many-${index}`)));
  });

  it("answer each of many tokens that arrive together by that token: its own welcome, or its own refusal", async () => {
    const port = Number(new URL(node.url).port);
    const now = Math.floor(Date.now() / 1000);
    // Every fourth token of each kind: good, expired, signed with another secret, not a JWT.
    const cases = Array.from({ length: 24 }, (_, index) => {
      const user = `together-${index}`;
      switch (index % 4) {
        case 0:
          return { token: mintToken({ sub: user }), answer: `"user":"${user}"` };
        case 1:
          return { token: jwt.sign({ sub: user, exp: now - 30 }, TEST_SECRET), answer: '44{"message":"token_expired"' };
        case 2:
          return {
            token: mintToken({ sub: user }, {}, "another-secret-of-enough-length!!"),
            answer: '44{"message":"token_invalid_signature"',
          };
        default:
          return { token: `not-a-jwt-${index}`, answer: '44{"message":"token_malformed"' };
      }
    });
    const sockets = cases.map(() => connect(port, "127.0.0.1"));
    try {
      const readers = sockets.map((socket) => chunksOf(socket));
      for (const socket of sockets) socket.write(upgradeRequest());
      for (const reader of readers) expect(await reader.next()).toMatch(/^HTTP\/1\.1 101 /);
      // Every CONNECT written in one go, so that the node reads many of them in the same turn.
      for (const [index, socket] of sockets.entries()) socket.write(clientTextFrame(`40${JSON.stringify({ token: cases[index]!.token })}`));
      const answers = await Promise.all(readers.map((reader) => reader.next()));
      for (const [index, answer] of answers.entries()) {
        expect(answer).toContain(cases[index]!.answer);
        if (index % 4 === 0) expect(answer).toContain('42["welcome",');
        else expect(answer).not.toContain("welcome");
      }
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});

/** The write syscalls (write, writev…) a process has made so far, from Linux's /proc/<pid>/io. */
function writeSyscalls(pid: number): number {
  const line = /^syscw: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
  if (!line) throw new Error(`no syscw in /proc/${pid}/io`);
  return Number(line[1]);
}

describe("the writes of messages queued for a client", () => {
  const API_KEY = "writes-test-api-key-of-at-least-32-chars";
  let node: GatewayProcess;
  beforeAll(async () => {
    node = await startGateway({ API_KEYS: API_KEY });
  });
  afterAll(() => {
    closeAllClients();
    return node?.stop();
  });

  it("leave in one write once the one before is done, in order and complete", async () => {
    const client = await connectUser(node.url, { sub: "backlog-1" });
    const pid = node.child.pid!;
    const count = 60;
    const before = writeSyscalls(pid);
    // One batch is published to the user's socket in one go: the first message is written at once,
    // the rest wait in engine.io's queue until that write is done, then go out together.
    const response = await fetch(`${node.url}/api/v1/publish/batch`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({
        messages: Array.from({ length: count }, (_, index) => ({ room: "user(backlog-1)", event: "m", data: index })),
      }),
    });
    expect(response.status).toBe(202);
    await waitFor("every message", () => (client.count("m") === count ? true : undefined));
    const writes = writeSyscalls(pid) - before;
    expect(client.received.filter((entry) => entry.event === "m").map((entry) => entry.args[0])).toEqual(
      Array.from({ length: count }, (_, index) => index),
    );
    // The request's log line, the HTTP response, the first message and the queued rest: a few writes,
    // not one per message.
    expect(writes).toBeLessThan(10);
  });
});

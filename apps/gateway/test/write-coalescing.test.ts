import { EventEmitter, once } from "node:events";
import { type AddressInfo, type Server, type Socket, createServer, connect } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { coalesceBacklogWrites } from "../src/write-coalescing.js";

/** A real TCP connection on loopback: the node's end, and what its peer reads, chunk by chunk. */
async function tcpPair(): Promise<{ local: Socket; chunks: string[]; server: Server }> {
  const chunks: string[] = [];
  const server = createServer((peer) => peer.on("data", (data: Buffer) => chunks.push(data.toString())));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const local = connect((server.address() as AddressInfo).port, "127.0.0.1");
  await once(local, "connect");
  return { local, chunks, server };
}

/** The parts of an engine.io connection the coalescing reads: a WebSocket transport over `socket`. */
const connectionOver = (socket: Socket, name = "websocket") => ({
  readyState: "open",
  transport: { name, writable: true, socket: { _socket: socket } },
});

const opened: { local: Socket; server: Server }[] = [];
afterEach(() => {
  for (const { local, server } of opened.splice(0)) {
    local.destroy();
    server.close();
  }
});

async function setUp() {
  const pair = await tcpPair();
  opened.push(pair);
  const engine = new EventEmitter();
  coalesceBacklogWrites(engine);
  return { ...pair, engine };
}

const nextMicrotask = () => new Promise<void>((resolve) => queueMicrotask(resolve));

describe("a queue of packets handed to a WebSocket at once", () => {
  it("is held while it is written and released once that code has returned, in one write and in order", async () => {
    const { local, chunks, engine } = await setUp();
    engine.emit("flush", connectionOver(local), [{}, {}, {}]);
    expect(local.writableCorked).toBe(1);
    // What the transport does right after the event: a frame at a time.
    local.write("one;");
    local.write("two;");
    local.write("three;");
    expect(local.writableLength).toBe("one;two;three;".length);
    await nextMicrotask();
    expect(local.writableCorked).toBe(0);
    await vi.waitFor(() => expect(chunks.join("")).toBe("one;two;three;"), { timeout: 2000 });
    expect(chunks).toEqual(["one;two;three;"]);
  });

  it("leaves a packet alone, a polling transport and a socket held by someone else as they are", async () => {
    const { local, engine } = await setUp();
    engine.emit("flush", connectionOver(local), [{}]);
    expect(local.writableCorked).toBe(0);
    engine.emit("flush", connectionOver(local, "polling"), [{}, {}]);
    expect(local.writableCorked).toBe(0);
    // A handshake's writes are held until its turn is done: that hold releases the queue with the rest.
    local.cork();
    engine.emit("flush", connectionOver(local), [{}, {}]);
    expect(local.writableCorked).toBe(1);
    await nextMicrotask();
    expect(local.writableCorked).toBe(1);
    local.uncork();
  });

  it("does nothing to a socket destroyed before its release", async () => {
    const { local, engine } = await setUp();
    const errors: unknown[] = [];
    const onUncaught = (err: unknown) => errors.push(err);
    process.on("uncaughtException", onUncaught);
    try {
      engine.emit("flush", connectionOver(local), [{}, {}]);
      local.destroy();
      await nextMicrotask();
      await new Promise((resolve) => setImmediate(resolve));
      expect(errors).toEqual([]);
      // A destroyed socket is not held again: its one hold, never released, stays the only one.
      engine.emit("flush", connectionOver(local), [{}, {}]);
      expect(local.writableCorked).toBe(1);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  });
});

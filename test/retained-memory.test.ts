import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { closeAllClients, mintToken, openClient } from "./harness/clients.js";
import { type GatewayProcess, startGateway } from "./harness/gateway.js";
import { waitFor } from "./harness/ports.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  closeAllClients();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The parts of a V8 heap snapshot read here: its nodes, as a flat array of fields, and their names. */
interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Asks the node for a heap snapshot (it collects garbage first, so what is in it is held) and reads it. */
async function heapOf(gateway: GatewayProcess, directory: string): Promise<HeapSnapshot> {
  gateway.child.kill("SIGUSR2");
  return waitFor(
    "the heap snapshot to be written",
    () => {
      const file = readdirSync(directory).find((name) => name.endsWith(".heapsnapshot"));
      if (file === undefined) return undefined;
      try {
        return JSON.parse(readFileSync(join(directory, file), "utf8")) as HeapSnapshot;
      } catch {
        // Still being written.
        return undefined;
      }
    },
    30_000,
  );
}

/** How many objects of a class the heap holds. */
function instancesOf(heap: HeapSnapshot, className: string): number {
  const fields = heap.snapshot.meta.node_fields;
  const typeField = fields.indexOf("type");
  const nameField = fields.indexOf("name");
  const objectType = heap.snapshot.meta.node_types[0].indexOf("object");
  let count = 0;
  for (let index = 0; index < heap.nodes.length; index += fields.length) {
    if (heap.nodes[index + typeField] === objectType && heap.strings[heap.nodes[index + nameField] ?? -1] === className) count++;
  }
  return count;
}

describe("what a connected socket keeps", () => {
  it("holds neither the HTTP request of its handshake, nor its headers, nor its token", async () => {
    const directory = mkdtempSync(join(tmpdir(), "switchboard-heap-"));
    cleanups.push(async () => rmSync(directory, { recursive: true, force: true }));
    const gateway = await startGateway({ NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${directory}` });
    cleanups.push(() => gateway.stop());
    const sockets = 40;
    const tokens = Array.from({ length: sockets }, (_, index) => mintToken({ sub: `kept-${index}`, site: "memory.example" }));
    // A header no node needs after the handshake, large enough that keeping it would show.
    const probe = (index: number) => `probe-${index}-${"p".repeat(2000)}`;
    // Half of them give their token in the handshake's auth, half in its Authorization header.
    const clients = tokens.map((token, index) =>
      index % 2 === 0
        ? openClient(gateway.url, { auth: { token }, extraHeaders: { "X-Probe": probe(index) } })
        : openClient(gateway.url, { extraHeaders: { Authorization: `Bearer ${token}`, "X-Probe": probe(index) } }),
    );
    await Promise.all(clients.map((client) => client.next("welcome")));

    const heap = await heapOf(gateway, directory);
    // Every socket is still connected: had the node kept each handshake, there would be one request per socket.
    for (const client of clients) expect(client.socket.connected).toBe(true);
    expect(instancesOf(heap, "IncomingMessage")).toBeLessThan(sockets / 4);
    // Every string the heap holds, one after another: a token kept whole or inside a longer string is found.
    const held = heap.strings.join("\u0000");
    const kept = (values: string[]) => values.filter((value) => held.includes(value));
    expect(kept(tokens)).toEqual([]);
    expect(kept(tokens.map((_token, index) => probe(index)))).toEqual([]);
  });
});

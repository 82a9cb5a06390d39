import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";

/**
 * Summarises V8 CPU profiles (from `npm run bench -- --profile`): where the busy time went, by
 * function (self time) and by package; allocation profiles the same way in bytes; and heap
 * snapshots: bytes and count by constructor.
 *   npm run profile -w @switchboard/bench -- results/profiles/targeted-emitter-ours-0.cpuprofile [--top 30]
 *   npm run profile -w @switchboard/bench -- results/profiles/targeted-emitter-ours-0.heapprofile
 *   npm run profile -w @switchboard/bench -- results/profiles/connected-ours-0.heapsnapshot [--retainers IncomingMessage]
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}
/** A sampling heap profile (`.heapprofile`): a tree of call sites with the bytes each allocated. */
interface AllocationNode {
  id: number;
  callFrame: ProfileNode["callFrame"];
  selfSize: number;
  children: AllocationNode[];
}

const { values: flags, positionals: files } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string" }, retainers: { type: "string" } },
});
const top = Number(flags.top ?? 25);
if (files.length === 0) {
  process.stderr.write("usage: profile <file.cpuprofile|file.heapprofile|file.heapsnapshot>… [--top n] [--retainers <constructor>]\n");
  process.exit(2);
}

function where(url: string): string {
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inModules) return inModules[1]!;
  if (url.startsWith("node:")) return "node";
  if (url.includes("/packages/") || url.includes("/apps/")) return /\/(packages|apps)\/([^/]+)/.exec(url)?.slice(1).join("/") ?? url;
  return url === "" ? "(vm)" : basename(url);
}

/** The parts of a .heapsnapshot this summary reads. */
interface HeapSnapshot {
  snapshot: {
    meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** What references the objects of one constructor: the referrer's name and the edge, counted. */
function summariseRetainers(heap: HeapSnapshot, constructorName: string): void {
  const fields = heap.snapshot.meta.node_fields;
  const edgeFields = heap.snapshot.meta.edge_fields;
  const edgeTypes = heap.snapshot.meta.edge_types[0];
  const [nameAt, edgeCountAt] = ["name", "edge_count"].map((field) => fields.indexOf(field)) as [number, number];
  const [edgeTypeAt, edgeNameAt, toAt] = ["type", "name_or_index", "to_node"].map((field) => edgeFields.indexOf(field)) as [
    number,
    number,
    number,
  ];
  const referrers = new Map<string, number>();
  let edge = 0;
  for (let node = 0; node < heap.nodes.length; node += fields.length) {
    const edgeCount = heap.nodes[node + edgeCountAt]!;
    for (let index = 0; index < edgeCount; index++, edge += edgeFields.length) {
      const target = heap.edges[edge + toAt]!;
      if (heap.strings[heap.nodes[target + nameAt]!] !== constructorName) continue;
      const type = edgeTypes[heap.edges[edge + edgeTypeAt]!]!;
      if (type === "weak") continue;
      const label = type === "element" || type === "hidden" ? `[${type}]` : heap.strings[heap.edges[edge + edgeNameAt]!]!;
      const key = `${heap.strings[heap.nodes[node + nameAt]!]} .${label}`;
      referrers.set(key, (referrers.get(key) ?? 0) + 1);
    }
  }
  process.stdout.write(`\nwhat references ${constructorName}\n`);
  for (const [key, count] of [...referrers].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${String(count).padStart(8)}  ${key}\n`);
}

/** Self size and count per constructor (or per type for strings, code, arrays…). */
function summariseHeap(file: string, retainersOf: string | null): void {
  const heap = JSON.parse(readFileSync(file, "utf8")) as HeapSnapshot;
  if (retainersOf !== null) {
    summariseRetainers(heap, retainersOf);
    return;
  }
  const fields = heap.snapshot.meta.node_fields;
  const types = heap.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((field) => fields.indexOf(field)) as [number, number, number];
  const bySort = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let index = 0; index < heap.nodes.length; index += fields.length) {
    const type = types[heap.nodes[index + typeAt]!]!;
    const name = type === "object" || type === "closure" ? heap.strings[heap.nodes[index + nameAt]!]! : `(${type})`;
    const bytes = heap.nodes[index + sizeAt]!;
    total += bytes;
    const entry = bySort.get(name) ?? { bytes: 0, count: 0 };
    entry.bytes += bytes;
    entry.count++;
    bySort.set(name, entry);
  }
  process.stdout.write(`${file}: ${(total / 2 ** 20).toFixed(1)} MiB\n`);
  for (const [name, entry] of [...bySort].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) {
    process.stdout.write(`${(entry.bytes / 1024).toFixed(0).padStart(9)} KiB ${String(entry.count).padStart(8)}  ${name}\n`);
  }
}

/** Units of a profile's weights: microseconds of CPU, or bytes allocated. */
interface Unit {
  total: string;
  show(weight: number): string;
}
const MICROSECONDS: Unit = { total: "busy", show: (us) => `${(us / 1000).toFixed(0).padStart(8)} ms` };
const BYTES: Unit = { total: "allocated", show: (bytes) => `${(bytes / 2 ** 20).toFixed(1).padStart(8)} MiB` };

/** Weights by package, by function (self) and by the project's own functions (callees included). */
function summariseTree(file: string, nodes: Map<number, ProfileNode>, self: Map<number, number>, unit: Unit): void {
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let busy = 0;
  let total = 0;
  for (const [id, weight] of self) {
    const frame = nodes.get(id)!.callFrame;
    total += weight;
    if (frame.functionName === "(idle)" || frame.functionName === "(program)") continue;
    busy += weight;
    const name = `${frame.functionName || "(anonymous)"} ${where(frame.url)}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + weight);
    const pkg = frame.url === "" ? frame.functionName : where(frame.url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + weight);
  }
  const show = (title: string, entries: Map<string, number>) => {
    process.stdout.write(`\n${title}\n`);
    for (const [name, weight] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${unit.show(weight)} ${((100 * weight) / busy).toFixed(1).padStart(5)}%  ${name}\n`);
    }
  };
  const parents = new Map<number, number>();
  for (const node of nodes.values()) for (const child of node.children ?? []) parents.set(child, node.id);
  const ownTotal = new Map<string, number>();
  for (const [id, weight] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const frame = nodes.get(at)!.callFrame;
      if (!/\/(apps|packages)\//.test(frame.url) || frame.url.includes("node_modules")) continue;
      const name = `${frame.functionName || "(anonymous)"} ${where(frame.url)}:${frame.lineNumber + 1}`;
      if (seen.has(name)) continue;
      seen.add(name);
      ownTotal.set(name, (ownTotal.get(name) ?? 0) + weight);
    }
  }
  process.stdout.write(
    `${file}: ${unit.show(busy).trim()} ${unit.total}${unit === MICROSECONDS ? ` of ${(total / 1e6).toFixed(2)} s` : ""}\n`,
  );
  show("by package", byPackage);
  show(`by function (self ${unit === MICROSECONDS ? "time" : "allocations"})`, byFunction);
  show("the project's functions (callees included)", ownTotal);
}

for (const file of files) {
  if (file.endsWith(".heapsnapshot")) {
    summariseHeap(file, flags.retainers ?? null);
    continue;
  }
  const nodes = new Map<number, ProfileNode>();
  const self = new Map<number, number>();
  if (file.endsWith(".heapprofile")) {
    const { head } = JSON.parse(readFileSync(file, "utf8")) as { head: AllocationNode };
    const pending = [head];
    for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
      nodes.set(node.id, { id: node.id, callFrame: node.callFrame, children: node.children.map((child) => child.id) });
      if (node.selfSize > 0) self.set(node.id, node.selfSize);
      pending.push(...node.children);
    }
    summariseTree(file, nodes, self, BYTES);
    continue;
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  for (const node of profile.nodes) nodes.set(node.id, node);
  for (const [index, id] of profile.samples.entries()) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  summariseTree(file, nodes, self, MICROSECONDS);
}

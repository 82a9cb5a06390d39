import { readFileSync } from "node:fs";
import { basename } from "node:path";

/**
 * Summarises V8 CPU profiles (from `npm run bench -- --profile`): where the busy time went, by
 * function (self time) and by package.
 *   npm run profile -w @switchboard/bench -- results/profiles/main-ours-0.cpuprofile [--top 30]
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

const args = process.argv.slice(2);
const topIndex = args.indexOf("--top");
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
const files = args.filter((arg, index) => arg !== "--top" && index !== topIndex + 1);
if (files.length === 0) {
  process.stderr.write("usage: profile <file.cpuprofile>… [--top n]\n");
  process.exit(2);
}

function where(url: string): string {
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inModules) return inModules[1]!;
  if (url.startsWith("node:")) return "node";
  if (url.includes("/packages/") || url.includes("/apps/")) return /\/(packages|apps)\/([^/]+)/.exec(url)?.slice(1).join("/") ?? url;
  return url === "" ? "(vm)" : basename(url);
}

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  for (const [index, id] of profile.samples.entries()) selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let busy = 0;
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id)!.callFrame;
    total += us;
    if (frame.functionName === "(idle)" || frame.functionName === "(program)") continue;
    busy += us;
    const name = `${frame.functionName || "(anonymous)"} ${where(frame.url)}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const pkg = frame.url === "" ? frame.functionName : where(frame.url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const show = (title: string, entries: Map<string, number>) => {
    process.stdout.write(`\n${title}\n`);
    for (const [name, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${name}\n`);
    }
  };
  process.stdout.write(`${file}: ${(busy / 1e6).toFixed(2)} s busy of ${(total / 1e6).toFixed(2)} s\n`);
  show("by package", byPackage);
  show("by function (self time)", byFunction);
}

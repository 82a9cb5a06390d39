import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { scratchDir } from "./harness/scratch.js";

// Debian's python3 with python3-redis and python3-msgpack (installed by .ci/run).
const PYTHON = "/usr/bin/python3";
const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const examples = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((match) => match[1] ?? "");
const publishers = examples.filter((text) => text.includes("socket.io#emitter"));
const example = publishers.find((text) => !text.includes("SIGNING_SECRET"));
const signedExample = publishers.find((text) => text.includes("SIGNING_SECRET"));

let cluster: Cluster;
let signing: Cluster;
const SIGNING_SECRET = "the-python-publisher-secret-of-32-bytes-or-more";
beforeAll(async () => {
  [cluster, signing] = await Promise.all([
    startCluster(2),
    startCluster(1, { FRAME_SIGNING_KEYS: JSON.stringify({ "publisher-1": SIGNING_SECRET }) }),
  ]);
});
afterAll(async () => {
  closeAllClients();
  await Promise.all([cluster?.close(), signing?.close()]);
});

/** Runs a README example, exactly as written, with Debian's python3. */
async function runExample(source: string | undefined, env: Record<string, string>): Promise<string> {
  expect(source, "a ```python block in README.md").toBeDefined();
  const script = join(scratchDir("example"), "example.py");
  writeFileSync(script, source ?? "");
  const { stdout } = await promisify(execFile)(PYTHON, [script], { env });
  return stdout;
}

describe("the README's Python publisher", () => {
  it("is delivered, as copied, to user 42's sockets on both nodes", async () => {
    const onA = await connectUser(cluster.nodes[0]!.url, { sub: "42" });
    const onB = await connectUser(cluster.nodes[1]!.url, { sub: "42" });
    const stdout = await runExample(example, { REDIS_URL: cluster.redis.url });
    expect(stdout).toContain("delivered to 2 gateway node(s)");
    expect(await onA.next("note")).toEqual([{ text: "hello from python" }]);
    expect(await onB.next("note")).toEqual([{ text: "hello from python" }]);
  });
});

describe("the README's signed Python publisher", () => {
  it("is delivered, as copied, by a node that requires signed frames", async () => {
    const client = await connectUser(signing.nodes[0]!.url, { sub: "42" });
    const stdout = await runExample(signedExample, { REDIS_URL: signing.redis.url, SIGNING_SECRET });
    expect(stdout).toContain("signed frame delivered to 1 gateway node(s)");
    expect(await client.next("note")).toEqual([{ text: "signed hello" }]);
  });
});

import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";

// Debian's python3 with python3-redis and python3-msgpack (installed by .ci/run).
const PYTHON = "/usr/bin/python3";
const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const example = /```python\n([\s\S]*?)```/.exec(readme)?.[1];

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster(2);
});
afterAll(async () => {
  closeAllClients();
  await cluster?.close();
});

describe("the README's Python publisher", () => {
  it("is delivered, as copied, to user 42's sockets on both nodes", async () => {
    expect(example, "a ```python block in README.md").toBeDefined();
    const script = join(tmpdir(), `switchboard-publisher-${process.pid}.py`);
    writeFileSync(script, example ?? "");
    const onA = await connectUser(cluster.nodes[0]!.url, { sub: "42" });
    const onB = await connectUser(cluster.nodes[1]!.url, { sub: "42" });
    const { stdout } = await promisify(execFile)(PYTHON, [script], { env: { REDIS_URL: cluster.redis.url } });
    expect(stdout).toContain("delivered to 2 gateway node(s)");
    expect(await onA.next("note")).toEqual([{ text: "hello from python" }]);
    expect(await onB.next("note")).toEqual([{ text: "hello from python" }]);
  });
});

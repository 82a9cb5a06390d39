import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { encode } from "@msgpack/msgpack";
import SwaggerParser from "@apidevtools/swagger-parser";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import { type Service, createService } from "@switchboard/service";
import fc from "fast-check";
import jwt from "jsonwebtoken";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser, mintToken, openClient } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { TEST_SECRET, readCounter, startGateway } from "./harness/gateway.js";
import { EVERY_KIND_OF_DATA } from "./harness/payloads.js";
import { sleep, waitFor } from "./harness/ports.js";

export const API_KEY = "test-api-key-of-at-least-32-characters-0001";
const ROUTES = { order: "user({user})", sale: "site({site})", news: "topic(news)" };
const bytes = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength);

let cluster: Cluster;
let a: string;
let b: string;
let emitter: SwitchboardEmitter;
const registered: Service[] = [];

beforeAll(async () => {
  cluster = await startCluster(
    2,
    {
      API_KEYS: `${API_KEY},second-key-of-at-least-32-characters-000002`,
      EVENT_ROUTES: JSON.stringify(ROUTES),
      SUBSCRIBE_ROOMS: "topic(*),endpoint:*",
      PRESENCE_EVENTS: "1",
      PRESENCE_NODE_TTL_MS: "1500",
    },
    // Node a subscribes to every room's channel, node b only to those of the rooms it holds: what is delivered
    // through both nodes is delivered under both REDIS_SUBSCRIPTIONS settings, in a cluster that mixes them.
    [{}, { REDIS_SUBSCRIPTIONS: "rooms" }],
  );
  [a, b] = cluster.nodes.map((node) => node.url) as [string, string];
  emitter = createEmitter({ redis: cluster.redis.url });
  // Registered services for the registry routes: one the route tests remove, one the README's examples do.
  for (const name of ["probe-svc", "orders"]) {
    const service = createService({ redis: cluster.redis.url, name, handler: () => null });
    registered.push(service);
    await service.ready();
  }
});
afterAll(async () => {
  await Promise.all(registered.map((service) => service.close()));
  await emitter?.close();
  await cluster?.close();
});
afterEach(() => closeAllClients());

/** One API call; `key: null` sends none. */
async function api(node: string, method: string, path: string, body?: unknown, key: string | null = API_KEY) {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${node}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? null : (JSON.parse(text) as Record<string, unknown>) };
}

const EVERY_ROUTE: [string, string, unknown?][] = [
  ["POST", "/api/v1/publish", { room: "user(x)", data: 1 }],
  ["POST", "/api/v1/publish/batch", { messages: [{ room: "user(x)", data: 1 }] }],
  ["POST", "/api/v1/broadcast", { data: 1 }],
  ["POST", "/api/v1/users/x/disconnect", { refuseReconnect: false }],
  ["POST", "/api/v1/users/x/allow"],
  ["POST", "/api/v1/tokens/revoke", { jti: "j", exp: Math.floor(Date.now() / 1000) + 60 }],
  ["GET", "/api/v1/presence/users/x"],
  ["GET", "/api/v1/presence/sites/x.example"],
  ["GET", "/api/v1/presence/rooms/topic(x)/count"],
  ["GET", "/api/v1/info"],
  ["GET", "/api/v1/services"],
  ["GET", "/api/v1/services/probe-svc"],
  ["DELETE", "/api/v1/services/probe-svc"],
  ["POST", "/api/v1/events", { event: "probe-event", room: "topic(probe)" }],
  ["GET", "/api/v1/events"],
  ["DELETE", "/api/v1/events/probe-event"],
  ["GET", "/api/v1/openapi.json"],
  ["POST", "/_notify/news", { text: "hi" }],
  ["POST", "/_notify_endpoint/news", { endpoint: "e1" }],
];

describe("API keys", () => {
  it.each(EVERY_ROUTE)(
    "%s %s: 401 api_key_invalid without a key or with a wrong one, and served with a good one",
    async (method, path, body) => {
      for (const key of [null, "wrong-key-of-at-least-32-characters-xxxxxxxx", `${API_KEY}x`]) {
        expect(await api(a, method, path, body, key)).toEqual({
          status: 401,
          body: { code: "api_key_invalid", message: expect.any(String) },
        });
      }
      const served = await api(a, method, path, body);
      expect(served.status, JSON.stringify(served.body)).toBeLessThan(400);
    },
  );

  it("takes every configured key, and never writes a key to the log", async () => {
    expect((await api(a, "GET", "/api/v1/info", undefined, "second-key-of-at-least-32-characters-000002")).status).toBe(200);
    for (const node of cluster.nodes)
      expect(node.lines.filter((line) => line.includes(API_KEY) || line.includes("second-key-of"))).toEqual([]);
  });

  it("answers 404 on a node without API_KEYS, and says at start-up that the API is off", async () => {
    const off = await startGateway();
    try {
      expect(await api(off.url, "POST", "/api/v1/publish", { room: "user(x)", data: 1 })).toMatchObject({
        status: 404,
        body: { code: "not_found" },
      });
      expect(await api(off.url, "POST", "/_notify/news", { a: 1 })).toMatchObject({ status: 404, body: { code: "not_found" } });
      expect(off.lines.some((line) => line.includes("server API off"))).toBe(true);
    } finally {
      await off.stop();
    }
  });
});

describe("request bodies", () => {
  it.each([
    ["a room that is a number", { room: 5, data: 1 }, "room"],
    ["no data", { room: "user(x)" }, "data"],
    ["a field the API does not know", { room: "user(x)", data: 1, colour: "red" }, "colour"],
    ["an event that is not a string", { room: "user(x)", event: 7, data: 1 }, "event"],
  ])("refuses %s with 400 invalid_request naming the field", async (_what, body, field) => {
    const reply = await api(a, "POST", "/api/v1/publish", body);
    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({ code: "invalid_request", message: expect.stringContaining(field) });
  });

  it("refuses a body that is not JSON, a reserved event and an oversized body with their codes", async () => {
    expect((await api(a, "POST", "/api/v1/publish", "{not json")).body).toMatchObject({ code: "invalid_request" });
    expect(await api(a, "POST", "/api/v1/publish", { room: "user(x)", event: "connect", data: 1 })).toMatchObject({
      status: 400,
      body: { code: "invalid_event" },
    });
    expect(await api(a, "POST", "/api/v1/publish", { room: "user(x)", data: "x".repeat(70_000) })).toMatchObject({
      status: 413,
      body: { code: "payload_too_large" },
    });
    expect(await api(a, "POST", "/api/v1/tokens/revoke", { jti: "j", exp: "soon" })).toMatchObject({
      status: 400,
      body: { code: "invalid_request" },
    });
    // Larger than Redis can hold as an expiry: refused before anything is stored.
    for (const exp of ["1e300", "99999999999999999999", "253402300800"]) {
      expect(await api(a, "POST", "/api/v1/tokens/revoke", `{"jti":"j","exp":${exp}}`)).toMatchObject({
        status: 400,
        body: { code: "invalid_request" },
      });
    }
  });
});

describe("random bodies", () => {
  // Bounded in count; one seed, printed in the test name, replays a failure (API_FUZZ_SEED=<seed>).
  const seed = Number(process.env.API_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  it(`answers every random body on every POST route with a status below 500 and a coded error, and keeps serving (seed ${seed})`, async () => {
    const routes = EVERY_ROUTE.filter(([method]) => method === "POST").map(([, path]) => path);
    const bodies = fc.sample(
      fc.oneof(
        fc.jsonValue({ maxDepth: 6 }),
        fc.record({ room: fc.jsonValue(), rooms: fc.jsonValue(), data: fc.jsonValue(), event: fc.jsonValue() }, { requiredKeys: [] }),
        fc.record({
          messages: fc.array(fc.record({ room: fc.jsonValue(), data: fc.jsonValue(), user: fc.jsonValue() }, { requiredKeys: [] }), {
            maxLength: 5,
          }),
        }),
        // Numbers at and past what Redis and JavaScript hold exactly, where a route takes a number.
        fc.record(
          {
            jti: fc.oneof(fc.string({ maxLength: 8 }), fc.jsonValue()),
            exp: fc.oneof(fc.jsonValue(), fc.integer(), fc.constantFrom(1e300, 2 ** 53, 2 ** 63, -1, 0)),
          },
          { requiredKeys: [] },
        ),
        fc.string({ maxLength: 200 }),
      ),
      { seed, numRuns: 400 },
    );
    for (const [index, body] of bodies.entries()) {
      const path = routes[index % routes.length]!;
      const reply = await api(a, "POST", path, typeof body === "string" ? body : JSON.stringify(body));
      expect(reply.status, `${path} ${JSON.stringify(body)?.slice(0, 200)}`).toBeLessThan(500);
      if (reply.status >= 400) expect(reply.body).toEqual({ code: expect.any(String), message: expect.any(String) });
    }
    expect((await api(a, "GET", "/api/v1/info")).status).toBe(200);
  });
});

describe("POST /api/v1/publish and /broadcast", () => {
  it("delivers to a user's sockets on both nodes exactly once each", async () => {
    const onA = await connectUser(a, { sub: "api-user" });
    const onB = await connectUser(b, { sub: "api-user" });
    const reply = await api(b, "POST", "/api/v1/publish", { room: "user(api-user)", event: "note", data: { text: "hi" } });
    expect(reply).toEqual({ status: 202, body: { id: expect.any(String) } });
    expect(await onA.next("note")).toEqual([{ text: "hi" }]);
    expect(await onB.next("note")).toEqual([{ text: "hi" }]);
    await api(b, "POST", "/api/v1/publish", { rooms: ["user(api-user)"], event: "marker", data: 1 });
    await onA.next("marker");
    await onB.next("marker");
    expect([onA.count("note"), onB.count("note")]).toEqual([1, 1]);
  });

  it("delivers a message's data as sent, one or in a batch: multi-byte text, floats, large and negative integers, null, nesting", async () => {
    const onA = await connectUser(a, { sub: "api-types" });
    const data = EVERY_KIND_OF_DATA;
    expect((await api(b, "POST", "/api/v1/publish", { room: "user(api-types)", event: "typed", data })).status).toBe(202);
    expect(await onA.next("typed")).toEqual([data]);
    const batch = { messages: [{ room: "user(api-types)", event: "typed-batch", data }] };
    expect((await api(b, "POST", "/api/v1/publish/batch", batch)).status).toBe(202);
    expect(await onA.next("typed-batch")).toEqual([data]);
  });

  it("sends a message for one room on that room's channel: a node holding none of it does not read it, the node that took the request does", async () => {
    const onA = await connectUser(a, { sub: "api-one-room" });
    const adapterMessages = () =>
      Promise.all([a, b].map((node) => readCounter(node, "switchboard_messages_received_total", { source: "adapter" })));
    const [beforeA, beforeB] = (await adapterMessages()) as [number, number];
    // Taken by node b, which holds no socket of the room; delivered by node a, which does.
    expect((await api(b, "POST", "/api/v1/publish", { room: "user(api-one-room)", event: "one-room", data: 1 })).status).toBe(202);
    expect(await onA.next("one-room")).toEqual([1]);
    await sleep(150);
    expect(await adapterMessages()).toEqual([beforeA + 1, beforeB]);
  });

  it("routes by the event table, fills {user} and {site}, adds _in rooms, and refuses what it cannot route", async () => {
    const user = await connectUser(a, { sub: "42" });
    const shopper = await connectUser(b, { sub: "s1", site: "shop.example" });
    const reader = await connectUser(b, { sub: "r1" });
    expect(await reader.socket.emitWithAck("subscribe", { room: "topic(extra)" })).toMatchObject({ ok: true });
    await api(a, "POST", "/api/v1/publish", { event: "order", user: 42, data: { id: 1 }, _in: "topic(extra)" });
    expect(await user.next("order")).toEqual([{ id: 1 }]);
    expect(await reader.next("order")).toEqual([{ id: 1 }]);
    await api(a, "POST", "/api/v1/publish", { event: "sale", site: "Shop.Example:443", data: { pct: 5 } });
    expect(await shopper.next("sale")).toEqual([{ pct: 5 }]);
    expect(await api(a, "POST", "/api/v1/publish", { event: "order", data: 1 })).toMatchObject({
      status: 400,
      body: { code: "route_incomplete" },
    });
    expect(await api(a, "POST", "/api/v1/publish", { event: "unrouted", data: 1, _in: "topic(extra)" })).toMatchObject({
      status: 400,
      body: { code: "route_unknown" },
    });
  });

  it("routes raw frames without a room the same way, and drops and counts one it cannot route", async () => {
    const user = await connectUser(b, { sub: "7" });
    await cluster.publisher.publish("socket.io#emitter", bytes(encode({ event: "order", user: 7, data: "raw-routed" })));
    expect(await user.next("order")).toEqual(["raw-routed"]);
    const before = await readCounter(a, "switchboard_frames_dropped_total", { reason: "route_unknown" });
    await cluster.publisher.publish("socket.io#emitter", bytes(encode({ event: "unrouted", data: 1 })));
    await waitFor("the drop", async () =>
      (await readCounter(a, "switchboard_frames_dropped_total", { reason: "route_unknown" })) > before ? true : undefined,
    );
  });

  it("publishes a batch in order, each message as /publish would, and answers the ids in the same order", async () => {
    const first = await connectUser(a, { sub: "batch-1" });
    const second = await connectUser(b, { sub: "batch-2" });
    const reply = await api(b, "POST", "/api/v1/publish/batch", {
      messages: [
        { room: "user(batch-1)", event: "step", data: 1 },
        { rooms: ["user(batch-1)", "user(batch-2)"], event: "step", data: 2 },
        { event: "order", user: "batch-2", data: 3 },
      ],
    });
    expect(reply).toEqual({ status: 202, body: { ids: [expect.any(String), expect.any(String), expect.any(String)] } });
    expect(new Set(reply.body?.ids as string[]).size).toBe(3);
    await second.next("order");
    await waitFor("both steps", () => (first.count("step") === 2 ? true : undefined));
    const argsOf = (client: typeof first, event: string) =>
      client.received.filter((entry) => entry.event === event).map((entry) => entry.args);
    expect(argsOf(first, "step")).toEqual([[1], [2]]);
    expect(argsOf(second, "step")).toEqual([[2]]);
    expect(argsOf(second, "order")).toEqual([[3]]);
  });

  it("sends nothing of a batch with one bad message, and names the message", async () => {
    const user = await connectUser(a, { sub: "batch-none" });
    const unroutable = await api(a, "POST", "/api/v1/publish/batch", {
      messages: [
        { room: "user(batch-none)", event: "first", data: 1 },
        { event: "unrouted", data: 2 },
      ],
    });
    expect(unroutable).toEqual({ status: 400, body: { code: "route_unknown", message: expect.stringContaining("messages[1]") } });
    const misshapen = await api(a, "POST", "/api/v1/publish/batch", {
      messages: [
        { room: "user(batch-none)", data: 1 },
        { room: 5, data: 2 },
      ],
    });
    expect(misshapen).toMatchObject({
      status: 400,
      body: { code: "invalid_request", message: expect.stringContaining("messages/1/room") },
    });
    for (const body of [
      { messages: [] },
      { messages: {} },
      {},
      { messages: [{ data: 1 }], extra: true },
      { messages: Array.from({ length: 1001 }, () => ({ room: "user(x)", data: 1 })) },
    ]) {
      expect((await api(a, "POST", "/api/v1/publish/batch", body)).body).toMatchObject({
        code: expect.stringMatching(/^(invalid_request|payload_too_large)$/),
      });
    }
    await api(a, "POST", "/api/v1/publish", { room: "user(batch-none)", event: "marker", data: 0 });
    await user.next("marker");
    expect(user.count("first")).toBe(0);
  });

  it("sends nothing of a batch whose one message is too large for Redis, though the others were fine", async () => {
    // A node whose frames may be 1 KiB while its bodies may be 64 KiB: the size is found only when encoding.
    const small = await startGateway({
      REDIS_URL: cluster.redis.url,
      NODE_ID: "node-small-frames",
      API_KEYS: API_KEY,
      FRAME_MAX_BYTES: "1024",
    });
    try {
      const user = await connectUser(small.url, { sub: "batch-big" });
      const reply = await api(small.url, "POST", "/api/v1/publish/batch", {
        messages: [
          { room: "user(batch-big)", event: "small", data: 1 },
          { room: "user(batch-big)", event: "big", data: "x".repeat(2000) },
        ],
      });
      expect(reply).toMatchObject({ status: 413, body: { code: "frame_too_large" } });
      await api(small.url, "POST", "/api/v1/publish", { room: "user(batch-big)", event: "marker", data: 0 });
      await user.next("marker");
      expect(user.count("small")).toBe(0);
    } finally {
      await small.stop();
    }
  });

  it("broadcasts to every authenticated socket on every node, and to no one else", async () => {
    const onA = await connectUser(a, { sub: "everyone-a" });
    const onB = await connectUser(b, { sub: "everyone-b" });
    const waiting = openClient(a);
    await waiting.next("connect");
    expect((await api(a, "POST", "/api/v1/broadcast", { event: "all-hands", data: 1 })).status).toBe(202);
    expect(await onA.next("all-hands")).toEqual([1]);
    expect(await onB.next("all-hands")).toEqual([1]);
    await sleep(150);
    expect(waiting.count("all-hands")).toBe(0);
  });
});

describe("kicks that stick, and token revocation", () => {
  const issuedAt = (offsetSeconds: number) => Math.floor(Date.now() / 1000) + offsetSeconds;
  const refusal = async (node: string, token: string) => {
    const client = openClient(node, { auth: { token } });
    return Promise.race([
      client.next("welcome").then(() => "welcome"),
      client.next("connect_error").then(([err]) => (err as { data: { code: string } }).data.code),
    ]);
  };

  it("kicks a user's sockets on both nodes, refuses its old tokens everywhere, accepts newer ones, and lifts the refusal on allow", async () => {
    const old = jwt.sign({ sub: "kicked-user", iat: issuedAt(-5) }, TEST_SECRET, { expiresIn: 600 });
    const onA = openClient(a, { auth: { token: old } });
    const onB = openClient(b, { auth: { token: old } });
    await Promise.all([onA.next("welcome"), onB.next("welcome")]);
    expect(await api(a, "POST", "/api/v1/users/kicked-user/disconnect", { reason: "maintenance" })).toEqual({
      status: 202,
      body: { user: "kicked-user", refuseReconnect: true },
    });
    for (const client of [onA, onB]) {
      expect(await client.next("kicked")).toEqual([{ code: "kicked", message: expect.any(String), reason: "maintenance" }]);
      await client.next("disconnect");
    }
    expect(await refusal(a, old)).toBe("token_revoked");
    expect(await refusal(b, old)).toBe("token_revoked");
    const viaEvent = openClient(b);
    await viaEvent.next("connect");
    viaEvent.socket.emit("authenticate", { token: old });
    expect(await viaEvent.next("unauthorized")).toEqual([{ code: "token_revoked", message: expect.any(String) }]);
    expect(await refusal(a, jwt.sign({ sub: "kicked-user", iat: issuedAt(2) }, TEST_SECRET, { expiresIn: 600 }))).toBe("welcome");
    expect((await api(b, "POST", "/api/v1/users/kicked-user/allow")).status).toBe(200);
    await waitFor("the refusal to be lifted on node a", async () => ((await refusal(a, old)) === "welcome" ? true : undefined));
  });

  it("kicks without refusing when asked, as the emitter does with the same implementation", async () => {
    const token = mintToken({ sub: "soft-kick" });
    const client = openClient(b, { auth: { token } });
    await client.next("welcome");
    await emitter.disconnectUser("soft-kick", { reason: "bye", refuseReconnect: false });
    expect((await client.next("kicked"))[0]).toMatchObject({ reason: "bye" });
    expect(await refusal(a, token)).toBe("welcome");
    await emitter.disconnectUser("soft-kick");
    expect(await refusal(b, token)).toBe("token_revoked");
  });

  it("revokes one token by its jti: its socket is disconnected and it is refused, other tokens of the user are not", async () => {
    const exp = issuedAt(600);
    const revoked = jwt.sign({ sub: "jti-user", jti: "token-to-revoke", exp }, TEST_SECRET);
    const client = openClient(a, { auth: { token: revoked } });
    await client.next("welcome");
    expect(await api(b, "POST", "/api/v1/tokens/revoke", { jti: "token-to-revoke", exp })).toEqual({
      status: 202,
      body: { jti: "token-to-revoke", exp },
    });
    expect(await client.next("unauthorized")).toEqual([{ code: "token_revoked", message: expect.any(String) }]);
    expect(await refusal(b, revoked)).toBe("token_revoked");
    expect(await refusal(a, jwt.sign({ sub: "jti-user", jti: "another", exp }, TEST_SECRET))).toBe("welcome");
  });

  it("holds at most REVOCATIONS_MAX in force: past it 409 revocation_limit and nothing stored, a renewal is taken, an emitter kick is counted and logged, a node starting later takes what fits", async () => {
    const capped = await startCluster(2, { API_KEYS: API_KEY, REVOCATIONS_MAX: "3", DEV_TOKENS: "1" });
    const cappedEmitter = createEmitter({ redis: capped.redis.url });
    try {
      const [one, two] = capped.nodes.map((node) => node.url) as [string, string];
      const revoke = (node: string, jti: string, exp: number) => api(node, "POST", "/api/v1/tokens/revoke", { jti, exp });
      const kick = (node: string, user: string, refuseReconnect = true) =>
        api(node, "POST", `/api/v1/users/${user}/disconnect`, { refuseReconnect });
      // "soon" must still be in force while the limit is probed below, on a loaded machine too.
      const soonExpires = issuedAt(6);
      expect((await revoke(one, "soon", soonExpires)).status).toBe(202);
      expect((await revoke(one, "later", issuedAt(600))).status).toBe(202);
      expect((await kick(two, "capped-kicked")).status).toBe(202);
      // Node one learns of node two's kick from its control frame.
      const refused = await waitFor("node one to hold three", async () => {
        const answer = await revoke(one, "one-more", issuedAt(600));
        return answer.status === 409 ? answer : undefined;
      });
      expect(refused.body).toEqual({ code: "revocation_limit", message: expect.stringContaining("REVOCATIONS_MAX") });
      expect(await kick(two, "another-user")).toMatchObject({ status: 409, body: { code: "revocation_limit" } });
      // The development kick is the same operation.
      expect(await api(one, "POST", "/dev/kick", { user: "another-user", refuseReconnect: true }, null)).toMatchObject({
        status: 409,
        body: { code: "revocation_limit" },
      });
      expect(await capped.publisher.exists(["switchboard:revoked:jti:one-more", "switchboard:revoked:user:another-user"])).toBe(0);
      // A refused revocation is not half done: the token still connects.
      const token = jwt.sign({ sub: "capped-user", jti: "one-more", exp: issuedAt(600) }, TEST_SECRET);
      expect(await refusal(two, token)).toBe("welcome");
      // Renewals, kicks that refuse nothing and expired tokens take no place.
      expect((await revoke(two, "later", issuedAt(900))).status).toBe(202);
      expect((await kick(one, "capped-kicked")).status).toBe(202);
      expect((await kick(one, "another-user", false)).status).toBe(202);
      expect((await revoke(one, "expired", issuedAt(-10))).status).toBe(202);
      expect(await readCounter(one, "switchboard_limit_hits_total", { kind: "revocations" })).toBeGreaterThanOrEqual(1);
      // The emitter does not ask a node: what it sends past the limit is counted and logged by each node.
      await cappedEmitter.disconnectUser("emitter-kicked");
      for (const node of capped.nodes) {
        await waitFor("the emitter's kick counted", async () =>
          node.lines.some((line) => line.includes('"code":"revocation_limit"')) ? true : undefined,
        );
      }
      // Once "soon" has expired, its place is free again.
      await sleep(Math.max(0, soonExpires * 1000 + 500 - Date.now()));
      expect((await revoke(one, "one-more", issuedAt(600))).status).toBe(202);
      // Node two learns of it from its control frame, a moment later.
      await waitFor("node two to refuse the token", async () => ((await refusal(two, token)) === "token_revoked" ? true : undefined));
      // Redis holds four: a node starting now holds three and reports the fourth.
      const restarted = await startGateway({ API_KEYS: API_KEY, REVOCATIONS_MAX: "3", REDIS_URL: capped.redis.url, NODE_ID: "node-later" });
      try {
        await waitFor("the node to report what it left", async () =>
          (await readCounter(restarted.url, "switchboard_limit_hits_total", { kind: "revocations" })) === 1 ? true : undefined,
        );
      } finally {
        await restarted.stop();
      }
    } finally {
      await cappedEmitter.close();
      await capped.close();
    }
  }, 60_000);

  it("forgets a kick when its refusal expires in Redis, on nodes without JWT_MAX_TTL_SECONDS and on one that read it from Redis, freeing its place", async () => {
    // Without API_KEYS and JWT_MAX_TTL_SECONDS a node cannot tell when a kick stops mattering from the tokens' lifetime.
    const open = await startCluster(2, { REVOCATIONS_MAX: "2" });
    const openEmitter = createEmitter({ redis: open.redis.url });
    const later: Awaited<ReturnType<typeof startGateway>>[] = [];
    try {
      const tokenOf = (sub: string) => jwt.sign({ sub, iat: issuedAt(-5) }, TEST_SECRET, { expiresIn: 600 });
      const [brief, lasting, third] = ["brief-kick", "lasting-kick", "third-kick"].map(tokenOf) as [string, string, string];
      // Long enough for a third node to start and all three to be asked while it holds, on a loaded machine.
      const briefSeconds = 8;
      const kickedAt = Date.now();
      await openEmitter.disconnectUser("brief-kick", { refuseForSeconds: briefSeconds });
      await openEmitter.disconnectUser("lasting-kick", { refuseForSeconds: 600 });
      later.push(await startGateway({ REVOCATIONS_MAX: "2", REDIS_URL: open.redis.url, NODE_ID: "node-later" }));
      const nodes = [...open.nodes.map((node) => node.url), ...later.map((node) => node.url)];
      for (const node of nodes) {
        await waitFor("the kicks to be refused", async () => ((await refusal(node, brief)) === "token_revoked" ? true : undefined));
        expect(await refusal(node, lasting)).toBe("token_revoked");
      }
      await sleep(Math.max(0, kickedAt + briefSeconds * 1000 + 500 - Date.now()));
      for (const node of nodes) {
        expect(await refusal(node, brief)).toBe("welcome");
        expect(await refusal(node, lasting)).toBe("token_revoked");
      }
      // The ended kick's place is free on every node: a new one is held, and nothing was past the limit.
      await openEmitter.disconnectUser("third-kick", { refuseForSeconds: 600 });
      for (const node of nodes) {
        await waitFor("the new kick to be refused", async () => ((await refusal(node, third)) === "token_revoked" ? true : undefined));
        expect(await readCounter(node, "switchboard_limit_hits_total", { kind: "revocations" })).toBe(0);
      }
    } finally {
      await Promise.all(later.map((node) => node.stop()));
      await openEmitter.close();
      await open.close();
    }
  }, 60_000);

  it("refuses tokens without exp or living longer than a day when the server API is on", async () => {
    expect(await refusal(a, jwt.sign({ sub: "forever" }, TEST_SECRET))).toBe("token_claims_invalid");
    expect(await refusal(a, jwt.sign({ sub: "long" }, TEST_SECRET, { expiresIn: 86_401 }))).toBe("token_claims_invalid");
    expect(await refusal(a, jwt.sign({ sub: "day" }, TEST_SECRET, { expiresIn: 86_400 }))).toBe("welcome");
  });
});

describe("presence", () => {
  const presence = async (node: string, user: string) => (await api(node, "GET", `/api/v1/presence/users/${user}`)).body;

  it("counts a user's sockets on both nodes, and forgets one that disconnects", async () => {
    const onA = await connectUser(a, { sub: "present", site: "presence.example" });
    await connectUser(b, { sub: "present", site: "presence.example" });
    await waitFor("both sockets", async () => ((await presence(a, "present"))?.sockets === 2 ? true : undefined));
    expect(await presence(b, "present")).toEqual({
      online: true,
      sockets: 2,
      nodes: [
        { node: "node-a", sockets: 1 },
        { node: "node-b", sockets: 1 },
      ],
    });
    expect(await emitter.presence.user("present")).toEqual({
      online: true,
      sockets: 2,
      nodes: [
        { node: "node-a", sockets: 1 },
        { node: "node-b", sockets: 1 },
      ],
    });
    onA.close();
    await waitFor("one socket", async () => ((await presence(b, "present"))?.sockets === 1 ? true : undefined));
    expect(await presence(a, "nobody")).toEqual({ online: false, sockets: 0, nodes: [] });
  });

  it("pages through a site's users, and counts a room's sockets and users", async () => {
    for (const sub of ["p1", "p2", "p3"]) await connectUser(sub === "p2" ? b : a, { sub, site: "paged.example" });
    const second = await connectUser(b, { sub: "p1", site: "paged.example" });
    for (const client of [second])
      expect(await client.socket.emitWithAck("subscribe", { room: "topic(counted)" })).toMatchObject({ ok: true });
    // Each node writes its presence in batches: wait for all four sockets (the count of users is 3 before the last one is written).
    await waitFor("four sockets", async () =>
      (await api(a, "GET", "/api/v1/presence/rooms/site(paged.example)/count"))?.body?.sockets === 4 ? true : undefined,
    );
    const first = await api(a, "GET", "/api/v1/presence/sites/Paged.Example?limit=2");
    expect(first.body).toEqual({ users: ["p1", "p2"], count: 3, cursor: "p2" });
    expect((await api(b, "GET", "/api/v1/presence/sites/paged.example?limit=2&cursor=p2")).body).toEqual({
      users: ["p3"],
      count: 3,
      cursor: null,
    });
    expect(await emitter.presence.site("paged.example", { limit: 2 })).toEqual({ users: ["p1", "p2"], count: 3, cursor: "p2" });
    expect((await api(a, "GET", "/api/v1/presence/rooms/site(paged.example)/count")).body).toEqual({ sockets: 4, users: 3 });
    expect((await api(a, "GET", "/api/v1/presence/rooms/topic(counted)/count")).body).toEqual({ sockets: 1, users: 1 });
    expect((await api(a, "GET", "/api/v1/presence/rooms/user(p1)/count")).body).toEqual({ sockets: 2, users: 1 });
    expect(await emitter.presence.roomCount("user(p1)")).toEqual({ sockets: 2, users: 1 });
  });

  it("sends presence events to the site's room as a user's first socket arrives and its last one leaves", async () => {
    const watcher = await connectUser(a, { sub: "watcher", site: "events.example" });
    const arriving = await connectUser(b, { sub: "arriving", site: "events.example" });
    expect(await watcher.next("presence", (args) => (args[0] as { user: string }).user === "arriving")).toEqual([
      { user: "arriving", online: true },
    ]);
    arriving.close();
    expect(await watcher.next("presence", (args) => (args[0] as { online: boolean }).online === false)).toEqual([
      { user: "arriving", online: false },
    ]);
  });

  it("lists the live nodes in /info", async () => {
    const { body } = await api(a, "GET", "/api/v1/info");
    expect(body).toMatchObject({ node: "node-a" });
    const nodes = (body as { nodes: { node: string; version: string; uptimeSeconds: number; sockets: number }[] }).nodes;
    expect(nodes.map((node) => node.node)).toEqual(["node-a", "node-b"]);
    for (const node of nodes)
      expect(node).toEqual({ node: expect.any(String), version: "0.1.0", uptimeSeconds: expect.any(Number), sockets: expect.any(Number) });
  });
});

describe("event routes registered at run time", () => {
  it("are seen by the other node within a second, listed with EVENT_ROUTES, and removed again", async () => {
    const reader = await connectUser(b, { sub: "route-reader" });
    expect(await reader.socket.emitWithAck("subscribe", { room: "topic(registered)" })).toMatchObject({ ok: true });
    expect(await api(a, "POST", "/api/v1/events", { event: "registered-event", room: "topic(registered)" })).toEqual({
      status: 201,
      body: { event: "registered-event", room: "topic(registered)" },
    });
    await waitFor(
      "node b to know the route",
      async () => ((await api(b, "POST", "/api/v1/publish", { event: "registered-event", data: 1 })).status === 202 ? true : undefined),
      1000,
    );
    expect(await reader.next("registered-event")).toEqual([1]);
    const { body } = await api(b, "GET", "/api/v1/events");
    expect((body as { routes: unknown[] }).routes).toEqual(
      expect.arrayContaining([
        { event: "order", room: "user({user})", source: "EVENT_ROUTES" },
        { event: "registered-event", room: "topic(registered)", source: "registered" },
      ]),
    );
    expect(await api(b, "POST", "/api/v1/events", { event: "bad", room: "topic({tenant})" })).toMatchObject({
      status: 400,
      body: { code: "invalid_request" },
    });
    expect((await api(b, "DELETE", "/api/v1/events/registered-event")).status).toBe(204);
    expect(await api(b, "DELETE", "/api/v1/events/registered-event")).toMatchObject({ status: 404, body: { code: "not_found" } });
    await waitFor(
      "node a to forget it",
      async () => ((await api(a, "POST", "/api/v1/publish", { event: "registered-event", data: 1 })).status === 400 ? true : undefined),
      1000,
    );
  });
});

describe("EVENT_ROUTES_MAX", () => {
  it("refuses a new route past the limit with 409 route_limit across the cluster, takes a replaced one, and lets one node of two take the last place", async () => {
    const capped = await startCluster(2, {
      API_KEYS: API_KEY,
      EVENT_ROUTES_MAX: "2",
      EVENT_ROUTES: JSON.stringify({ fixed: "topic(fixed)" }),
    });
    try {
      const [one, two] = capped.nodes.map((node) => node.url) as [string, string];
      const register = (node: string, event: string, room = `topic(${event})`) => api(node, "POST", "/api/v1/events", { event, room });
      // EVENT_ROUTES's own route does not count.
      expect((await register(one, "first")).status).toBe(201);
      expect((await register(two, "second")).status).toBe(201);
      const refused = await register(one, "third");
      expect(refused).toEqual({
        status: 409,
        body: { code: "route_limit", message: expect.stringContaining("EVENT_ROUTES_MAX") },
      });
      expect((await register(two, "first", "topic(moved)")).status).toBe(201);
      expect((await api(one, "DELETE", "/api/v1/events/second")).status).toBe(204);
      // One place left, asked for by both nodes at once: one takes it.
      const raced = await Promise.all([register(one, "raced-a"), register(two, "raced-b")]);
      expect(raced.map((answer) => answer.status).sort()).toEqual([201, 409]);
      // The node that lost the race learns of the winner's route from its control frame, a moment later.
      const registered = async () => {
        const { body } = await api(two, "GET", "/api/v1/events");
        return (body as { routes: { source: string; event: string }[] }).routes.filter((route) => route.source === "registered");
      };
      await waitFor("node two to list both registered routes", async () => ((await registered()).length === 2 ? true : undefined));
      await sleep(200);
      expect((await registered()).map((route) => route.event).sort()).toEqual(["first", raced[0]?.status === 201 ? "raced-a" : "raced-b"]);
    } finally {
      await capped.close();
    }
  });

  it("holds on a single node without Redis too", async () => {
    const single = await startGateway({ API_KEYS: API_KEY, EVENT_ROUTES_MAX: "1" });
    try {
      expect((await api(single.url, "POST", "/api/v1/events", { event: "only", room: "topic(only)" })).status).toBe(201);
      expect(await api(single.url, "POST", "/api/v1/events", { event: "more", room: "topic(more)" })).toMatchObject({
        status: 409,
        body: { code: "route_limit" },
      });
    } finally {
      await single.stop();
    }
  });
});

describe("the first brokers' push endpoints", () => {
  it("POST /_notify/:event publishes the body to the event's route; an unknown event is 404, no body 400", async () => {
    const reader = await connectUser(a, { sub: "notified" });
    expect(await reader.socket.emitWithAck("subscribe", { room: "topic(news)" })).toMatchObject({ ok: true });
    expect(await api(b, "POST", "/_notify/news", { headline: "hello" })).toEqual({ status: 200, body: { ok: true } });
    expect(await reader.next("news")).toEqual([{ headline: "hello" }]);
    expect(await api(b, "POST", "/_notify/no-such-event", { a: 1 })).toMatchObject({ status: 404, body: { code: "not_found" } });
    expect(await api(b, "POST", "/_notify/news")).toMatchObject({ status: 400, body: { code: "invalid_request" } });
  });

  it("POST /_notify_endpoint/:event delivers to endpoint:<endpoint> and needs an endpoint", async () => {
    const reader = await connectUser(b, { sub: "endpoint-reader" });
    expect(await reader.socket.emitWithAck("subscribe", { room: "endpoint:orders-7" })).toMatchObject({ ok: true });
    expect(await api(a, "POST", "/_notify_endpoint/shipped", { endpoint: "orders-7", id: 9 })).toEqual({ status: 200, body: { ok: true } });
    expect(await reader.next("shipped")).toEqual([{ endpoint: "orders-7", id: 9 }]);
    expect(await api(a, "POST", "/_notify_endpoint/shipped", { id: 9 })).toMatchObject({ status: 400, body: { code: "invalid_request" } });
  });
});

describe("GET /api/v1/openapi.json", () => {
  it("is a valid OpenAPI 3 document listing every route", async () => {
    const { body } = await api(a, "GET", "/api/v1/openapi.json");
    const document = (await SwaggerParser.validate(structuredClone(body) as never)) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    expect(document.openapi).toMatch(/^3\./);
    const listed = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const expected = EVERY_ROUTE.filter(([, path]) => !path.endsWith("openapi.json")).map(
      ([method, path]) =>
        `${method} ${path.replace("/users/x/", "/users/{id}/").replace("/users/x", "/users/{id}").replace("sites/x.example", "sites/{host}").replace("rooms/topic(x)/", "rooms/{room}/").replace("/events/probe-event", "/events/{event}").replace("/_notify/news", "/_notify/{event}").replace("/_notify_endpoint/news", "/_notify_endpoint/{event}").replace("/services/probe-svc", "/services/{name}")}`,
    );
    expect(listed.sort()).toEqual([...new Set(expected)].sort());
  });
});

describe("presence after a crash", () => {
  it("takes a SIGKILLed node's sockets out of presence within the stated bound", async () => {
    await connectUser(b, { sub: "crash-victim" });
    await waitFor("the socket to count", async () =>
      (await api(a, "GET", "/api/v1/presence/users/crash-victim")).body?.online === true ? true : undefined,
    );
    await cluster.nodes[1]!.kill();
    // PRESENCE_NODE_TTL_MS is 1.5 s here; the survivor sweeps at its next heartbeat.
    await waitFor(
      "the victim to be gone",
      async () => ((await api(a, "GET", "/api/v1/presence/users/crash-victim")).body?.online === false ? true : undefined),
      6000,
    );
    // The survivor logs it right after the take-back that the presence route already reflects; its line may still be in the pipe.
    await waitFor("the survivor to say so", () =>
      cluster.nodes[0]!.lines.some((line) => line.includes("took back the presence of a node whose heartbeat stopped")) ? true : undefined,
    );
  });
});

describe("the README's server API examples", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Server API"), readme.indexOf("## Publishing"));
  const examples = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] ?? "");

  it("has a curl example for every route", () => {
    const routes: [string, string][] = [
      ["POST", '/api/v1/publish"'],
      ["POST", "/api/v1/publish/batch"],
      ["POST", "/api/v1/broadcast"],
      ["POST", "/api/v1/users/42/disconnect"],
      ["POST", "/api/v1/users/42/allow"],
      ["POST", "/api/v1/tokens/revoke"],
      ["GET", "/api/v1/presence/users/"],
      ["GET", "/api/v1/presence/sites/"],
      ["GET", "/api/v1/presence/rooms/"],
      ["GET", "/api/v1/info"],
      ["GET", '/api/v1/services"'],
      ["GET", "/api/v1/services/"],
      ["DELETE", "/api/v1/services/"],
      ["POST", '/api/v1/events"'],
      ["GET", '/api/v1/events"'],
      ["DELETE", "/api/v1/events/"],
      ["GET", "/api/v1/openapi.json"],
      ["POST", "/_notify/"],
      ["POST", "/_notify_endpoint/"],
    ];
    expect(routes.length).toBe(EVERY_ROUTE.length);
    for (const [method, path] of routes) {
      const found = examples.some(
        (example) =>
          example.includes(`$SWITCHBOARD${path}`) && (method === "GET" ? !example.includes(" -X ") : example.includes(`-X ${method} `)),
      );
      expect(found, `an example of ${method} ${path}`).toBe(true);
    }
  });

  it("each runs as written and answers what its comment says", async () => {
    for (const example of examples) {
      const { stdout } = await promisify(execFile)("bash", ["-euo", "pipefail", "-c", example], {
        env: { PATH: process.env.PATH ?? "", SWITCHBOARD: a, API_KEY },
      });
      const documented = /^# (\d{3})\b[^{\n]*(\{.*)?$/m.exec(example);
      expect(documented, `a "# <status> <body>" comment in:\n${example}`).not.toBeNull();
      if (documented?.[1] === "204") {
        expect(stdout).toBe("");
        continue;
      }
      const answer = JSON.parse(stdout) as Record<string, unknown>;
      for (const key of topLevelKeys(documented?.[2] ?? "")) expect(answer, `${key} in ${stdout}`).toHaveProperty(key);
    }
  });
});

/** The keys of the outermost object of a JSON-like text (which may hold "…" where values were left out). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (char === "{" || char === "[") depth++;
    else if (char === "}" || char === "]") depth--;
    else if (char === '"' && depth === 1) {
      const end = text.indexOf('"', index + 1);
      if (text[end + 1] === ":") keys.push(text.slice(index + 1, end));
      index = end;
    } else if (char === '"') {
      index = text.indexOf('"', index + 1);
    }
  }
  return keys;
}

describe("a single node without Redis", () => {
  it("answers the same routes from memory: publish, presence, info, routes, kicks and revocations", async () => {
    const single = await startGateway({ API_KEYS: API_KEY, EVENT_ROUTES: JSON.stringify(ROUTES) });
    try {
      const url = single.url;
      const client = await connectUser(url, { sub: "solo", site: "solo.example" });
      expect((await api(url, "POST", "/api/v1/publish", { event: "order", user: "solo", data: 1 })).status).toBe(202);
      expect(await client.next("order")).toEqual([1]);
      await waitFor("presence", async () =>
        (await api(url, "GET", "/api/v1/presence/users/solo")).body?.online === true ? true : undefined,
      );
      expect((await api(url, "GET", "/api/v1/presence/users/solo")).body).toEqual({
        online: true,
        sockets: 1,
        nodes: [{ node: single.nodeId, sockets: 1 }],
      });
      expect((await api(url, "GET", "/api/v1/presence/sites/solo.example")).body).toEqual({ users: ["solo"], count: 1, cursor: null });
      expect((await api(url, "GET", "/api/v1/presence/rooms/site(solo.example)/count")).body).toEqual({ sockets: 1, users: 1 });
      await waitFor("the node in /info", async () =>
        ((await api(url, "GET", "/api/v1/info")).body?.nodes as unknown[] | undefined)?.length === 1 ? true : undefined,
      );
      expect((await api(url, "POST", "/api/v1/events", { event: "ping", room: "user({user})" })).status).toBe(201);
      expect((await api(url, "POST", "/api/v1/publish", { event: "ping", user: "solo", data: 2 })).status).toBe(202);
      expect(await client.next("ping")).toEqual([2]);
      const old = jwt.sign({ sub: "solo", iat: Math.floor(Date.now() / 1000) - 5 }, TEST_SECRET, { expiresIn: 600 });
      expect((await api(url, "POST", "/api/v1/users/solo/disconnect", {})).status).toBe(202);
      await client.next("kicked");
      const refused = openClient(url, { auth: { token: old } });
      expect(((await refused.next("connect_error"))[0] as { data: { code: string } }).data.code).toBe("token_revoked");
    } finally {
      await single.stop();
    }
  });
});

describe("PRESENCE=0", () => {
  it("counts nothing: the presence routes answer 404 presence_off, while publishing and /info work as ever", async () => {
    const node = await startGateway({ API_KEYS: API_KEY, PRESENCE: "0" });
    try {
      const client = await connectUser(node.url, { sub: "uncounted", site: "quiet.example" });
      for (const path of [
        "/api/v1/presence/users/uncounted",
        "/api/v1/presence/sites/quiet.example",
        "/api/v1/presence/rooms/user(uncounted)/count",
      ]) {
        expect(await api(node.url, "GET", path)).toEqual({ status: 404, body: { code: "presence_off", message: expect.any(String) } });
      }
      expect((await api(node.url, "POST", "/api/v1/publish", { room: "user(uncounted)", event: "still", data: 1 })).status).toBe(202);
      expect(await client.next("still")).toEqual([1]);
      await waitFor("the node in /info", async () =>
        ((await api(node.url, "GET", "/api/v1/info")).body?.nodes as { sockets: number }[] | undefined)?.[0]?.sockets === 1
          ? true
          : undefined,
      );
    } finally {
      await node.stop();
    }
  });
});

describe("a Redis that stops answering", () => {
  it("has the routes that read or change the shared state answer 503 redis_unavailable rather than wait, and serve again once it answers", async () => {
    const stalled = await startCluster(1, { API_KEYS: API_KEY });
    try {
      const { url } = stalled.nodes[0]!;
      const exp = Math.floor(Date.now() / 1000) + 600;
      const calls: [string, string, unknown?][] = [
        ["GET", "/api/v1/presence/users/stalled"],
        ["GET", "/api/v1/services"],
        ["GET", "/api/v1/info"],
        ["POST", "/api/v1/tokens/revoke", { jti: "stalled-token", exp }],
        ["POST", "/api/v1/users/stalled/disconnect", {}],
      ];
      // Stopped, Redis keeps its connections open and answers nothing.
      const answers = await stalled.redis.whileStopped(() =>
        Promise.all(
          calls.map(([method, path, body]) =>
            Promise.race([
              api(url, method, path, body),
              sleep(20_000).then(() => ({ status: 0, body: { code: `${method} ${path} did not answer` } })),
            ]),
          ),
        ),
      );
      for (const answer of answers)
        expect(answer).toEqual({ status: 503, body: { code: "redis_unavailable", message: expect.any(String) } });
      // Redis answers again: the same calls go through, the changes repeated.
      expect((await api(url, "GET", "/api/v1/presence/users/stalled")).status).toBe(200);
      expect((await api(url, "POST", "/api/v1/tokens/revoke", { jti: "stalled-token", exp })).status).toBe(202);
      expect((await api(url, "POST", "/api/v1/users/stalled/disconnect", {})).status).toBe(202);
      expect(await stalled.publisher.exists(["switchboard:revoked:jti:stalled-token", "switchboard:revoked:user:stalled"])).toBe(2);
    } finally {
      await stalled.close();
    }
  });

  it("has a node read the revocations again when it reconnects, trying again while Redis does not answer the reading, whatever else is stored under their prefix", async () => {
    const stalled = await startCluster(1, { API_KEYS: API_KEY });
    try {
      const { url } = stalled.nodes[0]!;
      const token = jwt.sign({ sub: "late-reader", jti: "read-late" }, TEST_SECRET, { expiresIn: 600 });
      // A revocation the node never heard of (no control frame), and a key of another type under the prefix.
      await stalled.publisher.set("switchboard:revoked:jti:read-late", String(Math.floor(Date.now() / 1000) + 600), { PX: 600_000 });
      await stalled.publisher.hSet("switchboard:revoked:jti:not-a-string", "field", "value");
      // Redis drops the node's connections and, for 7 s, runs no command that may write, scripts included:
      // the node reconnects and subscribes, and its first reading of the revocations gets no answer.
      await stalled.publisher
        .multi()
        .addCommand(["CLIENT", "PAUSE", "7000", "WRITE"])
        .addCommand(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        .addCommand(["CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes"])
        .exec();
      const node = stalled.nodes[0]!;
      await waitFor(
        "the first reading to fail",
        async () => (node.lines.some((line) => line.includes("could not read the shared state")) ? true : undefined),
        10_000,
      );
      await waitFor(
        "the node to refuse the revoked token",
        async () => {
          const client = openClient(url, { auth: { token } });
          const outcome = await Promise.race([
            client.next("welcome").then(() => "welcome"),
            client.next("connect_error").then(([err]) => (err as { data: { code: string } }).data.code),
          ]);
          client.close();
          return outcome === "token_revoked" ? true : undefined;
        },
        15_000,
      );
    } finally {
      await stalled.close();
    }
  }, 40_000);
});

import { ClientError, type ConnectionState, type SwitchboardClient, connect } from "@switchboard/client";
import { type SwitchboardEmitter, createEmitter } from "@switchboard/emitter";
import jwt from "jsonwebtoken";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { TEST_SECRET } from "./harness/gateway.js";
import { sleep } from "./harness/ports.js";

let cluster: Cluster;
let emitter: SwitchboardEmitter;
let url: string;
const clients: SwitchboardClient[] = [];

beforeAll(async () => {
  cluster = await startCluster(2, { TOKEN_REFRESH_NOTICE_MS: "1500", SUBSCRIBE_ROOMS: "topic(*),inbox({user})" });
  url = cluster.nodes[0]!.url;
  emitter = createEmitter({ redis: cluster.redis.url });
});
afterAll(async () => {
  await emitter?.close();
  await cluster?.close();
});
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

function open(options: Parameters<typeof connect>[0]): SwitchboardClient {
  const client = connect({ socket: { reconnection: false }, ...options });
  clients.push(client);
  return client;
}

/** A token that expires `seconds` from now. */
const shortToken = (sub: string, seconds: number) => jwt.sign({ sub, exp: Math.floor(Date.now() / 1000) + seconds }, TEST_SECRET);

function nextEvent(client: SwitchboardClient, event: string): Promise<unknown[]> {
  return new Promise((resolve) => {
    const stop = client.on(event, (...args: unknown[]) => {
      stop();
      resolve(args);
    });
  });
}

describe("@switchboard/client", () => {
  it("connects with a token and receives typed welcome and application events", async () => {
    const client = open({ url, token: mintToken({ sub: "c1", site: "c.example" }) });
    const welcome = await client.ready();
    expect(welcome).toMatchObject({ user: "c1", site: "c.example", node: "node-a" });
    expect(client.state).toMatchObject({ status: "connected" });
    const received = nextEvent(client, "message");
    await emitter.toUser("c1").emit("message", { hi: 1 });
    expect(await received).toEqual([{ hi: 1 }]);
  });

  it("authenticates with the legacy authenticate event when asked to", async () => {
    const client = open({ url, token: mintToken({ sub: "c2" }), auth: "event" });
    expect(await client.ready()).toMatchObject({ user: "c2" });
  });

  it("rejects ready() with a typed error carrying the server's code", async () => {
    const errors: ClientError[] = [];
    const client = open({ url, token: mintToken({ sub: "x" }, {}, "another-secret-that-is-long-enough!!") });
    client.on("error", (error) => errors.push(error));
    const failure = await client.ready().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ClientError);
    expect(failure).toMatchObject({ code: "token_invalid_signature" });
    expect(errors.map((error) => error.code)).toEqual(["token_invalid_signature"]);
    expect(client.state).toMatchObject({ status: "disconnected", code: "token_invalid_signature" });
  });

  it("reports the same error code in the event flow", async () => {
    const client = open({ url, token: "not-a-token", auth: "event" });
    await expect(client.ready()).rejects.toMatchObject({ code: "token_malformed" });
  });

  it("refreshes the token through getToken when the server says it is expiring, and stays connected past the first expiry", async () => {
    let calls = 0;
    const states: ConnectionState["status"][] = [];
    const client = open({
      url,
      getToken: async () => {
        calls++;
        return shortToken("refresher", 3);
      },
    });
    client.on("state", (state) => states.push(state.status));
    const welcome = await client.ready();
    await sleep(4500);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(client.state).toMatchObject({ status: "connected" });
    expect(client.socket.id).toBe(welcome.id);
    expect(states).not.toContain("disconnected");
    const received = nextEvent(client, "after-expiry");
    await emitter.toUser("refresher").emit("after-expiry", 1);
    expect(await received).toEqual([1]);
  });

  it("asks getToken again when the handshake token has already expired", async () => {
    const tokens = [jwt.sign({ sub: "late", exp: Math.floor(Date.now() / 1000) - 10 }, TEST_SECRET), mintToken({ sub: "late" })];
    let calls = 0;
    const client = open({ url, getToken: () => tokens[calls++] ?? "" });
    expect(await client.ready()).toMatchObject({ user: "late" });
    expect(calls).toBe(2);
  });

  it("is disconnected with token_expired when the token runs out and there is no getToken", async () => {
    const client = open({ url, token: shortToken("static", 2) });
    await client.ready();
    const error = (await nextEvent(client, "error"))[0] as ClientError;
    expect(error).toBeInstanceOf(ClientError);
    expect(error.code).toBe("token_expired");
    expect(client.state).toMatchObject({ status: "disconnected", code: "token_expired" });
  });

  it("subscribes to rooms the server allows, and stops receiving after unsubscribe", async () => {
    const client = open({ url: cluster.nodes[1]!.url, token: mintToken({ sub: "sub1" }) });
    await client.ready();
    await client.subscribe("topic(news)");
    await client.subscribe("inbox(sub1)");
    const first = nextEvent(client, "headline");
    await emitter.to("topic(news)").emit("headline", "one");
    expect(await first).toEqual(["one"]);
    const inbox = nextEvent(client, "letter");
    await emitter.to("inbox(sub1)").emit("letter", "dear sub1");
    expect(await inbox).toEqual(["dear sub1"]);

    await client.unsubscribe("topic(news)");
    const seen: unknown[] = [];
    client.on("headline", (value: unknown) => seen.push(value));
    await emitter.to("topic(news)").emit("headline", "two");
    const marker = nextEvent(client, "letter");
    await emitter.to("inbox(sub1)").emit("letter", "marker");
    await marker;
    expect(seen).toEqual([]);
  });

  it("refuses rooms outside the policy with subscription_forbidden", async () => {
    const client = open({ url, token: mintToken({ sub: "sub2" }) });
    await client.ready();
    await expect(client.subscribe("inbox(someone-else)")).rejects.toMatchObject({ code: "subscription_forbidden" });
    await expect(client.subscribe("user(someone-else)")).rejects.toBeInstanceOf(ClientError);
  });

  it("reports an event the server refused as a typed error, and stays connected", async () => {
    const client = open({ url, token: mintToken({ sub: "c-refused" }) });
    await client.ready();
    const error = nextEvent(client, "error");
    // Sent past the client's own methods, without an acknowledgement: the server answers with `error`.
    (client.socket as unknown as { emit(event: string, ...args: unknown[]): void }).emit("subscribe", { room: ["not", "a", "room"] });
    const [err] = (await error) as [ClientError];
    expect(err).toBeInstanceOf(ClientError);
    expect(err.code).toBe("payload_invalid");
    expect(client.state.status).toBe("connected");
  });

  it("publishes where its token's publish claim allows, and rejects with the server's code elsewhere", async () => {
    const speaker = open({ url, token: mintToken({ sub: "c-speaker", publish: ["topic(*)"] }) });
    const listener = open({ url: cluster.nodes[1]!.url, token: mintToken({ sub: "c-listener" }) });
    await Promise.all([speaker.ready(), listener.ready()]);
    await listener.subscribe("topic(sdk)");
    const heard = nextEvent(listener, "spoken");
    expect(await speaker.publish("spoken", { n: 1 }, { room: "topic(sdk)" })).toEqual(expect.any(String));
    expect(await heard).toEqual([{ n: 1 }]);
    await expect(speaker.publish("spoken", 1, { room: "inbox(c-listener)" })).rejects.toMatchObject({ code: "publish_forbidden" });
    await expect(speaker.publish("spoken", 1)).rejects.toMatchObject({ code: "route_unknown" });
  });

  it("refuses data JSON cannot carry with payload_invalid, connected or not, and sends nothing", async () => {
    const cycle: { self?: unknown } = {};
    cycle.self = cycle;
    const speaker = open({ url, token: mintToken({ sub: "c-unsendable", publish: ["topic(*)"] }) });
    await speaker.ready();
    const calls = [
      () => speaker.publish("spoken", { n: 10n }, { room: "topic(sdk)" }),
      () => speaker.request("any", cycle),
      () => speaker.send("any", "note", { n: 1n }),
    ];
    for (const call of calls)
      await expect(call()).rejects.toMatchObject({
        name: "ClientError",
        code: "payload_invalid",
        message: expect.stringContaining("cannot be sent as JSON"),
      });
    // Still connected and serving after them.
    expect(await speaker.publish("spoken", { n: 1 }, { room: "topic(sdk)" })).toEqual(expect.any(String));
    speaker.socket.disconnect();
    for (const call of calls) await expect(call()).rejects.toMatchObject({ code: "payload_invalid" });
  });

  it("emits kicked and ends in the kicked state", async () => {
    const client = open({ url, token: mintToken({ sub: "kickee" }) });
    await client.ready();
    const kicked = nextEvent(client, "kicked");
    await emitter.disconnectUser("kickee", "bye");
    expect(await kicked).toEqual([{ code: "kicked", message: expect.any(String), reason: "bye" }]);
    expect(client.state).toMatchObject({ status: "disconnected", code: "kicked", reason: "bye" });
  });
});

describe("@switchboard/client and refusals worth retrying", () => {
  let limited: Cluster;
  beforeAll(async () => {
    limited = await startCluster(1, { USER_MAX_SOCKETS: "1" });
  });
  afterAll(() => limited?.close());

  // Short delays so that the retries fit the test; the client's defaults are 1 s to 10 s.
  const quickRetries = { reconnectionDelay: 100, reconnectionDelayMax: 200 };

  it.each(["handshake", "event"] as const)(
    "reports user_connection_limit once, keeps retrying, and connects by itself once the user's other socket leaves (%s auth)",
    async (auth) => {
      const limitedUrl = limited.nodes[0]!.url;
      const first = open({ url: limitedUrl, token: mintToken({ sub: `solo-${auth}` }) });
      await first.ready();
      const errors: string[] = [];
      const second = connect({ url: limitedUrl, token: mintToken({ sub: `solo-${auth}` }), auth, socket: quickRetries });
      clients.push(second);
      second.on("error", (error) => errors.push(error.code));
      const welcomed = second.ready();
      // Several attempts are refused meanwhile; each is retried, and the code is reported once.
      await sleep(1000);
      expect(second.state).toMatchObject({ status: "connecting" });
      expect(errors).toEqual(["user_connection_limit"]);
      first.close();
      expect(await welcomed).toMatchObject({ user: `solo-${auth}` });
    },
  );

  it("ends the session on a refusal that is not worth retrying, as before", async () => {
    const client = connect({ url: limited.nodes[0]!.url, token: "not-a-jwt", socket: quickRetries });
    clients.push(client);
    await expect(client.ready()).rejects.toMatchObject({ code: "token_malformed" });
    await sleep(500);
    expect(client.state).toMatchObject({ status: "disconnected", code: "token_malformed" });
  });
});

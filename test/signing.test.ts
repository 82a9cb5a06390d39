import { createHmac } from "node:crypto";
import { encode } from "@msgpack/msgpack";
import { createEmitter } from "@switchboard/emitter";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectUser } from "./harness/clients.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { readCounter } from "./harness/gateway.js";
import { sleep, waitFor } from "./harness/ports.js";

const KID = "publisher-1";
const SECRET = "a-signing-secret-of-at-least-32-bytes!!";
const bytes = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength);

/** A signed envelope built by hand, exactly as the README describes it. */
function signed(frame: Uint8Array, options: { kid?: string; secret?: string; ts?: number; tamper?: boolean } = {}): Buffer {
  const ts = options.ts ?? Date.now();
  const sig = createHmac("sha256", options.secret ?? SECRET)
    .update(Buffer.concat([Buffer.from(`${ts}.`), frame]))
    .digest();
  const body = options.tamper ? encode({ room: "user(signed)", event: "forged", data: 1 }) : frame;
  return bytes(encode({ kid: options.kid ?? KID, ts, sig, frame: body }));
}

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster(2, { FRAME_SIGNING_KEYS: JSON.stringify({ [KID]: SECRET }), FRAME_SIGNATURE_MAX_AGE_MS: "60000" });
});
afterAll(() => cluster?.close());
afterEach(() => closeAllClients());

const dropped = (reason: string) =>
  readCounter(cluster.nodes[0]!.url, "switchboard_frames_dropped_total", { channel: "socket.io#emitter", reason });

describe("FRAME_SIGNING_KEYS", () => {
  it("delivers frames signed by the emitter, to rooms, with exceptions and to everyone, on both nodes", async () => {
    const emitter = createEmitter({ redis: cluster.redis.url, signingKey: { kid: KID, secret: SECRET } });
    try {
      const onA = await connectUser(cluster.nodes[0]!.url, { sub: "signed", site: "signed.example" });
      const onB = await connectUser(cluster.nodes[1]!.url, { sub: "other", site: "signed.example" });
      await emitter.toUser("signed").emit("direct", 1);
      await emitter.toSite("signed.example").except("user(other)").emit("site-wide", 2);
      await emitter.emit("everyone", 3);
      expect(await onA.next("direct")).toEqual([1]);
      expect(await onA.next("site-wide")).toEqual([2]);
      expect(await onA.next("everyone")).toEqual([3]);
      expect(await onB.next("everyone")).toEqual([3]);
      expect(onB.count("site-wide")).toBe(0);
      // A kick is a signed control frame too, so a signing emitter can kick.
      const kicked = await connectUser(cluster.nodes[1]!.url, { sub: "signed-kickee" });
      await emitter.disconnectUser("signed-kickee", { reason: "signed kick", refuseReconnect: false });
      expect((await kicked.next("kicked"))[0]).toMatchObject({ code: "kicked", reason: "signed kick" });
    } finally {
      await emitter.close();
    }
  });

  it.each([
    ["frame_unsigned", "an unsigned frame", () => bytes(encode({ room: "user(signed)", event: "bad", data: 1 }))],
    [
      "frame_signature_invalid",
      "a frame signed with another secret",
      () => signed(encode({ room: "user(signed)", event: "bad", data: 1 }), { secret: "x".repeat(40) }),
    ],
    [
      "frame_signature_invalid",
      "a frame signed under an unknown kid",
      () => signed(encode({ room: "user(signed)", event: "bad", data: 1 }), { kid: "someone" }),
    ],
    [
      "frame_signature_invalid",
      "a frame signed too long ago",
      () => signed(encode({ room: "user(signed)", event: "bad", data: 1 }), { ts: Date.now() - 120_000 }),
    ],
    [
      "frame_signature_invalid",
      "a frame signed too far ahead",
      () => signed(encode({ room: "user(signed)", event: "bad", data: 1 }), { ts: Date.now() + 120_000 }),
    ],
    [
      "frame_signature_invalid",
      "a frame swapped after signing",
      () => signed(encode({ room: "user(signed)", event: "bad", data: 1 }), { tamper: true }),
    ],
    [
      "frame_invalid",
      "an envelope whose sig is not 32 bytes",
      () => bytes(encode({ kid: KID, ts: Date.now(), sig: new Uint8Array(5), frame: encode({ room: "user(x)", data: 1 }) })),
    ],
  ])("drops %s: %s", async (reason, _what, frame) => {
    const client = await connectUser(cluster.nodes[0]!.url, { sub: "signed" });
    const before = await dropped(reason);
    await cluster.publisher.publish("socket.io#emitter", frame());
    await waitFor("the drop", async () => ((await dropped(reason)) > before ? true : undefined));
    await cluster.publisher.publish("socket.io#emitter", signed(encode({ room: "user(signed)", event: "good", data: 1 })));
    expect(await client.next("good")).toEqual([1]);
    expect(client.count("bad") + client.count("forged")).toBe(0);
  });

  it("leaves the adapter's own channels as they are: as trusted as Redis", async () => {
    const client = await connectUser(cluster.nodes[1]!.url, { sub: "adapter-path" });
    const emitter = createEmitter({ redis: cluster.redis.url });
    try {
      await emitter.toUser("adapter-path").emit("unsigned-adapter", 1);
      expect(await client.next("unsigned-adapter")).toEqual([1]);
    } finally {
      await emitter.close();
    }
  });
});

describe("a publisher confined by a Redis ACL", () => {
  it("may publish on the raw channel and nowhere else", async () => {
    await cluster.publisher.sendCommand([
      "ACL",
      "SETUSER",
      "publisher",
      "on",
      ">a-long-random-password",
      "resetchannels",
      "&socket.io#emitter",
      "-@all",
      "+publish",
    ]);
    const { port } = new URL(cluster.redis.url);
    const url = `redis://publisher:a-long-random-password@127.0.0.1:${port}`;
    const restricted = createClient({ url });
    restricted.on("error", () => {});
    await restricted.connect();
    try {
      for (const channel of ["socket.io#/#", "socket.io#/#user(acl)#", "socket.io-request#/#", "socket.io-response#/#"]) {
        await expect(restricted.publish(channel, "x")).rejects.toThrow(/NOPERM/);
      }
      await expect(restricted.get("switchboard:rate:connections:1")).rejects.toThrow(/NOPERM/);
      const client = await connectUser(cluster.nodes[1]!.url, { sub: "acl" });
      const emitter = createEmitter({ redis: url, signingKey: { kid: KID, secret: SECRET } });
      try {
        await emitter.toUser("acl").emit("through-acl", 1);
        expect(await client.next("through-acl")).toEqual([1]);
      } finally {
        await emitter.close();
      }
    } finally {
      await restricted.quit();
    }
  });
});

describe("a cluster without FRAME_SIGNING_KEYS", () => {
  it("accepts signed frames as well, so publishers can sign before nodes require it", async () => {
    const open = await startCluster(1);
    try {
      const client = await connectUser(open.nodes[0]!.url, { sub: "early-signer" });
      await open.publisher.publish("socket.io#emitter", signed(encode({ room: "user(early-signer)", event: "pre-signed", data: 1 })));
      expect(await client.next("pre-signed")).toEqual([1]);
      await sleep(10);
    } finally {
      await open.close();
    }
  });
});

import { generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type TestClient, closeAllClients, mintToken, openClient } from "./harness/clients.js";
import { type GatewayProcess, TEST_SECRET, readCounter, startGateway } from "./harness/gateway.js";
import { startCluster } from "./harness/cluster.js";
import { sleep } from "./harness/ports.js";
import { rawUpgrade } from "./harness/raw.js";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaPublic = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
const rsaPrivate = rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const now = () => Math.floor(Date.now() / 1000);

let hs: GatewayProcess;
let rs: GatewayProcess;

beforeAll(async () => {
  [hs, rs] = await Promise.all([
    startGateway({ AUTH_TIMEOUT_MS: "400", CORS_ORIGINS: "https://app.example.com" }),
    startGateway({ JWT_SECRET: "", JWT_PUBLIC_KEY: rsaPublic, JWT_ISSUER: "https://auth.example.com", JWT_AUDIENCE: "switchboard" }),
  ]);
});
afterAll(async () => {
  await Promise.all([hs?.stop(), rs?.stop()]);
});
afterEach(() => closeAllClients());

async function refusal(client: TestClient): Promise<{ message: string; data: unknown }> {
  const [err] = (await client.next("connect_error")) as [Error & { data: unknown }];
  return { message: err.message, data: err.data };
}

const unsigned = (payload: object) =>
  `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.`;

describe("handshake authentication", () => {
  it("accepts a token in auth.token and in an Authorization: Bearer header", async () => {
    const viaAuth = openClient(hs.url, { auth: { token: mintToken({ sub: "h1" }) } });
    expect((await viaAuth.next("welcome"))[0]).toMatchObject({ user: "h1" });
    const viaHeader = openClient(hs.url, { extraHeaders: { Authorization: `Bearer ${mintToken({ sub: "h2", site: "a.io" })}` } });
    expect((await viaHeader.next("welcome"))[0]).toMatchObject({ user: "h2", site: "a.io" });
  });

  it.each([
    ["token_missing", () => ({ auth: { token: "" } })],
    ["token_malformed", () => ({ auth: { token: "definitely-not-a-jwt" } })],
    ["token_malformed", () => ({ extraHeaders: { Authorization: "Basic dXNlcjpwYXNz" } })],
    ["token_invalid_signature", () => ({ auth: { token: mintToken({ sub: "x" }, {}, "a-different-secret-of-enough-length!!") } })],
    ["token_expired", () => ({ auth: { token: jwt.sign({ sub: "x", exp: now() - 30 }, TEST_SECRET) } })],
    ["token_not_yet_valid", () => ({ auth: { token: jwt.sign({ sub: "x", nbf: now() + 3600 }, TEST_SECRET) } })],
    ["token_algorithm_not_allowed", () => ({ auth: { token: jwt.sign({ sub: "x" }, rsaPrivate, { algorithm: "RS256" }) } })],
    ["token_algorithm_not_allowed", () => ({ auth: { token: unsigned({ sub: "x" }) } })],
    ["token_claims_invalid", () => ({ auth: { token: mintToken({ name: "no sub" }) } })],
    ["token_claims_invalid", () => ({ auth: { token: mintToken({ sub: "x", site: "https://not-a-host/" }) } })],
  ])("refuses with connect_error %s", async (code, options) => {
    const client = openClient(hs.url, options());
    const { message, data } = await refusal(client);
    expect(message).toBe(code);
    expect(data).toEqual({ code, message: expect.any(String) });
    expect(client.count("welcome")).toBe(0);
  });

  it("counts refusals by code", async () => {
    const before = await readCounter(hs.url, "switchboard_auth_failures_total", { code: "token_malformed" });
    await refusal(openClient(hs.url, { auth: { token: "x" } }));
    expect(await readCounter(hs.url, "switchboard_auth_failures_total", { code: "token_malformed" })).toBe(before + 1);
  });
});

describe("public-key tokens", () => {
  const rsToken = (claims: object, options: jwt.SignOptions = {}) =>
    jwt.sign(claims, rsaPrivate, {
      algorithm: "RS256",
      issuer: "https://auth.example.com",
      audience: "switchboard",
      expiresIn: 60,
      ...options,
    });

  it("accepts RS256 tokens with the configured issuer and audience", async () => {
    const client = openClient(rs.url, { auth: { token: rsToken({ sub: "r1", site: "Example.org" }) } });
    expect((await client.next("welcome"))[0]).toMatchObject({ user: "r1", site: "example.org", rooms: ["user(r1)", "site(example.org)"] });
  });

  it("refuses an HS256 token signed with the public key (key confusion)", async () => {
    const forged = jwt.sign({ sub: "admin", iss: "https://auth.example.com", aud: "switchboard" }, rsaPublic.trim(), {
      algorithm: "HS256",
    });
    expect((await refusal(openClient(rs.url, { auth: { token: forged } }))).message).toBe("token_algorithm_not_allowed");
  });

  it("refuses a wrong issuer or audience with token_claims_invalid", async () => {
    expect(
      (await refusal(openClient(rs.url, { auth: { token: rsToken({ sub: "r" }, { issuer: "https://evil.example" }) } }))).message,
    ).toBe("token_claims_invalid");
    expect((await refusal(openClient(rs.url, { auth: { token: rsToken({ sub: "r" }, { audience: "other" }) } }))).message).toBe(
      "token_claims_invalid",
    );
  });
});

describe("the authenticate event flow", () => {
  it("answers authenticated, then welcome", async () => {
    const client = openClient(hs.url);
    await client.next("connect");
    client.socket.emit("authenticate", { token: mintToken({ sub: "legacy", site: "Legacy.example:8080" }) });
    expect(await client.next("authenticated")).toEqual([{ user: "legacy", site: "legacy.example" }]);
    expect((await client.next("welcome"))[0]).toMatchObject({ user: "legacy", rooms: ["user(legacy)", "site(legacy.example)"] });
    expect(client.received.map((entry) => entry.event)).toEqual(["connect", "authenticated", "welcome"]);
  });

  it.each([
    ["token_missing", {}],
    ["token_malformed", { token: "nope" }],
    ["token_expired", { token: jwt.sign({ sub: "x", exp: now() - 30 }, TEST_SECRET) }],
  ])("answers unauthorized %s and disconnects", async (code, payload) => {
    const client = openClient(hs.url);
    await client.next("connect");
    client.socket.emit("authenticate", payload);
    expect(await client.next("unauthorized")).toEqual([{ code, message: expect.any(String) }]);
    await client.next("disconnect");
    expect(client.count("welcome")).toBe(0);
  });

  it("disconnects a socket that does not authenticate within AUTH_TIMEOUT_MS with auth_timeout", async () => {
    const client = openClient(hs.url);
    await client.next("connect");
    expect(await client.next("unauthorized", () => true, 3000)).toEqual([{ code: "auth_timeout", message: expect.any(String) }]);
    await client.next("disconnect");
  });
});

describe("token expiry on a connected socket", () => {
  const expiringIn = (sub: string, seconds: number) => jwt.sign({ sub, exp: now() + seconds }, TEST_SECRET);

  it("sends token_expiring, accepts a fresh token for the same user, and refuses one for another user", async () => {
    const client = openClient(hs.url, { auth: { token: expiringIn("exp-user", 3) } });
    await client.next("welcome");
    const [notice] = (await client.next("token_expiring")) as [{ expiresAt: number }];
    expect(notice.expiresAt).toBeGreaterThan(Date.now());
    const reply = await client.socket.emitWithAck("authenticate", { token: mintToken({ sub: "exp-user" }) });
    expect(reply).toEqual({ user: "exp-user", site: null });
    const refused = await client.socket.emitWithAck("authenticate", { token: mintToken({ sub: "someone-else" }) });
    expect(refused).toEqual({ code: "token_claims_invalid", message: expect.any(String) });
    expect(await client.next("unauthorized")).toEqual([{ code: "token_claims_invalid", message: expect.any(String) }]);
    await client.next("disconnect");
  });

  it("disconnects with unauthorized token_expired when the token is not refreshed", async () => {
    // exp is counted in whole seconds: one second ahead can be a few milliseconds, less than a connection takes.
    const client = openClient(hs.url, { auth: { token: expiringIn("lapsed", 2) } });
    await client.next("welcome");
    expect(await client.next("unauthorized", () => true, 5000)).toEqual([{ code: "token_expired", message: expect.any(String) }]);
    expect(await client.next("disconnect")).toEqual(["io server disconnect", undefined]);
  });
});

describe("CORS_ORIGINS", () => {
  it("refuses a WebSocket upgrade from another origin and accepts a listed one", async () => {
    const stranger = openClient(hs.url, { extraHeaders: { Origin: "https://evil.example" }, auth: { token: mintToken({ sub: "o" }) } });
    await stranger.next("connect_error");
    expect(stranger.count("welcome")).toBe(0);
    const friend = openClient(hs.url, { extraHeaders: { Origin: "https://app.example.com" }, auth: { token: mintToken({ sub: "o" }) } });
    await friend.next("welcome");
  });

  it("answers a refused handshake with 403 and { code, message } on both polling and WebSocket", async () => {
    const response = await fetch(`${hs.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: "https://evil.example" } });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ code: "origin_not_allowed", message: expect.any(String) });
    const upgrade = await rawUpgrade(hs.url, { Origin: "https://evil.example" });
    expect(upgrade.status).toBe(403);
    expect(JSON.parse(upgrade.body)).toEqual({ code: "origin_not_allowed", message: expect.any(String) });
  });
});

describe("JWT_CLOCK_TOLERANCE_SECONDS", () => {
  it("takes a token a few seconds past its exp, as a node whose clock runs ahead of the issuer's would need", async () => {
    const tolerant = await startGateway({ JWT_CLOCK_TOLERANCE_SECONDS: "30" });
    try {
      const token = jwt.sign({ sub: "skewed", exp: Math.floor(Date.now() / 1000) - 5 }, TEST_SECRET);
      const refused = openClient(hs.url, { auth: { token } });
      expect((await refused.next("connect_error"))[0]).toMatchObject({ message: "token_expired" });
      const taken = openClient(tolerant.url, { auth: { token } });
      expect((await taken.next("welcome"))[0]).toMatchObject({ user: "skewed" });
    } finally {
      await tolerant.stop();
    }
  });

  it("ends a socket's session that much after its token's exp, not at it", async () => {
    const tolerant = await startGateway({ JWT_CLOCK_TOLERANCE_SECONDS: "2" });
    try {
      // Seconds enough, exp and tolerance together, for the socket to connect on a loaded machine.
      const exp = now() + 3;
      const client = openClient(tolerant.url, { auth: { token: jwt.sign({ sub: "late", exp }, TEST_SECRET) } });
      await client.next("welcome");
      expect(await client.next("unauthorized", () => true, 8000)).toEqual([{ code: "token_expired", message: expect.any(String) }]);
      // Without the tolerance the session would have ended at exp, two seconds earlier.
      expect(Date.now()).toBeGreaterThanOrEqual((exp + 2) * 1000 - 100);
    } finally {
      await tolerant.stop();
    }
  });

  it("keeps a kick's refusal in Redis that much longer than JWT_MAX_TTL_SECONDS, for nodes that start later", async () => {
    const apiKey = "tolerance-api-key-of-at-least-32-characters";
    // The tolerance leaves a node that starts slowly on a loaded machine time to be asked within it.
    const tolerance = 10;
    const env = { JWT_CLOCK_TOLERANCE_SECONDS: String(tolerance), JWT_MAX_TTL_SECONDS: "1", API_KEYS: apiKey };
    const cluster = await startCluster(1, env);
    try {
      const issued = now();
      const token = jwt.sign({ sub: "kicked-late", iat: issued, exp: issued + 1 }, TEST_SECRET);
      const kicked = await fetch(`${cluster.nodes[0]!.url}/api/v1/users/kicked-late/disconnect`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: "{}",
      });
      expect(kicked.status).toBe(202);
      // A node that starts past JWT_MAX_TTL_SECONDS after the kick, and past the token's exp, reads the
      // refusals from Redis. Within the tolerance it would take the token itself, so the refusal must be there.
      await sleep(Math.max(0, (issued + 2) * 1000 + 200 - Date.now()));
      const late = await startGateway({ ...env, REDIS_URL: cluster.redis.url });
      try {
        expect(Date.now()).toBeLessThan((issued + 1 + tolerance) * 1000);
        const client = openClient(late.url, { auth: { token } });
        expect((await client.next("connect_error"))[0]).toMatchObject({ message: "token_revoked" });
      } finally {
        await late.stop();
      }
    } finally {
      await cluster.close();
    }
  });
});

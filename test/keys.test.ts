import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import { join } from "node:path";
import { connect } from "@switchboard/client";
import { SignJWT, exportJWK } from "jose";
import jwt from "jsonwebtoken";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { closeAllClients, openClient } from "./harness/clients.js";
import { type GatewayProcess, startGateway } from "./harness/gateway.js";
import { freePort, waitFor } from "./harness/ports.js";
import { scratchDir } from "./harness/scratch.js";

const running: GatewayProcess[] = [];
afterEach(() => closeAllClients());
afterAll(async () => {
  await Promise.all(running.map((node) => node.stop()));
});
async function node(env: Record<string, string>): Promise<GatewayProcess> {
  const started = await startGateway({ JWT_SECRET: "", ...env });
  running.push(started);
  return started;
}

/** Connects with `token`; resolves to the user of `welcome` or the code of `connect_error`. */
async function outcome(url: string, token: string): Promise<string> {
  const client = openClient(url, { auth: { token } });
  return Promise.race([
    client.next("welcome").then(([welcome]) => `welcome ${(welcome as { user: string }).user}`),
    client.next("connect_error").then(([err]) => (err as { data: { code: string } }).data.code),
  ]);
}

describe("key rotation with JWT_KEYS and SIGHUP", () => {
  it("accepts a new kid after the key file is rewritten and the node gets SIGHUP, without dropping connections", async () => {
    const dir = scratchDir("rotation");
    const file = join(dir, "keys.json");
    const old = "old-secret-of-at-least-32-bytes-xxxxxxxx";
    const next = "new-secret-of-at-least-32-bytes-yyyyyyyy";
    writeFileSync(file, JSON.stringify({ "2026-10": old }));
    const gateway = await node({ JWT_KEYS: `@${file}` });
    const sign = (kid: string, secret: string, sub: string) => jwt.sign({ sub }, secret, { keyid: kid, expiresIn: 600 });

    const early = openClient(gateway.url, { auth: { token: sign("2026-10", old, "early") } });
    await early.next("welcome");
    expect(await outcome(gateway.url, sign("2026-11", next, "next"))).toBe("token_invalid_signature");

    // Both keys while clients move over, then only the new one.
    writeFileSync(file, JSON.stringify({ "2026-10": old, "2026-11": next }));
    gateway.child.kill("SIGHUP");
    await waitFor("the reload", () => (gateway.lines.some((line) => line.includes("reloaded 2 key(s)")) ? true : undefined));
    expect(await outcome(gateway.url, sign("2026-11", next, "next"))).toBe("welcome next");
    writeFileSync(file, JSON.stringify({ "2026-11": next }));
    gateway.child.kill("SIGHUP");
    await waitFor("the second reload", () => (gateway.lines.some((line) => line.includes("reloaded 1 key(s)")) ? true : undefined));
    expect(await outcome(gateway.url, sign("2026-10", old, "late"))).toBe("token_invalid_signature");
    expect(early.socket.connected).toBe(true);
    expect(gateway.child.exitCode).toBeNull();
  });
});

describe("JWT_JWKS_URL", () => {
  interface JwksServer {
    url: string;
    keys: Record<string, unknown>[];
    fetches: number;
    failing: boolean;
    close(): Promise<void>;
  }
  async function jwksServer(): Promise<JwksServer> {
    const state = { keys: [] as Record<string, unknown>[], fetches: 0, failing: false };
    const server: Server = createServer((_request, response) => {
      state.fetches++;
      if (state.failing) return response.writeHead(503).end("down for maintenance");
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: state.keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    return Object.assign(state, {
      url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    });
  }
  const publicJwk = async (key: KeyObject, kid: string) => ({ ...(await exportJWK(key)), kid });
  const signWith = (key: KeyObject, alg: string, kid: string, sub: string) =>
    new SignJWT({ sub }).setProtectedHeader({ alg, kid }).setExpirationTime("10m").sign(key);

  it("verifies RS and EdDSA tokens from the set, fetches again for a new kid, and keeps the last good set when the endpoint fails", async () => {
    const jwks = await jwksServer();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const ed = generateKeyPairSync("ed25519");
    jwks.keys.push(await publicJwk(rsa.publicKey, "rs-1"), await publicJwk(ed.publicKey, "ed-1"));
    try {
      const gateway = await node({ JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: "0" });
      expect(await outcome(gateway.url, await signWith(rsa.privateKey, "RS256", "rs-1", "rs-user"))).toBe("welcome rs-user");
      expect(await outcome(gateway.url, await signWith(ed.privateKey, "EdDSA", "ed-1", "ed-user"))).toBe("welcome ed-user");
      // HS tokens are never verified with a JWKS, whatever key they name.
      expect(await outcome(gateway.url, jwt.sign({ sub: "h" }, "x".repeat(40), { keyid: "rs-1" }))).toBe("token_algorithm_not_allowed");

      const rotated = generateKeyPairSync("rsa", { modulusLength: 2048 });
      jwks.keys.push(await publicJwk(rotated.publicKey, "rs-2"));
      expect(await outcome(gateway.url, await signWith(rotated.privateKey, "RS256", "rs-2", "rotated"))).toBe("welcome rotated");

      jwks.failing = true;
      expect(await outcome(gateway.url, await signWith(rsa.privateKey, "RS256", "rs-1", "still-known"))).toBe("welcome still-known");
      expect(await outcome(gateway.url, await signWith(rsa.privateKey, "RS256", "rs-404", "unknown-kid"))).toBe("token_invalid_signature");
      expect(await outcome(gateway.url, await signWith(rsa.privateKey, "RS256", "rs-1", "still-known-2"))).toBe("welcome still-known-2");
    } finally {
      await jwks.close();
    }
  });

  it("fetches for unknown kids at most once per cooldown", async () => {
    const jwks = await jwksServer();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    jwks.keys.push(await publicJwk(rsa.publicKey, "rs-1"));
    try {
      const gateway = await node({ JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: "60000" });
      expect(await outcome(gateway.url, await signWith(rsa.privateKey, "RS256", "rs-1", "first"))).toBe("welcome first");
      const before = jwks.fetches;
      for (let index = 0; index < 20; index++) {
        expect(await outcome(gateway.url, await signWith(rsa.privateKey, "RS256", `unknown-${index}`, "u"))).toBe(
          "token_invalid_signature",
        );
      }
      expect(jwks.fetches - before).toBeLessThanOrEqual(1);
    } finally {
      await jwks.close();
    }
  });

  it("answers auth_unavailable while it has never fetched a key set", async () => {
    const gateway = await node({ JWT_JWKS_URL: `http://127.0.0.1:${await freePort()}/jwks.json` });
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    expect(await outcome(gateway.url, await signWith(rsa.privateKey, "RS256", "rs-1", "early"))).toBe("auth_unavailable");
    expect(gateway.lines.some((line) => line.includes("JWT_JWKS_URL could not be fetched"))).toBe(true);
  });

  it("@switchboard/client reports auth_unavailable once, keeps retrying, and connects once the key set can be fetched", async () => {
    const jwks = await jwksServer();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    jwks.keys.push(await publicJwk(rsa.publicKey, "rs-1"));
    jwks.failing = true;
    try {
      const gateway = await node({ JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: "0" });
      const client = connect({
        url: gateway.url,
        token: await signWith(rsa.privateKey, "RS256", "rs-1", "patient"),
        socket: { reconnectionDelay: 100, reconnectionDelayMax: 200 },
      });
      try {
        const errors: string[] = [];
        client.on("error", (error) => errors.push(error.code));
        const welcomed = client.ready();
        await waitFor("a few refused attempts", () => (jwks.fetches >= 3 ? true : undefined));
        expect(client.state).toMatchObject({ status: "connecting" });
        expect(errors).toEqual(["auth_unavailable"]);
        jwks.failing = false;
        expect(await welcomed).toMatchObject({ user: "patient" });
        expect(errors).toEqual(["auth_unavailable"]);
      } finally {
        client.close();
      }
    } finally {
      await jwks.close();
    }
  });
});

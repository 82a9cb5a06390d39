import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyBaseLogger } from "fastify";
import { SignJWT } from "jose";
import jwt from "jsonwebtoken";
import { describe, expect, it, onTestFinished } from "vitest";
import { createTokenVerifier } from "../src/auth.js";
import { loadConfig } from "../src/config.js";
import { codeOf, configFailure } from "./refusals.js";

const silent = { logger: { info() {}, warn() {}, error() {}, debug() {} } as unknown as FastifyBaseLogger };
const verifierFor = (env: Record<string, string>) => createTokenVerifier(loadConfig(env).auth, silent);
const SECRET_A = "a".repeat(40);
const SECRET_B = "b".repeat(40);
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaPublic = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
const ed = generateKeyPairSync("ed25519");
const edPublic = ed.publicKey.export({ type: "spki", format: "pem" }).toString();

const hs = (kid: string | undefined, secret: string, claims: object = { sub: "u" }) =>
  jwt.sign(claims, secret, { expiresIn: 60, ...(kid ? { keyid: kid } : {}) });

describe("JWT_KEYS: keys chosen by kid", () => {
  const keys = JSON.stringify({ "hs-1": SECRET_A, "rs-1": rsaPublic });
  const verifier = verifierFor({ JWT_KEYS: keys });

  it("verifies each token with the key its kid names, secret or public", async () => {
    expect((await verifier.verify(hs("hs-1", SECRET_A))).identity.user).toBe("u");
    const rsToken = jwt.sign({ sub: "r" }, rsa.privateKey, { algorithm: "RS256", keyid: "rs-1", expiresIn: 60 });
    expect((await verifier.verify(rsToken)).identity.user).toBe("r");
  });

  it("refuses an unknown kid, a missing kid and a token signed with another key", async () => {
    expect(await codeOf(() => verifier.verify(hs("hs-9", SECRET_A)))).toBe("token_invalid_signature");
    expect(await codeOf(() => verifier.verify(hs(undefined, SECRET_A)))).toBe("token_invalid_signature");
    expect(await codeOf(() => verifier.verify(hs("hs-1", SECRET_B)))).toBe("token_invalid_signature");
  });

  it("refuses an HS token whose kid names the RSA key: the algorithm must fit the key", async () => {
    const confused = jwt.sign({ sub: "admin" }, rsaPublic, { algorithm: "HS256", keyid: "rs-1" });
    expect(await codeOf(() => verifier.verify(confused))).toBe("token_algorithm_not_allowed");
  });

  it("re-reads a key file on reload, and keeps the keys in use when the new file is bad", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-keys-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "keys.json");
    writeFileSync(file, JSON.stringify({ one: SECRET_A }));
    const fromFile = verifierFor({ JWT_KEYS: `@${file}` });
    expect((await fromFile.verify(hs("one", SECRET_A))).identity.user).toBe("u");
    expect(await codeOf(() => fromFile.verify(hs("two", SECRET_B)))).toBe("token_invalid_signature");
    writeFileSync(file, JSON.stringify({ one: SECRET_A, two: SECRET_B }));
    expect(fromFile.reloadKeys()).toContain("reloaded 2 key(s)");
    expect((await fromFile.verify(hs("two", SECRET_B))).identity.user).toBe("u");
    writeFileSync(file, "{ not json");
    expect(fromFile.reloadKeys()).toContain("kept");
    expect((await fromFile.verify(hs("two", SECRET_B))).identity.user).toBe("u");
  });
});

describe("EdDSA", () => {
  const verifier = verifierFor({ JWT_PUBLIC_KEY: edPublic });
  const sign = (claims: Record<string, unknown>, key = ed.privateKey) =>
    new SignJWT(claims).setProtectedHeader({ alg: "EdDSA" }).setExpirationTime("1m").sign(key);

  it("verifies Ed25519 tokens and refuses a forged or expired one with its code", async () => {
    expect((await verifier.verify(await sign({ sub: "ed-user" }))).identity.user).toBe("ed-user");
    expect(await codeOf(async () => verifier.verify(await sign({ sub: "x" }, generateKeyPairSync("ed25519").privateKey)))).toBe(
      "token_invalid_signature",
    );
    const expired = await new SignJWT({ sub: "x" })
      .setProtectedHeader({ alg: "EdDSA" })
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(ed.privateKey);
    expect(await codeOf(() => verifier.verify(expired))).toBe("token_expired");
    expect(await codeOf(() => verifier.verify(hs(undefined, SECRET_A)))).toBe("token_algorithm_not_allowed");
  });
});

describe("key configuration", () => {
  it.each([
    ["not JSON", "{"],
    ["an array", "[]"],
    ["an empty object", "{}"],
    ["a key that is not a string", JSON.stringify({ k: 5 })],
    ["a broken PEM", JSON.stringify({ k: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----" })],
  ])("refuses JWT_KEYS that is %s, naming the variable", (_what, value) => {
    expect(configFailure({ JWT_KEYS: value }).variable).toContain("JWT_KEYS");
  });

  it("refuses a JWT_KEYS file it cannot read", () => {
    expect(configFailure({ JWT_KEYS: "@/nonexistent/keys.json" }).message).toContain("cannot read");
  });

  it("takes exactly one key source", () => {
    expect(configFailure({ JWT_SECRET: SECRET_A, JWT_KEYS: JSON.stringify({ k: SECRET_B }) }).message).toContain(
      "not JWT_SECRET and JWT_KEYS",
    );
    expect(configFailure({ JWT_PUBLIC_KEY: rsaPublic, JWT_JWKS_URL: "http://127.0.0.1:1/jwks" }).message).toContain(
      "not JWT_PUBLIC_KEY and JWT_JWKS_URL",
    );
    expect(configFailure({ JWT_JWKS_URL: "ftp://keys.example/jwks" }).variable).toBe("JWT_JWKS_URL");
  });

  it("allows only asymmetric algorithms with a JWKS, and what fits the keys with JWT_KEYS", () => {
    expect(loadConfig({ JWT_JWKS_URL: "https://auth.example.com/.well-known/jwks.json" }).auth.algorithms).not.toContain("HS256");
    expect(loadConfig({ JWT_KEYS: JSON.stringify({ a: SECRET_A, e: edPublic }) }).auth.algorithms).toEqual([
      "HS256",
      "HS384",
      "HS512",
      "EdDSA",
      "Ed25519",
    ]);
    expect(configFailure({ JWT_KEYS: JSON.stringify({ a: SECRET_A }), JWT_ALGORITHMS: "RS256" }).variable).toBe("JWT_ALGORITHMS");
  });
});

import { createHmac, generateKeyPairSync } from "node:crypto";
import { SignJWT } from "jose";
import jwt from "jsonwebtoken";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { FastifyBaseLogger } from "fastify";
import { AuthError, createTokenVerifier } from "../src/auth.js";
import { loadConfig } from "../src/config.js";
import { toWireError } from "../src/errors.js";
import { codeOf } from "./refusals.js";

const SECRET = "k".repeat(40);
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaPublicPem = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
const rsaPrivatePem = rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString();

const silent = { logger: { info() {}, warn() {}, error() {}, debug() {} } as unknown as FastifyBaseLogger };
const verifierFor = (env: Record<string, string>) => createTokenVerifier(loadConfig(env).auth, silent);
const hsVerifier = verifierFor({ JWT_SECRET: SECRET, JWT_ISSUER: "issuer", JWT_AUDIENCE: "sb" });
const rsVerifier = verifierFor({ JWT_PUBLIC_KEY: rsaPublicPem });
const good = (claims: object, options: jwt.SignOptions = {}) =>
  jwt.sign(claims, SECRET, { issuer: "issuer", audience: "sb", expiresIn: 60, ...options });

describe("token verification", () => {
  it("returns the user and normalised site", async () => {
    expect((await hsVerifier.verify(good({ sub: "u1", site: "Example.COM:8080" }))).identity).toEqual({ user: "u1", site: "example.com" });
    expect((await hsVerifier.verify(good({ sub: 17 }))).identity).toEqual({ user: "17", site: null });
  });

  it("reports when the token expires, or null without exp", async () => {
    const exp = Math.floor(Date.now() / 1000) + 120;
    expect((await hsVerifier.verify(jwt.sign({ sub: "u", exp }, SECRET, { issuer: "issuer", audience: "sb" }))).expiresAt).toBe(exp * 1000);
    expect((await hsVerifier.verify(jwt.sign({ sub: "u" }, SECRET, { issuer: "issuer", audience: "sb" }))).expiresAt).toBeNull();
  });

  it.each([
    ["token_missing", () => hsVerifier.verify(undefined)],
    ["token_missing", () => hsVerifier.verify("")],
    ["token_malformed", () => hsVerifier.verify("not.a.jwt")],
    ["token_malformed", () => hsVerifier.verify(12)],
    [
      "token_invalid_signature",
      () => hsVerifier.verify(jwt.sign({ sub: "u" }, "another-secret-another-secret-xx", { issuer: "issuer", audience: "sb" })),
    ],
    [
      "token_expired",
      () =>
        hsVerifier.verify(jwt.sign({ sub: "u", exp: Math.floor(Date.now() / 1000) - 60 }, SECRET, { issuer: "issuer", audience: "sb" })),
    ],
    ["token_not_yet_valid", () => hsVerifier.verify(good({ sub: "u" }, { notBefore: 3600 }))],
    [
      "token_algorithm_not_allowed",
      () => hsVerifier.verify(jwt.sign({ sub: "u" }, rsaPrivatePem, { algorithm: "RS256", issuer: "issuer", audience: "sb" })),
    ],
    ["token_claims_invalid", () => hsVerifier.verify(good({ name: "no sub" }))],
    ["token_claims_invalid", () => hsVerifier.verify(good({ sub: "u" }, { issuer: "someone-else" }))],
    ["token_claims_invalid", () => hsVerifier.verify(good({ sub: "u" }, { audience: "other" }))],
    ["token_claims_invalid", () => hsVerifier.verify(good({ sub: "u", site: "http://bad/" }))],
  ])("refuses with %s", async (code, verify) => {
    expect(await codeOf(verify)).toBe(code);
  });

  it("takes a token within JWT_CLOCK_TOLERANCE_SECONDS of its exp or nbf, and ends its session that much after exp", async () => {
    const tolerant = verifierFor({ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_SECONDS: "30" });
    const now = Math.floor(Date.now() / 1000);
    const expired = jwt.sign({ sub: "u", exp: now - 10 }, SECRET);
    const early = jwt.sign({ sub: "u", nbf: now + 10, exp: now + 60 }, SECRET);
    const strict = verifierFor({ JWT_SECRET: SECRET });
    expect(await codeOf(() => strict.verify(expired))).toBe("token_expired");
    expect(await codeOf(() => strict.verify(early))).toBe("token_not_yet_valid");
    expect((await tolerant.verify(expired)).expiresAt).toBe((now - 10 + 30) * 1000);
    expect((await tolerant.verify(early)).identity.user).toBe("u");
    expect(await codeOf(() => tolerant.verify(jwt.sign({ sub: "u", exp: now - 40 }, SECRET)))).toBe("token_expired");
  });

  it("applies JWT_CLOCK_TOLERANCE_SECONDS to EdDSA tokens too", async () => {
    const ed = generateKeyPairSync("ed25519");
    const publicPem = ed.publicKey.export({ type: "spki", format: "pem" }).toString();
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ sub: "e" })
      .setProtectedHeader({ alg: "EdDSA" })
      .setExpirationTime(now - 10)
      .sign(ed.privateKey);
    expect(await codeOf(() => verifierFor({ JWT_PUBLIC_KEY: publicPem }).verify(token))).toBe("token_expired");
    expect((await verifierFor({ JWT_PUBLIC_KEY: publicPem, JWT_CLOCK_TOLERANCE_SECONDS: "30" }).verify(token)).identity.user).toBe("e");
  });

  // Signed by jose, a library other than the one that verifies, for every algorithm a key can take.
  const makeKeyPair = {
    rsa: () => generateKeyPairSync("rsa", { modulusLength: 2048 }),
    p256: () => generateKeyPairSync("ec", { namedCurve: "P-256" }),
    p384: () => generateKeyPairSync("ec", { namedCurve: "P-384" }),
    p521: () => generateKeyPairSync("ec", { namedCurve: "P-521" }),
    ed: () => generateKeyPairSync("ed25519"),
  };

  it.each([
    ["RS256", "rsa"],
    ["RS384", "rsa"],
    ["RS512", "rsa"],
    ["PS256", "rsa"],
    ["PS384", "rsa"],
    ["PS512", "rsa"],
    ["ES256", "p256"],
    ["ES384", "p384"],
    ["ES512", "p521"],
    ["EdDSA", "ed"],
  ] as const)("verifies %s with a public key, and refuses a token its key did not sign", async (alg, pair) => {
    const { publicKey, privateKey } = makeKeyPair[pair]();
    const verifier = verifierFor({ JWT_PUBLIC_KEY: publicKey.export({ type: "spki", format: "pem" }).toString() });
    const signed = (key: typeof privateKey) =>
      new SignJWT({ sub: `${alg}-user` }).setProtectedHeader({ alg }).setExpirationTime("1m").sign(key);
    expect((await verifier.verify(await signed(privateKey))).identity.user).toBe(`${alg}-user`);
    const other = makeKeyPair[pair]();
    expect(await codeOf(async () => verifier.verify(await signed(other.privateKey)))).toBe("token_invalid_signature");
  });

  it.each(["HS256", "HS384", "HS512"])("verifies %s with JWT_SECRET", async (alg) => {
    const verifier = verifierFor({ JWT_SECRET: SECRET, JWT_ALGORITHMS: alg });
    const key = new TextEncoder().encode(SECRET);
    const token = await new SignJWT({ sub: "h" }).setProtectedHeader({ alg }).setExpirationTime("1m").sign(key);
    expect((await verifier.verify(token)).identity.user).toBe("h");
    const forged = await new SignJWT({ sub: "h" })
      .setProtectedHeader({ alg })
      .setExpirationTime("1m")
      .sign(new TextEncoder().encode("x".repeat(40)));
    expect(await codeOf(() => verifier.verify(forged))).toBe("token_invalid_signature");
  });

  it("answers at once where the key is at hand: a session, or an AuthError thrown, the same as verify gives", async () => {
    const expired = jwt.sign({ sub: "u", exp: Math.floor(Date.now() / 1000) - 60 }, SECRET, { issuer: "issuer", audience: "sb" });
    const forged = jwt.sign({ sub: "u" }, "another-secret-another-secret-xx", { issuer: "issuer", audience: "sb" });
    const session = hsVerifier.verifyNow(good({ sub: "now", site: "Now.example" }));
    expect(session).not.toBeInstanceOf(Promise);
    expect((session as Awaited<typeof session>).identity).toEqual({ user: "now", site: "now.example" });
    for (const token of [undefined, "", 12, "not.a.jwt", expired, forged, good({ name: "no sub" }), "x".repeat(20_000)]) {
      let thrown: unknown = null;
      try {
        hsVerifier.verifyNow(token);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(AuthError);
      expect(toWireError(thrown).code).toBe(await codeOf(() => hsVerifier.verify(token)));
    }
  });

  it("answers an EdDSA token (verified by jose) later, with a promise of the session or of the refusal", async () => {
    const ed = generateKeyPairSync("ed25519");
    const verifier = verifierFor({ JWT_PUBLIC_KEY: ed.publicKey.export({ type: "spki", format: "pem" }).toString() });
    const token = await new SignJWT({ sub: "later" }).setProtectedHeader({ alg: "EdDSA" }).setExpirationTime("1m").sign(ed.privateKey);
    const answer = verifier.verifyNow(token);
    expect(answer).toBeInstanceOf(Promise);
    expect((await answer).identity.user).toBe("later");
    const other = generateKeyPairSync("ed25519");
    const forged = await new SignJWT({ sub: "later" }).setProtectedHeader({ alg: "EdDSA" }).setExpirationTime("1m").sign(other.privateKey);
    const refused = verifier.verifyNow(forged);
    expect(refused).toBeInstanceOf(Promise);
    expect(await codeOf(() => refused as Promise<unknown>)).toBe("token_invalid_signature");
  });

  it("signs development tokens its own verifier takes, with JWT_ISSUER, JWT_AUDIENCE and the lifetime asked for", async () => {
    const sign = hsVerifier.sign;
    if (!sign) throw new Error("a JWT_SECRET verifier signs");
    const before = Math.floor(Date.now() / 1000);
    const token = sign({ sub: "dev", site: "example.com" }, 90);
    const session = await hsVerifier.verify(token);
    expect(session.identity).toEqual({ user: "dev", site: "example.com" });
    expect(session.expiresAt).toBeGreaterThanOrEqual((before + 90) * 1000);
    expect(session.expiresAt).toBeLessThanOrEqual((before + 91) * 1000);
    expect(jwt.decode(token)).toMatchObject({ iss: "issuer", aud: "sb", sub: "dev" });
    expect(rsVerifier.sign).toBeUndefined();
  });

  it("refuses alg none", async () => {
    const unsigned = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "u", iss: "issuer", aud: "sb" })).toString("base64url")}.`;
    expect(await codeOf(() => hsVerifier.verify(unsigned))).toBe("token_algorithm_not_allowed");
  });

  it("refuses an HS256 token signed with the RSA public key (key confusion)", async () => {
    const forged = jwt.sign({ sub: "admin" }, rsaPublicPem.replace(/\n$/, ""), { algorithm: "HS256" });
    expect(await codeOf(() => rsVerifier.verify(forged))).toBe("token_algorithm_not_allowed");
  });

  it("accepts RS256 tokens with a public key", async () => {
    expect((await rsVerifier.verify(jwt.sign({ sub: "r", site: "a.io" }, rsaPrivatePem, { algorithm: "RS256" }))).identity).toEqual({
      user: "r",
      site: "a.io",
    });
  });

  const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
  const hmac = (input: string) => createHmac("sha256", SECRET).update(input).digest("base64url");
  /** A token signed with the right secret whose header and payload are exactly as given. */
  const handMade = (header: object, payload: string | object) => {
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${hmac(input)}`;
  };

  it.each([
    ["a token without iss where JWT_ISSUER is set", { sub: "u", aud: "sb" }, "token_claims_invalid"],
    ["a token without aud where JWT_AUDIENCE is set", { sub: "u", iss: "issuer" }, "token_claims_invalid"],
    ["an aud that is a number", { sub: "u", iss: "issuer", aud: 7 }, "token_claims_invalid"],
    ["an iss that is a list", { sub: "u", iss: ["issuer"], aud: "sb" }, "token_claims_invalid"],
    ["an exp that is a string", { sub: "u", iss: "issuer", aud: "sb", exp: "tomorrow" }, "token_malformed"],
    ["an nbf that is an object", { sub: "u", iss: "issuer", aud: "sb", nbf: {} }, "token_malformed"],
    ["a payload that is a list", ["u"], "token_malformed"],
  ])("refuses %s", async (_case, payload, code) => {
    expect(await codeOf(() => hsVerifier.verify(handMade({ alg: "HS256", typ: "JWT" }, payload)))).toBe(code);
  });

  it("takes an aud listing this node's audience among others", async () => {
    const token = handMade({ alg: "HS256", typ: "JWT" }, { sub: "u", iss: "issuer", aud: ["other", "sb"] });
    expect((await hsVerifier.verify(token)).identity.user).toBe("u");
  });

  it("answers any token, mangled, deeply nested or of the wrong types, with a session or an AuthError", async () => {
    const valid = good({ sub: "u", site: "example.com", rooms: ["topic(*)"] });
    const nested = (depth: number) => JSON.parse(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`) as unknown;
    const token = fc.oneof(
      // The valid token with characters changed, removed or inserted anywhere.
      fc
        .array(fc.tuple(fc.nat(), fc.string({ maxLength: 3 })), { minLength: 1, maxLength: 4 })
        .map((edits) =>
          edits.reduce((text, [at, insert]) => text.slice(0, at % text.length) + insert + text.slice((at % text.length) + 1), valid),
        ),
      // Correctly signed, with claims of any JSON type, deeply nested ones included.
      fc
        .record({
          sub: fc.jsonValue({ maxDepth: 3 }),
          site: fc.jsonValue({ maxDepth: 2 }),
          exp: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constant(Math.floor(Date.now() / 1000) + 60)),
          nbf: fc.jsonValue({ maxDepth: 1 }),
          iss: fc.oneof(fc.constant("issuer"), fc.jsonValue({ maxDepth: 1 })),
          aud: fc.oneof(fc.constant("sb"), fc.jsonValue({ maxDepth: 2 })),
          rooms: fc.jsonValue({ maxDepth: 3 }),
          publish: fc.jsonValue({ maxDepth: 2 }),
          deep: fc.integer({ min: 1, max: 2000 }).map(nested),
        })
        .map((claims) => handMade({ alg: "HS256", typ: "JWT" }, claims)),
      fc.string({ maxLength: 300 }),
    );
    await fc.assert(
      fc.asyncProperty(token, async (candidate) => {
        try {
          const session = await hsVerifier.verify(candidate);
          expect(typeof session.identity.user).toBe("string");
        } catch (err) {
          expect(err).toBeInstanceOf(AuthError);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("refuses a crit header naming any extension with token_malformed (RFC 7515 4.1.11)", async () => {
    const token = handMade({ alg: "HS256", typ: "JWT", crit: ["exp-ext"], "exp-ext": 1 }, { sub: "u", iss: "issuer", aud: "sb" });
    expect(await codeOf(() => hsVerifier.verify(token))).toBe("token_malformed");
  });

  it("reads each token's own header however many distinct headers came before it (decoded headers are kept, a bounded number)", async () => {
    const verifier = verifierFor({ JWT_SECRET: SECRET, JWT_ISSUER: "issuer", JWT_AUDIENCE: "sb" });
    const claims = { sub: "u", iss: "issuer", aud: "sb" };
    // More distinct headers than are kept, each verified twice (decoded, then read back).
    for (let index = 0; index < 150; index++) {
      const token = handMade({ alg: "HS256", typ: "JWT", n: index }, { ...claims, sub: `u${index}` });
      for (let again = 0; again < 2; again++) expect((await verifier.verify(token)).identity.user).toBe(`u${index}`);
    }
    // A header already read, then one that is refused, then the first again: each is judged on its own.
    const plain = handMade({ alg: "HS256", typ: "JWT" }, claims);
    expect((await verifier.verify(plain)).identity.user).toBe("u");
    expect(await codeOf(() => verifier.verify(handMade({ alg: "HS256", typ: "JWT", crit: ["x"], x: 1 }, claims)))).toBe("token_malformed");
    expect(await codeOf(() => verifier.verify(handMade({ alg: "HS512", typ: "JWT" }, claims)))).toBe("token_invalid_signature");
    expect(await codeOf(() => verifier.verify(`${plain}.extra`))).toBe("token_malformed");
    expect(await codeOf(() => verifier.verify(plain.slice(plain.indexOf("."))))).toBe("token_malformed");
    expect((await verifier.verify(plain)).identity.user).toBe("u");
  });

  it("reads a header too long to be kept decoded afresh each time, and refuses a long header that is not JSON", async () => {
    const verifier = verifierFor({ JWT_SECRET: SECRET, JWT_ISSUER: "issuer", JWT_AUDIENCE: "sb" });
    const claims = { sub: "long", iss: "issuer", aud: "sb" };
    const long = handMade({ alg: "HS256", typ: "JWT", note: "x".repeat(900) }, claims);
    for (let again = 0; again < 3; again++) expect((await verifier.verify(long)).identity.user).toBe("long");
    const notJson = `${b64("{".repeat(900))}${long.slice(long.indexOf("."))}`;
    for (let again = 0; again < 2; again++) expect(await codeOf(() => verifier.verify(notJson))).toBe("token_malformed");
  });

  it("refuses a payload that is not JSON with token_malformed, not internal_error", async () => {
    expect(await codeOf(() => hsVerifier.verify(handMade({ alg: "HS256", typ: "JWT" }, "this is { not json")))).toBe("token_malformed");
    expect(await codeOf(() => hsVerifier.verify(handMade({ alg: "HS256" }, "plain text")))).toBe("token_malformed");
  });

  it("refuses a token whose signature was stripped as a signature failure", async () => {
    const signed = good({ sub: "u" });
    expect(await codeOf(() => hsVerifier.verify(signed.slice(0, signed.lastIndexOf(".") + 1)))).toBe("token_invalid_signature");
  });

  it("refuses a token longer than JWT_MAX_BYTES before decoding it, and accepts one just under", async () => {
    const small = verifierFor({ JWT_SECRET: SECRET, JWT_MAX_BYTES: "512" });
    const padded = (length: number) => {
      const base = good({ sub: "u", pad: "" });
      return good({ sub: "u", pad: "x".repeat(Math.max(0, Math.floor(((length - base.length) * 3) / 4))) });
    };
    expect((await small.verify(padded(500))).identity.user).toBe("u");
    expect(await codeOf(() => small.verify(padded(600)))).toBe("token_malformed");
    expect(await codeOf(() => hsVerifier.verify("x".repeat(700_000)))).toBe("token_malformed");
  });

  it("refuses a token without exp when JWT_REQUIRE_EXP is on, and one living longer than JWT_MAX_TTL_SECONDS", async () => {
    const strict = verifierFor({ JWT_SECRET: SECRET, JWT_REQUIRE_EXP: "1" });
    expect(await codeOf(() => strict.verify(jwt.sign({ sub: "u" }, SECRET)))).toBe("token_claims_invalid");
    expect((await strict.verify(jwt.sign({ sub: "u" }, SECRET, { expiresIn: 60 }))).expiresAt).toBeGreaterThan(Date.now());
    const capped = verifierFor({ JWT_SECRET: SECRET, JWT_MAX_TTL_SECONDS: "3600" });
    expect((await capped.verify(jwt.sign({ sub: "u" }, SECRET, { expiresIn: 3600 }))).identity.user).toBe("u");
    expect(await codeOf(() => capped.verify(jwt.sign({ sub: "u" }, SECRET, { expiresIn: 3601 })))).toBe("token_claims_invalid");
    expect(await codeOf(() => capped.verify(jwt.sign({ sub: "u" }, SECRET)))).toBe("token_claims_invalid");
    // Without iat, what is left of its life counts.
    expect(
      await codeOf(() => capped.verify(jwt.sign({ sub: "u", exp: Math.floor(Date.now() / 1000) + 7200 }, SECRET, { noTimestamp: true }))),
    ).toBe("token_claims_invalid");
  });

  it("maps unknown failures to internal_error", async () => {
    expect(toWireError(new Error("boom")).code).toBe("internal_error");
  });
});

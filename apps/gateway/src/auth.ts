import type { Identity } from "@switchboard/protocol";
import { normaliseSiteHost, userIdOf } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import { errors as joseErrors, jwtVerify } from "jose";
import jwt from "jsonwebtoken";
import type { AuthConfig } from "./config.js";
import { AuthError } from "./errors.js";
import { type Keyring, type ResolvedKey, createKeyring } from "./keys.js";

export { AuthError, type AuthFailure } from "./errors.js";

/** What a verified token grants: who the socket is, until when, and what more it may do. */
export interface Session {
  identity: Identity;
  /** When the token expires (ms since the epoch); null for a token without `exp`. */
  expiresAt: number | null;
  /** The token's `jti`, by which it can be revoked alone. */
  jti?: string;
  /** Room patterns the token's claims add: `rooms` to join, `publish` to publish to. */
  grants: Grants;
}

export interface Grants {
  rooms: readonly string[];
  publish: readonly string[];
  /** Service name patterns the socket may call (and whose `service(<name>)` rooms it may join). */
  services: readonly string[];
}

/** Why a token is refused although it verifies (a kick after it was issued, its jti revoked), or null. */
export type RevocationCheck = (user: string, iat: number | undefined, jti: string | undefined) => string | null;

export interface TokenVerifier {
  /** Resolves to who the token names and until when, or rejects with an AuthError. */
  verify(token: unknown): Promise<Session>;
  /** Signs a short-lived token with the node's own secret; only where the node holds one. */
  sign?(claims: { sub: string; site?: string }, expiresInSeconds: number): string;
  /** Re-reads the key file (JWT_KEYS=@file) or refetches JWT_JWKS_URL; says what happened. */
  reloadKeys(): string;
  close(): void;
}

// jsonwebtoken verifies these; EdDSA, which it does not implement, goes to jose.
const JOSE_ONLY_ALGORITHMS: ReadonlySet<string> = new Set(["EdDSA", "Ed25519"]);

export function createTokenVerifier(config: AuthConfig, deps: { logger: FastifyBaseLogger; isRevoked?: RevocationCheck }): TokenVerifier {
  const keyring: Keyring = createKeyring(config.key, deps);
  const allowed: ReadonlySet<string> = new Set(config.algorithms);
  const audience = config.audience ? ([...config.audience] as [string, ...string[]]) : undefined;
  const headerOf = createHeaderReader();

  async function verify(token: unknown): Promise<Session> {
    if (token === undefined || token === null || token === "") throw new AuthError("missing", "no token");
    if (typeof token !== "string") throw new AuthError("malformed", "the token is not a string");
    // Checked before anything is decoded, so an oversized token costs nothing.
    if (token.length > config.maxTokenBytes)
      throw new AuthError("too_large", `the token is longer than JWT_MAX_BYTES (${config.maxTokenBytes} bytes)`);
    const header = headerOf(token);
    // The algorithm is checked against the pinned list before any key is used, so `none` and
    // an HS token presented to an RS key never reach signature verification.
    const algorithm = typeof header.alg === "string" ? header.alg : "(none)";
    if (!allowed.has(algorithm)) throw new AuthError("algorithm_not_allowed", `algorithm ${algorithm.slice(0, 20)} is not accepted`);
    const found = keyring.keyFor({ alg: algorithm, kid: header.kid });
    const key: ResolvedKey = found instanceof Promise ? await found : found;
    if (!key.algorithms.includes(algorithm))
      throw new AuthError("algorithm_not_allowed", `algorithm ${algorithm} does not fit the key that verifies this token`);
    const claims = JOSE_ONLY_ALGORITHMS.has(algorithm)
      ? await verifyWithJose(token, key, algorithm)
      : verifyWithJsonwebtoken(token, key, algorithm);
    const identity = identityOf(claims, config.siteClaim);
    const expiresAt = lifetimeOf(claims, config);
    const iat = typeof claims.iat === "number" ? claims.iat : undefined;
    const jti = typeof claims.jti === "string" && claims.jti.length > 0 ? claims.jti : undefined;
    const revoked = deps.isRevoked?.(identity.user, iat, jti) ?? null;
    if (revoked !== null) throw new AuthError("revoked", revoked);
    return { identity, expiresAt, grants: grantsOf(claims), ...(jti !== undefined ? { jti } : {}) };
  }

  // Made once per accepted algorithm (no other reaches jsonwebtoken); it copies what it is given before using it.
  const verifyOptions = new Map(
    config.algorithms.map((algorithm) => [
      algorithm,
      {
        algorithms: [algorithm as jwt.Algorithm],
        complete: false as const,
        clockTolerance: config.clockToleranceSeconds,
        ...(config.issuer ? { issuer: config.issuer } : {}),
        ...(audience ? { audience } : {}),
      },
    ]),
  );

  function verifyWithJsonwebtoken(token: string, key: ResolvedKey, algorithm: string): jwt.JwtPayload {
    const options = verifyOptions.get(algorithm);
    // Checked against the accepted list before: never verified without the issuer and audience checks.
    if (options === undefined) throw new AuthError("algorithm_not_allowed", `algorithm ${algorithm.slice(0, 20)} is not accepted`);
    try {
      const verified = jwt.verify(token, key.key, options);
      if (typeof verified === "string") throw new AuthError("malformed", "the payload is not a JSON object");
      return verified;
    } catch (err) {
      // A payload that is no JSON object can fail a claim check first (an issuer, say): it is malformed all the same.
      if (!(err instanceof AuthError) && !payloadIsObject(token)) throw new AuthError("malformed", "the payload is not a JSON object");
      throw fromJsonwebtoken(err);
    }
  }

  async function verifyWithJose(token: string, key: ResolvedKey, algorithm: string): Promise<jwt.JwtPayload> {
    try {
      const { payload } = await jwtVerify(token, key.key, {
        algorithms: [algorithm],
        clockTolerance: config.clockToleranceSeconds,
        ...(config.issuer ? { issuer: config.issuer } : {}),
        ...(audience ? { audience } : {}),
      });
      return payload;
    } catch (err) {
      throw fromJose(err);
    }
  }

  const verifier: TokenVerifier = { verify, reloadKeys: () => keyring.reload(), close: () => keyring.close() };
  if (config.key.kind === "secret") {
    const secret = config.key.secret;
    const algorithm = (config.algorithms[0] ?? "HS256") as jwt.Algorithm;
    verifier.sign = (claims, expiresInSeconds) =>
      jwt.sign(claims, secret, {
        algorithm,
        expiresIn: expiresInSeconds,
        ...(config.issuer ? { issuer: config.issuer } : {}),
        ...(config.audience?.[0] ? { audience: config.audience[0] } : {}),
      });
  }
  return verifier;
}

type TokenHeader = { alg: unknown; kid: unknown };

/** How many distinct token headers are kept decoded, and the longest one that is. */
const HEADER_CACHE_ENTRIES = 64;
const HEADER_CACHE_MAX_CHARS = 512;

/**
 * Reads the `alg` and `kid` of a token's header. An issuer signs every token with the same header, so
 * each distinct header text is decoded once and kept: a connect storm decodes one header, not one per
 * socket. The cache is bounded and emptied when full, so tokens with ever-new headers cost a decode
 * each and hold no memory; a header that fails its checks is never kept.
 */
function createHeaderReader(): (token: string) => TokenHeader {
  const decoded = new Map<string, TokenHeader>();
  return (token) => {
    const firstDot = token.indexOf(".");
    const secondDot = firstDot < 0 ? -1 : token.indexOf(".", firstDot + 1);
    if (secondDot < 0 || token.indexOf(".", secondDot + 1) >= 0) throw notAJwt();
    const text = token.slice(0, firstDot);
    const known = decoded.get(text);
    if (known) return known;
    const header = decodedHeader(text);
    if (text.length <= HEADER_CACHE_MAX_CHARS) {
      if (decoded.size >= HEADER_CACHE_ENTRIES) decoded.clear();
      // Kept as a copy: a slice of the token would keep the whole token, a credential, in memory.
      decoded.set(Buffer.from(text, "latin1").toString("latin1"), header);
    }
    return header;
  };
}

/**
 * The token's header, read before anything else to choose the algorithm and key; the signature and
 * payload are checked by the verification that follows, which decodes the whole token once.
 * RFC 7515 §4.1.11: a `crit` header names extensions the verifier must understand; this server
 * implements none, so any `crit` refuses the token.
 */
function decodedHeader(text: string): TokenHeader {
  let header: unknown = null;
  if (BASE64URL.test(text)) {
    try {
      header = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
    } catch {
      header = null;
    }
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw notAJwt();
  if ("crit" in header) throw new AuthError("malformed", "the crit header names extensions this server does not implement");
  return Object.freeze({ alg: "alg" in header ? header.alg : undefined, kid: "kid" in header ? header.kid : undefined });
}

function notAJwt(): AuthError {
  return new AuthError("malformed", "not a JWT: three base64url parts with a JSON header");
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Whether a token's payload is a JSON object; read only when verification failed, to say why. */
function payloadIsObject(token: string): boolean {
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"));
    return typeof payload === "object" && payload !== null && !Array.isArray(payload);
  } catch {
    return false;
  }
}

/** When the token expires (ms since the epoch), once JWT_REQUIRE_EXP and JWT_MAX_TTL_SECONDS are satisfied. */
function lifetimeOf(claims: jwt.JwtPayload, config: AuthConfig): number | null {
  const exp = typeof claims.exp === "number" ? claims.exp : null;
  if (exp === null) {
    if (config.requireExp || config.maxTtlSeconds !== null)
      throw new AuthError("claims_invalid", "the token has no exp, and this server requires one");
    return null;
  }
  if (config.maxTtlSeconds !== null) {
    const from = typeof claims.iat === "number" ? claims.iat : Math.floor(Date.now() / 1000);
    if (exp - from > config.maxTtlSeconds) {
      throw new AuthError("claims_invalid", `the token lives ${exp - from} s, longer than JWT_MAX_TTL_SECONDS (${config.maxTtlSeconds} s)`);
    }
  }
  // The same leeway verification gave: a token accepted within it is not cut off at once.
  return (exp + config.clockToleranceSeconds) * 1000;
}

const NO_GRANTS: Grants = Object.freeze({ rooms: Object.freeze([]), publish: Object.freeze([]), services: Object.freeze([]) });

/** The `rooms`, `publish` and `services` claims: lists of patterns (`*`, `{user}` and `{site}` as in SUBSCRIBE_ROOMS). */
function grantsOf(claims: jwt.JwtPayload): Grants {
  // Most tokens grant nothing more: they share one object rather than each holding two empty lists.
  if (claims.rooms == null && claims.publish == null && claims.services == null) return NO_GRANTS;
  const patterns = (name: keyof Grants): readonly string[] => {
    const value: unknown = claims[name];
    if (value === undefined || value === null) return NO_GRANTS.rooms;
    const list = typeof value === "string" ? [value] : value;
    if (
      !Array.isArray(list) ||
      list.length > 100 ||
      !list.every((item) => typeof item === "string" && item.length > 0 && item.length <= 200)
    ) {
      throw new AuthError("claims_invalid", `the ${name} claim must be a list of at most 100 patterns`);
    }
    return list;
  };
  return { rooms: patterns("rooms"), publish: patterns("publish"), services: patterns("services") };
}

function identityOf(claims: jwt.JwtPayload, siteClaim: string): Identity {
  let user: string;
  try {
    user = userIdOf(claims.sub);
  } catch {
    throw new AuthError("claims_invalid", "sub is missing or is not a user id");
  }
  const rawSite: unknown = claims[siteClaim];
  if (rawSite === undefined || rawSite === null) return { user, site: null };
  const site = normaliseSiteHost(rawSite);
  if (site === null) throw new AuthError("claims_invalid", `${siteClaim} is not a host name`);
  return { user, site };
}

function fromJsonwebtoken(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof jwt.TokenExpiredError) return new AuthError("expired", err.message);
  if (err instanceof jwt.NotBeforeError) return new AuthError("not_yet_valid", err.message);
  if (err instanceof jwt.JsonWebTokenError) {
    const message = err.message;
    if (message === "invalid signature") return new AuthError("bad_signature", message);
    if (message === "jwt signature is required") return new AuthError("bad_signature", "the token has no signature");
    if (message.startsWith("jwt issuer invalid") || message.startsWith("jwt audience invalid"))
      return new AuthError("claims_invalid", message);
    if (message === "invalid algorithm") return new AuthError("algorithm_not_allowed", message);
    return new AuthError("malformed", message);
  }
  return new AuthError("malformed", err instanceof Error ? err.message : String(err));
}

function fromJose(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof joseErrors.JWTExpired) return new AuthError("expired", err.message);
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return new AuthError(err.claim === "nbf" ? "not_yet_valid" : "claims_invalid", err.message);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new AuthError("bad_signature", "invalid signature");
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new AuthError("algorithm_not_allowed", err.message);
  return new AuthError("malformed", err instanceof Error ? err.message : String(err));
}

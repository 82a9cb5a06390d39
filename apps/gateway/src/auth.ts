import type { Identity } from "@switchboard/protocol";
import { normaliseSiteHost, userIdOf } from "@switchboard/protocol";
import type { FastifyBaseLogger } from "fastify";
import { errors as joseErrors, jwtVerify } from "jose";
import { type Algorithm, TOKEN_ERROR_CODES, createSigner, createVerifier } from "fast-jwt";
import type { AuthConfig } from "./config.js";
import { AuthError, type AuthFailure } from "./errors.js";
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

/** A token's payload, a JSON object: checked claim by claim where it is read. */
type Claims = Record<string, unknown>;

export interface TokenVerifier {
  /** Resolves to who the token names and until when, or rejects with an AuthError. */
  verify(token: unknown): Promise<Session>;
  /**
   * The same, answered at once where it can be: a Session, or a thrown AuthError, when the key is at
   * hand and fast-jwt verifies the algorithm; a promise when a key must be fetched (JWT_JWKS_URL) or
   * jose verifies it (EdDSA). A handshake then costs no promise and no wait for a later microtask.
   */
  verifyNow(token: unknown): Session | Promise<Session>;
  /** Signs a short-lived token with the node's own secret; only where the node holds one. */
  sign?(claims: { sub: string; site?: string }, expiresInSeconds: number): string;
  /** Re-reads the key file (JWT_KEYS=@file) or refetches JWT_JWKS_URL; says what happened. */
  reloadKeys(): string;
  close(): void;
}

// fast-jwt verifies the other algorithms; these go to jose, which also knows EdDSA's newer name Ed25519.
const JOSE_ONLY_ALGORITHMS: ReadonlySet<string> = new Set(["EdDSA", "Ed25519"]);

export function createTokenVerifier(config: AuthConfig, deps: { logger: FastifyBaseLogger; isRevoked?: RevocationCheck }): TokenVerifier {
  const keyring: Keyring = createKeyring(config.key, deps);
  const allowed: ReadonlySet<string> = new Set(config.algorithms);
  const audience = config.audience ? ([...config.audience] as [string, ...string[]]) : undefined;
  const headerOf = createHeaderReader();

  function verifyNow(token: unknown): Session | Promise<Session> {
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
    return found instanceof Promise ? found.then((key) => verifyWith(token, key, algorithm)) : verifyWith(token, found, algorithm);
  }

  function verifyWith(token: string, key: ResolvedKey, algorithm: string): Session | Promise<Session> {
    if (!key.algorithms.includes(algorithm))
      throw new AuthError("algorithm_not_allowed", `algorithm ${algorithm} does not fit the key that verifies this token`);
    return JOSE_ONLY_ALGORITHMS.has(algorithm)
      ? verifyWithJose(token, key, algorithm).then(sessionOf)
      : sessionOf(verifyWithFastJwt(token, key, algorithm));
  }

  /** The session a verified token's claims give, or an AuthError for claims this server refuses. */
  function sessionOf(claims: Claims): Session {
    const identity = identityOf(claims, config.siteClaim);
    const expiresAt = lifetimeOf(claims, config);
    const iat = typeof claims.iat === "number" ? claims.iat : undefined;
    const jti = typeof claims.jti === "string" && claims.jti.length > 0 ? claims.jti : undefined;
    const revoked = deps.isRevoked?.(identity.user, iat, jti) ?? null;
    if (revoked !== null) throw new AuthError("revoked", revoked);
    return { identity, expiresAt, grants: grantsOf(claims), ...(jti !== undefined ? { jti } : {}) };
  }

  // Async, so that whatever verifyNow throws reaches the caller as a rejection.
  async function verify(token: unknown): Promise<Session> {
    return verifyNow(token);
  }

  /**
   * fast-jwt's verifier for one key and algorithm, made on first use and kept with the key (a key of
   * JWT_JWKS_URL that rotates out is dropped with it): a verifier prepares its key and its claim
   * checks once, when it is made, so a handshake only runs them.
   */
  const verifiers = new WeakMap<ResolvedKey, Map<string, (token: string) => Claims>>();
  function verifierFor(key: ResolvedKey, algorithm: string): (token: string) => Claims {
    let byAlgorithm = verifiers.get(key);
    if (byAlgorithm === undefined) {
      byAlgorithm = new Map();
      verifiers.set(key, byAlgorithm);
    }
    let verifyToken = byAlgorithm.get(algorithm);
    if (verifyToken === undefined) {
      verifyToken = createVerifier({
        key: key.key.type === "secret" ? key.key.export() : String(key.key.export({ type: "spki", format: "pem" })),
        algorithms: [algorithm as Algorithm],
        clockTolerance: config.clockToleranceSeconds * 1000,
        cache: false,
        // fast-jwt checks iss and aud only when present: required here, a token without them is refused.
        ...(config.issuer ? { allowedIss: config.issuer } : {}),
        ...(audience ? { allowedAud: audience } : {}),
        requiredClaims: [...(config.issuer ? ["iss"] : []), ...(audience ? ["aud"] : [])],
      }) as (token: string) => Claims;
      byAlgorithm.set(algorithm, verifyToken);
    }
    return verifyToken;
  }

  // Only an algorithm of the accepted list reaches this (checked in verifyNow).
  function verifyWithFastJwt(token: string, key: ResolvedKey, algorithm: string): Claims {
    try {
      return verifierFor(key, algorithm)(token);
    } catch (err) {
      throw fromFastJwt(err);
    }
  }

  async function verifyWithJose(token: string, key: ResolvedKey, algorithm: string): Promise<Claims> {
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

  const verifier: TokenVerifier = { verify, verifyNow, reloadKeys: () => keyring.reload(), close: () => keyring.close() };
  if (config.key.kind === "secret") {
    // Made once: only the expiry differs from one token to the next.
    const signer = createSigner({
      key: config.key.secret,
      algorithm: (config.algorithms[0] ?? "HS256") as Algorithm,
      ...(config.issuer ? { iss: config.issuer } : {}),
      ...(config.audience?.[0] ? { aud: config.audience[0] } : {}),
    });
    verifier.sign = (claims, expiresInSeconds) => signer({ ...claims, exp: Math.floor(Date.now() / 1000) + expiresInSeconds });
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

/** When the token expires (ms since the epoch), once JWT_REQUIRE_EXP and JWT_MAX_TTL_SECONDS are satisfied. */
function lifetimeOf(claims: Claims, config: AuthConfig): number | null {
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
function grantsOf(claims: Claims): Grants {
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

function identityOf(claims: Claims, siteClaim: string): Identity {
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

/** fast-jwt's error codes, each to what the client is told. */
const FAST_JWT_FAILURES: Readonly<Record<string, AuthFailure>> = {
  [TOKEN_ERROR_CODES.expired]: "expired",
  [TOKEN_ERROR_CODES.inactive]: "not_yet_valid",
  [TOKEN_ERROR_CODES.invalidSignature]: "bad_signature",
  [TOKEN_ERROR_CODES.missingSignature]: "bad_signature",
  [TOKEN_ERROR_CODES.verifyError]: "bad_signature",
  [TOKEN_ERROR_CODES.invalidAlgorithm]: "algorithm_not_allowed",
  [TOKEN_ERROR_CODES.invalidClaimValue]: "claims_invalid",
  [TOKEN_ERROR_CODES.missingRequiredClaim]: "claims_invalid",
};

function fromFastJwt(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  const message = err instanceof Error ? err.message : String(err);
  // A claim of the wrong type: a date claim that is no number makes the token malformed, as an
  // issuer that writes one is broken; an iss or aud of the wrong type is a claim this node refuses.
  if (code === TOKEN_ERROR_CODES.invalidClaimType)
    return new AuthError(/^The (exp|nbf) claim/.test(message) ? "malformed" : "claims_invalid", message);
  return new AuthError(FAST_JWT_FAILURES[code] ?? "malformed", message);
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

import { type KeyObject, createPublicKey, createSecretKey } from "node:crypto";
import type { Identity } from "@switchboard/protocol";
import { normaliseSiteHost, userIdOf } from "@switchboard/protocol";
import jwt from "jsonwebtoken";
import type { AuthConfig } from "./config.js";

/** Why a token was refused, in the auth module's own terms; the transport maps these to wire codes. */
export type AuthFailure =
  | "missing"
  | "malformed"
  | "too_large"
  | "bad_signature"
  | "expired"
  | "not_yet_valid"
  | "algorithm_not_allowed"
  | "claims_invalid";

export class AuthError extends Error {
  constructor(
    readonly failure: AuthFailure,
    detail: string,
  ) {
    super(detail);
    this.name = "AuthError";
  }
}

/** What a verified token grants: who the socket is, and until when. */
export interface Session {
  identity: Identity;
  /** When the token expires (ms since the epoch); null for a token without `exp`. */
  expiresAt: number | null;
}

export interface TokenVerifier {
  /** Returns who the token names and until when, or throws an AuthError. */
  verify(token: unknown): Session;
  /** Signs a short-lived token with the node's own secret; only where the node holds one. */
  sign?(claims: { sub: string; site?: string }, expiresInSeconds: number): string;
}

export function createTokenVerifier(config: AuthConfig): TokenVerifier {
  // A key object made once: handed a string, jsonwebtoken tries to parse it as a public key on
  // every verification before falling back to a secret, which costs more than the HMAC itself.
  const key: KeyObject = config.key.kind === "secret" ? createSecretKey(Buffer.from(config.key.secret)) : createPublicKey(config.key.pem);
  const options: jwt.VerifyOptions & { complete: false } = {
    algorithms: [...config.algorithms],
    complete: false,
    ...(config.issuer ? { issuer: config.issuer } : {}),
    ...(config.audience ? { audience: [...config.audience] as [string, ...string[]] } : {}),
  };

  function verify(token: unknown): Session {
    if (token === undefined || token === null || token === "") throw new AuthError("missing", "no token");
    if (typeof token !== "string") throw new AuthError("malformed", "the token is not a string");
    // Checked before anything is decoded, so an oversized token costs nothing.
    if (token.length > config.maxTokenBytes) throw new AuthError("too_large", `the token is longer than JWT_MAX_BYTES (${config.maxTokenBytes} bytes)`);
    const header = decodedHeader(token);
    // The algorithm is checked against the pinned list before any key is used, so `none` and
    // an HS token presented to an RS key never reach signature verification.
    const algorithm = header.alg;
    if (!(config.algorithms as readonly string[]).includes(algorithm)) {
      throw new AuthError("algorithm_not_allowed", `algorithm ${typeof algorithm === "string" ? algorithm.slice(0, 20) : "(none)"} is not accepted`);
    }
    let claims: jwt.JwtPayload;
    try {
      const verified = jwt.verify(token, key, options);
      if (typeof verified === "string") throw new AuthError("malformed", "the payload is not a JSON object");
      claims = verified;
    } catch (err) {
      throw toAuthError(err);
    }
    return { identity: identityOf(claims, config.siteClaim), expiresAt: lifetimeOf(claims, config) };
  }

  const verifier: TokenVerifier = { verify };
  if (config.key.kind === "secret") {
    const algorithm = config.algorithms[0] ?? "HS256";
    verifier.sign = (claims, expiresInSeconds) =>
      jwt.sign(claims, key, {
        algorithm,
        expiresIn: expiresInSeconds,
        ...(config.issuer ? { issuer: config.issuer } : {}),
        ...(config.audience?.[0] ? { audience: config.audience[0] } : {}),
      });
  }
  return verifier;
}

/**
 * The token's header, once the token has the shape of a signed JWT with a JSON payload.
 * RFC 7515 §4.1.11: a `crit` header names extensions the verifier must understand; this server
 * implements none, so any `crit` refuses the token.
 */
function decodedHeader(token: string): jwt.JwtHeader {
  let decoded: jwt.Jwt | null;
  try {
    decoded = jwt.decode(token, { complete: true });
  } catch {
    // jws throws on a payload that claims to be JSON (typ: JWT) and is not.
    decoded = null;
  }
  if (!decoded || typeof decoded.payload === "string" || typeof decoded.payload !== "object" || decoded.payload === null) {
    throw new AuthError("malformed", "not a JWT with a JSON payload");
  }
  const header = decoded.header as jwt.JwtHeader & { crit?: unknown };
  if (header.crit !== undefined) throw new AuthError("malformed", "the crit header names extensions this server does not implement");
  return header;
}

/** When the token expires (ms since the epoch), once JWT_REQUIRE_EXP and JWT_MAX_TTL_SECONDS are satisfied. */
function lifetimeOf(claims: jwt.JwtPayload, config: AuthConfig): number | null {
  const exp = typeof claims.exp === "number" ? claims.exp : null;
  if (exp === null) {
    if (config.requireExp || config.maxTtlSeconds !== null) throw new AuthError("claims_invalid", "the token has no exp, and this server requires one");
    return null;
  }
  if (config.maxTtlSeconds !== null) {
    const from = typeof claims.iat === "number" ? claims.iat : Math.floor(Date.now() / 1000);
    if (exp - from > config.maxTtlSeconds) {
      throw new AuthError("claims_invalid", `the token lives ${exp - from} s, longer than JWT_MAX_TTL_SECONDS (${config.maxTtlSeconds} s)`);
    }
  }
  return exp * 1000;
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

function toAuthError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof jwt.TokenExpiredError) return new AuthError("expired", err.message);
  if (err instanceof jwt.NotBeforeError) return new AuthError("not_yet_valid", err.message);
  if (err instanceof jwt.JsonWebTokenError) {
    const message = err.message;
    if (message === "invalid signature") return new AuthError("bad_signature", message);
    if (message.startsWith("jwt issuer invalid") || message.startsWith("jwt audience invalid")) return new AuthError("claims_invalid", message);
    if (message === "jwt signature is required") return new AuthError("bad_signature", "the token has no signature");
    if (message === "invalid algorithm") return new AuthError("algorithm_not_allowed", message);
    return new AuthError("malformed", message);
  }
  return new AuthError("malformed", err instanceof Error ? err.message : String(err));
}

import type { Identity } from "@switchboard/protocol";
import { normaliseSiteHost, userIdOf } from "@switchboard/protocol";
import jwt from "jsonwebtoken";
import type { AuthConfig } from "./config.js";

/** Why a token was refused, in the auth module's own terms; the transport maps these to wire codes. */
export type AuthFailure =
  | "missing"
  | "malformed"
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
  const key = config.key.kind === "secret" ? config.key.secret : config.key.pem;
  const options: jwt.VerifyOptions & { complete: false } = {
    algorithms: [...config.algorithms],
    complete: false,
    ...(config.issuer ? { issuer: config.issuer } : {}),
    ...(config.audience ? { audience: [...config.audience] as [string, ...string[]] } : {}),
  };

  function verify(token: unknown): Session {
    if (token === undefined || token === null || token === "") throw new AuthError("missing", "no token");
    if (typeof token !== "string") throw new AuthError("malformed", "the token is not a string");
    // The algorithm is checked against the pinned list before any key is used, so `none` and
    // an HS token presented to an RS key never reach signature verification.
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === "string") throw new AuthError("malformed", "not a JWT with a JSON payload");
    const algorithm = decoded.header.alg;
    if (!(config.algorithms as readonly string[]).includes(algorithm)) {
      throw new AuthError("algorithm_not_allowed", `algorithm ${algorithm} is not accepted`);
    }
    let claims: jwt.JwtPayload;
    try {
      const verified = jwt.verify(token, key, options);
      if (typeof verified === "string") throw new AuthError("malformed", "the payload is not a JSON object");
      claims = verified;
    } catch (err) {
      throw toAuthError(err);
    }
    return { identity: identityOf(claims, config.siteClaim), expiresAt: typeof claims.exp === "number" ? claims.exp * 1000 : null };
  }

  const verifier: TokenVerifier = { verify };
  if (config.key.kind === "secret") {
    const secret = config.key.secret;
    const algorithm = config.algorithms[0] ?? "HS256";
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
    if (message === "invalid algorithm" || message === "jwt signature is required") return new AuthError("algorithm_not_allowed", message);
    return new AuthError("malformed", message);
  }
  return new AuthError("malformed", err instanceof Error ? err.message : String(err));
}

import { type ErrorBody, type ErrorCode, SwitchboardError, errorBody } from "@switchboard/protocol";

/** Why a token was refused, in the auth module's own terms; the transport maps these to wire codes. */
export type AuthFailure =
  | "missing"
  | "malformed"
  | "too_large"
  | "bad_signature"
  | "expired"
  | "not_yet_valid"
  | "algorithm_not_allowed"
  | "claims_invalid"
  | "revoked"
  | "keys_unavailable";

export class AuthError extends Error {
  constructor(
    readonly failure: AuthFailure,
    detail: string,
  ) {
    super(detail);
    this.name = "AuthError";
  }
}

const AUTH_CODES: Record<AuthFailure, ErrorCode> = {
  missing: "token_missing",
  malformed: "token_malformed",
  too_large: "token_malformed",
  bad_signature: "token_invalid_signature",
  expired: "token_expired",
  not_yet_valid: "token_not_yet_valid",
  algorithm_not_allowed: "token_algorithm_not_allowed",
  claims_invalid: "token_claims_invalid",
  revoked: "token_revoked",
  keys_unavailable: "auth_unavailable",
};

/**
 * Maps any failure to the `{ code, message }` a client sees. Auth failures keep their detail
 * (it names the claim or algorithm at fault); anything unknown becomes `internal_error`.
 */
export function toWireError(err: unknown): ErrorBody {
  if (err instanceof AuthError) return detailed(AUTH_CODES[err.failure], err.message);
  if (err instanceof SwitchboardError) return err.toJSON();
  return errorBody("internal_error");
}

/** The registry message for `code`, followed by what exactly went wrong. */
export function detailed(code: ErrorCode, detail: string): ErrorBody {
  return errorBody(code, `${errorBody(code).message.replace(/\.$/, "")}: ${detail}.`);
}

// The HTTP status of each code an HTTP route can answer with; any other code is a 400.
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  api_key_invalid: 401,
  not_found: 404,
  presence_off: 404,
  service_unknown: 404,
  payload_too_large: 413,
  frame_too_large: 413,
  redis_unavailable: 503,
  publish_timeout: 504,
  internal_error: 500,
};

export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 400;
}

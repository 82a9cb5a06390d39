import { type ErrorBody, type ErrorCode, SwitchboardError, errorBody, isRetryable } from "@switchboard/protocol";
import type { z } from "zod";

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
  return errorBody(code, `${errorBody(code).message.replace(/\.$/, "")}: ${detail.replace(/\.$/, "")}.`);
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
  route_limit: 409,
  revocation_limit: 409,
  internal_error: 500,
};

/** Seconds an HTTP client is asked to wait (Retry-After) before trying again a refusal that may pass. */
const RETRY_AFTER_SECONDS = 1;

/** The Retry-After header for a refusal that may pass later (`retry` in the error registry); none otherwise. */
export function retryAfter(code: ErrorCode): Record<string, string> {
  return isRetryable(code) ? { "Retry-After": String(RETRY_AFTER_SECONDS) } : {};
}

export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 400;
}

/** `<field>: <what is wrong>` for the first issue of a failed check; `whole` names the value itself. */
export function describeIssue(error: z.ZodError, whole: string): string {
  const issue = error.issues[0];
  if (issue === undefined) return `${whole}: invalid`;
  const { path, message } = specific(issue);
  return `${path.length > 0 ? path.map(String).join(".") : whole}: ${message}`;
}

type Issue = z.core.$ZodIssue;

/**
 * A union's own message is only "Invalid input" (`{ room: 5 }` against `{ room } | room`): this names
 * what the branch that got furthest wanted, or, when every branch failed on the value's type, every
 * type that would have done.
 */
function specific(issue: Issue): { path: PropertyKey[]; message: string } {
  if (issue.code !== "invalid_union") return { path: issue.path, message: issue.message };
  const firsts = issue.errors.map((branch) => branch[0]).filter((first): first is Issue => first !== undefined);
  const furthest = firsts.reduce<Issue | undefined>(
    (best, first) => (best === undefined || first.path.length > best.path.length ? first : best),
    undefined,
  );
  if (furthest === undefined) return { path: issue.path, message: issue.message };
  if (furthest.path.length > 0) {
    const inner = specific(furthest);
    return { path: [...issue.path, ...inner.path], message: inner.message };
  }
  const expected = firsts.flatMap((first) => (first.code === "invalid_type" ? [first.expected] : []));
  const received = /received (\w+)/.exec(furthest.message)?.[1];
  if (expected.length !== firsts.length || received === undefined) return { path: issue.path, message: furthest.message };
  return { path: issue.path, message: `expected ${[...new Set(expected)].join(" or ")}, received ${received}` };
}

import { expect } from "vitest";
import { AuthError } from "../src/auth.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { toWireError } from "../src/errors.js";

/** The wire code a token verification is refused with; fails the test if it is not refused. */
export async function codeOf(verify: () => Promise<unknown>): Promise<string> {
  try {
    await verify();
  } catch (err) {
    expect(err).toBeInstanceOf(AuthError);
    return toWireError(err).code;
  }
  throw new Error("expected a refusal");
}

/** The ConfigError an environment is refused with; fails the test if it is accepted. */
export function configFailure(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * Another build of the gateway beside ours (`--variant <checkout>`): a third cluster, started from
 * another checkout of this repository, takes its turns with the others on the layouts taking turns,
 * so that two builds are compared batch by batch in the same minutes, as the two stacks are.
 */

/** Appended to the scenario a variant cluster's figures go under (before `, burst`). */
export const VARIANT_BUILD = ", variant build";
/** The environment variable that has a server node load the gateway from a checkout. */
export const VARIANT_CHECKOUT_ENV = "BENCH_GATEWAY_CHECKOUT";
/** Where a checkout's built gateway is, from its root. */
const GATEWAY_ENTRY = ["apps", "gateway", "dist", "index.js"];

/** The built gateway's entry in `checkout`. */
export function gatewayEntry(checkout: string): string {
  return join(checkout, ...GATEWAY_ENTRY);
}

/**
 * The checkout given to --variant as an absolute path, or why it cannot be used. A relative path is
 * taken from `base`: where the command was typed, as npm runs the suite from its own directory.
 */
export function variantCheckout(given: string, base: string): { checkout: string } | { problem: string } {
  const checkout = resolve(base, given);
  if (!existsSync(gatewayEntry(checkout)))
    return {
      problem: `--variant: ${checkout} has no built gateway (${GATEWAY_ENTRY.join("/")}): run npm ci and npm run build there first`,
    };
  return { checkout };
}

/** The commit a checkout is at, `-dirty` when it has uncommitted changes; null outside git. */
export function describeCheckout(checkout: string): string | null {
  try {
    return execFileSync("git", ["-C", checkout, "describe", "--always", "--dirty"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return null;
  }
}

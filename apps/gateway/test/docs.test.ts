import { existsSync, readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type Config, loadConfig } from "../src/config.js";

const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
const security = readFileSync(new URL("../../../docs/security.md", import.meta.url), "utf8");
const defaults = loadConfig({ JWT_SECRET: "d".repeat(40) });

// Each documented variable and where loadConfig puts its default.
const DOCUMENTED: Record<string, (config: Readonly<Config>) => unknown> = {
  CLIENT_MAX_MESSAGE_BYTES: (config) => config.limits.clientMaxMessageBytes,
  JWT_MAX_BYTES: (config) => config.auth.maxTokenBytes,
  PAYLOAD_MAX_DEPTH: (config) => config.limits.payloadMaxDepth,
  CLIENT_EVENT_RATE: (config) => config.limits.clientEventRate,
  CLIENT_MAX_ROOMS: (config) => config.limits.clientMaxRooms,
  CLIENT_MAX_BUFFER_BYTES: (config) => config.limits.clientMaxBufferBytes,
  IP_CONNECTIONS_PER_SECOND: (config) => config.limits.ipConnectionsPerSecond,
  IP_MAX_CONNECTIONS: (config) => config.limits.ipMaxConnections,
  MAX_CONNECTIONS: (config) => config.limits.maxConnections,
  USER_MAX_SOCKETS: (config) => config.limits.userMaxSockets,
  FRAME_MAX_BYTES: (config) => config.limits.frameMaxBytes,
  API_MAX_BODY_BYTES: (config) => config.limits.httpMaxBodyBytes,
  REDIS_MAX_PENDING_COMMANDS: (config) => config.limits.redisMaxPendingCommands,
  EVENT_ROUTES_MAX: (config) => config.eventRoutesMax,
  REVOCATIONS_MAX: (config) => config.revocationsMax,
  HTTP_HEADERS_TIMEOUT_MS: (config) => config.http.headersTimeoutMs,
  HTTP_REQUEST_TIMEOUT_MS: (config) => config.http.requestTimeoutMs,
  AUTH_TIMEOUT_MS: (config) => config.auth.timeoutMs,
  JWT_CLOCK_TOLERANCE_SECONDS: (config) => config.auth.clockToleranceSeconds,
  DRAIN_TIMEOUT_MS: (config) => config.drainTimeoutMs,
};

function documentedDefault(text: string, variable: string): string | undefined {
  return new RegExp(`^\\| \`${variable}\` \\| \`([^\`]+)\` \\|`, "m").exec(text)?.[1];
}

describe("documented defaults", () => {
  it.each(Object.keys(DOCUMENTED))("README.md and docs/security.md give the default %s applies", (variable) => {
    const actual = String(DOCUMENTED[variable]?.(defaults));
    expect(documentedDefault(readme, variable), "README.md").toBe(actual);
    expect(documentedDefault(security, variable), "docs/security.md").toBe(actual);
  });
});

describe("links between the documents", () => {
  const root = new URL("../../../", import.meta.url);
  const documents = [
    "README.md",
    ...readdirSync(new URL("docs/", root))
      .filter((name) => name.endsWith(".md"))
      .map((name) => `docs/${name}`),
  ];

  /** GitHub's anchor for a heading: lower case, punctuation other than hyphens dropped, spaces as hyphens. */
  const anchorOf = (heading: string) =>
    heading
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, "")
      .replace(/ /g, "-");
  const anchorsIn = (text: string) => new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchorOf(match[1] ?? "")));

  it.each(documents)("every relative link in %s names a file that exists, and a heading in it", (document) => {
    const from = new URL(document, root);
    const text = readFileSync(from, "utf8");
    const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] ?? "").filter((target) => !/^[a-z]+:/.test(target));
    for (const link of links) {
      const [path = "", anchor] = link.split("#");
      const target = path === "" ? from : new URL(path, from);
      expect(existsSync(target), `${document}: ${link}`).toBe(true);
      if (anchor !== undefined) expect(anchorsIn(readFileSync(target, "utf8")), `${document}: ${link}`).toContain(anchor);
    }
  });
});

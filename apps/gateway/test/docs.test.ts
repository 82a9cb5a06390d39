import { readFileSync } from "node:fs";
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
  HTTP_HEADERS_TIMEOUT_MS: (config) => config.http.headersTimeoutMs,
  HTTP_REQUEST_TIMEOUT_MS: (config) => config.http.requestTimeoutMs,
  AUTH_TIMEOUT_MS: (config) => config.auth.timeoutMs,
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

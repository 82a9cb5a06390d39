import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { configFailure } from "./refusals.js";

const SECRET = "s".repeat(40);
const rsaPem = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();
const ecPem = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey.export({ type: "spki", format: "pem" }).toString();

describe("config", () => {
  it("applies the documented defaults", () => {
    const config = loadConfig({ JWT_SECRET: SECRET });
    expect(config).toMatchObject({ port: 3000, host: "0.0.0.0", redisUrl: null, corsOrigins: null, devTools: false, logLevel: "info" });
    expect(config.auth).toMatchObject({
      algorithms: ["HS256", "HS384", "HS512"],
      siteClaim: "site",
      timeoutMs: 5000,
      refreshNoticeMs: 60_000,
      issuer: null,
      audience: null,
    });
    expect(config.subscribeRooms).toEqual([]);
    expect(config.nodeId).toMatch(/^node-[0-9a-f]{6}$/);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("reads every variable", () => {
    const config = loadConfig({
      PORT: "4001",
      HOST: "127.0.0.1",
      NODE_ID: "edge-1",
      REDIS_URL: "redis://127.0.0.1:6380",
      JWT_SECRET: SECRET,
      JWT_ALGORITHMS: "HS512",
      JWT_ISSUER: "https://auth.example.com",
      JWT_AUDIENCE: "switchboard, chat",
      JWT_SITE_CLAIM: "tenant",
      AUTH_TIMEOUT_MS: "1500",
      CORS_ORIGINS: "https://app.example.com,http://localhost:5173",
    });
    expect(config).toMatchObject({
      port: 4001,
      host: "127.0.0.1",
      nodeId: "edge-1",
      redisUrl: "redis://127.0.0.1:6380",
      corsOrigins: ["https://app.example.com", "http://localhost:5173"],
    });
    expect(config.auth).toMatchObject({
      algorithms: ["HS512"],
      issuer: "https://auth.example.com",
      audience: ["switchboard", "chat"],
      siteClaim: "tenant",
      timeoutMs: 1500,
    });
  });

  it("generates a development secret without a key outside production, and turns dev tools on", () => {
    const config = loadConfig({});
    expect(config.auth.key).toMatchObject({ kind: "secret", generated: true });
    expect(config.devTools).toBe(true);
  });

  it("refuses to start in production without a key", () => {
    expect(configFailure({ NODE_ENV: "production" }).variable).toBe("JWT_SECRET");
  });

  it("derives algorithms from a public key and refuses HS algorithms with it", () => {
    expect(loadConfig({ JWT_PUBLIC_KEY: rsaPem }).auth.algorithms).toEqual(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]);
    expect(loadConfig({ JWT_PUBLIC_KEY: ecPem.replace(/\n/g, "\\n") }).auth.algorithms).toEqual(["ES384"]);
    expect(configFailure({ JWT_PUBLIC_KEY: rsaPem, JWT_ALGORITHMS: "HS256" }).variable).toBe("JWT_ALGORITHMS");
    expect(configFailure({ JWT_SECRET: SECRET, JWT_ALGORITHMS: "RS256" }).variable).toBe("JWT_ALGORITHMS");
    expect(configFailure({ JWT_SECRET: SECRET, JWT_ALGORITHMS: "none" }).variable).toBe("JWT_ALGORITHMS");
  });

  it.each([
    ["PORT", { PORT: "eighty" }],
    ["PORT", { PORT: "70000" }],
    ["REDIS_URL", { REDIS_URL: "http://localhost" }],
    ["AUTH_TIMEOUT_MS", { AUTH_TIMEOUT_MS: "-5" }],
    ["JWT_PUBLIC_KEY", { JWT_PUBLIC_KEY: "not a pem" }],
    ["JWT_PUBLIC_KEY", { JWT_PUBLIC_KEY: rsaPem, JWT_SECRET: SECRET }],
    ["CORS_ORIGINS", { CORS_ORIGINS: "app.example.com" }],
    ["LOG_LEVEL", { LOG_LEVEL: "loud" }],
    ["JWT_SITE_CLAIM", { JWT_SITE_CLAIM: "sub" }],
    ["SUBSCRIBE_ROOMS", { SUBSCRIBE_ROOMS: "topic(*),user(*)" }],
    ["TOKEN_REFRESH_NOTICE_MS", { TOKEN_REFRESH_NOTICE_MS: "soon" }],
    ["DEV_TOKENS", { DEV_TOKENS: "1", JWT_SECRET: "", JWT_PUBLIC_KEY: rsaPem }],
    ["DEV_TOKENS", { DEV_TOKENS: "1", NODE_ENV: "production", JWT_SECRET: SECRET }],
  ])("names %s when its value is unusable", (variable, env) => {
    const error = configFailure({ JWT_SECRET: SECRET, ...env });
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
    expect(error.code).toBe("config_invalid");
  });

  it("warns about a short secret without refusing it", () => {
    expect(loadConfig({ JWT_SECRET: "short" }).warnings).toEqual([expect.stringContaining("JWT_SECRET")]);
  });
});

describe("config of limits and operations", () => {
  const LIMIT_VARIABLES = [
    "JWT_MAX_BYTES",
    "CLIENT_MAX_MESSAGE_BYTES",
    "PAYLOAD_MAX_DEPTH",
    "CLIENT_EVENT_RATE",
    "CLIENT_MAX_ROOMS",
    "CLIENT_MAX_BUFFER_BYTES",
    "IP_CONNECTIONS_PER_SECOND",
    "IP_MAX_CONNECTIONS",
    "MAX_CONNECTIONS",
    "USER_MAX_SOCKETS",
    "FRAME_MAX_BYTES",
    "API_MAX_BODY_BYTES",
    "REDIS_MAX_PENDING_COMMANDS",
    "EVENT_ROUTES_MAX",
    "REVOCATIONS_MAX",
    "JWT_CLOCK_TOLERANCE_SECONDS",
    "HTTP_HEADERS_TIMEOUT_MS",
    "HTTP_REQUEST_TIMEOUT_MS",
    "DRAIN_TIMEOUT_MS",
  ];

  it.each(LIMIT_VARIABLES.flatMap((variable) => ["abc", "-1", "1.5", "9".repeat(400), "0x10"].map((value) => [variable, value])))(
    "refuses %s=%j naming the variable",
    (variable, value) => {
      expect(configFailure({ JWT_SECRET: SECRET, [variable]: value }).variable).toBe(variable);
    },
  );

  it("refuses NODE_ENV spellings other than production, development and test", () => {
    for (const value of ["prod", "Production", "PRODUCTION", "staging", "dev"])
      expect(configFailure({ JWT_SECRET: SECRET, NODE_ENV: value }).variable).toBe("NODE_ENV");
    for (const value of ["production", "development", "test", ""])
      expect(() => loadConfig({ JWT_SECRET: SECRET, NODE_ENV: value })).not.toThrow();
  });

  it("reads TRUST_PROXY as a hop count or a list of addresses, and refuses true and garbage", () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).http.trustProxy).toBe(false);
    expect(loadConfig({ JWT_SECRET: SECRET, TRUST_PROXY: "1" }).http.trustProxy).toBe(1);
    expect(loadConfig({ JWT_SECRET: SECRET, TRUST_PROXY: "loopback, 10.0.0.0/8" }).http.trustProxy).toEqual(["loopback", "10.0.0.0/8"]);
    expect(configFailure({ JWT_SECRET: SECRET, TRUST_PROXY: "true" }).variable).toBe("TRUST_PROXY");
    expect(configFailure({ JWT_SECRET: SECRET, TRUST_PROXY: "not-an-address" }).variable).toBe("TRUST_PROXY");
  });
});

describe("safe defaults", () => {
  it("listens on 127.0.0.1 while development endpoints are on and HOST is unset, on 0.0.0.0 otherwise", () => {
    expect(loadConfig({})).toMatchObject({ devTools: true, host: "127.0.0.1", loopbackForDevTools: true });
    expect(loadConfig({ HOST: "0.0.0.0" })).toMatchObject({ devTools: true, host: "0.0.0.0", loopbackForDevTools: false });
    expect(loadConfig({ JWT_SECRET: SECRET })).toMatchObject({ devTools: false, host: "0.0.0.0", loopbackForDevTools: false });
    expect(loadConfig({ JWT_SECRET: SECRET, DEV_TOKENS: "1" })).toMatchObject({ devTools: true, host: "127.0.0.1" });
  });

  it("requires exp in production unless JWT_REQUIRE_EXP says otherwise, and reads JWT_MAX_TTL_SECONDS", () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).auth).toMatchObject({ requireExp: false, maxTtlSeconds: null });
    expect(loadConfig({ JWT_SECRET: SECRET, NODE_ENV: "production" }).auth.requireExp).toBe(true);
    expect(loadConfig({ JWT_SECRET: SECRET, NODE_ENV: "production", JWT_REQUIRE_EXP: "0" }).auth.requireExp).toBe(false);
    expect(loadConfig({ JWT_SECRET: SECRET, JWT_REQUIRE_EXP: "true" }).auth.requireExp).toBe(true);
    expect(loadConfig({ JWT_SECRET: SECRET, JWT_MAX_TTL_SECONDS: "3600" }).auth.maxTtlSeconds).toBe(3600);
    expect(configFailure({ JWT_SECRET: SECRET, JWT_REQUIRE_EXP: "yes" }).variable).toBe("JWT_REQUIRE_EXP");
    expect(configFailure({ JWT_SECRET: SECRET, JWT_MAX_TTL_SECONDS: "0" }).variable).toBe("JWT_MAX_TTL_SECONDS");
    expect(configFailure({ JWT_SECRET: SECRET, JWT_MAX_TTL_SECONDS: "soon" }).variable).toBe("JWT_MAX_TTL_SECONDS");
  });

  it("counts presence unless PRESENCE=0, and refuses presence events without presence", () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).presence).toBe(true);
    expect(loadConfig({ JWT_SECRET: SECRET, PRESENCE: "0" }).presence).toBe(false);
    expect(configFailure({ JWT_SECRET: SECRET, PRESENCE: "0", PRESENCE_EVENTS: "1" }).variable).toBe("PRESENCE_EVENTS");
    expect(configFailure({ JWT_SECRET: SECRET, PRESENCE: "off" }).variable).toBe("PRESENCE");
  });

  it("subscribes each node to every room's channel, or with REDIS_SUBSCRIPTIONS=rooms to its own rooms' only", () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).redisSubscriptions).toBe("pattern");
    expect(loadConfig({ JWT_SECRET: SECRET, REDIS_SUBSCRIPTIONS: "rooms" }).redisSubscriptions).toBe("rooms");
    expect(loadConfig({ JWT_SECRET: SECRET, REDIS_SUBSCRIPTIONS: "pattern" }).redisSubscriptions).toBe("pattern");
    for (const bad of ["all", "ROOMS", " rooms", "1", "rooms,pattern", "x".repeat(10_000)]) {
      expect(configFailure({ JWT_SECRET: SECRET, REDIS_SUBSCRIPTIONS: bad }).variable).toBe("REDIS_SUBSCRIPTIONS");
    }
  });

  it("records lifecycle events only when asked, only with Redis, in a stream of LIFECYCLE_MAXLEN", () => {
    const redis = { JWT_SECRET: SECRET, REDIS_URL: "redis://127.0.0.1:6379" };
    expect(loadConfig(redis).lifecycleMaxLen).toBeNull();
    expect(loadConfig({ ...redis, LIFECYCLE_EVENTS: "1" }).lifecycleMaxLen).toBe(100_000);
    expect(loadConfig({ ...redis, LIFECYCLE_EVENTS: "true", LIFECYCLE_MAXLEN: "500" }).lifecycleMaxLen).toBe(500);
    expect(loadConfig({ ...redis, LIFECYCLE_EVENTS: "0", LIFECYCLE_MAXLEN: "500" }).lifecycleMaxLen).toBeNull();
    expect(configFailure({ JWT_SECRET: SECRET, LIFECYCLE_EVENTS: "1" }).variable).toBe("LIFECYCLE_EVENTS");
    expect(configFailure({ ...redis, LIFECYCLE_EVENTS: "yes" }).variable).toBe("LIFECYCLE_EVENTS");
    for (const bad of ["0", "99", "ten", "1e9", "-5"])
      expect(configFailure({ ...redis, LIFECYCLE_EVENTS: "1", LIFECYCLE_MAXLEN: bad }).variable).toBe("LIFECYCLE_MAXLEN");
  });

  it("refuses DRAIN_SPREAD_MS longer than DRAIN_TIMEOUT_MS and defaults it to half of it, at most 5 s", () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).drainSpreadMs).toBe(5000);
    expect(loadConfig({ JWT_SECRET: SECRET, DRAIN_TIMEOUT_MS: "3000" }).drainSpreadMs).toBe(1500);
    expect(configFailure({ JWT_SECRET: SECRET, DRAIN_TIMEOUT_MS: "3000", DRAIN_SPREAD_MS: "4000" }).variable).toBe("DRAIN_SPREAD_MS");
  });
});

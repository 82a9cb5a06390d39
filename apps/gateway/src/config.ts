import { createPublicKey, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { Algorithm } from "jsonwebtoken";
import proxyAddr from "proxy-addr";
import { z } from "zod";

/** How tokens are verified: a shared secret (HS*) or a public key (RS*, PS*, ES*). */
export type VerificationKey =
  | { kind: "secret"; secret: string; generated: boolean }
  | { kind: "public"; pem: string; keyType: "rsa" | "ec" };

export interface AuthConfig {
  key: VerificationKey;
  /** Only these algorithms are accepted; `none` never is. */
  algorithms: readonly Algorithm[];
  issuer: string | null;
  audience: readonly string[] | null;
  /** The claim that names the socket's site. */
  siteClaim: string;
  /** How long a socket may stay unauthenticated in the `authenticate` event flow. */
  timeoutMs: number;
  /** How long before its token expires a socket is sent `token_expiring`. */
  refreshNoticeMs: number;
  /** Longer tokens are refused as `token_malformed` before they are decoded. */
  maxTokenBytes: number;
  /** A token without `exp` is refused (`token_claims_invalid`). */
  requireExp: boolean;
  /** When set, a token must have `exp`, and `exp - iat` (or `exp - now` without `iat`) may not exceed it, in seconds. */
  maxTtlSeconds: number | null;
}

/**
 * What one client, address, user or publisher may cost this node. For the admission limits
 * (connections per address, per node, per user) 0 turns the limit off.
 */
export interface Limits {
  /** Largest message a client may send; a larger one closes its connection. */
  clientMaxMessageBytes: number;
  /** How deeply client payloads and frame data may nest. */
  payloadMaxDepth: number;
  /** Event points a socket may spend per second (`authenticate` costs 10, other events 1). */
  clientEventRate: number;
  /** Rooms a socket may subscribe to, besides its own user and site rooms. */
  clientMaxRooms: number;
  /** Bytes that may wait to be written to one client before it is dropped as a slow consumer. */
  clientMaxBufferBytes: number;
  /** New connections per client address per second. */
  ipConnectionsPerSecond: number;
  /** Concurrent connections per client address on this node. */
  ipMaxConnections: number;
  /** Concurrent connections on this node. */
  maxConnections: number;
  /** Concurrent authenticated sockets per user on this node. */
  userMaxSockets: number;
  /** Largest frame accepted from Redis; larger ones are dropped before they are decoded. */
  frameMaxBytes: number;
  /** Largest HTTP request body. */
  httpMaxBodyBytes: number;
}

export interface HttpConfig {
  /** How long a client may take to send a request's headers. */
  headersTimeoutMs: number;
  /** How long a client may take to send a whole request. */
  requestTimeoutMs: number;
  /**
   * Which proxies' X-Forwarded-For headers name the client address: false (none), a hop count,
   * or addresses, CIDR ranges and proxy-addr names such as `loopback`.
   */
  trustProxy: false | number | readonly string[];
}

export interface Config {
  port: number;
  /** Where to listen: HOST, or 127.0.0.1 while the development endpoints are on, else 0.0.0.0. */
  host: string;
  /** True when HOST was not set and the node chose 127.0.0.1 because the development endpoints are on. */
  loopbackForDevTools: boolean;
  nodeId: string;
  production: boolean;
  /** null: a single node with Socket.IO's in-memory adapter and no Redis. */
  redisUrl: string | null;
  /** null: every origin may connect. */
  corsOrigins: readonly string[] | null;
  auth: AuthConfig;
  /** Room patterns clients may subscribe to themselves; empty: none. */
  subscribeRooms: readonly string[];
  /** Dev-only endpoints (token minting, test publishing) are served. */
  devTools: boolean;
  limits: Limits;
  http: HttpConfig;
  /** How long a stopping node waits for its connections to finish before it closes them. */
  drainTimeoutMs: number;
  /** Over how long a stopping node spreads its `reconnect` events. */
  drainSpreadMs: number;
  /** How often the node checks that its Redis subscriber still receives; 0: never. */
  subscriberProbeMs: number;
  publicDir: string;
  /** Things the operator should know at start-up that do not stop it. */
  warnings: readonly string[];
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
}

/** A configuration value the gateway cannot use; the message names the variable. */
export class ConfigError extends Error {
  readonly code = "config_invalid";
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable}: ${detail}`);
    this.name = "ConfigError";
  }
}

const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;
const RSA_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] as const;
const EC_ALGORITHMS_BY_CURVE: Record<string, Algorithm> = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" };
const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL("../../../public", import.meta.url));

const list = z
  .string()
  .transform((value) => value.split(",").map((item) => item.trim()).filter((item) => item.length > 0));
const optionalText = z
  .string()
  .trim()
  .transform((value) => (value === "" ? undefined : value))
  .optional();
const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB_LIMIT = 1024 * MIB;

const envSchema = z.object({
  PORT: integer(0, 65535).default(3000),
  HOST: optionalText,
  NODE_ID: optionalText,
  // Only exact spellings: a typo such as "prod" must not quietly leave development endpoints on.
  NODE_ENV: optionalText.pipe(z.enum(["production", "development", "test"], { error: "must be production, development or test" }).optional()),
  REDIS_URL: optionalText.pipe(z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }).optional()),
  JWT_SECRET: optionalText,
  JWT_PUBLIC_KEY: optionalText,
  JWT_ALGORITHMS: list.optional(),
  JWT_ISSUER: optionalText,
  JWT_AUDIENCE: list.optional(),
  JWT_SITE_CLAIM: optionalText.default("site"),
  AUTH_TIMEOUT_MS: integer(100, 600_000).default(5000),
  TOKEN_REFRESH_NOTICE_MS: integer(0, 86_400_000).default(60_000),
  SUBSCRIBE_ROOMS: list.optional(),
  CORS_ORIGINS: list.optional(),
  DEV_TOKENS: z.enum(["0", "1", "true", "false", ""]).optional(),
  PUBLIC_DIR: optionalText,
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  JWT_MAX_BYTES: integer(256, MIB).default(8 * KIB),
  JWT_REQUIRE_EXP: z.enum(["0", "1", "true", "false", ""]).optional(),
  JWT_MAX_TTL_SECONDS: integer(1, 10 * 365 * 86_400).optional(),
  CLIENT_MAX_MESSAGE_BYTES: integer(KIB, 100 * MIB).default(64 * KIB),
  PAYLOAD_MAX_DEPTH: integer(1, 1000).default(32),
  CLIENT_EVENT_RATE: integer(10, 1_000_000).default(50),
  CLIENT_MAX_ROOMS: integer(0, 1_000_000).default(100),
  CLIENT_MAX_BUFFER_BYTES: integer(16 * KIB, GIB_LIMIT).default(MIB),
  IP_CONNECTIONS_PER_SECOND: integer(0, 1_000_000).default(50),
  IP_MAX_CONNECTIONS: integer(0, 10_000_000).default(1000),
  MAX_CONNECTIONS: integer(0, 10_000_000).default(25_000),
  USER_MAX_SOCKETS: integer(0, 1_000_000).default(50),
  FRAME_MAX_BYTES: integer(KIB, 512 * MIB).default(MIB),
  API_MAX_BODY_BYTES: integer(KIB, 100 * MIB).default(64 * KIB),
  HTTP_HEADERS_TIMEOUT_MS: integer(1000, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: integer(1000, 3_600_000).default(30_000),
  TRUST_PROXY: optionalText,
  DRAIN_TIMEOUT_MS: integer(0, 600_000).default(10_000),
  DRAIN_SPREAD_MS: integer(0, 600_000).optional(),
  SUBSCRIBER_PROBE_MS: integer(0, 3_600_000).default(5000),
});

/**
 * Parses and validates the gateway configuration from environment variables, once, at start-up.
 * Nothing else in the gateway reads `process.env`.
 */
export function loadConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue?.path[0] ?? "environment"), issue?.message ?? "invalid");
  }
  const vars = parsed.data;
  const production = vars.NODE_ENV === "production";
  const key = verificationKey(vars.JWT_SECRET, vars.JWT_PUBLIC_KEY, production);
  const algorithms = allowedAlgorithms(key, vars.JWT_ALGORITHMS);
  const corsOrigins = vars.CORS_ORIGINS && !vars.CORS_ORIGINS.includes("*") ? vars.CORS_ORIGINS : null;
  for (const origin of corsOrigins ?? []) {
    if (!/^https?:\/\/[^/]+$/.test(origin)) throw new ConfigError("CORS_ORIGINS", `${origin} is not an origin such as https://app.example.com`);
  }
  const devTokensAsked = vars.DEV_TOKENS === "1" || vars.DEV_TOKENS === "true";
  const devTools = !production && (devTokensAsked || (key.kind === "secret" && key.generated));
  // Unset means the default for the mode: required in production, not elsewhere.
  const requireExp = vars.JWT_REQUIRE_EXP === undefined || vars.JWT_REQUIRE_EXP === "" ? production : vars.JWT_REQUIRE_EXP === "1" || vars.JWT_REQUIRE_EXP === "true";
  if (devTokensAsked && production) throw new ConfigError("DEV_TOKENS", "dev tokens are never served with NODE_ENV=production");
  if (devTokensAsked && key.kind !== "secret") throw new ConfigError("DEV_TOKENS", "dev tokens are signed with JWT_SECRET; a public key cannot sign");
  for (const pattern of vars.SUBSCRIBE_ROOMS ?? []) {
    if (/^(user|site)\(/.test(pattern)) {
      throw new ConfigError("SUBSCRIBE_ROOMS", `${pattern}: user() and site() rooms are joined from the token, never by subscription`);
    }
  }
  if (vars.JWT_SITE_CLAIM && ["sub", "iss", "aud", "exp", "nbf", "iat"].includes(vars.JWT_SITE_CLAIM)) {
    throw new ConfigError("JWT_SITE_CLAIM", `${vars.JWT_SITE_CLAIM} is a registered claim, not a site`);
  }
  // By default half the drain timeout (5 s of the default 10 s), leaving the rest for clients to go.
  const drainSpreadMs = vars.DRAIN_SPREAD_MS ?? Math.min(5000, Math.floor(vars.DRAIN_TIMEOUT_MS / 2));
  if (drainSpreadMs > vars.DRAIN_TIMEOUT_MS) throw new ConfigError("DRAIN_SPREAD_MS", `must not be longer than DRAIN_TIMEOUT_MS (${vars.DRAIN_TIMEOUT_MS})`);
  const warnings: string[] = [];
  if (key.kind === "secret" && !key.generated && Buffer.byteLength(key.secret) < 32) {
    warnings.push("JWT_SECRET is shorter than 32 bytes; HS256 wants at least 256 bits of secret");
  }
  return Object.freeze({
    warnings: Object.freeze(warnings),
    port: vars.PORT,
    // Development endpoints mint tokens for anyone: unless told otherwise, only this machine reaches them.
    host: vars.HOST ?? (devTools ? "127.0.0.1" : "0.0.0.0"),
    loopbackForDevTools: vars.HOST === undefined && devTools,
    nodeId: vars.NODE_ID ?? `node-${randomBytes(3).toString("hex")}`,
    production,
    redisUrl: vars.REDIS_URL ?? null,
    corsOrigins: corsOrigins ? Object.freeze([...corsOrigins]) : null,
    auth: Object.freeze({
      key,
      algorithms: Object.freeze([...algorithms]),
      issuer: vars.JWT_ISSUER ?? null,
      audience: vars.JWT_AUDIENCE && vars.JWT_AUDIENCE.length > 0 ? Object.freeze([...vars.JWT_AUDIENCE]) : null,
      siteClaim: vars.JWT_SITE_CLAIM,
      timeoutMs: vars.AUTH_TIMEOUT_MS,
      refreshNoticeMs: vars.TOKEN_REFRESH_NOTICE_MS,
      maxTokenBytes: vars.JWT_MAX_BYTES,
      requireExp,
      maxTtlSeconds: vars.JWT_MAX_TTL_SECONDS ?? null,
    }),
    subscribeRooms: Object.freeze([...(vars.SUBSCRIBE_ROOMS ?? [])]),
    devTools,
    limits: Object.freeze({
      clientMaxMessageBytes: vars.CLIENT_MAX_MESSAGE_BYTES,
      payloadMaxDepth: vars.PAYLOAD_MAX_DEPTH,
      clientEventRate: vars.CLIENT_EVENT_RATE,
      clientMaxRooms: vars.CLIENT_MAX_ROOMS,
      clientMaxBufferBytes: vars.CLIENT_MAX_BUFFER_BYTES,
      ipConnectionsPerSecond: vars.IP_CONNECTIONS_PER_SECOND,
      ipMaxConnections: vars.IP_MAX_CONNECTIONS,
      maxConnections: vars.MAX_CONNECTIONS,
      userMaxSockets: vars.USER_MAX_SOCKETS,
      frameMaxBytes: vars.FRAME_MAX_BYTES,
      httpMaxBodyBytes: vars.API_MAX_BODY_BYTES,
    }),
    http: Object.freeze({
      headersTimeoutMs: vars.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: Math.max(vars.HTTP_REQUEST_TIMEOUT_MS, vars.HTTP_HEADERS_TIMEOUT_MS),
      trustProxy: trustProxy(vars.TRUST_PROXY),
    }),
    drainTimeoutMs: vars.DRAIN_TIMEOUT_MS,
    drainSpreadMs,
    subscriberProbeMs: vars.SUBSCRIBER_PROBE_MS,
    publicDir: vars.PUBLIC_DIR ?? DEFAULT_PUBLIC_DIR,
    logLevel: vars.LOG_LEVEL,
  });
}

/**
 * TRUST_PROXY: unset or `false` trusts no proxy; a whole number trusts that many hops; anything
 * else is a comma-separated list of addresses, CIDR ranges or proxy-addr names (`loopback`,
 * `linklocal`, `uniquelocal`). `true` is refused: trusting every hop lets any client choose its address.
 */
function trustProxy(value: string | undefined): HttpConfig["trustProxy"] {
  if (value === undefined || value === "false" || value === "0") return false;
  if (/^\d+$/.test(value)) return Number(value);
  if (value === "true") throw new ConfigError("TRUST_PROXY", "true would let any client choose its address; list the proxies' addresses or give a hop count");
  const entries = value.split(",").map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  try {
    proxyAddr.compile(entries);
  } catch (err) {
    throw new ConfigError("TRUST_PROXY", err instanceof Error ? err.message : String(err));
  }
  return Object.freeze(entries);
}

function verificationKey(secret: string | undefined, publicKey: string | undefined, production: boolean): VerificationKey {
  if (secret && publicKey) throw new ConfigError("JWT_PUBLIC_KEY", "set JWT_SECRET or JWT_PUBLIC_KEY, not both");
  if (secret) {
    return { kind: "secret", secret, generated: false };
  }
  if (publicKey) {
    // Env files often carry a PEM on one line with literal \n sequences.
    const pem = publicKey.replace(/\\n/g, "\n");
    let keyType: string | undefined;
    try {
      keyType = createPublicKey(pem).asymmetricKeyType;
    } catch {
      throw new ConfigError("JWT_PUBLIC_KEY", "is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    }
    if (keyType !== "rsa" && keyType !== "ec") throw new ConfigError("JWT_PUBLIC_KEY", `${keyType} keys are not supported; use an RSA or EC key`);
    return { kind: "public", pem, keyType };
  }
  if (production) throw new ConfigError("JWT_SECRET", "NODE_ENV=production needs JWT_SECRET or JWT_PUBLIC_KEY");
  return { kind: "secret", secret: randomBytes(32).toString("base64url"), generated: true };
}

function allowedAlgorithms(key: VerificationKey, asked: string[] | undefined): Algorithm[] {
  const fitting: readonly string[] =
    key.kind === "secret" ? HMAC_ALGORITHMS : key.keyType === "rsa" ? RSA_ALGORITHMS : Object.values(EC_ALGORITHMS_BY_CURVE);
  if (!asked || asked.length === 0) {
    if (key.kind === "public" && key.keyType === "ec") {
      const curve = createPublicKey(key.pem).asymmetricKeyDetails?.namedCurve ?? "";
      const algorithm = EC_ALGORITHMS_BY_CURVE[curve];
      if (!algorithm) throw new ConfigError("JWT_PUBLIC_KEY", `EC curve ${curve} is not supported (P-256, P-384, P-521)`);
      return [algorithm];
    }
    return [...fitting] as Algorithm[];
  }
  for (const algorithm of asked) {
    // Pinning an algorithm of the other family is how HS/RS key confusion starts: refuse it here.
    if (!fitting.includes(algorithm)) {
      throw new ConfigError("JWT_ALGORITHMS", `${algorithm} does not fit a ${key.kind === "secret" ? "JWT_SECRET" : `${key.keyType} JWT_PUBLIC_KEY`} (allowed: ${fitting.join(", ")})`);
    }
  }
  return asked as Algorithm[];
}

import { createPublicKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MAX_REFUSE_SECONDS } from "@switchboard/protocol";
import proxyAddr from "proxy-addr";
import { z } from "zod";

/** One verification key of a key set: a shared secret or a public key, and what it can verify. */
export interface KeyEntry {
  type: "secret" | "rsa" | "ec" | "ed25519";
  /** The secret, or the PEM of the public key. */
  material: string;
  /** The algorithms a token verified with this key may use. */
  algorithms: readonly string[];
}

/**
 * Where verification keys come from: one shared secret (HS*), one public key (RS*, PS*, ES*,
 * EdDSA), a set of keys chosen by the token's `kid` (JWT_KEYS, reloadable from a file), or a JSON
 * Web Key Set fetched from a URL (JWT_JWKS_URL).
 */
export type VerificationKey =
  | { kind: "secret"; secret: string; generated: boolean }
  | { kind: "public"; pem: string; keyType: "rsa" | "ec" | "ed25519" }
  | { kind: "keySet"; file: string | null; keys: ReadonlyMap<string, KeyEntry> }
  | { kind: "jwks"; url: string; cooldownMs: number; refreshMs: number };

export interface AuthConfig {
  key: VerificationKey;
  /** Only these algorithms are accepted; `none` never is. */
  algorithms: readonly string[];
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
  /** How far the issuer's clock may be from this node's, in seconds: `exp` and `nbf` are checked with this leeway, and a session ends this long after `exp`. */
  clockToleranceSeconds: number;
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
  /** Commands that may wait for Redis's answer on the node's command connection; more fail at once. */
  redisMaxPendingCommands: number;
}

export interface FrameSigningConfig {
  keys: ReadonlyMap<string, string>;
  /** How far a signed frame's `ts` may be from this node's clock, either way. */
  maxAgeMs: number;
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
  /** `rooms`: a node subscribes to the broadcast channel of each room it holds; `pattern`: to every room's, as @socket.io/redis-adapter does. */
  redisSubscriptions: "rooms" | "pattern";
  /** When set, raw frames must be signed with one of these keys (kid to secret); null: signatures are not required. */
  frameSigning: FrameSigningConfig | null;
  /** Keys of the HTTP server API (`Authorization: Bearer <key>`); null: the API is off and its routes answer 404. */
  apiKeys: readonly string[] | null;
  /** EVENT_ROUTES: an event's room when a publish names none; `{user}` and `{site}` come from the publish. */
  eventRoutes: ReadonlyMap<string, string>;
  /** Routes that may be registered at run time, cluster-wide (EVENT_ROUTES's own do not count). */
  eventRoutesMax: number;
  /** Kicked users and revoked tokens in force that each node holds; a revocation past it is refused (API) or not held (other paths). */
  revocationsMax: number;
  /** Count sockets, users and rooms cluster-wide (the presence routes and readers); PRESENCE=0 turns it off. */
  presence: boolean;
  /** Publish `presence` `{ user, online }` to the site's room as users come and go. */
  presenceEvents: boolean;
  /** A node silent for this long is gone: the others take its sockets out of presence. It beats every third of it. */
  presenceNodeTtlMs: number;
  services: ServicesConfig;
  /** LIFECYCLE_EVENTS: record sockets coming and going in a stream (trimmed to this many records); null: off. */
  lifecycleMaxLen: number | null;
  publicDir: string;
  /** Things the operator should know at start-up that do not stop it. */
  warnings: readonly string[];
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
}

/** Calls from clients to backend services. */
export interface ServicesConfig {
  /** Service name patterns every authenticated socket may call, on top of its token's `services` claim. */
  policy: readonly string[];
  /** Requests a service may hold (waiting and under way) before more are refused with service_busy. */
  maxPending: number;
  /** The longest a caller may wait for a result, and the wait when it asks for none. */
  requestTimeoutMs: number;
  /** The largest request or send payload, as JSON. */
  maxPayloadBytes: number;
  /** Requests one socket may have waiting at once. */
  maxCallsPerSocket: number;
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
const EC_ALGORITHMS_BY_CURVE: Record<string, string> = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" };
// RFC 8037 names it EdDSA; RFC 9864 gives Ed25519 its own name.
const ED25519_ALGORITHMS = ["EdDSA", "Ed25519"] as const;
/** What a JSON Web Key Set may verify: asymmetric keys only, so a public key can never act as an HMAC secret. */
const JWKS_ALGORITHMS = [...RSA_ALGORITHMS, "ES256", "ES384", "ES512", ...ED25519_ALGORITHMS] as const;
const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL("../../../public", import.meta.url));

const list = z.string().transform((value) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0),
);
const optionalText = z
  .string()
  .trim()
  .transform((value) => (value === "" ? undefined : value))
  .optional();
const integer = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.number().int().min(min).max(max));

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB_LIMIT = 1024 * MIB;

const envSchema = z.object({
  PORT: integer(0, 65535).default(3000),
  HOST: optionalText,
  NODE_ID: optionalText,
  // Only exact spellings: a typo such as "prod" must not quietly leave development endpoints on.
  NODE_ENV: optionalText.pipe(
    z.enum(["production", "development", "test"], { error: "must be production, development or test" }).optional(),
  ),
  REDIS_URL: optionalText.pipe(z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }).optional()),
  JWT_SECRET: optionalText,
  JWT_PUBLIC_KEY: optionalText,
  JWT_KEYS: optionalText,
  JWT_JWKS_URL: optionalText.pipe(z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional()),
  JWT_JWKS_COOLDOWN_MS: integer(0, 3_600_000).default(30_000),
  JWT_JWKS_REFRESH_MS: integer(1000, 86_400_000).default(600_000),
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
  JWT_MAX_TTL_SECONDS: integer(1, MAX_REFUSE_SECONDS).optional(),
  JWT_CLOCK_TOLERANCE_SECONDS: integer(0, 300).default(0),
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
  REDIS_MAX_PENDING_COMMANDS: integer(10, 10_000_000).default(50_000),
  HTTP_HEADERS_TIMEOUT_MS: integer(1000, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: integer(1000, 3_600_000).default(30_000),
  TRUST_PROXY: optionalText,
  DRAIN_TIMEOUT_MS: integer(0, 600_000).default(10_000),
  DRAIN_SPREAD_MS: integer(0, 600_000).optional(),
  SUBSCRIBER_PROBE_MS: integer(0, 3_600_000).default(5000),
  REDIS_SUBSCRIPTIONS: z.enum(["pattern", "rooms"], { error: "must be pattern or rooms" }).default("pattern"),
  FRAME_SIGNING_KEYS: optionalText,
  API_KEYS: list.optional(),
  EVENT_ROUTES: optionalText,
  EVENT_ROUTES_MAX: integer(1, 100_000).default(1000),
  REVOCATIONS_MAX: integer(1, 10_000_000).default(100_000),
  PRESENCE: z.enum(["0", "1", "true", "false", ""]).optional(),
  PRESENCE_EVENTS: z.enum(["0", "1", "true", "false", ""]).optional(),
  PRESENCE_NODE_TTL_MS: integer(1000, 600_000).default(15_000),
  LIFECYCLE_EVENTS: z.enum(["0", "1", "true", "false", ""]).optional(),
  LIFECYCLE_MAXLEN: integer(100, 100_000_000).default(100_000),
  SERVICE_POLICY: list.optional(),
  SERVICE_MAX_PENDING: integer(1, 10_000_000).default(1000),
  SERVICE_REQUEST_TIMEOUT_MS: integer(100, 3_600_000).default(30_000),
  SERVICE_MAX_PAYLOAD_BYTES: integer(2, 100 * MIB).default(64 * KIB),
  SERVICE_MAX_CALLS_PER_SOCKET: integer(1, 100_000).default(100),
  FRAME_SIGNATURE_MAX_AGE_MS: integer(1000, 86_400_000).default(300_000),
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
  const key = verificationKey(vars, production);
  const algorithms = allowedAlgorithms(key, vars.JWT_ALGORITHMS);
  const corsOrigins = vars.CORS_ORIGINS && !vars.CORS_ORIGINS.includes("*") ? vars.CORS_ORIGINS : null;
  for (const origin of corsOrigins ?? []) {
    if (!/^https?:\/\/[^/]+$/.test(origin))
      throw new ConfigError("CORS_ORIGINS", `${origin} is not an origin such as https://app.example.com`);
  }
  const devTokensAsked = vars.DEV_TOKENS === "1" || vars.DEV_TOKENS === "true";
  const devTools = !production && (devTokensAsked || (key.kind === "secret" && key.generated));
  // Unset means the default for the mode: required in production, not elsewhere.
  const requireExp =
    vars.JWT_REQUIRE_EXP === undefined || vars.JWT_REQUIRE_EXP === ""
      ? production
      : vars.JWT_REQUIRE_EXP === "1" || vars.JWT_REQUIRE_EXP === "true";
  if (devTokensAsked && production) throw new ConfigError("DEV_TOKENS", "dev tokens are never served with NODE_ENV=production");
  if (devTokensAsked && key.kind !== "secret")
    throw new ConfigError("DEV_TOKENS", "dev tokens are signed with JWT_SECRET; set it rather than a public key, JWT_KEYS or JWT_JWKS_URL");
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
  if (drainSpreadMs > vars.DRAIN_TIMEOUT_MS)
    throw new ConfigError("DRAIN_SPREAD_MS", `must not be longer than DRAIN_TIMEOUT_MS (${vars.DRAIN_TIMEOUT_MS})`);
  const apiKeys = vars.API_KEYS && vars.API_KEYS.length > 0 ? vars.API_KEYS : null;
  for (const apiKey of apiKeys ?? []) {
    if (apiKey.length < 32) throw new ConfigError("API_KEYS", "each key must be at least 32 characters");
  }
  const warnings: string[] = [];
  if (key.kind === "secret" && !key.generated && Buffer.byteLength(key.secret) < 32) {
    warnings.push("JWT_SECRET is shorter than 32 bytes; HS256 wants at least 256 bits of secret");
  }
  const lifecycle = vars.LIFECYCLE_EVENTS === "1" || vars.LIFECYCLE_EVENTS === "true";
  if (lifecycle && vars.REDIS_URL === undefined)
    throw new ConfigError("LIFECYCLE_EVENTS", "lifecycle records are kept in Redis: set REDIS_URL");
  const presence = vars.PRESENCE !== "0" && vars.PRESENCE !== "false";
  const presenceEvents = vars.PRESENCE_EVENTS === "1" || vars.PRESENCE_EVENTS === "true";
  if (presenceEvents && !presence) throw new ConfigError("PRESENCE_EVENTS", "presence events need presence: PRESENCE=0 turns it off");
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
      // A kick is refused for as long as the tokens it outlives could be valid: with the server API,
      // whose kicks stick, token lifetimes are bounded by default.
      maxTtlSeconds: vars.JWT_MAX_TTL_SECONDS ?? (apiKeys !== null ? DEFAULT_API_TOKEN_TTL_SECONDS : null),
      clockToleranceSeconds: vars.JWT_CLOCK_TOLERANCE_SECONDS,
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
      redisMaxPendingCommands: vars.REDIS_MAX_PENDING_COMMANDS,
    }),
    http: Object.freeze({
      headersTimeoutMs: vars.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: Math.max(vars.HTTP_REQUEST_TIMEOUT_MS, vars.HTTP_HEADERS_TIMEOUT_MS),
      trustProxy: trustProxy(vars.TRUST_PROXY),
    }),
    drainTimeoutMs: vars.DRAIN_TIMEOUT_MS,
    drainSpreadMs,
    subscriberProbeMs: vars.SUBSCRIBER_PROBE_MS,
    redisSubscriptions: vars.REDIS_SUBSCRIPTIONS,
    apiKeys: apiKeys === null ? null : Object.freeze([...apiKeys]),
    eventRoutes: vars.EVENT_ROUTES === undefined ? new Map() : eventRoutes(vars.EVENT_ROUTES),
    eventRoutesMax: vars.EVENT_ROUTES_MAX,
    revocationsMax: vars.REVOCATIONS_MAX,
    presence,
    presenceEvents,
    presenceNodeTtlMs: vars.PRESENCE_NODE_TTL_MS,
    lifecycleMaxLen: lifecycle ? vars.LIFECYCLE_MAXLEN : null,
    services: Object.freeze({
      policy: Object.freeze([...(vars.SERVICE_POLICY ?? [])]),
      maxPending: vars.SERVICE_MAX_PENDING,
      requestTimeoutMs: vars.SERVICE_REQUEST_TIMEOUT_MS,
      maxPayloadBytes: vars.SERVICE_MAX_PAYLOAD_BYTES,
      maxCallsPerSocket: vars.SERVICE_MAX_CALLS_PER_SOCKET,
    }),
    frameSigning:
      vars.FRAME_SIGNING_KEYS === undefined
        ? null
        : Object.freeze({ keys: frameSigningKeys(vars.FRAME_SIGNING_KEYS), maxAgeMs: vars.FRAME_SIGNATURE_MAX_AGE_MS }),
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
  if (value === "true")
    throw new ConfigError("TRUST_PROXY", "true would let any client choose its address; list the proxies' addresses or give a hop count");
  const entries = value
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  try {
    proxyAddr.compile(entries);
  } catch (err) {
    throw new ConfigError("TRUST_PROXY", err instanceof Error ? err.message : String(err));
  }
  return Object.freeze(entries);
}

function verificationKey(vars: z.infer<typeof envSchema>, production: boolean): VerificationKey {
  const given = (["JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_KEYS", "JWT_JWKS_URL"] as const).filter((name) => vars[name] !== undefined);
  if (given.length > 1)
    throw new ConfigError(
      given[1] ?? "JWT_SECRET",
      `set one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_KEYS and JWT_JWKS_URL, not ${given.join(" and ")}`,
    );
  if (vars.JWT_SECRET) return { kind: "secret", secret: vars.JWT_SECRET, generated: false };
  if (vars.JWT_PUBLIC_KEY) {
    const entry = keyEntry(vars.JWT_PUBLIC_KEY, "JWT_PUBLIC_KEY", "public");
    if (entry.type === "secret") throw new ConfigError("JWT_PUBLIC_KEY", "is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    return { kind: "public", pem: entry.material, keyType: entry.type };
  }
  if (vars.JWT_KEYS) {
    const file = vars.JWT_KEYS.startsWith("@") ? vars.JWT_KEYS.slice(1) : null;
    return { kind: "keySet", file, keys: file === null ? parseKeySet(vars.JWT_KEYS, "JWT_KEYS") : readKeySetFile(file) };
  }
  if (vars.JWT_JWKS_URL)
    return { kind: "jwks", url: vars.JWT_JWKS_URL, cooldownMs: vars.JWT_JWKS_COOLDOWN_MS, refreshMs: vars.JWT_JWKS_REFRESH_MS };
  if (production) throw new ConfigError("JWT_SECRET", "NODE_ENV=production needs JWT_SECRET, JWT_PUBLIC_KEY, JWT_KEYS or JWT_JWKS_URL");
  return { kind: "secret", secret: randomBytes(32).toString("base64url"), generated: true };
}

/** The token lifetime JWT_MAX_TTL_SECONDS defaults to when the server API is on. */
const DEFAULT_API_TOKEN_TTL_SECONDS = 86_400;
const ROUTE_PLACEHOLDER = /\{([^}]*)\}/g;

/**
 * EVENT_ROUTES: a JSON object (or @path to one) of event name to room template, whose only
 * placeholders are {user} and {site}.
 */
function eventRoutes(value: string): ReadonlyMap<string, string> {
  let text = value;
  if (value.startsWith("@")) {
    try {
      text = readFileSync(value.slice(1), "utf8");
    } catch (err) {
      throw new ConfigError("EVENT_ROUTES", `cannot read ${value.slice(1)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError(
      "EVENT_ROUTES",
      'is not JSON: give { "<event>": "<room, with {user} or {site} if needed>", ... } or @path/to/file.json',
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new ConfigError("EVENT_ROUTES", "must be a JSON object of event to room");
  const routes = new Map<string, string>();
  for (const [event, room] of Object.entries(parsed)) {
    const problem = routeProblem(event, room);
    if (problem !== null) throw new ConfigError("EVENT_ROUTES", problem);
    routes.set(event, room as string);
  }
  return routes;
}

/** Why an event route cannot be used, or null; shared by EVENT_ROUTES and routes registered at run time. */
export function routeProblem(event: unknown, room: unknown): string | null {
  if (typeof event !== "string" || event.length === 0 || event.length > 200) return "an event name must be 1 to 200 characters";
  if (typeof room !== "string" || room.length === 0 || room.length > 200) return `the room of ${event} must be 1 to 200 characters`;
  for (const [, name] of room.matchAll(ROUTE_PLACEHOLDER)) {
    if (name !== "user" && name !== "site") return `the room of ${event} has {${name}}: only {user} and {site} can be filled in`;
  }
  return null;
}

/** FRAME_SIGNING_KEYS: a JSON object of kid to shared secret, each at least 32 bytes. */
function frameSigningKeys(text: string): ReadonlyMap<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError("FRAME_SIGNING_KEYS", 'is not JSON: give { "<kid>": "<secret of 32 bytes or more>", ... }');
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || Object.keys(value).length === 0) {
    throw new ConfigError("FRAME_SIGNING_KEYS", "must be a JSON object of at least one kid to secret");
  }
  const keys = new Map<string, string>();
  for (const [kid, secret] of Object.entries(value)) {
    if (kid.length === 0 || kid.length > 200) throw new ConfigError("FRAME_SIGNING_KEYS", "each kid must be 1 to 200 characters");
    if (typeof secret !== "string" || Buffer.byteLength(secret) < 32)
      throw new ConfigError("FRAME_SIGNING_KEYS", `the secret of kid ${kid} must be a string of 32 bytes or more`);
    keys.set(kid, secret);
  }
  return keys;
}

/**
 * Reads a JWT_KEYS file: a JSON object mapping each `kid` to a shared secret or a PEM public key.
 * Used at start-up and again on SIGHUP; errors name the variable and the key at fault.
 */
export function readKeySetFile(path: string): ReadonlyMap<string, KeyEntry> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError("JWT_KEYS", `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseKeySet(text, "JWT_KEYS", path);
}

function parseKeySet(text: string, variable: string, file?: string): ReadonlyMap<string, KeyEntry> {
  const where = file === undefined ? "" : ` (${file})`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError(variable, `is not JSON${where}: give { "<kid>": "<secret or PEM>", ... } or @path/to/file.json`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new ConfigError(variable, `must be a JSON object of kid to key${where}`);
  const entries = Object.entries(value);
  if (entries.length === 0) throw new ConfigError(variable, `holds no key${where}`);
  const keys = new Map<string, KeyEntry>();
  for (const [kid, material] of entries) {
    if (kid.length === 0 || kid.length > 200)
      throw new ConfigError(variable, `kid ${JSON.stringify(kid.slice(0, 40))} must be 1 to 200 characters${where}`);
    if (typeof material !== "string" || material.length === 0)
      throw new ConfigError(variable, `the key of kid ${kid} must be a secret or a PEM string${where}`);
    keys.set(kid, keyEntry(material, `${variable} kid ${kid}${where}`, "either"));
  }
  return keys;
}

/** Classifies key material as a shared secret or a public key, with the algorithms that fit it. */
function keyEntry(raw: string, where: string, expect: "public" | "either"): KeyEntry {
  // Env files often carry a PEM on one line with literal \n sequences.
  const material = raw.includes("-----BEGIN") ? raw.replace(/\\n/g, "\n") : raw;
  if (!material.includes("-----BEGIN")) {
    if (expect === "public") throw new ConfigError(where, "is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    return { type: "secret", material, algorithms: HMAC_ALGORITHMS };
  }
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey(material);
  } catch {
    throw new ConfigError(where, "is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
  }
  const type = key.asymmetricKeyType;
  if (type === "rsa") return { type, material, algorithms: RSA_ALGORITHMS };
  if (type === "ed25519") return { type, material, algorithms: ED25519_ALGORITHMS };
  if (type === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
    const algorithm = EC_ALGORITHMS_BY_CURVE[curve];
    if (!algorithm) throw new ConfigError(where, `EC curve ${curve} is not supported (P-256, P-384, P-521)`);
    return { type, material, algorithms: [algorithm] };
  }
  throw new ConfigError(where, `${type} keys are not supported; use an RSA, EC or Ed25519 key`);
}

/** Every algorithm some configured key can verify; JWT_ALGORITHMS may only narrow it. */
function allowedAlgorithms(key: VerificationKey, asked: string[] | undefined): string[] {
  const fitting: readonly string[] =
    key.kind === "secret"
      ? HMAC_ALGORITHMS
      : key.kind === "public"
        ? keyEntry(key.pem, "JWT_PUBLIC_KEY", "public").algorithms
        : key.kind === "keySet"
          ? [...new Set([...key.keys.values()].flatMap((entry) => entry.algorithms))]
          : JWKS_ALGORITHMS;
  if (!asked || asked.length === 0) return [...fitting];
  for (const algorithm of asked) {
    // Pinning an algorithm of the other family is how HS/RS key confusion starts: refuse it here.
    if (!fitting.includes(algorithm))
      throw new ConfigError("JWT_ALGORITHMS", `${algorithm} does not fit the configured keys (allowed: ${fitting.join(", ")})`);
  }
  return asked;
}

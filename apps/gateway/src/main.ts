import { ConfigError, loadConfig } from "./config.js";
import { createGateway } from "./server.js";

// Process entry: config → start → signals.
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`switchboard: config_invalid: ${err.message}\n`);
  process.exit(1);
}

const gateway = await createGateway(config);
const { logger } = gateway;
for (const warning of config.warnings) logger.warn(warning);
if (config.auth.key.kind === "secret" && config.auth.key.generated) {
  logger.warn(
    "NO JWT_SECRET OR JWT_PUBLIC_KEY SET: this node generated a random development secret. Tokens from any other system will be refused. Set JWT_SECRET or JWT_PUBLIC_KEY (NODE_ENV=production requires one).",
  );
}
if (config.devTools) {
  logger.warn(
    config.loopbackForDevTools
      ? "development endpoints are on: POST /dev/token mints tokens for anyone, so this node listens on 127.0.0.1 only; set HOST to listen elsewhere"
      : "development endpoints are on: POST /dev/token mints tokens for anyone; never expose this node",
  );
}

logger.info(
  config.apiKeys === null
    ? "server API off: no API_KEYS, so /api/v1 and /_notify answer 404"
    : `server API on: /api/v1 and /_notify take ${config.apiKeys.length} key(s) (Authorization: Bearer)`,
);

try {
  const url = await gateway.start();
  logger.info(
    { mode: gateway.broker.mode, algorithms: config.auth.algorithms, url },
    config.redisUrl === null
      ? `single node, in-memory adapter (no REDIS_URL): switchboard listening on ${url}`
      : `cluster node via Redis ${redactedUrl(config.redisUrl)}: switchboard listening on ${url}`,
  );
} catch (err) {
  logger.fatal({ err }, "could not start");
  await gateway.close().catch(() => {});
  process.exit(1);
}

// Keys rotate without a restart: SIGHUP re-reads a JWT_KEYS file (or refetches JWT_JWKS_URL);
// connected sockets keep their sessions.
process.on("SIGHUP", () => logger.info({ signal: "SIGHUP" }, `verification keys: ${gateway.verifier.reloadKeys()}`));

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, "shutting down");
    // A backstop: whatever still holds the process after the drain and Redis's goodbye is not waited for.
    setTimeout(() => {
      logger.warn("shutdown did not finish in time; exiting");
      process.exit(0);
    }, config.drainTimeoutMs + 5000).unref();
    gateway.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}

function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

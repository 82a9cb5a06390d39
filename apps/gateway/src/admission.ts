import { type IncomingMessage, ServerResponse, STATUS_CODES } from "node:http";
import { type ErrorCode, HANDSHAKE_REFUSAL_HEADER, errorBody } from "@switchboard/protocol";
import proxyAddr from "proxy-addr";
import { RateLimiterRes } from "rate-limiter-flexible";
import type { HttpConfig, Limits } from "./config.js";
import { retryAfter } from "./errors.js";
import type { ConnectionRateLimiter } from "./broker.js";
import type { LimitKind, Metrics } from "./metrics.js";

/**
 * Who may open a connection to this node, decided on the engine.io handshake before anything is
 * allocated for it: the Origin (CORS_ORIGINS), new connections per address per second, concurrent
 * connections per address, and concurrent connections on the node. A refused handshake is answered
 * with the same status and `{ code, message }` body on HTTP long-polling and on a WebSocket upgrade.
 * The rate of new connections per address is counted across the cluster (in Redis); concurrent
 * connections per address and per node are this node's own.
 */
export interface Admission {
  /** An engine.io middleware (`io.engine.use`). */
  middleware(req: IncomingMessage, res: ServerResponse | object, next: (err?: Error) => void): void;
  /**
   * Called with each engine.io connection that was opened: returns the address it is counted under
   * until `closed` is called with it, or null when it was not counted.
   */
  opened(request: IncomingMessage): string | null;
  /** An opened connection closed: its address has a place again. */
  closed(address: string): void;
  /** Called when a handshake that was let through failed before it became a connection. */
  failed(request: IncomingMessage): void;
  /** The client address the limits apply to (X-Forwarded-For only from TRUST_PROXY). */
  addressOf(request: IncomingMessage): string;
}

export interface AdmissionDeps {
  limits: Pick<Limits, "ipConnectionsPerSecond" | "ipMaxConnections" | "maxConnections" | "clientMaxMessageBytes">;
  http: Pick<HttpConfig, "trustProxy">;
  corsOrigins: readonly string[] | null;
  metrics: Metrics;
  /** The node's current engine.io connection count. */
  connectionCount(): number;
  /** True once the node is stopping: every new connection is refused with node_draining. */
  draining(): boolean;
  /** Makes the counter of new connections per address (the broker's, so it is cluster-wide). */
  rateLimiter(points: number): ConnectionRateLimiter;
}

interface Refusal {
  status: number;
  code: ErrorCode;
  kind: LimitKind | null;
}

export function createAdmission(deps: AdmissionDeps): Admission {
  const { limits, metrics } = deps;
  const allowedOrigins = deps.corsOrigins === null ? null : new Set(deps.corsOrigins);
  const trust = proxyTrust(deps.http.trustProxy);
  const rate = limits.ipConnectionsPerSecond > 0 ? deps.rateLimiter(limits.ipConnectionsPerSecond) : null;
  const perAddress = new Map<string, number>();
  // Handshakes let through whose connection does not exist yet: counted, so a burst cannot overshoot.
  const pending = new Map<IncomingMessage, { address: string; abandoned: () => void }>();

  const addressOf = (request: IncomingMessage): string =>
    trust === null ? (request.socket.remoteAddress ?? "unknown") : proxyAddr(request, trust);

  const release = (address: string) => {
    const count = (perAddress.get(address) ?? 1) - 1;
    if (count <= 0) perAddress.delete(address);
    else perAddress.set(address, count);
  };

  /** The limits that need no waiting: checked just before the connection is counted. */
  const countedRefusal = (address: string): Refusal | null => {
    if (limits.maxConnections > 0 && deps.connectionCount() + pending.size >= limits.maxConnections) {
      return { status: 503, code: "node_connection_limit", kind: "node_connections" };
    }
    if (limits.ipMaxConnections > 0 && (perAddress.get(address) ?? 0) >= limits.ipMaxConnections) {
      return { status: 429, code: "ip_connection_limit", kind: "ip_connections" };
    }
    return null;
  };

  // With neither concurrency limit on, connections need not be counted at all.
  const counting = limits.ipMaxConnections > 0 || limits.maxConnections > 0;

  const admit = (request: IncomingMessage, address: string, res: ServerResponse | object, next: () => void) => {
    if (!counting) return next();
    const refusal = countedRefusal(address);
    if (refusal) return refuse(request, res, refusal);
    perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    // A handshake that never completes (the client went away mid-upgrade) gives its place back.
    const abandoned = () => admission.failed(request);
    pending.set(request, { address, abandoned });
    request.socket.once("close", abandoned);
    next();
  };

  const refuse = (request: IncomingMessage, res: ServerResponse | object, refusal: Refusal) => {
    if (refusal.kind) metrics.limitHits.inc({ kind: refusal.kind });
    if (refusal.code === "origin_not_allowed") metrics.authFailures.inc({ code: refusal.code });
    answer(request, res, refusal.status, refusal.code);
  };

  const take = (request: IncomingMessage) => {
    const entry = pending.get(request);
    if (!entry) return undefined;
    pending.delete(request);
    request.socket.off("close", entry.abandoned);
    return entry;
  };

  const admission: Admission = {
    middleware(request, res, next) {
      // Requests of an existing session (long-polling, the upgrade to WebSocket) were admitted with it.
      if (sessionOf(request) !== undefined) {
        // A long-polling POST over the message limit is answered 413 by engine.io; it is counted here.
        if (request.method === "POST" && Number(request.headers["content-length"] ?? 0) > limits.clientMaxMessageBytes) {
          metrics.limitHits.inc({ kind: "message_size" });
        }
        return next();
      }
      if (deps.draining()) return refuse(request, res, { status: 503, code: "node_draining", kind: null });
      const origin = request.headers.origin;
      // Browsers do not apply CORS to WebSocket upgrades, so the origin is checked here for both transports.
      if (allowedOrigins !== null && origin !== undefined && !allowedOrigins.has(origin)) {
        return refuse(request, res, { status: 403, code: "origin_not_allowed", kind: null });
      }
      const address = addressOf(request);
      if (!rate) return admit(request, address, res, next);
      rate.consume(address).then(
        () => admit(request, address, res, next),
        (rejection: unknown) => {
          if (rejection instanceof RateLimiterRes)
            return refuse(request, res, { status: 429, code: "connection_rate_limited", kind: "ip_connection_rate" });
          next(rejection instanceof Error ? rejection : new Error(String(rejection)));
        },
      );
    },
    opened(request) {
      return take(request)?.address ?? null;
    },
    closed: release,
    failed(request) {
      const entry = take(request);
      if (entry) release(entry.address);
    },
    addressOf,
  };
  return admission;
}

/** Which proxy hops may name the client address (TRUST_PROXY), for fastify and for handshakes alike; null: none. */
export function proxyTrust(trustProxy: HttpConfig["trustProxy"]): ((address: string, hop: number) => boolean) | null {
  if (trustProxy === false) return null;
  if (typeof trustProxy === "number") return (_address, hop) => hop < trustProxy;
  return proxyAddr.compile([...trustProxy]);
}

/** The engine.io session a request belongs to (`sid`), from the query engine.io has already parsed when it can. */
function sessionOf(request: IncomingMessage): string | undefined {
  const parsed = (request as { _query?: Record<string, string | undefined> })._query;
  if (parsed !== undefined) return parsed.sid;
  const url = request.url ?? "";
  const at = url.indexOf("?");
  return new URLSearchParams(at === -1 ? "" : url.slice(at + 1)).get("sid") ?? undefined;
}

/**
 * Answers a refused handshake: an HTTP response for long-polling, raw HTTP on the socket of an
 * upgrade. The code is also in a header that any origin may read, so a client whose WebSocket was
 * refused (browsers show nothing of that response) can learn why with a HEAD request.
 */
function answer(request: IncomingMessage, res: ServerResponse | object, status: number, code: ErrorCode): void {
  const body = JSON.stringify(errorBody(code));
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(body)),
    Connection: "close",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": HANDSHAKE_REFUSAL_HEADER,
    [HANDSHAKE_REFUSAL_HEADER]: code,
    ...retryAfter(code),
  };
  if (res instanceof ServerResponse) {
    if (res.headersSent) return void res.end();
    res.writeHead(status, headers);
    res.end(request.method === "HEAD" ? undefined : body);
    return;
  }
  const socket = request.socket;
  if (socket.writable) {
    const head = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("");
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n${head}\r\n${body}`);
  }
  socket.destroySoon();
}

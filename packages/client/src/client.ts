import {
  type AppEventName,
  type AppEvents,
  CLIENT_EVENTS,
  type ErrorCode,
  ERRORS,
  type ErrorBody,
  type EventErrorPayload,
  type KickedPayload,
  HANDSHAKE_REFUSAL_HEADER,
  type ClientPublishPayload,
  type ClientToServerEvents,
  type PublishReply,
  type ReconnectPayload,
  SERVER_EVENTS,
  type ServerToClientEvents,
  type ServiceReplyPayload,
  type ServiceRequestAck,
  type ServiceRequestPayload,
  type ServiceSendPayload,
  type SubscriptionReply,
  type WelcomePayload,
  isErrorCode,
  isRetryable,
} from "@switchboard/protocol";
import { type ManagerOptions, type Socket, type SocketOptions, io } from "socket.io-client";

/** An error the client saw, carrying the server's stable code. */
export class ClientError extends Error {
  /** A code of the registry (docs/errors.md); mostly those clients see, but any the server answers with. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string = ERRORS[code].message) {
    super(message);
    this.name = "ClientError";
    this.code = code;
  }
}

/**
 * Refuses data JSON cannot carry (a BigInt, a cycle) with payload_invalid before it reaches
 * socket.io, whose encoder would throw: at once when connected, and while offline only once the
 * socket reconnects and sends what it buffered, out of reach of the caller.
 */
function refuseUnsendable(data: unknown): void {
  try {
    JSON.stringify(data);
  } catch (err) {
    throw new ClientError("payload_invalid", `the data cannot be sent as JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * A service answered a `request` with an error. `code` is the service's own (a string it chose,
 * such as `out_of_stock`) or one of the registry's (`request_timeout` when it did not answer in time).
 */
export class ServiceError extends Error {
  readonly code: string;

  constructor(code: string, message: string = code) {
    super(message);
    this.name = "ServiceError";
    this.code = code;
  }
}

/** Options of `client.request`. */
export interface RequestOptions<Progress = unknown> {
  /** Called with each progress the service sends before its result. */
  onProgress?: (progress: Progress) => void;
  /**
   * How long to wait for the result; the gateway caps it with SERVICE_REQUEST_TIMEOUT_MS.
   * @default the gateway's SERVICE_REQUEST_TIMEOUT_MS (30 s unless configured)
   */
  timeoutMs?: number;
}

export type ConnectionState =
  | { status: "connecting"; reason?: string }
  | { status: "connected"; welcome: WelcomePayload }
  | { status: "disconnected"; reason: string; code?: ErrorCode };

/** How the token reaches the server. */
export type AuthMode = "handshake" | "event";

export type ConnectOptions = {
  /** The gateway's URL, e.g. `https://rt.example.com`. */
  url: string;
  /**
   * `"handshake"` sends the token in the Socket.IO handshake (it never appears in a URL);
   * `"event"` connects first and sends the `authenticate` event, for servers that expect it.
   * @default "handshake"
   */
  auth?: AuthMode;
  /**
   * How long `subscribe` and `unsubscribe` wait for the server.
   * @default 10000
   */
  requestTimeoutMs?: number;
  /** socket.io-client options, over the client's defaults (reconnection with backoff, WebSocket first). */
  socket?: Partial<ManagerOptions & SocketOptions>;
} & (
  | { token: string; getToken?: never }
  /**
   * Called for the first token, and again whenever the server says the token is expiring or has
   * expired, so a long-lived session survives token lifetimes.
   */
  | { getToken: () => Promise<string> | string; token?: never }
);

/** Events of the client itself; any other name is an event publishers emit (`message` by default). */
export interface ClientEvents {
  state: (state: ConnectionState) => void;
  welcome: (welcome: WelcomePayload) => void;
  kicked: (body: KickedPayload) => void;
  error: (error: ClientError) => void;
  message: (data: unknown) => void;
}

type Listener = (...args: never[]) => void;

// The gateway's own events are the client's to handle, never passed through as application events.
const PROTOCOL_EVENTS: ReadonlySet<string> = new Set(Object.values(SERVER_EVENTS));

// A reconnection hint above this is not taken at its word.
const MAX_RECONNECT_HINT_MS = 60_000;

// Reconnection is socket.io's own: exponential backoff from 1 s to 10 s with jitter.
const SOCKET_DEFAULTS: Partial<ManagerOptions & SocketOptions> = {
  transports: ["websocket", "polling"],
  reconnection: true,
  reconnectionDelay: 1000,
  reconnectionDelayMax: 10_000,
  randomizationFactor: 0.5,
  timeout: 10_000,
  autoConnect: false,
};

// How often a subscription refused as rate_limited is tried again after a reconnection.
const RESUBSCRIBE_ATTEMPTS = 5;

function errorFrom(body: unknown, fallback: ErrorCode): ClientError {
  if (typeof body === "object" && body !== null && "code" in body && isErrorCode(body.code)) {
    const message = "message" in body && typeof body.message === "string" ? body.message : undefined;
    return new ClientError(body.code, message);
  }
  return new ClientError(fallback);
}

/**
 * A connection to the gateway. `Events`, the application's event map (see `AppEvents`), types the
 * data each application event carries; `@switchboard/emitter` takes the same map.
 */
export class SwitchboardClient<Events extends object = AppEvents> {
  /** The underlying socket.io-client socket, for what this client does not cover. */
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  private currentState: ConnectionState = { status: "connecting" };
  private token: string | null;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly subscriptions = new Set<string>();
  private readonly requestTimeoutMs: number;
  private readonly authMode: AuthMode;
  private readonly getToken: (() => Promise<string> | string) | null;
  private welcomed = false;
  private refreshing: Promise<void> | null = null;
  /** Set when the server closed the session because the token expired: reconnect with a fresh one. */
  private reconnectWithFreshToken = false;
  /** Set while waiting out a stopping node's `reconnect` hint. */
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  /** A probe for why the transport was refused is under way. */
  private probing = false;
  /** The last refusal reported, so a retrying client reports each reason once. */
  private lastRefusal: ErrorCode | null = null;
  /** Refusals in a row that the server marks as worth retrying (auth_unavailable, user_connection_limit…), for the backoff. */
  private retriedRefusals = 0;
  private readonly url: string;
  private closed = false;
  /** The calls to services under way, by the id their replies carry. */
  private readonly replyHandlers = new Map<string, (reply: ServiceReplyPayload) => void>();
  private requestCounter = 0;

  constructor(options: ConnectOptions) {
    this.authMode = options.auth ?? "handshake";
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.token = options.token ?? null;
    this.getToken = options.getToken ?? null;
    this.url = options.url;
    this.socket = io(options.url, {
      ...SOCKET_DEFAULTS,
      ...options.socket,
      // A function, so every (re)connection sends the newest token.
      auth: this.authMode === "handshake" ? (send: (auth: object) => void) => send({ token: this.token }) : {},
    });
    this.wire();
    void this.start();
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** Listens to a client event or an application event; returns a function that stops listening. */
  on<Event extends keyof ClientEvents>(event: Event, listener: ClientEvents[Event]): () => void;
  on<Event extends AppEventName<Events>>(event: Event, listener: (data: Events[Event], ...more: unknown[]) => void): () => void;
  on(event: string, listener: Listener): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Resolves with `welcome` once connected; rejects with a ClientError if the session ends first. */
  ready(): Promise<WelcomePayload> {
    const state = this.currentState;
    if (state.status === "connected") return Promise.resolve(state.welcome);
    if (state.status === "disconnected" && (state.code !== undefined || !this.socket.active))
      return Promise.reject(new ClientError(state.code ?? "connection_failed", state.reason));
    return new Promise((resolve, reject) => {
      const stop = this.on("state", (next) => {
        if (next.status === "connected") {
          stop();
          resolve(next.welcome);
        } else if (next.status === "disconnected" && (next.code !== undefined || !this.willReconnect())) {
          // A state with a code (refused, kicked, expired) is final: the server will not take this session back.
          stop();
          reject(new ClientError(next.code ?? "connection_failed", next.reason));
        }
      });
    });
  }

  /** Joins a room the server's SUBSCRIBE_ROOMS policy allows; kept across reconnections. */
  async subscribe(room: string): Promise<void> {
    await this.roomRequest(CLIENT_EVENTS.subscribe, room);
    this.subscriptions.add(room);
  }

  /**
   * Publishes to rooms the token's `publish` claim allows: `room`, or the event's route, plus
   * `in` rooms. Resolves with the message id; rejects with `publish_forbidden`, `route_unknown`, …
   */
  async publish(event: string, data: unknown, target: { room?: string; in?: string | string[] } = {}): Promise<string> {
    refuseUnsendable(data);
    const payload: ClientPublishPayload = {
      event,
      data,
      ...(target.room !== undefined ? { room: target.room } : {}),
      ...(target.in !== undefined ? { _in: target.in } : {}),
    };
    const reply = await this.acknowledged<PublishReply>(() =>
      this.socket.timeout(this.requestTimeoutMs).emitWithAck(CLIENT_EVENTS.publish, payload),
    );
    return reply.id;
  }

  /**
   * Calls a backend service and resolves with its result. Refusals (`service_unknown`,
   * `service_unavailable`, `service_busy`, `service_forbidden`, `payload_too_large`) reject with a
   * ClientError at once; the service's own errors, `request_timeout` and `service_reply_invalid` (the
   * service answered data nested deeper than the gateway passes on) with a ServiceError.
   */
  async request<Result = unknown, Progress = unknown>(
    service: string,
    payload?: unknown,
    options: RequestOptions<Progress> = {},
  ): Promise<Result> {
    refuseUnsendable(payload);
    const id = `r${++this.requestCounter}-${Math.random().toString(36).slice(2, 10)}`;
    return new Promise<Result>((resolve, reject) => {
      // The gateway ends every call with done or error by its deadline; this guards against a gateway that went away.
      const guard = setTimeout(
        () => settle(() => reject(new ServiceError("request_timeout", ERRORS.request_timeout.message))),
        (options.timeoutMs ?? 30_000) + this.requestTimeoutMs,
      );
      const settle = (finish: () => void) => {
        clearTimeout(guard);
        this.replyHandlers.delete(id);
        finish();
      };
      this.replyHandlers.set(id, (reply) => {
        if (reply.kind === "progress") options.onProgress?.(reply.data as Progress);
        else if (reply.kind === "done") settle(() => resolve(reply.data as Result));
        else settle(() => reject(new ServiceError(reply.error.code, reply.error.message)));
      });
      const call: ServiceRequestPayload = {
        id,
        service,
        payload: payload ?? null,
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      };
      this.socket
        .timeout(this.requestTimeoutMs)
        .emitWithAck(CLIENT_EVENTS.request, call)
        .then(
          (ack) => {
            if (!ack.ok) settle(() => reject(errorFrom(ack.error, "internal_error")));
          },
          () => settle(() => reject(new ClientError("request_timeout"))),
        );
    });
  }

  /** Hands a backend service a message that wants no reply; resolves once the service's queue took it. */
  async send(service: string, event: string, payload?: unknown): Promise<void> {
    refuseUnsendable(payload);
    const message: ServiceSendPayload = { service, event, payload: payload ?? null };
    await this.acknowledged<ServiceRequestAck>(() => this.socket.timeout(this.requestTimeoutMs).emitWithAck(CLIENT_EVENTS.send, message));
  }

  async unsubscribe(room: string): Promise<void> {
    this.subscriptions.delete(room);
    await this.roomRequest(CLIENT_EVENTS.unsubscribe, room);
  }

  /** Disconnects for good. */
  close(): void {
    this.closed = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.socket.disconnect();
  }

  private emitLocal(event: string, ...args: unknown[]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        (listener as (...values: unknown[]) => void)(...args);
      } catch (err) {
        // A failing listener must not stop the others or the client; report it where a page sees it.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  private setState(state: ConnectionState): void {
    this.currentState = state;
    this.emitLocal("state", state);
  }

  private fail(error: ClientError): void {
    this.emitLocal("error", error);
  }

  private willReconnect(): boolean {
    return !this.closed && (this.socket.active || this.reconnectWithFreshToken || this.refreshing !== null || this.reconnectTimer !== null);
  }

  private async start(): Promise<void> {
    try {
      if (this.token === null) await this.refreshToken();
    } catch {
      return;
    }
    if (!this.closed) this.socket.connect();
  }

  /** Fetches a fresh token through getToken; at most one fetch at a time. */
  private refreshToken(): Promise<void> {
    if (!this.getToken) return Promise.reject(new ClientError("token_expired"));
    const getToken = this.getToken;
    this.refreshing ??= (async () => {
      try {
        this.token = await getToken();
      } catch (err) {
        const error = new ClientError("token_missing", `getToken failed: ${err instanceof Error ? err.message : String(err)}`);
        this.setState({ status: "disconnected", reason: error.message, code: error.code });
        this.fail(error);
        throw error;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** Refreshes the token, then acts; a failed refresh has already been reported through state and error. */
  private refreshThen(action: () => void): void {
    this.refreshToken().then(action, () => {});
  }

  private async roomRequest(event: "subscribe" | "unsubscribe", room: string): Promise<void> {
    await this.acknowledged<SubscriptionReply>(() => this.socket.timeout(this.requestTimeoutMs).emitWithAck(event, { room }));
  }

  /** An acknowledged event's answer: no answer in time is `request_timeout`, a refusal its own code. */
  private async acknowledged<Reply extends { ok: true } | { ok: false; error: unknown }>(
    emit: () => Promise<Reply>,
  ): Promise<Extract<Reply, { ok: true }>> {
    let reply: Reply;
    try {
      reply = await emit();
    } catch {
      throw new ClientError("request_timeout");
    }
    if (!reply.ok) throw errorFrom((reply as { error: unknown }).error, "internal_error");
    return reply as Extract<Reply, { ok: true }>;
  }

  /**
   * After the transport itself was refused, asks the server why: a browser shows nothing of a
   * refused WebSocket handshake, but a HEAD request for the handshake URL gets the refusal's code
   * in a header without opening a session. origin_not_allowed is final; a limit or a stopping node
   * is reported once while socket.io keeps retrying.
   */
  private async explainRefusal(): Promise<void> {
    if (this.probing || typeof fetch !== "function") return;
    this.probing = true;
    try {
      const options = this.socket.io.opts;
      // engine.io-client adds the trailing slash the server's path match needs.
      const url = new URL(`${(options.path ?? "/socket.io").replace(/\/$/, "")}/`, this.url);
      url.search = "EIO=4&transport=polling";
      const headers = typeof options.extraHeaders === "object" ? options.extraHeaders : {};
      const response = await fetch(url, { method: "HEAD", headers, cache: "no-store" });
      const code = response.headers.get(HANDSHAKE_REFUSAL_HEADER);
      if (!isErrorCode(code) || ERRORS[code].audience !== "client" || code === this.lastRefusal) return;
      this.lastRefusal = code;
      const error = new ClientError(code);
      if (code === "origin_not_allowed") {
        this.socket.disconnect();
        this.setState({ status: "disconnected", reason: error.message, code: error.code });
      } else {
        this.setState({ status: "connecting", reason: error.message });
      }
      this.fail(error);
    } catch {
      // The server is unreachable: socket.io's own retries say so.
    } finally {
      this.probing = false;
    }
  }

  /**
   * Joins the subscriptions again on a new socket, one at a time: the server limits events per
   * second (CLIENT_EVENT_RATE), so a refused one waits a second and is tried again.
   */
  private async resubscribe(): Promise<void> {
    for (const room of [...this.subscriptions]) {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.roomRequest(CLIENT_EVENTS.subscribe, room);
          break;
        } catch (error) {
          const clientError = error instanceof ClientError ? error : new ClientError("internal_error");
          if (clientError.code !== "rate_limited" || attempt >= RESUBSCRIBE_ATTEMPTS) {
            this.fail(clientError);
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      }
    }
  }

  /**
   * A refusal that may pass later (`retry` in the error registry: keys not loaded yet, the user's
   * socket limit, an internal error) is reported once and tried again with socket.io's own backoff,
   * since socket.io does not reconnect after a refusal by the server. False when retries are off.
   */
  private retryRefusal(error: ClientError): boolean {
    if (!isRetryable(error.code) || !this.socket.io.reconnection()) return false;
    if (error.code !== this.lastRefusal) {
      this.lastRefusal = error.code;
      this.fail(error);
    }
    this.setState({ status: "connecting", reason: error.message });
    this.reconnectAfter(this.backoffMs(this.retriedRefusals++));
    return true;
  }

  /** socket.io's delay before reconnection attempt `attempt` (from 0): doubling up to its maximum, with its jitter. */
  private backoffMs(attempt: number): number {
    const manager = this.socket.io;
    const delay = Math.min(manager.reconnectionDelay() * 2 ** Math.min(attempt, 30), manager.reconnectionDelayMax());
    const jitter = manager.randomizationFactor();
    return Math.round(delay * (1 - jitter + 2 * jitter * Math.random()));
  }

  /** Leaves now and connects again after `ms` (a stopping node's hint, or a refusal worth retrying). */
  private reconnectAfter(ms: number): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closed) this.socket.connect();
    }, ms);
    // With the timer set, the disconnect this causes is not taken for the end of the session.
    this.socket.disconnect();
  }

  private unreachable(detail: string): void {
    const error = new ClientError("connection_failed", `${ERRORS.connection_failed.message} (${detail})`);
    this.setState({ status: "disconnected", reason: error.message, code: error.code });
    this.fail(error);
  }

  private authenticate(): void {
    // No token yet is the server's token_missing.
    this.socket.emit(CLIENT_EVENTS.authenticate, { token: this.token ?? "" });
  }

  private wire(): void {
    const socket = this.socket;

    socket.on("connect", () => {
      if (this.authMode === "event") this.authenticate();
    });

    socket.on("connect_error", (err: Error & { data?: unknown }) => {
      if (err.data === undefined) {
        void this.explainRefusal();
        // Not an answer from Switchboard: the server is unreachable. socket.io retries with backoff.
        if (socket.active && socket.io.reconnection()) this.setState({ status: "connecting", reason: err.message });
        else this.unreachable(err.message);
        return;
      }
      const error = errorFrom(err.data, "internal_error");
      if (error.code === "token_expired" && this.getToken) {
        this.refreshThen(() => socket.connect());
        return;
      }
      if (this.retryRefusal(error)) return;
      this.setState({ status: "disconnected", reason: error.message, code: error.code });
      this.fail(error);
    });

    socket.io.on("reconnect_failed", () => this.unreachable("gave up reconnecting"));

    socket.on(SERVER_EVENTS.welcome, (welcome: WelcomePayload) => {
      this.lastRefusal = null;
      this.retriedRefusals = 0;
      const returning = this.welcomed;
      this.welcomed = true;
      this.setState({ status: "connected", welcome });
      this.emitLocal("welcome", welcome);
      // Subscriptions live on the server's socket; a new socket after a reconnection needs them again.
      if (returning) void this.resubscribe();
    });

    socket.on(SERVER_EVENTS.tokenExpiring, () => {
      if (!this.getToken) return;
      this.refreshThen(() => this.authenticate());
    });

    socket.on(SERVER_EVENTS.unauthorized, (body: ErrorBody) => {
      const error = errorFrom(body, "internal_error");
      // The server closes the socket next; with getToken an expired session comes back by itself.
      if (error.code === "token_expired" && this.getToken) {
        this.reconnectWithFreshToken = true;
        return;
      }
      if (this.retryRefusal(error)) return;
      this.setState({ status: "disconnected", reason: error.message, code: error.code });
      this.fail(error);
    });

    socket.on(SERVER_EVENTS.reply, (reply: ServiceReplyPayload) => this.replyHandlers.get(reply.id)?.(reply));
    socket.on(SERVER_EVENTS.kicked, (body: KickedPayload) => {
      this.setState({ status: "disconnected", reason: typeof body.reason === "string" ? body.reason : body.message, code: "kicked" });
      this.emitLocal("kicked", body);
    });

    socket.on("disconnect", (reason: string) => {
      // The gateway forgets a socket's calls when it leaves: their answers will never come.
      for (const handler of [...this.replyHandlers.values()]) {
        handler({
          id: "",
          kind: "error",
          error: { code: "request_timeout", message: `the connection closed (${reason}) before the service answered` },
        });
      }
      if (this.reconnectWithFreshToken) {
        this.reconnectWithFreshToken = false;
        this.setState({ status: "connecting", reason: "refreshing an expired token" });
        this.refreshThen(() => socket.connect());
        return;
      }
      const state = this.currentState;
      // Keep the code of an earlier kick or refusal; socket.io reconnects by itself after network failures.
      if (state.status === "disconnected") return;
      // Left on a stopping node's request: the reconnection is already scheduled.
      if (this.reconnectTimer !== null) return;
      if (socket.active) this.setState({ status: "connecting", reason });
      else this.setState({ status: "disconnected", reason });
    });

    // A stopping node asks its clients to go, spread over time: leave now, come back (through the
    // balancer, to another node) after the hint, rather than all at once when it closes.
    socket.on(SERVER_EVENTS.reconnect, (hint: ReconnectPayload) => {
      const asked = typeof hint?.retryAfterMs === "number" && Number.isFinite(hint.retryAfterMs) ? hint.retryAfterMs : 1000;
      const wait = Math.min(Math.max(0, asked), MAX_RECONNECT_HINT_MS);
      this.setState({ status: "connecting", reason: "the server asked to reconnect" });
      this.reconnectAfter(wait);
    });

    // The server refused an event sent without an acknowledgement (rate, shape): the session goes on.
    socket.on(SERVER_EVENTS.error, (body: EventErrorPayload) => this.fail(errorFrom(body, "internal_error")));

    socket.onAny((event: string, ...args: unknown[]) => {
      if (PROTOCOL_EVENTS.has(event)) return;
      this.emitLocal(event, ...args);
    });
  }
}

/** Connects to a Switchboard gateway; `Events` is the application's event map, when it has one. */
export function connect<Events extends object = AppEvents>(options: ConnectOptions): SwitchboardClient<Events> {
  return new SwitchboardClient<Events>(options);
}

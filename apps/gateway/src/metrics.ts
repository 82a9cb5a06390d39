import { AnswerTimeouts } from "@switchboard/protocol";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** How long a scrape waits for what it reads from Redis (the services' queue depths) before leaving it out. */
const SCRAPE_READ_TIMEOUT_MS = 1000;

/** Each limit a client, address, user or publisher can run into; the label of `switchboard_limit_hits_total`. */
export const LIMIT_KINDS = [
  "message_size",
  "token_size",
  "payload_depth",
  "event_rate",
  "event_rate_disconnect",
  "rooms_per_socket",
  "slow_consumer",
  "ip_connection_rate",
  "ip_connections",
  "node_connections",
  "user_sockets",
  "frame_size",
  "http_body_size",
  "redis_commands",
  "revocations",
] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

/** Where a message to this node's sockets came from; the label of `switchboard_messages_received_total`. */
export const MESSAGE_SOURCES = ["adapter", "raw_frame", "api", "client"] as const;
export type MessageSource = (typeof MESSAGE_SOURCES)[number];

// Codes a connection can be refused or closed with by authentication; each one is exported from start.
const AUTH_FAILURE_CODES = [
  "token_missing",
  "token_malformed",
  "token_invalid_signature",
  "token_expired",
  "token_not_yet_valid",
  "token_algorithm_not_allowed",
  "token_claims_invalid",
  "auth_timeout",
  "auth_unavailable",
  "origin_not_allowed",
  "user_connection_limit",
] as const;
const DROP_CHANNELS = ["socket.io#emitter", "adapter", "replies"] as const;
const FRAME_LAYOUTS = ["map", "array"] as const;
export type FrameLayout = (typeof FRAME_LAYOUTS)[number];
const DROP_REASONS = [
  "frame_not_msgpack",
  "frame_invalid",
  "frame_too_large",
  "frame_unsigned",
  "frame_signature_invalid",
  "route_unknown",
  "route_incomplete",
] as const;

/** How a call to a service ended (or why it never started); the label of `switchboard_service_requests_total`. */
export const SERVICE_OUTCOMES = [
  "done",
  "error",
  "timeout",
  "reply_invalid",
  "caller_gone",
  "sent",
  "unknown",
  "unavailable",
  "busy",
  "forbidden",
  "too_large",
  "too_many",
] as const;
export type ServiceOutcome = (typeof SERVICE_OUTCOMES)[number];

/** The gateway's Prometheus metrics, on a registry of its own (no process-wide singletons). */
export interface Metrics {
  registry: Registry;
  /** Authenticated sockets. */
  connectedSockets: Gauge;
  /** Open transport connections, authenticated or not. */
  openConnections: Gauge;
  /** Counts a message taken for delivery (switchboard_messages_received_total). */
  messageReceived(source: MessageSource): void;
  authFailures: Counter<"code">;
  /** Counts a raw frame accepted for delivery (switchboard_frames_delivered_total). */
  frameDelivered(layout: FrameLayout): void;
  framesDropped: Counter<"channel" | "reason">;
  limitHits: Counter<"kind">;
  redisConnected: Gauge<"role">;
  subscriberRecreations: Counter;
  publishFailures: Counter;
  /**
   * Counts a call to a service by how it ended; `service` is empty for calls refused before a
   * service was known to exist (so that clients cannot make up label values). `ms` is how long it took.
   */
  serviceRequest(service: string, outcome: ServiceOutcome, ms: number): void;
  /** Counts a reply that came after its call had ended (timed out, caller gone). */
  serviceReplyDropped(): void;
  /** Counts lifecycle records dropped because Redis was away too long for the buffer. */
  lifecycleDropped(count: number): void;
  /** Counts presence writes (or heartbeats) Redis refused or did not answer. */
  presenceWriteFailed(): void;
  /** Where the queue depths come from when the metrics are read. */
  readServiceQueues(reader: () => Promise<{ name: string; queueDepth: number }[]>): void;
  /** Where the number of room channels the node holds comes from when the metrics are read. */
  readRoomChannels(reader: () => number): void;
}

/** How often the event-loop lag is sampled. */
const EVENT_LOOP_SAMPLE_MS = 100;

export function createMetrics(nodeId: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  // The event-loop lag histogram samples with a timer; prom-client's default (every 10 ms) woke an
  // idle node 100 times a second, most of what a node holding 5,000 quiet sockets spent. A stall
  // still shows: the sample after it comes late by the stall's length.
  collectDefaultMetrics({ register: registry, prefix: "switchboard_", eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const limitHits = new Counter({
    name: "switchboard_limit_hits_total",
    help: "Times a client, address, user or publisher ran into a limit, by kind",
    labelNames: ["kind"],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: "switchboard_auth_failures_total",
    help: "Connections refused or closed by authentication, by error code",
    labelNames: ["code"],
    registers: [registry],
  });
  const framesDropped = new Counter({
    name: "switchboard_frames_dropped_total",
    help: "Frames dropped because they could not be decoded, had no documented shape, were too large or not signed as required",
    labelNames: ["channel", "reason"],
    registers: [registry],
  });
  // Counted once per message: plain numbers here, handed to the counters when they are read, since a
  // labelled increment hashes its labels each time.
  const received = countsOf(MESSAGE_SOURCES);
  const delivered = countsOf(FRAME_LAYOUTS);
  const messagesReceived = new Counter({
    name: "switchboard_messages_received_total",
    help: "Messages this node took for delivery to its sockets, by source",
    labelNames: ["source"],
    registers: [registry],
    collect() {
      for (const source of MESSAGE_SOURCES) this.inc({ source }, received.take(source));
    },
  });
  const framesDelivered = new Counter({
    name: "switchboard_frames_delivered_total",
    help: "Raw frames accepted for local delivery",
    labelNames: ["channel", "layout"],
    registers: [registry],
    collect() {
      for (const layout of FRAME_LAYOUTS) {
        const count = delivered.take(layout);
        if (count > 0) this.inc({ channel: "socket.io#emitter", layout }, count);
      }
    },
  });
  const serviceRequests = new Counter({
    name: "switchboard_service_requests_total",
    help: "Calls from this node's sockets to services, by service and outcome",
    labelNames: ["service", "outcome"],
    registers: [registry],
  });
  const serviceSeconds = new Histogram({
    name: "switchboard_service_request_seconds",
    help: "How long a service took to answer this node's callers (done, error or timeout)",
    labelNames: ["service"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const serviceRepliesDropped = new Counter({
    name: "switchboard_service_replies_dropped_total",
    help: "Service replies that came after their call had ended (timed out, caller gone)",
    registers: [registry],
  });
  const lifecycleDropped = new Counter({
    name: "switchboard_lifecycle_dropped_total",
    help: "Lifecycle records dropped because Redis was away longer than the node's buffer holds",
    registers: [registry],
  });
  const presenceWriteFailures = new Counter({
    name: "switchboard_presence_write_failures_total",
    help: "Presence writes and node heartbeats that Redis refused or did not answer (each is made again, the node's share in full)",
    registers: [registry],
  });
  let queueReader: (() => Promise<{ name: string; queueDepth: number }[]>) | null = null;
  // A scrape must answer while Redis does not: it is when Redis stops answering that the other figures matter most.
  const scrapeReads = new AnswerTimeouts(SCRAPE_READ_TIMEOUT_MS, () => new Error("Redis did not answer in time"));
  new Gauge({
    name: "switchboard_service_queue_depth",
    help: "Requests in each service's queue, waiting or under way (read from Redis when scraped)",
    labelNames: ["service"],
    registers: [registry],
    async collect() {
      this.reset();
      const reader = queueReader;
      if (reader === null) return;
      // Left out on any failure, so what the failure was is not kept.
      const depths = await scrapeReads.within(reader, () => new Error("the services' queue depths could not be read")).catch(() => []);
      for (const { name, queueDepth } of depths) this.set({ service: name }, queueDepth);
    },
  });
  let roomChannelReader: () => number = () => 0;
  new Gauge({
    name: "switchboard_redis_room_channels",
    help: "Room channels this node is subscribed to: one per room with a socket here (REDIS_SUBSCRIPTIONS=rooms)",
    registers: [registry],
    collect() {
      this.set(roomChannelReader());
    },
  });
  // Every label set is present from the start, at zero, so an alert can tell "none yet" from "not exported".
  for (const kind of LIMIT_KINDS) limitHits.inc({ kind }, 0);
  for (const code of AUTH_FAILURE_CODES) authFailures.inc({ code }, 0);
  for (const channel of DROP_CHANNELS) for (const reason of DROP_REASONS) framesDropped.inc({ channel, reason }, 0);
  for (const source of MESSAGE_SOURCES) messagesReceived.inc({ source }, 0);
  for (const layout of FRAME_LAYOUTS) framesDelivered.inc({ channel: "socket.io#emitter", layout }, 0);
  for (const outcome of SERVICE_OUTCOMES) serviceRequests.inc({ service: "", outcome }, 0);
  return {
    registry,
    connectedSockets: new Gauge({
      name: "switchboard_connected_sockets",
      help: "Authenticated sockets connected to this node",
      registers: [registry],
    }),
    openConnections: new Gauge({
      name: "switchboard_open_connections",
      help: "Open transport connections to this node, authenticated or not",
      registers: [registry],
    }),
    messageReceived: (source) => received.add(source),
    authFailures,
    serviceRequest(service, outcome, ms) {
      serviceRequests.inc({ service, outcome });
      if (outcome === "done" || outcome === "error" || outcome === "timeout") serviceSeconds.observe({ service }, ms / 1000);
    },
    serviceReplyDropped: () => serviceRepliesDropped.inc(),
    lifecycleDropped: (count) => lifecycleDropped.inc(count),
    presenceWriteFailed: () => presenceWriteFailures.inc(),
    readServiceQueues(reader) {
      queueReader = reader;
    },
    readRoomChannels(reader) {
      roomChannelReader = reader;
    },
    frameDelivered: (layout) => delivered.add(layout),
    framesDropped,
    limitHits,
    redisConnected: new Gauge({
      name: "switchboard_redis_connected",
      help: "1 while this node's Redis connection of that role is ready, else 0 (absent in memory mode)",
      labelNames: ["role"],
      registers: [registry],
    }),
    subscriberRecreations: new Counter({
      name: "switchboard_redis_subscriber_recreations_total",
      help: "Times the Redis subscriber was replaced because it stopped receiving this node's probes",
      registers: [registry],
    }),
    publishFailures: new Counter({
      name: "switchboard_redis_publish_failures_total",
      help: "Broadcasts this node could not hand to Redis (Redis unavailable); its own sockets still got them",
      registers: [registry],
    }),
  };
}

/** Counts by key, taken (and reset) when read. */
function countsOf<K extends string>(keys: readonly K[]): { add(key: K): void; take(key: K): number } {
  const counts = Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
  return {
    add(key) {
      counts[key]++;
    },
    take(key) {
      const count = counts[key];
      counts[key] = 0;
      return count;
    },
  };
}

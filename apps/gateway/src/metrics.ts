import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

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
] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

/** The gateway's Prometheus metrics, on a registry of its own (no process-wide singletons). */
export interface Metrics {
  registry: Registry;
  connectedSockets: Gauge;
  authFailures: Counter<"code">;
  framesDelivered: Counter<"channel" | "layout">;
  framesDropped: Counter<"channel" | "reason">;
  limitHits: Counter<"kind">;
  redisConnected: Gauge<"role">;
  subscriberRecreations: Counter;
  publishFailures: Counter;
}

export function createMetrics(nodeId: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry, prefix: "switchboard_" });
  const limitHits = new Counter({
    name: "switchboard_limit_hits_total",
    help: "Times a client, address, user or publisher ran into a limit, by kind",
    labelNames: ["kind"],
    registers: [registry],
  });
  // Every kind is present from the start, at zero, so an alert can tell "none yet" from "not exported".
  for (const kind of LIMIT_KINDS) limitHits.inc({ kind }, 0);
  return {
    registry,
    connectedSockets: new Gauge({
      name: "switchboard_connected_sockets",
      help: "Authenticated sockets connected to this node",
      registers: [registry],
    }),
    authFailures: new Counter({
      name: "switchboard_auth_failures_total",
      help: "Connections refused or closed by authentication, by error code",
      labelNames: ["code"],
      registers: [registry],
    }),
    framesDelivered: new Counter({
      name: "switchboard_frames_delivered_total",
      help: "Raw frames accepted for local delivery",
      labelNames: ["channel", "layout"],
      registers: [registry],
    }),
    framesDropped: new Counter({
      name: "switchboard_frames_dropped_total",
      help: "Frames dropped because they could not be decoded or had no documented shape",
      labelNames: ["channel", "reason"],
      registers: [registry],
    }),
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

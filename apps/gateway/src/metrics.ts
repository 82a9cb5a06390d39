import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/** The gateway's Prometheus metrics, on a registry of its own (no process-wide singletons). */
export interface Metrics {
  registry: Registry;
  connectedSockets: Gauge;
  authFailures: Counter<"code">;
  framesDelivered: Counter<"channel" | "layout">;
  framesDropped: Counter<"channel" | "reason">;
}

export function createMetrics(nodeId: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry, prefix: "switchboard_" });
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
  };
}

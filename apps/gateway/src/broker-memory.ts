import { SwitchboardError } from "@switchboard/protocol";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { Adapter, type BroadcastOptions } from "socket.io-adapter";
import { encode as encodeMsgpack } from "notepack.io";
import type { Broker, BrokerDeps, OutboundMessage, RateLimiterOptions } from "./broker.js";
import { asBuffer, broadcastOf } from "./broker-frames.js";
import { exceptUnauthenticated } from "./rooms.js";
import { createMemoryState } from "./state-memory.js";

/** One node is the whole cluster: Socket.IO's in-memory adapter, raw frames delivered in process. */
export function createMemoryBroker(deps: Pick<BrokerDeps, "limits">): Broker {
  let handler: ((frame: Buffer) => void) | null = null;
  let local: LocalAdapter | null = null;
  const check = (message: OutboundMessage) => {
    const broadcast = broadcastOf(message);
    // Measured as Redis would carry it, so a message too large for a cluster is too large here too.
    if (encodeMsgpack([broadcast.packet, broadcast.rooms, broadcast.except]).length > deps.limits.frameMaxBytes)
      throw new SwitchboardError("frame_too_large");
    return broadcast;
  };
  const deliver = ({ packet, rooms, except }: ReturnType<typeof broadcastOf>) => {
    local?.broadcast(packet, { rooms: new Set(rooms), except: new Set(except), flags: {} });
  };
  return {
    mode: "memory",
    adapter: class extends LocalAdapter {
      constructor(nsp: ConstructorParameters<typeof LocalAdapter>[0]) {
        super(nsp);
        // The node has one namespace, `/`: its adapter is where published messages go.
        local ??= this;
      }
    },
    // No Redis, no services: nothing ever replies.
    onServiceReply() {},
    // Every broadcast is local: a room receives its messages as soon as it is joined.
    roomsSubscribed: () => null,
    onRawFrame(next) {
      handler = next;
    },
    // The frame takes the same delivery path as one from Redis.
    async publishRaw(frame) {
      const bytes = asBuffer(frame);
      if (bytes.length > deps.limits.frameMaxBytes) throw new SwitchboardError("frame_too_large");
      handler?.(bytes);
    },
    async publish(message) {
      deliver(check(message));
    },
    async publishBatch(messages) {
      // All checked before any is delivered, as Redis takes a batch all or none.
      for (const broadcast of messages.map(check)) deliver(broadcast);
    },
    createRateLimiter: memoryRateLimiter,
    state: createMemoryState(),
    ready: () => true,
    onReady: (listener) => queueMicrotask(listener),
    redisState: () => "none",
    close: async () => {},
  };
}

export function memoryRateLimiter(options: RateLimiterOptions): RateLimiterMemory {
  return new RateLimiterMemory({ points: options.points, duration: options.durationSeconds, keyPrefix: options.name });
}

/** The in-memory adapter of a single node, keeping unauthenticated sockets out of broadcasts. */
class LocalAdapter extends Adapter {
  override broadcast(packet: unknown, opts: BroadcastOptions): void {
    const except = exceptUnauthenticated(opts.except, this.rooms);
    // Written out rather than spread: V8 copies a spread object with an added property slowly.
    super.broadcast(packet, except === opts.except ? opts : { rooms: opts.rooms, except, flags: opts.flags });
  }
}

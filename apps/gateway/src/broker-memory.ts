import { SwitchboardError } from "@switchboard/protocol";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { Adapter, type BroadcastOptions } from "socket.io-adapter";
import type { Broker, BrokerDeps, RateLimiterOptions } from "./broker.js";
import { exceptUnauthenticated } from "./rooms.js";
import { createMemoryState } from "./state-memory.js";

/** One node is the whole cluster: Socket.IO's in-memory adapter, raw frames delivered in process. */
export function createMemoryBroker(deps: Pick<BrokerDeps, "limits">): Broker {
  let handler: ((frame: Buffer) => void) | null = null;
  return {
    mode: "memory",
    adapter: LocalAdapter,
    // No Redis, no services: nothing ever replies.
    onServiceReply() {},
    onRawFrame(next) {
      handler = next;
    },
    // The frame takes the same delivery path as one from Redis.
    async publishRaw(frame) {
      const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      if (bytes.length > deps.limits.frameMaxBytes) throw new SwitchboardError("frame_too_large");
      handler?.(bytes);
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
    super.broadcast(packet, except === opts.except ? opts : { ...opts, except });
  }
}

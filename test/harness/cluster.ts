import { createClient } from "redis";
import { type GatewayProcess, startGateway } from "./gateway.js";
import { waitFor } from "./ports.js";
import { type RedisServer, startRedis } from "./redis.js";

export interface Cluster {
  redis: RedisServer;
  nodes: GatewayProcess[];
  /** A plain Redis client, as a non-Node publisher would use. */
  publisher: ReturnType<typeof createClient>;
  close(): Promise<void>;
}

/** A real redis-server and `count` gateway processes sharing it. */
export async function startCluster(count = 2, env: Record<string, string> = {}): Promise<Cluster> {
  const redis = await startRedis();
  const nodes: GatewayProcess[] = [];
  const publisher = createClient({ url: redis.url });
  try {
    for (let index = 0; index < count; index++) {
      nodes.push(await startGateway({ REDIS_URL: redis.url, NODE_ID: `node-${String.fromCharCode(97 + index)}`, ...env }));
    }
    await publisher.connect();
    // Each node subscribes to the raw channel and the adapter's pattern before it reports healthy;
    // this also proves Redis sees them all.
    await waitFor("all nodes subscribed", async () => {
      const counts = await publisher.pubSubNumSub("socket.io#emitter");
      return counts["socket.io#emitter"] === count ? true : undefined;
    });
  } catch (err) {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await redis.stop();
    throw err;
  }
  return {
    redis,
    nodes,
    publisher,
    async close() {
      await publisher.quit().catch(() => {});
      await Promise.allSettled(nodes.map((node) => node.stop()));
      await redis.stop();
    },
  };
}

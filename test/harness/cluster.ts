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
/** `env` goes to every node; `nodeEnv[i]`, when given, to node i on top of it. */
export async function startCluster(
  count = 2,
  env: Record<string, string> = {},
  nodeEnv: readonly Record<string, string>[] = [],
): Promise<Cluster> {
  const redis = await startRedis();
  const nodes: GatewayProcess[] = [];
  const publisher = createClient({ url: redis.url });
  // Tests stop Redis on purpose; the client's reconnection errors are expected then.
  publisher.on("error", () => {});
  try {
    for (let index = 0; index < count; index++) {
      nodes.push(
        await startGateway({ REDIS_URL: redis.url, NODE_ID: `node-${String.fromCharCode(97 + index)}`, ...env, ...nodeEnv[index] }),
      );
    }
    await publisher.connect();
    // Each node subscribes to the raw channel and the adapter's pattern before it reports healthy;
    // this also proves Redis sees them all.
    let subscribed: number | undefined;
    await waitFor("all nodes subscribed", async () => {
      subscribed = (await publisher.pubSubNumSub("socket.io#emitter"))["socket.io#emitter"];
      return subscribed === count ? true : undefined;
    }).catch((err: Error) => {
      const tails = nodes.map((node) => `${node.nodeId} (exit ${node.child.exitCode}):\n${node.lines.slice(-5).join("\n")}`).join("\n");
      throw new Error(`${err.message}: ${subscribed} of ${count} subscribed to socket.io#emitter\n${tails}`);
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
      // QUIT would wait for a Redis that a test stopped; a plain disconnect does not.
      await (publisher.isReady ? publisher.quit() : publisher.disconnect()).catch(() => {});
      await Promise.allSettled(nodes.map((node) => node.stop()));
      await redis.stop();
    },
  };
}

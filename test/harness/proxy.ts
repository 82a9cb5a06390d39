import { type Server, type Socket, connect, createServer } from "node:net";

/**
 * A TCP proxy in front of Redis that can make subscriber connections go silent: the connection
 * stays open and Redis still counts the subscription, but nothing Redis sends reaches the client.
 * That is the failure a liveness probe must catch (a subscriber that is healthy at TCP level).
 */
export interface FaultProxy {
  url: string;
  /** From now on, connections that have subscribed receive nothing more. */
  silenceSubscribers(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<FaultProxy> {
  const links = new Set<{ client: Socket; upstream: Socket; subscriber: boolean; silenced: boolean }>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    const link = { client, upstream, subscriber: false, silenced: false };
    links.add(link);
    client.on("data", (chunk: Buffer) => {
      // RESP commands name themselves in plain text: SUBSCRIBE, PSUBSCRIBE.
      if (/subscribe/i.test(chunk.toString("latin1"))) link.subscriber = true;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!link.silenced) client.write(chunk);
    });
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    silenceSubscribers() {
      for (const link of links) if (link.subscriber) link.silenced = true;
    },
    close() {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

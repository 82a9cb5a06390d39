import { type ServiceInfo, listServices, readService, unregisterService } from "@switchboard/protocol";
import { createClient } from "@redis/client";

/** The cluster's services as Redis holds them: what `GET /api/v1/services` shows, from Node. */
export interface Registry {
  /** Every registered service, by name, with its live instances and queue. */
  list(): Promise<ServiceInfo[]>;
  /** One service; null when it is not registered. */
  get(name: string): Promise<ServiceInfo | null>;
  exists(name: string): Promise<boolean>;
  /** Removes a service with its queued requests; false when it was not registered. Running instances register it again. */
  unregister(name: string): Promise<boolean>;
  close(): Promise<void>;
}

export function createRegistry(options: { redis: string; onError?: (error: Error) => void }): Registry {
  const client = createClient({ url: options.redis });
  client.on("error", options.onError ?? ((error: Error) => process.stderr.write(`@switchboard/service registry: ${error.message}\n`)));
  const connected = client.connect();
  const redis = {
    async command(args: string[]) {
      await connected;
      return client.sendCommand(args);
    },
  };
  return {
    list: () => listServices(redis),
    get: (name) => readService(redis, name),
    exists: async (name) => (await readService(redis, name)) !== null,
    unregister: (name) => unregisterService(redis, name),
    async close() {
      await connected.catch(() => {});
      if (client.isOpen) await client.quit();
    },
  };
}

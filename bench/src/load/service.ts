import { type Service, createService } from "@switchboard/service";
import { collectGarbage, serveRequests } from "../ipc.js";

/** One instance of an echo service, in a process of its own, as a backend service would run. */
export type ServiceWorkerApi = {
  start: { args: { redisUrl: string; name: string; concurrency: number; instanceId: string }; reply: null };
  /** This process's CPU time so far (µs) and the requests it answered. */
  usage: { args: Record<string, never>; reply: { cpuUs: number; handled: number } };
  close: { args: Record<string, never>; reply: null };
};

let service: Service | null = null;
let handled = 0;

serveRequests<ServiceWorkerApi>({
  async start(args) {
    service = createService({
      redis: args.redisUrl,
      name: args.name,
      concurrency: args.concurrency,
      instanceId: args.instanceId,
      handler: ({ payload }) => {
        handled++;
        return payload;
      },
    });
    await service.ready();
    return null;
  },
  usage() {
    collectGarbage();
    const cpu = process.cpuUsage();
    return { cpuUs: cpu.user + cpu.system, handled };
  },
  async close() {
    await service?.close();
    service = null;
    return null;
  },
});

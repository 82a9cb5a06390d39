import { type Service, createService } from "@switchboard/service";

/**
 * A service instance as its own process, for tests that kill one: it answers by `payload.op`
 * (progress, fail, sleep, echo) and prints "ready" once registered, then each request it takes.
 */
interface Call {
  op?: string;
  steps?: number;
  ms?: number;
}

const service: Service = createService<Call>({
  redis: process.env.REDIS_URL ?? "",
  name: process.env.SERVICE_NAME ?? "worker",
  concurrency: Number(process.env.CONCURRENCY ?? 4),
  visibilityTimeoutMs: Number(process.env.VISIBILITY_TIMEOUT_MS ?? 30_000),
  instanceId: process.env.INSTANCE_ID,
  handler: async (request, context) => {
    process.stdout.write(`took ${request.id} ${JSON.stringify(request.payload)}\n`);
    const call = request.payload ?? {};
    if (call.op === "sleep") await new Promise((resolve) => setTimeout(resolve, call.ms ?? 1000));
    for (let step = 1; step <= (call.steps ?? 0); step++) await context.notify({ step });
    if (call.op === "fail") throw Object.assign(new Error("nothing left"), { code: "out_of_stock" });
    return { instance: service.instanceId, payload: call, caller: request.caller, kind: request.kind, event: request.event };
  },
});
await service.ready();
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  service.close().then(() => process.exit(0));
});

export { createService } from "./service.js";
export type { IncomingRequest, RequestContext, RequestHandler, Service, ServiceOptions } from "./service.js";
export { createRegistry } from "./registry.js";
export { readLifecycle } from "./lifecycle.js";
export type { LifecycleReader, LifecycleReaderOptions } from "./lifecycle.js";
export type { Registry } from "./registry.js";
export { SERVICE_INSTANCE_TTL_MS, SERVICE_KEYS, SwitchboardError } from "@switchboard/protocol";
export { LIFECYCLE_KEYS } from "@switchboard/protocol";
export type { Caller, LifecycleRecord, LifecycleType, ServiceInfo } from "@switchboard/protocol";

export { ConfigError, loadConfig } from "./config.js";
export type { AuthConfig, Config, VerificationKey } from "./config.js";
export { createGateway, VERSION } from "./server.js";
export type { Gateway } from "./server.js";

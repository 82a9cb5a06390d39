export { ClientError, ServiceError, SwitchboardClient, connect } from "./client.js";
export type { AuthMode, ClientEvents, ConnectOptions, ConnectionState, RequestOptions } from "./client.js";
export type { AppEventName, AppEvents, ClientErrorCode, KickedPayload, WelcomePayload } from "@switchboard/protocol";

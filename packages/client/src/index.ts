export { ClientError, SwitchboardClient, connect } from "./client.js";
export type { AuthMode, ClientEvents, ConnectOptions, ConnectionState } from "./client.js";
export type { AppEventName, AppEvents, ClientErrorCode, KickedPayload, WelcomePayload } from "@switchboard/protocol";

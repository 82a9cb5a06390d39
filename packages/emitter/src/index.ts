export { createEmitter } from "./emitter.js";
export type { EmitterOptions, PublishResult, SwitchboardEmitter, Target } from "./emitter.js";
export type { PublishClient } from "./redis.js";
export {
  ERRORS,
  RAW_FRAME_CHANNEL,
  SwitchboardError,
  encodeRawFrame,
  normaliseSiteHost,
  siteRoom,
  userRoom,
} from "@switchboard/protocol";
export type {
  AppEventName,
  AppEvents,
  ErrorCode,
  KickOptions,
  RawFrame,
  RoomCount,
  SitePresence,
  UserPresence,
} from "@switchboard/protocol";

export type { Identity, TokenClaims } from "./claims.js";
export { ERROR_CODES, ERRORS, SwitchboardError, errorBody, isErrorCode, isRetryable } from "./errors.js";
export type { ClientErrorCode, ErrorAudience, ErrorBody, ErrorCode } from "./errors.js";
export {
  CLIENT_EVENTS,
  DEFAULT_EVENT,
  HANDSHAKE_REFUSAL_HEADER,
  RESERVED_EVENTS,
  SERVER_EVENTS,
  isPublishableEvent,
} from "./events.js";
export type {
  AppEventName,
  AppEvents,
  AuthenticatePayload,
  Publishable,
  AuthenticatedPayload,
  ClientPublishPayload,
  ClientToServerEvents,
  ConfigurePayload,
  ConfiguredPayload,
  EventErrorPayload,
  KickedPayload,
  PresencePayload,
  PublishReply,
  ReconnectPayload,
  RefusedReply,
  ServerToClientEvents,
  ServiceReplyPayload,
  ServiceRequestAck,
  ServiceRequestPayload,
  ServiceSendPayload,
  SubscribePayload,
  SubscriptionReply,
  TokenExpiringPayload,
  UnauthorizedPayload,
  WelcomePayload,
} from "./events.js";
export {
  NOT_WHOLE_MSGPACK,
  NO_ROOMS,
  RAW_FRAME_CHANNEL,
  arrayFrameProblem,
  decodeMsgpack,
  decodeRawFrame,
  encodeEveryoneFrame,
  checkRawFrame,
  encodeRawFrame,
  encodeSignedEnvelope,
  readArrayFrame,
  readRawFrame,
  readSignedEnvelope,
  sealFrame,
  signedPayload,
} from "./frames.js";
export { newMessageId } from "./message-id.js";
export type { DecodeResult, Delivery, FrameLimits, RawFrame, SignedEnvelope } from "./frames.js";
export { pack, packWith } from "./msgpack.js";
export { AnswerTimeouts, Deadlines } from "./deadlines.js";
export { isWholeMsgpackValue, peekFrameRooms } from "./peek.js";
export { normaliseSiteHost, serviceRoom, siteRoom, userIdOf, userRoom } from "./rooms.js";
export {
  LIFECYCLE_KEYS,
  lifecycleFields,
  readLifecycleRecord,
  SERVICE_GROUP,
  SERVICE_INSTANCE_TTL_MS,
  SERVICE_KEYS,
  isServiceName,
  listServices,
  readRequestFields,
  readService,
  readServiceReply,
  replyChannel,
  requestFields,
  unregisterService,
} from "./services.js";
export type { Caller, LifecycleRecord, LifecycleType, ServiceInfo, ServiceReply, ServiceRequest } from "./services.js";
export { DEFAULT_MAX_DEPTH, nestsDeeperThan, preview } from "./untrusted.js";
export { MAX_REFUSE_SECONDS, MAX_TOKEN_EXP, allowUser, encodeControlFrame, kickUser, readControlFrame, revokeToken } from "./control.js";
export type { ControlFrame, ControlTransport, KickOptions } from "./control.js";
export { KEY_PREFIX, REDIS_KEYS, isCommandQueueFull } from "./redis-keys.js";
export { PRESENCE_SWEEP_BOUND_MS, readRoomCount, readSitePresence, readUserPresence } from "./presence.js";
export type { RedisCommander, RoomCount, SitePresence, UserPresence } from "./presence.js";

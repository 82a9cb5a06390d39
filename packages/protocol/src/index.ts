export type { Identity, TokenClaims } from "./claims.js";
export { ERROR_CODES, ERRORS, SwitchboardError, errorBody, isErrorCode } from "./errors.js";
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
  AuthenticatePayload,
  AuthenticatedPayload,
  EventErrorPayload,
  KickedPayload,
  ReconnectPayload,
  SubscribePayload,
  SubscriptionReply,
  TokenExpiringPayload,
  UnauthorizedPayload,
  WelcomePayload,
} from "./events.js";
export {
  RAW_FRAME_CHANNEL,
  arrayFrameProblem,
  decodeMsgpack,
  decodeRawFrame,
  encodeEveryoneFrame,
  encodeRawFrame,
  encodeSignedEnvelope,
  newMessageId,
  readArrayFrame,
  readRawFrame,
  readSignedEnvelope,
  signedPayload,
} from "./frames.js";
export type { DecodeResult, Delivery, FrameLimits, RawFrame, SignedEnvelope } from "./frames.js";
export { normaliseSiteHost, siteRoom, userIdOf, userRoom } from "./rooms.js";
export { DEFAULT_MAX_DEPTH, nestsDeeperThan, preview } from "./untrusted.js";

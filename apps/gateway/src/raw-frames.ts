import { createHmac, timingSafeEqual } from "node:crypto";
import {
  type DecodeResult,
  RAW_FRAME_CHANNEL,
  decodeMsgpack,
  decodeRawFrame,
  readRawFrame,
  readSignedEnvelope,
  signedPayload,
} from "@switchboard/protocol";
import type { Server } from "socket.io";
import type { DropFrame, DropReason } from "./adapter-guard.js";
import type { FrameSigningConfig } from "./config.js";
import type { Metrics } from "./metrics.js";

export interface RawFrameDeps {
  metrics: Metrics;
  dropFrame: DropFrame;
  payloadMaxDepth: number;
  /** When set, only frames signed with one of its keys are delivered. */
  signing: FrameSigningConfig | null;
}

type ReadResult = DecodeResult | { ok: false; code: Extract<DropReason, "frame_unsigned" | "frame_signature_invalid">; reason: string };

/**
 * Delivers one raw frame to this node's own sockets. Every node receives every raw frame and
 * delivers locally, so each target socket in the cluster gets it exactly once.
 */
export function deliverRawFrame(io: Server, frame: Uint8Array, deps: RawFrameDeps): void {
  const result = readFrame(frame, deps);
  if (!result.ok) {
    deps.dropFrame(RAW_FRAME_CHANNEL, result.code, result.reason);
    return;
  }
  const { rooms, except, event, args, layout } = result.delivery;
  deps.metrics.framesDelivered.inc({ channel: RAW_FRAME_CHANNEL, layout });
  deps.metrics.messagesReceived.inc({ source: "raw_frame" });
  // The adapter leaves unauthenticated sockets out of this broadcast, as out of every other.
  io.local.to(rooms).except(except).emit(event, ...args);
}

/**
 * A raw frame is either a frame, or a signed envelope around one. Without FRAME_SIGNING_KEYS both
 * are delivered (publishers may start signing before nodes require it); with it, only an envelope
 * whose signature verifies and whose `ts` is within FRAME_SIGNATURE_MAX_AGE_MS.
 */
function readFrame(bytes: Uint8Array, deps: RawFrameDeps): ReadResult {
  const limits = { maxDepth: deps.payloadMaxDepth };
  const decoded = decodeMsgpack(bytes);
  if (!decoded.ok) return decoded;
  const envelope = readSignedEnvelope(decoded.value);
  if (typeof envelope === "string") return { ok: false, code: "frame_invalid", reason: envelope };
  if (envelope === null) {
    return deps.signing ? { ok: false, code: "frame_unsigned", reason: "FRAME_SIGNING_KEYS is set and the frame has no signature" } : readRawFrame(decoded.value, limits);
  }
  if (deps.signing) {
    const secret = deps.signing.keys.get(envelope.kid);
    if (secret === undefined) return { ok: false, code: "frame_signature_invalid", reason: `no signing key has kid ${envelope.kid.slice(0, 60)}` };
    const skew = Math.abs(Date.now() - envelope.ts);
    if (skew > deps.signing.maxAgeMs) return { ok: false, code: "frame_signature_invalid", reason: `signed ${skew} ms from this node's clock, more than FRAME_SIGNATURE_MAX_AGE_MS` };
    const expected = createHmac("sha256", secret).update(signedPayload(envelope.ts, envelope.frame)).digest();
    if (!timingSafeEqual(expected, envelope.sig)) return { ok: false, code: "frame_signature_invalid", reason: "the signature does not match" };
  }
  return decodeRawFrame(envelope.frame, limits);
}

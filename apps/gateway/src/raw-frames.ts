import { createHmac, timingSafeEqual } from "node:crypto";
import {
  type ControlFrame,
  type Delivery,
  type FrameLimits,
  RAW_FRAME_CHANNEL,
  peekFrameRooms,
  readControlFrame,
  readRawFrame,
  readSignedEnvelope,
  signedPayload,
} from "@switchboard/protocol";
import { type DropFrame, type DropReason, decodeRedisMessage } from "./adapter-guard.js";
import { asBuffer } from "./broker-frames.js";
import type { FrameSigningConfig } from "./config.js";
import type { Metrics } from "./metrics.js";
import type { Operations } from "./operations.js";

export interface RawFrameDeps {
  operations: Pick<Operations, "deliver" | "control" | "holdsAny">;
  metrics: Metrics;
  dropFrame: DropFrame;
  /** How deeply a frame's data may nest (PAYLOAD_MAX_DEPTH). */
  limits: FrameLimits;
  /** When set, only frames signed with one of its keys are taken. */
  signing: FrameSigningConfig | null;
}

type Read =
  | { ok: true; delivery: Delivery; control?: never }
  | { ok: true; control: ControlFrame; delivery?: never }
  | { ok: false; code: DropReason; reason: string };

/**
 * Takes one frame from the raw channel on this node: a control frame is acted on, a message is
 * delivered to this node's own sockets. Every node receives every raw frame, so each target socket
 * in the cluster gets a message exactly once.
 */
export function handleRawFrame(frame: Buffer, deps: RawFrameDeps): void {
  // A frame naming only rooms this node does not hold is left undecoded. With FRAME_SIGNING_KEYS every
  // frame is read in full: its signature is checked before anything in it is believed.
  // Once peeked, the rooms are known to be held here: the frame's `room` is all its rooms (a frame with `_in` is not peeked).
  let peeked = false;
  if (deps.signing === null) {
    const rooms = peekFrameRooms(frame);
    if (rooms !== null && !deps.operations.holdsAny(rooms)) return;
    peeked = rooms !== null;
  }
  const read = readFrame(frame, deps, peeked);
  if (!read.ok) {
    deps.dropFrame(RAW_FRAME_CHANNEL, read.code, read.reason);
  } else if (read.control) {
    deps.operations.control(read.control);
  } else {
    const delivered = deps.operations.deliver(read.delivery, peeked);
    if (!delivered.ok) {
      deps.dropFrame(RAW_FRAME_CHANNEL, delivered.code, delivered.reason);
      return;
    }
    // Counted where it reached sockets, as an adapter message is: on the nodes holding its rooms.
    if (!delivered.local) return;
    deps.metrics.frameDelivered(read.delivery.layout);
    deps.metrics.messageReceived("raw_frame");
  }
}

/**
 * A raw frame is a frame, or a signed envelope around one. Without FRAME_SIGNING_KEYS both are
 * taken (publishers may start signing before nodes require it); with it, only an envelope whose
 * signature verifies and whose `ts` is within FRAME_SIGNATURE_MAX_AGE_MS.
 */
function readFrame(bytes: Buffer, deps: RawFrameDeps, peeked: boolean): Read {
  // A frame the peek read to its end is one whole MessagePack value: its lengths need no second check.
  const outer = decode(bytes, peeked);
  if (!outer.ok) return outer;
  const envelope = readSignedEnvelope(outer.value);
  if (typeof envelope === "string") return { ok: false, code: "frame_invalid", reason: envelope };
  let value = outer.value;
  if (envelope === null) {
    if (deps.signing) return { ok: false, code: "frame_unsigned", reason: "FRAME_SIGNING_KEYS is set and the frame has no signature" };
  } else {
    if (deps.signing) {
      const secret = deps.signing.keys.get(envelope.kid);
      if (secret === undefined)
        return { ok: false, code: "frame_signature_invalid", reason: `no signing key has kid ${envelope.kid.slice(0, 60)}` };
      const skew = Math.abs(Date.now() - envelope.ts);
      if (skew > deps.signing.maxAgeMs)
        return {
          ok: false,
          code: "frame_signature_invalid",
          reason: `signed ${skew} ms from this node's clock, more than FRAME_SIGNATURE_MAX_AGE_MS`,
        };
      const expected = createHmac("sha256", secret).update(signedPayload(envelope.ts, envelope.frame)).digest();
      if (!timingSafeEqual(expected, envelope.sig))
        return { ok: false, code: "frame_signature_invalid", reason: "the signature does not match" };
    }
    const inner = decode(asBuffer(envelope.frame));
    if (!inner.ok) return inner;
    value = inner.value;
  }
  const control = readControlFrame(value);
  if (typeof control === "string") return { ok: false, code: "frame_invalid", reason: control };
  if (control !== null) return { ok: true, control };
  const frame = readRawFrame(value, deps.limits);
  return frame.ok ? { ok: true, delivery: frame.delivery } : frame;
}

/**
 * A frame decoded with the adapter channel's decoder (notepack.io), not @msgpack/msgpack: that one
 * builds each string under 200 bytes from an array of its code units, and a frame's room, event and
 * id made a raw delivery allocate about 1.5 KB more than an adapter one, paid back in collections.
 */
function decode(bytes: Buffer, checkedWhole = false): { ok: true; value: unknown } | { ok: false; code: DropReason; reason: string } {
  const decoded = decodeRedisMessage(bytes, checkedWhole);
  return decoded.ok ? decoded : { ok: false, code: decoded.reason, reason: decoded.detail };
}

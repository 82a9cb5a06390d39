import { Decoder, Encoder } from "@msgpack/msgpack";

// One encoder and one decoder for the process: the library's encode() and decode() make a new one
// (with a fresh buffer and key cache) for every call, which a node pays for every frame. Both are
// re-entrant, and encode() hands back a copy of its buffer, so sharing them is safe.
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/** MessagePack bytes of `value`; `undefined` inside it is left out, as JSON would. */
export function pack(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/** The value in MessagePack `bytes`; throws on bytes that are not one whole MessagePack value. */
export function unpack(bytes: Uint8Array): unknown {
  return decoder.decode(bytes);
}

/**
 * Hands `take` the MessagePack bytes of `value` in the shared encoder's own buffer, which the next
 * encoding overwrites: `take` copies out what it keeps (into a pooled Buffer, say) before it returns.
 */
export function packWith<T>(value: unknown, take: (bytes: Uint8Array) => T): T {
  return take(encoder.encodeSharedRef(value));
}

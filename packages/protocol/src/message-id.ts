/**
 * Message ids are random (version 4) UUIDs. `crypto.randomUUID()` in Node builds each one from twenty
 * string concatenations, about 0.55 KB of garbage and 2 µs a call; a node makes one for every message
 * it takes over HTTP or from a client, so here the characters are written into one reused list and
 * made into a single string. The random bytes come from the same CSPRNG (Web Crypto, in Node and in
 * browsers alike), 256 ids' worth at a time.
 */
const IDS_PER_FILL = 256;
const random = new Uint8Array(16 * IDS_PER_FILL);
let next = random.length;
const codes: number[] = new Array<number>(36).fill(0);
const HEX_DIGITS = Array.from("0123456789abcdef", (digit) => digit.charCodeAt(0));
const DASH = 0x2d;

/** A fresh message id (a random UUID); every message carries one so that clients can later de-duplicate. */
export function newMessageId(): string {
  if (next === random.length) {
    globalThis.crypto.getRandomValues(random);
    next = 0;
  }
  const at = next;
  next += 16;
  // RFC 9562: the version (4) in the high nibble of byte 6, the variant (10) in the high bits of byte 8.
  random[at + 6] = ((random[at + 6] as number) & 0x0f) | 0x40;
  random[at + 8] = ((random[at + 8] as number) & 0x3f) | 0x80;
  let out = 0;
  for (let index = 0; index < 16; index++) {
    const byte = random[at + index] as number;
    codes[out++] = HEX_DIGITS[byte >> 4] as number;
    codes[out++] = HEX_DIGITS[byte & 0x0f] as number;
    if (index === 3 || index === 5 || index === 7 || index === 9) codes[out++] = DASH;
  }
  return String.fromCharCode.apply(null, codes);
}

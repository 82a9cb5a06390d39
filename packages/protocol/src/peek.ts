/**
 * Every node receives every frame on the raw channel, and most hold none of its rooms. Decoding a
 * whole frame only to learn that costs each of those nodes as much as delivering it would; reading
 * the MessagePack structure just far enough to find `room` costs a fraction of it, as the other
 * values are stepped over without being built.
 */

const ROOM = [0x72, 0x6f, 0x6f, 0x6d]; // "room"
const IN = [0x5f, 0x69, 0x6e]; // "_in"
const text = new TextDecoder("utf-8", { fatal: true });

// Bytes after the type byte of the types whose size the type alone gives: numbers (0xca–0xd3) and
// fixed-size extensions (0xd4–0xd8, one byte of extension type, then 1, 2, 4, 8 or 16 bytes); 0 for
// every other type.
const FIXED_PAYLOAD_BYTES = new Uint8Array(256);
for (const [type, bytes] of [
  [0xcc, 1],
  [0xd0, 1],
  [0xcd, 2],
  [0xd1, 2],
  [0xca, 4],
  [0xce, 4],
  [0xd2, 4],
  [0xcb, 8],
  [0xcf, 8],
  [0xd3, 8],
  [0xd4, 2],
  [0xd5, 3],
  [0xd6, 5],
  [0xd7, 9],
  [0xd8, 17],
] as const)
  FIXED_PAYLOAD_BYTES[type] = bytes;

/**
 * The rooms a map-layout frame names in `room`, read without decoding the rest of it; null when
 * that cannot be said for sure (not a map, no `room`, an `_in` that adds rooms, a key that is not a
 * string, anything malformed), and the frame must then be decoded in full. Rooms are only returned
 * for a frame read to its end as one whole MessagePack value, every length and count within its
 * bytes, as `isWholeMsgpackValue` would find it. Never throws.
 */
export function peekFrameRooms(bytes: Uint8Array): string[] | null {
  // Every node peeks at every raw frame: one reader serves them all, and lets go of each frame after it.
  reader.reset(bytes);
  const rooms = roomsNamed(reader);
  reader.reset(NO_BYTES);
  return rooms;
}

function roomsNamed(frame: Reader): string[] | null {
  const entries = frame.mapHeader();
  if (entries === null) return null;
  let rooms: string[] | null = null;
  for (let entry = 0; entry < entries; entry++) {
    if (!frame.stringAhead()) return null;
    if (frame.stringIs(IN)) return null;
    if (frame.stringIs(ROOM)) {
      // A second `room` is one the decoder would take instead: leave that to it.
      if (rooms !== null) return null;
      rooms = frame.roomList();
      if (rooms === null) return null;
    } else if (!frame.skip()) {
      return null;
    }
  }
  // Trailing bytes make the frame undecodable: the full decode reports that.
  return frame.atEnd() ? rooms : null;
}

/**
 * True when `bytes` are exactly one MessagePack value whose every length and count fits in them.
 * Checked without building anything, so a header that claims a gigabyte in a ten-byte frame costs
 * ten bytes of reading. A decoder that trusts such a header (notepack.io, which the Socket.IO
 * Redis adapter uses, allocates and fills an ArrayBuffer of the claimed size for an extension of
 * type 0) can stall a process for seconds on one frame. Never throws.
 */
export function isWholeMsgpackValue(bytes: Uint8Array): boolean {
  // Every message a node receives is checked: one reader serves them all, and lets go of each frame after it.
  reader.reset(bytes);
  const whole = reader.skip() && reader.atEnd();
  reader.reset(NO_BYTES);
  return whole;
}

class Reader {
  private position = 0;
  /** Where the string read last lies: [stringStart, stringEnd). Kept here, not returned as a pair, as a pair per key is garbage per frame. */
  private stringStart = 0;
  private stringEnd = 0;

  constructor(private bytes: Uint8Array) {}

  /** Reads `bytes` from their start. */
  reset(bytes: Uint8Array): void {
    this.bytes = bytes;
    this.position = 0;
  }

  atEnd(): boolean {
    return this.position === this.bytes.length;
  }

  mapHeader(): number | null {
    const type = this.byte();
    if (type === null) return null;
    if (type >= 0x80 && type <= 0x8f) return type & 0x0f;
    if (type === 0xde) return this.uint(2);
    if (type === 0xdf) return this.uint(4);
    return null;
  }

  /** Steps over the string that starts here, noting where it lies; false when there is no whole string. */
  stringAhead(): boolean {
    const type = this.byte();
    if (type === null) return false;
    let length: number | null;
    if (type >= 0xa0 && type <= 0xbf) length = type & 0x1f;
    else if (type === 0xd9) length = this.uint(1);
    else if (type === 0xda) length = this.uint(2);
    else if (type === 0xdb) length = this.uint(4);
    else return false;
    if (length === null) return false;
    const start = this.position;
    if (!this.advance(length)) return false;
    this.stringStart = start;
    this.stringEnd = this.position;
    return true;
  }

  /** Whether the string read last is these bytes. */
  stringIs(expected: readonly number[]): boolean {
    const start = this.stringStart;
    if (this.stringEnd - start !== expected.length) return false;
    for (let index = 0; index < expected.length; index++) if (this.bytes[start + index] !== expected[index]) return false;
    return true;
  }

  /** A string, or an array of strings. */
  roomList(): string[] | null {
    const type = this.bytes[this.position];
    if (type === undefined) return null;
    let count: number | null = null;
    if (type >= 0x90 && type <= 0x9f) {
      this.position++;
      count = type & 0x0f;
    } else if (type === 0xdc) {
      this.position++;
      count = this.uint(2);
    } else if (type === 0xdd) {
      this.position++;
      count = this.uint(4);
    }
    if (count === null) {
      const room = this.string();
      return room === null ? null : [room];
    }
    const rooms: string[] = [];
    for (let index = 0; index < count; index++) {
      const room = this.string();
      if (room === null) return null;
      rooms.push(room);
    }
    return rooms;
  }

  /** Steps over one whole value, however nested; false when the bytes are not one. */
  skip(): boolean {
    // Values still to step over: a container adds its items. Each item takes at least a byte, so
    // this ends within the frame's length whatever the headers claim.
    let pending = 1;
    while (pending > 0) {
      pending--;
      const type = this.byte();
      if (type === null) return false;
      if (type <= 0x7f || type >= 0xe0 || type === 0xc0 || type === 0xc2 || type === 0xc3) continue;
      if (type >= 0x80 && type <= 0x8f) pending += 2 * (type & 0x0f);
      else if (type >= 0x90 && type <= 0x9f) pending += type & 0x0f;
      else if (type >= 0xa0 && type <= 0xbf) {
        if (!this.advance(type & 0x1f)) return false;
      } else {
        const step = this.skipTyped(type);
        if (step === null) return false;
        pending += step;
      }
    }
    return true;
  }

  /** Steps over the rest of a value whose type byte was `type`; returns the items it contains, null if malformed. */
  private skipTyped(type: number): number | null {
    const fixed = FIXED_PAYLOAD_BYTES[type] as number;
    if (fixed > 0) return this.advance(fixed) ? 0 : null;
    switch (type) {
      case 0xc4:
      case 0xd9:
        return this.skipSized(1, 0);
      case 0xc5:
      case 0xda:
        return this.skipSized(2, 0);
      case 0xc6:
      case 0xdb:
        return this.skipSized(4, 0);
      case 0xc7:
        return this.skipSized(1, 1);
      case 0xc8:
        return this.skipSized(2, 1);
      case 0xc9:
        return this.skipSized(4, 1);
      case 0xdc:
        return this.uint(2);
      case 0xdd:
        return this.uint(4);
      case 0xde: {
        const entries = this.uint(2);
        return entries === null ? null : 2 * entries;
      }
      case 0xdf: {
        const entries = this.uint(4);
        return entries === null ? null : 2 * entries;
      }
      default:
        // 0xc1 is never used.
        return null;
    }
  }

  /** Bytes, strings and extensions: a length of `lengthBytes`, then `extra` bytes (an extension's type), then the data. */
  private skipSized(lengthBytes: number, extra: number): number | null {
    const length = this.uint(lengthBytes);
    return length !== null && this.advance(extra + length) ? 0 : null;
  }

  private string(): string | null {
    if (!this.stringAhead()) return null;
    const ascii = this.asciiString();
    if (ascii !== null) return ascii;
    try {
      return text.decode(this.bytes.subarray(this.stringStart, this.stringEnd));
    } catch {
      return null;
    }
  }

  /** The string read last when it is short and ASCII, as room names nearly always are; null otherwise. */
  private asciiString(): string | null {
    const start = this.stringStart;
    const length = this.stringEnd - start;
    const codes = ASCII_CODES[length];
    if (codes === undefined) return null;
    for (let index = 0; index < length; index++) {
      const byte = this.bytes[start + index] as number;
      if (byte > 0x7f) return null;
      codes[index] = byte;
    }
    return String.fromCharCode.apply(null, codes);
  }

  private byte(): number | null {
    const value = this.bytes[this.position];
    if (value === undefined) return null;
    this.position++;
    return value;
  }

  private uint(size: number): number | null {
    if (this.position + size > this.bytes.length) return null;
    let value = 0;
    for (let index = 0; index < size; index++) value = value * 256 + (this.bytes[this.position + index] as number);
    this.position += size;
    return value;
  }

  private advance(count: number): boolean {
    if (this.position + count > this.bytes.length) return false;
    this.position += count;
    return true;
  }
}

const NO_BYTES = new Uint8Array(0);
// One array of char codes for each length up to 64, filled in place for each ASCII string: the string is
// then all that reading one allocates, where a decoder needs a view of the bytes as well, at ten times the time.
const ASCII_CODES: number[][] = Array.from({ length: 65 }, (_, length) => new Array<number>(length).fill(0));
// Neither peekFrameRooms nor isWholeMsgpackValue calls out while reading, so one reader serves both.
const reader = new Reader(NO_BYTES);

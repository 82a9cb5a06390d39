import type { OutboundMessage } from "./broker.js";

/**
 * What both brokers (and the shared state's scripts) write to Redis or hand to the adapter, kept
 * apart from broker.ts, which picks a broker and so imports them.
 */

/** Socket.IO's EVENT packet type (the parser turns it into BINARY_EVENT when an argument holds binary data). */
const EVENT_PACKET = 2;

/** The same bytes as a Buffer, without copying them: node-redis takes Buffers, not other Uint8Arrays. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The message's event as Socket.IO's adapters broadcast it: a packet for the namespace `/`. */
export function packetOf(message: Pick<OutboundMessage, "event" | "args">): { type: number; data: unknown[]; nsp: string } {
  return { type: EVENT_PACKET, data: [message.event, ...message.args], nsp: "/" };
}

/** The message as Socket.IO's adapters broadcast it: its packet, and its options' rooms as lists of its own. */
export function broadcastOf(message: OutboundMessage): {
  packet: { type: number; data: unknown[]; nsp: string };
  rooms: string[];
  except: string[];
} {
  return { packet: packetOf(message), rooms: [...message.rooms], except: [...message.except] };
}

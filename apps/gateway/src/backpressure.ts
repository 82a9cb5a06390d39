/**
 * What waits to be written to one client. engine.io queues a client's packets while its transport
 * is busy writing, and a client that stops reading keeps it busy forever: without a bound the queue
 * grows with everything published to the client's rooms.
 */

/** The part of an engine.io packet that takes memory while it waits. */
interface QueuedPacket {
  data?: string | Uint8Array;
}

/** The events of an engine.io connection that the watch listens to. */
export interface OutboundConnection {
  on(event: "packetCreate", listener: (this: OutboundConnection, packet: QueuedPacket) => void): unknown;
  on(event: "flush", listener: (this: OutboundConnection, packets: QueuedPacket[]) => void): unknown;
  transport: unknown;
}

/** Bytes queued for a connection, kept on the connection itself; OVERFLOWED once it was reported. */
const QUEUED_BYTES = Symbol("switchboard queued bytes");
const OVERFLOWED = -1;
type WatchedConnection = OutboundConnection & { [QUEUED_BYTES]?: number };

/**
 * Watches connections for a client that stops reading: calls `onOverflow` once per connection when
 * the bytes queued for it, plus those its WebSocket has handed to the kernel but not yet written,
 * exceed `limitBytes`. Counting is O(1) per packet: bytes are added when a packet is queued and
 * taken off when engine.io flushes it to the transport. A node holds many connections, so the
 * listeners are shared (each finds its connection as `this`) and a connection carries only a number.
 */
export function createOutboundWatch<C extends OutboundConnection>(
  limitBytes: number,
  onOverflow: (connection: C) => void,
): (connection: C) => void {
  function onPacketCreate(this: WatchedConnection, packet: QueuedPacket): void {
    const before = this[QUEUED_BYTES];
    if (before === undefined || before === OVERFLOWED) return;
    const size = sizeOf(packet);
    const queued = before + size;
    this[QUEUED_BYTES] = queued;
    // Asking the transport costs more than the rest: it is asked only once a backlog exists. A packet
    // alone in the queue either goes out at once, or waits behind a busy transport and the next
    // packet, finding it still queued, makes the check.
    if (before === 0 && size <= limitBytes) return;
    if (queued + transportBuffered(this.transport) <= limitBytes) return;
    this[QUEUED_BYTES] = OVERFLOWED;
    onOverflow(this as C);
  }
  function onFlush(this: WatchedConnection, packets: QueuedPacket[]): void {
    let queued = this[QUEUED_BYTES];
    if (queued === undefined || queued === OVERFLOWED) return;
    for (const packet of packets) queued -= sizeOf(packet);
    this[QUEUED_BYTES] = queued;
  }
  return (connection) => {
    (connection as WatchedConnection)[QUEUED_BYTES] = 0;
    connection.on("packetCreate", onPacketCreate);
    connection.on("flush", onFlush);
  };
}

function sizeOf(packet: QueuedPacket): number {
  const data = packet.data;
  // String length, not UTF-8 bytes: measuring bytes would cost a pass over every message.
  return data === undefined ? 1 : typeof data === "string" ? data.length : data.byteLength;
}

/** Bytes a WebSocket transport has accepted but the peer has not read yet (ws's `bufferedAmount`). */
function transportBuffered(transport: unknown): number {
  if (typeof transport !== "object" || transport === null || !("socket" in transport)) return 0;
  const socket = transport.socket;
  if (typeof socket !== "object" || socket === null || !("bufferedAmount" in socket)) return 0;
  return typeof socket.bufferedAmount === "number" ? socket.bufferedAmount : 0;
}

/** Drops a connection at once, freeing what it buffered: a WebSocket is terminated, not closed politely. */
export function dropConnection(connection: { transport: unknown; close(discard?: boolean): unknown }): void {
  const transport = connection.transport;
  connection.close(true);
  if (typeof transport === "object" && transport !== null && "socket" in transport) {
    const socket = transport.socket;
    // A polite WebSocket close waits up to 30 s for a peer that is not reading; terminate does not.
    if (typeof socket === "object" && socket !== null && "terminate" in socket && typeof socket.terminate === "function")
      socket.terminate();
  }
}

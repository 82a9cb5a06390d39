import type { IncomingMessage } from "node:http";
import { Socket as NetSocket } from "node:net";
import { TurnQueue } from "./turn-queue.js";

/**
 * A WebSocket handshake makes a node write to the client four times: the HTTP 101 response, the
 * engine.io `open` packet, Socket.IO's CONNECT acknowledgement and the gateway's `welcome`. ws
 * writes every frame with its own syscall, and engine.io writes a packet only once the previous
 * write has completed, so each is a syscall of its own, and on loopback or a virtual machine each
 * costs the node more than everything the gateway does for the socket in JavaScript. Holding the
 * TCP socket's writes until the current burst of work is done (Node's cork/uncork) turns them into
 * two writes: the 101 with the `open` packet, and the acknowledgement with the `welcome`. What is
 * written, and its order, does not change.
 */

/** The parts of an engine.io WebSocket transport this module relies on. */
interface HoldableTransport {
  name: string;
  writable: boolean;
  socket?: { _socket?: unknown };
}

/** The parts of an engine.io connection this module relies on. */
interface HoldableConnection {
  transport: HoldableTransport;
  readyState: string;
}

/**
 * The sockets whose writes are held, released together once the work queued now has run (see
 * TurnQueue): a storm holds hundreds a turn. With each socket, the connection whose transport was
 * marked busy until the release, and that transport: the one to mark writable again (or null, null).
 */
const held = new TurnQueue<NetSocket, HoldableConnection | null, HoldableTransport | null>(release);

/**
 * Sockets corked while a backlog of packets is written to them, released once the code that wrote
 * them has returned: at the next microtask checkpoint, before any I/O.
 */
const backlogs = new TurnQueue<NetSocket, HoldableConnection | null, HoldableTransport | null>(release, queueMicrotask);

/**
 * Holds a TCP socket's writes until the turn's work is done. With a connection, its transport was
 * marked busy: just before the writes go it is marked writable again and the connection's queue
 * flushed, so that what it queued meanwhile leaves with them.
 */
function corkUntilIdle(socket: NetSocket, connection: HoldableConnection | null = null, transport: HoldableTransport | null = null): void {
  socket.cork();
  held.add(socket, connection, transport);
}

function release(socket: NetSocket, connection: HoldableConnection | null, transport: HoldableTransport | null): void {
  try {
    if (connection !== null && transport !== null) flushHeld(connection, transport);
  } finally {
    // A socket destroyed meanwhile has nothing left to write; one whose flush failed is released all the same.
    if (!socket.destroyed) socket.uncork();
  }
}

/**
 * The 101 response and the `open` packet in one write: ws emits `headers` just before writing the
 * 101, and engine.io sends `open` a few microtasks later, before any I/O. Only upgrades: a polling
 * response is one write already.
 */
export function coalesceUpgradeWrites(engine: {
  on(event: "headers", listener: (headers: unknown, request: IncomingMessage) => void): unknown;
}): void {
  engine.on("headers", (_headers, request) => {
    if (request.headers.upgrade?.toLowerCase() !== "websocket") return;
    if (!request.socket.destroyed) corkUntilIdle(request.socket);
  });
}

/**
 * Socket.IO's CONNECT acknowledgement and what the gateway sends right after it (`welcome`) in one
 * write. Called as the handshake is accepted, before Socket.IO sends the acknowledgement on a later
 * tick. engine.io queues a packet while its transport is not writable and sends the queue at once
 * when it is; the transport is marked busy until that tick's work is done, then the queue is
 * flushed under cork, so its frames leave in one syscall. WebSocket only: a polling transport's
 * `writable` means a pending GET, which this must not touch.
 */
export function coalesceAcceptWrites(connection: HoldableConnection): void {
  const transport = connection.transport;
  const socket = transport.socket?._socket;
  if (transport.name !== "websocket" || !transport.writable || !(socket instanceof NetSocket) || socket.destroyed) return;
  transport.writable = false;
  corkUntilIdle(socket, connection, transport);
}

/**
 * The packets queued for a client while its previous write was under way, in one write. engine.io
 * writes to a WebSocket one packet at a time and queues what comes meanwhile; once the write is done,
 * it hands the whole queue to the transport, which gives ws one frame after another, each written
 * with its own syscall. A node that takes a burst of broadcasts from Redis — many in one read — thus
 * makes a syscall per socket and per message: corking the socket while the queue is handed over
 * makes it one per socket. A packet alone goes out as before, and what is written, and its order, do
 * not change. The engine's `flush` event comes just before the queue is handed over; one listener
 * serves every connection.
 */
export function coalesceBacklogWrites(engine: {
  on(event: "flush", listener: (connection: HoldableConnection, packets: readonly unknown[]) => void): unknown;
}): void {
  engine.on("flush", (connection, packets) => {
    if (packets.length < 2) return;
    const transport = connection.transport;
    const socket = transport.socket?._socket;
    if (transport.name !== "websocket" || !(socket instanceof NetSocket) || socket.destroyed) return;
    // Corked already (a handshake's writes are held): whoever corked it releases the backlog with the rest.
    if (socket.writableCorked > 0) return;
    socket.cork();
    backlogs.add(socket, null, null);
  });
}

function flushHeld(connection: HoldableConnection, transport: HoldableTransport): void {
  // The transport may have been replaced or closed meanwhile; a busy flag is only ever cleared on the one set.
  transport.writable = true;
  // engine.io's own flush (private in its types): what it runs when a transport reports it is writable again.
  const flush: unknown = (connection as { flush?: unknown }).flush;
  if (connection.readyState === "open" && connection.transport === transport && typeof flush === "function") flush.call(connection);
}

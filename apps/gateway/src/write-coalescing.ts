import type { IncomingMessage } from "node:http";
import { Socket as NetSocket } from "node:net";

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
 * The sockets whose writes are held, released together by one `setImmediate` once the work queued
 * now (ticks, promises, the other I/O callbacks of this turn) has run: a storm holds hundreds per
 * turn, and one release for all of them costs none of the per-socket timers and closures that a
 * release each would. Kept as parallel lists, so holding a socket allocates nothing of its own.
 */
const heldSockets: NetSocket[] = [];
/** For each held socket, the connection whose transport was marked busy until the release, or null. */
const heldConnections: (HoldableConnection | null)[] = [];
/** …and that transport: the one to mark writable again. */
const heldTransports: (HoldableTransport | null)[] = [];
let releaseScheduled = false;

/**
 * Holds a TCP socket's writes until the turn's work is done. With a connection, its transport was
 * marked busy: just before the writes go it is marked writable again and the connection's queue
 * flushed, so that what it queued meanwhile leaves with them.
 */
function corkUntilIdle(socket: NetSocket, connection: HoldableConnection | null = null, transport: HoldableTransport | null = null): void {
  socket.cork();
  heldSockets.push(socket);
  heldConnections.push(connection);
  heldTransports.push(transport);
  if (!releaseScheduled) {
    releaseScheduled = true;
    setImmediate(releaseHeld);
  }
}

function releaseHeld(): void {
  releaseScheduled = false;
  // Sockets held while these are released wait for the next turn, as they would have on their own.
  const count = heldSockets.length;
  let failure: unknown = null;
  for (let index = 0; index < count; index++) {
    const socket = heldSockets[index]!;
    const connection = heldConnections[index]!;
    const transport = heldTransports[index]!;
    try {
      if (connection !== null && transport !== null) flushHeld(connection, transport);
    } catch (err) {
      failure ??= err;
    }
    // A socket destroyed meanwhile has nothing left to write.
    if (!socket.destroyed) socket.uncork();
  }
  heldSockets.splice(0, count);
  heldConnections.splice(0, count);
  heldTransports.splice(0, count);
  // One socket's failure must not leave the others held; it is raised once every socket is released.
  if (failure !== null) throw failure;
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

function flushHeld(connection: HoldableConnection, transport: HoldableTransport): void {
  // The transport may have been replaced or closed meanwhile; a busy flag is only ever cleared on the one set.
  transport.writable = true;
  // engine.io's own flush (private in its types): what it runs when a transport reports it is writable again.
  const flush: unknown = (connection as { flush?: unknown }).flush;
  if (connection.readyState === "open" && connection.transport === transport && typeof flush === "function") flush.call(connection);
}

import { connect } from "node:net";
import WebSocket from "ws";

/**
 * A hand-driven engine.io v4 WebSocket connection: the test writes Socket.IO packets as text
 * ("40{...}" to connect, "42[...]" for an event) exactly as a hostile client could.
 */
export interface RawSocket {
  ws: WebSocket;
  /** Every text message received, in order (engine.io framing included, e.g. `42["welcome",{…}]`). */
  messages: string[];
  /** Resolves with the first message (received or still to come) that `match` accepts. */
  next(match: (message: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Sends a text message, or a binary one (an engine.io binary packet). */
  send(data: string | Uint8Array): void;
  /** Resolves when the server closes the connection, with the WebSocket close code. */
  closed: Promise<number>;
  close(): void;
}

const sockets = new Set<WebSocket>();

/** Opens a raw engine.io WebSocket; with `answerPings` it replies "3" to each "2" as a client must. */
export async function openRaw(url: string, options: { answerPings?: boolean; headers?: Record<string, string> } = {}): Promise<RawSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`, { headers: options.headers ?? {} });
  sockets.add(ws);
  const messages: string[] = [];
  const waiters: { match: (message: string) => boolean; resolve: (message: string) => void }[] = [];
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (text === "2" && options.answerPings !== false) ws.send("3");
    messages.push(text);
    for (const waiter of [...waiters]) {
      if (waiter.match(text)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(text);
      }
    }
  });
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  ws.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_request, response) => reject(new Error(`handshake answered ${response.statusCode}`)));
  });
  const raw: RawSocket = {
    ws,
    messages,
    next(match, timeoutMs = 5000) {
      const seen = messages.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching message within ${timeoutMs} ms; got ${messages.map((m) => m.slice(0, 80)).join(" | ")}`)),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (message) => {
            clearTimeout(timer);
            resolve(message);
          },
        });
      });
    },
    send: (data) => ws.send(data),
    closed,
    close: () => ws.terminate(),
  };
  await raw.next((message) => message.startsWith("0{"));
  return raw;
}

/** Opens a raw connection and joins the main namespace with `token`; resolves once `welcome` arrived. */
export async function openRawAuthenticated(url: string, token: string, options: { answerPings?: boolean } = {}): Promise<RawSocket> {
  const raw = await openRaw(url, options);
  raw.send(`40${JSON.stringify({ token })}`);
  await raw.next((message) => message.startsWith('42["welcome"'));
  return raw;
}

export function closeAllRaw(): void {
  for (const ws of sockets) ws.terminate();
  sockets.clear();
}

/** An engine.io WebSocket upgrade request as a client writes it on the wire, with `headers` added. */
export function upgradeRequest(headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  return `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

/** A WebSocket upgrade request written by hand, to read the status and body of a refusal. */
export async function rawUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const { port } = new URL(url);
  const socket = connect(Number(port), "127.0.0.1");
  socket.write(upgradeRequest(headers));
  let text = "";
  for await (const chunk of socket) {
    text += String(chunk);
    // An accepted upgrade stays open: its 101 head is all there is to read.
    if (text.startsWith("HTTP/1.1 101") && text.includes("\r\n\r\n")) {
      socket.destroy();
      break;
    }
  }
  const [head = "", body = ""] = text.split("\r\n\r\n");
  return { status: Number(head.split(" ")[1]), body };
}

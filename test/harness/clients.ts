import jwt from "jsonwebtoken";
import { type ManagerOptions, type Socket, type SocketOptions, io } from "socket.io-client";
import { TEST_SECRET } from "./gateway.js";

export function mintToken(claims: Record<string, unknown>, options: jwt.SignOptions = {}, secret: jwt.Secret = TEST_SECRET): string {
  return jwt.sign(claims, secret, { algorithm: "HS256", expiresIn: 300, ...options });
}

export interface TestClient {
  socket: Socket;
  /** Every event received, in order, with its arguments. */
  received: { event: string; args: unknown[] }[];
  /** Resolves with the arguments of the next (or an already received) `event` that matches. */
  next(event: string, match?: (args: unknown[]) => boolean, timeoutMs?: number): Promise<unknown[]>;
  count(event: string): number;
  close(): void;
}

const clients = new Set<Socket>();

/** Opens a real socket.io-client connection; no reconnection, so a refusal stays visible. */
export function openClient(url: string, options: Partial<ManagerOptions & SocketOptions> = {}): TestClient {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, ...options });
  clients.add(socket);
  const received: TestClient["received"] = [];
  const waiters: { event: string; match: (args: unknown[]) => boolean; resolve: (args: unknown[]) => void }[] = [];
  const record = (event: string, args: unknown[]) => {
    received.push({ event, args });
    for (const waiter of [...waiters]) {
      if (waiter.event === event && waiter.match(args)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(args);
      }
    }
  };
  socket.onAny((event: string, ...args: unknown[]) => record(event, args));
  for (const event of ["connect", "connect_error", "disconnect"]) socket.on(event, (...args: unknown[]) => record(event, args));
  return {
    socket,
    received,
    next(event, match = () => true, timeoutMs = 5000) {
      const seen = received.find((entry) => entry.event === event && match(entry.args));
      if (seen) return Promise.resolve(seen.args);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no '${event}' within ${timeoutMs} ms; got ${received.map((entry) => entry.event).join(", ")}`)),
          timeoutMs,
        );
        waiters.push({
          event,
          match,
          resolve: (args) => {
            clearTimeout(timer);
            resolve(args);
          },
        });
      });
    },
    count: (event) => received.filter((entry) => entry.event === event).length,
    close() {
      socket.close();
      clients.delete(socket);
    },
  };
}

/** Connects with a token in the handshake and waits for `welcome`. */
export async function connectUser(url: string, claims: Record<string, unknown>): Promise<TestClient> {
  const client = openClient(url, { auth: { token: mintToken(claims) } });
  await client.next("welcome");
  return client;
}

export function closeAllClients(): void {
  for (const socket of clients) socket.close();
  clients.clear();
}

import { createClient } from "@redis/client";

/**
 * The part of a Redis client the emitter uses. node-redis (v4, v5) and ioredis clients fit it.
 * `on` and `listenerCount` let the emitter add an `error` listener where none exists, because an
 * EventEmitter without one throws and takes the host process down.
 */
export interface PublishClient {
  publish(channel: string, message: Buffer | string): Promise<unknown>;
  on?(event: "error", listener: (error: Error) => void): unknown;
  listenerCount?(event: string): number;
  /** node-redis: runs any command; presence and disconnectUser need it (or ioredis's `call`). */
  sendCommand?(args: string[]): Promise<unknown>;
  /** ioredis: runs any command. */
  call?(command: string, ...args: string[]): Promise<unknown>;
}

/** The client's way to run any command, or null when it has none. */
export function commandRunner(client: PublishClient): ((args: string[]) => Promise<unknown>) | null {
  if (typeof client.sendCommand === "function") return (args) => (client.sendCommand as (args: string[]) => Promise<unknown>)(args);
  if (typeof client.call === "function")
    return ([command, ...rest]) => (client.call as (command: string, ...args: string[]) => Promise<unknown>)(command ?? "", ...rest);
  return null;
}

/** A Redis connection the emitter opened itself from a URL, and so also closes. */
export interface OwnedConnection {
  client: PublishClient;
  /** True while the connection takes commands. */
  isReady(): boolean;
  /** Resolves true once the connection is ready, false if it is not ready within `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export function openConnection(url: string, onError: (error: Error) => void, maxPendingCommands: number): OwnedConnection {
  const client = createClient({
    url,
    // A publish while disconnected must fail now with a code, not be replayed minutes later
    // after the caller has already been told it failed.
    disableOfflineQueue: true,
    commandsQueueMaxLength: maxPendingCommands,
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
  });
  client.on("error", onError);
  client.connect().catch(onError);
  const waiters = new Set<() => void>();
  const wakeWaiters = () => {
    const woken = [...waiters];
    waiters.clear();
    for (const wake of woken) wake();
  };
  return {
    client: { publish: (channel, message) => client.publish(channel, message), sendCommand: (args) => client.sendCommand(args) },
    isReady: () => client.isReady,
    whenReady(timeoutMs) {
      if (client.isReady) return Promise.resolve(true);
      // One listener for every publish waiting on the connection; a waiter that gives up leaves,
      // so a Redis that stays away for hours does not collect one waiter per publish.
      if (waiters.size === 0) client.once("ready", wakeWaiters);
      return new Promise((resolve) => {
        const onReady = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          waiters.delete(onReady);
          if (waiters.size === 0) client.off("ready", wakeWaiters);
          resolve(false);
        }, timeoutMs);
        waiters.add(onReady);
      });
    },
    async close() {
      try {
        if (client.isReady) await client.quit();
        else await client.disconnect();
      } catch {
        // Already closed: nothing to release.
      }
    },
  };
}

/** Where no error listener is given, report each distinct error once rather than on every retry. */
export function defaultErrorReporter(): (error: Error) => void {
  let last = "";
  return (error) => {
    if (error.message === last) return;
    last = error.message;
    console.warn(`[switchboard emitter] redis: ${error.message}`);
  };
}

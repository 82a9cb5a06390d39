import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { LIFECYCLE_KEYS, type LifecycleRecord, SwitchboardError, readLifecycleRecord } from "@switchboard/protocol";
import { createClient } from "@redis/client";
import { entriesOf } from "./streams.js";

export interface LifecycleReaderOptions {
  /** A Redis URL: the reader opens (and closes) its own connection. */
  redis: string;
  /**
   * The consumer group: each group gets every record once; readers sharing a group share the records.
   * A group that did not exist starts at the end of the stream (records written before are not read).
   */
  group: string;
  /**
   * Called for each record, in stream order. A record is acknowledged once this resolves; one whose
   * handler threw stays pending and is read again when a reader of this consumer starts.
   */
  handler: (record: LifecycleRecord, entryId: string) => unknown;
  /**
   * This reader's name in the group. Keep it stable across restarts to pick up what it had read but
   * not finished.
   * @default "<hostname>-<pid>-<random>"
   */
  consumer?: string;
  /** Where a new group starts: `"$"` (only what comes next) or `"0"` (everything the stream still holds). @default "$" */
  startAt?: "$" | "0";
  /** @default one line on stderr each */
  onError?: (error: Error) => void;
}

export interface LifecycleReader {
  /** Resolves once the group exists and the reader is reading. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

const BLOCK_MS = 1000;
const COUNT = 100;

/** Reads the gateway's lifecycle stream (LIFECYCLE_EVENTS=1) with a consumer group: what is missed while away is read on return. */
export function readLifecycle(options: LifecycleReaderOptions): LifecycleReader {
  // Checked before any connection opens: callers in plain JavaScript may pass anything.
  const group: unknown = options.group;
  if (typeof group !== "string" || group.length === 0 || group.length > 200)
    throw new SwitchboardError("invalid_request", "a lifecycle reader needs a consumer group name of 1 to 200 characters");
  if (typeof options.handler !== "function") throw new SwitchboardError("invalid_request", "a lifecycle reader needs a handler function");
  const consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const onError = options.onError ?? ((error: Error) => process.stderr.write(`@switchboard/service lifecycle: ${error.message}\n`));
  const stream = LIFECYCLE_KEYS.stream;
  const client = createClient({ url: options.redis });
  client.on("error", onError);
  let closing = false;
  let loop: Promise<void> = Promise.resolve();

  async function createGroup(): Promise<void> {
    try {
      await client.sendCommand(["XGROUP", "CREATE", stream, options.group, options.startAt ?? "$", "MKSTREAM"]);
    } catch (err) {
      if (!String(err).includes("BUSYGROUP")) throw err;
    }
  }

  /**
   * Reads after `from` (an entry id: this consumer's pending records after it; ">": new records) and
   * handles what comes. Returns the last entry id read, or null when nothing came.
   */
  async function readOnce(from: string): Promise<string | null> {
    const block = from === ">" ? ["BLOCK", String(BLOCK_MS)] : [];
    const reply = await client.sendCommand([
      "XREADGROUP",
      "GROUP",
      options.group,
      consumer,
      "COUNT",
      String(COUNT),
      ...block,
      "STREAMS",
      stream,
      from,
    ]);
    let last: string | null = null;
    for (const [entryId, fields] of entriesOf(reply)) {
      if (closing) return null;
      last = entryId;
      const record = readLifecycleRecord(fields);
      try {
        if (record !== null) await options.handler(record, entryId);
      } catch (err) {
        // Left pending: read again when a reader of this consumer starts.
        onError(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      await client.sendCommand(["XACK", stream, options.group, entryId]);
    }
    return last;
  }

  async function run(): Promise<void> {
    // What this consumer read and did not finish last time comes first, in order, before new records.
    for (let after: string | null = "0"; after !== null && !closing; )
      after = await readOnce(after).catch((err: unknown) => {
        onError(err instanceof Error ? err : new Error(String(err)));
        return null;
      });
    while (!closing) {
      try {
        await readOnce(">");
      } catch (err) {
        if (closing) break;
        onError(err instanceof Error ? err : new Error(String(err)));
        await new Promise((resolve) => setTimeout(resolve, BLOCK_MS));
        // The stream may have been deleted: the group is made again.
        await createGroup().catch(() => {});
      }
    }
  }

  const started = (async () => {
    await client.connect();
    await createGroup();
    loop = run();
  })();
  started.catch(onError);

  return {
    ready: () => started,
    async close() {
      if (closing) return;
      closing = true;
      await started.catch(() => {});
      // A blocked read is cut rather than waited for; whatever it took stays pending for this consumer.
      await client.disconnect().catch(() => {});
      await loop.catch(() => {});
    },
  };
}

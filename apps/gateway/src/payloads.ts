import { CLIENT_EVENTS, type ErrorBody, nestsDeeperThan } from "@switchboard/protocol";
import { z } from "zod";
import { describeIssue, detailed } from "./errors.js";
import { MAX_ROOM_LENGTH } from "./rooms.js";

/**
 * The schemas of the events clients send. Every payload is checked here before any handler
 * sees it; a handler receives only what its schema produced. A payload is an object with the
 * named field or, as the first releases accepted, the bare value.
 */
/** How many rooms one `configure` may name. */
export const MAX_CONFIGURE_ROOMS = 100;

export function clientEventSchemas() {
  const room = z.string().min(1).max(MAX_ROOM_LENGTH);
  const roomPayload = z.union([z.object({ room }), room]).transform((value) => (typeof value === "string" ? { room: value } : value));
  return {
    // The token is classified by the verifier (missing, not a string, too long, malformed), which
    // knows the precise code for each; the schema only finds it.
    [CLIENT_EVENTS.authenticate]: z.unknown().transform((value) => ({
      token: typeof value === "object" && value !== null && !Array.isArray(value) ? (value as { token?: unknown }).token : value,
    })),
    [CLIENT_EVENTS.subscribe]: roomPayload,
    [CLIENT_EVENTS.unsubscribe]: roomPayload,
    [CLIENT_EVENTS.join]: roomPayload,
    [CLIENT_EVENTS.leave]: roomPayload,
    [CLIENT_EVENTS.configure]: z
      .record(room, z.boolean())
      .refine((rooms) => Object.keys(rooms).length <= MAX_CONFIGURE_ROOMS, `at most ${MAX_CONFIGURE_ROOMS} rooms at once`),
    [CLIENT_EVENTS.publish]: z.object({
      room: room.optional(),
      event: z.string().min(1).max(200),
      data: z.unknown(),
      _in: z.union([room, z.array(room).max(20)]).optional(),
    }),
    [CLIENT_EVENTS.request]: z.object({
      id: z.string().min(1).max(100).optional(),
      service: z.string().min(1).max(64),
      payload: z.unknown().optional(),
      timeoutMs: z.number().int().positive().max(3_600_000).optional(),
    }),
    [CLIENT_EVENTS.send]: z.object({
      service: z.string().min(1).max(64),
      event: z.string().min(1).max(200).optional(),
      payload: z.unknown().optional(),
    }),
  } as const;
}

export type ClientEventSchemas = ReturnType<typeof clientEventSchemas>;
export type ClientEventName = keyof ClientEventSchemas;
export type ClientPayload<Event extends ClientEventName> = z.infer<ClientEventSchemas[Event]>;

/** What a client event costs against CLIENT_EVENT_RATE: verifying a token is the expensive one. */
export const EVENT_COST: Record<ClientEventName, number> = {
  [CLIENT_EVENTS.authenticate]: 10,
  [CLIENT_EVENTS.subscribe]: 1,
  [CLIENT_EVENTS.unsubscribe]: 1,
  [CLIENT_EVENTS.join]: 1,
  [CLIENT_EVENTS.leave]: 1,
  // Up to a hundred rooms at once.
  [CLIENT_EVENTS.configure]: 5,
  // A message to every node.
  [CLIENT_EVENTS.publish]: 2,
  // A script in Redis and, for a request, a call tracked until it ends.
  [CLIENT_EVENTS.request]: 2,
  [CLIENT_EVENTS.send]: 2,
};

export function isClientEventName(event: unknown, schemas: ClientEventSchemas): event is ClientEventName {
  return typeof event === "string" && Object.hasOwn(schemas, event);
}

/** Checks one event's arguments: the depth of everything, then the first argument by its schema. */
export function parsePayload<Event extends ClientEventName>(
  schemas: ClientEventSchemas,
  event: Event,
  args: readonly unknown[],
  maxDepth: number,
): { ok: true; payload: ClientPayload<Event> } | { ok: false; error: ErrorBody; tooDeep?: true } {
  if (nestsDeeperThan(args, maxDepth + 1))
    return { ok: false, error: detailed("payload_invalid", `the payload is nested deeper than ${maxDepth} levels`), tooDeep: true };
  const result = schemas[event].safeParse(args[0]);
  if (result.success) return { ok: true, payload: result.data as ClientPayload<Event> };
  return { ok: false, error: detailed("payload_invalid", describeIssue(result.error, "payload")) };
}

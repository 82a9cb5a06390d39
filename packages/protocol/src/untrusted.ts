/**
 * Helpers for values that came from a client or a publisher and have not been checked yet.
 * None of them recurses, so no input can overflow the stack, and none of them returns
 * more than a few dozen characters of the input, so no input can inflate a log line or a reply.
 */

/** How deeply client payloads and frame data may nest (objects and arrays), unless configured otherwise. */
export const DEFAULT_MAX_DEPTH = 32;

const PREVIEW_CHARS = 64;

/**
 * A short, safe description of an unchecked value for an error message or a log line:
 * strings are quoted and cut, containers are described by kind and size, never expanded.
 */
export function preview(value: unknown, maxChars: number = PREVIEW_CHARS): string {
  if (typeof value === "string") {
    return value.length <= maxChars ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, maxChars))}… (${value.length} characters)`;
  }
  if (value === null || typeof value === "number" || typeof value === "boolean" || typeof value === "undefined" || typeof value === "bigint") {
    return String(value);
  }
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (value instanceof Uint8Array) return `${value.byteLength} bytes of binary data`;
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/**
 * True when objects and arrays in `value` nest deeper than `maxDepth` (a scalar has depth 0,
 * `[1]` depth 1). Walks with its own stack and stops at the first path that is too deep.
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (!isContainer(value)) return false;
  // Two parallel stacks rather than one of [value, depth] pairs: this runs for every message, and
  // a pair per container was most of its cost.
  const containers: object[] = [value];
  const depths: number[] = [1];
  while (containers.length > 0) {
    const current = containers.pop() as object;
    const depth = depths.pop() as number;
    if (depth > maxDepth) return true;
    if (Array.isArray(current)) {
      for (const child of current) {
        if (isContainer(child)) {
          containers.push(child);
          depths.push(depth + 1);
        }
      }
      continue;
    }
    for (const key of Object.keys(current)) {
      const child: unknown = (current as Record<string, unknown>)[key];
      if (isContainer(child)) {
        containers.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

// Binary payloads are opaque bytes, not nested structure.
function isContainer(value: unknown): value is object {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) && !(value instanceof ArrayBuffer);
}

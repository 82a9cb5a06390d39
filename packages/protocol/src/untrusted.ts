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
  if (
    value === null ||
    typeof value === "number" ||
    typeof value === "boolean" ||
    typeof value === "undefined" ||
    typeof value === "bigint"
  ) {
    return String(value);
  }
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (value instanceof Uint8Array) return `${value.byteLength} bytes of binary data`;
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/**
 * True when objects and arrays in `value` nest deeper than `maxDepth` (a scalar has depth 0,
 * `[1]` depth 1). Walks with its own stack and stops at the first container that would be too deep.
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (!isContainer(value)) return false;
  if (maxDepth < 1) return true;
  // This runs for every message a node receives: the stacks are kept between calls rather than
  // grown anew each time (nothing in the walk calls out, so no call can interleave with another),
  // and they are empty again whenever it returns. Two parallel stacks, not one of pairs, for the same reason.
  const containers = pendingContainers;
  const depths = pendingDepths;
  containers.push(value);
  depths.push(1);
  while (containers.length > 0) {
    const current = containers.pop() as object;
    const depth = depths.pop() as number;
    if (Array.isArray(current)) {
      for (let index = 0; index < current.length; index++) {
        const child: unknown = current[index];
        if (!isContainer(child)) continue;
        if (depth === maxDepth) return stoppedTooDeep();
        containers.push(child);
        depths.push(depth + 1);
      }
      continue;
    }
    // for…in rather than Object.keys, which builds an array for every object.
    for (const key in current) {
      if (!Object.hasOwn(current, key)) continue;
      const child: unknown = (current as Record<string, unknown>)[key];
      if (!isContainer(child)) continue;
      if (depth === maxDepth) return stoppedTooDeep();
      containers.push(child);
      depths.push(depth + 1);
    }
  }
  return false;
}

const pendingContainers: object[] = [];
const pendingDepths: number[] = [];

/** Ends a walk that found a container too deep: drops what it left on the stacks, so that they hold no value after it. */
function stoppedTooDeep(): true {
  pendingContainers.length = 0;
  pendingDepths.length = 0;
  return true;
}

// Binary payloads are opaque bytes, not nested structure.
function isContainer(value: unknown): value is object {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) && !(value instanceof ArrayBuffer);
}

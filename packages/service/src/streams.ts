/** The entries of an XREADGROUP (or XAUTOCLAIM) reply: [entry id, fields]. */
export function entriesOf(reply: unknown): [string, Record<string, string>][] {
  if (!Array.isArray(reply)) return [];
  const entries: [string, Record<string, string>][] = [];
  for (const stream of reply) {
    if (!Array.isArray(stream) || !Array.isArray(stream[1])) continue;
    for (const entry of stream[1]) {
      if (!Array.isArray(entry) || typeof entry[0] !== "string" || !Array.isArray(entry[1])) continue;
      const flat = entry[1] as unknown[];
      const fields: Record<string, string> = {};
      for (let index = 0; index + 1 < flat.length; index += 2) fields[String(flat[index])] = String(flat[index + 1]);
      entries.push([entry[0], fields]);
    }
  }
  return entries;
}

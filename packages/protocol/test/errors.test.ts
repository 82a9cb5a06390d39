import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, ERRORS } from "../src/index.js";

const doc = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");
const documented = [...doc.matchAll(/^\| `([a-z_]+)` \|/gm)].map((match) => match[1]);

describe("error registry", () => {
  it("documents every code in docs/errors.md, and nothing else", () => {
    expect([...documented].sort()).toEqual([...ERROR_CODES].sort());
  });

  it("says in docs/errors.md, for each code, whether a retry may succeed, as the registry does", () => {
    for (const code of ERROR_CODES) {
      const row = new RegExp(`^\\| \`${code}\` \\| (yes|no) \\|`, "m").exec(doc);
      expect(row?.[1], code).toBe(ERRORS[code].retry ? "yes" : "no");
    }
  });

  it("documents each code under the section of its audience", () => {
    const sections = { client: "## Clients", publisher: "## Publishers", operator: "## Operators" } as const;
    for (const code of ERROR_CODES) {
      const at = doc.indexOf(`| \`${code}\` |`);
      const heading = sections[ERRORS[code].audience];
      const next =
        Object.values(sections)
          .map((title) => doc.indexOf(title))
          .filter((index) => index > doc.indexOf(heading))
          .sort((x, y) => x - y)[0] ?? doc.length;
      expect(at > doc.indexOf(heading) && at < next, `${code} under ${heading}`).toBe(true);
    }
  });
});

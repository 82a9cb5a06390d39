import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  PUBLISHED_RESULTS_PATH,
  README_PATH,
  TABLE_MARKERS,
  TARGETS_MARKERS,
  blockIn,
  readmeTable,
  withBlock,
} from "../src/readme-table.js";
import { type Report, checkTargets, targetsTable } from "../src/report.js";

const readme = readFileSync(README_PATH, "utf8");
const published = JSON.parse(readFileSync(PUBLISHED_RESULTS_PATH, "utf8")) as Report;

describe("the README's table of results", () => {
  it("is the published run's, figure for figure", () => {
    expect(blockIn(readme, TABLE_MARKERS)).toBe(readmeTable(published));
  });

  it("gives every row the five columns of its header", () => {
    for (const row of readmeTable(published).split("\n")) expect(row.split(" | ")).toHaveLength(5);
  });

  it("changes with the results it is written from", () => {
    const changed: Report = {
      ...published,
      results: published.results.map((row) =>
        row.scenario === "connect storm" && row.metric === "server CPU per connection" ? { ...row, ours: 123456 } : row,
      ),
    };
    const table = readmeTable(changed);
    expect(table).toContain("| 123,456 µs |");
    expect(blockIn(withBlock(readme, TABLE_MARKERS, table), TABLE_MARKERS)).toBe(table);
  });

  it("gives the writes each storm and burst taking turns made, from their own rows", () => {
    const writes = (scenario: string, metric: string) => (row: Report["results"][number]) =>
      row.scenario === scenario && row.metric === metric ? { ...row, ours: 4.56, plain: 7.89 } : row;
    const changed: Report = {
      ...published,
      results: published.results
        .map(writes("connect storm, pinned nodes taking turns", "write system calls per connection"))
        .map(writes("fanout, two nodes taking turns, burst", "write system calls per delivery")),
    };
    const table = readmeTable(changed);
    expect(table).toContain("| | write system calls per connection | 4.56 | 7.89 |");
    expect(table).toContain("| | write system calls per delivery | 4.56 | 7.89 |");
    expect(readmeTable(published)).not.toContain("| 4.56 | 7.89 |");
  });

  it("is only written between its markers", () => {
    expect(() => withBlock("no markers here", TABLE_MARKERS, "| table |")).toThrow(/markers/);
    const text = `before\n${TABLE_MARKERS.start}\nold\n${TABLE_MARKERS.end}\nafter`;
    expect(withBlock(text, TABLE_MARKERS, "new")).toBe(`before\n${TABLE_MARKERS.start}\nnew\n${TABLE_MARKERS.end}\nafter`);
  });
});

describe("the README's table of targets", () => {
  it("is the published run's, target for target, as in its latest.md", () => {
    const table = targetsTable(published);
    expect(blockIn(readme, TARGETS_MARKERS)).toBe(table);
    expect(table.split("\n")).toHaveLength(published.targets.length + 2);
    const latest = readFileSync(PUBLISHED_RESULTS_PATH.replace(/latest\.json$/, "latest.md"), "utf8");
    expect(latest).toContain(table);
  });

  it("is checked from the published figures: latest.json's targets are what its results give today", () => {
    // The targets are stored next to the figures they come from; a change to how a target is read
    // must publish them again rather than leave the README with the old reading.
    expect(published.targets).toEqual(checkTargets(published.results));
  });

  it("says which were met and which were not, with the rounds that met each", () => {
    const table = targetsTable(published);
    for (const check of published.targets) {
      const row = table.split("\n").find((line) => line.startsWith(`| ${check.target} |`));
      expect(row, check.target).toBeDefined();
      if (check.met === null) expect(row).toMatch(/\| – \|$/);
      else
        expect(row).toContain(
          `| ${check.met ? "yes" : "**no**"}${check.roundsMet ? ` (${check.roundsMet.met} of ${check.roundsMet.of} ` : ""}`,
        );
    }
  });

  it("is written between its own markers, leaving the results table as it is", () => {
    const changed: Report = { ...published, targets: published.targets.map((check) => ({ ...check, measured: "9.99×" })) };
    const rewritten = withBlock(readme, TARGETS_MARKERS, targetsTable(changed));
    expect(blockIn(rewritten, TARGETS_MARKERS)).toContain("| 9.99× |");
    expect(blockIn(rewritten, TABLE_MARKERS)).toBe(blockIn(readme, TABLE_MARKERS));
  });
});

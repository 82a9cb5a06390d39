import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PUBLISHED_RESULTS_PATH, README_PATH, TABLE_END, TABLE_START, readmeTable, tableIn, withTable } from "../src/readme-table.js";
import type { Report } from "../src/report.js";

const readme = readFileSync(README_PATH, "utf8");
const published = JSON.parse(readFileSync(PUBLISHED_RESULTS_PATH, "utf8")) as Report;

describe("the README's table of results", () => {
  it("is the published run's, figure for figure", () => {
    expect(tableIn(readme)).toBe(readmeTable(published));
  });

  it("gives every row the five columns of its header", () => {
    for (const row of readmeTable(published).split("\n")) expect(row.split(" | ")).toHaveLength(5);
  });

  it("changes with the results it is written from", () => {
    const changed: Report = {
      ...published,
      results: published.results.map((row) => (row.scenario === "connect storm" && row.metric === "server CPU per connection" ? { ...row, ours: 123456 } : row)),
    };
    const table = readmeTable(changed);
    expect(table).toContain("| 123,456 µs |");
    expect(tableIn(withTable(readme, table))).toBe(table);
  });

  it("is only written between its markers", () => {
    expect(() => withTable("no markers here", "| table |")).toThrow(/markers/);
    const text = `before\n${TABLE_START}\nold\n${TABLE_END}\nafter`;
    expect(withTable(text, "new")).toBe(`before\n${TABLE_START}\nnew\n${TABLE_END}\nafter`);
  });
});

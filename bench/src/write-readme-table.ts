import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { writeReadmeTable } from "./readme-table.js";

// Writes the README's table from the published results again (a full run does this itself).
const results = fileURLToPath(new URL("../results/latest.json", import.meta.url));
const readme = fileURLToPath(new URL("../../README.md", import.meta.url));
writeReadmeTable(readme, JSON.parse(readFileSync(results, "utf8")));
process.stdout.write(`written: the table in ${readme}, from ${results}\n`);

import { readFileSync } from "node:fs";
import { PUBLISHED_RESULTS_PATH, README_PATH, writeReadmeTable } from "./readme-table.js";

// Writes the README's table from the published results again (a full run does this itself).
writeReadmeTable(README_PATH, JSON.parse(readFileSync(PUBLISHED_RESULTS_PATH, "utf8")));
process.stdout.write(`written: the table in ${README_PATH}, from ${PUBLISHED_RESULTS_PATH}\n`);

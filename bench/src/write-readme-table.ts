import { readFileSync } from "node:fs";
import { PUBLISHED_RESULTS_PATH, README_PATH, writeReadmeTables } from "./readme-table.js";

// Writes the README's tables (figures and targets) from the published results again (a full run does this itself).
writeReadmeTables(README_PATH, JSON.parse(readFileSync(PUBLISHED_RESULTS_PATH, "utf8")));
process.stdout.write(`written: the tables in ${README_PATH}, from ${PUBLISHED_RESULTS_PATH}\n`);

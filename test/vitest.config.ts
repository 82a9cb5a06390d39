import { defineConfig } from "vitest/config";

// End-to-end tests start real redis-server and gateway processes; two files at a time fits two cores.
export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    maxWorkers: 2,
  },
});

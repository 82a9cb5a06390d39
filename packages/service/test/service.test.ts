import { describe, expect, it } from "vitest";
import { SwitchboardError, createService } from "../src/index.js";

describe("createService", () => {
  it("refuses a name that is not a service name before it opens any connection", () => {
    for (const name of ["", "Upper", "with space", "x".repeat(65), "-leading"]) {
      expect(() => createService({ redis: "redis://127.0.0.1:1", name, handler: () => null })).toThrow(SwitchboardError);
    }
  });
});

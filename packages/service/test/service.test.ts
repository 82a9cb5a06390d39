import { describe, expect, it } from "vitest";
import { type LifecycleReaderOptions, SwitchboardError, createService, readLifecycle } from "../src/index.js";

describe("createService", () => {
  it("refuses a name that is not a service name before it opens any connection", () => {
    for (const name of ["", "Upper", "with space", "x".repeat(65), "-leading"]) {
      expect(() => createService({ redis: "redis://127.0.0.1:1", name, handler: () => null })).toThrow(SwitchboardError);
    }
  });
});

describe("readLifecycle", () => {
  it("refuses a missing, empty, oversized or misshapen group, and a missing handler, before it opens any connection", () => {
    const handler = () => null;
    for (const group of ["", "g".repeat(201), 5, null, undefined, { name: "x" }]) {
      expect(() => readLifecycle({ redis: "redis://127.0.0.1:1", group, handler } as unknown as LifecycleReaderOptions)).toThrow(
        SwitchboardError,
      );
    }
    expect(() => readLifecycle({ redis: "redis://127.0.0.1:1", group: "audit" } as unknown as LifecycleReaderOptions)).toThrow(
      SwitchboardError,
    );
  });
});

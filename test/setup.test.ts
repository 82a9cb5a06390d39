import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const SCRIPT = fileURLToPath(new URL("../scripts/test-deps.sh", import.meta.url));
const run = (env: Record<string, string>) =>
  promisify(execFile)("bash", [SCRIPT], { env: { ...process.env, ...env } }).then(
    ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, output: err.stdout + err.stderr }),
  );

describe("the test command's set-up check (scripts/test-deps.sh)", () => {
  it("finds everything present on this machine", async () => {
    expect(await run({})).toEqual({ code: 0, output: "test dependencies: all present\n" });
  });

  it("on Debian as root, installs what is missing with apt-get", async () => {
    const { code, output } = await run({ CHROMIUM: "/nonexistent/chromium", NGINX_DIRS: "/nonexistent", DRY_RUN: "1" });
    expect(code).toBe(0);
    // PATH still reaches nginx here when it is installed in a PATH directory; chromium is always missing.
    expect(output).toMatch(/would run: apt-get update && apt-get install -y --no-install-recommends .*chromium/);
  });

  it("elsewhere, stops with the command to run", async () => {
    const { code, output } = await run({
      CHROMIUM: "/nonexistent/chromium",
      PYTHON: "/nonexistent/python3",
      OS_RELEASE: "/nonexistent/os-release",
    });
    expect(code).toBe(1);
    expect(output).toContain("test dependencies missing: chromium python3 python3-redis python3-msgpack");
    expect(output).toContain("apt-get install -y --no-install-recommends chromium python3 python3-redis python3-msgpack");
  });
});

import { execFile, spawn } from "node:child_process";
import { type AddressInfo, createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createEmitter } from "../src/index.js";

const BUILT = fileURLToPath(new URL("../dist/index.js", import.meta.url));

/** Runs a script that imports the built emitter as `createEmitter`, in a Node process of its own. */
function runScript(body: string): Promise<{ code: number | null; stdout: string }> {
  const source = `import { createEmitter } from ${JSON.stringify(BUILT)};\n${body}`;
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ["--input-type=module", "-e", source], { timeout: 20_000 }, (_err, stdout) =>
      resolve({ code: child.exitCode, stdout }),
    );
  });
}

/** A loopback port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// Port 1 (tcpmux) has no listener on any ordinary machine: connections to it are refused at once.
const UNREACHABLE_PORT = 1;

describe("emitter without a reachable Redis", () => {
  it("rejects each publish with redis_unavailable and never throws into the process", async () => {
    const errors: Error[] = [];
    const emitter = createEmitter({
      redis: `redis://127.0.0.1:${UNREACHABLE_PORT}`,
      publishTimeoutMs: 300,
      onError: (err) => errors.push(err),
    });
    await expect(emitter.toUser(1).emit("x", 1)).rejects.toMatchObject({ code: "redis_unavailable" });
    await expect(emitter.emit("x", 1)).rejects.toMatchObject({ code: "redis_unavailable" });
    await expect(emitter.publishFrame({ room: "user(1)", data: 1 })).rejects.toMatchObject({ code: "redis_unavailable" });
    expect(errors.length).toBeGreaterThan(0);
    await emitter.close();
  });

  it("rejects with publish_timeout when a given client never confirms", async () => {
    const emitter = createEmitter({ redis: { publish: () => new Promise(() => {}) }, publishTimeoutMs: 50 });
    await expect(emitter.toSite("a.com").emit("x", 1)).rejects.toMatchObject({ code: "publish_timeout" });
  });

  it("lets publishes made while its connection opens wait on one listener, not one each", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const emitter = createEmitter({ redis: `redis://127.0.0.1:${UNREACHABLE_PORT}`, publishTimeoutMs: 300, onError: () => {} });
      const results = await Promise.allSettled(Array.from({ length: 50 }, (_, index) => emitter.toUser(index).emit("x", index)));
      expect(
        results.every((result) => result.status === "rejected" && (result.reason as { code?: string }).code === "redis_unavailable"),
      ).toBe(true);
      await emitter.close();
      // A warning is emitted on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((warning) => warning.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("maps a client whose publish throws to redis_unavailable", async () => {
    const emitter = createEmitter({
      redis: {
        publish: () => {
          throw new Error("not connected");
        },
      },
    });
    await expect(emitter.toUser(1).emit("x", 1)).rejects.toMatchObject({
      code: "redis_unavailable",
      message: expect.stringContaining("not connected"),
    });
  });

  it("maps a client's publish failure to redis_unavailable", async () => {
    const emitter = createEmitter({ redis: { publish: () => Promise.reject(new Error("The client is closed")) } });
    await expect(emitter.to("room").emit("x", 1)).rejects.toMatchObject({
      code: "redis_unavailable",
      message: expect.stringContaining("The client is closed"),
    });
  });
});

describe("emitter in a process of its own", () => {
  it("lets a script end once its publishes are answered, whatever the publish timeout", async () => {
    // A timer left waiting for the 60 s timeout would hold the process until the 20 s kill (code null).
    const { code, stdout } = await runScript(`
      const emitter = createEmitter({ redis: { publish: async () => 1 }, publishTimeoutMs: 60000 });
      const { subscribers } = await emitter.toUser(1).emit("x", 1);
      console.log("answered", subscribers);
    `);
    expect(stdout.trim()).toBe("answered 1");
    expect(code).toBe(0);
  }, 30_000);

  it("keeps a script alive until a publish that is never answered times out", async () => {
    const { stdout } = await runScript(`
      const emitter = createEmitter({ redis: { publish: () => new Promise(() => {}) }, publishTimeoutMs: 200 });
      await emitter.toUser(1).emit("x", 1).catch((err) => console.log(err.code));
    `);
    expect(stdout.trim()).toBe("publish_timeout");
  }, 30_000);
});

/** A redis-server of the test's own on a free loopback port, which the test may stop and resume by pid. */
async function ownRedis() {
  const port = await freePort();
  const server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  return { url: `redis://127.0.0.1:${port}`, pid: server.pid!, kill: () => server.kill("SIGKILL") };
}

/** Resolves once `ask` succeeds: the server it asks is up. */
async function untilAnswered(ask: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const answered = await ask().then(
      () => true,
      () => false,
    );
    if (answered) return;
    if (attempt > 50) throw new Error("redis-server did not start");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("emitter with a Redis that is connected but does not answer", () => {
  it("refuses publishes past maxPendingCommands at once with redis_unavailable, rather than keeping them", async () => {
    const redis = await ownRedis();
    const emitter = createEmitter({ redis: redis.url, maxPendingCommands: 5, publishTimeoutMs: 3000, onError: () => {} });
    try {
      await untilAnswered(() => emitter.toUser(0).emit("x", 0));
      // Stopped, Redis keeps the connection open and answers nothing, as a paused or overloaded one does.
      process.kill(redis.pid, "SIGSTOP");
      let outcomes: PromiseSettledResult<unknown>[];
      try {
        outcomes = await Promise.allSettled(Array.from({ length: 12 }, (_, index) => emitter.toUser(index).emit("x", index)));
      } finally {
        process.kill(redis.pid, "SIGCONT");
      }
      const refused = outcomes.flatMap((outcome) =>
        outcome.status === "rejected" ? [outcome.reason as { code: string; message: string }] : [],
      );
      // The first five wait and time out; the other seven are refused without waiting.
      expect(refused.filter((error) => error.code === "redis_unavailable")).toHaveLength(7);
      expect(refused.find((error) => error.code === "redis_unavailable")?.message).toContain("maxPendingCommands");
      expect(refused.filter((error) => error.code === "publish_timeout")).toHaveLength(5);
    } finally {
      await emitter.close();
      redis.kill();
    }
  }, 20_000);

  it("fails a presence read and a kick with redis_unavailable once publishTimeoutMs has passed, rather than waiting for good", async () => {
    const redis = await ownRedis();
    const emitter = createEmitter({ redis: redis.url, publishTimeoutMs: 1000, onError: () => {} });
    try {
      await untilAnswered(() => emitter.presence.user("u1"));
      process.kill(redis.pid, "SIGSTOP");
      let outcomes: PromiseSettledResult<unknown>[];
      try {
        const never = new Promise<string>((resolve) => setTimeout(() => resolve("no answer"), 8000));
        outcomes = await Promise.allSettled(
          [emitter.presence.user("u1"), emitter.presence.roomCount("user(u1)"), emitter.disconnectUser("u1")].map((call) =>
            Promise.race([call, never]),
          ),
        );
      } finally {
        process.kill(redis.pid, "SIGCONT");
      }
      for (const outcome of outcomes)
        expect(outcome).toMatchObject({
          status: "rejected",
          reason: { code: "redis_unavailable", message: expect.stringContaining("1000 ms") },
        });
      // Redis answers again: so do the reads.
      expect(await emitter.presence.user("u1")).toMatchObject({ online: false });
    } finally {
      await emitter.close();
      redis.kill();
    }
  }, 20_000);

  it("refuses a maxPendingCommands that is not a whole number of 1 or more", () => {
    for (const maxPendingCommands of [0, -1, 1.5, Number.NaN]) {
      expect(() => createEmitter({ redis: { publish: async () => 1 }, maxPendingCommands })).toThrow(
        expect.objectContaining({ code: "invalid_request" }),
      );
    }
  });
});

describe("emitter input checks", () => {
  const published: { channel: string; message: Buffer | string }[] = [];
  const emitter = createEmitter({
    redis: {
      publish: async (channel, message) => {
        published.push({ channel, message });
        return 2;
      },
    },
  });

  it("resolves with how many subscribers Redis reported", async () => {
    await expect(emitter.toUser("9").emit("ok", { a: 1 })).resolves.toEqual({ subscribers: 2 });
    expect(published.at(-1)?.channel).toBe("socket.io#/#user(9)#");
  });

  it("refuses data MessagePack cannot hold with invalid_request, and sends nothing", async () => {
    const cycle: { self?: unknown } = {};
    cycle.self = cycle;
    const signing = createEmitter({
      redis: { publish: async (channel, message) => published.push({ channel, message }) },
      signingKey: { kid: "k1", secret: "a-secret-of-some-length" },
    });
    const sent = published.length;
    for (const data of [{ total: 10n }, cycle, Symbol("x"), () => 1]) {
      for (const publisher of [emitter, signing]) {
        // A signed message is a raw frame, checked as the gateway checks one first: a cycle is data nested too deeply.
        const refusal =
          publisher === signing && data === cycle
            ? { code: "frame_invalid", message: expect.stringContaining("nested deeper") }
            : { code: "invalid_request", message: expect.stringContaining("cannot be encoded") };
        await expect(publisher.toUser("9").emit("x", data)).rejects.toMatchObject({ name: "SwitchboardError", ...refusal });
        await expect(publisher.emit("x", data)).rejects.toMatchObject({ name: "SwitchboardError", ...refusal });
      }
    }
    expect(published.length).toBe(sent);
  });

  it("refuses reserved and empty event names with invalid_event", async () => {
    await expect(emitter.toUser(1).emit("disconnect", 1)).rejects.toMatchObject({ code: "invalid_event" });
    await expect(emitter.emit("", 1)).rejects.toMatchObject({ code: "invalid_event" });
  });

  it("refuses bad user ids, hosts and rooms with invalid_room", async () => {
    await expect(emitter.toUser("").emit("x", 1)).rejects.toMatchObject({ code: "invalid_room" });
    await expect(emitter.toSite("not a host").emit("x", 1)).rejects.toMatchObject({ code: "invalid_room" });
    await expect(emitter.to("").emit("x", 1)).rejects.toMatchObject({ code: "invalid_room" });
  });

  it("rejects with emitter_closed after close()", async () => {
    const closing = createEmitter({ redis: { publish: async () => 1 } });
    await closing.close();
    await expect(closing.emit("x", 1)).rejects.toMatchObject({ code: "emitter_closed" });
  });
});

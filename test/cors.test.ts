import { readFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { ClientError, connect } from "@switchboard/client";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./harness/browser.js";
import { mintToken } from "./harness/clients.js";
import { type GatewayProcess, startGateway } from "./harness/gateway.js";
import { waitFor } from "./harness/ports.js";

const BUNDLE = readFileSync(fileURLToPath(import.meta.resolve("@switchboard/client/browser")), "utf8");

let strict: GatewayProcess;
let browser: Browser;
let site: Server;
let siteOrigin: string;
let welcoming: GatewayProcess;

/** A page on an origin of its own that connects to `gateway` with the client's browser bundle. */
const page = (gateway: string, token: string) => `<!doctype html><script type="module">
import { connect } from "/client.js";
const client = connect({ url: ${JSON.stringify(gateway)}, token: ${JSON.stringify(token)}, socket: { reconnectionDelay: 200, reconnectionDelayMax: 400 } });
client.on("state", (state) => { window.lastState = { status: state.status, code: state.code ?? null }; });
client.on("error", (error) => { window.lastError = error.code; });
</script>`;

beforeAll(async () => {
  site = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://x");
    if (url.pathname === "/client.js") return response.writeHead(200, { "content-type": "text/javascript" }).end(BUNDLE);
    response
      .writeHead(200, { "content-type": "text/html" })
      .end(page(url.searchParams.get("gateway") ?? "", url.searchParams.get("token") ?? ""));
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  const address = site.address();
  siteOrigin = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
  [strict, welcoming, browser] = await Promise.all([
    startGateway({ CORS_ORIGINS: "https://app.example.com" }),
    startGateway({ CORS_ORIGINS: `https://app.example.com,${siteOrigin}` }),
    launchBrowser(),
  ]);
});
afterAll(async () => {
  await browser?.close();
  await Promise.all([strict?.stop(), welcoming?.stop()]);
  await new Promise<void>((resolve) => site?.close(() => resolve()));
});

describe("a refused origin, as the client SDK sees it", () => {
  it("in Node: ready() rejects with origin_not_allowed and the client stops retrying", async () => {
    const client = connect({
      url: strict.url,
      token: mintToken({ sub: "o" }),
      socket: { extraHeaders: { Origin: "https://evil.example" }, reconnectionDelay: 100 },
    });
    try {
      const failure = await client.ready().catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(ClientError);
      expect((failure as ClientError).code).toBe("origin_not_allowed");
      expect(client.state).toMatchObject({ status: "disconnected", code: "origin_not_allowed" });
    } finally {
      client.close();
    }
  });

  it("in a browser page of another origin: the state carries origin_not_allowed; an allowed origin connects", async () => {
    const refused = await browser.newPage();
    await refused.goto(`${siteOrigin}/?gateway=${encodeURIComponent(strict.url)}&token=${mintToken({ sub: "b" })}`);
    await waitFor("the refusal", () =>
      refused.evaluate(() => (window as unknown as { lastState?: { code: string | null } }).lastState?.code ?? undefined),
    );
    expect(await refused.evaluate(() => (window as unknown as { lastState: unknown }).lastState)).toEqual({
      status: "disconnected",
      code: "origin_not_allowed",
    });
    expect(await refused.evaluate(() => (window as unknown as { lastError?: string }).lastError)).toBe("origin_not_allowed");
    await refused.close();

    const allowed = await browser.newPage();
    await allowed.goto(`${siteOrigin}/?gateway=${encodeURIComponent(welcoming.url)}&token=${mintToken({ sub: "b" })}`);
    await waitFor("the connection", () =>
      allowed.evaluate(() =>
        (window as unknown as { lastState?: { status: string } }).lastState?.status === "connected" ? true : undefined,
      ),
    );
    await allowed.close();
  });
});

import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { createEmitter, type SwitchboardEmitter } from "@switchboard/emitter";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, launchBrowser, openPage } from "./harness/browser.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { connectUser } from "./harness/clients.js";
import { type GatewayProcess, startGateway } from "./harness/gateway.js";

let cluster: Cluster;
let production: GatewayProcess;
let browser: Browser;
let emitter: SwitchboardEmitter;

beforeAll(async () => {
  [cluster, production, browser] = await Promise.all([
    startCluster(2, { DEV_TOKENS: "1" }),
    startGateway({ NODE_ENV: "production" }),
    launchBrowser(),
  ]);
  emitter = createEmitter({ redis: cluster.redis.url });
});

afterAll(async () => {
  await browser?.close();
  await emitter?.close();
  await Promise.all([cluster?.close(), production?.stop()]);
});

describe("the demo page on a development node", () => {
  it("connects with a dev token, shows the node, and shows a message published from the other side", async () => {
    const [nodeA] = cluster.nodes;
    const { page, problems } = await openPage(browser, `${nodeA!.url}/`);
    await page.fill("#dev-form [name=user]", "browser-user");
    await page.fill("#dev-form [name=site]", "Demo.Example:8443");
    await page.click("#dev-form button[type=submit]");
    await expect.poll(() => page.textContent("[data-testid=state]")).toBe("connected");
    expect(await page.textContent("[data-testid=node]")).toBe("node node-a");
    expect(await page.textContent("[data-testid=user]")).toBe("browser-user");
    expect(await page.locator("[data-testid=rooms] li").allTextContents()).toEqual(["user(browser-user)", "site(demo.example)"]);

    // Published by a backend service through Redis, handled by the other node's adapter too.
    await emitter.toUser("browser-user").emit("order", { id: 7, status: "shipped" });
    const item = page.locator("[data-testid=messages] li[data-event=order]");
    await expect.poll(() => item.count()).toBe(1);
    expect(JSON.parse((await item.locator("pre").textContent()) ?? "")).toEqual({ id: 7, status: "shipped" });

    // The page's own form publishes through the node, to the site room.
    await page.fill("#send-form [name=room]", "site(demo.example)");
    await page.fill("#send-form [name=event]", "from-page");
    await page.fill("#send-form [name=data]", '{"hello": "site"}');
    await page.click("#send-form button[type=submit]");
    await expect.poll(() => page.locator("[data-testid=messages] li[data-event=from-page]").count()).toBe(1);

    await expect.poll(() => page.locator("[data-testid=online] li").allTextContents(), { timeout: 8000 }).toContain("browser-user");
    await page.screenshot({ path: join(ARTIFACTS, "demo-page.png") });
    // The README's screenshot is generated here once; delete docs/demo-page.png to refresh it.
    const documented = new URL("../docs/demo-page.png", import.meta.url).pathname;
    if (!existsSync(documented)) {
      mkdirSync(join(documented, ".."), { recursive: true });
      copyFileSync(join(ARTIFACTS, "demo-page.png"), documented);
    }
    expect(problems).toEqual([]);
    await page.close();
  });

  it("shows the kicked state, with the kick's reason, when the user is disconnected by a publisher", async () => {
    const { page, problems } = await openPage(browser, `${cluster.nodes[1]!.url}/`);
    await page.fill("#dev-form [name=user]", "kick-target");
    await page.click("#dev-form button[type=submit]");
    await expect.poll(() => page.textContent("[data-testid=state]")).toBe("connected");
    await emitter.disconnectUser("kick-target", { reason: "account closed", refuseReconnect: false });
    await expect.poll(() => page.getAttribute("[data-testid=state]", "data-status")).toBe("kicked");
    expect(await page.textContent("[data-testid=state]")).toBe("kicked: account closed");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("lists the site's online users, shows a deliberate disconnect as no error, and a bad JSON body next to its field", async () => {
    const { page, problems } = await openPage(browser, `${cluster.nodes[0]!.url}/`);
    await page.fill("#dev-form [name=user]", "onlooker");
    await page.fill("#dev-form [name=site]", "online.example");
    await page.click("#dev-form button[type=submit]");
    await expect.poll(() => page.textContent("[data-testid=state]")).toBe("connected");
    // Another user of the site, connected to the other node.
    await connectUser(cluster.nodes[1]!.url, { sub: "neighbour", site: "online.example" });
    await expect
      .poll(() => page.locator("[data-testid=online] li").allTextContents(), { timeout: 8000 })
      .toEqual(["neighbour", "onlooker"]);

    await page.fill("#send-form [name=data]", "{ not json");
    await page.click("#send-form button[type=submit]");
    const dataError = page.locator("[data-testid=data-error]");
    await expect.poll(() => dataError.isVisible()).toBe(true);
    expect(await dataError.getAttribute("role")).toBe("alert");
    expect(await dataError.textContent()).toContain("Data is not valid JSON");
    expect(await page.getAttribute("#send-form [name=data]", "aria-invalid")).toBe("true");

    await page.fill("#send-form [name=data]", '{"ok": true}');
    await page.click("#send-form button[type=submit]");
    await expect.poll(() => page.textContent("[data-testid=send-status]")).toContain("Published to");
    expect(await dataError.isVisible()).toBe(false);

    await page.click("#disconnect");
    await expect.poll(() => page.getAttribute("[data-testid=state]", "data-status")).toBe("closed");
    expect(await page.textContent("[data-testid=state]")).toBe("disconnected");

    // A new session starts with a clean status line.
    await page.click("#dev-form button[type=submit]");
    await expect.poll(() => page.textContent("[data-testid=state]")).toBe("connected");
    expect(await page.textContent("[data-testid=send-status]")).toBe("");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("fits a phone-width screen without sideways scrolling", async () => {
    const { page, problems } = await openPage(browser, `${cluster.nodes[0]!.url}/`, { width: 390, height: 844 });
    await page.waitForSelector("#dev-form:not([hidden])");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ARTIFACTS, "demo-page-phone.png"), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});

describe("the demo page on a production node", () => {
  it("has no dev token endpoint and asks for a token, showing the server's error code for a bad one", async () => {
    expect((await fetch(`${production.url}/dev/token`, { method: "POST" })).status).toBe(404);
    const { page, problems } = await openPage(browser, `${production.url}/`);
    await page.waitForSelector("#token-form:not([hidden])");
    expect(await page.isHidden("#dev-form")).toBe(true);
    await page.fill("#token-form [name=token]", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.bm9wZQ");
    await page.click("#token-form button[type=submit]");
    await expect.poll(() => page.getAttribute("[data-testid=error]", "data-code")).toBe("token_invalid_signature");
    expect(await page.textContent("[data-testid=state]")).toContain("token_invalid_signature");
    // No failed request for /dev in the console: the page asks /healthz whether the node has dev tools.
    expect(problems.filter((problem) => problem.includes("404"))).toEqual([]);
    await page.close();
  });
});

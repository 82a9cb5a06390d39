import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, type Page, chromium } from "playwright-core";

export const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";

/** Debian's Chromium, headless, with nothing reaching outside the machine. */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
  } catch (err) {
    throw new Error(
      `could not start ${CHROMIUM} (Debian/Ubuntu: apt-get install chromium): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** A page that records console errors and uncaught exceptions, to assert there are none. */
export async function openPage(
  browser: Browser,
  url: string,
  viewport = { width: 1280, height: 860 },
): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport });
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  await page.goto(url);
  return { page, problems };
}

/**
 * The headless browser that drives the explorer's page: Debian's chromium
 * (or the one `TWZ_CHROMIUM` names) through puppeteer-core, started the
 * same way by the explorer's browser tests, `twz bench explore` and
 * tools/explore_screenshot.ts. tools/browser_setup.ts (the root task
 * `setup`) installs chromium when it can and fetches puppeteer-core at
 * {@linkcode PUPPETEER_VERSION} into Deno's cache. `launchChromium` and
 * `launchBrowser` (for tests and tools) return puppeteer-core's `Browser`;
 * puppeteer's types are not part of this package's documented API.
 *
 * @example Start chromium, or learn why it cannot start here
 * ```ts ignore
 * import { chromiumMissing, launchChromium } from "@twz/cli/browser";
 * const why = await chromiumMissing();
 * if (why) console.log(why);
 * else {
 *   const browser = await launchChromium();
 *   const page = await browser.newPage();
 *   await page.goto("http://127.0.0.1:8080/");
 *   await browser.close();
 * }
 * ```
 *
 * @module
 */
// The one place the driver is named (pinned exactly; the repository keeps
// no import map entry for a dependency only the browser paths load).
// deno-lint-ignore no-import-prefix
import type { Browser } from "npm:puppeteer-core@25.16.0";

/** The puppeteer-core release the browser paths load (pinned exactly). */
export const PUPPETEER_VERSION = "25.16.0";

/** The environment variable naming another browser executable. */
export const CHROMIUM_ENV = "TWZ_CHROMIUM";

/** Where Debian's chromium package puts the browser. */
export const DEFAULT_CHROMIUM = "/usr/bin/chromium";

/** How to install the browser (and graphviz, for `twz graph --format svg`) by hand. */
export const BROWSER_INSTALL_HINT = "apt-get install -y chromium graphviz";

/**
 * The one line printed on stdout when there is no browser: by
 * tools/browser_setup.ts, and once per process by {@linkcode launchBrowser}.
 */
export const BROWSER_SKIPPED_LINE =
  `SKIPPED: explorer browser tests need chromium (${BROWSER_INSTALL_HINT})`;

/**
 * The command-line switches chromium is started with: no sandbox (tests
 * run as root in a container, where chromium's sandbox cannot start), the
 * new headless mode, no use of the small `/dev/shm` some containers have,
 * and none of a first run's dialogs.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--headless=new",
  "--disable-dev-shm-usage",
  "--disable-gpu",
  "--no-first-run",
  "--no-default-browser-check",
];

/** The window size pages (and screenshots) get. */
export const VIEWPORT: { readonly width: number; readonly height: number } = {
  width: 1280,
  height: 800,
};

/**
 * The browser executable: `TWZ_CHROMIUM` when set, else Debian's
 * `/usr/bin/chromium`.
 *
 * @returns Its path (which may not exist).
 * @example
 * ```ts
 * import { chromiumPath } from "@twz/cli/browser";
 * console.log(chromiumPath()); // /usr/bin/chromium
 * ```
 */
export function chromiumPath(): string {
  return Deno.env.get(CHROMIUM_ENV) || DEFAULT_CHROMIUM;
}

/**
 * Why the browser cannot be started here, or `undefined` when it can: it
 * is run once with `--version`.
 *
 * @returns A one-line reason, or `undefined`.
 * @example
 * ```ts ignore
 * import { chromiumMissing } from "@twz/cli/browser";
 * console.log((await chromiumMissing()) ?? "chromium is here");
 * ```
 */
export async function chromiumMissing(): Promise<string | undefined> {
  const path = chromiumPath();
  try {
    if (!Deno.statSync(path).isFile) return `${path} is not a file`;
  } catch {
    return `no browser at ${path}`;
  }
  try {
    const out = await new Deno.Command(path, {
      args: ["--version"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const why = new TextDecoder().decode(out.stderr).trim().split("\n").pop();
      return `${path} --version failed: ${why || `exit ${out.code}`}`;
    }
  } catch (e) {
    return `cannot run ${path}: ${(e as Error).message}`;
  }
  return undefined;
}

/**
 * Load puppeteer-core (fetched into Deno's cache on first use).
 *
 * @returns The module's default export (`puppeteer.launch`, …).
 * @example
 * ```ts ignore
 * import { loadPuppeteer } from "@twz/cli/browser";
 * const puppeteer = await loadPuppeteer();
 * ```
 * @ignore (puppeteer's types are not part of this package's documented API)
 */
export async function loadPuppeteer(): Promise<
  typeof import("npm:puppeteer-core@25.16.0").default
> {
  // deno-lint-ignore no-import-prefix
  return (await import("npm:puppeteer-core@25.16.0")).default;
}

/**
 * Start a headless chromium with {@linkcode CHROMIUM_ARGS} and
 * {@linkcode VIEWPORT}, talking to puppeteer over a pipe (so it also ends
 * when this process does). Close it with `browser.close()`.
 *
 * @returns The running browser.
 * @throws {Error} The browser is missing or does not start.
 * @example
 * ```ts ignore
 * import { launchChromium } from "@twz/cli/browser";
 * const browser = await launchChromium();
 * await browser.close();
 * ```
 * @ignore (puppeteer's types are not part of this package's documented API)
 */
export async function launchChromium(): Promise<Browser> {
  const puppeteer = await loadPuppeteer();
  return await puppeteer.launch({
    executablePath: chromiumPath(),
    args: [...CHROMIUM_ARGS],
    pipe: true,
    defaultViewport: { ...VIEWPORT },
  });
}

let skippedPrinted = false;

/**
 * Print {@linkcode BROWSER_SKIPPED_LINE} with `reason` on stdout, once per
 * process (a test without a browser skips itself after it).
 *
 * @param reason Why there is no browser (one line).
 * @example
 * ```ts ignore
 * import { printSkipped } from "@twz/cli/browser";
 * printSkipped("no browser at /usr/bin/chromium");
 * ```
 */
export function printSkipped(reason: string): void {
  if (skippedPrinted) return;
  skippedPrinted = true;
  console.log(`${BROWSER_SKIPPED_LINE}: ${reason}`);
}

/**
 * Start a headless chromium for a test or a tool ({@linkcode launchChromium}),
 * or say why not: outside CI, print the SKIPPED line once
 * ({@linkcode printSkipped}) and give `null`; under `CI=true`, where a
 * missing browser is an error as a missing libpmem2 is, throw.
 *
 * @returns The browser, or `null` when there is none and CI is not set.
 * @throws {Error} There is no browser (or it does not start) and `CI=true`.
 * @example
 * ```ts ignore
 * import { launchBrowser } from "@twz/cli/browser";
 * const browser = await launchBrowser();
 * if (browser) {
 *   const page = await browser.newPage();
 *   await page.goto("about:blank");
 *   await browser.close();
 * }
 * ```
 * @ignore (puppeteer's types are not part of this package's documented API)
 */
export async function launchBrowser(): Promise<Browser | null> {
  let reason = await chromiumMissing();
  if (reason === undefined) {
    try {
      return await launchChromium();
    } catch (e) {
      reason = `chromium did not start: ${(e as Error).message.split("\n")[0]}`;
    }
  }
  if (Deno.env.get("CI") === "true") {
    throw new Error(`${BROWSER_SKIPPED_LINE} — and CI=true forbids skipping: ${reason}`);
  }
  printSkipped(reason);
  return null;
}

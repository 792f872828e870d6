/**
 * Prepare the machine for the explorer's browser tests (part of the root
 * task `setup`): make sure a headless browser is there — Debian's chromium,
 * installed with apt-get when it is missing and we are root (with graphviz,
 * which `twz graph --format svg` uses) — and that the browser driver,
 * puppeteer-core from npm at {@linkcode PUPPETEER_VERSION}, is in Deno's
 * cache. Fast (one stat, one `chromium --version`) when both are there.
 *
 * Tests drive the browser through {@linkcode launchBrowser}: it gives a
 * running headless chromium, or `null` after printing
 * {@linkcode BROWSER_SKIPPED_LINE} once when there is none (the test then
 * skips itself) — except under `CI=true`, where a missing browser is an
 * error, as a missing libpmem2 is (tools/pmem_setup.ts).
 *
 * `TWZ_CHROMIUM` names another browser executable (then nothing is
 * installed). Exit codes: 0 when ready, or when the browser is missing
 * outside CI (the SKIPPED line is printed); 1 when it is missing under
 * `CI=true`.
 *
 * @example Prepare, then run the browser test
 * ```sh
 * deno run -A tools/browser_setup.ts && deno test -A tests/explore_browser_test.ts
 * ```
 *
 * @tags allow-run, allow-env, allow-read, allow-write, allow-net
 * @module
 */
// The one place tests and tools name the driver (pinned exactly; the
// repository keeps no import map entry for a test-only dependency).
// deno-lint-ignore no-import-prefix
import type { Browser } from "npm:puppeteer-core@25.16.0";

/** The puppeteer-core release the tests and `twz bench explore` use (pinned exactly). */
export const PUPPETEER_VERSION = "25.16.0";

/** The environment variable naming another browser executable. */
export const CHROMIUM_ENV = "TWZ_CHROMIUM";

/** Where Debian's chromium package puts the browser. */
export const DEFAULT_CHROMIUM = "/usr/bin/chromium";

/** How to install what {@linkcode setupBrowser} needs by hand. */
export const BROWSER_INSTALL_HINT = "apt-get install -y chromium graphviz";

/**
 * The one line printed on stdout when there is no browser (by
 * {@linkcode setupBrowser} and, once per process, by {@linkcode launchBrowser}).
 */
export const BROWSER_SKIPPED_LINE =
  `SKIPPED: explorer browser tests need chromium (${BROWSER_INSTALL_HINT})`;

/**
 * The command-line switches chromium is started with: no sandbox (tests
 * run as root in a container, where chromium's sandbox cannot start), the
 * new headless mode, and no use of the small `/dev/shm` some containers
 * have.
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
export const VIEWPORT = { width: 1280, height: 800 } as const;

/**
 * The browser executable: `TWZ_CHROMIUM` when set, else Debian's
 * `/usr/bin/chromium`.
 *
 * @returns Its path (which may not exist).
 * @example
 * ```ts ignore
 * import { chromiumPath } from "./browser_setup.ts";
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
 * import { chromiumMissing } from "./browser_setup.ts";
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
      return `${path} --version failed: ${why ?? `exit ${out.code}`}`;
    }
  } catch (e) {
    return `cannot run ${path}: ${(e as Error).message}`;
  }
  return undefined;
}

function onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

async function aptInstall(packages: string[]): Promise<boolean> {
  console.error(`browser_setup: installing ${packages.join(" ")} (apt-get install -y)`);
  const { success } = await new Deno.Command("sh", {
    args: ["-c", `apt-get update -qq && apt-get install -y -qq ${packages.join(" ")}`],
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return success;
}

/**
 * Load puppeteer-core (fetched into Deno's cache on first use). Only the
 * browser tests, the screenshot script and `twz bench explore` load it.
 *
 * @returns The module's default export (`puppeteer.launch`, …).
 * @example
 * ```ts ignore
 * import { loadPuppeteer } from "./browser_setup.ts";
 * const puppeteer = await loadPuppeteer();
 * ```
 */
export async function loadPuppeteer(): Promise<
  typeof import("npm:puppeteer-core@25.16.0").default
> {
  // deno-lint-ignore no-import-prefix
  return (await import("npm:puppeteer-core@25.16.0")).default;
}

/** What {@linkcode setupBrowser} found. */
export interface BrowserSetup {
  /** The browser can be started and the driver is loaded. */
  ok: boolean;
  /** The one line to print on stdout (a `browser_setup:` line, or {@linkcode BROWSER_SKIPPED_LINE}). */
  line: string;
  /** Why not, when not `ok`. */
  reason?: string;
}

/**
 * Make sure the browser, graphviz and puppeteer-core are there: when
 * chromium (or graphviz's `dot`) is missing, `TWZ_CHROMIUM` is unset, the
 * process is root and apt-get is on the path, install them; then load
 * puppeteer-core once (so it is cached before the tests run).
 *
 * @returns Whether the browser tests can run, and the line to print.
 * @example
 * ```ts ignore
 * import { setupBrowser } from "./browser_setup.ts";
 * console.log((await setupBrowser()).line);
 * ```
 */
export async function setupBrowser(): Promise<BrowserSetup> {
  let missing = await chromiumMissing();
  const mayInstall = !Deno.env.get(CHROMIUM_ENV) && Deno.uid() === 0 && onPath("apt-get");
  const wanted = [
    ...(missing ? ["chromium"] : []),
    ...(onPath("dot") ? [] : ["graphviz"]),
  ];
  if (wanted.length > 0 && mayInstall) {
    if (await aptInstall(wanted)) missing = await chromiumMissing();
  }
  if (missing) return { ok: false, line: BROWSER_SKIPPED_LINE, reason: missing };
  try {
    await loadPuppeteer();
  } catch (e) {
    const reason = `cannot load puppeteer-core@${PUPPETEER_VERSION}: ${(e as Error).message}`;
    return { ok: false, line: BROWSER_SKIPPED_LINE, reason };
  }
  const dot = onPath("dot") ? "graphviz dot" : "no graphviz (twz graph --format svg will say so)";
  return {
    ok: true,
    line: `browser_setup: ${chromiumPath()}, puppeteer-core ${PUPPETEER_VERSION}; ${dot}`,
  };
}

let skippedPrinted = false;

/**
 * Start a headless chromium for a test (`--no-sandbox --headless=new`,
 * talking to puppeteer over a pipe), or say why not: outside CI, print
 * {@linkcode BROWSER_SKIPPED_LINE} (once per process) and the reason, and
 * give `null`; under `CI=true`, throw. Close the browser with
 * `browser.close()` (the process also ends when this one does: its pipe
 * closes).
 *
 * @returns The browser, or `null` when there is none and CI is not set.
 * @throws {Error} There is no browser (or it does not start) and `CI=true`.
 * @example
 * ```ts ignore
 * import { launchBrowser } from "./browser_setup.ts";
 * const browser = await launchBrowser();
 * if (browser) {
 *   const page = await browser.newPage();
 *   await page.goto("about:blank");
 *   await browser.close();
 * }
 * ```
 */
export async function launchBrowser(): Promise<Browser | null> {
  const missing = await chromiumMissing();
  let reason = missing;
  if (reason === undefined) {
    try {
      const puppeteer = await loadPuppeteer();
      return await puppeteer.launch({
        executablePath: chromiumPath(),
        args: [...CHROMIUM_ARGS],
        pipe: true,
        defaultViewport: { ...VIEWPORT },
      });
    } catch (e) {
      reason = `chromium did not start: ${(e as Error).message.split("\n")[0]}`;
    }
  }
  if (Deno.env.get("CI") === "true") {
    throw new Error(`${BROWSER_SKIPPED_LINE} — and CI=true forbids skipping: ${reason}`);
  }
  if (!skippedPrinted) {
    skippedPrinted = true;
    console.log(`${BROWSER_SKIPPED_LINE}: ${reason}`);
  }
  return null;
}

if (import.meta.main) {
  const { ok, line, reason } = await setupBrowser();
  console.log(line);
  if (!ok) {
    console.error(`browser_setup: ${reason}`);
    if (Deno.env.get("CI") === "true") {
      console.error("browser_setup: CI=true: a missing browser is an error");
      Deno.exit(1);
    }
  }
  Deno.exit(0);
}

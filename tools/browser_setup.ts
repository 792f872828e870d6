/**
 * Prepare the machine for the explorer's browser tests (part of the root
 * task `setup`): make sure a headless browser is there — Debian's chromium,
 * installed with apt-get when it is missing and we are root (with graphviz,
 * which `twz graph --format svg` uses) — and that the browser driver,
 * puppeteer-core from npm at {@linkcode PUPPETEER_VERSION}, is in Deno's
 * cache. Fast (one stat, one `chromium --version`) when both are there.
 *
 * Tests and tools start the browser through `@twz/cli/browser`
 * (`launchBrowser`: a running headless chromium, or `null` after printing
 * the SKIPPED line once when there is none, so the test skips itself —
 * except under `CI=true`, where a missing browser is an error, as a
 * missing libpmem2 is: tools/pmem_setup.ts). That module also holds what
 * this one checks: the path, the `TWZ_CHROMIUM` override, the pinned
 * puppeteer-core.
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
import {
  BROWSER_SKIPPED_LINE,
  CHROMIUM_ENV,
  chromiumMissing,
  chromiumPath,
  loadPuppeteer,
  PUPPETEER_VERSION,
} from "@twz/cli/browser";

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

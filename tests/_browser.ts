// The headless browser of the explorer's tests (issue 17): Debian's
// chromium driven through puppeteer-core. tools/browser_setup.ts (the root
// task `setup`) installs chromium when it can and fetches the same pinned
// puppeteer-core; tests/ may not import tools/, so the few facts both need
// (the path, the `TWZ_CHROMIUM` override, the version, the switches, the
// SKIPPED line) are kept alike in both files.
//
// Without a browser a test prints BROWSER_SKIPPED_LINE once and skips
// itself; under CI=true it fails instead (as a missing libpmem2 does).
// deno-lint-ignore no-import-prefix
import type { Browser, Page } from "npm:puppeteer-core@25.16.0";

export type { Browser, Page };

/** The line printed (once) when there is no browser. */
export const BROWSER_SKIPPED_LINE =
  "SKIPPED: explorer browser tests need chromium (apt-get install -y chromium graphviz)";

/** Whether missing browsers fail (CI=true) rather than skip. */
export const CI = Deno.env.get("CI") === "true";

/** The browser executable: `TWZ_CHROMIUM`, else Debian's `/usr/bin/chromium`. */
export function chromiumPath(): string {
  return Deno.env.get("TWZ_CHROMIUM") || "/usr/bin/chromium";
}

/** Why the browser cannot run here (one line), or `undefined` when it can: `--version` is run once. */
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
    })
      .output();
    if (!out.success) return `${path} --version failed (exit ${out.code})`;
  } catch (e) {
    return `cannot run ${path}: ${(e as Error).message}`;
  }
  return undefined;
}

let printed = false;

/** Print the SKIPPED line (once per process) with its reason. */
export function printSkipped(reason: string): void {
  if (printed) return;
  printed = true;
  console.log(`${BROWSER_SKIPPED_LINE}: ${reason}`);
}

/**
 * A headless chromium (`--no-sandbox --headless=new`, over a pipe, so it
 * ends with this process too), or `null` after the SKIPPED line when there
 * is none; under CI=true, throws instead.
 */
export async function launchBrowser(): Promise<Browser | null> {
  let reason = await chromiumMissing();
  if (reason === undefined) {
    try {
      // deno-lint-ignore no-import-prefix
      const puppeteer = (await import("npm:puppeteer-core@25.16.0")).default;
      return await puppeteer.launch({
        executablePath: chromiumPath(),
        args: [
          "--no-sandbox",
          "--headless=new",
          "--disable-dev-shm-usage",
          "--disable-gpu",
          "--no-first-run",
          "--no-default-browser-check",
        ], // as tools/browser_setup.ts's CHROMIUM_ARGS
        pipe: true,
        defaultViewport: { width: 1280, height: 800 },
      });
    } catch (e) {
      reason = `chromium did not start: ${(e as Error).message.split("\n")[0]}`;
    }
  }
  if (CI) throw new Error(`${BROWSER_SKIPPED_LINE} — and CI=true forbids skipping: ${reason}`);
  printSkipped(reason);
  return null;
}

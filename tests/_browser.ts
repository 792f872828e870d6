// The headless browser of the explorer's tests (issue 17): `@twz/cli/browser`
// (Debian's chromium through puppeteer-core, started as `twz bench explore`
// and tools/explore_screenshot.ts start it; tools/browser_setup.ts, the root
// task `setup`, installs it). Without a browser a test prints the SKIPPED
// line once and skips itself; under CI=true it fails instead (as a missing
// libpmem2 does).
export { chromiumMissing, launchBrowser, printSkipped } from "@twz/cli/browser";
export type { Browser, Page } from "npm:puppeteer-core@25.16.0";

/** Whether missing browsers fail (CI=true) rather than skip. */
export const CI = Deno.env.get("CI") === "true";

/**
 * Make the README's screenshots of `twz explore` (issue 17): the fixture
 * image of the browser tests (tests/_explore_fixtures.ts, run as a script:
 * a linked list across three objects with a layout descriptor, the kv
 * store, a hub with 1,000 neighbours) is explored in headless chromium and
 * three views are saved:
 *
 * - `explorer-object.png`: the head of the list — its meta-info, FOT, and
 *   its bytes typed as `ListNode` records, the `next` pointer a link;
 * - `explorer-graph.png`: the pointer graph around the head, the middle
 *   node expanded one hop: the list's FOT edges and the object tied to the
 *   head;
 * - `explorer-graph-hub.png`: the graph around the hub: 1,001 objects and
 *   the 1,000 FOT entries between them.
 *
 * Needs chromium (tools/browser_setup.ts installs it); without it, prints
 * the SKIPPED line and exits 1.
 *
 * @example Remake the README's images
 * ```sh
 * deno run -A tools/explore_screenshot.ts            # into docs/img/
 * deno run -A tools/explore_screenshot.ts /tmp/shots # elsewhere
 * ```
 *
 * @tags allow-run, allow-read, allow-write, allow-env, allow-net
 * @module
 */
import { join } from "node:path";
import { launchBrowser } from "@twz/cli/browser";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = join(ROOT, "packages/cli/main.ts");
const FIXTURE = join(ROOT, "tests/_explore_fixtures.ts");
const URL_LINE = /twz: explorer on (http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]+)/;
const STEP_MS = 30_000;

/** What the fixture script prints: where things are in the image. */
interface Fixture {
  list: [string, string, string];
  hub: string;
  kv: string;
}

/**
 * Make the screenshots into `outDir`.
 *
 * @param outDir The folder (created when missing).
 * @returns The files written, or `null` when there is no browser.
 * @throws {Error} The fixture, the explorer or a page step failed.
 * @example
 * ```ts ignore
 * import { screenshots } from "./explore_screenshot.ts";
 * console.log(await screenshots("docs/img"));
 * ```
 */
export async function screenshots(outDir: string): Promise<string[] | null> {
  const browser = await launchBrowser();
  if (browser === null) return null;
  const dir = await Deno.makeTempDir({ prefix: "twz-shots-" });
  let explorer: Deno.ChildProcess | undefined;
  try {
    const image = join(dir, "explore.img");
    const made = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", FIXTURE, image],
      cwd: ROOT,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!made.success) throw new Error("explore_screenshot: the fixture image was not made");
    const fx = JSON.parse(new TextDecoder().decode(made.stdout).trim()) as Fixture;

    explorer = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "explore",
        "--image",
        image,
        "--port",
        "0",
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let text = "";
    let found: (url: string | undefined) => void = () => {};
    const seen = new Promise<string | undefined>((resolve) => found = resolve);
    (async () => {
      for await (const chunk of explorer.stdout.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        const m = text.match(URL_LINE);
        if (m) found(m[1]);
      }
      found(undefined); // it ended
    })();
    const url = await seen;
    if (url === undefined) throw new Error(`explore_screenshot: twz explore printed ${text}`);

    await Deno.mkdir(outDir, { recursive: true });
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const [head, middle, tail] = fx.list;
    const written: string[] = [];

    // The head opened from the naming tree, as a user does (the tree stays unfolded).
    await page.goto(url, { waitUntil: "load", timeout: STEP_MS });
    await page.waitForSelector(`[data-path="/demo"]`, { timeout: STEP_MS });
    if (!(await page.$(`[data-path="/demo/list"]`))) await page.click(`[data-path="/demo"]`);
    await page.waitForSelector(`[data-path="/demo/list"]`, { timeout: STEP_MS });
    await page.click(`[data-path="/demo/list"]`);
    await page.waitForSelector(`body[data-object-ready="${head}"]`, { timeout: STEP_MS });
    await page.waitForSelector(`section#object [data-field="value"]`, { timeout: STEP_MS });
    await new Promise((r) => setTimeout(r, 300));
    const object = join(outDir, "explorer-object.png") as `${string}.png`;
    await page.screenshot({ path: object });
    written.push(object);

    // The graph around the head, the middle node expanded: FOT and tie edges.
    await page.goto(`${url}#/graph/${head}`, { timeout: STEP_MS });
    await page.waitForSelector(`ul#graph-nodes > li[data-id="${middle}"]`, { timeout: STEP_MS });
    await page.click(`ul#graph-nodes > li[data-id="${middle}"]`);
    await page.waitForSelector(`ul#graph-nodes > li[data-id="${tail}"]`, { timeout: STEP_MS });
    await new Promise((r) => setTimeout(r, 800)); // let the layout settle
    const graph = join(outDir, "explorer-graph.png") as `${string}.png`;
    await page.screenshot({ path: graph });
    written.push(graph);

    // The graph around the hub: 1,001 objects, laid out by the page.
    await page.goto(`${url}#/graph/${fx.hub}`, { timeout: STEP_MS });
    await page.waitForFunction(`Number(document.body.dataset.graphNodes) > 1000`, {
      timeout: STEP_MS,
    });
    await new Promise((r) => setTimeout(r, 800));
    const hub = join(outDir, "explorer-graph-hub.png") as `${string}.png`;
    await page.screenshot({ path: hub });
    written.push(hub);
    return written;
  } finally {
    await browser.close();
    if (explorer) {
      try {
        explorer.kill("SIGTERM");
      } catch { /* gone */ }
      await explorer.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const out = Deno.args[0] ?? join(ROOT, "docs/img");
  const files = await screenshots(out);
  if (files === null) Deno.exit(1);
  for (const f of files) console.log(`wrote ${f}`);
}

/**
 * `twz bench explore`: how fast the explorer's page answers on a large
 * system (issue 17). It makes an image holding 100,000 objects (`--ops`;
 * kernel creates, so the making is quick) among which a hub whose FOT names
 * 1,000 of them and a root object pointing at the hub, starts `twz explore`
 * on it in a subprocess, and drives its page in a headless chromium (Debian's
 * `/usr/bin/chromium`, or `TWZ_CHROMIUM`) through puppeteer-core (loaded
 * only here, so `twz` does not load it otherwise). With the browser already
 * running, each round opens the page in a fresh browser context (no HTTP
 * cache) and measures:
 *
 * - `objects-first-page`: from navigation start to the first page of the
 *   object table in the DOM — the page's `performance.mark("twz:objects-ready")`,
 *   read in the page, so it is the browser's own clock from its navigation
 *   start. The first navigation (the explorer's object list not yet cached)
 *   is reported on its own as `first_ms`.
 * - `graph-expand-1000`: the graph view opened on the root, then the hub
 *   expanded (`window.twzGraph.expand`) until the page's
 *   `performance.mark("twz:graph-rendered")` with 1,001 or more nodes: the
 *   request, the layout and the drawing.
 *
 * Each case reports the median over `--rounds` (default 7) and the smallest
 * and largest round.
 *
 * @example
 * ```sh
 * flock /tmp/bench.lock npx -y deno@2.9.6 task twz bench explore --json
 * ```
 *
 * @module
 */
import { Kernel } from "@twz/kernel";
import { ErrorCode, formatId, type ObjID, Prot, TwzError } from "@twz/kernel/abi";
import { Twz } from "@twz/libtwz";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { openHal, type Scratch, withScratch } from "./_util.ts";
import {
  BROWSER_INSTALL_HINT,
  CHROMIUM_ENV,
  chromiumMissing,
  launchChromium,
} from "../explore/browser.ts";
// deno-lint-ignore no-import-prefix
import type { Page } from "npm:puppeteer-core@25.16.0";

/** How many objects the hub's FOT names. */
export const HUB_NEIGHBOURS = 1000;

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const URL_LINE = /twz: explorer on (http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]+)/;
const STEP_MS = 60_000;

/** Where things are in the benchmark's image. */
interface BenchImage {
  objects: number;
  root: string;
  hub: string;
}

/**
 * Make the image: a root object pointing at a hub whose FOT names
 * {@linkcode HUB_NEIGHBOURS} objects, then plain kernel objects up to
 * `objects`. Sized so that the object table (one slot per 2 KiB of region)
 * is at most 90 % full.
 */
async function makeImage(
  opts: BenchOptions,
  image: string,
  objects: number,
): Promise<BenchImage> {
  const size = Math.max(64 << 20, 2 ** Math.ceil(Math.log2(objects * 2048 / 0.9)));
  const { hal } = await openHal(opts, image, size);
  const kernel = Kernel.boot(hal);
  try {
    const twz = Twz.attach(kernel.port());
    twz.naming.mkdir("/bench");
    const hub = twz.create({
      name: "/bench/hub",
      size: 256 << 10,
      fot: { entries: HUB_NEIGHBOURS + 24, namesSize: 64 },
    });
    const root = twz.create({ name: "/bench/root", size: 4096 });
    root.fotIndex(hub.id, Prot.Read);
    const leaves: ObjID[] = [];
    for (let i = 0; i < HUB_NEIGHBOURS; i++) leaves.push(kernel.create({ size: 1024 }));
    for (const id of leaves) hub.fotIndex(id, Prot.Read);
    for (let i = kernel.port().list().length; i < objects; i++) kernel.create({ size: 1024 });
    const made = kernel.port().list().length;
    twz.close();
    return { objects: made, root: formatId(root.id), hub: formatId(hub.id) };
  } finally {
    kernel.shutdown();
    hal.close();
  }
}

/** A `twz explore` subprocess on `image`: its URL, and how to stop it. */
async function startExplorer(opts: BenchOptions, image: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "explore", "--image", image, "--hal", opts.hal, "--port", "0"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let seen: (url: string) => void = () => {};
  const url = new Promise<string>((resolve) => seen = resolve);
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const m = text.match(URL_LINE);
      if (m) seen(m[1]!);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await drained;
  };
  const ended = child.status.then((s) => `twz explore exited with code ${s.code}`);
  const first = await Promise.race([url.then((u) => ({ u })), ended]);
  if (typeof first === "string") {
    await stop();
    throw new Error(`bench explore: ${first}: ${text.trim().split("\n").pop()}`);
  }
  return { url: first.u, stop };
}

/** Run the explorer benchmark. */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "explore", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const objects = opts.ops ?? 100_000;
  const rounds = opts.rounds ?? 7;
  if (objects < HUB_NEIGHBOURS + 16) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `--ops must be at least ${HUB_NEIGHBOURS + 16} (the hub's neighbours and a few more)`,
    );
  }
  const missing = await chromiumMissing();
  if (missing !== undefined) {
    throw new TwzError(
      ErrorCode.NotSupported,
      `${missing} (${BROWSER_INSTALL_HINT}, or set ${CHROMIUM_ENV})`,
    );
  }
  const image = scratch.image("explore.img");
  const made = await makeImage(opts, image, objects);
  const explorer = await startExplorer(opts, image);
  const browser = await launchChromium();
  try {
    /** One page in a fresh browser context (no cache, no storage), closed by `fn`'s end. */
    const inFreshPage = async <T>(
      fn: (page: Page) => Promise<T>,
    ) => {
      const context = await browser.createBrowserContext();
      try {
        return await fn(await context.newPage());
      } finally {
        await context.close();
      }
    };
    const firstPage = () =>
      inFreshPage(async (page) => {
        await page.goto(`${explorer.url}#/objects?offset=0`, { timeout: STEP_MS });
        await page.waitForSelector(`body[data-objects-ready="1"]`, { timeout: STEP_MS });
        const ms = await page.evaluate(
          `performance.getEntriesByName("twz:objects-ready")[0]?.startTime ?? -1`,
        ) as number;
        if (ms < 0) throw new Error("bench explore: the page made no twz:objects-ready mark");
        return ms;
      });
    const expand = () =>
      inFreshPage(async (page) => {
        await page.goto(`${explorer.url}#/graph/${made.root}`, { timeout: STEP_MS });
        await page.waitForSelector(`ul#graph-nodes > li[data-id="${made.hub}"]`, {
          timeout: STEP_MS,
        });
        const [ms, nodes] = await page.evaluate(`(async () => {
          const t0 = performance.now();
          await window.twzGraph.expand(${JSON.stringify(made.hub)});
          for (;;) {
            const marks = performance.getEntriesByName("twz:graph-rendered")
              .filter((m) => m.startTime >= t0);
            const nodes = Number(document.body.dataset.graphNodes);
            if (marks.length > 0 && nodes > ${HUB_NEIGHBOURS}) {
              return [marks[marks.length - 1].startTime - t0, nodes];
            }
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        })()`) as [number, number];
        return { ms, nodes };
      });

    const first = await firstPage();
    const pageMs: number[] = [];
    const expandMs: number[] = [];
    let nodes = 0;
    await expand(); // warm: the graph code path and the server's neighbour reads
    for (let r = 0; r < rounds; r++) {
      await scratch.checkpoint();
      pageMs.push(await firstPage());
      const e = await expand();
      expandMs.push(e.ms);
      nodes = e.nodes;
    }
    const figures = (ms: number[]) => ({
      ops: ms.length,
      median_ms: +median(ms).toFixed(1),
      min_ms: +Math.min(...ms).toFixed(1),
      max_ms: +Math.max(...ms).toFixed(1),
    });
    return [
      {
        bench: "explore",
        case: "objects-first-page",
        hal: opts.hal,
        objects: made.objects,
        ...figures(pageMs),
        first_ms: +first.toFixed(1),
        target_ms: 1000,
      },
      {
        bench: "explore",
        case: `graph-expand-${HUB_NEIGHBOURS}`,
        hal: opts.hal,
        objects: made.objects,
        nodes,
        ...figures(expandMs),
        target_ms: 1000,
      },
    ];
  } finally {
    await browser.close();
    await explorer.stop();
    scratch.remove(image);
  }
}

// Issue 17: the explorer's threads view lists a running program. A `twz
// boot --serve` holds the image; `twz run --image` starts a program in it
// (through the control socket) that runs until it is killed; `twz explore
// --image` on the same image connects through the control socket too, and
// both its API and its page (in headless chromium, when there is one) show
// the program's thread running; when the program is killed, the open page
// shows it exited without being reloaded (the live updates). Every process
// started here is stopped.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { chromiumMissing, CI, launchBrowser, printSkipped } from "./_browser.ts";
import { startExplorer } from "./_explore_fixtures.ts";
import { MAIN, userEnv } from "./_twz.ts";

const tmpDir = scratchDirs("twz-explore-threads-");

/** A program that says it started, then runs until it is killed. */
const WAITER = `import type { ProgramEnv } from "@twz/libtwz/program";
export default async function main(env: ProgramEnv): Promise<number> {
  console.log("waiter: waiting");
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    env.port.threadYield(); // throws Killed when the system stops it
  }
}
`;

/** A subprocess of `twz ARGS` whose output is collected as it comes. */
class Twz {
  readonly child: Deno.ChildProcess;
  text = "";
  readonly #drained: Promise<unknown>;

  constructor(args: string[], cwd: string) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: userEnv({ TWZ_CACHE_DIR: join(cwd, "cache") }),
      clearEnv: true,
    }).spawn();
    const drain = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) this.text += chunk;
    };
    this.#drained = Promise.all([drain(this.child.stdout), drain(this.child.stderr)]);
  }

  /** Wait until it has printed something matching `pattern` (at most `ms`). */
  async waitFor(pattern: RegExp, ms = 60_000): Promise<void> {
    const until = Date.now() + ms;
    let ended = false;
    this.child.status.then(() => ended = true);
    while (!pattern.test(this.text)) {
      if (ended || Date.now() > until) {
        throw new Error(
          `no ${pattern} (${ended ? "it ended" : "timed out"}); it printed:\n${this.text}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Send `signal`, wait for the exit (SIGKILL after 15 s); the exit code. */
  async stop(signal: Deno.Signal): Promise<number> {
    try {
      this.child.kill(signal);
    } catch { /* already gone */ }
    const kill = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 15_000);
    const { code } = await this.child.status;
    clearTimeout(kill);
    await this.#drained;
    return code;
  }
}

interface ThreadRow {
  tid: number;
  name: string;
  state: string;
}

Deno.test({
  name: "explorer threads view: a program running in a twz boot's system is listed, running",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = tmpDir();
    const image = join(dir, "t.img");
    const waiter = join(dir, "waiter.ts");
    Deno.writeTextFileSync(waiter, WAITER);
    const boot = new Twz(["boot", "--serve", "--image", image, "--size", "32M"], dir);
    let run: Twz | undefined;
    let explorer: Awaited<ReturnType<typeof startExplorer>> | undefined;
    try {
      await boot.waitFor(/^serving .*\.sock/m);
      run = new Twz(["run", "--image", image, waiter], dir);
      await run.waitFor(/waiter: waiting/);
      explorer = await startExplorer(MAIN, image);
      assert.match(
        explorer.output(),
        /through .*t\.img\.sock/,
        "explored through the control socket",
      );

      const r = await fetch(`${explorer.origin}/api/threads?token=${explorer.token}`);
      const body = await r.text();
      assert.equal(r.status, 200, body);
      const threads = (JSON.parse(body) as { threads: ThreadRow[] }).threads;
      const row = threads.find((t) => /waiter/.test(t.name) && t.state !== "exited");
      assert.ok(row, `a live waiter thread among ${body}`);
      assert.match(row.state, /^(running|sleeping|starting)$/);

      const missing = await chromiumMissing();
      if (missing && !CI) {
        printSkipped(`${missing} (the page's threads table is not checked)`);
        return;
      }
      const browser = await launchBrowser();
      assert.ok(browser, "launchBrowser gave no browser");
      try {
        const page = await browser.newPage();
        await page.goto(`${explorer.url}#/threads`, { waitUntil: "load", timeout: 20_000 });
        const tr = `table#threads tr[data-tid="${row.tid}"]`;
        await page.waitForSelector(tr, { timeout: 20_000 });
        assert.equal(await page.evaluate(`document.body.dataset.view`), "threads");
        const name = await page.$eval(`${tr} td.name`, (e) => e.textContent ?? "");
        const state = await page.$eval(`${tr} td.state`, (e) => e.textContent ?? "");
        assert.match(name, /waiter/);
        assert.match(state.trim(), /^(running|sleeping|starting)$/);

        // Live: the program ends (its `twz run` goes away, which asks the
        // system to kill it) and the open page shows it exited, not reloaded.
        await page.evaluate(`window.twzTestMarker = 1`); // gone if the page reloads
        await run.stop("SIGINT");
        // (45 s: under the whole parallel suite the kill and the next poll
        // have taken longer than 20 s; the failure then says what the API saw.)
        await page.waitForFunction(
          `(document.querySelector(${
            JSON.stringify(`${tr} td.state`)
          })?.textContent ?? "").trim().startsWith("exited")`,
          { timeout: 45_000 },
        ).catch(async (e) => {
          const api = await fetch(`${explorer!.origin}/api/threads?token=${explorer!.token}`)
            .then((x) => x.text(), (x) => String(x));
          const shown = await page.$eval(tr, (el) => el.textContent ?? "").catch(() => "(no row)");
          throw new Error(
            `${e}; the page shows ${shown}; /api/threads: ${api}; boot: ${boot.text}`,
          );
        });
        assert.equal(await page.evaluate(`window.twzTestMarker`), 1, "updated without a reload");
      } finally {
        await browser.close();
      }
    } finally {
      const explorerCode = explorer ? await explorer.stop() : 0;
      if (run) await run.stop("SIGINT"); // the program is killed; its exit code does not matter here
      const bootCode = await boot.stop("SIGTERM");
      assert.equal(explorerCode, 0, `twz explore: ${explorer?.output()}`);
      assert.equal(bootCode, 0, `twz boot --serve: ${boot.text}`);
    }
  },
});

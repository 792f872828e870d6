// Run damage-campaign cases in child processes (_damage_child.ts) with a
// watchdog: a case that takes longer than its timeout (a hang at 100 % CPU
// over a damaged count) is recorded as a failure naming the phase it hung
// in, the child is killed and a fresh one continues with the next case.
import { type CaseResult, emptyResult, type Fixture, saveFixture } from "./_damage.ts";

const CHILD = new URL("./_damage_child.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

type FromChild =
  | { type: "ready" }
  | { type: "phase"; phase: string }
  | { type: "result"; result: CaseResult }
  | { type: "error"; message: string };

/** A hung or crashed case, as a result. */
function broken(name: string, why: string, ms: number): CaseResult {
  const r = emptyResult(name, [why]);
  r.ms = ms;
  return r;
}

class Runner {
  #child!: Deno.ChildProcess;
  #writer!: WritableStreamDefaultWriter<Uint8Array>;
  #ready!: Promise<void>;
  #notReady: ((error: Error) => void) | undefined;
  /** Why a child could not start (then every case fails at once). */
  #broken: string | undefined;
  #listener: ((m: FromChild) => void) | undefined;
  #exited: (() => void) | undefined;
  #done!: Promise<unknown>;

  constructor(readonly fixtureDir: string) {
    this.#start();
  }

  #start(): void {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", CHILD, this.fixtureDir],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#ready = new Promise((resolve, reject) => {
      this.#notReady = reject;
      this.#listener = (m) => {
        if (m.type === "ready") {
          this.#notReady = undefined;
          resolve();
        }
      };
    });
    this.#ready.catch(() => {}); // handled in run()
    const child = this.#child;
    this.#done = (async () => {
      let buffered = "";
      try {
        for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
          buffered += chunk;
          for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (child === this.#child) this.#listener?.(JSON.parse(line));
          }
        }
      } catch {
        // killed
      }
      const status = await child.status;
      if (child !== this.#child) return;
      this.#notReady?.(
        new Error(`the case runner exited (code ${status.code}) before it was ready`),
      );
      this.#exited?.();
    })();
  }

  async #stop(): Promise<void> {
    try {
      this.#writer.releaseLock();
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await this.#done;
  }

  async run(name: string, timeoutMs: number, pmemDir?: string, cli = false): Promise<CaseResult> {
    const t0 = performance.now();
    if (this.#broken === undefined) {
      try {
        await this.#ready;
      } catch (e) {
        this.#broken = (e as Error).message;
      }
    }
    if (this.#broken !== undefined) return broken(name, this.#broken, 0);
    let phase = "start";
    const result = await new Promise<CaseResult | "hung">((resolve) => {
      const timer = setTimeout(() => resolve("hung"), timeoutMs);
      const finish = (r: CaseResult | "hung") => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#exited = () =>
        finish(broken(name, `the case runner died (in phase "${phase}")`, performance.now() - t0));
      this.#listener = (m) => {
        if (m.type === "phase") phase = m.phase;
        else if (m.type === "result") finish(m.result);
        else if (m.type === "error") {
          finish(broken(name, `the harness itself failed: ${m.message}`, performance.now() - t0));
        }
      };
      this.#writer.write(new TextEncoder().encode(JSON.stringify({ name, pmemDir, cli }) + "\n"));
    });
    this.#exited = undefined;
    if (result === "hung" || result.failures.some((f) => f.startsWith("the case runner died"))) {
      await this.#stop();
      this.#start();
    }
    return result === "hung"
      ? broken(
        name,
        `did not finish within ${timeoutMs} ms (hung in phase "${phase}")`,
        performance.now() - t0,
      )
      : result;
  }

  async close(): Promise<void> {
    try {
      await this.#writer.close();
    } catch {
      // gone
    }
    await this.#child.status;
    await this.#done;
  }
}

/**
 * Run every named case of the campaign on `workers` child processes.
 *
 * @param timeoutFor The watchdog for a case (ms).
 * @param pmemDir Boot through hal-pmem on image files in this directory
 * (probes only: fsck and repair are the same code on either HAL).
 * @param cli Which cases also go through `twz fsck --repair --deep` and
 * `--undo` (the command's code, in the child process).
 */
export async function runCampaign(
  fixture: Fixture,
  names: string[],
  timeoutFor: (name: string) => number,
  workers = 1,
  pmemDir?: string,
  cli: (name: string) => boolean = () => false,
): Promise<Map<string, CaseResult>> {
  const dir = Deno.makeTempDirSync({ prefix: "twz-damage-fixture-" });
  const results = new Map<string, CaseResult>();
  const queue = [...names];
  const runners: Runner[] = [];
  try {
    saveFixture(fixture, dir);
    for (let i = 0; i < Math.max(1, workers); i++) runners.push(new Runner(dir));
    await Promise.all(runners.map(async (runner) => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        results.set(name, await runner.run(name, timeoutFor(name), pmemDir, cli(name)));
      }
    }));
  } finally {
    await Promise.all(runners.map((r) => r.close()));
    Deno.removeSync(dir, { recursive: true });
  }
  return results;
}

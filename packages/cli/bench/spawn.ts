/**
 * `twz bench spawn`: what starting a program from `/bin` costs, against a
 * bare Worker doing the least the same start can do. One tiny program
 * (`main` returns 0) is bundled with the real bundler (`bundleFile`: about
 * 150 KB, libtwz's program runtime included) and installed in `/bin`.
 * Four cases, measured in one process, interleaved (each step runs every
 * case once, in a shuffled order: a fixed seed), with a pause after each
 * spawn so the last Worker's teardown is not timed in the next one:
 *
 * - `bare-worker`: `new Worker` of a tiny `blob:` loader with permissions
 *   `"none"`; it imports the SAME bundle text from a `blob:` URL (made once
 *   per run) and posts back once the module has been evaluated and its
 *   default export is a function. Stops when the main thread receives that
 *   message (then the Worker is terminated, untimed).
 * - `from-bin`: `runProgram(board, "spawn-zero", [])`, the path of `twz
 *   run NAME` and the shell's `run`: `/bin/NAME` looked up, the code object
 *   checked, the thread object created and persisted (bound at
 *   `/proc/<tid>`), the channel opened, the loader's Worker started; it
 *   imports the bundle from the code object's `blob:` URL, `startProgram`
 *   connects the port, `main` returns 0, `thread_exit` reaches the kernel.
 *   Stops when the kernel has recorded the exit (the thread object
 *   persisted "exited", `runProgram` resolved).
 * - `bare-worker-first`, `from-bin-first`: the same, for a program's FIRST
 *   start: the bare Worker gets a new `blob:` URL of the text every time;
 *   the program is installed again (a new code object: untimed) before
 *   every start, which then reads and decodes it and makes its URL. Deno
 *   caches compiled code by module URL, so the repeated starts above (one
 *   URL, kept by the thread manager per code object) compile less than
 *   these.
 *
 * "Started" is thus, in every case, "the program's module was evaluated in
 * a fresh permissions-none Worker and the kernel side knows it": `from-bin`
 * adds only what a real program start is (thread object, channel, the
 * program's first and last system call), so its ratio to `bare-worker` is
 * what the system adds to a bare Worker. The target: ratio ≤ 1.3.
 *
 * `--ops` spawns of each case per round (default 10), `--rounds` (default
 * 5); 2 untimed spawns of each first. Reports, per case, the median of all
 * spawns (`ms_median`) and the smallest and largest per-round median; for
 * the `from-bin` cases the ratio of medians to their bare case (and its
 * range over the rounds) and the load average when the run ended.
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench spawn --json
 * ```
 *
 * @module
 */
import { closeBoard, openBoard } from "../board.ts";
import { attachThreads, installProgram, runProgram, stopThreads } from "../run.ts";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { bundleSource, round3, type Scratch, withScratch } from "./_util.ts";

const TARGET_RATIO = 1.3;
const NAME = "spawn-zero";
/** The program installed anew before each of its starts (`from-bin-first`). */
const FIRST = "spawn-first";
/** Pause after each timed spawn (ms): the previous Worker's teardown ends in it. */
const SETTLE_MS = 15;

/** The bare case's loader: import the module it is sent, say when it is evaluated. */
const BARE_LOADER = `self.onmessage = async (e) => {
  const m = await import(e.data);
  self.postMessage(typeof m.default === "function");
};`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function loadAverage(): number | undefined {
  try {
    return round3(Deno.loadavg()[0]!);
  } catch {
    return undefined; // no --allow-sys
  }
}

/**
 * Run the program-start benchmark.
 *
 * @param opts `hal`, `image` (a new one; default: a temporary file),
 *   `ops` spawns per case and round (default 10), `rounds` (default 5).
 * @returns One row per case (`bare-worker`, `from-bin`,
 *   `bare-worker-first`, `from-bin-first`): milliseconds per start, median
 *   and per-round range; the `from-bin` cases also `ratio_vs_bare`, its
 *   per-round range, `target_ratio`, `within_target`, `load_avg_1m`.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "spawn", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 10;
  const rounds = opts.rounds ?? 5;
  const image = scratch.image("spawn.img");
  const bareUrls: string[] = [];
  try {
    const bundle = await bundleSource(
      NAME,
      "export default function main(): number {\n  return 0;\n}\n",
    );
    const board = await openBoard({
      hal: opts.hal,
      image,
      settings: opts.settings,
      holder: "twz bench spawn",
    });
    try {
      const system = attachThreads(board);
      installProgram(system, NAME, bundle.text);
      const loaderUrl = URL.createObjectURL(new Blob([BARE_LOADER], { type: "text/javascript" }));
      const bundleUrl = URL.createObjectURL(new Blob([bundle.text], { type: "text/javascript" }));
      bareUrls.push(loaderUrl, bundleUrl);
      const quiet = { console: () => {} };

      const bare = async (fresh: boolean): Promise<number> => {
        const t0 = performance.now();
        const url = fresh
          ? URL.createObjectURL(new Blob([bundle.text], { type: "text/javascript" }))
          : bundleUrl;
        const w = new Worker(
          loaderUrl,
          { type: "module", deno: { permissions: "none" } } as WorkerOptions,
        );
        try {
          const ok = await new Promise<boolean>((resolve, reject) => {
            w.onmessage = (e: MessageEvent) => resolve(e.data === true);
            w.onerror = (e) => {
              e.preventDefault();
              reject(new Error(`bench spawn: the bare Worker failed: ${e.message}`));
            };
            w.postMessage(url);
          });
          const ms = performance.now() - t0;
          if (!ok) throw new Error("bench spawn: the bundle has no default export function");
          return ms;
        } finally {
          w.terminate();
          if (fresh) URL.revokeObjectURL(url);
        }
      };
      const fromBin = async (name: string): Promise<number> => {
        if (name === FIRST) installProgram(system, FIRST, bundle.text);
        const t0 = performance.now();
        const end = await runProgram(board, name, [], quiet);
        const ms = performance.now() - t0;
        if (end.exitCode !== 0 || end.fault !== null) {
          throw new Error(
            `bench spawn: /bin/${name} ended with code ${end.exitCode}: ${end.fault?.message}`,
          );
        }
        return ms;
      };

      const cases: [string, () => Promise<number>][] = [
        ["bare-worker", () => bare(false)],
        ["from-bin", () => fromBin(NAME)],
        ["bare-worker-first", () => bare(true)],
        ["from-bin-first", () => fromBin(FIRST)],
      ];
      for (let w = 0; w < 2; w++) {
        for (const [, f] of cases) {
          await f();
          await sleep(SETTLE_MS);
        }
      }
      const times: number[][][] = cases.map(() => []);
      const order = cases.map((_, c) => c);
      let seed = 1;
      for (let r = 0; r < rounds; r++) {
        const round: number[][] = cases.map(() => []);
        for (let i = 0; i < ops; i++) {
          // Each case once, in a new order (no case always follows the same one).
          for (let k = order.length - 1; k > 0; k--) {
            seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
            const j = seed % (k + 1);
            [order[k], order[j]] = [order[j]!, order[k]!];
          }
          for (const at of order) {
            round[at]!.push(await cases[at]![1]());
            await sleep(SETTLE_MS);
          }
        }
        round.forEach((t, c) => times[c]!.push(t));
      }

      const load = loadAverage();
      const medians = times.map((perRound) => median(perRound.flat()));
      return cases.map(([name], c) => {
        const roundMedians = times[c]!.map(median);
        const row: BenchResult = {
          bench: "spawn",
          case: name,
          hal: opts.hal,
          ops: ops * rounds,
          ns_per_op: Math.round(medians[c]! * 1e6),
          ms_median: round3(medians[c]!),
          round_median_min_ms: round3(Math.min(...roundMedians)),
          round_median_max_ms: round3(Math.max(...roundMedians)),
          bundle_bytes: bundle.text.length,
        };
        if (c % 2 === 1) {
          // A from-bin case, against the bare case before it.
          const ratio = medians[c]! / medians[c - 1]!;
          const perRound = times[c]!.map((t, r) => median(t) / median(times[c - 1]![r]!));
          row.ratio_vs_bare = round3(ratio);
          row.ratio_round_min = round3(Math.min(...perRound));
          row.ratio_round_max = round3(Math.max(...perRound));
          row.target_ratio = TARGET_RATIO;
          row.within_target = ratio <= TARGET_RATIO;
          if (load !== undefined) row.load_avg_1m = load;
        }
        return row;
      });
    } finally {
      await stopThreads(board);
      closeBoard(board);
    }
  } finally {
    for (const url of bareUrls) URL.revokeObjectURL(url);
  }
}

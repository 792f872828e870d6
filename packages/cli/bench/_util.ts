// Helpers shared by the benchmarks: temporary images and timing.
import { join } from "node:path";
import { type Hal, HalError, type HalPlugin } from "@twz/kernel/hal";
import {
  checkImagePath,
  checkImageSize,
  fileExists,
  loadPlugin,
  openImage,
  UsageError,
} from "../board.ts";
import { bundleFile } from "../run.ts";
import { ErrorCode, type ThreadInfo, TwzError } from "@twz/kernel";
import type { ThreadCalls } from "@twz/kernel/threads";
import { type BenchOptions, type BenchResult, median } from "./types.ts";

/**
 * The files one benchmark run writes, and their removal: every benchmark
 * makes its images through one of these ({@linkcode withScratch}), so none
 * is left behind when the run ends, whether it ends well, by an exception,
 * or by Ctrl-C (SIGINT) or SIGTERM.
 *
 * - Without `--image`, images go in a new folder `twz-bench-XXXXXX` under
 *   `$TMPDIR` (or `/tmp`; under `/dev/shm`, when it exists, for hal-pmem),
 *   removed with everything in it at the end.
 * - With `--image P`, the image is P itself: it must not exist (a benchmark
 *   never writes into an existing file, and never removes one it did not
 *   create), and it is removed at the end unless `keep` (`--keep`) is set.
 *   A benchmark that makes one image after another (kv's rounds) removes
 *   each before the next ({@linkcode Scratch.remove}), so P is reused.
 *
 * A signal is handled only when the event loop runs: a benchmark that
 * measures a long synchronous loop calls {@linkcode Scratch.checkpoint}
 * between rounds, so Ctrl-C ends it there.
 */
export class Scratch {
  #dirs = new Map<string, string>();
  #mine = new Set<string>();
  #closed = false;
  /** The benchmark's options. */
  readonly opts: BenchOptions;
  /** The benchmark's name, for messages. */
  readonly bench: string;

  /**
   * A run's scratch files, none yet; Ctrl-C removes them from now on.
   *
   * @param opts The benchmark's options (`hal`, `image`, `keep`).
   * @param bench The benchmark's name, for messages.
   */
  constructor(opts: BenchOptions, bench: string) {
    this.opts = opts;
    this.bench = bench;
    live.add(this);
    listen();
  }

  /**
   * The path of a new image: `--image P` (refused when P exists or is in
   * use by this run), else `name` in the run's temporary folder.
   *
   * @param name The file's name in the temporary folder.
   * @param hal The HAL it is for, when not the run's (where the folder is).
   * @throws {UsageError} `--image` is empty or names an existing file.
   * @throws {HalError} `--image` names no possible image (see `checkImagePath`).
   */
  image(name: string, hal: string = this.opts.hal): string {
    if (this.#closed) throw new Error(`bench ${this.bench}: its scratch files were removed`);
    const given = this.opts.image;
    if (given === undefined) return join(this.folder(hal), name);
    if (this.#mine.has(given)) {
      throw new Error(`bench ${this.bench} makes two images at once: --image names one`);
    }
    try {
      checkImagePath(given);
    } catch (error) {
      if (!(error instanceof HalError)) throw error;
      throw new HalError(`Cannot create image ${given}: ${error.message}`, {
        cause: error,
        ...(error.code !== undefined ? { code: error.code } : {}),
      });
    }
    if (fileExists(given)) {
      throw new UsageError(
        `--image ${given} exists: benchmarks write a new image and never touch an existing one`,
      );
    }
    this.#mine.add(given);
    return given;
  }

  /**
   * The run's temporary folder, made on first use: under `$TMPDIR` (or
   * `/tmp`), or `/dev/shm` for hal-pmem.
   *
   * @param hal The HAL its files are for.
   */
  folder(hal: string = this.opts.hal): string {
    const base = scratchBase(hal);
    let dir = this.#dirs.get(base);
    if (dir === undefined) {
      dir = Deno.makeTempDirSync({ dir: base, prefix: "twz-bench-" });
      this.#dirs.set(base, dir);
    }
    return dir;
  }

  /**
   * Remove an image this run made (and the image lock's side file, when this
   * process wrote it), now; `--keep` does not keep it. Harmless when gone.
   */
  remove(path: string): void {
    removeImage(path);
    this.#mine.delete(path);
  }

  /**
   * Let the event loop run once, so that a pending Ctrl-C is handled (the
   * run's files removed, exit 130) before the next synchronous stretch.
   */
  checkpoint(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }

  /** Remove every file of the run (with `--keep`, the `--image` file stays). Harmless twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    live.delete(this);
    unlisten();
    for (const path of this.#mine) {
      if (this.opts.keep) continue;
      removeImage(path);
    }
    this.#mine.clear();
    for (const dir of this.#dirs.values()) {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    }
    this.#dirs.clear();
  }

  /** {@linkcode Scratch.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Run `fn` with a {@linkcode Scratch} for the benchmark `bench`; its files
 * are removed when `fn` ends, however it ends.
 *
 * @param opts The benchmark's options.
 * @param bench Its name.
 * @param fn The benchmark's body.
 * @returns What `fn` returns.
 */
export async function withScratch<T>(
  opts: BenchOptions,
  bench: string,
  fn: (scratch: Scratch) => Promise<T>,
): Promise<T> {
  const scratch = new Scratch(opts, bench);
  try {
    return await fn(scratch);
  } finally {
    scratch.close();
  }
}

/** The folder for temporary images: `$TMPDIR` or `/tmp`; `/dev/shm` for hal-pmem. */
function scratchBase(hal: string): string {
  if (hal === "pmem") {
    try {
      if (Deno.statSync("/dev/shm").isDirectory) return "/dev/shm";
    } catch { /* no /dev/shm */ }
  }
  return Deno.env.get("TMPDIR") || "/tmp";
}

/** Remove an image and its lock's side file `IMAGE.lock` if this process wrote it. */
function removeImage(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* already gone */ }
  try {
    // The side file holds "PID what": ours only (a closed HAL removed it already).
    if (Deno.readTextFileSync(`${path}.lock`).startsWith(`${Deno.pid} `)) {
      Deno.removeSync(`${path}.lock`);
    }
  } catch { /* none */ }
}

/** Scratches of runs not yet ended: what a signal removes. */
const live = new Set<Scratch>();
const SIGNALS = [["SIGINT", 130], ["SIGTERM", 143]] as const;
const handlers = new Map<Deno.Signal, () => void>();

function listen(): void {
  if (handlers.size > 0 || Deno.build.os === "windows") return;
  for (const [signal, code] of SIGNALS) {
    const handler = () => {
      const names = [...live].map((s) => s.bench);
      for (const s of [...live]) s.close();
      console.error(
        `twz: bench ${
          names.join(", ") || "run"
        }: interrupted (${signal}); its scratch files were removed`,
      );
      Deno.exit(code);
    };
    Deno.addSignalListener(signal, handler);
    handlers.set(signal, handler);
  }
}

function unlisten(): void {
  if (live.size > 0) return;
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  handlers.clear();
}

/**
 * Refuse `--image` for a benchmark that makes its own images.
 *
 * @throws {UsageError} `--image` was given.
 */
export function refuseImage(opts: BenchOptions, bench: string, why: string): void {
  if (opts.image !== undefined) {
    throw new UsageError(`bench ${bench} takes no --image: ${why}`);
  }
}

/** Open `image` with the benchmark's HAL (creating it with `size` when absent). */
export async function openHal(
  opts: BenchOptions,
  image: string,
  size?: number,
): Promise<{ plugin: HalPlugin; hal: Hal }> {
  const plugin = await loadPlugin(opts.hal);
  if (size !== undefined) checkImageSize(plugin, size, "the image for these --ops:");
  const hal = await openImage(plugin, { image, newSize: size, settings: opts.settings });
  return { plugin, hal };
}

/** Keeps benchmark results alive, so V8 cannot drop the measured work. */
export const sink = { value: 0 };

/**
 * Nanoseconds per operation of `fn`, which runs `ops` operations and returns
 * a checksum (added to {@linkcode sink}).
 */
export function timePerOp(fn: () => number, ops: number): number {
  const t0 = performance.now();
  sink.value += fn();
  return ((performance.now() - t0) * 1e6) / ops;
}

/**
 * Median nanoseconds per operation of each of `fns`, measured side by side:
 * three untimed warm-up runs of each (so each is optimized), then `rounds`
 * rounds that time each function once, the order rotated by one every round
 * so none always runs first.
 *
 * @returns One median per function, in the order of `fns`.
 */
export function interleavedMedians(
  fns: (() => number)[],
  ops: number,
  rounds: number,
): number[] {
  for (let w = 0; w < 3; w++) for (const fn of fns) timePerOp(fn, ops);
  const times: number[][] = fns.map(() => []);
  for (let k = 0; k < rounds; k++) {
    for (let j = 0; j < fns.length; j++) {
      const which = (j + k) % fns.length;
      times[which]!.push(timePerOp(fns[which]!, ops));
    }
  }
  return times.map(median);
}

/**
 * A maker of throughput results for `bench`: each row gives a case's
 * nanoseconds per operation (one decimal) and operations per second, plus any
 * `extra` figures.
 */
export function rateRow(
  bench: string,
  hal: string,
  ops: number,
): (name: string, ns: number, extra?: Record<string, number>) => BenchResult {
  return (name: string, ns: number, extra: Record<string, number> = {}): BenchResult => ({
    bench,
    case: name,
    hal,
    ops,
    ns_per_op: +ns.toFixed(1),
    ops_per_sec: Math.round(1e9 / ns),
    ...extra,
  });
}

/** Round to three decimals for reporting. */
export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Bundle a benchmark's program from its source, as `twz run` bundles a
 * file (written to a temporary `NAME.ts`, removed again).
 *
 * @param name The program's name (the file's stem).
 * @param source Its TypeScript source.
 * @returns The bundle: name and module text.
 */
export async function bundleSource(
  name: string,
  source: string,
): Promise<{ name: string; text: string }> {
  const dir = Deno.makeTempDirSync({ prefix: `twz-bench-${name}-` });
  try {
    const file = join(dir, `${name}.ts`);
    Deno.writeTextFileSync(file, source);
    return await bundleFile(file);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * Thread calls of a benchmark's bare threads (channels opened without a
 * thread manager): exit, yield and console are answered, every other call
 * is refused with `NotSupported` naming `what`.
 */
export class BareThreadCalls implements ThreadCalls {
  /** `what`: says who refuses ("bench syscall runs one bare thread"). */
  constructor(readonly what: string) {}
  #no(): never {
    throw new TwzError(ErrorCode.NotSupported, this.what);
  }
  threadSelf(): ThreadInfo {
    return this.#no();
  }
  exit(): void {}
  yield(): void {}
  kill(): void {
    this.#no();
  }
  threads(): ThreadInfo[] {
    return this.#no();
  }
  wait(): ThreadInfo {
    return this.#no();
  }
  sync(): number[] {
    return this.#no();
  }
  spawn(): ThreadInfo {
    return this.#no();
  }
  console(): void {}
}

/**
 * Start a permissions-none module Worker from `source` (a `blob:` URL),
 * post it `message` (moving `transfer`), and answer the first message it
 * posts back; the Worker is terminated and the URL revoked either way. A
 * Worker error rejects with "`what`: the Worker failed: …".
 */
export async function benchWorker<T>(
  what: string,
  source: string,
  message: unknown,
  transfer: Transferable[] = [],
): Promise<T> {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(
    url,
    { type: "module", deno: { permissions: "none" } } as WorkerOptions,
  );
  try {
    return await new Promise<T>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent) => resolve(e.data as T);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`${what}: the Worker failed: ${e.message}`));
      };
      worker.postMessage(message, transfer);
    });
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}

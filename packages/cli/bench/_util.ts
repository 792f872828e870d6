// Helpers shared by the benchmarks: temporary images and timing.
import { join } from "node:path";
import type { Hal, HalPlugin } from "@twz/kernel/hal";
import { checkImageSize, fileExists, loadPlugin, openImage, UsageError } from "../board.ts";
import { bundleFile } from "../run.ts";
import { type BenchOptions, type BenchResult, median } from "./types.ts";

/**
 * The image path a benchmark writes: the user's `--image` when given (it must
 * not exist: a benchmark never writes into an existing image, and leaves the
 * new one in place), else a fresh path (in /dev/shm when it exists, for pmem)
 * removed at exit.
 *
 * @throws {UsageError} `--image` names an existing file.
 */
export function tempImage(opts: BenchOptions, name: string): string {
  if (opts.image) {
    refuseExisting(opts.image);
    return opts.image;
  }
  let base = Deno.env.get("TMPDIR") ?? "/tmp";
  try {
    if (opts.hal === "pmem" && Deno.statSync("/dev/shm").isDirectory) base = "/dev/shm";
  } catch { /* no /dev/shm */ }
  const dir = Deno.makeTempDirSync({ dir: base, prefix: "twz-bench-" });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });
  return join(dir, name);
}

/** @throws {UsageError} `image` exists: a benchmark would overwrite it. */
export function refuseExisting(image: string): void {
  if (fileExists(image)) {
    throw new UsageError(
      `--image ${image} exists: benchmarks write a new image and never touch an existing one`,
    );
  }
}

/** @throws {UsageError} `--image` was given to a benchmark that makes its own images. */
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

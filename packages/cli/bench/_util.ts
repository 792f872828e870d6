// Helpers shared by the benchmarks: temporary images and timing.
import { join } from "node:path";
import type { Hal, HalPlugin } from "@twz/kernel/hal";
import { loadPlugin, openImage } from "../board.ts";
import type { BenchOptions } from "./types.ts";

/** A fresh image path (in /dev/shm when it exists, for pmem), removed at exit. */
export function tempImage(opts: BenchOptions, name: string): string {
  if (opts.image) return opts.image;
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

/** Open `image` with the benchmark's HAL (creating it with `size` when absent). */
export async function openHal(
  opts: BenchOptions,
  image: string,
  size?: number,
): Promise<{ plugin: HalPlugin; hal: Hal }> {
  const plugin = await loadPlugin(opts.hal);
  const hal = await openImage(plugin, { image, newSize: size, settings: opts.settings });
  return { plugin, hal };
}

/** Nanoseconds per op of `fn(ops)` (which runs `ops` operations). */
export function nsPerOp(ops: number, fn: (ops: number) => void): number {
  const t0 = performance.now();
  fn(ops);
  return ((performance.now() - t0) * 1e6) / ops;
}

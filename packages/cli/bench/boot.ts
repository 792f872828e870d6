/**
 * `twz bench boot`: time to boot an empty image and one holding many objects
 * (default 100,000), after a clean shutdown and after a crash (log replay).
 * Boot = HAL open + kernel boot (superblock check, log replay, root record);
 * both parts are reported, so the kernel's share is seen beside the HAL's
 * floor (hal-sim reads the whole image file; hal-pmem maps it).
 *
 * @module
 */
import { Kernel } from "@twz/kernel";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { openHal, refuseImage, type Scratch, withScratch } from "./_util.ts";

async function populate(
  opts: BenchOptions,
  image: string,
  size: number,
  objects: number,
  crash: boolean,
): Promise<void> {
  const { hal } = await openHal(opts, image, size);
  const kernel = Kernel.boot(hal);
  for (let i = kernel.report.objects; i < objects; i++) kernel.create({ size: 1024 });
  if (crash) {
    kernel.create({ size: 1024 });
    kernel.halt(); // the log stays committed: the next boot replays it
  } else {
    kernel.shutdown();
  }
  hal.close();
}

async function measure(opts: BenchOptions, image: string, rounds: number) {
  const open: number[] = [];
  const boot: number[] = [];
  let report = undefined as Kernel["report"] | undefined;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const { hal } = await openHal(opts, image);
    const t1 = performance.now();
    const kernel = Kernel.boot(hal);
    const t2 = performance.now();
    report = kernel.report;
    kernel.halt(); // leave the image exactly as it was for the next round
    hal.close();
    open.push(t1 - t0);
    boot.push(t2 - t1);
  }
  return { open: median(open), boot: median(boot), report: report! };
}

/** Run the boot benchmark. */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "boot", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  refuseImage(opts, "boot", "it makes its own images, four of them, in a temporary directory");
  const objects = opts.ops ?? 100_000;
  const rounds = opts.rounds ?? 7;
  const size = Math.max(64 << 20, 2 ** Math.ceil(Math.log2(objects * 2048 / 0.85)));
  const results: BenchResult[] = [];
  const cases: Array<[string, number, boolean, number]> = [
    ["empty-64MiB", 0, false, 64 << 20],
    ["empty", 0, false, size],
    [`${objects}-objects`, objects, false, size],
    [`${objects}-objects-after-crash`, objects, true, size],
  ];
  for (const [name, count, crash, bytes] of cases) {
    await scratch.checkpoint(); // Ctrl-C ends the run between cases
    const image = scratch.image(`${name}.img`);
    await populate(opts, image, bytes, count, crash);
    const m = await measure(opts, image, rounds);
    scratch.remove(image); // one at a time: each may be large
    results.push({
      bench: "boot",
      case: name,
      hal: opts.hal,
      ops: rounds,
      objects: m.report.objects,
      replayed: m.report.replayed,
      image_bytes: bytes,
      total_ms: +(m.open + m.boot).toFixed(3),
      hal_open_ms: +m.open.toFixed(3),
      kernel_boot_ms: +m.boot.toFixed(3),
    });
  }
  return results;
}

/**
 * `twz bench create-delete`: persistent object create and delete throughput,
 * drains per operation, and kernel metadata bytes per object, beside the floor
 * of the same HAL work done by hand: zero and flush 4 KiB of memory never
 * touched before (as each create's blocks are: allocation is next-fit), drain,
 * then two 64-byte persists for the log commit and apply.
 *
 * @module
 */
import { BLOCK, Kernel, METADATA_BYTES_PER_OBJECT } from "@twz/kernel";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { openHal, rateRow, type Scratch, withScratch } from "./_util.ts";

/** Run the create/delete benchmark. */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "create-delete", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 10_000;
  const rounds = opts.rounds ?? 5;
  const objectSize = 4096;
  const image = scratch.image("create-delete.img");
  // Room for every create of every round (next-fit walks on through the
  // region) and for the floor's fresh scratch memory.
  const scratchSize = ops * rounds * objectSize;
  const { hal } = await openHal(opts, image, Math.max(256 << 20, 3 * scratchSize + (64 << 20)));
  const kernel = Kernel.boot(hal);
  const region = hal.region;
  const drains = () => region.stats?.().drains ?? NaN;
  const create: number[] = [];
  const del: number[] = [];
  const floor: number[] = [];
  let createDrains = 0;
  let deleteDrains = 0;
  const ids: bigint[] = new Array(ops);
  const floorObject = kernel.create({ size: scratchSize });
  const base = kernel.map(floorObject);
  let fresh = 0;
  for (let r = 0; r < rounds; r++) {
    await scratch.checkpoint(); // Ctrl-C ends the run between rounds
    let d0 = drains();
    let t0 = performance.now();
    for (let i = 0; i < ops; i++) ids[i] = kernel.create({ size: objectSize });
    create.push(((performance.now() - t0) * 1e6) / ops);
    createDrains = (drains() - d0) / ops;
    d0 = drains();
    t0 = performance.now();
    for (let i = 0; i < ops; i++) kernel.delete(ids[i]!);
    del.push(((performance.now() - t0) * 1e6) / ops);
    deleteDrains = (drains() - d0) / ops;
    // The floor: what any crash-safe create must at least do on this HAL.
    t0 = performance.now();
    for (let i = 0; i < ops; i++) {
      const at = fresh;
      fresh += objectSize;
      base.bytes.fill(0, at, at + objectSize);
      base.flush(at, objectSize);
      base.drain();
      base.persist(0, 64);
      base.persist(64, 64);
    }
    floor.push(((performance.now() - t0) * 1e6) / ops);
  }
  kernel.shutdown();
  hal.close();
  const row = rateRow("create-delete", opts.hal, ops);
  const floorNs = median(floor);
  return [
    row("create-4k", median(create), {
      drains_per_op: createDrains,
      floor_ns_per_op: +floorNs.toFixed(1),
      ratio_to_floor: +(median(create) / floorNs).toFixed(2),
    }),
    row("delete-4k", median(del), { drains_per_op: deleteDrains }),
    row("create+delete-4k", median(create) + median(del)),
    {
      bench: "create-delete",
      case: "metadata-bytes-per-object",
      hal: opts.hal,
      ops: 1,
      table_slot_bytes: METADATA_BYTES_PER_OBJECT,
      bitmap_bytes: Math.ceil(objectSize / BLOCK) / 8,
      metadata_bytes_per_object: METADATA_BYTES_PER_OBJECT + Math.ceil(objectSize / BLOCK) / 8,
    },
  ];
}

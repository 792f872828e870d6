// The persistent key-value workload of the peer baselines (see
// tools/peers/README.md): 8-byte integer keys, 16-byte values, a chained
// hash map, one durable transaction per insert, then lookups.
import { Kernel } from "@twz/kernel";
import type { Hal, PersistentRegion } from "@twz/kernel/hal";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { openHal, rateRow, withScratch } from "./_util.ts";

const VALUE = new TextEncoder().encode("value-0123456789");

/** Count drains on a region that keeps no counters of its own. */
function drainCounter(region: PersistentRegion): () => number {
  if (region.stats) return () => region.stats!().drains;
  let drains = 0;
  const drain = region.drain.bind(region);
  (region as { drain: () => void }).drain = () => {
    drains++;
    drain();
  };
  return () => drains;
}

/** Run the KV workload; `which` selects the results reported. */
export function runKv(opts: BenchOptions, which: "insert" | "get"): Promise<BenchResult[]> {
  return withScratch(opts, `kv-${which}`, async (scratch) => {
    const ops = opts.ops ?? 100_000;
    const rounds = opts.rounds ?? 3;
    const times: RoundTimes[] = [];
    // Each round writes a new image (--image P: P itself), removed after it
    // (with --keep, the last round's stays).
    for (let r = 0; r < rounds; r++) {
      const image = scratch.image(`kv-${r}.img`);
      const { hal } = await openHal(opts, image, Math.max(256 << 20, ops * 2048));
      try {
        times.push(kvRound(hal, ops));
      } finally {
        hal.close();
        if (!opts.keep || r < rounds - 1) scratch.remove(image);
      }
      await scratch.checkpoint(); // a Ctrl-C during the round ends the run here
    }
    const row = rateRow(`kv-${which}`, opts.hal, ops);
    const med = (k: "insert" | "get" | "locate") => median(times.map((t) => t[k]));
    return which === "insert"
      ? [row("hashmap-insert-tx", med("insert"), {
        drains_per_op: +times.at(-1)!.drainsPerOp.toFixed(3),
      })]
      : [row("hashmap-get", med("get")), row("hashmap-locate-in-place", med("locate"))];
  });
}

/** Nanoseconds per operation of one round's phases. */
interface RoundTimes {
  insert: number;
  get: number;
  locate: number;
  drainsPerOp: number;
}

/** One round on a new image: `ops` inserts, then `ops` gets and `ops` locates. */
function kvRound(hal: Hal, ops: number): RoundTimes {
  const drains = drainCounter(hal.region);
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  // Buckets presized for the key count, as the peer programs size theirs.
  const obj = twz.create({ size: Math.max(1 << 20, ops * 80) });
  const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: ops });
  const d0 = drains();
  let t0 = performance.now();
  for (let i = 0; i < ops; i++) map.set(i, VALUE);
  const insert = ((performance.now() - t0) * 1e6) / ops;
  const drainsPerOp = (drains() - d0) / ops;
  let found = 0;
  t0 = performance.now();
  for (let i = 0; i < ops; i++) if (map.get(i) !== undefined) found++;
  const get = ((performance.now() - t0) * 1e6) / ops;
  t0 = performance.now();
  // In place, as the C peer reads its value: locate, then load from the value.
  let sum = 0;
  const bytes = obj.bytes; // the mapping's bytes (valid until the object moves)
  for (let i = 0; i < ops; i++) {
    const at = map.locate(i);
    if (at >= 0) {
      found++;
      sum += bytes[at + (i & 15)]!;
    }
  }
  if (sum === 0) throw new Error("values were not read");
  const locate = ((performance.now() - t0) * 1e6) / ops;
  if (found !== 2 * ops) throw new Error(`lookups found ${found} of ${2 * ops}`);
  kernel.shutdown();
  return { insert, get, locate, drainsPerOp };
}

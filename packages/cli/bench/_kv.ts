// The persistent key-value workload of the peer baselines (see
// tools/peers/README.md): 8-byte integer keys, 16-byte values, a chained
// hash map, one durable transaction per insert, then lookups.
import { Kernel } from "@twz/kernel";
import type { PersistentRegion } from "@twz/kernel/hal";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { openHal, rateRow, refuseExisting, tempImage } from "./_util.ts";

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
export async function runKv(opts: BenchOptions, which: "insert" | "get"): Promise<BenchResult[]> {
  const ops = opts.ops ?? 100_000;
  const rounds = opts.rounds ?? 3;
  const inserts: number[] = [];
  const gets: number[] = [];
  const locates: number[] = [];
  let drainsPerOp = 0;
  // With --image P, round r writes the new image P.r (none may exist) and
  // leaves it; without, a temporary image removed after the round.
  const named = (r: number) => opts.image ? `${opts.image}.${r}` : undefined;
  for (let r = 0; r < rounds; r++) if (named(r)) refuseExisting(named(r)!);
  for (let r = 0; r < rounds; r++) {
    const image = tempImage({ ...opts, image: named(r) }, `kv-${r}.img`);
    const { hal } = await openHal(opts, image, Math.max(256 << 20, ops * 2048));
    const drains = drainCounter(hal.region);
    const kernel = Kernel.boot(hal);
    const twz = Twz.attach(kernel.port());
    // Buckets presized for the key count, as the peer programs size theirs.
    const obj = twz.create({ size: Math.max(1 << 20, ops * 80) });
    const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: ops });
    const d0 = drains();
    let t0 = performance.now();
    for (let i = 0; i < ops; i++) map.set(i, VALUE);
    inserts.push(((performance.now() - t0) * 1e6) / ops);
    drainsPerOp = (drains() - d0) / ops;
    let found = 0;
    t0 = performance.now();
    for (let i = 0; i < ops; i++) if (map.get(i) !== undefined) found++;
    gets.push(((performance.now() - t0) * 1e6) / ops);
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
    locates.push(((performance.now() - t0) * 1e6) / ops);
    if (found !== 2 * ops) throw new Error(`lookups found ${found} of ${2 * ops}`);
    kernel.shutdown();
    hal.close();
    if (!named(r)) {
      try {
        Deno.removeSync(image);
      } catch { /* already gone */ }
    }
  }
  const row = rateRow(`kv-${which}`, opts.hal, ops);
  return which === "insert"
    ? [row("hashmap-insert-tx", median(inserts), { drains_per_op: +drainsPerOp.toFixed(3) })]
    : [row("hashmap-get", median(gets)), row("hashmap-locate-in-place", median(locates))];
}

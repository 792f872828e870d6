/**
 * `twz bench ptr-resolve`: following an invariant pointer with libtwz and
 * reading the u32 field it points at (`holder.link.value`), against a raw
 * DataView read of the same field (`view.getUint32(target, true)`), measured
 * side by side in one run (alternating, median of several rounds).
 *
 * Cases: the target in the same object (FOT index 0) and in another object
 * (FOT entry 1, FOT cache warm); each for one pointer followed repeatedly and
 * for a sweep over 1024 pointers. Each result also carries `chase_ns_per_op`:
 * the same pointer decoded by hand from a DataView (two 32-bit loads, then
 * the field load), the floor for any invariant-pointer implementation.
 *
 * @module
 */
import { ptr, struct, Twz, type TwzObject, u32 } from "@twz/libtwz";
import { loadPlugin } from "../board.ts";
import type { BenchOptions, BenchResult } from "./types.ts";
import { interleavedMedians, round3, type Scratch, sink, withScratch } from "./_util.ts";

const Target = struct({ value: u32 });
const Holder = struct({ tag: u32, link: ptr(Target) });
type HolderAcc = ReturnType<typeof Holder.at>;
const COUNT = 1024;
const MASK = COUNT - 1;
const LINK = Holder.offsetOf("link");

function follow(hs: HolderAcc[], ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += hs[i & MASK]!.link!.value;
  return s;
}
function followOne(h: HolderAcc, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += h.link!.value;
  return s;
}
function raw(view: DataView, targets: Int32Array, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getUint32(targets[i & MASK]!, true);
  return s;
}
function rawOne(view: DataView, target: number, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getUint32(target, true);
  return s;
}
function chase(hv: DataView, tv: DataView, holders: Int32Array, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) {
    const p = holders[i & MASK]! + LINK;
    const lo = hv.getUint32(p, true), hi = hv.getUint32(p + 4, true);
    s += tv.getUint32((hi & 0xffff) * 4294967296 + lo, true);
  }
  return s;
}
function chaseOne(hv: DataView, tv: DataView, holder: number, ops: number): number {
  let s = 0;
  const p = holder + LINK;
  for (let i = 0; i < ops; i++) {
    const lo = hv.getUint32(p, true), hi = hv.getUint32(p + 4, true);
    s += tv.getUint32((hi & 0xffff) * 4294967296 + lo, true);
  }
  return s;
}

function setup(a: TwzObject, b: TwzObject) {
  const holders: HolderAcc[] = [];
  const holderOffs = new Int32Array(COUNT);
  const targetOffs = new Int32Array(COUNT);
  const region = COUNT * Holder.size;
  for (let i = 0; i < COUNT; i++) {
    holderOffs[i] = a.baseOffset + i * Holder.size;
    targetOffs[i] = b.baseOffset + (a === b ? region : 0) + i * Target.size;
    const t = Target.at(b, targetOffs[i]!);
    t.value = i;
    const h = Holder.at(a, holderOffs[i]!);
    h.link = t;
    holders.push(h);
  }
  return { holders, holderOffs, targetOffs };
}

/**
 * Run the benchmark.
 *
 * @param opts HAL, image, ops per round (default 2,000,000), rounds (default 9).
 * @returns One result per case: `ns_per_op` (libtwz), `raw_ns_per_op` (raw
 * read of the field), `ratio`, `chase_ns_per_op` (hand-decoded pointer).
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "ptr-resolve", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 2_000_000;
  const rounds = opts.rounds ?? 9;
  const plugin = await loadPlugin(opts.hal);
  const twz = await Twz.open({
    hal: plugin,
    image: scratch.image("ptr_resolve.img"),
    size: 16 << 20, // a new image (an existing --image is refused)
    ...(opts.settings ? { settings: opts.settings } : {}),
  });
  try {
    const a = twz.create({ size: 65536 });
    const b = twz.create({ size: 65536 });
    const same = setup(a, a);
    const cross = setup(a, b);
    // Cross-object pointers go through FOT entry 1; follow one to warm the cache.
    if (cross.holders[0]!.$ptr("link").fot !== 1) throw new Error("expected FOT entry 1");
    sink.value += cross.holders[0]!.link!.value;
    const av = a.view, bv = b.view;
    const cases: [string, () => number, () => number, () => number][] = [
      [
        "same object, one pointer",
        () => followOne(same.holders[5]!, ops),
        () => rawOne(av, same.targetOffs[5]!, ops),
        () => chaseOne(av, av, same.holderOffs[5]!, ops),
      ],
      [
        "cross object (warm FOT cache), one pointer",
        () => followOne(cross.holders[5]!, ops),
        () => rawOne(bv, cross.targetOffs[5]!, ops),
        () => chaseOne(av, bv, cross.holderOffs[5]!, ops),
      ],
      [
        "same object, 1024 pointers",
        () => follow(same.holders, ops),
        () => raw(av, same.targetOffs, ops),
        () => chase(av, av, same.holderOffs, ops),
      ],
      [
        "cross object (warm FOT cache), 1024 pointers",
        () => follow(cross.holders, ops),
        () => raw(bv, cross.targetOffs, ops),
        () => chase(av, bv, cross.holderOffs, ops),
      ],
    ];
    const results: BenchResult[] = [];
    for (const [name, typed, rawFn, chaseFn] of cases) {
      await scratch.checkpoint(); // Ctrl-C ends the run between cases
      const [ns, rawNs, chaseNs] = interleavedMedians(
        [typed, rawFn, chaseFn],
        ops,
        rounds,
      ) as [number, number, number];
      results.push({
        bench: "ptr-resolve",
        case: name,
        hal: opts.hal,
        ops,
        rounds,
        ns_per_op: round3(ns),
        raw_ns_per_op: round3(rawNs),
        ratio: round3(ns / rawNs),
        chase_ns_per_op: round3(chaseNs),
        ratio_vs_chase: round3(ns / chaseNs),
      });
    }
    return results;
  } finally {
    twz.close();
  }
}

if (import.meta.main) {
  for (const r of await run({ hal: "sim" })) console.log(JSON.stringify(r));
}

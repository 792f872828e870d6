/**
 * `twz bench accessors`: field reads and writes through libtwz typed
 * accessors against raw DataView loads and stores of the same fields, measured
 * side by side in one run (alternating, median of several rounds).
 *
 * Two access patterns:
 * - "one record": a loop reading (or writing) a field of one record through
 *   one accessor (`rec.value`) vs `view.getUint32(off, true)`.
 * - "1024 records": a sweep over 1024 records, one accessor per record
 *   (`recs[i].value`) vs one offset per record (`view.getUint32(offs[i], true)`).
 *   The raw side keeps one DataView in a local for the whole loop, which the
 *   JIT hoists; each accessor reaches its object's live view (which follows
 *   relocation), so this pattern costs more.
 * Results are summed into a sink so the JIT cannot drop the loads.
 *
 * @module
 */
import { f64, struct, Twz, u32, u64 } from "@twz/libtwz";
import { loadPlugin } from "../board.ts";
import type { BenchOptions, BenchResult } from "./types.ts";
import { interleavedMedians, round3, type Scratch, withScratch } from "./_util.ts";

const Rec = struct({ value: u32, weight: f64, big: u64 });
type RecAcc = ReturnType<typeof Rec.at>;
/** The same record without the range check on integer stores (docs/BENCHMARKS.md). */
const RecUnchecked = struct({ value: u32, weight: f64, big: u64 }, { unchecked: true });
type RecUncheckedAcc = ReturnType<typeof RecUnchecked.at>;
const COUNT = 1024;
const MASK = COUNT - 1;

function readTyped(recs: RecAcc[], ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += recs[i & MASK]!.value;
  return s;
}
function readRaw(view: DataView, offs: Int32Array, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getUint32(offs[i & MASK]!, true);
  return s;
}
function writeTyped(recs: RecAcc[], ops: number): number {
  for (let i = 0; i < ops; i++) recs[i & MASK]!.value = i;
  return recs[0]!.value;
}
function writeRaw(view: DataView, offs: Int32Array, ops: number): number {
  for (let i = 0; i < ops; i++) view.setUint32(offs[i & MASK]!, i, true);
  return view.getUint32(offs[0]!, true);
}
function readTypedF64(recs: RecAcc[], ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += recs[i & MASK]!.weight;
  return s;
}
function readRawF64(view: DataView, offs: Int32Array, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getFloat64(offs[i & MASK]! + 8, true);
  return s;
}
function writeTypedF64(recs: RecAcc[], ops: number): number {
  for (let i = 0; i < ops; i++) recs[i & MASK]!.weight = i * 0.5;
  return recs[0]!.weight;
}
function writeRawF64(view: DataView, offs: Int32Array, ops: number): number {
  for (let i = 0; i < ops; i++) view.setFloat64(offs[i & MASK]! + 8, i * 0.5, true);
  return view.getFloat64(offs[0]! + 8, true);
}
function readTypedU64(recs: RecAcc[], ops: number): number {
  let s = 0n;
  for (let i = 0; i < ops; i++) s ^= recs[i & MASK]!.big;
  return Number(s & 0xffffn);
}
function readRawU64(view: DataView, offs: Int32Array, ops: number): number {
  let s = 0n;
  for (let i = 0; i < ops; i++) s ^= view.getBigUint64(offs[i & MASK]! + 16, true);
  return Number(s & 0xffffn);
}

function hotRead(rec: RecAcc, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += rec.value;
  return s;
}
function hotReadRaw(view: DataView, off: number, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getUint32(off, true);
  return s;
}
function hotWrite(rec: RecAcc, ops: number): number {
  for (let i = 0; i < ops; i++) rec.value = i;
  return rec.value;
}
/** `hotWrite` on an unchecked struct (a function of its own: one shape per loop). */
function hotWriteUnchecked(rec: RecUncheckedAcc, ops: number): number {
  for (let i = 0; i < ops; i++) rec.value = i;
  return rec.value;
}
function hotWriteRaw(view: DataView, off: number, ops: number): number {
  for (let i = 0; i < ops; i++) view.setUint32(off, i, true);
  return view.getUint32(off, true);
}
function hotReadF64(rec: RecAcc, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += rec.weight;
  return s;
}
function hotReadRawF64(view: DataView, off: number, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getFloat64(off + 8, true);
  return s;
}
function hotWriteF64(rec: RecAcc, ops: number): number {
  for (let i = 0; i < ops; i++) rec.weight = i * 0.5;
  return rec.weight;
}
function hotWriteRawF64(view: DataView, off: number, ops: number): number {
  for (let i = 0; i < ops; i++) view.setFloat64(off + 8, i * 0.5, true);
  return view.getFloat64(off + 8, true);
}

/**
 * Run the benchmark.
 *
 * @param opts HAL, image, ops per round (default 2,000,000), rounds (default 9).
 * @returns One result per case, with `ns_per_op` (typed), `raw_ns_per_op` and `ratio`.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "accessors", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 2_000_000;
  const rounds = opts.rounds ?? 9;
  const plugin = await loadPlugin(opts.hal);
  const twz = await Twz.open({
    hal: plugin,
    image: scratch.image("accessors.img"),
    size: 16 << 20, // a new image (an existing --image is refused)
    ...(opts.settings ? { settings: opts.settings } : {}),
  });
  try {
    const obj = twz.create({ size: 65536 });
    const recs: RecAcc[] = [];
    const offs = new Int32Array(COUNT);
    for (let i = 0; i < COUNT; i++) {
      offs[i] = obj.baseOffset + i * Rec.size;
      const r = Rec.at(obj, offs[i]!);
      r.value = i;
      r.weight = i / 3;
      r.big = BigInt(i) << 40n;
      recs.push(r);
    }
    const view = obj.view;
    const one = recs[7]!;
    const oneOff = offs[7]!;
    const unchecked = RecUnchecked.at(obj, oneOff);
    const cases: [string, () => number, () => number][] = [
      ["read u32, one record", () => hotRead(one, ops), () => hotReadRaw(view, oneOff, ops)],
      ["write u32, one record", () => hotWrite(one, ops), () => hotWriteRaw(view, oneOff, ops)],
      [
        "write u32, one record, unchecked",
        () => hotWriteUnchecked(unchecked, ops),
        () => hotWriteRaw(view, oneOff, ops),
      ],
      ["read f64, one record", () => hotReadF64(one, ops), () => hotReadRawF64(view, oneOff, ops)],
      [
        "write f64, one record",
        () => hotWriteF64(one, ops),
        () => hotWriteRawF64(view, oneOff, ops),
      ],
      ["read u32, 1024 records", () => readTyped(recs, ops), () => readRaw(view, offs, ops)],
      ["write u32, 1024 records", () => writeTyped(recs, ops), () => writeRaw(view, offs, ops)],
      ["read f64, 1024 records", () => readTypedF64(recs, ops), () => readRawF64(view, offs, ops)],
      [
        "write f64, 1024 records",
        () => writeTypedF64(recs, ops),
        () => writeRawF64(view, offs, ops),
      ],
      ["read u64, 1024 records", () => readTypedU64(recs, ops), () => readRawU64(view, offs, ops)],
    ];
    const results: BenchResult[] = [];
    for (const [name, typed, raw] of cases) {
      await scratch.checkpoint(); // Ctrl-C ends the run between cases
      const [ns, rawNs] = interleavedMedians([typed, raw], ops, rounds) as [number, number];
      results.push({
        bench: "accessors",
        case: name,
        hal: opts.hal,
        ops,
        rounds,
        ns_per_op: round3(ns),
        raw_ns_per_op: round3(rawNs),
        ratio: round3(ns / rawNs),
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

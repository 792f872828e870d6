/**
 * `twz bench record-sweep`: a sweep over 1,024 records laid out back to back
 * in one object, read and written through a libtwz record array
 * (`Rec.records(obj, offset, 1024).at(i).value`: one cursor moved per
 * record, no accessor object per record) against a raw DataView loop over
 * the same bytes (`view.getUint32(base + i * SIZE, true)`), and through
 * the array's columns (`recs.column("value").get(i)`: the record's offset in
 * a local, no cursor), measured side by side in one run (alternating, median
 * of several rounds). Plain accessors
 * (an array of 1,024 `Rec.at` accessors, as in `twz bench accessors`) run
 * beside them for reference.
 *
 * The record type is the one users get: checked integer stores (a value that
 * does not fit throws), the transaction check on every access, the
 * session's kernel port. Every case runs twice: first in a process that has
 * not run a transaction (the JIT folds the transaction check away), then
 * after one (", after a transaction": the check is paid, as in programs that
 * use transactions). Results are summed into a sink so the JIT cannot drop
 * the loads.
 *
 * @module
 */
import { f64, struct, Twz, u32, u64 } from "@twz/libtwz";
import { transaction } from "@twz/libtwz/tx";
import { loadPlugin } from "../board.ts";
import type { BenchOptions, BenchResult } from "./types.ts";
import { interleavedMedians, round3, type Scratch, withScratch } from "./_util.ts";

const Rec = struct({ value: u32, weight: f64, big: u64 });
type RecAcc = ReturnType<typeof Rec.at>;
type RecArray = ReturnType<typeof Rec.records>;
/** A column of a number field (`recs.column("value")`). */
type NumColumn = { get(i: number): number; set(i: number, x: number): void };
const COUNT = 1024;
const MASK = COUNT - 1;
const SIZE = Rec.size;
const WEIGHT = Rec.offsetOf("weight");

function readRecords(recs: RecArray, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += recs.at(i & MASK).value;
  return s;
}
function readRaw(view: DataView, base: number, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getUint32(base + (i & MASK) * SIZE, true);
  return s;
}
function readPlain(accs: RecAcc[], ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += accs[i & MASK]!.value;
  return s;
}
function writeRecords(recs: RecArray, ops: number): number {
  for (let i = 0; i < ops; i++) recs.at(i & MASK).value = i;
  return recs.at(0).value;
}
function writeRaw(view: DataView, base: number, ops: number): number {
  for (let i = 0; i < ops; i++) view.setUint32(base + (i & MASK) * SIZE, i, true);
  return view.getUint32(base, true);
}
function writePlain(accs: RecAcc[], ops: number): number {
  for (let i = 0; i < ops; i++) accs[i & MASK]!.value = i;
  return accs[0]!.value;
}
function readRecordsF64(recs: RecArray, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += recs.at(i & MASK).weight;
  return s;
}
function readRawF64(view: DataView, base: number, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += view.getFloat64(base + (i & MASK) * SIZE + WEIGHT, true);
  return s;
}
function readPlainF64(accs: RecAcc[], ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += accs[i & MASK]!.weight;
  return s;
}
function writeRecordsF64(recs: RecArray, ops: number): number {
  for (let i = 0; i < ops; i++) recs.at(i & MASK).weight = i * 0.5;
  return recs.at(0).weight;
}
function writeRawF64(view: DataView, base: number, ops: number): number {
  for (let i = 0; i < ops; i++) view.setFloat64(base + (i & MASK) * SIZE + WEIGHT, i * 0.5, true);
  return view.getFloat64(base + WEIGHT, true);
}
function writePlainF64(accs: RecAcc[], ops: number): number {
  for (let i = 0; i < ops; i++) accs[i & MASK]!.weight = i * 0.5;
  return accs[0]!.weight;
}
function readColumn(col: NumColumn, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += col.get(i & MASK);
  return s;
}
function writeColumn(col: NumColumn, ops: number): number {
  for (let i = 0; i < ops; i++) col.set(i & MASK, i);
  return col.get(0);
}
function readColumnF64(col: NumColumn, ops: number): number {
  let s = 0;
  for (let i = 0; i < ops; i++) s += col.get(i & MASK);
  return s;
}
function writeColumnF64(col: NumColumn, ops: number): number {
  for (let i = 0; i < ops; i++) col.set(i & MASK, i * 0.5);
  return col.get(0);
}
function updateColumns(value: NumColumn, weight: NumColumn, ops: number): number {
  for (let i = 0; i < ops; i++) {
    const j = i & MASK;
    weight.set(j, value.get(j) * 0.5);
  }
  return weight.get(0);
}
/** Read one field and write another per record: a read-modify-write sweep. */
function updateRecords(recs: RecArray, ops: number): number {
  for (let i = 0; i < ops; i++) {
    const r = recs.at(i & MASK);
    r.weight = r.value * 0.5;
  }
  return recs.at(0).weight;
}
function updateRaw(view: DataView, base: number, ops: number): number {
  for (let i = 0; i < ops; i++) {
    const at = base + (i & MASK) * SIZE;
    view.setFloat64(at + WEIGHT, view.getUint32(at, true) * 0.5, true);
  }
  return view.getFloat64(base + WEIGHT, true);
}
function updatePlain(accs: RecAcc[], ops: number): number {
  for (let i = 0; i < ops; i++) {
    const r = accs[i & MASK]!;
    r.weight = r.value * 0.5;
  }
  return accs[0]!.weight;
}

/**
 * Run the benchmark.
 *
 * @param opts HAL, image, ops per round (default 2,000,000), rounds (default 9).
 * @returns One result per case: `ns_per_op` (record array, `at(i)`),
 * `raw_ns_per_op` (DataView loop), `ratio`, `column_ns_per_op` (columns,
 * `get(i)`/`set(i, x)`) and `column_ratio`, `plain_ns_per_op` (one accessor
 * per record) and `plain_ratio`.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "record-sweep", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 2_000_000;
  const rounds = opts.rounds ?? 9;
  const plugin = await loadPlugin(opts.hal);
  const twz = await Twz.open({
    hal: plugin,
    image: scratch.image("record_sweep.img"),
    size: 16 << 20, // a new image (an existing --image is refused)
    ...(opts.settings ? { settings: opts.settings } : {}),
  });
  try {
    const obj = twz.create({ size: 65536 });
    const base = obj.baseOffset;
    const recs = Rec.records(obj, base, COUNT);
    const accs: RecAcc[] = [];
    for (let i = 0; i < COUNT; i++) {
      const r = recs.get(i);
      r.value = i;
      r.weight = i / 3;
      r.big = BigInt(i) << 40n;
      accs.push(r);
    }
    const view = obj.view;
    const value = recs.column("value"), weight = recs.column("weight");
    const cases: [string, () => number, () => number, () => number, () => number][] = [
      [
        "read u32",
        () => readRecords(recs, ops),
        () => readRaw(view, base, ops),
        () => readPlain(accs, ops),
        () => readColumn(value, ops),
      ],
      [
        "write u32",
        () => writeRecords(recs, ops),
        () => writeRaw(view, base, ops),
        () => writePlain(accs, ops),
        () => writeColumn(value, ops),
      ],
      [
        "read f64",
        () => readRecordsF64(recs, ops),
        () => readRawF64(view, base, ops),
        () => readPlainF64(accs, ops),
        () => readColumnF64(weight, ops),
      ],
      [
        "write f64",
        () => writeRecordsF64(recs, ops),
        () => writeRawF64(view, base, ops),
        () => writePlainF64(accs, ops),
        () => writeColumnF64(weight, ops),
      ],
      [
        "read u32, write f64",
        () => updateRecords(recs, ops),
        () => updateRaw(view, base, ops),
        () => updatePlain(accs, ops),
        () => updateColumns(value, weight, ops),
      ],
    ];
    const results: BenchResult[] = [];
    // Twice: in a process that has not run a transaction yet, then after one.
    // Until the first transaction the JIT treats `TX.current` (and `TX.miss`)
    // as constants and drops every accessor's transaction check; after it,
    // the check is paid per access (a load and an OR folded into the word
    // index, or a compare and a branch), as in any program that uses
    // transactions.
    for (const after of ["", ", after a transaction"]) {
      if (after !== "") {
        const other = twz.create({ size: 4096 });
        transaction(twz, () => Rec.at(other, other.baseOffset).value = 1);
      }
      for (const [name, typed, raw, plain, column] of cases) {
        await scratch.checkpoint(); // Ctrl-C ends the run between cases
        const [ns, rawNs, plainNs, colNs] = interleavedMedians(
          [typed, raw, plain, column],
          ops,
          rounds,
        ) as [number, number, number, number];
        results.push({
          bench: "record-sweep",
          case: `${name}, ${COUNT} records${after}`,
          hal: opts.hal,
          ops,
          rounds,
          ns_per_op: round3(ns),
          raw_ns_per_op: round3(rawNs),
          ratio: round3(ns / rawNs),
          column_ns_per_op: round3(colNs),
          column_ratio: round3(colNs / rawNs),
          plain_ns_per_op: round3(plainNs),
          plain_ratio: round3(plainNs / rawNs),
        });
      }
    }
    return results;
  } finally {
    twz.close();
  }
}

if (import.meta.main) {
  for (const r of await run({ hal: "sim" })) console.log(JSON.stringify(r));
}

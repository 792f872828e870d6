/**
 * `twz bench persist`: what a durable 64-byte store costs through hal-pmem,
 * side by side with the same store persisted without the HAL. Cases (one
 * round of each, interleaved, median of rounds):
 *
 * - `hal-persist-64`: 64-byte store into `region.bytes` + `region.persist(off, 64)`.
 * - `raw-persist-64`: the same store + the trampoline's `twz_persist` symbol
 *   called directly (no range check, no HAL object): the FFI floor.
 * - `fnptr-persist-64`: the same store + libpmem2's persist function called
 *   through `Deno.UnsafeFnPointer` (the path used without a C compiler).
 * - `native-persist-64`: store + persist looped in C: libpmem2's own cost.
 * - `view-rw` / `arraybuffer-rw`: a 32-bit load + store through a typed
 *   array over the mapping vs over an ordinary `ArrayBuffer`.
 *
 * Run it on `/dev/shm` with `PMEM2_FORCE_GRANULARITY=CACHE_LINE` for the
 * CPU-flush path, on a disk file for the `msync` (page) path.
 *
 * @example
 * ```sh
 * PMEM2_FORCE_GRANULARITY=CACHE_LINE deno run -A packages/cli/bench/persist.ts --image /dev/shm/p.img
 * ```
 *
 * @tags allow-ffi
 * @module
 */
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { UsageError } from "../board.ts";
import { type Scratch, withScratch } from "./_util.ts";

const SIZE = 1 << 20;
const LINE = 64;

/**
 * Run the persist benchmark on hal-pmem.
 *
 * @param opts `hal` must be `"pmem"`; `image` (a new path; a temporary one
 *   when absent), `ops` per round, `rounds`, `settings` for `open`.
 * @returns One result per case; `hal-persist-64` carries `added_ns_vs_raw`
 *   and `added_ns_vs_native`, `view-rw` carries `ratio_vs_arraybuffer`.
 * @throws {UsageError} `hal` is not `pmem`, or `image` already exists.
 * @throws {HalError} hal-pmem cannot open the image (e.g. no libpmem2).
 *
 * @example
 * ```ts ignore
 * import { run } from "./persist.ts";
 * for (const r of await run({ hal: "pmem", image: "/dev/shm/p.img" })) console.log(r);
 * ```
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  if (opts.hal !== "pmem") {
    throw new UsageError(`bench persist measures hal-pmem only (--hal pmem), not "${opts.hal}"`);
  }
  return withScratch(opts, "persist", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const { plugin, persistPaths } = await import("@twz/hal-pmem");
  const image = scratch.image("persist.img");
  const hal = await plugin.open({ image, size: SIZE, create: true, settings: opts.settings });
  try {
    const region = hal.region;
    const paths = persistPaths(region);
    const granularity = region.granularity;
    const ops = opts.ops ?? (granularity === "page" ? 2_000 : 100_000);
    const rounds = opts.rounds ?? 7;
    const bytes = region.bytes;
    const pattern = new Uint8Array(LINE);
    const slots = SIZE / LINE;

    const cases: Record<string, (n: number) => void> = {
      "hal-persist-64": (n) => {
        for (let i = 0; i < n; i++) {
          const off = (i % slots) * LINE;
          pattern[0] = i;
          bytes.set(pattern, off);
          region.persist(off, LINE);
        }
      },
      "fnptr-persist-64": (n) => {
        const persist = paths.fnptr;
        for (let i = 0; i < n; i++) {
          const off = (i % slots) * LINE;
          pattern[0] = i;
          bytes.set(pattern, off);
          persist(off, LINE);
        }
      },
    };
    if (paths.raw) {
      const raw = paths.raw;
      cases["raw-persist-64"] = (n) => {
        for (let i = 0; i < n; i++) {
          const off = (i % slots) * LINE;
          pattern[0] = i;
          bytes.set(pattern, off);
          raw(off, LINE);
        }
      };
    }
    if (paths.native) {
      const native = paths.native;
      cases["native-persist-64"] = (n) => native(LINE, n);
    }
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset, SIZE / 4);
    const plain = new Uint32Array(new ArrayBuffer(SIZE));
    const rw = (words: Uint32Array) => (n: number) => {
      const mask = words.length - 1; // a power of two
      for (let i = 0; i < n; i++) {
        const k = i & mask;
        words[k] = words[k]! + 1;
      }
    };
    cases["view-rw"] = rw(view);
    cases["arraybuffer-rw"] = rw(plain);
    const rwOps = 4 * SIZE; // 16 passes over 1 MiB of 32-bit words

    const times: Record<string, number[]> = {};
    const names = Object.keys(cases);
    for (let round = -1; round < rounds; round++) { // round -1 warms up
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + Math.max(round, 0)) % names.length]!; // rotate the order
        const n = name.endsWith("-rw") ? rwOps : name.startsWith("fnptr") ? fnptrOps(ops) : ops;
        const start = performance.now();
        cases[name]!(n);
        const ns = (performance.now() - start) * 1e6 / n;
        if (round >= 0) (times[name] ??= []).push(ns);
      }
    }

    const calls = (region as { calls?: string }).calls ?? "?";
    const ns = (name: string) => times[name] ? median(times[name]) : NaN;
    const results: BenchResult[] = names.map((name) => {
      const n = name.endsWith("-rw") ? rwOps : name.startsWith("fnptr") ? fnptrOps(ops) : ops;
      const perOp = ns(name);
      return {
        bench: "persist",
        case: name,
        hal: "pmem",
        ops: n,
        rounds,
        ns_per_op: round2(perOp),
        ops_per_sec: Math.round(1e9 / perOp),
        granularity,
        calls,
      };
    });
    const hal64 = results.find((r) => r.case === "hal-persist-64")!;
    if (times["raw-persist-64"]) {
      hal64.added_ns_vs_raw = round2(ns("hal-persist-64") - ns("raw-persist-64"));
    }
    if (times["native-persist-64"]) {
      hal64.added_ns_vs_native = round2(ns("hal-persist-64") - ns("native-persist-64"));
    }
    const viewRw = results.find((r) => r.case === "view-rw")!;
    viewRw.ratio_vs_arraybuffer = Math.round(ns("view-rw") / ns("arraybuffer-rw") * 1000) / 1000;
    return results;
  } finally {
    hal.close();
  }
}

/** The UnsafeFnPointer path is ~10× slower: a tenth of the ops, at least 200. */
function fnptrOps(ops: number): number {
  return Math.max(200, Math.ceil(ops / 10));
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

if (import.meta.main) {
  // Stand-alone: deno run -A packages/cli/bench/persist.ts [--image P] [--ops N] [--rounds R]
  const args = Deno.args;
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const settings: Record<string, string> = {};
  args.forEach((a, i) => {
    if (a === "--set") {
      const [k, v] = args[i + 1]!.split("=");
      settings[k!] = v!;
    }
  });
  const results = await run({
    hal: "pmem",
    image: value("--image"),
    ops: value("--ops") ? Number(value("--ops")) : undefined,
    rounds: value("--rounds") ? Number(value("--rounds")) : undefined,
    settings,
  });
  for (const r of results) console.log(JSON.stringify(r));
}

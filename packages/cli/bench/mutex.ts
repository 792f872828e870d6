/**
 * `twz bench mutex`: what libtwz's `Mutex` (`@twz/libtwz/sync`) costs.
 *
 * Uncontended (one thread, the lock always free), `--ops` lock + unlock
 * pairs per timed run, the two cases interleaved run by run (the order
 * alternating), in two places:
 *
 * - `uncontended-cas-pair`: the floor, a bare `Atomics.compareExchange`
 *   pair (0 → 1, 1 → 0) on a word of the same object's memory.
 * - `uncontended-mutex`: `lock()` + `unlock()` of a `Mutex` in that object:
 *   the same two compare-and-exchanges plus the boot tag and the calls.
 *
 * each measured `in-process` (the kernel's own session: `Twz.attach` over
 * `kernel.port()`, the object's bytes as the kernel maps them) and in a
 * `thread` (a program started from `/bin` in a permissions-"none" Worker,
 * mapping the object through its port: on hal-sim the region's
 * `SharedArrayBuffer`, on hal-pmem a view of the libpmem2 mapping). The
 * issue's target: ≤ 50 ns per lock + unlock.
 *
 * Contended, four threads each add 1 to one counter `N` times under one
 * lock (`N` = `--ops` / 10, at least 1,000), `--rounds` times, the two cases
 * alternating:
 *
 * - `counter-4-programs`: four programs, the `Mutex` and the counter in one
 *   persistent object; waiting is `thread_sync`.
 * - `counter-4-workers-sab`: four bare permissions-"none" Workers running
 *   the same lock algorithm (Drepper's mutex 3, the same spin count) on a
 *   plain `SharedArrayBuffer`, waiting with `Atomics.wait`/`notify`.
 *
 * Every thread starts when a shared word says so and notes, in wall-clock
 * time (`performance.timeOrigin + performance.now()`), when it started and
 * ended; a run's time is from the first start to the last end. Each run
 * checks that the counter is exactly 4 × N.
 *
 * Reports, per case, the median over the rounds and the smallest and
 * largest round: `ns_per_op` (per lock + unlock, or per increment) and for
 * the counter `ops_per_sec` (increments per second of the four together).
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench mutex --hal pmem --json
 * ```
 *
 * @module
 */
import type { TwzObject } from "@twz/libtwz";
import { Mutex } from "@twz/libtwz/sync";
import { closeBoard, openBoard } from "../board.ts";
import {
  attachThreads,
  installProgram,
  type KernelHost,
  runProgram,
  spawnProgram,
  stopThreads,
  type ThreadSystem,
} from "../run.ts";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { bundleSource, round3, type Scratch, withScratch } from "./_util.ts";

const TARGET_NS = 50;
const NAME = "bench-mutex";
/** Spins before sleeping: the same as libtwz's Mutex (`SPINS` in sync.ts). */
const SPINS = 64;

/** Offsets after the object's base: the lock, the floor's word, the barrier, the counter, times. */
const AT = { lock: 0, cas: 8, ready: 16, go: 20, counter: 24, times: 64 } as const;

/** The benchmark's program: `uncontended N ROUNDS` or `count N INDEX` on `/bench/mutex`. */
const PROGRAM = `import type { ProgramEnv } from "@twz/libtwz/program";
import { Mutex } from "@twz/libtwz/sync";

const AT = ${JSON.stringify(AT)};

export default function main(env: ProgramEnv, args: string[]): number {
  const [role, nText, extra] = args;
  const n = Number(nText);
  const obj = env.twz.open("/bench/mutex");
  const base = obj.baseOffset;
  const lock = new Mutex(obj, base + AT.lock);
  const i32 = obj.mapping.extent.i32;
  if (role === "uncontended") {
    const rounds = Number(extra);
    const j = (base + AT.cas) >>> 2;
    const cases = [
      () => { for (let k = 0; k < n; k++) { lock.lock(); lock.unlock(); } },
      () => {
        let s = 0;
        for (let k = 0; k < n; k++) {
          s += Atomics.compareExchange(i32, j, 0, 1);
          s += Atomics.compareExchange(i32, j, 1, 0);
        }
        return s;
      },
    ];
    for (let w = 0; w < 3; w++) for (const f of cases) f();
    const ns = [[], []] as number[][];
    for (let r = 0; r < rounds; r++) {
      for (let c = 0; c < 2; c++) {
        const at = (r + c) % 2;
        const t0 = performance.now();
        cases[at]!();
        ns[at]!.push(((performance.now() - t0) * 1e6) / n);
      }
    }
    console.log(JSON.stringify({ mutex: ns[0], cas: ns[1] }));
    return 0;
  }
  const index = Number(extra);
  const view = obj.view;
  Atomics.add(i32, (base + AT.ready) >>> 2, 1);
  const op = { op: "sleep" as const, id: obj.id, offset: base + AT.go, value: 0, timeoutMs: 20 };
  while (Atomics.load(i32, (base + AT.go) >>> 2) === 0) env.port.threadSync([op]);
  const t0 = performance.timeOrigin + performance.now();
  const c = base + AT.counter;
  for (let k = 0; k < n; k++) {
    lock.lock();
    view.setUint32(c, view.getUint32(c, true) + 1, true);
    lock.unlock();
  }
  const t1 = performance.timeOrigin + performance.now();
  view.setFloat64(base + AT.times + 16 * index, t0, true);
  view.setFloat64(base + AT.times + 16 * index + 8, t1, true);
  return 0;
}
`;

/**
 * The bare Worker: the same lock (mutex 3, ${SPINS} spins) with
 * `Atomics.wait`/`notify`, the same counter loop, on a plain
 * SharedArrayBuffer (words: lock 0, ready 4, go 5, counter 6; times from
 * byte 64).
 */
const BARE = `self.onmessage = (e) => {
  const { sab, n, index } = e.data;
  const a = new Int32Array(sab), view = new DataView(sab);
  const SPINS = ${SPINS};
  const lock = () => {
    let c = Atomics.compareExchange(a, 0, 0, 1);
    if (c === 0) return;
    for (let s = 0; s < SPINS; s++) {
      if (Atomics.load(a, 0) === 0 && Atomics.compareExchange(a, 0, 0, 1) === 0) return;
    }
    c = Atomics.exchange(a, 0, 2);
    while (c !== 0) {
      Atomics.wait(a, 0, 2);
      c = Atomics.exchange(a, 0, 2);
    }
  };
  const unlock = () => {
    if (Atomics.compareExchange(a, 0, 1, 0) === 1) return;
    Atomics.store(a, 0, 0);
    Atomics.notify(a, 0, 1);
  };
  Atomics.add(a, 4, 1);
  while (Atomics.load(a, 5) === 0) Atomics.wait(a, 5, 0, 20);
  const t0 = performance.timeOrigin + performance.now();
  for (let k = 0; k < n; k++) {
    lock();
    view.setUint32(24, view.getUint32(24, true) + 1, true);
    unlock();
  }
  const t1 = performance.timeOrigin + performance.now();
  view.setFloat64(64 + 16 * index, t0, true);
  view.setFloat64(64 + 16 * index + 8, t1, true);
  self.postMessage("done");
};`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Milliseconds from the first start to the last end of `count` threads' (start, end) pairs. */
function span(view: DataView, at: number, count: number): number {
  let first = Infinity, last = -Infinity;
  for (let i = 0; i < count; i++) {
    first = Math.min(first, view.getFloat64(at + 16 * i, true));
    last = Math.max(last, view.getFloat64(at + 16 * i + 8, true));
  }
  return last - first;
}

/** Uncontended pairs of the kernel's own session (ns per pair, per round). */
function inProcess(
  obj: TwzObject,
  ops: number,
  rounds: number,
): { mutex: number[]; cas: number[] } {
  const lock = new Mutex(obj, obj.baseOffset + AT.lock);
  const a = obj.mapping.extent.i32, j = (obj.baseOffset + AT.cas) >>> 2;
  let sink = 0;
  const cases = [
    () => {
      for (let k = 0; k < ops; k++) {
        lock.lock();
        lock.unlock();
      }
    },
    () => {
      for (let k = 0; k < ops; k++) {
        sink += Atomics.compareExchange(a, j, 0, 1);
        sink += Atomics.compareExchange(a, j, 1, 0);
      }
    },
  ];
  for (let w = 0; w < 3; w++) for (const f of cases) f();
  const ns: number[][] = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (let c = 0; c < 2; c++) {
      const at = (r + c) % 2;
      const t0 = performance.now();
      cases[at]!();
      ns[at]!.push(((performance.now() - t0) * 1e6) / ops);
    }
  }
  // Each pair returns 0 then 1: anything else means the word was not free.
  if (sink !== (3 + rounds) * ops) {
    throw new Error("bench mutex: the bare pair found the word taken");
  }
  return { mutex: ns[0]!, cas: ns[1]! };
}

/** One contended run of four programs: ms from the first start to the last end. */
async function programsRun(
  board: KernelHost,
  system: ThreadSystem,
  obj: TwzObject,
  n: number,
): Promise<number> {
  const base = obj.baseOffset, a = obj.mapping.extent.i32;
  obj.bytes.fill(0, base, base + AT.times + 64);
  const threads = [];
  for (let i = 0; i < 4; i++) {
    threads.push(await spawnProgram(board, NAME, ["count", String(n), String(i)], quiet));
  }
  while (Atomics.load(a, (base + AT.ready) >>> 2) < 4) await sleep(1);
  Atomics.store(a, (base + AT.go) >>> 2, 1);
  system.kernel.port().threadSync([{ op: "wake", id: obj.id, offset: base + AT.go, count: 4 }]);
  for (const t of threads) {
    const end = await system.manager.wait(t.tid);
    if (end.exitCode !== 0) {
      throw new Error(
        `bench mutex: a counter program ended with ${end.exitCode}: ${end.fault?.message}`,
      );
    }
  }
  const total = obj.view.getUint32(base + AT.counter, true);
  if (total !== 4 * n) throw new Error(`bench mutex: the counter is ${total}, not ${4 * n}`);
  return span(obj.view, base + AT.times, 4);
}

/** One contended run of four bare Workers on a plain SharedArrayBuffer. */
async function bareRun(url: string, n: number): Promise<number> {
  const sab = new SharedArrayBuffer(128);
  const a = new Int32Array(sab);
  const workers = [0, 1, 2, 3].map(() =>
    new Worker(url, { type: "module", deno: { permissions: "none" } } as WorkerOptions)
  );
  try {
    const done = workers.map((w, index) =>
      new Promise<void>((resolve, reject) => {
        w.onmessage = () => resolve();
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`bench mutex: a bare Worker failed: ${e.message}`));
        };
        w.postMessage({ sab, n, index });
      })
    );
    while (Atomics.load(a, 4) < 4) await sleep(1);
    Atomics.store(a, 5, 1);
    Atomics.notify(a, 5);
    await Promise.all(done);
  } finally {
    for (const w of workers) w.terminate();
  }
  const total = new DataView(sab).getUint32(24, true);
  if (total !== 4 * n) throw new Error(`bench mutex: the bare counter is ${total}, not ${4 * n}`);
  return span(new DataView(sab), 64, 4);
}

const quiet = { console: () => {} };

/**
 * Run the mutex benchmark.
 *
 * @param opts `hal`, `image` (a new one; default: a temporary file), `ops`
 *   lock + unlock pairs per uncontended run (default 1,000,000; a tenth, at
 *   least 1,000, increments per thread in the contended runs), `rounds`
 *   (default 5).
 * @returns Rows `uncontended-cas-pair` and `uncontended-mutex` for
 *   `where` `in-process` and `thread` (the mutex rows with
 *   `ratio_vs_cas`, `target_ns`, `within_target`), then
 *   `counter-4-programs` and `counter-4-workers-sab` (the first with
 *   `ratio_vs_sab`, increments per second over the bare Workers').
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "mutex", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 1_000_000;
  const rounds = opts.rounds ?? 5;
  const n = Math.max(1000, Math.floor(ops / 10));
  const image = scratch.image("mutex.img");
  const bareUrl = URL.createObjectURL(new Blob([BARE], { type: "text/javascript" }));
  try {
    const bundle = await bundleSource(NAME, PROGRAM);
    const board = await openBoard({
      hal: opts.hal,
      image,
      settings: opts.settings,
      holder: "twz bench mutex",
    });
    try {
      const system = attachThreads(board);
      installProgram(system, NAME, bundle.text);
      const obj = system.twz.create({ name: "/bench/mutex", size: 4096 });
      const rows: BenchResult[] = [];
      const uncontended = (where: string, r: { mutex: number[]; cas: number[] }) => {
        const cas = median(r.cas), mutex = median(r.mutex);
        const row = (name: string, ns: number[], med: number): BenchResult => ({
          bench: "mutex",
          case: name,
          where,
          hal: opts.hal,
          ops: ops * rounds,
          ns_per_op: round3(med),
          round_min_ns: round3(Math.min(...ns)),
          round_max_ns: round3(Math.max(...ns)),
        });
        rows.push(row("uncontended-cas-pair", r.cas, cas));
        rows.push({
          ...row("uncontended-mutex", r.mutex, mutex),
          added_ns_vs_cas: round3(mutex - cas),
          ratio_vs_cas: round3(mutex / cas),
          target_ns: TARGET_NS,
          within_target: mutex <= TARGET_NS,
        });
      };

      uncontended("in-process", inProcess(obj, ops, rounds));
      let printed = "";
      const end = await runProgram(board, NAME, ["uncontended", String(ops), String(rounds)], {
        console: (t) => printed += t,
      });
      if (end.exitCode !== 0) {
        throw new Error(
          `bench mutex: the program ended with ${end.exitCode}: ${end.fault?.message}`,
        );
      }
      uncontended("thread", JSON.parse(printed.trim()));

      // Contended: one untimed run of each, then the rounds, alternating.
      await programsRun(board, system, obj, Math.min(n, 1000));
      await bareRun(bareUrl, Math.min(n, 1000));
      const twz: number[] = [], bare: number[] = [];
      for (let r = 0; r < rounds; r++) {
        if (r % 2 === 0) {
          twz.push(await programsRun(board, system, obj, n));
          bare.push(await bareRun(bareUrl, n));
        } else {
          bare.push(await bareRun(bareUrl, n));
          twz.push(await programsRun(board, system, obj, n));
        }
      }
      const counter = (name: string, ms: number[]): BenchResult => {
        const med = median(ms);
        return {
          bench: "mutex",
          case: name,
          hal: opts.hal,
          ops: 4 * n,
          ns_per_op: round3((med * 1e6) / (4 * n)),
          ops_per_sec: Math.round((4 * n) / (med / 1000)),
          round_min_ops_per_sec: Math.round((4 * n) / (Math.max(...ms) / 1000)),
          round_max_ops_per_sec: Math.round((4 * n) / (Math.min(...ms) / 1000)),
          ms_median: round3(med),
        };
      };
      const programs = counter("counter-4-programs", twz);
      const workers = counter("counter-4-workers-sab", bare);
      programs.ratio_vs_sab = round3(programs.ops_per_sec! / workers.ops_per_sec!);
      rows.push(programs, workers);
      return rows;
    } finally {
      await stopThreads(board);
      closeBoard(board);
    }
  } finally {
    URL.revokeObjectURL(bareUrl);
  }
}

/**
 * `twz bench wake`: wake-up latency between two threads through
 * `thread_sync`. Two threads ping-pong on one 32-bit word: the pinger stores
 * the next odd value and wakes one sleeper, then sleeps until the word moves
 * on; the ponger, asleep while the word is even, wakes, stores the next even
 * value and wakes the pinger. Each round trip is timed by the pinger; half
 * of it is one wake-up (store + wake + the sleeper running again). Cases,
 * each a new pair of threads per round, rounds interleaved:
 *
 * - `sab-atomics`: two bare Workers (permissions "none") on a
 *   `SharedArrayBuffer` with `Atomics.wait`/`Atomics.notify`: the floor.
 * - `sim-direct`: two programs (bundled with the real bundler, run by the
 *   thread manager) on hal-sim, a persistent object: one sleep per batch on
 *   shared memory sleeps in the Worker (`Atomics.wait`), a wake is
 *   `Atomics.notify`: no system call.
 * - `sim-kernel`: the same, each sleep a batch of two (the second on a word
 *   nobody changes): the kernel sleeps the thread (a deferred answer) and
 *   the wake is a system call.
 * - `pmem-kernel`: hal-pmem, a persistent object: pmem memory cannot be
 *   waited on with `Atomics`, so every sleep and wake goes to the kernel.
 * - `pmem-volatile-direct`: hal-pmem, a volatile object (its own
 *   `SharedArrayBuffer`): the direct path again.
 *
 * The hal-pmem cases are left out (a `skipped` row) when libpmem2 is
 * missing. `--hal` is not used: the cases name their HAL. `--ops` round
 * trips per case and round (default 5000, after 500 untimed), `--rounds`
 * (default 5). Reports per case the median (`ns_per_op`), the 99th
 * percentile (`p99_ns`) and the mean of the per-wake times, and what the
 * median adds to the floor's.
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench wake --json
 * ```
 *
 * @module
 */
import { Kernel, type ObjID, Prot } from "@twz/kernel";
import { encodeCodeObject, ThreadManager } from "@twz/kernel/threads";
import { type BenchOptions, type BenchResult, latencyFigures } from "./types.ts";
import { bundleSource, openHal, refuseImage, type Scratch, withScratch } from "./_util.ts";

/** Offset of the samples (f64 per-wake ms) in the ping-pong object. */
const SAMPLES = 4096;

/** The program: `main(env, [id, "ping"|"pong", n, warm, "direct"|"kernel"])`. */
const PROGRAM = `import type { ProgramEnv } from "@twz/libtwz/program";
import type { SyncOp } from "@twz/kernel/abi";

export default function main(env: ProgramEnv, args: string[]): number {
  const port = env.port;
  const id = BigInt(args[0]!);
  const ping = args[1] === "ping";
  const total = Number(args[2]) + Number(args[3]), warm = Number(args[3]);
  const m = port.map(id);
  const w = m.extent.i32;
  const wake: SyncOp[] = [{ op: "wake", id, offset: 0, count: 1 }];
  const one = { op: "sleep" as const, id, offset: 0, value: 0 };
  const sleep: SyncOp[] = args[4] === "kernel"
    ? [one, { op: "sleep", id, offset: 8, value: 0 }]
    : [one];
  for (let i = 0; i < total; i++) {
    if (ping) {
      const t0 = performance.now();
      Atomics.store(w, 0, 2 * i + 1);
      port.threadSync(wake);
      one.value = 2 * i + 1;
      while (Atomics.load(w, 0) === 2 * i + 1) port.threadSync(sleep);
      const dt = performance.now() - t0;
      if (i >= warm) m.view.setFloat64(${SAMPLES} + 8 * (i - warm), dt / 2, true);
    } else {
      one.value = 2 * i;
      while (Atomics.load(w, 0) === 2 * i) port.threadSync(sleep);
      Atomics.store(w, 0, 2 * i + 2);
      port.threadSync(wake);
    }
  }
  return 0;
}
`;

/** The bare floor: the same protocol in a plain Worker on a SharedArrayBuffer. */
const BARE = `self.onmessage = (e) => {
  const { sab, ping, n, warm } = e.data;
  const w = new Int32Array(sab), out = new Float64Array(n);
  for (let i = 0; i < n + warm; i++) {
    if (ping) {
      const t0 = performance.now();
      Atomics.store(w, 0, 2 * i + 1);
      Atomics.notify(w, 0, 1);
      while (Atomics.load(w, 0) === 2 * i + 1) Atomics.wait(w, 0, 2 * i + 1);
      const dt = performance.now() - t0;
      if (i >= warm) out[i - warm] = dt / 2;
    } else {
      while (Atomics.load(w, 0) === 2 * i) Atomics.wait(w, 0, 2 * i);
      Atomics.store(w, 0, 2 * i + 2);
      Atomics.notify(w, 0, 1);
    }
  }
  self.postMessage(out);
};`;

interface System {
  kernel: Kernel;
  manager: ThreadManager;
  code: ObjID;
  close(): Promise<void>;
}

/** Boot `hal` on a new image with a thread manager and the program installed. */
async function boot(
  hal: "sim" | "pmem",
  text: string,
  opts: BenchOptions,
  scratch: Scratch,
): Promise<System> {
  const o = { ...opts, hal, image: undefined };
  const { hal: h } = await openHal(o, scratch.image(`wake-${hal}.img`, hal), 32 << 20);
  const kernel = Kernel.boot(h, { formatBlank: true });
  const manager = new ThreadManager(kernel, { console: () => {} });
  const bytes = encodeCodeObject(text);
  const src = kernel.create({ size: bytes.length, lifetime: "volatile" });
  kernel.write(src, 0, bytes);
  const code = kernel.create({
    size: bytes.length,
    prot: Prot.Read | Prot.Exec,
    sources: [{ id: src, srcOffset: 0, dstOffset: 0, length: bytes.length }],
  });
  kernel.delete(src);
  return {
    kernel,
    manager,
    code,
    close: async () => {
      await manager.shutdown(1000);
      kernel.shutdown();
      h.close();
    },
  };
}

/** One round of a program case: a new pair of threads, `n` timed round trips. */
async function programRound(
  sys: System,
  volatile: boolean,
  mode: "direct" | "kernel",
  n: number,
  warm: number,
): Promise<Float64Array> {
  const { kernel, manager, code } = sys;
  const obj = kernel.create({
    size: SAMPLES + 8 * n,
    lifetime: volatile ? "volatile" : "persistent",
  });
  // The object stays (deleting it right after the threads end could find
  // their Workers not yet reaped, still holding views of it).
  {
    const args = (role: string) => [String(obj), role, String(n), String(warm), mode];
    const pong = manager.spawn({ code, name: "pong", args: args("pong") });
    const ping = manager.spawn({ code, name: "ping", args: args("ping") });
    const [a, b] = await Promise.all([manager.wait(ping.tid), manager.wait(pong.tid)]);
    for (const t of [a, b]) {
      if (t.exitCode !== 0 || t.fault !== null) {
        throw new Error(`bench wake: ${t.name} ended with ${t.exitCode}: ${t.fault?.message}`);
      }
    }
    const bytes = kernel.read(obj, SAMPLES, 8 * n);
    return new Float64Array(bytes.buffer, bytes.byteOffset, n).slice();
  }
}

/** One round of the bare floor. */
async function bareRound(url: string, n: number, warm: number): Promise<Float64Array> {
  const sab = new SharedArrayBuffer(64);
  const opts = { type: "module", deno: { permissions: "none" } } as WorkerOptions;
  const ws = [new Worker(url, opts), new Worker(url, opts)];
  try {
    const got = new Promise<Float64Array>((resolve, reject) => {
      ws[0]!.onmessage = (e: MessageEvent) => resolve(e.data as Float64Array);
      for (const w of ws) {
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`bench wake: a bare Worker failed: ${e.message}`));
        };
      }
    });
    ws[1]!.postMessage({ sab, ping: false, n, warm });
    ws[0]!.postMessage({ sab, ping: true, n, warm });
    return await got;
  } finally {
    for (const w of ws) w.terminate();
  }
}

/**
 * Run the wake-up latency benchmark.
 *
 * @param opts `ops` round trips per case and round (default 5000), `rounds`
 *   (default 5); `settings` go to both HALs; no `image` (it makes its own).
 * @returns One row per case: `ns_per_op` (median per wake), `p99_ns`,
 *   `mean_ns`, the per-round medians' range, `added_ns_vs_floor`; a case
 *   that could not run has `skipped` with the reason.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "wake", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  refuseImage(opts, "wake", "it makes one image per HAL");
  const n = opts.ops ?? 5000;
  const rounds = opts.rounds ?? 5;
  const warm = Math.min(500, n);
  const bareUrl = URL.createObjectURL(new Blob([BARE], { type: "text/javascript" }));
  const systems: System[] = [];
  try {
    const text = (await bundleSource("wake", PROGRAM)).text;
    const sim = await boot("sim", text, opts, scratch);
    systems.push(sim);
    let pmem: System | undefined;
    let pmemWhy = "";
    try {
      pmem = await boot("pmem", text, opts, scratch);
      systems.push(pmem);
    } catch (e) {
      pmemWhy = (e as Error).message.split("\n")[0]!;
    }
    type Case = [name: string, hal: string, round: (() => Promise<Float64Array>) | undefined];
    const cases: Case[] = [
      ["sab-atomics", "none", () => bareRound(bareUrl, n, warm)],
      ["sim-direct", "sim", () => programRound(sim, false, "direct", n, warm)],
      ["sim-kernel", "sim", () => programRound(sim, false, "kernel", n, warm)],
      ["pmem-kernel", "pmem", pmem && (() => programRound(pmem, false, "direct", n, warm))],
      [
        "pmem-volatile-direct",
        "pmem",
        pmem && (() => programRound(pmem, true, "direct", n, warm)),
      ],
    ];
    const samples: Float64Array[][] = cases.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let c = 0; c < cases.length; c++) {
        const at = (r + c) % cases.length, f = cases[at]![2];
        if (f) samples[at]!.push(await f());
      }
    }
    let floor = 0;
    return cases.map(([name, hal, f], i) => {
      if (f === undefined) return { bench: "wake", case: name, hal, ops: 0, skipped: pmemWhy };
      const fig = latencyFigures(samples[i]!);
      const med = fig.ns_per_op;
      if (i === 0) floor = med;
      const row: BenchResult = { bench: "wake", case: name, hal, ...fig };
      if (i > 0) row.added_ns_vs_floor = Math.round(med - floor);
      return row;
    });
  } finally {
    for (const s of systems) await s.close();
    URL.revokeObjectURL(bareUrl);
  }
}

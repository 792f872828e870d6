/**
 * `twz bench syscall`: what one system call costs a thread. A Worker with
 * permissions "none" (as every program runs) calls the kernel over its
 * channel (`@twz/kernel/abi` channel.ts; the kernel waits with
 * `Atomics.waitAsync`). Cases, measured in the same Worker, interleaved
 * round by round, each call timed on its own:
 *
 * - `sab-pingpong`: a bare `SharedArrayBuffer` ping-pong with the same
 *   wake-ups (Worker: store, `Atomics.notify`, `Atomics.wait`; kernel
 *   thread: `Atomics.waitAsync`, store, notify), no encoding, no dispatch.
 * - `sab-pingpong-spin`: the same, the Worker spinning up to
 *   `CHANNEL_SPIN_US` before it waits, as the port does: the floor the
 *   system calls are compared with (`added_ns_vs_floor`).
 * - `syscall-clock`: `port.clock()`: encode, wake the kernel, decode,
 *   dispatch, encode the answer (an object of two numbers), wake, decode.
 * - `syscall-yield`: `port.threadYield()`: the smallest call.
 * - `syscall-persist-64`: a 64-byte store into a mapped object plus
 *   `mapping.persist(offset, 64)` (one HAL call in the kernel).
 * - `syscall-map-unmap-64k`: map a 64 KiB object, store a byte, unmap: two
 *   calls, and on hal-pmem the hand-over of a view of the object's bytes
 *   (made and transferred on the memory port, taken with
 *   `receiveMessageOnPort`).
 * - `syscall-yield-no-kernel-spin`: `threadYield()` over a second channel
 *   whose server does not poll for the next call after an answer (`spinUs`
 *   0; programs get `KERNEL_SPIN_US`, as the other cases): what the
 *   kernel's wake-up costs.
 *
 * Reports the median and the 99th percentile of the single-call times
 * (`ns_per_op` is the median), and for the system calls what they add to
 * the ping-pong. The target: a round trip ≤ 15 µs.
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench syscall --json
 * ```
 *
 * @module
 */
import { Kernel } from "@twz/kernel";
import { openThreadChannel } from "@twz/kernel/threads";
import { type BenchOptions, type BenchResult, latencyFigures } from "./types.ts";
import { BareThreadCalls, benchWorker, openHal, type Scratch, withScratch } from "./_util.ts";

const TARGET_NS = 15_000;

const CASES = [
  "sab-pingpong",
  "sab-pingpong-spin",
  "syscall-clock",
  "syscall-yield",
  "syscall-persist-64",
  "syscall-map-unmap-64k",
  "syscall-yield-no-kernel-spin",
];

/** The Worker: runs every case `rounds` times, `ops` timed calls each. */
function workerSource(abi: string): string {
  return `import { CHANNEL_SPIN_US, connectPort } from ${JSON.stringify(abi)};
self.onmessage = (e) => {
  const { init, init2, ping, object, ops, rounds, warm } = e.data;
  const port = connectPort(init), port2 = connectPort(init2);
  const s = new Int32Array(ping);
  const m = port.map(object);
  const line = new Uint8Array(64);
  let k = 0;
  const cases = [
    () => { Atomics.store(s, 0, 1); Atomics.notify(s, 0); while (Atomics.load(s, 0) === 1) Atomics.wait(s, 0, 1); },
    () => {
      Atomics.store(s, 0, 1); Atomics.notify(s, 0);
      const until = performance.now() + CHANNEL_SPIN_US / 1000;
      for (let i = 1; Atomics.load(s, 0) === 1; i++) if ((i & 63) === 0 && performance.now() > until) break;
      while (Atomics.load(s, 0) === 1) Atomics.wait(s, 0, 1);
    },
    () => port.clock(),
    () => port.threadYield(),
    () => { line[0] = k; const off = (k++ & 1023) * 64; m.bytes.set(line, off); m.persist(off, 64); },
    () => { const n = port.map(object); n.bytes[0] = 1; port.unmap(n); },
    () => port2.threadYield(),
  ];
  for (const f of cases) for (let i = 0; i < warm; i++) f();
  const samples = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let c = 0; c < cases.length; c++) {
      const at = (r + c) % cases.length, f = cases[at], out = new Float64Array(ops);
      for (let i = 0; i < ops; i++) { const t0 = performance.now(); f(); out[i] = performance.now() - t0; }
      samples[at].push(out);
    }
  }
  Atomics.store(s, 0, 3);
  Atomics.notify(s, 0);
  self.postMessage(samples);
};`;
}

/** The kernel side of the bare ping-pong: answers 1 with 2 until it reads 3. */
async function pong(s: Int32Array): Promise<void> {
  for (;;) {
    const v = Atomics.load(s, 0);
    if (v === 3) return;
    if (v === 1) {
      Atomics.store(s, 0, 2);
      Atomics.notify(s, 0);
      continue;
    }
    const w = Atomics.waitAsync(s, 0, v);
    if (w.async) await w.value;
  }
}

/**
 * Run the system-call benchmark.
 *
 * @param opts `hal` (`sim`: an anonymous region unless `image`; `pmem`: a
 *   new image), `ops` timed calls per case and round (default 20 000),
 *   `rounds` (default 5).
 * @returns One result per case: `ns_per_op` (median), `p99_ns`, `mean_ns`,
 *   for system calls `added_ns_vs_floor`, for the trivial ones (clock,
 *   yield) `target_ns` and `within_target`.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "syscall", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 20_000;
  const rounds = opts.rounds ?? 5;
  const { hal } = await openHal(opts, scratch.image("syscall.img"), 16 << 20);
  const kernel = Kernel.boot(hal);
  const object = kernel.create({ size: 65536 });
  const chan = openThreadChannel(
    kernel,
    1,
    new BareThreadCalls("bench syscall runs one bare thread"),
  );
  const chan2 = openThreadChannel(
    kernel,
    2,
    new BareThreadCalls("bench syscall runs one bare thread"),
    { spinUs: 0 },
  );
  const ping = new SharedArrayBuffer(64);
  const ponged = pong(new Int32Array(ping));
  try {
    const init = { tid: 1, id: 0n, name: "bench", args: [], ...chan.init };
    const init2 = { tid: 2, id: 0n, name: "bench", args: [], ...chan2.init };
    const samples = await benchWorker<Float64Array[][]>(
      "bench syscall",
      workerSource(import.meta.resolve("@twz/kernel/abi")),
      { init, init2, ping, object, ops, rounds, warm: 2000 },
      [chan.init.memory, chan2.init.memory],
    );
    await ponged;
    const results: BenchResult[] = [];
    let floor = 0;
    CASES.forEach((name, i) => {
      const fig = latencyFigures(samples[i]!);
      const med = fig.ns_per_op;
      if (i === 1) floor = med;
      const r: BenchResult = { bench: "syscall", case: name, hal: opts.hal, ...fig };
      if (i > 1) r.added_ns_vs_floor = Math.round(med - floor);
      if (name === "syscall-clock" || name.startsWith("syscall-yield")) {
        r.target_ns = TARGET_NS;
        r.within_target = med <= TARGET_NS;
      }
      results.push(r);
    });
    return results;
  } finally {
    chan.server.close();
    chan2.server.close();
    await chan.server.done;
    await chan2.server.done;
    kernel.shutdown();
    hal.close();
  }
}

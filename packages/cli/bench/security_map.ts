/**
 * `twz bench sec-map`: what the kernel's security check adds to a map. One
 * object of 4096 bytes, mapped read-only and unmapped through an in-process
 * port (`LocalPort`), in two cases measured side by side (interleaved
 * rounds, the order rotated every round, three untimed warm-ups each):
 *
 * - `default` (the floor): the admin's port mapping the object — the
 *   admin's rule (defaults, plus Read and Delete), no contexts to look at.
 *   The same object as the next case, so both pay the same object-table
 *   lookup (two objects' probe chains differ by more than the check costs).
 * - `capability` (`ns_per_op`): a thread principal with one security
 *   context holding a verified read capability for an object whose default
 *   protections are none (the signature verified once before the rounds, so
 *   every map answers from the cached verdict: a lookup per context and a
 *   clock reading for expiry).
 *
 * The same two cases from a real thread (a permissions-none Worker calling
 * over its channel, the kernel's `ThreadPort` awaiting the verdict before it
 * maps): `thread-default` (a thread without contexts mapping the
 * default-readable object) and `thread-capability` (a thread whose one
 * context holds the capability), each map + unmap timed in batches of
 * `ops`, interleaved round by round.
 *
 * Reports the median ns per map + unmap of each and their `ratio` (the
 * issue's target: ≤ 1.2), in-process and from a thread.
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench sec-map --json
 * ```
 *
 * @module
 */
import { Kernel, LocalPort } from "@twz/kernel";
import { openThreadChannel } from "@twz/kernel/threads";
import { CapFlag, encodeGrant, Prot, SecProt, signCapability, WHOLE_OBJECT } from "@twz/kernel/abi";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import {
  BareThreadCalls,
  benchWorker,
  interleavedMedians,
  openHal,
  round3,
  type Scratch,
  withScratch,
} from "./_util.ts";

const TARGET = 1.2;

/** The Worker: two ports (default, capability), map + unmap, batches of `ops` per round. */
function workerSource(abi: string): string {
  return `import { connectPort } from ${JSON.stringify(abi)};
self.onmessage = (e) => {
  const { initA, initB, a, b, ops, rounds, warm } = e.data;
  const pa = connectPort(initA), pb = connectPort(initB);
  const f = [
    () => { const m = pa.map(a, 1); pa.unmap(m); },
    () => { const m = pb.map(b, 1); pb.unmap(m); },
  ];
  for (const g of f) for (let i = 0; i < warm; i++) g();
  const samples = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (let c = 0; c < 2; c++) {
      const at = (r + c) % 2, g = f[at], t0 = performance.now();
      for (let i = 0; i < ops; i++) g();
      samples[at].push((performance.now() - t0) / ops);
    }
  }
  self.postMessage(samples);
};`;
}

/** Median ms per map + unmap from a real thread: [default, capability]. */
async function fromThreads(
  kernel: Kernel,
  open: bigint,
  secret: bigint,
  ctx: bigint,
  ops: number,
  rounds: number,
): Promise<[number, number]> {
  const chanA = openThreadChannel(
    kernel,
    1,
    new BareThreadCalls("bench sec-map runs bare threads"),
    {
      principal: { admin: false, tid: 1, contexts: [] },
    },
  );
  const chanB = openThreadChannel(
    kernel,
    2,
    new BareThreadCalls("bench sec-map runs bare threads"),
    {
      principal: { admin: false, tid: 2, contexts: [ctx] },
    },
  );
  try {
    const initA = { tid: 1, id: 0n, name: "bench", args: [], ...chanA.init };
    const initB = { tid: 2, id: 0n, name: "bench", args: [], ...chanB.init };
    const samples = await benchWorker<number[][]>(
      "bench sec-map",
      workerSource(import.meta.resolve("@twz/kernel/abi")),
      { initA, initB, a: open, b: secret, ops, rounds, warm: Math.min(ops, 2000) },
      [chanA.init.memory, chanB.init.memory],
    );
    return [median(samples[0]!), median(samples[1]!)];
  } finally {
    chanA.server.close();
    chanB.server.close();
    await chanA.server.done;
    await chanB.server.done;
  }
}

/**
 * Run the benchmark.
 *
 * @param opts `hal` (a new image on it), `ops` maps per round in-process
 *   (default 200 000; a hundredth of them from a thread), `rounds` (default 9).
 * @returns Two results (in-process, thread): `ns_per_op` (the capability
 *   case), `default_ns_per_op`, `ratio`, `target`, `within_target`.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "sec-map", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 200_000;
  const rounds = opts.rounds ?? 9;
  const { hal } = await openHal(opts, scratch.image("sec-map.img"), 32 << 20);
  const kernel = Kernel.boot(hal);
  try {
    const admin = kernel.port();
    const { kuid, privateId } = await admin.keyCreate();
    const priv = admin.read(privateId, 256, kernel.stat(privateId).size - 256);
    const open = admin.create({ size: 4096, prot: Prot.ReadWrite });
    const secret = admin.create({ size: 4096, keyId: kuid, prot: 0 });
    const ctx = admin.ctxCreate();
    admin.ctxAdd(
      ctx,
      encodeGrant(
        await signCapability({
          target: secret,
          accessor: ctx,
          prot: SecProt.Read,
          flags: CapFlag.Sha256,
          expiry: 0n,
          gate: { ...WHOLE_OBJECT },
        }, priv),
      ),
    );
    const who = { admin: false as const, tid: 1, contexts: [ctx] };
    if ((await kernel.security.allowed(who, secret)) !== SecProt.Read) {
      throw new Error("bench sec-map: the capability did not verify");
    }
    const thread = new LocalPort(kernel, who);
    // Two fresh ports, so neither carries the setup's mapping history; two
    // function literals, so neither case shapes the other's optimized code
    // (closures of one literal share their type feedback).
    const floorPort = new LocalPort(kernel);
    const viaDefault = () => {
      let sum = 0;
      for (let i = 0; i < ops; i++) {
        const m = floorPort.map(secret, Prot.Read);
        sum += m.handle;
        floorPort.unmap(m);
      }
      return sum;
    };
    const viaCapability = () => {
      let sum = 0;
      for (let i = 0; i < ops; i++) {
        const m = thread.map(secret, Prot.Read);
        sum += m.handle;
        thread.unmap(m);
      }
      return sum;
    };
    const [floor, cap] = interleavedMedians([viaDefault, viaCapability], ops, rounds);
    const threadOps = Math.max(1, Math.round(ops / 100));
    const [tFloor, tCap] = await fromThreads(kernel, open, secret, ctx, threadOps, rounds);
    const row = (name: string, n: number, c: number, f: number): BenchResult => ({
      bench: "sec-map",
      case: name,
      hal: opts.hal,
      ops: n * rounds,
      ns_per_op: +c.toFixed(1),
      default_ns_per_op: +f.toFixed(1),
      ratio: round3(c / f),
      target: TARGET,
      within_target: c / f <= TARGET,
    });
    return [
      row(
        "in-process: map+unmap with a cached capability vs default protections",
        ops,
        cap!,
        floor!,
      ),
      row(
        "thread: map+unmap with a cached capability vs default protections",
        threadOps,
        tCap * 1e6,
        tFloor * 1e6,
      ),
    ];
  } finally {
    kernel.shutdown();
    hal.close();
  }
}

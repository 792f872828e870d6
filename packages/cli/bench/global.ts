/**
 * `twz bench global`: what the global object space (docs/GLOBAL.md) costs,
 * each case beside its local counterpart and beside the bare NATS JetStream
 * operations it is built from, in one run. The benchmark starts its own
 * cluster of three `nats-server`s on free loopback ports (`startCluster` of
 * `@twz/global/cluster`, stopped at the end however the run ends) and two
 * nodes, each a kernel on its own new hal-sim image joined with
 * `GlobalNode.join`: node `bench-a` in a Worker (so it answers handover
 * requests while the main thread waits in a synchronous call) and node
 * `bench-b` on the main thread, where everything is timed.
 *
 * Cases (one sample per case and repetition, `--rounds` repetitions after
 * one untimed one, the cases of a group in an order rotated every
 * repetition; medians with the smallest and largest sample):
 *
 * - **First dereference**, 4 KiB and 1 MiB: `kernel.map(id, Read)` on node B
 *   plus a read of the first and last byte. `remote`: an object node A has
 *   just published (a fresh ID each repetition), so the map fetches it
 *   (record, then bytes) and adopts it; `local`: an object of the same size
 *   node B has just created and never mapped; `engine`: the bare reads a
 *   fetch is made of, through node B's own link: a KV `get` of a record and
 *   an object-store `getBytes` of as many bytes.
 * - **Ownership**: `own(id)` on node B of an object node A has just
 *   published and still owns (`handover`: a request to node A, which
 *   compare-and-sets the record to B) and of one node A published and
 *   released (`takeover`: one compare-and-set); beside them the bare
 *   engine operations: a request/reply round trip to node A's Worker, and a
 *   KV `get` + `update` (compare-and-set) of one key.
 * - **Transactions**: `--ops` transactions per repetition and case, each
 *   writing one u32 (a different one each time) of a 4 KiB object with
 *   libtwz's `transaction()` on node B: `global` on an object node B
 *   published and owns (the transaction returns after the commit is
 *   published: libtwz calls the node's `commit`, or the benchmark does,
 *   see `publish_via`), `local` on an unpublished object of the same node,
 *   `kv-put` a bare KV `put` of the object's 4096 bytes through node B's
 *   link (the same client), and `engine-publish` what one publish asks of
 *   the engine, bare: `putBytes` of the 4096 bytes, then a KV `update`
 *   (compare-and-set on the revision the last one returned, as a commit's
 *   is) of a record of the size of an object record.
 * - **Coherence**: a transaction on node B writing one u32 of a published
 *   object node A holds a copy of, and the moment node A's watch has put
 *   the new version into its copy (node A's `kernel.replaceContents` is
 *   wrapped to note it; both threads read `performance.timeOrigin +
 *   performance.now()`): from the transaction's start, with the commit's
 *   own time beside it.
 *
 * `--hal` is not used (the nodes run on hal-sim images in the run's
 * temporary folder); `--image` is refused. Defaults: `--rounds 9`,
 * `--ops 50`. The figures are worth only as much as the machine is quiet:
 * three servers with three replicas of every bucket share its cores.
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench global --json
 * deno run -A packages/cli/main.ts bench global --rounds 3 --ops 20
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { Kernel, type ObjID, Prot } from "@twz/kernel";
import { Twz } from "@twz/libtwz";
import { transaction } from "@twz/libtwz/tx";
import { GlobalNode } from "@twz/global";
import { startCluster } from "@twz/global/cluster";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { openHal, refuseImage, round3, type Scratch, sink, withScratch } from "./_util.ts";

const KIB4 = 4096;
const MIB1 = 1 << 20;
/** Lease of the benchmark's nodes: long, so no renewal race is measured. */
const LEASE_MS = 10_000;
/** Longest wait of one call of the nodes. */
const TIMEOUT_MS = 30_000;
/** Longest wait for node A's Worker to answer one message. */
const WORKER_TIMEOUT_MS = 120_000;

/** A message to node A's Worker. */
type ToNode =
  | {
    op: "start";
    image: string;
    size: number;
    servers: string[];
    node: string;
    settings?: Record<string, string> | undefined;
  }
  | { op: "publish"; objects: { size: number; seed: number; release: boolean }[] }
  | { op: "arm"; id: ObjID; offset: number; value: number }
  | { op: "stop" };

/**
 * Node A's answer: `ids` for `publish`, `error` (one line) when it failed;
 * `seen` (not an answer: a later message after `arm`) the time its copy
 * took the armed value.
 */
interface FromNode {
  ok: boolean;
  ids?: ObjID[];
  error?: string;
  seen?: number;
}

/** A clock both threads share: milliseconds since the Unix epoch, sub-millisecond. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

/** A subject node A answers with an empty reply: the bare round trip. */
const ECHO = "twz-bench.echo";

/** The nodes' reports, without the expected ones (every handover is reported by the giver). */
function quiet(line: string): void {
  if (!/ownership of \w+ passed to node/.test(line)) console.error(line);
}

/** Bytes `0, 1, …, 250, 0, …` plus `seed`: each object's contents, checked after a fetch. */
function pattern(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i + seed) % 251;
  return b;
}

/**
 * The body of node A's Worker: answers {@linkcode ToNode} messages one at a
 * time. Exported for the Worker's module (a `blob:` URL importing this
 * file); not an API.
 *
 * @param scope The Worker's global scope (`self`).
 */
export function serveBenchNode(scope: {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}): void {
  let kernel: Kernel | undefined;
  let close: (() => void) | undefined;
  let node: GlobalNode | undefined;
  let stopEcho: (() => void) | undefined;
  /** What `arm` waits for: the u32 at `offset` of `id` replaced by `value`. */
  let armed: { id: ObjID; offset: number; value: number } | undefined;
  let chain = Promise.resolve();
  const handle = async (m: ToNode): Promise<FromNode> => {
    switch (m.op) {
      case "start": {
        const { hal } = await openHal({ hal: "sim", settings: m.settings }, m.image, m.size);
        kernel = Kernel.boot(hal);
        close = () => {
          kernel!.shutdown();
          hal.close();
        };
        node = await GlobalNode.join(kernel, {
          servers: m.servers,
          node: m.node,
          leaseMs: LEASE_MS,
          timeoutMs: TIMEOUT_MS,
          log: quiet,
        });
        stopEcho = node.link.serve(ECHO, () => new Uint8Array(0));
        // The instrument of the coherence case: the moment the watch puts a
        // new version into this node's copy (the same call, then a note).
        const k = kernel;
        const replace = k.replaceContents.bind(k);
        k.replaceContents = (id: ObjID, content: Uint8Array) => {
          replace(id, content);
          const a = armed;
          if (a === undefined || id !== a.id || content.length < a.offset + 4) return;
          const v = new DataView(content.buffer, content.byteOffset, content.byteLength);
          if (v.getUint32(a.offset, true) !== a.value) return;
          armed = undefined;
          scope.postMessage({ ok: true, seen: now() });
        };
        return { ok: true };
      }
      case "arm": {
        // Held from now on (fetched the first time), kept current by the watch.
        const cur = kernel!.read(m.id, m.offset, 4);
        if (new DataView(cur.buffer, cur.byteOffset, 4).getUint32(0, true) === m.value) {
          throw new Error(`the copy of ${hex(m.id)} holds ${m.value} already`);
        }
        armed = { id: m.id, offset: m.offset, value: m.value };
        return { ok: true };
      }
      case "publish": {
        const ids: ObjID[] = [];
        for (const o of m.objects) {
          const id = kernel!.createWith(pattern(o.size, o.seed), { prot: Prot.ReadWrite });
          node!.publish(id, {});
          if (o.release) node!.release(id);
          ids.push(id);
        }
        return { ok: true, ids };
      }
      case "stop": {
        stopEcho?.();
        await node?.leave();
        close?.();
        node = undefined;
        kernel = undefined;
        close = undefined;
        return { ok: true };
      }
    }
  };
  scope.onmessage = (e: MessageEvent) => {
    chain = chain.then(async () => {
      try {
        scope.postMessage(await handle(e.data as ToNode));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        scope.postMessage({ ok: false, error: message.split("\n")[0] });
      }
    });
  };
}

/** Node A, in a Worker: one message at a time, each answered or timed out. */
class WorkerNode {
  #worker: Worker;
  #url: string;
  #pending: { resolve: (m: FromNode) => void; reject: (e: Error) => void } | undefined;
  #seen: ((at: number) => void) | undefined;

  constructor() {
    const source = `import { serveBenchNode } from ${JSON.stringify(import.meta.url)};
serveBenchNode(self);`;
    this.#url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    this.#worker = new Worker(this.#url, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent) => {
      const m = e.data as FromNode;
      if (m.seen !== undefined) {
        const s = this.#seen;
        this.#seen = undefined;
        s?.(m.seen);
        return;
      }
      const p = this.#pending;
      this.#pending = undefined;
      p?.resolve(e.data as FromNode);
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      const p = this.#pending;
      this.#pending = undefined;
      p?.reject(new Error(`bench global: node A's Worker failed: ${e.message}`));
    };
  }

  /** Send `m`, wait for the answer; a refusal throws its one line. */
  async call(m: ToNode): Promise<FromNode> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const answer = await new Promise<FromNode>((resolve, reject) => {
        this.#pending = { resolve, reject };
        timer = setTimeout(
          () => reject(new Error(`bench global: node A did not answer ${m.op} in time`)),
          WORKER_TIMEOUT_MS,
        );
        this.#worker.postMessage(m);
      });
      if (!answer.ok) throw new Error(`bench global: node A: ${m.op}: ${answer.error}`);
      return answer;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The time (`now()`) node A's copy takes the value the next `arm` names;
   * call before `arm`. Rejects after the Worker timeout.
   */
  seen(): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Promise<number>((resolve, reject) => {
      this.#seen = resolve;
      timer = setTimeout(
        () => reject(new Error("bench global: node A's copy never took the new version")),
        WORKER_TIMEOUT_MS,
      );
    }).finally(() => clearTimeout(timer));
  }

  /** Stop node A (leave the cluster, shut its kernel down), then the Worker. */
  async close(): Promise<void> {
    try {
      await this.call({ op: "stop" });
    } finally {
      this.#worker.terminate();
      URL.revokeObjectURL(this.#url);
    }
  }
}

/** Milliseconds of one call of `fn`; a promise it returns is awaited (and timed). */
async function timed(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  const r = fn();
  if (r instanceof Promise) await r;
  return performance.now() - t0;
}

/**
 * One sample (ms) of each case of a group into `samples`; the order of the
 * cases rotates with `round` (-1: the untimed first repetition).
 */
async function interleave(
  cases: (() => unknown)[],
  samples: number[][],
  round: number,
): Promise<void> {
  for (let j = 0; j < cases.length; j++) {
    const at = (j + round + cases.length) % cases.length;
    samples[at]!.push(await timed(cases[at]!));
  }
}

/** One result row from samples in ms: the median and extremes in ns, and `extra`. */
function latencyRow(
  name: string,
  samples: number[],
  extra: Record<string, number | string | boolean> = {},
): BenchResult {
  return {
    bench: "global",
    case: name,
    hal: "sim",
    ops: samples.length,
    ns_per_op: Math.round(median(samples) * 1e6),
    min_ns: Math.round(Math.min(...samples) * 1e6),
    max_ns: Math.round(Math.max(...samples) * 1e6),
    ...extra,
  };
}

/** One throughput row from per-round ns per operation. */
function rateRow(
  name: string,
  ops: number,
  nsPerRound: number[],
  extra: Record<string, number | string | boolean> = {},
): BenchResult {
  const ns = median(nsPerRound);
  return {
    bench: "global",
    case: name,
    hal: "sim",
    ops: ops * nsPerRound.length,
    ns_per_op: Math.round(ns),
    ops_per_sec: Math.round(1e9 / ns),
    min_ops_per_sec: Math.round(1e9 / Math.max(...nsPerRound)),
    max_ops_per_sec: Math.round(1e9 / Math.min(...nsPerRound)),
    ...extra,
  };
}

/** The object's bytes as `kernel.map` shows them, checked against its pattern. */
function checkContents(kernel: Kernel, id: ObjID, size: number, seed: number, what: string): void {
  const m = kernel.map(id, Prot.Read);
  const want = pattern(size, seed);
  const got = m.bytes.subarray(0, size);
  if (got.length !== size || got.some((b, i) => b !== want[i])) {
    throw new Error(`bench global: ${what}: the fetched bytes differ from what node A published`);
  }
}

/**
 * Run the benchmark.
 *
 * @param opts `rounds` repetitions (default 9), `ops` transactions per
 *   repetition and transaction case (default 50); `hal` is ignored (hal-sim).
 * @returns One row per case: first dereference (remote, local, engine; 4 KiB
 *   and 1 MiB), ownership (handover, takeover, engine round trip, engine
 *   CAS), transactions (global, local, kv-put, engine-publish), coherence
 *   (`commit_ns`, `after_commit_ns` beside it). Latencies
 *   as `ns_per_op` (median) with `min_ns`/`max_ns`; rates as `ops_per_sec`
 *   (median of the repetitions) with their range; ratios on the main rows.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  refuseImage(opts, "global", "it makes one image per node");
  return withScratch(opts, "global", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const rounds = opts.rounds ?? 9;
  const ops = opts.ops ?? 50;
  // Each repetition (and the untimed first one) leaves about 2 MiB fetched
  // and 1 MiB created on node B and 1 MiB on node A; transactions write in place.
  const imageSize = (32 << 20) + (rounds + 1) * (4 << 20);
  const cluster = await startCluster({ servers: 3, dir: join(scratch.folder(), "nats") });
  // Ctrl-C or SIGTERM ends the run with Deno.exit (see Scratch), which skips
  // `finally` but dispatches "unload": the servers are stopped there, by PID.
  const killServers = () => {
    for (const s of cluster.servers) {
      try {
        Deno.kill(s.pid, "SIGTERM");
      } catch { /* gone already */ }
    }
  };
  globalThis.addEventListener("unload", killServers);
  let nodeA: WorkerNode | undefined;
  let nodeB: GlobalNode | undefined;
  let closeB: (() => void) | undefined;
  try {
    const servers = cluster.urls;
    nodeA = new WorkerNode();
    await nodeA.call({
      op: "start",
      image: scratch.image("global-a.img", "sim"),
      size: imageSize,
      servers,
      node: "bench-a",
      settings: opts.settings,
    });
    const { hal } = await openHal(
      { ...opts, hal: "sim" },
      scratch.image("global-b.img", "sim"),
      imageSize,
    );
    const k = Kernel.boot(hal);
    closeB = () => {
      k.shutdown();
      hal.close();
    };
    const b = nodeB = await GlobalNode.join(k, {
      servers,
      node: "bench-b",
      leaseMs: LEASE_MS,
      timeoutMs: TIMEOUT_MS,
      log: quiet,
    });
    const a = nodeA;
    const link = b.link;

    // ---- (a) first dereference --------------------------------------------
    const sizes = [KIB4, MIB1] as const;
    const deref = sizes.map(() => [[], [], []] as number[][]);
    for (const size of sizes) {
      link.putBytes(`twz-bench.${size}`, pattern(size, 0));
    }
    link.put("meta", "twz-bench.record", new TextEncoder().encode(sampleRecord(KIB4)));
    let seed = 1;
    for (let r = -1; r < rounds; r++) {
      await scratch.checkpoint();
      const objects = sizes.map((size) => ({ size, seed: seed++, release: false }));
      const { ids } = await a.call({ op: "publish", objects });
      for (let s = 0; s < sizes.length; s++) {
        const { size, seed } = objects[s]!;
        const remote = ids![s]!;
        const local = k.createWith(pattern(size, seed), { prot: Prot.ReadWrite });
        await interleave(
          [
            () => {
              const m = k.map(remote, Prot.Read);
              sink.value += m.bytes[0]! + m.bytes[size - 1]!;
            },
            () => {
              const m = k.map(local, Prot.Read);
              sink.value += m.bytes[0]! + m.bytes[size - 1]!;
            },
            () => {
              const rec = link.get("meta", "twz-bench.record");
              const bytes = link.getBytes(`twz-bench.${size}`);
              sink.value += (rec?.revision ?? 0) + (bytes?.[size - 1] ?? 0);
            },
          ],
          r < 0 ? [[], [], []] : deref[s]!,
          r,
        );
        checkContents(k, remote, size, seed, `object ${r} of ${size} bytes`);
      }
    }

    // ---- (b) ownership ----------------------------------------------------
    const own = [[], [], [], []] as number[][];
    const casKey = "twz-bench.cas";
    link.put("meta", casKey, new TextEncoder().encode(sampleRecord(KIB4)));
    for (let r = -1; r < rounds; r++) {
      await scratch.checkpoint();
      const { ids } = await a.call({
        op: "publish",
        objects: [false, true].map((release) => ({ size: KIB4, seed: seed++, release })),
      });
      const [held, free] = [ids![0]!, ids![1]!];
      await interleave(
        [
          () => b.own(held, { timeoutMs: TIMEOUT_MS }),
          () => b.own(free, { timeoutMs: TIMEOUT_MS }),
          () => link.request(ECHO, new Uint8Array(0), TIMEOUT_MS),
          () => {
            const e = link.get("meta", casKey)!;
            link.update("meta", casKey, e.value, e.revision);
          },
        ],
        r < 0 ? [[], [], [], []] : own,
        r,
      );
      for (const id of [held, free]) {
        const info = b.info(id);
        if (!info.owned || info.owner !== "bench-b") {
          throw new Error(`bench global: node B does not own ${hex(id)} after own()`);
        }
      }
    }

    // ---- (c) transactions -------------------------------------------------
    const twz = Twz.attach(k.port());
    const gObj = twz.create({ size: KIB4 });
    const lObj = twz.create({ size: KIB4 });
    b.publish(gObj.id, {});
    const v0 = b.info(gObj.id).version;
    const bytes = k.read(gObj.id, 0, KIB4); // "the same bytes": the object, whole
    const record = new TextEncoder().encode(sampleRecord(KIB4));
    let pubRev = link.put("meta", "twz-bench.publish", record);
    const words = (KIB4 - gObj.baseOffset) >> 2;
    let n = 1; // every transaction changes the object (an unchanged one publishes nothing)
    let explicit = false;
    const write = (o: typeof gObj) =>
      transaction(twz, (tx) => {
        tx.setU32(o, o.baseOffset + 4 * (n % words), n);
        n++;
      });
    // Does libtwz publish after the local commit (H4's transaction hook)?
    write(gObj);
    if (b.info(gObj.id).version === v0) explicit = true;
    if (explicit) b.commit([gObj.id]);
    const txCases: (() => unknown)[] = [
      () => {
        for (let i = 0; i < ops; i++) {
          write(gObj);
          if (explicit) b.commit([gObj.id]);
        }
      },
      () => {
        for (let i = 0; i < ops; i++) write(lObj);
      },
      () => {
        for (let i = 0; i < ops; i++) link.put("meta", "twz-bench.put", bytes);
      },
      () => {
        for (let i = 0; i < ops; i++) {
          link.putBytes("twz-bench.publish", bytes);
          pubRev = link.update("meta", "twz-bench.publish", record, pubRev);
        }
      },
    ];
    for (const c of txCases) await c(); // one untimed repetition of each
    const tx = txCases.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      await scratch.checkpoint();
      const ms = txCases.map(() => [] as number[]);
      await interleave(txCases, ms, r);
      ms.forEach((m, i) => tx[i]!.push((m[0]! * 1e6) / ops));
    }
    const after = b.info(gObj.id);
    const published = after.version - v0;
    const expected = 1 + (1 + rounds) * ops;
    if (published !== expected) {
      throw new Error(
        `bench global: ${published} versions published for ${expected} global transactions`,
      );
    }

    // ---- (d) coherence -----------------------------------------------------
    // A transaction on node B, and the moment node A's copy (fetched before,
    // kept current by its watch) holds the new version; another object than
    // (c)'s, so node A fetched nothing during (c).
    const cObj = twz.create({ size: KIB4 });
    b.publish(cObj.id, {});
    const commitMs: number[] = [];
    const visibleMs: number[] = [];
    for (let r = -1; r < rounds; r++) {
      await scratch.checkpoint();
      const value = 0x1000 + r;
      const offset = cObj.baseOffset + 4 * (r + 1);
      const seen = a.seen();
      await a.call({ op: "arm", id: cObj.id, offset, value });
      const t0 = now();
      transaction(twz, (tx) => tx.setU32(cObj, offset, value));
      const t1 = now();
      const at = await seen;
      if (r < 0) continue;
      commitMs.push(t1 - t0);
      visibleMs.push(at - t0);
    }

    // ---- results ----------------------------------------------------------
    const results: BenchResult[] = [];
    sizes.forEach((size, s) => {
      const [remote, local, engine] = deref[s]!;
      const label = size === KIB4 ? "4KiB" : "1MiB";
      results.push(
        latencyRow(`first-deref-${label} remote (fetched from node A)`, remote!, {
          local_ns: Math.round(median(local!) * 1e6),
          engine_ns: Math.round(median(engine!) * 1e6),
          ratio_to_local: round3(median(remote!) / median(local!)),
          ratio_to_engine: round3(median(remote!) / median(engine!)),
        }),
        latencyRow(`first-deref-${label} local (created on node B)`, local!),
        latencyRow(`first-deref-${label} engine (KV get + object-store get)`, engine!),
      );
    });
    results.push(
      latencyRow("own handover (A owns, B asks)", own[0]!, {
        engine_ns: Math.round(median(own[2]!) * 1e6),
        ratio_to_engine: round3(median(own[0]!) / median(own[2]!)),
      }),
      latencyRow("own takeover (free object)", own[1]!, {
        engine_ns: Math.round(median(own[3]!) * 1e6),
        ratio_to_engine: round3(median(own[1]!) / median(own[3]!)),
      }),
      latencyRow("own engine request/reply to node A", own[2]!),
      latencyRow("own engine KV get + update (CAS)", own[3]!),
    );
    const [g, l, kv, pub] = tx as [number[], number[], number[], number[]];
    results.push(
      rateRow("tx-4KiB global (committed and published)", ops, g, {
        publish_via: explicit ? "explicit node.commit" : "libtwz transaction()",
        versions_published: published,
        local_ops_per_sec: Math.round(1e9 / median(l)),
        kv_put_ops_per_sec: Math.round(1e9 / median(kv)),
        ratio_to_local: round3(median(g) / median(l)),
        ratio_to_kv_put: round3(median(g) / median(kv)),
        ratio_to_engine_publish: round3(median(g) / median(pub)),
      }),
      rateRow("tx-4KiB local (same node, unpublished object)", ops, l),
      rateRow("tx-4KiB kv-put (bare KV put of the object's 4096 bytes)", ops, kv),
      rateRow(
        "tx-4KiB engine-publish (bare putBytes 4096 B + KV compare-and-set of a record)",
        ops,
        pub,
      ),
      latencyRow("coherence: tx on node B until node A's copy has it", visibleMs, {
        commit_ns: Math.round(median(commitMs) * 1e6),
        after_commit_ns: Math.round((median(visibleMs) - median(commitMs)) * 1e6),
      }),
    );
    return results;
  } finally {
    // Stop in reverse order, each step even when an earlier one failed.
    const steps: (() => unknown)[] = [
      () => nodeB?.leave(),
      () => closeB?.(),
      () => nodeA?.close(),
      async () => {
        await cluster.stop();
        globalThis.removeEventListener("unload", killServers);
      },
    ];
    let first: unknown;
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        first ??= error;
      }
    }
    if (first !== undefined) console.error(`twz: bench global: cleanup: ${String(first)}`);
  }
}

/** An object ID as 32 hex digits. */
function hex(id: ObjID): string {
  return id.toString(16).padStart(32, "0");
}

/** A JSON object record of the cluster's format, for the engine cases' KV values. */
function sampleRecord(size: number): string {
  return JSON.stringify({
    v: 1,
    size,
    version: 12345,
    key: "0",
    prot: Prot.ReadWrite,
    owner: "bench-b",
    tx: "0123456789abcdef0123456789abcdef",
  });
}

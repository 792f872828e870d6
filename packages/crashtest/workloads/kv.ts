/**
 * The `kv` crash-test workload: libtwz's persistent collections under power
 * failures. A `HashMap` (int keys, bytes values) and a `BTreeMap` (string
 * keys, bytes values) get inserts, overwrites (same and different value
 * lengths) and deletes, one transaction per operation; bulk transactions
 * that split hash buckets and B-tree nodes; multi-operation transactions
 * spanning both maps; and a few that abort halfway.
 *
 * After every crash it requires both maps to hold exactly the acknowledged
 * contents, or those plus the transaction in flight, wholly; sizes to match;
 * the B-tree's ordered iteration to be sorted and `BTreeMap.check()` clean;
 * and both objects' heaps to pass `Heap.check()`.
 *
 * @module
 */
import type { Kernel, ObjID } from "@twz/kernel";
import { formatId } from "@twz/kernel/abi";
import { Twz } from "@twz/libtwz";
import { BTreeMap } from "@twz/libtwz/btree";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";
import { Heap } from "@twz/libtwz/heap";
import { transaction } from "@twz/libtwz/tx";
import type { JournalSnapshot, Workload, WorkloadContext } from "../workload.ts";
import { openSession, sessionOf } from "./_session.ts";

/** Operations after the bulk loads. */
const OPS = 70;
/** A small transaction log (the default is 4 MiB): crash states stay cheap. */
const TXLOG_SIZE = 64 * 1024;
/** Where a collection's heap sits (after the root record at the base). */
const HEAP_AT = (256 + 64 + 63) & ~63;

/** One map operation: `h` the hash map, `b` the B-tree; `v` undefined deletes. */
type Op = { m: "h"; k: number; v?: number[] | undefined } | {
  m: "b";
  k: string;
  v?: number[] | undefined;
};

interface Maps {
  h: Map<number, number[]>;
  b: Map<string, number[]>;
}

function applyOps(s: Maps, ops: readonly Op[]): Maps {
  const out = { h: new Map(s.h), b: new Map(s.b) };
  for (const op of ops) {
    if (op.m === "h") {
      if (op.v === undefined) out.h.delete(op.k);
      else out.h.set(op.k, op.v);
    } else if (op.v === undefined) out.b.delete(op.k);
    else out.b.set(op.k, op.v);
  }
  return out;
}

interface Model {
  h?: ObjID;
  b?: ObjID;
  acked: Maps;
  inflight?: Maps;
}

function modelOf(journal: JournalSnapshot): Model {
  const m: Model = { acked: { h: new Map(), b: new Map() } };
  for (const e of journal) {
    if (e.state === "failed") continue;
    const ops = (e.args as { ops?: Op[] }).ops;
    if (e.state === "started") {
      if (ops) m.inflight = applyOps(m.acked, ops);
      break;
    }
    if (e.op === "setup") [m.h, m.b] = e.result as [ObjID, ObjID];
    if (ops) m.acked = applyOps(m.acked, ops);
  }
  return m;
}

const models = new WeakMap<JournalSnapshot, Model>();

function sameBytes(a: Uint8Array, b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const enc = new TextEncoder();

function byteOrder(x: string, y: string): number {
  const a = enc.encode(x), b = enc.encode(y);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The first difference between the recovered maps and `want`, or undefined. */
function compare(
  h: HashMap<number, Uint8Array>,
  b: BTreeMap<string, Uint8Array>,
  want: Maps,
): string | undefined {
  if (h.size !== want.h.size) return `hash map size ${h.size}, expected ${want.h.size}`;
  if (b.size !== want.b.size) return `B-tree size ${b.size}, expected ${want.b.size}`;
  let n = 0;
  for (const [k, v] of h.entries()) {
    n++;
    const w = want.h.get(k);
    if (w === undefined) return `hash map holds key ${k}, which is not acknowledged`;
    if (!sameBytes(v, w)) return `hash map key ${k}: value differs (${v.length} bytes)`;
  }
  if (n !== want.h.size) return `hash map iterates ${n} entries, expected ${want.h.size}`;
  for (const [k, w] of want.h) {
    const v = h.get(k);
    if (v === undefined || !sameBytes(v, w)) return `hash map get(${k}) is wrong`;
  }
  n = 0;
  let prev: string | undefined;
  for (const [k, v] of b.entries()) {
    n++;
    if (prev !== undefined && byteOrder(prev, k) >= 0) {
      return `B-tree iterates ${JSON.stringify(prev)} before ${JSON.stringify(k)}`;
    }
    prev = k;
    const w = want.b.get(k);
    if (w === undefined) return `B-tree holds key ${JSON.stringify(k)}, which is not acknowledged`;
    if (!sameBytes(v, w)) return `B-tree key ${JSON.stringify(k)}: value differs`;
  }
  if (n !== want.b.size) return `B-tree iterates ${n} entries, expected ${want.b.size}`;
  return undefined;
}

/** Options of {@linkcode makeKvWorkload}. */
export interface KvWorkloadOptions {
  /** Operations after the bulk loads. @default {OPS} */
  ops?: number;
  /**
   * Deliberately broken (tests that the check can fail): every few
   * operations, overwrite a hash-map value in place, outside any
   * transaction and without a flush, and call that acknowledged.
   * @default {false}
   */
  writeOutsideTx?: boolean;
}

/**
 * A kv workload with its own length, or a deliberately broken one.
 *
 * @param options Length, and whether to break it.
 * @returns The workload.
 */
export function makeKvWorkload(options: KvWorkloadOptions = {}): Workload {
  const total = options.ops ?? OPS;
  const broken = options.writeOutsideTx ?? false;
  return {
    name: broken ? "kv-broken" : "kv",
    summary:
      "hash map (int keys) and B-tree map (string keys): set, delete, multi-map transactions",
    imageSize: 512 * 1024,

    run({ kernel, journal, random }: WorkloadContext): void {
      const twz = journal.record("init", {}, () => Twz.attach(kernel.port()));
      journal.record("txlog", {}, () => twz.create({ size: TXLOG_SIZE, name: "/.txlog" }).id);
      const ho = twz.create({ size: 8192, fot: { entries: 0 } });
      const bo = twz.create({ size: 8192, fot: { entries: 0 } });
      let h!: HashMap<number, Uint8Array>;
      let b!: BTreeMap<string, Uint8Array>;
      journal.record("setup", {}, () => {
        transaction(twz, () => {
          h = HashMap.create(twz, ho, codec.int, codec.bytes);
          b = BTreeMap.create(twz, bo, codec.string, codec.bytes);
        });
        return [ho.id, bo.id];
      });
      const value = (): number[] => {
        const n = random() < 0.85 ? Math.floor(random() * 24) : 100 + Math.floor(random() * 300);
        return Array.from({ length: n }, () => Math.floor(random() * 256));
      };
      const strKey = (i: number) =>
        i % 7 === 0 ? `k${i}-ключ-${"z".repeat(i % 13)}` : i % 5 === 0 ? `${i}` : `k${i}`;
      const doOps = (ops: readonly Op[]) => {
        for (const op of ops) {
          if (op.m === "h") {
            if (op.v === undefined) h.delete(op.k);
            else h.set(op.k, new Uint8Array(op.v));
          } else if (op.v === undefined) b.delete(op.k);
          else b.set(op.k, new Uint8Array(op.v));
        }
      };
      let state: Maps = { h: new Map(), b: new Map() };
      const run = (ops: Op[], abort = false) => {
        if (abort) {
          try {
            journal.record("tx", { ops, abort }, () =>
              transaction(twz, () => {
                doOps(ops);
                throw new Error("abort");
              }));
          } catch (error) {
            if ((error as Error).message !== "abort") throw error;
          }
          return;
        }
        journal.record(
          ops.length === 1
            ? `${ops[0]!.m === "h" ? "hash" : "btree"}.${ops[0]!.v ? "set" : "delete"}`
            : "tx",
          { ops },
          () => ops.length === 1 ? doOps(ops) : transaction(twz, () => doOps(ops)),
        );
        state = applyOps(state, ops);
      };
      // Bulk loads: 260 int keys pass the hash map's 256 buckets (later inserts
      // split buckets); 80 string keys split B-tree leaves and make it 2 levels.
      run(Array.from({ length: 260 }, (_, i) => ({ m: "h", k: 1000 + i, v: [i & 0xff, 7] })));
      run(Array.from({ length: 80 }, (_, i) => ({ m: "b", k: strKey(1000 + i), v: [i] })));
      const one = (): Op => {
        const r = random();
        if (r < 0.5) {
          const k = random() < 0.3 ? 1000 + Math.floor(random() * 260) : Math.floor(random() * 60);
          return { m: "h", k, v: random() < 0.75 ? value() : undefined };
        }
        const i = random() < 0.3 ? 1000 + Math.floor(random() * 80) : Math.floor(random() * 60);
        return { m: "b", k: strKey(i), v: random() < 0.75 ? value() : undefined };
      };
      for (let i = 0; i < total; i++) {
        const r = random();
        if (r < 0.75) run([one()]);
        else run(Array.from({ length: 2 + Math.floor(random() * 4) }, one), r > 0.95);
        if (broken && i % 5 === 4) {
          // BUG on purpose: a store outside any transaction, never flushed.
          const keys = [...state.h.keys()].filter((k) => state.h.get(k)!.length > 0);
          const k = keys[Math.floor(random() * keys.length)]!;
          const v = state.h.get(k)!.map((x) => x ^ 0xff);
          journal.record("poke", { ops: [{ m: "h", k, v }] }, () => {
            ho.bytes.set(v, h.locate(k));
          });
          state = applyOps(state, [{ m: "h", k, v }]);
        }
      }
    },

    /** Opening a session replays a committed transaction (the checker crashes it too). */
    recover(kernel: Kernel): void {
      openSession(kernel);
    },

    check(kernel: Kernel, journal: JournalSnapshot): string[] {
      let m = models.get(journal);
      if (!m) {
        m = modelOf(journal);
        models.set(journal, m);
      }
      if (m.h === undefined || m.b === undefined) return [];
      const twz = sessionOf(kernel); // recover's, which replayed a committed transaction
      for (const id of [m.h, m.b]) {
        if (!kernel.exists(id)) return [`map object ${formatId(id)} is missing`];
      }
      const ho = twz.handle(m.h, false);
      const bo = twz.handle(m.b, false);
      const h = HashMap.open(twz, ho, codec.int, codec.bytes);
      const b = BTreeMap.open(twz, bo, codec.string, codec.bytes);
      const out: string[] = [];
      const problem = compare(h, b, m.acked);
      if (problem !== undefined && !(m.inflight && compare(h, b, m.inflight) === undefined)) {
        const inflight = journal.find((e) => e.state === "started");
        out.push(`${problem}${inflight ? ` (in flight: ${inflight.op})` : ""}`);
      }
      const tree = b.check();
      if (tree.problem) out.push(`BTreeMap.check(): ${tree.problem}`);
      for (
        const [name, heap] of [["hash map", Heap.open(ho, HEAP_AT)], ["B-tree", b.heap]] as const
      ) {
        const walk = heap.check();
        if (walk.problem) out.push(`${name} heap: ${walk.problem}`);
      }
      return out;
    },
  };
}

/** The kv workload. */
export const workload: Workload = makeKvWorkload();

/**
 * The `heap` crash-test workload: libtwz's in-object allocator (`Heap`)
 * inside redo-logged transactions. Each transaction allocates records of
 * varying sizes (small size classes, large blocks past 4 KiB, and enough to
 * grow the object several times), links each new record into an owner slot
 * at the object's base in the same transaction, frees some, reallocates
 * some (extending them), and a few transactions abort halfway. Half the new
 * records are written whole over unzeroed blocks (`Heap.alloc` with
 * `zero: false`, then `Tx.writeFresh`): those bumped past the heap's durable
 * top are fresh, written in place and unlogged, and must be durable before
 * the log that links them.
 *
 * After every crash it requires the owner slots to hold exactly the records
 * of the acknowledged transactions — or of those plus the one in flight,
 * wholly — each record intact (length, stamp and every byte of its pattern,
 * so a realloc that lost the copied prefix shows), `Heap.check()` and
 * `Heap.checkFreeLists()` clean (every free block on its list), and
 * the heap's live bytes equal to the blocks of the reachable records: nothing
 * leaked, nothing half-built published.
 *
 * @module
 */
import type { Kernel, ObjID } from "@twz/kernel";
import { BASE_OFFSET, formatId } from "@twz/kernel/abi";
import { Twz } from "@twz/libtwz";
import { BLOCK_HEADER, Heap } from "@twz/libtwz/heap";
import { transaction, type Tx } from "@twz/libtwz/tx";
import type { JournalSnapshot, Workload, WorkloadContext } from "../workload.ts";
import { openSession, sessionOf } from "./_session.ts";

/** Transactions per run. */
const TXS = 60;
/** Owner slots (u32 payload offsets) at the object's base. */
const SLOTS = 16;
/** The heap starts after the owner slots (64-byte aligned). */
const HEAP_AT = 64;
/** A small transaction log (the default is 4 MiB): crash states stay cheap. */
const TXLOG_SIZE = 48 * 1024;
const USED = 0xa110c8ed;

/** One step of a transaction; stamps identify record contents. */
type Step =
  | { do: "alloc"; slot: number; len: number; stamp: number }
  | { do: "free"; slot: number }
  | { do: "realloc"; slot: number; len: number };

interface Rec {
  len: number;
  stamp: number;
}
type Slots = Array<Rec | null>;

/** Byte `i` of a record's body (after its 8-byte length and stamp). */
function patternByte(stamp: number, i: number): number {
  return (stamp * 131 + i * 7 + (i >>> 8) + 1) & 0xff;
}

function body(stamp: number, from: number, to: number): Uint8Array {
  const out = new Uint8Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = patternByte(stamp, i);
  return out;
}

function applySteps(slots: Slots, steps: readonly Step[]): Slots {
  const s = slots.slice();
  for (const st of steps) {
    if (st.do === "alloc") s[st.slot] = { len: st.len, stamp: st.stamp };
    else if (st.do === "free") s[st.slot] = null;
    else s[st.slot] = { len: st.len, stamp: s[st.slot]!.stamp };
  }
  return s;
}

/** Perform `steps` in the running transaction. */
function perform(tx: Tx, heap: Heap, steps: readonly Step[]): void {
  const o = heap.obj;
  const base = BASE_OFFSET;
  for (const st of steps) {
    const owner = base + st.slot * 4;
    const old = tx.getU32(o, owner);
    if (st.do === "alloc") {
      if (old !== 0) heap.free(tx, old);
      if (st.stamp % 2 === 0) {
        // Even stamps: the whole record built first and written over an
        // unzeroed block, as the hash map writes its entries: a block of
        // FRESH_MIN bytes or more bumped past the heap's durable top is
        // fresh, written in place and unlogged (Tx.writeFresh), and must be
        // durable before the log that links it.
        const at = heap.alloc(tx, 8 + st.len, { zero: false });
        const rec = new Uint8Array(8 + st.len);
        const rv = new DataView(rec.buffer);
        rv.setUint32(0, st.len, true);
        rv.setUint32(4, st.stamp, true);
        rec.set(body(st.stamp, 0, st.len), 8);
        tx.writeFresh(o, at, rec);
        tx.setU32(o, owner, at);
        continue;
      }
      const at = heap.alloc(tx, 8 + st.len);
      tx.setU32(o, at, st.len);
      tx.setU32(o, at + 4, st.stamp);
      tx.write(o, at + 8, body(st.stamp, 0, st.len));
      tx.setU32(o, owner, at);
    } else if (st.do === "free") {
      heap.free(tx, old);
      tx.setU32(o, owner, 0);
    } else {
      const have = tx.getU32(o, old);
      const stamp = tx.getU32(o, old + 4);
      const at = heap.realloc(tx, old, 8 + st.len);
      tx.setU32(o, at, st.len);
      // Only the new tail is written: the prefix is realloc's copy.
      if (st.len > have) tx.write(o, at + 8 + have, body(stamp, have, st.len));
      tx.setU32(o, owner, at);
    }
  }
}

interface Model {
  obj?: ObjID;
  /** The acknowledged slots, and the ones after the transaction in flight. */
  acked: Slots;
  inflight?: Slots;
  setupInFlight: boolean;
}

function modelOf(journal: JournalSnapshot): Model {
  const m: Model = { acked: new Array(SLOTS).fill(null), setupInFlight: false };
  for (const e of journal) {
    if (e.state === "failed") continue;
    if (e.state === "started") {
      if (e.op === "tx") m.inflight = applySteps(m.acked, (e.args as { steps: Step[] }).steps);
      else m.setupInFlight = true;
      break;
    }
    if (e.op === "setup") m.obj = e.result as ObjID;
    if (e.op === "tx") m.acked = applySteps(m.acked, (e.args as { steps: Step[] }).steps);
  }
  return m;
}

const models = new WeakMap<JournalSnapshot, Model>();

/** Compare the recovered slots with `want`; the first problem, or undefined. */
function compare(view: DataView, base: number, want: Slots): string | undefined {
  for (let s = 0; s < SLOTS; s++) {
    const at = view.getUint32(base + s * 4, true);
    const w = want[s]!;
    if (w === null) {
      if (at !== 0) return `slot ${s} holds a record at ${at}, expected none`;
      continue;
    }
    if (at === 0) return `slot ${s} is empty, expected record ${w.stamp} of ${w.len} bytes`;
    if (at < base || at + 8 + w.len > view.byteLength) return `slot ${s} points outside: ${at}`;
    const len = view.getUint32(at, true);
    const stamp = view.getUint32(at + 4, true);
    if (len !== w.len || stamp !== w.stamp) {
      return `slot ${s}: record ${stamp} of ${len} bytes, expected ${w.stamp} of ${w.len}`;
    }
    for (let i = 0; i < len; i++) {
      if (view.getUint8(at + 8 + i) !== patternByte(stamp, i)) {
        return `slot ${s}: record ${stamp} is corrupt at byte ${i}`;
      }
    }
  }
  return undefined;
}

/** Options of {@linkcode makeHeapWorkload}. */
export interface HeapWorkloadOptions {
  /** Transactions per run. @default {TXS} */
  txs?: number;
}

/**
 * A heap workload with its own length (the built-in one uses the defaults).
 *
 * @param options Length of the run.
 * @returns The workload.
 */
export function makeHeapWorkload(options: HeapWorkloadOptions = {}): Workload {
  const txs = options.txs ?? TXS;
  return {
    name: "heap",
    summary: "in-object allocator: alloc (large, growing), link, free, realloc in transactions",
    imageSize: 640 * 1024,

    run({ kernel, journal, random }: WorkloadContext): void {
      const twz = journal.record("init", {}, () => Twz.attach(kernel.port()));
      journal.record("txlog", {}, () => twz.create({ size: TXLOG_SIZE, name: "/.txlog" }).id);
      const obj = twz.create({ size: 4096, fot: { entries: 0 } });
      journal.record("setup", {}, () => {
        transaction(twz, (tx) => Heap.create(tx, obj, obj.baseOffset + HEAP_AT, obj.dataEnd));
        return obj.id;
      });
      const heap = Heap.open(obj, obj.baseOffset + HEAP_AT);
      let slots: Slots = new Array(SLOTS).fill(null);
      let stamp = 1;
      const len = () => {
        const r = random();
        return r < 0.6
          ? Math.floor(random() * 200)
          : r < 0.85
          ? 200 + Math.floor(random() * 2000)
          : 4100 + Math.floor(random() * 4000); // large blocks
      };
      for (let t = 0; t < txs; t++) {
        const steps: Step[] = [];
        const n = 1 + Math.floor(random() * 3);
        let s = slots;
        for (let k = 0; k < n; k++) {
          const slot = Math.floor(random() * SLOTS);
          const r = random();
          let st: Step;
          if (s[slot] === null || r < 0.5) st = { do: "alloc", slot, len: len(), stamp: stamp++ };
          else if (r < 0.75) st = { do: "free", slot };
          else {
            const cur = s[slot]!.len;
            st = { do: "realloc", slot, len: random() < 0.7 ? cur + 1 + len() : cur >>> 1 };
          }
          steps.push(st);
          s = applySteps(s, [st]);
        }
        if (random() < 0.08) {
          // An aborted transaction: allocates (maybe growing the object), then throws.
          try {
            journal.record("tx", { steps, abort: true }, () =>
              transaction(twz, (tx) => {
                perform(tx, heap, steps);
                throw new Error("abort");
              }));
          } catch (error) {
            if ((error as Error).message !== "abort") throw error;
          }
          continue;
        }
        journal.record("tx", { steps }, () => transaction(twz, (tx) => perform(tx, heap, steps)));
        slots = s;
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
      if (m.obj === undefined) return [];
      const twz = sessionOf(kernel); // recover's, which replayed a committed transaction
      if (!kernel.exists(m.obj)) return [`the heap object ${formatId(m.obj)} is missing`];
      const obj = twz.handle(m.obj, false);
      const view = obj.view;
      const base = obj.baseOffset;
      const heap = Heap.open(obj, base + HEAP_AT);
      const out: string[] = [];
      const problem = compare(view, base, m.acked);
      let want = m.acked;
      if (problem !== undefined) {
        if (m.inflight && compare(view, base, m.inflight) === undefined) want = m.inflight;
        else {
          const inflight = journal.find((e) => e.state === "started");
          out.push(
            `${problem}${
              inflight ? ` (in flight: ${inflight.op} ${JSON.stringify(inflight.args)})` : ""
            }`,
          );
          return out;
        }
      }
      const walk = heap.check();
      if (walk.problem) out.push(`Heap.check(): ${walk.problem}`);
      const lists = heap.checkFreeLists();
      if (lists.problem) out.push(`Heap.checkFreeLists(): ${lists.problem}`);
      else if (!walk.problem && lists.free !== walk.free) {
        out.push(`the free lists hold ${lists.free} bytes, the free blocks ${walk.free}`);
      }
      let reachable = 0;
      for (let s = 0; s < SLOTS; s++) {
        if (want[s] === null) continue;
        const at = view.getUint32(base + s * 4, true);
        if (view.getUint32(at - 4, true) !== USED) out.push(`slot ${s}: block is not in use`);
        const size = view.getUint32(at - BLOCK_HEADER, true);
        if (size < BLOCK_HEADER + 8 + want[s]!.len) out.push(`slot ${s}: block too small`);
        reachable += size;
      }
      if (heap.live !== reachable) {
        out.push(`heap holds ${heap.live} live bytes, reachable records ${reachable} (a leak)`);
      }
      return out;
    },
  };
}

/** The heap workload. */
export const workload: Workload = makeHeapWorkload();

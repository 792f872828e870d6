/**
 * The implementation of `@twz/libtwz/tx` (failure-atomic transactions, the
 * log and lane formats, recovery): `tx.ts` is its public entry and re-exports
 * what users call; the rest (the running transaction `TX`, `activeTx`,
 * recovery and the lane writer) is for libtwz's own modules, which import
 * this file.
 *
 * @module
 */
import {
  ErrorCode,
  formatId,
  type KernelPort,
  type Mapping,
  type ObjID,
  readId,
  ThreadState,
  TwzError,
} from "@twz/kernel/abi";
import { nodeOf, type PortFacts, portFacts } from "./_port_facts.ts";

/** What a transaction writes to: an object handle (`TwzObject` is one). */
export interface TxTarget {
  /** The object's ID (logged with each record). */
  readonly id: ObjID;
  /** The object's mapping: the transaction reads, shadows and applies through it. */
  readonly mapping: Mapping;
  /**
   * The port the mapping came from: commit makes the written lines durable
   * with one `persist` call on it (ranges name the mapping's handle).
   */
  readonly port: KernelPort;
  /** Whether the object may be written (a transaction refuses writes otherwise). */
  readonly writable: boolean;
  /** Grow the object (outside the transaction: growing is atomic by itself). */
  grow?(size: number): void;
}

/** Where a transaction's logs live and how objects are found at recovery. */
export interface TxLogHost {
  /**
   * The primary log object (created on first use): the log of the kernel's
   * own sessions, whose header also holds the sequence clock of every log.
   */
  logObject(): TxTarget;
  /** Map an object by ID for replay; `null` when it no longer exists. */
  mapForReplay(id: ObjID): Mapping | null;
  /**
   * The lanes object: the logs threads commit into. Without `create`, `null`
   * when there is none; with it, made (with that geometry) when missing. A
   * host without this method has the primary log only (every session then
   * commits there: fine for one thread).
   */
  lanesObject?(create?: TxLanesOptions): TxTarget | null;
}

const LINE = 64;
const LOG_MAGIC = 0x474c5854; // "TXLG"
/** Offsets inside the log object (relative to its base). */
const H = { magic: 0, seq: 8, bodyBytes: 12, nObjects: 16, nRecords: 20, sum: 24, applied: 32 };
const HEADER = 64;
/**
 * A log record: u32 object offset, u16 length (a run never exceeds a 64-byte
 * line), u16 index into the body's table of object IDs; then the bytes,
 * padded to 4.
 */
const RECORD = 8;

/** A 32-bit checksum over 4-byte words (the body is padded to 8 bytes). */
function checksum(view: DataView, from: number, to: number, seed: number): number {
  let h = seed ^ 0x811c9dc5;
  for (let i = from; i < to; i += 4) {
    h = Math.imul(h ^ view.getUint32(i, true), 0x01000193);
    h ^= h >>> 15;
  }
  return (h ^ ((to - from) * 0x9e3779b1)) >>> 0;
}

/**
 * The log's checksum: the header fields before the sum, then the body
 * `[body, end)` (written by commit, checked by recovery and inspection).
 */
function logSum(v: DataView, base: number, body: number, end: number): number {
  return checksum(v, body, end, checksum(v, base + H.seq, base + H.sum, 0));
}

/** {@linkcode checksum} over the 32-bit word view of little-endian memory (the same result). */
function checksumWords(w: Uint32Array, from: number, to: number, seed: number): number {
  // The loop is a function of its own and nothing follows it there: V8
  // optimizes a loop in the middle of a call (on-stack replacement), before
  // anything after the loop has type feedback, and that code, entered again
  // by each later call's loop, then deoptimized after it ~100 times in a
  // row in a fresh process's first inserts. The length term is the 32 bits
  // the final xor takes of it (the same result).
  const tail = ((to - from) * 0x9e3779b1) | 0;
  return (mixWords(w, from >>> 2, to >>> 2, seed ^ 0x811c9dc5) ^ tail) >>> 0;
}

/** The loop of {@linkcode checksumWords} over words `[i, end)`. */
function mixWords(w: Uint32Array, i: number, end: number, h: number): number {
  for (; i < end; i++) {
    h = Math.imul(h ^ w[i]!, 0x01000193);
    h ^= h >>> 15;
  }
  return h;
}

/**
 * A copy of `a` twice as long (the rest zero): how every reused buffer of a
 * transaction and its commit grows when it is full. Called only then, off
 * the paths that write into the buffers.
 */
function doubled<A extends Uint8Array | Uint32Array | Int32Array | Float64Array>(a: A): A {
  const b = new (a.constructor as new (length: number) => A)(a.length * 2);
  b.set(a);
  return b;
}

/**
 * The transaction running on this thread, if any. Typed accessors read
 * `TX.current` on every load and store; outside a transaction that is one
 * comparison with `null`.
 *
 * `miss` is 0 outside a transaction and `TX_MISS` inside one (set with
 * `current`): record columns OR it into the index of a 32- or 64-bit word
 * load or store, which then misses the word view (no object has 2^30 such
 * words) and goes to the column's slow path, the transaction's. One load
 * and an OR, no compare: once a process has run a transaction (and
 * `TX.current` is no longer a constant to the JIT), the compare-and-select
 * on `TX.current` cost 0.2–0.5 ns more per access in `twz bench
 * record-sweep`.
 * @internal
 */
export const TX: { current: Tx | null; miss: number } = { current: null, miss: 0 };

/**
 * @internal `TX.miss` inside a transaction: a word index OR-ed with it is
 * past the end of any view of 4- or 8-byte words, and still a small integer
 * to V8 (which keeps the access on its fast path).
 */
export const TX_MISS = 0x40000000;

/** The running transaction, or `null`. */
export function activeTx(): Tx | null {
  return TX.current;
}

/**
 * A transaction: redo-logged writes over shadowed lines. Obtain one with
 * {@linkcode transaction}; its methods take the object and an object-relative
 * offset.
 */
export class Tx {
  #pool = new Uint8Array(16 * LINE);
  #pv = new DataView(this.#pool.buffer);
  /** The pool as 32-bit words (host order: used only with word views of little-endian objects). */
  #p32 = new Uint32Array(this.#pool.buffer);
  /**
   * The slot of the last store or shadowed load: its target, line and slot
   * (consecutive stores mostly hit one line: no table lookup for them).
   */
  #cT: TxTarget | null = null;
  #cLine = -1;
  #cSlot = -1;
  /** Two 32-bit dirty masks per shadow slot (bit i = byte i of the line). */
  #dirty = new Uint32Array(32);
  #slots = 0;
  /** Per slot: its line number, and the index of its target in the target list. */
  #slotLine = new Int32Array(16);
  #slotTi = new Int32Array(16);
  /**
   * Objects written, in first-write order; a slot's target is an index here.
   * Found by object ID, so every handle of an object (read-only ones, other
   * sessions' ones) shares its shadow and reads the transaction's writes.
   */
  #tlist: TxTarget[] = [];
  #tcount = 0;
  #lastT: TxTarget | null = null;
  #lastTi = -1;
  /**
   * (target, line) -> shadow slot: open addressing over typed arrays, emptied
   * in O(1) between transactions by bumping the generation stamp.
   */
  #hLine = new Int32Array(128);
  #hTarget = new Int32Array(128);
  #hSlot = new Int32Array(128);
  #hStamp = new Uint32Array(128);
  #gen = 1;
  /** The last small `data` given to {@linkcode Tx.write} with whole words, and its word view. */
  #data: Uint8Array | null = null;
  #data32: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  /** A 64-bit filter over (target, line): most loads hit no shadow and skip the table. */
  #bloomLo = 0;
  #bloomHi = 0;
  /** Valid bytes in each slot's line (64, or less for an object's last partial line). */
  #limit = new Uint8Array(16);
  /** @internal */
  depth = 0;
  /** @internal Set when a nested transaction threw: the whole transaction aborts. */
  aborted: unknown = undefined;
  /** @internal Ranges freed/allocated etc. can hook commit. */
  readonly onCommit: Array<() => void> = [];
  /**
   * @internal Run once the outermost transaction has ended, committed
   * (`true`, after the `onCommit` hooks) or aborted (`false`): locks a
   * transaction took for its writes are released here.
   */
  readonly onEnd: Array<(committed: boolean) => void> = [];

  /**
   * The index of `t`'s object among the written objects, or -1. Handles of
   * one object in one kernel share its extent: matching on it (not on the ID,
   * which a copied image repeats) gives all of them one shadow.
   */
  #indexOf(t: TxTarget): number {
    if (t === this.#lastT) return this.#lastTi;
    const list = this.#tlist;
    const extent = t.mapping.extent;
    for (let i = 0; i < this.#tcount; i++) {
      if (list[i] === t || list[i]!.mapping.extent === extent) {
        this.#lastT = t;
        this.#lastTi = i;
        return i;
      }
    }
    return -1;
  }

  /** @internal Forget everything (the object is reused for the next transaction). */
  reset(): void {
    this.#slots = 0;
    for (let i = 0; i < this.#tcount; i++) this.#tlist[i] = null as unknown as TxTarget;
    this.#tcount = 0;
    this.#lastT = null;
    this.#lastTi = -1;
    this.#cT = null;
    this.#cLine = this.#cSlot = -1;
    this.#bloomLo = this.#bloomHi = 0;
    if (++this.#gen === 0xffffffff) {
      this.#hStamp.fill(0);
      this.#gen = 1;
    }
    this.depth = 0;
    this.aborted = undefined;
    if (this.onCommit.length > 0) this.onCommit.length = 0;
    if (this.onEnd.length > 0) this.onEnd.length = 0;
    this.runCount = 0;
    for (let i = 0; i < this.#freshN; i++) this.#freshT[i] = null;
    this.#freshN = 0;
  }

  /** The shadow slot of `line` of target `ti`, or -1. */
  #lookup(ti: number, line: number): number {
    const mask = this.#hLine.length - 1;
    const stamp = this.#hStamp, gen = this.#gen;
    let i = (Math.imul(line * 31 + ti, 0x9e3779b1) >>> 12) & mask;
    while (stamp[i] === gen) {
      if (this.#hLine[i] === line && this.#hTarget[i] === ti) return this.#hSlot[i]!;
      i = (i + 1) & mask;
    }
    return -1;
  }

  #remember(ti: number, line: number, slot: number): void {
    const bit = (line * 31 + ti) & 63;
    if (bit < 32) this.#bloomLo |= 1 << bit;
    else this.#bloomHi |= 1 << (bit - 32);
    if ((this.#slots + 1) * 2 > this.#hLine.length) this.#growTable();
    const mask = this.#hLine.length - 1;
    let i = (Math.imul(line * 31 + ti, 0x9e3779b1) >>> 12) & mask;
    while (this.#hStamp[i] === this.#gen) i = (i + 1) & mask;
    this.#hStamp[i] = this.#gen;
    this.#hLine[i] = line;
    this.#hTarget[i] = ti;
    this.#hSlot[i] = slot;
  }

  #growTable(): void {
    const size = this.#hLine.length * 2;
    this.#hLine = new Int32Array(size);
    this.#hTarget = new Int32Array(size);
    this.#hSlot = new Int32Array(size);
    this.#hStamp = new Uint32Array(size);
    this.#gen = 1;
    for (let slot = 0; slot < this.#slots; slot++) {
      this.#remember(this.#slotTi[slot]!, this.#slotLine[slot]!, slot);
    }
  }

  #slotFor(t: TxTarget, line: number, create: boolean): number {
    let ti = this.#indexOf(t);
    if (create && !t.writable) {
      if ((t as { readonly imageReadOnly?: boolean }).imageReadOnly === true) {
        throw new TwzError(
          ErrorCode.ReadOnly,
          `the image is open read-only: cannot write ${formatId(t.id)}`,
        );
      }
      // Another handle of the object may have written it: this one still may not.
      throw new TwzError(
        ErrorCode.AccessDenied,
        `Cannot write ${formatId(t.id)}: the handle is read-only`,
      );
    }
    if (ti < 0) {
      if (!create) return -1;
      ti = this.#tcount++;
      this.#tlist[ti] = t;
      this.#lastT = t;
      this.#lastTi = ti;
    }
    const found = this.#lookup(ti, line);
    if (found >= 0 || !create) return found;
    const slot = this.#slots;
    if ((slot + 1) * LINE > this.#pool.length) {
      const pool = this.#pool = doubled(this.#pool);
      this.#pv = new DataView(pool.buffer);
      this.#p32 = new Uint32Array(pool.buffer);
      this.#dirty = doubled(this.#dirty);
    }
    const bytes = t.mapping.bytes;
    const start = line * LINE;
    const end = Math.min(start + LINE, bytes.length);
    const at = slot * LINE;
    const x = t.mapping.extent;
    if (end - start === LINE && x.words) {
      // Word copies (the object's word view is little-endian, as the pool's words are here).
      const from = x.u32, to = this.#p32;
      const f = start >>> 2, d = at >>> 2;
      for (let k = 0; k < 16; k++) to[d + k] = from[f + k]!;
    } else if (end - start === LINE) {
      const from = t.mapping.view, to = this.#pv;
      for (let k = 0; k < LINE; k += 4) to.setInt32(at + k, from.getInt32(start + k, true), true);
    } else {
      // The object's last, partial line: the rest of the slot reads as the
      // zeros the object has there if it grows during the transaction (the
      // slot's limit stays the old length, so such loads take the general
      // path through `read`, which serves the slot).
      const pool = this.#pool;
      for (let k = start; k < end; k++) pool[at + k - start] = bytes[k]!;
      pool.fill(0, at + (end - start), at + LINE);
    }
    if (slot >= this.#limit.length) this.#limit = doubled(this.#limit);
    this.#limit[slot] = end - start;
    this.#dirty[slot * 2] = 0;
    this.#dirty[slot * 2 + 1] = 0;
    if (slot >= this.#slotLine.length) {
      this.#slotLine = doubled(this.#slotLine);
      this.#slotTi = doubled(this.#slotTi);
    }
    this.#slotLine[slot] = line;
    this.#slotTi[slot] = ti;
    this.#remember(ti, line, slot);
    this.#slots = slot + 1;
    return slot;
  }

  #check(t: TxTarget, offset: number, length: number): void {
    if (!(offset >= 0 && offset + length <= t.mapping.bytes.length)) {
      throw new RangeError(
        `Range [${offset}, ${offset + length}) is outside ${
          formatId(t.id)
        } (${t.mapping.bytes.length} bytes)`,
      );
    }
  }

  #mark(slot: number, from: number, to: number): void {
    // bytes [from, to) of the slot's line (to <= 64)
    const n = to - from;
    if (n > 0 && n < 32 && (from & 31) + n <= 32) {
      // Inside one 32-byte half (every aligned scalar store): one mask.
      this.#dirty[slot * 2 + (from >>> 5)]! |= ((1 << n) - 1) << (from & 31);
      return;
    }
    for (let i = from; i < to;) {
      const word = i >>> 5;
      const last = Math.min(to, (word + 1) * 32);
      const bits = last - i === 32 ? 0xffffffff : ((1 << (last - i)) - 1) << (i & 31);
      this.#dirty[slot * 2 + word]! |= bits;
      i = last;
    }
  }

  /** Where a load of `size` bytes (not crossing a line) at `offset` reads: view + position. */
  #loadAt(t: TxTarget, offset: number, size: number): number {
    // Not shadowed: -1, and the caller's DataView load checks the bounds.
    const ti = t === this.#lastT ? this.#lastTi : this.#indexOf(t);
    if (ti < 0 || !(offset >= 0)) return -1;
    const line = offset >>> 6;
    let slot: number;
    if (t === this.#cT && line === this.#cLine) slot = this.#cSlot;
    else {
      slot = this.#shadowSlot(ti, line);
      if (slot < 0) return -1;
    }
    const within = offset & 63;
    if (within + size > this.#limit[slot]!) {
      // Past the object's end, or across two lines: the slow, general path.
      this.#check(t, offset, size);
      return -2;
    }
    return slot * LINE + within;
  }

  /** A load that crosses a line boundary: through {@linkcode Tx.read}. */
  #crossing(t: TxTarget, offset: number, size: number): DataView {
    return new DataView(this.read(t, offset, size).buffer);
  }

  /** The shadow position for a store of `size` bytes (within one line) at `offset`. */
  #storeAt(t: TxTarget, offset: number, size: number): number {
    this.#check(t, offset, size);
    const at = offset & 63;
    if (at + size > LINE) {
      throw new RangeError(
        `A ${size}-byte store at offset ${offset} crosses a cache line: align it, or use Tx.write`,
      );
    }
    const line = offset >>> 6;
    let slot: number;
    if (t === this.#cT && line === this.#cLine) slot = this.#cSlot; // checked when it was made
    else {
      slot = this.#slotFor(t, line, true);
      this.#cT = t;
      this.#cLine = line;
      this.#cSlot = slot;
    }
    // One 32-byte half (what an aligned store of 1 to 8 bytes touches): one mask.
    if ((at & 31) + size <= 32) {
      this.#dirty[slot * 2 + (at >>> 5)]! |= ((2 << (size - 1)) - 1) << (at & 31);
    } else this.#mark(slot, at, at + size);
    return slot * LINE + at;
  }

  /** Read a u8. */
  getU8(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 1);
    if (p >= 0) return this.#pool[p]!;
    this.#check(t, offset, 1);
    return t.mapping.bytes[offset]!;
  }
  /** Read a little-endian u16 (2-byte aligned). */
  getU16(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 2);
    if (p >= 0) return this.#pv.getUint16(p, true);
    return p === -1
      ? t.mapping.view.getUint16(offset, true)
      : this.#crossing(t, offset, 2).getUint16(0, true);
  }
  /** Read a little-endian u32 (4-byte aligned). */
  getU32(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 4);
    if (p >= 0) return this.#pv.getUint32(p, true);
    return p === -1
      ? t.mapping.view.getUint32(offset, true)
      : this.#crossing(t, offset, 4).getUint32(0, true);
  }
  /** Read a little-endian i32 (4-byte aligned). */
  getI32(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 4);
    if (p >= 0) return this.#pv.getInt32(p, true);
    return p === -1
      ? t.mapping.view.getInt32(offset, true)
      : this.#crossing(t, offset, 4).getInt32(0, true);
  }
  /** Read a little-endian f64 (8-byte aligned). */
  getF64(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 8);
    if (p >= 0) return this.#pv.getFloat64(p, true);
    return p === -1
      ? t.mapping.view.getFloat64(offset, true)
      : this.#crossing(t, offset, 8).getFloat64(0, true);
  }
  /** Read a little-endian u64 as a bigint (8-byte aligned). */
  getU64(t: TxTarget, offset: number): bigint {
    const p = this.#loadAt(t, offset, 8);
    if (p >= 0) return this.#pv.getBigUint64(p, true);
    return p === -1
      ? t.mapping.view.getBigUint64(offset, true)
      : this.#crossing(t, offset, 8).getBigUint64(0, true);
  }

  /** Set a u8. */
  setU8(t: TxTarget, offset: number, value: number): void {
    const p = this.#storeAt(t, offset, 1); // may grow the pool: index it after
    this.#pool[p] = value;
  }
  /** Set a little-endian u16 (2-byte aligned). */
  setU16(t: TxTarget, offset: number, value: number): void {
    const p = this.#storeAt(t, offset, 2);
    this.#pv.setUint16(p, value, true);
  }
  /** Set a little-endian u32 (4-byte aligned). */
  setU32(t: TxTarget, offset: number, value: number): void {
    const p = this.#storeAt(t, offset, 4);
    this.#pv.setUint32(p, value, true);
  }
  /** Set a little-endian i32 (4-byte aligned). */
  setI32(t: TxTarget, offset: number, value: number): void {
    const p = this.#storeAt(t, offset, 4);
    this.#pv.setInt32(p, value, true);
  }
  /** Set a little-endian f64 (8-byte aligned). */
  setF64(t: TxTarget, offset: number, value: number): void {
    const p = this.#storeAt(t, offset, 8);
    this.#pv.setFloat64(p, value, true);
  }
  /** Set a little-endian u64 from a bigint (8-byte aligned). */
  setU64(t: TxTarget, offset: number, value: bigint): void {
    const p = this.#storeAt(t, offset, 8);
    this.#pv.setBigUint64(p, value, true);
  }

  /** Copy `length` bytes at `offset` into `into` (at `at`), seeing this transaction's writes. */
  read(
    t: TxTarget,
    offset: number,
    length: number,
    into: Uint8Array = new Uint8Array(length),
    at = 0,
  ): Uint8Array {
    this.#check(t, offset, length);
    const bytes = t.mapping.bytes;
    const ti = this.#indexOf(t);
    let o = offset;
    const end = offset + length;
    while (o < end) {
      const lineEnd = Math.min(end, ((o >>> 6) + 1) * LINE);
      const slot = ti < 0 ? -1 : this.#lookup(ti, o >>> 6);
      if (slot < 0) into.set(bytes.subarray(o, lineEnd), at + o - offset);
      else {
        const p = slot * LINE + (o & 63);
        into.set(this.#pool.subarray(p, p + lineEnd - o), at + o - offset);
      }
      o = lineEnd;
    }
    return into;
  }

  /**
   * `data`'s 32-bit word view (`data` starts 4-aligned). The view of a small
   * buffer is kept for its next write: a structure's entry buffer, written
   * once per transaction.
   */
  #wordsOf(data: Uint8Array): Uint32Array {
    let d32 = this.#data32;
    if (this.#data !== data || d32.length !== data.length >>> 2) {
      d32 = new Uint32Array(data.buffer, data.byteOffset, data.length >>> 2);
      if (data.length <= 256) {
        this.#data32 = d32;
        this.#data = data;
      }
    }
    return d32;
  }

  /** Write `data` at `offset` (any length, any alignment). */
  write(t: TxTarget, offset: number, data: Uint8Array, length: number = data.length): void {
    this.#check(t, offset, length);
    let o = offset;
    const end = offset + length;
    if (((offset | length | data.byteOffset) & 3) === 0 && length <= data.length) {
      // Whole words (every line's part starts and ends 4-aligned): word copies.
      const d32 = this.#wordsOf(data);
      while (o < end) {
        const lineEnd = Math.min(end, ((o >>> 6) + 1) * LINE);
        const slot = this.#slotFor(t, o >>> 6, true);
        const at = o & 63;
        const p32 = this.#p32; // after #slotFor: the pool may have grown
        const to = (slot * LINE + at) >>> 2, from = (o - offset) >>> 2;
        for (let k = 0, n = (lineEnd - o) >>> 2; k < n; k++) p32[to + k] = d32[from + k]!;
        this.#mark(slot, at, at + lineEnd - o);
        o = lineEnd;
      }
      return;
    }
    while (o < end) {
      const lineEnd = Math.min(end, ((o >>> 6) + 1) * LINE);
      const slot = this.#slotFor(t, o >>> 6, true);
      const at = o & 63;
      const pool = this.#pool;
      const to = slot * LINE + at - o;
      const from = offset;
      for (let k = o; k < lineEnd; k++) pool[to + k] = data[k - from]!;
      this.#mark(slot, at, at + lineEnd - o);
      o = lineEnd;
    }
  }

  /** Fill `[offset, offset + length)` with `value`. */
  fill(t: TxTarget, offset: number, length: number, value = 0): void {
    this.#check(t, offset, length);
    let o = offset;
    const end = offset + length;
    while (o < end) {
      const lineEnd = Math.min(end, ((o >>> 6) + 1) * LINE);
      const slot = this.#slotFor(t, o >>> 6, true);
      const at = o & 63;
      this.#pool.fill(value, slot * LINE + at, slot * LINE + at + lineEnd - o);
      this.#mark(slot, at, at + lineEnd - o);
      o = lineEnd;
    }
  }

  /**
   * Fresh ranges: space this transaction took that nothing durable refers to
   * (blocks a heap bumped past its durable top), as `t`, offset, length. The
   * `*Fresh` writes store into them in place, unlogged; commit makes them
   * durable (flush, drain) before it writes the log.
   */
  #freshT: (TxTarget | null)[] = [];
  #freshAt = new Float64Array(16);
  #freshN = 0;

  /**
   * @internal Declare `[offset, offset + length)` of `t` fresh in this
   * transaction: bytes no durable state depends on (never allocated, past
   * the allocator's durable end), which an abort or a crash before the
   * commit may leave holding anything. Only an allocator calls this (the
   * heap, for the blocks it bumps).
   */
  markFresh(t: TxTarget, offset: number, length: number): void {
    this.#check(t, offset, length);
    // A read-only handle's writes throw in Tx.write, as any other. On
    // page-granular media (msync) the extra ordering point the commit needs
    // for fresh space costs a system call, more than logging the bytes.
    if (!t.writable || this.#pages(t.port)) return;
    const n = this.#freshN, at = this.#freshAt;
    // A bump right after the last one (the usual case): one range.
    if (n > 0 && this.#freshT[n - 1] === t && at[2 * n - 2]! + at[2 * n - 1]! === offset) {
      at[2 * n - 1]! += length;
      return;
    }
    if (2 * n + 2 > at.length) this.#freshAt = doubled(at);
    this.#freshT[n] = t;
    this.#freshAt[2 * n] = offset;
    this.#freshAt[2 * n + 1] = length;
    this.#freshN = n + 1;
  }

  #pagesPort: KernelPort | null = null;
  #pagesAnswer = false;
  /** Whether `port`'s media persists by the page (asked once per port, the last one kept). */
  #pages(port: KernelPort): boolean {
    if (port !== this.#pagesPort) {
      this.#pagesAnswer = portFacts(port).pages;
      this.#pagesPort = port;
    }
    return this.#pagesAnswer;
  }

  /**
   * Whether `[offset, offset + length)` of `t` lies in space this
   * transaction allocated fresh (see {@linkcode Tx.writeFresh}).
   */
  isFresh(t: TxTarget, offset: number, length: number): boolean {
    const at = this.#freshAt;
    for (let i = 0; i < this.#freshN; i++) {
      const f = this.#freshT[i]!;
      if (
        (f === t || f.mapping.extent === t.mapping.extent) && offset >= at[2 * i]! &&
        offset + length <= at[2 * i]! + at[2 * i + 1]!
      ) return t.writable;
    }
    return false;
  }

  /**
   * Write `data` into space this transaction allocated fresh (a block the
   * heap bumped past its durable top): in place, not logged, made durable
   * before the commit's log. What a crash or an abort leaves there is
   * unreachable: only a logged write (the owner's link, the heap's top)
   * publishes it. Lines this transaction already shadows, and any range
   * that is not fresh, take the logged path ({@linkcode Tx.write}), with
   * its checks and errors: the result is always what `write` gives.
   */
  writeFresh(t: TxTarget, offset: number, data: Uint8Array, length: number = data.length): void {
    if (!(length <= data.length) || !this.isFresh(t, offset, length)) {
      return this.write(t, offset, data, length);
    }
    const ti = this.#indexOf(t);
    const x = t.mapping.extent;
    const first = offset >>> 6, last = (offset + length - 1) >>> 6;
    let clean = true;
    for (let line = first; line <= last && clean; line++) clean = !this.#shadows(ti, line);
    if (clean && x.words && ((offset | length | data.byteOffset) & 3) === 0) {
      // No line of the range shadowed: whole words in place.
      const d32 = this.#wordsOf(data);
      const to = x.u32, o = offset >>> 2;
      for (let k = 0, n = length >>> 2; k < n; k++) to[o + k] = d32[k]!;
      // Written back now (no ordering): the commit's drain then seldom waits for it.
      if (t.mapping.lifetime === "persistent") t.mapping.flush(offset, length);
      return;
    }
    const bytes = t.mapping.bytes;
    let o = offset;
    const end = offset + length;
    while (o < end) {
      const lineEnd = Math.min(end, ((o >>> 6) + 1) * LINE);
      if (this.#shadows(ti, o >>> 6)) {
        this.write(t, o, data.subarray(o - offset, lineEnd - offset));
      } else for (let k = o; k < lineEnd; k++) bytes[k] = data[k - offset]!;
      o = lineEnd;
    }
    if (t.mapping.lifetime === "persistent") t.mapping.flush(offset, length);
  }

  /** Whether line `line` of written object `ti` (-1: none) has a shadow slot. */
  #shadows(ti: number, line: number): boolean {
    return ti >= 0 && this.#shadowSlot(ti, line) >= 0;
  }

  /**
   * The shadow slot of `line` of written object `ti`, or -1: the filter of
   * lines written first (most lines a transaction reads it never wrote),
   * then the table.
   */
  #shadowSlot(ti: number, line: number): number {
    const bit = (line * 31 + ti) & 63;
    if (((bit < 32 ? this.#bloomLo >>> bit : this.#bloomHi >>> (bit - 32)) & 1) === 0) return -1;
    return this.#lookup(ti, line);
  }

  /** {@linkcode Tx.writeFresh} of a little-endian u32 (4-byte aligned). */
  setU32Fresh(t: TxTarget, offset: number, value: number): void {
    if (
      (offset & 3) !== 0 || !this.isFresh(t, offset, 4) ||
      this.#shadows(this.#indexOf(t), offset >>> 6)
    ) return this.setU32(t, offset, value);
    t.mapping.view.setUint32(offset, value, true);
  }

  /** @internal How many fresh ranges the transaction has. */
  get freshCount(): number {
    return this.#freshN;
  }

  /** @internal The object of fresh range `i`. */
  freshTarget(i: number): TxTarget {
    return this.#freshT[i]!;
  }

  /** @internal Fresh ranges as offset, length pairs (index 2i, 2i + 1). */
  get freshRanges(): Float64Array {
    return this.#freshAt;
  }

  /** Whether this transaction has written anything in `t`. */
  touches(t: TxTarget): boolean {
    return this.#indexOf(t) >= 0;
  }

  /** Whether anything was written. */
  get empty(): boolean {
    return this.#slots === 0;
  }

  /**
   * @internal The objects written, each once, by the port they were mapped
   * from (what a node publishes after the commit).
   */
  writtenByPort(): Map<KernelPort, ObjID[]> {
    const out = new Map<KernelPort, ObjID[]>();
    for (let i = 0; i < this.#tcount; i++) {
      const t = this.#tlist[i]!;
      let ids = out.get(t.port);
      if (ids === undefined) out.set(t.port, ids = []);
      if (!ids.includes(t.id)) ids.push(t.id);
    }
    return out;
  }

  /** @internal Dirty runs found by {@linkcode Tx.collectRuns}: slot, start, length triples. */
  runs: Int32Array = new Int32Array(96);
  /** @internal Number of runs in {@linkcode Tx.runs}. */
  runCount = 0;

  /** @internal Find every dirty run of bytes, once, before commit. */
  collectRuns(): void {
    let n = 0;
    let runs = this.runs;
    const dirty = this.#dirty;
    for (let slot = 0; slot < this.#slots; slot++) {
      const first = n; // this slot's runs start here
      for (let half = 0; half < 2; half++) {
        let w = dirty[slot * 2 + half]!;
        while (w !== 0) {
          const start = 31 - Math.clz32(w & -w); // lowest set bit
          const shifted = w >>> start;
          // length of the run of ones starting at `start`
          const len = shifted === 0xffffffff
            ? 32
            : 31 - Math.clz32((~shifted & (shifted + 1)) >>> 0);
          const at = half * 32 + start;
          if (n > first && runs[n * 3 - 2]! + runs[n * 3 - 1]! === at) {
            runs[n * 3 - 1]! += len; // a run that continues across the two 32-byte halves
          } else {
            if ((n + 1) * 3 > runs.length) runs = this.runs = doubled(runs);
            runs[n * 3] = slot;
            runs[n * 3 + 1] = at;
            runs[n * 3 + 2] = len;
            n++;
          }
          w = len + start >= 32 ? 0 : (w & ~(((1 << len) - 1) << start)) >>> 0;
        }
      }
    }
    this.runCount = n;
  }

  /** @internal Each shadow slot's line number (index = slot). */
  get slotLines(): Int32Array {
    return this.#slotLine;
  }

  /** @internal Each shadow slot's object, as its index in first-write order (index = slot). */
  get slotTargets(): Int32Array {
    return this.#slotTi;
  }

  /** @internal The shadow pool. */
  get pool(): Uint8Array {
    return this.#pool;
  }

  /** @internal A DataView over the shadow pool. */
  get poolView(): DataView {
    return this.#pv;
  }

  /** @internal The shadow pool as 32-bit words (host order). */
  get poolWords(): Uint32Array {
    return this.#p32;
  }

  /** @internal How many objects were written. */
  get targetCount(): number {
    return this.#tcount;
  }

  /** @internal Written object number `i` (first-write order). */
  target(i: number): TxTarget {
    return this.#tlist[i]!;
  }
}

// ---------------------------------------------------------------------------
// The logs: the primary log (`/.txlog`, the kernel's own sessions) and the
// lanes (`/.txlanes`, the logs of threads), one sequence clock for all.

/** A log inside an object: its 64-byte header at `base`, its body up to `end`. */
interface Area {
  readonly t: TxTarget;
  readonly base: number;
  readonly end: number;
  /** The lane's number, or -1 for the primary log. */
  readonly lane: number;
}

/**
 * Header words after the format's fields, which the format left zero: the
 * log's lock word and its holder's thread number (every log); the sequence
 * clock, the recovery word and the recovering thread (the primary log only).
 * None is flushed on purpose: they are this boot's state (a lock word is
 * tagged with the boot), and recovery rebuilds the clock.
 */
const W = { lock: 40, owner: 44, clock: 48, recovered: 52, recoverer: 56, doubt: 60 };
/**
 * A lane's `doubt` word, set by a thread whose commit failed in a system
 * call (killed): how the next committer finishes the lane.
 */
const DOUBT = {
  /** Unknown (a holder that ended inside the commit): replay it. */
  unknown: 0,
  /** Failed making the log durable; memory untouched: discard it (mark it applied). */
  discard: 1,
  /** The log was durable and copied in place: make the lines durable, mark it applied. */
  flush: 2,
};
/** Lock word states (the low 2 bits; the boot's tag above them). */
const FREE = 0, HELD = 1, WAITED = 2;
/** Recovery word states: a session of this boot recovers the logs now, or has. */
const REC_BUSY = 1, REC_DONE = 2;
/** How long a thread sleeps waiting for a lane or for recovery before looking again. */
const WAIT_MS = 5;
/** Every so many waits, look for a lock whose holder has ended. */
const ORPHAN_ROUNDS = 20;
/** Holder word flag: the holder is finishing a commit another thread left in doubt. */
const FINISHING = 0x40000000;

/** Magic of the lanes object's header (at its base): "TXLN". */
const LANES_MAGIC = 0x4e4c5854;
/** Version of the lanes object's layout. */
export const TXLANES_VERSION = 1;
/** The lanes object's header fields (relative to its base). */
const LH = { magic: 0, version: 4, count: 6, laneBytes: 8, first: 12 };
/** Bytes of the lanes object's header. */
export const TXLANES_HEADER = 64;
/** Most lanes a lanes object may have. */
export const TXLANES_MAX = 64;

/** The 32-bit word view of a log's object, or null (unaligned memory: no atomics). */
function words(t: TxTarget): Int32Array | null {
  const e = t.mapping.extent;
  return e.words && t.mapping.bytes.length > 0 ? e.i32 : null;
}

/** Whether sequence number `a` is newer than `b` (serial-number arithmetic, RFC 1982). */
function newer(a: number, b: number): boolean {
  return a !== b && ((a - b) >>> 0) < 0x80000000;
}

/**
 * Take the lock word of `area` if it is free in this boot (another boot's
 * word is free), recording `owner` (the thread, with {@linkcode FINISHING}
 * when it takes the lane to finish another thread's commit).
 */
function tryTake(a: Int32Array, area: Area, f: PortFacts, owner: number = f.tid): boolean {
  const i = (area.base + W.lock) >>> 2;
  const c = Atomics.load(a, i);
  if ((c >>> 2) === f.tag && (c & 3) !== FREE) return false;
  if (Atomics.compareExchange(a, i, c, (f.tag << 2) | HELD) !== c) return false;
  Atomics.store(a, i + 1, owner);
  return true;
}

/** Release the lock word of `area`, waking its waiters (if the kernel hears it: waiters poll too). */
function release(a: Int32Array, area: Area, f: PortFacts): void {
  const i = (area.base + W.lock) >>> 2;
  Atomics.store(a, i + 1, 0);
  const old = Atomics.exchange(a, i, f.tag << 2);
  if ((old & 3) === WAITED) wake(area.t, area.base + W.lock);
}

function wake(t: TxTarget, offset: number): void {
  try {
    t.port.threadSync([{ op: "wake", id: t.id, offset, count: 0x7fffffff }]);
  } catch { /* a killed thread cannot call the kernel; waiters look again after WAIT_MS */ }
}

/** Sleep at most WAIT_MS while the word at `offset` of `t` holds `value`. */
function nap(t: TxTarget, offset: number, value: number): void {
  t.port.threadSync([{ op: "sleep", id: t.id, offset, value: value >>> 0, timeoutMs: WAIT_MS }]);
}

/** The threads of this system that have not ended (asked only on slow paths). */
function liveThreads(port: KernelPort): Set<number> {
  return new Set(port.threads().filter((t) => t.state !== ThreadState.Exited).map((t) => t.tid));
}

/**
 * Take `area`'s lock from a holder of this boot that has ended (a thread
 * that died inside a commit). The caller then finishes the lane's log.
 */
function takeOrphan(a: Int32Array, area: Area, f: PortFacts, live: () => Set<number>): boolean {
  const i = (area.base + W.lock) >>> 2;
  const c = Atomics.load(a, i);
  if ((c >>> 2) !== f.tag || (c & 3) === FREE) return false;
  const owner = Atomics.load(a, i + 1) & ~FINISHING;
  if (owner === 0 || owner === f.tid || live().has(owner)) return false;
  if (Atomics.compareExchange(a, i, c, (f.tag << 2) | HELD) !== c) return false;
  Atomics.store(a, i + 1, f.tid);
  return true;
}

function primaryArea(t: TxTarget): Area {
  return { t, base: baseOf(t), end: t.mapping.bytes.length, lane: -1 };
}

/**
 * The lanes of a lanes object, or null when its header is not one this
 * code knows (blank, another version, or a geometry that does not fit).
 */
function laneAreas(t: TxTarget): Area[] | null {
  const v = t.mapping.view;
  const size = t.mapping.bytes.length;
  const base = baseOf(t);
  if (size < base + TXLANES_HEADER) return null;
  if (v.getUint32(base + LH.magic, true) !== LANES_MAGIC) return null;
  if (v.getUint16(base + LH.version, true) !== TXLANES_VERSION) return null;
  const count = v.getUint16(base + LH.count, true);
  const laneBytes = v.getUint32(base + LH.laneBytes, true);
  const first = v.getUint32(base + LH.first, true);
  if (count < 1 || count > TXLANES_MAX || laneBytes < 2 * HEADER || laneBytes % LINE !== 0) {
    return null;
  }
  if (first < base + TXLANES_HEADER || first % LINE !== 0 || first + count * laneBytes > size) {
    return null;
  }
  const out: Area[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ t, base: first + i * laneBytes, end: first + (i + 1) * laneBytes, lane: i });
  }
  return out;
}

/**
 * Write a lanes object's header: `count` lanes of `laneBytes` each, after
 * the header (the object must hold them). Done once, before the object is
 * named.
 *
 * @internal For `_session_tx.ts`.
 */
export function writeLanesHeader(t: TxTarget, count: number, laneBytes: number): void {
  const base = baseOf(t);
  const first = base + TXLANES_HEADER;
  if (
    !Number.isInteger(count) || count < 1 || count > TXLANES_MAX ||
    !Number.isInteger(laneBytes) || laneBytes < 2 * HEADER || laneBytes % LINE !== 0 ||
    first + count * laneBytes > t.mapping.bytes.length
  ) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `${count} transaction lanes of ${laneBytes} bytes do not fit a ${t.mapping.bytes.length}-byte object (lanes: 1 to ${TXLANES_MAX}, each a multiple of 64 bytes and at least 128)`,
    );
  }
  const v = t.mapping.view;
  v.setUint32(base + LH.magic, LANES_MAGIC, true);
  v.setUint16(base + LH.version, TXLANES_VERSION, true);
  v.setUint16(base + LH.count, count, true);
  v.setUint32(base + LH.laneBytes, laneBytes, true);
  v.setUint32(base + LH.first, first, true);
  t.mapping.persist(base, TXLANES_HEADER);
}

/** Raise the clock in `t`'s header to at least `seq` (serial order). */
function raiseClock(t: TxTarget, seq: number): void {
  const a = words(t);
  if (a === null || seq === 0) return;
  const i = (baseOf(t) + W.clock) >>> 2;
  for (;;) {
    const c = Atomics.load(a, i);
    if (c >>> 0 !== 0 && !newer(seq, c >>> 0)) return;
    if (Atomics.compareExchange(a, i, c, seq | 0) === c) return;
  }
}

/**
 * The next sequence number for a commit into `area`: from the clock in the
 * primary log's header (`primary`), shared by every log and thread; never
 * 0, never the area's `applied` mark, and newer than the area's last one.
 */
function nextSeq(primary: TxTarget, area: Area): number {
  const v = area.t.mapping.view;
  const own = v.getUint32(area.base + H.seq, true);
  const applied = v.getUint32(area.base + H.applied, true);
  const a = words(primary);
  if (a === null) {
    // No atomics over this memory: the log's own numbers, as before the clock.
    let seq = (own + 1) >>> 0 || 1;
    if (seq === applied) seq = (seq + 1) >>> 0 || 1;
    return seq;
  }
  const i = (baseOf(primary) + W.clock) >>> 2;
  for (;;) {
    const seq = (Atomics.add(a, i, 1) + 1) >>> 0;
    if (seq === 0 || seq === applied) continue;
    if (own !== 0 && !newer(seq, own)) {
      raiseClock(primary, own); // an image older than the clock: continue after the log's own
      continue;
    }
    return seq;
  }
}

/** Buffers for the commit's calls, reused (a transaction allocates nothing of its own). */
let rangesBuf = new Float64Array(96);
const oneBuf = new Float64Array(3);
/** Reused between transactions (one per thread: each Worker has its own module). */
const spare = new Tx();

/**
 * Replay the committed, unapplied transaction in `area` into the objects
 * that still exist, then drain and persist its `applied` mark.
 *
 * @returns Records replayed (0: nothing to replay).
 */
function replayArea(area: Area, host: TxLogHost): number {
  const log = area.t;
  const v = log.mapping.view;
  const base = area.base;
  const s = inspectArea(log.mapping, base, area.end);
  if (s.state !== "committed") return 0;
  const seq = s.seq;
  const body = base + HEADER;
  const nObjects = s.objects;
  const nRecords = s.records;
  const maps: (Mapping | null)[] = [];
  for (let i = 0; i < nObjects; i++) maps.push(host.mapForReplay(s.targets[i]!));
  let at = body + nObjects * 16;
  const bytes = log.mapping.bytes;
  for (let r = 0; r < nRecords; r++) {
    const offset = v.getUint32(at, true);
    const length = v.getUint16(at + 4, true);
    const obj = v.getUint16(at + 6, true);
    const m = obj < maps.length ? maps[obj] : null;
    if (m && offset + length <= m.bytes.length) {
      m.bytes.set(bytes.subarray(at + RECORD, at + RECORD + length), offset);
      m.flush(offset, length);
    }
    at += RECORD + ((length + 3) & ~3);
  }
  log.mapping.drain();
  v.setUint32(base + H.applied, seq, true);
  log.mapping.persist(base + H.applied, 4);
  return nRecords;
}

/**
 * Write `tx` into `area` as transaction `seq` and run the commit protocol:
 * (1) log persisted: committed; (2) runs copied in place and persisted:
 * applied; (3) the applied mark stored and flushed (the next ordering point
 * of any thread carries it).
 */
function writeAndApply(tx: Tx, area: Area, seq: number, lane = false): void {
  // In three functions (the log, the copy in place, the calls here): each is
  // optimized on its own, early, instead of one large function whose
  // optimizing compile runs late into a fresh process's first inserts.
  const log = area.t;
  const base = area.base;
  const port = log.port;
  checkDomains(tx, port);
  // 0: the fresh ranges (written in place, unlogged) durable before any
  // byte of the log is written: the log may be written back at any moment
  // once stored, and a durable log must never publish bytes that are not.
  if (tx.freshCount > 0) persistFresh(tx, port);
  const at = writeLog(tx, area, seq);
  const v = log.mapping.extent.view;
  // 1: committed. One persist of the whole log: one call on the port, one
  // native call on hal-pmem.
  const one = oneBuf;
  const logHandle = log.mapping.handle;
  one[0] = logHandle;
  one[1] = base;
  one[2] = at - base;
  // A lane's commit that fails in a call (a killed thread cannot call the
  // kernel again) is left for the next committer to finish; `doubt` says
  // how. Memory never shows the transaction half done: nothing is copied
  // in place before the log is durable.
  if (lane) v.setUint32(base + W.doubt, DOUBT.discard, true);
  port.persist(one, 1);
  // The applied mark as it is (unchanged by the commit so far). Read now,
  // while the runs are copied and made durable: a flush may have evicted
  // the header's line, and this brings it back before the mark is stored
  // there (a store into a line that is not in the cache would hold up the
  // mark's flush).
  const before = v.getUint32(base + H.applied, true);
  const count = applyRuns(tx, log, port, otherLines);
  if (lane) v.setUint32(base + W.doubt, DOUBT.flush, true);
  if (otherLines.length > 0) flushLines(otherLines);
  // 2: applied. The touched lines flushed and drained in one call (no
  // ranges: a drain alone).
  port.persist(rangesBuf, count);
  // Mark it applied. No drain of its own: the next ordering point of any
  // kind (of any thread: every flush and drain is the kernel's) carries it,
  // and until then a replay would write the same bytes.
  v.setUint32(base + H.applied, seq, true);
  one[0] = logHandle;
  one[1] = base + H.applied;
  one[2] = 4;
  try {
    port.flush(one, 1);
  } catch (e) {
    // Not flushed: unmarked again, so the next committer finishes it.
    if (lane) v.setUint32(base + H.applied, before, true);
    throw e;
  }
  if (lane) v.setUint32(base + W.doubt, 0, true);
}

/**
 * The log makes durable, and replays, only objects of its own durability
 * domain (the same image); volatile objects need no durability.
 */
function checkDomains(tx: Tx, port: KernelPort): void {
  const nTargets = tx.targetCount;
  for (let i = 0; i < nTargets; i++) {
    const t = tx.target(i);
    if (
      t.port !== port && t.mapping.lifetime === "persistent" &&
      domainOf(t.port) !== domainOf(port)
    ) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Cannot commit a write to ${
          formatId(t.id)
        }: it belongs to another image than the transaction's log`,
      );
    }
  }
  if (nTargets > 0xffff) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `A transaction may write at most 65535 objects, not ${nTargets}`,
    );
  }
}

/**
 * Write `tx` into `area` as transaction `seq`: the object IDs, the runs,
 * then the header with its checksum (not yet persisted).
 *
 * @returns The end of the log's body.
 */
function writeLog(tx: Tx, area: Area, seq: number): number {
  const base = area.base;
  const nTargets = tx.targetCount;
  const runs = tx.runs;
  const n = tx.runCount;
  const pool = tx.pool;
  // Size the body.
  let need = HEADER + nTargets * 16;
  for (let i = 0; i < n; i++) need += RECORD + ((runs[i * 3 + 2]! + 3) & ~3);
  if (base + need > area.end) throw logFull(area, need);
  const lx = area.t.mapping.extent;
  const v = lx.view;
  const bytes = lx.bytes;
  // Word views (little-endian host, aligned memory): word loads and stores.
  const lw = lx.words ? lx.u32 : null;
  const pv = tx.poolView, pw = tx.poolWords;
  const body = base + HEADER;
  let at = body;
  for (let i = 0; i < nTargets; i++) {
    const id = idBytes(tx.target(i).id);
    if (lw !== null) {
      for (let k = 0; k < 4; k++) lw[(at >>> 2) + k] = lastIdWords[k]!; // the same bytes
    } else for (let k = 0; k < 16; k++) bytes[at + k] = id[k]!;
    at += 16;
  }
  const lines = tx.slotLines, tis = tx.slotTargets;
  for (let i = 0; i < n; i++) {
    const slot = runs[i * 3]!, start = runs[i * 3 + 1]!, length = runs[i * 3 + 2]!;
    v.setUint32(at, lines[slot]! * LINE + start, true);
    v.setUint32(at + 4, length | (tis[slot]! << 16), true); // u16 length, u16 object
    copyRun(pool, pv, pw, slot * LINE + start, bytes, v, lw, at + RECORD, length);
    const padded = (length + 3) & ~3;
    for (let k = length; k < padded; k++) bytes[at + RECORD + k] = 0;
    at += RECORD + padded;
  }
  v.setUint32(base + H.magic, LOG_MAGIC, true);
  v.setUint32(base + H.seq, seq, true);
  v.setUint32(base + H.bodyBytes, at - body, true);
  v.setUint32(base + H.nObjects, nTargets, true);
  v.setUint32(base + H.nRecords, n, true);
  v.setUint32(
    base + H.sum,
    lw !== null
      ? checksumWords(lw, body, at, checksumWords(lw, base + H.seq, base + H.sum, 0))
      : logSum(v, base, body, at),
    true,
  );
  return at;
}

/** The error of a transaction of `need` bytes that does not fit `area`. */
function logFull(area: Area, need: number): TwzError {
  return new TwzError(
    ErrorCode.OutOfSpace,
    `A transaction of ${need} bytes does not fit the ${area.end - area.base}-byte log${
      area.lane >= 0 ? ` (lane ${area.lane} of ${TXLANES_NAME_TEXT})` : ""
    }`,
  );
}

/** The `[handle, offset, length]` triples of {@linkcode persistFresh}, reused. */
let freshBuf = new Float64Array(24);

/**
 * Make a transaction's fresh ranges durable: those of the log's port in one
 * persist (flush and drain), those of other ports of its domain flushed
 * first (the drain orders them); volatile objects need nothing.
 */
function persistFresh(tx: Tx, port: KernelPort): void {
  const n = tx.freshCount, at = tx.freshRanges;
  let buf = freshBuf;
  let count = 0;
  let any = false;
  for (let i = 0; i < n; i++) {
    const t = tx.freshTarget(i);
    const m = t.mapping;
    if (m.lifetime !== "persistent") continue;
    any = true;
    const offset = at[2 * i]!, length = at[2 * i + 1]!;
    if (t.port !== port) {
      m.flush(offset, length);
      continue;
    }
    if (3 * count + 3 > buf.length) buf = freshBuf = doubled(buf);
    buf[3 * count] = m.handle;
    buf[3 * count + 1] = offset;
    buf[3 * count + 2] = length;
    count++;
  }
  if (any) port.persist(buf, count);
}

/** The `[mapping, offset, length]` lines of {@linkcode applyRuns}' `others`, reused. */
const otherLines: [Mapping, number, number][] = [];

/** Flush `lines` (each through its mapping's port), leaving the list empty. */
function flushLines(lines: [Mapping, number, number][]): void {
  try {
    for (const [m, line, length] of lines) m.flush(line, length);
  } finally {
    lines.length = 0;
  }
}

/**
 * Apply: copy every run of `tx` in place, and gather each touched line of
 * the log's port once into {@linkcode rangesBuf} (adjacent lines of a
 * mapping in one range) as `[handle, offset, length]` triples, relative to
 * each object. Lines of other ports are appended to `others` (empty), for
 * the caller to flush after the copy: no system call inside the copy, so a
 * killed thread never leaves it half done.
 *
 * @returns The number of ranges.
 */
function applyRuns(
  tx: Tx,
  log: TxTarget,
  port: KernelPort,
  others: [Mapping, number, number][],
): number {
  const runs = tx.runs;
  const n = tx.runCount;
  const pool = tx.pool;
  const pv = tx.poolView, pw = tx.poolWords;
  const lines = tx.slotLines, tis = tx.slotTargets;
  let ranges = rangesBuf;
  let count = 0;
  let lastSlot = -1;
  // The current run's object (runs of one object follow one another).
  let lastTi = -1;
  let m: Mapping = log.mapping;
  let dst = m.extent.bytes, dv = m.extent.view, dw: Uint32Array | null = null;
  let persistent = true, samePort = true, handle = 0;
  for (let i = 0; i < n; i++) {
    const slot = runs[i * 3]!, start = runs[i * 3 + 1]!, length = runs[i * 3 + 2]!;
    const ti = tis[slot]!;
    if (ti !== lastTi) {
      lastTi = ti;
      const t = tx.target(ti);
      m = t.mapping;
      const x = m.extent;
      dst = x.bytes;
      dv = x.view;
      dw = x.words ? x.u32 : null;
      persistent = m.lifetime === "persistent";
      samePort = t.port === port;
      handle = m.handle;
    }
    const line = lines[slot]! * LINE;
    copyRun(pool, pv, pw, slot * LINE + start, dst, dv, dw, line + start, length);
    if (slot === lastSlot) continue;
    lastSlot = slot;
    const lineLength = Math.min(LINE, dst.length - line);
    if (!persistent) continue; // volatile: nothing to make durable
    if (!samePort) {
      // Another port of the log's domain: its flush, ordered by the drain below.
      others.push([m, line, lineLength]);
      continue;
    }
    const last = 3 * count - 3;
    if (count > 0 && ranges[last] === handle && ranges[last + 1]! + ranges[last + 2]! === line) {
      ranges[last + 2]! += lineLength;
    } else {
      if (3 * count + 3 > ranges.length) ranges = rangesBuf = doubled(ranges);
      ranges[3 * count] = handle;
      ranges[3 * count + 1] = line;
      ranges[3 * count + 2] = lineLength;
      count++;
    }
  }
  return count;
}

const TXLANES_NAME_TEXT = "/.txlanes";

/** A thread's commit: into a free lane, held only for the commit. */
function commitLane(tx: Tx, host: TxLogHost, primary: TxTarget, f: PortFacts): void {
  const lanesT = host.lanesObject!({});
  if (lanesT === null) throw new TypeError("lanesObject({}) made no lanes object");
  const areas = lanesCache(lanesT);
  const a = words(lanesT);
  if (areas === null || a === null) {
    throw new TwzError(
      ErrorCode.ObjectDamaged,
      `${TXLANES_NAME_TEXT} (${
        formatId(lanesT.id)
      }) is not a transaction lanes object this libtwz knows (version ${TXLANES_VERSION}): threads cannot commit`,
    );
  }
  finishStaleLanes(a, areas, f, host);
  const lane = takeLane(a, areas, f, lanesT.port);
  try {
    // Left in doubt since the look above, or taken from a holder that
    // ended inside its commit: finished before it is reused.
    if (unapplied(lane)) finishLane(lane, host);
    writeAndApply(tx, lane, nextSeq(primary, lane), true);
  } finally {
    release(a, lane, f);
  }
}

/**
 * The lanes of a lanes object, parsed once per handle of it (an area
 * commits through its handle's port: handles of one object in one process
 * share bytes but not ports).
 */
const lanesParsed = new WeakMap<TxTarget, { bytes: Uint8Array; areas: Area[] }>();

function lanesCache(t: TxTarget): Area[] | null {
  const bytes = t.mapping.bytes;
  const known = lanesParsed.get(t);
  if (known !== undefined && known.bytes === bytes) return known.areas;
  const areas = laneAreas(t);
  if (areas !== null) lanesParsed.set(t, { bytes, areas });
  return areas;
}

/**
 * Take a lane: the first free one from the thread's home lane (tid modulo
 * the count) on; when all are busy, sleep on the home lane a little and
 * look again, now and then taking over a lane whose holder has ended.
 */
function takeLane(a: Int32Array, areas: Area[], f: PortFacts, port: KernelPort): Area {
  const n = areas.length;
  const home = f.tid % n;
  for (let round = 1;; round++) {
    for (let k = 0; k < n; k++) {
      const lane = areas[(home + k) % n]!;
      if (tryTake(a, lane, f)) return lane;
    }
    if (round % ORPHAN_ROUNDS === 0) {
      let live: Set<number> | undefined;
      const get = () => live ??= liveThreads(port);
      for (const lane of areas) if (takeOrphan(a, lane, f, get)) return lane;
    }
    const lane = areas[home]!;
    const i = (lane.base + W.lock) >>> 2;
    const c = Atomics.load(a, i);
    if ((c >>> 2) !== f.tag || (c & 3) === FREE) continue;
    const waited = (c & ~3) | WAITED;
    if (c === waited || Atomics.compareExchange(a, i, c, waited) === c) {
      nap(lane.t, lane.base + W.lock, waited);
    }
  }
}

/** Whether a lane's header, in memory, says committed and not applied (a cheap first look). */
function unapplied(area: Area): boolean {
  const v = area.t.mapping.view;
  const seq = v.getUint32(area.base + H.seq, true);
  return seq !== 0 && seq !== v.getUint32(area.base + H.applied, true) &&
    v.getUint32(area.base + H.magic, true) === LOG_MAGIC;
}

/**
 * Finish a lane a thread left in doubt in this boot (its commit failed in a
 * system call: it was killed), as its `doubt` word says: a log that never
 * became durable for sure is discarded (marked applied: its memory was
 * never touched); a log that was durable and copied in place has its lines
 * flushed (nothing is copied: a later transaction may have written over
 * them) and is marked applied; an unknown one is replayed. In all cases the
 * mark is persisted before the caller commits anything.
 */
function finishLane(area: Area, host: TxLogHost): void {
  const log = area.t;
  const base = area.base;
  const v = log.mapping.view;
  const doubt = v.getUint32(base + W.doubt, true);
  if (doubt === DOUBT.unknown) {
    replayArea(area, host);
  } else {
    const s = inspectArea(log.mapping, base, area.end);
    if (doubt === DOUBT.flush && s.state === "committed") {
      const maps = s.targets.map((id) => host.mapForReplay(id));
      let at = base + HEADER + s.objects * 16;
      for (let r = 0; r < s.records; r++) {
        const offset = v.getUint32(at, true);
        const length = v.getUint16(at + 4, true);
        const m = maps[v.getUint16(at + 6, true)];
        if (m && m.lifetime === "persistent" && offset + length <= m.bytes.length) {
          m.flush(offset, length);
        }
        at += RECORD + ((length + 3) & ~3);
      }
      log.mapping.drain();
    }
  }
  // Discarded, flushed, or torn (never committed: never to be replayed).
  v.setUint32(base + W.doubt, 0, true);
  if (v.getUint32(base + H.applied, true) !== v.getUint32(base + H.seq, true)) {
    v.setUint32(base + H.applied, v.getUint32(base + H.seq, true), true);
    log.mapping.persist(base + H.applied, 4);
  }
}

/**
 * Before a thread commits: finish every lane left in doubt in this boot,
 * so that no transaction is marked applied while an older one it may
 * depend on is not (recovery would replay the older one over it). A lane
 * another thread is finishing is waited for; a lane held for a commit is
 * its holder's.
 */
function finishStaleLanes(
  a: Int32Array,
  areas: Area[],
  f: PortFacts,
  host: TxLogHost,
  wait = true,
): void {
  for (const lane of areas) {
    const i = (lane.base + W.lock) >>> 2;
    while (unapplied(lane)) {
      if (tryTake(a, lane, f, f.tid | FINISHING)) {
        try {
          finishLane(lane, host);
        } finally {
          release(a, lane, f);
        }
        break;
      }
      const c = Atomics.load(a, i);
      if ((c >>> 2) !== f.tag || (c & 3) === FREE) continue;
      const holder = Atomics.load(a, i + 1);
      if (holder === 0) continue; // taken this instant: its holder is not written yet
      if ((holder & FINISHING) === 0 || !wait) break; // a commit: its holder finishes it
      nap(lane.t, lane.base + W.lock, c);
    }
  }
}

/** The lanes object each host was seen to have (looked up when a session opens). */
const lanesKnown = new WeakMap<TxLogHost, TxTarget>();
/** Bumped at every {@linkcode lanesKnown} update: the last lookup below is valid while it stays. */
let lanesKnownVersion = 0;
/** The last lookup in {@linkcode lanesKnown}: the host, the version it was made at, the answer. */
let lanesLookupHost: TxLogHost | null = null;
let lanesLookupVersion = -1;
let lanesLookup: TxTarget | undefined;

/** Remember `host`'s lanes object. */
function setLanesKnown(host: TxLogHost, t: TxTarget): void {
  lanesKnown.set(host, t);
  lanesKnownVersion++;
}

/** The lanes object `host` was seen to have (one comparison for the host of the last commit). */
function knownLanes(host: TxLogHost): TxTarget | undefined {
  if (host !== lanesLookupHost || lanesLookupVersion !== lanesKnownVersion) {
    lanesLookup = lanesKnown.get(host);
    lanesLookupHost = host;
    lanesLookupVersion = lanesKnownVersion;
  }
  return lanesLookup;
}

/** The host's lanes object, if it has one (remembered for the kernel session's commits). */
function lanesOf(host: TxLogHost): TxTarget | null {
  const t = host.lanesObject?.() ?? null;
  if (t !== null) setLanesKnown(host, t);
  return t;
}

/** The kernel's own session's commit: into the primary log. */
function commitPrimary(tx: Tx, host: TxLogHost, primary: TxTarget, f: PortFacts): void {
  let area = lastArea;
  if (area === null || area.t !== primary || area.end !== primary.mapping.bytes.length) {
    area = lastArea = primaryArea(primary);
  }
  const a = words(primary);
  // Lanes a killed thread left in doubt are finished first, as a thread's
  // commit does (the kernel's session cannot wait for one a thread is
  // finishing: that one is left to it).
  const lanesT = knownLanes(host);
  if (lanesT !== undefined && lanesT.mapping.bytes.length > 0) {
    const areas = lanesCache(lanesT), la = words(lanesT);
    if (areas !== null && la !== null) finishStaleLanes(la, areas, f, host, false);
  }
  // The log's lock keeps a thread's recovery of the logs (possible only
  // while no kernel session has recovered them this boot) away from this
  // commit. Once this session saw the recovery settled, nothing takes the
  // lock again in this boot, and the kernel's session (one thread, each
  // commit synchronous) commits without it: an atomic read-modify-write
  // right after the applied mark's flush would wait for that write-back.
  const locked = a !== null &&
    (f.thread || (host !== lastSettled && !settledHosts.has(host)));
  if (locked) {
    const i = (area.base + W.recovered) >>> 2;
    if (Atomics.load(a, i) === ((f.tag << 2) | REC_BUSY) || !tryTake(a, area, f)) {
      throw new TwzError(
        ErrorCode.Busy,
        `Thread ${
          Atomics.load(a, i + 1)
        } is recovering the transaction logs; the kernel's own session cannot wait for it: try again`,
      );
    }
    if (!f.thread) settledHosts.add(host);
  } else if (a !== null) {
    lastSettled = host; // settled for good: the next commit asks one comparison
  }
  try {
    writeAndApply(tx, area, nextSeq(primary, area));
  } finally {
    if (locked) release(a!, area, f);
  }
}

/** The primary log area of the last commit into one (areas are fixed while the log's size is). */
let lastArea: Area | null = null;

/** Kernel sessions that saw the logs' recovery settled this boot (see `commitPrimary`). */
const settledHosts = new WeakSet<TxLogHost>();
/** The last kernel session seen committing without the lock (a member of {@linkcode settledHosts}). */
let lastSettled: TxLogHost | null = null;

/** The facts of the port of the last commit (one comparison instead of a WeakMap lookup). */
let lastFactsPort: KernelPort | null = null;
let lastFacts: PortFacts | null = null;

/**
 * Commit `tx` locally. Returns what the transaction wrote when the system
 * is a node of a cluster (the objects to publish), else `null`.
 */
function commit(tx: Tx, host: TxLogHost): Map<KernelPort, ObjID[]> | null {
  const primary = host.logObject();
  const port = primary.port;
  let f = lastFacts;
  if (port !== lastFactsPort || f === null) {
    f = lastFacts = portFacts(port);
    lastFactsPort = port;
  }
  // One comparison on a system that is not a node (asked at the port's
  // first transaction, empty or not, then cached).
  const node = f.node === undefined ? nodeOf(primary.port, f) : f.node;
  if (tx.empty) return null;
  tx.collectRuns();
  if (f.thread && host.lanesObject !== undefined && words(primary) !== null) {
    commitLane(tx, host, primary, f);
  } else commitPrimary(tx, host, primary, f);
  return node === null ? null : tx.writtenByPort();
}

/**
 * After a local commit on a node: publish the transaction's objects
 * (`global("commit")`; the node ignores those that are not global, and
 * publishes the global ones it owns as their next versions, all or none).
 * Each port is asked once, for its own objects.
 */
function publishCommitted(written: Map<KernelPort, ObjID[]>): void {
  for (const [port, ids] of written) {
    if (nodeOf(port) === null) continue;
    port.global("commit", { ids });
  }
}

/**
 * Replay every committed, unapplied log — the primary log and each lane —
 * in sequence order. With `locks`, each log is taken first (a lane held by
 * a live thread of this boot is skipped: its holder is inside a commit and
 * finishes it), and the clock is raised past every log's number.
 */
function recoverAll(host: TxLogHost, primary: TxTarget, f: PortFacts, locks: boolean): number {
  const areas: Area[] = [primaryArea(primary)];
  const lanesT = lanesOf(host);
  const lanes = lanesT === null ? null : laneAreas(lanesT);
  if (lanes !== null) areas.push(...lanes);
  const held: { a: Int32Array; area: Area }[] = [];
  const todo: { area: Area; seq: number }[] = [];
  let top = 0;
  try {
    for (const area of areas) {
      const a = locks ? words(area.t) : null;
      if (a !== null) {
        if (usedThisBoot(area, f) || !tryTake(a, area, f)) continue;
        held.push({ a, area });
      }
      const s = inspectArea(area.t.mapping, area.base, area.end);
      if (s.seq !== 0 && s.state !== "garbage" && (top === 0 || newer(s.seq, top))) top = s.seq;
      if (s.state === "committed") todo.push({ area, seq: s.seq });
    }
    // Serial order: conflicting transactions were serialized by the
    // program's locks, so their sequence numbers are in commit order.
    todo.sort((x, y) => (x.seq - y.seq) | 0);
    let n = 0;
    for (const { area } of todo) n += replayArea(area, host);
    if (locks) raiseClock(primary, top);
    return n;
  } finally {
    for (const { a, area } of held) release(a, area, f);
  }
}

/**
 * Whether a log's lock word carries this boot's tag: the log was used in
 * this boot (held now, or released), so it is this boot's business — a
 * commit in progress, or one a killed thread left in doubt, which the next
 * commit finishes — not a transaction an earlier boot left for recovery.
 */
function usedThisBoot(area: Area, f: PortFacts): boolean {
  const a = words(area.t);
  return a !== null && (Atomics.load(a, (area.base + W.lock) >>> 2) >>> 2) === f.tag;
}

/**
 * Whether a log an earlier boot used holds a committed, unapplied
 * transaction. Reads only.
 */
function anyCommitted(host: TxLogHost, primary: TxTarget, f: PortFacts): boolean {
  const areas: Area[] = [primaryArea(primary)];
  const lanesT = lanesOf(host);
  const lanes = lanesT === null ? null : laneAreas(lanesT);
  if (lanes !== null) areas.push(...lanes);
  for (const area of areas) {
    if (usedThisBoot(area, f)) continue;
    if (inspectArea(area.t.mapping, area.base, area.end).state === "committed") return true;
  }
  return false;
}

/**
 * Make sure no committed transaction of an earlier boot is left unapplied
 * before the caller commits. When a log holds one, the first session to
 * see it claims the recovery word and replays every log in sequence order;
 * a thread that finds another session recovering waits for it; the
 * kernel's own session cannot wait and returns (its commits fail with
 * `Busy` until the recovery is done). When none does, nothing is written
 * (opening a session on a clean image stores nothing). Once this boot's
 * recovery is done, the kernel's session still replays its own log if a
 * failed commit left it unapplied.
 */
function ensureRecovered(host: TxLogHost, primary: TxTarget, f: PortFacts): number {
  const a = words(primary);
  if (a === null || !primary.writable || primary.port.readOnly) {
    return recoverAll(host, primary, f, false);
  }
  const area = primaryArea(primary);
  const i = (area.base + W.recovered) >>> 2;
  const done = (f.tag << 2) | REC_DONE, busy = (f.tag << 2) | REC_BUSY;
  let n = 0;
  for (let round = 1;; round++) {
    const c = Atomics.load(a, i);
    if (c === done) break;
    if (c === busy) {
      if (!f.thread) return 0;
      const who = Atomics.load(a, i + 1);
      if (
        round % ORPHAN_ROUNDS === 0 && who !== 0 && who !== f.tid &&
        !liveThreads(primary.port).has(who) &&
        Atomics.compareExchange(a, i + 1, who, f.tid) === who
      ) {
        n = runRecovery(host, primary, f, a, i, busy);
        break;
      }
      nap(primary, area.base + W.recovered, busy);
      continue;
    }
    if (!anyCommitted(host, primary, f)) break;
    if (Atomics.compareExchange(a, i, c, busy) !== c) continue;
    Atomics.store(a, i + 1, f.tid);
    n = runRecovery(host, primary, f, a, i, c);
    break;
  }
  // The kernel's session: its own log, if a failed commit of this boot
  // left it unapplied (threads never write it).
  if (!f.thread && unapplied(area) && tryTake(a, area, f)) {
    try {
      n += replayArea(area, host);
    } finally {
      release(a, area, f);
    }
  }
  return n;
}

/** Run the recovery this session claimed; publish it done (or give the claim back). */
function runRecovery(
  host: TxLogHost,
  primary: TxTarget,
  f: PortFacts,
  a: Int32Array,
  i: number,
  before: number,
): number {
  let n: number;
  try {
    n = recoverAll(host, primary, f, true);
  } catch (e) {
    Atomics.store(a, i + 1, 0);
    Atomics.store(a, i, before);
    throw e;
  }
  Atomics.store(a, i + 1, 0);
  Atomics.store(a, i, (f.tag << 2) | REC_DONE);
  wake(primary, baseOf(primary) + W.recovered);
  return n;
}

/** Each port's durability domain (`info().domain`), asked once. */
const domains = new WeakMap<KernelPort, number>();

function domainOf(port: KernelPort): number {
  let d = domains.get(port);
  if (d === undefined) {
    d = port.info().domain;
    domains.set(port, d);
  }
  return d;
}

let lastId = -1n;
const lastIdBytes = new Uint8Array(16);
/** {@linkcode lastIdBytes} as 32-bit words (copied word for word: the same bytes). */
const lastIdWords = new Uint32Array(lastIdBytes.buffer);

/** An object ID as 16 little-endian bytes (the last one is kept: BigInt work is slow). */
function idBytes(id: ObjID): Uint8Array {
  if (id !== lastId) {
    let x = id;
    for (let k = 0; k < 16; k++) {
      lastIdBytes[k] = Number(x & 0xffn);
      x >>= 8n;
    }
    lastId = id;
  }
  return lastIdBytes;
}

/**
 * Copy a run of shadow bytes: word by word when everything is 4-byte
 * aligned (through the word views `sw`/`dw` when the destination has one).
 */
function copyRun(
  src: Uint8Array,
  sv: DataView,
  sw: Uint32Array,
  from: number,
  dst: Uint8Array,
  dv: DataView,
  dw: Uint32Array | null,
  to: number,
  length: number,
): void {
  if (dw !== null && ((from | to) & 3) === 0) {
    // The whole words through the word views (host order is little-endian
    // when an object has them), then the odd bytes.
    const f = from >>> 2, d = to >>> 2, words = length >>> 2;
    if (d + words > dw.length) {
      throw new RangeError(`Offset ${to + length} is outside the bounds of the object`);
    }
    for (let k = 0; k < words; k++) dw[d + k] = sw[f + k]!;
    for (let k = words << 2; k < length; k++) dst[to + k] = src[from + k]!;
  } else if (((from | to | length) & 3) === 0) {
    for (let k = 0; k < length; k += 4) dv.setInt32(to + k, sv.getInt32(from + k, true), true);
  } else {
    for (let k = 0; k < length; k++) dst[to + k] = src[from + k]!;
  }
}

function baseOf(log: TxTarget): number {
  return log.mapping.bytes.length >= 512 ? 256 : 0;
}

/** Hosts whose logs this thread has checked (recovered) once. */
const readyHosts = new WeakSet<TxLogHost>();
let lastHost: TxLogHost | null = null;

/** First use of a host in this thread: this boot's recovery must have run. */
function ready(host: TxLogHost): void {
  if (host === lastHost) return;
  if (!readyHosts.has(host)) {
    const primary = host.logObject();
    ensureRecovered(host, primary, portFacts(primary.port));
    readyHosts.add(host);
  }
  lastHost = host;
}

/**
 * Replay every committed but unapplied transaction an earlier boot left in
 * the host's logs — the primary log and each lane of the lanes object — in
 * sequence order (a session calls this when it opens; the first
 * transaction does it otherwise). The first session that finds one claims
 * the boot's recovery and replays them all; a thread that finds another
 * session replaying waits for it; when there is none, nothing is written.
 * The kernel's own session also replays its primary log if a failed commit
 * of this boot left it unapplied. Over a read-only log (a private overlay)
 * everything is replayed into memory, without locks.
 *
 * @param host The session (its log objects).
 * @returns How many records were replayed.
 */
export function recoverTransactions(host: TxLogHost): number {
  const primary = host.logObject();
  const n = ensureRecovered(host, primary, portFacts(primary.port));
  readyHosts.add(host);
  return n;
}

/**
 * How many of the host's logs hold a committed, unapplied transaction
 * (reads only: what a read-only session that cannot replay reports).
 *
 * @param host The session (its log objects, mapped read-only or not).
 * @returns The number of such logs.
 */
export function committedLogs(host: TxLogHost): number {
  const primary = host.logObject();
  const areas = [primaryArea(primary)];
  const lanesT = lanesOf(host);
  const lanes = lanesT === null ? null : laneAreas(lanesT);
  if (lanes !== null) areas.push(...lanes);
  return areas.filter((a) => inspectArea(a.t.mapping, a.base, a.end).state === "committed")
    .length;
}

/** Options for {@linkcode prepareThreadLogs}: the lanes' geometry when they are made. */
export interface TxLanesOptions {
  /** Number of lanes (1 to 64). @default {8} */
  lanes?: number;
  /**
   * Bytes per lane (a multiple of 4096; the largest transaction a thread
   * commits is a little less). @default {the image size / 256, 16 KiB to 4 MiB}
   */
  laneBytes?: number;
}

/**
 * Make the logs threads commit into — the primary log (`/.txlog`, which
 * holds the sequence clock) and the lanes object (`/.txlanes`) — if they are
 * missing. Call it from the kernel's own session before programs start:
 * naming is not safe for binds from several threads at once, and a thread
 * that finds no lanes makes them itself (two threads of a fresh image
 * committing their first transactions at the same instant could race).
 *
 * @param host A session of the kernel (`Twz` is one).
 * @param options The lanes' geometry, if they are made now.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { prepareThreadLogs } from "@twz/libtwz/tx";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * prepareThreadLogs(twz);
 * console.log(twz.naming.exists("/.txlanes")); // true
 * twz.close();
 * ```
 */
export function prepareThreadLogs(host: TxLogHost, options: TxLanesOptions = {}): void {
  ready(host);
  const lanes = host.lanesObject?.(options) ?? null;
  if (lanes !== null) setLanesKnown(host, lanes);
}

/**
 * Run `fn` as one failure-atomic transaction on the session `host`. Writes
 * through the {@linkcode Tx} (and through typed accessors) are durable
 * together when `transaction` returns, or not at all. An exception aborts and
 * is rethrown. A `transaction` inside another one joins it.
 *
 * Transactions of several threads run at the same time: each thread
 * commits into a lane of its own for the length of the commit. They are
 * isolated from one another only by the locks the program takes: take a
 * lock (`@twz/libtwz/sync`) before a transaction that reads and writes
 * shared data, and release it after `transaction` has returned.
 *
 * On a node of a cluster (docs/GLOBAL.md), the objects the transaction
 * wrote are published to the global space after the local commit
 * (`global("commit")`: the global ones this node owns become their next
 * versions, all or none; other objects are left alone). `transaction`
 * returns once the cluster has acknowledged them. When publishing fails
 * (ownership lost to another node, the cluster unreachable) it throws
 * after the local commit: the local copies hold the transaction's writes
 * until the node replaces them with the cluster's version (a lost
 * ownership) or publishes them again (unacknowledged ones, at boot).
 *
 * @param host The session (its log objects hold the redo log).
 * @param fn The work; its return value is returned.
 * @returns What `fn` returned.
 * @throws Whatever `fn` throws (after aborting); {TwzError} `OutOfSpace` when
 * the transaction does not fit the log; `Busy` in the kernel's own session
 * while a thread is recovering the logs; on a node, after the local commit,
 * `Busy` (ownership lost: "publish of … refused") or `TimedOut` from
 * publishing.
 */
export function transaction<T>(host: TxLogHost, fn: (tx: Tx) => T): T {
  if (TX.current !== null) {
    const outer = TX.current;
    outer.depth++;
    try {
      return fn(outer);
    } catch (error) {
      outer.aborted ??= error; // flattened: the outermost transaction aborts too
      throw error;
    } finally {
      outer.depth--;
    }
  }
  ready(host);
  const tx = spare;
  tx.reset();
  TX.current = tx;
  TX.miss = TX_MISS;
  let result: T;
  let committed = false;
  try {
    try {
      result = fn(tx);
    } finally {
      TX.current = null;
      TX.miss = 0;
    }
    if (result instanceof Promise) {
      throw new TypeError("A transaction must be synchronous: its function returned a Promise");
    }
    if (tx.aborted !== undefined) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `The transaction was aborted by a nested transaction that failed: ${
          (tx.aborted as Error)?.message ?? tx.aborted
        }`,
        { cause: tx.aborted },
      );
    }
    const written = commit(tx, host);
    committed = true;
    const hooks = tx.onCommit;
    for (let i = 0; i < hooks.length; i++) hooks[i]!();
    // On a node, the global objects written are published after the local
    // commit: a failure is thrown from here, the local commit standing.
    if (written !== null) publishCommitted(written);
  } finally {
    if (tx.onEnd.length > 0) endHooks(tx, committed);
  }
  return result;
}

/**
 * Run a transaction's end hooks, every one even when one throws; after a
 * commit the first error is rethrown (after an abort the abort's own error
 * is the one the caller sees).
 */
function endHooks(tx: Tx, committed: boolean): void {
  const hooks = tx.onEnd.splice(0);
  let failure: unknown;
  for (const hook of hooks) {
    try {
      hook(committed);
    } catch (e) {
      failure ??= e;
    }
  }
  if (committed && failure !== undefined) throw failure;
}

/** What {@linkcode inspectTxLog} found in a transaction log object. */
export interface TxLogState {
  /**
   * `empty` (never used), `applied` (the last transaction is in place),
   * `committed` (committed, not marked applied: opening a session replays
   * it), `torn` (a commit cut short by a crash: recovery ignores it) or
   * `garbage` (a header no crash can leave: see `problem`).
   */
  state: "empty" | "applied" | "committed" | "torn" | "garbage";
  /** Sequence number of the last transaction written (0 when empty). */
  seq: number;
  /** Sequence number marked applied. */
  applied: number;
  /** Records of the logged transaction. */
  records: number;
  /** Objects the logged transaction writes. */
  objects: number;
  /** IDs of those objects (a committed log only). */
  targets: ObjID[];
  /** What is wrong with a `garbage` log. */
  problem?: string;
}

/**
 * Read the state of a transaction log object without writing anything (for
 * fsck: recovery itself is {@linkcode recoverTransactions}).
 *
 * @param log The log object (`/.txlog` of a session), mapped read-only or not.
 * @returns The log's state and header counts.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { inspectTxLog, transaction } from "@twz/libtwz/tx";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const obj = twz.create({ size: 4096 });
 * transaction(twz, (tx) => tx.setU32(obj, obj.baseOffset, 1));
 * console.log(inspectTxLog(twz.logObject()).state); // applied
 * twz.close();
 * ```
 */
export function inspectTxLog(log: { readonly mapping: Mapping }): TxLogState {
  const m = log.mapping;
  return inspectArea(m, m.bytes.length >= 512 ? 256 : 0, m.bytes.length);
}

/** What {@linkcode inspectTxLanes} found in a lanes object. */
export interface TxLanesState {
  /** `ok`, `blank` (made, header never written: unused), or `unknown` (another version, or damaged). */
  header: "ok" | "blank" | "unknown";
  /** What is wrong with an `unknown` header. */
  problem?: string;
  /** Each lane's log state, lane 0 first. */
  lanes: TxLogState[];
}

/**
 * Read the state of every lane of a transaction lanes object (`/.txlanes`)
 * without writing anything (for fsck).
 *
 * @param lanes The lanes object, mapped read-only or not.
 * @returns Its header's state and each lane's.
 */
export function inspectTxLanes(lanes: { readonly mapping: Mapping }): TxLanesState {
  const t = lanes as TxTarget;
  const areas = laneAreas(t);
  if (areas !== null) {
    return {
      header: "ok",
      lanes: areas.map((a) => inspectArea(a.t.mapping, a.base, a.end)),
    };
  }
  const m = lanes.mapping;
  const base = baseOf(t);
  if (m.bytes.length >= base + TXLANES_HEADER) {
    let blank = true;
    for (let i = base; i < base + TXLANES_HEADER; i++) if (m.bytes[i] !== 0) blank = false;
    if (blank) return { header: "blank", lanes: [] };
    const magic = m.view.getUint32(base + LH.magic, true);
    const version = m.view.getUint16(base + LH.version, true);
    if (magic === LANES_MAGIC && version !== TXLANES_VERSION) {
      return {
        header: "unknown",
        problem: `lanes layout version ${version}, not ${TXLANES_VERSION}`,
        lanes: [],
      };
    }
  }
  return { header: "unknown", problem: "the lanes header is not valid", lanes: [] };
}

/** {@linkcode inspectTxLog} of the log whose header is at `base`, its body ending by `end`. */
function inspectArea(mapping: Mapping, base: number, end: number): TxLogState {
  const bytes = mapping.bytes;
  const v = mapping.view;
  const out: TxLogState = {
    state: "empty",
    seq: 0,
    applied: 0,
    records: 0,
    objects: 0,
    targets: [],
  };
  const garbage = (problem: string): TxLogState => ({ ...out, state: "garbage", problem });
  if (end > bytes.length || end < base + HEADER) {
    return garbage(`the log object is only ${bytes.length} bytes`);
  }
  out.seq = v.getUint32(base + H.seq, true);
  out.applied = v.getUint32(base + H.applied, true);
  out.records = v.getUint32(base + H.nRecords, true);
  out.objects = v.getUint32(base + H.nObjects, true);
  if (v.getUint32(base + H.magic, true) !== LOG_MAGIC) {
    // Blank up to the applied mark: the words after it are this boot's lock,
    // clock and recovery words, not part of a transaction.
    let blank = true;
    for (let i = base; i < base + H.applied + 4; i++) if (bytes[i] !== 0) blank = false;
    if (blank) return out;
    // Every commit rewrites the same magic, so only the very first one (nothing
    // applied yet), torn between 8-byte words, leaves a header without it.
    return out.applied === 0
      ? { ...out, state: "torn" }
      : garbage("the log header has no magic but is not blank");
  }
  // A first commit torn between words can keep the magic and lose the seq.
  if (out.seq === 0) return { ...out, state: "torn" };
  if (out.applied === out.seq) return { ...out, state: "applied" };
  const bodyBytes = v.getUint32(base + H.bodyBytes, true);
  const body = base + HEADER;
  if (body + bodyBytes > end || bodyBytes % 4 !== 0) {
    return garbage(`the log header's body size ${bodyBytes} does not fit the log`);
  }
  const sum = logSum(v, base, body, body + bodyBytes);
  if (sum !== v.getUint32(base + H.sum, true)) return { ...out, state: "torn" };
  // Checksummed: every record must lie inside the body and name a listed object.
  if (out.objects * 16 > bodyBytes) {
    return garbage(`the log lists ${out.objects} objects in a ${bodyBytes}-byte body`);
  }
  for (let i = 0; i < out.objects; i++) {
    const at = body + i * 16;
    out.targets.push(readId(v, at));
  }
  let at = body + out.objects * 16;
  for (let r = 0; r < out.records; r++) {
    if (at + RECORD > body + bodyBytes) {
      return garbage(`log record ${r} of ${out.records} lies past the body`);
    }
    const length = v.getUint16(at + 4, true);
    const obj = v.getUint16(at + 6, true);
    if (obj >= out.objects) return garbage(`log record ${r} names object ${obj} of ${out.objects}`);
    at += RECORD + ((length + 3) & ~3);
    if (at > body + bodyBytes) return garbage(`log record ${r} runs past the body`);
  }
  return { ...out, state: "committed" };
}

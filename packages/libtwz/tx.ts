/**
 * Crash-consistent transactions over object memory.
 *
 * Inside a transaction every write is *redo-logged* automatically: stores go
 * to a private shadow of the touched 64-byte lines (so the transaction reads
 * its own writes), and nothing reaches object memory before commit. Commit
 * writes the changed bytes to the session's log object with a checksum and
 * makes it durable (ordering point 1: committed), then applies them in place
 * (ordering point 2: applied). Two drains, whatever the number of ranges or
 * objects. An exception inside the transaction aborts it: the shadow is
 * dropped and object memory was never touched. Recovery (when the session
 * opens) replays a committed log that was not yet applied, and only that.
 * Nested transactions flatten into the outermost one.
 *
 * The shadow is kept per object ID: every handle of a written object (a
 * read-only one, another session's) reads the transaction's writes. The
 * objects written must live in the log object's image (or be volatile):
 * commit refuses others, which that log could neither make durable nor
 * replay. All sessions of an image share its log, and sequence numbers come
 * from the log header, so they never repeat.
 *
 * There is no `tx_add_range` to forget: writes made through typed accessors
 * (`@twz/libtwz/layout`) or through {@linkcode Tx}'s setters inside `tx` are
 * the transaction's writes.
 *
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { transaction } from "@twz/libtwz/tx";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * transaction(twz, (tx) => {
 *   tx.setU32(obj, obj.baseOffset, 7);
 *   tx.setU32(obj, obj.baseOffset + 4, tx.getU32(obj, obj.baseOffset) + 1);
 * });
 * console.log(obj.view.getUint32(obj.baseOffset + 4, true)); // 8
 * twz.close();
 * ```
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
  TwzError,
} from "@twz/kernel/abi";

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

/** Where a transaction's log lives and how objects are found at recovery. */
export interface TxLogHost {
  /** The log object (created on first use). */
  logObject(): TxTarget;
  /** Map an object by ID for replay; `null` when it no longer exists. */
  mapForReplay(id: ObjID): Mapping | null;
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

/**
 * The transaction running on this thread, if any. Typed accessors read
 * `TX.current` on every load and store; outside a transaction that is one
 * comparison with `null`.
 * @internal
 */
export const TX: { current: Tx | null } = { current: null };

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
      const pool = new Uint8Array(this.#pool.length * 2);
      pool.set(this.#pool);
      this.#pool = pool;
      this.#pv = new DataView(pool.buffer);
      const dirty = new Uint32Array(this.#dirty.length * 2);
      dirty.set(this.#dirty);
      this.#dirty = dirty;
    }
    const bytes = t.mapping.bytes;
    const start = line * LINE;
    const end = Math.min(start + LINE, bytes.length);
    const at = slot * LINE;
    if (end - start === LINE) {
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
    if (slot >= this.#limit.length) {
      const limit = new Uint8Array(this.#limit.length * 2);
      limit.set(this.#limit);
      this.#limit = limit;
    }
    this.#limit[slot] = end - start;
    this.#dirty[slot * 2] = 0;
    this.#dirty[slot * 2 + 1] = 0;
    if (slot >= this.#slotLine.length) {
      const lines = new Int32Array(this.#slotLine.length * 2);
      lines.set(this.#slotLine);
      this.#slotLine = lines;
      const tis = new Int32Array(this.#slotTi.length * 2);
      tis.set(this.#slotTi);
      this.#slotTi = tis;
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
    const bit = (line * 31 + ti) & 63;
    if (((bit < 32 ? this.#bloomLo >>> bit : this.#bloomHi >>> (bit - 32)) & 1) === 0) return -1;
    const slot = this.#lookup(ti, line);
    if (slot < 0) return -1;
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
    if ((offset & 63) + size > LINE) {
      throw new RangeError(
        `A ${size}-byte store at offset ${offset} crosses a cache line: align it, or use Tx.write`,
      );
    }
    const slot = this.#slotFor(t, offset >>> 6, true);
    const at = offset & 63;
    this.#mark(slot, at, at + size);
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

  /** Write `data` at `offset` (any length, any alignment). */
  write(t: TxTarget, offset: number, data: Uint8Array, length: number = data.length): void {
    this.#check(t, offset, length);
    let o = offset;
    const end = offset + length;
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

  /** Whether this transaction has written anything in `t`. */
  touches(t: TxTarget): boolean {
    return this.#indexOf(t) >= 0;
  }

  /** Whether anything was written. */
  get empty(): boolean {
    return this.#slots === 0;
  }

  /** @internal Dirty runs found by {@linkcode Tx.collectRuns}: slot, start, length triples. */
  runs: Int32Array = new Int32Array(96);
  /** @internal Number of runs in {@linkcode Tx.runs}. */
  runCount = 0;

  /** @internal Find every dirty run of bytes, once, before commit. */
  collectRuns(): void {
    let n = 0;
    for (let slot = 0; slot < this.#slots; slot++) {
      for (let half = 0; half < 2; half++) {
        let w = this.#dirty[slot * 2 + half]!;
        while (w !== 0) {
          const start = 31 - Math.clz32(w & -w); // lowest set bit
          const shifted = w >>> start;
          // length of the run of ones starting at `start`
          const len = shifted === 0xffffffff
            ? 32
            : 31 - Math.clz32((~shifted & (shifted + 1)) >>> 0);
          if ((n + 1) * 3 > this.runs.length) {
            const bigger = new Int32Array(this.runs.length * 2);
            bigger.set(this.runs);
            this.runs = bigger;
          }
          this.runs[n * 3] = slot;
          this.runs[n * 3 + 1] = half * 32 + start;
          this.runs[n * 3 + 2] = len;
          n++;
          w = len + start >= 32 ? 0 : (w & ~(((1 << len) - 1) << start)) >>> 0;
        }
      }
    }
    // Join runs that continue across the two 32-byte halves of a line.
    let m = 0;
    for (let i = 0; i < n; i++) {
      const slot = this.runs[i * 3]!, start = this.runs[i * 3 + 1]!, len = this.runs[i * 3 + 2]!;
      if (
        m > 0 && this.runs[(m - 1) * 3] === slot &&
        this.runs[(m - 1) * 3 + 1]! + this.runs[(m - 1) * 3 + 2]! === start
      ) {
        this.runs[(m - 1) * 3 + 2]! += len;
      } else {
        this.runs[m * 3] = slot;
        this.runs[m * 3 + 1] = start;
        this.runs[m * 3 + 2] = len;
        m++;
      }
    }
    this.runCount = m;
  }

  /** @internal The target of a shadow slot. */
  slotTarget(slot: number): TxTarget {
    return this.#tlist[this.#slotTi[slot]!]!;
  }

  /** @internal The object offset of a shadow slot's line. */
  slotOffset(slot: number): number {
    return this.#slotLine[slot]! * LINE;
  }

  /** @internal The shadow pool. */
  get pool(): Uint8Array {
    return this.#pool;
  }

  /** @internal A DataView over the shadow pool. */
  get poolView(): DataView {
    return this.#pv;
  }

  /** @internal How many objects were written. */
  get targetCount(): number {
    return this.#tcount;
  }

  /** @internal Written object number `i` (first-write order). */
  target(i: number): TxTarget {
    return this.#tlist[i]!;
  }

  /** @internal The index (in first-write order) of a shadow slot's object. */
  slotIndex(slot: number): number {
    return this.#slotTi[slot]!;
  }
}

/**
 * The state kept for one log object, shared by every host (session) that
 * writes it. The sequence number lives only in the log header, so hosts
 * never reuse one another's.
 */
class TxLog {
  #ranges = new Float64Array(96);
  #one = new Float64Array(3);
  /** Reused between transactions: a transaction allocates nothing on its own. */
  readonly spare = new Tx();

  /** Replay a committed, unapplied transaction. Returns records replayed. */
  recover(host: TxLogHost): number {
    const log = host.logObject();
    const v = log.mapping.view;
    const base = baseOf(log);
    if (v.getUint32(base + H.magic, true) !== LOG_MAGIC) return 0;
    const seq = v.getUint32(base + H.seq, true);
    if (v.getUint32(base + H.applied, true) === seq) return 0;
    const bodyBytes = v.getUint32(base + H.bodyBytes, true);
    const body = base + HEADER;
    if (body + bodyBytes > log.mapping.bytes.length) return 0;
    const sum = logSum(v, base, body, body + bodyBytes);
    if (sum !== v.getUint32(base + H.sum, true)) return 0; // torn: never committed
    const nObjects = v.getUint32(base + H.nObjects, true);
    const nRecords = v.getUint32(base + H.nRecords, true);
    const maps: (Mapping | null)[] = [];
    for (let i = 0; i < nObjects; i++) {
      const at = body + i * 16;
      const id = readId(v, at);
      maps.push(host.mapForReplay(id));
    }
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

  commit(tx: Tx, host: TxLogHost): void {
    if (tx.empty) return;
    tx.collectRuns();
    const log = host.logObject();
    const base = baseOf(log);
    const nTargets = tx.targetCount;
    // The log makes durable, and replays, only objects of its own durability
    // domain (the same image); volatile objects need no durability.
    const port = log.port;
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
    const runs = tx.runs;
    const n = tx.runCount;
    const pool = tx.pool;
    // Size the body.
    if (nTargets > 0xffff) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `A transaction may write at most 65535 objects, not ${nTargets}`,
      );
    }
    let need = HEADER + nTargets * 16;
    for (let i = 0; i < n; i++) need += RECORD + ((runs[i * 3 + 2]! + 3) & ~3);
    if (base + need > log.mapping.bytes.length) {
      throw new TwzError(
        ErrorCode.OutOfSpace,
        `A transaction of ${need} bytes does not fit the ${
          log.mapping.bytes.length - base
        }-byte log`,
      );
    }
    const v = log.mapping.view;
    const bytes = log.mapping.bytes;
    const body = base + HEADER;
    let at = body;
    for (let i = 0; i < nTargets; i++) {
      const id = idBytes(tx.target(i).id);
      for (let k = 0; k < 16; k++) bytes[at + k] = id[k]!;
      at += 16;
    }
    for (let i = 0; i < n; i++) {
      const slot = runs[i * 3]!, start = runs[i * 3 + 1]!, length = runs[i * 3 + 2]!;
      v.setUint32(at, tx.slotOffset(slot) + start, true);
      v.setUint16(at + 4, length, true);
      v.setUint16(at + 6, tx.slotIndex(slot), true);
      copyRun(pool, tx.poolView, slot * LINE + start, bytes, v, at + RECORD, length);
      const padded = (length + 3) & ~3;
      for (let k = length; k < padded; k++) bytes[at + RECORD + k] = 0;
      at += RECORD + padded;
    }
    // The next number after the header's (whoever wrote it), never the
    // applied mark's: a crash before the new mark must leave it unapplied.
    let seq = (v.getUint32(base + H.seq, true) + 1) >>> 0 || 1;
    if (seq === v.getUint32(base + H.applied, true)) seq = (seq + 1) >>> 0 || 1;
    v.setUint32(base + H.magic, LOG_MAGIC, true);
    v.setUint32(base + H.seq, seq, true);
    v.setUint32(base + H.bodyBytes, at - body, true);
    v.setUint32(base + H.nObjects, nTargets, true);
    v.setUint32(base + H.nRecords, n, true);
    v.setUint32(base + H.sum, logSum(v, base, body, at), true);
    // 1: committed. One persist of the whole log: one call on the port, one
    // native call on hal-pmem.
    const one = this.#one;
    const logHandle = log.mapping.handle;
    one[0] = logHandle;
    one[1] = base;
    one[2] = at - base;
    port.persist(one, 1);
    // Apply: copy every run in place, then flush each touched line once
    // (adjacent lines of a mapping in one range), all ranges in one call:
    // `[handle, offset, length]` triples, relative to each object.
    let ranges = this.#ranges;
    let count = 0;
    let lastSlot = -1;
    for (let i = 0; i < n; i++) {
      const slot = runs[i * 3]!, start = runs[i * 3 + 1]!, length = runs[i * 3 + 2]!;
      const t = tx.slotTarget(slot);
      const line = tx.slotOffset(slot);
      const to = line + start;
      const m = t.mapping;
      const dst = m.bytes;
      copyRun(pool, tx.poolView, slot * LINE + start, dst, m.view, to, length);
      if (slot === lastSlot) continue;
      lastSlot = slot;
      const lineLength = Math.min(LINE, dst.length - line);
      if (m.lifetime !== "persistent") continue; // volatile: nothing to make durable
      if (t.port !== port) {
        // Another port of the log's domain: its flush, ordered by the drain below.
        m.flush(line, lineLength);
        continue;
      }
      const handle = m.handle;
      const last = 3 * count - 3;
      if (count > 0 && ranges[last] === handle && ranges[last + 1]! + ranges[last + 2]! === line) {
        ranges[last + 2]! += lineLength;
      } else {
        if (3 * count + 3 > ranges.length) {
          const bigger = new Float64Array(ranges.length * 2);
          bigger.set(ranges);
          ranges = this.#ranges = bigger;
        }
        ranges[3 * count] = handle;
        ranges[3 * count + 1] = line;
        ranges[3 * count + 2] = lineLength;
        count++;
      }
    }
    // 2: applied. The touched lines flushed and drained in one call (no
    // ranges: a drain alone).
    port.persist(ranges, count);
    // Mark it applied. No drain of its own: the next ordering point of any
    // kind carries it, and until then a replay would write the same bytes.
    v.setUint32(base + H.applied, seq, true);
    one[0] = logHandle;
    one[1] = base + H.applied;
    one[2] = 4;
    port.flush(one, 1);
  }
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

/** Copy a run of shadow bytes: word by word when everything is 4-byte aligned. */
function copyRun(
  src: Uint8Array,
  sv: DataView,
  from: number,
  dst: Uint8Array,
  dv: DataView,
  to: number,
  length: number,
): void {
  if (((from | to | length) & 3) === 0) {
    for (let k = 0; k < length; k += 4) dv.setInt32(to + k, sv.getInt32(from + k, true), true);
  } else {
    for (let k = 0; k < length; k++) dst[to + k] = src[from + k]!;
  }
}

function baseOf(log: TxTarget): number {
  return log.mapping.bytes.length >= 512 ? 256 : 0;
}

/** Each log object's state, by the kernel's extent of the object (its identity). */
const byLog = new WeakMap<object, TxLog>();
/** Each host's log state, found through its log object on first use. */
const byHost = new WeakMap<TxLogHost, TxLog>();

let lastHost: TxLogHost | null = null;
let lastLog: TxLog | null = null;

function logFor(host: TxLogHost): TxLog {
  if (host === lastHost) return lastLog!;
  return attach(host, true);
}

/** The shared state of `host`'s log object; a new one recovers when `recover`. */
function attach(host: TxLogHost, recover: boolean): TxLog {
  let log = byHost.get(host);
  if (!log) {
    const mapping = host.logObject().mapping;
    log = byLog.get(mapping.extent);
    if (!log) {
      log = new TxLog();
      byLog.set(mapping.extent, log);
      if (recover) log.recover(host);
    }
    byHost.set(host, log);
  }
  lastHost = host;
  lastLog = log;
  return log;
}

/**
 * Replay the host's committed but unapplied transaction, if any (a session
 * calls this when it opens; the first transaction does it otherwise).
 *
 * @returns How many records were replayed.
 */
export function recoverTransactions(host: TxLogHost): number {
  return attach(host, false).recover(host);
}

/**
 * Run `fn` as one failure-atomic transaction on the session `host`. Writes
 * through the {@linkcode Tx} (and through typed accessors) are durable
 * together when `transaction` returns, or not at all. An exception aborts and
 * is rethrown. A `transaction` inside another one joins it.
 *
 * @param host The session (its log object holds the redo log).
 * @param fn The work; its return value is returned.
 * @returns What `fn` returned.
 * @throws Whatever `fn` throws (after aborting); {TwzError} `OutOfSpace` when
 * the transaction does not fit the log.
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
  const log = logFor(host);
  const tx = log.spare;
  tx.reset();
  TX.current = tx;
  let result: T;
  let committed = false;
  try {
    try {
      result = fn(tx);
    } finally {
      TX.current = null;
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
    log.commit(tx, host);
    committed = true;
    for (const hook of tx.onCommit) hook();
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
  const bytes = log.mapping.bytes;
  const v = log.mapping.view;
  const base = baseOf(log as TxTarget);
  const out: TxLogState = {
    state: "empty",
    seq: 0,
    applied: 0,
    records: 0,
    objects: 0,
    targets: [],
  };
  const garbage = (problem: string): TxLogState => ({ ...out, state: "garbage", problem });
  if (bytes.length < base + HEADER) return garbage(`the log object is only ${bytes.length} bytes`);
  out.seq = v.getUint32(base + H.seq, true);
  out.applied = v.getUint32(base + H.applied, true);
  out.records = v.getUint32(base + H.nRecords, true);
  out.objects = v.getUint32(base + H.nObjects, true);
  if (v.getUint32(base + H.magic, true) !== LOG_MAGIC) {
    let blank = true;
    for (let i = base; i < base + HEADER; i++) if (bytes[i] !== 0) blank = false;
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
  if (body + bodyBytes > bytes.length || bodyBytes % 4 !== 0) {
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

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
import { ErrorCode, formatId, type ObjID, TwzError } from "@twz/kernel/abi";
import type { ObjectMapping } from "@twz/kernel";

/** What a transaction writes to: an object handle (`TwzObject` is one). */
export interface TxTarget {
  readonly id: ObjID;
  readonly mapping: ObjectMapping;
  readonly writable: boolean;
  /** Grow the object (outside the transaction: growing is atomic by itself). */
  grow?(size: number): void;
}

/** Where a transaction's log lives and how objects are found at recovery. */
export interface TxLogHost {
  /** The log object (created on first use). */
  logObject(): TxTarget;
  /** Map an object by ID for replay; `null` when it no longer exists. */
  mapForReplay(id: ObjID): ObjectMapping | null;
}

const LINE = 64;
const LOG_MAGIC = 0x474c5854; // "TXLG"
/** Offsets inside the log object (relative to its base). */
const H = { magic: 0, seq: 8, bodyBytes: 12, nObjects: 16, nRecords: 20, sum: 24, applied: 32 };
const HEADER = 64;
const RECORD = 16;

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
  #pool = new Uint8Array(64 * LINE);
  #pv = new DataView(this.#pool.buffer);
  /** Two 32-bit dirty masks per shadow slot (bit i = byte i of the line). */
  #dirty = new Uint32Array(128);
  #slots = 0;
  #slotLine: number[] = [];
  #slotTarget: TxTarget[] = [];
  #targets = new Map<TxTarget, Map<number, number>>();
  /** @internal */
  depth = 0;
  /** @internal Set when a nested transaction threw: the whole transaction aborts. */
  aborted: unknown = undefined;
  /** @internal Ranges freed/allocated etc. can hook commit. */
  readonly onCommit: Array<() => void> = [];

  #lastTarget: TxTarget | null = null;
  #lastLines: Map<number, number> | undefined = undefined;

  #linesOf(t: TxTarget): Map<number, number> | undefined {
    if (t === this.#lastTarget) return this.#lastLines;
    const lines = this.#targets.get(t);
    if (lines !== undefined) {
      this.#lastTarget = t;
      this.#lastLines = lines;
    }
    return lines;
  }

  /** @internal Forget everything (the object is reused for the next transaction). */
  reset(): void {
    this.#slots = 0;
    this.#slotLine.length = 0;
    this.#slotTarget.length = 0;
    this.#targets.clear();
    this.#lastTarget = null;
    this.#lastLines = undefined;
    this.depth = 0;
    this.aborted = undefined;
    this.onCommit.length = 0;
    this.runCount = 0;
  }

  #slotFor(t: TxTarget, line: number, create: boolean): number {
    let lines = this.#linesOf(t);
    if (lines === undefined) {
      if (!create) return -1;
      if (!t.writable) {
        throw new TwzError(
          ErrorCode.AccessDenied,
          `Cannot write ${formatId(t.id)}: the handle is read-only`,
        );
      }
      lines = new Map();
      this.#targets.set(t, lines);
    }
    const found = lines.get(line);
    if (found !== undefined) return found;
    if (!create) return -1;
    const slot = this.#slots++;
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
    this.#pool.set(bytes.subarray(start, end), slot * LINE);
    this.#dirty[slot * 2] = 0;
    this.#dirty[slot * 2 + 1] = 0;
    this.#slotLine.push(line);
    this.#slotTarget.push(t);
    lines.set(line, slot);
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
      this.#dirty[slot * 2 + word] |= bits;
      i = last;
    }
  }

  /** Where a load of `size` bytes (not crossing a line) at `offset` reads: view + position. */
  #loadAt(t: TxTarget, offset: number, size: number): number {
    this.#check(t, offset, size);
    const lines = this.#linesOf(t);
    if (lines === undefined) return -1;
    const slot = lines.get(offset >>> 6);
    return slot === undefined ? -1 : slot * LINE + (offset & 63);
  }

  /** The shadow position for a store of `size` bytes (within one line) at `offset`. */
  #storeAt(t: TxTarget, offset: number, size: number): number {
    this.#check(t, offset, size);
    const slot = this.#slotFor(t, offset >>> 6, true);
    const at = offset & 63;
    this.#mark(slot, at, at + size);
    return slot * LINE + at;
  }

  /** Read a u8. */
  getU8(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 1);
    return p < 0 ? t.mapping.bytes[offset] : this.#pool[p];
  }
  /** Read a little-endian u16 (2-byte aligned). */
  getU16(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 2);
    return p < 0 ? t.mapping.view.getUint16(offset, true) : this.#pv.getUint16(p, true);
  }
  /** Read a little-endian u32 (4-byte aligned). */
  getU32(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 4);
    return p < 0 ? t.mapping.view.getUint32(offset, true) : this.#pv.getUint32(p, true);
  }
  /** Read a little-endian i32 (4-byte aligned). */
  getI32(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 4);
    return p < 0 ? t.mapping.view.getInt32(offset, true) : this.#pv.getInt32(p, true);
  }
  /** Read a little-endian f64 (8-byte aligned). */
  getF64(t: TxTarget, offset: number): number {
    const p = this.#loadAt(t, offset, 8);
    return p < 0 ? t.mapping.view.getFloat64(offset, true) : this.#pv.getFloat64(p, true);
  }
  /** Read a little-endian u64 as a bigint (8-byte aligned). */
  getU64(t: TxTarget, offset: number): bigint {
    const p = this.#loadAt(t, offset, 8);
    return p < 0 ? t.mapping.view.getBigUint64(offset, true) : this.#pv.getBigUint64(p, true);
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
    const lines = this.#linesOf(t);
    let o = offset;
    const end = offset + length;
    while (o < end) {
      const lineEnd = Math.min(end, ((o >>> 6) + 1) * LINE);
      const slot = lines?.get(o >>> 6);
      if (slot === undefined) into.set(bytes.subarray(o, lineEnd), at + o - offset);
      else {
        const p = slot * LINE + (o & 63);
        into.set(this.#pool.subarray(p, p + lineEnd - o), at + o - offset);
      }
      o = lineEnd;
    }
    return into;
  }

  /** Write `data` at `offset` (any length, any alignment). */
  write(t: TxTarget, offset: number, data: Uint8Array): void {
    this.#check(t, offset, data.length);
    let o = offset;
    const end = offset + data.length;
    while (o < end) {
      const lineEnd = Math.min(end, ((o >>> 6) + 1) * LINE);
      const slot = this.#slotFor(t, o >>> 6, true);
      const at = o & 63;
      this.#pool.set(data.subarray(o - offset, lineEnd - offset), slot * LINE + at);
      this.#mark(slot, at, at + lineEnd - o);
      o = lineEnd;
    }
  }

  /** Fill `[offset, offset + length)` with `value`. */
  fill(t: TxTarget, offset: number, length: number, value = 0): void {
    this.write(t, offset, new Uint8Array(length).fill(value));
  }

  /** Whether this transaction has written anything in `t`. */
  touches(t: TxTarget): boolean {
    return this.#linesOf(t) !== undefined;
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
        let w = this.#dirty[slot * 2 + half];
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
      const slot = this.runs[i * 3], start = this.runs[i * 3 + 1], len = this.runs[i * 3 + 2];
      if (
        m > 0 && this.runs[(m - 1) * 3] === slot &&
        this.runs[(m - 1) * 3 + 1] + this.runs[(m - 1) * 3 + 2] === start
      ) {
        this.runs[(m - 1) * 3 + 2] += len;
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
    return this.#slotTarget[slot];
  }

  /** @internal The object offset of a shadow slot's line. */
  slotOffset(slot: number): number {
    return this.#slotLine[slot] * LINE;
  }

  /** @internal The shadow pool. */
  get pool(): Uint8Array {
    return this.#pool;
  }

  /** @internal The objects written, in first-write order. */
  targets(): TxTarget[] {
    return [...this.#targets.keys()];
  }
}

/** Per-host transaction log state. */
class TxLog {
  #seq = 0;
  /** Reused between transactions: a transaction allocates nothing on its own. */
  readonly spare = new Tx();
  constructor(readonly host: TxLogHost) {}

  /** Replay a committed, unapplied transaction. Returns records replayed. */
  recover(): number {
    const log = this.host.logObject();
    const v = log.mapping.view;
    const base = baseOf(log);
    if (v.getUint32(base + H.magic, true) !== LOG_MAGIC) return 0;
    const seq = v.getUint32(base + H.seq, true);
    this.#seq = seq;
    if (v.getUint32(base + H.applied, true) === seq) return 0;
    const bodyBytes = v.getUint32(base + H.bodyBytes, true);
    const body = base + HEADER;
    if (body + bodyBytes > log.mapping.bytes.length) return 0;
    const sum = checksum(v, body, body + bodyBytes, checksum(v, base + H.seq, base + H.sum, 0));
    if (sum !== v.getUint32(base + H.sum, true)) return 0; // torn: never committed
    const nObjects = v.getUint32(base + H.nObjects, true);
    const nRecords = v.getUint32(base + H.nRecords, true);
    const maps: (ObjectMapping | null)[] = [];
    for (let i = 0; i < nObjects; i++) {
      const at = body + i * 16;
      const id = (v.getBigUint64(at + 8, true) << 64n) | v.getBigUint64(at, true);
      maps.push(this.host.mapForReplay(id));
    }
    let at = body + nObjects * 16;
    const bytes = log.mapping.bytes;
    for (let r = 0; r < nRecords; r++) {
      const obj = v.getUint32(at, true);
      const length = v.getUint32(at + 4, true);
      const offset = v.getUint32(at + 8, true);
      const m = maps[obj];
      if (m && offset + length <= m.bytes.length) {
        m.bytes.set(bytes.subarray(at + RECORD, at + RECORD + length), offset);
        m.flush(offset, length);
      }
      at += RECORD + ((length + 7) & ~7);
    }
    log.mapping.drain();
    v.setUint32(base + H.applied, seq, true);
    log.mapping.persist(base + H.applied, 4);
    return nRecords;
  }

  commit(tx: Tx): void {
    if (tx.empty) return;
    tx.collectRuns();
    const log = this.host.logObject();
    const base = baseOf(log);
    const targets = tx.targets();
    const runs = tx.runs;
    const n = tx.runCount;
    const pool = tx.pool;
    // Size the body.
    let need = HEADER + targets.length * 16;
    for (let i = 0; i < n; i++) need += RECORD + ((runs[i * 3 + 2] + 7) & ~7);
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
    for (const t of targets) {
      v.setBigUint64(at, t.id & 0xffffffffffffffffn, true);
      v.setBigUint64(at + 8, t.id >> 64n, true);
      at += 16;
    }
    let lastTarget: TxTarget | null = null;
    let lastIndex = 0;
    for (let i = 0; i < n; i++) {
      const slot = runs[i * 3], start = runs[i * 3 + 1], length = runs[i * 3 + 2];
      const t = tx.slotTarget(slot);
      if (t !== lastTarget) {
        lastTarget = t;
        lastIndex = targets.indexOf(t);
      }
      v.setUint32(at, lastIndex, true);
      v.setUint32(at + 4, length, true);
      v.setUint32(at + 8, tx.slotOffset(slot) + start, true);
      v.setUint32(at + 12, 0, true);
      const from = slot * LINE + start;
      for (let k = 0; k < length; k++) bytes[at + RECORD + k] = pool[from + k];
      const padded = (length + 7) & ~7;
      for (let k = length; k < padded; k++) bytes[at + RECORD + k] = 0;
      at += RECORD + padded;
    }
    const seq = (this.#seq = (this.#seq + 1) >>> 0 || 1);
    v.setUint32(base + H.magic, LOG_MAGIC, true);
    v.setUint32(base + H.seq, seq, true);
    v.setUint32(base + H.bodyBytes, at - body, true);
    v.setUint32(base + H.nObjects, targets.length, true);
    v.setUint32(base + H.nRecords, n, true);
    v.setUint32(
      base + H.sum,
      checksum(v, body, at, checksum(v, base + H.seq, base + H.sum, 0)),
      true,
    );
    log.mapping.flush(base, at - base);
    log.mapping.drain(); // 1: committed
    // Apply: copy every run in place, then flush each touched line once
    // (adjacent lines of one object in one call).
    let flushTarget: TxTarget | null = null;
    let flushStart = 0;
    let flushEnd = 0;
    let lastSlot = -1;
    for (let i = 0; i < n; i++) {
      const slot = runs[i * 3], start = runs[i * 3 + 1], length = runs[i * 3 + 2];
      const t = tx.slotTarget(slot);
      const line = tx.slotOffset(slot);
      const to = line + start;
      const dst = t.mapping.bytes;
      const from = slot * LINE + start;
      for (let k = 0; k < length; k++) dst[to + k] = pool[from + k];
      if (slot === lastSlot) continue;
      lastSlot = slot;
      const lineEnd = Math.min(line + LINE, dst.length);
      if (t === flushTarget && line === flushEnd) flushEnd = lineEnd;
      else {
        if (flushTarget !== null) flushTarget.mapping.flush(flushStart, flushEnd - flushStart);
        flushTarget = t;
        flushStart = line;
        flushEnd = lineEnd;
      }
    }
    if (flushTarget !== null) flushTarget.mapping.flush(flushStart, flushEnd - flushStart);
    log.mapping.drain(); // 2: applied
    // Mark it applied. No drain of its own: the next ordering point of any
    // kind carries it, and until then a replay would write the same bytes.
    v.setUint32(base + H.applied, seq, true);
    log.mapping.flush(base + H.applied, 4);
  }
}

function baseOf(log: TxTarget): number {
  return log.mapping.bytes.length >= 512 ? 256 : 0;
}

const logs = new WeakMap<TxLogHost, TxLog>();

function logFor(host: TxLogHost): TxLog {
  let log = logs.get(host);
  if (!log) {
    log = new TxLog(host);
    logs.set(host, log);
    log.recover();
  }
  return log;
}

/**
 * Replay the host's committed but unapplied transaction, if any (a session
 * calls this when it opens; the first transaction does it otherwise).
 *
 * @returns How many records were replayed.
 */
export function recoverTransactions(host: TxLogHost): number {
  const existing = logs.get(host);
  if (existing) return existing.recover();
  const log = new TxLog(host);
  logs.set(host, log);
  return log.recover();
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
  try {
    result = fn(tx);
  } catch (error) {
    TX.current = null;
    throw error;
  }
  TX.current = null;
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
  log.commit(tx);
  for (const hook of tx.onCommit) hook();
  return result;
}

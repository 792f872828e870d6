/**
 * A persistent, resizable hash map inside an object: chained buckets grown by
 * linear hashing (one bucket split per insert past the load limit, so no
 * insert ever rehashes the whole table and every transaction stays small).
 * Entries and bucket segments come from the object's {@linkcode Heap}; every
 * change is a write of the running transaction, so a map survives any power
 * failure whole. Lookups read object memory in place.
 *
 * ```text
 * header (64 B): magic "HMAP", key codec, value codec, segment shift,
 *                count (f64), level, split, n0, directory, capacity, heap
 * directory:     u32 offsets of bucket segments (n0 buckets of u32 each)
 * entry:         next u32 | hash u32 | key length u32 | value length u32 | key | value
 * ```
 *
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { HashMap } from "@twz/libtwz/hashmap";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
 * const map = HashMap.create(twz, twz.create({ size: 1 << 20 }), codec.string, codec.int);
 * map.set("apples", 3); // one durable transaction
 * console.log(map.get("apples"), map.size); // 3 1
 * twz.close();
 * ```
 *
 * @module
 */
import { activeTx, transaction, TX, type Tx, type TxLogHost, type TxTarget } from "./_tx.ts";
import { Heap } from "./heap.ts";
import { type Codec, codec } from "./codec.ts";
import { hashBytes, hashInt } from "./_hash.ts";
import {
  asDamage,
  type CollectionObject,
  createRoot,
  damaged,
  guard,
  Mem,
  openRoot,
  rootHeapOffset,
  Scratch,
  stepLimit,
} from "./_mem.ts";

const MAGIC = 0x50414d48; // "HMAP"
/** Entries are built whole and written over their block: no zeroing first. */
const NO_ZERO = { zero: false } as const;
const H = {
  magic: 0,
  keyKind: 4,
  valKind: 5,
  segShift: 6,
  count: 8,
  level: 16,
  split: 20,
  n0: 24,
  dir: 28,
  dirCap: 32,
  heap: 36,
} as const;
const HEADER = 64;
const E = { next: 0, hash: 4, klen: 8, vlen: 12, key: 16 } as const;
const SEG_SHIFT = 8; // 256 buckets per segment
const SEGMENT_MASK = (1 << SEG_SHIFT) - 1;
/** Split a bucket once the map holds more entries than buckets times this. */
const LOAD = 1;
/** The class name, for damage messages. */
const NAME = "HashMap";
/** The smallest heap block an entry takes: a chain longer than the object holds such blocks loops. */
const MIN_ENTRY = 24;

/** Options for {@linkcode HashMap.create}. */
export interface HashMapOptions {
  /**
   * Entries the map should hold before it starts splitting buckets (it still
   * grows past it). @default {0}
   */
  capacity?: number;
}

/** A persistent hash map from `K` to `V`. */
export class HashMap<K, V> {
  #scratch = new Scratch();
  #entry = new Uint8Array(256);
  #entryView = new DataView(this.#entry.buffer);
  #heapCache: Heap | undefined;

  private constructor(
    readonly host: TxLogHost,
    readonly obj: TxTarget,
    /** Offset of the map header in the object. */
    readonly offset: number,
    readonly keys: Codec<K>,
    readonly values: Codec<V>,
  ) {}

  /**
   * Create a map in `obj`: a heap at its base, the map header in the heap,
   * and the header's offset stored at the base's first word... returned as
   * the handle. The object should be empty (fresh from `create`).
   *
   * @throws {TwzError} `InvalidArgument` when `obj` already holds a collection.
   */
  static create<K, V>(
    host: TxLogHost,
    obj: TxTarget & { baseOffset: number; dataEnd?: number },
    keys: Codec<K>,
    values: Codec<V>,
    options: HashMapOptions = {},
  ): HashMap<K, V> {
    const capacity = options.capacity ?? 0;
    if (!Number.isInteger(capacity) || capacity < 0 || capacity > 2 ** 30) {
      throw new RangeError(`A hash map capacity must be an integer in [0, 2^30], not ${capacity}`);
    }
    // Start with enough buckets for `capacity` entries: the level is raised,
    // and bucket segments are allocated when first used, so a large capacity
    // costs only its directory up front.
    let level = 0;
    while ((1 << (SEG_SHIFT + level)) * LOAD < capacity) level++;
    const offset = transaction(host, (tx) => {
      // Refuses an object that holds a collection; names the map from the base.
      const { heap, header } = createRoot(tx, obj, MAGIC, HEADER);
      const heapAt = heap.offset;
      const dirCap = Math.max(64, 2 << level);
      const dir = heap.alloc(tx, dirCap * 4);
      tx.setU32(obj, header + H.level, level);
      tx.setU8(obj, header + H.keyKind, keys.kind);
      tx.setU8(obj, header + H.valKind, values.kind);
      tx.setU8(obj, header + H.segShift, SEG_SHIFT);
      tx.setU32(obj, header + H.n0, 1 << SEG_SHIFT);
      tx.setU32(obj, header + H.dir, dir);
      tx.setU32(obj, header + H.dirCap, dirCap);
      tx.setU32(obj, header + H.heap, heapAt);
      return header;
    });
    return new HashMap(host, obj, offset, keys, values);
  }

  /**
   * Open the map created in `obj` by {@linkcode HashMap.create}.
   *
   * @throws {TwzError} `InvalidArgument` when there is no map, or it was made
   * with other codecs.
   */
  static open<K, V>(
    host: TxLogHost,
    obj: TxTarget & { baseOffset: number },
    keys: Codec<K>,
    values: Codec<V>,
  ): HashMap<K, V> {
    const header = openRoot(
      obj,
      MAGIC,
      NAME,
      "hash map",
      HEADER,
      keys,
      values,
      (h) => HashMap.headerProblem(obj, h),
    );
    return new HashMap(host, obj, header, keys, values);
  }

  /**
   * Check a map header in place (constant time): the linear-hashing
   * geometry, the directory (inside the object, large enough for every
   * bucket), the heap's offset and the entry count. `open` refuses a map
   * that fails it.
   *
   * @param obj The object holding the map.
   * @param header The header's offset.
   * @returns The first problem, or `undefined`.
   */
  static headerProblem(obj: CollectionObject, header: number): string | undefined {
    const v = obj.mapping.view;
    const size = v.byteLength;
    if (header + HEADER > size) return `header at ${header} lies outside the object`;
    const shift = v.getUint8(header + H.segShift);
    const n0 = v.getUint32(header + H.n0, true);
    const level = v.getUint32(header + H.level, true);
    const split = v.getUint32(header + H.split, true);
    if (shift !== SEG_SHIFT || n0 !== 1 << SEG_SHIFT || level > 22 || split >= n0 << level) {
      return `bad geometry (segment shift ${shift}, n0 ${n0}, level ${level}, split ${split})`;
    }
    const heap = v.getUint32(header + H.heap, true);
    const heapAt = rootHeapOffset(obj);
    if (heap !== heapAt) return `header names its heap at ${heap}, not ${heapAt}`;
    const dir = v.getUint32(header + H.dir, true);
    const dirCap = v.getUint32(header + H.dirCap, true);
    const buckets = (n0 << level) + split;
    if (
      dir < heapAt + 136 || dir % 8 !== 0 || dir + dirCap * 4 > size ||
      dirCap * (1 << SEG_SHIFT) < buckets
    ) {
      return `directory at ${dir} (${dirCap} segments) does not fit or hold ${buckets} buckets`;
    }
    const count = v.getFloat64(header + H.count, true);
    if (!(Number.isInteger(count) && count >= 0 && count <= size / MIN_ENTRY)) {
      return `entry count ${count} is impossible in ${size} bytes`;
    }
    return undefined;
  }

  /** The damage error for this map. */
  #bad(detail: string): Error {
    return damaged(NAME, this.obj.id, detail);
  }

  #heap(): Heap {
    // The heap's offset is fixed when the map is made.
    return this.#heapCache ??= new Heap(
      this.obj,
      this.obj.mapping.view.getUint32(this.offset + H.heap, true),
    );
  }

  /** Number of entries. */
  get size(): number {
    return guard(NAME, this.obj, () => new Mem(this.obj, activeTx()).f64(this.offset + H.count));
  }

  /** Encode `key` into the scratch buffer; returns its length. */
  #encodeKey(key: K): number {
    return this.keys.encode(key, this.#scratch.reserve(this.keys.size(key)), 0);
  }

  /** The head slot of bucket `b`, or -1 while its segment is not allocated (empty). */
  #slotOf(m: Mem, b: number): number {
    const seg = m.u32(m.u32(this.offset + H.dir) + (b >>> SEG_SHIFT) * 4);
    return seg === 0 ? -1 : seg + (b & SEGMENT_MASK) * 4;
  }

  /** The head slot of bucket `b`, allocating its segment (zeroed) when needed. */
  #slotFor(tx: Tx, m: Mem, b: number): number {
    const slot = this.#slotOf(m, b);
    if (slot >= 0) return slot;
    const seg = this.#heap().alloc(tx, (1 << SEG_SHIFT) * 4);
    tx.setU32(this.obj, m.u32(this.offset + H.dir) + (b >>> SEG_SHIFT) * 4, seg);
    return seg + (b & SEGMENT_MASK) * 4;
  }

  /** The bucket number of `hash`. */
  #bucketOf(m: Mem, hash: number): number {
    const h = this.offset;
    const span = m.u32(h + H.n0) << m.u32(h + H.level);
    const b = hash & (span - 1);
    return b < m.u32(h + H.split) ? hash & (span * 2 - 1) : b;
  }

  /** The bucket of the last {@linkcode HashMap.#find}. */
  #bucket = 0;

  /**
   * Find the entry for the scratch key: [link to it, entry], or [-1, 0]
   * (the bucket is in {@linkcode HashMap.#bucket}).
   */
  #find(m: Mem, hash: number, klen: number): [number, number] {
    const b = this.#bucketOf(m, hash);
    this.#bucket = b;
    let link = this.#slotOf(m, b);
    if (link < 0) return [-1, 0];
    let steps = stepLimit(this.obj.mapping.bytes.length, MIN_ENTRY);
    for (let e = m.u32(link); e !== 0; link = e + E.next, e = m.u32(link)) {
      if (--steps < 0) throw this.#bad(`the chain of bucket ${b} loops`);
      if (
        m.u32(e + E.hash) === hash && m.u32(e + E.klen) === klen &&
        m.equals(e + E.key, this.#scratch.bytes, klen)
      ) {
        return [link, e];
      }
    }
    return [-1, 0];
  }

  /**
   * The first entry of the chain of the bucket for `hash`, or 0, reading
   * object memory in place through `v` (no transaction running).
   */
  #chainView(v: DataView, hash: number): number {
    const h = this.offset;
    const span = v.getUint32(h + H.n0, true) << v.getUint32(h + H.level, true);
    let bucket = hash & (span - 1);
    if (bucket < v.getUint32(h + H.split, true)) bucket = hash & (span * 2 - 1);
    const seg = v.getUint32(v.getUint32(h + H.dir, true) + (bucket >>> SEG_SHIFT) * 4, true);
    return seg === 0 ? 0 : v.getUint32(seg + (bucket & SEGMENT_MASK) * 4, true);
  }

  /**
   * The entry for the scratch key, reading object memory in place (no
   * transaction running): the lookup hot path, allocation-free.
   */
  #findRaw(hash: number, klen: number): number {
    const v = this.obj.mapping.view;
    const b = this.obj.mapping.bytes;
    const k = this.#scratch.bytes;
    let steps = stepLimit(b.length, MIN_ENTRY);
    for (let e = this.#chainView(v, hash); e !== 0; e = v.getUint32(e + E.next, true)) {
      if (--steps < 0) throw this.#bad("a bucket's chain loops");
      if (v.getUint32(e + E.hash, true) !== hash || v.getUint32(e + E.klen, true) !== klen) {
        continue;
      }
      let i = 0;
      const at = e + E.key;
      while (i < klen && b[at + i] === k[i]) i++;
      if (i === klen) return e;
    }
    return 0;
  }

  #lookup(key: K): { e: number; klen: number; m: Mem | null } {
    const klen = this.#encodeKey(key);
    const hash = hashBytes(this.#scratch.bytes, 0, klen);
    const tx = activeTx();
    if (tx === null) return { e: this.#findRaw(hash, klen), klen, m: null };
    const m = new Mem(this.obj, tx);
    return { e: this.#find(m, hash, klen)[1], klen, m };
  }

  /**
   * The entry for an `int` key given as its two 32-bit halves (the common
   * case), without encoding it: no transaction running.
   */
  #findIntRaw(lo: number, hi: number): number {
    const hash = hashInt(lo, hi);
    const x = this.obj.mapping.extent;
    if (!x.words) return this.#findIntView(hash, lo, hi);
    // 32-bit word views: every field read here is 4-byte aligned.
    const w = x.u32;
    const h = this.offset >>> 2;
    const span = w[h + (H.n0 >>> 2)]! << w[h + (H.level >>> 2)]!;
    let bucket = hash & (span - 1);
    if (bucket < w[h + (H.split >>> 2)]!) bucket = hash & (span * 2 - 1);
    const seg = w[(w[h + (H.dir >>> 2)]! >>> 2) + (bucket >>> SEG_SHIFT)];
    if (seg === 0 || seg === undefined) return 0;
    let steps = w.length >>> 2; // an entry takes at least 4 words: a longer chain loops
    for (let e = w[(seg >>> 2) + (bucket & SEGMENT_MASK)]; e !== 0; e = w[e >>> 2]) {
      if (e === undefined || --steps < 0 || (e & 3) !== 0) {
        throw this.#bad(`the chain of bucket ${bucket} is damaged (entry ${e})`);
      }
      const at = e >>> 2;
      if (w[at + 1] === hash && w[at + 4] === lo && w[at + 5] === hi && w[at + 2] === 8) return e;
    }
    return 0;
  }

  /** {@linkcode HashMap.#findIntRaw} through the DataView (unaligned or big-endian hosts). */
  #findIntView(hash: number, lo: number, hi: number): number {
    const v = this.obj.mapping.view;
    let steps = stepLimit(v.byteLength, MIN_ENTRY);
    for (let e = this.#chainView(v, hash); e !== 0; e = v.getUint32(e + E.next, true)) {
      if (--steps < 0) throw this.#bad("a bucket's chain loops");
      if (
        v.getUint32(e + E.hash, true) === hash && v.getUint32(e + E.key, true) === lo &&
        v.getUint32(e + E.key + 4, true) === hi && v.getUint32(e + E.klen, true) === 8
      ) return e;
    }
    return 0;
  }

  /** Offset of the value stored for `key` (read it in place), or -1. */
  locate(key: K): number {
    try {
      return this.#locate(key);
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  #locate(key: K): number {
    if (
      typeof key === "number" && (key >>> 0) === key && TX.current === null &&
      (this.keys as unknown) === codec.int
    ) {
      const e = this.#findIntRaw(key, 0);
      return e === 0 ? -1 : e + E.key + 8;
    }
    const klen = this.#encodeKey(key);
    const hash = hashBytes(this.#scratch.bytes, 0, klen);
    const tx = activeTx();
    const e = tx === null
      ? this.#findRaw(hash, klen)
      : this.#find(new Mem(this.obj, tx), hash, klen)[1];
    return e === 0 ? -1 : e + E.key + klen;
  }

  /** Whether `key` is in the map. */
  has(key: K): boolean {
    return this.locate(key) >= 0;
  }

  /** The value for `key`, or `undefined`. */
  get(key: K): V | undefined {
    try {
      return this.#get(key);
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  /** Check that a value of `vlen` bytes at `at` lies inside the object. */
  #value(at: number, vlen: number): void {
    if (at + vlen > this.obj.mapping.bytes.length) {
      throw this.#bad(`a ${vlen}-byte value at ${at} runs past the object`);
    }
  }

  #get(key: K): V | undefined {
    if (
      (this.keys as unknown) === codec.int && typeof key === "number" &&
      (key >>> 0) === key && activeTx() === null
    ) {
      const e = this.#findIntRaw(key, 0);
      if (e === 0) return undefined;
      const vlen = this.obj.mapping.view.getUint32(e + E.vlen, true);
      this.#value(e + E.key + 8, vlen);
      return this.values.decode(this.obj.mapping.bytes, e + E.key + 8, vlen);
    }
    const { e, klen, m } = this.#lookup(key);
    if (e === 0) return undefined;
    const at = e + E.key + klen;
    if (m === null) {
      const vlen = this.obj.mapping.view.getUint32(e + E.vlen, true);
      this.#value(at, vlen);
      return this.values.decode(this.obj.mapping.bytes, at, vlen);
    }
    const vlen = m.u32(e + E.vlen);
    return this.values.decode(m.bytes(at, vlen), 0, vlen);
  }

  /**
   * Set `key` to `value` (one transaction, or part of the running one).
   *
   * @returns `true` when the key is new.
   */
  set(key: K, value: V): boolean {
    return guard(NAME, this.obj, () => transaction(this.host, (tx) => this.#set(tx, key, value)));
  }

  #set(tx: Tx, key: K, value: V): boolean {
    const o = this.obj;
    const klen = this.#encodeKey(key);
    const scratch = this.#scratch.reserve(klen + this.values.size(value), klen);
    const vlen = this.values.encode(value, scratch, klen);
    const hash = hashBytes(scratch, 0, klen);
    const m = new Mem(o, tx);
    const [link, found] = this.#find(m, hash, klen);
    const heap = this.#heap();
    if (found !== 0 && m.u32(found + E.vlen) === vlen) {
      tx.write(o, found + E.key + klen, scratch.subarray(klen, klen + vlen));
      return false;
    }
    // The whole entry is built here and written with one transaction write.
    const size = E.key + klen + vlen;
    if (this.#entry.length < size) this.#entry = new Uint8Array(size * 2);
    const entry = this.#entry;
    if (this.#entryView.buffer !== entry.buffer) this.#entryView = new DataView(entry.buffer);
    const ev = this.#entryView;
    for (let i = 0; i < klen + vlen; i++) entry[E.key + i] = scratch[i]!;
    ev.setUint32(E.hash, hash, true);
    ev.setUint32(E.klen, klen, true);
    ev.setUint32(E.vlen, vlen, true);
    const bucket = this.#bucket;
    const e = heap.alloc(tx, size, NO_ZERO); // written whole below
    if (found !== 0) {
      // Replace in place in the chain.
      ev.setUint32(E.next, tx.getU32(o, found + E.next), true);
      tx.write(o, e, entry, size);
      tx.setU32(o, link, e);
      heap.free(tx, found);
      return false;
    }
    const head = this.#slotFor(tx, m, bucket);
    ev.setUint32(E.next, tx.getU32(o, head), true);
    tx.write(o, e, entry, size);
    tx.setU32(o, head, e);
    const count = tx.getF64(o, this.offset + H.count) + 1;
    tx.setF64(o, this.offset + H.count, count);
    this.#maybeSplit(tx, m, heap, count);
    return true;
  }

  #maybeSplit(tx: Tx, m: Mem, heap: Heap, count: number): void {
    const o = this.obj;
    const h = this.offset;
    const n0 = m.u32(h + H.n0);
    const level = m.u32(h + H.level);
    const split = m.u32(h + H.split);
    const span = n0 << level;
    const buckets = span + split;
    if (count <= buckets * LOAD || buckets >= 2 ** 30) return;
    const fresh = buckets; // the new bucket's number
    const segIndex = fresh >>> SEG_SHIFT;
    let dir = m.u32(h + H.dir);
    const dirCap = m.u32(h + H.dirCap);
    if (segIndex >= dirCap) {
      const next = heap.alloc(tx, dirCap * 8);
      tx.write(o, next, tx.read(o, dir, dirCap * 4));
      heap.free(tx, dir);
      tx.setU32(o, h + H.dir, next);
      tx.setU32(o, h + H.dirCap, dirCap * 2);
      dir = next;
    }
    // Move the entries of bucket `split` whose hash now lands in `fresh`,
    // writing only the links that change (the usual short chain keeps its
    // first entry and needs no write for it). Segments are allocated when a
    // bucket in them first gets an entry.
    const oldSlot = this.#slotOf(m, split);
    const first = oldSlot < 0 ? 0 : m.u32(oldSlot);
    let moves = false;
    const limit = stepLimit(o.mapping.bytes.length, MIN_ENTRY);
    let steps = limit;
    for (let e = first; e !== 0 && !moves; e = m.u32(e + E.next)) {
      if (--steps < 0) throw this.#bad(`the chain of bucket ${split} loops`);
      moves = (m.u32(e + E.hash) & (span * 2 - 1)) === fresh;
    }
    steps = limit;
    const newSlot = moves ? this.#slotFor(tx, m, fresh) : -1;
    let keepTail = oldSlot, keepCur = first;
    let moveTail = newSlot, moveCur = 0; // a fresh bucket is empty
    for (let e = moves ? first : 0; e !== 0;) {
      if (--steps < 0) throw this.#bad(`the chain of bucket ${split} loops`);
      const next = m.u32(e + E.next);
      if ((m.u32(e + E.hash) & (span * 2 - 1)) === fresh) {
        if (moveCur !== e) tx.setU32(o, moveTail, e);
        moveTail = e + E.next;
        moveCur = next;
      } else {
        if (keepCur !== e) tx.setU32(o, keepTail, e);
        keepTail = e + E.next;
        keepCur = next;
      }
      e = next;
    }
    if (moves && keepCur !== 0) tx.setU32(o, keepTail, 0);
    if (moves && moveCur !== 0) tx.setU32(o, moveTail, 0);
    if (split + 1 === span) {
      tx.setU32(o, h + H.level, level + 1);
      tx.setU32(o, h + H.split, 0);
    } else {
      tx.setU32(o, h + H.split, split + 1);
    }
  }

  /**
   * Remove `key` (one transaction, or part of the running one).
   *
   * @returns Whether it was there.
   */
  delete(key: K): boolean {
    return guard(NAME, this.obj, () => this.#delete(key));
  }

  #delete(key: K): boolean {
    return transaction(this.host, (tx) => {
      const klen = this.#encodeKey(key);
      const m = new Mem(this.obj, tx);
      const [link, e] = this.#find(m, hashBytes(this.#scratch.bytes, 0, klen), klen);
      if (e === 0) return false;
      tx.setU32(this.obj, link, tx.getU32(this.obj, e + E.next));
      this.#heap().free(tx, e);
      tx.setF64(this.obj, this.offset + H.count, tx.getF64(this.obj, this.offset + H.count) - 1);
      return true;
    });
  }

  /**
   * Walk every bucket and check the map (an fsck of it): the directory and
   * bucket segments lie inside the object, every entry lies inside it, its
   * stored hash is the hash of its key and lands in the bucket that chains
   * it, no chain loops, and the entry count matches. Reads object memory in
   * place.
   *
   * @returns Buckets and entries seen; `problem` names the first inconsistency.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { codec } from "@twz/libtwz/codec";
   * import { HashMap } from "@twz/libtwz/hashmap";
   * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
   * const map = HashMap.create(twz, twz.create({ size: 1 << 20 }), codec.string, codec.int);
   * map.set("a", 1);
   * console.log(map.check()); // { buckets: 256, entries: 1 }
   * twz.close();
   * ```
   */
  check(): { buckets: number; entries: number; problem?: string } {
    const v = this.obj.mapping.view;
    const b = this.obj.mapping.bytes;
    const h = this.offset;
    const size = b.length;
    const n0 = v.getUint32(h + H.n0, true);
    const level = v.getUint32(h + H.level, true);
    const split = v.getUint32(h + H.split, true);
    const dir = v.getUint32(h + H.dir, true);
    const dirCap = v.getUint32(h + H.dirCap, true);
    const result: { buckets: number; entries: number; problem?: string } = {
      buckets: 0,
      entries: 0,
    };
    const header = HashMap.headerProblem(this.obj as CollectionObject, h);
    if (header !== undefined) {
      result.problem = header;
      return result;
    }
    if (n0 !== 1 << SEG_SHIFT || level > 22 || split >= n0 << level) {
      result.problem = `bad geometry (n0 ${n0}, level ${level}, split ${split})`;
      return result;
    }
    const span = n0 << level;
    const buckets = span + split;
    result.buckets = buckets;
    if (dir === 0 || dir + dirCap * 4 > size || dirCap * (1 << SEG_SHIFT) < buckets) {
      result.problem =
        `directory at ${dir} (${dirCap} segments) does not fit or hold ${buckets} buckets`;
      return result;
    }
    const seen = new Set<number>();
    for (let bucket = 0; bucket < buckets; bucket++) {
      const seg = v.getUint32(dir + (bucket >>> SEG_SHIFT) * 4, true);
      if (seg === 0) {
        bucket |= SEGMENT_MASK; // the whole segment is unallocated: empty buckets
        continue;
      }
      if (seg + (1 << SEG_SHIFT) * 4 > size) {
        result.problem = `bucket segment ${bucket >>> SEG_SHIFT} at ${seg} lies outside the object`;
        return result;
      }
      for (
        let e = v.getUint32(seg + (bucket & SEGMENT_MASK) * 4, true);
        e !== 0;
        e = v.getUint32(e + E.next, true)
      ) {
        if (e + E.key > size || seen.has(e)) {
          result.problem = seen.has(e)
            ? `bucket ${bucket}: the chain loops at entry ${e}`
            : `bucket ${bucket}: entry ${e} lies outside the object`;
          return result;
        }
        seen.add(e);
        const klen = v.getUint32(e + E.klen, true);
        const vlen = v.getUint32(e + E.vlen, true);
        if (e + E.key + klen + vlen > size) {
          result.problem =
            `bucket ${bucket}: entry ${e} (${klen}+${vlen} bytes) runs past the object`;
          return result;
        }
        const hash = v.getUint32(e + E.hash, true);
        if (hashBytes(b, e + E.key, klen) !== hash) {
          result.problem = `bucket ${bucket}: entry ${e}'s stored hash is not its key's hash`;
          return result;
        }
        const home = (hash & (span - 1)) < split ? hash & (span * 2 - 1) : hash & (span - 1);
        if (home !== bucket) {
          result.problem = `bucket ${bucket}: entry ${e} belongs in bucket ${home}`;
          return result;
        }
        result.entries++;
      }
    }
    const count = v.getFloat64(h + H.count, true);
    if (count !== result.entries) {
      result.problem = `count ${count} != ${result.entries} entries`;
    }
    return result;
  }

  /** Every entry, in bucket order (a snapshot is not taken: don't mutate while iterating). */
  *entries(): Generator<[K, V]> {
    try {
      yield* this.#entries();
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  *#entries(): Generator<[K, V]> {
    const m = new Mem(this.obj, activeTx());
    const h = this.offset;
    const problem = HashMap.headerProblem(this.obj as CollectionObject, h);
    if (problem !== undefined) throw this.#bad(problem);
    const buckets = (m.u32(h + H.n0) << m.u32(h + H.level)) + m.u32(h + H.split);
    let steps = stepLimit(this.obj.mapping.bytes.length, MIN_ENTRY);
    for (let b = 0; b < buckets; b++) {
      const slot = this.#slotOf(m, b);
      if (slot < 0) continue;
      for (let e = m.u32(slot); e !== 0; e = m.u32(e + E.next)) {
        if (--steps < 0) throw this.#bad(`the chain of bucket ${b} loops`);
        const klen = m.u32(e + E.klen);
        const vlen = m.u32(e + E.vlen);
        this.#value(e + E.key, klen + vlen);
        const raw = m.bytes(e + E.key, klen + vlen);
        const at = m.start(e + E.key);
        yield [this.keys.decode(raw, at, klen), this.values.decode(raw, at + klen, vlen)];
      }
    }
  }

  /** Every key. */
  *keysOf(): Generator<K> {
    for (const [k] of this.entries()) yield k;
  }
}

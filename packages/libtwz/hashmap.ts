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
import { BLOCK_HEADER, FRESH_MIN, Heap } from "./heap.ts";
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

/**
 * Write a new entry into its block: in place when the heap gave fresh space
 * (a block of FRESH_MIN bytes or more), else logged. A small entry calls
 * `Tx.write` directly: one call less on the insert path, and one function
 * less for V8 to optimize in a fresh process's first inserts.
 */
function writeEntry(tx: Tx, o: TxTarget, e: number, entry: Uint8Array, size: number): void {
  if (size + BLOCK_HEADER >= FRESH_MIN) tx.writeFresh(o, e, entry, size);
  else tx.write(o, e, entry, size);
}
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
   * grows past it). Their buckets are laid out when the map is made (as a C
   * map allocates its bucket array), so inserts up to it allocate only their
   * entries — unless `create` runs inside a transaction, or the buckets would
   * take more than a quarter of the object: then each bucket segment is
   * allocated by the first insert into it. @default {0}
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
  ) {
    this.#x = obj.mapping.extent;
    this.#h = offset >>> 2;
    this.#intKeys = (keys as unknown) === codec.int;
  }

  /**
   * The object's live bytes and word views (the kernel retargets them in
   * place when the object moves and empties them when it goes away), held
   * here so a lookup reaches them in one load.
   */
  readonly #x: TxTarget["mapping"]["extent"];
  /** The header's offset in 32-bit words. */
  readonly #h: number;
  /** Whether the keys are `codec.int` (the integer lookup path). */
  readonly #intKeys: boolean;

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
    // and the bucket segments are allocated after the map is made (see
    // #presize), or when first used when they do not fit a quarter of the
    // object (then a large capacity costs only its directory up front).
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
    const map = new HashMap(host, obj, offset, keys, values);
    map.#presize(capacity);
    return map;
  }

  /**
   * Allocate the bucket segments of the first `capacity` entries' buckets
   * now, as a C map allocates its bucket array, instead of at the inserts
   * that first use them: one small transaction per segment (any log holds
   * it), only outside a running transaction and while they take at most a
   * quarter of the object. A crash between them leaves a map whose other
   * segments are allocated when first used, as always.
   */
  #presize(capacity: number): void {
    if (capacity === 0 || activeTx() !== null) return;
    const m = new Mem(this.obj, null);
    const buckets = m.u32(this.offset + H.n0) << m.u32(this.offset + H.level);
    const segments = Math.ceil(Math.min(capacity, buckets) / (1 << SEG_SHIFT));
    if (segments * ((1 << SEG_SHIFT) * 4 + 8) > this.obj.mapping.bytes.length / 4) return;
    for (let s = 0; s < segments; s++) {
      transaction(this.host, (tx) => this.#slotFor(tx, new Mem(this.obj, tx), s << SEG_SHIFT));
    }
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
    const split = m.u32(h + H.split);
    this.#span = span;
    this.#split = split;
    const b = hash & (span - 1);
    return b < split ? hash & (span * 2 - 1) : b;
  }

  /** The geometry the last {@linkcode HashMap.#bucketOf} read: `n0 << level`, and `split`. */
  #span = 0;
  #split = 0;
  /** The head slot of the bucket of the last {@linkcode HashMap.#findLink} (-1: no segment yet). */
  #head = -1;

  /** The bucket of the last {@linkcode HashMap.#find}. */
  #bucket = 0;
  /** The link to the entry the last {@linkcode HashMap.#findLink} found (-1: none). */
  #link = -1;

  /**
   * Find the entry for the scratch key: [link to it, entry], or [-1, 0]
   * (the bucket is in {@linkcode HashMap.#bucket}).
   */
  #find(m: Mem, hash: number, klen: number): [number, number] {
    const e = this.#findLink(m, hash, klen);
    return [this.#link, e];
  }

  /**
   * {@linkcode HashMap.#find} without the array: the entry for the scratch
   * key, or 0; the link to it in {@linkcode HashMap.#link}, its bucket in
   * {@linkcode HashMap.#bucket}.
   */
  #findLink(
    m: Mem,
    hash: number,
    klen: number,
    key: Uint8Array = this.#scratch.bytes,
    keyAt = 0,
  ): number {
    const b = this.#bucketOf(m, hash);
    this.#bucket = b;
    this.#link = -1;
    let link = this.#slotOf(m, b);
    this.#head = link;
    if (link < 0) return 0;
    let steps = stepLimit(this.obj.mapping.bytes.length, MIN_ENTRY);
    for (let e = m.u32(link); e !== 0; link = e + E.next, e = m.u32(link)) {
      if (--steps < 0) throw this.#bad(`the chain of bucket ${b} loops`);
      if (
        m.u32(e + E.hash) === hash && m.u32(e + E.klen) === klen &&
        m.equals(e + E.key, key, klen, keyAt)
      ) {
        this.#link = link;
        return e;
      }
    }
    return 0;
  }

  /**
   * {@linkcode HashMap.#findLink} reading object memory in place through its
   * DataView (the transaction has not written the object yet): the same
   * results and fields, no reader in between.
   */
  #findLinkRaw(hash: number, klen: number, key: Uint8Array, keyAt: number): number {
    // Through the 32-bit word view when every offset on the way is 4-aligned
    // (word loads cost less than DataView calls before the insert path is
    // optimized, and as much after); else, and for every damage report, the
    // DataView walk below.
    const w = this.#x.u32;
    const h = this.#h;
    if ((this.offset & 3) === 0 && h + HEADER / 4 <= w.length) {
      const span = w[h + H.n0 / 4]! << w[h + H.level / 4]!;
      const split = w[h + H.split / 4]!;
      let b = hash & (span - 1);
      if (b < split) b = hash & (span * 2 - 1);
      const dir = w[h + H.dir / 4]!;
      const seg = w[(dir >>> 2) + (b >>> SEG_SHIFT)];
      if (seg === 0 && (dir & 3) === 0) {
        this.#span = span;
        this.#split = split;
        this.#bucket = b;
        this.#link = this.#head = -1;
        return 0;
      }
      if (seg !== undefined && ((dir | seg) & 3) === 0) {
        const r = this.#walkWords(w, seg + (b & SEGMENT_MASK) * 4, hash, klen, key, keyAt);
        if (r >= 0) {
          this.#span = span;
          this.#split = split;
          this.#bucket = b;
          this.#head = seg + (b & SEGMENT_MASK) * 4;
          return r;
        }
      }
    }
    return this.#findLinkView(hash, klen, key, keyAt);
  }

  /**
   * The chain walk of {@linkcode HashMap.#findLinkRaw} over the word view
   * from the head slot `link`: the entry, or 0 (and {@linkcode HashMap.#link}
   * set), or -1 when an entry offset is not a 4-aligned word inside the
   * object or the chain is longer than the object holds (the caller walks
   * again through the DataView, which reports the damage).
   */
  #walkWords(
    w: Uint32Array,
    link: number,
    hash: number,
    klen: number,
    key: Uint8Array,
    keyAt: number,
  ): number {
    const bytes = this.#x.bytes;
    let steps = w.length >>> 2; // an entry takes at least 4 words
    for (let e = w[link >>> 2]; e !== 0; link = e + E.next, e = w[link >>> 2]) {
      if (e === undefined || (e & 3) !== 0 || --steps < 0) return -1;
      const at = e >>> 2;
      if (w[at + 1] !== hash || w[at + 2] !== klen) continue;
      let i = 0;
      const k = e + E.key;
      while (i < klen && bytes[k + i] === key[keyAt + i]) i++;
      if (i === klen) {
        this.#link = link;
        return e;
      }
    }
    this.#link = -1;
    return 0;
  }

  /** {@linkcode HashMap.#findLinkRaw} through the object's DataView. */
  #findLinkView(hash: number, klen: number, key: Uint8Array, keyAt: number): number {
    const v = this.obj.mapping.view;
    const h = this.offset;
    const span = v.getUint32(h + H.n0, true) << v.getUint32(h + H.level, true);
    const split = v.getUint32(h + H.split, true);
    this.#span = span;
    this.#split = split;
    let b = hash & (span - 1);
    if (b < split) b = hash & (span * 2 - 1);
    this.#bucket = b;
    this.#link = -1;
    const seg = v.getUint32(v.getUint32(h + H.dir, true) + (b >>> SEG_SHIFT) * 4, true);
    let link = seg === 0 ? -1 : seg + (b & SEGMENT_MASK) * 4;
    this.#head = link;
    if (link < 0) return 0;
    const bytes = this.obj.mapping.bytes;
    let steps = stepLimit(bytes.length, MIN_ENTRY);
    for (let e = v.getUint32(link, true); e !== 0; link = e + E.next, e = v.getUint32(link, true)) {
      if (--steps < 0) throw this.#bad(`the chain of bucket ${b} loops`);
      if (v.getUint32(e + E.hash, true) !== hash || v.getUint32(e + E.klen, true) !== klen) {
        continue;
      }
      let i = 0;
      const at = e + E.key;
      while (i < klen && bytes[at + i] === key[keyAt + i]) i++;
      if (i === klen) {
        this.#link = link;
        return e;
      }
    }
    return 0;
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
   * transaction running): the general lookup path, allocation-free.
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

  /** The error of a damaged chain met by {@linkcode HashMap.locate}. */
  #chainDamage(bucket: number, e: number | undefined): unknown {
    const what = e === undefined ? "runs past the object" : `is damaged at entry ${e}`;
    return asDamage(NAME, this.obj, this.#bad(`the chain of bucket ${bucket} ${what}`));
  }

  /**
   * Offset of the value stored for `key` (read it in place), or -1. Inside
   * a transaction the lookup sees the transaction's writes (the offset is
   * where the value will be once it commits).
   *
   * The fast path, with no allocation and no encoding: a `codec.int` map, a
   * key in [0, 2^32), no transaction running (then a lookup costs about what
   * a chain walk in C does, once optimized).
   *
   * @throws {TwzError} `ObjectDamaged` when the map's chain is damaged.
   */
  locate(key: K): number {
    // The fast path, written out (get() comes through here too, so it is hot,
    // and optimized, early): the key hashed without encoding it, read through
    // the object's 32-bit word view. Every load is a word load at a 4-aligned
    // index, so the checks are cheap: a load past the end yields `undefined`,
    // never other bytes; a misaligned directory or segment offset, or an
    // empty word view (a withdrawn or deleted mapping, a closed session),
    // takes the general path, which reads through the DataView and reports
    // what is wrong; a misaligned or out-of-range entry, or a chain longer
    // than the object can hold, is damage.
    const w = this.#x.u32;
    const h = this.#h;
    if (
      !this.#intKeys || typeof key !== "number" || (key >>> 0) !== key ||
      TX.current !== null || h + HEADER / 4 > w.length
    ) return this.#locateAny(key);
    const hash = hashInt(key, 0);
    const span = w[h + H.n0 / 4]! << w[h + H.level / 4]!;
    let bucket = hash & (span - 1);
    if (bucket < w[h + H.split / 4]!) bucket = hash & (span * 2 - 1);
    const dir = w[h + H.dir / 4]!;
    const seg = w[(dir >>> 2) + (bucket >>> SEG_SHIFT)];
    if (seg === 0) return -1;
    if (seg === undefined || ((dir | seg) & 3) !== 0) return this.#locateAny(key);
    // An entry takes at least 4 words: a longer chain loops.
    let steps = w.length >>> 2;
    let e = w[(seg >>> 2) + (bucket & SEGMENT_MASK)];
    while (e !== 0) {
      if (e === undefined || (e & 3) !== 0 || --steps < 0) throw this.#chainDamage(bucket, e);
      const at = e >>> 2;
      if (w[at + 1] === hash && w[at + 4] === key && w[at + 5] === 0 && w[at + 2] === 8) {
        return e + E.key + 8;
      }
      e = w[at];
    }
    return -1;
  }

  /** {@linkcode HashMap.locate} for any key: encoded, through the transaction or the DataView. */
  #locateAny(key: K): number {
    try {
      return this.#locate(key);
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  #locate(key: K): number {
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

  /** The value for `key` (decoded: a copy), or `undefined`. */
  get(key: K): V | undefined {
    if (this.#intKeys && TX.current === null) {
      // In place (no transaction): the value's offset, or -1. Through
      // `locate`, so its hot path is shared (and optimized early) by both.
      const at = this.locate(key);
      if (at < 0) return undefined;
      // The value's length is the entry's fourth word, 12 bytes before the value.
      const x = this.#x;
      const vlen = x.u32[(at >>> 2) - 3];
      if ((at & 3) === 0 && vlen !== undefined && at + vlen <= x.bytes.length) {
        return this.values.decode(x.bytes, at, vlen);
      }
    }
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
    // guard() and a closure per call, written out: the insert hot path.
    this.#setKey = key;
    this.#setValue = value;
    try {
      return transaction(this.host, this.#setFn);
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    } finally {
      this.#setKey = this.#setValue = undefined;
    }
  }

  /** The arguments of the running {@linkcode HashMap.set}, for {@linkcode HashMap.#setFn}. */
  #setKey: K | undefined;
  #setValue: V | undefined;
  /** The transaction body of {@linkcode HashMap.set} (made once). */
  #setFn = (tx: Tx): boolean => this.#set(tx, this.#setKey as K, this.#setValue as V);
  /** A reader through the last transaction (the thread's transaction object is reused). */
  #mem: Mem | null = null;

  #set(tx: Tx, key: K, value: V): boolean {
    const o = this.obj;
    // The key and value are encoded where the entry holds them: the entry
    // is built in place and written with one transaction write.
    const most = E.key + this.keys.size(key) + this.values.size(value);
    if (this.#entry.length < most) {
      this.#entry = new Uint8Array(most * 2);
      this.#entryView = new DataView(this.#entry.buffer);
    }
    const entry = this.#entry;
    const klen = this.keys.encode(key, entry, E.key);
    const vlen = this.values.encode(value, entry, E.key + klen);
    // An integer key in [0, 2^32) hashes as its encoding does, from the number.
    const hash = typeof key === "number" && (key >>> 0) === key &&
        (this.keys as unknown) === codec.int
      ? hashInt(key, 0)
      : hashBytes(entry, E.key, klen);
    let m = this.#mem;
    if (m === null || m.tx !== tx) m = this.#mem = new Mem(o, tx);
    // Before the transaction's first write to the object (a set of its own),
    // the object's memory is what the transaction sees: the lookup reads it
    // in place.
    const found = tx.touches(o)
      ? this.#findLink(m, hash, klen, entry, E.key)
      : this.#findLinkRaw(hash, klen, entry, E.key);
    const link = this.#link;
    const heap = this.#heap();
    if (found !== 0 && m.u32(found + E.vlen) === vlen) {
      tx.write(o, found + E.key + klen, entry.subarray(E.key + klen, E.key + klen + vlen));
      return false;
    }
    const size = E.key + klen + vlen;
    const ev = this.#entryView;
    ev.setUint32(E.hash, hash, true);
    ev.setUint32(E.klen, klen, true);
    ev.setUint32(E.vlen, vlen, true);
    const bucket = this.#bucket;
    const e = heap.alloc(tx, size, NO_ZERO); // written whole below (in place when fresh)
    if (found !== 0) {
      // Replace in place in the chain.
      ev.setUint32(E.next, tx.getU32(o, found + E.next), true);
      writeEntry(tx, o, e, entry, size);
      tx.setU32(o, link, e);
      heap.free(tx, found);
      return false;
    }
    // The bucket's head slot as #findLink saw it (the entry's allocation
    // writes no directory), or its segment allocated now.
    const head = this.#head >= 0 ? this.#head : this.#slotFor(tx, m, bucket);
    ev.setUint32(E.next, tx.getU32(o, head), true);
    writeEntry(tx, o, e, entry, size);
    tx.setU32(o, head, e);
    const count = tx.getF64(o, this.offset + H.count) + 1;
    tx.setF64(o, this.offset + H.count, count);
    this.#maybeSplit(tx, m, heap, count);
    return true;
  }

  #maybeSplit(tx: Tx, m: Mem, heap: Heap, count: number): void {
    const o = this.obj;
    const h = this.offset;
    // The geometry #findLink read in this insert (nothing wrote it since).
    const span = this.#span;
    const split = this.#split;
    const buckets = span + split;
    if (count <= buckets * LOAD || buckets >= 2 ** 30) return;
    const level = m.u32(h + H.level);
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

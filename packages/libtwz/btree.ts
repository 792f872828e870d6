/**
 * A persistent ordered map inside an object: a B+tree of fixed fan-out
 * nodes whose slots hold the offsets of heap-allocated blobs (entries in the
 * leaves, separator keys in the internal nodes). Leaves are linked left to
 * right, so ordered iteration and range scans walk the leaf chain. Every
 * change is a write of the running transaction (one transaction per
 * operation, or part of the caller's), so the tree survives any power failure
 * whole.
 *
 * Keys are stored in an order-preserving encoding and compared as unsigned
 * bytes: integers big-endian with the sign bit flipped (so negative numbers
 * sort first), strings as UTF-8 (code point order, which differs from
 * JavaScript's `<` only between astral characters and U+E000–U+FFFF), byte
 * arrays as they are, references by object ID (big-endian) then offset.
 * A codec of another kind orders keys by its encoded bytes.
 *
 * Deletion is lazy: it removes the entry from its leaf and frees the entry's
 * blob, but it does not merge or rebalance nodes, so a leaf may become empty
 * (scans skip it) and the tree keeps the height of its largest size.
 *
 * ```text
 * header (64 B): magic "BTRE", key codec, value codec, fan-out, codec check
 *                (u8; 0 in maps made before it), count (f64), root, height,
 *                first leaf, heap
 * leaf:          type u8 = 1 | pad | n u16 | next leaf u32 | entry u32[32]
 * internal:      type u8 = 2 | pad | n u16 (children) | 0 u32 | child u32[32] | key u32[31]
 * entry:         key length u32 | value length u32 | key | value
 * separator:     key length u32 | 0 u32 | key
 * ```
 *
 * @example Scores by player, scanned in order
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { BTreeMap } from "@twz/libtwz/btree";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
 * const scores = BTreeMap.create(twz, twz.create({ size: 1 << 20 }), codec.int, codec.string);
 * scores.set(30, "carol");
 * scores.set(-5, "alice");
 * scores.set(12, "bob");
 * console.log([...scores.keys()]); // [ -5, 12, 30 ]
 * console.log([...scores.range(0, 30, { inclusive: true })]); // [ [ 12, "bob" ], [ 30, "carol" ] ]
 * twz.close();
 * ```
 *
 * @module
 */
import { activeTx, transaction, type Tx, type TxLogHost, type TxTarget } from "./_tx.ts";
import { Heap } from "./heap.ts";
import { type Codec, codec, type ObjRef } from "./codec.ts";
import {
  asDamage,
  type CollectionObject,
  compareBytes,
  createRoot,
  damaged,
  guard,
  Mem,
  openRoot,
  rootHeapOffset,
  Scratch,
  stepLimit,
} from "./_mem.ts";

const MAGIC = 0x45525442; // "BTRE"
const H = {
  magic: 0,
  keyKind: 4,
  valKind: 5,
  fanout: 6,
  codecCheck: 7,
  count: 8,
  root: 16,
  height: 20,
  first: 24,
  heap: 28,
} as const;
const HEADER = 64;
/** Slots per node: entries per leaf, children per internal node. */
const FANOUT = 32;
const LEAF = 1;
const INTERNAL = 2;
const N = { type: 0, n: 2, next: 4, slots: 8, keys: 8 + FANOUT * 4 } as const;
const LEAF_BYTES = N.slots + FANOUT * 4;
const INTERNAL_BYTES = N.keys + (FANOUT - 1) * 4;
/** Entry (and separator) blob: key length, value length, key, value. */
const E = { klen: 0, vlen: 4, key: 8 } as const;
/**
 * The tallest tree an object can hold: a level multiplies the leaves by at
 * least 2 (a split leaves at least one child on each side), and 2^32 bytes
 * hold fewer than 2^25 nodes.
 */
const MAX_HEIGHT = 26;
/** The class name, for damage messages. */
const NAME = "BTreeMap";

/**
 * The header's check of its two codec bytes (never 0: maps made before it
 * existed hold 0 there, and are not checked). A codec byte damaged into
 * another valid codec fails it — damage, not a caller's wrong codecs.
 */
function codecCheck(keyKind: number, valKind: number): number {
  return 0x80 | ((keyKind * 31 + valKind * 7 + 0x2b) & 0x7f);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Whether `length` bytes at `at` are a value codec `kind` can have written (fsck). */
function decodes(kind: number, bytes: Uint8Array, at: number, length: number): boolean {
  switch (kind) {
    case codec.int.kind:
      return length === 8;
    case codec.ref.kind:
      return length === 24;
    case codec.string.kind:
      try {
        strictUtf8.decode(bytes.slice(at, at + length));
        return true;
      } catch {
        return false;
      }
    default:
      return true;
  }
}

/**
 * An order-preserving encoding of keys: unsigned byte order of the encoding
 * is the order of the keys.
 */
interface KeyOrder<K> {
  size(key: K): number;
  encode(key: K, into: Uint8Array, at: number): number;
  decode(bytes: Uint8Array, at: number, length: number): K;
}

const tmp = new Uint8Array(24);

/** Big-endian with the sign bit flipped, from the int codec's little-endian bytes. */
function orderInt(into: Uint8Array, at: number, from: Uint8Array, fat: number): void {
  for (let i = 0; i < 8; i++) into[at + i] = from[fat + 7 - i]!;
  into[at]! ^= 0x80;
}

const ORDERS = new Map<number, KeyOrder<unknown>>();
ORDERS.set(
  codec.int.kind,
  {
    size: () => 8,
    encode(key, into, at) {
      codec.int.encode(key as number, tmp, 0);
      orderInt(into, at, tmp, 0);
      return 8;
    },
    decode(bytes, at) {
      for (let i = 0; i < 8; i++) tmp[7 - i] = bytes[at + i]!;
      tmp[7]! ^= 0x80;
      return codec.int.decode(tmp, 0, 8);
    },
  } satisfies KeyOrder<number> as KeyOrder<unknown>,
);
ORDERS.set(codec.ref.kind, {
  size: () => 24,
  encode(key, into, at) {
    codec.ref.encode(key as ObjRef, tmp, 0);
    for (let i = 0; i < 16; i++) into[at + i] = tmp[15 - i]!;
    orderInt(into, at + 16, tmp, 16);
    return 24;
  },
  decode(bytes, at) {
    for (let i = 0; i < 16; i++) tmp[15 - i] = bytes[at + i]!;
    for (let i = 0; i < 8; i++) tmp[16 + 7 - i] = bytes[at + 16 + i]!;
    tmp[23]! ^= 0x80;
    return codec.ref.decode(tmp, 0, 24);
  },
});

function orderOf<K>(keys: Codec<K>): KeyOrder<K> {
  // strings (UTF-8), bytes and unknown codecs: their encoding is the order.
  return (ORDERS.get(keys.kind) as KeyOrder<K> | undefined) ?? keys;
}

/** Options of {@linkcode BTreeMap.range}. */
export interface RangeOptions {
  /**
   * Whether the upper bound `to` is part of the range (`from` always is).
   *
   * @default {false}
   */
  inclusive?: boolean;
}

/** What {@linkcode BTreeMap.check} found. */
export interface BTreeCheck {
  /** Levels (1: the root is a leaf). */
  height: number;
  /** Nodes reachable from the root. */
  nodes: number;
  /** Entries in the leaves. */
  entries: number;
  /** Leaves without entries (left by deletion). */
  emptyLeaves: number;
  /** The first inconsistency, if any. */
  problem?: string | undefined;
}

/** A node read into memory (the write paths work on these). */
interface Node {
  at: number;
  type: number;
  next: number;
  /** Entries (leaf) or children (internal). */
  slots: number[];
  /** Separator blobs (internal): keys[i] is the least key of child i + 1. */
  keys: number[];
}

/** What is wrong with the node at `at` expected to be of `type`, or undefined. */
function nodeProblem(v: DataView, heapAt: number, at: number, type: number): string | undefined {
  const bytes = type === LEAF ? LEAF_BYTES : INTERNAL_BYTES;
  if (at < heapAt + 136 || at % 8 !== 0 || at + bytes > v.byteLength) {
    return `node at ${at} lies outside the heap`;
  }
  const t = v.getUint8(at + N.type);
  if (t !== type) {
    return `node at ${at} has type ${t}, not ${type === LEAF ? "leaf (1)" : "internal (2)"}`;
  }
  const n = v.getUint16(at + N.n, true);
  if (n > FANOUT || (type === INTERNAL && n < 1)) {
    return `node at ${at} has ${n} ${type === LEAF ? "keys" : "children"} (at most ${FANOUT})`;
  }
  return undefined;
}

/**
 * A persistent ordered map (B+tree) from `K` to `V`.
 *
 * @example Range scan over string keys
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { BTreeMap } from "@twz/libtwz/btree";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
 * const words = BTreeMap.create(twz, twz.create({ size: 1 << 20 }), codec.string, codec.int);
 * for (const w of ["pear", "apple", "fig", "plum", "kiwi"]) words.set(w, w.length);
 * console.log([...words.range("b", "p")].map(([k]) => k)); // [ "fig", "kiwi" ]
 * words.delete("fig");
 * console.log(words.size, words.get("kiwi"), words.has("fig")); // 4 4 false
 * twz.close();
 * ```
 */
export class BTreeMap<K, V> {
  #scratch = new Scratch();
  readonly #order: KeyOrder<K>;

  private constructor(
    readonly host: TxLogHost,
    readonly obj: TxTarget,
    /** Offset of the map header in the object. */
    readonly offset: number,
    readonly keyCodec: Codec<K>,
    readonly valueCodec: Codec<V>,
  ) {
    this.#order = orderOf(keyCodec);
  }

  /**
   * Create an empty map in `obj`: a heap after the object's base, the map
   * header in the heap, and the header named from the base (the way the
   * hash map roots itself). One transaction (or part of the
   * running one).
   *
   * @param host The session (its transaction log).
   * @param obj A fresh, writable object.
   * @param keys The key codec (its kind is recorded and checked by `open`).
   * @param values The value codec.
   * @returns The map.
   * @throws {TwzError} `InvalidArgument` when `obj` already holds a collection.
   */
  static create<K, V>(
    host: TxLogHost,
    obj: CollectionObject,
    keys: Codec<K>,
    values: Codec<V>,
  ): BTreeMap<K, V> {
    const offset = transaction(host, (tx) => {
      const { heap, header } = createRoot(tx, obj, MAGIC, HEADER);
      const root = heap.alloc(tx, LEAF_BYTES);
      tx.setU8(obj, root + N.type, LEAF);
      tx.setU8(obj, header + H.keyKind, keys.kind);
      tx.setU8(obj, header + H.valKind, values.kind);
      tx.setU8(obj, header + H.fanout, FANOUT);
      tx.setU8(obj, header + H.codecCheck, codecCheck(keys.kind, values.kind));
      tx.setU32(obj, header + H.root, root);
      tx.setU32(obj, header + H.height, 1);
      tx.setU32(obj, header + H.first, root);
      tx.setU32(obj, header + H.heap, heap.offset);
      return header;
    });
    return new BTreeMap(host, obj, offset, keys, values);
  }

  /**
   * Open the map created in `obj` by {@linkcode BTreeMap.create}.
   *
   * @param host The session.
   * @param obj The object holding the map.
   * @param keys The key codec it was created with.
   * @param values The value codec it was created with.
   * @returns The map.
   * @throws {TwzError} `InvalidArgument` when `obj` holds no B-tree map (or
   * another collection), or the map was made with other codecs.
   */
  static open<K, V>(
    host: TxLogHost,
    obj: CollectionObject,
    keys: Codec<K>,
    values: Codec<V>,
  ): BTreeMap<K, V> {
    const header = openRoot(
      obj,
      MAGIC,
      NAME,
      "B-tree map",
      HEADER,
      keys,
      values,
      (h) => BTreeMap.headerProblem(obj, h),
    );
    return new BTreeMap(host, obj, header, keys, values);
  }

  /**
   * Check a map header in place (constant time): fan-out, height, the root
   * and first-leaf nodes (inside the heap, of the right type and fill), the
   * heap's offset and the entry count. `open` refuses a map that fails it.
   *
   * @param obj The object holding the map.
   * @param header The header's offset.
   * @returns The first problem, or `undefined`.
   */
  static headerProblem(obj: CollectionObject, header: number): string | undefined {
    const v = obj.mapping.view;
    const size = v.byteLength;
    if (header + HEADER > size) return `header at ${header} lies outside the object`;
    const fanout = v.getUint8(header + H.fanout);
    if (fanout !== FANOUT) return `header at ${header} has fan-out ${fanout}, not ${FANOUT}`;
    const keyKind = v.getUint8(header + H.keyKind), valKind = v.getUint8(header + H.valKind);
    const check = v.getUint8(header + H.codecCheck);
    if (check !== 0 && check !== codecCheck(keyKind, valKind)) {
      return `header at ${header}: codec bytes ${keyKind}/${valKind} do not match their check 0x${
        check.toString(16)
      } (damaged codecs)`;
    }
    const heap = v.getUint32(header + H.heap, true);
    const heapAt = rootHeapOffset(obj);
    if (heap !== heapAt) return `header names its heap at ${heap}, not ${heapAt}`;
    const height = v.getUint32(header + H.height, true);
    if (height < 1 || height > MAX_HEIGHT) return `height ${height} is not in [1, ${MAX_HEIGHT}]`;
    const count = v.getFloat64(header + H.count, true);
    if (!(Number.isInteger(count) && count >= 0 && count <= size / 16)) {
      return `entry count ${count} is impossible in ${size} bytes`;
    }
    const root = v.getUint32(header + H.root, true);
    const rootProblem = nodeProblem(v, heapAt, root, height === 1 ? LEAF : INTERNAL);
    if (rootProblem !== undefined) return `root ${rootProblem}`;
    const first = v.getUint32(header + H.first, true);
    const firstProblem = nodeProblem(v, heapAt, first, LEAF);
    if (firstProblem !== undefined) return `first leaf ${firstProblem}`;
    if (height === 1 && first !== root) return `first leaf ${first} is not the root leaf ${root}`;
    return undefined;
  }
  /** The heap holding the map's nodes and entries (for checking). */
  get heap(): Heap {
    return this.#heap();
  }

  /** Number of entries. */
  get size(): number {
    return guard(NAME, this.obj, () => new Mem(this.obj, activeTx()).f64(this.offset + H.count));
  }

  /** The damage error for this map. */
  #bad(detail: string): Error {
    return damaged(NAME, this.obj.id, detail);
  }

  /** The tree's height, checked (a damaged height must not run a walk long). */
  #height(h: number): number {
    if (h < 1 || h > MAX_HEIGHT) throw this.#bad(`height ${h} is not in [1, ${MAX_HEIGHT}]`);
    return h;
  }

  /** Check a node's type and fill as a walk reaches it; returns its fill. */
  #nodeN(type: number, n: number, at: number, want: number): number {
    if (type !== want || n > FANOUT || (want === INTERNAL && n < 1)) {
      throw this.#bad(
        type !== want
          ? `node at ${at} has type ${type}, not ${want === LEAF ? "leaf (1)" : "internal (2)"}`
          : `node at ${at} has ${n} ${want === LEAF ? "keys" : "children"} (at most ${FANOUT})`,
      );
    }
    return n;
  }

  /** Check that an entry blob of `klen + vlen` bytes at `e` lies inside the object. */
  #blob(e: number, klen: number, vlen: number): void {
    if (e + E.key + klen + vlen > this.obj.mapping.bytes.length || e < 64) {
      throw this.#bad(`entry at ${e} (${klen}+${vlen} bytes) lies outside the object`);
    }
  }

  /** Encode `key` (order-preserving) at the start of the scratch buffer; returns its length. */
  #encodeKey(key: K): number {
    const b = this.#scratch.reserve(this.#order.size(key));
    return this.#order.encode(key, b, 0);
  }

  /**
   * The entry for the scratch key, reading object memory in place (no
   * transaction running): the lookup hot path, allocation-free.
   */
  #findRaw(klen: number): number {
    const v = this.obj.mapping.view;
    const b = this.obj.mapping.bytes;
    const k = this.#scratch.bytes;
    let node = v.getUint32(this.offset + H.root, true);
    for (let level = this.#height(v.getUint32(this.offset + H.height, true)); level > 1; level--) {
      // Children whose separator is <= key: the key's child index.
      let lo = 0,
        hi = this.#nodeN(v.getUint8(node + N.type), v.getUint16(node + N.n, true), node, INTERNAL) -
          1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const s = v.getUint32(node + N.keys + mid * 4, true);
        if (compareBytes(b, s + E.key, v.getUint32(s + E.klen, true), k, 0, klen) <= 0) {
          lo = mid + 1;
        } else hi = mid;
      }
      node = v.getUint32(node + N.slots + lo * 4, true);
    }
    let lo = 0,
      hi = this.#nodeN(v.getUint8(node + N.type), v.getUint16(node + N.n, true), node, LEAF);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = v.getUint32(node + N.slots + mid * 4, true);
      const c = compareBytes(b, e + E.key, v.getUint32(e + E.klen, true), k, 0, klen);
      if (c === 0) return e;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return 0;
  }

  /** Index of the child of internal `node` that holds keys like `key`. */
  #route(m: Mem, node: number, key: Uint8Array, klen: number): number {
    let lo = 0, hi = m.u16(node + N.n) - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = m.u32(node + N.keys + mid * 4);
      if (m.compare(s + E.key, m.u32(s + E.klen), key, klen) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First slot of leaf `node` whose key is >= `key`, and whether it is equal. */
  #lowerBound(m: Mem, node: number, key: Uint8Array, klen: number): [number, boolean] {
    let lo = 0, hi = m.u16(node + N.n);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = m.u32(node + N.slots + mid * 4);
      const c = m.compare(e + E.key, m.u32(e + E.klen), key, klen);
      if (c === 0) return [mid, true];
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return [lo, false];
  }

  /**
   * Descend to the leaf for `key`.
   *
   * @returns The leaf and the path of [internal node, child index] above it.
   */
  #descend(m: Mem, key: Uint8Array, klen: number): { leaf: number; path: [number, number][] } {
    const path: [number, number][] = [];
    let node = m.u32(this.offset + H.root);
    for (let level = this.#height(m.u32(this.offset + H.height)); level > 1; level--) {
      this.#nodeN(m.u8(node + N.type), m.u16(node + N.n), node, INTERNAL);
      const i = this.#route(m, node, key, klen);
      path.push([node, i]);
      node = m.u32(node + N.slots + i * 4);
    }
    this.#nodeN(m.u8(node + N.type), m.u16(node + N.n), node, LEAF);
    return { leaf: node, path };
  }

  #find(m: Mem, klen: number): number {
    const key = this.#scratch.bytes;
    const { leaf } = this.#descend(m, key, klen);
    const [pos, found] = this.#lowerBound(m, leaf, key, klen);
    return found ? m.u32(leaf + N.slots + pos * 4) : 0;
  }

  #lookup(key: K): { e: number; m: Mem | null } {
    const klen = this.#encodeKey(key);
    const tx = activeTx();
    try {
      if (tx === null) return { e: this.#findRaw(klen), m: null };
      const m = new Mem(this.obj, tx);
      return { e: this.#find(m, klen), m };
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  /**
   * Whether `key` is in the map.
   *
   * @param key The key.
   * @returns `true` when it is.
   */
  has(key: K): boolean {
    return this.#lookup(key).e !== 0;
  }

  /**
   * The value for `key`.
   *
   * @param key The key.
   * @returns The value, or `undefined` when the key is not in the map.
   */
  get(key: K): V | undefined {
    const { e, m } = this.#lookup(key);
    if (e === 0) return undefined;
    try {
      if (m === null) {
        const v = this.obj.mapping.view;
        const klen = v.getUint32(e + E.klen, true);
        const vlen = v.getUint32(e + E.vlen, true);
        this.#blob(e, klen, vlen);
        return this.valueCodec.decode(this.obj.mapping.bytes, e + E.key + klen, vlen);
      }
      return this.#value(m, e);
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  #value(m: Mem, e: number): V {
    const klen = m.u32(e + E.klen);
    const vlen = m.u32(e + E.vlen);
    this.#blob(e, klen, vlen);
    const at = e + E.key + klen;
    return this.valueCodec.decode(m.bytes(at, vlen), m.start(at), vlen);
  }

  #key(m: Mem, e: number): K {
    const klen = m.u32(e + E.klen);
    this.#blob(e, klen, 0);
    return this.#order.decode(m.bytes(e + E.key, klen), m.start(e + E.key), klen);
  }

  /**
   * Set `key` to `value` (one transaction, or part of the running one). A
   * full leaf splits, and the split may climb to the root.
   *
   * @param key The key.
   * @param value The value.
   * @returns `true` when the key is new.
   * @throws {TwzError} `InvalidArgument` when a codec refuses the key or
   * value; `OutOfSpace` when the object cannot grow.
   */
  set(key: K, value: V): boolean {
    return guard(NAME, this.obj, () => transaction(this.host, (tx) => this.#set(tx, key, value)));
  }

  #set(tx: Tx, key: K, value: V): boolean {
    const o = this.obj;
    const klen = this.#encodeKey(key);
    const b = this.#scratch.reserve(klen + this.valueCodec.size(value), klen);
    const vlen = this.valueCodec.encode(value, b, klen);
    const m = new Mem(o, tx);
    const { leaf, path } = this.#descend(m, b, klen);
    const [pos, found] = this.#lowerBound(m, leaf, b, klen);
    const heap = this.#heap();
    if (found) {
      const old = m.u32(leaf + N.slots + pos * 4);
      if (m.u32(old + E.vlen) === vlen) {
        tx.write(o, old + E.key + klen, b.subarray(klen, klen + vlen));
        return false;
      }
      tx.setU32(o, leaf + N.slots + pos * 4, this.#newBlob(tx, heap, klen, vlen));
      heap.free(tx, old);
      return false;
    }
    const e = this.#newBlob(tx, heap, klen, vlen);
    const node = this.#read(m, leaf);
    node.slots.splice(pos, 0, e);
    tx.setF64(o, this.offset + H.count, m.f64(this.offset + H.count) + 1);
    if (node.slots.length <= FANOUT) {
      this.#write(tx, node);
      return true;
    }
    // Split the leaf. Appending at the end of the last leaf (ascending
    // inserts) leaves it full and starts a new one; otherwise half and half.
    const keep = pos === FANOUT && node.next === 0 ? FANOUT : FANOUT >>> 1;
    const right: Node = {
      at: heap.alloc(tx, LEAF_BYTES),
      type: LEAF,
      next: node.next,
      slots: node.slots.slice(keep),
      keys: [],
    };
    node.slots.length = keep;
    node.next = right.at;
    this.#write(tx, node);
    this.#write(tx, right);
    const first = right.slots[0]!;
    const sep = this.#copyKey(tx, m, heap, first);
    const rightmost = right.next === 0;
    this.#insertUp(tx, m, heap, path, node.at, sep, right.at, rightmost);
    return true;
  }

  /** An entry blob holding the scratch key and value. */
  #newBlob(tx: Tx, heap: Heap, klen: number, vlen: number): number {
    const e = heap.alloc(tx, E.key + klen + vlen);
    tx.setU32(this.obj, e + E.klen, klen);
    tx.setU32(this.obj, e + E.vlen, vlen);
    tx.write(this.obj, e + E.key, this.#scratch.bytes.subarray(0, klen + vlen));
    return e;
  }

  /** A separator blob with the key of entry `e`. */
  #copyKey(tx: Tx, m: Mem, heap: Heap, e: number): number {
    const klen = m.u32(e + E.klen);
    const s = heap.alloc(tx, E.key + klen);
    tx.setU32(this.obj, s + E.klen, klen);
    tx.write(this.obj, s + E.key, tx.read(this.obj, e + E.key, klen));
    return s;
  }

  /** Insert separator `sep` and its right child `right` next to `left` in the parent. */
  #insertUp(
    tx: Tx,
    m: Mem,
    heap: Heap,
    path: [number, number][],
    left: number,
    sep: number,
    right: number,
    rightmost: boolean,
  ): void {
    const o = this.obj;
    const up = path.pop();
    if (up === undefined) {
      const root: Node = {
        at: heap.alloc(tx, INTERNAL_BYTES),
        type: INTERNAL,
        next: 0,
        slots: [left, right],
        keys: [sep],
      };
      this.#write(tx, root);
      tx.setU32(o, this.offset + H.root, root.at);
      tx.setU32(o, this.offset + H.height, m.u32(this.offset + H.height) + 1);
      return;
    }
    const [parent, i] = up;
    const node = this.#read(m, parent);
    node.slots.splice(i + 1, 0, right);
    node.keys.splice(i, 0, sep);
    if (node.slots.length <= FANOUT) {
      this.#write(tx, node);
      return;
    }
    // 33 children, 32 separators: the left keeps `keep` children, the
    // separator between the halves moves up.
    const last = rightmost && path.every(([n, c]) => c === m.u16(n + N.n) - 1);
    const keep = last && i + 1 === FANOUT ? FANOUT : FANOUT >>> 1;
    const mid = node.keys[keep - 1]!;
    const sibling: Node = {
      at: heap.alloc(tx, INTERNAL_BYTES),
      type: INTERNAL,
      next: 0,
      slots: node.slots.slice(keep),
      keys: node.keys.slice(keep),
    };
    node.slots.length = keep;
    node.keys.length = keep - 1;
    this.#write(tx, node);
    this.#write(tx, sibling);
    this.#insertUp(tx, m, heap, path, node.at, mid, sibling.at, last);
  }

  #read(m: Mem, at: number): Node {
    const type = m.u8(at + N.type);
    const n = this.#nodeN(type, m.u16(at + N.n), at, type === INTERNAL ? INTERNAL : LEAF);
    const slots: number[] = [];
    const keys: number[] = [];
    for (let i = 0; i < n; i++) slots.push(m.u32(at + N.slots + i * 4));
    if (type === INTERNAL) {
      for (let i = 0; i < n - 1; i++) {
        keys.push(m.u32(at + N.keys + i * 4));
      }
    }
    return { at, type, next: type === LEAF ? m.u32(at + N.next) : 0, slots, keys };
  }

  #write(tx: Tx, node: Node): void {
    const bytes = node.type === LEAF ? LEAF_BYTES : INTERNAL_BYTES;
    const buf = new Uint8Array(bytes);
    const v = new DataView(buf.buffer);
    v.setUint8(N.type, node.type);
    v.setUint16(N.n, node.slots.length, true);
    v.setUint32(N.next, node.next, true);
    for (let i = 0; i < node.slots.length; i++) v.setUint32(N.slots + i * 4, node.slots[i]!, true);
    for (let i = 0; i < node.keys.length; i++) v.setUint32(N.keys + i * 4, node.keys[i]!, true);
    tx.write(this.obj, node.at, buf);
  }

  #heap(): Heap {
    return new Heap(this.obj, this.obj.mapping.view.getUint32(this.offset + H.heap, true));
  }

  /**
   * Remove `key` (one transaction, or part of the running one) and free its
   * entry. Nodes are not merged: a leaf may be left empty.
   *
   * @param key The key.
   * @returns Whether it was there.
   */
  delete(key: K): boolean {
    return guard(NAME, this.obj, () => this.#delete(key));
  }

  #delete(key: K): boolean {
    return transaction(this.host, (tx) => {
      const o = this.obj;
      const klen = this.#encodeKey(key);
      const m = new Mem(o, tx);
      const k = this.#scratch.bytes;
      const { leaf } = this.#descend(m, k, klen);
      const [pos, found] = this.#lowerBound(m, leaf, k, klen);
      if (!found) return false;
      const e = m.u32(leaf + N.slots + pos * 4);
      const n = m.u16(leaf + N.n);
      const rest = tx.read(o, leaf + N.slots + (pos + 1) * 4, (n - pos - 1) * 4);
      tx.write(o, leaf + N.slots + pos * 4, rest);
      tx.setU32(o, leaf + N.slots + (n - 1) * 4, 0);
      tx.setU16(o, leaf + N.n, n - 1);
      this.#heap().free(tx, e);
      tx.setF64(o, this.offset + H.count, m.f64(this.offset + H.count) - 1);
      return true;
    });
  }

  /**
   * The entries with `from <= key < to` (or `<= to` when `inclusive`), in
   * key order. A missing bound leaves that side open. Reads go through the
   * running transaction, if any; don't change the map while iterating.
   *
   * @param from The least key of the range, or `undefined` for the first.
   * @param to The upper bound, or `undefined` for none.
   * @param options Whether `to` itself is included.
   * @returns A generator of `[key, value]` pairs.
   * @throws {TwzError} `InvalidArgument` when the key codec refuses a bound.
   */
  *range(from?: K, to?: K, options: RangeOptions = {}): Generator<[K, V]> {
    const inclusive = options.inclusive ?? false;
    const lo = from === undefined ? null : this.#encodeCopy(from);
    const hi = to === undefined ? null : this.#encodeCopy(to);
    try {
      yield* this.#range(lo, hi, inclusive);
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  *#range(lo: Uint8Array | null, hi: Uint8Array | null, inclusive: boolean): Generator<[K, V]> {
    let m = new Mem(this.obj, activeTx());
    // The leaf chain cannot be longer than the object holds leaves: a longer one loops.
    let steps = stepLimit(this.obj.mapping.bytes.length, LEAF_BYTES);
    let leaf: number;
    let pos = 0;
    if (lo === null) leaf = m.u32(this.offset + H.first);
    else {
      leaf = this.#descend(m, lo, lo.length).leaf;
      pos = this.#lowerBound(m, leaf, lo, lo.length)[0];
    }
    while (leaf !== 0) {
      if (--steps < 0) throw this.#bad("the leaf chain loops");
      const n = this.#nodeN(m.u8(leaf + N.type), m.u16(leaf + N.n), leaf, LEAF);
      for (; pos < n && pos < m.u16(leaf + N.n); pos++) {
        const e = m.u32(leaf + N.slots + pos * 4);
        if (hi !== null) {
          const c = m.compare(e + E.key, m.u32(e + E.klen), hi, hi.length);
          if (c > 0 || (c === 0 && !inclusive)) return;
        }
        const entry: [K, V] = [this.#key(m, e), this.#value(m, e)];
        yield entry;
        m = new Mem(this.obj, activeTx());
      }
      leaf = m.u32(leaf + N.next);
      pos = 0;
    }
  }

  #encodeCopy(key: K): Uint8Array {
    const b = new Uint8Array(this.#order.size(key));
    return b.subarray(0, this.#order.encode(key, b, 0));
  }

  /**
   * Every entry in key order.
   *
   * @returns A generator of `[key, value]` pairs.
   */
  entries(): Generator<[K, V]> {
    return this.range();
  }

  /**
   * Every entry in key order.
   *
   * @returns A generator of `[key, value]` pairs.
   */
  [Symbol.iterator](): Generator<[K, V]> {
    return this.range();
  }

  /**
   * Every key in order.
   *
   * @returns A generator of keys.
   */
  *keys(): Generator<K> {
    for (const [k] of this.range()) yield k;
  }

  /**
   * Every value in key order.
   *
   * @returns A generator of values.
   */
  *values(): Generator<V> {
    for (const [, v] of this.range()) yield v;
  }

  /**
   * Walk the whole tree and check it (an fsck of the map): node types and
   * fill, key order within and across nodes against the separators, the leaf
   * chain, and the entry count. Reads object memory in place.
   *
   * @returns What was found; `problem` names the first inconsistency.
   */
  check(): BTreeCheck {
    const m = new Mem(this.obj, null);
    const height = m.u32(this.offset + H.height);
    const result: BTreeCheck = { height, nodes: 0, entries: 0, emptyLeaves: 0 };
    result.problem = BTreeMap.headerProblem(this.obj as CollectionObject, this.offset);
    if (result.problem !== undefined) return result;
    try {
      this.#check(m, height, result);
    } catch (error) {
      // A blob or node past the end: report it like any other inconsistency.
      const e = asDamage(NAME, this.obj, error);
      if (!(e instanceof Error) || e === error) throw error;
      result.problem = error instanceof Error ? error.message : String(error);
    }
    return result;
  }

  #check(m: Mem, height: number, result: BTreeCheck): void {
    const leaves: number[] = [];
    const size = this.obj.mapping.bytes.length;
    const bytes = this.obj.mapping.bytes;
    const keyKind = m.u8(this.offset + H.keyKind), valKind = m.u8(this.offset + H.valKind);
    const seen = new Set<number>();
    const keyOf = (blob: number): Uint8Array => {
      const klen = m.u32(blob + E.klen);
      if (blob < 64 || blob + E.key + klen > size) {
        throw new RangeError(`key blob at ${blob} (${klen} bytes) lies outside the object`);
      }
      return this.obj.mapping.bytes.slice(blob + E.key, blob + E.key + klen);
    };
    const cmp = (a: Uint8Array, b: Uint8Array) => compareBytes(a, 0, a.length, b, 0, b.length);
    const walk = (
      node: number,
      level: number,
      lo: Uint8Array | null,
      hi: Uint8Array | null,
    ): string | undefined => {
      if (node <= 0 || node + LEAF_BYTES > size) return `node offset ${node} out of range`;
      if (seen.has(node)) return `node ${node} is reached twice`;
      seen.add(node);
      result.nodes++;
      const type = m.u8(node + N.type);
      const n = m.u16(node + N.n);
      if (level === 1) {
        if (type !== LEAF) return `node ${node} at level 1 is not a leaf`;
        if (n > FANOUT) return `leaf ${node} holds ${n} entries`;
        leaves.push(node);
        if (n === 0) result.emptyLeaves++;
        let prev: Uint8Array | null = null;
        for (let i = 0; i < n; i++) {
          const blob = m.u32(node + N.slots + i * 4);
          const k = keyOf(blob);
          const vlen = m.u32(blob + E.vlen);
          const at = blob + E.key + k.length;
          if (at + vlen > size) {
            return `leaf ${node}: entry ${i}'s value (${vlen} bytes) lies outside the object`;
          }
          if (!decodes(keyKind, k, 0, k.length) || !decodes(valKind, bytes, at, vlen)) {
            return `leaf ${node}: entry ${i} does not decode with the recorded codecs ${this.keyCodec.name}/${this.valueCodec.name} (${k.length}-byte key, ${vlen}-byte value)`;
          }
          if (prev !== null && cmp(prev, k) >= 0) return `leaf ${node}: keys out of order at ${i}`;
          if (lo !== null && cmp(k, lo) < 0) return `leaf ${node}: key below its separator`;
          if (hi !== null && cmp(k, hi) >= 0) {
            return `leaf ${node}: key not below the next separator`;
          }
          prev = k;
        }
        result.entries += n;
        return undefined;
      }
      if (type !== INTERNAL) return `node ${node} at level ${level} is not internal`;
      if (n < 1 || n > FANOUT) return `internal node ${node} has ${n} children`;
      let left = lo;
      for (let i = 0; i < n; i++) {
        const right = i < n - 1 ? keyOf(m.u32(node + N.keys + i * 4)) : hi;
        if (left !== null && right !== null && cmp(left, right) > 0) {
          return `internal node ${node}: separators out of order at ${i}`;
        }
        const problem = walk(m.u32(node + N.slots + i * 4), level - 1, left, right);
        if (problem) return problem;
        left = right;
      }
      return undefined;
    };
    result.problem = walk(m.u32(this.offset + H.root), height, null, null);
    if (result.problem === undefined) {
      let leaf = m.u32(this.offset + H.first);
      for (let i = 0; i < leaves.length; i++, leaf = m.u32(leaf + N.next)) {
        if (leaf !== leaves[i]) {
          result.problem = `leaf chain: leaf ${i} is ${leaf}, expected ${leaves[i]}`;
          break;
        }
      }
      if (result.problem === undefined && leaf !== 0) {
        result.problem = `leaf chain runs past the last leaf`;
      }
    }
    if (result.problem === undefined && result.entries !== m.f64(this.offset + H.count)) {
      result.problem = `count ${m.f64(this.offset + H.count)} != ${result.entries} entries`;
    }
  }
}

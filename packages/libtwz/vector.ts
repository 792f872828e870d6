/**
 * A persistent, growable array of variable-size elements inside an object.
 * Each element is a blob of the object's {@linkcode Heap}; an index of
 * (offset, length) pairs names them. The index lives in fixed segments of 512
 * pairs listed by a directory that grows by `realloc`, so growing never
 * copies more than the directory and every transaction stays small. Every
 * change is a write of the running transaction (one per operation, or part
 * of the caller's), so the vector survives any power failure whole.
 *
 * ```text
 * header (64 B): magic "VECT", 0, value codec, segment shift, length u32,
 *                directory u32, directory capacity u32, heap u32
 * directory:     u32 offsets of index segments
 * segment:       (element offset u32, element length u32)[512]
 * ```
 *
 * @example A log of lines
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { Vector } from "@twz/libtwz/vector";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
 * const lines = Vector.create(twz, twz.create({ size: 1 << 20 }), codec.string);
 * lines.push("first");
 * lines.push("second");
 * lines.set(0, "the first line");
 * console.log(lines.get(0), lines.length); // the first line 2
 * console.log(lines.pop(), [...lines]); // second [ "the first line" ]
 * twz.close();
 * ```
 *
 * @module
 */
import { activeTx, transaction, type Tx, type TxLogHost, type TxTarget } from "./_tx.ts";
import { Heap } from "./heap.ts";
import type { Codec } from "./codec.ts";
import {
  ArgumentRangeError,
  asDamage,
  type CollectionObject,
  createRoot,
  damaged,
  guard,
  Mem,
  openRoot,
  rootHeapOffset,
  Scratch,
} from "./_mem.ts";

const MAGIC = 0x54434556; // "VECT"
const H = { magic: 0, valKind: 5, segShift: 6, length: 8, dir: 12, dirCap: 16, heap: 20 } as const;
const HEADER = 64;
const SEG_SHIFT = 9;
const SEG = 1 << SEG_SHIFT;
const SEG_MASK = SEG - 1;
const PAIR = 8;
/** The class name, for damage messages. */
const NAME = "Vector";

/**
 * A persistent vector of `T`.
 *
 * @example Bytes elements of different sizes
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { Vector } from "@twz/libtwz/vector";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
 * const blobs = Vector.create(twz, twz.create({ size: 1 << 20 }), codec.bytes);
 * for (let n = 0; n < 4; n++) blobs.push(new Uint8Array(n).fill(n));
 * console.log(blobs.length, blobs.get(3)); // 4 Uint8Array(3) [ 3, 3, 3 ]
 * twz.close();
 * ```
 */
export class Vector<T> {
  #scratch = new Scratch();

  private constructor(
    readonly host: TxLogHost,
    readonly obj: TxTarget,
    /** Offset of the vector header in the object. */
    readonly offset: number,
    readonly valueCodec: Codec<T>,
  ) {}

  /**
   * Create an empty vector in `obj`: a heap after the object's base, the
   * header in the heap, named from the base. One transaction (or part of the
   * running one).
   *
   * @param host The session (its transaction log).
   * @param obj A fresh, writable object.
   * @param values The element codec (recorded and checked by `open`).
   * @returns The vector.
   * @throws {TwzError} `InvalidArgument` when `obj` already holds a collection.
   */
  static create<T>(host: TxLogHost, obj: CollectionObject, values: Codec<T>): Vector<T> {
    const offset = transaction(host, (tx) => {
      const { heap, header } = createRoot(tx, obj, MAGIC, HEADER);
      const dirCap = 16;
      tx.setU8(obj, header + H.valKind, values.kind);
      tx.setU8(obj, header + H.segShift, SEG_SHIFT);
      tx.setU32(obj, header + H.dir, heap.alloc(tx, dirCap * 4));
      tx.setU32(obj, header + H.dirCap, dirCap);
      tx.setU32(obj, header + H.heap, heap.offset);
      return header;
    });
    return new Vector(host, obj, offset, values);
  }

  /**
   * Open the vector created in `obj` by {@linkcode Vector.create}.
   *
   * @param host The session.
   * @param obj The object holding the vector.
   * @param values The element codec it was created with.
   * @returns The vector.
   * @throws {TwzError} `InvalidArgument` when `obj` holds no vector (or
   * another collection), or it was made with another codec.
   */
  static open<T>(host: TxLogHost, obj: CollectionObject, values: Codec<T>): Vector<T> {
    const header = openRoot(
      obj,
      MAGIC,
      NAME,
      "vector",
      HEADER,
      null,
      values,
      (h) => Vector.headerProblem(obj, h),
    );
    return new Vector(host, obj, header, values);
  }

  /**
   * Check a vector header in place (constant time): segment geometry, the
   * directory (inside the object, large enough for every element), the
   * heap's offset and the length. `open` refuses a vector that fails it.
   *
   * @param obj The object holding the vector.
   * @param header The header's offset.
   * @returns The first problem, or `undefined`.
   */
  static headerProblem(obj: CollectionObject, header: number): string | undefined {
    const v = obj.mapping.view;
    const size = v.byteLength;
    if (header + HEADER > size) return `header at ${header} lies outside the object`;
    const shift = v.getUint8(header + H.segShift);
    if (shift !== SEG_SHIFT) return `segment shift ${shift}, not ${SEG_SHIFT}`;
    const heap = v.getUint32(header + H.heap, true);
    const heapAt = rootHeapOffset(obj);
    if (heap !== heapAt) return `header names its heap at ${heap}, not ${heapAt}`;
    const n = v.getUint32(header + H.length, true);
    const dir = v.getUint32(header + H.dir, true);
    const cap = v.getUint32(header + H.dirCap, true);
    if (dir < heapAt + 136 || dir % 8 !== 0 || dir + cap * 4 > size || Math.ceil(n / SEG) > cap) {
      return `directory at ${dir} (${cap} segments) cannot hold ${n} elements`;
    }
    if (n > size / PAIR) return `length ${n} is impossible in ${size} bytes`;
    return undefined;
  }

  /** The damage error for this vector. */
  #bad(detail: string): Error {
    return damaged(NAME, this.obj.id, detail);
  }

  /** The heap holding the vector (for checking). */
  get heap(): Heap {
    return new Heap(this.obj, this.obj.mapping.view.getUint32(this.offset + H.heap, true));
  }

  /** Number of elements. */
  get length(): number {
    return guard(NAME, this.obj, () => new Mem(this.obj, activeTx()).u32(this.offset + H.length));
  }

  /** Offset of element `i`'s (offset, length) pair. */
  #pair(m: Mem, i: number): number {
    const seg = m.u32(m.u32(this.offset + H.dir) + (i >>> SEG_SHIFT) * 4);
    if (seg < 64 || seg + SEG * PAIR > this.obj.mapping.bytes.length) {
      throw this.#bad(`segment ${i >>> SEG_SHIFT} at ${seg} lies outside the object`);
    }
    return seg + (i & SEG_MASK) * PAIR;
  }

  /**
   * Element `i`.
   *
   * @param i The index.
   * @returns The element, or `undefined` when `i` is not an index of the vector.
   */
  get(i: number): T | undefined {
    try {
      const m = new Mem(this.obj, activeTx());
      if (!(Number.isInteger(i) && i >= 0 && i < m.u32(this.offset + H.length))) return undefined;
      return this.#decode(m, this.#pair(m, i));
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
  }

  #decode(m: Mem, p: number): T {
    const at = m.u32(p);
    const len = m.u32(p + 4);
    if (at < 64 || at + len > this.obj.mapping.bytes.length) {
      throw this.#bad(`an element (${len} bytes at ${at}) lies outside the object`);
    }
    return this.valueCodec.decode(m.bytes(at, len), m.start(at), len);
  }

  /** Encode `value` into the scratch buffer; returns its length. */
  #encode(value: T): number {
    return this.valueCodec.encode(value, this.#scratch.reserve(this.valueCodec.size(value)), 0);
  }

  /** A new heap blob holding the scratch bytes. */
  #blob(tx: Tx, heap: Heap, len: number): number {
    const at = heap.alloc(tx, len);
    tx.write(this.obj, at, this.#scratch.bytes.subarray(0, len));
    return at;
  }

  /**
   * Append `value` (one transaction, or part of the running one).
   *
   * @param value The element.
   * @returns The new length.
   * @throws {TwzError} `InvalidArgument` when the codec refuses the value;
   * `OutOfSpace` when the object cannot grow.
   */
  push(value: T): number {
    return guard(NAME, this.obj, () => this.#push(value));
  }

  #push(value: T): number {
    return transaction(this.host, (tx) => {
      const o = this.obj;
      const h = this.offset;
      const m = new Mem(o, tx);
      const heap = this.heap;
      const n = m.u32(h + H.length);
      if (n >= 0xffffffff) throw new ArgumentRangeError("A vector holds at most 2^32 - 1 elements");
      if ((n & SEG_MASK) === 0) {
        const s = n >>> SEG_SHIFT;
        let dir = m.u32(h + H.dir);
        const cap = m.u32(h + H.dirCap);
        if (s >= cap) {
          dir = heap.realloc(tx, dir, cap * 8);
          tx.setU32(o, h + H.dir, dir);
          tx.setU32(o, h + H.dirCap, cap * 2);
        }
        tx.setU32(o, dir + s * 4, heap.alloc(tx, SEG * PAIR));
      }
      const len = this.#encode(value);
      const p = this.#pair(m, n);
      tx.setU32(o, p, this.#blob(tx, heap, len));
      tx.setU32(o, p + 4, len);
      tx.setU32(o, h + H.length, n + 1);
      return n + 1;
    });
  }

  /**
   * Remove the last element and free it (one transaction, or part of the
   * running one).
   *
   * @returns The element, or `undefined` when the vector is empty.
   */
  pop(): T | undefined {
    return guard(NAME, this.obj, () => this.#pop());
  }

  #pop(): T | undefined {
    return transaction(this.host, (tx) => {
      const o = this.obj;
      const h = this.offset;
      const m = new Mem(o, tx);
      const n = m.u32(h + H.length);
      if (n === 0) return undefined;
      const heap = this.heap;
      const p = this.#pair(m, n - 1);
      const value = this.#decode(m, p);
      heap.free(tx, m.u32(p));
      tx.setU32(o, p, 0);
      tx.setU32(o, p + 4, 0);
      tx.setU32(o, h + H.length, n - 1);
      if (((n - 1) & SEG_MASK) === 0) {
        // The last segment is empty: free it.
        const slot = m.u32(h + H.dir) + ((n - 1) >>> SEG_SHIFT) * 4;
        heap.free(tx, m.u32(slot));
        tx.setU32(o, slot, 0);
      }
      return value;
    });
  }

  /**
   * Replace element `i` (one transaction, or part of the running one).
   *
   * @param i The index (`0 <= i < length`).
   * @param value The new element.
   * @throws {RangeError} `i` is not an index of the vector.
   * @throws {TwzError} `InvalidArgument` when the codec refuses the value.
   */
  set(i: number, value: T): void {
    guard(NAME, this.obj, () => this.#set(i, value));
  }

  #set(i: number, value: T): void {
    transaction(this.host, (tx) => {
      const o = this.obj;
      const m = new Mem(o, tx);
      const n = m.u32(this.offset + H.length);
      if (!(Number.isInteger(i) && i >= 0 && i < n)) {
        throw new ArgumentRangeError(`Index ${i} is outside the vector (length ${n})`);
      }
      const len = this.#encode(value);
      const p = this.#pair(m, i);
      const old = m.u32(p);
      if (m.u32(p + 4) === len) {
        tx.write(o, old, this.#scratch.bytes.subarray(0, len));
        return;
      }
      const heap = this.heap;
      tx.setU32(o, p, this.#blob(tx, heap, len));
      tx.setU32(o, p + 4, len);
      heap.free(tx, old);
    });
  }

  /**
   * Check the vector (an fsck of it): the directory holds a segment for
   * every element, and every element's blob lies inside the object. Reads
   * object memory in place.
   *
   * @returns Elements seen; `problem` names the first inconsistency.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { codec } from "@twz/libtwz/codec";
   * import { Vector } from "@twz/libtwz/vector";
   * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
   * const v = Vector.create(twz, twz.create({ size: 1 << 20 }), codec.int);
   * v.push(7);
   * console.log(v.check()); // { elements: 1 }
   * twz.close();
   * ```
   */
  check(): { elements: number; problem?: string } {
    const header = Vector.headerProblem(this.obj as CollectionObject, this.offset);
    if (header !== undefined) return { elements: 0, problem: header };
    const v = this.obj.mapping.view;
    const size = v.byteLength;
    const n = v.getUint32(this.offset + H.length, true);
    const dir = v.getUint32(this.offset + H.dir, true);
    const cap = v.getUint32(this.offset + H.dirCap, true);
    const segments = Math.ceil(n / SEG);
    if (dir === 0 || dir + cap * 4 > size || segments > cap) {
      return {
        elements: 0,
        problem: `directory at ${dir} (${cap} segments) cannot hold ${n} elements`,
      };
    }
    for (let s = 0; s < segments; s++) {
      const seg = v.getUint32(dir + s * 4, true);
      if (seg === 0 || seg + SEG * PAIR > size) {
        return { elements: s * SEG, problem: `segment ${s} at ${seg} lies outside the object` };
      }
    }
    for (let i = 0; i < n; i++) {
      const p = v.getUint32(dir + (i >>> SEG_SHIFT) * 4, true) + (i & SEG_MASK) * PAIR;
      const at = v.getUint32(p, true), len = v.getUint32(p + 4, true);
      if (at === 0 || at + len > size) {
        return {
          elements: i,
          problem: `element ${i} (${len} bytes at ${at}) lies outside the object`,
        };
      }
    }
    return { elements: n };
  }

  /**
   * Every element, first to last. Reads go through the running transaction,
   * if any; don't change the vector while iterating.
   *
   * @returns A generator of elements.
   */
  *values(): Generator<T> {
    for (let i = 0;; i++) {
      let value: T;
      try {
        const m = new Mem(this.obj, activeTx());
        if (i >= m.u32(this.offset + H.length)) return;
        value = this.#decode(m, this.#pair(m, i));
      } catch (error) {
        throw asDamage(NAME, this.obj, error);
      }
      yield value;
    }
  }

  /**
   * Every element, first to last.
   *
   * @returns A generator of elements.
   */
  [Symbol.iterator](): Generator<T> {
    return this.values();
  }
}

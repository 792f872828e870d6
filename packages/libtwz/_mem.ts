// Private helpers shared by the persistent collections (hash map, B-tree map,
// vector, queue): transaction-aware reads and the root record at an object's
// base. Not exported from the package.
import { closedError } from "./_layout_accessor.ts";
import { ErrorCode, formatId, type ObjID, TwzError } from "@twz/kernel/abi";
import type { Tx, TxTarget } from "./_tx.ts";
import { Heap } from "./heap.ts";
import type { Codec } from "./codec.ts";
import { codecOfKind } from "./_codec_kind.ts";

const HEAP_MAGIC = 0x50414548; // "HEAP", see heap.ts

/**
 * A RangeError about the caller's arguments (an index past the end, a bad
 * size): {@linkcode guard} passes it through, where any other RangeError
 * (a load past the object from a damaged offset) becomes `ObjectDamaged`.
 */
export class ArgumentRangeError extends RangeError {
  override name = "RangeError";
}

/**
 * The error for damaged structure data: `ObjectDamaged`, naming the
 * structure and its object ("BTreeMap in 5f…: node at 8192 has 40 keys").
 */
export function damaged(what: string, id: ObjID, detail: string, cause?: unknown): TwzError {
  return new TwzError(
    ErrorCode.ObjectDamaged,
    `${what} in ${formatId(id)}: ${detail}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * `error` as the caller should see it: a RangeError thrown by a load or
 * store on damaged data becomes `ObjectDamaged` naming the structure;
 * argument errors ({@linkcode ArgumentRangeError}), TwzErrors and anything
 * else pass through.
 */
export function asDamage(
  what: string,
  obj: ObjID | { readonly id: ObjID; readonly _closed?: boolean; _gone?(): unknown },
  error: unknown,
): unknown {
  if (typeof obj !== "bigint" && obj._closed === true) return closedError(obj.id);
  if (typeof obj !== "bigint" && error instanceof RangeError) {
    // Bytes the kernel withdrew (a revoked capability) are no damage either.
    const gone = obj._gone?.();
    if (gone !== undefined) return gone;
  }
  const id = typeof obj === "bigint" ? obj : obj.id;
  if (error instanceof ArgumentRangeError) return error;
  if (error instanceof RangeError) return damaged(what, id, error.message, error);
  return error;
}

/**
 * Run `fn` (an operation on the structure `what` in `obj`); a raw RangeError
 * from damaged data surfaces as `TwzError(ObjectDamaged)`, never as a
 * "Offset is outside the bounds of the DataView". Free when nothing throws.
 */
export function guard<T>(
  what: string,
  obj: { readonly id: ObjID; readonly _closed?: boolean; _gone?(): unknown },
  fn: () => T,
): T {
  try {
    return fn();
  } catch (error) {
    // An object of a closed session has no bytes: that is no damage.
    throw asDamage(what, obj, error);
  }
}

/**
 * A bound on the steps of a walk through `size` bytes whose records take at
 * least `minRecord` bytes each: a walk longer than this loops (damage).
 */
export function stepLimit(size: number, minRecord: number): number {
  return Math.floor(size / minRecord) + 1;
}

/** Reads through the running transaction when there is one, else in place. */
export class Mem {
  #buf: Uint8Array | null = null;

  constructor(readonly obj: TxTarget, readonly tx: Tx | null) {}
  u8(at: number): number {
    return this.tx ? this.tx.getU8(this.obj, at) : this.obj.mapping.bytes[at]!;
  }
  u16(at: number): number {
    return this.tx ? this.tx.getU16(this.obj, at) : this.obj.mapping.view.getUint16(at, true);
  }
  u32(at: number): number {
    return this.tx ? this.tx.getU32(this.obj, at) : this.obj.mapping.view.getUint32(at, true);
  }
  f64(at: number): number {
    return this.tx ? this.tx.getF64(this.obj, at) : this.obj.mapping.view.getFloat64(at, true);
  }
  /** Compare `length` bytes at `at` with `key[keyAt..keyAt + length)`. */
  equals(at: number, key: Uint8Array, length: number, keyAt = 0): boolean {
    if (this.tx) {
      const here = this.tx.read(this.obj, at, length);
      for (let i = 0; i < length; i++) if (here[i] !== key[keyAt + i]) return false;
      return true;
    }
    const b = this.obj.mapping.bytes;
    for (let i = 0; i < length; i++) if (b[at + i] !== key[keyAt + i]) return false;
    return true;
  }
  /**
   * The bytes at `[at, at + length)`: a copy inside a transaction (index 0),
   * else the whole mapping (index `at`). Use {@linkcode Mem.start} for the index.
   */
  bytes(at: number, length: number): Uint8Array {
    return this.tx ? this.tx.read(this.obj, at, length) : this.obj.mapping.bytes;
  }
  /** Where the bytes of `at` sit in what {@linkcode Mem.bytes} returned. */
  start(at: number): number {
    return this.tx ? 0 : at;
  }
  /**
   * Compare the `length` bytes at `at` with `key[0..klen)` (unsigned,
   * lexicographic; a prefix sorts first).
   *
   * @returns Negative, zero or positive as the stored bytes sort before,
   * equal to or after `key`.
   */
  compare(at: number, length: number, key: Uint8Array, klen: number): number {
    let b: Uint8Array;
    let o: number;
    if (this.tx) {
      if (this.#buf === null || this.#buf.length < length) {
        this.#buf = new Uint8Array(Math.max(64, length * 2));
      }
      b = this.tx.read(this.obj, at, length, this.#buf, 0);
      o = 0;
    } else {
      b = this.obj.mapping.bytes;
      o = at;
    }
    return compareBytes(b, o, length, key, 0, klen);
  }
}

/** Unsigned lexicographic comparison of two byte ranges (a prefix sorts first). */
export function compareBytes(
  a: Uint8Array,
  at: number,
  alen: number,
  b: Uint8Array,
  bt: number,
  blen: number,
): number {
  const n = alen < blen ? alen : blen;
  for (let i = 0; i < n; i++) {
    const d = a[at + i]! - b[bt + i]!;
    if (d !== 0) return d;
  }
  return alen - blen;
}

/** An object that can hold a collection. */
export type CollectionObject = TxTarget & { baseOffset: number; dataEnd?: number };

/** Magic numbers of the collections that root an object, for messages. */
const KINDS = new Map<number, string>([
  [0x50414d48, "a hash map"], // "HMAP"
  [0x45525442, "a B-tree map"], // "BTRE"
  [0x54434556, "a vector"], // "VECT"
  [0x55455551, "a queue"], // "QUEU"
]);

/** The offset of the heap laid out at an object's base by {@linkcode createRoot}. */
export function rootHeapOffset(obj: CollectionObject): number {
  return (obj.baseOffset + 64 + 63) & ~63;
}

/**
 * Lay out a heap after the object's base, allocate a collection header of
 * `headerBytes` in it (its first word: `magic`) and name it from the base
 * (base word 0: header offset, word 1: magic), in the running transaction.
 *
 * @throws {TwzError} `InvalidArgument` when the object already holds a collection.
 */
export function createRoot(
  tx: Tx,
  obj: CollectionObject,
  magic: number,
  headerBytes: number,
): { heap: Heap; header: number } {
  const existing = KINDS.get(tx.getU32(obj, obj.baseOffset + 4));
  if (existing !== undefined) {
    throw new TwzError(ErrorCode.InvalidArgument, `${formatId(obj.id)} already holds ${existing}`);
  }
  const heapAt = rootHeapOffset(obj);
  const heap = Heap.create(tx, obj, heapAt, obj.dataEnd ?? obj.mapping.bytes.length);
  const header = heap.alloc(tx, headerBytes);
  tx.setU32(obj, header, magic);
  tx.setU32(obj, obj.baseOffset, header);
  tx.setU32(obj, obj.baseOffset + 4, magic);
  return { heap, header };
}

/**
 * The header of the collection with `magic` rooted at the object's base,
 * checked: the root words, the header's magic and codecs, the heap's header
 * and the collection's own header fields (`validate`).
 *
 * @param name The collection's class name for damage messages ("BTreeMap").
 * @param what The collection's name for messages ("B-tree map").
 * @param kinds Codec kinds stored at header + 4 (key) and + 5 (value), and
 * the codecs the caller opens with (`null` key: a collection without keys).
 * @param validate The collection's header check: the first problem, or undefined.
 * @throws {TwzError} `InvalidArgument` when the object holds no such
 * collection or it was made with other codecs; `ObjectDamaged` when the
 * collection is there but its root words or headers are damaged.
 */
export function openRoot(
  obj: CollectionObject,
  magic: number,
  name: string,
  what: string,
  headerBytes: number,
  keys: Codec<unknown> | null,
  values: Codec<unknown>,
  validate: (header: number) => string | undefined,
): number {
  const header = rootHeader(obj, magic, name, what, headerBytes);
  const v = obj.mapping.view;
  const keyKind = v.getUint8(header + 4);
  const valKind = v.getUint8(header + 5);
  if ((keys !== null && codecOfKind(keyKind) === undefined) || codecOfKind(valKind) === undefined) {
    throw damaged(name, obj.id, `header at ${header} names unknown codecs ${keyKind}/${valKind}`);
  }
  if ((keys !== null && keyKind !== keys.kind) || valKind !== values.kind) {
    // A header that fails its own check (its codec bytes damaged, say) is
    // damage, not the caller's wrong codecs.
    const bad = validate(header);
    if (bad !== undefined) throw damaged(name, obj.id, bad);
    const asked = keys !== null ? `${keys.name}/${values.name}` : values.name;
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `The ${what} in ${formatId(obj.id)} was made with other codecs than ${asked}`,
    );
  }
  const problem = validate(header);
  if (problem !== undefined) throw damaged(name, obj.id, problem);
  return header;
}

/**
 * The offset of the header of the collection with `magic` at the object's
 * base: the root words and the header's magic checked, and the heap's header.
 *
 * @throws {TwzError} `InvalidArgument` (no such collection), `ObjectDamaged`.
 */
export function rootHeader(
  obj: CollectionObject,
  magic: number,
  name: string,
  what: string,
  headerBytes: number,
): number {
  const v = obj.mapping.view;
  const size = v.byteLength;
  const heapAt = rootHeapOffset(obj);
  const found = size >= obj.baseOffset + 8 ? v.getUint32(obj.baseOffset + 4, true) : 0;
  const hasHeap = size >= heapAt + 8 && v.getUint32(heapAt, true) === HEAP_MAGIC;
  if (found !== magic) {
    const other = KINDS.get(found);
    if (other !== undefined) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `${formatId(obj.id)} holds ${other}, not a ${what}`,
      );
    }
    const named = size >= obj.baseOffset + 8 ? v.getUint32(obj.baseOffset, true) : 0;
    const header = named >= heapAt + 128 && named + 8 <= size ? v.getUint32(named, true) : 0;
    if (hasHeap && header === magic) {
      // The header is there, but the base's tag is not: the root words are damaged.
      throw damaged(
        name,
        obj.id,
        `the base's collection tag 0x${
          found.toString(16)
        } is unknown, over a heap (damaged root words)`,
      );
    }
    throw new TwzError(ErrorCode.InvalidArgument, `${formatId(obj.id)} holds no ${what}`);
  }
  const header = v.getUint32(obj.baseOffset, true);
  if (header < heapAt + 128 || header % 8 !== 0 || header + headerBytes > size) {
    throw damaged(name, obj.id, `the base names a header at ${header}, outside the heap`);
  }
  const at = v.getUint32(header, true);
  if (at !== magic) {
    throw damaged(name, obj.id, `no header magic at ${header} (0x${at.toString(16)})`);
  }
  const heap = Heap.headerProblem(obj, heapAt);
  if (heap !== undefined) throw damaged(name, obj.id, `its heap at ${heapAt}: ${heap}`);
  return header;
}

/** A growable scratch buffer for encoding keys and values. */
export class Scratch {
  bytes = new Uint8Array(256);

  /** Make room for `need` bytes, keeping the first `keep`. */
  reserve(need: number, keep = 0): Uint8Array {
    if (need > this.bytes.length) {
      const bigger = new Uint8Array(need * 2);
      if (keep > 0) bigger.set(this.bytes.subarray(0, keep));
      this.bytes = bigger;
    }
    return this.bytes;
  }
}

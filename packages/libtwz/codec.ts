/**
 * Codecs for the keys and values of persistent collections: integers,
 * strings, byte arrays and invariant pointers, each stored as address-free
 * bytes. A codec's number is stored in the collection's header, so reopening
 * a collection with the wrong codec is refused.
 *
 * @example
 * ```ts
 * import { codec } from "@twz/libtwz/codec";
 * const c = codec.string;
 * const scratch = new Uint8Array(64);
 * const n = c.encode("hello", scratch, 0);
 * console.log(n, c.decode(scratch, 0, n)); // 5 hello
 * ```
 *
 * @module
 */
import { ErrorCode, type ObjID, TwzError } from "@twz/kernel/abi";

/** Encodes values of type `T` to bytes and back. */
export interface Codec<T> {
  /** Stored in collection headers; never reused for another codec. */
  readonly kind: number;
  /** For messages. */
  readonly name: string;
  /** Bytes needed for `value` (an upper bound is fine). */
  size(value: T): number;
  /** Write `value` at `at` of `into`; returns the bytes written. */
  encode(value: T, into: Uint8Array, at: number): number;
  /** Read a value of `length` bytes at `at`. */
  decode(bytes: Uint8Array, at: number, length: number): T;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TWO32 = 4294967296;

/** A signed safe integer as 8 little-endian bytes (two's complement). */
const int: Codec<number> = {
  kind: 1,
  name: "int",
  size: () => 8,
  encode(value, into, at) {
    if ((value >>> 0) === value) {
      // The common case, 0 .. 2^32 - 1: no floating-point division.
      into[at] = value;
      into[at + 1] = value >>> 8;
      into[at + 2] = value >>> 16;
      into[at + 3] = value >>> 24;
      into[at + 4] =
        into[at + 5] =
        into[at + 6] =
        into[at + 7] =
          0;
      return 8;
    }
    if (!Number.isSafeInteger(value)) {
      throw new TwzError(ErrorCode.InvalidArgument, `${value} is not a safe integer key/value`);
    }
    const lo = value % TWO32;
    const hi = Math.floor(value / TWO32);
    const l = lo < 0 ? lo + TWO32 : lo;
    into[at] = l;
    into[at + 1] = l >>> 8;
    into[at + 2] = l >>> 16;
    into[at + 3] = l >>> 24;
    into[at + 4] = hi;
    into[at + 5] = hi >>> 8;
    into[at + 6] = hi >>> 16;
    into[at + 7] = hi >>> 24;
    return 8;
  },
  decode(bytes, at) {
    const lo =
      (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
    const hi = bytes[at + 4]! | (bytes[at + 5]! << 8) | (bytes[at + 6]! << 16) |
      (bytes[at + 7]! << 24);
    return hi * TWO32 + lo;
  },
};

/** UTF-8 text. */
const string: Codec<string> = {
  kind: 2,
  name: "string",
  size: (value) => value.length * 3,
  encode(value, into, at) {
    // Short ASCII (the common key): byte stores, no encoder call.
    if (value.length <= 64) {
      let i = 0;
      for (; i < value.length; i++) {
        const c = value.charCodeAt(i);
        if (c > 0x7f) break;
        into[at + i] = c;
      }
      if (i === value.length) return i;
    }
    return encoder.encodeInto(value, into.subarray(at)).written;
  },
  decode(bytes, at, length) {
    if (length <= 64) {
      let ascii = true;
      for (let i = 0; i < length; i++) {
        if (bytes[at + i]! > 0x7f) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        let s = "";
        for (let i = 0; i < length; i++) s += String.fromCharCode(bytes[at + i]!);
        return s;
      }
    }
    // TextDecoder refuses views of shared memory: decode a private copy.
    return decoder.decode(copyOut(bytes, at, length));
  },
};

const SLAB = 64 * 1024;
let slab = new Uint8Array(0);
let slabAt = 0;

/**
 * A private copy of `length` bytes at `at`. Short copies (up to 1 KiB) are
 * carved out of a shared 64 KiB slab, as Node's Buffer pool does: allocating
 * an ArrayBuffer costs ~250 ns here, a view of a slab ~40 ns. Such a copy may
 * share its `buffer` with other decoded values (at its own `byteOffset`);
 * `slice()` it for a buffer of its own.
 */
function copyOut(b: Uint8Array, at: number, length: number): Uint8Array {
  if (length > 1024) {
    const out = new Uint8Array(length);
    out.set(b.subarray(at, at + length));
    return out;
  }
  if (slabAt + length > slab.length) {
    slab = new Uint8Array(SLAB);
    slabAt = 0;
  }
  const out = slab.subarray(slabAt, slabAt + length);
  slabAt += (length + 7) & ~7;
  for (let i = 0; i < length; i++) out[i] = b[at + i]!;
  return out;
}

/**
 * Raw bytes, decoded as a copy (a short copy may share its `buffer` with
 * other decoded values: `slice()` it for an ArrayBuffer of its own).
 */
const bytes: Codec<Uint8Array> = {
  kind: 3,
  name: "bytes",
  size: (value) => value.length,
  encode(value, into, at) {
    const n = value.length;
    if (n <= 64) { for (let i = 0; i < n; i++) into[at + i] = value[i]!; }
    else into.set(value, at);
    return n;
  },
  decode(b, at, length) {
    return copyOut(b, at, length);
  },
};

/** A reference to a record in any object: its ID and offset (24 bytes). */
export interface ObjRef {
  /** The object's ID. */
  id: ObjID;
  /** The record's offset in the object. */
  offset: number;
}

/**
 * An object reference stored as ID + offset. (Collections store references
 * by ID rather than through a FOT entry so that they can be compared and
 * hashed as keys; typed layouts' `ptr(T)` fields are the FOT-based
 * invariant pointers.)
 */
const ref: Codec<ObjRef> = {
  kind: 4,
  name: "ref",
  size: () => 24,
  encode(value, into, at) {
    let id = value.id;
    for (let i = 0; i < 16; i++) {
      into[at + i] = Number(id & 0xffn);
      id >>= 8n;
    }
    int.encode(value.offset, into, at + 16);
    return 24;
  },
  decode(b, at) {
    let id = 0n;
    for (let i = 15; i >= 0; i--) id = (id << 8n) | BigInt(b[at + i]!);
    return { id, offset: int.decode(b, at + 16, 8) };
  },
};

/** The built-in codecs. */
export const codec = { int, string, bytes, ref } as const;

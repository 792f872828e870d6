/**
 * Invariant pointers: 64-bit values that name a byte of an object without
 * naming an address, so they stay valid in every address space, across
 * reboots and when the kernel relocates the target.
 *
 * ```text
 *   63            48 47                                            0
 *  +----------------+-----------------------------------------------+
 *  |   FOT index    |                    offset                     |
 *  +----------------+-----------------------------------------------+
 *     16 bits: 0 = the object holding the pointer; i >= 1 = FOT entry i
 *     48 bits: byte offset in the target; offset 0 = null (any index)
 * ```
 *
 * In memory a pointer is 8 bytes, little-endian, 8-byte aligned, read as two
 * 32-bit halves: `lo` (offset bits 0..31) at +0 and `hi` (offset bits 32..47
 * in its low 16 bits, FOT index in its high 16 bits) at +4, so following one
 * never touches BigInt.
 *
 * @example Encode, store and decode
 * ```ts
 * import { ptrFot, ptrOffset, readPtrHi, readPtrLo, writePtr } from "@twz/kernel/abi";
 * const view = new DataView(new ArrayBuffer(16));
 * writePtr(view, 8, 3, 0x1234);
 * const lo = readPtrLo(view, 8), hi = readPtrHi(view, 8);
 * console.log(ptrFot(hi), ptrOffset(lo, hi)); // 3 4660
 * ```
 *
 * @module
 */

/** Size of a stored pointer. */
export const PTR_SIZE = 8;
/** The largest offset a pointer can carry (2^48 - 1). */
export const MAX_PTR_OFFSET = 2 ** 48 - 1;
/** The largest FOT index (2^16 - 1). */
export const MAX_PTR_FOT = 0xffff;
const TWO32 = 4294967296;

/** A decoded pointer. */
export interface InvPtr {
  /** FOT index: 0 means the object holding the pointer. */
  fot: number;
  /** Byte offset in the target; 0 means null. */
  offset: number;
}

function check(fot: number, offset: number): void {
  if (!Number.isInteger(fot) || fot < 0 || fot > MAX_PTR_FOT) {
    throw new RangeError(`FOT index ${fot} is not in [0, ${MAX_PTR_FOT}]`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_PTR_OFFSET) {
    throw new RangeError(`Pointer offset ${offset} is not in [0, 2^48)`);
  }
}

/**
 * Encode a pointer as one 64-bit value.
 *
 * @param fot FOT index (0 = same object).
 * @param offset Byte offset (0 = null).
 * @returns The value.
 * @throws {RangeError} An index or offset out of range.
 * @example
 * ```ts
 * import { encodePtr } from "@twz/kernel/abi";
 * console.log(encodePtr(1, 256).toString(16)); // "1000000000100"
 * ```
 */
export function encodePtr(fot: number, offset: number): bigint {
  check(fot, offset);
  return (BigInt(fot) << 48n) | BigInt(offset);
}

/**
 * Decode a 64-bit pointer value.
 *
 * @throws {RangeError} The value is not within 64 bits.
 * @example
 * ```ts
 * import { decodePtr } from "@twz/kernel/abi";
 * console.log(decodePtr(0x1000000000100n)); // { fot: 1, offset: 256 }
 * ```
 */
export function decodePtr(value: bigint): InvPtr {
  if (value < 0n || value >= 1n << 64n) throw new RangeError(`${value} is not a 64-bit pointer`);
  return { fot: Number(value >> 48n), offset: Number(value & 0xffffffffffffn) };
}

/**
 * The low half of a pointer (offset bits 0..31).
 *
 * @example
 * ```ts
 * import { ptrLo } from "@twz/kernel/abi";
 * console.log(ptrLo(2 ** 40 + 5)); // 5
 * ```
 */
export function ptrLo(offset: number): number {
  return offset % TWO32;
}

/**
 * The high half of a pointer (FOT index and offset bits 32..47).
 *
 * @example
 * ```ts
 * import { ptrHi } from "@twz/kernel/abi";
 * console.log(ptrHi(1, 2 ** 32).toString(16)); // "10001"
 * ```
 */
export function ptrHi(fot: number, offset: number): number {
  return ((fot << 16) | Math.floor(offset / TWO32)) >>> 0;
}

/**
 * The FOT index of a pointer, from its high half.
 *
 * @example
 * ```ts
 * import { ptrFot } from "@twz/kernel/abi";
 * console.log(ptrFot(0x00030000)); // 3
 * ```
 */
export function ptrFot(hi: number): number {
  return hi >>> 16;
}

/**
 * The offset of a pointer, from its two halves.
 *
 * @example
 * ```ts
 * import { ptrOffset } from "@twz/kernel/abi";
 * console.log(ptrOffset(8, 0x00030001)); // 4294967304
 * ```
 */
export function ptrOffset(lo: number, hi: number): number {
  return (hi & 0xffff) * TWO32 + lo;
}

/**
 * Whether a pointer is null (its offset is 0, whatever its FOT index).
 *
 * @example
 * ```ts
 * import { isNullPtr } from "@twz/kernel/abi";
 * console.log(isNullPtr(0, 0x00050000)); // true
 * ```
 */
export function isNullPtr(lo: number, hi: number): boolean {
  return lo === 0 && (hi & 0xffff) === 0;
}

/**
 * Read the low half of the pointer stored at `at`.
 *
 * @example
 * ```ts
 * import { readPtrLo } from "@twz/kernel/abi";
 * console.log(readPtrLo(new DataView(new ArrayBuffer(8)), 0)); // 0
 * ```
 */
export function readPtrLo(view: DataView, at: number): number {
  return view.getUint32(at, true);
}

/**
 * Read the high half of the pointer stored at `at`.
 *
 * @example
 * ```ts
 * import { readPtrHi } from "@twz/kernel/abi";
 * console.log(readPtrHi(new DataView(new ArrayBuffer(8)), 0)); // 0
 * ```
 */
export function readPtrHi(view: DataView, at: number): number {
  return view.getUint32(at + 4, true);
}

/**
 * Read and decode the pointer stored at `at`.
 *
 * @example
 * ```ts
 * import { readPtr, writePtr } from "@twz/kernel/abi";
 * const view = new DataView(new ArrayBuffer(8));
 * writePtr(view, 0, 0, 512);
 * console.log(readPtr(view, 0)); // { fot: 0, offset: 512 }
 * ```
 */
export function readPtr(view: DataView, at: number): InvPtr {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  return { fot: hi >>> 16, offset: ptrOffset(lo, hi) };
}

/**
 * Store a pointer at `at` with one 8-byte store (so a crash never leaves half
 * of it). `at` should be 8-byte aligned.
 *
 * @param view Where to store.
 * @param at Byte offset in `view`.
 * @param fot FOT index (0 = same object).
 * @param offset Byte offset in the target (0 = null).
 * @throws {RangeError} An index or offset out of range, or `at` outside `view`.
 * @example
 * ```ts
 * import { readPtr, writePtr } from "@twz/kernel/abi";
 * const view = new DataView(new ArrayBuffer(8));
 * writePtr(view, 0, 2, 64);
 * console.log(readPtr(view, 0)); // { fot: 2, offset: 64 }
 * ```
 */
export function writePtr(view: DataView, at: number, fot: number, offset: number): void {
  check(fot, offset);
  view.setBigUint64(at, (BigInt(ptrHi(fot, offset)) << 32n) | BigInt(ptrLo(offset)), true);
}

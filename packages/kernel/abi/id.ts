/**
 * Object IDs: 128-bit numbers in one global space, written as 32 lowercase hex
 * digits. IDs whose upper 64 bits are zero are invalid (reserved), so a random
 * ID is never confused with a small number.
 *
 * @module
 */

/** A 128-bit object ID. */
export type ObjID = bigint;

const MASK128 = (1n << 128n) - 1n;

/**
 * Whether `id` is a valid object ID: within 128 bits, upper 64 bits non-zero.
 *
 * @example
 * ```ts
 * import { isValidId } from "@twz/kernel/abi";
 * console.log(isValidId(1n), isValidId(1n << 64n)); // false true
 * ```
 */
export function isValidId(id: ObjID): boolean {
  return id >= 1n << 64n && id <= MASK128;
}

/**
 * Format an ID as 32 lowercase hex digits.
 *
 * @example
 * ```ts
 * import { formatId } from "@twz/kernel/abi";
 * console.log(formatId(0xabcn << 64n)); // "0000000000000abc0000000000000000"
 * ```
 */
export function formatId(id: ObjID): string {
  return id.toString(16).padStart(32, "0");
}

/**
 * Parse 32 hex digits into an ID.
 *
 * @throws {TypeError} The text is not 32 hex digits, or names an invalid ID.
 * @example
 * ```ts
 * import { parseId } from "@twz/kernel/abi";
 * const id = parseId("0000000000000abc0000000000000000");
 * ```
 */
export function parseId(text: string): ObjID {
  if (!/^[0-9a-fA-F]{32}$/.test(text)) {
    throw new TypeError(`"${text}" is not an object ID (32 hex digits)`);
  }
  const id = BigInt("0x" + text);
  if (!isValidId(id)) throw new TypeError(`${text} is not a valid object ID (upper half is zero)`);
  return id;
}

/** Whether `text` looks like an object ID (32 hex digits). */
export function looksLikeId(text: string): boolean {
  return /^[0-9a-fA-F]{32}$/.test(text);
}

/**
 * Build an ID from 16 random bytes, forcing the upper half non-zero.
 *
 * @param bytes Exactly 16 bytes (little-endian).
 */
export function idFromBytes(bytes: Uint8Array): ObjID {
  if (bytes.length !== 16) throw new RangeError("An object ID is 16 bytes");
  let id = 0n;
  for (let i = 15; i >= 0; i--) id = (id << 8n) | BigInt(bytes[i]!);
  if (id >> 64n === 0n) id |= 1n << 64n;
  return id;
}

/** Write an ID as 16 little-endian bytes at `offset` of `view`. */
export function writeId(view: DataView, offset: number, id: ObjID): void {
  view.setBigUint64(offset, id & 0xffffffffffffffffn, true);
  view.setBigUint64(offset + 8, id >> 64n, true);
}

/** Read an ID written by {@linkcode writeId}. */
export function readId(view: DataView, offset: number): ObjID {
  return (view.getBigUint64(offset + 8, true) << 64n) | view.getBigUint64(offset, true);
}

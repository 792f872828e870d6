/**
 * The hash of the hash map's keys (and its shortcut for integer keys).
 * Private to libtwz: the hash map and its checker use it.
 *
 * @module
 */
/**
 * A 32-bit hash of `length` bytes at `at` (word-at-a-time for the common
 * 8-byte integer key).
 */
export function hashBytes(b: Uint8Array, at: number, length: number): number {
  let h = 0x9747b28c ^ length;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    const w = b[at + i]! | (b[at + i + 1]! << 8) | (b[at + i + 2]! << 16) | (b[at + i + 3]! << 24);
    h = Math.imul(h ^ Math.imul(w, 0xcc9e2d51), 0x1b873593);
    h = (h << 13) | (h >>> 19);
  }
  for (; i < length; i++) h = Math.imul(h ^ b[at + i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * {@linkcode hashBytes} of the 8 bytes `codec.int` writes for a safe
 * integer whose halves are `lo` and `hi`, computed without encoding it.
 */
export function hashInt(lo: number, hi: number): number {
  let h = 0x9747b28c ^ 8;
  h = Math.imul(h ^ Math.imul(lo | 0, 0xcc9e2d51), 0x1b873593);
  h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ Math.imul(hi | 0, 0xcc9e2d51), 0x1b873593);
  h = (h << 13) | (h >>> 19);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

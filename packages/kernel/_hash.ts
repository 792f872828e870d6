// A 64-bit, non-linear checksum for the metadata log. CRC-32 will not do
// there: CRC is linear, so a record that ends in its own CRC-32 (the root
// record does) contributes a constant to the CRC of any larger range, and a
// log torn between an old and a new root record would still check (found by
// `twz crashtest kernel-objects --unit 8`). Two multiply-xorshift lanes over
// 32-bit words; the length is mixed in.

/**
 * Checksum of `view[from, to)` followed by `view[from2, to2)` (lengths
 * multiples of 4), as [lo, hi].
 */
export function logHash(
  view: DataView,
  from: number,
  to: number,
  from2 = to,
  to2 = to,
): [number, number] {
  let a = 0x9e3779b9 ^ (to - from + to2 - from2);
  let b = 0x85ebca6b;
  for (let r = 0; r < 2; r++) {
    const start = r === 0 ? from : from2;
    const end = r === 0 ? to : to2;
    for (let i = start; i < end; i += 4) {
      const w = view.getUint32(i, true);
      a = Math.imul(a ^ w, 0xcc9e2d51);
      a ^= a >>> 15;
      b = Math.imul(b + w, 0x1b873593) ^ (b >>> 13);
      b = Math.imul(b ^ (a >>> 7), 0xc2b2ae35);
    }
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
  a ^= b;
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35) ^ a;
  return [a >>> 0, (b ^ (b >>> 16)) >>> 0];
}

import assert from "node:assert/strict";
import { codec } from "@twz/libtwz/codec";
import { hashBytes, hashInt } from "./_hash.ts";
Deno.test("hashInt matches hashBytes of the int encoding", () => {
  const b = new Uint8Array(8);
  for (const k of [0, 1, 255, 65536, 0xffffffff, 2 ** 40 + 3, -1, -(2 ** 40)]) {
    codec.int.encode(k, b, 0);
    const lo = b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24);
    const hi = b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24);
    assert.equal(hashInt(lo >>> 0, hi >>> 0), hashBytes(b, 0, 8), `key ${k}`);
  }
});

Deno.test("codec.bytes.decode() gives independent copies, even from shared memory", async () => {
  const { codec } = await import("@twz/libtwz/codec");
  const shared = new Uint8Array(new SharedArrayBuffer(4096));
  shared.set([1, 2, 3, 4], 100);
  const a = codec.bytes.decode(shared, 100, 4);
  const b = codec.bytes.decode(shared, 100, 4);
  shared[100] = 9;
  a[1] = 7;
  assert.deepEqual([...a], [1, 7, 3, 4]);
  assert.deepEqual([...b], [1, 2, 3, 4]);
  const big = codec.bytes.decode(new Uint8Array(5000).fill(5), 0, 5000);
  assert.equal(big.byteLength, 5000);
  assert.equal(big.buffer.byteLength, 5000, "a long copy has a buffer of its own");
  assert.equal(
    codec.string.decode(new TextEncoder().encode("grüße, ascii"), 0, 14),
    "grüße, ascii",
  );
});

Deno.test("codec.bytes.decode(): short copies stay whole across slab refills", () => {
  // Enough copies to fill several 64 KiB slabs; every copy is kept and
  // checked at the end, so a refill that reused bytes still held by an
  // earlier copy shows as a changed copy.
  const src = new Uint8Array(2048);
  const copies: Uint8Array[] = [];
  const lengths: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const length = 1 + ((i * 37) % 1024); // 1 .. 1024: every one a slab copy
    src.fill(i & 255, 0, length);
    copies.push(codec.bytes.decode(src, 0, length));
    lengths.push(length);
  }
  for (let i = 0; i < copies.length; i++) {
    const c = copies[i]!;
    assert.equal(c.length, lengths[i], `copy ${i}'s length`);
    assert.ok(c.every((b) => b === (i & 255)), `copy ${i} changed after later copies`);
  }
  const one = codec.bytes.decode(src, 0, 1025);
  assert.equal(one.buffer.byteLength, 1025, "past 1 KiB a copy has a buffer of its own");
});

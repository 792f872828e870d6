import assert from "node:assert/strict";
import { crc32 } from "./_crc32.ts";

Deno.test("crc32() matches the standard check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("crc32() continues across chunks", () => {
  const all = new TextEncoder().encode("hello, twizzler");
  assert.equal(crc32(all.subarray(5), crc32(all.subarray(0, 5))), crc32(all));
});

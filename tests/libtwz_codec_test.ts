import assert from "node:assert/strict";
import { codec, hashBytes, hashInt } from "@twz/libtwz/codec";
Deno.test("hashInt matches hashBytes of the int encoding", () => {
  const b = new Uint8Array(8);
  for (const k of [0, 1, 255, 65536, 0xffffffff, 2 ** 40 + 3, -1, -(2 ** 40)]) {
    codec.int.encode(k, b, 0);
    const lo = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24);
    const hi = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24);
    assert.equal(hashInt(lo >>> 0, hi >>> 0), hashBytes(b, 0, 8), `key ${k}`);
  }
});

// The hash map's integer lookup path (`get`/`locate`/`has` of a `codec.int`
// map read object memory through the 32-bit word view): the same answers as
// the general path, the running transaction's writes, relocation, damage and
// use after close.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { openSim, type SimHal } from "@twz/hal-sim";
import { ErrorCode, TwzError } from "@twz/kernel/abi";
import { Twz } from "./mod.ts";
import { transaction } from "./_tx.ts";
import { codec } from "./codec.ts";
import { HashMap } from "./hashmap.ts";

function session(): { hal: SimHal; twz: Twz } {
  const hal = openSim({ size: 32 << 20 });
  return { hal, twz: Twz.attach(Kernel.boot(hal).port()) };
}

/** The first bucket chain (entry offsets) of at least two entries, walked through the DataView. */
function longChain(v: DataView, header: number): number[] {
  const dir = v.getUint32(header + 28, true);
  for (let s = 0; s < v.getUint32(header + 32, true); s++) {
    const seg = v.getUint32(dir + s * 4, true);
    for (let b = 0; seg !== 0 && b < 256; b++) {
      const chain: number[] = [];
      for (let e = v.getUint32(seg + b * 4, true); e !== 0; e = v.getUint32(e, true)) chain.push(e);
      if (chain.length >= 2) return chain;
    }
  }
  throw new Error("no chain of two entries");
}

function damaged(f: () => unknown, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof TwzError, `not a TwzError: ${e}`);
    assert.equal(e.code, ErrorCode.ObjectDamaged, e.message);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("int keys: get, locate and has agree with the stored entries, other keys too", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 1 << 20 });
  const map = HashMap.create(twz, obj, codec.int, codec.bytes, { capacity: 600 });
  const value = (k: number) => new Uint8Array(16).fill(k & 255);
  // Integers outside [0, 2^32) take the general path: the same map, the same answers.
  const keys = [0, 1, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, -1, -(2 ** 35)];
  for (let i = 0; i < 500; i++) keys.push(i * 977);
  for (const k of keys) map.set(k, value(k));
  for (const k of keys) {
    assert.deepEqual(map.get(k), value(k), `get(${k})`);
    const at = map.locate(k);
    assert.ok(at > 0 && at % 8 === 0, `locate(${k}) = ${at}`);
    assert.deepEqual(obj.bytes.subarray(at, at + 16), value(k), `the bytes at locate(${k})`);
    assert.equal(obj.view.getUint32(at - 12, true), 16, "the entry's value length");
    assert.equal(map.has(k), true);
  }
  for (const k of [2, 977 * 500, 2 ** 32 + 1, -2]) {
    assert.equal(map.get(k), undefined, `get(${k})`);
    assert.equal(map.locate(k), -1, `locate(${k})`);
    assert.equal(map.has(k), false);
  }
  assert.throws(() => map.get(1.5), /not a safe integer/);
  hal.close();
});

Deno.test("int keys: a lookup inside a transaction sees its writes; after an abort they are gone", () => {
  const { hal, twz } = session();
  const map = HashMap.create(twz, twz.create({ size: 1 << 20 }), codec.int, codec.int);
  map.set(1, 10);
  map.set(2, 20);
  assert.throws(() =>
    transaction(twz, () => {
      map.set(3, 30);
      map.set(1, 11);
      map.delete(2);
      assert.equal(map.get(3), 30);
      assert.equal(map.get(1), 11);
      assert.equal(map.get(2), undefined);
      assert.equal(map.has(2), false);
      assert.ok(map.locate(3) > 0);
      throw new Error("abort");
    }), /abort/);
  assert.equal(map.get(3), undefined);
  assert.equal(map.locate(3), -1);
  assert.equal(map.get(1), 10);
  assert.equal(map.get(2), 20);
  hal.close();
});

Deno.test("int keys: lookups after a grow that moved the object read the moved bytes", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 1 << 16 });
  twz.create({ size: 1 << 16 }); // right behind it: growing must move it
  const map = HashMap.create(twz, obj, codec.int, codec.int);
  for (let i = 0; i < 100; i++) map.set(i, i * 2);
  const before = obj.bytes.byteOffset;
  obj.grow(1 << 20);
  assert.notEqual(obj.bytes.byteOffset, before, "the object moved");
  for (let i = 0; i < 100; i++) {
    assert.equal(map.get(i), i * 2);
    assert.equal(obj.view.getUint32(map.locate(i), true), i * 2, "the value, in place");
  }
  // Writes after the move land in the moved bytes and are found there.
  for (let i = 100; i < 2000; i++) map.set(i, i * 2);
  for (let i = 0; i < 2000; i++) assert.equal(map.get(i), i * 2);
  hal.close();
});

Deno.test("int keys: a damaged chain is reported, never read past", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 1 << 20 });
  const map = HashMap.create(twz, obj, codec.int, codec.int);
  for (let i = 0; i < 1000; i++) map.set(i, i);
  const v = obj.view;
  const chain = longChain(v, map.offset);
  const head = chain[0]!;
  const next = v.getUint32(head, true);
  const behind = v.getUint32(chain.at(-1)! + 16, true); // the key of the chain's last entry
  assert.equal(map.get(behind), behind);
  v.setUint32(head, head, true); // a loop: the head's next is itself
  damaged(() => map.get(behind), /chain of bucket \d+ is damaged at entry \d+/);
  v.setUint32(head, head + 2, true); // a misaligned entry
  damaged(() => map.locate(behind), /is damaged at entry \d+/);
  v.setUint32(head, obj.size + 64, true); // an entry past the object
  damaged(() => map.has(behind), /runs past the object/);
  v.setUint32(head, next, true);
  for (let i = 0; i < 1000; i++) assert.equal(map.get(i), i, "repaired: every key again");
  assert.equal(map.check().problem, undefined);
  hal.close();
});

Deno.test("int keys: use after close says the session is closed; a deleted map's object is an error", async () => {
  const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
  const map = HashMap.create(twz, twz.create({ size: 65536 }), codec.int, codec.string);
  map.set(1, "v");
  twz.close();
  for (const f of [() => map.get(1), () => map.locate(1), () => map.has(1)]) {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof TwzError && e.code === ErrorCode.Shutdown, String(e));
      return true;
    });
  }
  const { hal, twz: t2 } = session();
  const obj = t2.create({ size: 65536 });
  const m2 = HashMap.create(t2, obj, codec.int, codec.string);
  m2.set(1, "v");
  t2.delete(obj.id);
  assert.throws(() => m2.get(1), TwzError);
  assert.throws(() => m2.locate(1), TwzError);
  hal.close();
});

Deno.test("int keys: keys of 2^31 and more, and directory, segment or entry offsets past the object", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 1 << 20 });
  const map = HashMap.create(twz, obj, codec.int, codec.int);
  // Keys with the top bit set (words of 2^31 and more) take the word path too.
  const keys = [2 ** 31 - 1, 2 ** 31, 2 ** 31 + 5, 0xfffffffe, 0xffffffff];
  for (let i = 0; i < 300; i++) keys.push(i);
  for (const k of keys) map.set(k, k % 1000);
  for (const k of keys) {
    assert.equal(map.get(k), k % 1000, `get(${k})`);
    assert.equal(obj.view.getUint32(map.locate(k), true), k % 1000, `locate(${k})`);
  }
  assert.equal(map.get(2 ** 31 + 6), undefined);
  const v = obj.view;
  const h = map.offset;
  const dir = v.getUint32(h + 28, true);
  const segs = [0, 1].map((s) => v.getUint32(dir + s * 4, true)); // 256 + 44 buckets: two segments
  const chain = longChain(v, h);
  const behind = v.getUint32(chain.at(-1)! + 16, true);
  const head = chain[0]!;
  const next = v.getUint32(head, true);
  v.setUint32(head, 0x80000040, true); // an entry 2 GiB in: past the object
  damaged(() => map.locate(behind), /runs past the object/);
  v.setUint32(head, next, true);
  for (const bad of [obj.size + 1024, 0x80000000]) { // bucket segments past the object
    for (let s = 0; s < 2; s++) v.setUint32(dir + s * 4, bad, true);
    damaged(() => map.get(1), /.+/);
    damaged(() => map.locate(2 ** 31), /.+/);
  }
  segs.forEach((seg, s) => v.setUint32(dir + s * 4, seg, true));
  for (const bad of [obj.size + 1024, 0xfffffff0]) { // the directory past the object
    v.setUint32(h + 28, bad, true);
    damaged(() => map.locate(1), /.+/);
  }
  v.setUint32(h + 28, dir, true);
  for (const k of keys) assert.equal(map.get(k), k % 1000, "repaired");
  hal.close();
});

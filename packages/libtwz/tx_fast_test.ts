// The insert fast paths of issue 16 (transactions and the hash map), on
// hal-sim: each asserts what the slower path it replaced did.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { openSim, type SimHal } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { recoverTransactions, transaction } from "./_tx.ts";
import { sessionTxHost } from "./_session_tx.ts";
import { rootHeapOffset } from "./_mem.ts";
import { Heap } from "./heap.ts";
import { HashMap } from "./hashmap.ts";
import { codec } from "./codec.ts";

function session(size = 32 << 20): { hal: SimHal; twz: Twz } {
  const hal = openSim({ size });
  return { hal, twz: Twz.attach(Kernel.boot(hal).port()) };
}

Deno.test("Tx.write of whole words: a reused buffer writes its current bytes, across lines", () => {
  const { twz } = session();
  const obj = twz.create({ size: 8192 });
  const at = obj.baseOffset + 40; // 8-aligned, crossing the line at +64
  const buf = new Uint8Array(48);
  buf.forEach((_, i) => buf[i] = i + 1);
  transaction(twz, (tx) => {
    tx.write(obj, at, buf);
    assert.deepEqual([...tx.read(obj, at, 48)], [...buf]);
  });
  assert.deepEqual([...obj.bytes.subarray(at, at + 48)], [...buf]);
  // The same buffer again, changed: the kept word view reads the new bytes.
  buf.fill(0xab, 0, 24);
  transaction(twz, (tx) => tx.write(obj, at, buf, 40));
  assert.deepEqual([...obj.bytes.subarray(at, at + 40)], [...buf.subarray(0, 40)]);
  assert.equal(obj.bytes[at + 40], 41); // past `length`: untouched
  // Unaligned: the byte path, the same result.
  const odd = new Uint8Array([9, 8, 7, 6, 5]);
  transaction(twz, (tx) => tx.write(obj, at + 1, odd));
  assert.deepEqual([...obj.bytes.subarray(at + 1, at + 6)], [9, 8, 7, 6, 5]);
  twz.close();
});

Deno.test("Tx stores to one line from two handles of an object share one shadow", () => {
  const { twz } = session();
  const a = twz.create({ size: 8192 });
  const b = twz.open(a.id);
  const at = a.baseOffset + 128;
  transaction(twz, (tx) => {
    tx.setU32(a, at, 1);
    tx.setU32(b, at + 4, 2); // the same line through the other handle
    tx.setU32(a, at + 8, 3);
    assert.equal(tx.getU32(b, at), 1);
    assert.equal(tx.getU32(a, at + 4), 2);
    assert.equal(tx.getU32(b, at + 8), 3);
    assert.equal(a.view.getUint32(at, true), 0); // not applied before commit
  });
  assert.deepEqual([0, 4, 8].map((k) => a.view.getUint32(at + k, true)), [1, 2, 3]);
  // An aborted transaction leaves the line as it was.
  assert.throws(() =>
    transaction(twz, (tx) => {
      tx.setU32(a, at, 7);
      tx.setU32(a, at + 4, 8);
      throw new Error("abort");
    })
  );
  assert.deepEqual([0, 4, 8].map((k) => a.view.getUint32(at + k, true)), [1, 2, 3]);
  twz.close();
});

Deno.test("Tx store past the object's end still throws on a line stored before", () => {
  const { twz } = session();
  const obj = twz.create({ size: 4096 });
  const end = obj.bytes.length;
  assert.throws(
    () =>
      transaction(twz, (tx) => {
        tx.setU32(obj, end - 8, 1);
        tx.setU32(obj, end - 2, 2); // the same line, running past the end
      }),
    RangeError,
  );
  assert.equal(obj.view.getUint32(end - 8, true), 0);
  twz.close();
});

Deno.test("HashMap.set in a transaction that already wrote the map sees those writes", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 1 << 20 });
  const map = HashMap.create(twz, obj, codec.int, codec.string);
  transaction(twz, () => {
    assert.equal(map.set(1, "a"), true);
    assert.equal(map.set(1, "b"), false); // found through the transaction
    assert.equal(map.set(1, "cc"), false); // replaced (another length)
    assert.equal(map.set(2, "x"), true);
  });
  assert.equal(map.size, 2);
  assert.equal(map.get(1), "cc");
  assert.equal(map.get(2), "x");
  assert.equal(map.check().problem, undefined);
  // A set of its own after them reads in place.
  assert.equal(map.set(2, "y"), false);
  assert.equal(map.set(3, "z"), true);
  assert.deepEqual([1, 2, 3].map((k) => map.get(k)), ["cc", "y", "z"]);
  hal.power!.powerFail({ policy: "strict" });
  const again = Twz.attach(Kernel.boot(hal).port());
  recoverTransactions(sessionTxHost(again));
  const reopened = HashMap.open(again, again.open(obj.id), codec.int, codec.string);
  assert.deepEqual([1, 2, 3].map((k) => reopened.get(k)), ["cc", "y", "z"]);
  assert.equal(reopened.size, 3);
  again.close();
});

Deno.test("HashMap.create with a capacity allocates its bucket segments up front", () => {
  const { twz } = session();
  const segment = 256 * 4 + 8; // a segment's block: 256 u32 heads and the block header
  const live = (obj: { id: bigint } & Parameters<typeof rootHeapOffset>[0]) =>
    Heap.open(obj, rootHeapOffset(obj)).live;
  const plain = twz.create({ size: 1 << 20 });
  HashMap.create(twz, plain, codec.int, codec.int);
  const sized = twz.create({ size: 1 << 20 });
  const map = HashMap.create(twz, sized, codec.int, codec.int, { capacity: 4096 });
  // 4096 entries: 16 segments of 256 buckets, each laid out now.
  assert.ok(live(sized) - live(plain) >= 16 * segment, `${live(sized)} vs ${live(plain)}`);
  const before = live(sized);
  for (let k = 0; k < 4096; k++) map.set(k, k);
  // No segment was allocated by the inserts: each took one entry block.
  assert.equal(live(sized) - before, 4096 * 48); // 32-byte entries in 48-byte blocks
  assert.equal(map.check().problem, undefined);
  assert.equal(map.check().entries, 4096);
  // Inside a running transaction nothing is laid out ahead (one transaction must fit its log).
  const nested = twz.create({ size: 1 << 20 });
  transaction(twz, () => HashMap.create(twz, nested, codec.int, codec.int, { capacity: 4096 }));
  assert.equal(live(nested), live(plain));
  twz.close();
});

// Transactions, the in-object heap and the hash map (issue 5), on hal-sim.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { openSim, type SimHal } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { recoverTransactions, transaction } from "../packages/libtwz/tx.ts";
import { sessionTxHost } from "../packages/libtwz/session_tx.ts";
import { Heap } from "../packages/libtwz/heap.ts";
import { HashMap } from "../packages/libtwz/hashmap.ts";
import { codec } from "../packages/libtwz/codec.ts";

function session(size = 32 << 20): { hal: SimHal; twz: Twz } {
  const hal = openSim({ size });
  return { hal, twz: Twz.fromKernel(Kernel.boot(hal)) };
}

function reboot(hal: SimHal, policy: "strict" | "random" = "strict", seed = 1): Twz {
  hal.power!.powerFail({ policy, seed });
  const twz = Twz.fromKernel(Kernel.boot(hal));
  recoverTransactions(sessionTxHost(twz));
  return twz;
}

Deno.test("transaction() commits all writes with two drains", () => {
  const { hal, twz } = session();
  const host = sessionTxHost(twz);
  const obj = twz.create({ size: 8192 });
  transaction(host, () => {}); // creates the log object
  const d0 = hal.region.stats().drains;
  transaction(host, (tx) => {
    tx.setU32(obj, 256, 1);
    tx.setU32(obj, 4096, 2);
    tx.write(obj, 300, new TextEncoder().encode("spans lines ".repeat(10)));
    assert.equal(tx.getU32(obj, 256), 1, "reads its own writes");
    assert.equal(obj.view.getUint32(256, true), 0, "object memory untouched before commit");
  });
  assert.equal(hal.region.stats().drains - d0, 2);
  assert.equal(obj.view.getUint32(4096, true), 2);
  const again = reboot(hal);
  const o2 = again.open(obj.id);
  assert.equal(o2.view.getUint32(256, true), 1);
  assert.equal(new TextDecoder().decode(o2.bytes.subarray(300, 312)), "spans lines ");
  hal.close();
});

Deno.test("transaction() aborts on an exception and leaves memory untouched", () => {
  const { hal, twz } = session();
  const host = sessionTxHost(twz);
  const obj = twz.create({ size: 4096 });
  assert.throws(() =>
    transaction(host, (tx) => {
      tx.setU32(obj, 256, 9);
      throw new Error("changed my mind");
    }), /changed my mind/);
  assert.equal(obj.view.getUint32(256, true), 0);
  hal.close();
});

Deno.test("transaction() nested flattens; a failing nested one aborts all", () => {
  const { hal, twz } = session();
  const host = sessionTxHost(twz);
  const obj = twz.create({ size: 4096 });
  transaction(host, (tx) => {
    tx.setU32(obj, 256, 1);
    transaction(host, (inner) => {
      assert.equal(inner, tx);
      inner.setU32(obj, 260, 2);
    });
  });
  assert.equal(obj.view.getUint32(260, true), 2);
  assert.throws(() =>
    transaction(host, (tx) => {
      tx.setU32(obj, 256, 5);
      try {
        transaction(host, () => {
          throw new Error("inner");
        });
      } catch { /* swallowed, but the whole transaction is aborted */ }
    }), /aborted by a nested transaction/);
  assert.equal(obj.view.getUint32(256, true), 1);
  hal.close();
});

Deno.test("transaction() is all-or-nothing at every crash point", () => {
  // Power fails just before the k-th drain of the commit (k = 1: the log may
  // be torn; k = 2: committed, not applied) or after it (k = 3), with random
  // eviction of whatever was pending.
  for (let k = 1; k <= 3; k++) {
    for (const seed of [1, 2, 3, 4, 5]) {
      const { hal, twz } = session(8 << 20);
      const host = sessionTxHost(twz);
      const obj = twz.create({ size: 8192 });
      transaction(host, (tx) => tx.setU32(obj, 256, 1));
      const region = hal.region;
      const drain = region.drain.bind(region);
      let n = 0;
      region.drain = () => {
        if (++n === k) {
          region.powerFail({ policy: "random", seed });
          throw new Error("power cut");
        }
        drain();
      };
      let returned = false;
      try {
        transaction(host, (tx) => {
          for (let i = 0; i < 32; i++) tx.setU32(obj, 256 + i * 128, 1000 + i);
        });
        returned = true;
      } catch (e) {
        assert.match((e as Error).message, /power cut/);
      }
      region.drain = drain;
      const again = reboot(hal, "strict");
      const o = again.open(obj.id);
      const values = Array.from({ length: 32 }, (_, i) => o.view.getUint32(256 + i * 128, true));
      const all = values.every((v, i) => v === 1000 + i);
      const none = values[0] === 1 && values.slice(1).every((v) => v === 0);
      assert.ok(all || none, `crash before drain ${k}, seed ${seed}: partial ${values}`);
      if (k >= 2) assert.ok(all, `committed before drain ${k}, seed ${seed}`);
      if (returned) assert.ok(all);
      hal.close();
    }
  }
});

Deno.test("Heap: alloc, free, reuse, realloc and growth past the object's end", () => {
  const { hal, twz } = session();
  const host = sessionTxHost(twz);
  const obj = twz.create({ size: 8192 });
  const heap = transaction(host, (tx) => Heap.create(tx, obj, 512, 8192 - 512));
  const a = transaction(host, (tx) => heap.alloc(tx, 24));
  const b = transaction(host, (tx) => heap.alloc(tx, 24));
  assert.notEqual(a, b);
  transaction(host, (tx) => heap.free(tx, a));
  assert.equal(transaction(host, (tx) => heap.alloc(tx, 20)), a, "a freed block is reused");
  assert.throws(() => transaction(host, (tx) => heap.free(tx, b + 8)), /not an allocated block/);
  const big = transaction(host, (tx) => heap.alloc(tx, 20_000)); // forces growth
  assert.ok(obj.size > 8192);
  assert.ok(big > 8192 - 512);
  const moved = transaction(host, (tx) => {
    tx.setU32(obj, b, 77);
    return heap.realloc(tx, b, 300);
  });
  assert.equal(obj.view.getUint32(moved, true), 77);
  const check = heap.check();
  assert.equal(check.problem, undefined);
  assert.equal(check.used, heap.live);
  hal.close();
});

Deno.test("HashMap: set, get, overwrite, delete, grow by splitting, survive a crash", () => {
  const { hal, twz } = session();
  const host = sessionTxHost(twz);
  const obj = twz.create({ size: 1 << 20 });
  const map = HashMap.create(host, obj, codec.int, codec.string);
  for (let i = 0; i < 3000; i++) assert.equal(map.set(i * 7, `v${i}`), true);
  assert.equal(map.set(7, "seven"), false);
  assert.equal(map.set(14, "a longer value than before"), false);
  assert.equal(map.delete(21), true);
  assert.equal(map.delete(21), false);
  assert.equal(map.size, 2999);
  assert.equal(map.get(7), "seven");
  assert.equal(map.get(14), "a longer value than before");
  assert.equal(map.get(21), undefined);
  assert.equal(map.get(7 * 2999), "v2999");
  assert.equal([...map.entries()].length, 2999);
  const again = reboot(hal);
  const m2 = HashMap.open(sessionTxHost(again), again.open(obj.id), codec.int, codec.string);
  assert.equal(m2.size, 2999);
  assert.equal(m2.get(7), "seven");
  assert.equal(m2.get(21), undefined);
  for (let i = 4; i < 3000; i++) assert.equal(m2.get(i * 7), `v${i}`);
  assert.throws(
    () => HashMap.open(sessionTxHost(again), again.open(obj.id), codec.string, codec.string),
    /other key\/value codecs/,
  );
  hal.close();
});

Deno.test("HashMap: operations inside one transaction see each other and abort together", () => {
  const { hal, twz } = session();
  const host = sessionTxHost(twz);
  const map = HashMap.create(host, twz.create({ size: 1 << 20 }), codec.string, codec.bytes);
  map.set("keep", new Uint8Array([1]));
  assert.throws(() =>
    transaction(host, () => {
      map.set("a", new Uint8Array([2]));
      assert.deepEqual(map.get("a"), new Uint8Array([2]));
      map.delete("keep");
      assert.equal(map.has("keep"), false);
      throw new Error("abort");
    }), /abort/);
  assert.equal(map.has("a"), false);
  assert.deepEqual(map.get("keep"), new Uint8Array([1]));
  assert.equal(map.size, 1);
  hal.close();
});

Deno.test("typed accessors inside a transaction are logged, read their writes, and abort", async () => {
  const { f64, ptr, string, struct, u32 } = await import("@twz/libtwz");
  const { hal, twz } = session();
  const Account = struct({ id: u32, balance: f64, owner: string(16), next: ptr("self") });
  const a = twz.create({ size: 4096 });
  const b = twz.create({ size: 4096 });
  const x = Account.at(a, a.baseOffset);
  const y = Account.at(b, b.baseOffset);
  transaction(twz, () => {
    x.id = 1;
    x.balance = 100;
    x.owner = "ada";
    y.id = 2;
    y.balance = 0;
    assert.equal(x.balance, 100, "reads its own write");
    assert.equal(a.view.getFloat64(a.baseOffset + 8, true), 0, "memory untouched before commit");
  });
  assert.equal(x.balance, 100);
  // A transfer across two objects, with a cross-object pointer: its new FOT
  // entry is published first (two drains of its own), then the transaction.
  let d0 = hal.region.stats().drains;
  transaction(twz, () => {
    x.balance -= 20;
    y.balance += 20;
    x.next = y;
  });
  assert.equal(hal.region.stats().drains - d0, 4);
  d0 = hal.region.stats().drains;
  transaction(twz, () => {
    x.balance -= 10;
    y.balance += 10;
    x.next = y; // the FOT entry is reused
  });
  assert.equal(hal.region.stats().drains - d0, 2, "two ordering points for the whole transfer");
  assert.throws(() =>
    transaction(twz, () => {
      x.balance -= 1000;
      x.owner = "mallory";
      x.next = null;
      throw new Error("insufficient funds");
    }), /insufficient funds/);
  assert.equal(x.balance, 70);
  assert.equal(x.owner, "ada");
  assert.equal(x.next?.id, 2);
  const again = reboot(hal);
  const x2 = Account.at(again.open(a.id), 256);
  assert.equal(x2.balance, 70);
  assert.equal(x2.next?.balance, 30);
  hal.close();
});

Deno.test("HashMap.create({capacity}) presizes buckets; segments are allocated when first used", () => {
  const { hal, twz } = session();
  const host = sessionTxHost(twz);
  const obj = twz.create({ size: 1 << 20 });
  const map = HashMap.create(host, obj, codec.int, codec.int, { capacity: 5000 });
  assert.equal(map.get(123), undefined, "lookups in never-touched segments find nothing");
  assert.equal(map.delete(123), false);
  assert.deepEqual([...map.entries()], []);
  const heapBefore = obj.size;
  for (let i = 0; i < 6000; i++) map.set(i * 3, i);
  assert.equal(map.size, 6000);
  for (let i = 0; i < 6000; i++) assert.equal(map.get(i * 3), i);
  assert.equal(map.get(1), undefined);
  assert.equal([...map.entries()].length, 6000);
  assert.ok(obj.size >= heapBefore);
  const again = reboot(hal);
  const m2 = HashMap.open(sessionTxHost(again), again.open(obj.id), codec.int, codec.int);
  for (let i = 0; i < 6000; i += 7) assert.equal(m2.get(i * 3), i);
  assert.throws(
    () => HashMap.create(host, twz.create({ size: 65536 }), codec.int, codec.int, { capacity: -1 }),
    RangeError,
  );
  hal.close();
});

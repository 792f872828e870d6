// libtwz over a read-only kernel (`Twz.open({ readOnly: true })`): every
// read works and sees what a writable session wrote, every write fails with
// one ReadOnly line, and the image file is never written. (`twz boot
// --read-only`: tests/cli_read_only_test.ts.)
import assert from "node:assert/strict";
import { join } from "node:path";
import { Kernel } from "@twz/kernel";
import { ErrorCode, Prot, TwzError } from "@twz/kernel/abi";
import type { HalPlugin } from "@twz/kernel/hal";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { plugin as sim } from "@twz/hal-sim";
import { named, ptr, string, struct, Twz, u32 } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { BTreeMap } from "@twz/libtwz/btree";
import { HashMap } from "@twz/libtwz/hashmap";
import { Vector } from "@twz/libtwz/vector";
import { Queue } from "@twz/libtwz/queue";
import { transaction } from "@twz/libtwz/tx";
import { checkObjects } from "@twz/libtwz/check";

const tmpDir = scratchDirs("twz-readonly-");

const Node = struct({ value: u32, label: string(12), next: ptr("self") });

/** The log header's `applied` field (tx.ts: header at 256, `applied` at 32). */
const TXLOG_APPLIED = 256 + 32;

/** Fill an image through a writable session: names, records, pointers, collections. */
async function makeImage(hal: HalPlugin | "sim", image: string): Promise<void> {
  const twz = await Twz.open({ hal, image, size: 16 << 20 });
  try {
    const a = twz.create({ name: "/dir/sub/a", size: 4096 });
    const b = twz.create({ name: "/b", size: 4096 });
    const na = Node.at(a, a.baseOffset);
    const nb = Node.at(b, b.baseOffset);
    nb.value = 42;
    nb.label = "bee";
    na.value = 7;
    na.label = "ay";
    na.next = nb; // a cross-object pointer (an ID FOT entry)
    Node.at(a, a.baseOffset + 64).$set("next", named("/b")); // a name-based one
    a.persist(a.baseOffset, 128);
    b.persist(b.baseOffset, 64);
    a.write(a.baseOffset + 1024, new TextEncoder().encode("hello"));
    a.persist(a.baseOffset + 1024, 5);
    const kv = BTreeMap.create(
      twz,
      twz.create({ name: "/kv", size: 1 << 20 }),
      codec.string,
      codec.string,
    );
    const hm = HashMap.create(
      twz,
      twz.create({ name: "/hm", size: 1 << 20 }),
      codec.int,
      codec.string,
      { capacity: 100 },
    );
    const vec = Vector.create(twz, twz.create({ name: "/vec", size: 1 << 16 }), codec.int);
    const q = Queue.create(twz, twz.create({ name: "/q", size: 1 << 16 }), codec.string);
    transaction(twz, () => {
      for (let i = 0; i < 30; i++) kv.set(`k${String(i).padStart(2, "0")}`, `v${i}`);
      for (let i = 0; i < 50; i++) hm.set(i, `h${i}`);
      for (let i = 0; i < 5; i++) vec.push(i * i);
      q.push("first");
      q.push("second");
    });
  } finally {
    twz.close();
  }
}

function assertReadOnly(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TwzError, `${what}: ${e}`);
    assert.equal(e.code, ErrorCode.ReadOnly, `${what}: ${e.message}`);
    assert.match(e.message, /^the image is open read-only: cannot [^\n]+$/, what);
    return true;
  }, what);
}

/** Every kind of read, on a session over the image `makeImage` made. */
function checkReads(twz: Twz): void {
  assert.equal(twz.readOnly, true);
  assert.deepEqual(twz.warnings, []);
  assert.deepEqual(
    twz.naming.list().map((x) => `${x.name}:${x.kind}`),
    [
      ".txlog:object",
      "b:object",
      "dir:directory",
      "hm:object",
      "kv:object",
      "q:object",
      "vec:object",
    ],
  );
  assert.deepEqual(twz.naming.list("/dir/sub").map((x) => x.name), ["a"]);
  assert.equal(twz.naming.lookup("/nope"), undefined);
  assert.equal(twz.naming.exists("/dir/sub/a"), true);
  const a = twz.open("/dir/sub/a");
  assert.equal(a.writable, false);
  assert.equal(a.id, twz.resolve("/dir/sub/a"));
  assert.equal(new TextDecoder().decode(a.read(a.baseOffset + 1024, 5)), "hello");
  const na = Node.at(a, a.baseOffset);
  assert.equal(na.value, 7);
  assert.equal(na.label, "ay");
  assert.equal(na.next?.value, 42); // through the FOT, to a read-only handle
  assert.equal(na.next?.label, "bee");
  assert.equal(na.next?.$writable, false);
  assert.equal(Node.at(a, a.baseOffset + 64).next?.value, 42); // by name
  assert.equal(a.meta.fotCount, 2);

  const kv = BTreeMap.open(twz, twz.open("/kv"), codec.string, codec.string);
  assert.equal(kv.size, 30);
  assert.equal(kv.get("k07"), "v7");
  assert.equal(kv.has("zz"), false);
  assert.deepEqual([...kv.range("k10", "k13")].map(([k]) => k), ["k10", "k11", "k12"]);
  assert.equal(kv.check().problem, undefined);
  const hm = HashMap.open(twz, twz.open("/hm"), codec.int, codec.string);
  assert.equal(hm.size, 50);
  assert.equal(hm.get(13), "h13");
  assert.equal([...hm.entries()].length, 50);
  const vec = Vector.open(twz, twz.open("/vec"), codec.int);
  assert.deepEqual([...vec.values()], [0, 1, 4, 9, 16]);
  assert.equal(vec.get(3), 9);
  const q = Queue.open(twz, twz.open("/q"), codec.string);
  assert.equal(q.peek(), "first");
  assert.deepEqual([...q.values()], ["first", "second"]);

  const report = checkObjects(twz);
  assert.deepEqual(report.problems, []);
  assert.equal(report.txlog?.state, "applied");
}

/** Every kind of write fails with one ReadOnly line, and leaves the data as it was. */
async function checkWrites(twz: Twz): Promise<void> {
  const a = twz.open("/dir/sub/a");
  const b = twz.open("/b");
  const na = Node.at(a, a.baseOffset);
  assertReadOnly(() => twz.create({ size: 4096 }), "create");
  assertReadOnly(() => twz.create({ size: 4096, name: "/new" }), "create and name");
  assertReadOnly(() => twz.open("/b", { write: true }), "open writable");
  assertReadOnly(() => twz.handle(a.id, true), "writable handle");
  assertReadOnly(() => twz.delete("/b"), "delete");
  assertReadOnly(() => twz.naming.bind("/c", b.id), "bind");
  assertReadOnly(() => twz.naming.unbind("/b"), "unbind");
  assertReadOnly(() => twz.naming.rename("/b", "/c"), "rename");
  assertReadOnly(() => twz.naming.mkdir("/d"), "mkdir");
  assertReadOnly(() => a.write(a.baseOffset, new Uint8Array([1])), "object write");
  assertReadOnly(() => a.grow(8192), "grow");
  assertReadOnly(() => a.fotIndex(b.id), "FOT entry");
  assertReadOnly(() => (na.value = 8), "accessor store");
  assertReadOnly(() => (na.label = "x"), "string store");
  assertReadOnly(() => (na.next = null), "pointer store");
  assertReadOnly(() => na.$set("next", named("/b")), "named pointer store");
  assertReadOnly(() => transaction(twz, () => 1), "transaction");
  const kv = BTreeMap.open(twz, twz.open("/kv"), codec.string, codec.string);
  assertReadOnly(() => kv.set("new", "x"), "kv put");
  assertReadOnly(() => kv.delete("k01"), "kv del");
  assertReadOnly(() => transaction(twz, (tx) => kv.heap.alloc(tx, 64)), "heap alloc");
  const hm = HashMap.open(twz, twz.open("/hm"), codec.int, codec.string);
  assertReadOnly(() => hm.set(1000, "x"), "hashmap set");
  assertReadOnly(() => hm.delete(1), "hashmap delete");
  const vec = Vector.open(twz, twz.open("/vec"), codec.int);
  assertReadOnly(() => vec.push(1), "vector push");
  assertReadOnly(() => vec.pop(), "vector pop");
  const q = Queue.open(twz, twz.open("/q"), codec.string);
  assertReadOnly(() => q.shift(), "queue shift");
  const fresh = twz.open("/hm"); // a plain object: no map in it yet for create
  assertReadOnly(
    () => BTreeMap.create(twz, fresh, codec.string, codec.string),
    "collection create",
  );
  assertReadOnly(() => twz.port.write(b.id, b.baseOffset, new Uint8Array([1])), "kernel write");
  // A transaction of another, writable session cannot write into it either.
  const other = await Twz.open({ hal: "sim", size: 8 << 20 });
  try {
    assertReadOnly(
      () => transaction(other, (tx) => tx.setU32(a, a.baseOffset, 8)),
      "another session's transaction",
    );
  } finally {
    other.close();
  }
  // Nothing half-done: the data reads as before.
  assert.equal(na.value, 7);
  assert.equal(kv.size, 30);
  assert.equal(kv.get("k01"), "v1");
  assert.equal(hm.size, 50);
  assert.equal(vec.length, 5);
  assert.equal(q.size, 2);
  assert.equal(twz.naming.exists("/c"), false);
  assert.equal(twz.naming.exists("/new"), false);
}

async function readOnlyRoundTrip(hal: HalPlugin | "sim", dir: string): Promise<void> {
  const image = join(dir, "ro.img");
  await makeImage(hal, image);
  const before = Deno.readFileSync(image);
  const first = await Twz.open({ hal, image, readOnly: true });
  try {
    // A second read-only session at the same time (a shared lock).
    const second = await Twz.open({ hal, image, readOnly: true });
    try {
      assert.equal(first.port.readOnly, true);
      checkReads(first);
      checkReads(second);
      await checkWrites(first);
      assert.equal(
        second.naming.resolve("/dir/sub/a"),
        first.naming.resolve("/dir/sub/a"),
      );
    } finally {
      second.close();
    }
  } finally {
    first.close();
  }
  assert.deepEqual(Deno.readFileSync(image), before, "the image file is unchanged");
  // And a writable session still works on it afterwards.
  const again = await Twz.open({ hal, image });
  try {
    assert.equal(again.readOnly, false);
    const kv = BTreeMap.open(again, again.open("/kv"), codec.string, codec.string);
    kv.set("after", "yes");
    assert.equal(kv.size, 31);
  } finally {
    again.close();
  }
}

Deno.test("Twz.open({ readOnly }) on hal-sim: reads work, writes fail with ReadOnly, the file is unchanged", async () => {
  await readOnlyRoundTrip("sim", tmpDir());
});

const pmem = (await import("@twz/hal-pmem")).plugin;
const described = pmem.describe();
Deno.test({
  name: `Twz.open({ readOnly }) on hal-pmem${
    described.available ? "" : ` (skipped: ${described.reason})`
  }`,
  ignore: !described.available && Deno.env.get("CI") !== "true",
  fn: async () => {
    await readOnlyRoundTrip(pmem, tmpDir());
    const image = join(tmpDir(), "tx.img");
    await unappliedTx(pmem, image);
    await replayInMemory(pmem, image); // into the copy-on-write mapping
    const rw = await Twz.open({ hal: pmem, image });
    try {
      const obj = rw.open("/counter");
      assert.equal(obj.view.getUint32(obj.baseOffset, true), 99);
    } finally {
      rw.close();
    }
  },
});

/**
 * A transaction that stores 99 over 1, then a crash between its commit and
 * its apply: the log is marked unapplied and the object holds 1 again.
 */
async function unappliedTx(hal: HalPlugin | "sim", image: string): Promise<bigint> {
  await makeImage(hal, image);
  const twz = await Twz.open({ hal, image });
  try {
    const obj = twz.create({ name: "/counter", size: 4096 });
    const at = obj.baseOffset;
    obj.view.setUint32(at, 1, true);
    obj.persist(at, 4);
    transaction(twz, (tx) => tx.setU32(obj, at, 99));
    assert.equal(obj.view.getUint32(at, true), 99);
    const log = twz.open("/.txlog");
    const applied = log.view.getUint32(TXLOG_APPLIED, true);
    log.view.setUint32(TXLOG_APPLIED, applied - 1, true);
    log.persist(TXLOG_APPLIED, 4);
    obj.view.setUint32(at, 1, true);
    obj.persist(at, 4);
    return obj.id;
  } finally {
    twz.close();
  }
}

/** A read-only HAL (a private overlay): the transaction is replayed into memory only. */
async function replayInMemory(hal: HalPlugin | "sim", image: string): Promise<void> {
  const before = Deno.readFileSync(image);
  const ro = await Twz.open({ hal, image, readOnly: true });
  try {
    assert.deepEqual(ro.warnings, []);
    const obj = ro.open("/counter");
    assert.equal(obj.view.getUint32(obj.baseOffset, true), 99);
    assert.equal(checkObjects(ro).txlog?.state, "applied"); // in memory
  } finally {
    ro.close();
  }
  assert.deepEqual(Deno.readFileSync(image), before, "the replay never reached the file");
}

Deno.test("read-only: a committed, unapplied transaction is replayed into memory only, or reported", async () => {
  const image = join(tmpDir(), "tx.img");
  const id = await unappliedTx("sim", image);
  const before = Deno.readFileSync(image);
  await replayInMemory("sim", image);
  // A read-only kernel on a writable HAL: not replayed, reported.
  const hal = await sim.open({ image });
  try {
    const kernel = Kernel.boot(hal, { readOnly: true });
    const twz = Twz.attach(kernel.port());
    assert.equal(twz.warnings.length, 1);
    assert.match(twz.warnings[0]!, /committed transaction in \/\.txlog was not replayed/);
    const obj = twz.open(id);
    assert.equal(obj.view.getUint32(obj.baseOffset, true), 1); // the applied state
    const report = checkObjects(twz, { replay: true });
    assert.equal(report.txlog?.state, "committed");
    assert.equal(report.txlog?.replayed, 0);
    assert.deepEqual(report.problems, []);
    assert.ok(
      report.warnings.some((w) => /not replayed: the image is open read-only/.test(w.message)),
    );
    twz.close();
    kernel.shutdown();
  } finally {
    hal.close();
  }
  assert.deepEqual(Deno.readFileSync(image), before);
  // A writable session replays it for good.
  const rw = await Twz.open({ hal: "sim", image });
  try {
    assert.deepEqual(rw.warnings, []);
    const obj = rw.open("/counter");
    assert.equal(obj.view.getUint32(obj.baseOffset, true), 99);
    assert.equal(checkObjects(rw).txlog?.state, "applied");
  } finally {
    rw.close();
  }
});

Deno.test("Twz.open({ readOnly }) on an image libtwz never used: no names, nothing written", async () => {
  const image = join(tmpDir(), "bare.img");
  const hal = await sim.open({ image, size: 8 << 20, create: true });
  const kernel = Kernel.boot(hal);
  const id = kernel.create({ size: 4096 });
  kernel.write(id, 0, new TextEncoder().encode("raw"));
  kernel.shutdown();
  hal.close();
  const before = Deno.readFileSync(image);
  const twz = await Twz.open({ hal: "sim", image, readOnly: true });
  try {
    assert.deepEqual(twz.naming.list(), []);
    assert.equal(twz.naming.lookup("/x"), undefined);
    assert.equal(twz.naming.generation, 0);
    assertReadOnly(() => twz.naming.rootId, "first use of the naming service");
    const obj = twz.open(id);
    assert.equal(obj.writable, false);
    assert.equal(new TextDecoder().decode(obj.read(0, 3)), "raw");
    assert.equal(twz.port.stat(id).prot & Prot.Write, Prot.Write);
  } finally {
    twz.close();
  }
  assert.deepEqual(Deno.readFileSync(image), before);
});

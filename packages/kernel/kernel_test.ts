// Kernel operations on hal-sim (integration: the kernel itself may not import a plugin).
import assert from "node:assert/strict";
import { ErrorCode, formatId, Kernel, Prot, TwzError } from "@twz/kernel";
import { openSim, type SimHal } from "@twz/hal-sim";

const MiB = 1 << 20;
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

function boot(size = 8 * MiB): { hal: SimHal; kernel: Kernel } {
  const hal = openSim({ size });
  return { hal, kernel: Kernel.boot(hal) };
}

function rejectsWith(fn: () => unknown, code: ErrorCode, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TwzError, `expected TwzError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("Kernel.boot() formats a new image and reports it", () => {
  const { hal, kernel } = boot();
  assert.equal(kernel.report.formatted, true);
  assert.equal(kernel.report.objects, 0);
  assert.ok(kernel.report.free > 7 * MiB);
  hal.close();
});

Deno.test("Kernel.create() returns valid distinct IDs and stat() describes them", () => {
  const { hal, kernel } = boot();
  const a = kernel.create({ size: 5000, prot: Prot.Read | Prot.Write });
  const b = kernel.create();
  assert.notEqual(a, b);
  assert.match(formatId(a), /^[0-9a-f]{32}$/);
  const s = kernel.stat(a);
  assert.equal(s.id, a);
  assert.equal(s.size, 5000);
  assert.equal(s.capacity, 5120);
  assert.equal(s.lifetime, "persistent");
  assert.equal(s.prot, Prot.ReadWrite);
  assert.ok(Math.abs(s.created - Date.now()) < 10_000);
  assert.equal(kernel.stat(b).size, 65536);
  assert.equal(kernel.list().length, 2);
  assert.equal(kernel.usage().objects, 2);
  hal.close();
});

Deno.test("Kernel.create() gives zeroed contents even over reused space", () => {
  const { hal, kernel } = boot();
  const a = kernel.create({ size: 4096 });
  kernel.write(a, 0, new Uint8Array(4096).fill(0xff));
  kernel.delete(a);
  for (let i = 0; i < 8; i++) {
    const b = kernel.create({ size: 4096 });
    assert.ok(kernel.read(b, 0, 4096).every((x) => x === 0));
  }
  hal.close();
});

Deno.test("Kernel.write() and read() round-trip and check ranges", () => {
  const { hal, kernel } = boot();
  const id = kernel.create({ size: 100 });
  kernel.write(id, 10, text("hello"));
  assert.equal(str(kernel.read(id, 10, 5)), "hello");
  assert.throws(() => kernel.write(id, 98, text("abc")), RangeError);
  assert.throws(() => kernel.read(id, -1, 2), RangeError);
  hal.close();
});

Deno.test("Kernel data and metadata survive a clean shutdown and reboot", () => {
  const hal = openSim({ size: 8 * MiB });
  let kernel = Kernel.boot(hal);
  const id = kernel.create({ size: 4096 });
  kernel.map(id).bytes.set(text("not persisted by hand"), 0);
  kernel.shutdown();
  // The clean close writes everything back; a new HAL reads the media.
  hal.power!.powerFail({ policy: "all" });
  kernel = Kernel.boot(hal);
  assert.equal(kernel.report.formatted, false);
  assert.equal(kernel.report.objects, 1);
  assert.equal(str(kernel.read(id, 0, 21)), "not persisted by hand");
  hal.close();
});

Deno.test("Kernel objects whose creation returned survive a power failure", () => {
  const { hal, kernel } = boot();
  const ids = Array.from({ length: 20 }, () => kernel.create({ size: 2048 }));
  kernel.write(ids[3]!, 0, text("durable"));
  kernel.map(ids[4]!).bytes.set(text("volatile cache only"), 0);
  hal.power!.powerFail({ policy: "strict" });
  const again = Kernel.boot(hal);
  assert.equal(again.report.objects, 20);
  for (const id of ids) assert.equal(again.stat(id).size, 2048);
  assert.equal(str(again.read(ids[3]!, 0, 7)), "durable");
  assert.ok(again.read(ids[4]!, 0, 19).every((b) => b === 0), "unpersisted data is lost");
  hal.close();
});

Deno.test("Kernel volatile objects are gone after reboot", () => {
  const { hal, kernel } = boot();
  const v = kernel.create({ size: 128, lifetime: "volatile" });
  const p = kernel.create({ size: 128 });
  kernel.write(v, 0, text("dram"));
  assert.equal(str(kernel.read(v, 0, 4)), "dram");
  assert.equal(kernel.stat(v).lifetime, "volatile");
  assert.equal(kernel.usage().objects, 1);
  kernel.shutdown();
  const again = Kernel.boot(hal);
  assert.equal(again.exists(v), false);
  assert.equal(again.exists(p), true);
  rejectsWith(() => again.stat(v), ErrorCode.ObjectNotFound);
  hal.close();
});

Deno.test("Kernel.create() copies source ranges from other objects", () => {
  const { hal, kernel } = boot();
  const a = kernel.create({ size: 64 });
  kernel.write(a, 0, text("0123456789"));
  const v = kernel.create({ size: 64, lifetime: "volatile" });
  kernel.write(v, 0, text("volatile!"));
  const b = kernel.create({
    size: 64,
    sources: [{ id: a, srcOffset: 2, dstOffset: 10, length: 5 }, {
      id: v,
      srcOffset: 0,
      dstOffset: 20,
      length: 9,
    }],
  });
  assert.equal(str(kernel.read(b, 10, 5)), "23456");
  assert.equal(str(kernel.read(b, 20, 9)), "volatile!");
  rejectsWith(
    () => kernel.create({ size: 8, sources: [{ id: a, srcOffset: 0, dstOffset: 4, length: 5 }] }),
    ErrorCode.InvalidArgument,
  );
  rejectsWith(
    () => kernel.create({ sources: [{ id: 1n << 100n, srcOffset: 0, dstOffset: 0, length: 1 }] }),
    ErrorCode.ObjectNotFound,
  );
  hal.close();
});

Deno.test("Kernel.delete() cascades through ties, persistent and volatile", () => {
  const { hal, kernel } = boot();
  const root = kernel.create({ size: 1024 });
  const child = kernel.create({ size: 1024, ties: [root] });
  const grandchild = kernel.create({ size: 1024, ties: [child] });
  const vchild = kernel.create({ size: 1024, lifetime: "volatile", ties: [root] });
  const other = kernel.create({ size: 1024 });
  const twoParents = kernel.create({ size: 1024, ties: [other, child] });
  assert.equal(kernel.stat(root).dependents, 2);
  assert.equal(kernel.delete(root), 5);
  for (const gone of [root, child, grandchild, vchild, twoParents]) {
    assert.equal(kernel.exists(gone), false);
  }
  assert.equal(kernel.exists(other), true);
  assert.equal(kernel.stat(other).dependents, 0, "a deleted dependent no longer counts");
  assert.equal(kernel.usage().objects, 1);
  rejectsWith(
    () => kernel.create({ ties: [kernel.create({ lifetime: "volatile" })] }),
    ErrorCode.InvalidArgument,
    /volatile/,
  );
  hal.close();
});

Deno.test("Kernel.delete() frees space and table slots for reuse", () => {
  const { hal, kernel } = boot(4 * MiB);
  const before = kernel.usage();
  for (let round = 0; round < 5; round++) {
    const ids = Array.from({ length: 200 }, () => kernel.create({ size: 4096 }));
    for (const id of ids) kernel.delete(id);
  }
  const after = kernel.usage();
  assert.equal(after.freeBytes, before.freeBytes);
  assert.equal(after.objects, 0);
  assert.ok(after.slotsUsed < 50, `tombstones are reclaimed, ${after.slotsUsed} slots in use`);
  rejectsWith(() => kernel.delete(1n << 90n), ErrorCode.ObjectNotFound);
  hal.close();
});

Deno.test("Kernel.create() reports OutOfSpace and TableFull clearly", () => {
  const { hal, kernel } = boot(4 * MiB);
  rejectsWith(() => kernel.create({ size: 8 * MiB }), ErrorCode.OutOfSpace, /No space/);
  rejectsWith(() => kernel.create({ size: 0 }), ErrorCode.InvalidArgument);
  const slots = kernel.usage().tableSlots;
  assert.throws(() => {
    for (let i = 0; i <= slots; i++) kernel.create({ size: 1 });
  }, (e: unknown) => e instanceof TwzError && e.code === ErrorCode.TableFull);
  hal.close();
});

Deno.test("Kernel.grow() extends in place or moves, and mappings follow", () => {
  const { hal, kernel } = boot();
  const a = kernel.create({ size: 1000 });
  const m = kernel.map(a);
  m.bytes.set(text("keep me"), 0);
  m.persist(0, 7);
  kernel.grow(a, 1020); // within the reserved block
  assert.equal(m.size, 1020);
  kernel.grow(a, 3000); // in place: the next blocks are free
  assert.equal(str(m.bytes.subarray(0, 7)), "keep me");
  kernel.create({ size: 1024 }); // now the next block is taken
  kernel.grow(a, 10_000); // must move
  assert.equal(m.size, 10_000);
  assert.equal(str(m.bytes.subarray(0, 7)), "keep me");
  assert.ok(m.bytes.subarray(7).every((b) => b === 0));
  hal.power!.powerFail({ policy: "strict" });
  const again = Kernel.boot(hal);
  assert.equal(again.stat(a).size, 10_000);
  assert.equal(str(again.read(a, 0, 7)), "keep me");
  rejectsWith(() => again.grow(a, 10), ErrorCode.InvalidArgument);
  hal.close();
});

Deno.test("Kernel.map() enforces default protections", () => {
  const { hal, kernel } = boot();
  const ro = kernel.create({ size: 64, prot: Prot.Read });
  assert.equal(kernel.map(ro, Prot.Read).writable, false);
  rejectsWith(() => kernel.map(ro, Prot.ReadWrite), ErrorCode.AccessDenied, /r--/);
  rejectsWith(() => kernel.write(ro, 0, text("x")), ErrorCode.AccessDenied);
  hal.close();
});

Deno.test("Kernel mappings of a deleted object are emptied", () => {
  const { hal, kernel } = boot();
  const a = kernel.create({ size: 64 });
  const m = kernel.map(a);
  kernel.delete(a);
  assert.equal(m.size, 0);
  rejectsWith(() => kernel.map(a), ErrorCode.ObjectNotFound);
  hal.close();
});

Deno.test("Kernel.shutdown() refuses further calls", () => {
  const { hal, kernel } = boot();
  kernel.shutdown();
  rejectsWith(() => kernel.create(), ErrorCode.Shutdown);
  hal.close();
});

Deno.test("Kernel.boot() recovery replays a committed but unapplied log", () => {
  const { hal, kernel } = boot();
  const before = kernel.create({ size: 1024 });
  // Lose power right after the commit drain of the next create (its second
  // drain; the first makes its contents durable): the log is durable, the in-place updates are not.
  const commitDrain = hal.region.stats().drains + 2;
  hal.region.onDrain = (n) => {
    if (n === commitDrain) throw new Error("power cut");
  };
  assert.throws(() => kernel.create({ size: 1024 }), /power cut/);
  hal.region.onDrain = undefined;
  hal.power!.powerFail({ policy: "strict" });
  const again = Kernel.boot(hal);
  assert.ok(again.report.replayed > 0, "the committed transaction was replayed");
  assert.equal(again.report.objects, 2);
  assert.equal(again.list().length, 2);
  assert.equal(again.exists(before), true);
  // A clean shutdown leaves nothing to replay.
  again.shutdown();
  assert.equal(Kernel.boot(hal).report.replayed, 0);
  hal.close();
});

Deno.test("Kernel.boot() refuses a blank superblock unless the image is new", () => {
  const hal = openSim({ size: 4 * MiB });
  Kernel.boot(hal).shutdown();
  hal.region.bytes.fill(0, 0, 4096);
  hal.region.persist(0, 4096);
  rejectsWith(
    () => Kernel.boot({ ...hal, created: false }),
    ErrorCode.ImageCorrupt,
    /no superblock magic/,
  );
  hal.close();
});

Deno.test("Kernel.rootObject() is created once and found again after reboot", () => {
  const { hal, kernel } = boot();
  const root = kernel.rootObject();
  assert.equal(kernel.rootObject(), root);
  hal.power!.powerFail({ policy: "strict" });
  const again = Kernel.boot(hal);
  assert.equal(again.rootObject(), root);
  assert.equal(again.report.objects, 1);
  hal.close();
});

Deno.test("Kernel.create() caps ties; a parent's edges are reused, so it stays deletable", () => {
  const { hal, kernel } = boot(16 * MiB);
  const parent = kernel.create({ size: 1024 });
  const many = Array.from(
    { length: 300 },
    () => kernel.create({ size: 1024, lifetime: "volatile" }),
  );
  rejectsWith(() => kernel.create({ ties: many }), ErrorCode.InvalidArgument, /at most 256/);
  for (let i = 0; i < 1200; i++) kernel.delete(kernel.create({ size: 1024, ties: [parent] }));
  const live = Array.from({ length: 3 }, () => kernel.create({ size: 1024, ties: [parent] }));
  assert.equal(kernel.stat(parent).dependents, 3);
  assert.ok(kernel.usage().slotsUsed < 64, `edges were reused: ${kernel.usage().slotsUsed} slots`);
  assert.equal(kernel.delete(parent), 4);
  for (const id of live) assert.equal(kernel.exists(id), false);
  assert.equal(kernel.isShutdown, false);
  hal.close();
});

Deno.test("Kernel.delete() walks a long tie chain without recursion", () => {
  const { hal, kernel } = boot(64 * MiB);
  const first = kernel.create({ size: 1024 });
  let last = first;
  for (let i = 0; i < 12_000; i++) last = kernel.create({ size: 1024, ties: [last] });
  assert.equal(kernel.delete(first), 12_001);
  assert.equal(kernel.usage().objects, 0);
  assert.equal(kernel.exists(last), false);
  hal.close();
});

Deno.test("Kernel: a delete too large for one log transaction is split, and the kernel goes on", () => {
  const { hal, kernel } = boot(32 * MiB);
  const parent = kernel.create({ size: 1024 });
  for (let i = 0; i < 900; i++) kernel.create({ size: 1024, ties: [parent] });
  kernel.create({ size: 6 * MiB, ties: [parent] });
  assert.equal(kernel.delete(parent), 902);
  assert.equal(kernel.usage().objects, 0);
  assert.equal(kernel.isShutdown, false);
  hal.power!.powerFail({ policy: "strict" });
  assert.equal(Kernel.boot(hal).usage().objects, 0);
  hal.close();
});

Deno.test("Kernel.rootObject() is created and named in one commit: a crash never leaks it", () => {
  // rootObject() drains three times (contents, commit, apply): crash after each.
  for (let k = 1; k <= 3; k++) {
    const hal = openSim({ size: 8 * MiB });
    const kernel = Kernel.boot(hal);
    hal.region.armCrash(hal.region.stats().drains + k, { policy: "random", seed: k });
    assert.throws(() => kernel.rootObject(), (e: unknown) => (e as Error).name === "PowerFailed");
    const again = Kernel.boot(hal);
    const named = again.rootObjectId();
    assert.equal(again.usage().objects, named === 0n ? 0 : 1, `crash point +${k}`);
    hal.close();
  }
});

Deno.test("Kernel.stat() does not count deleted volatile dependents", () => {
  const { hal, kernel } = boot();
  const p = kernel.create({ size: 1024 });
  const vp = kernel.create({ size: 1024, lifetime: "volatile" });
  const c1 = kernel.create({ size: 64, lifetime: "volatile", ties: [p] });
  const c2 = kernel.create({ size: 64, lifetime: "volatile", ties: [vp] });
  assert.equal(kernel.stat(p).dependents, 1);
  assert.equal(kernel.stat(vp).dependents, 1);
  kernel.delete(c1);
  kernel.delete(c2);
  assert.equal(kernel.stat(p).dependents, 0);
  assert.equal(kernel.stat(vp).dependents, 0);
  hal.close();
});

Deno.test("Kernel format 2: a backup superblock, sealed empty slots and bitmap lines", async () => {
  const { decodeBackupSuperblock, decodeSuperblock, FORMAT_VERSION, SLOT } = await import(
    "./_layout.ts"
  );
  const { lineSealed, slotProblem, bitmapLines } = await import("./_check.ts");
  const { hal, kernel } = boot(4 * MiB);
  kernel.create({ size: 3000 });
  kernel.shutdown();
  const bytes = hal.region.bytes;
  assert.equal(FORMAT_VERSION, 2);
  const g = decodeSuperblock(bytes);
  assert.deepEqual(decodeBackupSuperblock(bytes), g);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let empty = 0;
  for (let i = 0; i < g.tableSlots; i++) {
    assert.equal(slotProblem(view, g, i), undefined, `slot ${i}`);
    const off = g.tableOffset + i * SLOT;
    if (bytes[off + 16] === 0) {
      empty++;
      assert.notEqual(view.getUint32(off + 52, true), 0, "an empty slot is not all zero");
    }
  }
  assert.equal(empty, g.tableSlots - 1);
  for (let l = 0; l < bitmapLines(g.dataBlocks); l++) {
    assert.ok(lineSealed(view, g, l), `line ${l}`);
  }
  // A zeroed empty slot fails its check.
  bytes.fill(0, g.tableOffset + 5 * SLOT, g.tableOffset + 6 * SLOT);
  assert.match(slotProblem(view, g, 5) ?? "", /checksum/);
  hal.close();
});

Deno.test("Kernel.boot() read-only refuses to format a blank image", () => {
  const hal = openSim({ size: 4 * MiB });
  rejectsWith(
    () => Kernel.boot(hal, { readOnly: true }),
    ErrorCode.ReadOnly,
    /^the image is open read-only: cannot format it/,
  );
  assert.ok(hal.region.bytes.every((b) => b === 0), "nothing written");
  hal.close();
});

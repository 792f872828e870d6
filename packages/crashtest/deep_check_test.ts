// Unit tests of the deep check (packages/crashtest/deep_check.ts): the per-structure
// checkers it runs (checkObjects of @twz/libtwz/check) on an image made with
// libtwz, and the whole flow (fsckImageFile, deepCheck, restoreUndoFile) on image files.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fsck, ImageOverlay, Kernel, type ObjID } from "@twz/kernel";
import { FotField, FotFlags, META_OFFSET, MetaField } from "@twz/kernel/abi";
import { openSim, openSimFromBytes } from "@twz/hal-sim";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";
import { BTreeMap } from "@twz/libtwz/btree";
import { Vector } from "@twz/libtwz/vector";
import { Queue } from "@twz/libtwz/queue";
import { transaction } from "@twz/libtwz/tx";
import { checkObjects, type CheckReport, repairObjects } from "@twz/libtwz/check";
import { deepCheck, fsckImageFile, restoreUndoFile } from "./deep_check.ts";

const tmpDir = scratchDirs("twz-fsck-deep-");
const BASE = 256;

interface Fixture {
  bytes: Uint8Array;
  map: ObjID;
  tree: ObjID;
  a: ObjID;
  b: ObjID;
  log: ObjID;
}

/** An image made with libtwz: names, a hash map, a B-tree, a vector, a queue, cross-object FOT entries. */
function makeFixture(): Fixture {
  const hal = openSim({ size: 12 << 20 });
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  const mapObj = twz.create({ name: "/data/map", size: 1 << 20 });
  const map = HashMap.create(twz, mapObj, codec.string, codec.int);
  for (let i = 0; i < 400; i++) map.set(`key-${i}`, i);
  for (let i = 0; i < 400; i += 7) map.delete(`key-${i}`); // free blocks on the free lists
  const treeObj = twz.create({ name: "/data/tree", size: 1 << 20 });
  const tree = BTreeMap.create(twz, treeObj, codec.int, codec.string);
  for (let i = 0; i < 200; i++) tree.set((i * 37) % 211, `v${i}`);
  Vector.create(twz, twz.create({ name: "/data/vec", size: 65536 }), codec.int).push(1);
  Queue.create(twz, twz.create({ name: "/data/q", size: 65536 }), codec.string).push("job");
  const a = twz.create({ name: "/a", size: 65536 });
  const b = twz.create({ name: "/b", size: 4096 });
  const ptr = a.fotIndex(b.id); // a cross-object pointer: FOT entry + pointer word
  a.view.setUint32(BASE, BASE, true);
  a.view.setUint32(BASE + 4, ptr << 16, true);
  a.fotIndex({ name: "/b" }); // a name-based entry
  // The last transaction writes b's base (the committed-log test undoes it).
  transaction(twz, (tx) => tx.setU32(b, BASE, 77));
  const log = twz.naming.resolve("/.txlog");
  kernel.shutdown();
  const bytes = hal.region.bytes.slice();
  hal.close();
  return { bytes, map: mapObj.id, tree: treeObj.id, a: a.id, b: b.id, log };
}

const fixture = makeFixture();

const view = (kernel: Kernel, id: ObjID) => kernel.map(id).view;

/** Boot a copy of the fixture, let `mutate` damage it, check it. */
function check(
  mutate: (kernel: Kernel) => void,
  options: { replay?: boolean; repair?: boolean } = {},
): { report: CheckReport; repairs: string[]; after?: CheckReport | undefined; bBase: number } {
  const hal = openSimFromBytes(fixture.bytes);
  const kernel = Kernel.boot(hal);
  mutate(kernel);
  const report = checkObjects(kernel.port(), { replay: options.replay ?? false });
  const repairs = options.repair ? repairObjects(kernel.port()) : [];
  const after = options.repair ? checkObjects(kernel.port()) : undefined;
  const bBase = kernel.exists(fixture.b) ? view(kernel, fixture.b).getUint32(BASE, true) : -1;
  kernel.shutdown();
  hal.close();
  return { report, repairs, after, bBase };
}

const messages = (r: CheckReport) => r.problems.map((p) => `${p.area}: ${p.message}`).join("\n");

Deno.test("checkObjects() finds an image made with libtwz clean", () => {
  const { report } = check(() => {});
  assert.deepEqual(report.problems, [], messages(report));
  assert.deepEqual(report.warnings, []);
  assert.equal(report.txlog?.state, "applied");
  const c = report.checked;
  assert.equal(c.hashMaps, 1);
  assert.equal(c.btrees, 1);
  assert.equal(c.vectors, 1);
  assert.equal(c.queues, 1);
  assert.equal(c.heaps, 4);
  assert.ok(c.fotEntries >= 2 && c.names >= 8 && c.directories === 2, JSON.stringify(c));
});

Deno.test("checkObjects() finds FOT damage and warns about dangling entries", () => {
  const fotAt = (v: DataView) => v.getUint32(META_OFFSET + MetaField.fotOffset, true);
  let r = check((k) => {
    const v = view(k, fixture.a);
    const at = fotAt(v) + FotField.flags;
    v.setUint32(at, v.getUint32(at, true) & ~FotFlags.Valid, true);
  }).report;
  assert.match(messages(r), /fot: published FOT entry 1 is not valid/);
  assert.equal(r.problems[0]!.id?.length, 32);

  r = check((k) => {
    const v = view(k, fixture.a);
    v.setUint32(META_OFFSET + MetaField.fotCount, 65, true);
  }).report;
  assert.match(messages(r), /fotCount 65 exceeds fotCapacity 64/);

  // Deleting b leaves a's entry and the name /b dangling: warnings, not problems.
  r = check((k) => k.delete(fixture.b)).report;
  assert.deepEqual(r.problems, [], messages(r));
  const warnings = r.warnings.map((w) => w.message).join("\n");
  assert.match(warnings, /FOT entry 1 names [0-9a-f]{32}, which no longer exists \(dangling\)/);
  assert.match(warnings, /FOT entry 2 names \/b, which resolves to nothing now/);
  assert.match(warnings, /\/b is bound to [0-9a-f]{32}, which no longer exists \(dangling name\)/);
});

Deno.test("checkObjects() finds a smashed heap block, a misplaced hash entry, an unordered leaf", () => {
  let r = check((k) => view(k, fixture.map).setUint32(320 + 128, 3, true)).report;
  assert.match(messages(r), /heap: heap at 320: bad block header at 448/);

  // Move the head entry of one bucket to the head of another.
  r = check((k) => {
    const v = view(k, fixture.map);
    const header = v.getUint32(BASE, true);
    const seg = v.getUint32(v.getUint32(header + 28, true), true);
    let from = 0;
    while (v.getUint32(seg + from * 4, true) === 0) from++;
    const to = from + 1;
    const e = v.getUint32(seg + from * 4, true);
    v.setUint32(seg + from * 4, v.getUint32(e, true), true);
    v.setUint32(e, v.getUint32(seg + to * 4, true), true);
    v.setUint32(seg + to * 4, e, true);
  }).report;
  assert.match(messages(r), /hashmap: hash map: bucket \d+: entry \d+ belongs in bucket \d+/);

  r = check((k) => {
    const v = view(k, fixture.map);
    const header = v.getUint32(BASE, true);
    v.setFloat64(header + 8, v.getFloat64(header + 8, true) + 1, true);
  }).report;
  assert.match(messages(r), /hashmap: hash map: count \d+ != \d+ entries/);

  r = check((k) => {
    const v = view(k, fixture.tree);
    const leaf = v.getUint32(v.getUint32(BASE, true) + 24, true); // the first leaf
    const s0 = v.getUint32(leaf + 8, true);
    v.setUint32(leaf + 8, v.getUint32(leaf + 12, true), true);
    v.setUint32(leaf + 12, s0, true);
  }).report;
  assert.match(messages(r), /btree: B-tree map: leaf \d+: keys out of order at 1/);
});

Deno.test("checkObjects() reads the transaction log: garbage, torn, committed (replayed on repair)", () => {
  let out = check((k) => view(k, fixture.log).setUint32(BASE, 0xdeadbeef, true), {
    repair: true,
  });
  assert.match(messages(out.report), /txlog: the transaction log header is garbage/);
  assert.deepEqual(out.repairs, ["txlog: cleared the garbage transaction log header"]);
  assert.equal(out.after?.txlog?.state, "empty");
  assert.deepEqual(out.after?.problems, []);

  out = check((k) => {
    const v = view(k, fixture.log);
    v.setUint32(BASE + 32, 0, true); // not applied ...
    v.setUint32(BASE + 24, v.getUint32(BASE + 24, true) ^ 1, true); // ... and the checksum fails
  });
  assert.equal(out.report.txlog?.state, "torn");
  assert.deepEqual(out.report.problems, []);
  assert.match(out.report.warnings[0]!.message, /torn commit .* recovery ignores it/);

  // A crash after commit, before apply: the log committed, b's base still old.
  const crashed = (k: Kernel) => {
    view(k, fixture.log).setUint32(BASE + 32, 0, true);
    view(k, fixture.b).setUint32(BASE, 0, true);
  };
  out = check(crashed, { repair: true });
  assert.equal(out.report.txlog?.state, "committed");
  assert.deepEqual(out.report.problems, []);
  assert.match(
    out.report.warnings[0]!.message,
    /committed transaction not marked applied: 1 records; opening a session replays it$/,
  );
  assert.equal(out.bBase, 77, "the replay wrote b's base");
  assert.match(out.repairs[0]!, /replayed the committed transaction \(1 records\)/);
  assert.equal(out.after?.txlog?.state, "applied");
  assert.deepEqual(out.after?.warnings, []);
  assert.deepEqual(out.after?.problems, []);
  // Without repair, checking writes nothing: b's base stays 0 (replay only on request).
  const hal = openSimFromBytes(fixture.bytes);
  const kernel = Kernel.boot(hal);
  crashed(kernel);
  checkObjects(kernel.port());
  assert.equal(view(kernel, fixture.b).getUint32(BASE, true), 0);
  checkObjects(kernel.port(), { replay: true });
  assert.equal(view(kernel, fixture.b).getUint32(BASE, true), 77);
  kernel.halt();
  hal.close();
});

Deno.test("fsckImageFile --deep: clean, corruption found; a committed log is replayed by repair only; restoreUndoFile undoes it", () => {
  const dir = tmpDir();
  const bad = join(dir, "bad.img");
  const committed = join(dir, "committed.img");
  const save = (path: string, mutate: (k: Kernel) => void) => {
    const hal = openSimFromBytes(fixture.bytes);
    const kernel = Kernel.boot(hal);
    mutate(kernel);
    kernel.shutdown();
    Deno.writeFileSync(path, hal.region.bytes);
    hal.close();
  };
  save(bad, (k) => view(k, fixture.map).setUint32(320 + 128, 3, true));
  save(committed, (k) => {
    view(k, fixture.log).setUint32(BASE + 32, 0, true);
    view(k, fixture.b).setUint32(BASE, 0, true);
  });
  const report = fsckImageFile(bad, { deep: true });
  assert.equal(report.clean, false);
  assert.deepEqual(report.problems, []); // the kernel's structures are fine
  assert.equal(report.libtwz?.problems[0]?.area, "heap");
  assert.ok(report.read.bytes < report.read.imageBytes, "read piece by piece");

  const before = Deno.readFileSync(committed);
  const warned = fsckImageFile(committed, { deep: true });
  assert.equal(warned.clean, true, JSON.stringify(warned));
  assert.match(warned.libtwz!.warnings.map((w) => w.message).join("\n"), /checked as replayed/);
  assert.equal(warned.libtwz!.txlog?.state, "committed");
  assert.deepEqual(Deno.readFileSync(committed), before, "a check without repair writes nothing");

  const fixed = fsckImageFile(committed, { deep: true, repair: true });
  assert.equal(fixed.clean, true, JSON.stringify(fixed));
  assert.match(fixed.libtwz!.repairs.join("\n"), /txlog: replayed the committed transaction/);
  assert.equal(fixed.undoFile, `${committed}.undo`);
  const clean = fsckImageFile(committed, { deep: true });
  assert.equal(clean.libtwz!.warnings.length, 0);
  assert.equal(clean.libtwz!.txlog?.state, "applied");
  const undone = restoreUndoFile(`${committed}.undo`, committed);
  assert.ok(undone.records > 0 && !undone.torn, JSON.stringify(undone));
  assert.deepEqual(Deno.readFileSync(committed), before, "byte for byte");
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("deepCheck on an overlay of an image in memory: changes stay in the overlay, with their originals", () => {
  const hal = openSimFromBytes(fixture.bytes);
  const kernel = Kernel.boot(hal);
  view(kernel, fixture.log).setUint32(BASE + 32, 0, true); // a committed transaction again
  view(kernel, fixture.b).setUint32(BASE, 0, true);
  kernel.shutdown();
  const image = hal.region.bytes.slice();
  hal.close();
  const overlay = new ImageOverlay({
    size: image.length,
    read: (into, at) => into.set(image.subarray(at, at + into.length)),
  });
  const kernelReport = fsck(overlay);
  assert.ok(kernelReport.clean);
  const deep = deepCheck(overlay, kernelReport, false);
  assert.deepEqual(deep.problems, []);
  assert.equal(deep.txlog?.state, "committed");
  // The replay wrote b's base in the overlay only; the original line is kept.
  for (const line of overlay.changedLines()) {
    const at = line * 64;
    assert.deepEqual(overlay.original(line), image.slice(at, at + 64));
  }
  assert.ok(overlay.changedLines().length > 0, "the libtwz replay changed lines");
  assert.ok(overlay.pagesRead * 4096 < image.length, "read piece by piece");
});

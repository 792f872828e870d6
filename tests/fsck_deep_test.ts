// The deep check (`checkObjects`, `twz fsck --deep`) passes an image made
// with libtwz, finds hand-made corruptions of its structures, and replays a
// committed transaction log only when asked to repair.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Kernel, type ObjID, Prot } from "@twz/kernel";
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
import { twz } from "./_twz.ts";
import { decodeSuperblock, type Geometry } from "../packages/kernel/_layout.ts";

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
  const twz = Twz.fromKernel(kernel);
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
): { report: CheckReport; repairs: string[]; after?: CheckReport; bBase: number } {
  const hal = openSimFromBytes(fixture.bytes);
  const kernel = Kernel.boot(hal);
  mutate(kernel);
  const report = checkObjects(kernel, { replay: options.replay });
  const repairs = options.repair ? repairObjects(kernel) : [];
  const after = options.repair ? checkObjects(kernel) : undefined;
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
  assert.equal(r.problems[0].id?.length, 32);

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
  assert.match(out.report.warnings[0].message, /torn commit .* recovery ignores it/);

  // A crash after commit, before apply: the log committed, b's base still old.
  const crashed = (k: Kernel) => {
    view(k, fixture.log).setUint32(BASE + 32, 0, true);
    view(k, fixture.b).setUint32(BASE, 0, true);
  };
  out = check(crashed, { repair: true });
  assert.equal(out.report.txlog?.state, "committed");
  assert.deepEqual(out.report.problems, []);
  assert.match(
    out.report.warnings[0].message,
    /committed transaction not marked applied: 1 records; opening a session replays it$/,
  );
  assert.equal(out.bBase, 77, "the replay wrote b's base");
  assert.match(out.repairs[0], /replayed the committed transaction \(1 records\)/);
  assert.equal(out.after?.txlog?.state, "applied");
  assert.deepEqual(out.after?.warnings, []);
  assert.deepEqual(out.after?.problems, []);
  // Without repair, checking writes nothing: b's base stays 0 (replay only on request).
  const hal = openSimFromBytes(fixture.bytes);
  const kernel = Kernel.boot(hal);
  crashed(kernel);
  checkObjects(kernel);
  assert.equal(view(kernel, fixture.b).getUint32(BASE, true), 0);
  checkObjects(kernel, { replay: true });
  assert.equal(view(kernel, fixture.b).getUint32(BASE, true), 77);
  kernel.halt();
  hal.close();
});

Deno.test("twz fsck --deep: exit 0 clean, 1 on corruption; a committed log is replayed by --repair only", async () => {
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
  const found = await twz(["fsck", "--image", bad, "--deep", "--json"]);
  assert.equal(found.code, 1, found.stderr);
  const report = JSON.parse(found.stdout);
  assert.equal(report.clean, false);
  assert.deepEqual(report.problems, []); // the kernel's structures are fine
  assert.equal(report.libtwz.problems[0].area, "heap");

  const before = Deno.readFileSync(committed);
  const warned = await twz(["fsck", "--image", committed, "--deep"]);
  assert.equal(warned.code, 0, warned.stdout + warned.stderr);
  assert.match(
    warned.stdout,
    /libtwz: warning: txlog [0-9a-f]{32}: .*1 records.*checked as replayed/,
  );
  assert.match(warned.stdout, /libtwz: clean \(.*1 hash maps, 1 B-trees.*txlog committed\)/);
  assert.deepEqual(Deno.readFileSync(committed), before, "fsck without --repair writes nothing");

  const fixed = await twz(["fsck", "--image", committed, "--deep", "--repair"]);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /repaired: txlog: replayed the committed transaction \(1 records\)/);
  const clean = await twz(["fsck", "--image", committed, "--deep"]);
  assert.equal(clean.code, 0);
  assert.doesNotMatch(clean.stdout, /warning/);
  assert.match(clean.stdout, /libtwz: clean \(.*txlog applied\)/);
  Deno.removeSync(dir, { recursive: true });
});

// --- Repairs that must keep every name: through the command line, on both HALs.

const pmem = (await import("@twz/hal-pmem")).plugin.describe();
const HAL_NAMES = ["sim", ...(pmem.available ? ["pmem"] : [])];

const SCRIPT = [
  "new --size 5000 --name /a",
  "write /a 0 hello",
  "new --size 3000 --name /docs/b",
  "write /docs/b 0 world",
  "kv put k1 v1",
  "kv put k2 v2",
  "shutdown",
].join("\n") + "\n";

/** Make an image with names and a /kv store on `hal`; returns the ID of /a. */
async function makeImage(hal: string, path: string): Promise<string> {
  const r = await twz(["boot", "--hal", hal, "--image", path, "--size", String(8 << 20)], SCRIPT);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n")[0].trim();
}

/** Change the image file in place. */
function patch(path: string, f: (bytes: Uint8Array, g: Geometry) => void): void {
  const bytes = Deno.readFileSync(path);
  f(bytes, decodeSuperblock(bytes));
  Deno.writeFileSync(path, bytes);
}

function slotOfId(bytes: Uint8Array, g: Geometry, hex: string): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const id = BigInt(`0x${hex}`);
  for (let i = 0; i < g.tableSlots; i++) {
    const o = g.tableOffset + i * 64;
    if (bytes[o + 16] !== 1) continue;
    if (((v.getBigUint64(o + 8, true) << 64n) | v.getBigUint64(o, true)) === id) return o;
  }
  throw new Error(`no slot for ${hex}`);
}

const session = (hal: string, path: string, commands: string[]) =>
  twz(["boot", "--hal", hal, "--image", path], commands.join("\n") + "\nshutdown\n");

for (const hal of HAL_NAMES) {
  Deno.test(`twz fsck --repair --deep: a damaged root record keeps every name and /kv (hal ${hal})`, async () => {
    const dir = tmpDir();
    const path = join(dir, "t.img");
    await makeImage(hal, path);
    patch(path, (b, g) => b.fill(0, g.rootOffset, g.rootOffset + 64));
    const refused = await session(hal, path, ["read /a 0 5"]);
    assert.notEqual(refused.code, 0, "boot refuses the damaged root record");
    const fixed = await twz(["fsck", "--hal", hal, "--image", path, "--repair", "--deep"]);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(fixed.stdout, /rebuilt the root record .* keeping root object [0-9a-f]{32}/);
    assert.match(fixed.stdout, /libtwz: clean|libtwz: repaired/);
    const r = await session(hal, path, [
      "read /a 0 5",
      "read /docs/b 0 5",
      "kv get k1",
      "kv count",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v1", "2"]);
    const clean = await twz(["fsck", "--hal", hal, "--image", path, "--deep"]);
    assert.equal(clean.code, 0, clean.stdout);
    Deno.removeSync(dir, { recursive: true });
  });
}

Deno.test("twz fsck --repair --deep: a zeroed object slot's blocks become /lost+found/<ID>, bytes unchanged", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  const a = await makeImage("sim", path);
  patch(path, (b, g) => {
    const o = slotOfId(b, g, a);
    b.fill(0, o, o + 64);
  });
  // The deep repair writes objects too (directories, the log): --undo puts every byte back.
  const damaged = await sha(Deno.readFileSync(path));
  const first = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.notEqual(await sha(Deno.readFileSync(path)), damaged);
  const undone = await twz(["fsck", "--undo", `${path}.undo`, "--image", path]);
  assert.equal(undone.code, 0, undone.stderr);
  assert.equal(await sha(Deno.readFileSync(path)), damaged, "byte for byte");
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep", "--force"]);
  assert.equal(fixed.code, 1, "not clean: an object was put aside\n" + fixed.stdout + fixed.stderr);
  const m = /bound ([0-9a-f]{32}) as (\/lost\+found\/[0-9a-f]{32})/.exec(fixed.stdout);
  assert.ok(m, fixed.stdout);
  assert.match(fixed.stdout, /put aside for \/lost\+found: not clean/);
  const r = await session("sim", path, [`read ${m[2]} 0 5`, "read /docs/b 0 5", "kv get k2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v2"]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck --repair --deep: a lost root object; the naming root is found again by its structure", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  await makeImage("sim", path);
  patch(path, (b, g) => {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const root = (v.getBigUint64(g.rootOffset + 40, true) << 64n) |
      v.getBigUint64(g.rootOffset + 32, true);
    const o = slotOfId(b, g, root.toString(16).padStart(32, "0"));
    const data = g.dataOffset + v.getUint32(o + 20, true) * 1024;
    v.setUint16(data + META_OFFSET + MetaField.flags, 0, true); // no longer marked Root
    b.fill(0, g.rootOffset, g.rootOffset + 64); // and the root record names nothing
  });
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.match(
    fixed.stdout,
    /names root directory [0-9a-f]{32} again/,
    fixed.stdout + fixed.stderr,
  );
  const r = await session("sim", path, [
    "read /a 0 5",
    "read /docs/b 0 5",
    "kv get k1",
    "kv count",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v1", "2"]);
  Deno.removeSync(dir, { recursive: true });
});

async function sha(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

Deno.test("twz fsck --repair --deep: an object record it cannot trust becomes /lost+found/<ID>, bytes unchanged", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  const a = await makeImage("sim", path);
  patch(path, (b, g) => {
    const o = slotOfId(b, g, a);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    v.setFloat64(o + 56, 1.5, true); // two fields: no single fix checks again
    v.setUint16(o + 18, 5, true);
  });
  const refused = await session("sim", path, ["read /a 0 5"]);
  assert.match(refused.stderr, /is damaged \(table slot \d+/);
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.equal(fixed.code, 1, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, new RegExp(`lost\\+found: [0-9a-f]{32}: was object ${a}`));
  const m = /bound [0-9a-f]{32} as (\/lost\+found\/[0-9a-f]{32})/.exec(fixed.stdout);
  assert.ok(m, fixed.stdout);
  const r = await session("sim", path, [`read ${m[1]} 0 5`, "kv get k1"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "v1"]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck --repair --deep binds objects an earlier repair without --deep recovered", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  const a = await makeImage("sim", path);
  patch(path, (b, g) => {
    const o = slotOfId(b, g, a);
    b.fill(0, o, o + 64);
  });
  const kernelOnly = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(kernelOnly.code, 1, kernelOnly.stdout + kernelOnly.stderr);
  assert.match(
    kernelOnly.stdout,
    /note: objects were put aside: `twz fsck --repair --deep` binds them/,
  );
  const clean = await twz(["fsck", "--image", path]);
  assert.equal(clean.code, 0, "the kernel structures are sound now\n" + clean.stdout);
  const deep = await twz(["fsck", "--image", path, "--repair", "--deep", "--force"]);
  assert.equal(deep.code, 1, deep.stdout + deep.stderr);
  const m = /bound [0-9a-f]{32} as (\/lost\+found\/6c6f73742b666f75[0-9a-f]{16})/.exec(deep.stdout);
  assert.ok(m, deep.stdout);
  const r = await session("sim", path, [`read ${m[1]} 0 5`]);
  assert.equal(r.stdout.trim(), "hello");
  const again = await twz(["fsck", "--image", path, "--repair", "--deep", "--force"]);
  assert.equal(again.code, 0, "bound once: nothing to put aside now\n" + again.stdout);
  Deno.removeSync(dir, { recursive: true });
});

// --- A damaged naming root directory header: rewritten by --repair --deep (magic,
// version and capacity follow from the object's size), or reported as remaining.

/** Damage the root directory of the image at `path` through its mapping (header at BASE). */
function damageRootDir(path: string, f: (v: DataView) => void): string {
  const hal = openSimFromBytes(Deno.readFileSync(path));
  const kernel = Kernel.boot(hal);
  const dir = Twz.fromKernel(kernel).naming.rootId;
  const m = kernel.map(dir, Prot.ReadWrite);
  f(m.view);
  m.persist(0, m.bytes.length);
  kernel.shutdown();
  Deno.writeFileSync(path, hal.region.bytes);
  hal.close();
  return dir.toString(16).padStart(32, "0");
}

for (
  const [what, damage] of [
    ["magic zeroed", (v: DataView) => v.setUint32(BASE, 0, true)],
    ["version 9", (v: DataView) => v.setUint32(BASE + 4, 9, true)],
    ["capacity 2^32-1", (v: DataView) => v.setUint32(BASE + 8, 0xffffffff, true)],
    ["generation swapped with the magic", (v: DataView) => {
      const magic = v.getUint32(BASE, true);
      v.setUint32(BASE, v.getUint32(BASE + 12, true), true);
      v.setUint32(BASE + 12, magic, true);
    }],
  ] as const
) {
  Deno.test(`twz fsck --repair --deep rewrites the root directory's header (${what}); every name resolves`, async () => {
    const dir = tmpDir();
    const path = join(dir, "t.img");
    await makeImage("sim", path);
    const id = damageRootDir(path, damage);
    const found = await twz(["fsck", "--image", path, "--deep"]);
    assert.equal(found.code, 1, found.stdout + found.stderr);
    assert.match(found.stdout, new RegExp(`libtwz: naming ${id}: .*header damaged`));
    const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(
      fixed.stdout,
      new RegExp(`repaired: naming: directory ${id}: rewrote its header \\(magic, version`),
    );
    const r = await session("sim", path, ["read /a 0 5", "read /docs/b 0 5", "kv get k1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v1"]);
    const clean = await twz(["fsck", "--image", path, "--deep"]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    Deno.removeSync(dir, { recursive: true });
  });
}

Deno.test("twz fsck --repair --deep: a root directory header it cannot prove a directory's is reported, not called clean", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  await makeImage("sim", path);
  damageRootDir(path, (v) => {
    v.setUint32(BASE, 0, true); // the header's magic
    // and the meta-info's Directory flag (its checksum no longer holds either)
    v.setUint16(META_OFFSET + MetaField.flags, 0, true);
  });
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.equal(fixed.code, 1, fixed.stdout + fixed.stderr);
  assert.doesNotMatch(fixed.stdout, /rewrote its header/);
  assert.match(fixed.stdout, /^remaining: libtwz: naming [0-9a-f]{32}: directory \/ /m);
  assert.doesNotMatch(fixed.stdout, /now clean|libtwz: clean|no problem remains/);
  Deno.removeSync(dir, { recursive: true });
});

// Unit tests of the kernel's fsck (packages/kernel/fsck.ts and fsck/): checks, repairs, FsckCache.
import assert from "node:assert/strict";
import {
  fsck,
  FsckCache,
  type FsckReport,
  ImageOverlay,
  Kernel,
  type ObjID,
  writeId,
} from "@twz/kernel";
import {
  crc32,
  decodeSuperblock,
  findSlotOffset,
  type Geometry,
  sealSlot,
} from "@twz/kernel/format";
import { openSim, openSimFromBytes, type SimHal } from "@twz/hal-sim";

const SIZE = 4 << 20;

interface Fixture {
  hal: SimHal;
  g: Geometry;
  ids: ObjID[];
  parent: ObjID;
  child: ObjID;
  contents: Map<ObjID, Uint8Array>;
}

/** An image with a few objects (one tied to another), cleanly shut down. */
function fixture(): Fixture {
  const hal = openSim({ size: SIZE });
  const kernel = Kernel.boot(hal);
  const contents = new Map<ObjID, Uint8Array>();
  const ids: ObjID[] = [];
  for (let i = 0; i < 6; i++) {
    const id = kernel.create({ size: 1000 + i * 900 });
    const data = new Uint8Array(1000 + i * 900).fill(i + 1);
    kernel.write(id, 0, data);
    contents.set(id, data);
    ids.push(id);
  }
  const parent = ids[0]!;
  const child = kernel.create({ size: 500, ties: [parent] });
  contents.set(child, new Uint8Array(500));
  ids.push(child);
  kernel.delete(kernel.create({ size: 3000 })); // leaves a tombstone or two
  kernel.shutdown();
  return { hal, g: decodeSuperblock(hal.region.bytes), ids, parent, child, contents };
}

const view = (f: Fixture) =>
  new DataView(f.hal.region.bytes.buffer, f.hal.region.bytes.byteOffset, f.hal.region.size);

const slotOf = (f: Fixture, id: ObjID, state?: number) =>
  findSlotOffset(f.hal.region.bytes, f.g, id, state);

/** Seal the slot at `off` again (an adversary, or a kernel bug, writing a wrong but sealed record). */
function reseal(f: Fixture, off: number): void {
  const b = f.hal.region.bytes;
  const i = (off - f.g.tableOffset) / 64;
  b.set(sealSlot(b.slice(off, off + 64), i, f.g.seed), off);
}

/** The data bytes of object `id` straight from the image (no kernel). */
function dataOf(f: Fixture, id: ObjID, off = slotOf(f, id)): Uint8Array {
  const start = view(f).getUint32(off + 20, true), size = view(f).getUint32(off + 28, true);
  const at = f.g.dataOffset + start * 1024;
  return f.hal.region.bytes.slice(at, at + size);
}

function fixRootCrc(f: Fixture): void {
  const b = f.hal.region.bytes;
  view(f).setUint32(
    f.g.rootOffset + 60,
    crc32(b.subarray(f.g.rootOffset, f.g.rootOffset + 60)),
    true,
  );
}

/** After repair: clean, boots, and every intact object reads back. */
function assertRecovered(f: Fixture, report: FsckReport, gone: ObjID[] = []): void {
  assert.ok(report.clean, JSON.stringify(report.remaining));
  assert.ok(report.repairs.length > 0);
  assert.ok(fsck(f.hal).clean, "a second check finds nothing");
  f.hal.region.powerFail({ policy: "strict" }); // the repairs are durable
  assert.ok(fsck(f.hal).clean, "durable");
  const kernel = Kernel.boot(f.hal);
  for (const [id, data] of f.contents) {
    if (gone.includes(id)) continue;
    assert.deepEqual(kernel.read(id, 0, data.length), data);
  }
  const extra = kernel.create({ size: 5000 });
  kernel.delete(extra);
  assert.ok(fsck(f.hal).clean);
  kernel.shutdown();
}

Deno.test("fsck() finds nothing wrong with a healthy image", () => {
  const f = fixture();
  const r = fsck(f.hal);
  assert.deepEqual(r.problems, []);
  assert.equal(r.clean, true);
  assert.equal(r.summary!.objects, 7);
  assert.equal(r.summary!.edges, 1);
  assert.equal(r.summary!.log, "empty");
  f.hal.close();
});

const CASES: Array<{
  name: string;
  corrupt: (f: Fixture) => void;
  expect: RegExp;
  repairable: boolean;
  gone?: (f: Fixture) => ObjID[];
}> = [
  {
    name: "a table slot's state flipped to empty",
    corrupt: (f) => (f.hal.region.bytes[slotOf(f, f.ids[2]!) + 16] = 0),
    expect:
      /slot \d+ fails its check .*object [0-9a-f]{32} checks again with its state 0 restored to 1/,
    repairable: true,
  },
  {
    name: "a table slot's state flipped to tombstone",
    corrupt: (f) => (f.hal.region.bytes[slotOf(f, f.ids[3]!) + 16] = 2),
    expect: /slot \d+ fails its check .* checks again with its state 2 restored to 1/,
    repairable: true,
  },
  {
    name: "a table slot's state flipped to garbage",
    corrupt: (f) => (f.hal.region.bytes[slotOf(f, f.ids[4]!) + 16] = 0x5a),
    expect: /slot \d+ fails its check \(unknown state 90\).* restored to 1/,
    repairable: true,
  },
  {
    name: "a table slot's state flipped to tie edge",
    corrupt: (f) => (f.hal.region.bytes[slotOf(f, f.ids[1]!) + 16] = 3),
    expect: /checks again with its state 3 restored to 1/,
    repairable: true,
  },
  {
    name: "a damaged size",
    corrupt: (f) => view(f).setUint32(slotOf(f, f.ids[5]!) + 28, 9_000_000, true),
    expect: /size 9000000 exceeds .* checks again with its size 9000000 restored to 5500/,
    repairable: true,
  },
  {
    name: "a leaked bitmap block",
    corrupt: (f) => {
      const at = f.g.bitmapOffset + 4 * 100; // blocks 3200.. are free in a 4 MiB image
      view(f).setUint32(at, 1 << 7, true);
    },
    expect: /1 block\(s\) marked used belong to no object \(leaked\): 3207/,
    repairable: true,
  },
  {
    name: "a live object's block marked free",
    corrupt: (f) => {
      const start = view(f).getUint32(slotOf(f, f.ids[1]!) + 20, true);
      const at = f.g.bitmapOffset + (start >>> 5) * 4;
      view(f).setUint32(at, view(f).getUint32(at, true) & ~(1 << (start & 31)), true);
    },
    expect: /block\(s\) of live objects are marked free/,
    repairable: true,
  },
  {
    name: "a root counter that is wrong (checksum still valid)",
    corrupt: (f) => {
      view(f).setUint32(f.g.rootOffset + 4, 99, true);
      fixRootCrc(f);
    },
    expect: /the root record counts 99 objects; the image holds 7/,
    repairable: true,
  },
  {
    name: "a damaged root record",
    corrupt: (f) => (f.hal.region.bytes[f.g.rootOffset + 9]! ^= 0xff),
    expect: /the root record is damaged/,
    repairable: true,
  },
  {
    name: "a garbage log header",
    corrupt: (f) => view(f).setUint32(f.g.logOffset, 0xdeadbeef, true),
    expect: /the log header holds garbage \(magic 0xdeadbeef\)/,
    repairable: true,
  },
  {
    name: "a tie edge to nowhere (its parent does not exist, the slot sealed)",
    corrupt: (f) => {
      const off = slotOf(f, f.parent, 3);
      writeId(view(f), off, 0x1234n << 64n);
      reseal(f, off);
    },
    expect: /tie edge in slot \d+ names parent 0000000000001234.* which does not exist/,
    repairable: true,
  },
  {
    name: "a damaged first block making two objects overlap",
    corrupt: (f) => {
      const a = view(f).getUint32(slotOf(f, f.ids[1]!) + 20, true);
      view(f).setUint32(slotOf(f, f.ids[2]!) + 20, a, true);
    },
    expect: /slot \d+ fails its check .* checks again with its first block \d+ restored to \d+/,
    repairable: true,
  },
  {
    name: "an extent outside the data area",
    corrupt: (f) => view(f).setUint32(slotOf(f, f.ids[5]!) + 20, 0xfffff0, true),
    expect: /blocks \[16777200, .*\) lie beyond .* first block 16777200 restored to \d+/,
    repairable: true,
  },
];

for (const c of CASES) {
  Deno.test(`fsck() finds ${c.name}${c.repairable ? " and repairs it" : ""}`, () => {
    const f = fixture();
    c.corrupt(f);
    const found = fsck(f.hal);
    assert.equal(found.clean, false);
    const hit = found.problems.find((p) => c.expect.test(p.message));
    assert.ok(hit, `expected ${c.expect}, got ${JSON.stringify(found.problems)}`);
    assert.equal(hit.repairable, c.repairable);
    const before = f.hal.region.bytes.slice();
    assert.equal(fsck(f.hal).problems.length, found.problems.length, "checking writes nothing");
    assert.deepEqual(f.hal.region.bytes, before);
    const repaired = fsck(f.hal, { repair: true });
    if (c.repairable) assertRecovered(f, repaired, c.gone?.(f));
    else assert.ok(repaired.remaining.some((p) => c.expect.test(p.message)), "left for a person");
    f.hal.close();
  });
}

Deno.test("fsck() with an FsckCache: the same reports, and only changed slots are checked again", () => {
  const f = fixture();
  const cache = new FsckCache();
  const plain = () => JSON.stringify(fsck(f.hal));
  const cached = () => JSON.stringify(fsck(f.hal, { cache }));
  assert.equal(cached(), plain());
  assert.equal(cache.checked, f.g.tableSlots, "the first run checks every slot");
  assert.equal(cached(), plain());
  assert.equal(cache.checked, f.g.tableSlots, "an unchanged table is not checked again");
  // A slot damaged (its check no longer holds), then sealed with wrong
  // values, then put back: each verdict follows the bytes.
  const off = slotOf(f, f.ids[2]!);
  const b = f.hal.region.bytes;
  const was = b.slice(off, off + 64);
  b[off + 30]! ^= 1; // its size
  assert.equal(cached(), plain());
  assert.ok(!fsck(f.hal, { cache }).clean);
  assert.equal(cache.checked, f.g.tableSlots + 1);
  reseal(f, off);
  assert.equal(cached(), plain());
  b.set(was, off);
  assert.equal(cached(), plain());
  assert.ok(fsck(f.hal, { cache }).clean);
  // Another image (another store): the cache starts afresh.
  const other = fixture();
  assert.equal(JSON.stringify(fsck(other.hal, { cache })), JSON.stringify(fsck(other.hal)));
  other.hal.close();
  f.hal.close();
});

Deno.test("fsck() checks an image with a committed log as boot will see it, and --repair replays it", () => {
  const hal = openSim({ size: SIZE });
  const kernel = Kernel.boot(hal);
  kernel.create({ size: 100 });
  const commit = hal.region.stats().drains + 2; // contents drain, then the commit drain
  hal.region.armCrash(commit, { policy: "strict" });
  assert.throws(() => kernel.create({ size: 100 }), /power failed/);
  const before = hal.region.bytes.slice();
  const r = fsck(hal);
  assert.deepEqual(hal.region.bytes, before, "the replay is an overlay: nothing changed");
  assert.ok(r.clean, JSON.stringify(r.problems));
  assert.equal(r.summary!.log, "committed");
  assert.match(r.notes.join("\n"), /committed transaction .* boot replays it/);
  assert.equal(r.summary!.objects, 2);
  // The same over an overlay read piece by piece (as `twz fsck` reads a
  // file): replayed in the overlay only, and rolled back.
  const file = hal.region.bytes.slice();
  const overlay = new ImageOverlay({
    size: file.length,
    read: (into, at) => into.set(file.subarray(at, at + into.length)),
  });
  const o = fsck(overlay);
  assert.equal(JSON.stringify(o), JSON.stringify(r));
  assert.deepEqual(overlay.changedLines(), [], "the replay is rolled back");
  assert.ok(overlay.pagesRead * 4096 < file.length / 2, `${overlay.pagesRead} pages read`);
  // Plain bytes: replayed in place for the analysis, then put back.
  const copy = file.slice();
  assert.equal(JSON.stringify(fsck(copy)), JSON.stringify(r));
  assert.deepEqual(copy, file, "checking plain bytes leaves them as they were");
  const fixed = fsck(hal, { repair: true });
  assert.match(fixed.repairs[0]!, /replayed the committed metadata log/);
  assert.equal(Kernel.boot(hal).usage().objects, 2);
  hal.close();
});

Deno.test("fsck --repair re-creates an object whose record it cannot trust over its blocks, for /lost+found", () => {
  const f = fixture();
  const id = f.ids[4]!;
  const off = slotOf(f, id);
  const data = dataOf(f, id);
  const start = view(f).getUint32(off + 20, true), blocks = view(f).getUint32(off + 24, true);
  view(f).setFloat64(off + 56, 12345.5, true); // two fields damaged: no single fix checks
  view(f).setUint16(off + 18, 5, true);
  const word = f.g.bitmapOffset + (start >>> 5) * 4; // and its first block marked free
  view(f).setUint32(word, view(f).getUint32(word, true) & ~(1 << (start & 31)), true);
  const found = fsck(f.hal);
  assert.ok(
    found.problems.some((p) =>
      /holds object .* fails its check .* become a recovered object for \/lost\+found/.test(
        p.message,
      )
    ),
    JSON.stringify(found.problems),
  );
  const r = fsck(f.hal, { repair: true });
  assert.deepEqual(r.remaining, []);
  assert.equal(r.clean, false, "not clean: an object was put aside");
  assert.equal(r.lostFound.length, 1, JSON.stringify(r.lostFound));
  const rid = BigInt(`0x${r.lostFound[0]!.id}`);
  assert.match(
    r.lostFound[0]!.reason,
    new RegExp(`was object ${id.toString(16).padStart(32, "0")}`),
  );
  const bit = (b: number) =>
    (view(f).getUint32(f.g.bitmapOffset + (b >>> 5) * 4, true) >>> (b & 31)) & 1;
  for (let b = start; b < start + blocks; b++) assert.equal(bit(b), 1, `block ${b} is allocated`);
  const kernel = Kernel.boot(f.hal);
  assert.equal(kernel.exists(id), false);
  assert.deepEqual(kernel.read(rid, 0, data.length), data, "its bytes, unchanged");
  for (const other of f.ids.filter((x) => x !== id)) {
    assert.deepEqual(kernel.read(other, 0, f.contents.get(other)!.length), f.contents.get(other));
  }
  const extra = kernel.create({ size: 200_000 }); // never lands on the recovered blocks
  kernel.delete(extra);
  assert.deepEqual(kernel.read(rid, 0, data.length), data);
  kernel.shutdown();
  assert.deepEqual(fsck(f.hal).problems, []);
  f.hal.close();
});

Deno.test("fsck --repair: a damaged first block that cannot be proven frees neither copy", () => {
  const f = fixture();
  const [a, b] = [f.ids[1]!, f.ids[2]!];
  const offB = slotOf(f, b);
  const dataA = dataOf(f, a), dataB = dataOf(f, b);
  view(f).setUint32(offB + 20, view(f).getUint32(slotOf(f, a) + 20, true), true); // onto a's blocks
  view(f).setUint16(offB + 18, 6, true); // and a second field: no single fix checks
  const r = fsck(f.hal, { repair: true });
  assert.deepEqual(r.remaining, []);
  assert.ok(
    r.problems.some((p) => /slot \d+ fails its check .* it becomes a tombstone/.test(p.message)),
  );
  assert.equal(r.lostFound.length, 1, JSON.stringify(r.lostFound)); // b's true blocks
  const kernel = Kernel.boot(f.hal);
  assert.deepEqual(kernel.read(a, 0, dataA.length), dataA, "the true copy of a is a's");
  const rec = r.lostFound.find((l) => l.id.startsWith("6c6f73742b666f75"))!;
  assert.deepEqual(
    kernel.read(BigInt(`0x${rec.id}`), 0, dataB.length),
    dataB,
    "b's bytes are kept",
  );
  kernel.shutdown();
  f.hal.close();
});

Deno.test("fsck --repair turns the blocks of a zeroed object slot into a recovered object for /lost+found", () => {
  const f = fixture();
  const id = f.ids[3]!;
  const off = slotOf(f, id);
  const data = dataOf(f, id);
  f.hal.region.bytes.fill(0, off, off + 64);
  const found = fsck(f.hal);
  assert.ok(found.problems.some((p) => /fails its check .* becomes a tombstone/.test(p.message)));
  assert.ok(
    found.problems.some((p) => /they become recovered objects for \/lost\+found/.test(p.message)),
  );
  const r = fsck(f.hal, { repair: true });
  assert.deepEqual(r.remaining, []);
  assert.equal(r.clean, false, "not clean: an object was put aside");
  assert.equal(r.lostFound.length, 1);
  const rid = BigInt(`0x${r.lostFound[0]!.id}`);
  assert.match(r.lostFound[0]!.id, /^6c6f73742b666f75/);
  const kernel = Kernel.boot(f.hal);
  assert.deepEqual(kernel.read(rid, 0, data.length), data, "the data is all there");
  assert.equal(kernel.exists(id), false);
  kernel.shutdown();
  const again = fsck(f.hal);
  assert.deepEqual(again.problems, []);
  f.hal.close();
});

Deno.test("fsck --repair on a zeroed table or bitmap frees nothing", () => {
  for (const what of ["table", "bitmap"]) {
    const f = fixture();
    const all = [...f.contents.keys()];
    const extents = new Map(all.map((id) => [id, dataOf(f, id)]));
    const starts = new Map(all.map((id) => [id, view(f).getUint32(slotOf(f, id) + 20, true)]));
    const used = f.hal.region.bytes.slice(f.g.bitmapOffset, f.g.dataOffset);
    if (what === "table") {
      f.hal.region.bytes.fill(0, f.g.tableOffset, f.g.tableOffset + f.g.tableSlots * 64);
    } else f.hal.region.bytes.fill(0, f.g.bitmapOffset, f.g.dataOffset);
    const r = fsck(f.hal, { repair: true });
    assert.deepEqual(r.remaining, [], `${what}: ${JSON.stringify(r.remaining)}`);
    const kernel = Kernel.boot(f.hal);
    if (what === "bitmap") {
      assert.ok(r.clean, "the table says which blocks are used");
      assert.deepEqual(f.hal.region.bytes.slice(f.g.bitmapOffset, f.g.dataOffset), used);
      for (const [id, data] of f.contents) assert.deepEqual(kernel.read(id, 0, data.length), data);
    } else {
      assert.equal(r.clean, false);
      assert.ok(r.lostFound.length >= 1);
      // Every object's bytes are readable through a recovered object over its blocks.
      const recovered = r.lostFound.map((l) => BigInt(`0x${l.id}`));
      for (const [id, bytes] of extents) {
        assert.equal(kernel.exists(id), false);
        const start = starts.get(id)!;
        const rid = recovered.find((x) => {
          const s0 = Number(x & 0xffffffffn);
          return s0 <= start && (start - s0) * 1024 < kernel.stat(x).size;
        });
        assert.ok(rid !== undefined, `no recovered object holds block ${start}`);
        const s0 = Number(rid & 0xffffffffn);
        assert.deepEqual(kernel.read(rid, (start - s0) * 1024, bytes.length), bytes);
      }
    }
    kernel.shutdown();
    f.hal.close();
  }
});

Deno.test("fsck --repair cut short by a power failure at any drain: running it again finishes, nothing lost", () => {
  const f = fixture();
  const flipped = f.ids[2]!, zeroed = f.ids[3]!;
  const zeroData = dataOf(f, zeroed);
  f.hal.region.bytes[slotOf(f, flipped) + 16] = 0; // a state byte: restored
  const off = slotOf(f, zeroed);
  f.hal.region.bytes.fill(0, off, off + 64); // a zeroed slot: its blocks recovered
  f.hal.region.bytes[20]! ^= 0xff; // the superblock: restored from its backup
  view(f).setUint32(f.g.bitmapOffset + 60, 1 << 31, true); // a leaked bit, its line damaged
  const damaged = f.hal.region.bytes.slice();
  f.hal.close();
  const whole = openSimFromBytes(damaged);
  const d0 = whole.region.stats().drains;
  fsck(whole, { repair: true });
  const drains = whole.region.stats().drains - d0;
  whole.close();
  assert.ok(drains >= 4, `${drains} drains`);
  for (const policy of ["strict", "random", "all"] as const) {
    for (let k = 0; k < drains; k++) {
      const hal = openSimFromBytes(damaged);
      hal.region.armCrash(hal.region.stats().drains + k, { before: true, policy, seed: k });
      assert.throws(() => fsck(hal, { repair: true }), /power failed/);
      const r = fsck(hal, { repair: true });
      const where = `${policy} crash at drain ${k + 1} of ${drains}`;
      assert.deepEqual(r.remaining, [], `${where}: ${JSON.stringify(r.remaining)}`);
      assert.ok(fsck(hal).clean, where);
      const kernel = Kernel.boot(hal);
      for (const [id, data] of f.contents) {
        if (id !== zeroed) assert.deepEqual(kernel.read(id, 0, data.length), data, where);
      }
      // The zeroed slot's blocks, and the leaked block (its line damaged too,
      // so nothing says it is garbage), are recovered objects.
      const recovered = kernel.list().filter((s) => s.id >> 64n === 0x6c6f73742b666f75n);
      assert.equal(recovered.length, 2, where);
      assert.ok(
        recovered.some((s) =>
          s.size >= zeroData.length &&
          kernel.read(s.id, 0, zeroData.length).every((b, i) => b === zeroData[i])
        ),
        where,
      );
      kernel.shutdown();
      hal.close();
    }
  }
});

Deno.test("fsck --repair restores a damaged superblock from its backup copy", () => {
  const f = fixture();
  f.hal.region.bytes[20]! ^= 0xff;
  assert.throws(() => Kernel.boot(f.hal), /backup copy .* intact/);
  const r = fsck(f.hal, { repair: true });
  assert.match(
    r.problems[0]!.message,
    /superblock checksum does not match.*backup copy .* is intact/,
  );
  assert.ok(r.repairs.includes("restored the superblock from its backup copy"));
  assert.ok(r.clean, JSON.stringify(r.remaining));
  const kernel = Kernel.boot(f.hal);
  assert.deepEqual(kernel.read(f.ids[1]!, 0, 10), f.contents.get(f.ids[1]!)!.slice(0, 10));
  kernel.shutdown();
  f.hal.region.bytes[2048 + 20]! ^= 0xff; // now the backup
  const b = fsck(f.hal, { repair: true });
  assert.match(b.problems[0]!.message, /backup superblock .* is damaged/);
  assert.ok(b.clean);
  f.hal.close();
});

// --- Two intact superblock copies that disagree (a wrong value sealed with its CRC).

/** Set superblock bytes at `at` of the copy at `base`, and seal that copy (CRC-32 at 252). */
function sealedSuperblock(f: Fixture, base: number, at: number, bytes: number[]): void {
  const b = f.hal.region.bytes;
  b.set(bytes, base + at);
  view(f).setUint32(base + 252, crc32(b.subarray(base, base + 252)), true);
}

const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

for (
  const c of [
    // (storeId at 32: it seeds every slot's check; dataBlocks at 104; bitmapCheckSize at 128)
    { name: "store ID", at: 32, value: (f: Fixture) => [f.hal.region.bytes[32]! ^ 1] },
    { name: "dataBlocks (halved)", at: 104, value: (f: Fixture) => le32(f.g.dataBlocks >>> 1) },
    { name: "dataBlocks (one less)", at: 104, value: (f: Fixture) => le32(f.g.dataBlocks - 1) },
    {
      name: "check-area size",
      at: 128,
      value: (f: Fixture) => le32(f.g.bitmapCheckSize + 4),
    },
  ]
) {
  for (const wrong of ["superblock", "backup copy"] as const) {
    Deno.test(`fsck --repair: a sealed wrong ${c.name} in the ${wrong} — the copy the table agrees with wins, nothing tombstoned`, () => {
      const f = fixture();
      const intact = f.hal.region.bytes.slice();
      sealedSuperblock(f, wrong === "superblock" ? 0 : 2048, c.at, c.value(f));
      assert.throws(() => Kernel.boot(f.hal), /superblock and its backup copy disagree/);
      const found = fsck(f.hal);
      assert.equal(found.clean, false);
      assert.equal(found.problems.length, 1, JSON.stringify(found.problems));
      assert.match(
        found.problems[0]!.message,
        new RegExp(
          `disagree \\(field \\w+\\); under the superblock .*: the ${
            wrong === "superblock" ? "backup copy" : "superblock"
          } is right`,
        ),
      );
      const r = fsck(f.hal, { repair: true });
      assert.ok(r.clean, JSON.stringify(r));
      assert.equal(r.repairs.length, 1, JSON.stringify(r.repairs));
      assert.match(
        r.repairs[0]!,
        wrong === "superblock"
          ? /^restored the superblock from its backup copy/
          : /^rewrote the backup superblock from the superblock/,
      );
      assert.deepEqual(f.hal.region.bytes, intact, "the image is as it was before the damage");
      assertRecovered(f, { ...r, repairs: ["-"] });
      f.hal.close();
    });
  }
}

Deno.test("fsck --repair: two intact superblock copies neither of which the table prefers — nothing chosen, nothing written", () => {
  const f = fixture();
  // Each copy a different, consistent, sealed check-area size: the table and
  // bitmap check under both, and neither is what format wrote.
  sealedSuperblock(f, 0, 128, le32(f.g.bitmapCheckSize + 4));
  sealedSuperblock(f, 2048, 128, le32(f.g.bitmapCheckSize + 8));
  const before = f.hal.region.bytes.slice();
  const r = fsck(f.hal, { repair: true });
  assert.equal(r.clean, false);
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0]!.repairable, false);
  assert.match(
    r.problems[0]!.message,
    /disagree \(field bitmapCheckSize\); .*: neither copy is chosen and nothing is repaired/,
  );
  assert.equal(r.problems[0]!.message.includes("\n"), false);
  assert.deepEqual(r.repairs, []);
  assert.deepEqual(f.hal.region.bytes, before, "nothing written");
  f.hal.close();
});

// --- Damaged tie edges: restored when the check proves the ID, else reported as dropped.

for (const [what, at] of [["parent", 0], ["dependent", 32]] as const) {
  for (const how of ["zeroed", "one bit flipped"] as const) {
    Deno.test(`fsck --repair restores a tie edge whose ${what} ID is ${how}`, () => {
      const f = fixture();
      const off = slotOf(f, f.parent, 3);
      const b = f.hal.region.bytes;
      if (how === "zeroed") b.fill(0, off + at, off + at + 16);
      else b[off + at + 5]! ^= 0x10;
      const found = fsck(f.hal);
      assert.match(
        found.problems.map((p) => p.message).join("\n"),
        new RegExp(
          `slot \\d+ fails its check .* checks again with its ${what} ID [0-9a-f]{32} restored to`,
        ),
      );
      const r = fsck(f.hal, { repair: true });
      assert.deepEqual(r.dropped, []);
      assertRecovered(f, r);
      const kernel = Kernel.boot(f.hal);
      assert.equal(kernel.stat(f.parent).dependents, 1, "the tie is kept");
      kernel.delete(f.parent); // and still takes its dependent along
      assert.equal(kernel.exists(f.child), false);
      kernel.shutdown();
      f.hal.close();
    });
  }
}

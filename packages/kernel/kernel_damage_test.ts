// Format 2 distrusts its metadata: damaged table slots quarantine their object,
// a damaged table, bitmap or superblock is refused at boot without a write,
// and a read-only kernel refuses every write and never touches the region.
import assert from "node:assert/strict";
import { ErrorCode, formatId, Kernel, type ObjID, Prot, TwzError } from "@twz/kernel";
import type { Hal, PersistentRegion } from "@twz/kernel/hal";
import { openSim, openSimFromBytes, type SimHal } from "@twz/hal-sim";
import { crc32 } from "./_crc32.ts";
import { decodeRoot, encodeRoot } from "./_root.ts";
import {
  decodeSuperblock,
  FORMAT_VERSION,
  type Geometry,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
} from "./_layout.ts";
import {
  findSlotOffset,
  lineCheckOffset,
  sealSlot,
  SLOT_CHECK_OFFSET,
  slotProblem,
} from "./_check.ts";

const MiB = 1 << 20;

interface Fixture {
  /** The image after a clean shutdown. */
  image: Uint8Array;
  g: Geometry;
  /** Object IDs and their contents. */
  objects: Map<ObjID, Uint8Array>;
  /** The root object, when made. */
  root?: ObjID | undefined;
}

function pattern(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 131 + i * 7) & 0xff;
  return b;
}

/** Boot a fresh 8 MiB image, make objects with known contents, shut down cleanly. */
function fixture(withRoot = false): Fixture {
  const hal = openSim({ size: 8 * MiB });
  const kernel = Kernel.boot(hal);
  const objects = new Map<ObjID, Uint8Array>();
  const root = withRoot ? kernel.rootObject() : undefined;
  [3000, 5000, 70_000, 1024, 200_000].forEach((size, n) => {
    const id = kernel.create({ size });
    const data = pattern(n + 1, size);
    kernel.write(id, 0, data);
    objects.set(id, data);
  });
  kernel.shutdown();
  const image = hal.region.bytes.slice();
  hal.close();
  return { image, g: decodeSuperblock(image), objects, root };
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The table slot (index) of object `id` in `image`. */
const slotOf = (f: Fixture, image: Uint8Array, id: ObjID): number =>
  (findSlotOffset(image, f.g, id) - f.g.tableOffset) / SLOT;

function rejectsWith(fn: () => unknown, code: ErrorCode, pattern?: RegExp): TwzError {
  let caught: TwzError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TwzError, `expected TwzError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    caught = e;
    return true;
  });
  return caught!;
}

/** Every object but `except` reads back its contents and takes a write. */
function intactObjectsUsable(kernel: Kernel, f: Fixture, except?: ObjID): void {
  for (const [id, data] of f.objects) {
    if (id === except) continue;
    assert.deepEqual(kernel.read(id, 0, data.length), data, `${formatId(id)} unchanged`);
  }
  for (const [id, data] of f.objects) {
    if (id === except) continue;
    const one = new Uint8Array([data[0]! ^ 0xff]);
    kernel.write(id, 0, one);
    assert.deepEqual(kernel.read(id, 0, 1), one);
    kernel.write(id, 0, data.subarray(0, 1));
  }
  // And the system goes on: a new object, grown and deleted.
  const fresh = kernel.create({ size: 2048 });
  kernel.grow(fresh, 9000);
  kernel.delete(fresh);
}

type Corruption = { name: string; apply: (v: DataView, off: number, g: Geometry) => void };

const field = (name: string, at: number, width: 1 | 2 | 4, value: number): Corruption => ({
  name,
  apply: (v, off) => {
    if (width === 1) v.setUint8(off + at, value);
    else if (width === 2) v.setUint16(off + at, value, true);
    else v.setUint32(off + at, value, true);
  },
});

const corruptions: Corruption[] = [
  field("state -> empty", 16, 1, 0),
  field("state -> tombstone", 16, 1, 2),
  field("state -> garbage", 16, 1, 0x7f),
  field("start beyond the data area", 20, 4, 0xfffff000),
  field("start moved onto another object", 20, 4, 0),
  field("blocks larger", 24, 4, 4000),
  field("blocks zero", 24, 4, 0),
  field("size 9000000", 28, 4, 9_000_000),
  field("size zero", 28, 4, 0),
  field("tie count huge", 48, 4, 0xffffffff),
  field("protections beyond rwx", 18, 2, 0xffff),
  field("flags", 17, 1, 0x80),
  {
    name: "checksum itself",
    apply: (v, off) => v.setUint32(off + SLOT_CHECK_OFFSET, v.getUint32(off + 52, true) ^ 1, true),
  },
  { name: "whole slot zeroed", apply: (v, off) => new Uint8Array(v.buffer, off, SLOT).fill(0) },
];

/** The same field damage, with the check recomputed (an adversary, or a buggy repair). */
const resealed: Corruption[] = [
  field("start beyond the data area (resealed)", 20, 4, 0xfffff000),
  field("size 9000000 (resealed)", 28, 4, 9_000_000),
  field("blocks larger (resealed)", 24, 4, 4000),
  field("tie count huge (resealed)", 48, 4, 0xffffffff),
  field("protections beyond rwx (resealed)", 18, 2, 0xffff),
].map((c) => ({
  name: c.name,
  apply: (v: DataView, off: number, g: Geometry) => {
    c.apply(v, off, g);
    const slot = new Uint8Array(v.buffer, off, SLOT);
    sealSlot(slot, (off - g.tableOffset) / SLOT, g.seed);
  },
}));

for (const c of [...corruptions, ...resealed]) {
  Deno.test(`damaged table slot (${c.name}) quarantines its object only`, () => {
    const f = fixture();
    const victim = [...f.objects.keys()][2]!; // the 70000-byte one
    const image = f.image.slice();
    const slot = slotOf(f, image, victim);
    c.apply(viewOf(image), f.g.tableOffset + slot * SLOT, f.g);
    assert.ok(slotProblem(viewOf(image), f.g, slot), "the slot is seen as damaged");
    const hal = openSimFromBytes(image);
    try {
      const t0 = performance.now();
      const kernel = Kernel.boot(hal);
      // Named by ID and slot (a slot whose ID bytes were lost too is named as
      // the damaged slot on the object's probe chain).
      const named = new RegExp(
        `^Object ${formatId(victim)} (?=.*table slot ${slot}\\b)(?=.*damaged).*run \`twz fsck\`$`,
      );
      rejectsWith(() => kernel.stat(victim), ErrorCode.ObjectDamaged, named);
      rejectsWith(() => kernel.map(victim, Prot.Read), ErrorCode.ObjectDamaged, named);
      rejectsWith(() => kernel.read(victim, 0, 16), ErrorCode.ObjectDamaged, named);
      rejectsWith(() => kernel.write(victim, 0, new Uint8Array(4)), ErrorCode.ObjectDamaged, named);
      rejectsWith(() => kernel.grow(victim, 100_000), ErrorCode.ObjectDamaged, named);
      rejectsWith(() => kernel.delete(victim), ErrorCode.ObjectDamaged, named);
      // list() goes on without it; damaged() names the slot.
      const listed = kernel.list().map((s) => s.id);
      assert.equal(listed.includes(victim), false);
      assert.equal(listed.length, f.objects.size - 1);
      const damaged = kernel.damaged();
      assert.deepEqual(damaged.map((d) => d.slot), [slot]);
      assert.ok(performance.now() - t0 < 5000, "quarantined within 5 s");
      // The damaged slot itself is never rewritten.
      const before = image.slice(
        f.g.tableOffset + slot * SLOT,
        f.g.tableOffset + (slot + 1) * SLOT,
      );
      intactObjectsUsable(kernel, f, victim);
      assert.deepEqual(
        hal.region.bytes.slice(f.g.tableOffset + slot * SLOT, f.g.tableOffset + (slot + 1) * SLOT),
        before,
      );
      // The victim's own data blocks were not touched by the activity either.
      const ov = viewOf(f.image), o = f.g.tableOffset + slot * SLOT;
      const base = f.g.dataOffset + ov.getUint32(o + 20, true) * 1024;
      const size = ov.getUint32(o + 28, true);
      assert.deepEqual(hal.region.bytes.slice(base, base + size), f.objects.get(victim));
      kernel.shutdown();
    } finally {
      hal.close();
    }
  });
}

Deno.test("a damaged root object's slot is refused at boot, nothing written", () => {
  const f = fixture(true);
  for (const c of [corruptions[0]!, corruptions[7]!, corruptions[12]!]) {
    const image = f.image.slice();
    const slot = slotOf(f, image, f.root!);
    c.apply(viewOf(image), f.g.tableOffset + slot * SLOT, f.g);
    const hal = openSimFromBytes(image);
    try {
      rejectsWith(
        () => Kernel.boot(hal),
        ErrorCode.ImageCorrupt,
        new RegExp(`root object ${formatId(f.root!)} is damaged.*twz fsck`),
      );
      assert.deepEqual(hal.region.bytes, image, `${c.name}: region unchanged`);
    } finally {
      hal.close();
    }
  }
});

function refusedAtBoot(
  image: Uint8Array,
  pattern: RegExp,
  code: ErrorCode = ErrorCode.ImageCorrupt,
) {
  const hal = openSimFromBytes(image);
  const flushes = countWrites(hal);
  try {
    const t0 = performance.now();
    const e = rejectsWith(() => Kernel.boot(flushes.hal), code, pattern);
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(flushes.count(), 0, "nothing flushed or drained");
    assert.deepEqual(hal.region.bytes, image, "region unchanged");
    assert.equal(e.message.includes("\n"), false, "one line");
  } finally {
    hal.close();
  }
}

for (const withRoot of [false, true]) {
  Deno.test(`a zeroed table is refused at boot (${withRoot ? "with" : "without"} a root object)`, () => {
    const f = fixture(withRoot);
    const image = f.image.slice();
    image.fill(0, f.g.tableOffset, f.g.tableOffset + f.g.tableSlots * SLOT);
    refusedAtBoot(image, /object table is damaged|root object .* is damaged/);
  });

  Deno.test(`a zeroed bitmap is refused at boot (${withRoot ? "with" : "without"} a root object)`, () => {
    const f = fixture(withRoot);
    const words = Math.ceil(f.g.dataBlocks / 32) * 4;
    const image = f.image.slice();
    image.fill(0, f.g.bitmapOffset, f.g.bitmapOffset + words);
    refusedAtBoot(image, /block bitmap is damaged/);
    // Bitmap and checks zeroed together.
    image.fill(0, f.g.bitmapCheckOffset, f.g.bitmapCheckOffset + f.g.bitmapCheckSize);
    refusedAtBoot(image, /block bitmap is damaged/);
  });
}

Deno.test("a damaged bitmap line met later refuses that allocation and never allocates over it", () => {
  const f = fixture();
  const image = f.image.slice();
  // Line 6 (blocks 3072-3583) is free and far from the cursor; damage its check.
  const at = lineCheckOffset(f.g, 6);
  viewOf(image).setUint32(at, viewOf(image).getUint32(at, true) ^ 0x10, true);
  const hal = openSimFromBytes(image);
  try {
    const kernel = Kernel.boot(hal);
    const bitmapBefore = hal.region.bytes.slice(f.g.bitmapOffset, f.g.dataOffset);
    rejectsWith(
      () => kernel.create({ size: 6 * MiB }),
      ErrorCode.ImageCorrupt,
      /block bitmap is damaged \(line 6, blocks 3072-3583/,
    );
    assert.deepEqual(hal.region.bytes.slice(f.g.bitmapOffset, f.g.dataOffset), bitmapBefore);
    // Small allocations near the cursor go on.
    intactObjectsUsable(kernel, f);
  } finally {
    hal.close();
  }
});

Deno.test("a format-1 image is refused, naming twz fsck --upgrade", () => {
  const f = fixture();
  const image = f.image.slice();
  const v = viewOf(image);
  v.setUint32(8, 1, true);
  v.setUint32(12, 128, true);
  v.setUint32(120, crc32(image.subarray(0, 120)), true);
  assert.equal(FORMAT_VERSION, 2);
  refusedAtBoot(
    image,
    /format version 1; run `twz fsck --upgrade --image PATH` to upgrade it \(crash-safe\)/,
    ErrorCode.ImageUnsupported,
  );
});

Deno.test("a damaged superblock with an intact backup is refused, naming fsck --repair", () => {
  const f = fixture();
  for (const at of [16, 100, 200, 0]) {
    const image = f.image.slice();
    image[at]! ^= 0x40;
    refusedAtBoot(image, /backup copy \(at offset 2048\) is intact: run `twz fsck --repair/);
  }
  // Magic wiped (not a cut-short format: objects were committed).
  const wiped = f.image.slice();
  wiped.fill(0, 0, 8);
  refusedAtBoot(wiped, /backup copy .* is intact/);
  // Both copies damaged: no such hint.
  const both = f.image.slice();
  both[100]! ^= 1;
  both[SUPERBLOCK_BACKUP_OFFSET + 100]! ^= 1;
  refusedAtBoot(both, /superblock checksum does not match/);
  const hal = openSimFromBytes(both);
  try {
    const e = rejectsWith(() => Kernel.boot(hal), ErrorCode.ImageCorrupt);
    assert.doesNotMatch(e.message, /backup/);
  } finally {
    hal.close();
  }
});

/** Change superblock bytes at `at` in the copy at `base` and seal them (CRC recomputed). */
function sealedSuperblockChange(image: Uint8Array, base: number, at: number, bytes: number[]) {
  image.set(bytes, base + at);
  viewOf(image).setUint32(base + 252, crc32(image.subarray(base, base + 252)), true);
}

Deno.test("a sealed superblock that disagrees with its intact backup is refused, naming the field", () => {
  const f = fixture();
  // (storeId at 32, dataBlocks at 104, bitmapCheckSize at 128, created at 112)
  const dataBlocks = viewOf(f.image).getUint32(104, true);
  const checkSize = viewOf(f.image).getUint32(128, true);
  const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
  for (
    const [name, at, bytes] of [
      ["storeId", 32, [f.image[32]! ^ 1]],
      ["dataBlocks", 104, u32(dataBlocks - 1)],
      ["bitmapCheckSize", 128, u32(checkSize + 4)],
      ["created", 112, [f.image[112]! ^ 1]],
    ] as const
  ) {
    const image = f.image.slice();
    sealedSuperblockChange(image, 0, at, [...bytes]);
    // The primary decodes on its own (a consistent, sealed superblock) ...
    decodeSuperblock(image);
    // ... but boot compares it with the backup and refuses, writing nothing.
    const hal = openSimFromBytes(image);
    try {
      const e = rejectsWith(
        () => Kernel.boot(hal),
        ErrorCode.ImageCorrupt,
        new RegExp(
          `^the superblock and its backup copy disagree \\(field ${name}\\): run \`twz fsck --repair`,
        ),
      );
      assert.equal(e.message.includes("\n"), false, "one line");
      assert.deepEqual(hal.region.bytes, image, "nothing written");
    } finally {
      hal.close();
    }
    // The same wrong value in the backup instead: refused all the same.
    const other = f.image.slice();
    sealedSuperblockChange(other, SUPERBLOCK_BACKUP_OFFSET, at, [...bytes]);
    refusedAtBoot(other, new RegExp(`disagree \\(field ${name}\\)`));
  }
  // A backup that fails its own check is damaged: boot uses the primary.
  const image = f.image.slice();
  image[SUPERBLOCK_BACKUP_OFFSET + 104]! ^= 1;
  const hal = openSimFromBytes(image);
  try {
    const kernel = Kernel.boot(hal);
    intactObjectsUsable(kernel, f);
    kernel.shutdown();
  } finally {
    hal.close();
  }
});

Deno.test("a format cut short is formatted again when asked; a wiped used image never is", () => {
  const hal = openSim({ size: 4 * MiB });
  Kernel.boot(hal).shutdown(); // formatted, nothing committed
  const fresh = hal.region.bytes.slice();
  hal.close();
  fresh.fill(0, 0, 8); // the magic never became durable
  const again = openSimFromBytes(fresh);
  try {
    const kernel = Kernel.boot(again, { formatBlank: true });
    assert.equal(kernel.report.formatted, true);
  } finally {
    again.close();
  }
  const f = fixture();
  const wiped = f.image.slice();
  wiped.fill(0, 0, 4096);
  const used = openSimFromBytes(wiped);
  try {
    rejectsWith(() => Kernel.boot(used, { formatBlank: true }), ErrorCode.ImageCorrupt);
    assert.deepEqual(used.region.bytes, wiped);
  } finally {
    used.close();
  }
});

/** A HAL whose region counts flushes, drains and persists. */
function countWrites(hal: SimHal, readOnly?: boolean): { hal: Hal; count: () => number } {
  let n = 0;
  const r = hal.region;
  const region: PersistentRegion = {
    size: r.size,
    granularity: r.granularity,
    get bytes() {
      return r.bytes;
    },
    flush: (o, l) => {
      n++;
      r.flush(o, l);
    },
    drain: () => {
      n++;
      r.drain();
    },
    persist: (o, l) => {
      n++;
      r.persist(o, l);
    },
    share: () => r.share(),
  };
  const wrapped = { ...hal, region, ...(readOnly ? { readOnly: true } : {}) } as Hal;
  return { hal: wrapped, count: () => n };
}

/** An image whose log holds a committed, unapplied create. */
function imageWithCommittedLog(): { image: Uint8Array; before: ObjID; objects: number } {
  const hal = openSim({ size: 8 * MiB });
  const kernel = Kernel.boot(hal);
  const before = kernel.create({ size: 1024 });
  kernel.write(before, 0, pattern(9, 1024));
  const commitDrain = hal.region.stats().drains + 2;
  hal.region.onDrain = (n) => {
    if (n === commitDrain) throw new Error("power cut");
  };
  assert.throws(() => kernel.create({ size: 1024 }), /power cut/);
  hal.region.onDrain = undefined;
  hal.power!.powerFail({ policy: "strict" });
  const image = hal.region.bytes.slice();
  hal.close();
  return { image, before, objects: 2 };
}

for (const how of ["option", "hal"] as const) {
  Deno.test(`read-only boot (${how}) replays a committed log in memory only and refuses writes`, () => {
    const { image, before, objects } = imageWithCommittedLog();
    const sim = openSimFromBytes(image);
    const counted = countWrites(sim, how === "hal");
    try {
      const kernel = Kernel.boot(counted.hal, how === "option" ? { readOnly: true } : {});
      assert.equal(kernel.readOnly, true);
      assert.equal(kernel.report.readOnly, true);
      assert.ok(kernel.report.replayed > 0);
      assert.equal(kernel.report.overlay, true);
      assert.equal(kernel.report.objects, objects);
      assert.equal(kernel.list().length, objects);
      assert.deepEqual(kernel.read(before, 0, 1024), pattern(9, 1024));
      const ro = /^the image is open read-only: cannot [a-z ]+/;
      rejectsWith(() => kernel.create({ size: 100 }), ErrorCode.ReadOnly, ro);
      rejectsWith(() => kernel.delete(before), ErrorCode.ReadOnly, ro);
      rejectsWith(() => kernel.grow(before, 5000), ErrorCode.ReadOnly, ro);
      rejectsWith(() => kernel.write(before, 0, new Uint8Array(1)), ErrorCode.ReadOnly, ro);
      rejectsWith(() => kernel.map(before, Prot.ReadWrite), ErrorCode.ReadOnly, ro);
      rejectsWith(() => kernel.rootObject(), ErrorCode.ReadOnly, ro);
      const m = kernel.map(before, Prot.Read);
      m.persist(0, 16); // a no-op on a read-only kernel
      // Volatile objects never touch the image: allowed.
      const v = kernel.create({ size: 64, lifetime: "volatile" });
      kernel.write(v, 0, new Uint8Array([1, 2, 3]));
      kernel.shutdown();
      assert.equal(counted.count(), 0, "nothing flushed, drained or persisted");
      // The media still holds the committed log: a read-write boot replays it.
    } finally {
      sim.close();
    }
    const rw = openSimFromBytes(image);
    try {
      const kernel = Kernel.boot(rw);
      assert.ok(kernel.report.replayed > 0, "the image still holds the log");
      assert.equal(kernel.report.overlay, false);
    } finally {
      rw.close();
    }
  });
}

Deno.test("read-only boot of a clean image reports no overlay and reads everything", () => {
  const f = fixture(true);
  const hal = openSimFromBytes(f.image);
  const counted = countWrites(hal);
  try {
    const kernel = Kernel.boot(counted.hal, { readOnly: true });
    assert.equal(kernel.report.overlay, false);
    assert.equal(kernel.rootObject(), f.root);
    for (const [id, data] of f.objects) assert.deepEqual(kernel.read(id, 0, data.length), data);
    kernel.shutdown();
    assert.equal(counted.count(), 0);
    assert.deepEqual(hal.region.bytes, f.image);
  } finally {
    hal.close();
  }
});

Deno.test("a damaged slot on another object's probe chain does not hide that object", () => {
  const hal = openSim({ size: 8 * MiB });
  const kernel = Kernel.boot(hal);
  const ids: ObjID[] = [];
  for (let n = 0; n < 400; n++) {
    const id = kernel.create({ size: 1024 });
    kernel.write(id, 0, pattern(n, 1024));
    ids.push(id);
  }
  kernel.shutdown();
  const image = hal.region.bytes.slice();
  hal.close();
  const g = decodeSuperblock(image);
  const v = viewOf(image);
  const mask = g.tableSlots - 1;
  // Find object slot i whose next slot holds an object that probes past i.
  let pair: [number, number] | undefined;
  for (let i = 0; i < g.tableSlots && !pair; i++) {
    const j = (i + 1) & mask, oi = g.tableOffset + i * SLOT, oj = g.tableOffset + j * SLOT;
    if (image[oi + 16] !== 1 || image[oj + 16] !== 1) continue;
    const home = v.getUint32(oj, true) & mask;
    if (home !== j) pair = [i, j];
  }
  assert.ok(pair, "400 objects in 4096 slots collide somewhere");
  const [i, j] = pair;
  const idAt = (s: number) => {
    const o = g.tableOffset + s * SLOT;
    return (v.getBigUint64(o + 8, true) << 64n) | v.getBigUint64(o, true);
  };
  const [victim, neighbour] = [idAt(i), idAt(j)];
  const n = ids.indexOf(neighbour);
  for (const how of ["check flipped", "zeroed"]) {
    const bad = image.slice();
    const o = g.tableOffset + i * SLOT;
    if (how === "zeroed") bad.fill(0, o, o + SLOT);
    else bad[o + SLOT_CHECK_OFFSET]! ^= 1;
    const sim = openSimFromBytes(bad);
    try {
      const k = Kernel.boot(sim);
      assert.deepEqual(k.read(neighbour, 0, 1024), pattern(n, 1024), how);
      k.write(neighbour, 0, new Uint8Array([7]));
      rejectsWith(
        () => k.stat(victim),
        ErrorCode.ObjectDamaged,
        new RegExp(`${formatId(victim)}.*table slot ${i}\\b`),
      );
      // New objects never take the damaged slot.
      for (let m = 0; m < 50; m++) k.create({ size: 1024 });
      assert.deepEqual(sim.region.bytes.slice(o, o + SLOT), bad.slice(o, o + SLOT));
      assert.equal(k.list().length, 400 - 1 + 50);
    } finally {
      sim.close();
    }
  }
});

Deno.test("damaged ties: a damaged dependent or edge is named, the parent stays readable", () => {
  const hal = openSim({ size: 8 * MiB });
  const kernel = Kernel.boot(hal);
  const parent = kernel.create({ size: 4096 });
  kernel.write(parent, 0, pattern(1, 4096));
  const child = kernel.create({ size: 2048, ties: [parent] });
  const other = kernel.create({ size: 2048 });
  kernel.write(other, 0, pattern(2, 2048));
  kernel.shutdown();
  const image = hal.region.bytes.slice();
  hal.close();
  const f: Fixture = { image, g: decodeSuperblock(image), objects: new Map() };
  // 1. The dependent's slot is damaged: deleting the parent is refused, naming it.
  {
    const bad = image.slice();
    const s = slotOf(f, bad, child);
    bad[f.g.tableOffset + s * SLOT + 28]! ^= 0x55;
    const sim = openSimFromBytes(bad);
    try {
      const k = Kernel.boot(sim);
      assert.equal(k.stat(parent).dependents, 1);
      rejectsWith(() => k.delete(parent), ErrorCode.ObjectDamaged, new RegExp(formatId(child)));
      assert.deepEqual(k.read(parent, 0, 4096), pattern(1, 4096));
      assert.equal(k.exists(parent), true);
      assert.equal(k.list().length, 2);
      k.delete(other);
    } finally {
      sim.close();
    }
  }
  // 2. The tie edge's slot is damaged: the parent is named, list() goes on.
  {
    const bad = image.slice();
    const v = viewOf(bad);
    let edge = -1;
    for (let i = 0; i < f.g.tableSlots; i++) {
      if (bad[f.g.tableOffset + i * SLOT + 16] === 3) edge = i;
    }
    assert.ok(edge >= 0);
    const o = f.g.tableOffset + edge * SLOT;
    v.setUint32(o + 52, v.getUint32(o + 52, true) ^ 0x8000, true);
    const sim = openSimFromBytes(bad);
    try {
      const k = Kernel.boot(sim);
      rejectsWith(
        () => k.delete(parent),
        ErrorCode.ObjectDamaged,
        new RegExp(`${formatId(parent)} is damaged \\(tie edge 0: table slot ${edge}`),
      );
      assert.deepEqual(k.read(parent, 0, 4096), pattern(1, 4096));
      assert.deepEqual(k.list().map((s) => s.id).sort(), [parent, child, other].sort());
      assert.deepEqual(k.damaged().map((d) => d.slot), [edge]);
    } finally {
      sim.close();
    }
  }
});

Deno.test("Kernel.rootObject() refuses a root record naming a missing object, never makes an empty one", () => {
  const f = fixture(true);
  assert.ok(f.root !== undefined);
  const image = f.image.slice();
  const root = decodeRoot(image, f.g.rootOffset);
  assert.ok(root);
  // A sealed record whose root object ID names nothing (as a damaged but
  // re-checksummed record would): the kernel must not replace it.
  image.set(encodeRoot({ ...root, rootObject: root.rootObject ^ 1n }), f.g.rootOffset);
  const before = image.slice();
  const hal = openSimFromBytes(image);
  try {
    const kernel = Kernel.boot(hal);
    rejectsWith(
      () => kernel.rootObject(),
      ErrorCode.ImageCorrupt,
      /names root object .* does not exist/,
    );
    assert.equal(kernel.rootObjectId(), 0n);
    kernel.halt();
    assert.deepEqual(hal.region.bytes, before, "nothing was written");
  } finally {
    hal.close();
  }
});

Deno.test("deleting the root object forgets it in the same commit; the next call makes a new one", () => {
  const hal = openSim({ size: 8 * MiB });
  try {
    const kernel = Kernel.boot(hal);
    const first = kernel.rootObject();
    kernel.delete(first);
    const second = kernel.rootObject();
    assert.notEqual(second, first);
    assert.ok(kernel.exists(second));
  } finally {
    hal.close();
  }
});

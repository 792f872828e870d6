// The damage campaign's harness (issue 9): a fixture image, a table of
// corruptions described as data, and `runCase`, which damages a copy of the
// fixture and records what boot, the running system, `fsck`, `fsck --deep`
// and `fsck --repair` make of it, judged against what the issue requires.
//
// Field offsets are never written here for the kernel's records: they come
// from the image's own superblock (decoded by the kernel) and from the
// kernel's encoders (see _damage_layout.ts). libtwz structures are located
// through the objects that hold them (their extents, as the kernel maps them).
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  fsck,
  type FsckReport,
  Kernel,
  META_OFFSET,
  MetaField,
  type ObjID,
  TwzError,
} from "@twz/kernel";
import type { Hal, PersistentRegion } from "@twz/kernel/hal";
import { countingClock, openSim, openSimFromBytes, seededEntropy } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { BTreeMap } from "@twz/libtwz/btree";
import { checkObjects, type CheckReport } from "@twz/libtwz/check";
import {
  BLOCK,
  crc32,
  decodeRoot,
  decodeSuperblock,
  findSlotOffset,
  FORMAT_VERSION,
  type Geometry,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
  SUPERBLOCK_BYTES,
} from "@twz/kernel/format";
import { fsckImageFile, type ImageCheckReport, restoreUndoFile } from "@twz/crashtest/deep-check";
import {
  type Field,
  type RecordLayout,
  rootLayout,
  slotLayout,
  superblockLayout,
} from "./_damage_layout.ts";

/** Size of the fixture image (small: every case copies it a few times). */
export const IMAGE_SIZE = 1 << 20;
/** Keys in the fixture's kv store. */
export const KV_KEYS = 60;
/** No case may take longer than this (boot, probes, fsck, deep check, repair). */
export const CASE_TIMEOUT_MS = 5000;

// ---------------------------------------------------------------------------
// The fixture

/** One object of the fixture: where its bytes are, as the kernel mapped them. */
export interface FixtureObject {
  id: ObjID;
  /** A name for messages ("/kv", "raw:P", "kernel root object"). */
  label: string;
  /** Offset of its bytes in the region. */
  base: number;
  /** Its size in bytes. */
  size: number;
  /** Its reserved bytes (whole blocks). */
  capacity: number;
}

/** The fixture image and what a case needs to find things in it. */
export interface Fixture {
  bytes: Uint8Array;
  objects: FixtureObject[];
  /** Names bound in the fixture, and the IDs they resolve to. */
  names: Array<[string, ObjID]>;
  /** The kv store's keys and values. */
  kv: Array<[string, string]>;
  ids: {
    /** A raw kernel object with one dependent: the table's victim. */
    p: ObjID;
    /** P's dependent (tied to P). */
    c: ObjID;
    /** Another raw kernel object: P's neighbour for swaps and copies. */
    n: ObjID;
    kv: ObjID;
    rootObject: ObjID;
    rootDir: ObjID;
    dataDir: ObjID;
    txlog: ObjID;
  };
  /** Offset of the kv store's B-tree header in its object. */
  btreeHeader: number;
  /** Offset of the kv store's heap header in its object. */
  heapHeader: number;
}

const pattern = (n: number, seed: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17 + (i >> 8)) & 0xff || 1;
  return b;
};

/** Build the fixture: objects, names, the kv store, a heap, a tie; cleanly shut down. */
export function buildFixture(): Fixture {
  const hal = openSim({ size: IMAGE_SIZE }, {
    entropy: seededEntropy(909),
    clock: countingClock(),
  });
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  // A transaction log smaller than libtwz's default, so the image can be small.
  twz.create({ name: "/.txlog", size: 128 << 10 });
  const a = twz.create({ name: "/data/a", size: 8192 });
  a.bytes.set(pattern(4096, 1), BASE_OFFSET);
  a.persist(BASE_OFFSET, 4096);
  const b = twz.create({ name: "/data/b", size: 3000 });
  b.bytes.set(pattern(2000, 2), BASE_OFFSET);
  b.persist(BASE_OFFSET, 2000);
  // The kv store, made as the shell makes it: object, map, then the name.
  const kvObj = twz.create({ size: 128 << 10 });
  const map = BTreeMap.create(twz, kvObj, codec.string, codec.string);
  const kv: Array<[string, string]> = [];
  for (let i = 0; i < KV_KEYS; i++) {
    const k = `key-${String(i).padStart(3, "0")}`, v = `value ${i} ${"x".repeat(i % 13)}`;
    map.set(k, v);
    kv.push([k, v]);
  }
  for (let i = 0; i < KV_KEYS; i += 9) map.delete(kv[i]![0]); // free blocks on the free lists
  const kvLive = kv.filter((_, i) => i % 9 !== 0);
  twz.naming.bind("/kv", kvObj.id);
  // Raw kernel objects: P with a dependent C (a tie), and a neighbour N.
  const p = kernel.create({ size: 5000 });
  kernel.write(p, 0, pattern(5000, 3));
  const c = kernel.create({ size: 1500, ties: [p] });
  kernel.write(c, 0, pattern(1500, 4));
  const n = kernel.create({ size: 7000 });
  kernel.write(n, 0, pattern(7000, 5));
  kernel.delete(kernel.create({ size: 2048 })); // a tombstone
  twz.naming.mkdir("/raw");
  twz.naming.bind("/raw/p", p);
  twz.naming.bind("/raw/n", n);
  const names: Array<[string, ObjID]> = [];
  for (
    const path of ["/data", "/data/a", "/data/b", "/kv", "/raw", "/raw/p", "/raw/n", "/.txlog"]
  ) {
    names.push([path, twz.naming.resolve(path)]);
  }
  if (kernel.stat(p).dependents !== 1) throw new Error("the fixture's tie C -> P is missing");
  const rootObject = kernel.rootObjectId();
  const rootDir = twz.naming.rootId;
  const hdr = kvObj.view.getUint32(BASE_OFFSET, true);
  const heapHeader = kvObj.view.getUint32(hdr + 28, true);
  const labels = new Map<ObjID, string>([
    [p, "raw:P"],
    [c, "raw:C (tied to P)"],
    [n, "raw:N"],
    [rootObject, "kernel root object"],
    [rootDir, "naming root directory"],
  ]);
  for (const [path, id] of names) if (!labels.has(id)) labels.set(id, path);
  const objects: FixtureObject[] = kernel.list().map((s) => {
    const m = kernel.map(s.id);
    return {
      id: s.id,
      label: labels.get(s.id) ?? formatId(s.id),
      base: m.extent.base,
      size: s.size,
      capacity: s.capacity,
    };
  });
  kernel.shutdown();
  const bytes = hal.region.bytes.slice();
  hal.close();
  return {
    bytes,
    objects,
    names,
    kv: kvLive,
    ids: {
      p,
      c,
      n,
      kv: kvObj.id,
      rootObject,
      rootDir,
      dataDir: names[0]![1],
      txlog: names[7]![1],
    },
    btreeHeader: hdr,
    heapHeader,
  };
}

/** Write the fixture to `dir` (for the case runner's child processes). */
export function saveFixture(fx: Fixture, dir: string): void {
  Deno.writeFileSync(`${dir}/fixture.img`, fx.bytes);
  Deno.writeTextFileSync(
    `${dir}/fixture.json`,
    JSON.stringify(
      { ...fx, bytes: undefined },
      (_k, v) => typeof v === "bigint" ? `0x${v.toString(16)}` : v,
    ),
  );
}

/** Read a fixture written by {@linkcode saveFixture}. */
export function loadFixture(dir: string): Fixture {
  const meta = JSON.parse(
    Deno.readTextFileSync(`${dir}/fixture.json`),
    (_k, v) => typeof v === "string" && /^0x[0-9a-f]+$/.test(v) ? BigInt(v) : v,
  );
  return { ...meta, bytes: Deno.readFileSync(`${dir}/fixture.img`) };
}

// ---------------------------------------------------------------------------
// Corruptions

/** The ways one field is damaged. */
export const KINDS = [
  "zero",
  "ones",
  "flip-low",
  "flip-high",
  "plus-one",
  "minus-one",
  "huge",
  "copy-neighbour",
  "swap-neighbour",
] as const;
export type Kind = typeof KINDS[number];
/** Fewer ways, for fields whose every damage meets the same check. */
const SOME: readonly Kind[] = ["zero", "ones", "flip-low", "plus-one", "huge", "swap-neighbour"];
/** A record's bytes under a checksum that does not match: any change is the same to boot. */
const RAW: readonly Kind[] = ["zero", "ones", "flip-low"];

/** Where a case's damage is. */
export type Area =
  | "superblock"
  | "superblock+crc"
  | "backup-superblock"
  | "table"
  | "bitmap"
  | "root"
  | "root+crc"
  | "naming"
  | "btree"
  | "heap";

/** One corruption and what the issue requires of it. */
export interface Case {
  name: string;
  area: Area;
  /** Damage the image bytes in place. */
  apply: (image: Uint8Array) => void;
  /** Objects whose metadata or structure is damaged: they may be quarantined. */
  damaged: ObjID[];
  /** The damaged object's ID field itself is hit: ObjectDamaged need not name it. */
  anonymous?: boolean;
  /**
   * How the damage must show:
   * - `kernel`: boot refuses (exit 3, untouched), or boots with every intact
   *   object intact and the damage noticed (the damaged object quarantined,
   *   an operation refused with ImageCorrupt/ObjectDamaged) — or, for the
   *   superblock and root record, nothing damaged at all (a backup used);
   *   plain `fsck` reports it.
   * - `deep`: boot succeeds (the kernel's metadata is intact); libtwz answers
   *   right or throws ObjectDamaged naming the object; `fsck --deep` reports it.
   * - `none`: a field nothing depends on; boot and everything else works.
   */
  notice: "kernel" | "deep" | "none";
  /** Extra error codes a damaged libtwz structure may answer with (besides ObjectDamaged). */
  accept?: number[] | undefined;
  /** May boot succeed with nothing quarantined (superblock, root record)? */
  intactAllowed?: boolean;
  /**
   * Damage no checksum covers (inside a B-tree node or a heap block): the
   * running system may answer wrong (recorded, not a failure); fsck --deep
   * must report it and repair must destroy nothing, as for every case.
   */
  lenient?: boolean;
}

/** Read `width` bytes at `at` as a little-endian bigint. */
function getLE(b: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]!);
  return v;
}

function setLE(b: Uint8Array, at: number, width: number, v: bigint): void {
  for (let i = 0; i < width; i++) {
    b[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/**
 * Damage `width` bytes at `at` of `b` the way `kind` says; `other` is the
 * neighbour's field (same width) for copy and swap.
 */
export function damageField(
  b: Uint8Array,
  at: number,
  width: number,
  kind: Kind,
  other?: number,
): void {
  const w = Math.min(width, 8); // arithmetic on the low 8 bytes of a wide field
  const bits = BigInt(w * 8);
  const mask = (1n << bits) - 1n;
  switch (kind) {
    case "zero":
      b.fill(0, at, at + width);
      break;
    case "ones":
      b.fill(0xff, at, at + width);
      break;
    case "flip-low":
      b[at]! ^= 1;
      break;
    case "flip-high":
      b[at + width - 1]! ^= 0x80;
      break;
    case "plus-one":
      setLE(b, at, w, (getLE(b, at, w) + 1n) & mask);
      break;
    case "minus-one":
      setLE(b, at, w, (getLE(b, at, w) - 1n) & mask);
      break;
    case "huge":
      setLE(b, at, w, mask >> 1n); // the largest signed value: 0x7f…ff
      if (width > 8) b.fill(0x7f, at + 8, at + width);
      break;
    case "copy-neighbour":
      if (other === undefined) throw new Error("no neighbour");
      b.copyWithin(at, other, other + width);
      break;
    case "swap-neighbour": {
      if (other === undefined) throw new Error("no neighbour");
      const mine = b.slice(at, at + width);
      b.copyWithin(at, other, other + width);
      b.set(mine, other);
      break;
    }
  }
}

/** The neighbour of field `f`: the next field of the same width (else the previous one). */
function neighbourField(layout: RecordLayout, f: Field): Field | undefined {
  const same = layout.fields.filter((g) =>
    g !== f && g.width === f.width && g.kind === f.kind && g.kind !== "checksum"
  );
  return same.find((g) => g.offset > f.offset) ?? same.at(-1);
}

/** What the cases need besides the fixture: the image's geometry and layouts. */
export interface Plan {
  g: Geometry;
  sb: RecordLayout;
  slot: RecordLayout;
  root: RecordLayout;
}

/** The superblock and the record layouts, read from the fixture itself. */
export function plan(fx: Fixture): Plan {
  const g = decodeSuperblock(fx.bytes);
  const named: Record<number, string> = {
    [FORMAT_VERSION]: "version",
    [SUPERBLOCK_BYTES]: "headerBytes",
    [BLOCK]: "blockSize",
    [SLOT]: "slotSize",
  };
  const sb = superblockLayout(g, named);
  const v = new DataView(fx.bytes.buffer, fx.bytes.byteOffset, fx.bytes.byteLength);
  const pSlot = findSlotOffset(fx.bytes, g, fx.ids.p);
  const slot = slotLayout({
    id: fx.ids.p,
    prot: v.getUint16(pSlot + 18, true),
    start: 3,
    blocks: 5,
    size: 5000,
    keyId: 0n,
    ties: 1,
    created: 1.7e12,
  });
  const root = decodeRoot(fx.bytes, g.rootOffset);
  if (!root) throw new Error("the fixture's root record does not decode");
  return { g, sb, slot, root: rootLayout(root) };
}

/** The (first) tie-edge slot of `parent`: state EDGE (3), keyed by the parent's ID. */
function edgeSlotOffset(bytes: Uint8Array, g: Geometry, parent: ObjID): number {
  return findSlotOffset(bytes, g, parent, 3);
}

/** Recompute the CRC-32 at the end of a record (after a change meant to check). */
function recrc(b: Uint8Array, base: number, layout: RecordLayout): void {
  const c = layout.fields.find((f) => f.kind === "checksum");
  if (!c) return;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  v.setUint32(base + c.offset, crc32(b.subarray(base, base + c.offset)), true);
}

/** Every case of the campaign. Deterministic for a fixture. */
export function buildCases(fx: Fixture): Case[] {
  const p = plan(fx);
  const { g } = p;
  const cases: Case[] = [];
  // Every corruption lands in the metadata areas or in one of these objects.
  const watched: Array<[number, number]> = [[0, g.dataOffset]];
  for (const o of fx.objects) {
    if ([fx.ids.kv, fx.ids.rootObject, fx.ids.rootDir].includes(o.id)) {
      watched.push([o.base, o.base + o.capacity]);
    }
  }
  const probe = new Uint8Array(fx.bytes.length);
  const add = (c: Case) => {
    for (const [from, to] of watched) probe.set(fx.bytes.subarray(from, to), from);
    try {
      c.apply(probe);
    } catch {
      return; // no neighbour: not a case
    }
    // A corruption that changes nothing is not a case.
    for (const [from, to] of watched) {
      if (!equalRange(probe, fx.bytes, from, to)) {
        cases.push(c);
        return;
      }
    }
  };

  // Superblock: every field, every kind; with a bad CRC (what a torn or
  // rotten sector gives) and, for the value fields, with the CRC made to
  // match (an adversary, or a bug that wrote a wrong value and sealed it).
  for (const f of p.sb.fields) {
    const nb = neighbourField(p.sb, f);
    for (const kind of KINDS) {
      if (kind.endsWith("neighbour") && !nb) continue;
      if (RAW.includes(kind)) {
        add({
          name: `superblock/${f.name}/${kind}`,
          area: "superblock",
          apply: (b) => damageField(b, f.offset, f.width, kind, nb?.offset),
          damaged: [],
          notice: "kernel",
          intactAllowed: true,
        });
      }
      if (f.kind === "checksum" || f.name === "magic") continue;
      // Sealed: values nothing depends on (creation time, reserved bytes)
      // may pass unnoticed; every other one must be caught.
      const harmless = f.name === "created" || f.name.startsWith("reserved");
      if (
        harmless
          ? kind !== "ones" && kind !== "flip-low"
          : !SOME.includes(kind) && kind !== "copy-neighbour" && kind !== "minus-one"
      ) continue;
      add({
        name: `superblock+crc/${f.name}/${kind}`,
        area: "superblock+crc",
        apply: (b) => {
          damageField(b, f.offset, f.width, kind, nb?.offset);
          recrc(b, 0, p.sb);
        },
        damaged: [],
        notice: harmless ? "none" : "kernel",
        intactAllowed: true,
      });
    }
  }
  // Sealed plausible values: half the table or half the data area (the
  // geometry still holds together; the objects no longer fit it).
  for (const what of ["tableSlots", "dataBlocks"]) {
    const f = p.sb.fields.find((x) => x.name === what);
    if (!f) continue;
    add({
      name: `superblock+crc/${what}/halved`,
      area: "superblock+crc",
      apply: (b) => {
        const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
        v.setUint32(f.offset, v.getUint32(f.offset, true) >>> 1, true);
        recrc(b, 0, p.sb);
      },
      damaged: [],
      notice: "kernel",
      intactAllowed: true,
    });
  }
  // The backup superblock (format 2): damaged alone, boot uses the primary;
  // fsck must say the backup is damaged. And both copies damaged: refused.
  if (SUPERBLOCK_BACKUP_OFFSET > 0) {
    for (const f of p.sb.fields) {
      for (const kind of ["flip-low"] as const) {
        add({
          name: `backup-superblock/${f.name}/${kind}`,
          area: "backup-superblock",
          apply: (b) => damageField(b, SUPERBLOCK_BACKUP_OFFSET + f.offset, f.width, kind),
          damaged: [],
          notice: "kernel",
          intactAllowed: true,
        });
      }
    }
    add({
      name: "backup-superblock/all/zero",
      area: "backup-superblock",
      apply: (b) => b.fill(0, SUPERBLOCK_BACKUP_OFFSET, SUPERBLOCK_BACKUP_OFFSET + p.sb.bytes),
      damaged: [],
      notice: "kernel",
      intactAllowed: true,
    });
    for (const what of ["tableOffset", "dataOffset", "checksum"]) {
      const f = p.sb.fields.find((x) => x.name === what);
      if (!f) continue;
      add({
        name: `both-superblocks/${f.name}/flip-low`,
        area: "superblock",
        apply: (b) => {
          damageField(b, f.offset, f.width, "flip-low");
          damageField(b, SUPERBLOCK_BACKUP_OFFSET + f.offset, f.width, "flip-low");
        },
        damaged: [],
        notice: "kernel",
      });
    }
  }

  // A table slot: P's (a raw object with one dependent); N is its neighbour.
  const pSlot = findSlotOffset(fx.bytes, g, fx.ids.p);
  const nSlot = findSlotOffset(fx.bytes, g, fx.ids.n);
  for (const f of p.slot.fields) {
    for (const kind of KINDS) {
      const neighbour = kind.endsWith("neighbour");
      add({
        name: `table/${f.name}/${kind}`,
        area: "table",
        apply: (b) => damageField(b, pSlot + f.offset, f.width, kind, nSlot + f.offset),
        damaged: neighbour ? [fx.ids.p, fx.ids.n] : [fx.ids.p],
        anonymous: f.name === "id",
        notice: "kernel",
      });
    }
  }
  // P's size just past its reserved blocks (the issue's "size larger than
  // the reserved blocks"), its tie count at the most that can exist, its
  // blocks shrunk so a neighbour's start falls inside … plausible values.
  const v = new DataView(fx.bytes.buffer, fx.bytes.byteOffset, fx.bytes.byteLength);
  const P = fx.objects.find((o) => o.id === fx.ids.p)!;
  const field = (name: string) => p.slot.fields.find((f) => f.name === name);
  const setU32 = (name: string, value: number, label: string) => {
    const f = field(name);
    if (!f) return;
    add({
      name: `table/${name}/${label}`,
      area: "table",
      apply: (b) => new DataView(b.buffer, b.byteOffset).setUint32(pSlot + f.offset, value, true),
      damaged: [fx.ids.p],
      notice: "kernel",
    });
  };
  setU32("size", P.capacity + 1, "past-reserved-blocks");
  setU32("size", 0xffffffff, "max");
  setU32("ties", 256, "max-ties");
  setU32("ties", 0x7fffffff, "huge-count");
  setU32("blocks", P.capacity / BLOCK + 64, "more-blocks");
  setU32("start", g.dataBlocks - 1, "last-block");
  setU32("start", g.dataBlocks, "past-the-end");
  {
    const f = field("state");
    if (f) {
      for (
        const [state, label] of [[0, "empty"], [2, "tombstone"], [3, "tie-edge"], [
          0x5a,
          "garbage",
        ]] as const
      ) {
        add({
          name: `table/state/${label}`,
          area: "table",
          apply: (b) => (b[pSlot + f.offset] = state),
          damaged: [fx.ids.p],
          notice: "kernel",
        });
      }
    }
    const prot = field("prot");
    if (prot) {
      const cur = v.getUint16(pSlot + prot.offset, true);
      add({
        name: `table/prot/drop-write`,
        area: "table",
        apply: (b) =>
          new DataView(b.buffer, b.byteOffset).setUint16(pSlot + prot.offset, cur & ~2, true),
        damaged: [fx.ids.p],
        notice: "kernel",
      });
    }
  }
  // P's tie edge slot (its state, parent and dependent).
  const eSlot = edgeSlotOffset(fx.bytes, g, fx.ids.p);
  for (const f of p.slot.fields) {
    if (!["id", "state", "keyId", "ties"].includes(f.name)) continue;
    for (const kind of ["zero", "flip-low", "ones"] as const) {
      add({
        name: `tie-edge/${
          f.name === "keyId"
            ? "dependent"
            : f.name === "id"
            ? "parent"
            : f.name === "ties"
            ? "index"
            : f.name
        }/${kind}`,
        area: "table",
        apply: (b) => damageField(b, eSlot + f.offset, f.width, kind),
        damaged: [fx.ids.p, fx.ids.c],
        anonymous: true,
        notice: "kernel",
      });
    }
  }

  // The bitmap: the word holding P's first block, a free word, the whole map.
  const pStart = (P.base - g.dataOffset) / BLOCK;
  const usedWord = g.bitmapOffset + (pStart >>> 5) * 4;
  const lastUsed = Math.max(
    ...fx.objects.map((o) => (o.base - g.dataOffset) / BLOCK + o.capacity / BLOCK),
  );
  const freeWord = g.bitmapOffset + ((lastUsed >>> 5) + 4) * 4;
  const bitmapBytes = Math.ceil(g.dataBlocks / 32) * 4;
  const damagedAt = (word: number) =>
    fx.objects.filter((o) => {
      const s = (o.base - g.dataOffset) / BLOCK, e = s + o.capacity / BLOCK;
      const w0 = (word - g.bitmapOffset) * 8, w1 = w0 + 32;
      return s < w1 && e > w0;
    }).map((o) => o.id);
  for (const [label, at] of [["used-word", usedWord], ["free-word", freeWord]] as const) {
    for (const kind of KINDS) {
      add({
        name: `bitmap/${label}/${kind}`,
        area: "bitmap",
        apply: (b) => damageField(b, at, 4, kind, at + 4),
        damaged: damagedAt(at),
        notice: "kernel",
      });
    }
  }
  add({
    name: "bitmap/all/zero",
    area: "bitmap",
    apply: (b) => b.fill(0, g.bitmapOffset, g.bitmapOffset + bitmapBytes),
    damaged: [],
    notice: "kernel",
  });
  add({
    name: "bitmap/all/ones",
    area: "bitmap",
    apply: (b) => b.fill(0xff, g.bitmapOffset, g.bitmapOffset + bitmapBytes),
    damaged: [],
    notice: "kernel",
  });
  add({
    name: "bitmap/used-line/swap-with-next-line",
    area: "bitmap",
    apply: (b) => damageField(b, usedWord & ~63, 64, "swap-neighbour", (usedWord & ~63) + 64),
    damaged: damagedAt(usedWord),
    notice: "kernel",
  });
  const checks = (g as Geometry & { bitmapCheckOffset?: number }).bitmapCheckOffset;
  if (checks) {
    const line = Math.floor((usedWord - g.bitmapOffset) / 64);
    for (const kind of ["zero", "ones", "flip-low", "plus-one", "copy-neighbour"] as const) {
      add({
        name: `bitmap-check/used-line/${kind}`,
        area: "bitmap",
        apply: (b) => damageField(b, checks + line * 4, 4, kind, checks + line * 4 + 4),
        damaged: damagedAt(usedWord),
        notice: "kernel",
      });
    }
  }

  // The root record: every field, every kind; with its CRC bad, and sealed.
  for (const f of p.root.fields) {
    const nb = neighbourField(p.root, f);
    for (const kind of KINDS) {
      if (kind.endsWith("neighbour") && !nb) continue;
      if (RAW.includes(kind)) {
        add({
          name: `root/${f.name}/${kind}`,
          area: "root",
          apply: (b) =>
            damageField(
              b,
              g.rootOffset + f.offset,
              f.width,
              kind,
              g.rootOffset + (nb?.offset ?? 0),
            ),
          damaged: [],
          notice: "kernel",
          intactAllowed: true,
        });
      }
      if (f.kind === "checksum" || f.name === "magic") continue;
      // The generation counts commits and the cursor is where allocation
      // looks first: any value works.
      const harmless = f.name === "generation" || f.name === "cursor" ||
        f.name.startsWith("reserved");
      if (!SOME.includes(kind) || (harmless && kind !== "ones" && kind !== "flip-low")) continue;
      add({
        name: `root+crc/${f.name}/${kind}`,
        area: "root+crc",
        apply: (b) => {
          damageField(b, g.rootOffset + f.offset, f.width, kind, g.rootOffset + (nb?.offset ?? 0));
          recrc(b, g.rootOffset, p.root);
        },
        damaged: f.name === "rootObject" ? [fx.ids.rootObject, fx.ids.rootDir] : [],
        // A root record naming no (or another) root object: the kernel or
        // libtwz may refuse with ImageCorrupt (naming the object it names).
        accept: f.name === "rootObject" ? [ErrorCode.ImageCorrupt] : undefined,
        notice: harmless ? "none" : "kernel",
        intactAllowed: true,
      });
    }
  }

  // libtwz structures, located through the objects holding them.
  const objBase = (id: ObjID) => fx.objects.find((o) => o.id === id)!.base;
  const lib = (
    area: Area,
    prefix: string,
    holder: ObjID,
    at: number,
    fields: Array<[string, number, number]>,
    extra: Partial<Case> = {},
    harmless: string[] = [],
  ) => {
    for (const [name, off, width] of fields) {
      const nb = fields.find(([n2, o2, w2]) => n2 !== name && w2 === width && o2 > off) ??
        fields.find(([n2, , w2]) => n2 !== name && w2 === width);
      for (const kind of KINDS) {
        if (kind.endsWith("neighbour") && !nb) continue;
        add({
          name: `${prefix}/${name}/${kind}`,
          area,
          apply: (b) =>
            damageField(
              b,
              objBase(holder) + at + off,
              width,
              kind,
              nb ? objBase(holder) + at + nb[1] : undefined,
            ),
          damaged: [holder],
          notice: harmless.includes(name) || harmless.includes(`${name}:${kind}`) ? "none" : "deep",
          ...extra,
        });
      }
    }
  };
  // The naming root: the kernel root object's libtwz record and the root directory's header.
  // (Its version one less is the previous record version, which libtwz still reads.)
  lib(
    "naming",
    "naming-root-record",
    fx.ids.rootObject,
    BASE_OFFSET,
    [
      ["magic", 0, 4],
      ["version", 4, 4],
      ["root-dir-id", 16, 16],
    ],
    {},
    ["version:minus-one"],
  );
  lib(
    "naming",
    "root-directory",
    fx.ids.rootDir,
    BASE_OFFSET,
    [
      ["magic", 0, 4],
      ["version", 4, 4],
      ["capacity", 8, 4],
      ["generation", 12, 4],
    ],
    {},
    ["generation"],
  );
  // The kernel root object's libtwz meta-info (its magic, version, Root flag, FOT geometry).
  lib("naming", "root-object-meta", fx.ids.rootObject, META_OFFSET, [
    ["magic", MetaField.magic, 4],
    ["version", MetaField.version, 2],
    ["flags", MetaField.flags, 2],
    ["fotOffset", MetaField.fotOffset, 4],
    ["fotCapacity", MetaField.fotCapacity, 4],
    ["fotCount", MetaField.fotCount, 4],
  ]);
  // The B-tree header of the kv store, and the base words naming it.
  lib("btree", "btree-base", fx.ids.kv, BASE_OFFSET, [
    ["header-offset", 0, 4],
    ["magic", 4, 4],
  ], { accept: [ErrorCode.InvalidArgument] });
  lib("btree", "btree-header", fx.ids.kv, fx.btreeHeader, [
    ["magic", 0, 4],
    ["codecs", 4, 2],
    ["fanout", 6, 1],
    ["count", 8, 8],
    ["root", 16, 4],
    ["height", 20, 4],
    ["first-leaf", 24, 4],
    ["heap", 28, 4],
  ]);
  // The heap header under the kv store's B-tree.
  lib(
    "heap",
    "heap-header",
    fx.ids.kv,
    fx.heapHeader,
    [
      ["magic", 0, 4],
      ["version", 4, 2],
      ["top", 8, 4],
      ["end", 12, 4],
      ["live", 16, 4],
      ["large", 20, 4],
      ["claimed", 24, 4],
      ["grownTo", 28, 4],
      ["head-0", 64, 4],
    ],
    {},
    // grownTo is a hint; claimed may be 0 ("the object's length") or any
    // length the object could have had (one less, or grownTo's 0).
    ["grownTo", "claimed:zero", "claimed:minus-one", "claimed:copy-neighbour"],
  );

  // Beyond the headers: the kv store's first leaf and the heap block header
  // of that leaf's first entry. No checksum covers them, so a running
  // system may answer wrong (lenient); fsck --deep must still see it.
  const u32 = (at: number) =>
    new DataView(fx.bytes.buffer, fx.bytes.byteOffset).getUint32(at, true);
  const kvBase = objBase(fx.ids.kv);
  const leaf = u32(kvBase + fx.btreeHeader + 24);
  lib("btree", "btree-leaf", fx.ids.kv, leaf, [
    ["type", 0, 1],
    ["count", 2, 2],
    ["next", 4, 4],
    ["slot-0", 8, 4],
  ], { lenient: true });
  const entry = u32(kvBase + leaf + 8);
  lib("heap", "heap-block", fx.ids.kv, entry - 8, [
    ["size", 0, 4],
    ["tag", 4, 4],
  ], { lenient: true });
  return cases;
}

// ---------------------------------------------------------------------------
// Running a case

/** What happened to one case, and what of it breaks the issue's requirements. */
export interface CaseResult {
  name: string;
  /** `refused`, `booted`, or how boot failed otherwise. */
  boot: string;
  bootMs: number;
  /** Per object: `ok`, `damaged` (ObjectDamaged) or what went wrong. */
  objects: Record<string, string>;
  /** Whether the running system noticed the damage (quarantine or refusal of an operation). */
  noticed: boolean;
  fsck: string;
  deep: string;
  repair: string;
  /** Every requirement the case breaks (empty: it passes). */
  failures: string[];
  /** Wall-clock milliseconds. */
  ms: number;
  /** CPU milliseconds of the thread that ran it (wall-clock where unknown). */
  cpuMs?: number;
}

/** CPU time of the calling thread in ms (Linux), or undefined. */
export function threadCpuMs(): number | undefined {
  try {
    const stat = Deno.readTextFileSync("/proc/thread-self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, 100 ticks/s
  } catch {
    return undefined;
  }
}

const oneLine = (e: unknown) =>
  e instanceof Error
    ? `${e.name}${e instanceof TwzError ? `(${e.code})` : ""}: ${e.message}`
    : String(e);

const equalRange = (a: Uint8Array, b: Uint8Array, from: number, to: number) => {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
};

/** The bytes of every fixture object that differ between `before` and `after`. */
function changedObjects(fx: Fixture, before: Uint8Array, after: Uint8Array): FixtureObject[] {
  return fx.objects.filter((o) => !equalRange(before, after, o.base, o.base + o.capacity));
}

const DAMAGE_CODES: number[] = [ErrorCode.ObjectDamaged, ErrorCode.ImageCorrupt];

/** Whether `e` is a TwzError for damage that names `id` (unless anonymous). */
function isQuarantine(
  e: unknown,
  id: ObjID | undefined,
  c: Case,
  extra: number[] = [],
  structure?: RegExp,
): boolean {
  if (!(e instanceof TwzError)) return false;
  if (e.code !== ErrorCode.ObjectDamaged && !extra.includes(e.code)) return false;
  if (e.message.includes("\n")) return false;
  if (structure && !structure.test(e.message)) return false;
  return id === undefined || c.anonymous === true || e.message.includes(formatId(id));
}

/** What a libtwz error about the kv store must name besides the object: its structure. */
const KV_STRUCTURE = /B-?tree|heap/i;
/** … and one about the naming service. */
const NAMING_STRUCTURE = /nam|director|root/i;

/** A result with nothing recorded yet. */
export function emptyResult(name: string, failures: string[] = []): CaseResult {
  return {
    name,
    boot: "",
    bootMs: 0,
    objects: {},
    noticed: false,
    fsck: "",
    deep: "",
    repair: "",
    failures,
    ms: 0,
  };
}

/** The objects whose bytes differ between two images (by the fixture's extents). */
export function objectsChanged(
  fx: Fixture,
  before: Uint8Array,
  after: Uint8Array,
): FixtureObject[] {
  return changedObjects(fx, before, after);
}

/**
 * A HAL over plain memory (no copy, no power model): for fsck's repair and
 * the checks after it, where hal-sim's cache model adds nothing but copies.
 */
export function memHal(bytes: Uint8Array, seed = 3): Hal {
  const check = (offset: number, length: number) => {
    if (offset < 0 || length < 0 || offset + length > bytes.length) {
      throw new RangeError(`[${offset}, +${length}) is outside the region`);
    }
  };
  const region: PersistentRegion = {
    size: bytes.length,
    granularity: "cache-line",
    bytes,
    flush: check,
    drain: () => {},
    persist: check,
    share: () => {
      throw new Error("a memory HAL cannot be shared");
    },
  };
  return {
    name: "mem",
    image: undefined,
    created: false,
    region,
    clock: countingClock(),
    entropy: seededEntropy(seed),
    console: { write: () => {}, readLine: () => Promise.resolve(null) },
    close: () => {},
  };
}

/** Options of {@linkcode runCase}. */
export interface RunOptions {
  /** Report progress (the phase being run), for a watchdog. */
  phase?: (phase: string) => void;
  /** Repair through this instead of the kernel's `fsck(hal, { repair: true })`. */
  repair?: (hal: Hal) => { clean: boolean; lines: string[] };
}

/** Damage a copy of the fixture as `c` says, and judge what every part of the system does. */
export function runCase(fx: Fixture, c: Case, options: RunOptions = {}): CaseResult {
  const t0 = performance.now();
  const cpu0 = threadCpuMs();
  const phase = options.phase ?? (() => {});
  const failures: string[] = [];
  const fail = (what: string) => failures.push(what);
  const image = fx.bytes.slice();
  c.apply(image);
  const damagedSet = new Set(c.damaged);
  const r = emptyResult(c.name, failures);

  // 1. Boot on a copy.
  phase("boot");
  const hal = openSimFromBytes(image, { entropy: seededEntropy(1), clock: countingClock() });
  try {
    bootAndProbe(fx, c, image, hal, r, phase);
  } finally {
    hal.close();
  }

  // 2. fsck (kernel structures), on the damaged bytes; it must not write.
  phase("fsck");
  let report: FsckReport | undefined;
  const copy = image.slice();
  try {
    report = fsck(copy);
    r.fsck = report.clean
      ? "clean"
      : `${report.problems.length} problem(s): ${
        report.problems.map((p) => `${p.area}: ${p.message}`).join(" | ").slice(0, 300)
      }`;
    if (!equalRange(copy, image, 0, image.length)) {
      fail("fsck (without --repair) wrote to the image");
    }
  } catch (e) {
    r.fsck = `threw ${oneLine(e)}`;
    fail(`fsck threw ${oneLine(e)}`);
  }
  if (report && c.notice === "kernel" && report.clean) fail("fsck says clean");
  if (report && r.boot === "refused" && report.clean) {
    fail("boot refuses the image but fsck says clean");
  }

  // 3. fsck --deep (libtwz structures), as `twz fsck --deep` runs it: on a private copy.
  if (c.notice === "deep" || c.area === "naming") {
    phase("deep");
    const dhal = memHal(image.slice());
    try {
      const k = Kernel.boot(dhal, { formatBlank: false });
      try {
        const d: CheckReport = checkObjects(k.port(), { replay: true });
        r.deep = d.problems.length === 0
          ? "clean"
          : d.problems.map((p) => `${p.area}${p.id ? ` ${p.id.slice(0, 8)}` : ""}: ${p.message}`)
            .join(" | ").slice(0, 300);
        if (c.notice === "deep") {
          const ids = c.damaged.map(formatId);
          if (!d.problems.some((p) => p.id === undefined || ids.includes(p.id))) {
            fail(`fsck --deep does not report it (${r.deep})`);
          }
        }
      } finally {
        k.halt();
      }
    } catch (e) {
      r.deep = `threw ${oneLine(e)}`;
      fail(`fsck --deep threw ${oneLine(e)}`);
    } finally {
      dhal.close();
    }
  }

  // 4. fsck --repair: intact objects' bytes unchanged; "clean" only when nothing was dropped.
  phase("repair");
  const rhal = memHal(image.slice(), 2);
  try {
    let clean: boolean, lines: string[];
    let lostIds: ObjID[] = [];
    if (options.repair) ({ clean, lines } = options.repair(rhal));
    else {
      const rep = fsck(rhal, { repair: true });
      clean = rep.clean;
      lines = rep.repairs;
      lostIds = (rep.lostFound ?? []).map((l) => BigInt(`0x${l.id}`));
    }
    r.repair = `${clean ? "clean" : "not clean"}${
      lines.length ? `: ${lines.join(" | ").slice(0, 200)}` : ""
    }`;
    const after = rhal.region.bytes;
    for (const o of changedObjects(fx, image, after)) {
      fail(
        `repair changed the bytes of ${
          damagedSet.has(o.id) ? "damaged" : "intact"
        } object ${o.label}`,
      );
    }
    if (clean) checkAfterRepair(fx, c, rhal, fail);
    judgeRepaired(
      fx,
      c,
      after,
      image,
      clean,
      (what) => fail(`fsck --repair: ${what}`),
      lostIds,
      true,
    );
  } catch (e) {
    r.repair = `threw ${oneLine(e)}`;
    fail(`fsck --repair threw ${oneLine(e)}`);
  } finally {
    rhal.close();
  }
  r.ms = performance.now() - t0;
  const cpu1 = threadCpuMs();
  if (cpu0 !== undefined && cpu1 !== undefined) r.cpuMs = cpu1 - cpu0;
  return r;
}

/**
 * Boot on `hal` (holding the damaged `image`) and run the probes, recording
 * into `r` (boot outcome, per-object states, failures). Leaves `hal` open.
 */
export function bootAndProbe(
  fx: Fixture,
  c: Case,
  image: Uint8Array,
  hal: Hal,
  r: CaseResult,
  phase: (p: string) => void = () => {},
): void {
  const fail = (what: string) => r.failures.push(what);
  const intact = fx.objects.filter((o) => !c.damaged.includes(o.id));
  let kernel: Kernel | undefined;
  const tb = performance.now();
  try {
    kernel = Kernel.boot(hal, { formatBlank: false });
    r.boot = "booted";
  } catch (e) {
    r.boot = e instanceof TwzError &&
        (e.code === ErrorCode.ImageCorrupt || e.code === ErrorCode.ImageUnsupported)
      ? "refused"
      : `threw ${oneLine(e)}`;
    if (r.boot !== "refused") {
      fail(`boot threw something other than ImageCorrupt/ImageUnsupported: ${oneLine(e)}`);
    } else if ((e as Error).message.includes("\n")) fail("boot's refusal is more than one line");
    if (!equalRange(hal.region.bytes, image, 0, image.length)) {
      fail("a refused boot wrote to the image");
    }
    r.noticed = true;
  }
  r.bootMs = performance.now() - tb;
  if (r.boot === "refused" && c.notice === "deep") {
    fail("boot refused an image whose kernel metadata is intact (libtwz damage)");
  }
  if (!kernel) return;
  phase("probe");
  try {
    probeRunning(fx, c, kernel, image, intact, r, fail, phase);
  } catch (e) {
    fail(`the running system threw ${oneLine(e)}`);
  }
  phase("shutdown");
  try {
    if (!kernel.isShutdown) kernel.shutdown();
  } catch (e) {
    if (!(e instanceof TwzError)) fail(`shutdown threw ${oneLine(e)}`);
  }
  if (c.notice === "kernel" && !r.noticed && !c.intactAllowed) {
    fail(
      "the damage went unnoticed: boot neither refused nor quarantined anything, and every operation succeeded",
    );
  }
  if (c.intactAllowed && !r.noticed) {
    // Booted as if nothing happened: fine only when every object is intact (a backup used).
    const wrong = Object.entries(r.objects).filter(([, s]) => s !== "ok");
    if (wrong.length > 0) {
      fail(
        `booted without noticing the damage, yet ${wrong.map(([k, s]) => `${k}: ${s}`).join("; ")}`,
      );
    }
  }
}

/** The running system: every object, names, the kv store, then a workload that allocates. */
function probeRunning(
  fx: Fixture,
  c: Case,
  kernel: Kernel,
  image: Uint8Array,
  intact: FixtureObject[],
  r: CaseResult,
  fail: (what: string) => void,
  phase: (p: string) => void,
): void {
  const damagedSet = new Set(c.damaged);
  const noticeError = (e: unknown) => {
    if (e instanceof TwzError && DAMAGE_CODES.includes(e.code)) r.noticed = true;
  };
  // Every object: stat, read all of it, map.
  for (const o of fx.objects) {
    let state = "ok";
    try {
      const s = kernel.stat(o.id);
      if (s.size !== o.size) state = `stat says size ${s.size}, not ${o.size}`;
      const data = kernel.read(o.id, 0, o.size);
      if (!equalRange(data, image.subarray(o.base, o.base + o.size), 0, o.size)) {
        state = "reads back wrong bytes";
      }
      const m = kernel.map(o.id);
      if (m.bytes.length !== o.size) state = `maps ${m.bytes.length} bytes, not ${o.size}`;
      else if (m.extent.base !== o.base) {
        state = `maps the bytes at ${m.extent.base}, not ${o.base}`;
      }
    } catch (e) {
      state = isQuarantine(e, o.id, c) ? "damaged" : `threw ${oneLine(e)}`;
      noticeError(e);
    }
    r.objects[o.label] = state;
    if (state === "damaged") r.noticed = true;
    if (state !== "ok" && !(damagedSet.has(o.id) && state === "damaged")) {
      fail(`${damagedSet.has(o.id) ? "damaged" : "intact"} object ${o.label}: ${state}`);
    }
  }
  for (
    const [what, fn] of [["list()", () => kernel.list()], [
      "usage()",
      () => kernel.usage(),
    ]] as const
  ) {
    try {
      fn();
    } catch (e) {
      noticeError(e);
      if (!(e instanceof TwzError)) fail(`${what} threw ${oneLine(e)}`);
    }
  }

  // libtwz, reading only: names, the kv store.
  phase("libtwz");
  probeLibtwz(fx, c, kernel, r, fail);

  // A damaged table slot: deleting its object must not act on untrusted metadata.
  phase("delete");
  let cGone = false;
  if (c.area === "table") {
    try {
      kernel.delete(fx.ids.p);
      cGone = true;
    } catch (e) {
      noticeError(e);
      if (!(e instanceof TwzError)) fail(`delete of P threw ${oneLine(e)}`);
    }
  }

  // Allocate until full, grow, delete: nothing may land on an intact object.
  // (Damage inside an object's contents leaves the kernel's metadata as it was.)
  if (c.notice === "deep") return probeLibtwzWrites(fx, c, kernel, fail, noticeError);
  phase("allocate");
  const made: Array<bigint> = [];
  try {
    for (let i = 0; i < 400; i++) {
      const id = kernel.create({ size: i % 3 === 0 ? 40_000 : 9000 });
      made.push(id);
      kernel.write(id, 0, new Uint8Array(64).fill(0xee));
    }
  } catch (e) {
    noticeError(e);
    if (!(e instanceof TwzError)) fail(`create threw ${oneLine(e)}`);
  }
  try {
    if (made.length > 2) {
      kernel.delete(made.pop()!);
      kernel.delete(made.pop()!);
      kernel.grow(made[0]!, 60_000);
    }
  } catch (e) {
    noticeError(e);
    if (!(e instanceof TwzError)) fail(`grow/delete threw ${oneLine(e)}`);
  }
  const now = kernel.hal.region.bytes;
  for (const o of intact) {
    if (cGone && o.id === fx.ids.c) continue; // deleted with P, as a tie says
    if (!equalRange(now, image, o.base, o.base + o.capacity)) {
      fail(`intact object ${o.label}: its bytes changed while the damaged system ran`);
    }
  }

  // libtwz, writing: a kv put.
  phase("libtwz-write");
  probeLibtwzWrites(fx, c, kernel, fail, noticeError);
}

/** A kv put (and get) through libtwz: right, or ObjectDamaged when the store is damaged. */
function probeLibtwzWrites(
  fx: Fixture,
  c: Case,
  kernel: Kernel,
  fail: (what: string) => void,
  noticeError: (e: unknown) => void,
): void {
  const damagedSet = new Set(c.damaged);
  try {
    const twz = Twz.attach(kernel.port());
    try {
      const kv = BTreeMap.open(twz, twz.open(fx.ids.kv), codec.string, codec.string);
      kv.set("campaign", "was here");
      if (kv.get("campaign") !== "was here") fail("kv: a put does not read back");
    } catch (e) {
      noticeError(e);
      if (!(damagedSet.has(fx.ids.kv) && isQuarantine(e, fx.ids.kv, c, c.accept, KV_STRUCTURE))) {
        if (!(e instanceof TwzError)) fail(`kv put threw ${oneLine(e)}`);
        else if (
          !damagedSet.has(fx.ids.kv) && !DAMAGE_CODES.includes(e.code) &&
          e.code !== ErrorCode.OutOfSpace
        ) {
          fail(`kv put on an intact store threw ${oneLine(e)}`);
        }
      }
    }
  } catch (e) {
    noticeError(e);
    if (!(e instanceof TwzError)) fail(`a libtwz session threw ${oneLine(e)}`);
  }
}

function probeLibtwz(
  fx: Fixture,
  c: Case,
  kernel: Kernel,
  r: CaseResult,
  fail: (what: string) => void,
): void {
  const damagedSet = new Set(c.damaged);
  const namingDamaged = damagedSet.has(fx.ids.rootObject) || damagedSet.has(fx.ids.rootDir);
  let twz: Twz;
  try {
    twz = Twz.attach(kernel.port());
  } catch (e) {
    const named = (id: ObjID) => isQuarantine(e, id, c, c.accept, NAMING_STRUCTURE);
    // A root record naming another root object: refused naming that one.
    const rootNamed = c.area === "root+crc" && e instanceof TwzError &&
      (e.code === ErrorCode.ObjectDamaged || (c.accept ?? []).includes(e.code)) &&
      /root object/.test(e.message) &&
      !e.message.includes("\n");
    if (namingDamaged && (named(fx.ids.rootObject) || named(fx.ids.rootDir) || rootNamed)) {
      r.noticed = true;
      r.objects["libtwz session"] = "damaged";
      return;
    }
    fail(`opening a libtwz session threw ${oneLine(e)}`);
    return;
  }
  for (const [path, id] of fx.names) {
    let state = "ok";
    try {
      const got = twz.naming.resolve(path);
      if (got !== id) state = `resolves to ${formatId(got)}`;
    } catch (e) {
      if (
        namingDamaged &&
        (isQuarantine(e, fx.ids.rootObject, c, [], NAMING_STRUCTURE) ||
          isQuarantine(e, fx.ids.rootDir, c, [], NAMING_STRUCTURE))
      ) {
        state = "damaged";
        r.noticed = true;
      } else state = `threw ${oneLine(e)}`;
    }
    r.objects[`name ${path}`] = state;
    if (state !== "ok" && state !== "damaged") fail(`name ${path}: ${state}`);
  }
  const kvDamaged = damagedSet.has(fx.ids.kv);
  let kv: BTreeMap<string, string> | undefined;
  try {
    kv = BTreeMap.open(twz, twz.open(fx.ids.kv), codec.string, codec.string);
  } catch (e) {
    if (kvDamaged && isQuarantine(e, fx.ids.kv, c, c.accept, KV_STRUCTURE)) {
      r.noticed = true;
      r.objects["kv"] = "damaged";
    } else fail(`opening the kv store threw ${oneLine(e)}`);
    return;
  }
  let wrong = 0, damaged = 0;
  for (const [k, v] of fx.kv) {
    try {
      if (kv.get(k) !== v) wrong++;
    } catch (e) {
      if (kvDamaged && isQuarantine(e, fx.ids.kv, c, c.accept, KV_STRUCTURE)) damaged++;
      else {
        fail(`kv get ${k} threw ${oneLine(e)}`);
        break;
      }
    }
  }
  try {
    if (kv.get("no-such-key") !== undefined) wrong++;
    const scanned = [...kv.keys()].length;
    if (scanned !== fx.kv.length) wrong++;
  } catch (e) {
    if (kvDamaged && isQuarantine(e, fx.ids.kv, c, c.accept, KV_STRUCTURE)) damaged++;
    else fail(`kv scan threw ${oneLine(e)}`);
  }
  if (damaged > 0) r.noticed = true;
  r.objects["kv"] = wrong ? `${wrong} wrong answer(s)` : damaged ? "damaged" : "ok";
  if (wrong && !c.lenient) {
    fail(`kv store: ${wrong} wrong answer(s) (neither right nor ObjectDamaged)`);
  }
}

/** After a repair that says "clean": checks clean again, boots, nothing dropped, names reachable. */
function checkAfterRepair(fx: Fixture, c: Case, hal: Hal, fail: (what: string) => void): void {
  const again = fsck(hal.region.bytes.slice());
  if (!again.clean) {
    fail(
      `repair said clean, but fsck then finds: ${
        again.problems.map((p) => p.message).join(" | ").slice(0, 200)
      }`,
    );
  }
  const copy = memHal(hal.region.bytes.slice(), 4);
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(copy, { formatBlank: false });
  } catch (e) {
    fail(`repair said clean, but boot then throws ${oneLine(e)}`);
    copy.close();
    return;
  }
  try {
    let lost: Map<ObjID, string> = new Map();
    let twz: Twz | undefined;
    try {
      twz = Twz.attach(kernel.port());
      if (twz.naming.exists("/lost+found")) {
        lost = new Map(twz.naming.list("/lost+found").map((b) => [b.id, b.name]));
      }
    } catch (e) {
      if (!(e instanceof TwzError)) fail(`after repair, a libtwz session threw ${oneLine(e)}`);
    }
    for (const o of fx.objects) {
      if (!kernel.exists(o.id) && !lost.has(o.id)) {
        fail(`repair said clean, but dropped object ${o.label} (gone, not in /lost+found)`);
      }
    }
    // The tie C -> P is metadata too: dropping it changes what a delete does.
    try {
      if (
        kernel.exists(fx.ids.p) && kernel.exists(fx.ids.c) && kernel.stat(fx.ids.p).dependents !== 1
      ) {
        fail(
          `repair said clean, but P now has ${
            kernel.stat(fx.ids.p).dependents
          } dependents, not 1 (the tie to C was dropped)`,
        );
      }
    } catch (e) {
      fail(`after a clean repair, stat of P threw ${oneLine(e)}`);
    }
    if (twz && (c.area === "root" || c.area === "root+crc" || c.notice === "kernel")) {
      for (const [path, id] of fx.names) {
        try {
          if (twz.naming.resolve(path) !== id) fail(`after repair ${path} names another object`);
        } catch (e) {
          if (!lost.has(id)) fail(`after repair ${path} is unreachable: ${oneLine(e)}`);
        }
      }
    }
  } finally {
    kernel.halt();
    copy.close();
  }
}

// ---------------------------------------------------------------------------
// The whole `twz fsck --repair --deep`, then `twz fsck --undo`

/**
 * Run what `twz fsck --repair --deep --json` runs (`fsckImageFile` of
 * `@twz/crashtest/deep-check`, the command's library) on a file holding the
 * damaged image; judge the repaired file; then what `twz fsck --undo` runs
 * (`restoreUndoFile`) must give back the damaged image byte for byte. Adds to
 * `r.failures`; sets `r.repair` to what the command did (its exit code: 0
 * clean, 1 not).
 */
export function cliRepair(
  fx: Fixture,
  c: Case,
  dir: string,
  r: CaseResult,
  tag: string,
): void {
  const fail = (what: string) => r.failures.push(`fsck --repair --deep: ${what}`);
  const image = fx.bytes.slice();
  c.apply(image);
  const path = `${dir}/${tag}.img`, undoPath = `${dir}/${tag}.undo`;
  Deno.writeFileSync(path, image);
  try {
    let report: ImageCheckReport;
    try {
      report = fsckImageFile(path, { repair: true, deep: true, undoFile: undoPath });
    } catch (e) {
      fail(`threw ${oneLine(e)}`);
      return;
    }
    const code = report.clean ? 0 : 1;
    const lines = [...(report.repairs ?? []), ...(report.libtwz?.repairs ?? [])];
    r.repair = `${code === 0 ? "clean" : `exit ${code}`}${
      lines.length ? `: ${lines.join(" | ").slice(0, 240)}` : ""
    }`;
    const after = Deno.readFileSync(path);
    // Naming directories (a /lost+found binding, a re-attached root) and the
    // kernel root object may be written by a deep repair; nothing else.
    const mayWrite = [fx.ids.rootDir, fx.ids.rootObject, fx.ids.txlog];
    // (A damaged libtwz structure may be mended in place.)
    for (const o of changedObjects(fx, image, after)) {
      if (mayWrite.includes(o.id) || (c.notice === "deep" && c.damaged.includes(o.id))) continue;
      fail(
        `changed the bytes of ${c.damaged.includes(o.id) ? "damaged" : "intact"} object ${o.label}`,
      );
    }
    judgeRepaired(fx, c, after, image, code === 0, fail);
    // Undo: the damaged image again, byte for byte.
    let hasUndo = true;
    try {
      Deno.statSync(undoPath);
    } catch {
      hasUndo = false;
    }
    const changed = changedAnywhere(image, after);
    if (changed && !hasUndo) fail("wrote the image but left no undo file");
    if (hasUndo) {
      try {
        restoreUndoFile(undoPath, path);
        if (changedAnywhere(image, Deno.readFileSync(path))) {
          fail("--undo did not give back the damaged image byte for byte");
        }
      } catch (e) {
        fail(`--undo threw ${oneLine(e)}`);
      }
    }
  } finally {
    for (const f of [path, undoPath, `${path}.lock`]) {
      try {
        Deno.removeSync(f);
      } catch {
        // not there
      }
    }
  }
}

function changedAnywhere(a: Uint8Array, b: Uint8Array): boolean {
  return a.length !== b.length || !equalRange(a, b, 0, a.length);
}

/**
 * The repaired image: boots; every fixture object still exists (or is kept
 * quarantined), or its bytes are in an object under /lost+found; when the
 * repair says clean, every name resolves as before; after a root record
 * repair, too, whatever else remains.
 */
function judgeRepaired(
  fx: Fixture,
  c: Case,
  after: Uint8Array,
  damagedImage: Uint8Array,
  clean: boolean,
  fail: (what: string) => void,
  lostIds: ObjID[] = [],
  kernelOnly = false,
): void {
  // The kernel's fsck does not look inside objects: after it, libtwz damage is still there.
  const libtwz = !(kernelOnly && (c.notice === "deep" || c.area === "naming"));
  const hal = memHal(after.slice(), 5);
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(hal, { formatBlank: false });
  } catch (e) {
    if (clean) fail(`said clean, but boot then throws ${oneLine(e)}`);
    return;
  }
  try {
    let twz: Twz | undefined;
    const lost: ObjID[] = [...lostIds];
    try {
      twz = Twz.attach(kernel.port());
      if (twz.naming.exists("/lost+found")) {
        for (const b of twz.naming.list("/lost+found")) lost.push(b.id);
      }
    } catch (e) {
      if ((clean || (!kernelOnly && c.area === "naming")) && libtwz) {
        fail(`${clean ? "said clean, but " : ""}a libtwz session throws ${oneLine(e)}`);
      }
    }
    for (const o of fx.objects) {
      let state: "there" | "damaged" | "gone";
      try {
        state = kernel.exists(o.id) ? "there" : "gone";
      } catch (e) {
        state = e instanceof TwzError && e.code === ErrorCode.ObjectDamaged ? "damaged" : "gone";
      }
      if (state === "there") continue;
      if (state === "damaged") {
        if (clean) fail(`said clean, but object ${o.label} is still damaged`);
        continue;
      }
      // Gone from the table: its bytes must be in an object under /lost+found.
      const want = damagedImage.subarray(o.base, o.base + o.size);
      const kept = lost.some((id) => {
        try {
          return equalRange(
            kernel.read(id, 0, Math.min(o.size, kernel.stat(id).size)),
            want,
            0,
            o.size,
          );
        } catch {
          return false;
        }
      });
      if (!kept) fail(`object ${o.label} is gone and its bytes are in no /lost+found object`);
      else if (clean) fail(`said clean, but object ${o.label} was put in /lost+found`);
    }
    // After a root record repair every name resolves, and after `--repair
    // --deep` a lost naming root is found again: whatever else remains.
    const namesMust = clean || c.area === "root" || c.area === "root+crc" ||
      (!kernelOnly && c.area === "naming");
    if (twz && libtwz && namesMust) {
      for (const [path, id] of fx.names) {
        try {
          const got = twz.naming.resolve(path);
          if (got !== id) {
            fail(`${path} names ${formatId(got)} after the repair, not ${formatId(id)}`);
          }
        } catch (e) {
          fail(`${path} does not resolve after the repair: ${oneLine(e)}`);
        }
      }
    }
  } finally {
    kernel.halt();
  }
}

/**
 * `fsck` for Twizzler images: check every kernel structure of an image (the
 * superblock, root record, metadata log, object table, block bitmap and tie
 * edges) and, when asked, repair what can be repaired safely.
 *
 * Checking never writes. An image whose log holds a committed transaction
 * (a crash between commit and apply) is checked as boot would see it, with
 * the transaction replayed into a private overlay of the metadata area only.
 * Repairs go through the kernel's own redo log, so a crash during a repair
 * leaves either the old or the repaired metadata; running fsck again
 * finishes the job.
 *
 * A repair never destroys data it cannot place: blocks that may hold the
 * data of an object fsck cannot trust are never freed. A table slot failing
 * its check is restored when giving back one field makes the check hold
 * (its state byte, its first block...); otherwise the object's blocks become
 * a recovered object of their own (as do allocated blocks that no sound
 * object owns while the table shows damage), listed in `lostFound` for
 * `/lost+found/<ID>` (`twz fsck --repair --deep` binds the names). A tie
 * edge whose parent or dependent ID is damaged gets back the ID its check
 * proves; one that cannot be restored is removed and listed in `dropped`
 * (the report is then not clean). A damaged superblock is restored from its
 * backup copy; when both copies are intact but differ (a wrong value sealed
 * with its CRC), the copy the metadata agrees with wins (under the wrong
 * store ID no slot checks; under a wrong geometry extents and bitmap lines
 * do not fit), and when neither wins clearly nothing is written. A damaged
 * root record is rebuilt keeping its root object, found again by its
 * meta-info when the record no longer names it.
 *
 * Memory: fsck reads the metadata area (superblock to the first data block)
 * and only the object bytes it needs (the first bytes of objects when it
 * looks for the root object), through {@linkcode FsckImage.load}; it never
 * copies the image.
 *
 * @example Check an image in memory
 * ```ts ignore
 * import { fsck } from "@twz/kernel";
 * const report = fsck(Deno.readFileSync("twz.img"));
 * for (const p of report.problems) console.log(`${p.area}: ${p.message}`);
 * ```
 *
 * @module
 */
import type { Hal, PersistentRegion } from "./hal/mod.ts";
import {
  ErrorCode,
  formatId,
  isValidId,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  readId,
  TwzError,
  writeId,
} from "./abi/mod.ts";
import {
  BLOCK,
  canonicalSuperblock,
  decodeBackupSuperblock,
  decodeSuperblock,
  type Geometry,
  isBlank,
  metadataTest,
  PAGE,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
  SUPERBLOCK_BYTES,
  superblockField,
} from "./_layout.ts";
import { LOG_HEADER, MetaLog, parseLog } from "./_log.ts";
import { EDGE, EMPTY, encodeObject, OBJECT, Table, TOMB } from "./_table.ts";
import {
  bitmapLines,
  BLOCKS_PER_LINE,
  lineCheck,
  lineCheckOffset,
  lineSealed,
  sealSlot,
  slotProblem,
} from "./_check.ts";
import { decodeRoot, encodeRoot } from "./_root.ts";
import { ROOT_OBJECT_SIZE } from "./kernel.ts";

/** Which structure a problem is in. */
export type FsckArea = "superblock" | "root" | "log" | "table" | "bitmap" | "ties";

/** One thing wrong with an image. */
export interface FsckProblem {
  /** The structure it is in. */
  area: FsckArea;
  /** One line: what is wrong, naming slots, blocks and IDs. */
  message: string;
  /** Whether `repair` fixes it. */
  repairable: boolean;
}

/** An object a repair could not place: it belongs in `/lost+found/<id>`. */
export interface FsckLostObject {
  /** The object's ID (32 hex digits). */
  id: string;
  /** One line: why it is there. */
  reason: string;
}

/** Options for {@linkcode fsck}. */
export interface FsckOptions {
  /**
   * Repair what can be repaired safely, through the metadata log.
   * @default {false}
   */
  repair?: boolean;
  /**
   * Ask for user-space (libtwz) structures too. The kernel cannot import
   * libtwz, so this only adds a note saying they were skipped: use
   * `checkObjects` of `@twz/libtwz/check` (what `twz fsck --deep` runs).
   * @default {false}
   */
  deep?: boolean;
  /**
   * Verdicts of earlier runs to reuse (see {@linkcode FsckCache}): a table
   * slot whose bytes are those it held when last checked keeps its verdict.
   * Reports are the same with or without one.
   */
  cache?: FsckCache;
}

/**
 * The verdicts of fsck's per-slot checks (check and bounds), kept between
 * runs over images of one store: a run then checks again only the slots
 * whose 64 bytes differ from those the cache last saw at that index, and
 * takes the others' verdicts as they were. A verdict depends on nothing but
 * the slot's bytes, its index and the geometry (store seed, table, data
 * blocks), and the cache starts afresh when the geometry differs, so reusing
 * one weakens no check. The crash checker passes one to the fsck of every
 * crash state: crash states of one run differ in a few lines, not in the
 * table's thousand slots. Memory: a copy of the table (64 bytes a slot).
 *
 * @example
 * ```ts ignore
 * import { fsck, FsckCache } from "@twz/kernel";
 * const cache = new FsckCache();
 * for (const image of images) console.log(fsck(image, { cache }).clean);
 * ```
 */
export class FsckCache {
  #key = "";
  /** The table's bytes as last checked, slot by slot. */
  #table = new Uint8Array(0);
  #words = new Int32Array(0);
  /** Whether `#table` and `#verdicts` hold every slot (after the first call). */
  #filled = false;
  #verdicts: Array<string | undefined> = [];
  /** Slots checked (not taken from the cache) since it was made: for tests. */
  checked = 0;

  /**
   * The verdict ({@linkcode slotProblem}) of every slot of `g` in `bytes`
   * (`view` over them), checking only slots that changed since the last call.
   * The array returned is reused by the next call.
   */
  slotVerdicts(bytes: Uint8Array, view: DataView, g: Geometry): ReadonlyArray<string | undefined> {
    const key = `${g.seed}:${g.tableOffset}:${g.tableSlots}:${g.dataBlocks}`;
    const n = g.tableSlots;
    if (key !== this.#key) {
      this.#key = key;
      this.#table = new Uint8Array(n * SLOT);
      this.#words = new Int32Array(this.#table.buffer);
      this.#filled = false;
      this.#verdicts = new Array(n).fill(undefined);
    }
    const table = this.#table, verdicts = this.#verdicts;
    const check = (i: number) => {
      const off = g.tableOffset + i * SLOT;
      verdicts[i] = slotProblem(view, g, i);
      table.set(bytes.subarray(off, off + SLOT), i * SLOT);
      this.checked++;
    };
    if (!this.#filled) {
      for (let i = 0; i < n; i++) check(i);
      this.#filled = true;
      return verdicts;
    }
    // One pass over the table, a word (or a byte) at a time; a slot that
    // differs anywhere is checked again.
    const at = bytes.byteOffset + g.tableOffset;
    if (at % 4 === 0 && g.tableOffset + n * SLOT <= bytes.length) {
      const words = new Int32Array(bytes.buffer, at, n * (SLOT / 4));
      const mine = this.#words;
      for (let w = 0; w < words.length; w++) {
        if (words[w] !== mine[w]) {
          const i = w >>> 4; // 16 words a slot
          check(i);
          w = (i + 1) * 16 - 1;
        }
      }
    } else {
      for (let k = 0; k < n * SLOT; k++) {
        if (bytes[g.tableOffset + k] !== table[k]) {
          const i = Math.floor(k / SLOT);
          check(i);
          k = (i + 1) * SLOT - 1;
        }
      }
    }
    return verdicts;
  }
}

/** Counts fsck saw. */
export interface FsckSummary {
  objects: number;
  edges: number;
  tombstones: number;
  tableSlots: number;
  dataBlocks: number;
  usedBlocks: number;
  /** `empty`, `committed` (boot replays it), `torn` (boot ignores it) or `garbage`. */
  log: "empty" | "committed" | "torn" | "garbage";
}

/** What {@linkcode fsck} found and did. */
export interface FsckReport {
  /**
   * `true` when no problem remains (after repairs, with `repair`), no
   * object had to be put aside for `/lost+found` and nothing was dropped.
   */
  clean: boolean;
  /** Problems found by the first check. */
  problems: FsckProblem[];
  /** What `repair` did, one line each (empty without `repair`). */
  repairs: string[];
  /** Problems left after repairs (the same as `problems` without `repair`). */
  remaining: FsckProblem[];
  /** Facts worth knowing that are not problems. */
  notes: string[];
  /**
   * Objects for `/lost+found`: objects fsck cannot trust (kept as they are)
   * and objects a repair made over blocks no trusted object owns.
   */
  lostFound: FsckLostObject[];
  /**
   * What a repair could not keep, one line each: tie edges it could neither
   * restore nor keep (each a dependent no longer tied to its parent). A
   * report with any is not clean. Empty without `repair`.
   */
  dropped: string[];
  /** The root object's ID (32 hex digits) as the image now records it, if any. */
  rootObject?: string;
  /** Counts; absent when the superblock cannot be read. */
  summary?: FsckSummary;
}

/**
 * An image fsck reads piece by piece, so that it never holds (or copies) all
 * of it: `region.bytes` is as long as the image, but only the ranges passed
 * to `load` need hold the image's contents (a file reader backs it with a
 * lazily allocated buffer). Repairs write `region.bytes` and make them
 * durable with `region.flush` and `region.drain`. The bytes must be private
 * to fsck: a check replays a committed log in place, without flushing, and
 * puts the bytes back before it returns.
 */
export interface FsckImage {
  /** The image's bytes (loaded ranges only) and its durability operations. */
  readonly region: PersistentRegion;
  /** Make bytes `[offset, offset + length)` of `region.bytes` hold the image's. Idempotent. */
  load(offset: number, length: number): void;
}

/** A planned repair: writes through a MetaTx, plus what it says. */
interface Plan {
  slots: Map<number, Uint8Array>;
  words: Map<number, number>;
  clearLog: boolean;
  /** A superblock copy to write (the primary from its backup, or the backup). */
  superblock?: { at: number; bytes: Uint8Array };
  rebuildRoot: boolean;
  /** The root object the rebuilt root record names. */
  rootObject: ObjID;
  lines: string[];
}

interface Analysis {
  problems: FsckProblem[];
  notes: string[];
  lostFound: FsckLostObject[];
  /** What the plan loses (ties it cannot restore), one line each. */
  dropped: string[];
  summary?: FsckSummary;
  plan: Plan;
  geometry?: Geometry;
  replayLog: boolean;
  rootObject: ObjID;
}

interface Source {
  bytes: Uint8Array;
  load(offset: number, length: number): void;
  /** Whether `bytes` are private to this call (an FsckImage's), so a replay may go in place. */
  private: boolean;
}

const hexId = (id: ObjID) => formatId(id);

/** IDs of recovered objects: "lost+fou" in the upper 64 bits, the first block below. */
const RECOVERED_HI = 0x6c6f73742b666f75n;

/**
 * Whether `id` names an object a repair made over blocks it could not place
 * (see {@linkcode FsckReport.lostFound}): such IDs hold "lost+fou" in their
 * upper 64 bits and the object's first block below.
 *
 * @param id An object ID.
 * @returns `true` for an object `fsck --repair` recovered.
 * @example
 * ```ts
 * import { isRecoveredId } from "@twz/kernel";
 * console.log(isRecoveredId(0x6c6f73742b666f75_0000000000000050n)); // true
 * ```
 */
export function isRecoveredId(id: ObjID): boolean {
  return id >> 64n === RECOVERED_HI;
}
/** How many IDs fsck tries in all on tie edges whose parent or dependent ID is damaged. */
const ID_TRIES = 1 << 21;
/** The largest recovered object, in blocks (its size must fit a u32). */
const MAX_RECOVERED_BLOCKS = Math.floor(0xffffffff / BLOCK);

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

interface Slot {
  i: number;
  id: ObjID;
  start: number;
  blocks: number;
  size: number;
  ties: number;
  prot: number;
}

/** Check the image behind `src` (its bytes are left as they were). */
function analyze(src: Source, deep: boolean, cache?: FsckCache): Analysis {
  const overlay: Array<[number, Uint8Array]> = [];
  try {
    return analyzeReplayed(src, deep, overlay, cache);
  } finally {
    for (let k = overlay.length - 1; k >= 0; k--) src.bytes.set(overlay[k][1], overlay[k][0]);
  }
}

/**
 * {@linkcode analyze}, seeing a committed log as replayed: its records are
 * applied to `src.bytes`, their original bytes pushed on `overlay`.
 */
function analyzeReplayed(
  src: Source,
  deep: boolean,
  overlay: Array<[number, Uint8Array]>,
  cache?: FsckCache,
): Analysis {
  const problems: FsckProblem[] = [];
  const notes: string[] = [];
  const lostFound: FsckLostObject[] = [];
  const dropped: string[] = [];
  const plan: Plan = {
    slots: new Map(),
    words: new Map(),
    clearLog: false,
    rebuildRoot: false,
    rootObject: 0n,
    lines: [],
  };
  const problem = (area: FsckArea, message: string, repairable: boolean) =>
    problems.push({ area, message, repairable });
  const none = { problems, notes, lostFound, dropped, plan, replayLog: false, rootObject: 0n };
  const image = src.bytes;
  src.load(0, Math.min(image.length, PAGE));

  // Superblock: the primary, else its backup copy (which repair copies back).
  let g: Geometry;
  const backup = (): Geometry | undefined => {
    try {
      return decodeBackupSuperblock(image);
    } catch (error) {
      if (!(error instanceof TwzError)) throw error;
      return undefined;
    }
  };
  const primaryBytes = image.subarray(0, SUPERBLOCK_BYTES);
  const backupBytes = () =>
    image.subarray(SUPERBLOCK_BACKUP_OFFSET, SUPERBLOCK_BACKUP_OFFSET + SUPERBLOCK_BYTES);
  try {
    if (isBlank(image)) {
      throw new TwzError(
        ErrorCode.ImageCorrupt,
        "the superblock is blank: the image was never formatted, or its superblock was wiped",
      );
    }
    g = decodeSuperblock(image);
    const b = backup();
    const differs = backupBytes().findIndex((x, i) => x !== primaryBytes[i]);
    if (!b) {
      problem(
        "superblock",
        `the backup superblock (at offset ${SUPERBLOCK_BACKUP_OFFSET}) is damaged`,
        true,
      );
      plan.superblock = { at: SUPERBLOCK_BACKUP_OFFSET, bytes: primaryBytes.slice() };
      plan.lines.push("rewrote the backup superblock from the superblock");
    } else if (differs >= 0) {
      // Both copies intact, yet different: a wrong value sealed with its CRC
      // in one of them. The right one is the one the metadata agrees with
      // (the store ID seeds every slot's check; the geometry must fit the
      // objects' extents and the bitmap's lines); when neither wins clearly,
      // nothing is chosen and nothing written.
      const what =
        `the superblock and its backup copy (at offset ${SUPERBLOCK_BACKUP_OFFSET}) disagree (field ${
          superblockField(differs)
        })`;
      src.load(0, Math.max(g.dataOffset, b.dataOffset));
      const choice = chooseSuperblock(image, g, b, primaryBytes, backupBytes());
      if (choice.pick === "backup") {
        problem("superblock", `${what}; ${choice.why}: the backup copy is right`, true);
        plan.superblock = { at: 0, bytes: backupBytes().slice() };
        plan.lines.push(`restored the superblock from its backup copy (${choice.why})`);
        g = b;
      } else if (choice.pick === "primary") {
        problem("superblock", `${what}; ${choice.why}: the superblock is right`, true);
        plan.superblock = { at: SUPERBLOCK_BACKUP_OFFSET, bytes: primaryBytes.slice() };
        plan.lines.push(`rewrote the backup superblock from the superblock (${choice.why})`);
      } else {
        problem(
          "superblock",
          `${what}; ${choice.why}: neither copy is chosen and nothing is repaired (compare them, then copy the right one over the other)`,
          false,
        );
        return none;
      }
    }
  } catch (error) {
    if (!(error instanceof TwzError)) throw error;
    const b = error.code === ErrorCode.ImageUnsupported ? undefined : backup();
    if (!b) {
      problem("superblock", error.message, false);
      return none;
    }
    problem(
      "superblock",
      `${error.message}; its backup copy (at offset ${SUPERBLOCK_BACKUP_OFFSET}) is intact`,
      true,
    );
    plan.superblock = { at: 0, bytes: backupBytes().slice() };
    plan.lines.push("restored the superblock from its backup copy");
    g = b;
  }
  src.load(0, g.dataOffset);
  /** The first `length` bytes of object data at block `start` (loaded on demand). */
  const objectBytes = (start: number, length: number): Uint8Array => {
    const at = g.dataOffset + start * BLOCK;
    src.load(at, length);
    return image.subarray(at, at + length);
  };

  // The log: check it as boot would, and look at the metadata as boot would see it.
  let bytes = image;
  const isMetadata = metadataTest(g);
  const parsed = parseLog(
    new DataView(image.buffer, image.byteOffset, image.byteLength),
    g.logOffset,
    g.logSize,
    isMetadata,
  );
  if (parsed.state === "garbage" && parsed.outside) parsed.bad += " (boot refuses such an image)";
  let replayLog = false;
  if (parsed.bad) {
    problem("log", parsed.bad, true);
    plan.clearLog = true;
    plan.lines.push("cleared the metadata log header");
  } else if (parsed.state === "torn") {
    notes.push("the log holds an uncommitted (torn) transaction; boot ignores it");
  } else if (parsed.state === "committed") {
    let differs = false;
    for (const [offset, from, length] of parsed.records) {
      for (let k = 0; k < length && !differs; k++) {
        if (image[offset + k] !== image[from + k]) differs = true;
      }
    }
    if (differs) {
      notes.push(
        `the log holds a committed transaction of ${parsed.records.length} records not yet applied; boot replays it (checked as replayed)`,
      );
      replayLog = true;
      if (src.private) {
        // Replayed in place, over the loaded metadata; `analyze` puts the
        // original bytes back (an overlay of just the bytes the log touches).
        for (const [offset, from, length] of parsed.records) {
          overlay.push([offset, image.slice(offset, offset + length)]);
          image.copyWithin(offset, from, from + length);
        }
      } else {
        // A region others may see is never written: replay into a copy of
        // the metadata area (in a lazily allocated array as long as the
        // image: the data area is never touched, so it costs no memory).
        const copy = new Uint8Array(image.length);
        copy.set(image.subarray(0, g.dataOffset));
        for (const [offset, from, length] of parsed.records) {
          copy.copyWithin(offset, from, from + length);
        }
        bytes = copy;
      }
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const table = new Table(view, g);
  const mask = g.tableSlots - 1;
  const slotAt = (i: number) => g.tableOffset + i * SLOT;

  // Root record.
  const ro = g.rootOffset;
  const root = decodeRoot(bytes, ro);
  let rootOk = root !== undefined;
  if (!rootOk) problem("root", "the root record is damaged (bad magic or checksum)", true);

  // Object table: every slot is verified (check and bounds).
  const objects: Slot[] = [];
  const byId = new Map<ObjID, number>();
  /** Object records fsck cannot trust: kept as they are, their blocks never freed. */
  const untrusted: Array<{ s: Slot; why: string }> = [];
  let edges = 0;
  let tombstones = 0;
  let nonEmpty = 0;
  const edgeSlots: number[] = [];
  const damaged: Array<{ i: number; why: string }> = [];
  const planSlot = (i: number, data: Uint8Array, line: string) => {
    plan.slots.set(slotAt(i), sealSlot(data.slice(), i, g.seed));
    plan.lines.push(line);
  };
  const readSlot = (i: number, v: DataView = view, off = slotAt(i)): Slot => ({
    i,
    id: readId(v, off),
    prot: v.getUint16(off + 18, true),
    start: v.getUint32(off + 20, true),
    blocks: v.getUint32(off + 24, true),
    size: v.getUint32(off + 28, true),
    ties: v.getUint32(off + 48, true),
  });
  const inBounds = (s: Slot) =>
    isValidId(s.id) && s.blocks >= 1 && s.start + s.blocks <= g.dataBlocks;
  const kept = new Uint8Array(g.dataBlocks);
  const keep = (s: { start: number; blocks: number }) => {
    const end = Math.min(g.dataBlocks, s.start + s.blocks);
    for (let b = Math.max(0, s.start); b < end; b++) kept[b] = 1;
  };
  /**
   * Keep a record fsck cannot trust. Its extent's blocks are kept too unless
   * `ownExtent` is false (the extent reaches a sound object's blocks, so its
   * first block is wrong: its true blocks, unowned, are recovered below).
   */
  const distrust = (s: Slot, message: string, why: string, ownExtent = true) => {
    problem("table", `${message} (not repaired: kept as it is, for /lost+found)`, false);
    untrusted.push({ s, why });
    if (ownExtent && inBounds(s)) keep(s);
  };
  const verdicts = cache?.slotVerdicts(bytes, view, g);
  for (let i = 0; i < g.tableSlots; i++) {
    const off = slotAt(i);
    const state = bytes[off + 16];
    if (state !== EMPTY) nonEmpty++;
    const bad = verdicts ? verdicts[i] : slotProblem(view, g, i);
    if (bad) {
      damaged.push({ i, why: bad });
      continue;
    }
    if (state === OBJECT) {
      const s = readSlot(i);
      if (byId.has(s.id)) {
        distrust(
          s,
          `object ${hexId(s.id)} is in two slots (${objects[byId.get(s.id)!].i} and ${i})`,
          "its ID is in two table slots",
        );
        continue;
      }
      byId.set(s.id, objects.length);
      objects.push(s);
    } else if (state === EDGE) {
      edges++;
      edgeSlots.push(i);
    } else if (state === TOMB) tombstones++;
  }

  // Data blocks: which sound object owns each. Two sound records never
  // overlap unless the kernel erred; then the first keeps the blocks and the
  // other is not trusted (never freed).
  const owner = new Int32Array(g.dataBlocks).fill(-1);
  const claim = (n: number) => {
    const s = objects[n];
    for (let b = s.start; b < s.start + s.blocks; b++) owner[b] = n;
  };
  const firstOwned = (s: { start: number; blocks: number }): number => {
    for (let b = s.start; b < s.start + s.blocks; b++) if (owner[b] >= 0) return b;
    return -1;
  };
  {
    const all = objects.splice(0);
    byId.clear();
    for (const s of all) {
      const b = firstOwned(s);
      if (b >= 0) {
        const o = objects[owner[b]];
        distrust(
          s,
          `objects ${hexId(o.id)} (slot ${o.i}) and ${
            hexId(s.id)
          } (slot ${s.i}) overlap at block ${b}; the blocks stay with ${hexId(o.id)}`,
          `its extent overlaps object ${hexId(o.id)}`,
          false,
        );
        continue;
      }
      byId.set(s.id, objects.length);
      objects.push(s);
      claim(objects.length - 1);
    }
  }
  const bitSet = (b: number) =>
    (u32(bytes, g.bitmapOffset + (b >>> 5) * 4) & (1 << (b & 31))) !== 0;
  const lines = bitmapLines(g.dataBlocks);
  const lineOk = new Uint8Array(lines);
  for (let l = 0; l < lines; l++) lineOk[l] = lineSealed(view, g, l) ? 1 : 0;
  /** Whether block `b` may hold data: marked used, or its bitmap line is damaged. */
  const mayBeUsed = (b: number) => bitSet(b) || !lineOk[b >>> 9];

  // Damaged slots. A slot whose check holds once one field is given back a
  // value it can have had (its state, flags, protections, block count,
  // size, tie count or first block) is proven: restore it. Otherwise an
  // object record is kept as it is (never freed), anything else becomes a
  // tombstone (it keeps probe chains whole); blocks it held are kept below.
  const scratch = new Uint8Array(SLOT);
  const sv = new DataView(scratch.buffer);
  const tries = (i: number, set: (v: DataView) => void): boolean => {
    scratch.set(bytes.subarray(slotAt(i), slotAt(i) + SLOT));
    set(sv);
    return slotProblem(sv, { ...g, tableOffset: -i * SLOT }, i) === undefined;
  };
  let startSearches = 0;
  let idTries = ID_TRIES;
  let idList: Array<{ id: ObjID; ties: number }> | undefined;
  /**
   * The IDs of every object record (sound, not trusted, or damaged with a
   * valid ID) and their tie counts (unbounded for a damaged record's).
   */
  const objectIds = () => {
    if (idList) return idList;
    const all = new Map<ObjID, number>(objects.map((s) => [s.id, s.ties]));
    for (const { s } of untrusted) if (isValidId(s.id)) all.set(s.id, Infinity);
    for (const { i } of damaged) {
      const id = readId(view, slotAt(i));
      if (bytes[slotAt(i) + 16] === OBJECT && isValidId(id)) all.set(id, Infinity);
    }
    return idList = [...all].map(([id, ties]) => ({ id, ties }));
  };
  let edgeCount: Map<ObjID, number> | undefined;
  /** How many sound tie edges name each parent (a tie count's likely value). */
  const edgesOf = () => {
    if (edgeCount) return edgeCount;
    edgeCount = new Map();
    for (const e of edgeSlots) {
      const p = readId(view, slotAt(e));
      edgeCount.set(p, (edgeCount.get(p) ?? 0) + 1);
    }
    return edgeCount;
  };
  const prove = (i: number): Uint8Array | undefined => {
    const off = slotAt(i);
    // A check of 0 is never valid: a zeroed slot changed in one field stays invalid.
    if (view.getUint32(off + 52, true) === 0) return undefined;
    const blocks = view.getUint32(off + 24, true), size = view.getUint32(off + 28, true);
    const id = readId(view, off);
    const candidates: Array<(v: DataView) => void> = [];
    for (const st of [OBJECT, EMPTY, TOMB, EDGE]) candidates.push((v) => v.setUint8(16, st));
    candidates.push((v) => v.setUint8(17, 0));
    for (let p = 0; p <= Prot.All; p++) candidates.push((v) => v.setUint16(18, p, true));
    candidates.push((v) => v.setUint32(24, Math.ceil(size / BLOCK), true));
    if (blocks >= 1 && blocks <= MAX_RECOVERED_BLOCKS) {
      for (let z = (blocks - 1) * BLOCK + 1; z <= blocks * BLOCK; z++) {
        candidates.push((v) => v.setUint32(28, z, true));
      }
    }
    const ties = edgesOf().get(id) ?? 0;
    for (const t of [ties, ties + 1]) candidates.push((v) => v.setUint32(48, t, true));
    for (const c of candidates) if (tries(i, c)) return scratch.slice();
    // A tie edge whose parent or dependent ID is damaged: give it back the
    // ID of each object the table holds (the check proves the right one).
    // A parent must have more ties than the edge's index (a damaged record's
    // count is not trusted: it stays a candidate). Bounded: at most
    // ID_TRIES tries in all.
    if (view.getUint8(off + 16) === EDGE) {
      const k = view.getUint32(off + 48, true);
      for (const at of [0, 32]) {
        for (const x of objectIds()) {
          if (at === 0 && x.ties <= k) continue;
          if (idTries-- <= 0) break;
          if (tries(i, (v) => writeId(v, at, x.id))) return scratch.slice();
        }
      }
    }
    // The first block: try every start whose blocks no sound object owns.
    if (blocks >= 1 && blocks <= g.dataBlocks && startSearches++ < 16) {
      let run = 0;
      for (let b = 0; b < g.dataBlocks; b++) {
        run = owner[b] < 0 && mayBeUsed(b) ? run + 1 : 0;
        if (run >= blocks && tries(i, (v) => v.setUint32(20, b - blocks + 1, true))) {
          return scratch.slice();
        }
      }
    }
    return undefined;
  };
  let unproven = 0;
  /** Extents that become recovered objects: of damaged records, then of orphan runs. */
  const salvage: Array<{ start: number; n: number; reason: string }> = [];
  for (const { i, why } of damaged) {
    const off = slotAt(i);
    const raw = readSlot(i);
    const state = bytes[off + 16];
    const fixed = prove(i);
    if (fixed) {
      const fv = new DataView(fixed.buffer);
      const was = fixed[16];
      const changed = describeChange(bytes.subarray(off, off + SLOT), fixed);
      if (was === OBJECT) {
        const s = readSlot(i, fv, 0);
        if (!byId.has(s.id) && firstOwned(s) < 0) {
          problem(
            "table",
            `slot ${i} fails its check (${why}); its record of object ${
              hexId(s.id)
            } checks again with ${changed}`,
            true,
          );
          plan.slots.set(off, fixed);
          plan.lines.push(`slot ${i}: restored object ${hexId(s.id)} (${changed})`);
          byId.set(s.id, objects.length);
          objects.push(s);
          claim(objects.length - 1);
          if (state === EMPTY) nonEmpty++;
          continue;
        }
      } else {
        problem(
          "table",
          `slot ${i} fails its check (${why}); it checks again with ${changed}`,
          true,
        );
        plan.slots.set(off, fixed);
        plan.lines.push(`slot ${i}: restored its record (${changed})`);
        if (was === EMPTY && state !== EMPTY) nonEmpty--;
        if (was !== EMPTY && state === EMPTY) nonEmpty++;
        if (was === TOMB) tombstones++;
        if (was === EDGE) {
          edges++;
          edgeSlots.push(i);
        }
        continue;
      }
    }
    if (state === OBJECT && isValidId(raw.id) && inBounds(raw) && firstOwned(raw) < 0) {
      // Its extent is plausible (inside the data area, no sound object's
      // blocks): its record becomes a tombstone and its blocks an object of
      // their own, for /lost+found.
      unproven++;
      const end = raw.start + raw.blocks - 1;
      problem(
        "table",
        `slot ${i} holds object ${
          hexId(raw.id)
        } but fails its check (${why}) and cannot be restored: its blocks ${raw.start}-${end} become a recovered object for /lost+found`,
        true,
      );
      planSlot(
        i,
        tombRecord(),
        `slot ${i}: made a tombstone of the damaged record of ${hexId(raw.id)}`,
      );
      tombstones++;
      for (let b = raw.start; b <= end; b++) kept[b] = 1;
      salvage.push({
        start: raw.start,
        n: raw.blocks,
        reason: `was object ${hexId(raw.id)} (slot ${i}: ${why}); blocks ${raw.start}-${end}`,
      });
      continue;
    }
    unproven++;
    if (state === EDGE) {
      // Neither its parent nor its dependent could be proven: the tie it
      // kept is lost (the repair says so and is not clean).
      const parent = readId(view, off), child = readId(view, off + 32);
      const named = [
        isValidId(parent) ? `parent ${hexId(parent)}` : "",
        isValidId(child) ? `dependent ${hexId(child)}` : "",
      ].filter((x) => x !== "").join(", ");
      const tie = `the tie edge in slot ${i}${named ? ` (${named}, as it reads)` : ""}`;
      problem(
        "ties",
        `${tie} fails its check (${why}) and cannot be restored: repair removes it, and the tie it kept is lost`,
        true,
      );
      planSlot(i, tombRecord(), `slot ${i}: made a tombstone of a damaged tie edge`);
      dropped.push(`${tie} could not be restored: a dependent is no longer tied to its parent`);
      tombstones++;
      continue;
    }
    problem(
      "table",
      `slot ${i} fails its check (${why}) and cannot be restored: it becomes a tombstone; blocks it held are kept`,
      true,
    );
    planSlot(i, tombRecord(), `slot ${i}: made a tombstone of a damaged slot`);
    if (state === EMPTY) nonEmpty++;
    tombstones++;
  }

  // Reachability: linear probing stops at an empty slot, so every object must
  // be reachable from its home slot without crossing one.
  const planned = (i: number) => plan.slots.get(slotAt(i))?.[16];
  const stateOf = (i: number) => planned(i) ?? bytes[slotAt(i) + 16];
  const probeFix = (home: number, i: number, what: string) => {
    const blockers: number[] = [];
    for (let j = home; j !== i; j = (j + 1) & mask) if (stateOf(j) === EMPTY) blockers.push(j);
    if (blockers.length === 0) return;
    problem(
      "table",
      `${what} in slot ${i} is unreachable: empty slot${blockers.length > 1 ? "s" : ""} ${
        blockers.join(", ")
      } break${blockers.length > 1 ? "" : "s"} its probe chain`,
      true,
    );
    for (const j of blockers) {
      planSlot(j, tombRecord(), `slot ${j}: made a tombstone so that slot ${i} is reachable again`);
      nonEmpty++;
      tombstones++;
    }
  };
  for (const s of objects) probeFix(table.homeOfObject(s.id), s.i, `object ${hexId(s.id)}`);
  for (const { s } of untrusted) {
    if (isValidId(s.id)) probeFix(table.homeOfObject(s.id), s.i, `object ${hexId(s.id)}`);
  }

  // Tie edges.
  const seenEdge = new Set<string>();
  for (const i of edgeSlots) {
    const off = slotAt(i);
    const ev = plan.slots.has(off)
      ? new DataView(plan.slots.get(off)!.buffer)
      : new DataView(bytes.buffer, bytes.byteOffset + off, SLOT);
    const parent = readId(ev, 0);
    const child = readId(ev, 32);
    const k = ev.getUint32(48, true);
    const p = byId.has(parent) ? objects[byId.get(parent)!] : undefined;
    const drop = (why: string) => {
      problem("ties", `tie edge in slot ${i} ${why}`, true);
      planSlot(i, tombRecord(), `slot ${i}: removed a tie edge that ${why}`);
      edges--;
      tombstones++;
    };
    if (!p) {
      if (untrusted.some((u) => u.s.id === parent)) {
        // Its parent's record is not trusted: the edge stays with it.
        probeFix(table.homeOfEdge(parent, k), i, `tie edge ${k} of ${hexId(parent)}`);
        continue;
      }
      drop(`names parent ${hexId(parent)}, which does not exist`);
    } else if (!isValidId(child)) drop(`names an invalid dependent ${hexId(child)}`);
    else if (k >= p.ties) drop(`has index ${k} beyond its parent's ${p.ties} ties`);
    else if (seenEdge.has(`${parent}:${k}`)) drop(`duplicates edge ${k} of ${hexId(parent)}`);
    else {
      seenEdge.add(`${parent}:${k}`);
      probeFix(table.homeOfEdge(parent, k), i, `tie edge ${k} of ${hexId(parent)}`);
    }
  }

  // Bitmap against ownership. A line failing its check is rebuilt from the
  // table. Allocated blocks no sound object owns are freed only when the
  // table shows no damage (then the bitmap was wrong); otherwise they may
  // hold a damaged record's data, so they are kept, as recovered objects.
  let usedBits = 0;
  let owned = 0;
  let unmarked = 0;
  const unmarkedList: number[] = [];
  const orphan = new Uint8Array(g.dataBlocks); // allocated, unowned, not kept
  let orphans = 0;
  let soundLineDisagrees = false;
  for (let b = 0; b < g.dataBlocks; b++) {
    const has = bitSet(b);
    if (has) usedBits++;
    if (owner[b] >= 0) {
      owned++;
      if (!has) {
        unmarked++;
        if (unmarkedList.length < 8) unmarkedList.push(b);
        if (lineOk[b >>> 9]) soundLineDisagrees = true;
      }
    } else if (has && !kept[b]) {
      orphan[b] = 1;
      orphans++;
      if (lineOk[b >>> 9]) soundLineDisagrees = true;
    }
  }
  const badLines: number[] = [];
  for (let l = 0; l < lines; l++) if (!lineOk[l]) badLines.push(l);
  if (badLines.length > 0) {
    const first = badLines[0] * BLOCKS_PER_LINE;
    problem(
      "bitmap",
      `${badLines.length} bitmap line(s) fail their check: line ${badLines.slice(0, 8).join(", ")}${
        badLines.length > 8 ? ", ..." : ""
      } (blocks ${first}-${Math.min(g.dataBlocks, first + BLOCKS_PER_LINE) - 1}${
        badLines.length > 1 ? ", ..." : ""
      }); rebuilt from the table`,
      true,
    );
    plan.lines.push(`bitmap: rebuilt ${badLines.length} damaged line(s) from the table`);
  }
  const tableDamaged = untrusted.length > 0 || unproven > 0 || soundLineDisagrees;
  const recover = orphans > 0 && tableDamaged;
  const runs: Array<[number, number]> = [];
  for (let b = 0; orphans > 0 && b < g.dataBlocks; b++) {
    if (!orphan[b]) continue;
    let e = b;
    while (e < g.dataBlocks && orphan[e] && e - b < MAX_RECOVERED_BLOCKS) e++;
    runs.push([b, e - b]);
    b = e - 1;
  }
  const runList = (r: Array<[number, number]>) =>
    r.slice(0, 8).map(([b, n]) => (n === 1 ? `${b}` : `${b}-${b + n - 1}`)).join(", ") +
    (r.length > 8 ? ", ..." : "");
  if (recover) {
    for (const [start, n] of runs) {
      salvage.push({
        start,
        n,
        reason: `blocks ${start}-${start + n - 1} were allocated but owned by no sound object`,
      });
    }
  }
  // Each salvaged extent becomes an object over its blocks, in a free slot on its probe chain.
  for (const { start, n, reason } of salvage) {
    const id = (RECOVERED_HI << 64n) | BigInt(start);
    let slot = -1;
    for (let k = 0, j = table.homeOfObject(id); k < g.tableSlots && !byId.has(id); k++) {
      const st = stateOf(j);
      if (st === EMPTY || st === TOMB) {
        slot = j;
        break;
      }
      j = (j + 1) & mask;
    }
    if (slot < 0) {
      // No free slot: the blocks stay allocated all the same.
      for (let b = start; b < start + n; b++) kept[b] = 1;
      continue;
    }
    if (stateOf(slot) === EMPTY) nonEmpty++;
    else tombstones--;
    planSlot(
      slot,
      encodeObject({
        id,
        prot: Prot.Read | Prot.Write,
        start,
        blocks: n,
        size: n * BLOCK,
        keyId: 0n,
        ties: 0,
        created: 0,
      }),
      `slot ${slot}: made object ${hexId(id)} over blocks ${start}-${start + n - 1} (${reason})`,
    );
    lostFound.push({ id: hexId(id), reason });
    byId.set(id, objects.length);
    objects.push({ i: slot, id, start, blocks: n, size: n * BLOCK, ties: 0, prot: 3 });
    claim(objects.length - 1);
    owned += n;
  }
  if (recover) {
    problem(
      "bitmap",
      `${orphans} allocated block(s) belong to no sound object while the table is damaged: ${
        runList(runs)
      }; they become recovered objects for /lost+found`,
      true,
    );
  } else if (orphans > 0) {
    const first: number[] = [];
    for (const [b, n] of runs) for (let k = 0; k < n && first.length < 8; k++) first.push(b + k);
    problem(
      "bitmap",
      `${orphans} block(s) marked used belong to no object (leaked): ${first.join(", ")}${
        orphans > first.length ? ", ..." : ""
      }`,
      true,
    );
    plan.lines.push(`bitmap: freed ${orphans} leaked block(s)`);
  }
  let keptFree = 0;
  for (let b = 0; b < g.dataBlocks; b++) if (kept[b] && owner[b] < 0 && !bitSet(b)) keptFree++;
  if (keptFree > 0) {
    problem(
      "bitmap",
      `${keptFree} block(s) named by records fsck cannot trust are marked free; they are kept (marked used)`,
      true,
    );
    plan.lines.push(`bitmap: marked ${keptFree} block(s) of untrusted records used`);
  }
  if (unmarked > 0) {
    problem(
      "bitmap",
      `${unmarked} block(s) of live objects are marked free (could be handed out twice): ${
        unmarkedList.join(", ")
      }${unmarked > unmarkedList.length ? ", ..." : ""}`,
      true,
    );
    plan.lines.push(`bitmap: marked ${unmarked} block(s) of live objects used`);
  }
  // The words to write: owned blocks set, orphans cleared unless recovered,
  // kept blocks set too (never handed out while a record may own them);
  // then the check of every line changed or damaged.
  const words = Math.ceil(g.dataBlocks / 32);
  const changedLines = new Set<number>(badLines);
  for (let w = 0; w < words; w++) {
    const at = g.bitmapOffset + w * 4;
    const word = u32(bytes, at);
    let want = 0;
    for (let bit = 0; bit < 32; bit++) {
      const b = w * 32 + bit;
      if (b >= g.dataBlocks) break;
      if (owner[b] >= 0 || kept[b]) want |= 1 << bit;
    }
    want >>>= 0;
    if (word !== want) {
      plan.words.set(at, want);
      changedLines.add(w >>> 4);
    }
  }
  for (const l of changedLines) {
    plan.words.set(
      lineCheckOffset(g, l),
      lineCheck(g, l, (o) => plan.words.get(o) ?? u32(bytes, o)),
    );
  }
  for (const { s, why } of untrusted) {
    if (isValidId(s.id)) lostFound.push({ id: hexId(s.id), reason: `slot ${s.i}: ${why}` });
  }

  // The root object: the root record names it; when the record is damaged or
  // names an object that is not there, look for it by its meta-info (libtwz
  // marks the kernel's root object with the Root flag).
  const rawRoot = readId(view, ro + 32);
  let rootObject = root ? root.rootObject : rawRoot;
  const exists = (id: ObjID) =>
    isValidId(id) && (byId.has(id) || untrusted.some((u) => u.s.id === id));
  if (!exists(rootObject)) {
    // The kernel makes it ROOT_OBJECT_SIZE bytes: those are read first (one
    // page each), every object only when none of them is it.
    const candidates: ObjID[] = [];
    for (
      const pass of [(n: number) => n === ROOT_OBJECT_SIZE, (n: number) => n !== ROOT_OBJECT_SIZE]
    ) {
      for (const s of objects) {
        if (!pass(s.size) || s.size < META_OFFSET + 8) continue;
        const m = objectBytes(s.start, META_OFFSET + 8);
        const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
        if (v.getUint32(META_OFFSET + MetaField.magic, true) !== OBJECT_MAGIC) continue;
        if (v.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Root) {
          candidates.push(s.id);
        }
      }
      if (candidates.length > 0) break;
    }
    const named = rootObject === 0n
      ? "names no root object"
      : `names root object ${hexId(rootObject)}, which does not exist`;
    if (candidates.length === 1) {
      if (root) {
        problem(
          "root",
          `the root record ${named}; object ${
            hexId(candidates[0])
          } is the root object (its meta-info says so)`,
          true,
        );
        rootOk = false;
      } else {
        notes.push(
          `the root object ${
            hexId(candidates[0])
          } was found by its meta-info (the damaged root record ${
            rawRoot === 0n ? "names none" : `names ${hexId(rawRoot)}`
          })`,
        );
      }
      rootObject = candidates[0];
    } else if (candidates.length > 1) {
      problem(
        "root",
        `the root record ${named}; ${candidates.length} objects claim to be the root object (${
          candidates.slice(0, 4).map(hexId).join(", ")
        }${candidates.length > 4 ? ", ..." : ""}): not chosen`,
        false,
      );
      rootObject = isValidId(rootObject) ? rootObject : 0n;
    } else if (root && rootObject !== 0n) {
      notes.push(
        `the root object ${hexId(rootObject)} does not exist (it is made again when asked for)`,
      );
    } else if (!root) {
      rootObject = isValidId(rawRoot) ? rawRoot : 0n;
    }
  }
  plan.rootObject = rootObject;

  // Root counters against what the table and bitmap say (as repaired).
  let keptUsed = 0;
  for (let b = 0; b < g.dataBlocks; b++) if (kept[b] && owner[b] < 0) keptUsed++;
  if (root) {
    const { objects: objectsCount, slotsUsed, freeBlocks, cursor } = root;
    const check = (what: string, has: number, want: number) => {
      if (has !== want) {
        problem("root", `the root record counts ${has} ${what}; the image holds ${want}`, true);
        rootOk = false;
      }
    };
    check("objects", objectsCount, objects.length + untrusted.length);
    check("used table slots", slotsUsed, nonEmpty);
    check("free blocks", freeBlocks, g.dataBlocks - owned - keptUsed);
    if (cursor > g.dataBlocks) {
      problem(
        "root",
        `the allocation cursor ${cursor} lies beyond the ${g.dataBlocks} blocks`,
        true,
      );
      rootOk = false;
    }
  }
  if (!rootOk) {
    plan.rebuildRoot = true;
    plan.lines.push(
      `rebuilt the root record from the table and bitmap${
        rootObject !== 0n ? `, keeping root object ${hexId(rootObject)}` : ""
      }`,
    );
  }
  if (deep) {
    notes.push(
      "deep: the kernel's fsck does not read libtwz structures (checkObjects of @twz/libtwz/check does; twz fsck --deep runs both); skipped",
    );
  }
  return {
    problems,
    notes,
    lostFound,
    dropped,
    plan,
    geometry: g,
    replayLog,
    rootObject,
    summary: {
      objects: objects.length + untrusted.length,
      edges,
      tombstones,
      tableSlots: g.tableSlots,
      dataBlocks: g.dataBlocks,
      usedBlocks: usedBits,
      log: parsed.state,
    },
  };
}

/** How much of the metadata fails under a geometry (see {@linkcode chooseSuperblock}). */
function geometryEvidence(
  bytes: Uint8Array,
  g: Geometry,
): { slots: number; lines: number; root: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let slots = 0;
  for (let i = 0; i < g.tableSlots; i++) if (slotProblem(view, g, i) !== undefined) slots++;
  let lines = 0;
  const n = bitmapLines(g.dataBlocks);
  for (let l = 0; l < n; l++) if (!lineSealed(view, g, l)) lines++;
  // The root record's counters: its free blocks are the data blocks the bitmap leaves.
  let root = 1;
  const r = decodeRoot(bytes, g.rootOffset);
  if (r) {
    let used = 0;
    for (let w = 0, words = Math.ceil(g.dataBlocks / 32); w < words; w++) {
      let x = u32(bytes, g.bitmapOffset + w * 4);
      if (w === words - 1 && g.dataBlocks % 32 !== 0) x &= (1 << (g.dataBlocks % 32)) - 1;
      for (; x !== 0; x &= x - 1) used++;
    }
    root = r.freeBlocks === g.dataBlocks - used && r.cursor <= g.dataBlocks ? 0 : 1;
  }
  return { slots, lines, root };
}

/**
 * Which of two intact but different superblock copies the image agrees with:
 * the one under which fewer table slots and bitmap lines fail their checks
 * and the root record's counters fit (clearly: at most half as many
 * failures); on a tie, the one format would have written for the image's
 * size (`canonicalSuperblock`), or the backup when they differ only in the
 * creation time; otherwise neither.
 */
function chooseSuperblock(
  bytes: Uint8Array,
  gp: Geometry,
  gb: Geometry,
  primary: Uint8Array,
  backup: Uint8Array,
): { pick: "primary" | "backup" | "neither"; why: string } {
  const p = geometryEvidence(bytes, gp), b = geometryEvidence(bytes, gb);
  const bp = p.slots + p.lines + p.root, bb = b.slots + b.lines + b.root;
  const said = (e: typeof p, g: Geometry) =>
    `${e.slots} of ${g.tableSlots} table slots and ${e.lines} bitmap line(s) fail their check${
      e.root ? ", the root record's counters do not fit" : ""
    }`;
  const why = `under the superblock ${said(p, gp)}; under the backup copy ${said(b, gb)}`;
  if (bb * 2 < bp) return { pick: "backup", why };
  if (bp * 2 < bb) return { pick: "primary", why };
  if (bp === bb) {
    const canonical = (g: Geometry, copy: Uint8Array) => {
      const c = canonicalSuperblock(g);
      return c !== undefined && c.every((x, i) => x === copy[i]);
    };
    const cp = canonical(gp, primary), cb = canonical(gb, backup);
    if (cb && !cp) {
      return { pick: "backup", why: `${why}; the backup copy holds the geometry format chose` };
    }
    if (cp && !cb) {
      return { pick: "primary", why: `${why}; the superblock holds the geometry format chose` };
    }
    let onlyCreated = true;
    for (let i = 0; i < SUPERBLOCK_BYTES; i++) {
      const f = superblockField(i);
      if (primary[i] !== backup[i] && f !== "created" && f !== "checksum") onlyCreated = false;
    }
    if (onlyCreated) {
      return { pick: "backup", why: `${why}; they differ only in the creation time` };
    }
  }
  return { pick: "neither", why };
}

/** A tombstone record (sealed by `planSlot` for its index). */
function tombRecord(): Uint8Array {
  const b = new Uint8Array(SLOT);
  b[16] = TOMB;
  return b;
}

/** Which field `fixed` gives back to the slot `was`, in words. */
function describeChange(was: Uint8Array, fixed: Uint8Array): string {
  const edge = fixed[16] === EDGE;
  const wv = new DataView(was.buffer, was.byteOffset, SLOT);
  const fv = new DataView(fixed.buffer, fixed.byteOffset, SLOT);
  for (const [name, at] of [[edge ? "parent ID" : "ID", 0], ["dependent ID", 32]] as const) {
    if (at === 32 && !edge) continue;
    const w = readId(wv, at), f = readId(fv, at);
    if (w !== f) return `its ${name} ${hexId(w)} restored to ${hexId(f)}`;
  }
  const fields: Array<[string, number, number]> = [
    ["state", 16, 1],
    ["flags", 17, 1],
    ["protections", 18, 2],
    ["first block", 20, 4],
    ["block count", 24, 4],
    ["size", 28, 4],
    [edge ? "edge index" : "tie count", 48, 4],
  ];
  for (const [name, at, n] of fields) {
    let v = 0, w = 0;
    for (let k = n - 1; k >= 0; k--) {
      v = v * 256 + fixed[at + k];
      w = w * 256 + was[at + k];
    }
    if (v !== w) return `its ${name} ${w} restored to ${v}`;
  }
  return "no field changed";
}

/** A region over plain bytes, for checking an image held in memory. */
function bytesRegion(bytes: Uint8Array): PersistentRegion {
  return {
    size: bytes.length,
    granularity: "byte",
    bytes,
    flush() {},
    drain() {},
    persist() {},
    share: () => {
      throw new TypeError("An in-memory fsck region cannot be shared");
    },
  };
}

function encodeRootFrom(bytes: Uint8Array, g: Geometry, a: Analysis): Uint8Array {
  const old = new DataView(bytes.buffer, bytes.byteOffset + g.rootOffset, 64);
  // Used slots and free blocks are counted again after the slot and bitmap fixes.
  let nonEmpty = 0;
  let objects = 0;
  for (let i = 0; i < g.tableSlots; i++) {
    const state = bytes[g.tableOffset + i * SLOT + 16];
    if (state !== EMPTY) nonEmpty++;
    if (state === OBJECT) objects++;
  }
  let used = 0;
  for (let b = 0; b < g.dataBlocks; b++) {
    if (u32(bytes, g.bitmapOffset + (b >>> 5) * 4) & (1 << (b & 31))) used++;
  }
  const cursor = old.getUint32(16, true);
  const generation = old.getFloat64(24, true);
  return encodeRoot({
    objects,
    slotsUsed: nonEmpty,
    freeBlocks: g.dataBlocks - used,
    cursor: cursor > g.dataBlocks ? 0 : cursor,
    generation: Number.isFinite(generation) && generation >= 0 ? generation + 1 : 1,
    rootObject: a.plan.rootObject,
  });
}

/**
 * Check (and with `repair`, repair) a Twizzler image.
 *
 * `target` is an open HAL or region (repairs are made durable through its
 * flush and drain, in the kernel's log order), an {@linkcode FsckImage}
 * (read piece by piece: what `twz fsck` uses, so memory stays bounded), or
 * the bytes of an image (repairs change them in place). Do not run it with
 * `repair` while a kernel is booted on the same image: the kernel keeps
 * counters in memory.
 *
 * @param target The image.
 * @param options `repair`, `deep`.
 * @returns What was found, what was repaired, what remains, and the objects
 * for `/lost+found`.
 *
 * @example Check, then repair
 * ```ts ignore
 * import { fsck } from "@twz/kernel";
 * const report = fsck(hal);
 * if (!report.clean) console.log(fsck(hal, { repair: true }).repairs);
 * ```
 */
export function fsck(
  target: Hal | PersistentRegion | FsckImage | Uint8Array,
  options: FsckOptions = {},
): FsckReport {
  let region: PersistentRegion;
  let load: (offset: number, length: number) => void = () => {};
  if (target instanceof Uint8Array) region = bytesRegion(target);
  else if ("load" in target) {
    region = target.region;
    load = (offset, length) => target.load(offset, length);
  } else region = "region" in target ? target.region : target;
  const src: Source = { bytes: region.bytes, load, private: "load" in target };
  const deep = options.deep ?? false;
  const first = analyze(src, deep, options.cache);
  const hex = (id: ObjID) => (id === 0n ? undefined : hexId(id));
  if (!options.repair) {
    return {
      clean: first.problems.length === 0,
      problems: first.problems,
      repairs: [],
      remaining: first.problems,
      notes: first.notes,
      lostFound: first.lostFound,
      dropped: [],
      rootObject: hex(first.rootObject),
      summary: first.summary,
    };
  }
  const repairs: string[] = [];
  const g = first.geometry;
  let lostFound = first.lostFound;
  let dropped: string[] = [];
  if (g) {
    let a = first;
    if (a.plan.superblock) {
      // Not through the log (it never writes the superblock page): one copy,
      // and the other stays intact until this one is durable.
      const { at, bytes } = a.plan.superblock;
      region.bytes.set(bytes.subarray(8), at + 8);
      region.persist(at + 8, bytes.length - 8);
      region.bytes.set(bytes.subarray(0, 8), at);
      region.persist(at, 8);
      repairs.push(...a.plan.lines.filter((l) => /superblock/.test(l)));
      a = analyze(src, deep);
    }
    const log = new MetaLog(region, g.logOffset, g.logSize, metadataTest(g));
    if (a.replayLog) {
      const n = log.recover();
      repairs.push(`replayed the committed metadata log (${n} records)`);
      a = analyze(src, deep);
    }
    if (a.plan.clearLog) {
      region.bytes.fill(0, g.logOffset, g.logOffset + LOG_HEADER);
      region.persist(g.logOffset, LOG_HEADER);
    }
    const hasWrites = a.plan.slots.size > 0 || a.plan.words.size > 0;
    if (hasWrites) {
      let tx = log.begin();
      let bytesInTx = 0;
      // Commit in batches that fit the log: `cost` is the log bytes of the
      // record just added (a slot 80, a word at most 24). Slots go first:
      // a recovered object's slot commits before, or with, its bitmap words.
      const added = (cost: number) => {
        bytesInTx += cost;
        if (bytesInTx > log.capacity - 4096) {
          log.commit(tx);
          tx = log.begin();
          bytesInTx = 0;
        }
      };
      for (const [offset, data] of a.plan.slots) {
        tx.put(offset, data);
        added(80);
      }
      for (const [offset, value] of a.plan.words) {
        tx.setU32(offset, value);
        added(24);
      }
      log.commit(tx);
    }
    if (a.plan.rebuildRoot || hasWrites) {
      const root = encodeRootFrom(region.bytes, g, a);
      const old = region.bytes.subarray(g.rootOffset, g.rootOffset + 64);
      if (root.some((b, i) => i < 24 && b !== old[i]) || a.plan.rebuildRoot) {
        const tx = log.begin();
        tx.put(g.rootOffset, root);
        log.commit(tx);
      }
    }
    // Everything is applied: an empty log, as a clean shutdown leaves it.
    if (hasWrites || a.plan.rebuildRoot || first.replayLog || a.plan.clearLog) log.clear();
    repairs.push(...a.plan.lines.filter((l) => !/superblock/.test(l)));
    lostFound = a.lostFound;
    dropped = a.dropped;
  }
  const after = analyze(src, deep);
  // Recovered objects are trusted now; keep listing them for /lost+found.
  const listed = new Set(after.lostFound.map((l) => l.id));
  const all = [...after.lostFound, ...lostFound.filter((l) => !listed.has(l.id))];
  return {
    clean: after.problems.length === 0 && all.length === 0 && dropped.length === 0,
    problems: first.problems,
    repairs,
    remaining: after.problems,
    notes: after.notes,
    lostFound: all,
    dropped,
    rootObject: hex(after.rootObject),
    summary: after.summary,
  };
}

/**
 * `fsck` for Twizzler images: check every kernel structure of an image (the
 * superblock, root record, metadata log, object table, block bitmap and tie
 * edges) and, when asked, repair what can be repaired safely.
 *
 * Checking never writes. An image whose log holds a committed transaction
 * (a crash between commit and apply) is checked as boot would see it, with
 * the transaction replayed for the analysis in a copy-on-write
 * {@linkcode ImageOverlay} (see `overlay.ts`): in place over bytes fsck may
 * change for the time of the call (an {@linkcode FsckImage}, or plain bytes),
 * keeping the original of each line it changes once and putting it back
 * before returning; over a region others may see, in an overlay of its own
 * that copies in the metadata area only.
 *
 * One checker per area, in packages/kernel/fsck/: `_superblock.ts`,
 * `_log.ts`, `_root.ts`, `_table.ts`, `_ties.ts`, `_bitmap.ts`, run in order
 * by `_analyze.ts` over a shared `Scan` (`_scan.ts`); slot fields are read
 * through `SlotField` of `_check.ts`, the table's one list of positions.
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
 * copies the image (an {@linkcode ImageOverlay} over an image file holds the
 * only copy of the pages read).
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
import { formatId, type ObjID } from "./abi/mod.ts";
import { type Geometry, metadataTest, SLOT } from "./_layout.ts";
import { LOG_HEADER, MetaLog } from "./_log.ts";
import { EMPTY, OBJECT, SlotField } from "./_table.ts";
import { slotProblem } from "./_check.ts";
import { encodeRoot } from "./_root.ts";
import { ImageOverlay } from "./overlay.ts";
import { analyze } from "./fsck/_analyze.ts";
import { type Analysis, RECOVERED_HI, u32 } from "./fsck/_scan.ts";

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
  /** Object records (trusted or not). */
  objects: number;
  /** Tie edges. */
  edges: number;
  /** Tombstone slots. */
  tombstones: number;
  /** Slots of the object table. */
  tableSlots: number;
  /** Data blocks of the image. */
  dataBlocks: number;
  /** Data blocks the bitmap marks used. */
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
  rootObject?: string | undefined;
  /** Counts; absent when the superblock cannot be read. */
  summary?: FsckSummary | undefined;
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

const hexId = (id: ObjID) => formatId(id);

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
function noLoad(_offset: number, _length: number): void {}

function encodeRootFrom(bytes: Uint8Array, g: Geometry, a: Analysis): Uint8Array {
  const old = new DataView(bytes.buffer, bytes.byteOffset + g.rootOffset, 64);
  // Used slots and free blocks are counted again after the slot and bitmap fixes.
  let nonEmpty = 0;
  let objects = 0;
  for (let i = 0; i < g.tableSlots; i++) {
    const state = bytes[g.tableOffset + i * SLOT + SlotField.state];
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
  // The image as an overlay: the caller's, or one in place over bytes fsck
  // may change for the time of the call (an FsckImage's, plain bytes not
  // shared with other threads); a region others may see is never changed.
  let overlay: ImageOverlay;
  let load: (offset: number, length: number) => void = noLoad;
  let inPlace = true;
  let region: PersistentRegion;
  if (target instanceof ImageOverlay) {
    overlay = target;
    region = target.region;
    load = (offset, length) => target.load(offset, length);
  } else if (target instanceof Uint8Array) {
    overlay = ImageOverlay.inPlace(target);
    region = overlay.region;
    inPlace = !(target.buffer instanceof SharedArrayBuffer);
  } else if ("load" in target) {
    region = target.region;
    overlay = ImageOverlay.inPlace(region.bytes);
    load = (offset, length) => target.load(offset, length);
  } else {
    region = "region" in target ? target.region : target;
    overlay = ImageOverlay.inPlace(region.bytes);
    inPlace = false;
  }
  const src = overlay;
  const deep = options.deep ?? false;
  const first = analyze(src, load, inPlace, deep, options.cache);
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
      a = analyze(src, load, inPlace, deep);
    }
    const log = new MetaLog(region, g.logOffset, g.logSize, metadataTest(g));
    if (a.replayLog) {
      const n = log.recover();
      repairs.push(`replayed the committed metadata log (${n} records)`);
      a = analyze(src, load, inPlace, deep);
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
  const after = analyze(src, load, inPlace, deep);
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

/**
 * `twz fsck --upgrade`: convert an image of on-NVM format 1 to format 2, in
 * place and crash-safe.
 *
 * Format 2 adds a check to every table slot (the u32 at 52, which format 1
 * left zero and never read), a check per 64-byte line of the block bitmap (in
 * a check area the superblock records), and a 256-byte superblock with a
 * backup copy at 2048 in the superblock page (format 1 used the first 128
 * bytes of that page only). Object data, the root record, the table's other
 * bytes and the bitmap's words do not move or change.
 *
 * The upgrade writes everything format 2 adds where a format-1 reader does not
 * look, and makes it durable, before it switches the superblock:
 *
 *   1. replay a committed format-1 log (as a format-1 boot would); drain;
 *      clear the log header; drain
 *   2. check the format-1 metadata (refused when damaged, unless forced)
 *   3. seal every table slot (its check at 52); drain
 *   4. write every bitmap line's check into the check area: in the slack
 *      between the bitmap and the data area when it fits, else carved from the
 *      tail of the (now empty) log, which shrinks; drain
 *   5. write the format-2 superblock's backup copy at 2048; drain
 *   6. write the format-2 superblock over the format-1 one; drain
 *
 * Until step 6 the primary superblock is an intact format-1 one, which the
 * format-2 kernel refuses with one line naming `twz fsck --upgrade`; running
 * the upgrade again redoes every step (each is idempotent). A crash inside
 * step 6 leaves either the intact format-1 superblock, the whole format-2 one,
 * or a torn primary that fails its checksum next to an intact backup: boot
 * refuses that with one line, and running the upgrade again (or `twz fsck
 * --repair`) copies the backup over the primary. An image already in format 2
 * is left untouched.
 *
 * @module
 */
import type { Hal, PersistentRegion } from "./hal/mod.ts";
import { ErrorCode, formatId, isValidId, readId, TwzError } from "./abi/mod.ts";
import {
  BLOCK,
  decodeBackupSuperblock,
  decodeSuperblock,
  decodeSuperblockV1,
  encodeSuperblock,
  FORMAT_VERSION,
  type Geometry,
  isBlank,
  isConsistentGeometry,
  LOG_SIZE,
  MAGIC,
  metadataTest,
  PAGE,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
  SUPERBLOCK_BYTES,
} from "./_layout.ts";
import { LOG_HEADER, parseLog } from "./_log.ts";
import {
  bitmapBytes,
  bitmapCheckBytes,
  bitmapLines,
  EDGE,
  EMPTY,
  OBJECT,
  objectProblem,
  sealBitmap,
  SLOT_CHECK_OFFSET,
  slotCheck,
  SlotField,
  slotFields,
  tieLimit,
  TOMB,
} from "./_check.ts";
import { decodeRoot } from "./_root.ts";

/**
 * Where the upgrade puts the bitmap-check area: `after-bitmap` (the slack
 * between the bitmap and the page-aligned data area, where a new format-2
 * image has it), `log-tail` (carved from the end of the metadata log, which
 * shrinks by as much), `root-page` (the unused rest of the root record's
 * page), or `auto`: the first of these that fits.
 */
export type CheckAreaPlacement = "auto" | "after-bitmap" | "log-tail" | "root-page";

/** Options for {@linkcode upgradeImage}. */
export interface UpgradeOptions {
  /**
   * Upgrade a format-1 image even when its metadata has problems (a slot out
   * of bounds, overlapping objects, a bitmap that disagrees with the table,
   * wrong counters): the checks then seal the metadata as it is, and
   * `twz fsck` reports (and `--repair` mends) the problems afterwards.
   * @default {false}
   */
  force?: boolean | undefined;
  /** Where the bitmap-check area goes. @default {"auto"} */
  checkArea?: CheckAreaPlacement;
}

/** What {@linkcode upgradeImage} found and did. */
export interface UpgradeReport {
  /**
   * `upgraded`: a format-1 image was converted; `finished`: an upgrade cut
   * short while switching the superblock was finished from the backup copy;
   * `already`: the image is in format 2 already (nothing was written).
   */
  outcome: "upgraded" | "finished" | "already";
  /** The image's format version now. */
  version: number;
  /** Records of a committed format-1 log replayed first. */
  replayed: number;
  /** Table slots whose check was written (slots already sealed are skipped). */
  sealedSlots: number;
  /** Bitmap lines whose check was written. */
  bitmapLines: number;
  /** Where the bitmap-check area is, and where it was put. */
  checkArea?: { offset: number; size: number; placement: Exclude<CheckAreaPlacement, "auto"> };
  /** The metadata log's size before and after (the log tail may have been carved). */
  logSize?: { before: number; after: number };
  /** Format-1 problems upgraded anyway (with `force`); empty otherwise. */
  forced: string[];
  /** What was done, one line each, for people. */
  lines: string[];
}

const corrupt = (what: string) => new TwzError(ErrorCode.ImageCorrupt, what);
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Upgrade the image in `target` (an open HAL, or its region) from format 1 to
 * format 2 in place, crash-safe (see the module doc); an image already in
 * format 2 is left untouched.
 *
 * @example Upgrade an image file
 * ```ts ignore
 * import { upgradeImage } from "@twz/kernel";
 * import { plugin } from "@twz/hal-sim";
 *
 * const hal = await plugin.open({ image: "old.img" });
 * try {
 *   const report = upgradeImage(hal);
 *   for (const line of report.lines) console.log(line);
 * } finally {
 *   hal.close();
 * }
 * ```
 *
 * @param target The HAL holding the image, or its persistent region.
 * @param options `force` and the check area's placement.
 * @returns What was found and done.
 * @throws {TwzError} `ReadOnly` (the HAL cannot write), `ImageCorrupt` (not
 * an image, a damaged superblock without a usable backup, a format-1 log that
 * writes outside the metadata, format-1 metadata problems without `force`, or
 * no room for the check area), `ImageUnsupported` (a format other than 1 or 2).
 */
export function upgradeImage(
  target: Hal | PersistentRegion,
  options: UpgradeOptions = {},
): UpgradeReport {
  const region = "region" in target ? target.region : target;
  if ("region" in target && target.readOnly) {
    throw new TwzError(
      ErrorCode.ReadOnly,
      `the image is open read-only${
        target.readOnlyReason ? ` (${target.readOnlyReason})` : ""
      }: it cannot be upgraded`,
    );
  }
  const bytes = region.bytes;
  const report: UpgradeReport = {
    outcome: "already",
    version: FORMAT_VERSION,
    replayed: 0,
    sealedSlots: 0,
    bitmapLines: 0,
    forced: [],
    lines: [],
  };
  if (isBlank(bytes)) {
    throw corrupt("the image has no superblock magic: it was never (completely) formatted");
  }
  // Format 2 already, or a switch cut short?
  try {
    const g = decodeSuperblock(bytes);
    report.lines.push(`the image is already format ${FORMAT_VERSION}: nothing to do`);
    report.logSize = { before: g.logSize, after: g.logSize };
    return report;
  } catch (error) {
    if (!(error instanceof TwzError)) throw error;
    if (
      error.code === ErrorCode.ImageCorrupt &&
      new TextDecoder().decode(bytes.subarray(0, 8)) === MAGIC
    ) {
      // A primary failing its checksum next to an intact backup: the last
      // step of an upgrade, torn (the magic is the same in both formats), or
      // a damaged primary of a format-2 image. Either way the backup is the
      // superblock: restore it.
      let backup: Geometry;
      try {
        backup = decodeBackupSuperblock(bytes);
      } catch {
        throw error;
      }
      writeSuperblock(region, encodeSuperblock(backup), 0);
      decodeSuperblock(bytes); // the primary reads back
      report.outcome = "finished";
      report.logSize = { before: backup.logSize, after: backup.logSize };
      report.lines.push(
        `the superblock failed its checksum (an upgrade cut short while writing it, or damage): restored it from its intact backup copy at ${SUPERBLOCK_BACKUP_OFFSET}; the image is format ${FORMAT_VERSION}`,
      );
      return report;
    }
    if (!/format version 1;/.test(error.message)) throw error;
  }
  return upgradeV1(region, options, report);
}

/** Steps 1–6 on an image whose primary superblock is an intact format-1 one. */
function upgradeV1(
  region: PersistentRegion,
  options: UpgradeOptions,
  report: UpgradeReport,
): UpgradeReport {
  const bytes = region.bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const g1 = decodeSuperblockV1(bytes);
  if (!isV1Consistent(g1)) throw corrupt("the format-1 superblock's geometry is inconsistent");
  report.outcome = "upgraded";
  // The format-2 geometry: format 1's, plus the check area (refused before
  // anything is written when it does not fit).
  const g2 = planCheckArea(g1, options.checkArea ?? "auto");
  const placement = g2.placement;
  report.checkArea = { offset: g2.bitmapCheckOffset, size: g2.bitmapCheckSize, placement };
  report.logSize = { before: g1.logSize, after: g2.logSize };

  // 1. The log: replay a committed transaction, then clear the header, so
  // that format 2 never replays format-1 records (they hold unsealed slots).
  const log = parseLog(view, g1.logOffset, g1.logSize, metadataTest(g1));
  if (log.state === "garbage" && log.outside) {
    throw corrupt(`${log.bad}; a format-1 boot refuses such an image too`);
  }
  if (log.state === "committed") {
    for (const [offset, from, length] of log.records) {
      bytes.copyWithin(offset, from, from + length);
      region.flush(offset, length);
    }
    region.drain();
    report.replayed = log.records.length;
    report.lines.push(
      `replayed the committed format-1 log (${log.records.length} record${
        log.records.length === 1 ? "" : "s"
      })`,
    );
  } else if (log.state === "garbage") {
    report.lines.push(`cleared a format-1 log header holding garbage (${log.bad})`);
  }
  if (view.getUint32(g1.logOffset, true) !== 0) {
    view.setUint32(g1.logOffset, 0, true);
    region.persist(g1.logOffset, 4);
  }

  // 2. The format-1 metadata must be sound: the checks would seal it as it is.
  const problems = v1Problems(bytes, g1);
  if (problems.length > 0) {
    if (!options.force) {
      throw corrupt(
        `the format-1 image has ${problems.length} problem${problems.length === 1 ? "" : "s"} (${
          problems[0]
        }${problems.length > 1 ? "; ..." : ""}); ${
          report.replayed > 0
            ? "only its committed log was replayed (as a format-1 boot would)"
            : "nothing was written"
        }. The upgrade would seal them into format 2: run \`twz fsck --upgrade --force\`, then \`twz fsck --repair\``,
      );
    }
    report.forced = problems;
    report.lines.push(
      `upgrading despite ${problems.length} format-1 problem(s) (--force): ${problems[0]}${
        problems.length > 1 ? "; ..." : ""
      }`,
    );
  }

  // 3. Seal every slot (format 1 never reads byte 52).
  let sealed = 0;
  for (let i = 0; i < g2.tableSlots; i++) {
    const off = g2.tableOffset + i * SLOT;
    const check = slotCheck(view, off, i, g2.seed);
    if (view.getUint32(off + SLOT_CHECK_OFFSET, true) === check) continue;
    view.setUint32(off + SLOT_CHECK_OFFSET, check, true);
    region.flush(off + SLOT_CHECK_OFFSET, 4);
    sealed++;
  }
  region.drain();
  report.sealedSlots = sealed;
  report.lines.push(
    `sealed ${sealed} of ${g2.tableSlots} table slots (a check in each slot's reserved word)`,
  );

  // 4. The bitmap's line checks, and zeros in the rest of the check area.
  const end = g2.bitmapCheckOffset + g2.bitmapCheckSize;
  bytes.fill(0, g2.bitmapCheckOffset + bitmapCheckBytes(g2.dataBlocks), end);
  sealBitmap(bytes, g2);
  region.flush(g2.bitmapCheckOffset, g2.bitmapCheckSize);
  region.drain();
  report.bitmapLines = bitmapLines(g2.dataBlocks);
  const where = placement === "after-bitmap"
    ? "after the bitmap"
    : placement === "log-tail"
    ? `carved from the log's tail (the log shrinks from ${g1.logSize} to ${g2.logSize} bytes)`
    : "in the root record's page";
  report.lines.push(
    `wrote ${report.bitmapLines} bitmap line checks at [${g2.bitmapCheckOffset}, ${end}), ${where}`,
  );

  // 5, 6. The superblock: the backup first, then the primary.
  const sb = encodeSuperblock(g2);
  writeSuperblock(region, sb, SUPERBLOCK_BACKUP_OFFSET);
  writeSuperblock(region, sb, 0);
  decodeSuperblock(bytes); // reads back as format 2
  report.lines.push(
    `wrote the format-${FORMAT_VERSION} superblock (backup copy at ${SUPERBLOCK_BACKUP_OFFSET}, then the primary): the image is format ${FORMAT_VERSION}`,
  );
  return report;
}

/** Write a superblock's bytes at `at` and make them durable. */
function writeSuperblock(region: PersistentRegion, sb: Uint8Array, at: number): void {
  region.bytes.set(sb, at);
  region.persist(at, SUPERBLOCK_BYTES);
}

/** The format-1 geometry rules (format 1's `decodeSuperblock`). */
function isV1Consistent(g: Geometry): boolean {
  return (g.tableSlots & (g.tableSlots - 1)) === 0 && g.tableSlots >= 1024 &&
    g.rootOffset >= 128 && g.logOffset >= g.rootOffset + 64 &&
    g.logSize >= LOG_SIZE && g.logSize <= 1024 * 1024 &&
    g.tableOffset >= g.logOffset + g.logSize &&
    g.bitmapOffset >= g.tableOffset + g.tableSlots * SLOT &&
    g.dataOffset >= g.bitmapOffset + bitmapBytes(g.dataBlocks) &&
    g.dataOffset + g.dataBlocks * BLOCK <= g.regionSize;
}

/**
 * The format-2 geometry for the format-1 geometry `g1`: the check area placed
 * as asked (`auto`: the first that fits), checked by the format-2 rules.
 *
 * @throws {TwzError} `ImageCorrupt` when the placement does not fit.
 */
function planCheckArea(
  g1: Geometry,
  placement: CheckAreaPlacement,
): Geometry & { placement: Exclude<CheckAreaPlacement, "auto"> } {
  const need = bitmapCheckBytes(g1.dataBlocks);
  const order: Array<Exclude<CheckAreaPlacement, "auto">> = placement === "auto"
    ? ["after-bitmap", "log-tail", "root-page"]
    : [placement];
  for (const where of order) {
    let g: Geometry | undefined;
    if (where === "after-bitmap") {
      const at = alignUp(g1.bitmapOffset + bitmapBytes(g1.dataBlocks), 64);
      g = { ...g1, bitmapCheckOffset: at, bitmapCheckSize: need };
    } else if (where === "log-tail") {
      const carve = alignUp(need, PAGE);
      const logSize = g1.logSize - carve;
      if (logSize - LOG_HEADER > 0) {
        g = { ...g1, logSize, bitmapCheckOffset: g1.logOffset + logSize, bitmapCheckSize: carve };
      }
    } else {
      const at = alignUp(g1.rootOffset + 64, 64);
      g = { ...g1, bitmapCheckOffset: at, bitmapCheckSize: need };
      if (at + need > alignUp(g1.rootOffset + 64, PAGE)) g = undefined;
    }
    if (g && isConsistentGeometry(g)) return { ...g, placement: where };
  }
  throw corrupt(
    `there is no room for the ${need}-byte bitmap-check area ${
      placement === "auto" ? "after the bitmap, in the log or in the root page" : `(${placement})`
    }`,
  );
}

/**
 * What is wrong with the format-1 metadata of `bytes` (after its log was
 * replayed), as format 2 would judge it once sealed: each slot's values, no
 * object twice, no overlapping extents, the bitmap exactly the blocks of the
 * objects, tie edges naming a live parent, every slot reachable from its home,
 * and the root record's counters. At most 20 problems are listed. Memory: one
 * bitmap's worth (lookups probe the table itself).
 */
function v1Problems(bytes: Uint8Array, g: Geometry): string[] {
  const out: string[] = [];
  const add = (p: string) => {
    if (out.length < 20) out.push(p);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const root = decodeRoot(bytes, g.rootOffset);
  if (!root) add("the root record is damaged (bad checksum)");
  const words = Math.ceil(g.dataBlocks / 32);
  const want = new Uint32Array(words);
  const mask = g.tableSlots - 1;
  const at = (i: number) => g.tableOffset + i * SLOT;
  const sameId = (a: number, b: number) => {
    for (let k = 0; k < 16; k += 4) {
      if (view.getUint32(a + k, true) !== view.getUint32(b + k, true)) return false;
    }
    return true;
  };
  /**
   * Probe from `home` for a slot in `state` whose ID equals the one at byte
   * `idAt` (and whose word 48 is `k`, for edges): the first such slot, or -1
   * when an empty slot ends the chain first.
   */
  const probe = (home: number, state: number, idAt: number, k = -1) => {
    for (let n = 0, j = home; n < g.tableSlots; n++, j = (j + 1) & mask) {
      const st = bytes[at(j) + SlotField.state];
      if (st === EMPTY) return -1;
      if (st === state && sameId(at(j), idAt)) {
        if (k < 0 || view.getUint32(at(j) + SlotField.ties, true) === k) return j;
      }
    }
    return -1;
  };
  let objects = 0;
  let nonEmpty = 0;
  let used = 0;
  for (let i = 0; i < g.tableSlots; i++) {
    const off = at(i);
    const f = slotFields(view, g, i);
    if (f.state !== EMPTY) nonEmpty++;
    if (f.state === OBJECT) {
      const id = readId(view, off);
      const bad = objectProblem(f, g) ?? (isValidId(id) ? undefined : "its object ID is invalid");
      if (bad) {
        add(`slot ${i}: ${bad}`);
        continue;
      }
      objects++;
      const found = probe(view.getUint32(off, true) & mask, OBJECT, off);
      if (found < 0) add(`object ${formatId(id)} in slot ${i} is unreachable from its home slot`);
      else if (found !== i) add(`object ${formatId(id)} is in two slots (${found} and ${i})`);
      for (let b = f.start; b < f.start + f.blocks; b++) {
        const bit = 1 << (b & 31);
        if (want[b >>> 5]! & bit) {
          add(`object ${formatId(id)} in slot ${i} overlaps another object at block ${b}`);
          break;
        }
        want[b >>> 5]! |= bit;
        used++;
      }
    } else if (f.state === EDGE) {
      const k = f.ties;
      const parent = probe(view.getUint32(off, true) & mask, OBJECT, off);
      const ties = parent < 0 ? -1 : view.getUint32(at(parent) + SlotField.ties, true);
      const home = (view.getUint32(off, true) ^ Math.imul(k + 1, 0x9e3779b1)) & mask;
      if (parent < 0) {
        add(`tie edge in slot ${i} names a missing parent ${formatId(readId(view, off))}`);
      } else if (k >= ties || k >= tieLimit(g)) {
        add(`tie edge in slot ${i} has index ${k} beyond ${ties}`);
      } else if (!isValidId(readId(view, off + 32))) {
        add(`tie edge in slot ${i} names an invalid ID`);
      } else if (probe(home, EDGE, off, k) !== i) {
        add(`tie edge ${k} in slot ${i} is unreachable or twice`);
      }
    } else if (f.state === EMPTY || f.state === TOMB) {
      // Format 1 writes empty slots and tombstones as zeros besides the state.
      for (let k = 0; k < SLOT; k++) {
        if (k !== 16 && bytes[off + k] !== 0 && (k < 52 || k >= 56)) {
          add(`slot ${i} is ${f.state === EMPTY ? "empty" : "a tombstone"} but holds data`);
          break;
        }
      }
    } else {
      add(`slot ${i} is in unknown state ${f.state}`);
    }
  }
  for (let w = 0; w < words; w++) {
    const has = view.getUint32(g.bitmapOffset + w * 4, true);
    if (has !== want[w]) {
      add(`bitmap word ${w} (blocks ${w * 32}-${w * 32 + 31}) disagrees with the table`);
    }
  }
  if (root) {
    if (root.objects !== objects) {
      add(`the root record counts ${root.objects} objects, not ${objects}`);
    }
    if (root.slotsUsed !== nonEmpty) {
      add(`the root record counts ${root.slotsUsed} used slots, not ${nonEmpty}`);
    }
    if (root.freeBlocks !== g.dataBlocks - used) {
      add(`the root record counts ${root.freeBlocks} free blocks, not ${g.dataBlocks - used}`);
    }
    if (root.rootObject !== 0n) {
      const low = Number(root.rootObject & 0xffffffffn);
      let found = false;
      for (let n = 0, j = low & mask; n < g.tableSlots; n++, j = (j + 1) & mask) {
        const st = bytes[at(j) + SlotField.state];
        if (st === EMPTY) break;
        if (st === OBJECT && readId(view, at(j)) === root.rootObject) {
          found = true;
          break;
        }
      }
      if (!found) add(`the root object ${formatId(root.rootObject)} does not exist`);
    }
  }
  return out;
}

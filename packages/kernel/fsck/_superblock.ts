// fsck's superblock checker: the primary copy, else its backup (which a
// repair copies back); two intact copies that differ are judged by the
// metadata (see chooseSuperblock).
import { ErrorCode, TwzError } from "../abi/mod.ts";
import {
  canonicalSuperblock,
  decodeBackupSuperblock,
  decodeSuperblock,
  type Geometry,
  isBlank,
  PAGE,
  SUPERBLOCK_BACKUP_OFFSET,
  SUPERBLOCK_BYTES,
  superblockField,
} from "../_layout.ts";
import { bitmapLines, lineSealed, slotProblem } from "../_check.ts";
import { decodeRoot } from "../_root.ts";
import { type Scan, u32 } from "./_scan.ts";

/**
 * Check the superblock; set `s.g` to the geometry the rest of the analysis
 * trusts (planning a superblock repair when a copy is damaged or wrong).
 *
 * @returns `false` when no geometry can be trusted (nothing else is checked).
 */
export function checkSuperblock(s: Scan): boolean {
  const image = s.image;
  s.load(0, Math.min(image.length, PAGE));
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
      s.problem(
        "superblock",
        `the backup superblock (at offset ${SUPERBLOCK_BACKUP_OFFSET}) is damaged`,
        true,
      );
      s.plan.superblock = { at: SUPERBLOCK_BACKUP_OFFSET, bytes: primaryBytes.slice() };
      s.plan.lines.push("rewrote the backup superblock from the superblock");
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
      s.load(0, Math.max(g.dataOffset, b.dataOffset));
      const choice = chooseSuperblock(image, g, b, primaryBytes, backupBytes());
      if (choice.pick === "backup") {
        s.problem("superblock", `${what}; ${choice.why}: the backup copy is right`, true);
        s.plan.superblock = { at: 0, bytes: backupBytes().slice() };
        s.plan.lines.push(`restored the superblock from its backup copy (${choice.why})`);
        g = b;
      } else if (choice.pick === "primary") {
        s.problem("superblock", `${what}; ${choice.why}: the superblock is right`, true);
        s.plan.superblock = { at: SUPERBLOCK_BACKUP_OFFSET, bytes: primaryBytes.slice() };
        s.plan.lines.push(`rewrote the backup superblock from the superblock (${choice.why})`);
      } else {
        s.problem(
          "superblock",
          `${what}; ${choice.why}: neither copy is chosen and nothing is repaired (compare them, then copy the right one over the other)`,
          false,
        );
        return false;
      }
    }
  } catch (error) {
    if (!(error instanceof TwzError)) throw error;
    const b = error.code === ErrorCode.ImageUnsupported ? undefined : backup();
    if (!b) {
      s.problem("superblock", error.message, false);
      return false;
    }
    s.problem(
      "superblock",
      `${error.message}; its backup copy (at offset ${SUPERBLOCK_BACKUP_OFFSET}) is intact`,
      true,
    );
    s.plan.superblock = { at: 0, bytes: backupBytes().slice() };
    s.plan.lines.push("restored the superblock from its backup copy");
    g = b;
  }
  s.g = g;
  s.load(0, g.dataOffset);
  return true;
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

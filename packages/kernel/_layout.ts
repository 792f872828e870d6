// The on-NVM layout of a Twizzler image, format 2 (see docs/ARCHITECTURE.md):
//
//   0        superblock       (one 4 KiB page: the superblock at 0, its backup
//                             copy at 2048; written once, at format)
//   4 KiB    root record      (counters; changed only through the log)
//   8 KiB    metadata log     (64 KiB - 1 MiB redo log; one transaction at a time)
//   ...      object table     (open-addressing hash table, 64-byte checked slots)
//   ...      block bitmap     (one bit per data block)
//   ...      bitmap checks    (one u32 check per 64-byte bitmap line)
//   ...      data blocks      (1 KiB blocks holding object contents)
//
// Every number is little-endian. Offsets of every area are recorded in the
// superblock, so a later format version (or an upgrade) can move them.
import { ErrorCode, TwzError } from "./abi/mod.ts";
import { crc32 } from "./_crc32.ts";
import { bitmapBytes, bitmapCheckBytes, imageSeed } from "./_check.ts";
import { encodeRoot, freshRoot, ROOT_BYTES } from "./_root.ts";

/** The superblock's magic: its first 8 bytes, written last of all by a format. */
export const MAGIC = "TWZIMAGE";
/** The on-NVM format version this kernel writes and boots. */
export const FORMAT_VERSION = 2;
/** Bytes of a page: the superblock and root pages, and the alignment of the bitmap and data area. */
export const PAGE = 4096;
/** Bytes of a data block, the unit of object allocation. */
export const BLOCK = 1024;
/** Bytes of an object-table slot. */
export const SLOT = 64;
/** The smallest metadata log (small images); a larger image gets a larger one. */
export const LOG_SIZE = 64 * 1024;
/** The largest metadata log: recovery never reads more than this. */
export const MAX_LOG_SIZE = 1024 * 1024;
/** Bytes of a format-2 superblock (its CRC-32 in the last 4). */
export const SUPERBLOCK_BYTES = 256;
/** Where the backup copy of the superblock is, in the superblock page. */
export const SUPERBLOCK_BACKUP_OFFSET = 2048;
/** Bytes of a format-1 superblock (its CRC-32 at 120). */
export const SUPERBLOCK_V1_BYTES = 128;
/** The smallest image: superblock, root, log, a minimal table and bitmap, 64 blocks. */
export const MIN_IMAGE: number = 2 * PAGE + LOG_SIZE + 1024 * SLOT + PAGE + 64 * BLOCK;

// Superblock field offsets (format 1 used the same ones up to 120, and kept
// its CRC-32 of [0, 120) at 120).
const SB = {
  magic: 0, // 8 bytes
  version: 8, // u32
  headerBytes: 12, // u32
  regionSize: 16, // u64
  blockSize: 24, // u32
  flags: 28, // u32
  storeId: 32, // 16 bytes
  logOffset: 48, // u64
  logSize: 56, // u32
  rootOffset: 64, // u64
  tableOffset: 72, // u64
  tableSlots: 80, // u32
  slotSize: 84, // u32
  bitmapOffset: 88, // u64
  dataOffset: 96, // u64
  dataBlocks: 104, // u32
  created: 112, // u64 (ms)
  bitmapCheckOffset: 120, // u64 (format 2)
  bitmapCheckSize: 128, // u32 (format 2)
  checksum: SUPERBLOCK_BYTES - 4, // u32, CRC-32 of bytes [0, 252)
  v1Checksum: 120, // format 1: CRC-32 of bytes [0, 120)
} as const;

/** Where everything is, as the superblock records it. */
export interface Geometry {
  /** Bytes of the region (the image). */
  regionSize: number;
  /** The image's random 16-byte identity, chosen at format. */
  storeId: Uint8Array;
  /** Wall-clock milliseconds of the format. */
  created: number;
  /** Offset of the root record. */
  rootOffset: number;
  /** Offset of the metadata log. */
  logOffset: number;
  /** Bytes of the metadata log. */
  logSize: number;
  /** Offset of the object table. */
  tableOffset: number;
  /** Slots of the object table (a power of two). */
  tableSlots: number;
  /** Offset of the block bitmap. */
  bitmapOffset: number;
  /** The bitmap-check area: one u32 per 64-byte bitmap line. */
  bitmapCheckOffset: number;
  /** Its size in bytes (at least 4 per bitmap line). */
  bitmapCheckSize: number;
  /** Offset of the data area (page-aligned). */
  dataOffset: number;
  /** Blocks of the data area. */
  dataBlocks: number;
  /** The per-image seed of slot and line checks (derived from `storeId`, not stored). */
  seed: number;
}

/**
 * Where metadata-log records of `g` may write: the root record, the object
 * table, the bitmap and its check area (never the superblock, the log or
 * object data).
 */
export function metadataTest(g: Geometry): (offset: number, length: number) => boolean {
  return (offset, length) =>
    (offset >= g.rootOffset && offset + length <= g.rootOffset + 64) ||
    (offset >= g.tableOffset && offset + length <= g.dataOffset) ||
    (offset >= g.bitmapCheckOffset && offset + length <= g.bitmapCheckOffset + g.bitmapCheckSize);
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Choose a format-2 geometry for a region of `size` bytes: one table slot per
 * 2 KiB of region (a power of two, at least 1024), so the table fills only
 * when the average object is under 2 KiB; the bitmap-check area right after
 * the bitmap (64-byte aligned), then the page-aligned data area.
 */
export function planGeometry(size: number, storeId: Uint8Array, created: number): Geometry {
  if (size < MIN_IMAGE) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `An image needs at least ${MIN_IMAGE} bytes, not ${size}`,
    );
  }
  let tableSlots = 1024;
  while (tableSlots * 2 <= size / 2048) tableSlots *= 2;
  // One 64th of the image for the log (a power of two, 64 KiB to 1 MiB): big
  // enough for the bitmap records of an object as large as the image allows.
  let logSize = LOG_SIZE;
  while (logSize * 2 <= MAX_LOG_SIZE && logSize * 2 <= size / 64) logSize *= 2;
  const rootOffset = PAGE;
  const logOffset = 2 * PAGE;
  const tableOffset = logOffset + logSize;
  const bitmapOffset = alignUp(tableOffset + tableSlots * SLOT, PAGE);
  // Blocks left after the bitmap, whose own size depends on the block count.
  let dataBlocks = Math.min(Math.floor((size - bitmapOffset) / BLOCK), 0xffffffff);
  let dataOffset = 0;
  let bitmapCheckOffset = 0;
  for (;;) {
    bitmapCheckOffset = alignUp(bitmapOffset + bitmapBytes(dataBlocks), 64);
    dataOffset = alignUp(bitmapCheckOffset + bitmapCheckBytes(dataBlocks), PAGE);
    const fit = Math.floor((size - dataOffset) / BLOCK);
    if (fit >= dataBlocks) break;
    dataBlocks = fit;
  }
  return {
    regionSize: size,
    storeId,
    created,
    rootOffset,
    logOffset,
    logSize,
    tableOffset,
    tableSlots,
    bitmapOffset,
    bitmapCheckOffset,
    bitmapCheckSize: bitmapCheckBytes(dataBlocks),
    dataOffset,
    dataBlocks,
    seed: imageSeed(storeId),
  };
}

/** Encode a format-2 superblock (with its checksum) into `SUPERBLOCK_BYTES` bytes. */
export function encodeSuperblock(g: Geometry): Uint8Array {
  const bytes = new Uint8Array(SUPERBLOCK_BYTES);
  const v = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(MAGIC), SB.magic);
  v.setUint32(SB.version, FORMAT_VERSION, true);
  v.setUint32(SB.headerBytes, SUPERBLOCK_BYTES, true);
  v.setBigUint64(SB.regionSize, BigInt(g.regionSize), true);
  v.setUint32(SB.blockSize, BLOCK, true);
  v.setUint32(SB.flags, 0, true);
  bytes.set(g.storeId, SB.storeId);
  v.setBigUint64(SB.logOffset, BigInt(g.logOffset), true);
  v.setUint32(SB.logSize, g.logSize, true);
  v.setBigUint64(SB.rootOffset, BigInt(g.rootOffset), true);
  v.setBigUint64(SB.tableOffset, BigInt(g.tableOffset), true);
  v.setUint32(SB.tableSlots, g.tableSlots, true);
  v.setUint32(SB.slotSize, SLOT, true);
  v.setBigUint64(SB.bitmapOffset, BigInt(g.bitmapOffset), true);
  v.setBigUint64(SB.dataOffset, BigInt(g.dataOffset), true);
  v.setUint32(SB.dataBlocks, g.dataBlocks, true);
  v.setBigUint64(SB.created, BigInt(g.created), true);
  v.setBigUint64(SB.bitmapCheckOffset, BigInt(g.bitmapCheckOffset), true);
  v.setUint32(SB.bitmapCheckSize, g.bitmapCheckSize, true);
  v.setUint32(SB.checksum, crc32(bytes.subarray(0, SB.checksum)), true);
  return bytes;
}

const corrupt = (what: string) => new TwzError(ErrorCode.ImageCorrupt, what);

/**
 * Whether the image was never (completely) formatted: its 8-byte magic is
 * zero. Format writes the rest of the superblock first and the magic last,
 * with one aligned 8-byte store, so a format cut short leaves a zero magic,
 * never a torn superblock.
 */
export function isBlank(region: Uint8Array): boolean {
  if (region.length < 8) return region.every((b) => b === 0);
  for (let i = 0; i < 8; i++) if (region[i] !== 0) return false;
  return true;
}

/** The geometry a superblock's fields record (format 1 has no bitmap-check area). */
function readGeometry(v: DataView, sb: Uint8Array, v2: boolean): Geometry {
  const num = (o: number) => Number(v.getBigUint64(o, true));
  const storeId = sb.slice(SB.storeId, SB.storeId + 16);
  return {
    regionSize: num(SB.regionSize),
    storeId,
    created: num(SB.created),
    rootOffset: num(SB.rootOffset),
    logOffset: num(SB.logOffset),
    logSize: v.getUint32(SB.logSize, true),
    tableOffset: num(SB.tableOffset),
    tableSlots: v.getUint32(SB.tableSlots, true),
    bitmapOffset: num(SB.bitmapOffset),
    bitmapCheckOffset: v2 ? num(SB.bitmapCheckOffset) : 0,
    bitmapCheckSize: v2 ? v.getUint32(SB.bitmapCheckSize, true) : 0,
    dataOffset: num(SB.dataOffset),
    dataBlocks: v.getUint32(SB.dataBlocks, true),
    seed: imageSeed(storeId),
  };
}

/** Options for {@linkcode decodeSuperblock}. */
export interface DecodeSuperblockOptions {
  /** Where the superblock is: 0 (the primary, default) or `SUPERBLOCK_BACKUP_OFFSET`. */
  at?: number | undefined;
  /** The image's path, for the upgrade hint of a format-1 image. */
  image?: string | undefined;
}

/**
 * Decode and check the format-2 superblock of `region` (the primary, or with
 * `at: SUPERBLOCK_BACKUP_OFFSET` its backup copy).
 *
 * @throws {TwzError} `ImageCorrupt` for a damaged or truncated image,
 * `ImageUnsupported` for format 1 (naming `twz fsck --upgrade`) or an unknown
 * format version.
 */
export function decodeSuperblock(
  region: Uint8Array,
  options: DecodeSuperblockOptions = {},
): Geometry {
  const at = options.at ?? 0;
  const where = at === 0 ? "superblock" : `backup superblock (at offset ${at})`;
  if (region.length < at + SUPERBLOCK_BYTES) {
    throw corrupt(`the image is ${region.length} bytes, too small to hold a superblock`);
  }
  const sb = region.subarray(at, at + SUPERBLOCK_BYTES);
  const magic = new TextDecoder().decode(sb.subarray(0, 8));
  if (magic !== MAGIC) {
    throw corrupt(`it is not a Twizzler image (no TWZIMAGE magic in the ${where})`);
  }
  const v = new DataView(sb.buffer, sb.byteOffset, SUPERBLOCK_BYTES);
  const version = v.getUint32(SB.version, true);
  if (version === 1 && v.getUint32(SB.v1Checksum, true) === crc32(sb.subarray(0, 120))) {
    throw new TwzError(
      ErrorCode.ImageUnsupported,
      `the image has format version 1; run \`twz fsck --upgrade --image ${
        options.image ?? "PATH"
      }\` to upgrade it (crash-safe)`,
    );
  }
  if (v.getUint32(SB.checksum, true) !== crc32(sb.subarray(0, SB.checksum))) {
    throw corrupt(`the ${where} checksum does not match: the ${where} is damaged`);
  }
  if (version !== FORMAT_VERSION) {
    throw new TwzError(
      ErrorCode.ImageUnsupported,
      `the image has format version ${version}; this kernel reads version ${FORMAT_VERSION}`,
    );
  }
  const g = readGeometry(v, sb, true);
  if (g.regionSize !== region.length) {
    const how = region.length < g.regionSize ? "truncated" : "longer than recorded";
    throw corrupt(
      `the image is ${how}: the ${where} records ${g.regionSize} bytes, the image has ${region.length}`,
    );
  }
  if (v.getUint32(SB.headerBytes, true) !== SUPERBLOCK_BYTES || !geometryConsistent(g, v)) {
    throw corrupt(`the ${where}'s geometry is inconsistent`);
  }
  return g;
}

/**
 * Decode the backup copy of the superblock (what `fsck --repair` restores
 * the primary from).
 *
 * @throws {TwzError} As {@linkcode decodeSuperblock}, for the backup.
 */
export function decodeBackupSuperblock(region: Uint8Array): Geometry {
  return decodeSuperblock(region, { at: SUPERBLOCK_BACKUP_OFFSET });
}

/** The superblock fields in offset order (for {@linkcode superblockField}). */
const SB_FIELDS: Array<[string, number]> = (Object.entries(SB) as Array<[string, number]>)
  .filter(([name]) => name !== "v1Checksum")
  .sort((a, b) => a[1] - b[1]);

/**
 * The name of the superblock field holding byte `at` (0..255) of a
 * format-2 superblock: `storeId`, `dataBlocks`, ..., `reserved` (the zero
 * bytes between the last field and the checksum) or `checksum`.
 */
export function superblockField(at: number): string {
  if (at >= SB.bitmapCheckSize + 4 && at < SB.checksum) return "reserved";
  let name = "magic";
  for (const [n, o] of SB_FIELDS) if (o <= at) name = n;
  return name;
}

/**
 * Compare the superblock with its backup copy at
 * {@linkcode SUPERBLOCK_BACKUP_OFFSET}, in constant time (256 bytes each):
 * the name of the first field in which they differ, or `undefined` when they
 * are the same or the backup is not an intact superblock of this image (it
 * fails its checksum or its geometry: then it is damaged, and the primary
 * stands on its own).
 */
export function superblockDisagreement(region: Uint8Array): string | undefined {
  const b = SUPERBLOCK_BACKUP_OFFSET;
  if (region.length < b + SUPERBLOCK_BYTES) return undefined;
  let first = -1;
  for (let i = 0; i < SUPERBLOCK_BYTES && first < 0; i++) {
    if (region[i] !== region[b + i]) first = i;
  }
  if (first < 0) return undefined;
  try {
    decodeBackupSuperblock(region);
  } catch (error) {
    if (error instanceof TwzError) return undefined;
    throw error;
  }
  return superblockField(first);
}

/**
 * The superblock format would write for `g`'s region size, store ID and
 * creation time: a copy equal to it holds nothing but what format chose (an
 * upgraded image's, whose check area may lie elsewhere, need not).
 */
export function canonicalSuperblock(g: Geometry): Uint8Array | undefined {
  try {
    return encodeSuperblock(planGeometry(g.regionSize, g.storeId, g.created));
  } catch (error) {
    if (error instanceof TwzError) return undefined;
    throw error;
  }
}

/** Whether the areas of `g` fit the region, in order, without overlapping. */
function geometryConsistent(g: Geometry, v?: DataView): boolean {
  if (
    (v && (v.getUint32(SB.blockSize, true) !== BLOCK || v.getUint32(SB.slotSize, true) !== SLOT)) ||
    (g.tableSlots & (g.tableSlots - 1)) !== 0 || g.tableSlots < 1024 ||
    g.rootOffset < PAGE || g.logOffset < g.rootOffset + 64 ||
    g.logSize < LOG_SIZE || g.logSize > MAX_LOG_SIZE ||
    g.tableOffset < g.logOffset + g.logSize ||
    g.bitmapOffset < g.tableOffset + g.tableSlots * SLOT ||
    g.dataOffset < g.bitmapOffset + bitmapBytes(g.dataBlocks) ||
    g.dataOffset % PAGE !== 0 || g.dataBlocks < 1 ||
    g.dataOffset + g.dataBlocks * BLOCK > g.regionSize
  ) return false;
  // The check area: big enough, 4-aligned, below the data area, and clear of
  // the superblock page, root record, log, table and bitmap.
  const c0 = g.bitmapCheckOffset, c1 = c0 + g.bitmapCheckSize;
  const clear = (a: number, b: number) => c1 <= a || c0 >= b;
  return g.bitmapCheckSize >= bitmapCheckBytes(g.dataBlocks) && c0 % 4 === 0 &&
    c1 <= g.dataOffset && clear(0, g.rootOffset + 64) &&
    clear(g.logOffset, g.logOffset + g.logSize) &&
    clear(g.tableOffset, g.tableOffset + g.tableSlots * SLOT) &&
    clear(g.bitmapOffset, g.bitmapOffset + bitmapBytes(g.dataBlocks));
}

/**
 * Decode a format-1 superblock (what `twz fsck --upgrade` reads). The
 * returned geometry has no bitmap-check area (`bitmapCheckOffset` and
 * `bitmapCheckSize` are 0).
 *
 * @throws {TwzError} `ImageCorrupt` when it is not an intact format-1 superblock.
 */
export function decodeSuperblockV1(region: Uint8Array): Geometry {
  if (region.length < SUPERBLOCK_V1_BYTES || isBlank(region)) {
    throw corrupt("the image has no format-1 superblock");
  }
  const v = new DataView(region.buffer, region.byteOffset, SUPERBLOCK_V1_BYTES);
  if (
    new TextDecoder().decode(region.subarray(0, 8)) !== MAGIC ||
    v.getUint32(SB.version, true) !== 1 ||
    v.getUint32(SB.v1Checksum, true) !== crc32(region.subarray(0, 120))
  ) {
    throw corrupt("the image has no intact format-1 superblock");
  }
  const g = readGeometry(v, region, false);
  if (g.regionSize !== region.length) {
    throw corrupt(
      `the format-1 image records ${g.regionSize} bytes, the image has ${region.length}`,
    );
  }
  return g;
}

/** Whether `g` is a consistent format-2 geometry for its region (for upgrade and fsck). */
export function isConsistentGeometry(g: Geometry): boolean {
  return geometryConsistent(g);
}

/**
 * Whether `bytes` holds a format-2 format that was cut short before its
 * superblock's magic became durable, so formatting it again loses nothing:
 * the magic is zero, and every byte of the root record is either zero or
 * that of the fresh root record format writes (generation 0, no objects: no
 * transaction ever committed; a torn write of it counts too). When the root
 * record is all zero, the log and data area of the geometry format would
 * choose must be all zero as well (this scan runs only on an image without a
 * magic). An image whose superblock alone was wiped is not unfinished: boot
 * refuses it (`twz fsck --repair` restores a superblock from its backup).
 */
export function isUnfinishedFormat(bytes: Uint8Array): boolean {
  if (bytes.length < MIN_IMAGE || !isBlank(bytes)) return false;
  const g = planGeometry(bytes.length, new Uint8Array(16), 0);
  const fresh = encodeRoot(freshRoot(g.dataBlocks));
  let zero = true;
  for (let i = 0; i < ROOT_BYTES; i++) {
    const b = bytes[g.rootOffset + i];
    if (b !== 0 && b !== fresh[i]) return false;
    if (b !== 0) zero = false;
  }
  if (!zero) return true;
  const allZero = (from: number, to: number) => {
    for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
    return true;
  };
  return allZero(g.logOffset, g.logOffset + g.logSize) && allZero(g.dataOffset, bytes.length);
}

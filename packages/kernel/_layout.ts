// The on-NVM layout of a Twizzler image (see docs/ARCHITECTURE.md):
//
//   0        superblock       (one 4 KiB page; written once, at format)
//   4 KiB    root record      (counters; changed only through the log)
//   8 KiB    metadata log     (64 KiB redo log; one transaction at a time)
//   72 KiB   object table     (open-addressing hash table, 64-byte slots)
//   ...      block bitmap     (one bit per data block)
//   ...      data blocks      (1 KiB blocks holding object contents)
//
// Every number is little-endian. Offsets of every area are recorded in the
// superblock, so a later format version can move them.
import { ErrorCode, TwzError } from "./abi/mod.ts";
import { crc32 } from "./_crc32.ts";

export const MAGIC = "TWZIMAGE";
export const FORMAT_VERSION = 1;
export const PAGE = 4096;
export const BLOCK = 1024;
export const SLOT = 64;
/** The smallest metadata log (small images); a larger image gets a larger one. */
export const LOG_SIZE = 64 * 1024;
/** The largest metadata log: recovery never reads more than this. */
export const MAX_LOG_SIZE = 1024 * 1024;
export const SUPERBLOCK_BYTES = 128;
/** The smallest image: superblock, root, log, a minimal table and bitmap, 64 blocks. */
export const MIN_IMAGE = 2 * PAGE + LOG_SIZE + 1024 * SLOT + PAGE + 64 * BLOCK;

// Superblock field offsets.
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
  checksum: 120, // u32, CRC-32 of bytes [0, 120)
} as const;

/** Where everything is, as the superblock records it. */
export interface Geometry {
  regionSize: number;
  storeId: Uint8Array;
  created: number;
  rootOffset: number;
  logOffset: number;
  logSize: number;
  tableOffset: number;
  tableSlots: number;
  bitmapOffset: number;
  dataOffset: number;
  dataBlocks: number;
}

/**
 * Where metadata-log records of `g` may write: the root record, the object
 * table and the bitmap (never the superblock, the log or object data).
 */
export function metadataTest(g: Geometry): (offset: number, length: number) => boolean {
  return (offset, length) =>
    (offset >= g.rootOffset && offset + length <= g.rootOffset + 64) ||
    (offset >= g.tableOffset && offset + length <= g.dataOffset);
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Choose a geometry for a region of `size` bytes: one table slot per 2 KiB of
 * region (a power of two, at least 1024), so the table fills only when the
 * average object is under 2 KiB.
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
  let dataBlocks = Math.floor((size - bitmapOffset) / BLOCK);
  let dataOffset = 0;
  for (;;) {
    dataOffset = alignUp(bitmapOffset + Math.ceil(dataBlocks / 32) * 4, PAGE);
    const fit = Math.floor((size - dataOffset) / BLOCK);
    if (fit >= dataBlocks) break;
    dataBlocks = fit;
  }
  dataBlocks = Math.min(dataBlocks, 0xffffffff);
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
    dataOffset,
    dataBlocks,
  };
}

/** Encode a superblock (with its checksum) into `SUPERBLOCK_BYTES` bytes. */
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

/**
 * Decode and check the superblock of `region`.
 *
 * @throws {TwzError} `ImageCorrupt` for a damaged or truncated image,
 * `ImageUnsupported` for an unknown format version.
 */
export function decodeSuperblock(region: Uint8Array): Geometry {
  if (region.length < SUPERBLOCK_BYTES) {
    throw corrupt(`the image is ${region.length} bytes, too small to hold a superblock`);
  }
  const magic = new TextDecoder().decode(region.subarray(0, 8));
  if (magic !== MAGIC) {
    throw corrupt("it is not a Twizzler image (no TWZIMAGE magic in the superblock)");
  }
  const v = new DataView(region.buffer, region.byteOffset, SUPERBLOCK_BYTES);
  const stored = v.getUint32(SB.checksum, true);
  if (stored !== crc32(region.subarray(0, SB.checksum))) {
    throw corrupt("the superblock checksum does not match: the superblock is damaged");
  }
  const version = v.getUint32(SB.version, true);
  if (version !== FORMAT_VERSION) {
    throw new TwzError(
      ErrorCode.ImageUnsupported,
      `the image has format version ${version}; this kernel reads version ${FORMAT_VERSION}`,
    );
  }
  const num = (o: number) => Number(v.getBigUint64(o, true));
  const g: Geometry = {
    regionSize: num(SB.regionSize),
    storeId: region.slice(SB.storeId, SB.storeId + 16),
    created: num(SB.created),
    rootOffset: num(SB.rootOffset),
    logOffset: num(SB.logOffset),
    logSize: v.getUint32(SB.logSize, true),
    tableOffset: num(SB.tableOffset),
    tableSlots: v.getUint32(SB.tableSlots, true),
    bitmapOffset: num(SB.bitmapOffset),
    dataOffset: num(SB.dataOffset),
    dataBlocks: v.getUint32(SB.dataBlocks, true),
  };
  if (g.regionSize !== region.length) {
    const how = region.length < g.regionSize ? "truncated" : "longer than recorded";
    throw corrupt(
      `the image is ${how}: the superblock records ${g.regionSize} bytes, the image has ${region.length}`,
    );
  }
  if (
    v.getUint32(SB.blockSize, true) !== BLOCK || v.getUint32(SB.slotSize, true) !== SLOT ||
    (g.tableSlots & (g.tableSlots - 1)) !== 0 || g.tableSlots < 1024 ||
    g.rootOffset < SUPERBLOCK_BYTES || g.logOffset < g.rootOffset + 64 ||
    g.logSize < LOG_SIZE || g.logSize > MAX_LOG_SIZE ||
    g.tableOffset < g.logOffset + g.logSize ||
    g.bitmapOffset < g.tableOffset + g.tableSlots * SLOT ||
    g.dataOffset < g.bitmapOffset + Math.ceil(g.dataBlocks / 32) * 4 ||
    g.dataOffset + g.dataBlocks * BLOCK > g.regionSize
  ) {
    throw corrupt("the superblock's geometry is inconsistent");
  }
  return g;
}

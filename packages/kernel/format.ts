/**
 * The on-NVM format of a kernel image, for tools that read or damage images
 * on purpose (fsck's undo file, the damage campaign, format documentation).
 * The kernel owns these facts; docs/FORMATS.md describes them. Programs never
 * need this module: they see objects through `@twz/kernel` and the ABI.
 *
 * @example Reading the geometry of an image's superblock
 * ```ts ignore
 * import { decodeSuperblock } from "@twz/kernel/format";
 *
 * const page = Deno.readFileSync("twz.img").subarray(0, 4096);
 * console.log(decodeSuperblock(page).dataBlocks);
 * ```
 *
 * @module
 */
import { MAGIC, SUPERBLOCK_BACKUP_OFFSET, SUPERBLOCK_BYTES, superblockField } from "./_layout.ts";
import { crc32 as crc } from "./_crc32.ts";
export {
  BLOCK,
  canonicalSuperblock,
  decodeBackupSuperblock,
  decodeSuperblock,
  type DecodeSuperblockOptions,
  encodeSuperblock,
  FORMAT_VERSION,
  type Geometry,
  isUnfinishedFormat,
  LOG_SIZE,
  MAGIC,
  MIN_IMAGE,
  PAGE,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
  SUPERBLOCK_BYTES,
} from "./_layout.ts";
export { decodeRoot, encodeRoot, type Root, ROOT_BYTES, ROOT_MAGIC } from "./_root.ts";
export {
  BITMAP_LINE_BYTES,
  EDGE,
  EMPTY,
  findSlotOffset,
  lineCheckOffset,
  OBJECT,
  sealSlot,
  SLOT_CHECK_OFFSET,
  SlotField,
  slotProblem,
  TOMB,
} from "./_check.ts";
export { encodeEdge, encodeObject, type ObjectSlot } from "./_table.ts";
export { crc32 } from "./_crc32.ts";

/** Where the store ID (16 bytes) is in a superblock copy. */
export const SUPERBLOCK_STORE_ID_OFFSET: number = (() => {
  let at = 0;
  while (superblockField(at) !== "storeId") at++;
  return at;
})();
/** Bytes of a store ID. */
export const STORE_ID_BYTES = 16;

const CHECKSUM_AT = SUPERBLOCK_BYTES - 4;
const magic = new TextEncoder().encode(MAGIC);

/** Whether the superblock copy at `at` of `page` holds the magic and its CRC-32 matches. */
function copyIntact(page: Uint8Array, at: number): boolean {
  if (page.length < at + SUPERBLOCK_BYTES) return false;
  for (let i = 0; i < magic.length; i++) if (page[at + i] !== magic[i]) return false;
  const v = new DataView(page.buffer, page.byteOffset + at, SUPERBLOCK_BYTES);
  return v.getUint32(CHECKSUM_AT, true) === crc(page.subarray(at, at + CHECKSUM_AT));
}

/**
 * The store ID a superblock page records: that of the first copy (the
 * superblock, then its backup at {@linkcode SUPERBLOCK_BACKUP_OFFSET}) whose
 * magic and checksum hold, else the bytes where the superblock keeps it.
 * Reads only (no geometry checks): for tools that must recognise an image
 * whose superblock is damaged (fsck's undo file).
 *
 * @param page The image's first page (or as much of it as there is).
 * @returns A copy of the 16-byte store ID.
 * @example
 * ```ts ignore
 * import { superblockStoreId } from "@twz/kernel/format";
 * const id = superblockStoreId(Deno.readFileSync("twz.img").subarray(0, 4096));
 * ```
 */
export function superblockStoreId(page: Uint8Array): Uint8Array {
  for (const at of [0, SUPERBLOCK_BACKUP_OFFSET]) {
    if (copyIntact(page, at)) {
      return page.slice(at + SUPERBLOCK_STORE_ID_OFFSET, at + SUPERBLOCK_STORE_ID_OFFSET + 16);
    }
  }
  return page.slice(SUPERBLOCK_STORE_ID_OFFSET, SUPERBLOCK_STORE_ID_OFFSET + STORE_ID_BYTES);
}

/**
 * The store IDs a superblock page holds, as raw bytes: the superblock's and
 * its backup copy's (each all zeros where the page is too short), whether or
 * not the copies are intact.
 *
 * @param page The image's first page (or as much of it as there is).
 * @returns `[primary, backup]`, 16-byte views into `page` (or zeros).
 */
export function superblockStoreIds(page: Uint8Array): [Uint8Array, Uint8Array] {
  const at = (base: number) => {
    const from = base + SUPERBLOCK_STORE_ID_OFFSET;
    return page.length >= from + STORE_ID_BYTES
      ? page.subarray(from, from + STORE_ID_BYTES)
      : new Uint8Array(STORE_ID_BYTES);
  };
  return [at(0), at(SUPERBLOCK_BACKUP_OFFSET)];
}

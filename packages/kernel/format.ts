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
export {
  BLOCK,
  canonicalSuperblock,
  decodeBackupSuperblock,
  decodeSuperblock,
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
  lineCheckOffset,
  OBJECT,
  sealSlot,
  SLOT_CHECK_OFFSET,
  slotProblem,
  TOMB,
} from "./_check.ts";
export { encodeEdge, encodeObject, type ObjectSlot } from "./_table.ts";
export { crc32 } from "./_crc32.ts";

/**
 * The Twizzler kernel: a small trusted core that formats and recovers a
 * persistent region, and creates, maps, grows and deletes objects in it. It
 * depends only on the HAL contract in `@twz/kernel/hal` and the kernel/user
 * contract in `@twz/kernel/abi`; the `twz` command wires it to a HAL plugin.
 *
 * @example
 * ```ts ignore
 * import { Kernel } from "@twz/kernel";
 * import { plugin } from "@twz/hal-sim";
 *
 * const hal = await plugin.open({ image: "twz.img", size: 64 << 20, create: true });
 * const kernel = Kernel.boot(hal);
 * const id = kernel.create({ size: 4096 });
 * kernel.write(id, 0, new TextEncoder().encode("persistent hello"));
 * kernel.shutdown();
 * hal.close();
 * ```
 *
 * @module
 */
export {
  type BootOptions,
  type BootReport,
  type DamagedSlot,
  Extent,
  Kernel,
  MAX_OBJECT_SIZE,
  METADATA_BYTES_PER_OBJECT,
  ObjectMapping,
  ROOT_OBJECT_SIZE,
} from "./kernel.ts";
export { BLOCK, FORMAT_VERSION, isUnfinishedFormat, MIN_IMAGE, PAGE } from "./_layout.ts";
export * from "./abi/mod.ts";
export { LocalPort, type ThreadService } from "./_port.ts";
export {
  fsck,
  type FsckArea,
  FsckCache,
  type FsckImage,
  type FsckLostObject,
  type FsckOptions,
  type FsckProblem,
  type FsckReport,
  type FsckSummary,
  isRecoveredId,
} from "./fsck.ts";
export { ImageOverlay, OVERLAY_LINE, type OverlayBase, type OverlayOptions } from "./overlay.ts";
export {
  type CheckAreaPlacement,
  upgradeImage,
  type UpgradeOptions,
  type UpgradeReport,
} from "./upgrade.ts";

/**
 * CRC-32 (IEEE 802.3, reflected) of `bytes`, continuing from `crc`: the
 * checksum of the superblock and the root record, for tools that check files
 * of their own (fsck's undo file).
 */
export { crc32 } from "./_crc32.ts";

/**
 * The Twizzler kernel: a small trusted core that formats and recovers a
 * persistent region, and creates, maps, grows and deletes objects in it. It
 * depends only on the HAL contract in `@twz/kernel/hal` and the kernel/user
 * contract in `@twz/kernel/abi`; the `twz` command wires it to a HAL plugin.
 *
 * The entry point is {@linkcode Kernel}: `Kernel.boot(hal)` formats or
 * recovers the region, then `create`, `map`, `grow`, `delete`, `read` and
 * `write` work on objects, and `kernel.port()` gives the system-call port a
 * libtwz session runs on (`Twz.attach(kernel.port())`). This module also
 * holds the offline checker ({@linkcode fsck}), the image upgrade
 * ({@linkcode upgradeImage}), the copy-on-write overlay fsck and read-only
 * boots use ({@linkcode ImageOverlay}), and the ABI's types and constants
 * (IDs, protections, errors, the object layout, pointers). The rest are
 * subpaths:
 *
 * | Subpath | What |
 * | --- | --- |
 * | `@twz/kernel/abi` | the kernel/user contract: IDs, errors, object layout, invariant pointers, the port and its thread channel |
 * | `@twz/kernel/hal` | the HAL contract plugins implement (`HalPlugin`, regions, power failures, image files) |
 * | `@twz/kernel/hal/testing` | the HAL conformance suite every plugin's tests run |
 * | `@twz/kernel/threads` | programs as code objects, run as Workers (`ThreadManager`) |
 * | `@twz/kernel/format` | the on-NVM image format, for tools that read or damage images |
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
// The kernel/user contract (`@twz/kernel/abi`), without the wire format
// of the port and the thread channel (`Reader`, `Writer`, `encode*`/`decode*`,
// `EncodeOverflow`, `MapReply`, `abi/channel.ts`: for the loader, the thread
// runtime and the control socket, reached through `@twz/kernel/abi`).
export * from "./abi/errors.ts";
export * from "./abi/id.ts";
export * from "./abi/object.ts";
export * from "./abi/layout.ts";
export * from "./abi/ptr.ts";
export * from "./abi/extent.ts";
export {
  type KernelPort,
  type Mapping,
  MappingBase,
  type SpawnSpec,
  type SyncOp,
  Sys,
  sysName,
  type SysNo,
  type SystemInfo,
  type ThreadFault,
  type ThreadInfo,
  type ThreadInit,
  ThreadState,
  type ThreadStateNo,
} from "./abi/port.ts";
export { LocalPort, type ThreadService } from "./_port.ts";
export type { GlobalHook } from "./global.ts";
export { ADMIN, type Principal, Security } from "./_security.ts";
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

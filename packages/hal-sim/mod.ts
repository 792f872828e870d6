/**
 * Simulated non-volatile memory: the default HAL, pure TypeScript.
 *
 * The region is a `SharedArrayBuffer` (what the CPU sees: memory plus its
 * volatile cache) in front of a *media* copy (what is durable: the image file,
 * or an in-memory array for an anonymous region). A store is visible at once
 * but reaches the media only through `flush` (which snapshots the covered
 * 64-byte lines) and `drain` (which writes the snapshots to the media). A clean
 * `close` writes everything back. `power.powerFail()` models a power failure:
 * each line that differs between cache and media is kept or lost according to
 * the eviction policy, and the region then holds exactly what survived.
 *
 * An image file is opened as every plugin opens one (`openImageFile` of
 * `@twz/kernel/hal`): locked for one opener, allocated in full when created,
 * read in chunks (so images of 2 GiB and more open), and read-only when asked
 * or not writable: the region is then a private overlay the file never sees.
 * A drained store is in the image file, that is in the host's page cache: it
 * survives a process kill. The setting `sync=data` adds an `fdatasync` to every
 * drain, so it survives a host power loss too (at a cost in speed).
 *
 * @example Boot-free use of the region
 * ```ts
 * import { plugin } from "@twz/hal-sim";
 *
 * const hal = await plugin.open({ size: 1 << 16 });
 * hal.region.bytes[64] = 1;
 * hal.region.persist(64, 1); // durable
 * hal.region.bytes[128] = 2; // not yet
 * hal.power!.powerFail({ policy: "strict" });
 * console.log(hal.region.bytes[64], hal.region.bytes[128]); // 1 0
 * hal.close();
 * ```
 *
 * The entry points are {@linkcode plugin} (what `twz --hal sim` and
 * `Twz.open({ hal: "sim" })` load: `plugin.open({ image?, size })`),
 * {@linkcode openSim} / {@linkcode openSimFromBytes} (a HAL without the
 * plugin's options, for tests), and the crash model the crash checker
 * drives ({@linkcode CrashPoint}, {@linkcode CrashPolicy},
 * {@linkcode PowerFailed}). This is the package's only export (no subpaths).
 *
 * The package is split along its seams: `media.ts` (where durable bytes live,
 * and the flushed lines waiting for a drain), `region.ts` (the region: flush,
 * drain, power failures, crash points), `crash.ts` (the crash model) and
 * `plugin.ts` (the plugin and its HALs).
 *
 * @module
 */
export {
  CrashPoint,
  type CrashPolicy,
  EXHAUSTIVE_LIMIT,
  HISTORY_LIMIT,
  LineHistory,
  seededRandom,
} from "./crash.ts";
export { LINE, type SimMedia } from "./media.ts";
export {
  type CrashPointOptions,
  type FaultSpec,
  PersistFault,
  PowerFailed,
  SimRegion,
} from "./region.ts";
export {
  countingClock,
  MAX_IMAGE_SIZE,
  openSim,
  openSimFromBytes,
  plugin,
  seededEntropy,
  type SimHal,
  type SimServices,
} from "./plugin.ts";

/**
 * The hardware abstraction layer (HAL) contract between the Twizzler kernel and
 * the platform it runs on. The kernel depends only on these interfaces; each
 * plugin (`@twz/hal-sim`, `@twz/hal-pmem`) implements them and exports one
 * `plugin: HalPlugin`. Only the `twz` command (the "board") wires a plugin to a
 * kernel.
 *
 * The interfaces are deliberately small and separate: the data path
 * ({@linkcode PersistentRegion.bytes}) is apart from durability
 * ({@linkcode PersistentRegion.flush}, {@linkcode PersistentRegion.drain},
 * {@linkcode PersistentRegion.persist}) and from control ({@linkcode HalPlugin},
 * {@linkcode Hal.close}).
 *
 * Optional capabilities are members a plugin may leave out:
 * {@linkcode Hal.power} (lose power now or at a chosen drain: hal-sim),
 * {@linkcode HalPlugin.maxImageSize} (a plugin that holds the image in
 * memory), {@linkcode PersistentRegion.stats}, the batched flushes. A caller
 * tests for the capability, never for a plugin's name.
 *
 * Durability model (the same for every plugin): a store into `bytes` is visible
 * at once to every reader of the region, but it is durable — guaranteed to
 * survive a power failure — only after a `flush` that covers it followed by a
 * `drain`. Until then it may or may not survive, in any order relative to other
 * stores, at the granularity reported by {@linkcode PersistentRegion.granularity}.
 * Aligned 8-byte stores never tear.
 *
 * @example A caller: make one record durable
 * ```ts
 * import type { Hal } from "@twz/kernel/hal";
 *
 * function writeRecord(hal: Hal, offset: number, record: Uint8Array): void {
 *   hal.region.bytes.set(record, offset); // a plain store: visible now
 *   hal.region.persist(offset, record.length); // durable from here on
 * }
 * ```
 *
 * @example An implementer: a volatile region (tests only; nothing survives)
 * ```ts
 * import type { PersistentRegion } from "@twz/kernel/hal";
 *
 * function volatileRegion(size: number): PersistentRegion {
 *   const buffer = new SharedArrayBuffer(size);
 *   return {
 *     size,
 *     granularity: "byte",
 *     bytes: new Uint8Array(buffer),
 *     flush() {},
 *     drain() {},
 *     persist() {},
 *     share: () => ({ kind: "shared-memory", buffer, size }),
 *   };
 * }
 * ```
 *
 * @module
 */

/** The unit in which a plugin makes stores durable. */
export type Granularity = "byte" | "cache-line" | "page";

/** Size in bytes of the unit that {@linkcode Granularity} names. */
export const GRANULARITY_BYTES: Readonly<Record<Granularity, number>> = {
  "byte": 1,
  "cache-line": 64,
  "page": 4096,
};

/**
 * How another thread (a Worker) reaches the same bytes as a region: a
 * `SharedArrayBuffer` it can wrap directly (hal-sim), or a file it maps itself
 * with the same plugin (hal-pmem). The value is structured-cloneable, so it can
 * be posted to a Worker as it is.
 */
export type RegionShare =
  | { kind: "shared-memory"; buffer: SharedArrayBuffer; size: number }
  | {
    kind: "file";
    plugin: string;
    path: string;
    offset: number;
    size: number;
    /** The owner opened the image read-only: its stores are private to it. */
    readOnly?: boolean;
  };

/**
 * A range of byte-addressable memory whose contents can be made durable.
 *
 * Preconditions shared by every method that takes a range: `offset` and
 * `length` are non-negative integers and `offset + length <= size`; a range
 * outside the region throws `RangeError`. A zero-length range is a no-op.
 */
export interface PersistentRegion {
  /** Size of the region in bytes. */
  readonly size: number;
  /** The unit in which stores become durable; a flush covers whole units. */
  readonly granularity: Granularity;
  /**
   * A zero-copy view of the whole region: loads and stores through it are
   * loads and stores on the memory itself. After the owning {@linkcode Hal} is
   * closed this property is an empty array; a plugin whose memory goes away at
   * close (hal-pmem) also detaches every view it handed out, so a stale access
   * can never reach unmapped memory.
   */
  readonly bytes: Uint8Array;
  /**
   * Start writing back the units that cover `[offset, offset + length)`. No
   * ordering: the data is durable only after a later {@linkcode drain}.
   *
   * @throws {RangeError} The range lies outside the region.
   * @throws {Error} The platform reported a failure (a message from it).
   *
   * @example Two flushes, one ordering point
   * ```ts
   * import type { PersistentRegion } from "@twz/kernel/hal";
   * function persistTwo(region: PersistentRegion): void {
   *   region.flush(0, 64);
   *   region.flush(4096, 64);
   *   region.drain(); // both ranges are durable now
   * }
   * ```
   */
  flush(offset: number, length: number): void;
  /**
   * An ordering point: every range flushed before this call is durable when it
   * returns.
   *
   * @throws {Error} The platform reported a failure.
   */
  drain(): void;
  /**
   * `flush(offset, length)` followed by `drain()`.
   *
   * @throws {RangeError} The range lies outside the region.
   * @throws {Error} The platform reported a failure.
   */
  persist(offset: number, length: number): void;
  /**
   * Optional batched {@linkcode flush}: flush `count` ranges given as
   * (offset, length) pairs in `ranges[0 .. 2 * count)`, in one call (one
   * native transition for hal-pmem). Same preconditions and errors as
   * `flush` for every range.
   *
   * @example
   * ```ts
   * import type { PersistentRegion } from "@twz/kernel/hal";
   * function persistBoth(region: PersistentRegion): void {
   *   const ranges = new Float64Array([0, 64, 4096, 128]);
   *   if (region.flushRanges) region.flushRanges(ranges, 2);
   *   else for (let i = 0; i < 2; i++) region.flush(ranges[2 * i]!, ranges[2 * i + 1]!);
   *   region.drain();
   * }
   * ```
   */
  flushRanges?(ranges: Float64Array, count: number): void;
  /**
   * Optional: {@linkcode flushRanges} then {@linkcode drain}, in one call
   * (one native transition for hal-pmem). The ranges are durable when it
   * returns.
   */
  persistRanges?(ranges: Float64Array, count: number): void;
  /** How a Worker reaches these bytes (see {@linkcode RegionShare}). */
  share(): RegionShare;
  /**
   * Counters of durability calls since the region was opened, when the plugin
   * keeps them (hal-sim does); benchmarks report `drains_per_op` from them.
   */
  stats?(): RegionStats;
}

/** Counters kept by {@linkcode PersistentRegion.stats}. */
export interface RegionStats {
  /** Calls to flush (persist counts as one flush and one drain). */
  flushes: number;
  /** Calls to drain: ordering points. */
  drains: number;
}

/** A monotonic and a wall clock. */
export interface Clock {
  /** Monotonic milliseconds with sub-millisecond precision; for measuring. */
  monotonic(): number;
  /** Milliseconds since the Unix epoch; for timestamps stored in objects. */
  wallclock(): number;
}

/** A source of cryptographically strong random bytes. */
export interface Entropy {
  /**
   * Fill `target` with random bytes.
   *
   * @example
   * ```ts
   * import type { Entropy } from "@twz/kernel/hal";
   * function newId(entropy: Entropy): Uint8Array {
   *   const id = new Uint8Array(16);
   *   entropy.fill(id);
   *   return id;
   * }
   * ```
   */
  fill(target: Uint8Array): void;
}

/** The system console: text out, lines in. */
export interface Console {
  /** Write text as it is (no newline is added). */
  write(text: string): void;
  /** Read one line without its terminator; `null` at end of input. */
  readLine(): Promise<string | null>;
}

/** Which crash a simulated power failure models (see {@linkcode PowerFailure}). */
export type EvictionPolicy = "strict" | "random" | "all";

/** Options for a simulated power failure. */
export interface PowerFailureOptions {
  /**
   * What happens to data stored but not yet drained:
   * `strict` loses all of it, `random` keeps each pending 64-byte line with
   * probability {@linkcode PowerFailureOptions.probability}, `all` keeps all of
   * it (as if the cache had been written back just in time).
   * @default {"strict"}
   */
  policy?: EvictionPolicy | undefined;
  /** Survival probability of a pending line under `random`. @default {0.5} */
  probability?: number | undefined;
  /** Seed for `random`; the same seed gives the same crash. @default {1} */
  seed?: number | undefined;
}

/** What a simulated power failure kept (see {@linkcode PowerFailure.powerFail}). */
export interface PowerFailureResult {
  /** Lines stored or flushed but not yet drained when the power failed. */
  pending: number;
  /** How many of them reached the media anyway. */
  survived: number;
}

/** Options for {@linkcode PowerFailure.armCrash}. */
export interface CrashArmOptions extends PowerFailureOptions {
  /**
   * Fail when drain `drain + 1` is called, before it takes effect, instead
   * of right after drain `drain` completes (see
   * {@linkcode PowerFailure.armCrash}).
   * @default {false}
   */
  before?: boolean | undefined;
}

/**
 * Optional capability of a simulator: lose power now ({@linkcode powerFail}),
 * or at a chosen drain ({@linkcode armCrash}). After a power failure the
 * region holds exactly what survived, as a reboot would find it. Real
 * hardware has neither (hal-pmem leaves {@linkcode Hal.power} absent), so a
 * caller asks for the capability, never for a plugin by name.
 *
 * Drains are numbered from 1, counted from when the region was opened; a
 * *crash point* N is the moment after drain N completed and before drain
 * N + 1 takes effect (crash point 0: before the first drain).
 *
 * @example A caller: crash at crash point 3 if the HAL can
 * ```ts
 * import { type Hal, PowerFailed } from "@twz/kernel/hal";
 *
 * function runUntilCrash(hal: Hal, work: () => void): boolean {
 *   const arm = hal.power?.armCrash;
 *   if (arm === undefined) throw new TypeError(`hal ${hal.name} cannot lose power`);
 *   arm(3, { before: true, policy: "strict" });
 *   try {
 *     work();
 *     return false; // crash point 3 was never reached
 *   } catch (e) {
 *     if (e instanceof PowerFailed) return true; // the region holds what survived
 *     throw e;
 *   }
 * }
 * ```
 */
export interface PowerFailure {
  /**
   * Simulate a power failure now.
   *
   * @returns The number of pending lines, and how many of them survived.
   */
  powerFail(options?: PowerFailureOptions): PowerFailureResult;
  /**
   * Optional: arm a crash point. Right after drain number `drain` completes
   * the power fails with `options`, and that drain throws
   * {@linkcode PowerFailed}; with `before: true` the power fails instead when
   * drain `drain + 1` is called, before it takes effect, so everything
   * stored and flushed since drain `drain` is at the policy's mercy. If the
   * drain never comes, nothing happens. Arming again replaces the point.
   * The check costs one comparison per drain.
   *
   * @param drain The drain number (at least 1; at least 0 with `before`).
   * @param options The eviction policy and `before`.
   * @throws {RangeError} `drain` is not such a drain number.
   */
  armCrash?(drain: number, options?: CrashArmOptions): void;
}

/**
 * Thrown by a drain at a crash point armed with
 * {@linkcode PowerFailure.armCrash}, after the power failure happened: the
 * region holds what survived. A board tells it apart from other errors
 * with `instanceof` (the `twz` command exits 4).
 *
 * @example
 * ```ts
 * import { PowerFailed } from "@twz/kernel/hal";
 * const e = new PowerFailed(3, { pending: 2, survived: 1 });
 * console.log(e.message); // power failed at drain 3: 1 of 2 pending lines survived
 * ```
 */
export class PowerFailed extends Error {
  /** Always `"PowerFailed"`. */
  override name = "PowerFailed";
  /**
   * The error of a power failure at a drain.
   *
   * @param drain The drain count at which power failed.
   * @param result What the power failure kept.
   */
  constructor(readonly drain: number, readonly result: PowerFailureResult) {
    super(
      `power failed at drain ${drain}: ${result.survived} of ${result.pending} pending lines survived`,
    );
  }
}

/** Options for {@linkcode HalPlugin.open}. */
export interface HalOpenOptions {
  /**
   * Path of the image (a file holding the persistent region). Without it the
   * plugin gives an anonymous region, if it supports one (hal-sim does).
   */
  image?: string | undefined;
  /**
   * Size in bytes of a new image. Required when the image does not exist; when
   * it does, it must be absent or equal to the file's size.
   */
  size?: number | undefined;
  /**
   * Create the image if it does not exist.
   * @default {false}
   */
  create?: boolean | undefined;
  /** The console to use. @default {a console on stdin/stdout} */
  console?: Console | undefined;
  /** Plugin-specific settings (for example a required granularity). */
  settings?: Record<string, string> | undefined;
  /**
   * Open the image without ever writing the file: stores reach a private
   * in-memory overlay (hal-sim) or a private copy-on-write mapping (hal-pmem)
   * that is gone at close. An image the process may not write is opened
   * read-only even without this option ({@linkcode Hal.readOnly} says so).
   * Takes a shared lock instead of the exclusive one. Never creates an
   * image: a missing one is refused even with `create`.
   * @default {false}
   */
  readOnly?: boolean | undefined;
  /**
   * The lock taken on the image file for as long as the HAL is open (see
   * {@linkcode lockImage}): `exclusive` (one opener at a time), `shared`
   * (read-only openers side by side, no writer), or `none` (tests and tools
   * that know they are alone).
   * @default {"exclusive", or "shared" with readOnly}
   */
  lock?: "exclusive" | "shared" | "none" | undefined;
  /**
   * What the opener is, kept beside the image while it holds the lock so that
   * a second opener is told who holds it (`twz boot`, `Twz.open`).
   * @default {"deno <main module>"}
   */
  holder?: string | undefined;
}

/** An open HAL: one persistent region and the platform services. */
export interface Hal {
  /** The plugin name, as in {@linkcode HalPlugin.name}. */
  readonly name: string;
  /** The image path, or `undefined` for an anonymous region. */
  readonly image: string | undefined;
  /** `true` when `open` created the image (it holds only zero bytes). */
  readonly created: boolean;
  /** The persistent region. */
  readonly region: PersistentRegion;
  /** Clocks. */
  readonly clock: Clock;
  /** Random bytes. */
  readonly entropy: Entropy;
  /** The console. */
  readonly console: Console;
  /** Present only on simulators that can lose power on demand. */
  readonly power?: PowerFailure;
  /**
   * `true` when the image was opened read-only (asked for, or the file is not
   * writable): nothing the region holds ever reaches the file. The kernel
   * refuses every write on such a HAL.
   */
  readonly readOnly?: boolean;
  /**
   * Why the image is read-only when nobody asked for it (for example "the
   * image file is not writable"); absent otherwise.
   */
  readonly readOnlyReason?: string;
  /**
   * Write back everything (nothing for a read-only image), release the
   * region and the image lock. The region's `bytes` are detached before the
   * memory goes away. Calling it twice is harmless.
   */
  close(): void;
}

/** What a plugin says about itself, for `twz boot` and `twz bench`. */
export interface HalDescription {
  /** Plugin name. */
  name: string;
  /** One line on what it is. */
  summary: string;
  /** Whether the plugin can run here now, and if not why. */
  available: boolean;
  /** Why it is not available (install hint), when it is not. */
  reason?: string;
  /** Extra facts (library version, detected granularity...). */
  details?: Record<string, string>;
}

/**
 * A HAL implementation. Importing a plugin module must have no side effects:
 * native libraries are loaded inside {@linkcode HalPlugin.open}.
 */
export interface HalPlugin {
  /** Short name used by `--hal` (`sim`, `pmem`). */
  readonly name: string;
  /**
   * Optional capability of a plugin that holds the whole image in memory
   * (hal-sim): the largest image, in bytes, it can hold. A board refuses a
   * larger size before anything is created, and a larger existing image
   * before it is opened (`openImage` of `@twz/libtwz/embedded`). Absent: the
   * plugin maps the image and has no limit of its own.
   *
   * @example A caller: check a size before creating an image
   * ```ts
   * import type { HalPlugin } from "@twz/kernel/hal";
   * function fits(plugin: HalPlugin, size: number): boolean {
   *   return plugin.maxImageSize === undefined || size <= plugin.maxImageSize;
   * }
   * ```
   */
  readonly maxImageSize?: number;
  /**
   * Open (and with `create`, create) an image. Every plugin treats image
   * files the same way (see `openImageFile`): only a regular file (hal-pmem:
   * or a device-DAX) is opened, and never before the image lock is taken; a
   * new image is allocated in full; a file that cannot be written opens
   * read-only.
   *
   * @throws {HalError} The image cannot be opened or created; the message
   *   says why, and `code` is `busy` when another opener holds it.
   */
  open(options: HalOpenOptions): Promise<Hal>;
  /** Describe the plugin and whether it can run here. */
  describe(): HalDescription;
  /**
   * Reach the bytes of a region opened elsewhere (in another Worker or
   * process) from its {@linkcode PersistentRegion.share} value. The returned
   * region has its own `close()`, which detaches its `bytes`.
   *
   * @throws {HalError} The share is not this plugin's, or cannot be mapped.
   */
  attach(share: RegionShare): Promise<AttachedRegion>;
}

/** A region reached through {@linkcode HalPlugin.attach}. */
export interface AttachedRegion extends PersistentRegion {
  /** Release the mapping; `bytes` is detached first. Harmless twice. */
  close(): void;
}

/**
 * What kind of failure a {@linkcode HalError} is, when callers must tell it
 * apart: `busy` (another opener holds the image: the `twz` command exits 5),
 * `read-only` (a write to an image that cannot be written), `no-space` (the
 * disk has no room), `not-regular` (a FIFO, directory or device where an
 * image file was expected), `io` (the platform reported an I/O error).
 */
export type HalErrorCode = "busy" | "read-only" | "no-space" | "not-regular" | "io";

/** Who holds an image's lock, as kept beside the image (see {@linkcode imageHolder}). */
export interface ImageHolder {
  /** The holder's process ID; 0 when it is not known. */
  pid: number;
  /** What the holder is (`twz boot`, `Twz.open`...), or "another process". */
  what: string;
}

/** Options of a {@linkcode HalError}. */
export interface HalErrorOptions extends ErrorOptions {
  /** The kind of failure. */
  code?: HalErrorCode | undefined;
  /** Who holds the image (with `code: "busy"`). */
  holder?: ImageHolder | undefined;
}

/**
 * A failure reported by a HAL plugin: the image or the platform refused.
 *
 * @example Tell a busy image apart
 * ```ts
 * import { HalError } from "@twz/kernel/hal";
 * const e = new HalError("image t.img is in use by process 7 (twz boot); stop it first", {
 *   code: "busy",
 *   holder: { pid: 7, what: "twz boot" },
 * });
 * console.log(e.code === "busy" && e.holder?.pid); // 7
 * ```
 */
export class HalError extends Error {
  /** The kind of failure, when it matters to the caller. */
  readonly code?: HalErrorCode;
  /** Who holds the image, for `code: "busy"`. */
  readonly holder?: ImageHolder;
  /**
   * A HAL failure with a one-line message.
   *
   * @param message One line naming what failed and why.
   * @param options Standard error options (`cause`), plus `code` and `holder`.
   */
  constructor(message: string, options?: HalErrorOptions) {
    super(message, options);
    this.name = "HalError";
    if (options?.code !== undefined) this.code = options.code;
    if (options?.holder !== undefined) this.holder = options.holder;
  }
}

/**
 * Check a range against a region size; the helper every plugin uses so that
 * errors read the same everywhere.
 *
 * @throws {RangeError} When the range is not inside `[0, size)`.
 */
export function checkRange(size: number, offset: number, length: number): void {
  if (
    !Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 ||
    offset + length > size
  ) {
    throw new RangeError(
      `Range [${offset}, ${offset + length}) is outside the region of ${size} bytes`,
    );
  }
}

export {
  allocateImageFile,
  checkImageFile,
  cryptoEntropy,
  danglingLinkTarget,
  formatSize,
  type ImageFile,
  imageHolder,
  ImageLock,
  type ImageLockOptions,
  ioError,
  lockImage,
  openImageFile,
  readWholeFile,
  stdioConsole,
  systemClock,
  writeWholeFile,
} from "./services.ts";

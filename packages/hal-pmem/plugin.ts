/**
 * The hal-pmem plugin: an image file mapped with PMDK's libpmem2, its bytes
 * handed to JavaScript without a copy, made durable with the flush, drain and
 * persist functions libpmem2 picks for the mapping.
 *
 * @tags allow-ffi
 * @module
 */
import { closeSync, fstatSync, openSync } from "node:fs";
import { resolve } from "node:path";
import {
  type AttachedRegion,
  checkRange,
  cryptoEntropy,
  type Granularity,
  GRANULARITY_BYTES,
  type Hal,
  type HalDescription,
  HalError,
  type HalOpenOptions,
  type HalPlugin,
  type ImageFile,
  openImageFile,
  type PersistentRegion,
  type RegionShare,
  type RegionStats,
  stdioConsole,
  systemClock,
} from "@twz/kernel/hal";
import {
  type BenchPaths,
  fallocate,
  libpmem2,
  libraryInfo,
  mapFile,
  type Mapping,
  trampolineStatus,
} from "./_ffi.ts";
import { env } from "./_build.ts";

/**
 * How a region's flush/drain/persist reach libpmem2.
 *
 * @example
 * ```ts ignore
 * import { plugin, type PmemRegion } from "@twz/hal-pmem";
 * const hal = await plugin.open({ image: "twz.img" });
 * if ((hal.region as PmemRegion).calls === "fnptr") console.error("slow persist path");
 * ```
 */
export type PmemCallPath = "trampoline" | "fnptr";

/**
 * A hal-pmem region: the contract's region plus which call path it uses.
 * Both the `region` of an open HAL and the result of `attach` are one.
 *
 * @example
 * ```ts ignore
 * import { plugin, type PmemRegion } from "@twz/hal-pmem";
 * const hal = await plugin.open({ image: "twz.img" });
 * const region = hal.region as PmemRegion;
 * console.log(region.granularity, region.calls); // e.g. "page" "trampoline"
 * ```
 */
export interface PmemRegion extends AttachedRegion {
  /**
   * `"trampoline"` when calls go through the compiled C trampoline (fast),
   * `"fnptr"` when they go through `Deno.UnsafeFnPointer` (no C compiler).
   */
  readonly calls: PmemCallPath;
  /** Flush and drain calls since the region was mapped (persist counts one of each). */
  stats(): RegionStats;
}

/**
 * Direct ways to persist a region's bytes, bypassing the HAL (benchmarks
 * only); see {@linkcode persistPaths}.
 *
 * @example
 * ```ts ignore
 * import { persistPaths, type PersistPaths, plugin } from "@twz/hal-pmem";
 * const hal = await plugin.open({ image: "/dev/shm/b.img", size: 1 << 20, create: true });
 * const paths: PersistPaths = persistPaths(hal.region);
 * paths.native?.(64, 1000); // 1000 stores + persists in C
 * hal.close();
 * ```
 */
export interface PersistPaths {
  /** The trampoline's `twz_persist` symbol called directly; absent without a trampoline. */
  raw?: (offset: number, length: number) => void;
  /** libpmem2's persist function called through `Deno.UnsafeFnPointer`. */
  fnptr: (offset: number, length: number) => void;
  /**
   * `count` times, store and persist `length` bytes entirely in C (libpmem2's
   * own cost, no JavaScript); absent without a trampoline.
   */
  native?: (length: number, count: number) => void;
}

const NAME = "pmem";
const SETTINGS = ["granularity"] as const;
const PAGE = 4096;
/**
 * Deferred page ranges at most this far apart are written back by one msync
 * (with the pages between them). An msync costs about a microsecond of
 * system call whatever the range on tmpfs and DAX, and one journal commit on
 * a page-cache file system: fewer of them is cheaper everywhere, while the
 * pages between are written back only if dirty.
 */
const MSYNC_GAP = 16 << 20;
const mappings = new WeakMap<PersistentRegion, Mapping>();

class Region implements PmemRegion {
  readonly size: number;
  readonly granularity: Granularity;
  readonly bytes: Uint8Array;
  readonly calls: PmemCallPath;
  #mapping: Mapping;
  #close: () => void;
  #share: RegionShare;
  #closed = false;
  #flushes = 0;
  #drains = 0;
  /**
   * At page granularity a flush is an msync: flushes are deferred to the
   * next drain as page ranges, and ranges at most {@linkcode MSYNC_GAP}
   * apart go out as one msync over both and the pages between (a flush
   * orders nothing before the drain anyway, and writing back more than was
   * flushed is what a cache may always do).
   */
  #deferred: number[] | null;

  /**
   * @param mapping The libpmem2 mapping.
   * @param close Closes the file behind it (and releases its lock).
   * @param share How a Worker reaches it.
   */
  constructor(mapping: Mapping, close: () => void, share: RegionShare) {
    this.#mapping = mapping;
    this.#close = close;
    this.#share = share;
    this.size = mapping.size;
    this.granularity = mapping.granularity;
    this.calls = mapping.calls;
    this.bytes = new Uint8Array(mapping.buffer);
    this.#deferred = mapping.granularity === "page" ? [] : null;
    mappings.set(this, mapping);
  }

  flush(offset: number, length: number): void {
    checkRange(this.size, offset, length);
    this.#flushes++;
    if (length === 0) return;
    const deferred = this.#deferred;
    if (deferred === null || this.#closed) this.#mapping.flush(offset, length);
    else deferred.push(offset - (offset % PAGE), Math.ceil((offset + length) / PAGE) * PAGE);
  }

  flushRanges(ranges: Float64Array, count: number): void {
    for (let i = 0; i < count; i++) checkRange(this.size, ranges[2 * i]!, ranges[2 * i + 1]!);
    this.#flushes += count;
    const deferred = this.#deferred;
    if (deferred === null || this.#closed) this.#mapping.flushRanges(ranges, count);
    else {
      for (let i = 0; i < count; i++) {
        const offset = ranges[2 * i]!, length = ranges[2 * i + 1]!;
        if (length > 0) {
          deferred.push(offset - (offset % PAGE), Math.ceil((offset + length) / PAGE) * PAGE);
        }
      }
    }
  }

  persistRanges(ranges: Float64Array, count: number): void {
    if (this.#deferred !== null || this.#closed) {
      this.flushRanges(ranges, count);
      this.drain();
      return;
    }
    for (let i = 0; i < count; i++) checkRange(this.size, ranges[2 * i]!, ranges[2 * i + 1]!);
    this.#mapping.persistRanges(ranges, count);
    this.#flushes += count;
    this.#drains++;
  }

  drain(): void {
    const deferred = this.#deferred;
    if (deferred !== null && deferred.length > 0) this.#flushDeferred(deferred);
    this.#mapping.drain();
    this.#drains++;
  }

  #flushDeferred(d: number[]): void {
    const n = mergePageRanges(d, this.size);
    for (let k = 0; k < n; k++) this.#mapping.flush(d[2 * k]!, d[2 * k + 1]! - d[2 * k]!);
    d.length = 0;
  }

  persist(offset: number, length: number): void {
    if (this.#deferred !== null && this.#deferred.length > 0) {
      this.flush(offset, length);
      this.drain();
      return;
    }
    checkRange(this.size, offset, length);
    if (length !== 0) this.#mapping.persist(offset, length);
    this.#flushes++;
    this.#drains++;
  }

  stats(): RegionStats {
    return { flushes: this.#flushes, drains: this.#drains };
  }

  share(): RegionShare {
    return { ...this.#share };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.size !== 0) this.#mapping.persist(0, this.size);
    } finally {
      try {
        this.#mapping.unmap(); // detaches `bytes` first
      } finally {
        this.#close();
      }
    }
  }
}

function requiredGranularity(settings: Record<string, string> | undefined): Granularity {
  for (const key of Object.keys(settings ?? {})) {
    if (!(SETTINGS as readonly string[]).includes(key)) {
      throw new HalError(
        `Cannot open a pmem image: unknown setting "${key}" (known: ${SETTINGS.join(", ")})`,
      );
    }
  }
  const wanted = settings?.granularity ?? "page";
  if (!(wanted in GRANULARITY_BYTES)) {
    throw new HalError(
      `Cannot open a pmem image: granularity must be byte, cache-line or page, not "${wanted}"`,
    );
  }
  return wanted as Granularity;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function open(options: HalOpenOptions): Promise<Hal> {
  const image = options.image;
  if (!image) {
    throw new HalError("Cannot open a pmem HAL without an image: hal-pmem maps a file");
  }
  const size = options.size;
  if (size !== undefined && (!Number.isSafeInteger(size) || size <= 0)) {
    throw new HalError(`Cannot open image ${image}: size must be a positive integer, not ${size}`);
  }
  const granularity = requiredGranularity(options.settings);
  libpmem2(); // a missing library is reported before any file is touched

  // Regular files (and device-DAX character devices) only; locked; a new one
  // allocated in full, so the mapping never meets a hole the disk cannot fill
  // (SIGBUS); read-only when asked or not writable.
  const file: ImageFile = openImageFile({ ...options, image }, { allowCharDevice: true });
  let mapping: Mapping;
  try {
    if (!file.readOnly && !file.created) allocateHoles(file);
    mapping = await mapFile({ fd: file.fd, granularity, private: file.readOnly });
  } catch (e) {
    file.close();
    if (file.created) {
      try {
        Deno.removeSync(image);
      } catch { /* already gone */ }
    }
    if (e instanceof HalError && !e.message.startsWith("Cannot")) {
      throw new HalError(`Cannot open image ${image}: ${e.message}`, { cause: e });
    }
    throw e;
  }

  const share: RegionShare = {
    kind: "file",
    plugin: NAME,
    path: resolve(image),
    offset: 0,
    size: mapping.size,
    ...(file.readOnly ? { readOnly: true } : {}),
  };
  const region = new Region(mapping, () => file.close(), share);
  return {
    name: NAME,
    image,
    created: file.created,
    region,
    clock: systemClock(),
    entropy: cryptoEntropy(),
    console: options.console ?? stdioConsole(),
    ...(file.readOnly ? { readOnly: true } : {}),
    ...(file.readOnlyReason !== undefined ? { readOnlyReason: file.readOnlyReason } : {}),
    close: () => region.close(),
  };
}

/**
 * A sparse image (made before images were allocated in full) has holes the
 * file system fills only when they are written: through a mapping, a write
 * to a hole on a full disk kills the process (SIGBUS). Fill them now.
 *
 * @throws {HalError} `no-space` when the disk has no room for them.
 */
function allocateHoles(file: ImageFile): void {
  const stat = fstatSync(file.fd);
  if (!stat.isFile() || (stat.blocks ?? 0) * 512 >= file.size) return;
  const rc = fallocate(file.fd, file.size);
  if (rc === 28 || rc === 122) {
    throw new HalError(
      `Cannot open image ${file.path}: it is sparse, and the disk has no room to allocate the rest of it (a write there would kill the process); free some space first`,
      { code: "no-space" },
    );
  }
  // Any other refusal (a file system without fallocate): map it as it is.
}

async function attach(share: RegionShare): Promise<PmemRegion> {
  if (share.kind !== "file" || share.plugin !== NAME) {
    const what = share.kind === "file" ? `plugin "${share.plugin}"` : `kind "${share.kind}"`;
    throw new HalError(`Cannot attach a region of ${what}: hal-pmem attaches pmem files only`);
  }
  const { path, offset, size } = share;
  if (share.readOnly) {
    throw new HalError(
      `Cannot attach ${path}: it is open read-only, and its private overlay cannot be shared`,
    );
  }
  libpmem2();
  let fd: number;
  try {
    fd = openSync(path, "r+");
  } catch (cause) {
    throw new HalError(`Cannot attach ${path}: ${errorText(cause)}`, { cause });
  }
  let mapping: Mapping;
  try {
    const fileSize = fstatSync(fd).size;
    if (offset + size > fileSize) {
      throw new HalError(
        `Cannot attach ${path}: [${offset}, ${offset + size}) is beyond its ${fileSize} bytes`,
      );
    }
    const whole = offset === 0 && size === fileSize;
    mapping = await mapFile({
      fd,
      granularity: "page",
      ...(whole ? {} : { offset, length: size }),
    });
  } catch (e) {
    closeSync(fd);
    if (e instanceof HalError && !e.message.startsWith("Cannot")) {
      throw new HalError(`Cannot attach ${path}: ${e.message}`, { cause: e });
    }
    throw e;
  }
  return new Region(mapping, () => closeSync(fd), { ...share });
}

function describe(): HalDescription {
  const summary = "real persistent memory: an image file mapped with PMDK libpmem2 (Deno.dlopen)";
  if (Deno.build.os !== "linux") {
    return { name: NAME, summary, available: false, reason: "hal-pmem runs on Linux only" };
  }
  try {
    libpmem2();
  } catch (e) {
    return { name: NAME, summary, available: false, reason: errorText(e) };
  }
  const force = env("PMEM2_FORCE_GRANULARITY") ?? "(unset)";
  return {
    name: NAME,
    summary,
    available: true,
    details: {
      ...libraryInfo(),
      trampoline: trampolineStatus(),
      PMEM2_FORCE_GRANULARITY: force,
    },
  };
}

/**
 * The msyncs of one drain at page granularity: sorts the deferred
 * `[start, end)` page ranges in `d` by start (insertion sort: a drain sees a
 * handful) and merges, in place, those at most {@linkcode MSYNC_GAP} apart
 * (one system call instead of one per page: a transaction's commit flushes a
 * handful of pages of one object, a few MiB apart at most). Ends are clipped
 * to `size`.
 *
 * @internal Exported for the tests.
 * @returns How many merged ranges lead `d` (pairs `[start, end)`).
 */
export function mergePageRanges(d: number[], size: number): number {
  const n = d.length >> 1;
  if (n === 0) return 0;
  for (let i = 1; i < n; i++) {
    const s = d[2 * i]!, e = d[2 * i + 1]!;
    let j = i - 1;
    while (j >= 0 && d[2 * j]! > s) {
      d[2 * j + 2] = d[2 * j]!;
      d[2 * j + 3] = d[2 * j + 1]!;
      j--;
    }
    d[2 * j + 2] = s;
    d[2 * j + 3] = e;
  }
  let out = 0;
  let start = d[0]!;
  let end = d[1]!;
  for (let k = 1; k < n; k++) {
    const s = d[2 * k]!, e = d[2 * k + 1]!;
    if (s <= end + MSYNC_GAP) end = Math.max(end, e);
    else {
      d[2 * out] = start;
      d[2 * out + 1] = Math.min(end, size);
      out++;
      start = s;
      end = e;
    }
  }
  d[2 * out] = start;
  d[2 * out + 1] = Math.min(end, size);
  return out + 1;
}

/**
 * The hal-pmem plugin. `open` maps an image file with libpmem2 (creating it
 * with `create`), `attach` maps the file behind a `share()` value (how a
 * Worker reaches the bytes), `describe` says whether libpmem2 can be loaded.
 * There is no `power` capability: real hardware cannot lose power on demand.
 *
 * Settings: `granularity` = `byte` | `cache-line` | `page` is the coarsest
 * store granularity accepted (default `page`: anything); mapping fails with
 * libpmem2's message when the file cannot offer it. The environment variable
 * `PMEM2_FORCE_GRANULARITY` (read by libpmem2 when mapping) overrides the
 * detection, e.g. `CACHE_LINE` on `/dev/shm` to flush with CPU instructions
 * instead of `msync`. `TWZ_LIBPMEM2_PATH` overrides where libpmem2 is loaded from.
 *
 * @tags allow-ffi
 *
 * @example Open, write, persist, close
 * ```ts ignore
 * import { plugin } from "@twz/hal-pmem";
 *
 * const hal = await plugin.open({ image: "/dev/shm/twz.img", size: 1 << 20, create: true });
 * hal.region.bytes.set(new TextEncoder().encode("hello"), 4096);
 * hal.region.persist(4096, 5); // durable now
 * hal.close(); // persists everything, then detaches `bytes` and unmaps
 * ```
 */
export const plugin: HalPlugin = {
  name: NAME,
  /**
   * Open (with `create`, create) an image and map it.
   *
   * @param options Image path, size, create flag, console, settings.
   * @returns An open HAL whose `region` is a {@linkcode PmemRegion}.
   * @throws {HalError} No image path, bad settings or size, missing file
   *   without `create`, size mismatch, libpmem2 missing or refusing (its message).
   *
   * @example
   * ```ts ignore
   * import { plugin } from "@twz/hal-pmem";
   * const hal = await plugin.open({ image: "twz.img", size: 1 << 20, create: true });
   * hal.close();
   * ```
   */
  open,
  /**
   * Describe the plugin: loads libpmem2 (nothing else) to say whether it is here.
   *
   * @returns Name, summary, availability; library file/version and trampoline state.
   *
   * @example
   * ```ts ignore
   * import { plugin } from "@twz/hal-pmem";
   * const d = plugin.describe();
   * console.log(d.available ? d.details : d.reason);
   * ```
   */
  describe,
  /**
   * Map the file behind a {@linkcode RegionShare} of kind `file` from this plugin.
   *
   * @param share The value of a pmem region's `share()`.
   * @returns A {@linkcode PmemRegion} with its own `close()`.
   * @throws {HalError} Not a pmem share, or the file cannot be mapped.
   *
   * @example In a Worker
   * ```ts ignore
   * import { plugin } from "@twz/hal-pmem";
   * self.onmessage = async (e) => {
   *   const region = await plugin.attach(e.data);
   *   region.bytes[0] = 1;
   *   region.persist(0, 1);
   *   region.close();
   * };
   * ```
   */
  attach,
};

/**
 * Direct ways to persist a region's bytes that bypass the HAL, for the
 * `persist` benchmark (which compares them with `region.persist`).
 *
 * @param region A region of an open pmem HAL or from `plugin.attach`.
 * @returns The raw trampoline call, the `UnsafeFnPointer` call and a C loop.
 * @throws {TypeError} The region is not an open hal-pmem region.
 *
 * @tags allow-ffi
 *
 * @example
 * ```ts ignore
 * import { persistPaths, plugin } from "@twz/hal-pmem";
 * const hal = await plugin.open({ image: "/dev/shm/b.img", size: 1 << 20, create: true });
 * const paths = persistPaths(hal.region);
 * paths.raw?.(0, 64);
 * hal.close();
 * ```
 */
export function persistPaths(region: PersistentRegion): PersistPaths {
  const mapping = mappings.get(region);
  if (!mapping || region.bytes.length !== region.size) {
    throw new TypeError("persistPaths() needs an open hal-pmem region");
  }
  const paths: BenchPaths = mapping.benchPaths();
  return paths;
}

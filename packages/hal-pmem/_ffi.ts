/**
 * Every native symbol hal-pmem uses, and the only place that calls
 * `Deno.dlopen` or touches pointers. Two libraries:
 *
 * - libpmem2 (PMDK), opened lazily by {@linkcode libpmem2}; the environment
 *   variable `TWZ_LIBPMEM2_PATH` overrides where it is loaded from.
 * - the trampoline built from `trampoline.c` (see `_build.ts`), whose plain
 *   exported symbols call the flush/drain/persist function pointers libpmem2
 *   hands out, so each call takes Deno's fast FFI path. Without it (no C
 *   compiler) the pointers are called through `Deno.UnsafeFnPointer`.
 *
 * Conventions: a C `T **` out-parameter is an 8-byte `BigUint64Array` passed
 * as `"buffer"`; a `size_t` is `"usize"` and is passed as a `bigint` (a number
 * would force the slow call path).
 *
 * @module
 */
import { type Granularity, HalError } from "@twz/kernel/hal";
import { ensureTrampoline, env } from "./_build.ts";

/** Environment variable that overrides the libpmem2 path. */
export const LIBRARY_ENV = "TWZ_LIBPMEM2_PATH";
/** Environment variable that turns the trampoline off (`off`) for tests. */
export const TRAMPOLINE_ENV = "TWZ_PMEM_TRAMPOLINE";
/** The one-line install hint used in every "libpmem2 missing" message. */
export const INSTALL_HINT = "apt-get install -y libpmem2";
const DEFAULT_LIBRARY = "libpmem2.so.1";

const LIBPMEM2 = {
  pmem2_errormsg: {
    parameters: [],
    result: "pointer", // const char *
  },
  pmem2_config_new: {
    parameters: [
      "buffer", // struct pmem2_config **cfg
    ],
    result: "i32", // int
  },
  pmem2_config_delete: {
    parameters: [
      "buffer", // struct pmem2_config **cfg
    ],
    result: "i32", // int
  },
  pmem2_config_set_required_store_granularity: {
    parameters: [
      "pointer", // struct pmem2_config *cfg
      "i32", // enum pmem2_granularity g
    ],
    result: "i32", // int
  },
  pmem2_config_set_sharing: {
    parameters: [
      "pointer", // struct pmem2_config *cfg
      "i32", // enum pmem2_sharing_type type
    ],
    result: "i32", // int
  },
  pmem2_config_set_offset: {
    parameters: [
      "pointer", // struct pmem2_config *cfg
      "usize", // size_t offset
    ],
    result: "i32", // int
  },
  pmem2_config_set_length: {
    parameters: [
      "pointer", // struct pmem2_config *cfg
      "usize", // size_t length
    ],
    result: "i32", // int
  },
  pmem2_source_from_fd: {
    parameters: [
      "buffer", // struct pmem2_source **src
      "i32", // int fd
    ],
    result: "i32", // int
  },
  pmem2_source_delete: {
    parameters: [
      "buffer", // struct pmem2_source **src
    ],
    result: "i32", // int
  },
  pmem2_map_new: {
    parameters: [
      "buffer", // struct pmem2_map **map_ptr
      "pointer", // const struct pmem2_config *cfg
      "pointer", // const struct pmem2_source *src
    ],
    result: "i32", // int
  },
  pmem2_map_delete: {
    parameters: [
      "buffer", // struct pmem2_map **map_ptr
    ],
    result: "i32", // int
  },
  pmem2_map_get_address: {
    parameters: [
      "pointer", // struct pmem2_map *map
    ],
    result: "pointer", // void *
  },
  pmem2_map_get_size: {
    parameters: [
      "pointer", // struct pmem2_map *map
    ],
    result: "usize", // size_t
  },
  pmem2_map_get_store_granularity: {
    parameters: [
      "pointer", // struct pmem2_map *map
    ],
    result: "i32", // enum pmem2_granularity
  },
  pmem2_get_persist_fn: {
    parameters: [
      "pointer", // struct pmem2_map *map
    ],
    result: "function", // pmem2_persist_fn: void (*)(const void *ptr, size_t size)
  },
  pmem2_get_flush_fn: {
    parameters: [
      "pointer", // struct pmem2_map *map
    ],
    result: "function", // pmem2_flush_fn: void (*)(const void *ptr, size_t size)
  },
  pmem2_get_drain_fn: {
    parameters: [
      "pointer", // struct pmem2_map *map
    ],
    result: "function", // pmem2_drain_fn: void (*)(void)
  },
} as const satisfies Deno.ForeignLibraryInterface;

const TRAMPOLINE = {
  twz_trampoline_abi: {
    parameters: [],
    result: "u32", // uint32_t
  },
  twz_persist: {
    parameters: [
      "function", // twz_range_fn persist
      "pointer", // const char *base
      "usize", // size_t offset
      "usize", // size_t length
    ],
    result: "void",
  },
  twz_flush: {
    parameters: [
      "function", // twz_range_fn flush
      "pointer", // const char *base
      "usize", // size_t offset
      "usize", // size_t length
    ],
    result: "void",
  },
  twz_persist32: {
    parameters: [
      "function", // twz_range_fn persist
      "pointer", // const char *base
      "u32", // uint32_t offset
      "u32", // uint32_t length
    ],
    result: "void",
  },
  twz_flush32: {
    parameters: [
      "function", // twz_range_fn flush
      "pointer", // const char *base
      "u32", // uint32_t offset
      "u32", // uint32_t length
    ],
    result: "void",
  },
  twz_flush_ranges: {
    parameters: [
      "function", // twz_range_fn flush
      "pointer", // const char *base
      "buffer", // const double *ranges
      "u32", // uint32_t count
    ],
    result: "void",
  },
  twz_persist_ranges: {
    parameters: [
      "function", // twz_range_fn flush
      "function", // twz_drain_fn drain
      "pointer", // const char *base
      "buffer", // const double *ranges
      "u32", // uint32_t count
    ],
    result: "void",
  },
  twz_drain: {
    parameters: [
      "function", // twz_drain_fn drain
    ],
    result: "void",
  },
  twz_bench_store_persist: {
    parameters: [
      "function", // twz_range_fn persist
      "pointer", // char *base
      "usize", // size_t span
      "usize", // size_t length
      "u32", // uint32_t count
    ],
    result: "void",
  },
} as const satisfies Deno.ForeignLibraryInterface;
const TRAMPOLINE_ABI = 4;

/** `void (*)(const void *ptr, size_t size)`: pmem2_persist_fn / pmem2_flush_fn. */
const RANGE_FN = {
  parameters: [
    "pointer", // const void *ptr
    "usize", // size_t size
  ],
  result: "void",
} as const satisfies Deno.ForeignFunction;
/** `void (*)(void)`: pmem2_drain_fn. */
const DRAIN_FN = {
  parameters: [],
  result: "void",
} as const satisfies Deno.ForeignFunction;

type RangeFnPointer = Deno.PointerObject<typeof RANGE_FN>;
type DrainFnPointer = Deno.PointerObject<typeof DRAIN_FN>;
type Libpmem2 = Deno.DynamicLibrary<typeof LIBPMEM2>["symbols"];
type Trampoline = Deno.DynamicLibrary<typeof TRAMPOLINE>["symbols"];

const GRANULARITY_CODES: Record<Granularity, number> = {
  "byte": 0, // PMEM2_GRANULARITY_BYTE
  "cache-line": 1, // PMEM2_GRANULARITY_CACHE_LINE
  "page": 2, // PMEM2_GRANULARITY_PAGE
};
const GRANULARITY_NAMES: Granularity[] = ["byte", "cache-line", "page"];
/** `enum pmem2_sharing_type`: PMEM2_SHARED is 0. */
const PMEM2_PRIVATE = 1;

let loaded: { symbols: Libpmem2; path: string } | undefined;

/** The library path that {@linkcode libpmem2} opens. */
export function libraryPath(): string {
  return env(LIBRARY_ENV) || DEFAULT_LIBRARY;
}

/**
 * Open libpmem2 (once per thread; later calls return the same symbols).
 *
 * @throws {HalError} The library cannot be loaded; `cause` is the loader's error.
 */
export function libpmem2(): Libpmem2 {
  if (loaded) return loaded.symbols;
  const path = libraryPath();
  try {
    loaded = { symbols: Deno.dlopen(path, LIBPMEM2).symbols, path };
  } catch (cause) {
    if (cause instanceof Deno.errors.NotCapable || cause instanceof Deno.errors.PermissionDenied) {
      throw new HalError(`Cannot load libpmem2: hal-pmem needs --allow-ffi`, { cause });
    }
    const why = (cause as Error).message.split("\n")[0]!
      .replace(/^(Could not open library: )+/, "");
    throw new HalError(
      `Cannot load libpmem2 from "${path}": ${why}. Install it with \`${INSTALL_HINT}\`` +
        ` or point ${LIBRARY_ENV} at libpmem2.so.1`,
      { cause },
    );
  }
  return loaded.symbols;
}

/** libpmem2's description of the last error on this thread. */
function errormsg(): string {
  const message = loaded?.symbols.pmem2_errormsg();
  return message ? Deno.UnsafePointerView.getCString(message) : "(no message)";
}

/**
 * Turn a libpmem2 return code into an exception carrying libpmem2's message.
 *
 * @throws {HalError} When `rc` is not 0.
 */
function check(rc: number, what: string): void {
  if (rc !== 0) throw new HalError(`${what} failed: ${errormsg()} (libpmem2 error ${rc})`);
}

/** Facts about the loaded libpmem2 for `describe()`: its file, its package version. */
export function libraryInfo(): Record<string, string> {
  const info: Record<string, string> = { library: loaded?.path ?? libraryPath() };
  try {
    const line = Deno.readTextFileSync("/proc/self/maps").split("\n")
      .find((l) => l.includes("/libpmem2.so"));
    if (line) info.library = line.slice(line.indexOf("/"));
  } catch { /* not Linux, or no --allow-read */ }
  try {
    const status = Deno.readTextFileSync("/var/lib/dpkg/status");
    const start = status.search(/^Package: libpmem2$/m);
    if (start >= 0) {
      const block = status.slice(start, status.indexOf("\n\n", start));
      const version = /^Version: (.+)$/m.exec(block);
      if (version) info.version = version[1]!;
    }
  } catch { /* not Debian, or no --allow-read */ }
  return info;
}

const LIBC = {
  posix_fallocate: {
    parameters: [
      "i32", // int fd
      "i64", // off_t offset
      "i64", // off_t len
    ],
    result: "i32", // int: 0, or an errno value
  },
} as const satisfies Deno.ForeignLibraryInterface;

let libc: Deno.DynamicLibrary<typeof LIBC>["symbols"] | undefined;

/**
 * `posix_fallocate(fd, 0, size)`: give every block of the file's first
 * `size` bytes backing storage, filling holes without changing any data.
 *
 * @returns 0, or the errno value it failed with (28: ENOSPC); `undefined`
 *   when libc cannot be loaded here.
 */
export function fallocate(fd: number, size: number): number | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    libc ??= Deno.dlopen("libc.so.6", LIBC).symbols;
  } catch {
    return undefined;
  }
  return libc.posix_fallocate(fd, 0n, BigInt(size));
}

/** Which way flush/drain/persist reach libpmem2. */
export type CallPath = "trampoline" | "fnptr";

let trampoline: { symbols?: Trampoline; reason?: string } | undefined;
let noted = false;

/**
 * Load the trampoline (building it if needed) once per thread. Returns
 * `undefined` when it cannot be had, after one note on stderr per thread.
 */
async function loadTrampoline(): Promise<Trampoline | undefined> {
  if (env(TRAMPOLINE_ENV) === "off") {
    note(`trampoline disabled by ${TRAMPOLINE_ENV}=off`);
    return undefined;
  }
  if (!trampoline) {
    const state = await ensureTrampoline();
    if (!state.ok) {
      trampoline = { reason: state.reason };
    } else {
      try {
        const symbols = Deno.dlopen(state.path, TRAMPOLINE).symbols;
        const abi = symbols.twz_trampoline_abi();
        trampoline = abi === TRAMPOLINE_ABI
          ? { symbols }
          : { reason: `${state.path} has ABI ${abi}, expected ${TRAMPOLINE_ABI}` };
      } catch (e) {
        trampoline = { reason: `cannot load ${state.path}: ${(e as Error).message}` };
      }
    }
  }
  if (!trampoline.symbols) note(trampoline.reason!);
  return trampoline.symbols;
}

function note(reason: string): void {
  if (noted) return;
  noted = true;
  console.error(
    `hal-pmem: ${reason}; calling libpmem2 through Deno.UnsafeFnPointer instead ` +
      `(about 2 µs per flush or persist). Install a C compiler and run tools/pmem_setup.ts.`,
  );
}

/** Current state of the trampoline in this thread, for `describe()`. */
export function trampolineStatus(): string {
  if (!trampoline) return "not loaded yet (built or loaded by the first open)";
  return trampoline.symbols ? "loaded" : `unavailable: ${trampoline.reason}`;
}

/** What to map. */
export interface MapRequest {
  /** An open file descriptor (read-write) of the file to map. */
  fd: number;
  /** Coarsest granularity the caller accepts. */
  granularity: Granularity;
  /** Byte offset into the file (a multiple of the page size). @default {0} */
  offset?: number;
  /** Bytes to map. @default {the rest of the file} */
  length?: number;
  /**
   * Map privately (copy-on-write, `PMEM2_PRIVATE`): stores stay in this
   * process and never reach the file, which may then be open read-only.
   * @default {false}
   */
  private?: boolean;
}

/** Direct paths to libpmem2's persist, for the benchmark only. */
export interface BenchPaths {
  /** The trampoline symbol called directly, or `undefined` without one. */
  raw?: (offset: number, length: number) => void;
  /** The persist function called through `Deno.UnsafeFnPointer`. */
  fnptr: (offset: number, length: number) => void;
  /** `count` × (store + persist of `length` bytes) in C, no JavaScript in the loop. */
  native?: (length: number, count: number) => void;
}

/**
 * One libpmem2 mapping: its bytes as an `ArrayBuffer` and its durability
 * functions. After {@linkcode Mapping.unmap} the buffer is detached and every
 * function throws, so nothing can reach the unmapped memory.
 */
export interface Mapping {
  /** Mapped length in bytes. */
  readonly size: number;
  /** The granularity libpmem2 detected for this mapping. */
  readonly granularity: Granularity;
  /** How flush/drain/persist are called. */
  readonly calls: CallPath;
  /** The mapped memory itself (zero-copy). */
  readonly buffer: ArrayBuffer;
  /** Persist `[offset, offset + length)`; the caller has checked the range. */
  persist(offset: number, length: number): void;
  /** Flush `[offset, offset + length)`; the caller has checked the range. */
  flush(offset: number, length: number): void;
  /** Flush `count` (offset, length) pairs of `ranges`; the caller has checked them. */
  flushRanges(ranges: Float64Array, count: number): void;
  /** `flushRanges`, then drain, in one call. */
  persistRanges(ranges: Float64Array, count: number): void;
  /** Drain. */
  drain(): void;
  /** Detach `buffer`, then delete the mapping. Harmless twice. */
  unmap(): void;
  /** Direct call paths for the benchmark. */
  benchPaths(): BenchPaths;
}

/**
 * Map a file with libpmem2.
 *
 * @throws {HalError} libpmem2 refused (its message is included).
 */
export async function mapFile(request: MapRequest): Promise<Mapping> {
  const lib = libpmem2();
  const tramp = await loadTrampoline();
  const out = new BigUint64Array(1);
  const take = () => Deno.UnsafePointer.create(out[0]!);

  check(lib.pmem2_config_new(out), "pmem2_config_new");
  const config = take();
  let map: Deno.PointerValue;
  try {
    check(
      lib.pmem2_config_set_required_store_granularity(
        config,
        GRANULARITY_CODES[request.granularity],
      ),
      "pmem2_config_set_required_store_granularity",
    );
    if (request.private) {
      check(
        lib.pmem2_config_set_sharing(config, PMEM2_PRIVATE),
        "pmem2_config_set_sharing",
      );
    }
    if (request.offset) {
      check(
        lib.pmem2_config_set_offset(config, BigInt(request.offset)),
        "pmem2_config_set_offset",
      );
    }
    if (request.length !== undefined) {
      check(
        lib.pmem2_config_set_length(config, BigInt(request.length)),
        "pmem2_config_set_length",
      );
    }
    check(lib.pmem2_source_from_fd(out, request.fd), "pmem2_source_from_fd");
    const source = take();
    try {
      check(lib.pmem2_map_new(out, config, source), "pmem2_map_new");
      map = take();
    } finally {
      out[0] = Deno.UnsafePointer.value(source);
      lib.pmem2_source_delete(out);
    }
  } finally {
    out[0] = Deno.UnsafePointer.value(config);
    lib.pmem2_config_delete(out);
  }
  return new NativeMapping(lib, tramp, map);
}

function closed(): never {
  throw new HalError("Cannot use a pmem region after close: it is unmapped");
}

class NativeMapping implements Mapping {
  readonly size: number;
  readonly granularity: Granularity;
  readonly calls: CallPath;
  readonly buffer: ArrayBuffer;
  persist: (offset: number, length: number) => void;
  flush: (offset: number, length: number) => void;
  flushRanges: (ranges: Float64Array, count: number) => void;
  persistRanges: (ranges: Float64Array, count: number) => void;
  drain: () => void;
  #lib: Libpmem2;
  #tramp: Trampoline | undefined;
  #map: Deno.PointerValue;
  #base: Deno.PointerValue;
  #persistFn: Deno.PointerValue;

  constructor(lib: Libpmem2, tramp: Trampoline | undefined, map: Deno.PointerValue) {
    this.#lib = lib;
    this.#tramp = tramp;
    this.#map = map;
    const base = lib.pmem2_map_get_address(map);
    const size = Number(lib.pmem2_map_get_size(map));
    this.#base = base;
    this.size = size;
    this.granularity = GRANULARITY_NAMES[lib.pmem2_map_get_store_granularity(map)] ?? "page";
    this.buffer = base === null ? new ArrayBuffer(0) : Deno.UnsafePointerView.getArrayBuffer(
      base,
      size,
    );
    const persistFn = lib.pmem2_get_persist_fn(map);
    const flushFn = lib.pmem2_get_flush_fn(map);
    const drainFn = lib.pmem2_get_drain_fn(map);
    this.#persistFn = persistFn;
    if (tramp) {
      this.calls = "trampoline";
      const {
        twz_persist,
        twz_flush,
        twz_persist32,
        twz_flush32,
        twz_flush_ranges,
        twz_persist_ranges,
        twz_drain,
      } = tramp;
      this.flushRanges = (ranges, count) => twz_flush_ranges(flushFn, base, ranges, count);
      this.persistRanges = (ranges, count) =>
        twz_persist_ranges(flushFn, drainFn, base, ranges, count);
      if (size <= 0xffffffff) {
        // Offsets and lengths fit 32 bits: plain numbers, no BigInt per call.
        this.persist = (o, l) => twz_persist32(persistFn, base, o, l);
        this.flush = (o, l) => twz_flush32(flushFn, base, o, l);
      } else {
        this.persist = (o, l) => twz_persist(persistFn, base, BigInt(o), BigInt(l));
        this.flush = (o, l) => twz_flush(flushFn, base, BigInt(o), BigInt(l));
      }
      this.drain = () => twz_drain(drainFn);
    } else {
      this.calls = "fnptr";
      const persist = new Deno.UnsafeFnPointer(persistFn as RangeFnPointer, RANGE_FN);
      const flush = new Deno.UnsafeFnPointer(flushFn as RangeFnPointer, RANGE_FN);
      const drain = new Deno.UnsafeFnPointer(drainFn as DrainFnPointer, DRAIN_FN);
      this.persist = (o, l) => persist.call(Deno.UnsafePointer.offset(base!, o), BigInt(l));
      this.flush = (o, l) => flush.call(Deno.UnsafePointer.offset(base!, o), BigInt(l));
      this.drain = () => drain.call();
      this.flushRanges = (ranges, count) => {
        for (let i = 0; i < count; i++) this.flush(ranges[2 * i]!, ranges[2 * i + 1]!);
      };
      this.persistRanges = (ranges, count) => {
        this.flushRanges(ranges, count);
        this.drain();
      };
    }
  }

  unmap(): void {
    if (this.#map === null) return;
    this.persist =
      this.flush =
      this.drain =
      this.flushRanges =
      this.persistRanges =
        closed;
    if (!detach(this.buffer)) {
      // A view we cannot detach must never outlive its memory: keep the
      // mapping (leak it) rather than risk a stale access after munmap.
      console.error("hal-pmem: cannot detach the view; leaving the mapping in place");
      this.#map = null;
      return;
    }
    const out = new BigUint64Array([Deno.UnsafePointer.value(this.#map)]);
    this.#map = null;
    check(this.#lib.pmem2_map_delete(out), "pmem2_map_delete");
  }

  benchPaths(): BenchPaths {
    const base = this.#base!;
    const persistFn = this.#persistFn!;
    const fnptr = new Deno.UnsafeFnPointer(persistFn as RangeFnPointer, RANGE_FN);
    const paths: BenchPaths = {
      fnptr: (o, l) => fnptr.call(Deno.UnsafePointer.offset(base, o), BigInt(l)),
    };
    const tramp = this.#tramp;
    if (tramp) {
      const { twz_persist, twz_persist32, twz_bench_store_persist } = tramp;
      paths.raw = this.size <= 0xffffffff
        ? (o, l) => twz_persist32(persistFn, base, o, l)
        : (o, l) => twz_persist(persistFn, base, BigInt(o), BigInt(l));
      const span = BigInt(this.size);
      paths.native = (l, count) => twz_bench_store_persist(persistFn, base, span, BigInt(l), count);
    }
    return paths;
  }
}

/**
 * Detach an `ArrayBuffer` (even one over foreign memory): every view of it
 * then has length 0. `transfer(0)` is tried first, then a transferring
 * `structuredClone`.
 *
 * @returns Whether the buffer is detached now.
 */
export function detach(buffer: ArrayBuffer): boolean {
  if (buffer.detached) return true;
  try {
    buffer.transfer(0);
  } catch { /* try the other way */ }
  if (!buffer.detached) {
    try {
      structuredClone(buffer, { transfer: [buffer] });
    } catch { /* reported by the return value */ }
  }
  return buffer.detached;
}

/**
 * `@twz/hal-pmem`: the Twizzler HAL on real persistent memory. An image is
 * an ordinary file mapped with PMDK's libpmem2 (loaded with `Deno.dlopen`
 * when a HAL is opened, never at import); the kernel loads and stores on the
 * mapping itself through `region.bytes`, and makes stores durable with the
 * flush/drain/persist functions libpmem2 chooses for the mapping (CPU cache
 * flushes on DAX or with `PMEM2_FORCE_GRANULARITY=CACHE_LINE`, `msync`
 * otherwise).
 *
 * The entry point is {@linkcode plugin} (what `twz --hal pmem` and
 * `Twz.open({ hal: "pmem" })` load); {@linkcode persistPaths} tells which
 * persist path a mapping got. Subpaths:
 *
 * | Subpath | What |
 * | --- | --- |
 * | `@twz/hal-pmem` | the plugin |
 * | `@twz/hal-pmem/setup` | `setup()`: make libpmem2 loadable and build the C trampoline ahead of time |
 *
 * Needs libpmem2 (`apt-get install -y libpmem2`) and `--allow-ffi`; a C
 * compiler makes persist ~10× cheaper (it builds a small C trampoline, which
 * `setup` of `@twz/hal-pmem/setup` builds ahead of time: the root task `setup`).
 *
 * @example Make a record durable and read it back in a new process
 * ```ts ignore
 * import { plugin } from "@twz/hal-pmem";
 *
 * const hal = await plugin.open({ image: "/tmp/twz.img", size: 1 << 20, create: true });
 * hal.region.bytes.set([1, 2, 3], 0);
 * hal.region.persist(0, 3);
 * hal.close();
 * ```
 *
 * @tags allow-ffi
 * @module
 */
export {
  type PersistPaths,
  persistPaths,
  plugin,
  type PmemCallPath,
  type PmemRegion,
} from "./plugin.ts";

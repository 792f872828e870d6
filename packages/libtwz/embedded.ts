/**
 * The embedded "board": the one place in libtwz that turns a HAL name into a
 * HAL plugin, so that a plain Deno script can boot an in-process kernel with
 * `Twz.open({ hal: "sim" })`. The plugins are loaded with literal dynamic
 * imports, only when asked for: importing libtwz never loads a HAL, and
 * nothing needs `--allow-ffi` unless `"pmem"` is chosen.
 *
 * @example
 * ```ts
 * import { loadHalPlugin } from "@twz/libtwz/embedded";
 * const plugin = await loadHalPlugin("sim");
 * console.log(plugin.name); // sim
 * ```
 *
 * @module
 */
import type { HalPlugin } from "@twz/kernel/hal";

/** HAL plugins libtwz can load by name. */
export type HalName = "sim" | "pmem";

/**
 * Load a HAL plugin by name.
 *
 * @param name `"sim"` (simulated NVM) or `"pmem"` (libpmem2).
 * @returns The plugin.
 * @throws {TypeError} An unknown name.
 * @example
 * ```ts
 * import { loadHalPlugin } from "@twz/libtwz/embedded";
 * console.log((await loadHalPlugin("sim")).describe().available); // true
 * ```
 */
export async function loadHalPlugin(name: HalName): Promise<HalPlugin> {
  if (name !== "sim" && name !== "pmem") {
    throw new TypeError(`Unknown HAL "${name}" (expected "sim" or "pmem")`);
  }
  const mod = name === "sim" ? await import("@twz/hal-sim") : await import("@twz/hal-pmem");
  return mod.plugin;
}

/**
 * The embedded "board": the one place in libtwz that turns a HAL name into a
 * HAL plugin, so that a plain Deno script can boot an in-process kernel with
 * `Twz.open({ hal: "sim" })`, and the one way an image is opened for a
 * kernel ({@linkcode openImage}: stat it, decide its size, create it when
 * absent), shared by `Twz.open` and the `twz` command. The plugins are
 * loaded with literal dynamic imports, only when asked for: importing libtwz
 * never loads a HAL, and nothing needs `--allow-ffi` unless `"pmem"` is
 * chosen. This registry ({@linkcode HAL_PLUGINS}) is the only one: the `twz`
 * command uses it too.
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
import { type Console, formatSize, type Hal, HalError, type HalPlugin } from "@twz/kernel/hal";
import { Kernel } from "@twz/kernel";
import type { KernelPort } from "@twz/kernel/abi";
import { DEFAULT_IMAGE_SIZE } from "./twz.ts";
import { connectRemotePort, controlPath, RemotePort } from "./_remote.ts";

export { connectRemotePort, controlPath, DEFAULT_IMAGE_SIZE, RemotePort };

/** HAL plugins libtwz can load by name. */
export type HalName = "sim" | "pmem";

/**
 * The HAL plugins, by name (`--hal`, `Twz.open({ hal })`): each loads its
 * plugin's module on first call. Importing this module loads none.
 *
 * @example
 * ```ts
 * import { HAL_PLUGINS } from "@twz/libtwz/embedded";
 * console.log(Object.keys(HAL_PLUGINS).join(", ")); // sim, pmem
 * ```
 */
export const HAL_PLUGINS: Readonly<Record<HalName, () => Promise<{ plugin: HalPlugin }>>> = {
  sim: () => import("@twz/hal-sim"),
  pmem: () => import("@twz/hal-pmem"),
};

/** Whether `name` names a plugin of {@linkcode HAL_PLUGINS}. */
export function isHalName(name: string): name is HalName {
  return Object.hasOwn(HAL_PLUGINS, name);
}

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
  if (!isHalName(name)) {
    throw new TypeError(`Unknown HAL "${name}" (expected "sim" or "pmem")`);
  }
  return (await HAL_PLUGINS[name]()).plugin;
}

/** Options for {@linkcode openImage}. */
export interface OpenImageOptions {
  /** The image file; absent: an anonymous region (hal-sim). */
  image?: string | undefined;
  /** Size asked for: a new image gets it, an existing one must have it. */
  size?: number | undefined;
  /**
   * Size of a new image when `size` is absent (`Twz.open` and `twz boot`
   * give {@linkcode DEFAULT_IMAGE_SIZE}). Absent too: a new image is refused
   * by the plugin (no size given).
   */
  newSize?: number | undefined;
  /** The console. @default {the plugin's: stdin/stdout} */
  console?: Console | undefined;
  /** Plugin settings. */
  settings?: Record<string, string> | undefined;
  /** Open read-only: nothing is written, and nothing is created. */
  readOnly?: boolean | undefined;
  /** What holds the lock, named to a refused second opener. */
  holder?: string | undefined;
}

/**
 * Open an image with `plugin` the one way every board does: stat it; an
 * existing image keeps its size (`size`, when given, must match) and is
 * refused when larger than the plugin's
 * {@linkcode HalPlugin.maxImageSize}; an absent one is created (unless
 * read-only) with `size`, else `newSize`. A plugin that runs out of memory
 * allocating the image (a `RangeError`) is reported as a `HalError`.
 *
 * @param plugin The HAL plugin.
 * @param options Image, sizes, console, settings, read-only, lock holder.
 * @returns The open HAL (`created` says whether it made the image).
 * @throws {HalError} The image cannot be opened or created (`code: "busy"`
 *   when another opener holds it).
 * @tags allow-read, allow-write
 * @example
 * ```ts
 * import { DEFAULT_IMAGE_SIZE, loadHalPlugin, openImage } from "@twz/libtwz/embedded";
 * const hal = await openImage(await loadHalPlugin("sim"), { newSize: 1 << 20 });
 * console.log(hal.region.size, hal.created); // 1048576 true
 * hal.close();
 * ```
 */
export async function openImage(plugin: HalPlugin, options: OpenImageOptions): Promise<Hal> {
  const image = options.image;
  const existing = image === undefined ? undefined : imageSize(image);
  const max = plugin.maxImageSize;
  if (existing !== undefined && max !== undefined && existing > max) {
    throw new HalError(
      `Cannot open image ${image}: it holds ${existing} bytes, more than hal ${plugin.name} can hold in memory (${
        formatSize(max)
      })`,
    );
  }
  try {
    return await plugin.open({
      image,
      size: existing !== undefined ? options.size : (options.size ?? options.newSize),
      create: existing === undefined && !options.readOnly,
      console: options.console,
      settings: options.settings,
      ...(options.readOnly ? { readOnly: true } : {}),
      ...(options.holder !== undefined ? { holder: options.holder } : {}),
    });
  } catch (error) {
    // hal-sim allocates the whole image: say so instead of "allocation failed".
    if (error instanceof RangeError) {
      throw new HalError(
        `Cannot open image ${image ?? "(anonymous)"}: ${error.message} (too large for memory?)`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Options for `Twz.open`. */
export interface TwzOpenOptions {
  /** The HAL: `"sim"`, `"pmem"`, or a plugin object. @default {"sim"} */
  hal?: HalName | HalPlugin;
  /**
   * The image file. Created (and formatted) when absent. Without it, hal-sim
   * gives an anonymous region that is gone at `close()`.
   */
  image?: string;
  /**
   * Size of a new image in bytes; for an existing image it must match or be
   * absent.
   * @default {DEFAULT_IMAGE_SIZE}
   */
  size?: number;
  /** Plugin settings. */
  settings?: Record<string, string>;
  /**
   * Open the image read-only: nothing is ever written to the file, every
   * write is refused (`TwzError` `ReadOnly`), and a committed log is replayed
   * only into a private in-memory overlay. An image the process may not
   * write opens read-only anyway (`twz.readOnly`, and
   * `twz.port.info().privateOverlay`).
   * @default {false}
   */
  readOnly?: boolean;
  /**
   * What this program is, named to a second opener of the image (which is
   * refused with a `HalError` whose `code` is `"busy"` while this session is
   * open).
   * @default {"Twz.open"}
   */
  holder?: string;
}

/** The system an embedded session runs on. */
export interface EmbeddedSystem {
  /**
   * The kernel's in-process port, or a {@linkcode RemotePort} to the system
   * of a running `twz boot` that holds the image.
   */
  port: KernelPort;
  /** Shut the in-process kernel down and close the HAL (or close the remote port). */
  shutdown(): void;
}

/**
 * Boot an in-process kernel on an image (what `Twz.open` does before it
 * opens a session on the kernel's port). When a running `twz boot` holds the
 * image (the HAL refuses it as busy) and listens on its control socket
 * (`IMAGE.sock`), a writable open becomes a client of that system instead: a
 * {@linkcode RemotePort}, whose mappings are copies written back by
 * `flush`/`persist` (see `_remote.ts`). A read-only open is never turned into
 * a client (it would be a writable one): it stays refused.
 *
 * @param options HAL, image, size, read-only, lock holder.
 * @returns The port and how to shut it down.
 * @throws {HalError} The image cannot be opened (`code: "busy"` when another
 * process or session holds it and no system answers on its socket);
 * {TwzError} `ImageCorrupt` or `ImageUnsupported` from boot.
 * @tags allow-read, allow-write
 * @example
 * ```ts
 * import { bootEmbedded } from "@twz/libtwz/embedded";
 * const system = await bootEmbedded({ hal: "sim", size: 8 << 20 });
 * console.log(system.port.info().hal); // sim
 * system.shutdown();
 * ```
 */
export async function bootEmbedded(options: TwzOpenOptions = {}): Promise<EmbeddedSystem> {
  const plugin = typeof options.hal === "object"
    ? options.hal
    : await loadHalPlugin(options.hal ?? "sim");
  const readOnly = options.readOnly === true;
  // The one "stat the image, decide its size, create it when absent" path
  // (the `twz` command's too).
  let hal: Hal;
  try {
    hal = await openImage(plugin, {
      image: options.image,
      size: options.size,
      newSize: DEFAULT_IMAGE_SIZE,
      settings: options.settings,
      readOnly,
      holder: options.holder ?? "Twz.open",
    });
  } catch (error) {
    if (
      error instanceof HalError && error.code === "busy" && options.image !== undefined &&
      !readOnly
    ) {
      const remote = await connectRemotePort(options.image);
      if (remote !== undefined) return { port: remote, shutdown: () => remote.close() };
    }
    throw error;
  }
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(hal, { readOnly: readOnly || hal.readOnly === true });
  } catch (e) {
    hal.close();
    throw e;
  }
  return {
    port: kernel.port(),
    shutdown() {
      kernel.shutdown();
      hal.close();
    },
  };
}

/**
 * The size of the file at `path`, or `undefined` when nothing can be found
 * there (the plugin's open then says what is wrong, if anything).
 */
function imageSize(path: string): number | undefined {
  try {
    return Deno.statSync(path).size;
  } catch {
    return undefined;
  }
}

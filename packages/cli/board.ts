/**
 * The board: the one place that wires a HAL plugin to a kernel (as a Tock
 * board wires a chip). Plugins are loaded only when named.
 *
 * @module
 */
import {
  type Console,
  formatSize,
  type Hal,
  HalError,
  type HalPlugin,
  stdioConsole,
} from "@twz/kernel/hal";

export { formatSize };
import { Kernel, MIN_IMAGE } from "@twz/kernel";

/** The HAL plugins, by `--hal` name. */
export const HALS: Record<string, () => Promise<{ plugin: HalPlugin }>> = {
  sim: () => import("@twz/hal-sim"),
  pmem: () => import("@twz/hal-pmem"),
};

/** A usage mistake: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Load a plugin by name. */
export async function loadPlugin(name: string): Promise<HalPlugin> {
  const load = HALS[name];
  if (!load) {
    throw new UsageError(`unknown HAL "${name}" (choose one of: ${Object.keys(HALS).join(", ")})`);
  }
  return (await load()).plugin;
}

/** Options for {@linkcode openBoard}. */
export interface BoardOptions {
  hal: string;
  image?: string;
  /** Size for a new image; must match an existing one when given. */
  size?: number;
  console?: Console;
  settings?: Record<string, string>;
  /**
   * Open the image read-only: the kernel refuses every write and nothing
   * ever reaches the file (a log replay stays in a private in-memory overlay).
   */
  readOnly?: boolean;
  /** What holds the image lock, for a refused second opener. @default {"twz boot"} */
  holder?: string;
  /** Called with the open HAL before the kernel boots (crash points arm here). */
  beforeBoot?: (hal: Hal) => void;
}

/** An open HAL with a booted kernel; `reboot` replaces both. */
export interface Board {
  plugin: HalPlugin;
  hal: Hal;
  kernel: Kernel;
  options: BoardOptions;
}

/** Default size of a new image. */
export const DEFAULT_IMAGE_SIZE = 64 << 20;

/** The largest image hal-sim will open: it holds the whole image in memory. */
export const SIM_MAX_IMAGE = 16 * 2 ** 30;

/** Whether `error` is a simulated power failure (hal-sim's `PowerFailed`). */
export function isPowerFailure(error: unknown): boolean {
  return error instanceof Error && error.name === "PowerFailed";
}

/**
 * Check a size asked for an image before anything is created: at least
 * `MIN_IMAGE`, and for hal-sim (which holds the image in memory) at most
 * {@linkcode SIM_MAX_IMAGE}.
 *
 * @throws {UsageError} The size is out of range.
 */
export function checkImageSize(hal: string, size: number, what = "--size"): void {
  if (size < MIN_IMAGE) {
    throw new UsageError(
      `${what} ${size} is too small: an image needs at least ${MIN_IMAGE} bytes (${
        formatSize(MIN_IMAGE)
      })`,
    );
  }
  if (hal === "sim" && size > SIM_MAX_IMAGE) {
    throw new UsageError(
      `${what} ${size} is too large for hal sim, which holds the image in memory (at most ${
        formatSize(SIM_MAX_IMAGE)
      })`,
    );
  }
}

/**
 * Boot a kernel on `hal`: a new image is formatted, and so is one whose first
 * format was cut short (the kernel's `isUnfinishedFormat`: nothing was ever
 * committed to it); any other image without a superblock magic is refused.
 * A read-only boot formats nothing.
 */
export function bootKernel(hal: Hal, readOnly = false): Kernel {
  readOnly ||= hal.readOnly === true;
  return Kernel.boot(hal, { formatBlank: !readOnly, readOnly });
}

function removeQuietly(path: string | undefined): void {
  if (path === undefined) return;
  try {
    Deno.removeSync(path);
  } catch { /* not there */ }
}

/**
 * Open (creating when absent) the image and boot a kernel on it.
 *
 * @throws {UsageError} Unknown HAL. {HalError} or {TwzError} from the HAL or kernel.
 */
export async function openBoard(options: BoardOptions): Promise<Board> {
  const plugin = await loadPlugin(options.hal);
  // One console for the board's whole life: reboots reopen the HAL, not stdin.
  options = { ...options, console: options.console ?? stdioConsole() };
  if (options.size !== undefined) checkImageSize(options.hal, options.size);
  // The HAL removes a file it created and could not finish (no room, say);
  // a file it created and the kernel could not boot is removed here, while
  // the image lock is still held (but not after a --crash-at power failure:
  // that image is the point). A file this command did not create is never
  // removed, even if it appeared after we looked (another opener's).
  const hal = await openImage(plugin, {
    image: options.image,
    size: options.size,
    newSize: DEFAULT_IMAGE_SIZE,
    console: options.console,
    settings: options.settings,
    readOnly: options.readOnly,
    holder: options.holder ?? "twz boot",
  });
  try {
    options.beforeBoot?.(hal);
    return { plugin, hal, kernel: bootKernel(hal, options.readOnly), options };
  } catch (error) {
    if (hal.created && hal.image !== undefined && !isPowerFailure(error)) {
      removeQuietly(hal.image);
    }
    hal.close();
    throw error;
  }
}

/** Whether a file (or anything) exists at `path`. */
export function fileExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Open `image` with `plugin`, creating it when absent: `size` must match an
 * existing image when given; a new one gets `size`, else `newSize`.
 */
export function openImage(
  plugin: HalPlugin,
  options: {
    image?: string;
    size?: number;
    newSize?: number;
    console?: Console;
    settings?: Record<string, string>;
    /** Open read-only (never creates). */
    readOnly?: boolean;
    /** What holds the lock (for the busy message). */
    holder?: string;
  },
): Promise<Hal> {
  const exists = options.image !== undefined && fileExists(options.image);
  if (exists && plugin.name === "sim") {
    const size = Deno.statSync(options.image!).size;
    if (size > SIM_MAX_IMAGE) {
      return Promise.reject(
        new HalError(
          `Cannot open image ${options.image}: it holds ${size} bytes, more than hal sim can hold in memory (${
            formatSize(SIM_MAX_IMAGE)
          })`,
        ),
      );
    }
  }
  return plugin.open({
    image: options.image,
    size: exists ? options.size : (options.size ?? options.newSize),
    create: !exists && !options.readOnly,
    console: options.console,
    settings: options.settings,
    ...(options.readOnly ? { readOnly: true } : {}),
    ...(options.holder !== undefined ? { holder: options.holder } : {}),
  }).catch((error) => {
    // hal-sim allocates the whole image: say so instead of "allocation failed".
    if (error instanceof RangeError) {
      throw new HalError(
        `Cannot open image ${
          options.image ?? "(anonymous)"
        }: ${error.message} (too large for memory?)`,
        { cause: error },
      );
    }
    throw error;
  });
}

/**
 * A clean reboot: shut the kernel down, close the HAL (writing everything
 * back), open the image again and boot. An anonymous region is kept open.
 */
export async function rebootBoard(board: Board): Promise<void> {
  board.kernel.shutdown();
  if (board.hal.image !== undefined) {
    board.hal.close();
    board.hal = await board.plugin.open({
      image: board.hal.image,
      create: false,
      console: board.options.console,
      settings: board.options.settings,
      ...(board.options.readOnly ? { readOnly: true } : {}),
      holder: board.options.holder ?? "twz boot",
    });
  }
  board.kernel = bootKernel(board.hal, board.options.readOnly);
}

/** Close a board cleanly (kernel shutdown, HAL close). Harmless twice. */
export function closeBoard(board: Board): void {
  board.kernel.shutdown();
  board.hal.close();
}

/**
 * Parse a command-line integer option: digits only, at least 1 (at least 0
 * with `zero`), and a safe integer.
 *
 * @param text The option's text.
 * @param what The option, for the error (`--seed`).
 * @throws {UsageError} `text` is not such an integer.
 */
export function positive(text: string, what: string, zero = false): number {
  if (
    !/^\d+$/.test(text) || (!zero && Number(text) < 1) || !Number.isSafeInteger(Number(text))
  ) {
    throw new UsageError(
      `${what} takes a ${zero ? "non-negative" : "positive"} integer, not "${text}"`,
    );
  }
  return Number(text);
}

/** Parse a size like `65536`, `64K`, `64M`, `1G`, `64MiB`. */
export function parseSize(text: string): number {
  const m = /^(\d+)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`"${text}" is not a size (like 4096, 64K, 64M or 1G)`);
  const unit = { "": 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 }[m[2].toUpperCase()]!;
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`"${text}" is not a usable size`);
  return n;
}

/**
 * The board: the one place that wires a HAL plugin to a kernel (as a Tock
 * board wires a chip). Plugins are loaded only when named.
 *
 * @module
 */
import { type Console, type Hal, type HalPlugin, stdioConsole } from "@twz/kernel/hal";
import { Kernel } from "@twz/kernel";

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

/**
 * Open (creating when absent) the image and boot a kernel on it.
 *
 * @throws {UsageError} Unknown HAL. {HalError} or {TwzError} from the HAL or kernel.
 */
export async function openBoard(options: BoardOptions): Promise<Board> {
  const plugin = await loadPlugin(options.hal);
  // One console for the board's whole life: reboots reopen the HAL, not stdin.
  options = { ...options, console: options.console ?? stdioConsole() };
  const hal = await openImage(plugin, {
    image: options.image,
    size: options.size,
    newSize: DEFAULT_IMAGE_SIZE,
    console: options.console,
    settings: options.settings,
  });
  try {
    options.beforeBoot?.(hal);
    return { plugin, hal, kernel: Kernel.boot(hal), options };
  } catch (error) {
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
  },
): Promise<Hal> {
  const exists = options.image !== undefined && fileExists(options.image);
  return plugin.open({
    image: options.image,
    size: exists ? options.size : (options.size ?? options.newSize),
    create: !exists,
    console: options.console,
    settings: options.settings,
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
    });
  }
  board.kernel = Kernel.boot(board.hal);
}

/** Close a board cleanly (kernel shutdown, HAL close). Harmless twice. */
export function closeBoard(board: Board): void {
  board.kernel.shutdown();
  board.hal.close();
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

/** Format a byte count for people: `64.0 MiB`. */
export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * The board: the one place that wires a HAL plugin to a kernel (as a Tock
 * board wires a chip). Plugins are loaded only when named.
 *
 * @module
 */
import {
  type Console,
  danglingLinkTarget,
  type EvictionPolicy,
  formatSize,
  type Hal,
  HalError,
  type HalPlugin,
  PowerFailed,
  stdioConsole,
} from "@twz/kernel/hal";
import { ErrorCode, Kernel, MIN_IMAGE, TwzError } from "@twz/kernel";
import { MAGIC, PAGE, SUPERBLOCK_BACKUP_OFFSET, SUPERBLOCK_BYTES } from "@twz/kernel/format";
import { type RecoveredTransactions, Twz } from "@twz/libtwz";
import {
  DEFAULT_IMAGE_SIZE,
  HAL_PLUGINS,
  isHalName,
  openImage,
  type OpenImageOptions,
} from "@twz/libtwz/embedded";
import { dirname } from "node:path";
import { bindDevices, type Devices } from "./devices.ts";

export { DEFAULT_IMAGE_SIZE, formatSize, openImage, type OpenImageOptions };

/**
 * The HAL plugins, by `--hal` name: the one registry, `HAL_PLUGINS` of
 * `@twz/libtwz/embedded` (this name is kept for the board's callers).
 */
export const HALS: Readonly<Record<string, () => Promise<{ plugin: HalPlugin }>>> = HAL_PLUGINS;

/** A usage mistake: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Load a plugin by name.
 *
 * @throws {UsageError} No plugin has that name.
 */
export async function loadPlugin(name: string): Promise<HalPlugin> {
  if (!isHalName(name)) {
    throw new UsageError(`unknown HAL "${name}" (choose one of: ${Object.keys(HALS).join(", ")})`);
  }
  return (await HAL_PLUGINS[name]()).plugin;
}

/** Options for {@linkcode openBoard}. */
export interface BoardOptions {
  /** The plugin's `--hal` name (see {@linkcode HALS}). */
  hal: string;
  /** The image file; absent: an anonymous region (hal-sim). */
  image?: string | undefined;
  /** Size for a new image; must match an existing one when given. */
  size?: number | undefined;
  /** The console. @default {a console on stdin/stdout, kept across reboots} */
  console?: Console | undefined;
  /** Plugin settings (`--set K=V`). */
  settings?: Record<string, string> | undefined;
  /**
   * Open the image read-only: the kernel refuses every write and nothing
   * ever reaches the file (a log replay stays in a private in-memory overlay).
   */
  readOnly?: boolean | undefined;
  /** What holds the image lock, for a refused second opener. @default {"twz boot"} */
  holder?: string | undefined;
  /** Called with the open HAL before the kernel boots (crash points arm here). */
  beforeBoot?: ((hal: Hal) => void) | undefined;
}

/** An open HAL with a booted kernel; `reboot` replaces both. */
export interface Board {
  plugin: HalPlugin;
  hal: Hal;
  kernel: Kernel;
  options: BoardOptions;
  /** The device objects of the current boot, bound under `/dev` (see `devices.ts`). */
  devices?: Devices | undefined;
  /**
   * The libtwz transactions the current boot's first session replayed
   * (`Twz.recovered`; a writable boot's, for the boot line).
   */
  recovered?: RecoveredTransactions | undefined;
}

/**
 * Make the current kernel's device objects and bind them under `/dev` (a
 * read-only system makes them and binds nothing); the earlier boot's are
 * stopped first. Every boot of the board calls it.
 */
export function attachDevices(board: Board): void {
  board.devices?.stop();
  const twz = board.kernel.readOnly ? undefined : Twz.attach(board.kernel.port());
  board.recovered = twz?.recovered;
  board.devices = bindDevices(board.kernel, twz?.naming);
}

/** Whether `error` is a simulated power failure at an armed crash point. */
export function isPowerFailure(error: unknown): boolean {
  return error instanceof PowerFailed;
}

/**
 * Check a size asked for an image before anything is created: at least
 * `MIN_IMAGE`, and at most the plugin's
 * {@linkcode HalPlugin.maxImageSize} (hal-sim holds the image in memory).
 *
 * @param plugin The plugin the image is for.
 * @param size The size asked for, in bytes.
 * @param what The option, for the error (`--size`).
 * @throws {UsageError} The size is out of range.
 */
export function checkImageSize(plugin: HalPlugin, size: number, what = "--size"): void {
  if (size < MIN_IMAGE) {
    throw new UsageError(
      `${what} ${size} is too small: an image needs at least ${MIN_IMAGE} bytes (${
        formatSize(MIN_IMAGE)
      })`,
    );
  }
  const max = plugin.maxImageSize;
  if (max !== undefined && size > max) {
    throw new UsageError(
      `${what} ${size} is too large for hal ${plugin.name}, which holds the image in memory (at most ${
        formatSize(max)
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
  if (options.size !== undefined) checkImageSize(plugin, options.size);
  if (options.image !== undefined) checkImagePath(options.image);
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
    const board: Board = { plugin, hal, kernel: bootKernel(hal, options.readOnly), options };
    attachDevices(board);
    return board;
  } catch (error) {
    if (hal.created && hal.image !== undefined && !isPowerFailure(error)) {
      removeQuietly(hal.image);
    }
    hal.close();
    throw error;
  }
}

/** What {@linkcode checkImagePath} checks besides the path itself. */
export interface ImagePathChecks {
  /** The image must exist (`twz fsck`): a missing file is an error too. */
  exists?: boolean | undefined;
  /**
   * The file must hold a Twizzler image: a regular file too small for a
   * superblock, or with the `TWZIMAGE` magic in neither its superblock nor
   * its backup copy, is refused (`twz fsck`; `twz boot` finds out by booting).
   */
  image?: boolean | undefined;
  /** The option, for the empty-value error. @default {"--image"} */
  what?: string | undefined;
}

/**
 * Refuse an image path that cannot name an image, with one line that says
 * why, before a HAL touches it: an empty value (a usage mistake), a symbolic
 * link to nothing (creating the image would put it at the link's target, or
 * fail with "file exists"), a directory, and a new image in a folder that
 * does not exist. A path to an existing file, or to a file that may be
 * created, passes (the HAL opens or creates it and reports what else is
 * wrong).
 *
 * @param path The image path as given.
 * @param checks What else to check (see {@linkcode ImagePathChecks}).
 * @throws {UsageError} `path` is empty.
 * @throws {HalError} One line without the path (callers say "cannot boot
 *   PATH: ..."): the path cannot be an image.
 * @example
 * ```ts ignore
 * checkImagePath("", {}); // UsageError: --image is empty
 * ```
 */
export function checkImagePath(path: string, checks: ImagePathChecks = {}): void {
  if (path === "") throw new UsageError(`${checks.what ?? "--image"} is empty`);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new HalError((error as Error).message, { cause: error, code: "io" });
    }
    const target = danglingLinkTarget(path);
    if (target !== undefined) {
      throw new HalError(`it is a symbolic link to ${target}, which does not exist`);
    }
    const folder = dirname(path);
    let parent: Deno.FileInfo | undefined;
    try {
      parent = Deno.statSync(folder);
    } catch { /* missing, or a dangling link */ }
    if (parent === undefined) throw new HalError(`the folder ${folder} does not exist`);
    if (!parent.isDirectory) throw new HalError(`${folder} is not a folder`);
    if (checks.exists) throw new HalError("no such file");
    return;
  }
  if (info.isDirectory) {
    throw new HalError("it is a directory, not an image file", { code: "not-regular" });
  }
  if (checks.image && info.isFile) {
    const why = notAnImage(path);
    if (why !== undefined) throw new HalError(why);
  }
}

/**
 * Why the regular file at `path` holds no Twizzler image at all: too small
 * for a superblock, or the `TWZIMAGE` magic in neither the superblock nor
 * its backup copy (a file whose one copy is damaged is an image that
 * `twz fsck --repair` can mend). `undefined` when one copy has the magic.
 */
function notAnImage(path: string): string | undefined {
  const page = new Uint8Array(PAGE);
  let length = 0;
  const file = Deno.openSync(path, { read: true });
  try {
    while (length < PAGE) {
      const n = file.readSync(page.subarray(length));
      if (n === null) break;
      length += n;
    }
  } finally {
    file.close();
  }
  if (length < SUPERBLOCK_BYTES) {
    return `it is ${length} bytes, too small to hold a Twizzler image`;
  }
  const magic = new TextEncoder().encode(MAGIC);
  const has = (at: number) =>
    length >= at + magic.length && magic.every((byte, i) => page[at + i] === byte);
  if (has(0) || has(SUPERBLOCK_BACKUP_OFFSET)) return undefined;
  return page.subarray(0, length).every((byte) => byte === 0)
    ? "it holds no Twizzler image (its first page is all zeros: never formatted)"
    : "it is not a Twizzler image (no TWZIMAGE magic in its superblock or the backup copy)";
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
 * A clean reboot: shut the kernel down, close the HAL (writing everything
 * back), open the image again and boot. An anonymous region is kept open.
 */
export async function rebootBoard(board: Board): Promise<void> {
  const pinned = pinnedViews(board);
  if (pinned > 0) {
    throw new TwzError(
      ErrorCode.Busy,
      `cannot reboot: ${pinned} killed thread(s) never stopped and still hold views of the ` +
        `NVM mapping (see ps); shut down instead: the system process ends, and they with it`,
    );
  }
  board.devices?.stop();
  board.kernel.shutdown({ reboot: true });
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
  attachDevices(board);
}

/** Close a board cleanly (devices stopped, kernel shutdown, HAL close). Harmless twice. */
export function closeBoard(board: Board): void {
  board.devices?.stop();
  board.kernel.shutdown();
  closeHal(board);
}

/**
 * How many threads that were killed but never stopped (busy in JavaScript:
 * Deno 2.9 cannot stop such a Worker) hold views of memory the HAL would
 * unmap at close: hal-pmem hands each thread views of the mapping itself,
 * which would fault (SIGSEGV, the whole process) once unmapped. hal-sim's
 * region is a SharedArrayBuffer, which outlives a close: 0 there.
 */
export function pinnedViews(board: Board): number {
  if (board.hal.region.share().kind === "shared-memory") return 0;
  try {
    return board.kernel.threads.unstoppable;
  } catch {
    return 0; // no thread ever ran
  }
}

/**
 * Close the board's HAL, unless threads that never stopped still hold views
 * of its mapping ({@linkcode pinnedViews}): then the mapping stays until the
 * system process exits (what every caller does next), and the image file
 * holds what was persisted. Harmless twice.
 */
export function closeHal(board: Board): void {
  if (pinnedViews(board) > 0) return;
  board.hal.close();
}

/** How a simulated power failure treats unflushed cache lines (`--evict`, `crash --policy`). */
export const EVICTION_POLICIES: readonly EvictionPolicy[] = ["strict", "random", "all"];

/**
 * Parse a size like `65536`, `64K`, `64M`, `1G`, `64MiB`.
 *
 * @param text The size.
 * @param what Its name for errors (`--size`, `SIZE`).
 */
export function parseSize(text: string, what = "SIZE"): number {
  const m = /^(\d+)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m && /^-\s*\d/.test(text.trim())) {
    throw new UsageError(`${what}: "${text}" is negative: a size is a positive number of bytes`);
  }
  if (!m) throw new UsageError(`${what}: "${text}" is not a size (like 4096, 64K, 64M or 1G)`);
  const unit = { "": 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 }[m[2]!.toUpperCase()]!;
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`${what}: "${text}" is not a usable size`);
  }
  return n;
}

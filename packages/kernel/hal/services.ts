/**
 * Platform services every plugin can share: a clock, an entropy source, a
 * console on the process's stdin/stdout, and the image-file helpers (the
 * image lock, the regular-file check, full allocation and chunked I/O) that
 * make both plugins treat image files the same way.
 *
 * @module
 */
import * as fs from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { type Clock, type Console, type Entropy, HalError, type ImageHolder } from "./mod.ts";

/**
 * The process clock: `performance.now()` and `Date.now()`.
 *
 * @returns A {@linkcode Clock}.
 * @example
 * ```ts
 * import { systemClock } from "@twz/kernel/hal";
 * const t0 = systemClock().monotonic();
 * ```
 */
export function systemClock(): Clock {
  return { monotonic: () => performance.now(), wallclock: () => Date.now() };
}

/**
 * WebCrypto random bytes (`crypto.getRandomValues`, in 64 KiB chunks).
 *
 * @returns An {@linkcode Entropy}.
 * @example
 * ```ts
 * import { cryptoEntropy } from "@twz/kernel/hal";
 * const bytes = new Uint8Array(16);
 * cryptoEntropy().fill(bytes);
 * ```
 */
export function cryptoEntropy(): Entropy {
  return {
    fill(target: Uint8Array): void {
      for (let at = 0; at < target.length; at += 65536) {
        crypto.getRandomValues(target.subarray(at, Math.min(at + 65536, target.length)));
      }
    },
  };
}

/**
 * A console over the process's stdout and stdin. Lines are read lazily, so a
 * console that is never read never touches stdin.
 *
 * @returns A {@linkcode Console}.
 * @example
 * ```ts
 * import { stdioConsole } from "@twz/kernel/hal";
 * stdioConsole().write("hello\n");
 * ```
 */
export function stdioConsole(): Console {
  const encoder = new TextEncoder();
  let lines: AsyncIterator<string> | undefined;
  return {
    write(text: string): void {
      const data = encoder.encode(text);
      let done = 0;
      while (done < data.length) done += Deno.stdout.writeSync(data.subarray(done));
    },
    async readLine(): Promise<string | null> {
      lines ??= readLines(Deno.stdin.readable);
      const next = await lines.next();
      return next.done ? null : next.value;
    },
  };
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
    }
  }
  if (pending.length > 0) yield pending;
}

// ---------------------------------------------------------------------------
// Image files

/** Largest single read or write: the OS refuses more than 2 GiB in one call. */
const IO_CHUNK = 1 << 28;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string") return code;
  const m = /\(os error (\d+)\)/.exec(errorText(e));
  if (m) return ({ "28": "ENOSPC", "122": "EDQUOT", "5": "EIO" } as Record<string, string>)[m[1]!];
  return undefined;
}

/**
 * A one-line {@linkcode HalError} for a failed read or write of an image:
 * `no-space` when the disk is full, `io` otherwise.
 *
 * @param what What was being done (`write`, `create`...).
 * @param path The image.
 * @param cause The platform's error.
 */
export function ioError(what: string, path: string, cause: unknown): HalError {
  const code = errorCode(cause);
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new HalError(
      `Cannot ${what} image ${path}: no space left on the disk${
        code === "EDQUOT" ? " (quota exceeded)" : ""
      }`,
      { cause, code: "no-space" },
    );
  }
  const text = errorText(cause).split("\n")[0];
  return new HalError(`Cannot ${what} image ${path}: ${text}`, { cause, code: "io" });
}

/**
 * Read `target.length` bytes of the file `fd` from `position`, in chunks (one
 * call cannot read 2 GiB or more).
 *
 * @throws {HalError} The file ends early, or the read fails.
 */
export function readWholeFile(fd: number, path: string, target: Uint8Array, position = 0): void {
  let done = 0;
  while (done < target.length) {
    let n: number;
    try {
      n = fs.readSync(fd, target, done, Math.min(IO_CHUNK, target.length - done), position + done);
    } catch (cause) {
      throw ioError("read", path, cause);
    }
    if (n === 0) {
      throw new HalError(`Cannot read image ${path}: unexpected end of file`, { code: "io" });
    }
    done += n;
  }
}

/**
 * Write all of `data` to the file `fd` at `position`, in chunks.
 *
 * @throws {HalError} `no-space` when the disk is full, `io` for other failures.
 */
export function writeWholeFile(fd: number, path: string, data: Uint8Array, position = 0): void {
  let done = 0;
  while (done < data.length) {
    try {
      done += fs.writeSync(
        fd,
        data,
        done,
        Math.min(IO_CHUNK, data.length - done),
        position + done,
      );
    } catch (cause) {
      throw ioError("write", path, cause);
    }
  }
}

function kindOf(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  return "not a regular file";
}

/**
 * The target of `path` when `path` is a symbolic link: called once `stat`
 * found nothing at `path`, it names a link to nothing (which creating an
 * image there would follow).
 *
 * @param path A path `stat` did not find.
 * @returns The link's target, or `undefined` when there is no link either.
 * @example
 * ```ts
 * import { danglingLinkTarget } from "@twz/kernel/hal";
 * console.log(danglingLinkTarget("/no/such/image.img")); // undefined
 * ```
 */
export function danglingLinkTarget(path: string): string | undefined {
  try {
    return Deno.lstatSync(path).isSymlink ? Deno.readLinkSync(path) : undefined;
  } catch {
    return undefined; // nothing there at all
  }
}

/** Whether a character device is a device-DAX (`/dev/daxX.Y`: persistent memory). */
function isDax(path: string, info: Deno.FileInfo): boolean {
  const rdev = info.rdev ?? 0;
  const major = (rdev >>> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  try {
    return /\/dax$/.test(Deno.readLinkSync(`/sys/dev/char/${major}:${minor}/subsystem`));
  } catch {
    try {
      return /^dax\d/.test(basename(Deno.realPathSync(path)));
    } catch {
      return false;
    }
  }
}

/**
 * Check that `path` is a regular file (or, with `allowCharDevice`, a
 * device-DAX character device `/dev/daxX.Y`, which hal-pmem maps),
 * without opening it: a FIFO is refused before anything could block on it.
 *
 * @param path The image path.
 * @param options `allowCharDevice`: accept character devices too.
 * @returns What `stat` says about it, or `undefined` when nothing is there.
 * @throws {HalError} `not-regular` for a FIFO, directory, socket or device;
 *   `io` when it cannot be examined.
 * @example
 * ```ts
 * import { checkImageFile } from "@twz/kernel/hal";
 * console.log(checkImageFile("/no/such/image.img")); // undefined
 * ```
 */
export function checkImageFile(
  path: string,
  options: { allowCharDevice?: boolean } = {},
): Deno.FileInfo | undefined {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (cause) {
    if (!(cause instanceof Deno.errors.NotFound)) {
      throw new HalError(`Cannot open image ${path}: ${errorText(cause)}`, { cause, code: "io" });
    }
    // A symbolic link to nothing: creating the image would write at its
    // target (or fail with "file exists"); say what it is instead.
    const target = danglingLinkTarget(path);
    if (target !== undefined) {
      throw new HalError(
        `Cannot open image ${path}: it is a symbolic link to ${target}, which does not exist`,
        { code: "io" },
      );
    }
    return undefined;
  }
  if (info.isFile || (options.allowCharDevice && info.isCharDevice && isDax(path, info))) {
    return info;
  }
  throw new HalError(`Cannot open image ${path}: it is ${kindOf(info)}, not an image file`, {
    code: "not-regular",
  });
}

/**
 * Allocate every byte of a new image file of `size` bytes (open as `fd`), so
 * that later writes never meet a full disk: the free space is checked first,
 * then the blocks are reserved with `fallocate(2)` (through util-linux's
 * `fallocate` command when the process may run it; Deno has no binding) or,
 * failing that, the file is written with zeros in chunks and written back. A
 * sparse file would take its blocks only when written, and run out of them
 * mid-session. (Reserved blocks are also faster to write into than zeroed
 * ones on ext4 here: hal-sim's kv-insert ran about 25 % slower over an image
 * of written zeros; docs/BENCHMARKS.md.)
 *
 * @throws {HalError} `no-space` (one line) when the disk has not enough room;
 *   the caller removes the partial file.
 */
export function allocateImageFile(fd: number, path: string, size: number): void {
  let free: number | undefined;
  try {
    const s = fs.statfsSync(dirname(resolve(path)));
    free = Number(s.bavail) * Number(s.bsize);
  } catch { /* no statfs here: the writes below find out */ }
  if (free !== undefined && free < size) {
    throw new HalError(
      `Cannot create image ${path}: it needs ${formatSize(size)} but the disk has only ${
        formatSize(free)
      } free`,
      { code: "no-space" },
    );
  }
  if (reserveBlocks(path, size)) return;
  const zeros = new Uint8Array(Math.min(size, 1 << 20));
  try {
    for (let at = 0; at < size; at += zeros.length) {
      writeWholeFile(fd, path, zeros.subarray(0, Math.min(zeros.length, size - at)), at);
    }
    // Written back now, so the blocks are really on the disk (a file system
    // with delayed allocation may report a full disk only at write-back) and
    // the session does not pay for writing back the zeros later.
    try {
      fs.fdatasyncSync(fd);
    } catch (cause) {
      throw ioError("write", path, cause);
    }
  } catch (error) {
    throw error instanceof HalError
      ? new HalError(error.message.replace(/^Cannot write/, "Cannot create"), {
        cause: error.cause,
        code: error.code,
      })
      : error;
  }
}

/**
 * Reserve `size` bytes of blocks for `path` with `fallocate -l` (util-linux).
 *
 * @returns `false` when the command may not run here, is missing, or the file
 *   system does not support it (the caller writes zeros instead).
 * @throws {HalError} `no-space` when the disk has not enough room.
 */
function reserveBlocks(path: string, size: number): boolean {
  try {
    if (Deno.permissions.querySync({ name: "run", command: "fallocate" }).state !== "granted") {
      return false;
    }
    const out = new Deno.Command("fallocate", {
      args: ["-l", String(size), path],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (out.success) return true;
    const why = new TextDecoder().decode(out.stderr);
    if (/no space/i.test(why)) {
      throw new HalError(`Cannot create image ${path}: no space left on the disk`, {
        code: "no-space",
      });
    }
    return false;
  } catch (error) {
    if (error instanceof HalError) throw error;
    return false;
  }
}

/**
 * A byte count for messages: `512 B`, `64.0 MiB`.
 *
 * @param n Bytes.
 * @returns The count with a binary unit.
 */
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

/** Options for {@linkcode lockImage}. */
export interface ImageLockOptions {
  /** Exclusive (one holder) or shared (read-only holders side by side). */
  exclusive: boolean;
  /** What the holder is, kept beside the image for the busy message. @default {"deno <main>"} */
  what?: string | undefined;
}

/** The side file beside an image that names its lock holder (for messages only). */
function sideFile(path: string): string {
  return `${path}.lock`;
}

function defaultWhat(): string {
  try {
    const command = Deno.args[0] !== undefined && /^[a-z-]+$/.test(Deno.args[0])
      ? ` ${Deno.args[0]}`
      : "";
    return `deno ${basename(new URL(Deno.mainModule).pathname)}${command}`;
  } catch {
    return "a deno process";
  }
}

/** Whether a process with this ID is running here (Linux /proc; `true` when unknown). */
function alive(pid: number): boolean {
  if (Deno.build.os !== "linux") return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function readSideFile(path: string): ImageHolder | undefined {
  try {
    const text = Deno.readTextFileSync(sideFile(path));
    const m = /^(\d+) (.*)$/.exec(text.trim());
    if (!m) return undefined;
    const pid = Number(m[1]);
    return alive(pid) ? { pid, what: m[2]! } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An OS lock (`flock`) on an image file, held from {@linkcode lockImage}
 * until {@linkcode ImageLock.release} or the process ends (the OS releases
 * it when the holder is killed, so a crash never leaves an image locked).
 */
export class ImageLock {
  #file: Deno.FsFile | undefined;
  #mark: string | undefined;
  /**
   * A lock already taken (use {@linkcode lockImage}, which takes it).
   *
   * @param path The image.
   * @param exclusive Whether the lock is exclusive.
   * @param file The open file holding the lock.
   * @param mark The side file's contents written by this holder, if any.
   */
  constructor(
    readonly path: string,
    readonly exclusive: boolean,
    file: Deno.FsFile,
    mark: string | undefined,
  ) {
    this.#file = file;
    this.#mark = mark;
  }

  /** Whether `info` (from `fstat` of another descriptor) is the locked file. */
  sameFile(info: { ino: number | null; dev: number }): boolean {
    if (!this.#file) return false;
    const mine = this.#file.statSync();
    return mine.ino === info.ino && mine.dev === info.dev;
  }

  /** Release the lock (removing the side file this holder wrote). Harmless twice. */
  release(): void {
    const file = this.#file;
    if (!file) return;
    this.#file = undefined;
    if (this.#mark !== undefined) {
      try {
        if (Deno.readTextFileSync(sideFile(this.path)) === this.#mark) {
          Deno.removeSync(sideFile(this.path));
        }
      } catch { /* gone, or not ours to remove */ }
    }
    try {
      file.close(); // closing the descriptor releases the flock
    } catch { /* already closed */ }
  }

  /** {@linkcode ImageLock.release}, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

function busyError(path: string, holder: ImageHolder | undefined): HalError {
  const who = holder ? `process ${holder.pid} (${holder.what})` : "another process";
  return new HalError(`image ${path} is in use by ${who}; stop it first`, {
    code: "busy",
    holder: holder ?? { pid: 0, what: "another process" },
  });
}

/**
 * Take the OS lock on an image file without waiting: exclusive for an opener
 * that may write, shared for read-only openers. Two opens conflict even in
 * one process. The holder's PID and `what` go to a side file `<image>.lock`
 * only so that a refused opener can name it; a stale side file (its holder
 * was killed) is ignored and overwritten, and a side file that cannot be
 * written (read-only directory, full disk) changes nothing but the message.
 *
 * @param path The image (a regular file: check with {@linkcode checkImageFile} first).
 * @param options Exclusive or shared, and what the holder is.
 * @returns The held lock.
 * @throws {HalError} `busy` (message names the holder) when another opener
 *   holds a conflicting lock; `io` when the file cannot be opened.
 * @example
 * ```ts
 * import { lockImage } from "@twz/kernel/hal";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeFileSync(`${dir}/t.img`, new Uint8Array(4096));
 * const lock = lockImage(`${dir}/t.img`, { exclusive: true, what: "example" });
 * try {
 *   lockImage(`${dir}/t.img`, { exclusive: false });
 * } catch (e) {
 *   console.log((e as Error).message.includes(`process ${Deno.pid} (example)`)); // true
 * }
 * lock.release();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function lockImage(path: string, options: ImageLockOptions): ImageLock {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (cause) {
    throw new HalError(`Cannot open image ${path}: ${errorText(cause)}`, { cause, code: "io" });
  }
  let locked: boolean;
  try {
    locked = file.tryLockSync(options.exclusive);
  } catch (cause) {
    file.close();
    throw new HalError(`Cannot lock image ${path}: ${errorText(cause)}`, { cause, code: "io" });
  }
  if (!locked) {
    // The holder writes its side file just after it takes the lock: give it
    // a moment before saying "another process". A lock with no side file
    // may also be held for an instant by nobody that means it: a child
    // process between fork and exec shares the descriptors of the process
    // that just released the lock (any thread of it spawning anything), and
    // holds the lock until its exec closes them. So try again meanwhile.
    let holder = readSideFile(path);
    for (let i = 0; i < 5 && holder === undefined && !locked; i++) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      try {
        locked = file.tryLockSync(options.exclusive);
      } catch (cause) {
        file.close();
        throw new HalError(`Cannot lock image ${path}: ${errorText(cause)}`, { cause, code: "io" });
      }
      if (!locked) holder = readSideFile(path);
    }
    if (!locked) {
      file.close();
      throw busyError(path, holder);
    }
  }
  const mark = `${Deno.pid} ${options.what ?? defaultWhat()}\n`;
  let wrote = false;
  try {
    Deno.writeTextFileSync(sideFile(path), mark);
    wrote = true;
  } catch {
    // Only the message depends on it; a stale one left by a killed holder
    // must not name the wrong process.
    if (options.exclusive) {
      try {
        Deno.removeSync(sideFile(path));
      } catch { /* nothing there, or not removable */ }
    }
  }
  return new ImageLock(path, options.exclusive, file, wrote ? mark : undefined);
}

/**
 * Who holds the exclusive lock on an image, without waiting and without
 * writing anything: `undefined` when nobody does (or the file is missing).
 * Plain `twz fsck` uses it to warn that its result may be stale.
 *
 * @param path The image.
 * @returns The holder (pid 0 and "another process" when it left no side file).
 * @example
 * ```ts
 * import { imageHolder } from "@twz/kernel/hal";
 * console.log(imageHolder("/no/such/image.img")); // undefined
 * ```
 */
export function imageHolder(path: string): ImageHolder | undefined {
  let info: Deno.FileInfo | undefined;
  try {
    info = checkImageFile(path, { allowCharDevice: true });
  } catch {
    return undefined;
  }
  if (!info) return undefined;
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    if (file.tryLockSync(false)) return undefined;
  } catch {
    return undefined;
  } finally {
    file.close();
  }
  return readSideFile(path) ?? { pid: 0, what: "another process" };
}

/** An image file opened by {@linkcode openImageFile}. */
export interface ImageFile {
  /** The open descriptor (read-write, or read-only when `readOnly`). */
  readonly fd: number;
  /** The path it was opened by. */
  readonly path: string;
  /** Whether this open created (and fully allocated) the file. */
  readonly created: boolean;
  /** Its size in bytes. */
  readonly size: number;
  /** Whether it was opened read-only (asked, or not writable). */
  readonly readOnly: boolean;
  /** Why it is read-only when nobody asked. */
  readonly readOnlyReason?: string;
  /** Close the descriptor and release the lock. Harmless twice. */
  close(): void;
}

function writable(path: string, info: Deno.FileInfo): string | undefined {
  if (info.mode !== null && (info.mode & 0o222) === 0) return "the image file is not writable";
  try {
    fs.accessSync(path, fs.constants.W_OK);
  } catch (e) {
    const code = errorCode(e);
    if (code === "EROFS") return "the image is on a read-only file system";
    if (code === "EACCES" || code === "EPERM") return "the image file is not writable";
  }
  return undefined;
}

/**
 * Open (with `create`, create) an image file the way every plugin does:
 * refuse what is not a regular file before opening it (a FIFO never
 * blocks), take the image lock ({@linkcode lockImage}: exclusive, or shared
 * when read-only), open read-only when asked or when the file is not
 * writable, check the size, and allocate a new file in full
 * ({@linkcode allocateImageFile}; a partial file is removed).
 *
 * @param options The plugin's open options (`image` required).
 * @param extra `allowCharDevice` for plugins that map devices (hal-pmem).
 * @returns The open file; its `close()` releases the lock.
 * @throws {HalError} One line: missing file without `create`, no size,
 *   size mismatch, empty file, not a regular file (`not-regular`), held by
 *   another opener (`busy`), no room (`no-space`).
 */
export function openImageFile(
  options: {
    image: string;
    size?: number | undefined;
    create?: boolean | undefined;
    readOnly?: boolean | undefined;
    lock?: "exclusive" | "shared" | "none" | undefined;
    holder?: string | undefined;
  },
  extra: { allowCharDevice?: boolean } = {},
): ImageFile {
  const path = options.image;
  const size = options.size;
  if (size !== undefined && (!Number.isSafeInteger(size) || size <= 0)) {
    throw new HalError(`Cannot open image ${path}: size must be a positive integer, not ${size}`);
  }
  const info = checkImageFile(path, extra);
  let lock: ImageLock | undefined;
  let fd: number | undefined;
  let created = false;
  let readOnly = options.readOnly ?? false;
  let readOnlyReason: string | undefined;
  const fail = (error: unknown): never => {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch { /* reporting the first error */ }
    }
    if (created) {
      try {
        Deno.removeSync(path);
      } catch { /* not there */ }
    }
    lock?.release();
    throw error;
  };
  if (info === undefined) {
    if (!options.create) throw new HalError(`Cannot open image ${path}: no such file`);
    if (readOnly) {
      throw new HalError(
        `Cannot open image ${path}: no such file (a read-only open creates nothing)`,
      );
    }
    if (size === undefined) throw new HalError(`Cannot create image ${path}: no size given`);
    try {
      fd = fs.openSync(path, "wx+");
    } catch (cause) {
      throw new HalError(`Cannot create image ${path}: ${errorText(cause)}`, { cause, code: "io" });
    }
    created = true;
    try {
      if (options.lock !== "none") {
        lock = lockImage(path, { exclusive: options.lock !== "shared", what: options.holder });
      }
      allocateImageFile(fd, path, size);
    } catch (error) {
      if (error instanceof HalError && error.code === "busy") created = false; // someone else's now
      fail(error);
    }
    return imageFile(fd!, path, true, size, false, undefined, lock);
  }
  if (!readOnly) {
    readOnlyReason = writable(path, info);
    readOnly = readOnlyReason !== undefined;
  }
  try {
    const mode = options.lock ?? (readOnly ? "shared" : "exclusive");
    if (mode !== "none") {
      lock = lockImage(path, { exclusive: mode === "exclusive", what: options.holder });
    }
    try {
      fd = fs.openSync(path, readOnly ? "r" : "r+");
    } catch (cause) {
      throw new HalError(`Cannot open image ${path}: ${errorText(cause)}`, { cause, code: "io" });
    }
    const stat = fs.fstatSync(fd);
    if (lock && !lock.sameFile({ ino: stat.ino, dev: stat.dev })) {
      throw new HalError(`Cannot open image ${path}: it was replaced while being opened`, {
        code: "io",
      });
    }
    const fileSize = info.isCharDevice ? 0 : stat.size;
    if (!info.isCharDevice) {
      if (size !== undefined && size !== fileSize) {
        throw new HalError(
          `Cannot open image ${path}: it holds ${fileSize} bytes, not the ${size} asked for`,
        );
      }
      if (fileSize === 0) throw new HalError(`Cannot open image ${path}: the file is empty`);
    }
    return imageFile(fd, path, false, fileSize, readOnly, readOnlyReason, lock);
  } catch (error) {
    return fail(error);
  }
}

function imageFile(
  fd: number,
  path: string,
  created: boolean,
  size: number,
  readOnly: boolean,
  readOnlyReason: string | undefined,
  lock: ImageLock | undefined,
): ImageFile {
  let open = true;
  return {
    fd,
    path,
    created,
    size,
    readOnly,
    ...(readOnlyReason !== undefined ? { readOnlyReason } : {}),
    close(): void {
      if (!open) return;
      open = false;
      try {
        fs.closeSync(fd);
      } finally {
        lock?.release();
      }
    },
  };
}

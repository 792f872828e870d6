/**
 * The shell's object model: `new` makes objects as libtwz does, and `read`,
 * `write` and `hexdump` turn the offsets a user types into byte ranges of an
 * object.
 *
 * - {@linkcode newObject}: an object with libtwz's meta-info and FOT
 *   (`Twz.create`), so the shell, programs using libtwz and
 *   `twz fsck --deep` see one kind of object. A name is bound as
 *   `Twz.create({ name })` binds it: the object is born marked as created
 *   for a name and loses the mark once the name is bound (a crash in between
 *   leaves a marked, unnamed object that `twz fsck --deep --repair` deletes);
 *   a bind that fails deletes the object again. With a `key` (`new --key
 *   KEY`) the object is keyed: libtwz picks the nonce, and the kernel
 *   derives the ID from it, the key and the default protections.
 * - {@linkcode byteRange}: offsets count from the object's base
 *   (`BASE_OFFSET`, 256: the first byte of data, after the null region and
 *   the meta-info) and end where the FOT begins; with `raw` they are
 *   absolute offsets in the object, and the null region and meta-info
 *   (bytes 0 to 255) are refused without `force` (the FOT too, for writes).
 *   An object without libtwz meta-info (a bare kernel object, such as the
 *   shell made before) counts from its first byte, with or without `raw`.
 *
 * @example
 * ```ts ignore
 * const id = newObject(twz, kernel, { volatile: false, size: 4096, ties: [], name: "/notes" });
 * const { start, length } = byteRange(kernel, id, 0, 5, { raw: false, force: false, write: true });
 * kernel.write(id, start, new TextEncoder().encode("hello")); // start === 256
 * ```
 *
 * @module
 */
import { BASE_OFFSET, META_OFFSET, META_SIZE, MetaField, OBJECT_MAGIC } from "@twz/kernel/abi";
import { formatId, type Kernel, type ObjID } from "@twz/kernel";
import type { Twz } from "@twz/libtwz";
import { UsageError } from "./board.ts";

/** What `new` was asked for. */
export interface NewObjectOptions {
  /** A volatile object (gone at the next boot); cannot be named. */
  volatile: boolean;
  /** The object's size in bytes, meta-info and FOT included (at least 256). @default {65536} */
  size?: number;
  /** Default protections (`Prot` bits). @default {Prot.ReadWrite} */
  prot?: number;
  /** Objects whose deletion deletes this one. */
  ties: readonly ObjID[];
  /** A name to bind to the new object (missing parent directories are made). */
  name?: string;
  /**
   * A key object: the object is keyed (its ID derives from the key, a nonce
   * and its default protections; grants for it are signed with the key).
   */
  key?: ObjID;
}

/**
 * Make an object the way libtwz does (`Twz.create`): meta-info and FOT in
 * the kernel's create commit, then the name, if any, bound failure-atomically.
 *
 * @param twz The shell's libtwz session on `kernel`.
 * @param kernel The kernel (only to check the ties exist).
 * @param options What `new` was asked for.
 * @returns The new object's ID.
 * @throws {UsageError} A volatile object with a name, a name already bound,
 * a size below 256 bytes, a tie or key that does not exist; {TwzError} from the
 * kernel or libtwz (no space, a parent that is not a directory), one line.
 */
export function newObject(twz: Twz, kernel: Kernel, options: NewObjectOptions): ObjID {
  const { name, size, prot } = options;
  if (name !== undefined && options.volatile) {
    throw new UsageError("a volatile object cannot be named: the name would dangle after a crash");
  }
  if (size !== undefined && (!Number.isSafeInteger(size) || size < BASE_OFFSET)) {
    throw new UsageError(
      `--size: an object needs at least ${BASE_OFFSET} bytes (null region, meta-info, base), not ${size}`,
    );
  }
  for (const tie of options.ties) {
    if (!kernel.exists(tie)) throw new UsageError(`--tie: no object ${formatId(tie)}`);
  }
  if (options.key !== undefined && !kernel.exists(options.key)) {
    throw new UsageError(`--key: no object ${formatId(options.key)}`);
  }
  if (name !== undefined && twz.naming.exists(name)) {
    throw new UsageError(`the name ${name} is already bound`);
  }
  return twz._createId({
    lifetime: options.volatile ? "volatile" : "persistent",
    ties: [...options.ties],
    ...(size !== undefined ? { size } : {}),
    ...(prot !== undefined ? { prot } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(options.key !== undefined ? { key: options.key } : {}),
  });
}

/** A byte range of an object. */
export interface ByteRange {
  /** Absolute offset of the first byte in the object. */
  start: number;
  /** Number of bytes. */
  length: number;
}

/**
 * Where an object's data ends: the FOT's offset when the object has libtwz
 * meta-info (the object's size when that offset is one no libtwz object
 * has), or `undefined` for an object without meta-info.
 */
function dataEnd(kernel: Kernel, id: ObjID, size: number): number | undefined {
  if (size < BASE_OFFSET) return undefined;
  const bytes = kernel.read(id, 0, META_OFFSET + META_SIZE);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(META_OFFSET + MetaField.magic, true) !== OBJECT_MAGIC) return undefined;
  const fot = view.getUint32(META_OFFSET + MetaField.fotOffset, true);
  return fot >= BASE_OFFSET && fot <= size && fot % 64 === 0 ? fot : size;
}

/**
 * Turn a command's OFFSET and LEN into a byte range of object `id`.
 *
 * Without `raw`, offsets count from the object's base (`BASE_OFFSET`) and
 * the data ends where the FOT begins. With `raw`, offsets are absolute: a
 * range that touches the null region or the meta-info (bytes 0 to
 * `BASE_OFFSET - 1`) is refused unless `force`, and so is a write into the
 * FOT. An object without libtwz meta-info (a bare kernel object) has no base
 * and nothing to protect: its offsets count from its first byte, to its end,
 * with or without `raw`.
 *
 * @param kernel The kernel.
 * @param id The object.
 * @param offset OFFSET as the user gave it (a non-negative integer).
 * @param length LEN as the user gave it; `undefined`: `defaultLength`
 * bytes, or to the end, whichever is shorter (to the end when no default).
 * @param options `raw` and `force` as given; `write` for a writing command.
 * @returns The absolute range.
 * @throws {UsageError} One line naming OFFSET or LEN and the limit.
 */
export function byteRange(
  kernel: Kernel,
  id: ObjID,
  offset: number,
  length: number | undefined,
  options: { raw: boolean; force: boolean; write: boolean; defaultLength?: number },
): ByteRange {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new UsageError(`OFFSET: ${offset} is not a non-negative integer`);
  }
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
    throw new UsageError(`LEN: ${length} is not a non-negative integer`);
  }
  const size = kernel.stat(id).size;
  const end = dataEnd(kernel, id, size);
  const bare = end === undefined;
  const fot = end ?? size;
  const raw = options.raw || bare;
  const force = options.force || bare;
  // [low, high): what this command may reach, in absolute offsets.
  const low = raw ? 0 : BASE_OFFSET;
  const high = raw ? size : fot;
  const start = low + offset;
  const what = raw
    ? `the end of the object (${size} bytes)`
    : `the end of the data (${high - BASE_OFFSET} bytes from the base; --raw for absolute offsets)`;
  if (start > high) throw new UsageError(`OFFSET ${offset} is past ${what}`);
  const n = length ?? Math.min(options.defaultLength ?? Infinity, high - start);
  if (start + n > high) {
    throw new UsageError(`LEN ${n} at OFFSET ${offset} runs past ${what}`);
  }
  if (raw && !force && n > 0) {
    if (start < BASE_OFFSET) {
      throw new UsageError(
        `OFFSET ${offset} is in the null region and meta-info (bytes 0-${
          BASE_OFFSET - 1
        }); add --force to ${options.write ? "write" : "read"} them`,
      );
    }
    if (options.write && start + n > fot) {
      throw new UsageError(
        `OFFSET ${offset} LEN ${n} reaches the FOT (bytes ${fot}-${
          size - 1
        }); add --force to write it`,
      );
    }
  }
  return { start, length: n };
}

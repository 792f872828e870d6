/**
 * Repairs of libtwz structures (fsck's deep repair): re-attach a lost naming
 * root, rewrite a damaged directory header, bind what was found under
 * `/lost+found` or back at its path. Private to libtwz; the public entry is
 * `check.ts`.
 *
 * @module
 */
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  type KernelPort,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  TwzError,
} from "@twz/kernel/abi";
import { metaProblem } from "./_meta.ts";
import {
  dirCapacityOf,
  dirProblem,
  rewriteDirHeader,
  writeRootMeta,
  writeRootRecord,
} from "./_naming_format.ts";
import { Twz } from "./twz.ts";
import { DIR_ENTRY, DIR_HEADER, portOf } from "./_check_common.ts";

/**
 * Make the kernel root object's libtwz root record name directory `dirId`
 * (writing the root object's meta-info too when it is missing or damaged),
 * persisted; the record's magic is published last.
 *
 * @param target A kernel port (or a session: its port), of a writable kernel booted on the image.
 * @param dirId An intact directory object.
 * @returns One line saying what was done.
 * @throws {TwzError} `InvalidArgument` when `dirId` is not an intact directory.
 * @example Find the root directory again after its record was destroyed
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { findRootDirCandidate, reattachNamingRoot } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * twz.create({ name: "/notes", size: 4096 });
 * const port = twz.port;
 * port.map(port.rootObjectId()).view.setUint32(256, 0xbad, true); // damage the record
 * reattachNamingRoot(port, findRootDirCandidate(port)!);
 * console.log(Twz.attach(port).naming.exists("/notes")); // true
 * twz.close();
 * ```
 */
export function reattachNamingRoot(
  target: KernelPort | { readonly port: KernelPort },
  dirId: ObjID,
): string {
  const port = portOf(target);
  const notDir = (why: string) =>
    new TwzError(
      ErrorCode.InvalidArgument,
      `Cannot make ${formatId(dirId)} the naming root: ${why}`,
    );
  if (!port.exists(dirId)) throw notDir("no such object");
  const d = port.map(dirId, Prot.Read);
  const why = dirProblem(d.view, d.bytes.length) ??
    (d.view.getUint32(META_OFFSET, true) !== OBJECT_MAGIC
      ? "no libtwz meta-info"
      : metaProblem(d.view, d.bytes.length)) ??
    (d.view.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Directory
      ? undefined
      : "not a directory object");
  if (why !== undefined) throw notDir(why);
  const rootId = port.rootObject();
  const m = port.map(rootId, Prot.ReadWrite);
  const lines: string[] = [];
  if (
    m.view.getUint32(META_OFFSET, true) !== OBJECT_MAGIC ||
    metaProblem(m.view, m.bytes.length) !== undefined ||
    !(m.view.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Root)
  ) {
    writeRootMeta(m);
    lines.push("rewrote its meta-info");
  }
  writeRootRecord(m, dirId);
  return `root: the port root object ${formatId(rootId)} names root directory ${
    formatId(dirId)
  } again${lines.length > 0 ? ` (${lines.join(", ")})` : ""}`;
}

/**
 * Rewrite the header of directory object `dirId` when it is damaged: every
 * field of it is derivable — the magic, the version, and the capacity, which
 * is always the one the object's size makes (a new directory and every grow
 * write no other). The generation is kept (bumped by one, so cached
 * resolutions are dropped); entries are not touched. Persisted, the magic
 * published last. Only an object whose libtwz meta-info (sound) carries the
 * Directory flag is rewritten: anything else cannot be proven a directory.
 *
 * @param target A kernel port (or a session: its port), of a writable kernel booted on the image.
 * @param dirId The directory object.
 * @returns One line saying what was rewritten and why, or `undefined` when
 * the header checks out (nothing is written).
 * @throws {TwzError} `InvalidArgument` when `dirId` is not a libtwz
 * directory object; `ObjectNotFound`; `ObjectDamaged` when the kernel
 * quarantined it.
 * @example Mend a directory whose capacity was zeroed
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { repairDirectoryHeader } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * twz.create({ name: "/notes", size: 4096 });
 * const root = twz.naming.rootId;
 * twz.port.map(root).view.setUint32(256 + 8, 0, true); // the capacity
 * console.log(repairDirectoryHeader(twz, root) !== undefined); // true
 * console.log(twz.naming.exists("/notes")); // true
 * twz.close();
 * ```
 */
export function repairDirectoryHeader(
  target: KernelPort | { readonly port: KernelPort },
  dirId: ObjID,
): string | undefined {
  const port = portOf(target);
  if (!port.exists(dirId)) {
    throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(dirId)}`);
  }
  const m = port.map(dirId, Prot.ReadWrite);
  const v = m.view;
  const size = m.bytes.length;
  const why = size < BASE_OFFSET + DIR_HEADER + DIR_ENTRY
    ? `it is only ${size} bytes`
    : v.getUint32(META_OFFSET, true) !== OBJECT_MAGIC
    ? "it has no libtwz meta-info"
    : metaProblem(v, size) ??
      (v.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Directory
        ? undefined
        : "its meta-info lacks the Directory flag");
  if (why !== undefined) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `Cannot rewrite the directory header of ${formatId(dirId)}: ${why}`,
    );
  }
  const was = rewriteDirHeader(m);
  if (was === undefined) return undefined;
  return `naming: directory ${formatId(dirId)}: rewrote its header (magic, version, capacity ${
    dirCapacityOf(size)
  }; generation kept): it was damaged: ${was}`;
}

function sessionOf(target: KernelPort | { readonly port: KernelPort }): Twz {
  return target instanceof Twz ? target : Twz.attach(portOf(target));
}

/**
 * Bind `id` as `/lost+found/<32 hex digits>` (making `/lost+found`): a
 * directory object as a directory entry, anything else as an object. Needs a
 * working naming root (re-attach it first). Kept when already bound there.
 *
 * @param target A session, or a kernel port (a session is made on it).
 * @param id The object.
 * @returns The path.
 * @throws {TwzError} `ObjectNotFound`; `ObjectDamaged` when the naming root is damaged.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { bindLostFound } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const obj = twz.create({ size: 4096 });
 * console.log(bindLostFound(twz, obj.id).startsWith("/lost+found/")); // true
 * twz.close();
 * ```
 */
export function bindLostFound(
  target: KernelPort | { readonly port: KernelPort },
  id: ObjID,
): string {
  const path = `/lost+found/${formatId(id)}`;
  bindRecovered(target, path, id);
  return path;
}

/**
 * Bind `id` at `path` (missing parents made), a directory object as a
 * directory entry: e.g. re-attach a found kv store at `/kv`. Kept when
 * `path` already names `id`.
 *
 * @param target A session, or a kernel port.
 * @param path Where to bind it.
 * @param id The object.
 * @throws {TwzError} `NameExists` when `path` names another object;
 * `ObjectNotFound`; `ObjectDamaged` when the naming root is damaged.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { bindRecovered } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const obj = twz.create({ size: 4096 });
 * bindRecovered(twz, "/found/it", obj.id);
 * console.log(twz.naming.resolve("/found/it") === obj.id); // true
 * twz.close();
 * ```
 */
export function bindRecovered(
  target: KernelPort | { readonly port: KernelPort },
  path: string,
  id: ObjID,
): void {
  sessionOf(target).naming._attach(path, id);
}

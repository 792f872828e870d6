/**
 * Finding lost structures (fsck's deep repair): every libtwz structure of an
 * image found by its bytes, whether or not a name reaches it, and the most
 * likely lost naming root. Private to libtwz; the public entry is `check.ts`.
 *
 * @module
 */
import {
  BASE_OFFSET,
  type KernelPort,
  type Mapping,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
} from "@twz/kernel/abi";
import { metaProblem } from "./_meta.ts";
import { dirProblem, readRootRecord } from "./_naming_format.ts";
import { inspectTxLog } from "./_tx.ts";
import { TXLOG_NAME } from "./_session_tx.ts";
import {
  DIR_MAGIC,
  HEAP_AT,
  HEAP_MAGIC,
  portOf,
  rootObjectOf,
  type Target,
  TXLOG_MAGIC,
} from "./_check_common.ts";
import { dirEntries, namesByObject } from "./_check_naming.ts";
import { collectionProblem, COLLECTIONS } from "./_check_base.ts";
import { codecOfKind } from "./_codec_kind.ts";

/** A libtwz structure found by its bytes (magic and header), not through names. */
export interface FoundStructure {
  /** The object holding it. */
  id: ObjID;
  /** What it holds. */
  kind: "naming-root" | "directory" | "btree" | "hashmap" | "vector" | "queue" | "txlog";
  /** Whether a name reachable from the current naming root reaches it. */
  named: boolean;
  /** Those names (`/` for the root directory); may be empty. */
  paths: string[];
  /** Its checker's first problem; `undefined` when header and structure check out. */
  problem?: string | undefined;
  /** Directory: bound entries; B-tree and hash map: entry count; vector and queue: length. */
  entries?: number;
  /** Directory: up to 8 of the names it binds (`.txlog` marks the old root directory). */
  sample?: string[];
  /** Directory: the directories that bind it as a subdirectory (`[]`: a root candidate). */
  parents?: ObjID[];
  /** B-tree and hash map: key/value codec names (`"string/string"`); vector, queue: the value codec. */
  codecs?: string;
  /** Naming root: the root directory its record names. */
  target?: ObjID;
}

/**
 * Find the libtwz structures of an image by their bytes: the kernel root
 * object's naming record, directories, collections (B-tree maps — the
 * shell's `/kv` is a string/string one —, hash maps, vectors, queues) and
 * the transaction log, whether or not a name still reaches them. Reads only;
 * one pass over the object table, each structure checked with bounded walks.
 * fsck's deep repair uses it to find a lost naming root or kv store again.
 *
 * @param target A kernel port (or a session: its port), of a kernel booted on the image.
 * @returns The structures found, in table order.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { BTreeMap } from "@twz/libtwz/btree";
 * import { scanStructures } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * BTreeMap.create(twz, twz.create({ name: "/kv", size: 1 << 20 }), codec.string, codec.string);
 * const kv = scanStructures(twz).find((s) => s.kind === "btree");
 * console.log(kv?.codecs, kv?.paths); // string/string [ "/kv" ]
 * twz.close();
 * ```
 */
export function scanStructures(
  target: KernelPort | { readonly port: KernelPort },
): FoundStructure[] {
  const port = portOf(target);
  const names = namesByObject(port);
  const rootObj = rootObjectOf(port).id;
  const found: FoundStructure[] = [];
  const childOf = new Map<ObjID, ObjID[]>();
  const entry = (id: ObjID, kind: FoundStructure["kind"]): FoundStructure => {
    const paths = names.get(id) ?? [];
    return { id, kind, named: paths.length > 0, paths };
  };
  const tags = new Map<number, FoundStructure["kind"]>(
    [...COLLECTIONS].map(([magic, c]) => [magic, c.area]),
  );
  for (const stat of port.list()) {
    if (stat.lifetime !== "persistent") continue;
    const id = stat.id;
    let m: Mapping;
    try {
      m = port.map(id, Prot.Read);
    } catch {
      continue;
    }
    const v = m.view;
    const size = m.bytes.length;
    if (size < BASE_OFFSET + 64) continue;
    if (id === rootObj) {
      const rec = readRootRecord(v);
      if (rec.state === "blank") continue;
      const s = entry(id, "naming-root");
      if (rec.state === "valid") s.target = rec.dir;
      else {
        s.problem = rec.problem;
        if (rec.dir !== undefined) s.target = rec.dir;
      }
      found.push(s);
      continue;
    }
    const hasMeta = v.getUint32(META_OFFSET, true) === OBJECT_MAGIC;
    const flags = hasMeta ? v.getUint16(META_OFFSET + MetaField.flags, true) : 0;
    const base0 = v.getUint32(BASE_OFFSET, true);
    if ((flags & MetaFlags.Directory) || base0 === DIR_MAGIC) {
      const s = entry(id, "directory");
      s.problem = dirProblem(v, size) ??
        (hasMeta ? metaProblem(v, size) : "no libtwz meta-info") ??
        (flags & MetaFlags.Directory ? undefined : "the meta-info lacks the Directory flag");
      const list = dirEntries(m);
      s.entries = list.length;
      s.sample = list.slice(0, 8).map((e) => e.name);
      if (list.some((e) => `/${e.name}` === TXLOG_NAME)) s.sample.unshift(TXLOG_NAME.slice(1));
      s.sample = [...new Set(s.sample)].slice(0, 8);
      for (const e of list) {
        if (!e.dir) continue;
        const p = childOf.get(e.id);
        if (p) p.push(id);
        else childOf.set(e.id, [id]);
      }
      found.push(s);
      continue;
    }
    if (base0 === TXLOG_MAGIC) {
      const s = entry(id, "txlog");
      const state = inspectTxLog({ mapping: m });
      if (state.state === "garbage") s.problem = state.problem;
      found.push(s);
      continue;
    }
    // A collection: by the base's tag, or by the header the base points at.
    const tag = v.getUint32(BASE_OFFSET + 4, true);
    let kind = tags.get(tag);
    if (kind === undefined && base0 >= HEAP_AT + 128 && base0 + 64 <= size) {
      kind = tags.get(v.getUint32(base0, true));
    }
    if (kind === undefined && tags.has(base0) && tag >= HEAP_AT + 128 && tag + 64 <= size) {
      // The root words swapped: the tag in word 0, the header's offset in word 1.
      if (v.getUint32(tag, true) === base0) kind = tags.get(base0);
    }
    if (kind === undefined) continue;
    const s = entry(id, kind);
    const obj: Target = { id, mapping: m, writable: false, baseOffset: BASE_OFFSET, port };
    s.problem = collectionProblem(obj, kind, s);
    found.push(s);
  }
  for (const s of found) if (s.kind === "directory") s.parents = childOf.get(s.id) ?? [];
  return found;
}

/**
 * The directory that most likely was the naming root: an intact directory
 * that no other directory binds, preferring one that binds `.txlog`, then
 * the one with the most entries.
 *
 * @param target A kernel port (or a session: its port), of a kernel booted on the image.
 * @returns Its ID, or `null` when there is none.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { findRootDirCandidate } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * twz.create({ name: "/a", size: 4096 });
 * console.log(findRootDirCandidate(twz) === twz.naming.rootId); // true
 * twz.close();
 * ```
 */
export function findRootDirCandidate(
  target: KernelPort | { readonly port: KernelPort },
): ObjID | null {
  const dirs = scanStructures(target).filter((s) =>
    s.kind === "directory" && s.problem === undefined && (s.parents ?? []).length === 0
  );
  const score = (s: FoundStructure) =>
    (s.sample?.includes(TXLOG_NAME.slice(1)) ? 1e9 : 0) + (s.entries ?? 0);
  dirs.sort((a, b) => score(b) - score(a));
  return dirs[0]?.id ?? null;
}

/** What {@linkcode structureAt} finds at one object's base. */
export interface BaseStructure {
  /** What it holds (`heap`: a heap with no collection over it). */
  kind: FoundStructure["kind"] | "heap";
  /** B-tree and hash map: key/value codec names (`"string/string"`); vector, queue: the value codec. */
  codecs?: string;
  /** The first problem of its header (and, with `walk`, of its structure). */
  problem?: string;
  /** With `walk`, for a collection: its entry count (B-tree and hash map) or length. */
  entries?: number;
}

/**
 * What libtwz structure sits at the base of one object, found by its bytes
 * as {@linkcode scanStructures} finds it (the naming root record,
 * directories, the transaction log, collections, or a heap alone), in
 * constant time unless `walk` asks for the collection's bounded walk too.
 * Reads only.
 *
 * @param target A kernel port (or a session: its port).
 * @param id The object.
 * @param options `walk`: check a collection's nodes and count its entries.
 * @returns What is there, or `null` (nothing libtwz recognises, or the object cannot be read).
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { BTreeMap } from "@twz/libtwz/btree";
 * import { structureAt } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const obj = twz.create({ name: "/kv", size: 1 << 20 });
 * BTreeMap.create(twz, obj, codec.string, codec.string);
 * console.log(structureAt(twz, obj.id)); // { kind: "btree", codecs: "string/string" }
 * twz.close();
 * ```
 */
export function structureAt(
  target: KernelPort | { readonly port: KernelPort },
  id: ObjID,
  options: { walk?: boolean } = {},
): BaseStructure | null {
  const port = portOf(target);
  let m: Mapping;
  try {
    m = port.map(id, Prot.Read);
  } catch {
    return null;
  }
  try {
    const v = m.view;
    const size = m.bytes.length;
    if (size < BASE_OFFSET + 64) return null;
    if (id === port.rootObjectId()) {
      const rec = readRootRecord(v);
      if (rec.state === "blank") return null;
      return rec.state === "valid"
        ? { kind: "naming-root" }
        : { kind: "naming-root", problem: rec.problem };
    }
    const hasMeta = v.getUint32(META_OFFSET, true) === OBJECT_MAGIC;
    const flags = hasMeta ? v.getUint16(META_OFFSET + MetaField.flags, true) : 0;
    const base0 = v.getUint32(BASE_OFFSET, true);
    if ((flags & MetaFlags.Directory) || base0 === DIR_MAGIC) {
      const problem = dirProblem(v, size) ??
        (hasMeta ? metaProblem(v, size) : "no libtwz meta-info") ??
        (flags & MetaFlags.Directory ? undefined : "the meta-info lacks the Directory flag");
      return problem === undefined ? { kind: "directory" } : { kind: "directory", problem };
    }
    if (base0 === TXLOG_MAGIC) {
      const state = inspectTxLog({ mapping: m });
      return state.state === "garbage"
        ? { kind: "txlog", problem: state.problem ?? "garbage header" }
        : { kind: "txlog" };
    }
    const tags = new Map<number, FoundStructure["kind"]>(
      [...COLLECTIONS].map(([magic, c]) => [magic, c.area]),
    );
    const tag = v.getUint32(BASE_OFFSET + 4, true);
    const kind = tags.get(tag);
    if (kind === undefined) {
      if (size >= HEAP_AT + 128 && v.getUint32(HEAP_AT, true) === HEAP_MAGIC) {
        return { kind: "heap" };
      }
      return null;
    }
    const s: FoundStructure = { id, kind, named: false, paths: [] };
    const obj: Target = { id, mapping: m, writable: false, baseOffset: BASE_OFFSET, port };
    let problem: string | undefined;
    if (options.walk) problem = collectionProblem(obj, kind, s);
    else {
      const header = base0;
      const checker = COLLECTIONS.get(tag)!;
      if (header < HEAP_AT + 128 || header + 64 > size || v.getUint32(header, true) !== tag) {
        problem = `no header at ${header}`;
      } else {
        const k = codecOfKind(v.getUint8(header + 4));
        const val = codecOfKind(v.getUint8(header + 5));
        if (!val || (checker.keyed && !k)) problem = "unknown codecs";
        else {
          s.codecs = checker.keyed ? `${k!.name}/${val.name}` : val.name;
          try {
            problem = checker.headerProblem(obj, header);
          } catch (e) {
            problem = (e as Error).message;
          }
        }
      }
    }
    const out: BaseStructure = { kind };
    if (s.codecs !== undefined) out.codecs = s.codecs;
    if (problem !== undefined) out.problem = problem;
    if (s.entries !== undefined) out.entries = s.entries;
    return out;
  } finally {
    port.unmap(m);
  }
}

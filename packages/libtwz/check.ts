/**
 * A deep check (fsck) of the libtwz structures inside an image's objects:
 * meta-info and foreign object tables, the naming service's directories, the
 * transaction log (`/.txlog`), and the heaps and collections rooted at an
 * object's base. The kernel's own structures are `fsck` of `@twz/kernel`;
 * `twz fsck --deep` runs both.
 *
 * Findings come in two kinds. A *problem* is corruption no crash can leave
 * (a published FOT entry without its valid flag, a hash-map entry in the
 * wrong bucket, a garbage log header). A *warning* is a state that crashes
 * or ordinary use leave and libtwz copes with: a FOT entry or a name whose
 * target was deleted (dangling), a directory a crash left unnamed, a log
 * whose last commit was torn, a committed transaction not yet applied.
 *
 * Checking reads only, except that with `replay` a committed, unapplied
 * transaction is replayed first (what opening a session does). Object
 * structures are only trustworthy as replayed: a crash in the middle of
 * applying leaves some of a transaction's writes in place and others not.
 * `twz fsck --deep` therefore checks a private copy of the image, with
 * `replay`, and writes nothing unless `--repair` is given.
 *
 * @example Check an image in memory
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { checkObjects } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * twz.create({ name: "/notes", size: 4096 });
 * const report = checkObjects(twz.kernel);
 * console.log(report.problems.length, report.checked.names); // 0 1
 * twz.close();
 * ```
 *
 * @module
 */
import type { Kernel, ObjectMapping } from "@twz/kernel";
import {
  BASE_OFFSET,
  formatId,
  FOT_ENTRY_SIZE,
  FotField,
  FotFlags,
  isValidId,
  LAYOUT_VERSION,
  MAX_FOT_INDEX,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  readId,
} from "@twz/kernel/abi";
import {
  inspectTxLog,
  recoverTransactions,
  type TxLogHost,
  type TxLogState,
  type TxTarget,
} from "./tx.ts";
import { Heap } from "./heap.ts";
import { HashMap } from "./hashmap.ts";
import { BTreeMap } from "./btree.ts";
import { Vector } from "./vector.ts";
import { Queue } from "./queue.ts";
import { type Codec, codecOfKind } from "./codec.ts";
import { TXLOG_NAME } from "./session_tx.ts";

// Formats kept by naming.ts (private there); the checker reads them too.
const DIR_MAGIC = 0x52494454; // "TDIR"
const NAMING_ROOT_MAGIC = 0x52575a54; // "TZWR", at the root object's base
const R_NAMING = 16;
const DIR_HEADER = 64;
const DIR_ENTRY = 128;
const MAX_NAME = DIR_ENTRY - 24;
const E_STATE = 0, E_KIND = 4, E_LEN = 6, E_ID = 8, E_NAME = 24;
const KIND_OBJECT = 1, KIND_DIR = 2;
// Collection magics (word 1 of the base; word 0 names the header), and the heap's.
const HMAP = 0x50414d48, BTRE = 0x45525442, VECT = 0x54434556, QUEU = 0x55455551;
const HEAP_MAGIC = 0x50414548;
/** Where collections and the heap workload lay out their heap: after the base's root words. */
const HEAP_AT = (BASE_OFFSET + 64 + 63) & ~63;
const KNOWN_FOT_FLAGS = FotFlags.Read | FotFlags.Write | FotFlags.Exec | FotFlags.Name |
  FotFlags.Allocated | FotFlags.Valid;

/** Which libtwz structure a finding is in. */
export type CheckArea =
  | "meta"
  | "fot"
  | "naming"
  | "txlog"
  | "heap"
  | "hashmap"
  | "btree"
  | "vector"
  | "queue";

/** One finding: a problem (corruption) or a warning. */
export interface CheckFinding {
  /** The object it is in (32 hex digits), when it is in one. */
  id?: string;
  /** The structure. */
  area: CheckArea;
  /** One line: what is wrong, naming offsets, entries and target IDs. */
  message: string;
}

/** What {@linkcode checkObjects} counted. */
export interface CheckCounts {
  /** Objects in the image. */
  objects: number;
  /** Objects with libtwz meta-info. */
  libtwzObjects: number;
  /** Published FOT entries. */
  fotEntries: number;
  /** Directories reached from the naming root. */
  directories: number;
  /** Bound names (directories included). */
  names: number;
  /** Heaps checked (one per collection, or found alone). */
  heaps: number;
  /** Hash maps checked. */
  hashMaps: number;
  /** B-tree maps checked. */
  btrees: number;
  /** Vectors checked. */
  vectors: number;
  /** Queues checked. */
  queues: number;
}

/** The transaction log as {@linkcode checkObjects} found it (before any replay). */
export interface CheckTxLog {
  /** Its object (32 hex digits). */
  id: string;
  /** See {@linkcode TxLogState}. */
  state: TxLogState["state"];
  /** Records of the logged transaction. */
  records: number;
  /** Records replayed (`replay`, committed logs only). */
  replayed: number;
}

/** What {@linkcode checkObjects} found. */
export interface CheckReport {
  /** Corruption: `twz fsck --deep` fails on these. */
  problems: CheckFinding[];
  /** States crashes or use leave (dangling references, torn or committed logs). */
  warnings: CheckFinding[];
  /** The transaction log, or `null` when the image has none (no transaction ran). */
  txlog: CheckTxLog | null;
  /** Counts. */
  checked: CheckCounts;
}

/** Options for {@linkcode checkObjects}. */
export interface CheckOptions {
  /**
   * Replay a committed, unapplied transaction before checking (a write: use
   * it on a private copy of the image, or to repair).
   * @default {false}
   */
  replay?: boolean;
}

type Target = TxTarget & { baseOffset: number };

const fatal = new TextDecoder("utf-8", { fatal: true });

/** A host that only ever replays: the log object and objects mapped writable. */
function replayHost(kernel: Kernel, logId: ObjID): TxLogHost {
  let log: TxTarget | undefined;
  return {
    logObject: () =>
      log ??= { id: logId, mapping: kernel.map(logId, Prot.ReadWrite), writable: true },
    mapForReplay: (id) => kernel.exists(id) ? kernel.map(id, Prot.ReadWrite) : null,
  };
}

/** No collection check opens a transaction; this host says so if one tries. */
const noHost: TxLogHost = {
  logObject() {
    throw new TypeError("checkObjects never writes through a collection");
  },
  mapForReplay() {
    throw new TypeError("checkObjects never writes through a collection");
  },
};

function kernelOf(target: Kernel | { readonly kernel: Kernel }): Kernel {
  return "kernel" in target ? target.kernel : target;
}

/** Walk the naming tree from the root object; returns the tree's bindings (path -> ID). */
function findRootDir(kernel: Kernel): ObjID | null {
  const root = kernel.rootObjectId();
  if (root === 0n) return null;
  const v = kernel.map(root, Prot.Read).view;
  if (v.byteLength < BASE_OFFSET + 32) return null;
  if (v.getUint32(BASE_OFFSET, true) !== NAMING_ROOT_MAGIC) return null;
  return readId(v, BASE_OFFSET + R_NAMING);
}

/**
 * Check the libtwz structures of every object of a kernel's image.
 *
 * @param target A kernel (or a session: its kernel), booted on the image.
 * @param options `replay`: replay a committed transaction log first (writes).
 * @returns Problems, warnings, the log's state and counts.
 * @example Find a corruption
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { checkObjects } from "@twz/libtwz/check";
 * import { FotField, META_OFFSET, MetaField } from "@twz/kernel/abi";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const a = twz.create({ size: 65536 });
 * const b = twz.create({ size: 4096 });
 * a.fotIndex(b.id);
 * const fot = a.view.getUint32(META_OFFSET + MetaField.fotOffset, true);
 * a.view.setUint32(fot + FotField.flags, 0, true); // entry 1 loses its flags
 * console.log(checkObjects(twz).problems[0].message); // published FOT entry 1 is not valid (flags 0x0)
 * twz.close();
 * ```
 */
export function checkObjects(
  target: Kernel | { readonly kernel: Kernel },
  options: CheckOptions = {},
): CheckReport {
  const kernel = kernelOf(target);
  const problems: CheckFinding[] = [];
  const warnings: CheckFinding[] = [];
  const checked: CheckCounts = {
    objects: 0,
    libtwzObjects: 0,
    fotEntries: 0,
    directories: 0,
    names: 0,
    heaps: 0,
    hashMaps: 0,
    btrees: 0,
    vectors: 0,
    queues: 0,
  };
  const problem = (id: ObjID | undefined, area: CheckArea, message: string): void => {
    problems.push({ ...(id !== undefined ? { id: formatId(id) } : {}), area, message });
  };
  const warn = (id: ObjID | undefined, area: CheckArea, message: string): void => {
    warnings.push({ ...(id !== undefined ? { id: formatId(id) } : {}), area, message });
  };
  const maps = new Map<ObjID, ObjectMapping>();
  const mapOf = (id: ObjID): ObjectMapping | null => {
    let m = maps.get(id);
    if (m && m.bytes.length > 0) return m;
    try {
      m = kernel.map(id, Prot.Read);
    } catch {
      return null;
    }
    maps.set(id, m);
    return m;
  };
  const metaFlags = (m: ObjectMapping): number | null =>
    m.bytes.length >= BASE_OFFSET && m.view.getUint32(META_OFFSET, true) === OBJECT_MAGIC
      ? m.view.getUint16(META_OFFSET + MetaField.flags, true)
      : null;

  // 1. Naming: walk the tree read-only, collecting paths (for name-based FOT entries).
  const paths = new Map<string, ObjID>();
  const reached = new Set<ObjID>();
  let txlogId: ObjID | undefined;
  const rootDir = findRootDir(kernel);
  if (rootDir !== null) {
    if (!kernel.exists(rootDir)) {
      problem(undefined, "naming", `the root directory ${formatId(rootDir)} does not exist`);
    } else {
      const queue: Array<[ObjID, string]> = [[rootDir, ""]];
      reached.add(rootDir);
      paths.set("/", rootDir);
      while (queue.length > 0) {
        const [dirId, path] = queue.shift()!;
        checkDir(dirId, path, queue);
      }
      txlogId = paths.get(TXLOG_NAME);
    }
  }

  function checkDir(dirId: ObjID, path: string, queue: Array<[ObjID, string]>): void {
    const m = mapOf(dirId);
    const where = path === "" ? "/" : path;
    if (!m) return problem(dirId, "naming", `directory ${where} cannot be mapped`);
    const flags = metaFlags(m);
    if (flags === null || !(flags & MetaFlags.Directory)) {
      return problem(dirId, "naming", `directory ${where} is not a directory object`);
    }
    const v = m.view;
    if (v.getUint32(BASE_OFFSET, true) !== DIR_MAGIC) {
      return problem(dirId, "naming", `directory ${where} has no directory header magic`);
    }
    checked.directories++;
    const cap = v.getUint32(BASE_OFFSET + 8, true);
    if (BASE_OFFSET + DIR_HEADER + cap * DIR_ENTRY > m.bytes.length) {
      return problem(
        dirId,
        "naming",
        `directory ${where} claims ${cap} entries; ${m.bytes.length} bytes hold fewer`,
      );
    }
    const names = new Set<string>();
    for (let i = 0; i < cap; i++) {
      const at = BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY;
      const state = v.getUint32(at + E_STATE, true);
      if (state === 0) continue;
      if (state !== 1) {
        problem(dirId, "naming", `directory ${where}: entry ${i} has unknown state ${state}`);
        continue;
      }
      const kind = v.getUint16(at + E_KIND, true);
      const len = v.getUint16(at + E_LEN, true);
      let name: string;
      try {
        if (len < 1 || len > MAX_NAME) throw new RangeError();
        name = fatal.decode(m.bytes.subarray(at + E_NAME, at + E_NAME + len));
      } catch {
        problem(
          dirId,
          "naming",
          `directory ${where}: entry ${i} has a malformed name (${len} bytes)`,
        );
        continue;
      }
      if (name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
        problem(dirId, "naming", `directory ${where}: entry ${i} has an invalid name "${name}"`);
        continue;
      }
      const full = `${path}/${name}`;
      if (names.has(name)) {
        problem(dirId, "naming", `directory ${where}: ${name} is bound twice`);
        continue;
      }
      names.add(name);
      if (kind !== KIND_OBJECT && kind !== KIND_DIR) {
        problem(dirId, "naming", `${full}: unknown entry kind ${kind}`);
        continue;
      }
      const id = readId(v, at + E_ID);
      if (!isValidId(id)) {
        problem(dirId, "naming", `${full} is bound to an invalid ID ${formatId(id)}`);
        continue;
      }
      checked.names++;
      paths.set(full, id);
      if (!kernel.exists(id)) {
        warn(
          dirId,
          "naming",
          `${full} is bound to ${formatId(id)}, which no longer exists (dangling name)`,
        );
        continue;
      }
      const tm = mapOf(id);
      const isDir = tm !== null && ((metaFlags(tm) ?? 0) & MetaFlags.Directory) !== 0;
      if (kind === KIND_DIR) {
        if (!isDir) {
          problem(
            dirId,
            "naming",
            `${full} is bound as a directory to ${formatId(id)}, which is not one`,
          );
        } else if (reached.has(id)) {
          warn(
            dirId,
            "naming",
            `${full} names directory ${
              formatId(id)
            }, which has another name too (a rename cut short by a crash leaves this)`,
          );
        } else {
          reached.add(id);
          queue.push([id, full]);
        }
      } else if (isDir) {
        problem(dirId, "naming", `${full} is bound as an object to directory ${formatId(id)}`);
      }
    }
  }

  // 2. The transaction log, before anything reads object structures.
  let txlog: CheckTxLog | null = null;
  if (txlogId !== undefined && kernel.exists(txlogId)) {
    const m = mapOf(txlogId)!;
    const s = inspectTxLog({ mapping: m });
    txlog = { id: formatId(txlogId), state: s.state, records: s.records, replayed: 0 };
    if (s.state === "garbage") {
      problem(txlogId, "txlog", `the transaction log header is garbage: ${s.problem}`);
    } else if (s.state === "torn") {
      warn(
        txlogId,
        "txlog",
        `the transaction log holds a torn commit (seq ${s.seq}); recovery ignores it`,
      );
    } else if (s.state === "committed") {
      if (options.replay) {
        txlog.replayed = recoverTransactions(replayHost(kernel, txlogId));
        maps.clear();
      }
      warn(
        txlogId,
        "txlog",
        `the transaction log holds a committed transaction not marked applied: ${s.records} records; opening a session replays it${
          options.replay ? " (checked as replayed)" : ""
        }`,
      );
    }
  }

  // 3. Every object: meta-info, FOT, and what is rooted at its base.
  for (const stat of kernel.list()) {
    checked.objects++;
    const id = stat.id;
    const m = mapOf(id);
    if (!m) {
      warn(id, "meta", "cannot be mapped for reading; not checked");
      continue;
    }
    const flags = metaFlags(m);
    if (flags === null) continue; // not a libtwz object
    checked.libtwzObjects++;
    if (checkMeta(id, m, flags) && (flags & MetaFlags.Directory) && !reached.has(id)) {
      warn(
        id,
        "naming",
        "a directory object that no name reaches (a crash during mkdir leaves this)",
      );
    }
    if (!(flags & MetaFlags.Directory) && id !== txlogId) checkBase(id, m);
  }

  function checkMeta(id: ObjID, m: ObjectMapping, flags: number): boolean {
    const v = m.view;
    const size = m.bytes.length;
    const f = (field: number) => v.getUint32(META_OFFSET + field, true);
    const version = v.getUint16(META_OFFSET + MetaField.version, true);
    if (version !== LAYOUT_VERSION) {
      problem(id, "meta", `unknown layout version ${version}`);
      return false;
    }
    if (flags & ~(MetaFlags.Directory | MetaFlags.Root)) {
      problem(id, "meta", `unknown meta-info flags 0x${flags.toString(16)}`);
    }
    const fotOffset = f(MetaField.fotOffset), cap = f(MetaField.fotCapacity);
    const count = f(MetaField.fotCount), namesUsed = f(MetaField.namesUsed);
    const namesOffset = f(MetaField.namesOffset), namesSize = f(MetaField.namesSize);
    if (f(MetaField.createdSize) > size) {
      problem(id, "meta", `created with ${f(MetaField.createdSize)} bytes but now ${size}`);
    }
    let ok = true;
    if (cap > MAX_FOT_INDEX || fotOffset < BASE_OFFSET || fotOffset + cap * FOT_ENTRY_SIZE > size) {
      problem(
        id,
        "fot",
        `FOT of ${cap} entries at ${fotOffset} lies outside the object (${size} bytes)`,
      );
      ok = false;
    }
    if (namesOffset < fotOffset + cap * FOT_ENTRY_SIZE || namesOffset + namesSize > size) {
      problem(
        id,
        "fot",
        `FOT names area [${namesOffset}, ${
          namesOffset + namesSize
        }) lies outside the object or overlaps the entries`,
      );
      ok = false;
    }
    if (count > cap) {
      problem(id, "fot", `fotCount ${count} exceeds fotCapacity ${cap}`);
      ok = false;
    }
    if (namesUsed > namesSize) {
      problem(id, "fot", `namesUsed ${namesUsed} exceeds the names area's ${namesSize} bytes`);
      ok = false;
    }
    if (!ok) return true;
    for (let i = 1; i <= count; i++) {
      checked.fotEntries++;
      const at = fotOffset + (i - 1) * FOT_ENTRY_SIZE;
      const eflags = v.getUint32(at + FotField.flags, true);
      if (!(eflags & FotFlags.Valid)) {
        problem(
          id,
          "fot",
          `published FOT entry ${i} is not valid (flags 0x${eflags.toString(16)})`,
        );
        continue;
      }
      if (eflags & ~KNOWN_FOT_FLAGS) {
        problem(id, "fot", `FOT entry ${i} has unknown flags 0x${eflags.toString(16)}`);
        continue;
      }
      if (eflags & FotFlags.Name) {
        const off = v.getUint32(at + FotField.nameOffset, true);
        const len = v.getUint16(at + FotField.nameLength, true);
        const rlen = v.getUint16(at + FotField.resolverLength, true);
        if (off < namesOffset || off + len + rlen > namesOffset + namesUsed) {
          problem(
            id,
            "fot",
            `FOT entry ${i}'s name [${off}, ${off + len + rlen}) lies outside the used names area`,
          );
          continue;
        }
        let name: string, resolver: string;
        try {
          name = fatal.decode(m.bytes.subarray(off, off + len));
          resolver = fatal.decode(m.bytes.subarray(off + len, off + len + rlen));
        } catch {
          problem(id, "fot", `FOT entry ${i}'s name is not UTF-8`);
          continue;
        }
        if (resolver === "" && rootDir !== null) {
          const path = "/" + name.split("/").filter((p) => p !== "").join("/");
          const bound = paths.get(path);
          if (bound === undefined || !kernel.exists(bound)) {
            warn(
              id,
              "fot",
              `FOT entry ${i} names ${name}, which resolves to nothing now (dangling)`,
            );
          }
        }
      } else {
        const target = readId(v, at + FotField.id);
        if (!isValidId(target)) {
          problem(id, "fot", `FOT entry ${i} holds an invalid ID ${formatId(target)}`);
        } else if (!kernel.exists(target)) {
          warn(
            id,
            "fot",
            `FOT entry ${i} names ${formatId(target)}, which no longer exists (dangling)`,
          );
        }
      }
    }
    return true;
  }

  function checkBase(id: ObjID, m: ObjectMapping): void {
    const v = m.view;
    const size = m.bytes.length;
    if (size < HEAP_AT + 128) return;
    const obj: Target = { id, mapping: m, writable: false, baseOffset: BASE_OFFSET };
    const magic = v.getUint32(BASE_OFFSET + 4, true);
    const header = v.getUint32(BASE_OFFSET, true);
    const kinds = new Map<number, [CheckArea, string]>([
      [HMAP, ["hashmap", "hash map"]],
      [BTRE, ["btree", "B-tree map"]],
      [VECT, ["vector", "vector"]],
      [QUEU, ["queue", "queue"]],
    ]);
    const kind = kinds.get(magic);
    const hasHeap = v.getUint32(HEAP_AT, true) === HEAP_MAGIC;
    if (kind) {
      const [area, what] = kind;
      if (header < HEAP_AT || header + 64 > size || v.getUint32(header, true) !== magic) {
        problem(id, area, `the base names a ${what} at ${header}, but its header is not there`);
        return;
      }
      if (!hasHeap) {
        problem(id, "heap", `holds a ${what} but no heap at ${HEAP_AT}`);
        return;
      }
      const codecs = (): [Codec<unknown>, Codec<unknown>] | null => {
        const keyed = area === "hashmap" || area === "btree";
        const k = keyed ? codecOfKind(v.getUint8(header + 4)) : codecOfKind(v.getUint8(header + 5));
        const val = codecOfKind(v.getUint8(header + 5));
        if (!k || !val) {
          problem(
            id,
            area,
            `the ${what} was made with unknown codecs (${v.getUint8(header + 4)}/${
              v.getUint8(header + 5)
            })`,
          );
          return null;
        }
        return [k, val];
      };
      try {
        const c = codecs();
        if (c) {
          let found: string | undefined;
          if (area === "hashmap") {
            checked.hashMaps++;
            found = HashMap.open(noHost, obj, c[0], c[1]).check().problem;
          } else if (area === "btree") {
            checked.btrees++;
            found = BTreeMap.open(noHost, obj, c[0], c[1]).check().problem;
          } else if (area === "vector") {
            checked.vectors++;
            found = Vector.open(noHost, obj, c[1]).check().problem;
          } else {
            checked.queues++;
            found = Queue.open(noHost, obj, c[1]).check().problem;
          }
          if (found) problem(id, area, `${what}: ${found}`);
        }
      } catch (e) {
        problem(id, area, `${what}: ${(e as Error).message}`);
      }
    }
    if (hasHeap) {
      checked.heaps++;
      try {
        const heap = new Heap(obj, HEAP_AT);
        const walk = heap.check();
        if (walk.problem) return void problem(id, "heap", `heap at ${HEAP_AT}: ${walk.problem}`);
        const lists = heap.checkFreeLists();
        if (lists.problem) return void problem(id, "heap", `heap at ${HEAP_AT}: ${lists.problem}`);
        if (lists.free !== walk.free) {
          problem(
            id,
            "heap",
            `heap at ${HEAP_AT}: ${walk.free} bytes in free blocks but ${lists.free} on the free lists`,
          );
        }
      } catch (e) {
        problem(id, "heap", `heap at ${HEAP_AT}: ${(e as Error).message}`);
      }
    }
  }

  return { problems, warnings, txlog, checked };
}

/**
 * Repair what {@linkcode checkObjects} can repair in place: replay a
 * committed, unapplied transaction (exactly what opening a session does) and
 * clear a garbage transaction log header (recovery ignores it anyway; the
 * next commit rewrites it). Everything else is reported, not repaired.
 *
 * @param target A kernel (or a session: its kernel), booted on the image.
 * @returns What was done, one line each.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { repairObjects } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * console.log(repairObjects(twz)); // []
 * twz.close();
 * ```
 */
export function repairObjects(target: Kernel | { readonly kernel: Kernel }): string[] {
  const kernel = kernelOf(target);
  const rootDir = findRootDir(kernel);
  if (rootDir === null || !kernel.exists(rootDir)) return [];
  // The log's name sits in the root directory.
  const dir = kernel.map(rootDir, Prot.Read);
  const v = dir.view;
  const want = new TextEncoder().encode(TXLOG_NAME.slice(1));
  const cap = v.getUint32(BASE_OFFSET + 8, true);
  let logId: ObjID | undefined;
  for (
    let i = 0;
    i < cap && BASE_OFFSET + DIR_HEADER + (i + 1) * DIR_ENTRY <= dir.bytes.length;
    i++
  ) {
    const at = BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY;
    if (v.getUint32(at + E_STATE, true) !== 1 || v.getUint16(at + E_LEN, true) !== want.length) {
      continue;
    }
    if (want.every((b, k) => dir.bytes[at + E_NAME + k] === b)) logId = readId(v, at + E_ID);
  }
  if (logId === undefined || !kernel.exists(logId)) return [];
  const log = kernel.map(logId, Prot.ReadWrite);
  const s = inspectTxLog({ mapping: log });
  if (s.state === "committed") {
    const n = recoverTransactions(replayHost(kernel, logId));
    return [`txlog: replayed the committed transaction (${n} records), as opening a session would`];
  }
  if (s.state === "garbage") {
    const base = log.bytes.length >= 512 ? BASE_OFFSET : 0;
    log.bytes.fill(0, base, base + 64);
    log.persist(base, 64);
    return ["txlog: cleared the garbage transaction log header"];
  }
  return [];
}

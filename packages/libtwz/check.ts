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
  ErrorCode,
  formatId,
  FOT_ENTRY_SIZE,
  FotField,
  FotFlags,
  isValidId,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  readId,
  TwzError,
} from "@twz/kernel/abi";
import { META_PENDING_NAME, metaProblem } from "./object.ts";
import {
  dirCapacityOf,
  dirProblem,
  readRootRecord,
  rewriteDirHeader,
  writeRootMeta,
  writeRootRecord,
} from "./naming.ts";
import { Twz } from "./twz.ts";
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
  | "root"
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

/** Whether `e` is the kernel's refusal of a quarantined object (or a damaged probe chain). */
function isDamage(e: unknown): e is TwzError {
  return e instanceof TwzError && e.code === ErrorCode.ObjectDamaged;
}

/**
 * Whether object `id` exists: `"damaged"` when the kernel quarantined it (its
 * table slot, or one on its probe chain, fails its check), with the
 * kernel's message. Never throws for damage.
 */
function presence(
  kernel: Kernel,
  id: ObjID,
): { state: "yes" | "no" } | { state: "damaged"; message: string } {
  try {
    return { state: kernel.exists(id) ? "yes" : "no" };
  } catch (e) {
    if (isDamage(e)) return { state: "damaged", message: e.message };
    throw e;
  }
}

/** Whether `id` exists and is usable (a quarantined object is not). */
function usable(kernel: Kernel, id: ObjID): boolean {
  return presence(kernel, id).state === "yes";
}

/** The kernel root object's ID (0n: none), or the kernel's error when it is quarantined. */
function rootObjectOf(kernel: Kernel): { id: ObjID; damage?: string } {
  try {
    return { id: kernel.rootObjectId() };
  } catch (e) {
    if (isDamage(e)) return { id: 0n, damage: e.message };
    throw e;
  }
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

/** The naming root directory the kernel root object's record names, or null (none, or damaged). */
function findRootDir(kernel: Kernel): ObjID | null {
  const root = rootObjectOf(kernel).id;
  if (root === 0n) return null;
  let rec;
  try {
    rec = readRootRecord(kernel.map(root, Prot.Read).view);
  } catch (e) {
    if (isDamage(e)) return null;
    throw e;
  }
  return rec.state === "valid" ? rec.dir : null;
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

  // 0. The kernel root object as libtwz lays it out: meta-info and root record.
  const rootObjOf = rootObjectOf(kernel);
  const rootObjId = rootObjOf.id;
  let rootDir: ObjID | null = null;
  if (rootObjOf.damage !== undefined) {
    problem(
      undefined,
      "root",
      `the kernel root object is damaged (quarantined), so the naming root is unreachable: ${rootObjOf.damage}`,
    );
  }
  if (rootObjId !== 0n) {
    const m = mapOf(rootObjId);
    if (!m) problem(rootObjId, "root", "the kernel root object cannot be mapped");
    else {
      const rec = readRootRecord(m.view);
      if (rec.state === "valid") rootDir = rec.dir;
      else if (rec.state === "damaged") {
        // Cut short before its magic: it names the new, empty root directory,
        // or (its bytes not durable yet) no object — while no directory holds names.
        const torn = m.view.getUint32(BASE_OFFSET, true) === 0 &&
          (rec.dir !== undefined && emptyDir(rec.dir) ||
            (rec.dir === undefined || presence(kernel, rec.dir).state === "no") &&
              namedDirectory() === undefined);
        if (torn) {
          warn(
            rootObjId,
            "root",
            "the naming root record is not published yet (a crash during the first use of the naming service leaves this; the next session completes it)",
          );
        } else {
          problem(
            rootObjId,
            "root",
            `the naming root record is damaged: ${rec.problem}${
              rec.dir !== undefined ? ` (it names ${formatId(rec.dir)})` : ""
            }`,
          );
        }
      }
      if (rec.state === "valid") {
        const flags = metaFlags(m);
        if (flags === null) problem(rootObjId, "root", "the kernel root object has no meta-info");
        else if (!(flags & MetaFlags.Root)) {
          problem(rootObjId, "root", `the kernel root object's meta-info lacks the Root flag`);
        }
      }
    }
  }

  // No record (or no root object) while a directory holds names: the record was lost.
  if (
    rootDir === null && rootObjOf.damage === undefined &&
    (rootObjId === 0n || readRootRecordOf(rootObjId) === "blank")
  ) {
    const named = namedDirectory();
    if (named !== undefined) {
      problem(
        rootObjId === 0n ? undefined : rootObjId,
        "root",
        `no naming root record, but directory ${formatId(named)} holds names: the record was lost`,
      );
    }
  }

  /** A directory object (other than the root object) holding a bound entry, if any. */
  function namedDirectory(): ObjID | undefined {
    for (const stat of kernel.list()) {
      if (stat.lifetime !== "persistent" || stat.id === rootObjId) continue;
      const m = mapOf(stat.id);
      if (!m || !((metaFlags(m) ?? 0) & MetaFlags.Directory)) continue;
      // Every entry its size holds: its header may be damaged too.
      const cap = dirCapacityOf(m.bytes.length);
      for (let i = 0; i < cap; i++) {
        if (m.view.getUint32(BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY + E_STATE, true) === 1) {
          return stat.id;
        }
      }
    }
    return undefined;
  }

  function readRootRecordOf(id: ObjID): string {
    const m = mapOf(id);
    return m ? readRootRecord(m.view).state : "unmapped";
  }

  /** Whether `id` is an intact, never-changed, empty directory (what a torn first use leaves). */
  function emptyDir(id: ObjID): boolean {
    if (!usable(kernel, id)) return false;
    const m = mapOf(id);
    if (!m || dirProblem(m.view, m.bytes.length) !== undefined) return false;
    if (m.view.getUint32(BASE_OFFSET + 12, true) !== 0) return false;
    const cap = m.view.getUint32(BASE_OFFSET + 8, true);
    for (let i = 0; i < cap; i++) {
      if (m.view.getUint32(BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY + E_STATE, true) !== 0) {
        return false;
      }
    }
    return true;
  }

  // 1. Naming: walk the tree read-only, collecting paths (for name-based FOT entries).
  const paths = new Map<string, ObjID>();
  const reached = new Set<ObjID>();
  const bound = new Set<ObjID>();
  let txlogId: ObjID | undefined;
  const rootDirPresence = rootDir === null ? undefined : presence(kernel, rootDir);
  if (rootDir !== null) {
    if (rootDirPresence!.state === "damaged") {
      problem(
        rootDir,
        "naming",
        `the root directory ${formatId(rootDir)} is damaged (quarantined): ${
          (rootDirPresence as { message: string }).message
        }`,
      );
    } else if (rootDirPresence!.state === "no") {
      problem(
        rootObjId,
        "root",
        `the naming root record names root directory ${formatId(rootDir)}, which does not exist`,
      );
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
    const header = dirProblem(v, m.bytes.length);
    if (header !== undefined) {
      return problem(dirId, "naming", `directory ${where}: header damaged: ${header}`);
    }
    checked.directories++;
    const cap = v.getUint32(BASE_OFFSET + 8, true);
    if (cap !== dirCapacityOf(m.bytes.length)) {
      warn(
        dirId,
        "naming",
        `directory ${where}: capacity ${cap} of ${
          dirCapacityOf(m.bytes.length)
        } entries (a grow cut short by a crash leaves this; the next bind publishes it)`,
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
      bound.add(id);
      const there = presence(kernel, id);
      if (there.state === "damaged") {
        // The kernel quarantined it: report it and go on with the rest.
        problem(
          id,
          "naming",
          `${full} is bound to ${formatId(id)}, which is damaged (quarantined): ${there.message}`,
        );
        continue;
      }
      if (there.state === "no") {
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
  if (txlogId !== undefined && usable(kernel, txlogId) && mapOf(txlogId) !== null) {
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
      // A read-only kernel refuses the writable maps a replay needs.
      const replay = options.replay === true && !kernel.readOnly;
      if (replay) {
        try {
          txlog.replayed = recoverTransactions(replayHost(kernel, txlogId));
        } catch (e) {
          if (!(e instanceof TwzError)) throw e;
          problem(txlogId, "txlog", `replaying the committed transaction failed: ${e.message}`);
        }
        maps.clear();
      }
      warn(
        txlogId,
        "txlog",
        `the transaction log holds a committed transaction not marked applied: ${s.records} records; opening a session replays it${
          replay
            ? " (checked as replayed)"
            : options.replay
            ? " (not replayed: the image is open read-only)"
            : ""
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
    if ((flags & META_PENDING_NAME) && (id === rootObjId || id === txlogId)) {
      // Twz.create never makes these: the mark is damage to their flags.
      problem(
        id,
        "meta",
        `the ${
          id === rootObjId ? "kernel root object" : "transaction log"
        } is marked as created for a name: its meta-info flags are damaged`,
      );
    } else if (flags & META_PENDING_NAME) {
      warn(
        id,
        "meta",
        bound.has(id)
          ? "created for a name and named, but still marked pending (a crash inside Twz.create leaves this; repair clears the mark)"
          : "created for a name that was never bound (a crash inside Twz.create leaves this; repair deletes it if it was never written, else binds it under /lost+found)",
      );
    }
    if (!(flags & MetaFlags.Directory) && id !== txlogId && id !== rootObjId) checkBase(id, m);
  }

  function checkMeta(id: ObjID, m: ObjectMapping, flags: number): boolean {
    const v = m.view;
    const size = m.bytes.length;
    const f = (field: number) => v.getUint32(META_OFFSET + field, true);
    const bad = metaProblem(v, size);
    if (bad !== undefined) {
      problem(id, /FOT|fotCount|namesUsed/.test(bad) ? "fot" : "meta", bad);
      return false;
    }
    if ((flags & MetaFlags.Root) && id !== rootObjId) {
      problem(id, "meta", "has the Root flag but is not the kernel root object");
    }
    const fotOffset = f(MetaField.fotOffset);
    const count = f(MetaField.fotCount), namesUsed = f(MetaField.namesUsed);
    const namesOffset = f(MetaField.namesOffset);
    if (f(MetaField.createdSize) > size) {
      problem(id, "meta", `created with ${f(MetaField.createdSize)} bytes but now ${size}`);
    }
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
          if (bound === undefined || !usable(kernel, bound)) {
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
        } else {
          const there = presence(kernel, target);
          if (there.state !== "yes") {
            warn(
              id,
              "fot",
              there.state === "no"
                ? `FOT entry ${i} names ${formatId(target)}, which no longer exists (dangling)`
                : `FOT entry ${i} names ${formatId(target)}, which is damaged (quarantined)`,
            );
          }
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
    if (!kind && hasHeap) {
      // Over a heap, the base's root words name no collection: a collection
      // header where word 0 points (the tag in word 1 damaged), or the two
      // words swapped (the tag in word 0, the header's offset in word 1).
      const headerAt = (at: number) =>
        at >= HEAP_AT + 128 && at + 64 <= size ? kinds.get(v.getUint32(at, true)) : undefined;
      const there = headerAt(header);
      const swapped = kinds.get(header);
      if (there) {
        problem(
          id,
          there[0],
          `the base's collection tag 0x${magic.toString(16)} is damaged: a ${
            there[1]
          } header lies at ${header}`,
        );
      } else if (swapped && headerAt(magic)?.[0] === swapped[0]) {
        problem(
          id,
          swapped[0],
          `the base's root words are damaged: word 0 holds the ${swapped[1]} tag 0x${
            header.toString(16)
          } and word 1 the offset ${magic} of its header`,
        );
      }
    }
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
      const heapHeader = Heap.headerProblem(obj, HEAP_AT, true);
      if (heapHeader !== undefined) {
        problem(id, "heap", `heap at ${HEAP_AT}: header damaged: ${heapHeader}`);
        return;
      }
      const headerCheck = {
        hashmap: HashMap.headerProblem,
        btree: BTreeMap.headerProblem,
        vector: Vector.headerProblem,
        queue: Queue.headerProblem,
      }[area as "hashmap" | "btree" | "vector" | "queue"];
      const damagedHeader = headerCheck(obj, header);
      if (damagedHeader !== undefined) {
        problem(id, area, `${what} header at ${header} damaged: ${damagedHeader}`);
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
        // The checker reports whatever a walk meets; it never throws.
        const damagedError = e instanceof TwzError && e.code === ErrorCode.ObjectDamaged;
        problem(id, area, damagedError ? e.message : `${what}: ${(e as Error).message}`);
      }
    }
    if (hasHeap) {
      checked.heaps++;
      const heapHeader = Heap.headerProblem(obj, HEAP_AT, true);
      if (heapHeader !== undefined) {
        return void problem(id, "heap", `heap at ${HEAP_AT}: header damaged: ${heapHeader}`);
      }
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
  const lines = repairTxLog(kernel);
  lines.push(...repairPending(kernel));
  return lines;
}

/** Replay a committed log or clear a garbage header (see {@linkcode repairObjects}). */
function repairTxLog(kernel: Kernel): string[] {
  const rootDir = findRootDir(kernel);
  if (rootDir === null || !usable(kernel, rootDir)) return [];
  // The log's name sits in the root directory.
  const logId = dirEntries(kernel.map(rootDir, Prot.Read)).find((e) => `/${e.name}` === TXLOG_NAME)
    ?.id;
  if (logId === undefined || !usable(kernel, logId)) return [];
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

/**
 * Finish what a crash inside `Twz.create({ name })` cut short: an object
 * still marked {@linkcode META_PENDING_NAME} that a name reaches loses the
 * mark; one that no name reaches was never handed to anyone and is deleted
 * when nothing was ever written past its meta-info (so nothing is lost);
 * otherwise the mark may be damage to a real object's flags, and the object
 * is kept under `/lost+found/<ID>`. The kernel root object and the
 * transaction log are never deleted (their mark is damage: it is cleared).
 * Nothing is deleted while the naming root is unreadable.
 */
function repairPending(kernel: Kernel): string[] {
  const lines: string[] = [];
  const rootDir = findRootDir(kernel);
  if (rootDir === null || !usable(kernel, rootDir)) return lines;
  const names = namesByObject(kernel);
  const rootObject = kernel.rootObjectId();
  for (const stat of kernel.list()) {
    if (stat.lifetime !== "persistent" || !(stat.prot & Prot.Read)) continue;
    let m: ObjectMapping;
    try {
      m = kernel.map(stat.id, Prot.Read);
    } catch (e) {
      if (isDamage(e)) continue;
      throw e;
    }
    const v = m.view;
    if (m.bytes.length < BASE_OFFSET || v.getUint32(META_OFFSET, true) !== OBJECT_MAGIC) continue;
    const flags = v.getUint16(META_OFFSET + MetaField.flags, true);
    if (!(flags & META_PENDING_NAME) || metaProblem(v, m.bytes.length) !== undefined) continue;
    const system = stat.id === rootObject || names.get(stat.id)?.includes("/.txlog");
    if (names.has(stat.id) || system) {
      const w = kernel.map(stat.id, Prot.ReadWrite);
      w.view.setUint16(META_OFFSET + MetaField.flags, flags & ~META_PENDING_NAME, true);
      w.persist(META_OFFSET + MetaField.flags, 2);
      lines.push(
        `meta ${formatId(stat.id)}: cleared the pending-name mark of ${
          system && !names.has(stat.id) ? "the kernel root object" : names.get(stat.id)![0]
        }`,
      );
    } else if (writtenTo(m)) {
      const path = bindLostFound(kernel, stat.id);
      const w = kernel.map(stat.id, Prot.ReadWrite);
      w.view.setUint16(META_OFFSET + MetaField.flags, flags & ~META_PENDING_NAME, true);
      w.persist(META_OFFSET + MetaField.flags, 2);
      lines.push(
        `meta ${
          formatId(stat.id)
        }: marked as created for a name but holds data: kept as ${path} (not deleted)`,
      );
    } else if (stat.dependents === 0) {
      kernel.delete(stat.id);
      lines.push(
        `meta ${
          formatId(stat.id)
        }: deleted an object created for a name that was never bound (a crash inside create)`,
      );
    }
  }
  return lines;
}

/** Whether anything was stored in an object past its meta-info: data or FOT entries. */
function writtenTo(m: ObjectMapping): boolean {
  const v = m.view;
  if (v.getUint32(META_OFFSET + MetaField.fotCount, true) !== 0) return true;
  const end = Math.min(v.getUint32(META_OFFSET + MetaField.fotOffset, true), m.bytes.length);
  for (let i = BASE_OFFSET; i < end; i++) if (m.bytes[i] !== 0) return true;
  return false;
}

// --- Finding lost structures (fsck's deep repair) ---------------------------

const TXLOG_MAGIC = 0x474c5854; // "TXLG", at the log object's base (see tx.ts)

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
  problem?: string;
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

/** Bindings of a directory object, read defensively (bounded; damaged entries skipped). */
function dirEntries(m: ObjectMapping): Array<{ name: string; id: ObjID; dir: boolean }> {
  const v = m.view;
  if (dirProblem(v, m.bytes.length) !== undefined) return [];
  const cap = v.getUint32(BASE_OFFSET + 8, true);
  const out: Array<{ name: string; id: ObjID; dir: boolean }> = [];
  for (let i = 0; i < cap; i++) {
    const at = BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY;
    if (v.getUint32(at + E_STATE, true) !== 1) continue;
    const kind = v.getUint16(at + E_KIND, true);
    const len = v.getUint16(at + E_LEN, true);
    if ((kind !== KIND_OBJECT && kind !== KIND_DIR) || len < 1 || len > MAX_NAME) continue;
    let name: string;
    try {
      name = fatal.decode(m.bytes.subarray(at + E_NAME, at + E_NAME + len));
    } catch {
      continue;
    }
    const id = readId(v, at + E_ID);
    if (isValidId(id)) out.push({ name, id, dir: kind === KIND_DIR });
  }
  return out;
}

/** Every path reachable from the current naming root, by object (bounded: each directory once). */
function namesByObject(kernel: Kernel): Map<ObjID, string[]> {
  const out = new Map<ObjID, string[]>();
  const root = findRootDir(kernel);
  if (root === null || !usable(kernel, root)) return out;
  out.set(root, ["/"]);
  const seen = new Set<ObjID>([root]);
  const queue: Array<[ObjID, string]> = [[root, ""]];
  while (queue.length > 0) {
    const [id, path] = queue.shift()!;
    let m: ObjectMapping;
    try {
      m = kernel.map(id, Prot.Read);
    } catch {
      continue;
    }
    for (const e of dirEntries(m)) {
      const full = `${path}/${e.name}`;
      const list = out.get(e.id);
      if (list) list.push(full);
      else out.set(e.id, [full]);
      if (e.dir && !seen.has(e.id) && usable(kernel, e.id)) {
        seen.add(e.id);
        queue.push([e.id, full]);
      }
    }
  }
  return out;
}

/**
 * Find the libtwz structures of an image by their bytes: the kernel root
 * object's naming record, directories, collections (B-tree maps — the
 * shell's `/kv` is a string/string one —, hash maps, vectors, queues) and
 * the transaction log, whether or not a name still reaches them. Reads only;
 * one pass over the object table, each structure checked with bounded walks.
 * fsck's deep repair uses it to find a lost naming root or kv store again.
 *
 * @param target A kernel (or a session: its kernel), booted on the image.
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
export function scanStructures(target: Kernel | { readonly kernel: Kernel }): FoundStructure[] {
  const kernel = kernelOf(target);
  const names = namesByObject(kernel);
  const rootObj = rootObjectOf(kernel).id;
  const found: FoundStructure[] = [];
  const childOf = new Map<ObjID, ObjID[]>();
  const entry = (id: ObjID, kind: FoundStructure["kind"]): FoundStructure => {
    const paths = names.get(id) ?? [];
    return { id, kind, named: paths.length > 0, paths };
  };
  const tags = new Map<number, FoundStructure["kind"]>([
    [HMAP, "hashmap"],
    [BTRE, "btree"],
    [VECT, "vector"],
    [QUEU, "queue"],
  ]);
  for (const stat of kernel.list()) {
    if (stat.lifetime !== "persistent") continue;
    const id = stat.id;
    let m: ObjectMapping;
    try {
      m = kernel.map(id, Prot.Read);
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
    const obj: Target = { id, mapping: m, writable: false, baseOffset: BASE_OFFSET };
    s.problem = collectionProblem(obj, kind, s);
    found.push(s);
  }
  for (const s of found) if (s.kind === "directory") s.parents = childOf.get(s.id) ?? [];
  return found;
}

/** Check a collection found by its tag; fills counts and codecs. */
function collectionProblem(
  obj: Target,
  kind: FoundStructure["kind"],
  s: FoundStructure,
): string | undefined {
  const v = obj.mapping.view;
  const size = obj.mapping.bytes.length;
  const header = v.getUint32(BASE_OFFSET, true);
  const magic = { hashmap: HMAP, btree: BTRE, vector: VECT, queue: QUEU }[
    kind as "hashmap" | "btree" | "vector" | "queue"
  ];
  if (v.getUint32(BASE_OFFSET + 4, true) !== magic) return "the base's collection tag is damaged";
  if (header < HEAP_AT + 128 || header + 64 > size || v.getUint32(header, true) !== magic) {
    return `no header at ${header}`;
  }
  const heap = Heap.headerProblem(obj, HEAP_AT, true);
  if (heap !== undefined) return `heap: ${heap}`;
  const k = codecOfKind(v.getUint8(header + 4)), val = codecOfKind(v.getUint8(header + 5));
  const keyed = kind === "hashmap" || kind === "btree";
  if (!val || (keyed && !k)) return "unknown codecs";
  s.codecs = keyed ? `${k!.name}/${val.name}` : val.name;
  try {
    switch (kind) {
      case "btree": {
        const p = BTreeMap.headerProblem(obj, header);
        if (p) return p;
        const map = BTreeMap.open(noHost, obj, k!, val);
        s.entries = map.size;
        return map.check().problem;
      }
      case "hashmap": {
        const p = HashMap.headerProblem(obj, header);
        if (p) return p;
        const map = HashMap.open(noHost, obj, k!, val);
        s.entries = map.size;
        return map.check().problem;
      }
      case "vector": {
        const p = Vector.headerProblem(obj, header);
        if (p) return p;
        const vec = Vector.open(noHost, obj, val);
        s.entries = vec.length;
        return vec.check().problem;
      }
      default: {
        const p = Queue.headerProblem(obj, header);
        if (p) return p;
        const q = Queue.open(noHost, obj, val);
        s.entries = q.size;
        return q.check().problem;
      }
    }
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The directory that most likely was the naming root: an intact directory
 * that no other directory binds, preferring one that binds `.txlog`, then
 * the one with the most entries.
 *
 * @param target A kernel (or a session), booted on the image.
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
export function findRootDirCandidate(target: Kernel | { readonly kernel: Kernel }): ObjID | null {
  const dirs = scanStructures(target).filter((s) =>
    s.kind === "directory" && s.problem === undefined && (s.parents ?? []).length === 0
  );
  const score = (s: FoundStructure) =>
    (s.sample?.includes(TXLOG_NAME.slice(1)) ? 1e9 : 0) + (s.entries ?? 0);
  dirs.sort((a, b) => score(b) - score(a));
  return dirs[0]?.id ?? null;
}

/**
 * Make the kernel root object's libtwz root record name directory `dirId`
 * (writing the root object's meta-info too when it is missing or damaged),
 * persisted; the record's magic is published last.
 *
 * @param target A kernel (or a session), booted on the image, writable.
 * @param dirId An intact directory object.
 * @returns One line saying what was done.
 * @throws {TwzError} `InvalidArgument` when `dirId` is not an intact directory.
 * @example Find the root directory again after its record was destroyed
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { findRootDirCandidate, reattachNamingRoot } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * twz.create({ name: "/notes", size: 4096 });
 * const kernel = twz.kernel;
 * kernel.map(kernel.rootObjectId()).view.setUint32(256, 0xbad, true); // damage the record
 * reattachNamingRoot(kernel, findRootDirCandidate(kernel)!);
 * console.log(Twz.fromKernel(kernel).naming.exists("/notes")); // true
 * twz.close();
 * ```
 */
export function reattachNamingRoot(
  target: Kernel | { readonly kernel: Kernel },
  dirId: ObjID,
): string {
  const kernel = kernelOf(target);
  const notDir = (why: string) =>
    new TwzError(
      ErrorCode.InvalidArgument,
      `Cannot make ${formatId(dirId)} the naming root: ${why}`,
    );
  if (!kernel.exists(dirId)) throw notDir("no such object");
  const d = kernel.map(dirId, Prot.Read);
  const why = dirProblem(d.view, d.bytes.length) ??
    (d.view.getUint32(META_OFFSET, true) !== OBJECT_MAGIC
      ? "no libtwz meta-info"
      : metaProblem(d.view, d.bytes.length)) ??
    (d.view.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Directory
      ? undefined
      : "not a directory object");
  if (why !== undefined) throw notDir(why);
  const rootId = kernel.rootObject();
  const m = kernel.map(rootId, Prot.ReadWrite);
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
  return `root: the kernel root object ${formatId(rootId)} names root directory ${
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
 * @param target A kernel (or a session), booted on the image, writable.
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
 * twz.kernel.map(root).view.setUint32(256 + 8, 0, true); // the capacity
 * console.log(repairDirectoryHeader(twz, root) !== undefined); // true
 * console.log(twz.naming.exists("/notes")); // true
 * twz.close();
 * ```
 */
export function repairDirectoryHeader(
  target: Kernel | { readonly kernel: Kernel },
  dirId: ObjID,
): string | undefined {
  const kernel = kernelOf(target);
  if (!kernel.exists(dirId)) {
    throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(dirId)}`);
  }
  const m = kernel.map(dirId, Prot.ReadWrite);
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

function sessionOf(target: Kernel | { readonly kernel: Kernel }): Twz {
  return target instanceof Twz ? target : Twz.fromKernel(kernelOf(target));
}

/**
 * Bind `id` as `/lost+found/<32 hex digits>` (making `/lost+found`): a
 * directory object as a directory entry, anything else as an object. Needs a
 * working naming root (re-attach it first). Kept when already bound there.
 *
 * @param target A session, or a kernel (a session is made on it).
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
export function bindLostFound(target: Kernel | { readonly kernel: Kernel }, id: ObjID): string {
  const path = `/lost+found/${formatId(id)}`;
  bindRecovered(target, path, id);
  return path;
}

/**
 * Bind `id` at `path` (missing parents made), a directory object as a
 * directory entry: e.g. re-attach a found kv store at `/kv`. Kept when
 * `path` already names `id`.
 *
 * @param target A session, or a kernel.
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
  target: Kernel | { readonly kernel: Kernel },
  path: string,
  id: ObjID,
): void {
  sessionOf(target).naming._attach(path, id);
}

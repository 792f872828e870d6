/**
 * What every libtwz structure checker shares: the report's types, the formats
 * the checkers read (kept private by their owners), the kernel probes that
 * never throw for damage, and {@linkcode CheckContext}, the state of one
 * {@linkcode checkObjects} run. Private to libtwz; the public entry is
 * `check.ts`.
 *
 * @module
 */
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  FotFlags,
  type KernelPort,
  type Mapping,
  META_OFFSET,
  MetaField,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  TwzError,
} from "@twz/kernel/abi";
import { readRootRecord } from "./_naming_format.ts";
import type { TxLogHost, TxLogState, TxTarget } from "./_tx.ts";
import type { Codec } from "./codec.ts";

// Formats kept by naming.ts (private there); the checker reads them too.
export const DIR_MAGIC = 0x52494454; // "TDIR"
export const DIR_HEADER = 64;
export const DIR_ENTRY = 128;
export const MAX_NAME = DIR_ENTRY - 24;
export const E_STATE = 0, E_KIND = 4, E_LEN = 6, E_ID = 8, E_NAME = 24;
export const KIND_OBJECT = 1, KIND_DIR = 2;
// Collection magics (word 1 of the base; word 0 names the header), and the heap's.
export const HMAP = 0x50414d48, BTRE = 0x45525442, VECT = 0x54434556, QUEU = 0x55455551;
export const HEAP_MAGIC = 0x50414548;
/** Where collections and the heap workload lay out their heap: after the base's root words. */
export const HEAP_AT = (BASE_OFFSET + 64 + 63) & ~63;
export const KNOWN_FOT_FLAGS = FotFlags.Read | FotFlags.Write | FotFlags.Exec | FotFlags.Name |
  FotFlags.Allocated | FotFlags.Valid;

/** The transaction log's magic: "TXLG", at the log object's base (see tx.ts). */
export const TXLOG_MAGIC = 0x474c5854;

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

/** An object as the collection checkers open it: read-only, its base at `BASE_OFFSET`. */
export type Target = TxTarget & { baseOffset: number };

export const fatal = new TextDecoder("utf-8", { fatal: true });

/** A host that only ever replays: the log object and objects mapped writable. */
export function replayHost(port: KernelPort, logId: ObjID): TxLogHost {
  let log: TxTarget | undefined;
  return {
    logObject: () =>
      log ??= { id: logId, mapping: port.map(logId, Prot.ReadWrite), writable: true, port },
    mapForReplay: (id) => port.exists(id) ? port.map(id, Prot.ReadWrite) : null,
  };
}

/** Whether `e` is the kernel's refusal of a quarantined object (or a damaged probe chain). */
export function isDamage(e: unknown): e is TwzError {
  return e instanceof TwzError && e.code === ErrorCode.ObjectDamaged;
}

/**
 * Whether object `id` exists: `"damaged"` when the kernel quarantined it (its
 * table slot, or one on its probe chain, fails its check), with the
 * kernel's message. Never throws for damage.
 */
export function presence(
  port: KernelPort,
  id: ObjID,
): { state: "yes" | "no" } | { state: "damaged"; message: string } {
  try {
    return { state: port.exists(id) ? "yes" : "no" };
  } catch (e) {
    if (isDamage(e)) return { state: "damaged", message: e.message };
    throw e;
  }
}

/** Whether `id` exists and is usable (a quarantined object is not). */
export function usable(port: KernelPort, id: ObjID): boolean {
  return presence(port, id).state === "yes";
}

/** The kernel root object's ID (0n: none), or the kernel's error when it is quarantined. */
export function rootObjectOf(port: KernelPort): { id: ObjID; damage?: string } {
  try {
    return { id: port.rootObjectId() };
  } catch (e) {
    if (isDamage(e)) return { id: 0n, damage: e.message };
    throw e;
  }
}

/** No collection check opens a transaction; this host says so if one tries. */
export const noHost: TxLogHost = {
  logObject() {
    throw new TypeError("checkObjects never writes through a collection");
  },
  mapForReplay() {
    throw new TypeError("checkObjects never writes through a collection");
  },
};

/** The kernel port of a target: the port itself, or a session's. */
export function portOf(target: KernelPort | { readonly port: KernelPort }): KernelPort {
  return "port" in target ? target.port : target;
}

/** The naming root directory the kernel root object's record names, or null (none, or damaged). */
export function findRootDir(port: KernelPort): ObjID | null {
  const root = rootObjectOf(port).id;
  if (root === 0n) return null;
  let rec;
  try {
    rec = readRootRecord(port.map(root, Prot.Read).view);
  } catch (e) {
    if (isDamage(e)) return null;
    throw e;
  }
  return rec.state === "valid" ? rec.dir : null;
}

/**
 * The state of one {@linkcode checkObjects} run, shared by the checkers: the
 * findings and counts so far, the read mappings (one per object), and what
 * earlier checkers learned (the kernel root object, the naming root, the
 * paths the naming walk bound, the transaction log). Its functions are
 * arrow properties, so a checker may destructure them.
 */
export class CheckContext {
  /** Corruption found so far. */
  readonly problems: CheckFinding[] = [];
  /** Warnings found so far. */
  readonly warnings: CheckFinding[] = [];
  /** Counts so far. */
  readonly checked: CheckCounts = {
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
  /** Read mappings by object (cleared after a replay). */
  readonly maps: Map<ObjID, Mapping> = new Map();
  /** The kernel root object (0n: none); set by the root checker. */
  rootObjId: ObjID = 0n;
  /** The kernel's message when the root object is quarantined. */
  rootObjDamage: string | undefined = undefined;
  /** The naming root directory the root record names (null: none or damaged). */
  rootDir: ObjID | null = null;
  /** Every bound path (`/` the root directory) to its object; set by the naming walk. */
  readonly paths: Map<string, ObjID> = new Map();
  /** Directories the naming walk reached. */
  readonly reached: Set<ObjID> = new Set();
  /** Objects some name binds. */
  readonly bound: Set<ObjID> = new Set();
  /** The transaction log (`/.txlog`), when a name reaches it. */
  txlogId: ObjID | undefined = undefined;

  /** @param port The port of the kernel booted on the image. */
  constructor(readonly port: KernelPort) {}

  /** Record a problem. */
  readonly problem = (id: ObjID | undefined, area: CheckArea, message: string): void => {
    this.problems.push({ ...(id !== undefined ? { id: formatId(id) } : {}), area, message });
  };
  /** Record a warning. */
  readonly warn = (id: ObjID | undefined, area: CheckArea, message: string): void => {
    this.warnings.push({ ...(id !== undefined ? { id: formatId(id) } : {}), area, message });
  };
  /** A read mapping of `id` (one per object), or null when it cannot be mapped. */
  readonly mapOf = (id: ObjID): Mapping | null => {
    const had = this.maps.get(id);
    if (had && had.bytes.length > 0) return had;
    let m: Mapping;
    try {
      m = this.port.map(id, Prot.Read);
    } catch {
      return null;
    }
    if (had) this.port.unmap(had);
    this.maps.set(id, m);
    return m;
  };
  /** The libtwz meta-info flags of a mapping, or null when it has no meta-info. */
  readonly metaFlags = (m: Mapping): number | null =>
    m.bytes.length >= BASE_OFFSET && m.view.getUint32(META_OFFSET, true) === OBJECT_MAGIC
      ? m.view.getUint16(META_OFFSET + MetaField.flags, true)
      : null;
}

/**
 * One collection's checker (B-tree map, hash map, vector, queue): how its
 * header is found at an object's base and checked, and a bounded walk.
 */
export interface CollectionChecker {
  /** Its area in findings (and its kind in the scan). */
  readonly area: "hashmap" | "btree" | "vector" | "queue";
  /** Its name in messages (`"hash map"`). */
  readonly what: string;
  /** The tag in word 1 of the base and at its header. */
  readonly magic: number;
  /** Whether it has a key codec (at header + 4; the value codec at + 5). */
  readonly keyed: boolean;
  /** Its counter in {@linkcode CheckCounts}. */
  readonly counter: "hashMaps" | "btrees" | "vectors" | "queues";
  /** The header's first problem, or `undefined`. */
  headerProblem(obj: Target, header: number): string | undefined;
  /**
   * Open it read-only and walk it: the first problem, or `undefined`.
   * `entries`, when given, gets its entry count (or length) before the walk.
   */
  walk(
    obj: Target,
    key: Codec<unknown> | undefined,
    value: Codec<unknown>,
    entries?: (n: number) => void,
  ): string | undefined;
}

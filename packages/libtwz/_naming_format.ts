/**
 * The naming service's on-image format: directory objects (header, fixed
 * 128-byte entries) and the root record in the kernel's root object that
 * names the root directory, with their checks and the repairs' writers.
 * Private to libtwz: `naming.ts` (the service) and the checkers
 * (`_check_*.ts`) use it; the public entry is `naming.ts`.
 *
 * @module
 */
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  isValidId,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  readId,
  TwzError,
  writeId,
} from "@twz/kernel/abi";
import { META_CHECKSUM, metaChecksum } from "./_meta.ts";

export const DIR_MAGIC = 0x52494454; // "TDIR"
export const ROOT_MAGIC = 0x52575a54; // "TZWR"
export const DIR_VERSION = 1;
export const HEADER = 64;
export const ENTRY = 128;
/** Longest path component, in UTF-8 bytes. */
export const MAX_NAME_BYTES = ENTRY - 24;
export const DIR_SIZE = 16384;

export const H_MAGIC = 0, H_VERSION = 4, H_CAPACITY = 8, H_GENERATION = 12;
export const E_STATE = 0, E_KIND = 4, E_LEN = 6, E_ID = 8, E_NAME = 24;
export const BOUND = 1;
export const KIND_OBJECT = 1, KIND_DIR = 2;
/** Root record, at the base of the kernel's root object. */
export const R_MAGIC = 0, R_VERSION = 4, R_SUM = 8, R_NAMING = 16;
/** Size of the root record. */
export const ROOT_RECORD = 64;
/**
 * Root record versions: 1 has no checksum; 2 (written since) keeps
 * {@linkcode rootRecordSum} at +8 (bytes that were zero in version 1, which
 * is still read).
 */
export const ROOT_VERSION = 2;

/** The checksum of a root record: magic, version and the root directory's ID. Never 0. */
export function rootRecordSum(v: DataView, base: number): number {
  let h = 0x811c9dc5;
  for (const at of [R_MAGIC, R_VERSION, R_NAMING, R_NAMING + 4, R_NAMING + 8, R_NAMING + 12]) {
    h = Math.imul(h ^ v.getUint32(base + at, true), 0x01000193);
    h ^= h >>> 15;
  }
  return (h >>> 0) || 1;
}

/** What the kernel root object's libtwz root record holds (see {@linkcode readRootRecord}). */
export type RootRecord =
  | { state: "blank" }
  | { state: "valid"; version: number; dir: ObjID }
  | { state: "damaged"; problem: string; dir?: ObjID | undefined };

/**
 * Read the libtwz root record at the base of the kernel's root object
 * (read only; constant time). `blank`: never used (all zero). `valid`: magic,
 * version and (version 2) checksum check out; `dir` is the naming root
 * directory's ID (not yet checked to exist). `damaged`: anything else,
 * with `dir` when the record still names a plausible directory ID.
 *
 * @param v The root object's view.
 * @returns What the record holds.
 */
export function readRootRecord(v: DataView): RootRecord {
  if (v.byteLength < BASE_OFFSET + ROOT_RECORD) {
    return { state: "damaged", problem: `the root object is only ${v.byteLength} bytes` };
  }
  let blank = true;
  for (let i = 0; i < ROOT_RECORD && blank; i += 4) {
    if (v.getUint32(BASE_OFFSET + i, true) !== 0) blank = false;
  }
  if (blank) return { state: "blank" };
  const magic = v.getUint32(BASE_OFFSET + R_MAGIC, true);
  const version = v.getUint32(BASE_OFFSET + R_VERSION, true);
  const id = readId(v, BASE_OFFSET + R_NAMING);
  const dir = isValidId(id) ? id : undefined;
  const bad = (problem: string): RootRecord => ({ state: "damaged", problem, dir });
  if (magic !== ROOT_MAGIC) return bad(`no root record magic (0x${magic.toString(16)})`);
  if (version !== 1 && version !== ROOT_VERSION) {
    return bad(`unknown root record version ${version}`);
  }
  if (version === ROOT_VERSION) {
    const sum = v.getUint32(BASE_OFFSET + R_SUM, true);
    if (sum !== rootRecordSum(v, BASE_OFFSET)) {
      return bad("the root record checksum does not match");
    }
  }
  if (dir === undefined) return bad(`the root record names an invalid ID ${formatId(id)}`);
  return { state: "valid", version, dir };
}

/**
 * Write a root record naming directory `dir` at the base of the root
 * object (version 2, with its checksum): the magic is cleared first and
 * published last, each step persisted, so a crash leaves either record or
 * none — never a record naming half an ID.
 *
 * @param obj The kernel's root object, writable.
 * @param dir The naming root directory's ID.
 */
export function writeRootRecord(obj: PersistentBytes, dir: ObjID): void {
  const v = obj.view;
  v.setUint32(BASE_OFFSET + R_MAGIC, 0, true);
  obj.persist(BASE_OFFSET + R_MAGIC, 4);
  obj.bytes.fill(0, BASE_OFFSET + 4, BASE_OFFSET + ROOT_RECORD);
  writeId(v, BASE_OFFSET + R_NAMING, dir);
  v.setUint32(BASE_OFFSET + R_VERSION, ROOT_VERSION, true);
  // The checksum covers the magic about to be published.
  v.setUint32(BASE_OFFSET + R_MAGIC, ROOT_MAGIC, true);
  const sum = rootRecordSum(v, BASE_OFFSET);
  v.setUint32(BASE_OFFSET + R_MAGIC, 0, true);
  v.setUint32(BASE_OFFSET + R_SUM, sum, true);
  obj.persist(BASE_OFFSET, ROOT_RECORD);
  v.setUint32(BASE_OFFSET + R_MAGIC, ROOT_MAGIC, true);
  obj.persist(BASE_OFFSET + R_MAGIC, 4);
}

/** Bytes that can be made durable: an object handle or a kernel mapping. */
export interface PersistentBytes {
  /** A view of the object's bytes. */
  readonly view: DataView;
  /** The object's bytes (its length is the object's size). */
  readonly bytes: Uint8Array;
  /**
   * Make a range durable.
   *
   * @param offset Where the range starts, from the object's start.
   * @param length Its length in bytes.
   */
  persist(offset: number, length: number): void;
}

/**
 * Give the kernel's root object its libtwz meta-info (flags `Root`, no FOT),
 * checksummed, the magic published last. Used on first use and by repair.
 *
 * @param obj The root object, writable.
 */
export function writeRootMeta(obj: PersistentBytes): void {
  const v = obj.view;
  const size = obj.bytes.length;
  obj.bytes.fill(0, META_OFFSET, META_OFFSET + 128);
  v.setUint16(META_OFFSET + MetaField.version, 1, true);
  v.setUint16(META_OFFSET + MetaField.flags, MetaFlags.Root, true);
  v.setUint32(META_OFFSET + MetaField.createdSize, size, true);
  v.setUint32(META_OFFSET + MetaField.fotOffset, size, true);
  v.setUint32(META_OFFSET + MetaField.namesOffset, size, true);
  v.setUint32(META_OFFSET + MetaField.magic, OBJECT_MAGIC, true);
  v.setUint32(META_OFFSET + META_CHECKSUM, metaChecksum(v), true);
  v.setUint32(META_OFFSET + MetaField.magic, 0, true);
  obj.persist(META_OFFSET, 128);
  v.setUint32(META_OFFSET + MetaField.magic, OBJECT_MAGIC, true);
  obj.persist(META_OFFSET, 4);
}

/**
 * What is wrong with a directory object's header and geometry (constant
 * time), or `undefined`: magic, version, and a capacity its bytes hold.
 *
 * @param v The directory object's view.
 * @param size Its size.
 * @returns The first problem, or `undefined`.
 */
export function dirProblem(v: DataView, size: number): string | undefined {
  if (size < BASE_OFFSET + HEADER) return `the object is only ${size} bytes`;
  const magic = v.getUint32(BASE_OFFSET + H_MAGIC, true);
  if (magic !== DIR_MAGIC) return `no directory header magic (0x${magic.toString(16)})`;
  const version = v.getUint32(BASE_OFFSET + H_VERSION, true);
  if (version !== DIR_VERSION) return `unknown directory version ${version}`;
  const cap = v.getUint32(BASE_OFFSET + H_CAPACITY, true);
  if (!plausibleCapacity(cap, size)) {
    return `capacity ${cap} entries, but its ${size} bytes make ${dirCapacityOf(size)}`;
  }
  return undefined;
}

/**
 * The capacity a directory object of `size` bytes has: libtwz writes no
 * other (a new directory, and every grow, publish exactly this).
 *
 * @param size The directory object's size in bytes.
 * @returns Its entries.
 */
export function dirCapacityOf(size: number): number {
  return Math.max(0, Math.floor((size - BASE_OFFSET - HEADER) / ENTRY));
}

/**
 * Whether `cap` is a capacity a directory of `size` bytes can hold: the one
 * its size makes, or — a grow doubles the object and then publishes the new
 * capacity, so a crash in between leaves the old one — the one a size it
 * had before makes (`size` halved, never below a new directory's size).
 * Any other value is damage (constant time: at most 32 halvings).
 */
export function plausibleCapacity(cap: number, size: number): boolean {
  if (cap === dirCapacityOf(size)) return true;
  for (let s = size; s % 2 === 0 && s / 2 >= DIR_SIZE; s /= 2) {
    if (cap === dirCapacityOf(s / 2)) return true;
  }
  return false;
}

/**
 * Rewrite a damaged directory header whose every field is derivable: magic,
 * version and the capacity the object's size makes; the generation is kept
 * and bumped by one (so caches of resolutions are dropped). Persisted, the
 * magic last. Entries are not touched. For fsck's deep repair: the caller
 * has checked that the object is a libtwz directory object.
 *
 * @param obj The directory object, writable.
 * @returns What was wrong (the header's first problem), or `undefined` when
 * the header checks out and nothing was written.
 */
export function rewriteDirHeader(obj: PersistentBytes): string | undefined {
  const v = obj.view;
  const size = obj.bytes.length;
  const problem = dirProblem(v, size);
  if (problem === undefined) return undefined;
  if (size < BASE_OFFSET + HEADER + ENTRY) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `A directory header cannot be written into ${size} bytes`,
    );
  }
  const generation = v.getUint32(BASE_OFFSET + H_GENERATION, true);
  v.setUint32(BASE_OFFSET + H_MAGIC, 0, true);
  obj.persist(BASE_OFFSET + H_MAGIC, 4);
  v.setUint32(BASE_OFFSET + H_VERSION, DIR_VERSION, true);
  v.setUint32(BASE_OFFSET + H_CAPACITY, dirCapacityOf(size), true);
  v.setUint32(BASE_OFFSET + H_GENERATION, (generation + 1) >>> 0, true);
  obj.persist(BASE_OFFSET, HEADER);
  v.setUint32(BASE_OFFSET + H_MAGIC, DIR_MAGIC, true);
  obj.persist(BASE_OFFSET + H_MAGIC, 4);
  return problem;
}

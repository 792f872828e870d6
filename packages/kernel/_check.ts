// Checks of format 2 (see docs/ARCHITECTURE.md, "On-NVM layout"): every table
// slot and every 64-byte line of the block bitmap carries a u32 check, so the
// kernel can distrust its metadata and verify each piece the first time it
// uses it.
//
// The check is a 32-bit non-linear hash (murmur3-style multiply-rotate mixing:
// unlike CRC-32 it is not linear, so a slot that ends in a stale check does
// not check by accident), seeded with a per-image seed derived from the store
// ID and finished with the slot's index (or the line's): a slot copied to
// another index, or a slot of another image, fails. A check never has the
// value 0, so zeroed metadata (slot or bitmap line plus check) never checks.
import { BLOCK, type Geometry, SLOT } from "./_layout.ts";
import { formatId, isValidId, type ObjID, Prot, readId } from "./abi/mod.ts";

/**
 * Where each field of a table slot is, in bytes from the slot's start: the
 * one table of slot field positions (the table, its checks and fsck read
 * slots through it; the layout is described in _table.ts).
 */
export const SlotField = {
  /** Object: its ID; tie edge: the parent's ID (16 bytes). */
  id: 0,
  /** The slot's state (u8): {@linkcode EMPTY}, {@linkcode OBJECT}, {@linkcode TOMB}, {@linkcode EDGE}. */
  state: 16,
  /** Reserved flags (u8), 0. */
  flags: 17,
  /** Default protections (u16). */
  prot: 18,
  /** First data block (u32). */
  start: 20,
  /** Data blocks reserved (u32). */
  blocks: 24,
  /** Size in bytes (u32). */
  size: 28,
  /** Object: its key ID; tie edge: the dependent's ID (16 bytes). */
  key: 32,
  /** Object: its number of tie edges; tie edge: its index (u32). */
  ties: 48,
  /** The slot's check (u32). */
  check: 52,
  /** Creation time, ms since the epoch (f64). */
  created: 56,
} as const;

/** Slot state (byte `SlotField.state` of a slot): empty, never used (probing stops here). */
export const EMPTY = 0;
/** Slot state: an object record. */
export const OBJECT = 1;
/** Slot state: a tombstone (freed; probing goes on). */
export const TOMB = 2;
/** Slot state: a tie edge. */
export const EDGE = 3;

/** Where the check of a slot is (u32, little-endian). */
export const SLOT_CHECK_OFFSET: number = SlotField.check;
/** Bytes of bitmap one line check covers: 16 words, 512 blocks. */
export const BITMAP_LINE_BYTES = 64;
/** Data blocks one bitmap line covers. */
export const BLOCKS_PER_LINE = BITMAP_LINE_BYTES * 8;
/**
 * The most tie edges an object slot may record: each edge takes a table slot,
 * so more than the table holds cannot exist (and a damaged huge count is
 * refused at once instead of walked).
 */
export const tieLimit = (g: Geometry): number => g.tableSlots;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SLOT_SALT = 0x534c4f54; // "SLOT"
const LINE_SALT = 0x4c494e45; // "LINE"

function mix(h: number, w: number): number {
  let k = Math.imul(w, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number, length: number): number {
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  h >>>= 0;
  return h === 0 ? 1 : h; // never 0: zeroed metadata never checks
}

/** The per-image seed of every check, derived from the 16-byte store ID. */
export function imageSeed(storeId: Uint8Array): number {
  const v = new DataView(storeId.buffer, storeId.byteOffset, 16);
  let h = 0x54575a32; // "TWZ2"
  for (let i = 0; i < 16; i += 4) h = mix(h, v.getUint32(i, true));
  return finish(h, 16);
}

/**
 * The check of the slot at `offset` of `view` (its bytes other than the check
 * itself, i.e. [0, 52) and [56, 64)), for slot `index` of the image with `seed`.
 */
export function slotCheck(view: DataView, offset: number, index: number, seed: number): number {
  let h = seed ^ SLOT_SALT;
  for (let i = 0; i < 64; i += 4) {
    if (i !== SLOT_CHECK_OFFSET) h = mix(h, view.getUint32(offset + i, true));
  }
  return finish(mix(h, index), SLOT);
}

/** Whether the slot at `offset` of `view` holds a valid check for slot `index`. */
export function slotSealed(view: DataView, offset: number, index: number, seed: number): boolean {
  return view.getUint32(offset + SLOT_CHECK_OFFSET, true) === slotCheck(view, offset, index, seed);
}

const u32le = (b: Uint8Array, o: number) =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;

function putU32le(b: Uint8Array, o: number, x: number): void {
  b[o] = x & 0xff;
  b[o + 1] = (x >>> 8) & 0xff;
  b[o + 2] = (x >>> 16) & 0xff;
  b[o + 3] = x >>> 24;
}

/** Write slot `index`'s check into the 64 bytes of `bytes` (in place); returns `bytes`. */
export function sealSlot(bytes: Uint8Array, index: number, seed: number): Uint8Array {
  let h = seed ^ SLOT_SALT;
  for (let i = 0; i < 64; i += 4) if (i !== SLOT_CHECK_OFFSET) h = mix(h, u32le(bytes, i));
  putU32le(bytes, SLOT_CHECK_OFFSET, finish(mix(h, index), SLOT));
  return bytes;
}

// The hash states after the 15 words of an empty slot and of a tombstone,
// for the last seed asked about (one image at a time, as a rule).
let cachedSeed: number | undefined;
let emptyState = 0;
let tombState = 0;

function prefixStates(seed: number): void {
  if (cachedSeed === seed) return;
  let e = seed ^ SLOT_SALT, t = e;
  for (let i = 0; i < 64; i += 4) {
    if (i === SLOT_CHECK_OFFSET) continue;
    e = mix(e, 0);
    t = mix(t, i === SlotField.state ? TOMB : 0);
  }
  cachedSeed = seed;
  emptyState = e;
  tombState = t;
}

/** A valid empty slot for index `index` (state 0, zeros, and its check). */
export function emptySlot(index: number, seed: number): Uint8Array {
  prefixStates(seed);
  const b = new Uint8Array(SLOT);
  putU32le(b, SLOT_CHECK_OFFSET, finish(mix(emptyState, index), SLOT));
  return b;
}

/** A valid tombstone for index `index` (state 2, zeros, and its check). */
export function tombSlot(index: number, seed: number): Uint8Array {
  prefixStates(seed);
  const b = new Uint8Array(SLOT);
  b[SlotField.state] = TOMB;
  putU32le(b, SLOT_CHECK_OFFSET, finish(mix(tombState, index), SLOT));
  return b;
}

/** Write valid empty slots over the whole table of `g` in `bytes` (format). */
export function writeEmptyTable(bytes: Uint8Array, g: Geometry): void {
  bytes.fill(0, g.tableOffset, g.tableOffset + g.tableSlots * SLOT);
  // Every empty slot hashes the same 15 zero words: mix them once.
  prefixStates(g.seed);
  const h = emptyState;
  for (let i = 0; i < g.tableSlots; i++) {
    putU32le(bytes, g.tableOffset + i * SLOT + SLOT_CHECK_OFFSET, finish(mix(h, i), SLOT));
  }
}

/** Bitmap lines of an image with `dataBlocks` blocks. */
export function bitmapLines(dataBlocks: number): number {
  return Math.ceil(dataBlocks / BLOCKS_PER_LINE);
}

/** Bytes of the bitmap itself (one bit per block, whole 32-bit words). */
export function bitmapBytes(dataBlocks: number): number {
  return Math.ceil(dataBlocks / 32) * 4;
}

/** Bytes of the bitmap-check area (one u32 per line). */
export function bitmapCheckBytes(dataBlocks: number): number {
  return bitmapLines(dataBlocks) * 4;
}

/**
 * The check of bitmap line `line` of `g`, over the line's words as `word`
 * reads them (by default from `view`; the allocator passes its transaction's
 * view). The last line covers only the bitmap's remaining words.
 */
export function lineCheck(
  g: Geometry,
  line: number,
  word: (offset: number) => number,
): number {
  const words = Math.ceil(g.dataBlocks / 32);
  const first = line * 16;
  const n = Math.min(16, words - first);
  let h = g.seed ^ LINE_SALT;
  for (let w = 0; w < n; w++) h = mix(h, word(g.bitmapOffset + (first + w) * 4));
  return finish(mix(h, line), n * 4);
}

/** Where the check of bitmap line `line` is kept. */
export function lineCheckOffset(g: Geometry, line: number): number {
  return g.bitmapCheckOffset + line * 4;
}

/** Whether bitmap line `line` of `g` in `view` holds its check. */
export function lineSealed(view: DataView, g: Geometry, line: number): boolean {
  return view.getUint32(lineCheckOffset(g, line), true) ===
    lineCheck(g, line, (o) => view.getUint32(o, true));
}

/** Write the check of every bitmap line of `g` in `bytes` (format, upgrade, fsck). */
export function sealBitmap(bytes: Uint8Array, g: Geometry): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lines = bitmapLines(g.dataBlocks);
  for (let l = 0; l < lines; l++) {
    v.setUint32(lineCheckOffset(g, l), lineCheck(g, l, (o) => v.getUint32(o, true)), true);
  }
}

/** The fields of an object slot the bounds checks need. */
export interface SlotFields {
  state: number;
  prot: number;
  start: number;
  blocks: number;
  size: number;
  ties: number;
  flags: number;
}

/**
 * What is wrong with the values of an object slot of `g` (bounds only, not
 * the check), or `undefined`: the extent lies inside the data area, the size
 * fits the reserved blocks and the blocks are exactly those the size needs (as
 * the kernel makes them), the tie count is one the table can hold, the
 * protections are rwx bits.
 */
export function objectProblem(s: SlotFields, g: Geometry): string | undefined {
  if (s.blocks < 1) return `it has ${s.blocks} reserved blocks`;
  if (s.size < 1) return `its size is ${s.size}`;
  if (s.start + s.blocks > g.dataBlocks) {
    return `its blocks [${s.start}, ${
      s.start + s.blocks
    }) lie beyond the ${g.dataBlocks} data blocks`;
  }
  if (s.size > s.blocks * BLOCK) {
    return `size ${s.size} exceeds its ${s.blocks} reserved blocks`;
  }
  if (s.blocks !== Math.ceil(s.size / BLOCK)) {
    return `${s.blocks} reserved blocks do not match its size ${s.size}`;
  }
  if (s.ties > tieLimit(g)) {
    return `tie count ${s.ties} exceeds the ${tieLimit(g)} table slots`;
  }
  if (s.prot > Prot.All) return `protections ${s.prot} are not rwx bits`;
  if (s.flags !== 0) return `unknown flags ${s.flags}`;
  return undefined;
}

/** The fields of slot `index` of `g` in `view`. */
export function slotFields(view: DataView, g: Geometry, index: number): SlotFields {
  const off = g.tableOffset + index * SLOT;
  const F = SlotField;
  return {
    state: view.getUint8(off + F.state),
    flags: view.getUint8(off + F.flags),
    prot: view.getUint16(off + F.prot, true),
    start: view.getUint32(off + F.start, true),
    blocks: view.getUint32(off + F.blocks, true),
    size: view.getUint32(off + F.size, true),
    ties: view.getUint32(off + F.ties, true),
  };
}

/**
 * What is wrong with slot `index` of `g` in `view`, or `undefined` when it is
 * sound: its check, its state, and for an object or tie edge its values. When
 * both the check and a value are wrong the value is named (more telling).
 */
export function slotProblem(view: DataView, g: Geometry, index: number): string | undefined {
  const off = g.tableOffset + index * SLOT;
  const state = view.getUint8(off + SlotField.state);
  let bad: string | undefined;
  if (state === OBJECT) {
    bad = objectProblem(slotFields(view, g, index), g);
    if (!bad && !isValidId(readId(view, off + SlotField.id))) bad = "its object ID is invalid";
  } else if (state === EDGE) {
    const k = view.getUint32(off + SlotField.ties, true);
    if (k >= tieLimit(g)) bad = `tie edge index ${k} exceeds the table`;
    else if (
      !isValidId(readId(view, off + SlotField.id)) || !isValidId(readId(view, off + SlotField.key))
    ) {
      bad = "its tie edge names an invalid ID";
    }
  } else if (state !== EMPTY && state !== TOMB) {
    bad = `unknown state ${state}`;
  }
  if (bad) return bad;
  if (!slotSealed(view, off, index, g.seed)) return "its checksum does not match";
  return undefined;
}

/**
 * The region offset of the table slot in state `state` whose ID field holds
 * `id`, found by scanning the table (for tools and tests that damage or
 * inspect one object's record; the kernel itself probes by hash).
 *
 * @param bytes The image (or its region bytes).
 * @param g The image's geometry.
 * @param id The object ID (for a tie edge: the parent's).
 * @param state The slot state to look for. @default {OBJECT}
 * @returns The slot's offset in `bytes`.
 * @throws {RangeError} When no slot in that state holds `id`.
 */
export function findSlotOffset(
  bytes: Uint8Array,
  g: Geometry,
  id: ObjID,
  state: number = OBJECT,
): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < g.tableSlots; i++) {
    const off = g.tableOffset + i * SLOT;
    if (bytes[off + SlotField.state] === state && readId(view, off + SlotField.id) === id) {
      return off;
    }
  }
  throw new RangeError(`no slot for ${formatId(id)}`);
}

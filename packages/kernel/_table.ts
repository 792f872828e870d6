// The object table: an open-addressing hash table of 64-byte slots on NVM,
// read in place (never loaded into DRAM), so boot does not visit objects.
//
// Slot layout (the positions are SlotField of _check.ts):
//   0  id (16 bytes)          object: its ID; edge: the parent's ID
//   16 state u8               0 empty, 1 object, 2 tombstone, 3 tie edge
//   17 flags u8               reserved
//   18 prot u16               default protections
//   20 start u32              first data block
//   24 blocks u32             data blocks reserved
//   28 size u32               size in bytes
//   32 key (16 bytes)         object: key ID; edge: the dependent's ID
//   48 ties u32               object: number of tie edges; edge: its index
//   52 check u32             over the other 60 bytes, the slot index and the
//                            image's seed (see _check.ts); never 0
//   56 created f64            ms since the epoch
//
// Format 2: every slot carries its check, empty ones too (format writes the
// whole table as sealed empty slots), so a zeroed slot or table fails.
//
// A tie "child is deleted when parent is" is an edge slot keyed by (parent, k)
// for k < parent.ties. Edges of a dependent deleted on its own stay behind and
// are skipped (and freed) when the parent goes.
import { ErrorCode, formatId, type ObjID, readId, TwzError, writeId } from "./abi/mod.ts";
import type { MetaTx } from "./_log.ts";
import { type Geometry, SLOT } from "./_layout.ts";
import {
  EDGE,
  EMPTY,
  emptySlot,
  OBJECT,
  sealSlot,
  SLOT_CHECK_OFFSET,
  SlotField,
  slotProblem,
  TOMB,
  tombSlot,
} from "./_check.ts";

export { EDGE, EMPTY, OBJECT, SlotField, TOMB };

// The field positions the probes use, from the one table (SlotField).
const STATE = SlotField.state;
const TIES = SlotField.ties;
const KEY = SlotField.key;

/** What {@linkcode Table.state} returns for a slot that fails its check. */
export const DAMAGED = 0xff;

/** The decoded contents of an object slot. */
export interface ObjectSlot {
  /** The object's ID. */
  id: ObjID;
  /** Default protections (`Prot` bits). */
  prot: number;
  /** First data block. */
  start: number;
  /** Data blocks reserved. */
  blocks: number;
  /** Size in bytes. */
  size: number;
  /** Key ID (0n: none). */
  keyId: ObjID;
  /** Number of tie edges (dependents). */
  ties: number;
  /** Creation time, ms since the epoch. */
  created: number;
}

/** A table slot that fails its check or its bounds (see {@linkcode Table.damaged}). */
export interface DamagedSlot {
  /** The slot index. */
  slot: number;
  /** The object ID the slot names, when its state byte says object (untrusted). */
  id?: ObjID | undefined;
  /** What is wrong. */
  reason: string;
}

const M32 = 0xffffffffn;

function idWords(id: ObjID): [number, number, number, number] {
  return [
    Number(id & M32),
    Number((id >> 32n) & M32),
    Number((id >> 64n) & M32),
    Number((id >> 96n) & M32),
  ];
}

function edgeHash(parentLow: number, k: number): number {
  return (parentLow ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0;
}

/**
 * Encode an object slot, without its check: {@linkcode Table.put} (or
 * `sealSlot` of `_check.ts`) seals it for the index it goes to.
 */
export function encodeObject(s: ObjectSlot): Uint8Array {
  const bytes = new Uint8Array(SLOT);
  const v = new DataView(bytes.buffer);
  const F = SlotField;
  writeId(v, F.id, s.id);
  bytes[F.state] = OBJECT;
  v.setUint16(F.prot, s.prot, true);
  v.setUint32(F.start, s.start, true);
  v.setUint32(F.blocks, s.blocks, true);
  v.setUint32(F.size, s.size, true);
  writeId(v, F.key, s.keyId);
  v.setUint32(F.ties, s.ties, true);
  v.setFloat64(F.created, s.created, true);
  return bytes;
}

/** Encode a tie edge slot, without its check (see {@linkcode encodeObject}). */
export function encodeEdge(parent: ObjID, k: number, child: ObjID): Uint8Array {
  const bytes = new Uint8Array(SLOT);
  const v = new DataView(bytes.buffer);
  writeId(v, SlotField.id, parent);
  bytes[STATE] = EDGE;
  writeId(v, KEY, child);
  v.setUint32(TIES, k, true);
  return bytes;
}

/** Older tombstones one release may empty besides its own slots. */
export const RELEASE_EXTRA = 16;

/** ObjectDamaged for object `id` in slot `slot`. */
export function objectDamaged(id: ObjID, slot: number, reason: string): TwzError {
  return new TwzError(
    ErrorCode.ObjectDamaged,
    `Object ${formatId(id)} is damaged (table slot ${slot}: ${reason}); run \`twz fsck\``,
  );
}

/**
 * Table access over the region's bytes; writes go through a MetaTx. Every
 * slot is verified (check and bounds) the first time it is read in a boot,
 * and the result kept in a DRAM byte per slot; slots the kernel writes are
 * known good once committed ({@linkcode Table.committed}).
 */
export class Table {
  readonly mask: number;
  readonly offset: number;
  readonly slots: number;
  readonly seed: number;
  /** Per slot: 0 not yet verified, 1 sound, 2 damaged. */
  readonly verified: Uint8Array;
  constructor(
    readonly view: DataView,
    readonly geometry: Geometry,
  ) {
    this.offset = geometry.tableOffset;
    this.slots = geometry.tableSlots;
    this.seed = geometry.seed;
    this.mask = this.slots - 1;
    this.verified = new Uint8Array(this.slots);
  }

  slotOffset(i: number): number {
    return this.offset + i * SLOT;
  }

  /** What is wrong with slot `i` (verified once per boot), or `undefined`. */
  problem(i: number): string | undefined {
    const known = this.verified[i];
    if (known === 1) return undefined;
    const bad = slotProblem(this.view, this.geometry, i);
    this.verified[i] = bad ? 2 : 1;
    return bad;
  }

  /** Whether slot `i` is sound (verified once per boot). */
  sound(i: number): boolean {
    return this.verified[i] === 1 || (this.verified[i] === 0 && this.problem(i) === undefined);
  }

  /** Mark the table slots `tx` wrote as sound (after it committed). */
  committed(tx: MetaTx): void {
    const end = this.offset + this.slots * SLOT;
    for (const off of tx.blobs.keys()) {
      if (off >= this.offset && off < end) this.verified[(off - this.offset) / SLOT] = 1;
    }
  }

  /** Forget what was verified (after the region changed under the kernel). */
  forget(): void {
    this.verified.fill(0);
  }

  /** Seal `bytes` for slot `i` and write it in `tx`. */
  put(tx: MetaTx, i: number, bytes: Uint8Array): void {
    tx.put(this.slotOffset(i), sealSlot(bytes, i, this.seed));
  }

  /**
   * The state of slot `i`, seeing `tx`'s pending writes: `DAMAGED` when the
   * slot fails its check (it is never reused, so fsck finds it as it was).
   */
  state(i: number, tx?: MetaTx): number {
    const off = this.slotOffset(i);
    const pending = tx?.blobs.get(off);
    if (pending) return pending[STATE]!;
    return this.sound(i) ? this.view.getUint8(off + STATE) : DAMAGED;
  }

  #matches(off: number, w: number[]): boolean {
    const v = this.view;
    return v.getUint32(off, true) === w[0] && v.getUint32(off + 4, true) === w[1] &&
      v.getUint32(off + 8, true) === w[2] && v.getUint32(off + 12, true) === w[3];
  }

  /**
   * Find object `id` without throwing: its slot (-1 when absent), and when
   * it is not found soundly, the damaged slot that may have held it.
   */
  lookupObject(id: ObjID): { slot: number; damaged?: DamagedSlot } {
    const w = idWords(id);
    let damaged: DamagedSlot | undefined;
    for (let n = 0, i = w[0] & this.mask; n < this.slots; n++, i = (i + 1) & this.mask) {
      const off = this.slotOffset(i);
      if (!this.sound(i)) {
        // The slot cannot be trusted: not even its state. Probing on is safe
        // (a sound slot further on holding `id` is that object), but if the
        // chain ends without it, this slot may have been it.
        const mine = this.#matches(off, w) && this.view.getUint8(off + STATE) !== EDGE;
        if (!damaged || (mine && damaged.id === undefined)) {
          damaged = { slot: i, id: mine ? id : undefined, reason: this.problem(i)! };
        }
        continue;
      }
      const st = this.view.getUint8(off + STATE);
      if (st === EMPTY) break;
      if (st === OBJECT && this.#matches(off, w)) return { slot: i };
    }
    return damaged ? { slot: -1, damaged } : { slot: -1 };
  }

  /**
   * The slot holding object `id` (verified sound), or -1 when it does not exist.
   *
   * @throws {TwzError} `ObjectDamaged` when the object's slot, or a slot on
   * its probe chain whose ID cannot be trusted, is damaged.
   */
  findObject(id: ObjID): number {
    const w = idWords(id);
    const verified = this.verified;
    for (let n = 0, i = w[0] & this.mask; n < this.slots; n++, i = (i + 1) & this.mask) {
      if (verified[i] !== 1 && !this.sound(i)) {
        // A damaged slot on the chain: the careful (allocating) path.
        const { slot, damaged } = this.lookupObject(id);
        if (slot >= 0 || !damaged) return slot;
        throw this.damagedError(id, damaged);
      }
      const off = this.slotOffset(i);
      const st = this.view.getUint8(off + STATE);
      if (st === EMPTY) return -1;
      if (st === OBJECT && this.#matches(off, w)) return i;
    }
    return -1;
  }

  /** The ObjectDamaged error for a lookup of `id` that met `d`. */
  damagedError(id: ObjID, d: DamagedSlot): TwzError {
    if (d.id !== undefined) return objectDamaged(id, d.slot, d.reason);
    return new TwzError(
      ErrorCode.ObjectDamaged,
      `Object ${
        formatId(id)
      } cannot be looked up: table slot ${d.slot} on its probe chain is damaged (${d.reason}); run \`twz fsck\``,
    );
  }

  /**
   * The slot holding edge `k` of `parent`, or -1.
   *
   * @throws {TwzError} `ObjectDamaged` (naming the parent) when the edge is
   * not found and a damaged slot lies on its probe chain.
   */
  findEdge(parent: ObjID, k: number): number {
    const w = idWords(parent);
    let damaged = -1;
    for (
      let n = 0, i = edgeHash(w[0], k) & this.mask;
      n < this.slots;
      n++, i = (i + 1) & this.mask
    ) {
      const off = this.slotOffset(i);
      if (!this.sound(i)) {
        if (damaged < 0) damaged = i;
        continue;
      }
      const st = this.view.getUint8(off + STATE);
      if (st === EMPTY) break;
      if (st === EDGE && this.view.getUint32(off + TIES, true) === k && this.#matches(off, w)) {
        return i;
      }
    }
    if (damaged >= 0) {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `Object ${
          formatId(parent)
        } is damaged (tie edge ${k}: table slot ${damaged} on its probe chain is damaged: ${
          this.problem(damaged)
        }); run \`twz fsck\``,
      );
    }
    return -1;
  }

  /** The first slot probed for object `id`. */
  homeOfObject(id: ObjID): number {
    return Number(id & M32) & this.mask;
  }

  /** The first slot probed for edge `k` of `parent`. */
  homeOfEdge(parent: ObjID, k: number): number {
    return edgeHash(Number(parent & M32), k) & this.mask;
  }

  /** A free slot (sound empty or tombstone, not claimed by `tx`) for an object key. */
  freeSlotForObject(id: ObjID, tx: MetaTx): number {
    return this.#freeFrom(this.homeOfObject(id), tx);
  }

  /** A free slot for edge `k` of `parent`. */
  freeSlotForEdge(parent: ObjID, k: number, tx: MetaTx): number {
    return this.#freeFrom(this.homeOfEdge(parent, k), tx);
  }

  #freeFrom(start: number, tx: MetaTx): number {
    for (let n = 0, i = start; n < this.slots; n++, i = (i + 1) & this.mask) {
      const st = this.state(i, tx);
      if (st === EMPTY || st === TOMB) return i;
    }
    return -1;
  }

  /** Decode object slot `i` (the caller found it sound, e.g. through findObject). */
  readObject(i: number): ObjectSlot {
    const off = this.slotOffset(i);
    const v = this.view;
    const F = SlotField;
    return {
      id: readId(v, off + F.id),
      prot: v.getUint16(off + F.prot, true),
      start: v.getUint32(off + F.start, true),
      blocks: v.getUint32(off + F.blocks, true),
      size: v.getUint32(off + F.size, true),
      keyId: readId(v, off + F.key),
      ties: v.getUint32(off + F.ties, true),
      created: v.getFloat64(off + F.created, true),
    };
  }

  /** The dependent an edge slot names. */
  edgeChild(i: number): ObjID {
    return readId(this.view, this.slotOffset(i) + KEY);
  }

  /**
   * Free slots in `tx`: each becomes a tombstone, or empty when the next slot
   * is empty (then tombstones before it are emptied too, keeping probes short).
   * Damaged slots are never emptied (nor reached over).
   *
   * @returns The change in the number of non-empty slots (zero or negative).
   */
  release(tx: MetaTx, slots: number[]): number {
    let delta = 0;
    for (const i of slots) this.put(tx, i, tombSlot(i, this.seed));
    // Emptying also reaches back over older tombstones, but at most
    // RELEASE_EXTRA of them per call, so a transaction's log size stays
    // bounded by what the caller freed (see Kernel.delete's batching).
    let extra = RELEASE_EXTRA;
    const mine = new Set(slots);
    for (const i of [...slots].sort((a, b) => b - a)) {
      if (this.state(i, tx) !== TOMB) continue;
      if (this.state((i + 1) & this.mask, tx) !== EMPTY) continue;
      for (let j = i, n = 0; n < this.slots && this.state(j, tx) === TOMB; n++) {
        if (!mine.has(j) && extra-- <= 0) break;
        tx.put(this.slotOffset(j), emptySlot(j, this.seed));
        delta--;
        j = (j - 1) & this.mask;
      }
    }
    return delta;
  }

  /** Every sound object slot index, in table order (damaged ones skipped). */
  *objects(): Generator<number> {
    for (let i = 0; i < this.slots; i++) {
      if (this.view.getUint8(this.slotOffset(i) + STATE) === EMPTY && this.verified[i] !== 2) {
        continue; // empty (or damaged to look empty: found by fsck, not here)
      }
      if (this.sound(i) && this.view.getUint8(this.slotOffset(i) + STATE) === OBJECT) yield i;
    }
  }

  /**
   * Every slot that fails its check or bounds, among the slots that are not
   * plainly empty (a full scan: what `Kernel.damaged` reports).
   */
  damaged(): DamagedSlot[] {
    const out: DamagedSlot[] = [];
    for (let i = 0; i < this.slots; i++) {
      const off = this.slotOffset(i);
      const bad = this.problem(i);
      if (!bad) continue;
      const state = this.view.getUint8(off + STATE);
      out.push({ slot: i, id: state === OBJECT ? readId(this.view, off) : undefined, reason: bad });
    }
    return out;
  }
}

/** The check field's offset, re-exported for tools that patch slots. */
export { SLOT_CHECK_OFFSET };

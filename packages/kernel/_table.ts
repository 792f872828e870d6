// The object table: an open-addressing hash table of 64-byte slots on NVM,
// read in place (never loaded into DRAM), so boot does not visit objects.
//
// Slot layout:
//   0  id (16 bytes)          object: its ID; edge: the parent's ID
//   16 state u8               0 empty, 1 object, 2 tombstone, 3 tie edge
//   17 flags u8               reserved
//   18 prot u16               default protections
//   20 start u32              first data block
//   24 blocks u32             data blocks reserved
//   28 size u32               size in bytes
//   32 key (16 bytes)         object: key ID; edge: the dependent's ID
//   48 ties u32               object: number of tie edges; edge: its index
//   52 reserved u32
//   56 created u64            ms since the epoch
//
// A tie "child is deleted when parent is" is an edge slot keyed by (parent, k)
// for k < parent.ties. Edges of a dependent deleted on its own stay behind and
// are skipped (and freed) when the parent goes.
import { type ObjID, readId, writeId } from "./abi/mod.ts";
import type { MetaTx } from "./_log.ts";
import { SLOT } from "./_layout.ts";

export const EMPTY = 0;
export const OBJECT = 1;
export const TOMB = 2;
export const EDGE = 3;

/** The decoded contents of an object slot. */
export interface ObjectSlot {
  id: ObjID;
  prot: number;
  start: number;
  blocks: number;
  size: number;
  keyId: ObjID;
  ties: number;
  created: number;
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

/** Encode an object slot. */
export function encodeObject(s: ObjectSlot): Uint8Array {
  const bytes = new Uint8Array(SLOT);
  const v = new DataView(bytes.buffer);
  writeId(v, 0, s.id);
  bytes[16] = OBJECT;
  v.setUint16(18, s.prot, true);
  v.setUint32(20, s.start, true);
  v.setUint32(24, s.blocks, true);
  v.setUint32(28, s.size, true);
  writeId(v, 32, s.keyId);
  v.setUint32(48, s.ties, true);
  v.setFloat64(56, s.created, true);
  return bytes;
}

/** Encode a tie edge slot. */
export function encodeEdge(parent: ObjID, k: number, child: ObjID): Uint8Array {
  const bytes = new Uint8Array(SLOT);
  const v = new DataView(bytes.buffer);
  writeId(v, 0, parent);
  bytes[16] = EDGE;
  writeId(v, 32, child);
  v.setUint32(48, k, true);
  return bytes;
}

/** Older tombstones one release may empty besides its own slots. */
export const RELEASE_EXTRA = 16;

const TOMB_SLOT = (() => {
  const b = new Uint8Array(SLOT);
  b[16] = TOMB;
  return b;
})();
const EMPTY_SLOT = new Uint8Array(SLOT);

/** Table access over the region's bytes; writes go through a MetaTx. */
export class Table {
  readonly mask: number;
  constructor(
    readonly view: DataView,
    readonly offset: number,
    readonly slots: number,
  ) {
    this.mask = slots - 1;
  }

  slotOffset(i: number): number {
    return this.offset + i * SLOT;
  }

  /** The state of slot `i`, seeing `tx`'s pending writes. */
  state(i: number, tx?: MetaTx): number {
    const off = this.slotOffset(i);
    const pending = tx?.blobs.get(off);
    return pending ? pending[16] : this.view.getUint8(off + 16);
  }

  #matches(off: number, w: number[]): boolean {
    const v = this.view;
    return v.getUint32(off, true) === w[0] && v.getUint32(off + 4, true) === w[1] &&
      v.getUint32(off + 8, true) === w[2] && v.getUint32(off + 12, true) === w[3];
  }

  /** The slot holding object `id`, or -1. */
  findObject(id: ObjID): number {
    const w = idWords(id);
    for (let n = 0, i = w[0] & this.mask; n < this.slots; n++, i = (i + 1) & this.mask) {
      const off = this.slotOffset(i);
      const st = this.view.getUint8(off + 16);
      if (st === EMPTY) return -1;
      if (st === OBJECT && this.#matches(off, w)) return i;
    }
    return -1;
  }

  /** The slot holding edge `k` of `parent`, or -1. */
  findEdge(parent: ObjID, k: number): number {
    const w = idWords(parent);
    for (
      let n = 0, i = edgeHash(w[0], k) & this.mask;
      n < this.slots;
      n++, i = (i + 1) & this.mask
    ) {
      const off = this.slotOffset(i);
      const st = this.view.getUint8(off + 16);
      if (st === EMPTY) return -1;
      if (st === EDGE && this.view.getUint32(off + 48, true) === k && this.#matches(off, w)) {
        return i;
      }
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

  /** A free slot (empty or tombstone, not claimed by `tx`) for an object key. */
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

  readObject(i: number): ObjectSlot {
    const off = this.slotOffset(i);
    const v = this.view;
    return {
      id: readId(v, off),
      prot: v.getUint16(off + 18, true),
      start: v.getUint32(off + 20, true),
      blocks: v.getUint32(off + 24, true),
      size: v.getUint32(off + 28, true),
      keyId: readId(v, off + 32),
      ties: v.getUint32(off + 48, true),
      created: v.getFloat64(off + 56, true),
    };
  }

  /** The dependent an edge slot names. */
  edgeChild(i: number): ObjID {
    return readId(this.view, this.slotOffset(i) + 32);
  }

  /**
   * Free slots in `tx`: each becomes a tombstone, or empty when the next slot
   * is empty (then tombstones before it are emptied too, keeping probes short).
   *
   * @returns The change in the number of non-empty slots (zero or negative).
   */
  release(tx: MetaTx, slots: number[]): number {
    let delta = 0;
    for (const i of slots) tx.put(this.slotOffset(i), TOMB_SLOT);
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
        tx.put(this.slotOffset(j), EMPTY_SLOT);
        delta--;
        j = (j - 1) & this.mask;
      }
    }
    return delta;
  }

  /** Every object slot index, in table order. */
  *objects(): Generator<number> {
    for (let i = 0; i < this.slots; i++) {
      if (this.view.getUint8(this.slotOffset(i) + 16) === OBJECT) yield i;
    }
  }
}

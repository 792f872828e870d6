/**
 * A node's local state: one persistent kernel object with a fixed ID
 * ({@linkcode STATE_ID}, adopted at the first join) holding a slot per
 * global object held here. It survives crashes: at join the node republishes
 * what it committed locally but never saw acknowledged.
 *
 * ```text
 * offset 0     header (64 bytes): magic "TWZG", format 1, crc32 at 60
 * offset 64    slot 0: copy A (64 bytes), copy B (64 bytes)
 * offset 192   slot 1 ...                      (slots fill the object; it grows when full)
 *
 * copy:  0 u32 seq (0: never written)      4 u32 flags (Used 1, Owned 2, Unacked 4)
 *        8 16 bytes object ID             24 u64 version
 *       32 u64 KV revision                40 u64 hash of the bytes (hashBytes)
 *       48 u32 size                       52..60 zero
 *       60 u32 crc32 of bytes 0..60
 * ```
 *
 * Each copy is one aligned 64-byte line. An update writes the slot's older
 * (or invalid) copy with the next sequence number and persists it: a power
 * failure during the write leaves that copy failing its check or never
 * written, and the other copy, untouched, still valid. The current value of
 * a slot is its valid copy with the higher sequence number.
 *
 * Meaning of a slot: with `Unacked` clear, `version` is the version held here
 * and acknowledged by the cluster at `revision`, its bytes hashing to `hash`.
 * With `Unacked` set, a publish of version `version` (bytes `hash`), based on
 * the record at `revision`, was under way.
 *
 * @module
 */
import { crc32, type Kernel } from "@twz/kernel";
import { ErrorCode, formatId, type ObjID, readId, TwzError, writeId } from "@twz/kernel/abi";

/** The fixed ID of the state object on every node ("twz-global-state"). */
export const STATE_ID: ObjID = 0x74777a2d676c6f62616c2d7374617465n;
/** Its initial size (511 slots). */
export const STATE_SIZE = 65536;
/** "TWZG" as a little-endian u32. */
export const STATE_MAGIC = 0x475a5754;
const FORMAT = 1;
const HEADER = 64;
const SLOT = 128;
const COPY = 64;

/** Flags of a slot. */
export const SlotFlags = {
  /** The slot holds an object. */
  Used: 1,
  /** This node owns it. */
  Owned: 2,
  /** A publish was under way and not acknowledged. */
  Unacked: 4,
} as const;

/** What the node knows about one held object. */
export interface Held {
  /** Version held here (or, while unacked, being published). */
  version: number;
  /** The record's KV revision last seen with (or obtained with) ownership. */
  revision: number;
  /** Owned by this node. */
  owned: boolean;
  /** A publish under way, not acknowledged. */
  unacked: boolean;
  /** Hash of the bytes at `version`. */
  hash: bigint;
  /** Size at `version`. */
  size: number;
}

/** The initial contents of a state object (its header; every slot free). */
export function initialState(): Uint8Array {
  const b = new Uint8Array(STATE_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, STATE_MAGIC, true);
  v.setUint32(4, FORMAT, true);
  v.setUint32(60, crc32(b.subarray(0, 60)), true);
  return b;
}

/** The slots of a state object, loaded at join and written through. */
export class LocalState {
  readonly #kernel: Kernel;
  readonly #id: ObjID;
  /** Slot index and current sequence number of each held object. */
  readonly #slots = new Map<ObjID, SlotAt>();
  readonly #held = new Map<ObjID, Held>();
  /** Free slot indexes (a stack: the lowest on top after load). */
  #free: number[] = [];
  /** Free slots written before (freed): their sequence and last copy. */
  readonly #freed = new Map<number, SlotAt>();
  #capacity = 0;
  /** Slots of an earlier format or damage that could not be read. */
  readonly damaged: number[] = [];

  private constructor(kernel: Kernel, id: ObjID) {
    this.#kernel = kernel;
    this.#id = id;
  }

  /**
   * Load the state object `id` (made with {@linkcode initialState}).
   *
   * @throws {TwzError} `ObjectDamaged` when its header fails its check,
   * `NotSupported` for a newer format.
   */
  static load(kernel: Kernel, id: ObjID = STATE_ID): LocalState {
    const s = new LocalState(kernel, id);
    s.#load();
    return s;
  }

  #bytes(): Uint8Array {
    return this.#kernel.objectBytes(this.#id);
  }

  #load(): void {
    const bytes = this.#bytes();
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (
      bytes.length < HEADER + SLOT || v.getUint32(0, true) !== STATE_MAGIC ||
      v.getUint32(60, true) !== crc32(bytes.subarray(0, 60))
    ) {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `the global space's local state object ${formatId(this.#id)} is damaged (bad header)`,
      );
    }
    if (v.getUint32(4, true) !== FORMAT) {
      throw new TwzError(
        ErrorCode.NotSupported,
        `the global space's local state has format ${
          v.getUint32(4, true)
        }; this node reads ${FORMAT}`,
      );
    }
    this.#capacity = Math.floor((bytes.length - HEADER) / SLOT);
    const free: number[] = [];
    for (let i = 0; i < this.#capacity; i++) {
      const at = HEADER + i * SLOT;
      const a = readCopy(bytes, v, at), b = readCopy(bytes, v, at + COPY);
      const cur = a && b ? (a.seq >= b.seq ? a : b) : a ?? b;
      if (!cur || !(cur.flags & SlotFlags.Used)) {
        if (cur) this.#freed.set(i, { index: i, seq: cur.seq, copy: cur.copy });
        free.push(i);
        continue;
      }
      if (this.#held.has(cur.id)) {
        // Two slots for one ID (a crash between freeing one and filling
        // another cannot do this; damage): keep the higher sequence.
        this.damaged.push(i);
        continue;
      }
      this.#slots.set(cur.id, { index: i, seq: cur.seq, copy: cur.copy });
      this.#held.set(cur.id, {
        version: cur.version,
        revision: cur.revision,
        owned: (cur.flags & SlotFlags.Owned) !== 0,
        unacked: (cur.flags & SlotFlags.Unacked) !== 0,
        hash: cur.hash,
        size: cur.size,
      });
    }
    this.#free = free.reverse(); // pop() takes the lowest first
  }

  /** The held objects (live: the node updates them through {@linkcode set}). */
  get held(): ReadonlyMap<ObjID, Held> {
    return this.#held;
  }

  /** What is known of `id`, or `undefined`. */
  get(id: ObjID): Held | undefined {
    return this.#held.get(id);
  }

  /** Record `h` for `id` durably (a new slot when `id` has none). */
  set(id: ObjID, h: Held): void {
    let slot = this.#slots.get(id);
    if (!slot) {
      if (this.#free.length === 0) this.#grow();
      const index = this.#free.pop()!;
      // A free slot keeps the sequence of its last write (a freed slot).
      slot = this.#freed.get(index) ?? { index, seq: 0, copy: 1 };
      this.#freed.delete(index);
      this.#slots.set(id, slot);
    }
    const flags = SlotFlags.Used | (h.owned ? SlotFlags.Owned : 0) |
      (h.unacked ? SlotFlags.Unacked : 0);
    this.#write(slot, id, flags, h);
    this.#held.set(id, { ...h });
  }

  /** Forget `id` durably (its slot becomes free). */
  remove(id: ObjID): void {
    const slot = this.#slots.get(id);
    if (!slot) return;
    this.#write(slot, 0n, 0, {
      version: 0,
      revision: 0,
      owned: false,
      unacked: false,
      hash: 0n,
      size: 0,
    });
    this.#slots.delete(id);
    this.#freed.set(slot.index, slot);
    this.#held.delete(id);
    this.#free.push(slot.index);
  }

  #write(slot: SlotAt, id: ObjID, flags: number, h: Held): void {
    const c = new Uint8Array(COPY);
    const v = new DataView(c.buffer);
    const seq = (slot.seq + 1) >>> 0 || 1;
    v.setUint32(0, seq, true);
    v.setUint32(4, flags, true);
    writeId(v, 8, id);
    v.setBigUint64(24, BigInt(h.version), true);
    v.setBigUint64(32, BigInt(h.revision), true);
    v.setBigUint64(40, h.hash, true);
    v.setUint32(48, h.size >>> 0, true);
    v.setUint32(60, crc32(c.subarray(0, 60)), true);
    const copy = slot.copy === 0 ? 1 : 0; // the older copy
    this.#kernel.kernelWrite(this.#id, HEADER + slot.index * SLOT + copy * COPY, c);
    slot.seq = seq;
    slot.copy = copy;
  }

  /** Double the object (new slots read as zero: free). */
  #grow(): void {
    const size = this.#bytes().length;
    this.#kernel.grow(this.#id, size * 2);
    const capacity = Math.floor((size * 2 - HEADER) / SLOT);
    for (let i = capacity - 1; i >= this.#capacity; i--) this.#free.push(i);
    this.#capacity = capacity;
  }
}

/** Where a slot is and its current copy. */
interface SlotAt {
  index: number;
  seq: number;
  copy: number;
}

interface Copy {
  seq: number;
  flags: number;
  id: ObjID;
  version: number;
  revision: number;
  hash: bigint;
  size: number;
  copy: number;
}

function readCopy(bytes: Uint8Array, v: DataView, at: number): Copy | null {
  const seq = v.getUint32(at, true);
  if (seq === 0 || v.getUint32(at + 60, true) !== crc32(bytes.subarray(at, at + 60))) return null;
  return {
    seq,
    flags: v.getUint32(at + 4, true),
    id: readId(v, at + 8),
    version: Number(v.getBigUint64(at + 24, true)),
    revision: Number(v.getBigUint64(at + 32, true)),
    hash: v.getBigUint64(at + 40, true),
    size: v.getUint32(at + 48, true),
    copy: (at - HEADER) % SLOT === 0 ? 0 : 1,
  };
}

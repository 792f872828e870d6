/**
 * The layout of a user-space (libtwz) object: the part of the kernel/user
 * contract that says where the null region, the meta-info, the base and the
 * foreign object table (FOT) live inside an object's bytes. The kernel itself
 * only zeroes new objects; libtwz writes the meta-info when it creates one.
 *
 * ```text
 *  offset 0    +---------------------------+
 *              | null region (64 bytes)    |  never read or written: a pointer
 *  64          +---------------------------+  whose offset is 0 is null
 *              | meta-info (128 bytes)     |  magic, version, flags, default
 *              |                           |  protections, nonce, key ID, FOT
 *              |                           |  geometry and counters
 *  192         +---------------------------+
 *              | reserved (64 bytes, zero) |  meta-info extensions
 *  BASE = 256  +---------------------------+
 *              | base: the object's data   |  user layouts start here
 *              | ...                       |
 *  fotOffset   +---------------------------+
 *              | FOT entries (32 bytes     |  entry i (i >= 1) at
 *              |   each, fotCapacity)      |  fotOffset + (i - 1) * 32
 *              +---------------------------+
 *              | FOT names (namesSize)     |  names of name-based entries,
 *              |                           |  bump-allocated (namesUsed)
 *  fotOffset + +---------------------------+
 *  fotBytes    | (space added by a later   |
 *              |  grow: more data)         |
 *  size        +---------------------------+
 * ```
 *
 * The FOT sits at the end of the object as created (64-byte aligned); its
 * offset is recorded in the meta-info, so growing the object (which may move
 * it in the store, never inside itself) leaves it where it is. Every number is
 * little-endian.
 *
 * Publishing: a new FOT entry is written and persisted while it is still
 * beyond `fotCount`; then `fotCount` and `namesUsed` (one aligned 8-byte word)
 * are stored together and persisted. An entry is valid iff its index is at
 * most `fotCount` and its flags carry {@linkcode FotFlags.Valid}.
 *
 * @example Read the meta-info of an object's bytes
 * ```ts
 * import { BASE_OFFSET, META_OFFSET, MetaField, OBJECT_MAGIC } from "@twz/kernel/abi";
 * const bytes = new Uint8Array(4096);
 * const view = new DataView(bytes.buffer);
 * view.setUint32(META_OFFSET + MetaField.magic, OBJECT_MAGIC, true);
 * console.log(view.getUint32(META_OFFSET + MetaField.magic, true) === OBJECT_MAGIC, BASE_OFFSET);
 * ```
 *
 * @module
 */

/** Bytes at the start of every object that are never data: offset 0 is null. */
export const NULL_SIZE = 64;
/** Offset of the meta-info record. */
export const META_OFFSET = 64;
/** Size of the meta-info record. */
export const META_SIZE = 128;
/** Offset of the base (the first byte of user data): fixed for every object. */
export const BASE_OFFSET = 256;
/** Magic number at the start of the meta-info: "TWZO" read as little-endian. */
export const OBJECT_MAGIC = 0x4f5a5754;
/** Version of this layout. */
export const LAYOUT_VERSION = 1;
/** Size of one FOT entry. */
export const FOT_ENTRY_SIZE = 32;
/** The largest FOT index a pointer can carry (16 bits; index 0 is "this object"). */
export const MAX_FOT_INDEX = 0xffff;

/** Offsets of the meta-info fields, relative to {@linkcode META_OFFSET}. */
export const MetaField = {
  /** u32: {@linkcode OBJECT_MAGIC}. */
  magic: 0,
  /** u16: {@linkcode LAYOUT_VERSION}. */
  version: 4,
  /** u16: {@linkcode MetaFlags}. */
  flags: 6,
  /** u32: default protections (`Prot` bits) the object was created with. */
  prot: 8,
  /** u32: the object's size when libtwz initialized it. */
  createdSize: 12,
  /** 16 bytes: random nonce (distinguishes incarnations). */
  nonce: 16,
  /** 16 bytes: ID of the key object that signs capabilities, or zero. */
  keyId: 32,
  /** u32: offset of the FOT. */
  fotOffset: 48,
  /** u32: how many FOT entries fit. */
  fotCapacity: 52,
  /** u32: published FOT entries (indices 1..fotCount); shares an 8-byte word with namesUsed. */
  fotCount: 56,
  /** u32: bytes of the names area in use. */
  namesUsed: 60,
  /** u32: offset of the names area. */
  namesOffset: 64,
  /** u32: size of the names area. */
  namesSize: 68,
  /** u32: a type tag the creator may set (0 = untyped). */
  typeTag: 72,
} as const;

/** Bits of the meta-info `flags` field. */
export const MetaFlags = {
  /** The object is a naming-service directory. */
  Directory: 1,
  /** The object is the libtwz root record (in the kernel's root object). */
  Root: 2,
} as const;

/** Offsets of the fields of a FOT entry, relative to the entry. */
export const FotField = {
  /** u32: {@linkcode FotFlags}. */
  flags: 0,
  /** u32: reserved (zero). */
  reserved: 4,
  /** ID entries: 16 bytes, the target object's ID (little-endian). */
  id: 8,
  /** Name entries: u32 offset (in the object) of the name bytes. */
  nameOffset: 8,
  /** Name entries: u16 length of the name (UTF-8 bytes). */
  nameLength: 12,
  /** Name entries: u16 length of the resolver's name, stored right after the name. */
  resolverLength: 14,
} as const;

/** Bits of a FOT entry's `flags`. */
export const FotFlags = {
  /** Pointers through this entry may read the target. */
  Read: 1,
  /** Pointers through this entry may write the target. */
  Write: 2,
  /** Pointers through this entry may execute the target. */
  Exec: 4,
  /** The entry holds a name (resolved when followed), not an ID. */
  Name: 0x100,
  /** The entry has been allocated. */
  Allocated: 0x1000,
  /** The entry is complete and may be followed. */
  Valid: 0x2000,
} as const;

/** The geometry of an object's FOT, as recorded in its meta-info. */
export interface FotGeometry {
  /** Offset of the first entry (entry index 1). */
  fotOffset: number;
  /** Entries that fit. */
  fotCapacity: number;
  /** Offset of the names area (right after the entries). */
  namesOffset: number;
  /** Size of the names area. */
  namesSize: number;
}

/**
 * Plan where the FOT of a new object of `size` bytes goes: at the end, 64-byte
 * aligned, after the base.
 *
 * @param size The object's size.
 * @param entries FOT entries to reserve.
 * @param namesSize Bytes to reserve for the names of name-based entries.
 * @returns The geometry to record.
 * @throws {RangeError} The FOT does not fit after the base, or entries exceed
 * {@linkcode MAX_FOT_INDEX}.
 * @example
 * ```ts
 * import { planFot } from "@twz/kernel/abi";
 * console.log(planFot(65536, 64, 2048)); // FOT at 61440, names at 63488
 * ```
 */
export function planFot(size: number, entries: number, namesSize: number): FotGeometry {
  if (!Number.isInteger(entries) || entries < 0 || entries > MAX_FOT_INDEX) {
    throw new RangeError(`A FOT holds 0 to ${MAX_FOT_INDEX} entries, not ${entries}`);
  }
  if (!Number.isInteger(namesSize) || namesSize < 0) {
    throw new RangeError(`FOT names size ${namesSize} is not a non-negative integer`);
  }
  const bytes = Math.ceil((entries * FOT_ENTRY_SIZE + namesSize) / 64) * 64;
  const fotOffset = Math.floor((size - bytes) / 64) * 64;
  if (fotOffset < BASE_OFFSET) {
    throw new RangeError(
      `An object of ${size} bytes cannot hold a ${entries}-entry FOT with ${namesSize} name bytes after its base (${BASE_OFFSET})`,
    );
  }
  return {
    fotOffset,
    fotCapacity: entries,
    namesOffset: fotOffset + entries * FOT_ENTRY_SIZE,
    namesSize: bytes - entries * FOT_ENTRY_SIZE,
  };
}

/**
 * Offset of FOT entry `index` (1-based) in an object whose FOT is at `fotOffset`.
 *
 * @example
 * ```ts
 * import { fotEntryOffset } from "@twz/kernel/abi";
 * console.log(fotEntryOffset(61440, 1)); // 61440
 * ```
 */
export function fotEntryOffset(fotOffset: number, index: number): number {
  return fotOffset + (index - 1) * FOT_ENTRY_SIZE;
}

// The root record: the kernel's counters and the root object's ID, one
// 64-byte line at the root offset, with a CRC-32 over its first 60 bytes (it
// only ever changes through the metadata log, which has its own checksum).
//
//   0 magic "ROOT"   4 objects   8 slots in use   12 free blocks   16 cursor
//   24 generation (f64)   32 root object ID (16)   60 CRC-32
import { type ObjID, readId, writeId } from "./abi/mod.ts";
import { crc32 } from "./_crc32.ts";

/** The root record's magic ("ROOT"). */
export const ROOT_MAGIC = 0x544f4f52; // "ROOT"
/** Bytes of the root record, checksum included. */
export const ROOT_BYTES = 64;

/** Counters in the root record. */
export interface Root {
  /** Persistent objects. */
  objects: number;
  /** Table slots in use (objects, tie edges and tombstones). */
  slotsUsed: number;
  /** Free data blocks. */
  freeBlocks: number;
  /** Where the allocator looks for free blocks first. */
  cursor: number;
  /** Commits so far (0: nothing was ever committed). */
  generation: number;
  /** The root object (0n until first asked for). */
  rootObject: ObjID;
}

/** Encode a root record, checksum included. */
export function encodeRoot(r: Root): Uint8Array {
  const bytes = new Uint8Array(ROOT_BYTES);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, ROOT_MAGIC, true);
  v.setUint32(4, r.objects, true);
  v.setUint32(8, r.slotsUsed, true);
  v.setUint32(12, r.freeBlocks, true);
  v.setUint32(16, r.cursor, true);
  v.setFloat64(24, r.generation, true);
  writeId(v, 32, r.rootObject);
  v.setUint32(60, crc32(bytes.subarray(0, 60)), true);
  return bytes;
}

/** Decode the root record at `offset` of `bytes`, or `undefined` when it is damaged. */
export function decodeRoot(bytes: Uint8Array, offset: number): Root | undefined {
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, ROOT_BYTES);
  if (
    v.getUint32(0, true) !== ROOT_MAGIC ||
    v.getUint32(60, true) !== crc32(bytes.subarray(offset, offset + 60))
  ) return undefined;
  return {
    objects: v.getUint32(4, true),
    slotsUsed: v.getUint32(8, true),
    freeBlocks: v.getUint32(12, true),
    cursor: v.getUint32(16, true),
    generation: v.getFloat64(24, true),
    rootObject: readId(v, 32),
  };
}

/** The root record format writes: no objects, every data block free. */
export function freshRoot(dataBlocks: number): Root {
  return {
    objects: 0,
    slotsUsed: 0,
    freeBlocks: dataBlocks,
    cursor: 0,
    generation: 0,
    rootObject: 0n,
  };
}

/**
 * The live bytes behind a mapping, with word views for aligned loads and
 * stores. Kernel and user space share this class: the kernel retargets an
 * extent when it moves an object, a Worker's port when its view changes.
 *
 * @module
 */
/** Whether this host stores numbers little-endian (typed arrays use host order). */
const HOST_LE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The live bytes behind every mapping of one object. The kernel retargets
 * `bytes`, `view`, the word views and `base` in place when it moves the
 * object (grow), and empties them (length 0) when the object is deleted or the
 * kernel stops, so holding an extent and reading `extent.view` (or
 * `extent.u32`) always reaches the object where it is now, and a stale holder
 * never reaches freed memory.
 *
 * The word views (`i8` … `bi64`) are typed arrays over the same bytes, for
 * naturally aligned loads and stores (`u32[off >>> 2]`): V8 keeps loaded
 * object fields across a typed-array store, not across a DataView store.
 * They hold the object's bytes only when `words` is true: the host is
 * little-endian (the object format is) and the bytes start 8-aligned in their
 * buffer. Both always hold for the kernel's objects (persistent data starts
 * page-aligned in the region and moves by whole blocks; volatile objects are
 * buffers of their own). When `words` is false the word views are empty and
 * callers use `view`; `words` never turns true again once false.
 */
export class Extent {
  /** The object's bytes (empty once deleted). */
  bytes!: Uint8Array;
  /** A DataView over `bytes`. */
  view!: DataView;
  /** Offset of the object in the persistent region; -1 for a volatile object. */
  base!: number;
  /** Whether the word views below hold the object's bytes (see the class doc). */
  words!: boolean;
  /** Signed bytes. */
  i8!: Int8Array;
  /** 16-bit words (index = offset / 2). */
  u16!: Uint16Array;
  /** Signed 16-bit words. */
  i16!: Int16Array;
  /** 32-bit words (index = offset / 4). */
  u32!: Uint32Array;
  /** Signed 32-bit words. */
  i32!: Int32Array;
  /** 32-bit floats. */
  f32!: Float32Array;
  /** 64-bit floats (index = offset / 8). */
  f64!: Float64Array;
  /** Unsigned 64-bit words, as bigints. */
  bu64!: BigUint64Array;
  /** Signed 64-bit words, as bigints. */
  bi64!: BigInt64Array;
  /** Views over `bytes`, which start at `base` in the region (-1 when volatile or unknown). */
  constructor(bytes: Uint8Array, base: number) {
    this.words = HOST_LE && (bytes.byteOffset & 7) === 0;
    this.retarget(bytes, base);
  }
  /**
   * Point every view at `bytes` (the object's new place, or an
   * empty array once it is gone).
   */
  retarget(bytes: Uint8Array, base: number): void {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.base = base;
    // Accessors chose word code for this extent when it was made. Should it
    // ever move to an unaligned place (the kernel never does), the word views
    // go empty: those accessors then throw RangeError instead of reaching the
    // wrong bytes, and new accessors use `view`.
    if (this.words && (bytes.byteOffset & 7) !== 0) this.words = false;
    const w = this.words ? bytes : new Uint8Array(0);
    const { buffer, byteOffset: o, byteLength: n } = w;
    this.i8 = new Int8Array(buffer, o, n);
    this.u16 = new Uint16Array(buffer, o, n >>> 1);
    this.i16 = new Int16Array(buffer, o, n >>> 1);
    this.u32 = new Uint32Array(buffer, o, n >>> 2);
    this.i32 = new Int32Array(buffer, o, n >>> 2);
    this.f32 = new Float32Array(buffer, o, n >>> 2);
    this.f64 = new Float64Array(buffer, o, n >>> 3);
    this.bu64 = new BigUint64Array(buffer, o, n >>> 3);
    this.bi64 = new BigInt64Array(buffer, o, n >>> 3);
  }
}

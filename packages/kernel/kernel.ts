/**
 * The kernel: formats and recovers an image, and manages objects in it.
 *
 * @module
 */
import type { Hal, PersistentRegion } from "./hal/mod.ts";
import {
  type CreateSpec,
  DEFAULT_OBJECT_SIZE,
  ErrorCode,
  formatId,
  formatProt,
  idFromBytes,
  isValidId,
  type Lifetime,
  type ObjectStat,
  type ObjID,
  Prot,
  TwzError,
} from "./abi/mod.ts";
import {
  BLOCK,
  decodeSuperblock,
  encodeSuperblock,
  type Geometry,
  isBlank,
  metadataTest,
  planGeometry,
  SLOT,
  SUPERBLOCK_BYTES,
} from "./_layout.ts";
import { LogFullError, MetaLog, type MetaTx } from "./_log.ts";
import { encodeEdge, encodeObject, type ObjectSlot, RELEASE_EXTRA, Table, TOMB } from "./_table.ts";
import { BlockBitmap } from "./_alloc.ts";
import { decodeRoot, encodeRoot, type Root } from "./_root.ts";

/** The most objects one create may tie a new object to. */
export const MAX_TIES = 256;
/** Size of the root object (see {@linkcode Kernel.rootObject}). */
export const ROOT_OBJECT_SIZE = 65536;
/** The largest object: sizes are stored in 32 bits. */
export const MAX_OBJECT_SIZE = 0xffffffff;
/** The table is refused new slots beyond this load factor. */
const MAX_LOAD = 0.9;

/** What boot found and did. */
export interface BootReport {
  /** `true` when the image was blank and has just been formatted. */
  formatted: boolean;
  /** Metadata log records replayed by recovery (0 after a clean shutdown). */
  replayed: number;
  /** Persistent objects in the image. */
  objects: number;
  /** Milliseconds from the start of boot to ready. */
  ms: number;
  /** Region size in bytes. */
  size: number;
  /** Free data bytes. */
  free: number;
}

/** Options for {@linkcode Kernel.boot}. */
export interface BootOptions {
  /**
   * Format the image when its superblock area is blank (all zero bytes).
   * The default formats only an image the HAL has just created, so an image
   * whose superblock was wiped is reported, never silently reformatted.
   * @default {hal.created}
   */
  formatBlank?: boolean;
}

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
  /** @internal */
  constructor(bytes: Uint8Array, base: number) {
    this.words = HOST_LE && (bytes.byteOffset & 7) === 0;
    this.retarget(bytes, base);
  }
  /**
   * @internal Point every view at `bytes` (the object's new place, or an
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

/**
 * An object mapped into the caller's address space: loads and stores on
 * `bytes` are loads and stores on the object. For a persistent object,
 * `persist` makes a range durable. Offsets are relative to the object.
 */
export class ObjectMapping {
  /** @internal */
  constructor(
    readonly id: ObjID,
    readonly lifetime: Lifetime,
    readonly prot: number,
    readonly extent: Extent,
    private readonly kernel: Kernel,
  ) {}

  /** The object's bytes (empty once the object is deleted). */
  get bytes(): Uint8Array {
    return this.extent.bytes;
  }
  /**
   * The persistent region holding the object (`null` for a volatile one):
   * with `extent.base`, for callers that batch flushes of many objects
   * (transactions) through {@linkcode PersistentRegion.flushRanges}.
   */
  get region(): PersistentRegion | null {
    return this.lifetime === "persistent" ? this.kernel.hal.region : null;
  }
  /** A DataView over {@linkcode ObjectMapping.bytes}. */
  get view(): DataView {
    return this.extent.view;
  }
  /** Size in bytes. */
  get size(): number {
    return this.extent.bytes.length;
  }
  /** Whether the mapping allows writes. */
  get writable(): boolean {
    return (this.prot & Prot.Write) !== 0;
  }
  /** Write back `[offset, offset + length)`; durable after {@linkcode drain}. */
  flush(offset: number, length: number): void {
    this.kernel.flushRange(this, offset, length);
  }
  /** Ordering point for earlier flushes. */
  drain(): void {
    if (this.lifetime === "persistent") this.kernel.hal.region.drain();
  }
  /** Make `[offset, offset + length)` durable. */
  persist(offset: number, length: number): void {
    this.kernel.flushRange(this, offset, length);
    this.drain();
  }
}

interface VolatileObject {
  extent: Extent;
  stat: ObjectStat;
  dependents: Set<ObjID>;
}

/**
 * The Twizzler kernel over one HAL.
 *
 * @example Boot an anonymous simulated region and create an object
 * ```ts ignore
 * import { Kernel } from "@twz/kernel";
 * import { plugin } from "@twz/hal-sim";
 *
 * const kernel = Kernel.boot(await plugin.open({ size: 8 << 20 }));
 * const id = kernel.create({ size: 4096 });
 * kernel.write(id, 0, new TextEncoder().encode("hello"));
 * ```
 */
export class Kernel {
  readonly hal: Hal;
  readonly geometry: Geometry;
  readonly report: BootReport;
  readonly #log: MetaLog;
  readonly #table: Table;
  readonly #bitmap: BlockBitmap;
  readonly #view: DataView;
  #root: Root;
  #down = false;
  readonly #extents = new Map<ObjID, Extent>();
  readonly #volatile = new Map<ObjID, VolatileObject>();
  /** Volatile objects tied to persistent ones. */
  readonly #volatileTies = new Map<ObjID, Set<ObjID>>();

  private constructor(hal: Hal, geometry: Geometry, formatted: boolean, t0: number) {
    this.hal = hal;
    this.geometry = geometry;
    const bytes = hal.region.bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const g = geometry;
    this.#log = new MetaLog(hal.region, g.logOffset, g.logSize, metadataTest(g));
    this.#table = new Table(this.#view, geometry.tableOffset, geometry.tableSlots);
    this.#bitmap = new BlockBitmap(geometry.bitmapOffset, geometry.dataBlocks);
    const replayed = formatted ? 0 : this.#log.recover();
    this.#root = this.#readRoot();
    this.report = {
      formatted,
      replayed,
      objects: this.#root.objects,
      ms: hal.clock.monotonic() - t0,
      size: geometry.regionSize,
      free: this.#root.freeBlocks * BLOCK,
    };
  }

  /**
   * Boot on `hal`: format a blank new image, or check and recover an existing
   * one. Recovery replays at most one metadata log; it does not visit objects.
   *
   * @throws {TwzError} `ImageCorrupt` (damaged, truncated, not an image) or
   * `ImageUnsupported` (unknown format version). The image is left untouched.
   */
  static boot(hal: Hal, options: BootOptions = {}): Kernel {
    const t0 = hal.clock.monotonic();
    const bytes = hal.region.bytes;
    let formatted = false;
    if (isBlank(bytes)) {
      if (!(options.formatBlank ?? hal.created)) {
        throw new TwzError(
          ErrorCode.ImageCorrupt,
          "the image has no superblock magic: it was never (completely) formatted, or its superblock was wiped; remove it to start afresh",
        );
      }
      Kernel.#format(hal);
      formatted = true;
    }
    const geometry = decodeSuperblock(bytes);
    return new Kernel(hal, geometry, formatted, t0);
  }

  static #format(hal: Hal): void {
    const region = hal.region;
    const storeId = new Uint8Array(16);
    hal.entropy.fill(storeId);
    const g = planGeometry(region.size, storeId, hal.clock.wallclock());
    // A created image is all zeros: an empty table, a free bitmap, an empty log.
    // Zero the metadata areas anyway so a blank-superblock image starts clean.
    region.bytes.fill(0, g.rootOffset, g.dataOffset);
    const root = encodeRoot({
      objects: 0,
      slotsUsed: 0,
      freeBlocks: g.dataBlocks,
      cursor: 0,
      generation: 0,
      rootObject: 0n,
    });
    region.bytes.set(root, g.rootOffset);
    region.flush(g.rootOffset, g.dataOffset - g.rootOffset);
    region.drain();
    // The superblock goes last, and its magic last of all (one aligned 8-byte
    // store): until the magic is durable the image is still blank.
    const sb = encodeSuperblock(g);
    region.bytes.set(sb.subarray(8), 8);
    region.persist(8, SUPERBLOCK_BYTES - 8);
    region.bytes.set(sb.subarray(0, 8), 0);
    region.persist(0, 8);
  }

  #readRoot(): Root {
    const root = decodeRoot(this.hal.region.bytes, this.geometry.rootOffset);
    if (!root) {
      throw new TwzError(ErrorCode.ImageCorrupt, "the root record is damaged (bad checksum)");
    }
    return root;
  }

  #check(): void {
    if (this.#down) throw new TwzError(ErrorCode.Shutdown, "The kernel has been shut down");
  }

  #newId(): ObjID {
    const bytes = new Uint8Array(16);
    for (;;) {
      this.hal.entropy.fill(bytes);
      const id = idFromBytes(bytes);
      if (!this.#exists(id)) return id;
    }
  }

  #exists(id: ObjID): boolean {
    return this.#volatile.has(id) || this.#table.findObject(id) >= 0;
  }

  #slotOf(id: ObjID): number {
    const slot = this.#table.findObject(id);
    if (slot < 0) {
      throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(id)}`);
    }
    return slot;
  }

  /** The mapped bytes of an object, for sources and reads (no permission check). */
  #extentOf(id: ObjID): Extent {
    const v = this.#volatile.get(id);
    if (v) return v.extent;
    let extent = this.#extents.get(id);
    if (!extent) {
      const s = this.#table.readObject(this.#slotOf(id));
      const base = this.geometry.dataOffset + s.start * BLOCK;
      extent = new Extent(this.hal.region.bytes.subarray(base, base + s.size), base);
      this.#extents.set(id, extent);
    }
    return extent;
  }

  #commit(tx: MetaTx, root: Root): void {
    root.generation++;
    tx.put(this.geometry.rootOffset, encodeRoot(root));
    // A failed persist may leave the commit half applied in memory: stop, and let
    // the next boot's recovery decide from the log (found by twz crashtest). A
    // transaction too large for the log is refused before anything is written:
    // the kernel goes on.
    try {
      this.#log.commit(tx);
    } catch (error) {
      if (!(error instanceof LogFullError)) this.halt();
      throw error;
    }
    this.#root = root;
  }

  /**
   * Create an object.
   *
   * @param spec Size, lifetime, protections, key, sources and ties.
   * @returns The new object's ID.
   * @throws {TwzError} `InvalidArgument` for a bad spec, `ObjectNotFound` for a
   * missing source or tie, `OutOfSpace`, `TableFull`.
   */
  create(spec: CreateSpec = {}): ObjID {
    return this.#create(spec, false);
  }

  /** Create; with `asRoot`, the root record names the new object in the same commit. */
  #create(spec: CreateSpec, asRoot: boolean): ObjID {
    this.#check();
    const size = spec.size ?? DEFAULT_OBJECT_SIZE;
    const lifetime = spec.lifetime ?? "persistent";
    const prot = spec.prot ?? Prot.ReadWrite;
    const keyId = spec.keyId ?? 0n;
    if (!Number.isInteger(size) || size < 1 || size > MAX_OBJECT_SIZE) {
      throw new TwzError(ErrorCode.InvalidArgument, `Object size ${size} is not in [1, 2^32)`);
    }
    if (lifetime !== "persistent" && lifetime !== "volatile") {
      throw new TwzError(ErrorCode.InvalidArgument, `Unknown lifetime "${lifetime}"`);
    }
    if (!Number.isInteger(prot) || prot < 0 || prot > Prot.All) {
      throw new TwzError(ErrorCode.InvalidArgument, `Protections ${prot} are not rwx bits`);
    }
    if (keyId !== 0n && !isValidId(keyId)) {
      throw new TwzError(ErrorCode.InvalidArgument, `Key ${formatId(keyId)} is not a valid ID`);
    }
    const ties = [...new Set(spec.ties ?? [])];
    if (ties.length > MAX_TIES) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `An object can be tied to at most ${MAX_TIES} others, not ${ties.length}`,
      );
    }
    for (const parent of ties) {
      if (!this.#exists(parent)) {
        throw new TwzError(
          ErrorCode.ObjectNotFound,
          `Cannot tie to ${formatId(parent)}: no such object`,
        );
      }
      if (lifetime === "persistent" && this.#volatile.has(parent)) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `A persistent object cannot be tied to volatile ${formatId(parent)}`,
        );
      }
    }
    const sources = (spec.sources ?? []).map((s) => {
      const from = this.#extentOf(s.id);
      if (
        !Number.isInteger(s.srcOffset) || !Number.isInteger(s.dstOffset) ||
        !Number.isInteger(s.length) || s.srcOffset < 0 || s.dstOffset < 0 || s.length < 0 ||
        s.srcOffset + s.length > from.bytes.length || s.dstOffset + s.length > size
      ) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `Source range [${s.srcOffset}, +${s.length}) of ${
            formatId(s.id)
          } -> ${s.dstOffset} does not fit`,
        );
      }
      return { data: from.bytes.subarray(s.srcOffset, s.srcOffset + s.length), at: s.dstOffset };
    });
    const id = this.#newId();
    const created = this.hal.clock.wallclock();

    if (lifetime === "volatile") {
      const bytes = new Uint8Array(new SharedArrayBuffer(size));
      for (const s of sources) bytes.set(s.data, s.at);
      this.#volatile.set(id, {
        extent: new Extent(bytes, -1),
        stat: {
          id,
          lifetime,
          size,
          capacity: size,
          prot,
          keyId,
          dependents: 0,
          created,
        },
        dependents: new Set(),
      });
      for (const parent of ties) {
        const v = this.#volatile.get(parent);
        if (v) v.dependents.add(id);
        else {
          let set = this.#volatileTies.get(parent);
          if (!set) this.#volatileTies.set(parent, set = new Set());
          set.add(id);
        }
      }
      return id;
    }

    const blocks = Math.ceil(size / BLOCK);
    const root = { ...this.#root };
    const newSlots = 1 + ties.length;
    if (root.slotsUsed + newSlots > this.geometry.tableSlots * MAX_LOAD) {
      throw new TwzError(
        ErrorCode.TableFull,
        `The object table is full (${root.objects} objects in ${this.geometry.tableSlots} slots)`,
      );
    }
    if (blocks > root.freeBlocks) {
      throw new TwzError(
        ErrorCode.OutOfSpace,
        `No space for ${size} bytes: ${root.freeBlocks * BLOCK} bytes free`,
      );
    }
    const tx = this.#log.begin();
    const start = this.#bitmap.find(tx, blocks, root.cursor);
    if (start < 0) {
      throw new TwzError(
        ErrorCode.OutOfSpace,
        `No contiguous run of ${size} bytes (${root.freeBlocks * BLOCK} bytes free in pieces)`,
      );
    }
    this.#bitmap.mark(tx, start, blocks, true);
    // Contents first: zeroed, sources copied, flushed; the commit's first drain
    // makes them durable before the object is published.
    const base = this.geometry.dataOffset + start * BLOCK;
    const region = this.hal.region;
    region.bytes.fill(0, base, base + blocks * BLOCK);
    for (const s of sources) region.bytes.set(s.data, base + s.at);
    region.flush(base, blocks * BLOCK);
    region.drain(); // contents durable before the log can commit (found by twz crashtest)

    const slot = this.#table.freeSlotForObject(id, tx);
    if (this.#table.state(slot, tx) !== TOMB) root.slotsUsed++;
    tx.put(
      this.#table.slotOffset(slot),
      encodeObject({ id, prot, start, blocks, size, keyId, ties: 0, created }),
    );
    for (const parent of ties) {
      const pslot = this.#table.findObject(parent);
      const p = this.#table.readObject(pslot);
      // Reuse the edge of a dependent deleted on its own, so a long-lived
      // parent's edges stay as many as its live dependents.
      let reuse = -1;
      for (let k = 0; k < p.ties && reuse < 0; k++) {
        const e = this.#table.findEdge(parent, k);
        if (e >= 0 && !this.#exists(this.#table.edgeChild(e))) {
          reuse = k;
          tx.put(this.#table.slotOffset(e), encodeEdge(parent, k, id));
        }
      }
      if (reuse >= 0) continue;
      const k = p.ties; // ties are distinct: no earlier put in `tx` wrote this parent's slot
      const eslot = this.#table.freeSlotForEdge(parent, k, tx);
      if (this.#table.state(eslot, tx) !== TOMB) root.slotsUsed++;
      tx.put(this.#table.slotOffset(eslot), encodeEdge(parent, k, id));
      tx.put(this.#table.slotOffset(pslot), encodeObject({ ...p, ties: k + 1 }));
    }
    root.objects++;
    root.freeBlocks -= blocks;
    root.cursor = start + blocks;
    if (asRoot) root.rootObject = id;
    this.#commit(tx, root);
    return id;
  }

  /**
   * Delete an object and, transitively, every object tied to it.
   *
   * @returns How many objects were deleted.
   * @throws {TwzError} `ObjectNotFound`.
   */
  delete(id: ObjID): number {
    this.#check();
    if (!this.#exists(id)) {
      throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(id)}`);
    }
    // Post-order: dependents before the objects they depend on, so that a
    // deletion split over several transactions never orphans a dependent.
    // An explicit stack: tie chains may be long.
    const order: ObjID[] = [];
    const seen = new Set<ObjID>([id]);
    const stack: Array<{ id: ObjID; children: ObjID[]; next: number }> = [
      { id, children: this.#dependentsOf(id), next: 0 },
    ];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.next < top.children.length) {
        const child = top.children[top.next++];
        if (!seen.has(child) && this.#exists(child)) {
          seen.add(child);
          stack.push({ id: child, children: this.#dependentsOf(child), next: 0 });
        }
      } else {
        order.push(top.id);
        stack.pop();
      }
    }
    let deleted = 0;
    let tx = this.#log.begin();
    let root = { ...this.#root };
    const freed: number[] = [];
    const commitBatch = () => {
      if (freed.length === 0 && tx.words.size === 0) return;
      root.slotsUsed += this.#table.release(tx, freed);
      this.#commit(tx, root);
      tx = this.#log.begin();
      root = { ...this.#root };
      freed.length = 0;
    };
    // Log bytes a record costs: its header, and its data padded to 8.
    const SLOT_COST = 16 + SLOT;
    // Room for the root record and the older tombstones a release may empty.
    const budget = this.#log.capacity - (2 + RELEASE_EXTRA) * SLOT_COST;
    // Refuse, before changing anything, an object whose own bitmap records
    // cannot fit one transaction (only possible on images whose log is small
    // for the objects grown in them).
    for (const x of order) {
      if (this.#volatile.has(x)) continue;
      const s = this.#table.readObject(this.#table.findObject(x));
      const need = (Math.ceil(s.blocks / 32) + 2) * 4 + 16 + SLOT_COST;
      if (need > budget) throw new LogFullError(need, this.#log.capacity);
    }
    for (const x of order) {
      deleted++;
      const v = this.#volatile.get(x);
      if (v) {
        this.#volatile.delete(x);
        this.#unlinkVolatile(x);
        v.extent.retarget(new Uint8Array(0), -1);
        continue;
      }
      const slot = this.#table.findObject(x);
      const s = this.#table.readObject(slot);
      // A parent with many tie edges frees them in batches of their own first
      // (its dependents are gone already; a crash in between leaves fewer
      // edges, which is consistent).
      for (let k = 0; k < s.ties; k++) {
        const e = this.#table.findEdge(x, k);
        if (e < 0) continue;
        if (tx.logBytes() + (freed.length + 2) * SLOT_COST > budget) commitBatch();
        freed.push(e);
      }
      const bitmapCost = (Math.ceil(s.blocks / 32) + 2) * 4 + 16;
      if (tx.logBytes() + (freed.length + 1) * SLOT_COST + bitmapCost > budget) commitBatch();
      this.#bitmap.mark(tx, s.start, s.blocks, false);
      freed.push(slot);
      root.objects--;
      root.freeBlocks += s.blocks;
      // Reuse freed space first: memory that was touched recently is warm
      // (mapped, cached), where next-fit onwards would fault in fresh pages.
      root.cursor = Math.min(root.cursor, s.start);
      this.#volatileTies.delete(x);
      const extent = this.#extents.get(x);
      if (extent) {
        extent.retarget(new Uint8Array(0), -1);
        this.#extents.delete(x);
      }
    }
    commitBatch();
    return deleted;
  }

  /** Forget a deleted volatile object in the dependents sets that name it. */
  #unlinkVolatile(x: ObjID): void {
    for (const v of this.#volatile.values()) v.dependents.delete(x);
    for (const set of this.#volatileTies.values()) set.delete(x);
  }

  #dependentsOf(id: ObjID): ObjID[] {
    const v = this.#volatile.get(id);
    if (v) return [...v.dependents];
    const out = [...(this.#volatileTies.get(id) ?? [])];
    const s = this.#table.readObject(this.#slotOf(id));
    for (let k = 0; k < s.ties; k++) {
      const e = this.#table.findEdge(id, k);
      if (e >= 0) out.push(this.#table.edgeChild(e));
    }
    return out;
  }

  /**
   * Facts about an object.
   *
   * @throws {TwzError} `ObjectNotFound`.
   */
  stat(id: ObjID): ObjectStat {
    this.#check();
    const v = this.#volatile.get(id);
    if (v) return { ...v.stat, dependents: v.dependents.size };
    return this.#statSlot(this.#table.readObject(this.#slotOf(id)));
  }

  #statSlot(s: ObjectSlot): ObjectStat {
    let dependents = this.#volatileTies.get(s.id)?.size ?? 0;
    for (let k = 0; k < s.ties; k++) {
      const e = this.#table.findEdge(s.id, k);
      if (e >= 0 && this.#table.findObject(this.#table.edgeChild(e)) >= 0) dependents++;
    }
    return {
      id: s.id,
      lifetime: "persistent",
      size: s.size,
      capacity: s.blocks * BLOCK,
      prot: s.prot,
      keyId: s.keyId,
      dependents,
      created: s.created,
    };
  }

  /**
   * The root object: a persistent object whose ID the kernel keeps in its root
   * record, so user space can find its well-known objects (the naming
   * service's root directory) on every boot. Created, zeroed and of
   * `ROOT_OBJECT_SIZE` bytes, on the first call on an image.
   */
  rootObject(): ObjID {
    this.#check();
    if (this.#root.rootObject !== 0n && this.#exists(this.#root.rootObject)) {
      return this.#root.rootObject;
    }
    // One commit makes the object and names it: a crash never leaves an
    // unnamed root object behind.
    return this.#create({ size: ROOT_OBJECT_SIZE }, true);
  }

  /**
   * The root object's ID as the root record keeps it, without creating one
   * (what fsck reads): `0n` when the image has none yet.
   */
  rootObjectId(): ObjID {
    this.#check();
    const id = this.#root.rootObject;
    return id !== 0n && this.#exists(id) ? id : 0n;
  }

  /** Whether an object exists. */
  exists(id: ObjID): boolean {
    this.#check();
    return this.#exists(id);
  }

  /** Every object, persistent ones in table order, then volatile ones. */
  list(): ObjectStat[] {
    this.#check();
    const out: ObjectStat[] = [];
    for (const i of this.#table.objects()) out.push(this.#statSlot(this.#table.readObject(i)));
    for (const v of this.#volatile.values()) out.push({ ...v.stat, dependents: v.dependents.size });
    return out;
  }

  /**
   * Grow an object to `size` bytes, in place when the blocks after it are
   * free, else by moving it. Its mappings follow; the new bytes read as zero.
   *
   * @throws {TwzError} `InvalidArgument` (smaller than now), `ObjectNotFound`, `OutOfSpace`.
   */
  grow(id: ObjID, size: number): void {
    this.#check();
    const v = this.#volatile.get(id);
    const current = v ? v.stat.size : this.#table.readObject(this.#slotOf(id)).size;
    if (!Number.isInteger(size) || size < current || size > MAX_OBJECT_SIZE) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Cannot grow ${formatId(id)} from ${current} to ${size} bytes`,
      );
    }
    if (v) {
      const bytes = new Uint8Array(new SharedArrayBuffer(size));
      bytes.set(v.extent.bytes);
      v.extent.retarget(bytes, -1);
      v.stat = { ...v.stat, size, capacity: size };
      return;
    }
    const slot = this.#slotOf(id);
    const s = this.#table.readObject(slot);
    const blocks = Math.ceil(size / BLOCK);
    const extra = blocks - s.blocks;
    const root = { ...this.#root };
    const tx = this.#log.begin();
    const region = this.hal.region;
    const dataOffset = this.geometry.dataOffset;
    let start = s.start;
    if (extra > 0) {
      if (extra > root.freeBlocks) {
        throw new TwzError(
          ErrorCode.OutOfSpace,
          `No space to grow ${formatId(id)} to ${size} bytes`,
        );
      }
      if (this.#bitmap.rangeFree(tx, s.start + s.blocks, extra)) {
        this.#bitmap.mark(tx, s.start + s.blocks, extra, true);
        const at = dataOffset + (s.start + s.blocks) * BLOCK;
        region.bytes.fill(0, at, at + extra * BLOCK);
        region.flush(at, extra * BLOCK);
      } else {
        start = this.#bitmap.find(tx, blocks, root.cursor);
        if (start < 0) {
          throw new TwzError(
            ErrorCode.OutOfSpace,
            `No contiguous run of ${size} bytes to move ${formatId(id)}`,
          );
        }
        this.#bitmap.mark(tx, start, blocks, true);
        this.#bitmap.mark(tx, s.start, s.blocks, false);
        const from = dataOffset + s.start * BLOCK;
        const to = dataOffset + start * BLOCK;
        region.bytes.copyWithin(to, from, from + s.blocks * BLOCK);
        region.bytes.fill(0, to + s.blocks * BLOCK, to + blocks * BLOCK);
        region.flush(to, blocks * BLOCK);
        root.cursor = start + blocks;
      }
      root.freeBlocks -= extra;
    } else {
      // Within the reserved blocks: bytes past the old size must read as zero.
      const base = dataOffset + s.start * BLOCK;
      region.bytes.fill(0, base + current, base + size);
      region.flush(base + current, size - current);
    }
    region.drain(); // contents durable before the log can commit (found by twz crashtest)
    tx.put(
      this.#table.slotOffset(slot),
      encodeObject({ ...s, start, blocks: Math.max(blocks, s.blocks), size }),
    );
    this.#commit(tx, root);
    const extent = this.#extents.get(id);
    if (extent) {
      const base = dataOffset + start * BLOCK;
      extent.retarget(region.bytes.subarray(base, base + size), base);
    }
  }

  /**
   * Map an object with protections `prot` (a subset of its defaults).
   *
   * @throws {TwzError} `ObjectNotFound`, `AccessDenied`.
   */
  map(id: ObjID, prot: number = Prot.ReadWrite): ObjectMapping {
    this.#check();
    const v = this.#volatile.get(id);
    const allowed = v ? v.stat.prot : this.#table.readObject(this.#slotOf(id)).prot;
    if ((prot & ~allowed) !== 0) {
      throw new TwzError(
        ErrorCode.AccessDenied,
        `Cannot map ${formatId(id)} ${formatProt(prot)}: its protections are ${
          formatProt(allowed)
        }`,
      );
    }
    return new ObjectMapping(id, v ? "volatile" : "persistent", prot, this.#extentOf(id), this);
  }

  /** @internal Flush a mapping's range (checks bounds). */
  flushRange(m: ObjectMapping, offset: number, length: number): void {
    const e = m.extent;
    if (offset < 0 || length < 0 || offset + length > e.bytes.length) {
      throw new RangeError(
        `Range [${offset}, ${offset + length}) is outside ${
          formatId(m.id)
        } (${e.bytes.length} bytes)`,
      );
    }
    if (m.lifetime === "persistent") this.hal.region.flush(e.base + offset, length);
  }

  /**
   * Read `length` bytes at `offset` of an object (a copy).
   *
   * @throws {TwzError} `ObjectNotFound`, `AccessDenied`; {RangeError} outside the object.
   */
  read(id: ObjID, offset: number, length: number): Uint8Array {
    const m = this.map(id, Prot.Read);
    checkObjectRange(m, offset, length);
    return m.bytes.slice(offset, offset + length);
  }

  /**
   * Write `data` at `offset` of an object and make it durable.
   *
   * @throws {TwzError} `ObjectNotFound`, `AccessDenied`; {RangeError} outside the object.
   */
  write(id: ObjID, offset: number, data: Uint8Array): void {
    const m = this.map(id, Prot.Write);
    checkObjectRange(m, offset, data.length);
    m.bytes.set(data, offset);
    m.persist(offset, data.length);
  }

  /** Free space and counts. */
  usage(): {
    objects: number;
    volatile: number;
    freeBytes: number;
    tableSlots: number;
    slotsUsed: number;
  } {
    return {
      objects: this.#root.objects,
      volatile: this.#volatile.size,
      freeBytes: this.#root.freeBlocks * BLOCK,
      tableSlots: this.geometry.tableSlots,
      slotsUsed: this.#root.slotsUsed,
    };
  }

  /** Whether {@linkcode shutdown} has run. */
  get isShutdown(): boolean {
    return this.#down;
  }

  /**
   * Stop at once without touching the image, as a power failure would: the
   * log is left for the next boot to replay. Mappings are emptied.
   */
  halt(): void {
    if (this.#down) return;
    this.#down = true;
    this.#forget();
  }

  /**
   * Stop: volatile objects are gone and every mapping is emptied. Metadata is
   * always durable, so nothing needs writing; the HAL's close writes back
   * object data that was stored but never persisted.
   */
  shutdown(): void {
    if (this.#down) return;
    this.#down = true;
    this.#log.clear();
    this.#forget();
  }

  #forget(): void {
    for (const e of this.#extents.values()) e.retarget(new Uint8Array(0), -1);
    for (const v of this.#volatile.values()) v.extent.retarget(new Uint8Array(0), -1);
    this.#extents.clear();
    this.#volatile.clear();
    this.#volatileTies.clear();
  }
}

function checkObjectRange(m: ObjectMapping, offset: number, length: number): void {
  if (
    !Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 ||
    offset + length > m.size
  ) {
    throw new RangeError(
      `Range [${offset}, ${offset + length}) is outside ${formatId(m.id)} (${m.size} bytes)`,
    );
  }
}

/** Bytes of kernel metadata per persistent object (one table slot). */
export const METADATA_BYTES_PER_OBJECT = SLOT;
export { BLOCK };

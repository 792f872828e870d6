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
  decodeBackupSuperblock,
  decodeSuperblock,
  encodeSuperblock,
  type Geometry,
  isBlank,
  isUnfinishedFormat,
  metadataTest,
  planGeometry,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
  SUPERBLOCK_BYTES,
  superblockDisagreement,
} from "./_layout.ts";
import { LogFullError, MetaLog, type MetaTx } from "./_log.ts";
import {
  type DamagedSlot,
  encodeEdge,
  encodeObject,
  type ObjectSlot,
  RELEASE_EXTRA,
  Table,
  TOMB,
} from "./_table.ts";
import { BlockBitmap } from "./_alloc.ts";
import { decodeRoot, encodeRoot, freshRoot, type Root } from "./_root.ts";
import { BLOCKS_PER_LINE, sealBitmap, writeEmptyTable } from "./_check.ts";

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
  /** `true` when the kernel runs read-only (every write is refused). */
  readOnly: boolean;
  /**
   * `true` when a read-only boot replayed a committed log into memory only:
   * the kernel sees the recovered state, the image file still holds the log.
   */
  overlay: boolean;
}

/** Options for {@linkcode Kernel.boot}. */
export interface BootOptions {
  /**
   * Format the image when its superblock magic is zero: an image the HAL
   * has just created, or one whose format was cut short (nothing ever
   * committed: see `isUnfinishedFormat`). An image holding a committed state
   * whose superblock was wiped is never formatted over, whatever this says.
   * The default formats only an image the HAL has just created.
   * @default {hal.created}
   */
  formatBlank?: boolean;
  /**
   * Run read-only: every mutating call throws `ReadOnly`, a committed log is
   * replayed into memory only, and nothing is flushed or drained. A HAL
   * that says `readOnly: true` always makes a read-only kernel.
   * @default {false}
   */
  readOnly?: boolean;
}

/** A table slot that fails its check or bounds, as {@linkcode Kernel.damaged} reports it. */
export type { DamagedSlot };

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
    if (this.lifetime === "persistent") this.kernel.drainRegion();
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
  readonly #readOnly: boolean;
  readonly #extents = new Map<ObjID, Extent>();
  readonly #volatile = new Map<ObjID, VolatileObject>();
  /** Volatile objects tied to persistent ones. */
  readonly #volatileTies = new Map<ObjID, Set<ObjID>>();

  private constructor(
    hal: Hal,
    geometry: Geometry,
    formatted: boolean,
    t0: number,
    readOnly: boolean,
  ) {
    this.hal = hal;
    this.geometry = geometry;
    this.#readOnly = readOnly;
    const bytes = hal.region.bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const g = geometry;
    this.#log = new MetaLog(hal.region, g.logOffset, g.logSize, metadataTest(g));
    this.#table = new Table(this.#view, geometry);
    this.#bitmap = new BlockBitmap(this.#view, geometry);
    const replayed = formatted ? 0 : this.#log.recover(!readOnly);
    this.#root = this.#readRoot();
    this.#bootChecks();
    this.report = {
      formatted,
      replayed,
      objects: this.#root.objects,
      ms: hal.clock.monotonic() - t0,
      size: geometry.regionSize,
      free: this.#root.freeBlocks * BLOCK,
      readOnly,
      overlay: readOnly && replayed > 0,
    };
  }

  /**
   * The constant-time checks of boot (never a walk of the table or bitmap):
   * the root record's counters, a fixed sample of table slots (all failing
   * means a zeroed or overwritten table), the root object's slot and the
   * bitmap lines and bits of its blocks, and the bitmap lines at the
   * allocation cursor.
   */
  #bootChecks(): void {
    const g = this.geometry, root = this.#root;
    const corrupt = (what: string) =>
      new TwzError(ErrorCode.ImageCorrupt, `${what}; run \`twz fsck\``);
    if (
      root.cursor > g.dataBlocks || root.freeBlocks > g.dataBlocks ||
      root.slotsUsed > g.tableSlots || root.objects > g.tableSlots
    ) {
      throw corrupt("the root record's counters are impossible for this image");
    }
    const SAMPLE = 8;
    let bad = 0;
    for (let k = 0; k < SAMPLE; k++) {
      if (!this.#table.sound(Math.floor((k * g.tableSlots) / SAMPLE))) bad++;
    }
    if (bad === SAMPLE) {
      throw corrupt(
        `the object table is damaged: all ${SAMPLE} sampled slots fail their checks (zeroed or overwritten)`,
      );
    }
    const lines = new Set<number>();
    const cursor = Math.min(root.cursor, g.dataBlocks - 1);
    lines.add(Math.floor(cursor / BLOCKS_PER_LINE));
    if (cursor > 0) lines.add(Math.floor((cursor - 1) / BLOCKS_PER_LINE));
    const used: number[] = [];
    if (root.rootObject !== 0n) {
      const { slot, damaged } = this.#table.lookupObject(root.rootObject);
      if (slot < 0 && damaged) {
        throw corrupt(
          `the root object ${
            formatId(root.rootObject)
          } is damaged (table slot ${damaged.slot}: ${damaged.reason})`,
        );
      }
      if (slot >= 0) {
        const s = this.#table.readObject(slot);
        used.push(s.start, s.start + s.blocks - 1);
        for (const b of used) lines.add(Math.floor(b / BLOCKS_PER_LINE));
      }
    }
    for (const l of lines) {
      if (!this.#bitmap.lineSound(l)) {
        throw corrupt(
          `the block bitmap is damaged (line ${l}, blocks ${l * BLOCKS_PER_LINE}-${
            Math.min(g.dataBlocks, (l + 1) * BLOCKS_PER_LINE) - 1
          }, fails its check)`,
        );
      }
    }
    const tx = this.#log.begin();
    for (const b of used) {
      if (this.#bitmap.isFree(tx, b)) {
        throw corrupt(`the block bitmap is damaged: block ${b} of the root object is marked free`);
      }
    }
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
    // A read-only HAL makes a read-only kernel, whatever the options say.
    const readOnly = (options.readOnly ?? false) || (hal.readOnly ?? false);
    let formatted = false;
    const backupHint = (what: string): TwzError | undefined => {
      try {
        decodeBackupSuperblock(bytes);
      } catch {
        return undefined;
      }
      return new TwzError(
        ErrorCode.ImageCorrupt,
        `${what}; its backup copy (at offset ${SUPERBLOCK_BACKUP_OFFSET}) is intact: run \`twz fsck --repair${
          hal.image ? ` --image ${hal.image}` : ""
        }\` to restore the superblock from it`,
      );
    };
    if (isBlank(bytes)) {
      // Format a new image, or (when asked) one whose format was cut short;
      // never an image holding a committed state whose superblock was wiped.
      const format = (options.formatBlank ?? hal.created) &&
        (hal.created || isUnfinishedFormat(bytes));
      if (!format) {
        throw backupHint("the superblock has no magic: it was wiped") ?? new TwzError(
          ErrorCode.ImageCorrupt,
          "the image has no superblock magic: it was never (completely) formatted, or its superblock was wiped; remove it to start afresh",
        );
      }
      if (readOnly) {
        throw new TwzError(
          ErrorCode.ReadOnly,
          "the image is open read-only: cannot format it (it has no superblock)",
        );
      }
      Kernel.#format(hal);
      formatted = true;
    }
    let geometry: Geometry;
    try {
      geometry = decodeSuperblock(bytes, { image: hal.image });
    } catch (error) {
      if (error instanceof TwzError && error.code === ErrorCode.ImageCorrupt) {
        throw backupHint(error.message) ?? error;
      }
      throw error;
    }
    // Both copies intact but different (a wrong value sealed with its CRC in
    // one of them): which one the table agrees with is fsck's to find out
    // (constant time here: 256 bytes compared).
    const differs = formatted ? undefined : superblockDisagreement(bytes);
    if (differs !== undefined) {
      throw new TwzError(
        ErrorCode.ImageCorrupt,
        `the superblock and its backup copy disagree (field ${differs}): run \`twz fsck --repair${
          hal.image ? ` --image ${hal.image}` : ""
        }\``,
      );
    }
    return new Kernel(hal, geometry, formatted, t0, readOnly);
  }

  static #format(hal: Hal): void {
    const region = hal.region;
    const storeId = new Uint8Array(16);
    hal.entropy.fill(storeId);
    const g = planGeometry(region.size, storeId, hal.clock.wallclock());
    // Metadata first: an empty log, a table of sealed empty slots (a zeroed
    // slot fails its check), a free bitmap with its line checks; then the
    // fresh root record; then the backup superblock; then the superblock, its
    // magic last of all (one aligned 8-byte store): until the magic is
    // durable the image is still blank, and a fresh root record (generation
    // 0) says nothing was ever committed (see isUnfinishedFormat).
    const bytes = region.bytes;
    bytes.fill(0, g.rootOffset, g.dataOffset);
    writeEmptyTable(bytes, g);
    sealBitmap(bytes, g);
    region.flush(g.rootOffset, g.dataOffset - g.rootOffset);
    region.drain();
    const root = encodeRoot(freshRoot(g.dataBlocks));
    bytes.set(root, g.rootOffset);
    region.persist(g.rootOffset, root.length);
    const sb = encodeSuperblock(g);
    bytes.fill(0, SUPERBLOCK_BYTES, g.rootOffset);
    bytes.set(sb, SUPERBLOCK_BACKUP_OFFSET);
    region.persist(SUPERBLOCK_BYTES, g.rootOffset - SUPERBLOCK_BYTES);
    bytes.set(sb.subarray(8), 8);
    region.persist(8, SUPERBLOCK_BYTES - 8);
    bytes.set(sb.subarray(0, 8), 0);
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

  /** Refuse `what` (e.g. "create an object") on a read-only kernel. */
  #writable(what: string): void {
    if (this.#readOnly) {
      throw new TwzError(ErrorCode.ReadOnly, `the image is open read-only: cannot ${what}`);
    }
  }

  /** Whether the kernel runs read-only (see {@linkcode BootOptions.readOnly}). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  #newId(): ObjID {
    const bytes = new Uint8Array(16);
    for (let tries = 0;; tries++) {
      this.hal.entropy.fill(bytes);
      const id = idFromBytes(bytes);
      if (this.#volatile.has(id)) continue;
      // An ID whose probe chain crosses a damaged slot is not used either.
      const { slot, damaged } = this.#table.lookupObject(id);
      if (slot < 0 && !damaged) return id;
      if (damaged && tries >= 64) {
        throw new TwzError(
          ErrorCode.ImageCorrupt,
          `the object table is too damaged to place a new object (table slot ${damaged.slot}: ${damaged.reason}); run \`twz fsck\``,
        );
      }
    }
  }

  /**
   * Whether `id` exists.
   *
   * @throws {TwzError} `ObjectDamaged` when its slot (or an untrustworthy
   * slot on its probe chain) is damaged.
   */
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
    this.#table.committed(tx);
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
    // Volatile objects never touch the image: a read-only kernel makes them.
    if (lifetime !== "volatile") {
      this.#writable(asRoot ? "create the root object" : "create an object");
    }
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
    if (slot < 0) throw this.#tableFull(root);
    if (this.#table.state(slot, tx) !== TOMB) root.slotsUsed++;
    this.#table.put(
      tx,
      slot,
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
          this.#table.put(tx, e, encodeEdge(parent, k, id));
        }
      }
      if (reuse >= 0) continue;
      const k = p.ties; // ties are distinct: no earlier put in `tx` wrote this parent's slot
      const eslot = this.#table.freeSlotForEdge(parent, k, tx);
      if (eslot < 0) throw this.#tableFull(root);
      if (this.#table.state(eslot, tx) !== TOMB) root.slotsUsed++;
      this.#table.put(tx, eslot, encodeEdge(parent, k, id));
      this.#table.put(tx, pslot, encodeObject({ ...p, ties: k + 1 }));
    }
    root.objects++;
    root.freeBlocks -= blocks;
    root.cursor = start + blocks;
    if (asRoot) root.rootObject = id;
    this.#commit(tx, root);
    return id;
  }

  /** TableFull (no free slot left: only possible when many slots are damaged). */
  #tableFull(root: Root): TwzError {
    return new TwzError(
      ErrorCode.TableFull,
      `The object table has no free slot (${root.objects} objects in ${this.geometry.tableSlots} slots)`,
    );
  }

  /**
   * Delete an object and, transitively, every object tied to it.
   *
   * @returns How many objects were deleted.
   * @throws {TwzError} `ObjectNotFound`.
   */
  delete(id: ObjID): number {
    this.#check();
    if (!this.#volatile.has(id)) this.#writable("delete an object");
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
      const s = this.#table.readObject(this.#slotOf(x));
      const need = bitmapCost(s.blocks) + SLOT_COST;
      if (need > budget) throw new LogFullError(need, this.#log.capacity);
      // A damaged bitmap line refuses the whole delete before anything changes.
      this.#bitmap.checkRange(s.start, s.blocks);
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
      if (tx.logBytes() + (freed.length + 1) * SLOT_COST + bitmapCost(s.blocks) > budget) {
        commitBatch();
      }
      this.#bitmap.mark(tx, s.start, s.blocks, false);
      freed.push(slot);
      root.objects--;
      root.freeBlocks += s.blocks;
      // Deleting the root object forgets it in the same commit, so a root
      // record never names a missing object unless it is damaged.
      if (x === root.rootObject) root.rootObject = 0n;
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
   * @throws {TwzError} `ObjectNotFound`, `ObjectDamaged`.
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
      if (e < 0) continue;
      // A damaged dependent still counts: it is there, quarantined.
      const child = this.#table.lookupObject(this.#table.edgeChild(e));
      if (child.slot >= 0 || child.damaged?.id !== undefined) dependents++;
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
   *
   * @throws {TwzError} `ImageCorrupt` when the root record names an object
   * that does not exist (never replaced by a fresh, empty one), `ReadOnly`
   * when one would be created on a read-only kernel.
   */
  rootObject(): ObjID {
    this.#check();
    const named = this.#root.rootObject;
    if (named !== 0n) {
      if (this.#exists(named)) return named;
      // The record names an object that is not there: creating a fresh, empty
      // root object would silently hide every name. Refuse and let fsck find it.
      throw new TwzError(
        ErrorCode.ImageCorrupt,
        `the root record names root object ${
          formatId(named)
        }, which does not exist: run \`twz fsck --repair\``,
      );
    }
    this.#writable("create the root object");
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

  /**
   * Every object, persistent ones in table order, then volatile ones.
   * Damaged (quarantined) objects are left out: {@linkcode Kernel.damaged}
   * lists them. An object whose tie edges cannot be read is listed with the
   * dependents that could be counted.
   */
  list(): ObjectStat[] {
    this.#check();
    const out: ObjectStat[] = [];
    for (const i of this.#table.objects()) {
      const s = this.#table.readObject(i);
      try {
        out.push(this.#statSlot(s));
      } catch (error) {
        if (!(error instanceof TwzError) || error.code !== ErrorCode.ObjectDamaged) throw error;
        out.push({
          id: s.id,
          lifetime: "persistent",
          size: s.size,
          capacity: s.blocks * BLOCK,
          prot: s.prot,
          keyId: s.keyId,
          dependents: 0,
          created: s.created,
        });
      }
    }
    for (const v of this.#volatile.values()) out.push({ ...v.stat, dependents: v.dependents.size });
    return out;
  }

  /**
   * Every table slot that fails its check or bounds: the quarantined objects
   * (with the ID their slot names, untrusted) and other damaged slots. A full
   * scan of the table (like `list`); `twz fsck` repairs them.
   */
  damaged(): DamagedSlot[] {
    this.#check();
    return this.#table.damaged();
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
    if (!v) this.#writable("grow an object");
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
    this.#table.put(
      tx,
      slot,
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
    if (!v && (prot & Prot.Write) !== 0) this.#writable(`map ${formatId(id)} writable`);
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
    if (m.lifetime === "persistent" && !this.#readOnly) {
      this.hal.region.flush(e.base + offset, length);
    }
  }

  /** @internal Drain for a mapping (nothing on a read-only kernel). */
  drainRegion(): void {
    if (!this.#readOnly) this.hal.region.drain();
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
    this.#check();
    if (!this.#volatile.has(id)) this.#writable("write an object");
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
    if (!this.#readOnly) this.#log.clear();
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

/**
 * Log bytes the bitmap records of freeing or marking `blocks` blocks may take:
 * their words (one run, maybe split over two lines more) and their line checks.
 */
function bitmapCost(blocks: number): number {
  const words = Math.ceil(blocks / 32) + 2;
  const lines = Math.ceil(blocks / BLOCKS_PER_LINE) + 2;
  return words * 4 + 16 + lines * (16 + 8);
}

/** Bytes of kernel metadata per persistent object (one table slot). */
export const METADATA_BYTES_PER_OBJECT = SLOT;
export { BLOCK };

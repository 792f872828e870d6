/**
 * The persistent store: objects in the persistent region, found through the
 * object table, placed by the block bitmap, and changed only through
 * transactions of the metadata log (see `_log.ts`), each of which also writes
 * the root record. It formats a blank region, and checks a recovered one at
 * boot in constant time.
 *
 * @module
 */
import type { Hal, PersistentRegion } from "./hal/mod.ts";
import {
  ErrorCode,
  formatId,
  type Lifetime,
  type ObjectStat,
  type ObjID,
  Prot,
  TwzError,
} from "./abi/mod.ts";
import {
  BLOCK,
  encodeSuperblock,
  type Geometry,
  metadataTest,
  planGeometry,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
  SUPERBLOCK_BYTES,
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
import { Extent } from "./_mapping.ts";
import {
  accessDenied,
  type ObjectStore,
  readOnlyError,
  type SourceCopy,
  type VolatileStore,
} from "./_store.ts";

/** The table is refused new slots beyond this load factor. */
const MAX_LOAD = 0.9;
/** Log bytes a table-slot record costs: its header, and its data padded to 8. */
const SLOT_COST = 16 + SLOT;

/**
 * Format `hal`'s region: metadata first, the superblock's magic last.
 */
export function formatRegion(hal: Hal): void {
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

/**
 * Log bytes the bitmap records of freeing or marking `blocks` blocks may take:
 * their words (one run, maybe split over two lines more) and their line checks.
 */
function bitmapCost(blocks: number): number {
  const words = Math.ceil(blocks / 32) + 2;
  const lines = Math.ceil(blocks / BLOCKS_PER_LINE) + 2;
  return words * 4 + 16 + lines * (16 + 8);
}

/** Objects in the persistent region (see the module doc). */
export class PersistentStore implements ObjectStore {
  readonly lifetime: Lifetime = "persistent";
  readonly durable = true;
  readonly geometry: Geometry;
  /** Metadata log records replayed by recovery at boot. */
  readonly replayed: number;
  readonly #hal: Hal;
  readonly #log: MetaLog;
  readonly #table: Table;
  readonly #bitmap: BlockBitmap;
  readonly #volatile: VolatileStore;
  readonly #halt: () => void;
  readonly #readOnly: boolean;
  #root: Root;
  readonly #extents = new Map<ObjID, Extent>();
  // A delete in progress (beginDelete … endDelete).
  #tx: MetaTx | undefined;
  #next: Root | undefined;
  readonly #freed: number[] = [];
  #budget = 0;

  /**
   * Open the store over `hal`'s region: recover the log (into memory only
   * when `readOnly`), read the root record, run the boot checks.
   *
   * @param volatile The volatile store (an ID lives in one store only).
   * @param halt Stops the kernel (after a failed commit).
   * @throws {TwzError} `ImageCorrupt`.
   */
  constructor(
    hal: Hal,
    geometry: Geometry,
    formatted: boolean,
    readOnly: boolean,
    volatile: VolatileStore,
    halt: () => void,
  ) {
    this.#hal = hal;
    this.geometry = geometry;
    this.#volatile = volatile;
    this.#halt = halt;
    this.#readOnly = readOnly;
    const bytes = hal.region.bytes;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const g = geometry;
    this.#log = new MetaLog(hal.region, g.logOffset, g.logSize, metadataTest(g));
    this.#table = new Table(view, geometry);
    this.#bitmap = new BlockBitmap(view, geometry);
    this.replayed = formatted ? 0 : this.#log.recover(!readOnly);
    this.#root = this.#readRoot();
    this.#bootChecks();
  }

  /** The root record as last committed. */
  get root(): Readonly<Root> {
    return this.#root;
  }

  #readRoot(): Root {
    const root = decodeRoot(this.#hal.region.bytes, this.geometry.rootOffset);
    if (!root) {
      throw new TwzError(ErrorCode.ImageCorrupt, "the root record is damaged (bad checksum)");
    }
    return root;
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
   * Whether a fresh random `id` may be used (the `tries`-th try): not when
   * the table holds it, nor when its probe chain crosses a damaged slot.
   *
   * @throws {TwzError} `ImageCorrupt` when damaged slots keep refusing IDs.
   */
  idFree(id: ObjID, tries: number): boolean {
    const { slot, damaged } = this.#table.lookupObject(id);
    if (slot < 0 && !damaged) return true;
    if (damaged && tries >= 64) {
      throw new TwzError(
        ErrorCode.ImageCorrupt,
        `the object table is too damaged to place a new object (table slot ${damaged.slot}: ${damaged.reason}); run \`twz fsck\``,
      );
    }
    return false;
  }

  has(id: ObjID): boolean {
    return this.#table.findObject(id) >= 0;
  }

  #slotOf(id: ObjID): number {
    const slot = this.#table.findObject(id);
    if (slot < 0) {
      throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(id)}`);
    }
    return slot;
  }

  prot(id: ObjID): number {
    return this.#table.readObject(this.#slotOf(id)).prot;
  }

  size(id: ObjID): number {
    return this.#table.readObject(this.#slotOf(id)).size;
  }

  extent(id: ObjID): Extent {
    return this.#extents.get(id) ?? this.#newExtent(id, this.#table.readObject(this.#slotOf(id)));
  }

  #newExtent(id: ObjID, s: ObjectSlot): Extent {
    const base = this.geometry.dataOffset + s.start * BLOCK;
    const extent = new Extent(this.#hal.region.bytes.subarray(base, base + s.size), base);
    this.#extents.set(id, extent);
    return extent;
  }

  open(id: ObjID, prot: number, allowed?: number): Extent {
    const s = this.#table.readObject(this.#slotOf(id));
    if (this.#readOnly && (prot & Prot.Write) !== 0) {
      throw readOnlyError(`map ${formatId(id)} writable`);
    }
    const limit = allowed ?? s.prot;
    if ((prot & ~limit) !== 0) throw accessDenied(id, prot, limit);
    return this.#extents.get(id) ?? this.#newExtent(id, s);
  }

  stat(id: ObjID, volatileDependents: number): ObjectStat {
    return this.#statSlot(this.#table.readObject(this.#slotOf(id)), volatileDependents);
  }

  #statSlot(s: ObjectSlot, volatileDependents: number): ObjectStat {
    let dependents = volatileDependents;
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

  pushDependents(id: ObjID, out: ObjID[]): void {
    const s = this.#table.readObject(this.#slotOf(id));
    for (let k = 0; k < s.ties; k++) {
      const e = this.#table.findEdge(id, k);
      if (e >= 0) out.push(this.#table.edgeChild(e));
    }
  }

  /**
   * Every object in table order. An object whose tie edges cannot be read is
   * listed with the dependents that could be counted.
   */
  list(out: ObjectStat[], volatile: VolatileStore): void {
    for (const i of this.#table.objects()) {
      const s = this.#table.readObject(i);
      try {
        out.push(this.#statSlot(s, volatile.dependentCount(s.id)));
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
  }

  /** Every table slot that fails its check or bounds (a full scan). */
  damaged(): DamagedSlot[] {
    return this.#table.damaged();
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
      if (!(error instanceof LogFullError)) this.#halt();
      throw error;
    }
    this.#table.committed(tx);
    this.#root = root;
  }

  create(
    id: ObjID,
    size: number,
    prot: number,
    keyId: ObjID,
    ties: ObjID[],
    sources: SourceCopy[],
    created: number,
    asRoot: boolean,
  ): void {
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
    const region = this.#hal.region;
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
        if (e >= 0 && !this.#live(this.#table.edgeChild(e))) {
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
  }

  /** Whether `id` exists in either store (an edge's child that is gone may be reused). */
  #live(id: ObjID): boolean {
    return this.#volatile.has(id) || this.#table.findObject(id) >= 0;
  }

  /** TableFull (no free slot left: only possible when many slots are damaged). */
  #tableFull(root: Root): TwzError {
    return new TwzError(
      ErrorCode.TableFull,
      `The object table has no free slot (${root.objects} objects in ${this.geometry.tableSlots} slots)`,
    );
  }

  grow(id: ObjID, current: number, size: number): void {
    const slot = this.#slotOf(id);
    const s = this.#table.readObject(slot);
    const blocks = Math.ceil(size / BLOCK);
    const extra = blocks - s.blocks;
    const root = { ...this.#root };
    const tx = this.#log.begin();
    const region = this.#hal.region;
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

  beginDelete(): void {
    this.#tx = this.#log.begin();
    this.#next = { ...this.#root };
    this.#freed.length = 0;
    // Room for the root record and the older tombstones a release may empty.
    this.#budget = this.#log.capacity - (2 + RELEASE_EXTRA) * SLOT_COST;
  }

  /**
   * Refuse an object whose own bitmap records cannot fit one transaction
   * (only possible on images whose log is small for the objects grown in
   * them), or whose bitmap lines are damaged.
   */
  checkDelete(id: ObjID): void {
    const s = this.#table.readObject(this.#slotOf(id));
    const need = bitmapCost(s.blocks) + SLOT_COST;
    if (need > this.#budget) throw new LogFullError(need, this.#log.capacity);
    // A damaged bitmap line refuses the whole delete before anything changes.
    this.#bitmap.checkRange(s.start, s.blocks);
  }

  /** Commit what the delete has freed so far, and start the next batch. */
  #commitBatch(): void {
    const tx = this.#tx!, root = this.#next!, freed = this.#freed;
    if (freed.length === 0 && tx.words.size === 0) return;
    root.slotsUsed += this.#table.release(tx, freed);
    this.#commit(tx, root);
    this.#tx = this.#log.begin();
    this.#next = { ...this.#root };
    freed.length = 0;
  }

  remove(x: ObjID): void {
    const freed = this.#freed, budget = this.#budget;
    const slot = this.#table.findObject(x);
    const s = this.#table.readObject(slot);
    // A parent with many tie edges frees them in batches of their own first
    // (its dependents are gone already; a crash in between leaves fewer
    // edges, which is consistent).
    for (let k = 0; k < s.ties; k++) {
      const e = this.#table.findEdge(x, k);
      if (e < 0) continue;
      if (this.#tx!.logBytes() + (freed.length + 2) * SLOT_COST > budget) this.#commitBatch();
      freed.push(e);
    }
    if (this.#tx!.logBytes() + (freed.length + 1) * SLOT_COST + bitmapCost(s.blocks) > budget) {
      this.#commitBatch();
    }
    const root = this.#next!;
    this.#bitmap.mark(this.#tx!, s.start, s.blocks, false);
    freed.push(slot);
    root.objects--;
    root.freeBlocks += s.blocks;
    // Deleting the root object forgets it in the same commit, so a root
    // record never names a missing object unless it is damaged.
    if (x === root.rootObject) root.rootObject = 0n;
    // Reuse freed space first: memory that was touched recently is warm
    // (mapped, cached), where next-fit onwards would fault in fresh pages.
    root.cursor = Math.min(root.cursor, s.start);
    this.#volatile.dropParent(x);
    const extent = this.#extents.get(x);
    if (extent) {
      extent.retarget(new Uint8Array(0), -1);
      this.#extents.delete(x);
    }
  }

  endDelete(): void {
    this.#commitBatch();
    this.#tx = this.#next = undefined;
  }

  /** Empty the log (a clean shutdown). */
  clearLog(): void {
    this.#log.clear();
  }

  forget(): void {
    for (const e of this.#extents.values()) e.retarget(new Uint8Array(0), -1);
    this.#extents.clear();
  }

  /** The region (for the flushes of mappings). */
  get region(): PersistentRegion {
    return this.#hal.region;
  }
}

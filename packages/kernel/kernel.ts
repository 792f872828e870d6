/**
 * The kernel: formats and recovers an image, and manages objects in it.
 *
 * @module
 */
import type { GlobalHook } from "./global.ts";
import type { Hal } from "./hal/mod.ts";
import {
  type CreateSpec,
  DEFAULT_OBJECT_SIZE,
  ErrorCode,
  formatId,
  idFromBytes,
  isValidId,
  type ObjectStat,
  type ObjID,
  Prot,
  TwzError,
} from "./abi/mod.ts";
import { deriveObjectId } from "./abi/security.ts";
import {
  BLOCK,
  decodeBackupSuperblock,
  decodeSuperblock,
  type Geometry,
  isBlank,
  isUnfinishedFormat,
  SLOT,
  SUPERBLOCK_BACKUP_OFFSET,
  superblockDisagreement,
} from "./_layout.ts";
import type { DamagedSlot } from "./_table.ts";
import { Extent, ObjectMapping } from "./_mapping.ts";
import {
  accessDenied,
  type ObjectStore,
  ownedElsewhere,
  readOnlyError,
  type SourceCopy,
  VolatileStore,
} from "./_store.ts";
import { formatRegion, PersistentStore } from "./_persistent.ts";
import { LocalPort, type ThreadService } from "./_port.ts";
import { Security } from "./_security.ts";

export { Extent, ObjectMapping };

/** The most objects one create may tie a new object to. */
export const MAX_TIES = 256;
/** Size of the root object (see {@linkcode Kernel.rootObject}). */
export const ROOT_OBJECT_SIZE = 65536;
/** The largest object: sizes are stored in 32 bits. */
export const MAX_OBJECT_SIZE = 0xffffffff;

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
   * A random non-zero 32-bit number drawn at boot (from the platform's
   * random source, not the HAL's seeded entropy, so object IDs stay
   * reproducible): user space tags volatile state it keeps in persistent
   * memory, such as a lock word, with it, and treats another boot's tag as
   * stale (see `@twz/libtwz/sync`).
   */
  bootId: number;
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

/**
 * The Twizzler kernel over one HAL.
 *
 * Objects live in one of two stores (`_store.ts`): the persistent store (the
 * object table, allocator and metadata log over the region) and the volatile
 * store (objects in DRAM). The kernel checks arguments and permissions and
 * hands each call to the store that holds the ID.
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
  /** The HAL the kernel runs on. */
  readonly hal: Hal;
  /** The image's geometry, from its superblock. */
  readonly geometry: Geometry;
  /** What boot found and did. */
  readonly report: BootReport;
  readonly #persistent: PersistentStore;
  readonly #volatile = new VolatileStore();
  #down = false;
  #handles = 1;
  #port: LocalPort | undefined;
  #threads: ThreadService | undefined;
  #security: Security | undefined;
  readonly #readOnly: boolean;
  /**
   * @internal Thread manager hook (threads/manager.ts): called before `grow`
   * or `delete` changes objects, with every ID about to move or go (ties included), so
   * that threads mapping them let go first (cooperative unmap). It may throw
   * (a thread that does not let go): then nothing has changed.
   */
  onObjectChange: ((ids: readonly ObjID[], why: "grow" | "delete") => void) | undefined = undefined;
  /**
   * The global object space, when this system is a node of a cluster
   * (`global.ts`; installed by the board). `undefined`: a single system.
   */
  global: GlobalHook | undefined = undefined;
  /**
   * @internal Thread manager hook (threads/manager.ts): called first in
   * `shutdown` (`"reboot"` when the system boots again at once) and `halt`.
   */
  onStop: ((why: "shutdown" | "reboot" | "halt") => void) | undefined = undefined;

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
    const p = new PersistentStore(
      hal,
      geometry,
      formatted,
      readOnly,
      this.#volatile,
      () => this.halt(),
    );
    this.#persistent = p;
    const root = p.root;
    this.report = {
      formatted,
      replayed: p.replayed,
      objects: root.objects,
      ms: hal.clock.monotonic() - t0,
      size: geometry.regionSize,
      free: root.freeBlocks * BLOCK,
      readOnly,
      overlay: readOnly && p.replayed > 0,
      bootId: crypto.getRandomValues(new Uint32Array(1))[0]! || 1,
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
      formatRegion(hal);
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

  #check(): void {
    if (this.#down) throw new TwzError(ErrorCode.Shutdown, "The kernel has been shut down");
  }

  /** Refuse `what` (e.g. "create an object") on a read-only kernel. */
  #writable(what: string): void {
    if (this.#readOnly) throw readOnlyError(what);
  }

  /** Whether the kernel runs read-only (see {@linkcode BootOptions.readOnly}). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** The store that holds `id` (the persistent one when neither does). */
  #storeOf(id: ObjID): ObjectStore {
    return this.#volatile.has(id) ? this.#volatile : this.#persistent;
  }

  /**
   * The ID of a keyed object: `deriveObjectId(nonce, keyId, 0, prot)`, the
   * nonce the caller's or random (drawn again while the ID is invalid or taken).
   */
  #keyedNewId(keyId: ObjID, prot: number, nonce: bigint | undefined): ObjID {
    if (!this.security.isKeyObject(keyId)) {
      throw new TwzError(ErrorCode.InvalidArgument, `Key ${formatId(keyId)} is not a key object`);
    }
    if (nonce !== undefined) {
      if (typeof nonce !== "bigint" || nonce < 0n || nonce >= 1n << 128n) {
        throw new TwzError(ErrorCode.InvalidArgument, `nonce ${nonce} is not a 128-bit number`);
      }
      const id = deriveObjectId(nonce, keyId, 0, prot);
      if (!isValidId(id)) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `nonce ${nonce} derives an invalid ID (upper half zero): choose another`,
        );
      }
      if (this.#volatile.has(id) || !this.#persistent.idFree(id, 0)) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `nonce ${nonce} derives the ID of an existing object (${formatId(id)})`,
        );
      }
      return id;
    }
    const bytes = new Uint8Array(16);
    for (let tries = 0;; tries++) {
      this.hal.entropy.fill(bytes);
      let n = 0n;
      for (let i = 15; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
      const id = deriveObjectId(n, keyId, 0, prot);
      if (!isValidId(id) || this.#volatile.has(id)) continue;
      if (this.#persistent.idFree(id, tries)) return id;
    }
  }

  /** @internal The ID `deriveObjectId(nonce, keyId, flags, prot)` (for key objects' private IDs). */
  keyedId(nonce: bigint, keyId: ObjID, prot: number): ObjID {
    return deriveObjectId(nonce, keyId, 0, prot);
  }

  #newId(): ObjID {
    const bytes = new Uint8Array(16);
    for (let tries = 0;; tries++) {
      this.hal.entropy.fill(bytes);
      const id = idFromBytes(bytes);
      if (this.#volatile.has(id)) continue;
      // An ID whose probe chain crosses a damaged slot is not used either.
      if (this.#persistent.idFree(id, tries)) return id;
    }
  }

  /**
   * Whether `id` exists.
   *
   * @throws {TwzError} `ObjectDamaged` when its slot (or an untrustworthy
   * slot on its probe chain) is damaged.
   */
  #exists(id: ObjID): boolean {
    return this.#volatile.has(id) || this.#persistent.has(id);
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
    const store: ObjectStore = lifetime === "volatile" ? this.#volatile : this.#persistent;
    for (const parent of ties) {
      if (!this.#exists(parent)) {
        throw new TwzError(
          ErrorCode.ObjectNotFound,
          `Cannot tie to ${formatId(parent)}: no such object`,
        );
      }
      // A store keeps ties to its own objects and to more durable ones.
      if (store.durable && this.#volatile.has(parent)) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `A persistent object cannot be tied to volatile ${formatId(parent)}`,
        );
      }
    }
    const sources = (spec.sources ?? []).map((s): SourceCopy => {
      const from = this.#storeOf(s.id).extent(s.id);
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
    const id = keyId === 0n ? this.#newId() : this.#keyedNewId(keyId, prot, spec.nonce);
    const created = this.hal.clock.wallclock();
    store.create(id, size, prot, keyId, ties, sources, created, asRoot);
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
      const top = stack[stack.length - 1]!;
      if (top.next < top.children.length) {
        const child = top.children[top.next++]!;
        if (!seen.has(child) && this.#exists(child)) {
          seen.add(child);
          stack.push({ id: child, children: this.#dependentsOf(child), next: 0 });
        }
      } else {
        order.push(top.id);
        stack.pop();
      }
    }
    this.onObjectChange?.(order, "delete"); // threads let go first (may throw: nothing changed yet)
    const persistent = this.#persistent, volatile = this.#volatile;
    persistent.beginDelete();
    volatile.beginDelete();
    // Refuse, before changing anything, what a store cannot delete.
    for (const x of order) this.#storeOf(x).checkDelete(x);
    let deleted = 0;
    for (const x of order) {
      deleted++;
      this.#storeOf(x).remove(x);
    }
    volatile.endDelete();
    persistent.endDelete();
    this.#security?.forget(order);
    return deleted;
  }

  /** The objects tied to `id`: volatile ones first, then the store's own. */
  #dependentsOf(id: ObjID): ObjID[] {
    const out = this.#volatile.dependentsOf(id);
    this.#storeOf(id).pushDependents(id, out);
    return out;
  }

  /**
   * The objects tied to `id`, which {@linkcode Kernel.delete} deletes with
   * it (one level: the same lookup as its cascade): volatile ones first,
   * then the persistent tie edges of `id`, each once. A dependent that is no
   * longer there (quarantined) is left out; `stat(id).dependents` counts it.
   *
   * @throws {TwzError} `ObjectNotFound`, `ObjectDamaged` (as {@linkcode Kernel.stat}).
   */
  dependents(id: ObjID): ObjID[] {
    this.#check();
    if (this.global !== undefined && !this.#exists(id)) this.global.fetchMissing(id);
    const out: ObjID[] = [];
    for (const child of new Set(this.#dependentsOf(id))) {
      if (this.#exists(child)) out.push(child);
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
    if (this.global !== undefined && !this.#exists(id)) this.global.fetchMissing(id);
    return this.#storeOf(id).stat(id, this.#volatile.dependentCount(id));
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
    const named = this.#persistent.root.rootObject;
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
    const id = this.#persistent.root.rootObject;
    return id !== 0n && this.#exists(id) ? id : 0n;
  }

  /**
   * Whether an object exists. On a node of a cluster (`global` set), an ID
   * held here by neither store is looked up in the global space (and
   * fetched when it is there).
   */
  exists(id: ObjID): boolean {
    this.#check();
    if (this.#exists(id)) return true;
    return this.global !== undefined && this.global.fetchMissing(id) && this.#exists(id);
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
    this.#persistent.list(out, this.#volatile);
    this.#volatile.list(out);
    return out;
  }

  /**
   * Every table slot that fails its check or bounds: the quarantined objects
   * (with the ID their slot names, untrusted) and other damaged slots. A full
   * scan of the table (like `list`); `twz fsck` repairs them.
   */
  damaged(): DamagedSlot[] {
    this.#check();
    return this.#persistent.damaged();
  }

  /**
   * Grow an object to `size` bytes, in place when the blocks after it are
   * free, else by moving it. Its mappings follow; the new bytes read as zero.
   *
   * @throws {TwzError} `InvalidArgument` (smaller than now), `ObjectNotFound`, `OutOfSpace`.
   */
  grow(id: ObjID, size: number): void {
    this.#check();
    const store = this.#storeOf(id);
    if (store.durable) this.#writable("grow an object");
    const current = store.size(id);
    if (!Number.isInteger(size) || size < current || size > MAX_OBJECT_SIZE) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Cannot grow ${formatId(id)} from ${current} to ${size} bytes`,
      );
    }
    this.onObjectChange?.([id], "grow"); // threads let go first (may throw: nothing changed yet)
    store.grow(id, current, size);
    this.#security?.resized(id);
  }

  /**
   * Map an object with protections `prot`: a subset of its defaults, or,
   * when `allowed` is given (what `security.allowed` answered for the
   * caller), a subset of `allowed`.
   *
   * On a node of a cluster (`global` set) an object held by neither store is
   * fetched from the global space first (`global.fetchMissing`), and `prot`
   * must also be a subset of `global.mapLimit(id)`: a global object another
   * node owns maps read-only here (one writer at a time).
   *
   * @throws {TwzError} `ObjectNotFound`, `AccessDenied` (also: "object … is
   * owned by another node: take ownership first (own …)").
   */
  map(id: ObjID, prot: number = Prot.ReadWrite, allowed?: number): ObjectMapping {
    this.#check();
    if (this.global !== undefined) return this.#mapOnNode(this.global, id, prot, allowed);
    const store = this.#storeOf(id);
    return new ObjectMapping(
      id,
      store.lifetime,
      prot,
      store.open(id, prot, allowed),
      this,
      this.#handles++,
    );
  }

  /**
   * `map` on a node: fetch an object not held here (once), then limit
   * `prot` by the hook's `mapLimit`. The common case (held) costs no more
   * table lookups than a single system's map: a missing object is found
   * by the store's own `ObjectNotFound`.
   */
  #mapOnNode(hook: GlobalHook, id: ObjID, prot: number, allowed?: number): ObjectMapping {
    let store = this.#storeOf(id);
    let extent: Extent;
    try {
      extent = store.open(id, prot, allowed);
    } catch (error) {
      if (
        !(error instanceof TwzError) || error.code !== ErrorCode.ObjectNotFound ||
        this.#exists(id) || !hook.fetchMissing(id)
      ) {
        throw error;
      }
      store = this.#storeOf(id);
      extent = store.open(id, prot, allowed);
    }
    const limit = hook.mapLimit(id);
    if ((prot & ~limit) !== 0) {
      throw (prot & Prot.Write) !== 0 && (limit & Prot.Write) === 0
        ? ownedElsewhere(id)
        : accessDenied(id, prot, limit);
    }
    return new ObjectMapping(id, store.lifetime, prot, extent, this, this.#handles++);
  }

  /**
   * Make a persistent object with exactly the ID `id` and the contents
   * `content` (its size is `content.length`): the global space adopts an
   * object fetched from its cluster with the ID, protections and key ID it
   * has everywhere (a keyed object's ID is not derived again: it is given).
   * As with `create` from sources, the contents are durable before the
   * commit that makes the object exist: after a crash the object is either
   * absent or whole.
   *
   * Not for user space (no port reaches it); board code (`@twz/global`)
   * calls it from its `GlobalHook.fetchMissing`.
   *
   * @param id The object's ID (valid: upper half non-zero).
   * @param content Its bytes (1 byte to 4 GiB - 1).
   * @param spec `prot`: its default protections; `keyId`: its key (0n or
   *   absent: none).
   * @throws {TwzError} `InvalidArgument` (an invalid ID, an ID that exists,
   *   a bad size, protections or key), `ReadOnly`, `OutOfSpace`,
   *   `TableFull`, `ImageCorrupt` (the table is damaged where the ID goes).
   */
  adopt(id: ObjID, content: Uint8Array, spec: { prot: number; keyId?: ObjID }): void {
    this.#check();
    this.#writable("adopt an object");
    if (typeof id !== "bigint" || !isValidId(id)) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `cannot adopt ${typeof id === "bigint" ? formatId(id) : String(id)}: not a valid object ID`,
      );
    }
    if (!(content instanceof Uint8Array)) {
      throw new TwzError(ErrorCode.InvalidArgument, `cannot adopt ${formatId(id)}: no bytes given`);
    }
    const size = content.length;
    if (size < 1 || size > MAX_OBJECT_SIZE) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `cannot adopt ${formatId(id)}: object size ${size} is not in [1, 2^32)`,
      );
    }
    const prot = spec?.prot;
    if (!Number.isInteger(prot) || prot < 0 || prot > Prot.All) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `cannot adopt ${formatId(id)}: protections ${prot} are not rwx bits`,
      );
    }
    const keyId = spec.keyId ?? 0n;
    if (typeof keyId !== "bigint" || (keyId !== 0n && !isValidId(keyId))) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `cannot adopt ${formatId(id)}: key ${String(keyId)} is not a valid ID`,
      );
    }
    if (this.#exists(id)) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `cannot adopt ${formatId(id)}: an object with that ID exists here`,
      );
    }
    if (!this.#persistent.idFree(id, 0)) {
      throw new TwzError(
        ErrorCode.ImageCorrupt,
        `cannot adopt ${
          formatId(id)
        }: the object table is damaged where its slot would go; run \`twz fsck\``,
      );
    }
    // The store zeroes the blocks, copies the bytes, flushes and drains them
    // before the commit that publishes the object (as for create's sources).
    this.#persistent.create(
      id,
      size,
      prot,
      keyId,
      [],
      [{ data: content, at: 0 }],
      this.hal.clock.wallclock(),
      false,
    );
  }

  /**
   * Replace the contents of object `id` with `content`, in place: the
   * object grows first when `content` is longer (as `grow`: threads mapping
   * it let go and are told its new bytes); every byte is written, the tail
   * past `content.length` zeroed (an object never shrinks); for a
   * persistent object the bytes are durable when this returns. Every
   * mapping of the object — in-process and in threads, on every HAL — sees
   * the new bytes (they are its memory). No protection check: the global
   * space installs a newer version of an object it holds.
   *
   * Not atomic across a crash: a power failure in the middle leaves a mix
   * of old and new bytes (the global space notices: its local state records
   * a hash of the bytes it installed, and fetches again).
   *
   * @param id The object (either store).
   * @param content Its new bytes.
   * @throws {TwzError} `ObjectNotFound`, `ReadOnly` (a persistent object on
   *   a read-only kernel), `InvalidArgument` (larger than an object can be),
   *   `OutOfSpace`, `Busy` (a thread did not let go for a grow).
   */
  replaceContents(id: ObjID, content: Uint8Array): void {
    this.#check();
    if (!this.#exists(id)) {
      throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(id)}`);
    }
    const store = this.#storeOf(id);
    if (store.durable) this.#writable("replace an object's contents");
    if (!(content instanceof Uint8Array)) {
      throw new TwzError(ErrorCode.InvalidArgument, `replace ${formatId(id)}: no bytes given`);
    }
    if (content.length > store.size(id)) this.grow(id, content.length);
    const e = store.extent(id);
    e.bytes.set(content, 0);
    e.bytes.fill(0, content.length);
    if (store.durable) this.hal.region.persist(e.base, e.bytes.length);
    // A key or context object read again: cached verdicts on it are stale.
    this.#security?.forget([id]);
  }

  /**
   * The kernel's security: keys, contexts and the protections callers have
   * (made on first use).
   */
  get security(): Security {
    return this.#security ??= new Security(this);
  }

  /** @internal The live bytes of an object, for the kernel's own reads (no check). */
  objectBytes(id: ObjID): Uint8Array {
    this.#check();
    return this.#storeOf(id).extent(id).bytes;
  }

  /** @internal Refuse `what` on a read-only kernel (`ReadOnly`). */
  requireWritable(what: string): void {
    this.#check();
    this.#writable(what);
  }

  /**
   * @internal Write `data` at `offset` of a kernel-written object (a key
   * or context object: no protection check) and make it durable.
   */
  kernelWrite(id: ObjID, offset: number, data: Uint8Array): void {
    this.#check();
    const store = this.#storeOf(id);
    if (store.durable) this.#writable("write a kernel object");
    const e = store.extent(id);
    if (offset < 0 || offset + data.length > e.bytes.length) {
      throw new RangeError(`Range [${offset}, +${data.length}) is outside ${formatId(id)}`);
    }
    e.bytes.set(data, offset);
    if (store.durable) this.hal.region.persist(e.base + offset, data.length);
  }

  /**
   * @internal Publish a 32-bit word of a kernel-written object: one aligned
   * store, then persist (the commit point of a slot written before).
   */
  kernelStore32(id: ObjID, offset: number, value: number): void {
    this.#check();
    const store = this.#storeOf(id);
    if (store.durable) this.#writable("write a kernel object");
    const e = store.extent(id);
    if (offset % 4 !== 0 || offset < 0 || offset + 4 > e.bytes.length) {
      throw new RangeError(`word ${offset} is outside ${formatId(id)} or not aligned`);
    }
    e.view.setUint32(offset, value >>> 0, true);
    if (store.durable) this.hal.region.persist(e.base + offset, 4);
  }

  /**
   * @internal Create an object whose contents are `content` (copied from a
   * scratch volatile object: nothing is ever written into it from outside).
   */
  createWith(content: Uint8Array, spec: CreateSpec): ObjID {
    const scratch = this.create({
      lifetime: "volatile",
      size: content.length,
      prot: Prot.ReadWrite,
    });
    try {
      this.#volatile.extent(scratch).bytes.set(content);
      return this.create({
        ...spec,
        size: content.length,
        sources: [{ id: scratch, srcOffset: 0, dstOffset: 0, length: content.length }],
      });
    } finally {
      this.delete(scratch);
    }
  }

  /**
   * @internal Flush a mapping's range (checks bounds).
   * @param m The mapping.
   * @param offset Offset in the object.
   * @param length Bytes.
   */
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
    const root = this.#persistent.root;
    return {
      objects: root.objects,
      volatile: this.#volatile.count,
      freeBytes: root.freeBlocks * BLOCK,
      tableSlots: this.geometry.tableSlots,
      slotsUsed: root.slotsUsed,
    };
  }

  /**
   * The kernel port in-process: the system-call interface user space (libtwz)
   * runs on, answered by direct calls. One per kernel.
   */
  port(): LocalPort {
    return this.#port ??= new LocalPort(this);
  }

  /**
   * The thread manager (started on first use): programs in Workers, each
   * talking to this kernel over its own channel.
   */
  get threads(): ThreadService {
    if (this.#threads === undefined) {
      throw new TwzError(ErrorCode.NotSupported, "this system runs no threads");
    }
    return this.#threads;
  }

  /** @internal Install the thread manager (the board does, once). */
  set threads(t: ThreadService) {
    this.#threads = t;
  }

  /** @internal The thread manager, or `undefined` when none was installed. */
  get threadsIfAny(): ThreadService | undefined {
    return this.#threads;
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
    this.onStop?.("halt");
    this.#down = true;
    this.#forget();
  }

  /**
   * Stop: volatile objects are gone and every mapping is emptied. Metadata is
   * always durable, so nothing needs writing; the HAL's close writes back
   * object data that was stored but never persisted.
   *
   * @param options `reboot`: the system boots again at once (threads still
   *   running then read "lost at reboot", as after a crash, rather than
   *   "killed at shutdown").
   */
  shutdown(options: { reboot?: boolean } = {}): void {
    if (this.#down) return;
    this.onStop?.(options.reboot ? "reboot" : "shutdown");
    this.#down = true;
    if (!this.#readOnly) this.#persistent.clearLog();
    this.#forget();
  }

  #forget(): void {
    this.#persistent.forget();
    this.#volatile.forget();
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
export const METADATA_BYTES_PER_OBJECT: number = SLOT;
export { BLOCK };

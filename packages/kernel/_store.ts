/**
 * Where objects live. The kernel holds two stores: the persistent one (the
 * object table, block allocator and metadata log over the persistent region,
 * in `_persistent.ts`) and the volatile one here (objects in DRAM, gone at
 * shutdown). An object ID is held by at most one of them; the kernel checks
 * its arguments and permissions, then hands each call to the store that holds
 * the ID (or, for create, to the one its lifetime names).
 *
 * Ties across stores: a volatile object may be tied to a persistent one (not
 * the other way round). The volatile store keeps every tie whose dependent is
 * volatile, whatever the parent, so the persistent store only ever sees ties
 * between persistent objects (its table edges).
 *
 * @module
 */
import {
  ErrorCode,
  formatId,
  formatProt,
  type Lifetime,
  type ObjectStat,
  type ObjID,
  TwzError,
} from "./abi/mod.ts";
import { Extent } from "./_mapping.ts";

/** A range of a source object to copy into a new object. */
export interface SourceCopy {
  /** The source bytes (a view of the source object). */
  data: Uint8Array;
  /** Offset in the new object. */
  at: number;
}

/** What the kernel asks of a store, for objects the store holds. */
export interface ObjectStore {
  /** The lifetime of every object in the store. */
  readonly lifetime: Lifetime;
  /** Whether changing the store writes the image (refused on a read-only kernel). */
  readonly durable: boolean;
  /**
   * Whether the store holds `id`.
   *
   * @throws {TwzError} `ObjectDamaged` (persistent) when its slot is damaged.
   */
  has(id: ObjID): boolean;
  /** The object's protections. @throws {TwzError} `ObjectNotFound`. */
  prot(id: ObjID): number;
  /** The object's size. @throws {TwzError} `ObjectNotFound`. */
  size(id: ObjID): number;
  /** The live bytes of the object (made on first use). @throws {TwzError} `ObjectNotFound`. */
  extent(id: ObjID): Extent;
  /**
   * The live bytes of the object, for a mapping with protections `prot`.
   *
   * @throws {TwzError} `ObjectNotFound`; `ReadOnly` (a writable mapping of a
   * durable store on a read-only kernel); `AccessDenied` (`prot` is not a
   * subset of `allowed`, by default the object's protections).
   */
  open(id: ObjID, prot: number, allowed?: number): Extent;
  /**
   * Facts about the object; `dependents` counts the store's own ties plus
   * `volatileDependents` (the volatile objects tied to it).
   */
  stat(id: ObjID, volatileDependents: number): ObjectStat;
  /** Append the IDs of the objects tied to `id` that this store keeps the ties of. */
  pushDependents(id: ObjID, out: ObjID[]): void;
  /**
   * Make object `id` (checked by the kernel: valid size, protections, key,
   * existing ties of an allowed lifetime); `asRoot` names it the root object.
   */
  create(
    id: ObjID,
    size: number,
    prot: number,
    keyId: ObjID,
    ties: ObjID[],
    sources: SourceCopy[],
    created: number,
    asRoot: boolean,
  ): void;
  /** Grow object `id` from `current` to `size` bytes (checked by the kernel). */
  grow(id: ObjID, current: number, size: number): void;
  /**
   * Refuse, before anything changes, to delete `id` as part of a delete
   * (whatever the store cannot do in one go).
   */
  checkDelete(id: ObjID): void;
  /** Delete `id` as part of a delete begun with `beginDelete` (dependents first). */
  remove(id: ObjID): void;
  /** Start a delete of one or more objects. */
  beginDelete(): void;
  /** Finish a delete (make it durable). */
  endDelete(): void;
  /** Append facts about every object (see {@linkcode ObjectStore.stat}). */
  list(out: ObjectStat[], volatile: VolatileStore): void;
  /** Empty every extent and forget the objects held in memory (the kernel stops). */
  forget(): void;
}

/** The error of a mapping whose protections `prot` exceed the object's `allowed`. */
export function accessDenied(id: ObjID, prot: number, allowed: number): TwzError {
  return new TwzError(
    ErrorCode.AccessDenied,
    `Cannot map ${formatId(id)} ${formatProt(prot)}: its protections are ${formatProt(allowed)}`,
  );
}

/**
 * The refusal of a write (a writable mapping, a grow) of a global object
 * another node of the cluster owns (docs/GLOBAL.md).
 */
export function ownedElsewhere(id: ObjID): TwzError {
  const hex = formatId(id);
  return new TwzError(
    ErrorCode.AccessDenied,
    `object ${hex} is owned by another node: take ownership first (own ${hex})`,
  );
}

/** The error of `what` (e.g. "create an object") on a read-only kernel. */
export function readOnlyError(what: string): TwzError {
  return new TwzError(ErrorCode.ReadOnly, `the image is open read-only: cannot ${what}`);
}

interface VolatileObject {
  extent: Extent;
  stat: ObjectStat;
}

/** Objects in DRAM: gone when the kernel stops; a read-only kernel makes them too. */
export class VolatileStore implements ObjectStore {
  readonly lifetime: Lifetime = "volatile";
  readonly durable = false;
  readonly #objects = new Map<ObjID, VolatileObject>();
  /** Volatile objects tied to each parent (volatile or persistent), in creation order. */
  readonly #dependents = new Map<ObjID, Set<ObjID>>();

  /** How many volatile objects there are. */
  get count(): number {
    return this.#objects.size;
  }

  has(id: ObjID): boolean {
    return this.#objects.has(id);
  }

  prot(id: ObjID): number {
    return this.#objects.get(id)!.stat.prot;
  }

  size(id: ObjID): number {
    return this.#objects.get(id)!.stat.size;
  }

  extent(id: ObjID): Extent {
    return this.#objects.get(id)!.extent;
  }

  open(id: ObjID, prot: number, allowed?: number): Extent {
    const v = this.#objects.get(id)!;
    const limit = allowed ?? v.stat.prot;
    if ((prot & ~limit) !== 0) throw accessDenied(id, prot, limit);
    return v.extent;
  }

  /** How many volatile objects are tied to `parent`. */
  dependentCount(parent: ObjID): number {
    return this.#dependents.get(parent)?.size ?? 0;
  }

  /** The volatile objects tied to `parent` (a new array). */
  dependentsOf(parent: ObjID): ObjID[] {
    return [...(this.#dependents.get(parent) ?? [])];
  }

  stat(id: ObjID, volatileDependents: number): ObjectStat {
    return { ...this.#objects.get(id)!.stat, dependents: volatileDependents };
  }

  pushDependents(_id: ObjID, _out: ObjID[]): void {
    // Every tie of a volatile dependent is in #dependents (dependentsOf).
  }

  create(
    id: ObjID,
    size: number,
    prot: number,
    keyId: ObjID,
    ties: ObjID[],
    sources: SourceCopy[],
    created: number,
  ): void {
    const bytes = new Uint8Array(new SharedArrayBuffer(size));
    for (const s of sources) bytes.set(s.data, s.at);
    this.#objects.set(id, {
      extent: new Extent(bytes, -1),
      stat: {
        id,
        lifetime: "volatile",
        size,
        capacity: size,
        prot,
        keyId,
        dependents: 0,
        created,
      },
    });
    for (const parent of ties) {
      let set = this.#dependents.get(parent);
      if (!set) this.#dependents.set(parent, set = new Set());
      set.add(id);
    }
  }

  grow(id: ObjID, _current: number, size: number): void {
    const v = this.#objects.get(id)!;
    const bytes = new Uint8Array(new SharedArrayBuffer(size));
    bytes.set(v.extent.bytes);
    v.extent.retarget(bytes, -1);
    v.stat = { ...v.stat, size, capacity: size };
  }

  checkDelete(_id: ObjID): void {}

  beginDelete(): void {}

  remove(id: ObjID): void {
    const v = this.#objects.get(id)!;
    this.#objects.delete(id);
    this.#dependents.delete(id);
    for (const set of this.#dependents.values()) set.delete(id);
    v.extent.retarget(new Uint8Array(0), -1);
  }

  endDelete(): void {}

  /** Forget the ties of volatile objects to `parent` (a deleted persistent object). */
  dropParent(parent: ObjID): void {
    this.#dependents.delete(parent);
  }

  list(out: ObjectStat[]): void {
    for (const [id, v] of this.#objects) {
      out.push({ ...v.stat, dependents: this.dependentCount(id) });
    }
  }

  forget(): void {
    for (const v of this.#objects.values()) v.extent.retarget(new Uint8Array(0), -1);
    this.#objects.clear();
    this.#dependents.clear();
  }
}

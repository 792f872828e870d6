/**
 * Object handles: an object mapped into this session, its base, its meta-info
 * and its foreign object table (FOT).
 *
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * obj.view.setUint32(obj.baseOffset, 42, true);
 * obj.persist(obj.baseOffset, 4);
 * console.log(obj.meta.fotCapacity, obj.writable); // 8 true
 * twz.close();
 * ```
 *
 * @module
 */
import { TX } from "./_tx.ts";
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  formatProt,
  FOT_ENTRY_SIZE,
  FotField,
  FotFlags,
  type KernelPort,
  type Lifetime,
  type Mapping,
  META_OFFSET,
  MetaField,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  ptrHi,
  ptrLo,
  readId,
  TwzError,
  writeId,
} from "@twz/kernel/abi";
import type { AccessorHost, AnyAccessor, LiveBytes, NamedTarget } from "./layout.ts";
import { named, StructAccessor } from "./layout.ts";
import { closedError } from "./_layout_accessor.ts";
import { metaProblem } from "./_meta.ts";
import { withdrawnError } from "./_epoch.ts";

/**
 * A pluggable name resolver for name-based FOT entries: turns the name stored
 * in the entry into an object ID when a pointer through the entry is
 * followed.
 */
export interface NameResolver {
  /**
   * Resolve `name` to an object ID.
   * @throws {TwzError} `NameNotFound` (or any other failure).
   */
  resolve(name: string): ObjID;
  /**
   * A number that changes whenever any name may resolve differently. When
   * present, resolutions are cached until it changes; when absent, every
   * follow resolves again.
   */
  generation?(): number;
}

/**
 * What a handle needs from its session.
 * @internal
 */
export interface HandleSession {
  /** The kernel port the session runs on. */
  readonly port: KernelPort;
  /** A handle for `id`, writable or not. */
  handle(id: ObjID, writable: boolean): TwzObject;
  /** The resolver registered under `name`. */
  resolver(name: string): NameResolver;
  /** The revocation epoch word (`port.epoch`, or one nothing changes). */
  readonly _ep: Int32Array;
  /** The epoch the session last acted on. */
  readonly _epochSeen: number;
  /**
   * When the epoch moved: take the kernel's withdrawals, give withdrawn
   * mappings back, clear FOT caches (see `_epoch.ts`).
   */
  _epochSync(): void;
}

/** The meta-info of a libtwz object (see `@twz/kernel/abi` layout). */
export interface MetaInfo {
  /** Layout version. */
  version: number;
  /** `MetaFlags` bits. */
  flags: number;
  /** Default protections at creation. */
  prot: number;
  /** Size when initialized. */
  createdSize: number;
  /** Random nonce, 32 hex digits. */
  nonce: string;
  /** Key object ID, or 0n. */
  keyId: ObjID;
  /** Offset of the FOT. */
  fotOffset: number;
  /** FOT entries that fit. */
  fotCapacity: number;
  /** FOT entries in use. */
  fotCount: number;
  /** Offset of the FOT names area. */
  namesOffset: number;
  /** Size of the FOT names area. */
  namesSize: number;
  /** Bytes of the names area in use. */
  namesUsed: number;
  /** The creator's type tag (0 = untyped). */
  typeTag: number;
}

/** One FOT entry, decoded. */
export type FotEntry =
  | { index: number; kind: "id"; id: ObjID; flags: number }
  | { index: number; kind: "name"; name: string; resolver: string; flags: number };

interface NamedCache {
  gen: number;
  target: TwzObject;
}

const M = META_OFFSET;

/**
 * A handle on an object mapped into a session. Handles are shared: a session
 * gives one writable and one read-only handle per object. Loads and stores on
 * {@linkcode TwzObject.view} are loads and stores on the object; typed
 * layouts (`Type.at(obj, offset)`) read and write through the same bytes.
 * A read-only handle refuses writes (`TwzError(AccessDenied)`).
 *
 * When the kernel withdraws a thread's mapping (a capability revoked, a key
 * rotated, a context detached: `@twz/libtwz/security`), the handle's bytes go
 * empty and every use of it, and of accessors made over it, fails with
 * `TwzError(AccessDenied)` naming the object; the session maps the object
 * again on next use (`Twz.open`, a pointer followed), where the kernel
 * decides anew.
 */
export class TwzObject implements AccessorHost {
  /** The object's ID. */
  readonly id: ObjID;
  /** Whether writes are allowed through this handle. */
  readonly writable: boolean;
  /** The mapping (from the session's port); its `bytes`/`view` follow relocation. */
  readonly mapping: Mapping;
  /** @internal The mapping's live extent (one hop shorter for accessors). */
  readonly _e: LiveBytes;
  /** @internal FOT cache: index -> target handle, for ID entries. */
  readonly _fc: (TwzObject | undefined)[] = [];
  /** @internal The session's revocation epoch word (see `_epoch.ts`). */
  readonly _ep: Int32Array;
  /** @internal The epoch `_fc` is valid for. */
  _es: number;
  /** The kernel withdrew this handle's mapping (the object still exists). */
  #withdrawn = false;
  readonly #named: (NamedCache | undefined)[] = [];
  readonly #session: HandleSession;
  /** Target key -> FOT index, built lazily. */
  #reuse?: Map<string, number> | undefined;
  /** The meta-info was checked (once per handle: it is fixed at creation). */
  #metaOk = false;
  /** The session was closed: every use throws {@linkcode closedError}. */
  #closed = false;

  /** @internal Sessions make handles; use `Twz.open` / `Twz.create`. */
  constructor(session: HandleSession, mapping: Mapping) {
    this.#session = session;
    this.mapping = mapping;
    this._e = mapping.extent;
    this.id = mapping.id;
    this.writable = mapping.writable;
    this._ep = session._ep;
    this._es = session._epochSeen;
  }

  /** The kernel port the object is mapped through (its session's). */
  get port(): KernelPort {
    return this.#session.port;
  }

  /**
   * Whether the session's kernel is read-only (then every handle is
   * read-only and a write fails with `TwzError` `ReadOnly`).
   */
  get imageReadOnly(): boolean {
    return this.#session.port.readOnly;
  }

  /** The object's bytes (live: follows relocation; empty once deleted). */
  get bytes(): Uint8Array {
    if (this.#closed) throw closedError(this.id);
    return this.mapping.bytes;
  }
  /** A DataView over the object's bytes (live). */
  get view(): DataView {
    if (this.#closed) throw closedError(this.id);
    return this.mapping.view;
  }
  /** Size in bytes. */
  get size(): number {
    if (this.#closed) throw closedError(this.id);
    return this.mapping.size;
  }
  /** Persistent or volatile. */
  get lifetime(): Lifetime {
    return this.mapping.lifetime;
  }
  /** Offset of the base: where user data starts (the same for every object). */
  get baseOffset(): number {
    return BASE_OFFSET;
  }
  /** Whether the object carries libtwz meta-info (it was made by `Twz.create`). */
  get hasMeta(): boolean {
    return this.view.byteLength >= BASE_OFFSET &&
      this.view.getUint32(M + MetaField.magic, true) === OBJECT_MAGIC;
  }
  /** The end of the data that follows the base (where the FOT starts). */
  get dataEnd(): number {
    if (!this.hasMeta) return this.size;
    this.#needMeta();
    return this.view.getUint32(M + MetaField.fotOffset, true);
  }

  /**
   * The meta-info.
   * @throws {TwzError} `InvalidArgument`: the object has none.
   */
  get meta(): MetaInfo {
    this.#needMeta();
    const v = this.view;
    const nonce = this.bytes.subarray(M + MetaField.nonce, M + MetaField.nonce + 16);
    return {
      version: v.getUint16(M + MetaField.version, true),
      flags: v.getUint16(M + MetaField.flags, true),
      prot: v.getUint32(M + MetaField.prot, true),
      createdSize: v.getUint32(M + MetaField.createdSize, true),
      nonce: [...nonce].map((b) => b.toString(16).padStart(2, "0")).join(""),
      keyId: readId(v, M + MetaField.keyId),
      fotOffset: v.getUint32(M + MetaField.fotOffset, true),
      fotCapacity: v.getUint32(M + MetaField.fotCapacity, true),
      fotCount: v.getUint32(M + MetaField.fotCount, true),
      namesOffset: v.getUint32(M + MetaField.namesOffset, true),
      namesSize: v.getUint32(M + MetaField.namesSize, true),
      namesUsed: v.getUint32(M + MetaField.namesUsed, true),
      typeTag: v.getUint32(M + MetaField.typeTag, true),
    };
  }

  /**
   * Check the meta-info before using it.
   * @throws {TwzError} `InvalidArgument` (none), `ObjectDamaged` (damaged).
   */
  #needMeta(): void {
    if (!this.hasMeta) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Object ${formatId(this.id)} has no libtwz meta-info (it was not made by Twz.create)`,
      );
    }
    if (this.#metaOk) return;
    const problem = metaProblem(this.view, this.size);
    if (problem === undefined) this.#metaOk = true;
    else {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `The meta-info of ${formatId(this.id)} is damaged: ${problem}`,
      );
    }
  }

  #needWrite(what: string): void {
    if (!this.writable) {
      if (this.imageReadOnly) {
        throw new TwzError(
          ErrorCode.ReadOnly,
          `the image is open read-only: cannot ${what} object ${formatId(this.id)}`,
        );
      }
      throw new TwzError(
        ErrorCode.AccessDenied,
        `Cannot ${what} object ${formatId(this.id)}: this handle is read-only`,
      );
    }
  }

  /**
   * Make `[offset, offset + length)` durable.
   * @throws {RangeError} The range is outside the object.
   */
  persist(offset: number, length: number): void {
    if (this.#closed) throw closedError(this.id);
    this.mapping.persist(offset, length);
  }
  /** Write back `[offset, offset + length)`; durable after {@linkcode drain}. */
  flush(offset: number, length: number): void {
    if (this.#closed) throw closedError(this.id);
    this.mapping.flush(offset, length);
  }
  /** Ordering point for earlier flushes. */
  drain(): void {
    if (this.#closed) throw closedError(this.id);
    this.mapping.drain();
  }

  /**
   * Copy `data` into the object at `offset` (not persisted; see {@linkcode persist}).
   * @throws {TwzError} `AccessDenied` on a read-only handle; {RangeError} outside the object.
   */
  write(offset: number, data: Uint8Array): void {
    if (this.#closed) throw closedError(this.id);
    this.#needWrite("write");
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > this.size) {
      const gone = this._gone();
      if (gone !== undefined) throw gone;
      throw new RangeError(
        `Range [${offset}, ${offset + data.length}) is outside ${formatId(this.id)}`,
      );
    }
    this.bytes.set(data, offset);
  }

  /**
   * A copy of `length` bytes at `offset`.
   * @throws {RangeError} Outside the object.
   */
  read(offset: number, length: number): Uint8Array {
    if (this.#closed) throw closedError(this.id);
    if (!Number.isInteger(offset) || offset < 0 || offset + length > this.size) {
      const gone = this._gone();
      if (gone !== undefined) throw gone;
      throw new RangeError(`Range [${offset}, ${offset + length}) is outside ${formatId(this.id)}`);
    }
    return this.bytes.slice(offset, offset + length);
  }

  /**
   * Grow the object to `size` bytes (the kernel may move it; every mapping,
   * accessor and pointer follows).
   * @throws {TwzError} `AccessDenied` (read-only handle), `InvalidArgument`, `OutOfSpace`.
   */
  grow(size: number): void {
    if (this.#closed) throw closedError(this.id);
    this.#needWrite("grow");
    this.#session.port.grow(this.id, size);
  }

  /** @internal */
  _checkRecord(offset: number, size: number, align: number): void {
    if (this.#closed) throw closedError(this.id);
    if (!Number.isInteger(offset) || offset % align !== 0) {
      throw new RangeError(`Offset ${offset} is not a multiple of the record's alignment ${align}`);
    }
    if (offset < BASE_OFFSET || offset + size > this.size) {
      throw new RangeError(
        `A ${size}-byte record at ${offset} does not fit between the base (${BASE_OFFSET}) and the end of ${
          formatId(this.id)
        } (${this.size} bytes)`,
      );
    }
    if (this.hasMeta) {
      const v = this.view;
      const fot = v.getUint32(M + MetaField.fotOffset, true);
      const end = v.getUint32(M + MetaField.namesOffset, true) +
        v.getUint32(M + MetaField.namesSize, true);
      if (offset < end && offset + size > fot) {
        throw new RangeError(
          `A ${size}-byte record at ${offset} overlaps the FOT of ${
            formatId(this.id)
          } ([${fot}, ${end}))`,
        );
      }
    }
  }

  // --- FOT ---------------------------------------------------------------

  /**
   * Every published FOT entry.
   * @throws {TwzError} `InvalidArgument`: the object has no meta-info.
   */
  fotEntries(): FotEntry[] {
    if (this.#closed) throw closedError(this.id);
    this.#needMeta();
    const count = this.view.getUint32(M + MetaField.fotCount, true);
    const out: FotEntry[] = [];
    for (let i = 1; i <= count; i++) out.push(this.#entry(i));
    return out;
  }

  #entryOffset(index: number): number {
    return this.view.getUint32(M + MetaField.fotOffset, true) + (index - 1) * FOT_ENTRY_SIZE;
  }

  #entry(index: number): FotEntry {
    const v = this.view;
    const at = this.#entryOffset(index);
    const flags = v.getUint32(at + FotField.flags, true);
    if (flags & FotFlags.Name) {
      const off = v.getUint32(at + FotField.nameOffset, true);
      const len = v.getUint16(at + FotField.nameLength, true);
      const rlen = v.getUint16(at + FotField.resolverLength, true);
      const names = v.getUint32(M + MetaField.namesOffset, true);
      if (off < names || off + len + rlen > names + v.getUint32(M + MetaField.namesUsed, true)) {
        throw new TwzError(
          ErrorCode.ObjectDamaged,
          `The FOT of ${formatId(this.id)} is damaged: entry ${index}'s name [${off}, ${
            off + len + rlen
          }) lies outside the used names area`,
        );
      }
      const b = this.bytes;
      const dec = new TextDecoder();
      return {
        index,
        kind: "name",
        name: dec.decode(b.slice(off, off + len)),
        resolver: dec.decode(b.slice(off + len, off + len + rlen)),
        flags,
      };
    }
    return { index, kind: "id", id: readId(v, at + FotField.id), flags };
  }

  /**
   * @internal Resolve FOT entry `index` (hot path: an array load, and the
   * epoch word compared with the one the cache is valid for).
   */
  _fot(index: number): TwzObject {
    const t = this._fc[index];
    if (t !== undefined && this._ep[0] === this._es) return t;
    return this.#fotSlow(index);
  }

  #fotSlow(index: number): TwzObject {
    if (this.#closed) throw closedError(this.id);
    const now = Atomics.load(this._ep, 0);
    if (now !== this._es) {
      this.#session._epochSync();
      this._forget(now);
    }
    const gone = this._gone();
    if (gone !== undefined) throw gone;
    const v = this.view;
    if (this.hasMeta) this.#needMeta();
    const count = this.hasMeta ? v.getUint32(M + MetaField.fotCount, true) : 0;
    if (index < 1 || index > count) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Pointer through FOT entry ${index} of ${formatId(this.id)}, which has ${count} entries`,
      );
    }
    const e = this.#entry(index);
    if (!(e.flags & FotFlags.Valid)) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `FOT entry ${index} of ${formatId(this.id)} is not valid`,
      );
    }
    const writable = (e.flags & FotFlags.Write) !== 0;
    if (e.kind === "id") {
      const target = this.#target(e.id, writable);
      this._fc[index] = target;
      return target;
    }
    const resolver = this.#session.resolver(e.resolver);
    const gen = resolver.generation?.();
    const cached = this.#named[index];
    if (cached !== undefined && gen !== undefined && cached.gen === gen) return cached.target;
    let id: ObjID;
    try {
      id = resolver.resolve(e.name);
    } catch (cause) {
      if (cause instanceof TwzError) {
        throw new TwzError(
          cause.code,
          `Cannot follow pointer through FOT entry ${index} of ${
            formatId(this.id)
          }: ${cause.message}`,
          { cause },
        );
      }
      throw cause;
    }
    const target = this.#target(id, writable);
    if (gen !== undefined) this.#named[index] = { gen, target };
    return target;
  }

  /** A handle for a FOT target: writable when the entry and the object allow it. */
  #target(id: ObjID, writable: boolean): TwzObject {
    if (writable && !this.#session.port.readOnly) {
      try {
        return this.#session.handle(id, true);
      } catch (e) {
        if (!(e instanceof TwzError && e.code === ErrorCode.AccessDenied)) throw e;
      }
    }
    return this.#session.handle(id, false);
  }

  /** @internal The ID and offset a stored pointer names. */
  _pointee(at: number): { id: ObjID; offset: number } | null {
    if (this.#closed) throw closedError(this.id);
    const v = this.view;
    const lo = v.getUint32(at, true), hi = v.getUint32(at + 4, true);
    const offset = (hi & 0xffff) * 4294967296 + lo;
    if (offset === 0) return null;
    const f = hi >>> 16;
    return { id: f === 0 ? this.id : this._fot(f).id, offset };
  }

  /**
   * The FOT index for pointers to `target` (allocating an entry if none fits).
   *
   * @param target An object ID, or a name-based target.
   * @param prot `Prot` bits the pointer grants (read, write).
   * @returns The index (>= 1).
   * @throws {TwzError} `AccessDenied` (read-only handle), `InvalidArgument`
   * (no meta-info), `OutOfSpace` (the FOT or its names area is full).
   */
  fotIndex(target: ObjID | NamedTarget, prot: number = Prot.ReadWrite): number {
    if (this.#closed) throw closedError(this.id);
    this.#needWrite("add a FOT entry to");
    this.#needMeta();
    const flagsWanted = (prot & Prot.All) | FotFlags.Allocated | FotFlags.Valid |
      (typeof target === "bigint" ? 0 : FotFlags.Name);
    const key = typeof target === "bigint"
      ? `i${target}/${flagsWanted}`
      : `n${target.resolver ?? ""}\0${target.name}/${flagsWanted}`;
    if (!this.#reuse) {
      this.#reuse = new Map();
      for (const e of this.fotEntries()) {
        const k = e.kind === "id" ? `i${e.id}/${e.flags}` : `n${e.resolver}\0${e.name}/${e.flags}`;
        if (!this.#reuse.has(k)) this.#reuse.set(k, e.index);
      }
    }
    const found = this.#reuse.get(key);
    if (found !== undefined) return found;
    if (
      typeof target === "bigint" && this.lifetime === "persistent" &&
      this.#session.port.exists(target) &&
      this.#session.port.stat(target).lifetime === "volatile"
    ) {
      // The entry would outlive its target: after a reboot it names nothing.
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Persistent object ${formatId(this.id)} cannot point at volatile object ${
          formatId(target)
        }: the pointer would dangle after a reboot`,
      );
    }
    const index = this.#append(target, flagsWanted);
    this.#reuse.set(key, index);
    return index;
  }

  #append(target: ObjID | NamedTarget, flags: number): number {
    const v = this.view;
    const count = v.getUint32(M + MetaField.fotCount, true);
    const cap = v.getUint32(M + MetaField.fotCapacity, true);
    if (count >= cap) {
      throw new TwzError(
        ErrorCode.OutOfSpace,
        `The FOT of ${
          formatId(this.id)
        } is full (${cap} entries); create it with a larger fot.entries`,
      );
    }
    const index = count + 1;
    const at = this.#entryOffset(index);
    let namesUsed = v.getUint32(M + MetaField.namesUsed, true);
    const b = this.bytes;
    b.fill(0, at, at + FOT_ENTRY_SIZE);
    if (typeof target === "bigint") {
      writeId(v, at + FotField.id, target);
    } else {
      const enc = new TextEncoder();
      const name = enc.encode(target.name);
      const res = enc.encode(target.resolver ?? "");
      const namesOffset = v.getUint32(M + MetaField.namesOffset, true);
      const namesSize = v.getUint32(M + MetaField.namesSize, true);
      if (
        name.length > 0xffff || res.length > 0xffff ||
        namesUsed + name.length + res.length > namesSize
      ) {
        throw new TwzError(
          ErrorCode.OutOfSpace,
          `The FOT names area of ${formatId(this.id)} has no room for "${target.name}" (${
            namesSize - namesUsed
          } of ${namesSize} bytes free)`,
        );
      }
      const nameAt = namesOffset + namesUsed;
      b.set(name, nameAt);
      b.set(res, nameAt + name.length);
      this.persist(nameAt, name.length + res.length);
      namesUsed += name.length + res.length;
      v.setUint32(at + FotField.nameOffset, nameAt, true);
      v.setUint16(at + FotField.nameLength, name.length, true);
      v.setUint16(at + FotField.resolverLength, res.length, true);
    }
    v.setUint32(at + FotField.flags, flags, true);
    // The entry is durable before it is published ...
    this.persist(at, FOT_ENTRY_SIZE);
    // ... and published (count and names together) with one aligned 8-byte store.
    v.setBigUint64(M + MetaField.fotCount, (BigInt(namesUsed) << 32n) | BigInt(index), true);
    this.persist(M + MetaField.fotCount, 8);
    return index;
  }

  /** @internal Store a pointer to `target` at `at` (one aligned 8-byte store). */
  _storePtr(at: number, target: AnyAccessor | NamedTarget | null): void {
    if (this.#closed) throw closedError(this.id);
    let fot = 0;
    let offset = 0;
    if (target === null) {
      offset = 0;
    } else if (target instanceof StructAccessor) {
      offset = target._b;
      if (target._o.id !== this.id) {
        fot = this.fotIndex(target._o.id, target._o.writable ? Prot.ReadWrite : Prot.Read);
      }
    } else {
      const checked = named(target.name, target.offset, target.resolver); // validates
      offset = checked.offset ?? BASE_OFFSET;
      fot = this.fotIndex(checked, Prot.ReadWrite);
    }
    const value = (BigInt(ptrHi(fot, offset)) << 32n) | BigInt(ptrLo(offset));
    // Inside a transaction the pointer is one of its writes (a FOT entry it
    // needed was published already: an unused entry is harmless).
    const tx = TX.current;
    if (tx !== null) tx.setU64(this, at, value);
    else this.view.setBigUint64(at, value, true);
  }

  /**
   * @internal The revocation epoch moved to `seen`: forget cached FOT
   * targets and name resolutions (a target may have been withdrawn).
   */
  _forget(seen: number): void {
    this._es = seen;
    this._fc.length = 0;
    this.#named.length = 0;
  }

  /** @internal The kernel withdrew this handle's mapping; the object exists. */
  _withdraw(): void {
    this.#withdrawn = true;
  }

  /**
   * @internal Why this handle's bytes are gone, when that is a withdrawal:
   * `TwzError` `AccessDenied` naming the object; `undefined` while the
   * mapping is live, or when the object was deleted.
   */
  _gone(): TwzError | undefined {
    if (this.mapping.bytes.length !== 0 || this.#closed) return undefined;
    if (!this.#withdrawn) this.#session._epochSync();
    return this.#withdrawn ? withdrawnError(this.id) : undefined;
  }

  /** @internal Whether the handle's session was closed. */
  get _closed(): boolean {
    return this.#closed;
  }

  /**
   * @internal Drop cached name resolutions and state (the session was
   * closed: `closed`, or the object deleted).
   */
  _reset(closed = false): void {
    if (closed) this.#closed = true;
    this.#metaOk = false;
    this._fc.length = 0;
    this.#named.length = 0;
    this.#reuse = undefined;
  }

  /** A one-line description. */
  toString(): string {
    return `TwzObject(${formatId(this.id)}, ${this.size} bytes, ${
      formatProt(this.writable ? 3 : 1)
    })`;
  }
}

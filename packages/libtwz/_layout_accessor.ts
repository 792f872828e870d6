/**
 * Accessor base classes and the run-time support of generated accessors: the
 * object handle's interface ({@linkcode AccessorHost}) and its live bytes,
 * {@linkcode StructAccessor}, {@linkcode StructCursor}, {@linkcode RecordArray}
 * and {@linkcode ArrayAccessor} (the prototypes of every generated class),
 * and the functions generated code calls (errors, string and bytes stores,
 * the transaction path, a cursor's moves). Private to libtwz; the public
 * entry is `layout.ts`.
 *
 * @module
 */
import {
  ErrorCode,
  formatId,
  type InvPtr,
  MAX_PTR_OFFSET,
  NULL_SIZE,
  type ObjID,
  TwzError,
} from "@twz/kernel/abi";
import type { Tx, TxTarget } from "./_tx.ts";
import { codec } from "./codec.ts";
import {
  type AnyAccessor,
  ArrayType,
  BytesType,
  type Fields,
  PtrType,
  StructType,
} from "./_layout_dsl.ts";
import type { ClassCell } from "./_layout_codegen.ts";

/**
 * The live bytes of a mapped object: the kernel retargets `view` and `bytes`
 * when it relocates the object, so whoever holds this sees the move.
 */
export interface LiveBytes {
  /** A DataView over the object's bytes. */
  readonly view: DataView;
  /** The object's bytes. */
  readonly bytes: Uint8Array;
  /**
   * Whether the word views hold the object's bytes (little-endian host, bytes
   * 8-aligned in their buffer); when false they are empty.
   */
  readonly words: boolean;
  /** Signed bytes (word view). */
  readonly i8: Int8Array;
  /** Unsigned 16-bit words (word view). */
  readonly u16: Uint16Array;
  /** Signed 16-bit words (word view). */
  readonly i16: Int16Array;
  /** Unsigned 32-bit words (word view). */
  readonly u32: Uint32Array;
  /** Signed 32-bit words (word view). */
  readonly i32: Int32Array;
  /** 32-bit floats (word view). */
  readonly f32: Float32Array;
  /** 64-bit floats (word view). */
  readonly f64: Float64Array;
  /** Unsigned 64-bit words (word view). */
  readonly bu64: BigUint64Array;
  /** Signed 64-bit words (word view). */
  readonly bi64: BigInt64Array;
}

/** What a transaction's scratch record offers: DataView code only. */
interface ScratchBytes {
  readonly view: DataView;
  readonly bytes: Uint8Array;
}

/**
 * What an accessor needs from an object handle (implemented by `TwzObject`).
 * @internal
 */
export interface AccessorHost {
  readonly id: ObjID;
  readonly writable: boolean;
  /** @internal The live bytes (the kernel mapping's extent). */
  readonly _e: LiveBytes;
  /**
   * @internal The session's revocation epoch word: a memoized pointer is
   * trusted while it holds the value seen when the pointer was resolved.
   */
  readonly _ep: Int32Array;
  /** @internal Why the bytes are gone when the kernel withdrew them (`AccessDenied`). */
  _gone?(): TwzError | undefined;
  /** Resolve FOT entry `index` (>= 1) to the target's handle. */
  _fot(index: number): AccessorHost;
  /** Store a pointer to `target` (or null) at `at`. */
  _storePtr(at: number, target: AnyAccessor | NamedTarget | null): void;
  /** Check that `[offset, offset + size)` may hold a record. */
  _checkRecord(offset: number, size: number, align: number): void;
  /** The ID and offset a stored pointer names, resolving its FOT entry. */
  _pointee(at: number): { id: ObjID; offset: number } | null;
  /** Persist a range of this object. */
  persist(offset: number, length: number): void;
  /** Whether the whole image is read-only (a refused write says so). */
  readonly imageReadOnly?: boolean;
  /** Whether the handle's session was closed (every use says so). */
  readonly _closed?: boolean;
}

/** A name-based pointer target: the pointer names `name`, resolved when followed. */
export interface NamedTarget {
  /** The name (for the default resolver, a naming-service path). */
  readonly name: string;
  /** Offset of the record in the named object. @default {BASE_OFFSET} */
  readonly offset?: number | undefined;
  /** The resolver, by its registered name. @default {""} (the naming service) */
  readonly resolver?: string | undefined;
}

/**
 * A name-based pointer target, for {@linkcode StructAccessor.$set}: the
 * pointer stores the name (late binding), so re-binding the name redirects it.
 *
 * @param name The name, e.g. a naming-service path.
 * @param offset Offset of the record in the object the name resolves to.
 * @param resolver Registered resolver name (`""` is the naming service).
 * @returns The target.
 * @throws {TypeError} `name` is empty.
 * @throws {RangeError} `offset` is not an integer in [64, 2^48) (a pointer's
 * offset, past the null region).
 * @example
 * ```ts
 * import { named } from "@twz/libtwz/layout";
 * console.log(named("/config/current").name); // /config/current
 * ```
 */
export function named(name: string, offset?: number, resolver?: string): NamedTarget {
  if (typeof name !== "string" || name.length === 0) {
    throw new TypeError("A named pointer target needs a non-empty name");
  }
  if (offset !== undefined) checkNamedOffset(offset);
  return { name, offset, resolver };
}

/**
 * Check the offset of a named pointer target: an integer past the null region
 * that a pointer's 48-bit offset holds.
 */
function checkNamedOffset(offset: number): void {
  if (!(Number.isInteger(offset) && offset >= NULL_SIZE && offset <= MAX_PTR_OFFSET)) {
    throw new RangeError(
      `A named pointer's offset must be an integer in [${NULL_SIZE}, 2^48), not ${offset}`,
    );
  }
}

/**
 * The base of every generated accessor class. Its methods start with `$` so
 * they never collide with field names (which may not start with `$` or `_`).
 */
export class StructAccessor {
  /** @internal The object handle. */
  readonly _o: AccessorHost;
  /** @internal The object's live bytes (follow relocation). */
  readonly _e: LiveBytes;
  /** @internal Offset of the record in the object. */
  readonly _b: number;
  /** @internal */
  constructor(o: AccessorHost, e: LiveBytes, b: number) {
    this._o = o;
    this._e = e;
    this._b = b;
  }
  /** The struct type of this record. */
  get $type(): StructType<Fields> {
    return (this.constructor as unknown as { TYPE: StructType<Fields> }).TYPE;
  }
  /** Offset of the record in its object. */
  get $offset(): number {
    return this._b;
  }
  /** ID of the object holding the record. */
  get $id(): ObjID {
    return this._o.id;
  }
  /** Whether the record may be written through this accessor. */
  get $writable(): boolean {
    return (this.constructor as unknown as { WRITABLE: boolean }).WRITABLE;
  }
  /**
   * A cursor at this record (see {@linkcode StructCursor}): writable when
   * this accessor is.
   *
   * @throws {RangeError} The record is not aligned for its struct or not
   * inside its object (a pointer may name any offset; a cursor sits only on
   * records it reads whole).
   */
  $cursor(): StructCursor {
    const c = (this.$type as StructType<Fields>)._cursorCell();
    const W = (this.constructor as unknown as { WRITABLE: boolean }).WRITABLE;
    const C = this._e.words ? (W ? c.CRW : c.CRO) : W ? c.CRWv : c.CROv;
    const cur = new C!(this._o, this._e, 0);
    cursorPlace(cur, this._o, this._e, this._b);
    return cur;
  }
  /**
   * Make the record (or one field of it) durable.
   *
   * @param field A field name; the whole record when absent.
   */
  $persist(field?: string): void {
    const t = this.$type;
    if (field === undefined) this._o.persist(this._b, t.size);
    else {
      const f = t.field(field);
      this._o.persist(this._b + f.offset, f.type.size);
    }
  }
  /**
   * Set a field; for a pointer field also accepts a {@linkcode NamedTarget}
   * (a name-based pointer, see {@linkcode named}).
   */
  $set(field: string, value: unknown): void {
    const f = this.$type.field(field);
    if (f.type instanceof PtrType && value !== null && isNamed(value)) {
      if (!this._o.writable) throw readOnly(this, field);
      this._o._storePtr(this._b + f.offset, value);
      return;
    }
    (this as unknown as Record<string, unknown>)[field] = value;
  }
  /** The raw invariant pointer stored in a pointer field. */
  $ptr(field: string): InvPtr {
    const f = this.$type.field(field);
    if (!(f.type instanceof PtrType)) throw new TypeError(`Field ${field} is not a pointer`);
    const v = this._e.view, p = this._b + f.offset;
    if (p + 8 > v.byteLength) throw outside(this, field);
    const lo = v.getUint32(p, true), hi = v.getUint32(p + 4, true);
    return { fot: hi >>> 16, offset: (hi & 0xffff) * 4294967296 + lo };
  }
  /** Where a pointer field points: the target's object ID and offset, or null. */
  $target(field: string): { id: ObjID; offset: number } | null {
    const f = this.$type.field(field);
    if (!(f.type instanceof PtrType)) throw new TypeError(`Field ${field} is not a pointer`);
    if (this._b + f.offset + 8 > this._e.bytes.length) throw outside(this, field);
    return this._o._pointee(this._b + f.offset);
  }
  /** A plain-object copy of the record (pointers as `{ id, offset }`), for printing. */
  $toObject(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, f] of this.$type.layout) {
      const self = this as unknown as Record<string, unknown>;
      if (f.type instanceof PtrType) {
        const t = this.$target(name);
        out[name] = t && { id: formatId(t.id), offset: t.offset };
      } else if (f.type instanceof StructType) {
        out[name] = (self[name] as StructAccessor).$toObject();
      } else if (f.type instanceof ArrayType) {
        out[name] = [...(self[name] as ArrayAccessor<unknown>)].map((x) =>
          x instanceof StructAccessor ? x.$toObject() : x instanceof Uint8Array ? [...x] : x
        );
      } else if (f.type instanceof BytesType) out[name] = [...(self[name] as Uint8Array)];
      else out[name] = self[name];
    }
    return out;
  }
}

/**
 * A cursor: an accessor that moves. It has the getters and setters of the
 * struct's accessor, and moves in place: {@linkcode StructCursor.$follow}
 * along a pointer field, {@linkcode StructCursor.$moveTo} onto another
 * accessor's record, {@linkcode StructCursor.$seek} to another offset of its
 * object. No move allocates, so a loop walking a list or a tree through one
 * cursor makes no garbage (a plain `n = n.next` makes an accessor per hop
 * the first time each pointer is followed).
 *
 * Rules a cursor keeps (see docs/LIBTWZ.md):
 * - It sits only on records aligned for their struct and inside their
 *   object: a pointer naming anything else makes `$follow` throw a
 *   `RangeError` (the cursor stays; the plain getter `c.next` reads such a
 *   record exactly where it is).
 * - A writable cursor refuses to move onto a record it could not write (an
 *   object mapped read-only, through a read-only FOT entry):
 *   `TwzError(AccessDenied)`, and it stays. A read-only cursor stays
 *   read-only wherever it goes. Make a read-only cursor from a read-only
 *   handle to walk a structure that crosses into read-only objects.
 * - It holds its object's live bytes: after a `grow` that moved the object
 *   it reads the moved bytes; once the object is deleted every read and
 *   write through it throws `TwzError(ObjectNotFound)`; once the kernel
 *   withdrew the mapping, `TwzError(AccessDenied)`.
 * - Inside a transaction its getters, setters and `$follow` see the
 *   transaction's writes, as plain accessors do.
 */
export class StructCursor extends StructAccessor {
  /**
   * Move along pointer field `field` (a pointer to this cursor's struct) in
   * place.
   *
   * @param _field The pointer field's name.
   * @returns `true` when the cursor moved, `false` when the pointer is null
   * (the cursor stays).
   * @throws {TypeError} `field` is not a pointer to this struct.
   * @throws {RangeError} The pointer names a record that is misaligned or
   * not inside its object.
   * @throws {TwzError} `AccessDenied` (a writable cursor onto a read-only
   * record; access withdrawn), `ObjectNotFound` (the object was deleted),
   * or whatever resolving the pointer's FOT entry throws.
   */
  $follow(_field: string): boolean {
    throw new Error("generated");
  }
  /**
   * Walk along pointer field `field`: call `visit` with this cursor on each
   * record, starting with the one it is on, then follow `field`, until the
   * pointer is null or `visit` returns `false`. It does what
   * `while (visit(c) !== false) if (!c.$follow(field)) return true; return false;`
   * does — every check of {@linkcode StructCursor.$follow} on every hop, in
   * the same order, and a `visit` that moves the cursor is followed from
   * where it left it — but the loop lives in libtwz and keeps the position
   * it carries from node to node in locals: in a hot loop with a small
   * `visit` (which V8 inlines) a hop costs about what a hand-decoded chase
   * does, where a `$follow` loop stores the position into the cursor and
   * loads it back on every hop (docs/LIBTWZ.md).
   *
   * `visit` gets this cursor itself: read and write the record through it
   * during the call, and `$clone()` it to keep a position.
   *
   * @param _field The pointer field's name.
   * @param _visit Called once per record; `false` stops the walk (any other
   * return value, `undefined` too, goes on).
   * @returns `true` when the walk ended at a null pointer (the cursor stays
   * on the last record), `false` when `visit` stopped it (the cursor stays
   * on the record `visit` returned `false` for).
   * @throws As {@linkcode StructCursor.$follow}, from the hop that failed
   * (the cursor stays on the record whose pointer it could not follow), and
   * whatever `visit` throws.
   * @example Sum a list, then find a node
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { ptr, struct, u32 } from "@twz/libtwz/layout";
   * const Node = struct({ key: u32, value: u32, next: ptr("self") });
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * const obj = twz.create({ size: 4096 });
   * const a = Node.at(obj, obj.baseOffset), b = Node.at(obj, obj.baseOffset + Node.size);
   * a.key = 1, a.value = 10, b.key = 2, b.value = 20, a.next = b;
   * const c = Node.cursor(obj, obj.baseOffset);
   * let sum = 0;
   * c.$walk("next", (n) => {
   *   sum += n.value;
   * });
   * console.log(sum); // 30
   * c.$moveTo(a);
   * if (!c.$walk("next", (n) => n.key !== 2)) console.log(c.value); // 20: stopped on key 2
   * twz.close();
   * ```
   */
  $walk(_field: string, _visit: (node: this) => boolean | void): boolean {
    throw new Error("generated");
  }
  /**
   * Fold along pointer field `field`: `acc = step(acc, this)` with this
   * cursor on each record, starting with the one it is on, then follow
   * `field`, until the pointer is null. The walk of
   * {@linkcode StructCursor.$walk} (the same checks, the same loop), with
   * the running value carried from call to call instead of kept in a
   * variable the callback captures: in a hot loop that is the fastest walk
   * (a captured `let` that the callback updates lives in memory, not in a
   * register, and costs about 1.2–1.5 ns per node; docs/LIBTWZ.md).
   *
   * @param _field The pointer field's name.
   * @param _step Called once per record with the running value and the
   * cursor; returns the next running value.
   * @param _init The running value before the first record.
   * @returns The running value after the last record (the cursor stays on
   * it).
   * @throws As {@linkcode StructCursor.$walk}.
   * @example Sum a list
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { ptr, struct, u32 } from "@twz/libtwz/layout";
   * const Node = struct({ value: u32, next: ptr("self") });
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * const obj = twz.create({ size: 4096 });
   * const a = Node.at(obj, obj.baseOffset), b = Node.at(obj, obj.baseOffset + Node.size);
   * a.value = 10, b.value = 20, a.next = b;
   * const sum = Node.cursor(obj, obj.baseOffset).$reduce("next", (s, n) => s + n.value, 0);
   * console.log(sum); // 30
   * twz.close();
   * ```
   */
  $reduce<T>(_field: string, _step: (acc: T, node: this) => T, _init: T): T {
    throw new Error("generated");
  }
  /**
   * Move onto the record `target` is at (an accessor or a cursor of this
   * struct).
   *
   * @param _target The record, or `null` (no move).
   * @returns `true` when the cursor moved, `false` for `null`.
   * @throws {TypeError} `target` is not a record of this struct.
   * @throws {RangeError} / {TwzError} As {@linkcode StructCursor.$follow}.
   */
  $moveTo(_target: StructAccessor | null): boolean {
    throw new Error("generated");
  }
  /**
   * Move to the record at `offset` of the object the cursor is in.
   *
   * @param _offset Where the record starts (checked as `Type.at` does).
   * @returns This cursor.
   * @throws {RangeError} The record does not fit, is misaligned, or overlaps
   * the meta-info or the FOT.
   */
  $seek(_offset: number): this {
    throw new Error("generated");
  }
  /** An independent cursor at the same record. */
  $clone(): StructCursor {
    throw new Error("generated");
  }
}

/**
 * `count` records of one struct laid out back to back in one object (see
 * `Type.records`). {@linkcode RecordArray.at} moves the array's own cursor
 * (no allocation); {@linkcode RecordArray.get} makes a plain accessor. The
 * array's own cursor stays on the array: its `$follow` and `$moveTo` throw
 * a `TypeError` (`$clone()` gives a free cursor at the same record).
 */
export class RecordArray {
  /** @internal The object handle. */
  readonly _o: AccessorHost;
  /** @internal The object's live bytes. */
  readonly _e: LiveBytes;
  /** @internal Offset of record 0. */
  readonly _a: number;
  /** Number of records. */
  readonly length: number;
  /** @internal The array's own cursor (what `at` returns). */
  readonly _c: StructCursor;
  /** @internal The index guard: a typed array whose loads are `undefined` off [0, length). */
  readonly _k: Uint8Array;
  /** @internal Generated classes make record arrays (see `Type.records`). */
  constructor(o: AccessorHost, e: LiveBytes, a: number, n: number, c: StructCursor) {
    this._o = o;
    this._e = e;
    this._a = a;
    this.length = n;
    this._c = c;
    this._k = new Uint8Array(n);
  }
  /**
   * The array's own cursor moved to record `i`: the same cursor every call
   * (use `$clone()` to keep one).
   * @throws {RangeError} `i` is not an integer in [0, length).
   */
  at(_i: number): StructCursor {
    throw new Error("generated");
  }
  /**
   * A new plain accessor of record `i`.
   * @throws {RangeError} `i` is not an integer in [0, length).
   */
  get(_i: number): StructAccessor {
    throw new Error("generated");
  }
  /** A new cursor at record 0 (at the array's offset when it is empty). */
  cursor(): StructCursor {
    throw new Error("generated");
  }
  /**
   * A column of the array: field `name` of every record, read and written
   * by index (see {@linkcode RecordColumn}).
   * @throws {TypeError} No such field, or it is not a number, bigint or bool
   * field.
   */
  column(_name: string): RecordColumn<unknown> {
    throw new Error("generated");
  }
  /** Iterate over the records: one plain accessor each. */
  *[Symbol.iterator](): IterableIterator<StructAccessor> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}

/**
 * One scalar field of every record of a {@linkcode RecordArray}
 * (`recs.column("weight")`): `get(i)` and `set(i, x)` read and write field
 * `name` of record `i`, as `recs.at(i).name` does, without moving a cursor.
 * A sweep over a column keeps the record's offset in a local: on word-code
 * records it is one typed-array load or store per call, with the array's
 * index check, the transaction check and the field's value check.
 *
 * It keeps every rule of the record's accessors: a value an integer field
 * cannot hold is refused (nothing written); inside a transaction reads see
 * the transaction's writes and every write is a transaction write; a column
 * of a read-only handle refuses writes; after a `grow` that moved the
 * object it reads and writes the moved bytes; once the object is deleted,
 * withdrawn or the session closed, it throws the accessors' one-line
 * `TwzError`.
 */
export class RecordColumn<T> {
  /** Number of records. */
  readonly length: number;
  /** @internal The record array. */
  readonly _r: RecordArray;
  /** @internal Generated classes make columns (see `RecordArray.column`). */
  constructor(r: RecordArray) {
    this._r = r;
    this.length = r.length;
  }
  /** The field's name. */
  get name(): string {
    return (this.constructor as unknown as { FIELD: string }).FIELD;
  }
  /**
   * Field `name` of record `i`.
   * @throws {RangeError} `i` is not an integer in [0, length).
   * @throws {TwzError} The object was deleted, withdrawn or its session closed.
   */
  get(_i: number): T {
    throw new Error("generated");
  }
  /**
   * Store field `name` of record `i`.
   * @throws {RangeError} `i` is not an integer in [0, length), or `value`
   * does not fit an integer field (`TypeError` when it is not a number, or
   * for a 64-bit field not a bigint).
   * @throws {TwzError} A read-only handle (`AccessDenied`, `ReadOnly`); the
   * object was deleted, withdrawn or its session closed.
   */
  set(_i: number, _value: T): void {
    throw new Error("generated");
  }
  /** Iterate over the values. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}

/** What a cursor's class says about it (static fields of generated classes). */
interface CursorClass {
  readonly TYPE: StructType<Fields>;
  readonly WRITABLE: boolean;
  readonly WORDS: boolean;
}

/** A cursor's mutable view of itself. */
type Movable = { _o: AccessorHost; _e: LiveBytes; _b: number; constructor: unknown };

/**
 * Put `cur` on the record at `off` of `o` (bytes `e`), or throw without
 * moving: the checks every move shares (the fast paths in generated code
 * take only moves these would allow).
 */
export function cursorPlace(cur: StructAccessor, o: AccessorHost, e: LiveBytes, off: number): true {
  const c = cur as unknown as Movable;
  const k = c.constructor as CursorClass;
  const T = k.TYPE;
  if (o._closed === true) throw closedError(o.id);
  if (e.bytes.length === 0) throw outside({ _o: o, _e: e, _b: off }, "(the cursor's target)");
  if (k.WRITABLE && !o.writable) {
    throw new TwzError(
      ErrorCode.AccessDenied,
      `A writable cursor cannot move onto the record at offset ${off} of ${
        formatId(o.id)
      }: it is mapped read-only there (walk with a cursor made from a read-only handle)`,
    );
  }
  const why = !(Number.isInteger(off) && off % T.align === 0)
    ? `not aligned for the record (${T.align})`
    : off + T.size > e.bytes.length
    ? `not inside the object (${e.bytes.length} bytes)`
    : k.WORDS && (!e.words || off + T.size > 2 ** 32)
    ? "not reachable through word views"
    : undefined;
  if (why !== undefined) {
    throw new RangeError(
      `A cursor cannot sit on the ${T.size}-byte record at offset ${off} of ${
        formatId(o.id)
      }: ${why}`,
    );
  }
  c._o = o;
  c._e = e;
  c._b = off;
  return true;
}

/**
 * The slow path of a cursor's move along a pointer `hi:lo` (its two 32-bit
 * halves): null with FOT bits, a large offset, a misaligned or outside
 * target, another object refusing the move. Moves or throws.
 *
 * @returns `false` for a null pointer, else `true` (moved).
 */
export function cursorMove(cur: StructAccessor, lo: number, hi: number): boolean {
  const x = hi & 0xffff, off = x === 0 ? lo : x * 4294967296 + lo;
  if (off === 0) return false;
  const f = hi >>> 16;
  const o = f === 0 ? cur._o : cur._o._fot(f);
  return cursorPlace(cur, o, o._e, off);
}

/**
 * `$follow` inside a transaction that wrote the cursor's object: the
 * pointer's 8 bytes as the transaction sees them, then the move.
 */
export function cursorTxFollow(t: Tx, cur: StructAccessor, off: number, field: string): boolean {
  if (cur._b + off + 8 > cur._e.bytes.length) throw outside(cur, field);
  const b = t.read(cur._o as unknown as TxTarget, cur._b + off, 8);
  const lo = (b[0]! | b[1]! << 8 | b[2]! << 16 | b[3]! << 24) >>> 0;
  const hi = (b[4]! | b[5]! << 8 | b[6]! << 16 | b[7]! << 24) >>> 0;
  return (cur as unknown as { _go(lo: number, hi: number): boolean })._go(lo, hi);
}

/** `$follow` of a field that is not a pointer to the cursor's own struct. */
export function notFollowable(cur: StructAccessor, field: unknown): TypeError {
  return new TypeError(
    `A cursor of ${cur.$type.kind} cannot follow ${
      typeof field === "string" ? `field ${field}` : String(field)
    }: it follows only pointer fields to its own struct (use the plain getter)`,
  );
}

/** `$walk` or `$reduce` given something that is not a function. */
export function notCallable(fn: unknown): TypeError {
  return new TypeError(`A cursor's $walk and $reduce take a function, not ${typeof fn}`);
}

/** A move of a record array's own cursor off its array. */
export function pinnedMove(_cur: StructAccessor, what: string): TypeError {
  return new TypeError(
    `The cursor of a record array stays on its array: ${what} is refused (move a $clone() of it)`,
  );
}

/** `$moveTo` of something that is not a record of the cursor's struct. */
export function notRecord(cur: StructAccessor, x: unknown): TypeError {
  return new TypeError(
    `A cursor of ${cur.$type.kind} moves only onto records of that struct, not ${
      x instanceof StructAccessor ? `a ${x.$type.kind} record` : typeof x
    }`,
  );
}

/** A fixed-size array inside a record: element loads and stores by index. */
export class ArrayAccessor<T> {
  /** @internal */
  readonly _o: AccessorHost;
  /** @internal */
  readonly _e: LiveBytes;
  /** @internal */
  readonly _b: number;
  /** @internal The array field's name (`ports`, `grid[2]`), for errors. */
  readonly _n: string;
  /** @internal */
  constructor(o: AccessorHost, e: LiveBytes, b: number, n: string) {
    this._o = o;
    this._e = e;
    this._b = b;
    this._n = n;
  }
  /** Number of elements. */
  get length(): number {
    return (this.constructor as unknown as { LENGTH: number }).LENGTH;
  }
  /**
   * Element `i`.
   * @throws {RangeError} `i` is outside the array.
   */
  get(_i: number): T {
    throw new Error("generated");
  }
  /**
   * Store element `i` (not for struct elements: write their fields).
   * @throws {RangeError} `i` is outside the array.
   */
  set(_i: number, _value: T): void {
    throw new Error("generated");
  }
  /** Iterate over the elements. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}

/**
 * A scratch record holding one field's bytes as the running transaction
 * sees them; generated getter and setter bodies run on it unchanged.
 */
function scratch(
  t: Tx,
  acc: { _o: AccessorHost; _b: number; _n?: string },
  off: number,
  size: number,
): { _o: AccessorHost; _e: ScratchBytes; _b: number; _n: string | undefined } {
  const bytes = t.read(acc._o as unknown as TxTarget, acc._b + off, size);
  return { _o: acc._o, _e: { bytes, view: new DataView(bytes.buffer) }, _b: -off, _n: acc._n };
}

export function txFieldGet(
  t: Tx,
  acc: { _o: AccessorHost; _b: number; _e: LiveBytes },
  off: number,
  size: number,
  get: (this: unknown) => unknown,
): unknown {
  if (acc._b + off + size > acc._e.bytes.length) throw outside(acc, "(read in a transaction)");
  return get.call(scratch(t, acc, off, size));
}

export function txFieldSet(
  t: Tx,
  acc: { _o: AccessorHost; _b: number; _e: LiveBytes },
  off: number,
  size: number,
  set: (this: unknown, x: unknown) => void,
  x: unknown,
): void {
  if (acc._b + off + size > acc._e.bytes.length) throw outside(acc, "(write in a transaction)");
  const s = scratch(t, acc, off, size);
  set.call(s, x);
  t.write(acc._o as unknown as TxTarget, acc._b + off, s._e.bytes);
}

export function txElementGet(
  t: Tx,
  acc: { _o: AccessorHost; _b: number },
  off: number,
  size: number,
  i: number,
  get: (this: unknown, i: number) => unknown,
): unknown {
  const s = scratch(t, acc, off, size);
  s._b = 0;
  return get.call(s, i);
}

export function txElementSet(
  t: Tx,
  acc: { _o: AccessorHost; _b: number },
  off: number,
  size: number,
  i: number,
  set: (this: unknown, i: number, x: unknown) => void,
  x: unknown,
): void {
  const s = scratch(t, acc, off, size);
  s._b = 0;
  set.call(s, i, x);
  t.write(acc._o as unknown as TxTarget, acc._b + off, s._e.bytes);
}

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
export const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Whether `d` (a pointer loaded as a little-endian double) has the bits
 * `hi:lo` that were decoded: false for a NaN (never memoized, payloads may be
 * canonicalized) and when another thread changed the pointer between the loads.
 */
export function sameBits(d: number, lo: number, hi: number): boolean {
  if (d !== d) return false;
  F64[0] = d;
  return HOST_LE ? U32[0] === lo && U32[1] === hi : U32[1] === lo && U32[0] === hi;
}

function where(acc: { _o: AccessorHost; _b: number }): string {
  return `${formatId(acc._o.id)} at offset ${acc._b}`;
}

export function readOnly(acc: { _o: AccessorHost; _b: number }, field: string): TwzError {
  if (acc._o.imageReadOnly === true) {
    return new TwzError(
      ErrorCode.ReadOnly,
      `the image is open read-only: cannot write field ${field} of the record in ${where(acc)}`,
    );
  }
  return new TwzError(
    ErrorCode.AccessDenied,
    `Cannot write field ${field} of the record in ${where(acc)}: ${
      acc._o.writable ? "the cursor is read-only" : "the object is mapped read-only"
    }`,
  );
}

export function notAssignable(acc: { _o: AccessorHost; _b: number }, field: string): TypeError {
  return new TypeError(
    `Field ${field} of the record in ${where(acc)} is a struct or array: assign its fields`,
  );
}

export function badValue(
  acc: { _o: AccessorHost; _b: number },
  field: string,
  kind: string,
  x: unknown,
): TypeError {
  const shown = typeof x === "bigint"
    ? `${x}n`
    : typeof x === "string"
    ? JSON.stringify(x)
    : String(x);
  return new TypeError(
    `Cannot store ${shown} in ${kind} field ${field} of the record in ${where(acc)}`,
  );
}

/**
 * The error of a load or store that reached no byte of the object: the
 * session closed (`Shutdown`), the mapping withdrawn (`AccessDenied`), the
 * object deleted (`ObjectNotFound`) — each one line naming the object — or
 * else a `RangeError`: the field lies outside the object.
 */
export function outside(
  acc: { _o: AccessorHost; _b: number; _e: LiveBytes },
  field: string,
): RangeError | TwzError {
  if (acc._o._closed === true) return closedError(acc._o.id);
  if (acc._e.bytes.length === 0) {
    const gone = acc._o._gone?.();
    if (gone !== undefined) return gone;
    return new TwzError(
      ErrorCode.ObjectNotFound,
      `object ${
        formatId(acc._o.id)
      } was deleted: field ${field} of its record at offset ${acc._b} is gone`,
    );
  }
  return new RangeError(
    `Field ${field} of the record in ${
      where(acc)
    } is outside the object (${acc._e.bytes.length} bytes)`,
  );
}

/** The values an integer field of each kind holds. */
const INT_RANGE: Record<string, readonly [bigint, bigint]> = {
  u8: [0n, 0xffn],
  i8: [-0x80n, 0x7fn],
  u16: [0n, 0xffffn],
  i16: [-0x8000n, 0x7fffn],
  u32: [0n, 0xffffffffn],
  i32: [-0x80000000n, 0x7fffffffn],
  u64: [0n, 0xffffffffffffffffn],
  i64: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

/**
 * The error of an integer store refused: a value outside the field's range,
 * not an integer (NaN, 1.5), or not a number at all (a `TypeError` then; for
 * a 64-bit field, anything but a bigint). Nothing has been written.
 *
 * @param field The field's name (`count`, `ports[3]`).
 * @param kind The field's type (`u8` ... `i64`).
 * @param x The value refused.
 */
export function intRefused(field: string, kind: string, x: unknown): RangeError | TypeError {
  const [lo, hi] = INT_RANGE[kind]!;
  const shown = typeof x === "bigint"
    ? `${x}n`
    : typeof x === "string"
    ? JSON.stringify(x)
    : typeof x === "number" && Object.is(x, -0)
    ? "-0"
    : String(x);
  const message = `field ${JSON.stringify(field)} (${kind}) takes ${lo}..${hi}${
    kind.endsWith("64") ? " (a bigint)" : ""
  }, not ${shown}`;
  const wide = kind.endsWith("64");
  return (wide ? typeof x === "bigint" : typeof x === "number")
    ? new RangeError(message)
    : new TypeError(message);
}

/**
 * Why a checked word-view store of an integer wrote nothing: the value does
 * not fit the field ({@linkcode intRefused}), else the field lies outside
 * the object ({@linkcode outside}).
 */
export function storeRefused(
  acc: { _o: AccessorHost; _b: number; _e: LiveBytes },
  field: string,
  kind: string,
  x: unknown,
): RangeError | TypeError | TwzError {
  if (acc._o._closed === true) return closedError(acc._o.id);
  const [lo, hi] = INT_RANGE[kind]!;
  const fits = kind.endsWith("64")
    ? typeof x === "bigint" && x >= lo && x <= hi
    : typeof x === "number" && Number.isInteger(x) && x >= lo && x <= hi;
  return fits ? outside(acc, field) : intRefused(field, kind, x);
}

/**
 * The error of a use after `Twz.close()`: one line, `TwzError` `Shutdown`.
 *
 * @param id The object the use was of, if any.
 * @returns The error.
 */
export function closedError(id?: ObjID): TwzError {
  return new TwzError(
    ErrorCode.Shutdown,
    `the libtwz session is closed${
      id === undefined ? "" : `: object ${formatId(id)} can no longer be used`
    } (open a new session)`,
  );
}

export function outOfRange(i: number, length: number): RangeError {
  return new RangeError(`Index ${i} is outside an array of ${length}`);
}

export function setBytes(
  acc: StructAccessor,
  field: string,
  off: number,
  size: number,
  x: unknown,
): void {
  if (!(x instanceof Uint8Array) || x.length > size) {
    throw new TypeError(
      `Field ${field} of the record in ${where(acc)} takes a Uint8Array of at most ${size} bytes`,
    );
  }
  const b = acc._e.bytes;
  const at = acc._b + off;
  if (at + size > b.length) throw outside(acc, field);
  b.set(x, at);
  b.fill(0, at + x.length, at + size);
}

const encoder = new TextEncoder();

/** The NUL-terminated (or `size`-long) string at `at`, decoded as the string codec does. */
export function getString(bytes: Uint8Array, at: number, size: number): string {
  let end = at;
  const stop = at + size;
  while (end < stop && bytes[end] !== 0) end++;
  return codec.string.decode(bytes, at, end - at);
}

export function setString(
  acc: StructAccessor,
  field: string,
  off: number,
  size: number,
  x: unknown,
): void {
  if (typeof x !== "string") {
    throw new TypeError(`Field ${field} of the record in ${where(acc)} takes a string`);
  }
  const data = encoder.encode(x);
  if (data.length > size || data.includes(0)) {
    throw new RangeError(
      `"${x}" does not fit string(${size}) field ${field} of the record in ${
        where(acc)
      } (${data.length} UTF-8 bytes${data.includes(0) ? ", with a NUL" : ""})`,
    );
  }
  const b = acc._e.bytes;
  const at = acc._b + off;
  if (at + size > b.length) throw outside(acc, field);
  b.set(data, at);
  b.fill(0, at + data.length, at + size);
}

export function isNamed(x: unknown): x is NamedTarget {
  return typeof x === "object" && x !== null && !(x instanceof StructAccessor) &&
    typeof (x as NamedTarget).name === "string";
}

export function checkPtrValue(
  acc: StructAccessor,
  field: string,
  cell: ClassCell,
  x: unknown,
): void {
  if (x === null) return;
  const target = cell.type;
  if (x instanceof StructAccessor && x.$type === target) return;
  throw new TypeError(
    `Pointer field ${field} of the record in ${where(acc)} takes a ${target.kind} record or null` +
      (isNamed(x) ? " (use $set() for a named target)" : ""),
  );
}

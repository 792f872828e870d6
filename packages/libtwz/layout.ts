/**
 * Typed layouts: a small schema DSL compiled to accessor classes over an
 * object's bytes. Reading a field is a load from object memory and writing it
 * a store: no JSON, no copies. Every field is fixed-width and address-free
 * (integers, floats, booleans, fixed-size bytes and strings, nested structs,
 * fixed arrays, invariant pointers), so a record means the same thing in every
 * process, on every boot. Anything else cannot be declared: {@linkcode struct}
 * accepts only the field types of this module, at the type level and at run
 * time.
 *
 * Accessor classes are generated once per struct (with `new Function`, so each
 * getter and setter is its own small function with constant offsets). Fields
 * are laid out in declaration order with natural alignment, as a C compiler
 * would; little-endian.
 *
 * @example A record with a pointer to another record
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { bool, f64, ptr, string, struct, u32, u64 } from "@twz/libtwz/layout";
 * import { plugin } from "@twz/hal-sim";
 *
 * const Point = struct({ x: f64, y: f64 });
 * const Shape = struct({ id: u64, name: string(16), visible: bool, corners: u32, origin: ptr(Point) });
 *
 * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * const shape = Shape.at(obj, obj.baseOffset);
 * const point = Point.at(obj, obj.baseOffset + Shape.size);
 * point.x = 1.5;
 * shape.name = "triangle";
 * shape.origin = point;
 * console.log(shape.name, shape.origin?.x); // triangle 1.5
 * twz.close();
 * ```
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
import { TX, type Tx, type TxTarget } from "./tx.ts";
import { codec } from "./codec.ts";

/**
 * The live bytes of a mapped object: the kernel retargets `view` and `bytes`
 * when it relocates the object, so whoever holds this sees the move.
 */
export interface LiveBytes {
  readonly view: DataView;
  readonly bytes: Uint8Array;
  /**
   * Whether the word views hold the object's bytes (little-endian host, bytes
   * 8-aligned in their buffer); when false they are empty.
   */
  readonly words: boolean;
  readonly i8: Int8Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  readonly bu64: BigUint64Array;
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
}

/** A name-based pointer target: the pointer names `name`, resolved when followed. */
export interface NamedTarget {
  /** The name (for the default resolver, a naming-service path). */
  readonly name: string;
  /** Offset of the record in the named object. @default {BASE_OFFSET} */
  readonly offset?: number;
  /** The resolver, by its registered name. @default {""} (the naming service) */
  readonly resolver?: string;
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
 * A field type: a fixed-width, address-free piece of persistent data. Only the
 * constants and functions of this module make them; `struct` refuses anything
 * else.
 *
 * @typeParam T The JavaScript value a field of this type reads as.
 */
export abstract class FieldType<T = unknown> {
  /** Size in bytes. */
  abstract readonly size: number;
  /** Alignment in bytes. */
  abstract readonly align: number;
  /** A short description (`"u32"`, `"string(16)"`, `"struct{...}"`). */
  abstract readonly kind: string;
  /** Phantom: the value type. */
  declare readonly _value: T;
  /**
   * @internal Getter body (`this._e`, `this._b`; `OFF`, `NAME` substituted).
   * With `w`, naturally aligned loads go through the extent's word views
   * (`this._e.u32[(this._b + OFF) >>> 2]`), else through its DataView.
   */
  abstract _get(ctx: Codegen, w: boolean): string;
  /** @internal Setter body given `x`, or `undefined` for read-only fields. */
  abstract _set(ctx: Codegen, w: boolean): string | undefined;
}

/** @internal Code-generation context: names bound to values. */
export class Codegen {
  readonly names: string[] = [];
  readonly values: unknown[] = [];
  bind(value: unknown): string {
    const i = this.values.indexOf(value);
    if (i >= 0) return this.names[i];
    const name = `$${this.values.length}`;
    this.names.push(name);
    this.values.push(value);
    return name;
  }
}

type IntKind = "u8" | "u16" | "u32" | "i8" | "i16" | "i32";

/**
 * A word-view load: `view` is the extent's typed array, `shift` log2 of its
 * element size. A load past the end gives `undefined` from a typed array;
 * like a DataView load, it throws a RangeError instead (also for an accessor
 * of a deleted object, whose views are empty).
 */
function wordGet(ctx: Codegen, view: string, shift: number, then = "v"): string {
  const i = shift === 0 ? "this._b + OFF" : `(this._b + OFF) >>> ${shift}`;
  return `const v = this._e.${view}[${i}]; if (v === undefined) throw ${
    ctx.bind(outside)
  }(this, NAME); return ${then};`;
}

/**
 * A word-view store of `value`: a typed-array store converts as a DataView
 * store does (ToNumber, then modulo 2^n for integers, rounding for floats).
 * A typed array drops a store past the end; reading the element back gives
 * `undefined` then, and the setter throws a RangeError, as a DataView store
 * does. The check goes after the store: V8 folds the read-back away, while a
 * bounds check before the store cost ~1.3 ns per store (measured).
 */
function wordSet(ctx: Codegen, view: string, shift: number, value = "x"): string {
  const i = shift === 0 ? "this._b + OFF" : `(this._b + OFF) >>> ${shift}`;
  return `const a = this._e.${view}, j = ${i}; a[j] = ${value}; if (a[j] === undefined) throw ${
    ctx.bind(outside)
  }(this, NAME);`;
}

const INT: Record<IntKind, { size: number; dv: string; w: string; shift: number }> = {
  u8: { size: 1, dv: "Uint8", w: "bytes", shift: 0 },
  i8: { size: 1, dv: "Int8", w: "i8", shift: 0 },
  u16: { size: 2, dv: "Uint16", w: "u16", shift: 1 },
  i16: { size: 2, dv: "Int16", w: "i16", shift: 1 },
  u32: { size: 4, dv: "Uint32", w: "u32", shift: 2 },
  i32: { size: 4, dv: "Int32", w: "i32", shift: 2 },
};

class IntType extends FieldType<number> {
  readonly size: number;
  readonly align: number;
  constructor(readonly kind: IntKind) {
    super();
    this.size = this.align = INT[kind].size;
  }
  _get(ctx: Codegen, w: boolean): string {
    const k = INT[this.kind];
    if (w) return wordGet(ctx, k.w, k.shift);
    const le = this.size > 1 ? ", true" : "";
    return `return this._e.view.get${k.dv}(this._b + OFF${le});`;
  }
  _set(ctx: Codegen, w: boolean): string {
    const k = INT[this.kind];
    if (w) return wordSet(ctx, k.w, k.shift);
    const le = this.size > 1 ? ", true" : "";
    // Stored as DataView stores do: converted to a number, modulo 2^n (like a
    // C integer conversion). Checking costs more than the store itself.
    return `this._e.view.set${INT[this.kind].dv}(this._b + OFF, x${le});`;
  }
}

class BigIntType extends FieldType<bigint> {
  readonly size = 8;
  readonly align = 8;
  constructor(readonly kind: "u64" | "i64") {
    super();
  }
  _get(ctx: Codegen, w: boolean): string {
    if (w) return wordGet(ctx, this.kind === "u64" ? "bu64" : "bi64", 3);
    const dv = this.kind === "u64" ? "BigUint64" : "BigInt64";
    return `return this._e.view.get${dv}(this._b + OFF, true);`;
  }
  _set(ctx: Codegen, w: boolean): string {
    const dv = this.kind === "u64" ? "BigUint64" : "BigInt64";
    const err = ctx.bind(badValue);
    const check = this.kind === "u64"
      ? "typeof x !== 'bigint' || x < 0n || x > 0xffffffffffffffffn"
      : "typeof x !== 'bigint' || x < -0x8000000000000000n || x > 0x7fffffffffffffffn";
    return `if (${check}) throw ${err}(this, NAME, "${this.kind}", x);` +
      (w
        ? wordSet(ctx, this.kind === "u64" ? "bu64" : "bi64", 3)
        : `this._e.view.set${dv}(this._b + OFF, x, true);`);
  }
}

class FloatType extends FieldType<number> {
  readonly size: number;
  readonly align: number;
  constructor(readonly kind: "f32" | "f64") {
    super();
    this.size = this.align = kind === "f32" ? 4 : 8;
  }
  _get(ctx: Codegen, w: boolean): string {
    if (w) return wordGet(ctx, this.kind, this.size === 4 ? 2 : 3);
    return `return this._e.view.getFloat${this.size * 8}(this._b + OFF, true);`;
  }
  _set(ctx: Codegen, w: boolean): string {
    if (w) return wordSet(ctx, this.kind, this.size === 4 ? 2 : 3);
    return `this._e.view.setFloat${this.size * 8}(this._b + OFF, x, true);`;
  }
}

class BoolType extends FieldType<boolean> {
  readonly size = 1;
  readonly align = 1;
  readonly kind = "bool";
  _get(ctx: Codegen, w: boolean): string {
    if (w) return wordGet(ctx, "bytes", 0, "v !== 0");
    return "return this._e.view.getUint8(this._b + OFF) !== 0;";
  }
  _set(ctx: Codegen, w: boolean): string {
    const err = ctx.bind(badValue);
    return `if (typeof x !== "boolean") throw ${err}(this, NAME, "bool", x);` +
      (w
        ? wordSet(ctx, "bytes", 0, "x ? 1 : 0")
        : "this._e.view.setUint8(this._b + OFF, x ? 1 : 0);");
  }
}

class BytesType extends FieldType<Uint8Array> {
  readonly align = 1;
  readonly kind: string;
  constructor(readonly size: number) {
    super();
    this.kind = `bytes(${size})`;
  }
  _get(ctx: Codegen): string {
    // A live view only where its stores are the handle's own plain stores:
    // a writable handle, outside a transaction. Otherwise a copy.
    return `const m = this._e.bytes.subarray(this._b + OFF, this._b + OFF + ${this.size}); ` +
      `return this._o.writable && ${ctx.bind(TX)}.current === null ? m : m.slice();`;
  }
  _set(ctx: Codegen): string {
    return `${ctx.bind(setBytes)}(this, NAME, OFF, ${this.size}, x);`;
  }
}

class StringType extends FieldType<string> {
  readonly align = 1;
  readonly kind: string;
  constructor(readonly size: number) {
    super();
    this.kind = `string(${size})`;
  }
  _get(ctx: Codegen): string {
    return `return ${ctx.bind(getString)}(this._e.bytes, this._b + OFF, ${this.size});`;
  }
  _set(ctx: Codegen): string {
    return `${ctx.bind(setString)}(this, NAME, OFF, ${this.size}, x);`;
  }
}

/** The pointer target of a {@linkcode ptr} field. */
export type PtrTarget = StructType<Fields> | "self" | (() => StructType<Fields>);

/** A pointer field type; see {@linkcode ptr}. */
export class PtrType<S> extends FieldType<S> {
  readonly size = 8;
  readonly align = 8;
  readonly kind = "ptr";
  /** @internal */
  readonly target: PtrTarget;
  /** @internal */
  constructor(target: PtrTarget) {
    super();
    this.target = target;
  }
  /** @internal The target type, given the enclosing struct. */
  resolve(self: StructType<Fields>): StructType<Fields> {
    const t = this.target === "self"
      ? self
      : typeof this.target === "function"
      ? this.target()
      : this.target;
    if (!(t instanceof StructType)) throw new TypeError("ptr() must point at a struct type");
    return t;
  }
  _get(): string {
    // Read the two halves; offset 0 is null; FOT index 0 is this object.
    // The target accessor uses word code when its extent has word views and
    // the record is aligned and inside the object (a pointer is data: it may
    // name any offset); else DataView code, which throws past the end.
    return "const v = this._e.view, p = this._b + OFF;" +
      "const lo = v.getUint32(p, true), hi = v.getUint32(p + 4, true);" +
      // Keep small offsets small integers: a double here would box a number per follow.
      "const x = hi & 0xffff, off = x === 0 ? lo : x * 4294967296 + lo;" +
      "if (off === 0) return null;" +
      "const f = hi >>> 16;" +
      "const o = f === 0 ? this._o : this._o._fot(f);" +
      "const e = o._e, T = TARGET.type;" +
      "const r = e.words && off % T.align === 0 && off + T.size <= e.bytes.length" +
      " ? (o.writable ? new TARGET.RW(o, e, off) : new TARGET.RO(o, e, off))" +
      " : o.writable ? new TARGET.RWv(o, e, off) : new TARGET.ROv(o, e, off);" +
      "MEMO_SET" +
      "return r;";
  }
  _set(ctx: Codegen): string {
    return `${
      ctx.bind(checkPtrValue)
    }(this, NAME, TARGET, x); this._o._storePtr(this._b + OFF, x);`;
  }
}

/** A fixed-size array field type; see {@linkcode array}. */
export class ArrayType<E extends FieldType> extends FieldType<ArrayAccessor<unknown>> {
  readonly size: number;
  readonly align: number;
  readonly kind: string;
  /** @internal */
  #cls?: ArrayClasses;
  constructor(readonly element: E, readonly length: number) {
    super();
    this.size = element.size * length;
    this.align = element.align;
    this.kind = `${element.kind}[${length}]`;
  }
  /** @internal */
  classes(self: StructType<Fields>): ArrayClasses {
    return this.#cls ??= compileArray(this, self);
  }
  _get(ctx: Codegen, w: boolean): string {
    const me = ctx.bind(this);
    const [rw, ro] = w ? ["RW", "RO"] : ["RWv", "ROv"];
    return `return new (this._o.writable ? ${me}.classes(SELF).${rw} : ${me}.classes(SELF).${ro})(this._o, this._e, this._b + OFF);`;
  }
  _set(): undefined {
    return undefined;
  }
}

/** The value type of a field type. */
export type Value<F> = F extends PtrType<infer S> ? S
  : F extends StructType<infer G> ? Accessor<G>
  : F extends ArrayType<infer E> ? ArrayAccessor<Value<E>>
  : F extends FieldType<infer T> ? T
  : never;

/** A struct's fields: names to field types. */
export type Fields = { readonly [name: string]: FieldType };

type ReadonlyKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends StructType<Fields> | ArrayType<FieldType> ? K : never;
}[keyof F];

type SelfResolved<F extends Fields, V> = V extends SelfPtr ? Accessor<F> | null : V;

/**
 * An accessor for a record of fields `F`: one property per field, plus the
 * `$` methods of {@linkcode StructAccessor}.
 */
export type Accessor<F extends Fields> =
  & { -readonly [K in Exclude<keyof F, ReadonlyKeys<F>>]: SelfResolved<F, Value<F[K]>> }
  & { readonly [K in ReadonlyKeys<F>]: Value<F[K]> }
  & StructAccessor;

/** Marker for `ptr("self")`. */
export interface SelfPtr {
  readonly _self: true;
}

/** Any record accessor. */
export type AnyAccessor = StructAccessor;

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
    return this._o.writable;
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
    const lo = v.getUint32(p, true), hi = v.getUint32(p + 4, true);
    return { fot: hi >>> 16, offset: (hi & 0xffff) * 4294967296 + lo };
  }
  /** Where a pointer field points: the target's object ID and offset, or null. */
  $target(field: string): { id: ObjID; offset: number } | null {
    const f = this.$type.field(field);
    if (!(f.type instanceof PtrType)) throw new TypeError(`Field ${field} is not a pointer`);
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
 * @internal A struct type's generated classes: writable and read-only, each
 * with word-view code (`RW`, `RO`: for records of an extent with `words`,
 * aligned and inside the object when made) and DataView code (`RWv`, `ROv`:
 * any other record). On a big-endian host both pairs are DataView code.
 */
export interface ClassCell {
  RW: AccessorCtor | null;
  RO: AccessorCtor | null;
  RWv: AccessorCtor | null;
  ROv: AccessorCtor | null;
  readonly type: StructType<Fields>;
}

/** @internal An array type's generated classes (as in {@linkcode ClassCell}). */
interface ArrayClasses {
  RW: ArrayCtor;
  RO: ArrayCtor;
  RWv: ArrayCtor;
  ROv: ArrayCtor;
}

/** An accessor class. */
type AccessorCtor = new (o: AccessorHost, e: LiveBytes, b: number) => StructAccessor;
type ArrayCtor = new (o: AccessorHost, e: LiveBytes, b: number) => ArrayAccessor<unknown>;

/** A fixed-size array inside a record: element loads and stores by index. */
export class ArrayAccessor<T> {
  /** @internal */
  readonly _o: AccessorHost;
  /** @internal */
  readonly _e: LiveBytes;
  /** @internal */
  readonly _b: number;
  /** @internal */
  constructor(o: AccessorHost, e: LiveBytes, b: number) {
    this._o = o;
    this._e = e;
    this._b = b;
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

interface FieldInfo {
  readonly offset: number;
  readonly type: FieldType;
}

/**
 * A struct type: its layout, and a factory for accessors on an object.
 *
 * @typeParam F The fields.
 */
export class StructType<F extends Fields> extends FieldType<StructAccessor> {
  readonly size: number;
  readonly align: number;
  readonly kind: string;
  /** Fields in order, with their offsets. */
  readonly layout: ReadonlyMap<string, FieldInfo>;

  /** @internal Use {@linkcode struct}. */
  constructor(fields: F) {
    super();
    const layout = new Map<string, FieldInfo>();
    let offset = 0;
    let align = 1;
    for (const name of Object.keys(fields)) {
      const type = fields[name];
      if (!(type instanceof FieldType)) {
        throw new TypeError(
          `Field "${name}" is not a persistent field type (use u8..u64, i8..i64, f32, f64, bool, bytes(n), string(n), array(T, n), struct({...}) or ptr(T))`,
        );
      }
      if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name) || name === "constructor") {
        throw new TypeError(
          `"${name}" cannot be a field name (letters, digits, _; not starting with $ or _)`,
        );
      }
      offset = Math.ceil(offset / type.align) * type.align;
      layout.set(name, { offset, type });
      offset += type.size;
      align = Math.max(align, type.align);
    }
    this.size = Math.max(1, Math.ceil(offset / align) * align);
    this.align = align;
    this.layout = layout;
    this.kind = `struct{${[...layout].map(([n, f]) => `${n}: ${f.type.kind}`).join(", ")}}`;
  }

  /** @internal The accessor classes (filled on first use; generated code reads them). */
  readonly _cls: ClassCell = { RW: null, RO: null, RWv: null, ROv: null, type: this };
  #compiling = false;

  /** @internal The writable accessor class. */
  get RW(): AccessorCtor {
    if (!this._cls.RW) this._compile();
    return this._cls.RW!;
  }
  /** @internal The read-only accessor class. */
  get RO(): AccessorCtor {
    if (!this._cls.RO) this._compile();
    return this._cls.RO!;
  }

  /** @internal Generate the classes of this struct and of every struct it reaches. */
  _compile(): void {
    if (this._cls.RW || this.#compiling) return;
    this.#compiling = true;
    try {
      this._cls.RWv = compileStruct(this, true, false);
      this._cls.ROv = compileStruct(this, false, false);
      this._cls.RW = HOST_LE ? compileStruct(this, true, true) : this._cls.RWv;
      this._cls.RO = HOST_LE ? compileStruct(this, false, true) : this._cls.ROv;
      for (const f of this.layout.values()) {
        let t: FieldType = f.type;
        while (t instanceof ArrayType) t = t.element;
        if (t instanceof PtrType) t.resolve(this)._compile();
        else if (t instanceof StructType) t._compile();
      }
    } finally {
      this.#compiling = false;
    }
  }

  /**
   * Offset and type of a field.
   * @throws {TypeError} No such field.
   */
  field(name: string): FieldInfo {
    const f = this.layout.get(name);
    if (!f) throw new TypeError(`${this.kind} has no field "${name}"`);
    return f;
  }

  /** Offset of a field within the record. */
  offsetOf(name: keyof F & string): number {
    return this.field(name).offset;
  }

  /**
   * An accessor for the record at `offset` of `obj`. Writable when the handle
   * is; a read-only handle gives an accessor whose setters throw
   * `TwzError(AccessDenied)`.
   *
   * @param obj An object handle (`TwzObject`).
   * @param offset Where the record starts; aligned, at or after the base.
   * @throws {RangeError} The record does not fit, is misaligned, or overlaps
   * the meta-info or the FOT.
   */
  at(obj: AccessorHost, offset: number): Accessor<F> {
    obj._checkRecord(offset, this.size, this.align);
    const e = obj._e;
    if (!this._cls.RW) this._compile();
    const c = this._cls;
    const C = e.words ? (obj.writable ? c.RW : c.RO) : obj.writable ? c.RWv : c.ROv;
    return new C!(obj, e, offset) as unknown as Accessor<F>;
  }

  _get(ctx: Codegen, w: boolean): string {
    const me = ctx.bind(this._cls);
    const [rw, ro] = w ? ["RW", "RO"] : ["RWv", "ROv"];
    return `return new (this._o.writable ? ${me}.${rw} : ${me}.${ro})(this._o, this._e, this._b + OFF);`;
  }
  _set(): undefined {
    return undefined;
  }
}

/**
 * Generate an accessor class. With `w` (word code), naturally aligned fields
 * load and store through the extent's typed-array word views: a DataView
 * store makes V8 forget every object field it loaded (`TX.current`, `_e`,
 * `_b`), a typed-array store does not. The transaction path (shadow reads and
 * writes on a scratch record) is DataView code in both.
 */
function compileStruct(type: StructType<Fields>, writable: boolean, w: boolean): AccessorCtor {
  const ctx = new Codegen();
  const ro = ctx.bind(readOnly);
  // A flat class whose prototype inherits from StructAccessor's: `new` of a
  // derived class (implicit super call) costs ~20 ns in V8, a flat one ~1 ns.
  // Each pointer field memoizes its last follow (the pointer's 8 bytes, read
  // as one double, and the accessor it gave) when the target cannot change
  // behind it: FOT index 0, or an ID entry (immutable once published). Name
  // entries re-resolve.
  let init = "";
  for (const f of type.layout.values()) {
    if (f.type instanceof PtrType) {
      init += `this._m${f.offset} = NaN; this._c${f.offset} = null;`;
    }
  }
  // Transaction-path bodies: functions beside the class, in the same scope,
  // so they see the same bound names.
  let prelude = "";
  let fnCount = 0;
  const local = (params: string, code: string) => {
    const name = `__f${fnCount++}`;
    prelude += `const ${name} = function (${params}) { ${code} };\n`;
    return name;
  };
  let body =
    `return class {\nconstructor(o, e, b) { this._o = o; this._e = e; this._b = b; ${init} }\n`;
  const txc = ctx.bind(TX);
  const txGet = ctx.bind(txFieldGet);
  const txSet = ctx.bind(txFieldSet);
  for (const [name, f] of type.layout) {
    const off = String(f.offset);
    const target = f.type instanceof PtrType ? ctx.bind(f.type.resolve(type)._cls) : "undefined";
    const sub = (s: string, memo = true) =>
      s.replaceAll(
        "MEMO_SET",
        memo
          ? `if ((f === 0 || this._o._fc[f] === o) && ${
            ctx.bind(sameBits)
          }(d, lo, hi)) { this._m${off} = d; this._c${off} = r; }`
          : "",
      ).replaceAll("OFF", off).replaceAll("NAME", JSON.stringify(name)).replaceAll("TARGET", target)
        .replaceAll("SELF", ctx.bind(type));
    // Inside a transaction, a field of an object the transaction has written
    // is read from the transaction's shadow (`txFieldGet`), and every store to
    // a plain field is a transaction write (`txFieldSet`). Nested structs and
    // arrays give accessors whose own fields do the same; pointer stores go
    // through the handle's tx-aware _storePtr.
    const nested = f.type instanceof StructType || f.type instanceof ArrayType;
    let getBody = sub(f.type._get(ctx, w));
    if (f.type instanceof PtrType) {
      // The hot path stays small enough to inline into the caller: one 8-byte
      // load compared, as a double, with the memoized pointer (a double
      // compares equal only to the same bits, except NaN, never memoized, and
      // ±0, a null pointer). The decode and `new` live in a method beside it.
      body += `_f${off}(d) { ${getBody} }\n`;
      const load = w
        ? `this._e.f64[(this._b + ${off}) >>> 3]` // undefined past the end: the slow path throws
        : `this._e.view.getFloat64(this._b + ${off}, true)`;
      getBody = `const d = ${load}; ` +
        `if (d === this._m${off}) return this._c${off}; return this._f${off}(d);`;
    }
    if (nested) body += `get ${name}() { ${getBody} }\n`;
    else {
      const plain = local("", sub(f.type._get(ctx, false), false));
      body += `get ${name}() { const t = ${txc}.current; if (t !== null && t.touches(this._o)) ` +
        `return ${txGet}(t, this, ${off}, ${f.type.size}, ${plain}); ${getBody} }\n`;
    }
    const set = f.type._set(ctx, w);
    if (set !== undefined) {
      const viaTx = !nested && !(f.type instanceof PtrType);
      const setter = viaTx
        ? `const t = ${txc}.current; if (t !== null) { ${txSet}(t, this, ${off}, ${f.type.size}, ${
          local("x", sub(f.type._set(ctx, false)!, false))
        }, x); return; } ${sub(set)}`
        : sub(set);
      body += writable
        ? `set ${name}(x) { ${setter} }\n`
        : `set ${name}(x) { throw ${ro}(this, ${JSON.stringify(name)}); }\n`;
    } else {
      body += `set ${name}(x) { throw ${ctx.bind(notAssignable)}(this, ${
        JSON.stringify(name)
      }); }\n`;
    }
  }
  body += "}";
  const cls = new Function(...ctx.names, prelude + body)(...ctx.values) as AccessorCtor;
  Object.setPrototypeOf(cls.prototype, StructAccessor.prototype);
  Object.defineProperty(cls, "TYPE", { value: type });
  Object.defineProperty(cls, "name", { value: writable ? "Record" : "ReadOnlyRecord" });
  return cls;
}

function compileArray(
  type: ArrayType<FieldType>,
  self: StructType<Fields>,
): ArrayClasses {
  const make = (writable: boolean, w: boolean): ArrayCtor => {
    const ctx = new Codegen();
    const range = ctx.bind(outOfRange);
    const e = type.element;
    const target = e instanceof PtrType ? ctx.bind(e.resolve(self)._cls) : "undefined";
    // An element body with `base` for `this._b + OFF` and `off` for `OFF`.
    const fill = (s: string, base: string, off: string) =>
      s.replaceAll("MEMO_SET", "").replaceAll("this._b + OFF", base).replaceAll("OFF", off)
        .replaceAll("NAME", "'[' + i + ']'").replaceAll("TARGET", target)
        .replaceAll("SELF", ctx.bind(self));
    const sub = (s: string) => fill(s, `(this._b + i * ${e.size})`, `(i * ${e.size})`);
    const check =
      `if (!(i >= 0 && i < ${type.length} && (i | 0) === i)) throw ${range}(i, ${type.length});`;
    let body = "return class {\nconstructor(o, e, b) { this._o = o; this._e = e; this._b = b; }\n";
    const nested = e instanceof StructType || e instanceof ArrayType;
    const txc = ctx.bind(TX);
    // In the transaction path the element is materialized at offset 0 of a
    // scratch record: the body's `(this._b + i * size)` must then be 0.
    const subTx = (s: string) => fill(s, "0", "0");
    let prelude = "";
    if (nested) body += `get(i) { ${check} ${sub(e._get(ctx, w))} }\n`;
    else {
      prelude += `const __get = function (i) { ${subTx(e._get(ctx, false))} };\n`;
      const plain = "__get";
      body += `get(i) { ${check} const t = ${txc}.current; if (t !== null && t.touches(this._o)) ` +
        `return ${ctx.bind(txElementGet)}(t, this, i * ${e.size}, ${e.size}, i, ${plain}); ${
          sub(e._get(ctx, w))
        } }\n`;
    }
    const set = e._set(ctx, w);
    const viaTx = !nested && !(e instanceof PtrType);
    if (set !== undefined && writable && viaTx) {
      prelude += `const __set = function (i, x) { ${subTx(e._set(ctx, false)!)} };\n`;
      const plain = "__set";
      body += `set(i, x) { ${check} const t = ${txc}.current; if (t !== null) { ${
        ctx.bind(txElementSet)
      }(t, this, i * ${e.size}, ${e.size}, i, ${plain}, x); return; } ${sub(set)} }\n`;
    } else if (set !== undefined && writable) body += `set(i, x) { ${check} ${sub(set)} }\n`;
    else if (set !== undefined) {
      body += `set(i, x) { throw ${ctx.bind(readOnly)}(this, '[' + i + ']'); }\n`;
    } else body += `set(i, x) { throw ${ctx.bind(notAssignable)}(this, '[' + i + ']'); }\n`;
    body += "}";
    const cls = new Function(...ctx.names, prelude + body)(...ctx.values) as ArrayCtor;
    Object.setPrototypeOf(cls.prototype, ArrayAccessor.prototype);
    Object.defineProperty(cls, "LENGTH", { value: type.length });
    return cls;
  };
  const RWv = make(true, false), ROv = make(false, false);
  return HOST_LE
    ? { RW: make(true, true), RO: make(false, true), RWv, ROv }
    : { RW: RWv, RO: ROv, RWv, ROv };
}

/**
 * A scratch record holding one field's bytes as the running transaction
 * sees them; generated getter and setter bodies run on it unchanged.
 */
function scratch(
  t: Tx,
  acc: { _o: AccessorHost; _b: number },
  off: number,
  size: number,
): { _o: AccessorHost; _e: ScratchBytes; _b: number } {
  const bytes = t.read(acc._o as unknown as TxTarget, acc._b + off, size);
  return { _o: acc._o, _e: { bytes, view: new DataView(bytes.buffer) }, _b: -off };
}

function txFieldGet(
  t: Tx,
  acc: { _o: AccessorHost; _b: number },
  off: number,
  size: number,
  get: (this: unknown) => unknown,
): unknown {
  return get.call(scratch(t, acc, off, size));
}

function txFieldSet(
  t: Tx,
  acc: { _o: AccessorHost; _b: number },
  off: number,
  size: number,
  set: (this: unknown, x: unknown) => void,
  x: unknown,
): void {
  const s = scratch(t, acc, off, size);
  set.call(s, x);
  t.write(acc._o as unknown as TxTarget, acc._b + off, s._e.bytes);
}

function txElementGet(
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

function txElementSet(
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
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Whether `d` (a pointer loaded as a little-endian double) has the bits
 * `hi:lo` that were decoded: false for a NaN (never memoized, payloads may be
 * canonicalized) and when another thread changed the pointer between the loads.
 */
function sameBits(d: number, lo: number, hi: number): boolean {
  if (d !== d) return false;
  F64[0] = d;
  return HOST_LE ? U32[0] === lo && U32[1] === hi : U32[1] === lo && U32[0] === hi;
}

function where(acc: { _o: AccessorHost; _b: number }): string {
  return `${formatId(acc._o.id)} at offset ${acc._b}`;
}

function readOnly(acc: { _o: AccessorHost; _b: number }, field: string): TwzError {
  if (acc._o.imageReadOnly === true) {
    return new TwzError(
      ErrorCode.ReadOnly,
      `the image is open read-only: cannot write field ${field} of the record in ${where(acc)}`,
    );
  }
  return new TwzError(
    ErrorCode.AccessDenied,
    `Cannot write field ${field} of the record in ${where(acc)}: the object is mapped read-only`,
  );
}

function notAssignable(acc: { _o: AccessorHost; _b: number }, field: string): TypeError {
  return new TypeError(
    `Field ${field} of the record in ${where(acc)} is a struct or array: assign its fields`,
  );
}

function badValue(
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

function outside(acc: { _o: AccessorHost; _b: number; _e: LiveBytes }, field: string): RangeError {
  return new RangeError(
    `Field ${field} of the record in ${
      where(acc)
    } is outside the object (${acc._e.bytes.length} bytes${
      acc._e.bytes.length === 0 ? ": deleted" : ""
    })`,
  );
}

function outOfRange(i: number, length: number): RangeError {
  return new RangeError(`Index ${i} is outside an array of ${length}`);
}

function setBytes(acc: StructAccessor, field: string, off: number, size: number, x: unknown): void {
  if (!(x instanceof Uint8Array) || x.length > size) {
    throw new TypeError(
      `Field ${field} of the record in ${where(acc)} takes a Uint8Array of at most ${size} bytes`,
    );
  }
  const b = acc._e.bytes;
  const at = acc._b + off;
  b.set(x, at);
  b.fill(0, at + x.length, at + size);
}

const encoder = new TextEncoder();

/** The NUL-terminated (or `size`-long) string at `at`, decoded as the string codec does. */
function getString(bytes: Uint8Array, at: number, size: number): string {
  let end = at;
  const stop = at + size;
  while (end < stop && bytes[end] !== 0) end++;
  return codec.string.decode(bytes, at, end - at);
}

function setString(
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
  b.set(data, at);
  b.fill(0, at + data.length, at + size);
}

function isNamed(x: unknown): x is NamedTarget {
  return typeof x === "object" && x !== null && !(x instanceof StructAccessor) &&
    typeof (x as NamedTarget).name === "string";
}

function checkPtrValue(acc: StructAccessor, field: string, cell: ClassCell, x: unknown): void {
  if (x === null) return;
  const target = cell.type;
  if (x instanceof StructAccessor && x.$type === target) return;
  throw new TypeError(
    `Pointer field ${field} of the record in ${where(acc)} takes a ${target.kind} record or null` +
      (isNamed(x) ? " (use $set() for a named target)" : ""),
  );
}

function positive(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) {
    throw new RangeError(`${what} must be a positive integer, not ${n}`);
  }
  return n;
}

/** Unsigned 8-bit integer. */
export const u8: FieldType<number> = new IntType("u8");
/** Unsigned 16-bit integer. */
export const u16: FieldType<number> = new IntType("u16");
/** Unsigned 32-bit integer. */
export const u32: FieldType<number> = new IntType("u32");
/** Unsigned 64-bit integer, read and written as a bigint. */
export const u64: FieldType<bigint> = new BigIntType("u64");
/** Signed 8-bit integer. */
export const i8: FieldType<number> = new IntType("i8");
/** Signed 16-bit integer. */
export const i16: FieldType<number> = new IntType("i16");
/** Signed 32-bit integer. */
export const i32: FieldType<number> = new IntType("i32");
/** Signed 64-bit integer, read and written as a bigint. */
export const i64: FieldType<bigint> = new BigIntType("i64");
/** 32-bit float. */
export const f32: FieldType<number> = new FloatType("f32");
/** 64-bit float. */
export const f64: FieldType<number> = new FloatType("f64");
/** Boolean stored as one byte (0 or 1). */
export const bool: FieldType<boolean> = new BoolType();

/**
 * `n` raw bytes. Writing copies a shorter-or-equal array in and zeroes the
 * rest. Reading through a writable handle outside a transaction gives a live
 * `Uint8Array` over the object (valid until the object is relocated by a
 * grow): stores into it are plain, non-transactional stores. Reading through a
 * read-only handle, or inside a transaction, gives a copy: inside a
 * transaction, change the bytes by assigning the field
 * (`rec.digest = changed`), which the transaction logs.
 *
 * @param n Size in bytes.
 * @returns The field type.
 * @throws {RangeError} `n` is not a positive integer.
 * @example
 * ```ts
 * import { bytes, struct } from "@twz/libtwz/layout";
 * console.log(struct({ digest: bytes(32) }).size); // 32
 * ```
 */
export function bytes(n: number): FieldType<Uint8Array> {
  return new BytesType(positive(n, "bytes(n)"));
}

/**
 * A string of at most `n` UTF-8 bytes, zero-padded (no NUL inside).
 *
 * @param n Capacity in bytes.
 * @returns The field type.
 * @throws {RangeError} `n` is not a positive integer.
 * @example
 * ```ts
 * import { string, struct } from "@twz/libtwz/layout";
 * console.log(struct({ name: string(24) }).size); // 24
 * ```
 */
export function string(n: number): FieldType<string> {
  return new StringType(positive(n, "string(n)"));
}

/**
 * A fixed array of `length` elements of type `element`.
 *
 * @param element Element type (any field type, including structs and pointers).
 * @param length Number of elements.
 * @returns The field type.
 * @throws {TypeError} `element` is not a field type; {RangeError} bad length.
 * @example
 * ```ts
 * import { array, struct, u16 } from "@twz/libtwz/layout";
 * console.log(struct({ ports: array(u16, 4) }).size); // 8
 * ```
 */
export function array<E extends FieldType>(element: E, length: number): ArrayType<E> {
  if (!(element instanceof FieldType)) throw new TypeError("array() takes a persistent field type");
  return new ArrayType(element, positive(length, "array length"));
}

/**
 * An invariant pointer to a record of struct type `target`: 8 bytes (FOT
 * index and offset; see `@twz/kernel/abi`). Reading follows it (to an
 * accessor, or `null`); writing a record of another object allocates or
 * reuses a FOT entry. Use `"self"` for a pointer to the enclosing struct, or
 * a function returning the type for a struct defined later.
 *
 * @param target The struct type pointed at, `"self"`, or `() => type`.
 * @returns The field type.
 * @example A recursive list node
 * ```ts
 * import { ptr, struct, u32 } from "@twz/libtwz/layout";
 * const Node = struct({ value: u32, next: ptr("self") });
 * console.log(Node.size, Node.offsetOf("next")); // 16 8
 * ```
 */
export function ptr<F extends Fields>(
  target: StructType<F> | (() => StructType<F>),
): PtrType<Accessor<F> | null>;
export function ptr(target: "self"): PtrType<SelfPtr>;
export function ptr(target: PtrTarget | StructType<Fields>): PtrType<unknown> {
  if (target !== "self" && typeof target !== "function" && !(target instanceof StructType)) {
    throw new TypeError('ptr() takes a struct type, "self", or a function returning a struct type');
  }
  return new PtrType(target as PtrTarget);
}

/**
 * Declare a struct: named fields in order, naturally aligned.
 *
 * @param fields Field names to field types. Names are identifiers not
 * starting with `$` or `_`.
 * @returns The struct type; `Type.at(obj, offset)` gives an accessor.
 * @throws {TypeError} A field is not a persistent field type, or a bad name.
 * @example
 * ```ts
 * import { struct, u8, u64 } from "@twz/libtwz/layout";
 * const Header = struct({ tag: u8, length: u64 });
 * console.log(Header.size, Header.offsetOf("length")); // 16 8
 * ```
 */
export function struct<F extends Fields>(fields: F): StructType<F> {
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    throw new TypeError("struct() takes an object of field types");
  }
  return new StructType(fields);
}

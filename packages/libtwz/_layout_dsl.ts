/**
 * The struct DSL: field types (fixed-width, address-free), struct types and
 * their layout (declaration order, natural alignment), and the constructors
 * (`u8`..`f64`, `bool`, `bytes`, `string`, `array`, `ptr`, `struct`). Each
 * field type also emits its getter and setter bodies for the code generator
 * (`_layout_codegen.ts`). Private to libtwz; the public entry is `layout.ts`.
 *
 * @module
 */
import { TX } from "./_tx.ts";
import {
  type AccessorCtor,
  type ArrayClasses,
  type ClassCell,
  type Codegen,
  compileArray,
  compileRecords,
  compileStruct,
  type CursorCtor,
  wordGet,
  wordSet,
  wordSetChecked,
} from "./_layout_codegen.ts";
import {
  type AccessorHost,
  type ArrayAccessor,
  badValue,
  checkPtrValue,
  getString,
  HOST_LE,
  intRefused,
  outside,
  type RecordColumn,
  setBytes,
  setString,
  type StructAccessor,
} from "./_layout_accessor.ts";

/**
 * The guard of DataView code: a deleted (or withdrawn) object's view is
 * empty, and a DataView load there would throw a bare RangeError; this
 * throws the one-line `TwzError` naming the object instead.
 */
function dvGuard(ctx: Codegen): string {
  return `if (this._e.bytes.length === 0) throw ${ctx.bind(outside)}(this, NAME); `;
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
  /**
   * @internal The `Tx` accessor suffix (`"U32"` for `getU32`/`setU32`) when
   * the transaction reads and writes this field with one typed call.
   */
  _txKind(): string | undefined {
    return undefined;
  }
  /** @internal The value check a store runs before a typed `Tx` store (`x`, `NAME`). */
  _txCheck(_ctx: Codegen): string {
    return "";
  }
}

type IntKind = "u8" | "u16" | "u32" | "i8" | "i16" | "i32";

const INT: Record<IntKind, { size: number; dv: string; w: string; shift: number }> = {
  u8: { size: 1, dv: "Uint8", w: "bytes", shift: 0 },
  i8: { size: 1, dv: "Int8", w: "i8", shift: 0 },
  u16: { size: 2, dv: "Uint16", w: "u16", shift: 1 },
  i16: { size: 2, dv: "Int16", w: "i16", shift: 1 },
  u32: { size: 4, dv: "Uint32", w: "u32", shift: 2 },
  i32: { size: 4, dv: "Int32", w: "i32", shift: 2 },
};

/** `x` converted to each width, as an expression: equal to `x` exactly when it fits. */
const INT_FITS: Record<IntKind, string> = {
  u8: "(x & 0xff)",
  i8: "(x << 24 >> 24)",
  u16: "(x & 0xffff)",
  i16: "(x << 16 >> 16)",
  u32: "(x >>> 0)",
  i32: "(x | 0)",
};

class IntType extends FieldType<number> {
  readonly size: number;
  readonly align: number;
  constructor(readonly kind: IntKind) {
    super();
    this.size = this.align = INT[kind].size;
  }
  override _txKind(): string | undefined {
    return ({ u8: "U8", u16: "U16", u32: "U32", i32: "I32" } as Record<string, string>)[this.kind];
  }
  override _txCheck(ctx: Codegen): string {
    return ctx.checked
      ? `if (!(typeof x === "number" && ${INT_FITS[this.kind]} === x)) throw ${
        ctx.bind(intRefused)
      }(NAME, "${this.kind}", x); `
      : "";
  }
  _get(ctx: Codegen, w: boolean): string {
    const k = INT[this.kind];
    if (w) return wordGet(ctx, k.w, k.shift);
    const le = this.size > 1 ? ", true" : "";
    return `${dvGuard(ctx)}return this._e.view.get${k.dv}(this._b + OFF${le});`;
  }
  _set(ctx: Codegen, w: boolean): string {
    const k = INT[this.kind];
    // A value the field cannot hold is refused before anything is stored:
    // one compare of the value with itself converted to the field's width
    // (false for NaN, fractions, out-of-range numbers and non-numbers). An
    // unchecked struct stores as a DataView store does (modulo 2^n).
    const fits = `typeof x === "number" && ${INT_FITS[this.kind]} === x`;
    if (w) {
      return ctx.checked
        ? wordSetChecked(ctx, k.w, k.shift, this.kind, fits)
        : wordSet(ctx, k.w, k.shift);
    }
    const check = ctx.checked
      ? `if (!(${fits})) throw ${ctx.bind(intRefused)}(NAME, "${this.kind}", x); `
      : "";
    const le = this.size > 1 ? ", true" : "";
    return `${check}${dvGuard(ctx)}this._e.view.set${INT[this.kind].dv}(this._b + OFF, x${le});`;
  }
}

class BigIntType extends FieldType<bigint> {
  readonly size = 8;
  readonly align = 8;
  constructor(readonly kind: "u64" | "i64") {
    super();
  }
  override _txKind(): string | undefined {
    return this.kind === "u64" ? "U64" : undefined;
  }
  override _txCheck(ctx: Codegen): string {
    const check = ctx.checked
      ? "typeof x !== 'bigint' || x < 0n || x > 0xffffffffffffffffn"
      : "typeof x !== 'bigint'";
    return `if (${check}) throw ${ctx.bind(intRefused)}(NAME, "${this.kind}", x); `;
  }
  _get(ctx: Codegen, w: boolean): string {
    if (w) return wordGet(ctx, this.kind === "u64" ? "bu64" : "bi64", 3);
    const dv = this.kind === "u64" ? "BigUint64" : "BigInt64";
    return `${dvGuard(ctx)}return this._e.view.get${dv}(this._b + OFF, true);`;
  }
  _set(ctx: Codegen, w: boolean): string {
    const dv = this.kind === "u64" ? "BigUint64" : "BigInt64";
    const range = this.kind === "u64"
      ? "x < 0n || x > 0xffffffffffffffffn"
      : "x < -0x8000000000000000n || x > 0x7fffffffffffffffn";
    // A bigint word view takes only bigints (a number throws a TypeError
    // there); out of range, it would store modulo 2^64.
    const check = ctx.checked ? `typeof x !== 'bigint' || ${range}` : "typeof x !== 'bigint'";
    return `if (${check}) throw ${ctx.bind(intRefused)}(NAME, "${this.kind}", x);` +
      (w
        ? wordSet(ctx, this.kind === "u64" ? "bu64" : "bi64", 3)
        : `${dvGuard(ctx)}this._e.view.set${dv}(this._b + OFF, x, true);`);
  }
}

class FloatType extends FieldType<number> {
  readonly size: number;
  readonly align: number;
  constructor(readonly kind: "f32" | "f64") {
    super();
    this.size = this.align = kind === "f32" ? 4 : 8;
  }
  override _txKind(): string | undefined {
    return this.kind === "f64" ? "F64" : undefined;
  }
  _get(ctx: Codegen, w: boolean): string {
    if (w) return wordGet(ctx, this.kind, this.size === 4 ? 2 : 3);
    return `${dvGuard(ctx)}return this._e.view.getFloat${this.size * 8}(this._b + OFF, true);`;
  }
  _set(ctx: Codegen, w: boolean): string {
    if (w) return wordSet(ctx, this.kind, this.size === 4 ? 2 : 3);
    return `${dvGuard(ctx)}this._e.view.setFloat${this.size * 8}(this._b + OFF, x, true);`;
  }
}

class BoolType extends FieldType<boolean> {
  readonly size = 1;
  readonly align = 1;
  readonly kind = "bool";
  _get(ctx: Codegen, w: boolean): string {
    if (w) return wordGet(ctx, "bytes", 0, "v !== 0");
    return `${dvGuard(ctx)}return this._e.view.getUint8(this._b + OFF) !== 0;`;
  }
  _set(ctx: Codegen, w: boolean): string {
    const err = ctx.bind(badValue);
    return `if (typeof x !== "boolean") throw ${err}(this, NAME, "bool", x);` +
      (w
        ? wordSet(ctx, "bytes", 0, "x ? 1 : 0")
        : `${dvGuard(ctx)}this._e.view.setUint8(this._b + OFF, x ? 1 : 0);`);
  }
}

export class BytesType extends FieldType<Uint8Array> {
  readonly align = 1;
  readonly kind: string;
  constructor(readonly size: number) {
    super();
    this.kind = `bytes(${size})`;
  }
  _get(ctx: Codegen): string {
    // A live view only where its stores are the accessor's own plain stores:
    // a writable accessor (WRITABLE: its class's), outside a transaction.
    // Otherwise a copy.
    return `if (this._b + OFF + ${this.size} > this._e.bytes.length) throw ${
      ctx.bind(outside)
    }(this, NAME); ` +
      `const m = this._e.bytes.subarray(this._b + OFF, this._b + OFF + ${this.size}); ` +
      `return WRITABLE && ${ctx.bind(TX)}.current === null ? m : m.slice();`;
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
    return `if (this._b + OFF + ${this.size} > this._e.bytes.length) throw ${
      ctx.bind(outside)
    }(this, NAME); return ${ctx.bind(getString)}(this._e.bytes, this._b + OFF, ${this.size});`;
  }
  _set(ctx: Codegen): string {
    return `${ctx.bind(setString)}(this, NAME, OFF, ${this.size}, x);`;
  }
}

/** The pointer target of a {@linkcode ptr} field. */
export type PtrTarget = StructType<Fields> | "self" | (() => StructType<Fields>);

/** A pointer field type; see {@linkcode ptr}. */
export class PtrType<S> extends FieldType<S> {
  /** Size in bytes: a pointer is 8 (FOT index and offset). */
  readonly size = 8;
  /** Alignment in bytes: 8. */
  readonly align = 8;
  /** `"ptr"`. */
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
  /** @internal Getter body: follow the pointer (see {@linkcode FieldType._get}). */
  _get(ctx: Codegen): string {
    // Read the two halves; offset 0 is null; FOT index 0 is this object.
    // The target accessor uses word code when its extent has word views and
    // the record is aligned and inside the object (a pointer is data: it may
    // name any offset); else DataView code, which throws past the end.
    return `if (this._e.bytes.length === 0) throw ${ctx.bind(outside)}(this, NAME);` +
      // The revocation epoch before resolving: the memo holds while it does.
      "const q = this._o._ep[0];" +
      "const v = this._e.view, p = this._b + OFF;" +
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
  /** @internal Setter body: store through the handle's `_storePtr`. */
  _set(ctx: Codegen): string {
    return `${
      ctx.bind(checkPtrValue)
    }(this, NAME, TARGET, x); this._o._storePtr(this._b + OFF, x);`;
  }
}

/** A fixed-size array field type; see {@linkcode array}. */
export class ArrayType<E extends FieldType> extends FieldType<ArrayAccessor<unknown>> {
  /** Size in bytes: the element's size times the length. */
  readonly size: number;
  /** Alignment in bytes: the element's. */
  readonly align: number;
  /** `"ELEMENT[LENGTH]"`, e.g. `"u16[4]"`. */
  readonly kind: string;
  /** @internal The classes, checked and unchecked (an array type may serve both kinds of struct). */
  #cls?: ArrayClasses;
  #unchecked?: ArrayClasses;
  /**
   * @internal Use {@linkcode array}.
   *
   * @param element The element type.
   * @param length Number of elements.
   */
  constructor(readonly element: E, readonly length: number) {
    super();
    this.size = element.size * length;
    this.align = element.align;
    this.kind = `${element.kind}[${length}]`;
  }
  /** @internal */
  classes(self: StructType<Fields>): ArrayClasses {
    return self.unchecked
      ? this.#unchecked ??= compileArray(this, self)
      : this.#cls ??= compileArray(this, self);
  }
  /** @internal Getter body: an accessor for the array (named `NAME` in errors). */
  _get(ctx: Codegen, w: boolean): string {
    const me = ctx.bind(this);
    const [rw, ro] = w ? ["RW", "RO"] : ["RWv", "ROv"];
    return `return new (WRITABLE ? ${me}.classes(SELF).${rw} : ${me}.classes(SELF).${ro})(this._o, this._e, this._b + OFF, NAME);`;
  }
  /** @internal No setter: assign the elements. */
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

/** The names of the fields of `F` that cannot be assigned (structs and arrays). */
export type ReadonlyKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends StructType<Fields> | ArrayType<FieldType> ? K : never;
}[keyof F];

/** A field value `V` of struct `F`, with a `ptr("self")` value resolved to `F`'s accessor. */
export type SelfResolved<F extends Fields, V> = V extends SelfPtr ? Accessor<F> | null : V;

/**
 * An accessor for a record of fields `F`: one property per field, plus the
 * `$` methods of {@linkcode StructAccessor}.
 */
export type Accessor<F extends Fields> =
  & {
    /** A cursor at this record (see {@linkcode Cursor}). */
    $cursor(): Cursor<F>;
  }
  & { -readonly [K in Exclude<keyof F, ReadonlyKeys<F>>]: SelfResolved<F, Value<F[K]>> }
  & { readonly [K in ReadonlyKeys<F>]: Value<F[K]> }
  & StructAccessor;

/**
 * The pointer fields of `F`: what a cursor of `F` may be asked to follow
 * (at run time only pointers to `F` itself move it; another struct's
 * pointer throws a `TypeError`).
 */
export type FollowKeys<F extends Fields> =
  & { [K in keyof F]: F[K] extends PtrType<unknown> ? K : never }[keyof F]
  & string;

/**
 * A cursor over records of fields `F`: the getters and setters of
 * {@linkcode Accessor}, and moves in place (see `StructCursor`).
 */
export type Cursor<F extends Fields> =
  & {
    /**
     * Move along pointer field `field` in place (no allocation).
     * @returns `true` when the cursor moved, `false` when the pointer is null.
     */
    $follow<K extends FollowKeys<F>>(field: K): boolean;
    /**
     * Walk along pointer field `field`: call `visit` with this cursor on
     * each record, from the one it is on, then follow `field`, until a null
     * pointer or until `visit` returns `false`. The fast way to walk a list
     * (see `StructCursor.$walk`).
     * @returns `true` when the walk reached a null pointer (the cursor on the
     * last record), `false` when `visit` stopped it (the cursor on that record).
     */
    $walk<K extends FollowKeys<F>>(field: K, visit: (node: Cursor<F>) => boolean | void): boolean;
    /**
     * Fold along pointer field `field`: `acc = step(acc, cursor)` on each
     * record, from the one it is on, until a null pointer (see
     * `StructCursor.$reduce`: the fastest walk in a hot loop).
     * @returns The running value after the last record.
     */
    $reduce<K extends FollowKeys<F>, T>(
      field: K,
      step: (acc: T, node: Cursor<F>) => T,
      init: T,
    ): T;
    /** Move onto the record `target` is at; `false` (no move) for `null`. */
    $moveTo(target: StructAccessor | null): boolean;
    /** Move to the record at `offset` of the cursor's object. */
    $seek(offset: number): Cursor<F>;
    /** An independent cursor at the same record. */
    $clone(): Cursor<F>;
  }
  & Accessor<F>;

/** The number, bigint and bool fields of `F`: what a record array's `column` takes. */
export type ColumnKeys<F extends Fields> =
  & { [K in keyof F]: F[K] extends FieldType<number | bigint | boolean> ? K : never }[keyof F]
  & string;

/** `count` records of fields `F` back to back in one object (see `StructType.records`). */
export interface Records<F extends Fields> {
  /** Number of records. */
  readonly length: number;
  /**
   * The array's own cursor, moved to record `i` (the same cursor every
   * call: no allocation; `$clone()` keeps one). It stays on the array: its
   * `$follow` and `$moveTo` throw a `TypeError`.
   * @throws {RangeError} `i` is not an integer in [0, length).
   */
  at(i: number): Cursor<F>;
  /**
   * A new plain accessor of record `i`.
   * @throws {RangeError} `i` is not an integer in [0, length).
   */
  get(i: number): Accessor<F>;
  /** A new cursor at record 0. */
  cursor(): Cursor<F>;
  /**
   * Field `name` of every record, by index: `column.get(i)`,
   * `column.set(i, x)` (see `RecordColumn`). A sweep through a column keeps
   * each record's offset in a local: one typed-array load or store per call.
   * @throws {TypeError} No such field, or it is not a number, bigint or bool field.
   */
  column<K extends ColumnKeys<F>>(name: K): RecordColumn<Value<F[K]>>;
  /** The records, one plain accessor each. */
  [Symbol.iterator](): IterableIterator<Accessor<F>>;
}

/** Marker for `ptr("self")`. */
export interface SelfPtr {
  /** Phantom: marks the value of a `ptr("self")` field. */
  readonly _self: true;
}

/** Any record accessor. */
export type AnyAccessor = StructAccessor;

/** A field of a struct type: where it is and what it holds. */
export interface FieldInfo {
  /** Offset of the field within the record. */
  readonly offset: number;
  /** The field's type. */
  readonly type: FieldType;
}

/** Options of {@linkcode struct}. */
export interface StructOptions {
  /**
   * Store integer fields without checking that the value fits: a value out
   * of range is stored modulo 2^n, a fraction truncated, NaN as 0 (as a
   * DataView store does), instead of a `RangeError`. Only for hot loops
   * that already know their values fit; it saves about a nanosecond per
   * store (see docs/BENCHMARKS.md). Nested struct types have their own.
   * @default {false}
   */
  readonly unchecked?: boolean;
  /**
   * The struct's name (`"ListNode"`): 1 to 64 letters, digits, `_`, `.` or
   * `-`, starting with a letter. It changes nothing in the layout; a named
   * struct can be described in the object space for tools to type an
   * object's bytes (`twz.create({ layout })`, `readLayoutDescriptor` in
   * `@twz/libtwz/layout`), and pointers to it are shown with its name.
   * @default {undefined} (unnamed)
   */
  readonly name?: string;
}

/** What a struct's name may be (see {@linkcode StructOptions.name}). */
const STRUCT_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/**
 * A struct type: its layout, and a factory for accessors on an object.
 *
 * @typeParam F The fields.
 */
export class StructType<F extends Fields> extends FieldType<StructAccessor> {
  /** Size in bytes, padded to a multiple of the alignment (at least 1). */
  readonly size: number;
  /** Alignment in bytes: the largest of the fields'. */
  readonly align: number;
  /** `"struct{NAME: KIND, ...}"`. */
  readonly kind: string;
  /** Fields in order, with their offsets. */
  readonly layout: ReadonlyMap<string, FieldInfo>;

  /**
   * Whether integer fields (and integer array elements) store without a
   * range check (`struct(fields, { unchecked: true })`).
   */
  readonly unchecked: boolean;

  /** The struct's name (`struct(fields, { name })`), or `null` when it has none. */
  readonly name: string | null;

  /** @internal Use {@linkcode struct}. */
  constructor(fields: F, options: StructOptions = {}) {
    super();
    this.unchecked = options.unchecked === true;
    if (options.name !== undefined && !STRUCT_NAME.test(options.name)) {
      throw new TypeError(
        `${
          JSON.stringify(options.name)
        } cannot be a struct name (1 to 64 letters, digits, _ . -; starting with a letter)`,
      );
    }
    this.name = options.name ?? null;
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
  readonly _cls: ClassCell = {
    RW: null,
    RO: null,
    RWv: null,
    ROv: null,
    CRW: null,
    CRO: null,
    CRWv: null,
    CROv: null,
    RA: null,
    RAv: null,
    type: this,
  };
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
   * @internal The class cell with the cursor and record array classes
   * compiled (on first use: plain accessors never pay for them).
   */
  _cursorCell(): ClassCell {
    const c = this._cls;
    if (c.CRW !== null) return c;
    if (!c.RW) this._compile();
    const make = (writable: boolean, w: boolean): [CursorCtor, CursorCtor] => {
      const free = compileStruct(this, writable, w, true) as unknown as CursorCtor;
      const pinned = compileStruct(this, writable, w, true, true) as unknown as CursorCtor;
      Object.defineProperty(pinned, "FREE", { value: free });
      return [free, pinned];
    };
    const [CRWv, PRWv] = make(true, false), [CROv, PROv] = make(false, false);
    const [CRW, PRW] = HOST_LE ? make(true, true) : [CRWv, PRWv];
    const [CRO, PRO] = HOST_LE ? make(false, true) : [CROv, PROv];
    c.RA = compileRecords(this, c.RW!, c.RO!, PRW, PRO);
    c.RAv = compileRecords(this, c.RWv!, c.ROv!, PRWv, PROv);
    c.CRWv = CRWv;
    c.CROv = CROv;
    c.CRO = CRO;
    c.CRW = CRW;
    return c;
  }

  /**
   * A cursor at the record at `offset` of `obj`: an accessor that moves in
   * place (`$follow("next")`, `$moveTo(acc)`, `$seek(offset)`) without
   * allocating. Writable when the handle is.
   *
   * @param obj An object handle (`TwzObject`).
   * @param offset Where the record starts, as for {@linkcode StructType.at}.
   * @returns The cursor.
   * @throws {RangeError} As {@linkcode StructType.at}.
   * @example Walk a list without allocating
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { ptr, struct, u32 } from "@twz/libtwz/layout";
   * const Node = struct({ value: u32, next: ptr("self") });
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * const obj = twz.create({ size: 4096 });
   * const a = Node.at(obj, obj.baseOffset), b = Node.at(obj, obj.baseOffset + Node.size);
   * a.value = 1;
   * b.value = 2;
   * a.next = b;
   * const c = Node.cursor(obj, obj.baseOffset);
   * let sum = 0;
   * do sum += c.value; while (c.$follow("next"));
   * console.log(sum); // 3
   * twz.close();
   * ```
   */
  cursor(obj: AccessorHost, offset: number): Cursor<F> {
    obj._checkRecord(offset, this.size, this.align);
    const c = this._cursorCell();
    const e = obj._e;
    const C = e.words ? (obj.writable ? c.CRW : c.CRO) : obj.writable ? c.CRWv : c.CROv;
    return new C!(obj, e, offset) as unknown as Cursor<F>;
  }

  /**
   * `count` records laid out back to back from `offset` of `obj`: `at(i)`
   * moves the array's own cursor (no allocation), so a sweep touches no
   * accessor object per record. That cursor stays on the array (its
   * `$follow` and `$moveTo` throw a `TypeError`; `$clone()` gives a free
   * cursor). The whole range must lie in the object's data.
   *
   * @param obj An object handle (`TwzObject`).
   * @param offset Where record 0 starts; aligned, at or after the base.
   * @param count Number of records (an integer >= 0).
   * @returns The record array.
   * @throws {RangeError} `count` is not an integer >= 0, or the range does
   * not fit, is misaligned, or overlaps the meta-info or the FOT.
   * @example A sweep
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { f64, struct, u32 } from "@twz/libtwz/layout";
   * const Rec = struct({ id: u32, weight: f64 });
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * const obj = twz.create({ size: 65536 });
   * const recs = Rec.records(obj, obj.baseOffset, 100);
   * for (let i = 0; i < recs.length; i++) recs.at(i).weight = i / 2;
   * let sum = 0;
   * for (let i = 0; i < recs.length; i++) sum += recs.at(i).weight;
   * console.log(sum); // 2475
   * twz.close();
   * ```
   */
  records(obj: AccessorHost, offset: number, count: number): Records<F> {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`A record array's count must be an integer >= 0, not ${count}`);
    }
    obj._checkRecord(offset, this.size * count, this.align);
    const c = this._cursorCell();
    const e = obj._e;
    const w = e.words;
    const A = w ? c.RA! : c.RAv!;
    return new A(obj, e, offset, count) as unknown as Records<F>;
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

  /** @internal Getter body: an accessor for the nested record. */
  _get(ctx: Codegen, w: boolean): string {
    const me = ctx.bind(this._cls);
    const [rw, ro] = w ? ["RW", "RO"] : ["RWv", "ROv"];
    return `return new (WRITABLE ? ${me}.${rw} : ${me}.${ro})(this._o, this._e, this._b + OFF);`;
  }
  /** @internal No setter: assign the elements. */
  _set(): undefined {
    return undefined;
  }
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
/**
 * A pointer to a record of the enclosing struct type (see the other overload).
 *
 * @param target `"self"`.
 * @returns The field type.
 */
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
 * Integer fields refuse a value they cannot hold, before anything is
 * stored: `RangeError: field "count" (u8) takes 0..255, not 300` (also for
 * NaN and fractions; a `TypeError` for a value that is not a number, or not
 * a bigint for `u64`/`i64`). Array elements name their index (`ports[3]`).
 * `{ unchecked: true }` stores without the check (see
 * {@linkcode StructOptions.unchecked}).
 *
 * @param fields Field names to field types. Names are identifiers not
 * starting with `$` or `_`.
 * @param options `unchecked`: integer stores without the range check;
 * `name`: the struct's name (see {@linkcode StructOptions.name}).
 * @returns The struct type; `Type.at(obj, offset)` gives an accessor.
 * @throws {TypeError} A field is not a persistent field type, or a bad name.
 * @example
 * ```ts
 * import { struct, u8, u64 } from "@twz/libtwz/layout";
 * const Header = struct({ tag: u8, length: u64 });
 * console.log(Header.size, Header.offsetOf("length")); // 16 8
 * ```
 * @example A store that does not fit
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { struct, u8 } from "@twz/libtwz/layout";
 * const Counter = struct({ count: u8 });
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * const c = Counter.at(obj, obj.baseOffset);
 * try {
 *   c.count = 300;
 * } catch (e) {
 *   console.log(String(e)); // RangeError: field "count" (u8) takes 0..255, not 300
 * }
 * console.log(c.count); // 0
 * twz.close();
 * ```
 */
export function struct<F extends Fields>(fields: F, options: StructOptions = {}): StructType<F> {
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    throw new TypeError("struct() takes an object of field types");
  }
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      "struct()'s options are an object ({ unchecked?: boolean, name?: string })",
    );
  }
  return new StructType(fields, options);
}

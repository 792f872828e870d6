/**
 * Code generation of accessor classes: each struct type compiles (once, with
 * `new Function`) into four flat classes whose getters and setters are small
 * functions with constant offsets, and each array field into four more. Field
 * types give the bodies (`FieldType._get`/`_set` with `OFF`, `NAME`, `TARGET`,
 * `SELF` placeholders); this module assembles them, substitutes the
 * placeholders and binds the run-time support of `_layout_accessor.ts` by name.
 * Private to libtwz; the public entry is `layout.ts`.
 *
 * @module
 */
import { TX } from "./_tx.ts";
import { ArrayType, type Fields, type FieldType, PtrType, StructType } from "./_layout_dsl.ts";
import {
  type AccessorHost,
  ArrayAccessor,
  HOST_LE,
  type LiveBytes,
  notAssignable,
  outOfRange,
  outside,
  readOnly,
  sameBits,
  storeRefused,
  StructAccessor,
  txElementGet,
  txElementSet,
  txFieldGet,
  txFieldSet,
} from "./_layout_accessor.ts";

/** @internal Code-generation context: names bound to values. */
export class Codegen {
  /** Whether integer setters check that the value fits the field. */
  checked = true;
  readonly names: string[] = [];
  readonly values: unknown[] = [];
  bind(value: unknown): string {
    const i = this.values.indexOf(value);
    if (i >= 0) return this.names[i]!;
    const name = `$${this.values.length}`;
    this.names.push(name);
    this.values.push(value);
    return name;
  }
}

/**
 * A word-view load: `view` is the extent's typed array, `shift` log2 of its
 * element size. A load past the end gives `undefined` from a typed array;
 * like a DataView load, it throws a RangeError instead (also for an accessor
 * of a deleted object, whose views are empty).
 */
export function wordGet(ctx: Codegen, view: string, shift: number, then = "v"): string {
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
export function wordSet(ctx: Codegen, view: string, shift: number, value = "x"): string {
  const i = shift === 0 ? "this._b + OFF" : `(this._b + OFF) >>> ${shift}`;
  return `const a = this._e.${view}, j = ${i}; a[j] = ${value}; if (a[j] === undefined) throw ${
    ctx.bind(outside)
  }(this, NAME);`;
}

/**
 * A checked word-view store of an integer field of `kind`: `fits` is an
 * expression true when `x` fits the field. A value that does not fit is
 * replaced by 0 stored at index -1, which a typed array drops (nothing is
 * written, and a bigint or an object is never converted); the read-back then gives `undefined` and the setter throws the
 * range error. The check is a select of the index, not a branch before the
 * store: any branch that throws before the store cost ~2 ns per store in
 * `twz bench accessors` ("write u32, one record": 0.33 ns unchecked, 2.2
 * with a branch, 0.95 this way; the 1024-record sweep is about even).
 */
export function wordSetChecked(
  ctx: Codegen,
  view: string,
  shift: number,
  kind: string,
  fits: string,
): string {
  const i = shift === 0 ? "this._b + OFF" : `(this._b + OFF) >>> ${shift}`;
  return `const a = this._e.${view}, j = ${fits} ? ${i} : -1; a[j] = typeof x === "number" ? x : 0; if (a[j] === undefined) throw ${
    ctx.bind(storeRefused)
  }(this, NAME, "${kind}", x);`;
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
export interface ArrayClasses {
  RW: ArrayCtor;
  RO: ArrayCtor;
  RWv: ArrayCtor;
  ROv: ArrayCtor;
}

/** An accessor class. */
export type AccessorCtor = new (o: AccessorHost, e: LiveBytes, b: number) => StructAccessor;
export type ArrayCtor = new (
  o: AccessorHost,
  e: LiveBytes,
  b: number,
  n: string,
) => ArrayAccessor<unknown>;

/**
 * Generate an accessor class. With `w` (word code), naturally aligned fields
 * load and store through the extent's typed-array word views: a DataView
 * store makes V8 forget every object field it loaded (`TX.current`, `_e`,
 * `_b`), a typed-array store does not. The transaction path (shadow reads and
 * writes on a scratch record) is DataView code in both.
 */
export function compileStruct(
  type: StructType<Fields>,
  writable: boolean,
  w: boolean,
): AccessorCtor {
  const ctx = new Codegen();
  ctx.checked = !type.unchecked;
  const ro = ctx.bind(readOnly);
  // A flat class whose prototype inherits from StructAccessor's: `new` of a
  // derived class (implicit super call) costs ~20 ns in V8, a flat one ~1 ns.
  // Each pointer field memoizes its last follow (the pointer's 8 bytes, read
  // as one double, and the accessor it gave) when the target cannot change
  // behind it: FOT index 0, or an ID entry (immutable once published). Name
  // entries re-resolve. A memo also holds only while the session's revocation
  // epoch word (`_o._ep`, kept in `_p…`; see `_epoch.ts`) keeps the value it
  // had when the pointer was resolved: one load and a compare per follow (a
  // plain load: `Atomics.load` is a call in V8 that cost ~4.5 ns per follow in
  // `twz bench ptr-resolve`, the plain load ~0.4 ns).
  let init = "";
  for (const f of type.layout.values()) {
    if (f.type instanceof PtrType) {
      init +=
        `this._m${f.offset} = NaN; this._c${f.offset} = null; this._q${f.offset} = 0; this._p${f.offset} = o._ep;`;
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
          }(d, lo, hi)) { this._m${off} = d; this._c${off} = r; this._q${off} = q; }`
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
        `if (d === this._m${off} && this._p${off}[0] === this._q${off}) ` +
        `return this._c${off}; return this._f${off}(d);`;
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

export function compileArray(
  type: ArrayType<FieldType>,
  self: StructType<Fields>,
): ArrayClasses {
  const make = (writable: boolean, w: boolean): ArrayCtor => {
    const ctx = new Codegen();
    ctx.checked = !self.unchecked;
    const range = ctx.bind(outOfRange);
    const e = type.element;
    const target = e instanceof PtrType ? ctx.bind(e.resolve(self)._cls) : "undefined";
    // An element body with `base` for `this._b + OFF` and `off` for `OFF`.
    const fill = (s: string, base: string, off: string) =>
      s.replaceAll("MEMO_SET", "").replaceAll("this._b + OFF", base).replaceAll("OFF", off)
        .replaceAll("NAME", "(this._n + '[' + i + ']')").replaceAll("TARGET", target)
        .replaceAll("SELF", ctx.bind(self));
    const sub = (s: string) => fill(s, `(this._b + i * ${e.size})`, `(i * ${e.size})`);
    const check =
      `if (!(i >= 0 && i < ${type.length} && (i | 0) === i)) throw ${range}(i, ${type.length});`;
    let body =
      "return class {\nconstructor(o, e, b, n) { this._o = o; this._e = e; this._b = b; this._n = n; }\n";
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
      body += `set(i, x) { throw ${ctx.bind(readOnly)}(this, this._n + '[' + i + ']'); }\n`;
    } else {
      body += `set(i, x) { throw ${ctx.bind(notAssignable)}(this, this._n + '[' + i + ']'); }\n`;
    }
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

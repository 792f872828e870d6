/**
 * Code generation of accessor classes: each struct type compiles (once, with
 * `new Function`) into four flat classes whose getters and setters are small
 * functions with constant offsets, and each array field into four more. The
 * first cursor or record array of a struct compiles four cursor classes (the
 * same getters and setters, no pointer memo, plus the moves) and a record
 * array class. Field
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
  cursorMove,
  cursorPlace,
  cursorTxFollow,
  HOST_LE,
  type LiveBytes,
  notAssignable,
  notCallable,
  notFollowable,
  notRecord,
  outOfRange,
  outside,
  pinnedMove,
  readOnly,
  RecordArray,
  RecordColumn,
  sameBits,
  storeRefused,
  StructAccessor,
  StructCursor,
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
 * The word view, log2 of its element size and (integers) the expression equal
 * to `x` exactly when `x` fits, of the field kinds whose accessors fold the
 * transaction check into the word index: `TX.miss` (0 outside a transaction,
 * 2^30 inside) OR-ed into an index of 4- or 8-byte words is past the end of
 * the view, so the load or store misses (`undefined`) and the accessor takes
 * its checked body (the transaction's path, or the error). Once a process has
 * run a transaction (`TX.current` no longer a constant to the JIT) the
 * compare and branch on `TX.current` cost 1–1.5 ns per access in `twz bench
 * record-sweep`, the load and OR ~0.1 ns.
 */
const FOLD_WORDS: Record<string, readonly [string, number, string?]> = {
  u32: ["u32", 2, "(x >>> 0)"],
  i32: ["i32", 2, "(x | 0)"],
  f32: ["f32", 2],
  f64: ["f64", 3],
};

/**
 * A word index that misses every view of 4- or 8-byte words (an object has
 * at most 2^32 - 1 bytes, so fewer than 2^30 such words), OR-ed into an index
 * for a value that does not fit.
 */
const WORD_MISS = "0x3fffffff";

/** The word index of field offset `off` of `this` in a view of `fold`. */
function foldIndex(off: string, fold: readonly [string, number, string?]): string {
  return `((this._b + ${off}) >>> ${fold[1]})`;
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
  /** Cursor classes (word code, DataView code), made on first use. */
  CRW: CursorCtor | null;
  CRO: CursorCtor | null;
  CRWv: CursorCtor | null;
  CROv: CursorCtor | null;
  /** Record array classes: over word-code cursors, over DataView ones. */
  RA: RecordsCtor | null;
  RAv: RecordsCtor | null;
  readonly type: StructType<Fields>;
}

/** A cursor class. */
export type CursorCtor = new (o: AccessorHost, e: LiveBytes, b: number) => StructCursor;
/** A record array class. */
export type RecordsCtor = new (o: AccessorHost, e: LiveBytes, a: number, n: number) => RecordArray;

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
  cursor = false,
  pinned = false,
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
    if (f.type instanceof PtrType && !cursor) {
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
  // A cursor's handle and extent change when it moves to another object.
  // The first such store to any cursor of the class tells V8 those fields
  // are not constant, which throws away every compiled function that
  // counted on it (measured: the one-object walks of `twz bench ptr-chase`
  // ran 6.5 ns a hop for the rest of the run after the 16-object cases'
  // first move). So the second cursor made on another object first stores
  // the first one's handle and extent (kept weakly, of the same classes:
  // V8 keeps the fields' types), then its own: that happens while cursors
  // are being made, before anything hot is compiled. Storing null first
  // instead made the fields untyped and the 16-object `$follow` loop ~5 %
  // slower.
  const fields = cursor && !pinned
    ? `const f = ${ctx.bind({ r: null, done: false })}; if (!f.done) { ` +
      `const p = f.r === null ? undefined : f.r.deref(); ` +
      `if (p !== undefined && p !== o) { this._o = p; this._e = p._e; f.done = true; f.r = null; } ` +
      `else if (f.r === null) f.r = new WeakRef(o); } this._o = o; this._e = e; this._b = b;`
    : "this._o = o; this._e = e; this._b = b;";
  let body = `return class {\nconstructor(o, e, b) { ${fields} ${init} }\n`;
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
        .replaceAll("SELF", ctx.bind(type)).replaceAll("WRITABLE", String(writable));
    // Inside a transaction, a field of an object the transaction has written
    // is read from the transaction's shadow (`txFieldGet`), and every store to
    // a plain field is a transaction write (`txFieldSet`). Nested structs and
    // arrays give accessors whose own fields do the same; pointer stores go
    // through the handle's tx-aware _storePtr.
    const nested = f.type instanceof StructType || f.type instanceof ArrayType;
    // Plain accessors and a record array's own cursor fold the transaction
    // check into the word index of 4- and 8-byte number fields; free cursors
    // (the pointer chase) keep the branch.
    const fold = w && (!cursor || pinned) ? FOLD_WORDS[f.type.kind] : undefined;
    let getBody = sub(f.type._get(ctx, w), !cursor);
    if (f.type instanceof PtrType && cursor) {
      // A cursor's pointer getter gives a plain accessor, with no memo (the
      // cursor moves): `c.next` is the plain follow's slow path.
      body += `_f${off}() { ${getBody} }\n`;
      getBody = `return this._f${off}();`;
    } else if (f.type instanceof PtrType) {
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
      // A naturally aligned field of word code (an aligned record: the
      // field never crosses a cache line) reads the transaction's shadow
      // with one typed call (`t.getU32`); anything else materializes a
      // scratch record (`txFieldGet`): ~1.2 µs per access, measured.
      const kind = w ? f.type._txKind() : undefined;
      const guard = `if (a._b + ${off} + ${f.type.size} > a._e.bytes.length) throw ${
        ctx.bind(outside)
      }(a, ${JSON.stringify(name)}); `;
      const viaShadow = kind !== undefined
        ? `${local("t, a", `${guard}return t.get${kind}(a._o, a._b + ${off});`)}(t, this)`
        : `${txGet}(t, this, ${off}, ${f.type.size}, ${
          local("", sub(f.type._get(ctx, false), false))
        })`;
      const checked = `const t = ${txc}.current; if (t !== null && t.touches(this._o)) ` +
        `return ${viaShadow}; ${getBody}`;
      if (fold !== undefined) {
        // The transaction check folded into the word index (see FOLD_WORDS):
        // a miss (a transaction running, no bytes) takes the checked body.
        body += `_g${off}() { ${checked} }\n` +
          `get ${name}() { const v = this._e.${fold[0]}[${foldIndex(off, fold)} | ${txc}.miss]; ` +
          `if (v === undefined) return this._g${off}(); return v; }\n`;
      } else body += `get ${name}() { ${checked} }\n`;
    }
    const set = f.type._set(ctx, w);
    if (set !== undefined) {
      const viaTx = !nested && !(f.type instanceof PtrType);
      const kind = w && viaTx ? f.type._txKind() : undefined;
      const txStore = kind !== undefined
        ? `${
          local(
            "t, a, x",
            `${
              sub(f.type._txCheck(ctx), false)
            }if (a._b + ${off} + ${f.type.size} > a._e.bytes.length) throw ${
              ctx.bind(outside)
            }(a, ${JSON.stringify(name)}); t.set${kind}(a._o, a._b + ${off}, x);`,
          )
        }(t, this, x)`
        : `${txSet}(t, this, ${off}, ${f.type.size}, ${
          local("x", sub(f.type._set(ctx, false)!, false))
        }, x)`;
      const setter = viaTx
        ? `const t = ${txc}.current; if (t !== null) { ${txStore}; return; } ${sub(set)}`
        : sub(set);
      if (!writable) body += `set ${name}(x) { throw ${ro}(this, ${JSON.stringify(name)}); }\n`;
      else if (fold !== undefined && viaTx && (pinned || fold[2] === undefined)) {
        // As the getter: a miss (a transaction, a value that does not fit,
        // no bytes) takes the checked body, which logs, stores or throws.
        // The value check is OR-ed into the index as the transaction's is.
        // Integer setters of plain accessors keep the branch: once a
        // transaction had stored through one (the store then misses, and V8
        // compiles it for misses), the sweep of 1,024 accessors ran 3.8× the
        // DataView loop, against 2.5× with the branch; a record array's
        // cursor and float setters stayed at 1.3–1.7× (`twz bench
        // record-sweep`, measured).
        const [view] = fold;
        const fits = fold[2] !== undefined && !type.unchecked
          ? `typeof x === "number" && ${fold[2]} === x`
          : undefined;
        body += `_s${off}(x) { ${setter} }\n` +
          (fits !== undefined
            ? `set ${name}(x) { const a = this._e.${view}, j = ${
              foldIndex(off, fold)
            } | ${txc}.miss | ` +
              `(${fits} ? 0 : ${WORD_MISS}); a[j] = typeof x === "number" ? x : 0; ` +
              `if (a[j] === undefined) this._s${off}(x); }\n`
            : `set ${name}(x) { const y = typeof x === "number" ? x : +x; const a = this._e.${view}, ` +
              `j = ${
                foldIndex(off, fold)
              } | ${txc}.miss; a[j] = y; if (a[j] === undefined) this._s${off}(y); }\n`);
      } else body += `set ${name}(x) { ${setter} }\n`;
    } else {
      body += `set ${name}(x) { throw ${ctx.bind(notAssignable)}(this, ${
        JSON.stringify(name)
      }); }\n`;
    }
  }
  if (cursor) body += cursorMethods(ctx, type, writable, w, pinned);
  body += "}";
  const cls = new Function(...ctx.names, prelude + body)(...ctx.values) as AccessorCtor;
  Object.setPrototypeOf(
    cls.prototype,
    cursor ? StructCursor.prototype : StructAccessor.prototype,
  );
  Object.defineProperty(cls, "TYPE", { value: type });
  Object.defineProperty(cls, "WRITABLE", { value: writable });
  Object.defineProperty(cls, "WORDS", { value: w });
  Object.defineProperty(cls, "name", {
    value: (writable ? "" : "ReadOnly") + (pinned ? "RecordsCursor" : cursor ? "Cursor" : "Record"),
  });
  return cls;
}

/** Zero bytes shared by every record array's index guard (grown on demand). */
let guardBytes = new ArrayBuffer(1024);

/** A typed array of `n` elements: its loads are `undefined` exactly off [0, n). */
function indexGuard(n: number): Uint8Array {
  if (n > guardBytes.byteLength) {
    guardBytes = new ArrayBuffer(Math.max(n, 2 * guardBytes.byteLength));
  }
  return new Uint8Array(guardBytes, 0, n);
}

/**
 * Generated code's test that a record of `size` bytes at offset `at` lies in
 * extent `e`'s bytes: word code compares with the word view's length (loaded
 * for the pointer's loads already), which is never more than the bytes', and
 * 0 when the extent has no word views. One test for every move of a cursor
 * (`_go`, `$moveTo`, the walks' hop to another object).
 */
function recordFits(w: boolean, size: number, at: string, e: string): string {
  return w ? `${at} + ${size} <= ${e}.u32.length * 4` : `${at} + ${size} <= ${e}.bytes.length`;
}

/**
 * A cursor class's moves. `$follow(name)` dispatches on the name (a constant
 * at the call site: the compiler folds the compare once it inlines) to one
 * method per pointer field to the struct itself. The common moves are
 * inline: the same object (FOT index 0), or another through the holder's FOT
 * cache (`_fot`, which checks the revocation epoch), to an aligned record
 * inside a mapping the cursor may use; everything else (null with FOT bits,
 * a misaligned or outside target, a read-only target for a writable cursor,
 * a deleted object) goes to `cursorMove`, which moves or throws.
 */
function cursorMethods(
  ctx: Codegen,
  type: StructType<Fields>,
  writable: boolean,
  w: boolean,
  pinned: boolean,
): string {
  const size = type.size, mask = type.align - 1;
  // A move within a deleted (or withdrawn) object says so, as reads do.
  const gone = `if (this._e.bytes.length === 0) throw ${ctx.bind(outside)}(this, "($seek)"); `;
  if (pinned) {
    // A record array's own cursor stays on the array's object (so `at(i)`
    // sets only its offset): it does not follow or move onto other records.
    const stay = ctx.bind(pinnedMove);
    return `$follow(n) { throw ${stay}(this, "$follow"); }\n` +
      `$moveTo(x) { throw ${stay}(this, "$moveTo"); }\n` +
      `$walk(n, fn) { throw ${stay}(this, "$walk"); }\n` +
      `$reduce(n, fn, acc) { throw ${stay}(this, "$reduce"); }\n` +
      `$seek(b) { ${gone}this._o._checkRecord(b, ${size}, ${type.align}); this._b = b; return this; }\n` +
      `$clone() { return new this.constructor.FREE(this._o, this._e, this._b); }\n`;
  }
  const txc = ctx.bind(TX), out = ctx.bind(outside), slow = ctx.bind(cursorMove);
  const place = ctx.bind(cursorPlace);
  let body = `_go(lo, hi) {
    if ((hi & 0xffff) === 0 && (lo & ${mask}) === 0) {
      if (lo === 0) return false;
      if (hi === 0) {
        if (${recordFits(w, size, "lo", "this._e")}) { this._b = lo; return true; }
      } else {
        const o = this._o._fot(hi >>> 16), e = o._e;
        if (${writable ? "o.writable && " : ""}${recordFits(w, size, "lo", "e")}) {
          this._o = o; this._e = e; this._b = lo; return true;
        }
      }
    }
    return ${slow}(this, lo, hi);
  }\n`;
  let dispatch = "", walks = "", folds = "";
  for (const [name, f] of type.layout) {
    if (!(f.type instanceof PtrType) || f.type.resolve(type) !== type) continue;
    const off = f.offset;
    const field = JSON.stringify(name);
    // Word code reads the pointer's halves from the word view the getters
    // use (one typed array per object): in the 16-object chase of `twz bench
    // ptr-chase` that was 8.7–9.2 ns per hop against 9.2–9.7 through the
    // DataView (which also touches the extent's `view` and `bytes`).
    const load = w
      ? `const a = this._e.u32, j = (this._b + ${off}) >>> 2; const hi = a[j + 1]; ` +
        `if (hi === undefined) throw ${out}(this, ${field}); return this._go(a[j], hi);`
      : `const e = this._e, p = this._b + ${off}; ` +
        `if (p + 8 > e.bytes.length) throw ${out}(this, ${field}); const v = e.view; ` +
        `return this._go(v.getUint32(p, true), v.getUint32(p + 4, true));`;
    body += `_h${off}() { const t = ${txc}.current; if (t !== null && t.touches(this._o)) ` +
      `return ${ctx.bind(cursorTxFollow)}(t, this, ${off}, ${field}); ${load} }
`;
    dispatch += `if (n === ${field}) return this._h${off}(); `;
    body += walkMethod(ctx, type, writable, w, off);
    walks += `if (n === ${field}) return this._w${off}(fn); `;
    folds += `if (n === ${field}) return this._r${off}(fn, acc); `;
  }
  body += `$follow(n) { ${dispatch}throw ${ctx.bind(notFollowable)}(this, n); }
`;
  const callable = `if (typeof fn !== "function") throw ${ctx.bind(notCallable)}(fn); `;
  body += `$walk(n, fn) { ${callable}${walks}throw ${ctx.bind(notFollowable)}(this, n); }
`;
  body += `$reduce(n, fn, acc) { ${callable}${folds}throw ${ctx.bind(notFollowable)}(this, n); }
`;
  body += `$moveTo(x) { if (x === null) return false; ` +
    `if (!(x instanceof ${ctx.bind(StructAccessor)}) || x.constructor.TYPE !== ${
      ctx.bind(type)
    }) ` +
    `throw ${ctx.bind(notRecord)}(this, x); const o = x._o, e = x._e, b = x._b; ` +
    // Onto another record of the object and handle the cursor is on (the
    // common case, e.g. back to a list's head): what cursorPlace would check
    // of it, inline, so that a walk's \`$moveTo(head)\` stays small to inline.
    `if (o === this._o && e === this._e && (b & ${mask}) === 0 && ${
      recordFits(w, size, "b", "e")
    } && o._closed !== true) { this._b = b; return true; } ` +
    `return ${place}(this, o, e, b); }
`;
  body += `$seek(b) { ${gone}this._o._checkRecord(b, ${size}, ${type.align}); ` +
    `${place}(this, this._o, this._e, b); return this; }
`;
  body += `$clone() { return new this.constructor(this._o, this._e, this._b); }
`;
  return body;
}

/**
 * A cursor class's walk and fold along the pointer field at `off`:
 * `_w<off>(fn)` and `_r<off>(fn, acc)`, what `$walk(field, fn)` and
 * `$reduce(field, fn, acc)` dispatch to. Each does what
 * `for (;;) { if (fn(this) === false) return false; if (!this.$follow(field)) return true; }`
 * does (the fold: `acc = fn(acc, this)`, and `acc` at the end), but the
 * offset the loop carries from node to node is a local (`b`): each node
 * stores it into the cursor before the call (the callback reads through the
 * cursor's own getters) and the next pointer is loaded at the local. Once
 * the loop and the callback are inlined into the caller, V8 forwards that
 * store to the getters' loads within the iteration, so the hop's critical
 * path (pointer -> offset -> next pointer) runs through registers, where a
 * `$follow` loop stores the offset at the end of one iteration and loads it
 * back at the start of the next, a round trip V8 does not forward across
 * the loop's back edge.
 *
 * The inner loop takes only the common hop: outside a transaction, the
 * cursor where the walk left it (same offset, same bytes and view: a
 * callback may move it, grow or delete the object), a same-object pointer
 * (FOT index 0, offset below 4 GiB) to an aligned record inside the object;
 * `lim`, the last offset such a record fits at, is computed once per
 * object. A pointer to another object ends the inner loop, and the loop
 * around it (`hop`) takes the halves the inner loop loaded: through the
 * holder's FOT cache (`_fot`, with its revocation-epoch check, as `_go`) to
 * an aligned record inside a mapping the cursor may use (a writable cursor:
 * a writable handle; compared with `true`, as V8 does not know the field is
 * a boolean and otherwise tests it as any value), it stores the cursor's
 * handle and extent and enters the inner loop for the new object. Anything
 * else, and whatever that hop declines, is `_h<off>()`, the cursor's own
 * `$follow` from where the cursor is: the same checks in the same order.
 * Before, a hop to another object left both loops for a method that loaded
 * the pointer again and moved the cursor, and the walk went on from what it
 * loaded back from the cursor (see docs/LIBTWZ.md for the figures). One loop
 * for both kinds of hop, with the extent, its views and `lim` variables of
 * the inner loop, was as fast across objects but made the one-object walk
 * about 2× slower in some runs (when V8 compiled it after 16-object walks
 * had taken the hop).
 *
 * The loop loads the pointer's halves through the extent's DataView, as
 * signed words, at `(b + off) >>> 0`: that keeps the hop's critical path to
 * one add and the load (the DataView's load takes a byte offset, where the
 * word view's index needs a shift too; an unsigned word needs a check that
 * it fits a small integer before it is stored as the cursor's offset, a
 * signed one after `lo > 0` does not; and a sum known to be unsigned needs
 * no sign extension). An offset of 2 GiB or more is negative there, fails
 * `lo > 0` and goes to `_h`, which reads it unsigned. In the 1,024-node
 * chase of `twz bench ptr-chase` (one object) this took `$reduce` from
 * 2.5–2.7 to 2.2 ns per hop (the hand chase: 1.8). The DataView and the
 * word view are retargeted together (`Extent.retarget`), so checking the
 * word view after the callback checks both; `lim` comes from the word
 * view's length, never more than the DataView's.
 *
 * The loop and the callback are one shared function per cursor class: the
 * hops are fast once V8 has compiled the caller with both inlined (a
 * callback called through the shared loop cost 7–12 ns per hop, measured).
 */
function walkMethod(
  ctx: Codegen,
  type: StructType<Fields>,
  writable: boolean,
  w: boolean,
  off: number,
): string {
  const size = type.size, mask = type.align - 1;
  const txc = ctx.bind(TX);
  const view = w ? "e.u32" : "e.view";
  const limit = w ? `u.length * 4 - ${size}` : `u.byteLength - ${size}`;
  const load = (b: string) =>
    `hi = d.getInt32((${b} + ${
      off + 4
    }) >>> 0, true); lo = d.getInt32((${b} + ${off}) >>> 0, true);`;
  const loop = (name: string, params: string, call: string, done: string) =>
    `${name}${off}(${params}) {
    for (;;) {
      let e = this._e, b = this._b;
      hop: for (;;) {
        const u = ${view}, d = e.view, lim = ${limit};
        if (b > lim) break;
        let hi = 0, lo = 0;
        for (;;) {
          this._b = b;
          ${call}
          const a = ${view};
          if (a !== u || ${txc}.current !== null || this._b !== b || this._e !== e) break hop;
          ${load("b")}
          if ((hi | (lo & ${mask})) === 0 && lo > 0 && lo <= lim) { b = lo; continue; }
          break;
        }
        if (hi === 0) { if (lo === 0) return ${done}; break; }
        if ((hi & 0xffff) !== 0 || lo <= 0 || (lo & ${mask}) !== 0) break;
        const q = this._o._fot(hi >>> 16), f = q._e;
        if (${writable ? "q.writable !== true || " : ""}!(${recordFits(w, size, "lo", "f")})) break;
        this._o = q; this._e = e = f; b = lo;
      }
      if (!this._h${off}()) return ${done};
    }
  }
`;
  return loop("_w", "fn", "if (fn(this) === false) return false;", "true") +
    loop("_r", "fn, acc", "acc = fn(acc, this);", "acc");
}

/**
 * The record array class of a struct, for one code kind (word or DataView):
 * `R` and `Ro` its plain accessor classes, writable and read-only.
 *
 * `at(i)` checks `i` with a load from a typed array of `length` bytes
 * (`_k`, a view of a shared zero buffer): `undefined` exactly when `i` is
 * not an integer in [0, length). An explicit compare-and-throw there cost
 * ~2 ns per call once `at` was inlined into a sweep (3.5 against 1.7 ns per
 * record, measured), while the typed-array load folds into the bounds check
 * the JIT makes anyway. It then sets the offset of the array's own cursor,
 * a cursor pinned to the array's object (its `$follow` and `$moveTo`
 * throw; `$clone()` gives a free one): storing its object and bytes back on
 * every call cost another ~0.3 ns per record, and any branch in `at` as much
 * as the compare-and-throw.
 *
 * `column(name)` gives a column of one scalar field (see
 * {@linkcode compileColumn}); its class is compiled on the first call for
 * that field and kept beside the record array class.
 */
export function compileRecords(
  type: StructType<Fields>,
  R: AccessorCtor,
  Ro: AccessorCtor,
  P: CursorCtor,
  Po: CursorCtor,
): RecordsCtor {
  const ctx = new Codegen();
  const range = ctx.bind(outOfRange);
  const check = `if (this._k[i] === undefined) throw ${range}(i, this.length);`;
  const words = (P as unknown as { WORDS: boolean }).WORDS;
  const columns = new Map<string, ColumnCtor>();
  const column = (name: string, writable: boolean): ColumnCtor => {
    const key = `${writable ? "w" : "r"}${name}`;
    let C = columns.get(key);
    if (C === undefined) columns.set(key, C = compileColumn(type, name, words, writable));
    return C;
  };
  const body = `return class {
    constructor(o, e, a, n) { this._o = o; this._e = e; this._a = a; this.length = n; this._c = new (o.writable ? ${
    ctx.bind(P)
  } : ${ctx.bind(Po)})(o, e, a); this._k = ${ctx.bind(indexGuard)}(n); }
    at(i) { ${check} const c = this._c; c._b = this._a + i * ${type.size}; return c; }
    get(i) { ${check} const o = this._o; return new (o.writable ? ${ctx.bind(R)} : ${
    ctx.bind(Ro)
  })(o, this._e, this._a + i * ${type.size}); }
    cursor() { return new this._c.constructor.FREE(this._o, this._e, this._a); }
    column(name) { return new (${ctx.bind(column)}(name, this._o.writable))(this); }
  }`;
  const cls = new Function(...ctx.names, body)(...ctx.values) as RecordsCtor;
  Object.setPrototypeOf(cls.prototype, RecordArray.prototype);
  Object.defineProperty(cls, "TYPE", { value: type });
  Object.defineProperty(cls, "name", { value: "Records" });
  return cls;
}

/** A column class: made from its record array. */
export type ColumnCtor = new (r: RecordArray) => RecordColumn<unknown>;

/**
 * The word view, log2 of its element size and (for integers) the expression
 * equal to `x` exactly when `x` fits, of each field kind whose column loads
 * and stores words itself (the same conversions as the field setters of
 * `_layout_dsl.ts`: `INT_FITS`). Other scalar kinds (`bool`, `u64`, `i64`)
 * get columns that go through a record cursor.
 */
const COLUMN_WORDS: Record<string, readonly [string, number, string?]> = {
  u8: ["bytes", 0, "(x & 0xff)"],
  i8: ["i8", 0, "(x << 24 >> 24)"],
  u16: ["u16", 1, "(x & 0xffff)"],
  i16: ["i16", 1, "(x << 16 >> 16)"],
  u32: ["u32", 2, "(x >>> 0)"],
  i32: ["i32", 2, "(x | 0)"],
  f32: ["f32", 2],
  f64: ["f64", 3],
};

/**
 * The column class of field `name` of a struct's record arrays (word code
 * when `w`): `get(i)` and `set(i, x)` load and store field `name` of record
 * `i` through the extent's word view (`writable`: of a writable handle;
 * a read-only one's `set` goes through its read-only cursor, which throws),
 * with the array's index guard (`_k`,
 * as `at(i)`), the transaction check, and the field setter's value check.
 * Every other case goes through the column's own cursor (of the class of
 * the array's, moved as `r.at(i)` moves that one: `r.at(i)` itself is the
 * user's), whose getters and setters keep every rule: inside a transaction (a read
 * when the transaction wrote the object, every write), a read-only array
 * (the setter throws), and DataView code. A load or store that reached no
 * word (the object deleted, the mapping withdrawn, the session closed) or a
 * value the field cannot hold throws the error the cursor's getter or
 * setter throws (`outside`, `storeRefused`, with the record's offset).
 *
 * The transaction check and, for integer stores, the value check are folded
 * into the word index (4- and 8-byte words: OR-ed in, `TX.miss` and a miss
 * index for a value that does not fit; bytes and 16-bit words: a select of
 * -1): a typed array drops a store that misses and gives `undefined` for a
 * load, and the column takes its slow path (`_g`, `_s`), which goes through
 * the cursor (a transaction) or throws. A branch that throws before the
 * store measured 2.3 against 1.1 ns per record in the record sweep.
 */
export function compileColumn(
  type: StructType<Fields>,
  name: string,
  w: boolean,
  writable: boolean,
): ColumnCtor {
  const f = type.field(name);
  const scalar = f.type.kind in COLUMN_WORDS || f.type.kind === "bool" ||
    f.type.kind === "u64" || f.type.kind === "i64";
  if (!scalar) {
    throw new TypeError(
      `A column takes a number, bigint or bool field; field ${name} of ${type.kind} is ${f.type.kind}`,
    );
  }
  const ctx = new Codegen();
  const range = ctx.bind(outOfRange);
  const field = JSON.stringify(name);
  const check = `if (this._k[i] === undefined) throw ${range}(i, this.length);`;
  // The column's own cursor (pinned, of the array's class) at record `i`:
  // the array's `at(i)` cursor is the user's, a column does not move it.
  const via = `this._at(i)[${field}]`;
  const words = w ? COLUMN_WORDS[f.type.kind] : undefined;
  let get = `get(i) { ${check} return ${via}; }`;
  let set = `set(i, x) { ${check} ${via} = x; }`;
  if (words !== undefined) {
    const [view, shift, fits] = words;
    // The index of a miss: past the end of any view of 4-byte or 8-byte
    // words (an object has at most 2^32 - 1 bytes, so fewer than 2^30 such
    // words) and still a small integer to V8, which keeps the access on its
    // fast path (-1 or the view's length cost 1–2 ns per call more, measured);
    // -1 for bytes and 16-bit words, whose views may be longer.
    const miss = shift >= 2 ? "0x3fffffff" : "-1";
    // The word index of record `i`'s field: `_w` is the first record's
    // (the field is naturally aligned in word code, and the record size a
    // multiple of its size), plus `i` records of words. One multiply-add:
    // `(this._a + i * size) >>> shift` measured 5–12 % slower per call.
    if (type.size % (1 << shift) !== 0) {
      throw new Error(`${type.kind}: a record size of ${type.size}`);
    }
    const index = `this._w + i * ${type.size >>> shift}`;
    // What the record's cursor would name in an error: the record's offset.
    const rec = `{ _o: this._o, _e: this._e, _b: this._a - ${f.offset} + i * ${type.size} }`;
    const txc = ctx.bind(TX), out = ctx.bind(outside);
    // The transaction check is folded into the word index. For 4- and
    // 8-byte words it is OR-ed in: `TX.miss` is 0 outside a transaction and
    // 2^30 inside one, past the end of the view (one load and an OR: the
    // compare-and-select of `TX.current` below cost 0.2–0.5 ns more per call
    // in the record sweep once a process had run a transaction, 1.4–1.6×
    // the DataView loop against 1.1–1.3×). For bytes and 16-bit words, whose
    // views may be longer than 2^30, it is a select of -1 (V8 takes a
    // negative index off its fast path, ~3 ns per call from then on, but only
    // once a miss happened). The hot path has no branch of its own: once a
    // process has run a transaction (`TX.current` no longer a constant to the
    // JIT), a branch on it before the load cost 1.5–3 ns per call in the
    // record sweep. A value that does not fit is a miss too, OR-ed in the
    // same way (1.23–1.28× the DataView loop against 1.31–1.36× as a select
    // of the whole index, and 2.9× as a branch before the store, measured).
    // A miss (a transaction, a value that does not fit, no bytes) goes to
    // `_g` or `_s`: the transaction path, or the error. Inside a transaction
    // the cursor's getter asks `t.touches` (once).
    const txIndex = (ok: string) =>
      shift >= 2
        ? `${index} | ${txc}.miss${ok === "true" ? "" : ` | (${ok} ? 0 : ${miss})`}`
        : `${txc}.current === null && ${ok} ? ${index} : ${miss}`;
    let slow = `_g(i) { if (${txc}.current !== null) return ${via}; ` +
      `const v = this._e.${view}[${index}]; if (v === undefined) throw ${out}(${rec}, ${field}); return v; }`;
    get = `get(i) { ${check} const v = this._e.${view}[${txIndex("true")}]; ` +
      `if (v === undefined) return this._g(i); return v; }`;
    if (!writable) {
      // The column's cursor is read-only: its setter throws.
    } else if (type.unchecked || fits === undefined) {
      // One conversion (a float store of a non-number converts it, also
      // past the end): the transaction path gets the number.
      slow +=
        `\n_s(i, x) { if (${txc}.current !== null) { ${via} = x; return; } throw ${out}(${rec}, ${field}); }`;
      set =
        `set(i, x) { ${check} const y = typeof x === "number" ? x : +x; const a = this._e.${view}, ` +
        `j = ${txIndex("true")}; a[j] = y; if (a[j] === undefined) this._s(i, y); }`;
    } else {
      slow += `\n_s(i, x) { if (${txc}.current !== null) { ${via} = x; return; } throw ${
        ctx.bind(storeRefused)
      }(${rec}, ${field}, "${f.type.kind}", x); }`;
      set = `set(i, x) { ${check} const a = this._e.${view}, ` +
        `j = ${txIndex(`typeof x === "number" && ${fits} === x`)}; ` +
        `a[j] = typeof x === "number" ? x : 0; if (a[j] === undefined) this._s(i, x); }`;
    }
    get += `\n${slow}`;
  }
  const body = `return class {
    constructor(r) { this._r = r; this._o = r._o; this._e = r._e; this._a = r._a + ${f.offset}; this._w = this._a >>> ${
    words?.[1] ?? 0
  }; this.length = r.length; this._k = r._k; this._c = new r._c.constructor(r._o, r._e, r._a); }
    _at(i) { const c = this._c; c._b = this._a - ${f.offset} + i * ${type.size}; return c; }
    ${get}
    ${set}
  }`;
  const cls = new Function(...ctx.names, body)(...ctx.values) as ColumnCtor;
  Object.setPrototypeOf(cls.prototype, RecordColumn.prototype);
  Object.defineProperty(cls, "TYPE", { value: type });
  Object.defineProperty(cls, "FIELD", { value: name });
  Object.defineProperty(cls, "WRITABLE", { value: writable });
  Object.defineProperty(cls, "name", { value: "Column" });
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
        .replaceAll("SELF", ctx.bind(self)).replaceAll("WRITABLE", String(writable));
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
    Object.defineProperty(cls, "WRITABLE", { value: writable });
    return cls;
  };
  const RWv = make(true, false), ROv = make(false, false);
  return HOST_LE
    ? { RW: make(true, true), RO: make(false, true), RWv, ROv }
    : { RW: RWv, RO: ROv, RWv, ROv };
}

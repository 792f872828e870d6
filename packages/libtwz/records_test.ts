// Columns of record arrays (`Type.records(...).column(name)`): `get(i)` and
// `set(i, x)` against `recs.at(i).name` on every scalar field kind, and the
// rules they keep — the index check, checked integer stores (nothing
// written), the transaction path, read-only handles, grow relocation,
// deleted, withdrawn and closed objects — also once the JIT has optimized
// them; and, after a transaction has run in the process, the same rules for
// plain accessors, `at(i)` and columns of the fields whose transaction check
// is folded into the word index (`TX.miss`); on hal-sim and (when available)
// hal-pmem.
import assert from "node:assert/strict";
import { ErrorCode } from "@twz/kernel/abi";
import {
  bool,
  f32,
  f64,
  i16,
  i32,
  i64,
  i8,
  ptr,
  string,
  struct,
  Twz,
  type TwzObject,
  u16,
  u32,
  u64,
  u8,
} from "@twz/libtwz";
import { transaction } from "./tx.ts";
import { eachHal, twzError } from "./testdata/each_hal.ts";

const both = eachHal("twz-records-");

const Rec = struct({ value: u32, weight: f64, big: u64, label: string(8), next: ptr("self") });
const All = struct({
  a8: u8,
  s8: i8,
  a16: u16,
  s16: i16,
  a32: u32,
  s32: i32,
  r32: f32,
  r64: f64,
  on: bool,
  a64: u64,
  s64: i64,
});

/** The message `fn` throws (it must throw). */
function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
  throw new Error("expected a throw");
}

/** A sum over `col` in a hot loop (so the JIT optimizes `get`). */
function hotSum(col: { get(i: number): number; length: number }, rounds: number): number {
  let s = 0;
  for (let k = 0; k < rounds; k++) s += col.get(k % col.length);
  return s;
}

/** Stores in a hot loop (so the JIT optimizes `set`): record `i` gets `i`. */
function hotFill(col: { set(i: number, x: number): void; length: number }, rounds: number): void {
  for (let k = 0; k < rounds; k++) col.set(k % col.length, k % col.length);
}

both("columns read and write what at(i) does, for every scalar kind", (twz) => {
  const o = twz.create({ size: 8192 });
  const recs = All.records(o, o.baseOffset, 8);
  const values = (i: number) => ({
    a8: 250 - i,
    s8: -100 + i,
    a16: 65000 + i,
    s16: -30000 + i,
    a32: 4_000_000_000 + i,
    s32: -2_000_000_000 + i,
    r32: 1.5 * i,
    r64: i / 3,
    on: i % 2 === 1,
    a64: (1n << 63n) + BigInt(i),
    s64: -(1n << 62n) - BigInt(i),
  });
  for (let i = 0; i < recs.length; i++) Object.assign(recs.at(i), values(i));
  const names = Object.keys(values(0)) as (keyof ReturnType<typeof values>)[];
  for (const name of names) {
    const col = recs.column(name);
    assert.equal(col.length, 8);
    assert.equal(col.name, name);
    for (let i = 0; i < recs.length; i++) assert.equal(col.get(i), values(i)[name], name);
    assert.deepEqual([...col], Array.from({ length: 8 }, (_, i) => values(i)[name]));
  }
  // Stores through columns land where at(i) reads them.
  for (let i = 0; i < recs.length; i++) {
    const v = values(7 - i);
    for (const name of names) {
      (recs.column(name) as { set(i: number, x: unknown): void }).set(i, v[name]);
    }
  }
  for (let i = 0; i < recs.length; i++) {
    const r = recs.at(i), v = values(7 - i);
    for (const name of names) assert.equal(r[name], v[name], `${name} of record ${i}`);
  }
  assert.equal(o.view.getUint32(o.baseOffset + 3 * All.size + All.offsetOf("a32"), true), 4e9 + 4);
  // A column does not move the array's own cursor (bool and u64 columns go
  // through a cursor of their own).
  const held = recs.at(5);
  recs.column("on").set(2, true);
  assert.equal(recs.column("a64").get(3), values(4).a64);
  assert.equal(held.$offset, o.baseOffset + 5 * All.size);
  // The same class for every column of one field.
  assert.equal(recs.column("a32").constructor, recs.column("a32").constructor);
});

both("columns: only scalar fields; the index check of at(i), nothing written outside", (twz) => {
  const o = twz.create({ size: 4096 });
  const recs = Rec.records(o, o.baseOffset, 4);
  // @ts-expect-error: not a scalar field
  assert.throws(() => recs.column("label"), TypeError, "string");
  // @ts-expect-error: not a scalar field
  assert.throws(() => recs.column("next"), TypeError, "ptr");
  // @ts-expect-error: no such field
  assert.throws(() => recs.column("nope"), TypeError);
  const value = recs.column("value"), weight = recs.column("weight");
  hotFill(value, 50_000);
  hotFill(weight, 50_000);
  assert.equal(hotSum(value, 50_000), 75_000);
  const before = o.bytes.slice();
  for (const bad of [-1, 4, 1.5, NaN, Infinity, -0.5, 0.25, 1 / 3]) {
    const expected = message(() => recs.at(bad));
    assert.equal(message(() => value.get(bad)), expected, String(bad));
    assert.equal(message(() => value.set(bad, 7)), expected, String(bad));
    assert.equal(message(() => weight.get(bad)), expected, String(bad));
    assert.equal(message(() => weight.set(bad, 7)), expected, String(bad));
  }
  assert.deepEqual(o.bytes, before, "a refused index writes nothing");
  assert.equal(value.get(-0), 0);
  const empty = Rec.records(o, o.baseOffset, 0).column("value");
  assert.throws(() => empty.get(0), RangeError);
  assert.throws(() => empty.set(0, 1), RangeError);
});

both("column stores are checked: a value that does not fit writes nothing", (twz) => {
  const o = twz.create({ size: 4096 });
  const recs = All.records(o, o.baseOffset, 4);
  const cols = {
    a8: recs.column("a8"),
    s8: recs.column("s8"),
    a16: recs.column("a16"),
    s16: recs.column("s16"),
    a32: recs.column("a32"),
    s32: recs.column("s32"),
  };
  for (const col of Object.values(cols)) hotFill(col, 50_000); // optimized code meets the refusals
  const refused: Record<keyof typeof cols, number[]> = {
    a8: [256, -1],
    s8: [128, -129],
    a16: [65536, -1],
    s16: [32768, -32769],
    a32: [2 ** 32, -1, 2 ** 53],
    s32: [2 ** 31, -(2 ** 31) - 1],
  };
  const before = o.bytes.slice();
  for (const [name, bad] of Object.entries(refused) as [keyof typeof cols, number[]][]) {
    const col = cols[name] as { set(i: number, x: unknown): void };
    const acc = recs.at(2) as unknown as Record<string, unknown>;
    for (const x of [...bad, 1.5, NaN, Infinity, -Infinity, 5e-324, "5", 5n, null, undefined]) {
      const expected = message(() => (acc[name] = x));
      assert.equal(message(() => col.set(2, x)), expected, `${name} = ${String(x)}`);
    }
  }
  const wide = recs.column("a64") as { set(i: number, x: unknown): void };
  assert.throws(() => wide.set(1, 5), TypeError);
  assert.throws(() => wide.set(1, -1n), RangeError);
  assert.throws(() => (recs.column("on") as { set(i: number, x: unknown): void }).set(1, 1));
  assert.deepEqual(o.bytes, before, "nothing written");
  cols.a32.set(1, 2 ** 32 - 1);
  cols.s8.set(1, -128);
  assert.equal(recs.at(1).a32, 2 ** 32 - 1);
  assert.equal(recs.at(1).s8, -128);
  // An unchecked struct's column stores as its accessors do (modulo 2^n).
  const Loose = struct({ v: u32, w: u8 }, { unchecked: true });
  const loose = Loose.records(o, o.baseOffset + 1024, 2);
  loose.column("v").set(0, -1);
  loose.column("w").set(1, 257);
  assert.equal(loose.at(0).v, 2 ** 32 - 1);
  assert.equal(loose.at(1).w, 1);
});

both("inside a transaction columns read its writes and write through it", (twz) => {
  const o = twz.create({ size: 4096 });
  const other = twz.create({ size: 4096 });
  const recs = Rec.records(o, o.baseOffset, 8);
  const value = recs.column("value"), weight = recs.column("weight");
  hotFill(value, 50_000);
  hotFill(weight, 50_000);
  assert.equal(hotSum(value, 8), 28);
  const held = recs.at(7);
  transaction(twz, () => {
    Rec.at(other, other.baseOffset).value = 1; // the transaction touches another object first
    assert.equal(value.get(3), 3, "an object the transaction has not written reads directly");
    recs.get(3).value = 33;
    assert.equal(value.get(3), 33, "reads see the transaction's writes");
    value.set(4, 44);
    weight.set(4, 4.5);
    assert.equal(recs.get(4).value, 44);
    assert.equal(weight.get(4), 4.5);
    assert.equal(hotSum(value, 8), 28 + 30 + 40);
    assert.throws(() => value.set(5, -1), RangeError, "checked in the transaction too");
    assert.equal(held.value, 7, "the array's own cursor stays where it was");
  });
  assert.equal(value.get(3), 33, "committed");
  assert.equal(value.get(4), 44);
  assert.equal(o.view.getFloat64(o.baseOffset + 4 * Rec.size + Rec.offsetOf("weight"), true), 4.5);
  assert.throws(() =>
    transaction(twz, () => {
      value.set(6, 600);
      weight.set(6, 6.25);
      assert.equal(value.get(6), 600);
      throw new Error("abort");
    }), /abort/);
  assert.equal(value.get(6), 6, "an aborted transaction leaves nothing");
  // Small words (u8, i16) and a 4-byte float, the same way.
  const all = All.records(other, other.baseOffset + 64, 4);
  const a8 = all.column("a8"), s16 = all.column("s16"), r32 = all.column("r32");
  hotFill(a8, 20_000);
  hotFill(s16, 20_000);
  hotFill(r32, 20_000);
  transaction(twz, () => {
    a8.set(1, 200);
    s16.set(1, -300);
    r32.set(1, 0.5);
    assert.equal(a8.get(1) + s16.get(1) + r32.get(1), -99.5);
  });
  assert.throws(() =>
    transaction(twz, () => {
      a8.set(2, 100);
      s16.set(2, -5);
      r32.set(2, 8);
      throw new Error("abort");
    }), /abort/);
  assert.deepEqual([a8.get(1), s16.get(1), r32.get(1)], [200, -300, 0.5]);
  assert.deepEqual([a8.get(2), s16.get(2), r32.get(2)], [2, 2, 2]);
  assert.equal(weight.get(6), 6);
  assert.equal(o.view.getUint32(o.baseOffset + 6 * Rec.size, true), 6);
});

both("float columns convert a non-number once, as the field setter does", (twz) => {
  const o = twz.create({ size: 4096 });
  const recs = All.records(o, o.baseOffset, 4);
  const r64 = recs.column("r64") as { set(i: number, x: unknown): void; get(i: number): number };
  hotFill(recs.column("r64"), 50_000);
  let calls = 0;
  const boxed = { valueOf: () => (calls++, 2.5) };
  r64.set(1, "1.25");
  assert.equal(r64.get(1), 1.25);
  r64.set(2, boxed);
  assert.equal(calls, 1);
  transaction(twz, () => {
    r64.set(3, boxed);
    assert.equal(r64.get(3), 2.5);
  });
  assert.equal(calls, 2, "one conversion in a transaction too");
  assert.equal(recs.at(3).r64, 2.5);
  assert.throws(() => r64.set(0, 1n), TypeError);
  assert.equal(r64.get(0), 0);
});

both("a column of a read-only handle refuses writes", (twz) => {
  const o = twz.create({ size: 4096 });
  Rec.records(o, o.baseOffset, 4).column("value").set(3, 9);
  const ro = Rec.records(twz.open(o.id, { write: false }), o.baseOffset, 4);
  const value = ro.column("value"), weight = ro.column("weight");
  assert.equal(value.get(3), 9);
  assert.equal(hotSum(value, 20_000), 45_000);
  twzError(() => value.set(3, 1), ErrorCode.AccessDenied, o.id);
  twzError(() => weight.set(3, 1), ErrorCode.AccessDenied, o.id);
  twzError(() => ro.column("big").set(3, 1n), ErrorCode.AccessDenied, o.id);
  assert.equal(value.get(3), 9);
  assert.throws(() => value.set(4, 1), RangeError, "the index is checked first");
});

both(
  "a column kept across a grow that moves its object reads and writes the moved bytes",
  (twz) => {
    const p = twz.create({ size: 4096 });
    const recs = Rec.records(p, p.baseOffset, 16);
    const value = recs.column("value");
    hotFill(value, 50_000);
    twz.create({ size: 4096 }); // blocks p from growing in place
    const bytesBefore = p.mapping.extent.bytes;
    const before = { base: p.mapping.extent.base, at: bytesBefore.byteOffset };
    p.grow(256 * 1024);
    const after = p.mapping.extent;
    assert.ok(
      after.base !== before.base || after.bytes.byteOffset !== before.at ||
        after.bytes.buffer !== bytesBefore.buffer,
      "the object moved",
    );
    // New objects may take the old place: stale views would read their bytes.
    for (let i = 0; i < 4; i++) twz.create({ size: 4096 }).bytes.fill(0xee, 64);
    assert.equal(hotSum(value, 16), 120);
    value.set(5, 55);
    assert.equal(
      p.view.getUint32(p.baseOffset + 5 * Rec.size, true),
      55,
      "lands in the moved bytes",
    );
    p.view.setUint32(p.baseOffset + 6 * Rec.size, 66, true);
    assert.equal(value.get(6), 66);
  },
);

/** Columns of `o` made hot, then `gone(o)`; every use must then throw `code` naming `o`. */
function goneCase(twz: Twz, code: ErrorCode, gone: (o: TwzObject) => void): void {
  const o = twz.create({ size: 4096 });
  const recs = All.records(o, o.baseOffset, 8);
  const a32 = recs.column("a32"), r64 = recs.column("r64"), a8 = recs.column("a8");
  hotFill(a32, 50_000);
  hotFill(r64, 50_000);
  assert.equal(hotSum(a32, 50_000) > 0, true);
  assert.equal(hotSum(r64, 50_000) > 0, true);
  gone(o);
  const at = message(() => recs.at(2).a32);
  twzError(() => a32.get(2), code, o.id);
  assert.equal(message(() => a32.get(2)), at, "the cursor's error");
  twzError(() => a32.set(2, 1), code, o.id);
  assert.equal(message(() => a32.set(2, 1)), message(() => (recs.at(2).a32 = 1)));
  twzError(() => r64.get(2), code, o.id);
  twzError(() => r64.set(2, 1), code, o.id);
  twzError(() => a8.get(7), code, o.id);
  twzError(() => a8.set(7, 1), code, o.id);
  twzError(() => recs.column("a64").get(1), code, o.id);
  twzError(() => hotSum(a32, 10), code, o.id);
}

both("columns of a deleted object throw TwzError(ObjectNotFound) naming it", (twz) => {
  goneCase(twz, ErrorCode.ObjectNotFound, (o) => twz.delete(o.id));
});

both("columns of a withdrawn mapping throw TwzError(AccessDenied)", (twz) => {
  goneCase(twz, ErrorCode.AccessDenied, (o) => {
    // What the kernel's thread side does on a revocation (see cursor_test.ts).
    o.mapping.extent.retarget(new Uint8Array(0), -1);
    o._withdraw();
  });
});

Deno.test("columns after Twz.close() throw TwzError(Shutdown)", async () => {
  const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
  const o = twz.create({ size: 4096 });
  const value = Rec.records(o, o.baseOffset, 4).column("value");
  hotFill(value, 50_000);
  twz.close();
  twzError(() => value.get(1), ErrorCode.Shutdown, o.id);
  twzError(() => value.set(1, 1), ErrorCode.Shutdown, o.id);
});

// After a transaction: 4- and 8-byte number fields fold the transaction check
// into the word index (`TX.miss`) in plain accessors, the array's cursor
// (`at(i)`) and columns. Each way is made hot (so the JIT optimizes it with the
// check paid, not folded away) and must keep every rule: direct outside a
// transaction, logged inside one (the object's bytes unchanged until the
// commit, nothing after an abort), reads of its writes, checked integer
// stores, read-only handles, deleted and withdrawn objects.

const Four = struct({ u: u32, s: i32, f: f32, d: f64 });
type FourAcc = { u: number; s: number; f: number; d: number };
type FourCols = {
  u: { get(i: number): number; set(i: number, x: number): void };
  s: { get(i: number): number; set(i: number, x: number): void };
  f: { get(i: number): number; set(i: number, x: number): void };
  d: { get(i: number): number; set(i: number, x: number): void };
};
const FOUR = 8;

/** What record `i` holds after a sweep with `k`. */
function fourValues(i: number, k: number): FourAcc {
  return { u: i + k, s: -i - k, f: i + 0.5, d: i * k + 0.25 };
}

/** The sum a sweep of `rounds` with `k` returns. */
function fourSum(rounds: number, k: number): number {
  let s = 0;
  for (let r = 0; r < rounds; r++) {
    const v = fourValues(r % FOUR, k);
    s += v.u + v.s + v.f + v.d;
  }
  return s;
}

/** A hot sweep through accessors (`rec(i)`): store every field, read it back. */
function hotAccess(rec: (i: number) => FourAcc, rounds: number, k: number): number {
  let s = 0;
  for (let r = 0; r < rounds; r++) {
    const i = r % FOUR, a = rec(i);
    a.u = i + k;
    a.s = -i - k;
    a.f = i + 0.5;
    a.d = i * k + 0.25;
    s += a.u + a.s + a.f + a.d;
  }
  return s;
}

/** {@linkcode hotAccess} through columns. */
function hotColumns(c: FourCols, rounds: number, k: number): number {
  let s = 0;
  for (let r = 0; r < rounds; r++) {
    const i = r % FOUR;
    c.u.set(i, i + k);
    c.s.set(i, -i - k);
    c.f.set(i, i + 0.5);
    c.d.set(i, i * k + 0.25);
    s += c.u.get(i) + c.s.get(i) + c.f.get(i) + c.d.get(i);
  }
  return s;
}

/** A record array of `Four` in a new object, and its three ways of access. */
function fourWays(twz: Twz) {
  const o = twz.create({ size: 4096 });
  const recs = Four.records(o, o.baseOffset, FOUR);
  const plain = Array.from({ length: FOUR }, (_, i) => recs.get(i));
  const cols: FourCols = {
    u: recs.column("u"),
    s: recs.column("s"),
    f: recs.column("f"),
    d: recs.column("d"),
  };
  const ways: [string, (rounds: number, k: number) => number][] = [
    ["plain", (rounds, k) => hotAccess((i) => plain[i]!, rounds, k)],
    ["at(i)", (rounds, k) => hotAccess((i) => recs.at(i), rounds, k)],
    ["column", (rounds, k) => hotColumns(cols, rounds, k)],
  ];
  // From now on the JIT pays the transaction check (TX.current is no longer
  // the constant null, TX.miss no longer the constant 0).
  transaction(twz, () => (plain[0]!.u = 1));
  return { o, recs, plain, cols, ways };
}

/** Record `i` as the object's bytes hold it. */
function fourBytes(o: TwzObject, i: number): FourAcc {
  const at = o.baseOffset + i * Four.size, v = o.view;
  return {
    u: v.getUint32(at + Four.offsetOf("u"), true),
    s: v.getInt32(at + Four.offsetOf("s"), true),
    f: v.getFloat32(at + Four.offsetOf("f"), true),
    d: v.getFloat64(at + Four.offsetOf("d"), true),
  };
}

both(
  "after a transaction, accessors, at(i) and columns store directly outside one and through it inside one (hot)",
  (twz) => {
    const { o, ways } = fourWays(twz);
    let k = 1;
    for (const [name, sweep] of ways) {
      assert.equal(sweep(30_000, k), fourSum(30_000, k), name);
      assert.deepEqual(fourBytes(o, 3), fourValues(3, k), `${name}: stored directly`);
      const done = k;
      k++;
      transaction(twz, () => {
        assert.equal(
          sweep(10_000, k),
          fourSum(10_000, k),
          `${name}: reads see the transaction's writes`,
        );
        assert.deepEqual(fourBytes(o, 3), fourValues(3, done), `${name}: logged, not stored`);
      });
      assert.deepEqual(fourBytes(o, 3), fourValues(3, k), `${name}: committed`);
      const before = o.bytes.slice();
      assert.throws(() =>
        transaction(twz, () => {
          sweep(10_000, k + 100);
          throw new Error("abort");
        }), /abort/);
      assert.deepEqual(o.bytes, before, `${name}: an aborted transaction leaves nothing`);
      assert.equal(sweep(30_000, k), fourSum(30_000, k), `${name}: direct again`);
      k++;
    }
  },
);

both(
  "after a transaction, checked stores through accessors, at(i) and columns refuse what does not fit and write nothing, inside one and out (hot)",
  (twz) => {
    const { o, recs, plain, cols, ways } = fourWays(twz);
    for (const [, sweep] of ways) sweep(30_000, 1); // optimized code meets the refusals
    let calls = 0;
    const boxed = { valueOf: () => (calls++, 5) };
    const refused: [keyof FourCols, unknown[]][] = [
      ["u", [-1, 2 ** 32, 2 ** 53, 1.5, NaN, Infinity, "5", 5n, null, undefined, boxed]],
      ["s", [2 ** 31, -(2 ** 31) - 1, 0.5, -Infinity, "1", 1n, boxed]],
    ];
    const stores: [string, (field: keyof FourCols, x: unknown) => void][] = [
      ["plain", (field, x) => ((plain[5] as unknown as Record<string, unknown>)[field] = x)],
      ["at(i)", (field, x) => ((recs.at(5) as unknown as Record<string, unknown>)[field] = x)],
      ["column", (field, x) => (cols[field] as { set(i: number, x: unknown): void }).set(5, x)],
    ];
    const check = (inside: string) => {
      for (const [field, bad] of refused) {
        for (const x of bad) {
          const what = `${field} = ${typeof x === "bigint" ? `${x}n` : String(x)}${inside}`;
          const expected = message(() =>
            (plain[5] as unknown as Record<string, unknown>)[field] = x
          );
          assert.match(expected, typeof x === "number" ? /^RangeError/ : /^TypeError/, what);
          for (const [name, store] of stores) {
            assert.equal(message(() => store(field, x)), expected, `${name}: ${what}`);
          }
        }
      }
    };
    const before = o.bytes.slice();
    check("");
    assert.deepEqual(o.bytes, before, "nothing written");
    transaction(twz, () => {
      check(", in a transaction");
      assert.deepEqual(recs.at(5).u, fourValues(5, 1).u, "nothing logged");
    });
    assert.deepEqual(o.bytes, before, "nothing written by the transaction");
    assert.equal(calls, 0, "a non-number is never converted");
    // What fits is stored, through every way.
    for (const [name, store] of stores) {
      store("u", 2 ** 32 - 1);
      store("s", -(2 ** 31));
      assert.deepEqual([recs.at(5).u, plain[5]!.s], [2 ** 32 - 1, -(2 ** 31)], name);
    }
  },
);

both(
  "after a transaction, a read-only handle's accessors, at(i) and columns read and refuse writes (hot)",
  (twz) => {
    const { o } = fourWays(twz);
    const ro = Four.records(twz.open(o.id, { write: false }), o.baseOffset, FOUR);
    const plain = Array.from({ length: FOUR }, (_, i) => ro.get(i));
    Four.records(o, o.baseOffset, FOUR).at(2).d = 2.5;
    let s = 0;
    for (let r = 0; r < 30_000; r++) s += plain[r % FOUR]!.d + ro.at(r % FOUR).d;
    assert.ok(s >= 30_000 / FOUR * 5 - 1e-9, "reads");
    transaction(twz, () => assert.equal(ro.at(2).d + plain[2]!.d + ro.column("d").get(2), 7.5));
    twzError(() => (plain[2]!.d = 1), ErrorCode.AccessDenied, o.id);
    twzError(() => (ro.at(2).u = 1), ErrorCode.AccessDenied, o.id);
    twzError(() => ro.column("f").set(2, 1), ErrorCode.AccessDenied, o.id);
    transaction(twz, () => {
      twzError(() => (plain[2]!.d = 1), ErrorCode.AccessDenied, o.id);
      twzError(() => ro.column("u").set(2, 1), ErrorCode.AccessDenied, o.id);
    });
    assert.equal(plain[2]!.d, 2.5);
  },
);

/** After a transaction, the three ways made hot, then `gone(o)`: every use throws `code`. */
function goneAfterTx(twz: Twz, code: ErrorCode, gone: (o: TwzObject) => void): void {
  const { o, recs, plain, cols, ways } = fourWays(twz);
  for (const [, sweep] of ways) sweep(30_000, 1);
  gone(o);
  const uses: [string, () => unknown][] = [
    ["plain u", () => plain[3]!.u],
    ["plain d", () => plain[3]!.d],
    ["plain u =", () => (plain[3]!.u = 1)],
    ["plain f =", () => (plain[3]!.f = 1)],
    ["at(i) s", () => recs.at(3).s],
    ["at(i) s =", () => (recs.at(3).s = 1)],
    ["at(i) d =", () => (recs.at(3).d = 1)],
    ["column u", () => cols.u.get(3)],
    ["column u =", () => cols.u.set(3, 1)],
    ["column d =", () => cols.d.set(3, 1)],
  ];
  for (const [, sweep] of ways) twzError(() => sweep(10, 2), code, o.id);
  for (const [name, use] of uses) {
    assert.equal(twzError(use, code, o.id).code, code, name);
  }
  const other = twz.create({ size: 4096 });
  transaction(twz, () => {
    Four.at(other, other.baseOffset).u = 1; // the transaction is running, on another object
    for (const [name, use] of uses) {
      assert.equal(twzError(use, code, o.id).code, code, `${name}, in a transaction`);
    }
  });
}

both(
  "after a transaction, a deleted object's accessors, at(i) and columns throw TwzError(ObjectNotFound) (hot)",
  (twz) => {
    goneAfterTx(twz, ErrorCode.ObjectNotFound, (o) => twz.delete(o.id));
  },
);

both(
  "after a transaction, a withdrawn mapping's accessors, at(i) and columns throw TwzError(AccessDenied) (hot)",
  (twz) => {
    goneAfterTx(twz, ErrorCode.AccessDenied, (o) => {
      o.mapping.extent.retarget(new Uint8Array(0), -1);
      o._withdraw();
    });
  },
);

// Integer fields of typed layouts refuse values that do not fit, before
// anything is stored: every width, signed and unsigned, bigint fields, array
// elements (named by index), inside and outside a transaction (word-view and
// DataView code); `struct(..., { unchecked: true })` stores modulo 2^n.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { Twz, type TwzObject } from "./mod.ts";
import { array, bool, f64, i16, i32, i64, i8, struct, u16, u32, u64, u8 } from "./layout.ts";
import { transaction } from "./tx.ts";

function boot(): { twz: Twz; obj: TwzObject; [Symbol.dispose](): void } {
  const hal = openSim({ size: 8 << 20 });
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  return {
    twz,
    obj: twz.create({ size: 4096 }),
    [Symbol.dispose]() {
      twz.close();
      kernel.shutdown();
      hal.close();
    },
  };
}

const NUMBER_KINDS = [
  ["a8", "u8", 0, 255],
  ["b8", "i8", -128, 127],
  ["a16", "u16", 0, 65535],
  ["b16", "i16", -32768, 32767],
  ["a32", "u32", 0, 4294967295],
  ["b32", "i32", -2147483648, 2147483647],
] as const;

const Ints = struct({
  a8: u8,
  b8: i8,
  a16: u16,
  b16: i16,
  a32: u32,
  b32: i32,
  w: f64,
  a64: u64,
  b64: i64,
  flag: bool,
});

/** A snapshot of the record's bytes, to show a refused store wrote nothing. */
function bytesOf(obj: TwzObject): number[] {
  return [...obj.bytes.subarray(obj.baseOffset, obj.baseOffset + Ints.size)];
}

function refuses(
  f: () => unknown,
  kind: typeof RangeError | typeof TypeError,
  message: string,
): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof kind, `${e} is not a ${kind.name}`);
    assert.equal((e as Error).message, message);
    return true;
  });
}

for (const where of ["outside a transaction", "inside a transaction"] as const) {
  Deno.test(`integer fields refuse what does not fit, writing nothing (${where})`, () => {
    using s = boot();
    const r = Ints.at(s.obj, s.obj.baseOffset) as unknown as Record<string, unknown>;
    const run = (f: () => void) => where === "inside a transaction" ? transaction(s.twz, f) : f();
    for (const [name, kind, lo, hi] of NUMBER_KINDS) {
      run(() => {
        r[name] = 7;
        r.a64 = 7n;
      });
      const before = bytesOf(s.obj);
      const range = `field "${name}" (${kind}) takes ${lo}..${hi}, not`;
      for (const bad of [lo - 1, hi + 1, 1.5, -0.5, NaN, Infinity, -Infinity, 2 ** 53]) {
        refuses(() => run(() => (r[name] = bad)), RangeError, `${range} ${bad}`);
      }
      refuses(() => run(() => (r[name] = "7")), TypeError, `${range} "7"`);
      refuses(() => run(() => (r[name] = 7n)), TypeError, `${range} 7n`);
      refuses(() => run(() => (r[name] = true)), TypeError, `${range} true`);
      refuses(() => run(() => (r[name] = undefined)), TypeError, `${range} undefined`);
      assert.deepEqual(bytesOf(s.obj), before, `a refused store to ${name} wrote`);
      assert.equal(r[name], 7);
      // The limits themselves fit, and are read back as stored.
      for (const ok of [lo, hi, 0]) {
        run(() => (r[name] = ok));
        assert.equal(r[name], ok);
      }
      run(() => (r[name] = -0));
      assert.equal(r[name], 0);
    }
    // 64-bit fields take bigints in range.
    const U64 = 'field "a64" (u64) takes 0..18446744073709551615 (a bigint), not';
    const I64 = 'field "b64" (i64) takes -9223372036854775808..9223372036854775807 (a bigint), not';
    run(() => {
      r.a64 = 2n ** 64n - 1n;
      r.b64 = -(2n ** 63n);
    });
    assert.deepEqual([r.a64, r.b64], [2n ** 64n - 1n, -(2n ** 63n)]);
    const before = bytesOf(s.obj);
    refuses(() => run(() => (r.a64 = -1n)), RangeError, `${U64} -1n`);
    refuses(() => run(() => (r.a64 = 2n ** 64n)), RangeError, `${U64} 18446744073709551616n`);
    refuses(() => run(() => (r.b64 = 2n ** 63n)), RangeError, `${I64} 9223372036854775808n`);
    refuses(
      () => run(() => (r.b64 = -(2n ** 63n) - 1n)),
      RangeError,
      `${I64} -9223372036854775809n`,
    );
    refuses(() => run(() => (r.a64 = 5)), TypeError, `${U64} 5`);
    assert.deepEqual(bytesOf(s.obj), before, "a refused 64-bit store wrote");
    // Floats are not integer fields.
    run(() => (r.w = 1.5));
    assert.equal(r.w, 1.5);
  });
}

Deno.test("integer array elements refuse what does not fit, naming the field and the index", () => {
  using s = boot();
  const Inner = struct({ ports: array(u16, 4) });
  const R = struct({ grid: array(array(i8, 2), 3), inner: Inner, big: array(u64, 2) });
  const r = R.at(s.obj, s.obj.baseOffset);
  r.grid.get(2).set(1, -128);
  r.inner.ports.set(3, 65535);
  r.big.set(1, 5n);
  const snapshot = () => [...s.obj.bytes.subarray(s.obj.baseOffset, s.obj.baseOffset + R.size)];
  const before = snapshot();
  refuses(
    () => r.grid.get(2).set(1, 128),
    RangeError,
    'field "grid[2][1]" (i8) takes -128..127, not 128',
  );
  refuses(
    () => r.inner.ports.set(3, 65536),
    RangeError,
    'field "ports[3]" (u16) takes 0..65535, not 65536',
  );
  refuses(
    () => r.big.set(0, -1n),
    RangeError,
    'field "big[0]" (u64) takes 0..18446744073709551615 (a bigint), not -1n',
  );
  refuses(
    () => transaction(s.twz, () => r.inner.ports.set(0, 0.5)),
    RangeError,
    'field "ports[0]" (u16) takes 0..65535, not 0.5',
  );
  assert.deepEqual(snapshot(), before, "a refused element store wrote");
  assert.equal(r.grid.get(2).get(1), -128);
  assert.equal(r.inner.ports.get(3), 65535);
  // An index outside the array is still its own error.
  assert.throws(() => r.inner.ports.set(4, 1), /Index 4 is outside an array of 4/);
});

Deno.test("struct(..., { unchecked: true }) stores modulo 2^n, as a DataView store does", () => {
  using s = boot();
  const shared = array(u8, 2); // one array type in a checked and an unchecked struct
  const Loose = struct({ n: u8, s: i16, u: u32, big: u64, arr: shared }, { unchecked: true });
  const Strict = struct({ n: u8, arr: shared });
  assert.equal(Loose.unchecked, true);
  assert.equal(Strict.unchecked, false);
  const loose = Loose.at(s.obj, s.obj.baseOffset);
  const strict = Strict.at(s.obj, s.obj.baseOffset + 64);
  loose.n = 300;
  loose.s = 40000;
  loose.u = -1;
  loose.big = 2n ** 64n + 3n;
  loose.arr.set(1, 257);
  assert.deepEqual([loose.n, loose.s, loose.u, loose.big, loose.arr.get(1)], [
    44,
    -25536,
    4294967295,
    3n,
    1,
  ]);
  transaction(s.twz, () => (loose.n = 511));
  assert.equal(loose.n, 255);
  assert.throws(() => (loose.big = 1 as unknown as bigint), TypeError, "still a bigint");
  assert.throws(() => (strict.n = 300), RangeError);
  assert.throws(() => strict.arr.set(1, 257), /field "arr\[1\]" \(u8\) takes 0\.\.255, not 257/);
  assert.throws(() => struct({ n: u8 }, null as unknown as object), TypeError);
});

// Cursors (`Type.cursor`, `acc.$cursor()`, `$follow`, `$moveTo`, `$seek`,
// `$clone`) and record arrays (`Type.records`): moves in place, across
// objects, through the transaction path, over grow relocation and delete, the
// read-only rule and bounds — on hal-sim and (when available) hal-pmem.
import assert from "node:assert/strict";
import { ErrorCode, TwzError, writePtr } from "@twz/kernel/abi";
import {
  bool,
  bytes,
  f32,
  f64,
  i16,
  i32,
  i64,
  i8,
  named,
  ptr,
  string,
  struct,
  type TwzObject,
  u16,
  u32,
  u64,
  u8,
} from "@twz/libtwz";
import { type Cursor, StructCursor } from "./layout.ts";
import { transaction } from "./tx.ts";
import { eachHal, twzError } from "./testdata/each_hal.ts";

const both = eachHal("twz-cursor-");

const Node = struct({ value: u32, tag: u32, label: string(8), next: ptr("self") });
type NodeFields = typeof Node extends { cursor(o: TwzObject, b: number): Cursor<infer F> } ? F
  : never;

/** A list of `values` in `objects` (round robin), linked in order; returns the accessors. */
function list(objects: TwzObject[], values: number[]) {
  const used = objects.map(() => 0);
  const accs = values.map((v, k) => {
    const i = k % objects.length;
    const o = objects[i]!;
    // Records placed backwards, so list order is not address order.
    const n = Node.at(o, o.baseOffset + (64 - ++used[i]!) * Node.size);
    n.value = v;
    n.tag = k;
    return n;
  });
  accs.forEach((a, k) => a.next = accs[k + 1] ?? null);
  return accs;
}

both("a cursor kept across a grow that moves its object reads the moved bytes", (twz) => {
  const p = twz.create({ size: 4096 });
  const accs = list([p], [10, 20, 30]);
  const c = Node.cursor(p, accs[0]!.$offset);
  assert.equal(c.$follow("next"), true);
  assert.equal(c.value, 20);
  const recs = Node.records(p, p.baseOffset, 4);
  recs.at(1).tag = 77;
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
  assert.equal(p.size, 256 * 1024);
  // New objects may take the old place: stale views would read their bytes.
  for (let i = 0; i < 4; i++) twz.create({ size: 4096 }).bytes.fill(0xee, 64);
  assert.equal(c.value, 20);
  assert.equal(c.tag, 1);
  // A store through the object's live view is what the cursor reads.
  p.view.setUint32(c.$offset + Node.offsetOf("tag"), 555, true);
  assert.equal(c.tag, 555);
  p.view.setUint32(c.$offset + Node.offsetOf("tag"), 1, true);
  c.value = 21; // lands in the moved bytes
  assert.equal(p.view.getUint32(c.$offset, true), 21);
  assert.equal(c.$follow("next"), true);
  assert.equal(c.value, 30);
  assert.equal(c.$follow("next"), false, "null: no move");
  assert.equal(c.value, 30);
  assert.equal(recs.at(1).tag, 77);
  let sum = 0;
  for (c.$moveTo(accs[0]!); sum += c.value, c.$follow("next");); // walk again after the move
  assert.equal(sum, 10 + 21 + 30);
});

both("a cursor whose target was deleted throws TwzError(ObjectNotFound) naming it", (twz) => {
  const a = twz.create({ size: 4096 });
  const b = twz.create({ size: 4096 });
  const accs = list([a, b], [1, 2, 3]); // a -> b -> a
  const c = Node.cursor(a, accs[0]!.$offset);
  assert.equal(c.$follow("next"), true);
  assert.equal(c.$id, b.id);
  const kept = c.$clone();
  const plain = accs[1]!;
  const recs = Node.records(b, b.baseOffset, 8);
  // Hot first, so optimized code meets the delete too.
  let s = 0;
  for (let i = 0; i < 20_000; i++) s += kept.value + recs.at(i & 7).tag;
  assert.ok(s > 0);
  twz.delete(b.id);
  twzError(() => c.value, ErrorCode.ObjectNotFound, b.id);
  twzError(() => (c.value = 5), ErrorCode.ObjectNotFound, b.id);
  twzError(() => c.label, ErrorCode.ObjectNotFound, b.id);
  twzError(() => (c.label = "x"), ErrorCode.ObjectNotFound, b.id);
  twzError(() => c.$follow("next"), ErrorCode.ObjectNotFound, b.id);
  twzError(() => kept.tag, ErrorCode.ObjectNotFound, b.id);
  twzError(() => plain.value, ErrorCode.ObjectNotFound, b.id);
  twzError(() => (plain.tag = 1), ErrorCode.ObjectNotFound, b.id);
  twzError(() => plain.next, ErrorCode.ObjectNotFound, b.id);
  twzError(() => plain.$ptr("next"), ErrorCode.ObjectNotFound, b.id);
  twzError(() => plain.$target("next"), ErrorCode.ObjectNotFound, b.id);
  twzError(() => recs.at(3).value, ErrorCode.ObjectNotFound, b.id);
  twzError(() => c.$seek(b.baseOffset), ErrorCode.ObjectNotFound, b.id);
  twzError(() => recs.at(0).$seek(b.baseOffset), ErrorCode.ObjectNotFound, b.id);
  twzError(() => Node.cursor(a, a.baseOffset).$moveTo(plain), ErrorCode.ObjectNotFound, b.id);
  const e = twzError(() => c.tag, ErrorCode.ObjectNotFound, b.id);
  assert.match(e.message, /deleted/);
  // Moving onto the deleted object's records is refused the same way.
  const back = Node.cursor(a, accs[0]!.$offset);
  assert.throws(() => back.$follow("next"), (x: unknown) => x instanceof TwzError);
  assert.equal(back.$id, a.id, "a refused move leaves the cursor where it was");
  assert.equal(back.value, 1);
});

both("$follow across objects, through FOT entries, and the null pointer", (twz) => {
  const objects = Array.from(
    { length: 16 },
    () => twz.create({ size: 8192, fot: { entries: 32 } }),
  );
  const values = Array.from({ length: 200 }, (_, k) => (k * 37) % 101);
  const accs = list(objects, values);
  assert.notEqual(accs[0]!.$ptr("next").fot, 0, "cross-object pointers");
  const c = Node.cursor(objects[0]!, accs[0]!.$offset);
  const seen: number[] = [];
  do seen.push(c.value); while (c.$follow("next"));
  assert.deepEqual(seen, values);
  assert.equal(c.tag, values.length - 1, "stays on the last node");
  assert.equal(c.$id, accs.at(-1)!.$id);
  // The plain chase gives the same.
  let n: typeof accs[0] | null = accs[0]!;
  const plain: number[] = [];
  for (; n !== null; n = n.next) plain.push(n.value);
  assert.deepEqual(plain, values);
  // $moveTo: null does not move; an accessor or a cursor does.
  assert.equal(c.$moveTo(null), false);
  assert.equal(c.$moveTo(accs[5]!), true);
  assert.equal(c.tag, 5);
  assert.equal(c.$moveTo(accs[5]!.next), true);
  assert.equal(c.tag, 6);
  const d = accs[9]!.$cursor();
  assert.ok(d instanceof StructCursor);
  assert.equal(c.$moveTo(d), true);
  assert.equal(c.tag, 9);
  assert.equal(d.$follow("next"), true);
  assert.equal([c.tag, d.tag].join(), "9,10", "independent cursors");
  // A pointer stored from a cursor names the cursor's record.
  accs[0]!.next = d;
  assert.equal(accs[0]!.next!.tag, 10);
  // $seek: another record of the cursor's object (object 9: nodes 9, 25, ...).
  c.$seek(accs[25]!.$offset);
  assert.equal(c.tag, 25);
  assert.throws(() => c.$seek(c.$offset + 2), RangeError);
  assert.equal(c.tag, 25);
});

both("$follow through a name entry resolves the name", (twz) => {
  const a = twz.create({ size: 4096 });
  const b = twz.create({ size: 4096, name: "/cursor/b" });
  const tb = Node.at(b, b.baseOffset + 64);
  tb.value = 99;
  const ta = Node.at(a, a.baseOffset);
  ta.$set("next", named("/cursor/b", b.baseOffset + 64));
  const c = ta.$cursor();
  assert.equal(c.$follow("next"), true);
  assert.equal(c.$id, b.id);
  assert.equal(c.value, 99);
});

both("inside a transaction a cursor reads and follows what the transaction wrote", (twz) => {
  const o = twz.create({ size: 4096 });
  const p = twz.create({ size: 4096 });
  const [a, b] = list([o], [1, 2]);
  const far = Node.at(p, p.baseOffset);
  far.value = 5;
  const c = a!.$cursor();
  transaction(twz, () => {
    b!.value = 20; // a value written in the transaction
    a!.next = far; // a pointer written in the transaction (cross-object)
    far.tag = 8;
    c.$moveTo(a!);
    assert.equal(c.$follow("next"), true);
    assert.equal(c.$id, p.id);
    assert.equal(c.tag, 8);
    c.value = 6;
    assert.equal(far.value, 6);
    c.$moveTo(b!);
    assert.equal(c.value, 20);
  });
  assert.equal(c.value, 20, "committed");
  c.$moveTo(a!);
  assert.equal(c.$follow("next"), true);
  assert.equal(c.value, 6);
  // An aborted transaction leaves nothing behind.
  c.$moveTo(a!);
  assert.throws(() =>
    transaction(twz, () => {
      a!.next = b!;
      assert.equal(c.$follow("next"), true);
      assert.equal(c.$id, o.id);
      c.value = 1000;
      throw new Error("abort");
    }), /abort/);
  c.$moveTo(a!);
  assert.equal(c.$follow("next"), true);
  assert.equal(c.$id, p.id);
  assert.equal(b!.value, 20);
});

both(
  "read-only: a writable cursor refuses a read-only target; a read-only cursor stays read-only",
  (twz) => {
    const a = twz.create({ size: 4096 });
    const b = twz.create({ size: 4096 });
    const ha = Node.at(a, a.baseOffset);
    const tb = Node.at(twz.open(b.id, { write: false }), b.baseOffset);
    ha.next = tb; // a read-only FOT entry
    const hb = Node.at(b, b.baseOffset + 64);
    ha.tag = 1;
    hb.next = ha; // b -> a: read-write
    const c = ha.$cursor();
    assert.equal(c.$writable, true);
    const e = twzError(() => c.$follow("next"), ErrorCode.AccessDenied, b.id);
    assert.match(e.message, /writable cursor/);
    assert.equal(c.$id, a.id, "the refused cursor stays");
    assert.equal(ha.next!.$writable, false, "the plain follow gives a read-only accessor");
    // A read-only cursor follows it, and stays read-only on a writable target.
    const r = Node.cursor(twz.open(a.id, { write: false }), a.baseOffset);
    assert.equal(r.$writable, false);
    assert.equal(r.$follow("next"), true);
    assert.equal(r.$id, b.id);
    twzError(() => (r.value = 1), ErrorCode.AccessDenied, b.id);
    r.$seek(b.baseOffset + 64);
    assert.equal(r.$follow("next"), true); // b -> a through a read-write entry
    assert.equal(r.$id, a.id);
    assert.equal(r.tag, 1);
    twzError(() => (r.tag = 2), ErrorCode.AccessDenied, a.id);
    assert.equal(ha.tag, 1);
    // Its bytes are copies, never live views of the object.
    const label = Node.at(a, a.baseOffset);
    label.label = "abc";
    assert.equal(r.label, "abc");
    const Blob = struct({ data: bytes(4) });
    const blob = Blob.cursor(twz.open(a.id, { write: false }), a.baseOffset + 8);
    blob.data[0] = 0x7f;
    assert.equal(a.view.getUint8(a.baseOffset + 8), "a".charCodeAt(0), "a copy");
    const wblob = Blob.cursor(a, a.baseOffset + 8);
    wblob.data[0] = 0x7f;
    assert.equal(a.view.getUint8(a.baseOffset + 8), 0x7f, "a writable cursor's bytes are live");
  },
);

both("a misaligned or outside pointer target: the cursor throws RangeError and stays", (twz) => {
  const o = twz.create({ size: 4096 });
  const h = Node.at(o, o.baseOffset);
  h.value = 3;
  const c = h.$cursor();
  writePtr(o.view, h.$offset + Node.offsetOf("next"), 0, o.baseOffset + 64 + 2);
  assert.throws(() => c.$follow("next"), RangeError);
  assert.equal(c.$offset, o.baseOffset);
  assert.equal(c.value, 3);
  // The plain getter reads exactly there (DataView code).
  o.view.setUint32(o.baseOffset + 64 + 2, 0xabcd, true);
  assert.equal(h.next!.value, 0xabcd);
  assert.throws(() => h.next!.$cursor(), RangeError);
  writePtr(o.view, h.$offset + Node.offsetOf("next"), 0, 4096 - 8);
  assert.throws(() => c.$follow("next"), RangeError);
  writePtr(o.view, h.$offset + Node.offsetOf("next"), 0, 2 ** 40);
  assert.throws(() => c.$follow("next"), RangeError);
  assert.equal(c.$offset, o.baseOffset);
  // A FOT index the object does not have.
  writePtr(o.view, h.$offset + Node.offsetOf("next"), 5, o.baseOffset + 64);
  assert.throws(() => c.$follow("next"), (e: unknown) => e instanceof TwzError);
  assert.equal(c.value, 3);
  // Only pointers to the cursor's own struct.
  const Other = struct({ x: u32 });
  const Holder = struct({ v: u32, o: ptr(Other), self: ptr("self") });
  const hc = Holder.cursor(o, o.baseOffset + 256);
  assert.throws(() => hc.$follow("o"), TypeError); // points at another struct
  // @ts-expect-error: `v` is not a pointer
  assert.throws(() => hc.$follow("v"), TypeError);
  assert.equal(hc.$follow("self"), false);
});

both("records: bounds checked at creation, RangeError outside [0, count), one cursor", (twz) => {
  const o = twz.create({ size: 4096 });
  const fot = o.meta.fotOffset;
  const fits = Math.floor((fot - o.baseOffset) / Node.size);
  assert.throws(() => Node.records(o, o.baseOffset, fits + 1), RangeError, "overlaps the FOT");
  assert.throws(() => Node.records(o, o.baseOffset + 4, 2), RangeError, "misaligned");
  assert.throws(() => Node.records(o, 0, 2), RangeError, "before the base");
  assert.throws(() => Node.records(o, o.baseOffset, -1), RangeError);
  assert.throws(() => Node.records(o, o.baseOffset, 1.5), RangeError);
  const recs = Node.records(o, o.baseOffset, fits);
  assert.equal(recs.length, fits);
  for (let i = 0; i < recs.length; i++) recs.at(i).value = i * 3;
  assert.equal(recs.at(0), recs.at(fits - 1), "the same cursor every call");
  for (const bad of [-1, fits, 1.5, NaN, Infinity, -0.5]) {
    assert.throws(() => recs.at(bad), RangeError, String(bad));
    assert.throws(() => recs.get(bad), RangeError, String(bad));
  }
  assert.equal(recs.at(-0).value, 0);
  assert.equal(o.view.getUint32(o.baseOffset + 7 * Node.size, true), 21);
  const g = recs.get(7);
  assert.ok(!(g instanceof StructCursor));
  assert.equal(g.value, 21);
  assert.equal([...recs].length, fits);
  // The array's cursor stays on the array; a clone moves freely.
  recs.at(2).next = recs.get(4);
  assert.throws(() => recs.at(2).$follow("next"), TypeError);
  const free = recs.at(2).$clone();
  assert.equal(free.$follow("next"), true);
  assert.equal(free.value, 12);
  const c = recs.cursor();
  assert.equal(c.value, 0);
  assert.equal(c.$seek(o.baseOffset + 3 * Node.size).value, 9);
  const empty = Node.records(o, o.baseOffset, 0);
  assert.throws(() => empty.at(0), RangeError);
  // Read-only handle: read-only records.
  const ro = Node.records(twz.open(o.id, { write: false }), o.baseOffset, 4);
  assert.equal(ro.at(3).value, 9);
  twzError(() => (ro.at(3).value = 1), ErrorCode.AccessDenied, o.id);
  twzError(() => (ro.get(3).value = 1), ErrorCode.AccessDenied, o.id);
});

// Compile-time: `$follow` takes only the pointer fields to the struct itself.
const _typed = (c: Cursor<NodeFields>): boolean => c.$follow("next");
void _typed;

both("a withdrawn mapping: the cursor's reads and writes throw TwzError(AccessDenied)", (twz) => {
  const o = twz.create({ size: 4096 });
  const c = Node.cursor(o, o.baseOffset);
  c.value = 4;
  const recs = Node.records(o, o.baseOffset, 4);
  assert.equal(recs.at(0).value, 4);
  // What the kernel's thread side does on a revocation: the handle's bytes
  // go empty and the handle learns it was withdrawn (security_test.ts has the
  // end-to-end path through capabilities and the epoch word).
  o.mapping.extent.retarget(new Uint8Array(0), -1);
  o._withdraw();
  const e = twzError(() => c.value, ErrorCode.AccessDenied, o.id);
  assert.match(e.message, /withdrawn/);
  twzError(() => (c.value = 1), ErrorCode.AccessDenied, o.id);
  twzError(() => c.$follow("next"), ErrorCode.AccessDenied, o.id);
  twzError(() => recs.at(2).tag, ErrorCode.AccessDenied, o.id);
});

both(
  "the transaction path of every field kind: reads its writes, refuses bad values, aborts",
  (twz) => {
    const All = struct({
      a8: u8,
      b8: i8,
      a16: u16,
      b16: i16,
      a32: u32,
      b32: i32,
      x32: f32,
      x64: f64,
      big: u64,
      sbig: i64,
      flag: bool,
    });
    const o = twz.create({ size: 4096 });
    const rec = All.at(o, o.baseOffset);
    const c = All.cursor(o, o.baseOffset);
    const values = {
      a8: 200,
      b8: -100,
      a16: 60000,
      b16: -30000,
      a32: 4000000000,
      b32: -2000000000,
      x32: 1.5,
      x64: Math.PI,
      big: 0xfedcba9876543210n,
      sbig: -5n,
      flag: true,
    };
    const read = (r: typeof rec) => ({
      a8: r.a8,
      b8: r.b8,
      a16: r.a16,
      b16: r.b16,
      a32: r.a32,
      b32: r.b32,
      x32: r.x32,
      x64: r.x64,
      big: r.big,
      sbig: r.sbig,
      flag: r.flag,
    });
    const zero = read(rec);
    assert.throws(() =>
      transaction(twz, () => {
        Object.assign(c, values);
        assert.deepEqual(read(rec), values, "a plain accessor reads the transaction's writes");
        assert.deepEqual(read(c), values);
        assert.throws(() => (c.a8 = 256), RangeError);
        assert.throws(() => (c.a32 = -1), RangeError);
        assert.throws(() => (c.big = -1n), RangeError);
        assert.throws(() => (c.big = 1 as unknown as bigint), TypeError);
        assert.equal(c.a8, 200, "a refused store wrote nothing");
        assert.deepEqual(read(All.at(o, o.baseOffset)), values);
        throw new Error("abort");
      }), /abort/);
    assert.deepEqual(read(c), zero, "aborted: nothing written");
    transaction(twz, () => Object.assign(rec, values));
    assert.deepEqual(read(c), values, "committed");
    assert.equal(o.view.getUint32(o.baseOffset + All.offsetOf("a32"), true), 4000000000);
  },
);

// `$walk` and `$reduce`: the loop in libtwz, every check of `$follow` on every hop.

/**
 * Sum the list from `head` with `$reduce` 3,000 times, so that what follows
 * meets optimized walk code; each sum must be `sum`.
 */
function walkHot(
  c: Cursor<NodeFields>,
  head: Parameters<Cursor<NodeFields>["$moveTo"]>[0],
  sum: number,
  where?: string,
): void {
  let total = 0;
  for (let i = 0; i < 3000; i++) {
    c.$moveTo(head);
    total += c.$reduce("next", (s: number, n) => s + n.value, 0);
  }
  assert.equal(total, 3000 * sum, where);
}

/** What `$follow` sees, node by node: the reference the walks are checked against. */
function followAll(c: Cursor<NodeFields>): number[] {
  const seen: number[] = [];
  do seen.push(c.value); while (c.$follow("next"));
  return seen;
}

both("$walk and $reduce visit every node in order, in one object and across objects", (twz) => {
  const one = twz.create({ size: 8192 });
  const objects = Array.from(
    { length: 16 },
    () => twz.create({ size: 8192, fot: { entries: 32 } }),
  );
  for (
    const [where, accs] of [["one", list([one], [5, 1, 4, 1, 5, 9, 2, 6])], [
      "16",
      list(objects, Array.from({ length: 100 }, (_, k) => (k * 37) % 101)),
    ]] as const
  ) {
    const values = accs.map((a) => a.value);
    const c = accs[0]!.$cursor();
    const seen: number[] = [];
    assert.equal(c.$walk("next", (n) => void seen.push(n.value)), true, where);
    assert.deepEqual(seen, values, where);
    assert.equal(c.tag, values.length - 1, `${where}: stays on the last node`);
    assert.equal(c.$id, accs.at(-1)!.$id, where);
    c.$moveTo(accs[0]!);
    assert.equal(
      c.$reduce("next", (s: number, n) => s + n.value, 0),
      values.reduce((a, b) => a + b),
    );
    assert.equal(c.tag, values.length - 1);
    // Early stop: the cursor stays on the node the callback returned false for.
    c.$moveTo(accs[0]!);
    let visits = 0;
    assert.equal(c.$walk("next", (n) => (visits++, n.tag !== 7)), false, where);
    assert.equal(visits, 8);
    assert.equal(c.tag, 7);
    assert.equal(c.$id, accs[7]!.$id);
    // From the middle; a single node.
    assert.equal(c.$reduce("next", (k: number) => k + 1, 0), values.length - 7);
    assert.equal(c.$walk("next", () => {}), true, "on the last node: one visit, then null");
    // Hot: many walks, so optimized code runs them, and the same answer.
    walkHot(c, accs[0]!, values.reduce((a, b) => a + b), where);
    c.$moveTo(accs[0]!);
    assert.deepEqual(followAll(c), values);
  }
});

both("$walk: a callback that moves the cursor is followed from where it left it", (twz) => {
  const o = twz.create({ size: 8192 });
  const p = twz.create({ size: 8192 });
  const accs = list([o], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const other = list([p], [100, 101, 102]);
  const c = accs[0]!.$cursor();
  const seen: number[] = [];
  c.$walk("next", (n) => {
    seen.push(n.value);
    if (n.value === 2) n.$seek(accs[6]!.$offset); // skip 3..5 (same object)
    if (n.value === 7) n.$moveTo(other[1]!); // to another object, same walk
  });
  assert.deepEqual(seen, [0, 1, 2, 7, 102]);
  assert.equal(c.$id, p.id);
  // `$seek` onto the same offset in another object is a move too.
  const twin = twz.create({ size: 8192 });
  const tw = list([twin], [50, 51]);
  assert.equal(tw[0]!.$offset, accs[0]!.$offset);
  c.$moveTo(accs[0]!);
  const seen2: number[] = [];
  c.$walk("next", (n) => {
    seen2.push(n.value);
    if (n.value === 0) n.$moveTo(tw[0]!);
  });
  assert.deepEqual(seen2, [0, 51]);
});

both("$walk: errors of a hop throw as $follow's do, and the cursor stays", (twz) => {
  const o = twz.create({ size: 4096 });
  const accs = list([o], [1, 2, 3, 4]);
  const c = accs[0]!.$cursor();
  // A misaligned target, then one outside the object.
  writePtr(o.view, accs[2]!.$offset + Node.offsetOf("next"), 0, accs[3]!.$offset + 2);
  const seen: number[] = [];
  assert.throws(() => c.$walk("next", (n) => void seen.push(n.value)), RangeError);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(c.tag, 2, "stays on the node whose pointer it could not follow");
  writePtr(o.view, accs[2]!.$offset + Node.offsetOf("next"), 0, 4096 - 8);
  c.$moveTo(accs[0]!);
  assert.throws(() => c.$reduce("next", (s: number, n) => s + n.value, 0), RangeError);
  assert.equal(c.tag, 2);
  // A FOT entry the object does not have.
  writePtr(o.view, accs[2]!.$offset + Node.offsetOf("next"), 5, accs[3]!.$offset);
  c.$moveTo(accs[0]!);
  assert.throws(() => c.$walk("next", () => {}), (e: unknown) => e instanceof TwzError);
  assert.equal(c.tag, 2);
  // Not a pointer to the struct, not a function, a record array's cursor.
  // @ts-expect-error: `value` is not a pointer
  assert.throws(() => c.$walk("value", () => {}), TypeError);
  assert.throws(() => c.$walk("next", 5 as unknown as () => void), TypeError);
  assert.throws(() => c.$reduce("next", null as unknown as () => number, 0), TypeError);
  const recs = Node.records(o, o.baseOffset, 4);
  assert.throws(() => recs.at(0).$walk("next", () => {}), TypeError);
  assert.throws(() => recs.at(0).$reduce("next", (s: number) => s, 0), TypeError);
  // What the callback throws leaves the cursor where it threw.
  c.$moveTo(accs[0]!);
  assert.throws(() =>
    c.$walk("next", (n) => {
      if (n.tag === 1) throw new Error("stop here");
    }), /stop here/);
  assert.equal(c.tag, 1);
});

both("$walk: offsets of 2 GiB and more throw as $follow's do, also in optimized code", (twz) => {
  // The walk loads a pointer's halves as signed 32-bit words: an offset with
  // its top bit set is negative there, and must still end in the RangeError
  // of a target outside the object, the cursor on the node before it.
  const o = twz.create({ size: 4096 });
  const accs = list([o], [1, 2, 3, 4]);
  const c = accs[0]!.$cursor();
  const sum = (x: number, n: { value: number }) => x + n.value;
  walkHot(c, accs[0]!, 10); // hot first, so optimized code meets the pointer
  const at = accs[2]!.$offset + Node.offsetOf("next");
  for (const lo of [0x80000000 + accs[3]!.$offset, 0xfffffff8, 0x80000000]) {
    writePtr(o.view, at, 0, lo);
    const f = accs[2]!.$cursor();
    assert.throws(() => f.$follow("next"), RangeError, `$follow, offset ${lo}`);
    c.$moveTo(accs[0]!);
    assert.throws(() => c.$reduce("next", sum, 0), RangeError, `$reduce, offset ${lo}`);
    assert.equal(c.tag, 2, "stays on the node whose pointer it could not follow");
    c.$moveTo(accs[0]!);
    const seen: number[] = [];
    assert.throws(() => c.$walk("next", (n) => void seen.push(n.value)), RangeError);
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(c.tag, 2);
  }
  writePtr(o.view, at, 0, accs[3]!.$offset);
  c.$moveTo(accs[0]!);
  assert.equal(c.$reduce("next", sum, 0), 10);
});

both("$walk: a writable cursor refuses a read-only target; a read-only one walks on", (twz) => {
  const a = twz.create({ size: 4096 });
  const b = twz.create({ size: 4096 });
  const ha = Node.at(a, a.baseOffset);
  ha.value = 1;
  const hb = Node.at(b, b.baseOffset);
  hb.value = 2;
  ha.next = Node.at(twz.open(b.id, { write: false }), b.baseOffset); // a read-only FOT entry
  const c = ha.$cursor();
  const e = twzError(() => c.$walk("next", () => {}), ErrorCode.AccessDenied, b.id);
  assert.match(e.message, /writable cursor/);
  assert.equal(c.$id, a.id);
  const r = Node.cursor(twz.open(a.id, { write: false }), a.baseOffset);
  assert.equal(r.$reduce("next", (s: number, n) => s + n.value, 0), 3);
  assert.equal(r.$id, b.id);
});

both("$walk across a grow that moves the object reads the moved bytes", (twz) => {
  const p = twz.create({ size: 4096 });
  const accs = list([p], [10, 20, 30, 40]);
  const c = accs[0]!.$cursor();
  // Hot first, so optimized code meets the move.
  walkHot(c, accs[0]!, 100);
  twz.create({ size: 4096 }); // blocks p from growing in place
  c.$moveTo(accs[0]!);
  const before = p.mapping.extent.bytes;
  const seen: number[] = [];
  c.$walk("next", (n) => {
    seen.push(n.value);
    if (n.value === 20) {
      p.grow(256 * 1024); // moves the object under the walk
      // New objects may take the old place: stale views would read their bytes.
      for (let i = 0; i < 4; i++) twz.create({ size: 4096 }).bytes.fill(0xee, 64);
      p.view.setUint32(accs[2]!.$offset, 33, true); // what the next hop must read
    }
  });
  assert.ok(
    p.mapping.extent.bytes.buffer !== before.buffer ||
      p.mapping.extent.bytes.byteOffset !== before.byteOffset,
    "the object moved",
  );
  assert.deepEqual(seen, [10, 20, 33, 40]);
  c.value = 41; // lands in the moved bytes
  assert.equal(p.view.getUint32(accs[3]!.$offset, true), 41);
  c.$moveTo(accs[0]!);
  assert.equal(c.$reduce("next", (x: number, n) => x + n.value, 0), 10 + 20 + 33 + 41);
});

both("$walk after a grow that moves the object follows the moved pointers", (twz) => {
  // The walk loads pointers through the object's DataView: after a move it
  // must load them from the moved bytes, not from the old place.
  const p = twz.create({ size: 4096 });
  const accs = list([p], [10, 20, 30, 40]);
  const c = accs[0]!.$cursor();
  walkHot(c, accs[0]!, 100); // hot first, so optimized code meets the move
  twz.create({ size: 4096 }); // blocks p from growing in place
  c.$moveTo(accs[0]!);
  const before = p.mapping.extent.bytes;
  const seen = c.$reduce("next", (x: number[], n) => {
    x.push(n.value);
    if (n.value === 20) {
      p.grow(256 * 1024); // moves the object under the walk
      writePtr(p.view, accs[2]!.$offset + Node.offsetOf("next"), 0, 0); // 30 is now the last
    }
    return x;
  }, [] as number[]);
  assert.ok(
    p.mapping.extent.bytes.byteOffset !== before.byteOffset ||
      p.mapping.extent.bytes.buffer !== before.buffer,
    "the object moved",
  );
  assert.deepEqual(seen, [10, 20, 30]);
  assert.equal(c.value, 30);
});

both("$walk onto or within a deleted object throws TwzError(ObjectNotFound)", (twz) => {
  const a = twz.create({ size: 4096 });
  const b = twz.create({ size: 4096 });
  const accs = list([a, b], [1, 2, 3, 4]); // a -> b -> a -> b
  const c = accs[0]!.$cursor();
  walkHot(c, accs[0]!, 10);
  twz.delete(b.id);
  c.$moveTo(accs[0]!);
  const seen: number[] = [];
  twzError(() => c.$walk("next", (n) => void seen.push(n.value)), ErrorCode.ObjectNotFound, b.id);
  assert.deepEqual(seen, [1]);
  assert.equal(c.$id, a.id, "the refused hop leaves the cursor where it was");
  // Deleted by the callback, under the walk: the next hop says so.
  const o = twz.create({ size: 4096 });
  const more = list([o], [7, 8, 9]);
  const d = more[0]!.$cursor();
  twzError(
    () => d.$walk("next", (n) => void (n.value === 8 && twz.delete(o.id))),
    ErrorCode.ObjectNotFound,
    o.id,
  );
});

both(
  "$reduce and $walk across objects: a target deleted between hops throws, the cursor stays",
  (twz) => {
    // The hop to another object is taken inside the walk's loop: a target the
    // callback deleted (its extent now empty) must still end in $follow's
    // TwzError, the cursor on the node whose pointer it could not follow.
    for (const how of ["reduce", "walk"] as const) {
      const objects = Array.from({ length: 4 }, () => twz.create({ size: 4096 }));
      const accs = list(objects, Array.from({ length: 12 }, (_, k) => k + 1)); // 0 -> 1 -> 2 -> 3 -> 0 ...
      const c = accs[0]!.$cursor();
      walkHot(c, accs[0]!, 78, how); // hot first, so optimized code meets the delete
      let total = 0;
      for (let i = 0; i < 3000; i++) {
        c.$moveTo(accs[0]!);
        c.$walk("next", (n) => void (total += n.value));
      }
      assert.equal(total, 3000 * 78);
      c.$moveTo(accs[0]!);
      const seen: number[] = [];
      const visit = (n: { value: number }) => {
        seen.push(n.value);
        if (n.value === 6) twz.delete(objects[2]!.id); // node 7's object, the next hop's target
      };
      twzError(
        () =>
          how === "reduce"
            ? c.$reduce("next", (s: number, n) => (visit(n), s + n.value), 0)
            : c.$walk("next", visit),
        ErrorCode.ObjectNotFound,
        objects[2]!.id,
      );
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6], how);
      assert.equal(c.$id, objects[1]!.id, `${how}: the refused hop leaves the cursor where it was`);
      assert.equal(c.tag, 5, how);
    }
  },
);

both("$walk inside a transaction sees the transaction's writes, as $follow does", (twz) => {
  const o = twz.create({ size: 4096 });
  const p = twz.create({ size: 4096 });
  const accs = list([o], [1, 2, 3, 4]);
  const far = Node.at(p, p.baseOffset);
  far.value = 50;
  const c = accs[0]!.$cursor();
  transaction(twz, () => {
    accs[1]!.next = far; // 1 -> 2 -> far (cross-object, written in the transaction)
    accs[0]!.value = 10; // a value written in the transaction
    c.$moveTo(accs[0]!);
    const seen: number[] = [];
    c.$walk("next", (n) => void seen.push(n.value));
    assert.deepEqual(seen, [10, 2, 50]);
    // A callback writing the object: later hops read through the transaction too.
    c.$moveTo(accs[0]!);
    const sum = c.$reduce("next", (s: number, n) => {
      if (n.value === 2) accs[1]!.next = accs[3]!; // 2 -> 4 from here on
      return s + n.value;
    }, 0);
    assert.equal(sum, 10 + 2 + 4);
    assert.equal(c.tag, 3);
  });
  c.$moveTo(accs[0]!);
  assert.equal(c.$reduce("next", (s: number, n) => s + n.value, 0), 10 + 2 + 4, "committed");
  // Aborted: nothing left behind; the walk sees it inside, not after.
  assert.throws(() =>
    transaction(twz, () => {
      accs[0]!.next = far;
      c.$moveTo(accs[0]!);
      assert.equal(c.$reduce("next", (s: number, n) => s + n.value, 0), 10 + 50);
      throw new Error("abort");
    }), /abort/);
  c.$moveTo(accs[0]!);
  assert.equal(c.$reduce("next", (s: number, n) => s + n.value, 0), 10 + 2 + 4);
});

// Compile-time: `$walk` and `$reduce` take only the pointer fields to the struct itself.
const _typedWalk = (c: Cursor<NodeFields>): number =>
  c.$walk("next", (n) => n.value > 0) ? c.$reduce("next", (s: number, n) => s + n.tag, 0) : 0;
void _typedWalk;

both("$walk and $reduce in DataView code (bytes not 8-aligned in their buffer)", (twz) => {
  const a = twz.create({ size: 8192, fot: { entries: 8 } });
  const b = twz.create({ size: 8192 });
  const accs = list([a, b], [3, 1, 4, 1, 5, 9, 2]); // a, b, a, b, ...
  // What the kernel would do were an object ever placed off 8-alignment:
  // the word views go empty and new cursors get DataView code.
  for (const o of [a, b]) {
    const ext = o.mapping.extent;
    const moved = new Uint8Array(ext.bytes.length + 8).subarray(4, 4 + ext.bytes.length);
    moved.set(ext.bytes);
    ext.retarget(moved, ext.base);
    assert.equal(ext.words, false);
  }
  const c = Node.cursor(a, accs[0]!.$offset);
  assert.equal(c.$reduce("next", (s: number, n) => s + n.value, 0), 25);
  assert.equal(c.tag, 6);
  c.$seek(accs[0]!.$offset);
  const seen: number[] = [];
  assert.equal(c.$walk("next", (n) => (seen.push(n.value), n.tag !== 4)), false);
  assert.deepEqual(seen, [3, 1, 4, 1, 5]);
  assert.equal(c.$id, a.id);
  c.$seek(accs[0]!.$offset);
  assert.deepEqual(followAll(c), [3, 1, 4, 1, 5, 9, 2]);
  // Its errors: a misaligned target, then a deleted object.
  const saved = accs[2]!.$ptr("next");
  writePtr(a.view, accs[2]!.$offset + Node.offsetOf("next"), 0, accs[4]!.$offset + 2);
  c.$seek(accs[0]!.$offset);
  assert.throws(() => c.$walk("next", () => {}), RangeError);
  assert.equal(c.tag, 2);
  // A record that would end past the object's last byte.
  writePtr(a.view, accs[2]!.$offset + Node.offsetOf("next"), 0, a.bytes.length - 16);
  c.$seek(accs[0]!.$offset);
  assert.throws(() => c.$reduce("next", (s: number) => s, 0), RangeError);
  assert.equal(c.tag, 2);
  writePtr(a.view, accs[2]!.$offset + Node.offsetOf("next"), saved.fot, saved.offset);
  c.$seek(accs[0]!.$offset);
  assert.equal(c.$reduce("next", (s: number, n) => s + n.value, 0), 25);
  twz.delete(b.id);
  c.$seek(accs[0]!.$offset);
  twzError(
    () => c.$reduce("next", (s: number, n) => s + n.value, 0),
    ErrorCode.ObjectNotFound,
    b.id,
  );
  assert.equal(c.tag, 0);
});

// A seeded, randomized differential test of the cursor's fast paths
// (`$follow` in a loop, `$walk`, `$reduce`, `$moveTo`) against the plain
// accessors (`n = n.next`, the reference: slower, simpler), on hal-sim and
// (when available) hal-pmem.
//
// Each seed builds nodes over 1..6 objects, each node with a payload and two
// pointer fields (at offsets 0 and 32), with pointers of every kind: null,
// same object, another object through a writable, a read-only or a name FOT
// entry (also an entry naming the object itself); and bad ones: misaligned,
// past the end of the target (by 8 to 40 bytes) or the last record that
// fits, into the header or the FOT, offsets of 2 GiB, 4 GiB and 2^40, a FOT
// entry the object does not have. Then it
// runs rounds; between rounds it rewrites pointers and payloads, grows an
// object so that it moves, deletes one, withdraws a mapping (what a
// revocation does). Some rounds run inside a transaction that rewrote
// pointers and payloads (committed or aborted); in some, walks' callbacks
// grow an object under the walk (and let new objects take its old place),
// delete or withdraw the next hops' target, rewrite the pointer about to be
// followed (also in a transaction), or move the cursor (`$moveTo`, `$seek`,
// also to the same offset in another object). A third of the seeds move
// every object's bytes off 8-alignment first, so cursors are DataView code.
// Each round walks from every live node on every path, with a writable
// cursor and a read-only one, and each path must give what the plain walk
// gives under the cursor's rules (docs/LIBTWZ.md): the same payloads in order
// (or the same fold), the same end (null, stopped by the callback, or the
// error: `TwzError` of the same code naming the same object, or
// `RangeError`), and the cursor on the same record. Thousands of walks per
// seed over one layout, so V8 optimizes the generated code (several checks
// live only there).
//
// Replay one seed: FUZZ_SEED=123 deno test -A packages/libtwz/cursor_fuzz_test.ts
// More seeds: FUZZ_SEEDS=300 (seeds 1..300); FUZZ_STATS=1 prints what the walks met.
import assert from "node:assert/strict";
import { ErrorCode, formatId, TwzError, writePtr } from "@twz/kernel/abi";
import { named, ptr, struct, type Twz, type TwzObject, u32, u64 } from "@twz/libtwz";
import { transaction } from "./tx.ts";
import { eachHal } from "./testdata/each_hal.ts";
import { seededRandom } from "@twz/hal-sim";

const both = eachHal("twz-cursor-fuzz-");

// 40 bytes (not a power of two), aligned to 8; two pointer fields, at
// offsets 0 and 32: lists along `next`, along `alt`, or both.
const Node = struct({
  alt: ptr("self"),
  value: u32,
  tag: u32,
  pad: u64,
  pad2: u64,
  next: ptr("self"),
});
type Field = "next" | "alt";
const FIELDS = ["next", "alt"] as const;
type Acc = ReturnType<typeof Node.at>;
type Cur = ReturnType<typeof Node.cursor>;

/** A small deterministic PRNG, uniform in [0, 1): hal-sim's mulberry32. */
const prng = seededRandom;

/** Node slots per object (at `baseOffset + slot * Node.size`), before the FOT. */
const SLOTS = 32;
/** Visits after which every walk stops (lists may cycle): the callback returns false. */
const LIMIT = 24;

interface World {
  twz: Twz;
  seed: number;
  rnd: () => number;
  objs: TwzObject[];
  /** A read-only handle of each object. */
  ro: TwzObject[];
  /** Objects deleted, or whose mapping was withdrawn. */
  gone: Set<number>;
  /** Every node (writable accessors), with its object's index. */
  nodes: { acc: Acc; obj: number }[];
  /** Objects made to block grows in place, deleted at the end. */
  blockers: TwzObject[];
  /** DataView code: every object's bytes moved off 8-alignment (no grows then). */
  dataView: boolean;
  log: string[];
}

const int = (w: World, n: number) => Math.floor(w.rnd() * n);
const pick = <T>(w: World, xs: readonly T[]): T => xs[int(w, xs.length)]!;
const live = (w: World) => w.nodes.filter((n) => !w.gone.has(n.obj));

/**
 * Point `n[field]` (a random field unless given) somewhere, picked at random;
 * `safe`: only stores a transaction can log.
 */
function rewrite(w: World, n: { acc: Acc; obj: number }, safe: boolean, f?: Field): void {
  const field = f ?? pick(w, FIELDS);
  const o = w.objs[n.obj]!;
  const at = n.acc.$offset + Node.offsetOf(field);
  const all = live(w);
  const same = all.filter((m) => m.obj === n.obj);
  const other = all.filter((m) => m.obj !== n.obj);
  const r = int(w, 100);
  if (r < 10 || all.length === 0) {
    n.acc.$set(field, null);
    w.log.push(`${tagOf(n)}.${field}->null`);
  } else if (r < 45 && same.length > 0) {
    const t = pick(w, same);
    n.acc.$set(field, t.acc);
    w.log.push(`${tagOf(n)}.${field}->${tagOf(t)}`);
  } else if (r < 75 && other.length > 0) {
    const t = pick(w, other);
    n.acc.$set(field, t.acc);
    w.log.push(`${tagOf(n)}.${field}->${tagOf(t)} (FOT)`);
  } else if (r < 80 && other.length > 0) {
    // Through a read-only FOT entry: a writable cursor refuses it.
    const t = pick(w, other);
    n.acc.$set(field, Node.at(w.ro[t.obj]!, t.acc.$offset));
    w.log.push(`${tagOf(n)}.${field}->${tagOf(t)} (read-only FOT)`);
  } else if (r < 83) {
    // Through a name entry: resolved on every follow.
    const t = pick(w, all);
    n.acc.$set(field, named(nameOf(w, t.obj), t.acc.$offset));
    w.log.push(`${tagOf(n)}.${field}->${tagOf(t)} (name)`);
  } else if (safe) {
    const t = pick(w, all);
    n.acc.$set(field, t.acc);
    w.log.push(`${tagOf(n)}.${field}->${tagOf(t)}`);
  } else {
    // Bad ones, written raw: a stored pointer is data.
    // A third of them into the node's own object (the walk's inner loop).
    const t = same.length > 0 && int(w, 3) === 0 ? pick(w, same) : pick(w, all);
    const target = w.objs[t.obj]!;
    const fot = t.obj === n.obj && int(w, 3) > 0 ? 0 : o.fotIndex(target.id);
    const size = target.size;
    const k = int(w, 8);
    const off = k === 6
      ? pick(w, [8, 16, 64, target.meta.fotOffset, target.meta.fotOffset + 32]) // the header, the FOT
      : k === 0
      ? t.acc.$offset + pick(w, [1, 2, 4, 6]) // misaligned
      : k === 1
      ? size - Node.size + pick(w, [8, 8, 16, 24, 40]) // past the end, by 8 to 40 bytes
      : k === 2
      ? size - Node.size // the last record that fits (inside)
      : k === 3
      ? pick(w, [0x80000000 + t.acc.$offset, 0xfffffff8, 0x80000000, 2 ** 32 + t.acc.$offset])
      : k === 4
      ? t.acc.$offset + 2 ** 40 // a 48-bit offset
      : t.acc.$offset;
    // k === 5: a FOT entry the object does not have; k === 7: a good
    // record through a FOT entry, also one naming the node's own object.
    const entry = k === 5 ? 400 + int(w, 100) : k === 7 ? o.fotIndex(target.id) : fot;
    writePtr(o.view, at, entry, off);
    w.log.push(`${tagOf(n)}.${field}->raw(fot ${k === 5 ? "bad" : entry}, ${off})`);
  }
}

function nameOf(w: World, i: number): string {
  return `/fuzz/${w.seed}/${i}`;
}

function tagOf(n: { acc: Acc; obj: number }): string {
  return `#${n.obj}:${n.acc.$offset}`;
}

/** What a walk did: the payloads it visited, how it ended, where the cursor is. */
interface Outcome {
  seq: number[];
  /** Fold of `seq` (for `$reduce`, which gives only that). */
  hash?: number;
  count?: number;
  end: "null" | "stop" | "error";
  err?: string;
  /** The object the reference error names. */
  errId?: bigint;
  msg?: string;
  at: string;
}

const fold = (s: number, v: number) => (Math.imul(s, 31) + v) | 0;

const CODES = new Map<number, string>(Object.entries(ErrorCode).map(([k, v]) => [v, k]));

function classify(e: unknown): { err: string; msg: string } {
  if (e instanceof TwzError) return { err: `TwzError(${CODES.get(e.code)})`, msg: e.message };
  if (e instanceof RangeError) return { err: "RangeError", msg: e.message };
  return { err: `unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`, msg: String(e) };
}

const where = (c: { $id: bigint; $offset: number }) => `${formatId(c.$id)}@${c.$offset}`;

/**
 * Why a cursor may not move onto `t` (a plain accessor the plain follow
 * gave), in the cursor's order (docs/LIBTWZ.md, "Walking a list or a tree"):
 * its object deleted or withdrawn (what a plain read of it throws), a
 * read-only target for a writable cursor, a record misaligned or not inside
 * its object.
 */
function refused(t: Acc, writable: boolean): Partial<Outcome> | undefined {
  try {
    void t.tag;
  } catch (e) {
    if (e instanceof TwzError) return { ...classify(e), errId: t.$id };
  }
  if (writable && !t.$writable) return { err: "TwzError(AccessDenied)", errId: t.$id };
  const bytes = objectSize(t);
  if (t.$offset % Node.align !== 0 || t.$offset + Node.size > bytes) return { err: "RangeError" };
  return undefined;
}

/** The size of `t`'s object, through a handle of the world (by ID). */
let sizeOf: (id: bigint) => number = () => 0;
function objectSize(t: Acc): number {
  return sizeOf(t.$id);
}

/** The reference: the plain follow, `n = n.next`, under the cursor's rules. */
function reference(field: Field, start: Acc, writable: boolean, hook: Hook): Outcome {
  const seq: number[] = [];
  let n = start;
  for (;;) {
    seq.push(n.value);
    if (seq.length === 1 && hook !== null) n = hook() ?? n;
    if (seq.length >= LIMIT) return { seq, end: "stop", at: where(n) };
    let t: Acc | null;
    try {
      t = (field === "next" ? n.next : n.alt) as Acc | null;
    } catch (e) {
      return { seq, end: "error", ...classify(e), at: where(n) };
    }
    if (t === null) return { seq, end: "null", at: where(n) };
    const why = refused(t, writable);
    if (why !== undefined) return { seq, end: "error", ...why, at: where(n) };
    n = t;
  }
}

/**
 * What a walk's callback does at its first visit (before any hop): grow,
 * delete or withdraw an object, rewrite a pointer, or move the cursor (it
 * returns the record to move onto; the walk goes on from there).
 */
type Hook = (() => Acc | undefined) | null;

/** A callback's move: `$moveTo` one time in two, else `$seek` when in the same object. */
function jump(c: Cur, to: Acc | undefined): void {
  if (to === undefined) return;
  if (c.$id === to.$id && c.$writable === to.$writable && (to.$offset & 16) !== 0) {
    c.$seek(to.$offset);
  } else c.$moveTo(to);
}

function viaFollow(field: Field, c: Cur, start: Acc, hook: Hook): Outcome {
  const seq: number[] = [];
  try {
    c.$moveTo(start);
    for (;;) {
      seq.push(c.value);
      if (seq.length === 1 && hook !== null) jump(c, hook());
      if (seq.length >= LIMIT) return { seq, end: "stop", at: where(c) };
      if (!c.$follow(field)) return { seq, end: "null", at: where(c) };
    }
  } catch (e) {
    return { seq, end: "error", ...classify(e), at: where(c) };
  }
}

/**
 * `$walk`; a writable cursor also stores each node's `tag` back through the
 * cursor (in a transaction, a write: the next hops from that object then
 * read the pointer through the transaction).
 */
function viaWalk(field: Field, c: Cur, start: Acc, hook: Hook): Outcome {
  const seq: number[] = [];
  const writes = c.$writable;
  try {
    c.$moveTo(start);
    const all = c.$walk(field, (n) => {
      seq.push(n.value);
      // A store through the writable cursor (in a transaction: a logged write,
      // so later hops read through the transaction); the value is unchanged.
      // deno-lint-ignore no-self-assign
      if (writes) n.tag = n.tag;
      if (seq.length === 1 && hook !== null) jump(n, hook());
      return seq.length < LIMIT;
    });
    return { seq, end: all ? "null" : "stop", at: where(c) };
  } catch (e) {
    return { seq, end: "error", ...classify(e), at: where(c) };
  }
}

const STOP = new Error("stop");

function viaReduce(field: Field, c: Cur, start: Acc, hook: Hook): Outcome {
  let k = 0, last = 0;
  try {
    c.$moveTo(start);
    const h = c.$reduce(field, (s: number, n) => {
      const x = fold(s, n.value);
      if (++k === 1 && hook !== null) jump(n, hook());
      if (k >= LIMIT) {
        last = x;
        throw STOP; // the cursor stays on this node
      }
      return x;
    }, 7);
    return { seq: [], hash: h, count: k, end: "null", at: where(c) };
  } catch (e) {
    if (e === STOP) return { seq: [], hash: last, count: k, end: "stop", at: where(c) };
    return { seq: [], count: k, end: "error", ...classify(e), at: where(c) };
  }
}

/** The hot shape: a sum, nothing captured (only for walks that end within LIMIT). */
function viaSum(field: Field, c: Cur, start: Acc): Outcome {
  try {
    c.$moveTo(start);
    const s = c.$reduce(field, (s: number, n) => s + n.value, 0);
    return { seq: [], hash: s, end: "null", at: where(c) };
  } catch (e) {
    return { seq: [], end: "error", ...classify(e), at: where(c) };
  }
}

/** The plain follow, the cursor moved onto each target with `$moveTo`. */
function viaMoveTo(field: Field, c: Cur, start: Acc, hook: Hook): Outcome {
  const seq: number[] = [];
  let n = start;
  try {
    c.$moveTo(start);
    for (;;) {
      seq.push(c.value);
      if (seq.length === 1 && hook !== null) {
        const to = hook();
        if (to !== undefined) jump(c, n = to);
      }
      if (seq.length >= LIMIT) return { seq, end: "stop", at: where(c) };
      const t = (field === "next" ? n.next : n.alt) as Acc | null;
      if (t === null || !c.$moveTo(t)) return { seq, end: "null", at: where(c) };
      n = t;
    }
  } catch (e) {
    return { seq, end: "error", ...classify(e), at: where(c) };
  }
}

let compared = 0;
/** Outcomes of the reference (FUZZ_STATS=1 prints them): what the walks met. */
const stats = new Map<string, number>();
const count = (k: string) => stats.set(k, (stats.get(k) ?? 0) + 1);

function check(w: World, ctx: string, path: string, ref: Outcome, got: Outcome): void {
  compared++;
  if (path === "$follow") {
    count(`${ref.end}${ref.err ? ` ${ref.err}` : ""}${ctx.includes("transaction") ? " (tx)" : ""}`);
    count(`hops ${ref.seq.length > 8 ? ">8" : ref.seq.length}`);
  }
  const fail = (what: string) => {
    const show = (o: Outcome) =>
      JSON.stringify({ ...o, errId: o.errId === undefined ? undefined : formatId(o.errId) });
    assert.fail(
      `seed ${w.seed} (replay: FUZZ_SEED=${w.seed}): ${path} disagrees with the plain walk ` +
        `(${what}) at ${ctx}\n  plain: ${show(ref)}\n  ${path}: ${show(got)}\n` +
        `  last changes: ${w.log.slice(-12).join(", ")}`,
    );
  };
  if (path.startsWith("$reduce")) {
    if (got.count !== undefined && got.count !== ref.seq.length) fail("visits");
    if (got.end !== "error") {
      const h = path === "$reduce(sum)"
        ? ref.seq.reduce((a, b) => a + b, 0)
        : ref.seq.reduce(fold, 7);
      if (got.hash !== h) fail("fold");
    }
  } else if (got.seq.join() !== ref.seq.join()) fail("payloads");
  if (got.end !== ref.end) fail("end");
  if (ref.end === "error") {
    if (got.err !== ref.err) fail("error class");
    if (ref.errId !== undefined && !got.msg!.includes(formatId(ref.errId))) fail("object named");
    if (ref.errId === undefined && ref.msg !== undefined && got.err!.startsWith("TwzError")) {
      // Thrown by the plain follow (a FOT entry the object does not have): the same object first.
      const first = (m: string) =>
        w.objs.map((o) => formatId(o.id)).filter((id) => m.includes(id))
          .sort((a, b) => m.indexOf(a) - m.indexOf(b))[0];
      if (first(got.msg!) !== first(ref.msg)) fail("object named");
    }
  }
  if (got.at !== ref.at) fail("cursor position");
}

/** Walk from every live node on every path, writable and read-only cursors. */
function round(w: World, ctx: string, cw: Cur, cr: Cur): void {
  const starts = live(w);
  for (let i = 0; i < starts.length; i++) {
    const s = starts[i]!;
    for (const writable of [true, false]) {
      const start = writable ? s.acc : Node.at(w.ro[s.obj]!, s.acc.$offset);
      // The kept cursor mostly; now and then a fresh one.
      const c = (i & 7) === 3 ? start.$cursor() : writable ? cw : cr;
      const f = FIELDS[i & 1]!;
      const here = `${ctx}, start ${tagOf(s)}, along ${f}, ${
        writable ? "writable" : "read-only"
      } cursor`;
      const ref = reference(f, start, writable, null);
      check(w, here, "$follow", ref, viaFollow(f, c, start, null));
      check(w, here, "$walk", ref, viaWalk(f, c, start, null));
      check(w, here, "$reduce", ref, viaReduce(f, c, start, null));
      check(w, here, "$moveTo", ref, viaMoveTo(f, c, start, null));
      if (ref.end !== "stop") check(w, here, "$reduce(sum)", ref, viaSum(f, c, start));
    }
  }
}

/**
 * Walks whose callback, at its first visit (before any hop), grows an object
 * so that it moves (the start's or another), deletes or withdraws another
 * one, rewrites the start's pointers, or moves the cursor to another record
 * (`$moveTo`, `$seek`). Every
 * path runs the same callback; which runs first, and so meets the event
 * under the walk, is picked at random; the reference runs last. A grow adds
 * a page each time: a pointer past the end before is inside for all of
 * them; a deleted or withdrawn object is gone for every hop of each. In a
 * transaction (`inTx`): only the moves and the rewrite (a transaction write).
 */
/**
 * A callback that grows object `x` so that it moves, lets new objects take
 * its old place (stale views would read their bytes), and then stores into
 * the moved bytes what the next hops must read: node `n`'s pointer, and the
 * payload of the node it then points to unless that is the start, visited
 * already (the same values every time, so each path meets the same graph).
 */
function grow(w: World, x: number, n: { acc: Acc; obj: number }, start: Acc): Hook {
  const o = w.objs[x]!;
  const to = pick(w, live(w));
  const value = int(w, 1000);
  const startObj = w.objs.findIndex((o) => o.id === start.$id);
  return () => {
    w.blockers.push(w.twz.create({ size: 4096 })); // blocks a grow in place
    o.grow(o.size + 4096);
    for (let i = 0; i < 2; i++) {
      const f = w.twz.create({ size: 4096 });
      f.bytes.fill(0xee, 64);
      w.blockers.push(f);
    }
    n.acc.next = to.acc;
    n.acc.alt = to.acc;
    if (to.acc.$offset !== start.$offset || to.obj !== startObj) to.acc.value = value;
    return undefined;
  };
}

function eventWalks(w: World, ctx: string, cw: Cur, cr: Cur, inTx = false): void {
  const alive = [...new Set(live(w).map((n) => n.obj))];
  const s = pick(w, live(w));
  const writable = int(w, 3) > 0;
  const start = writable ? s.acc : Node.at(w.ro[s.obj]!, s.acc.$offset);
  const c = writable ? cw : cr;
  const others = alive.filter((x) => x !== s.obj);
  // DataView code: no grows; in a transaction, the moves and the rewrite.
  let k = inTx ? 4 + int(w, 2) : w.dataView ? 2 + int(w, 4) : int(w, 6);
  if ((k === 2 || k === 3) && others.length < 2) k = w.dataView ? 5 : 0;
  if (k === 1 && others.length === 0) k = 0;
  let what: string, hook: Hook;
  if (k === 0) {
    what = `growing #${s.obj} (the start's)`;
    hook = grow(w, s.obj, s, start);
  } else if (k === 1) {
    const gx = pick(w, others);
    what = `growing #${gx}`;
    hook = grow(w, gx, pick(w, live(w).filter((n) => n.obj === gx)), start);
  } else if (k === 2 || k === 3) {
    const gx = pick(w, others), x = w.objs[gx]!;
    what = `${k === 2 ? "deleting" : "withdrawing"} #${gx}`;
    w.gone.add(gx);
    hook = () => {
      if (x.mapping.extent.bytes.length === 0) return undefined; // done by the first path
      if (k === 2) w.twz.delete(x.id);
      else {
        x.mapping.extent.retarget(new Uint8Array(0), -1);
        x._withdraw();
      }
      return undefined;
    };
  } else if (k === 5) {
    // The start's pointer rewritten before its hop (outside a transaction:
    // the walk must load it after the callback).
    const t = pick(w, live(w));
    what = `pointing the start at ${tagOf(t)}`;
    hook = () => {
      s.acc.next = t.acc;
      s.acc.alt = t.acc;
      return undefined;
    };
  } else {
    // Now and then a record at the same offset in another object: only the
    // object tells the move.
    const twins = live(w).filter((n) => n.obj !== s.obj && n.acc.$offset === s.acc.$offset);
    const t = twins.length > 0 && int(w, 2) === 0 ? pick(w, twins) : pick(w, live(w));
    const to = writable ? t.acc : Node.at(w.ro[t.obj]!, t.acc.$offset);
    what = `moving the cursor to ${tagOf(t)}`;
    hook = () => to;
  }
  const f = pick(w, FIELDS);
  const here = `${ctx}, start ${tagOf(s)}, along ${f}, ${
    writable ? "writable" : "read-only"
  } cursor, ${what} at the first visit`;
  const paths = [
    ["$follow", viaFollow],
    ["$walk", viaWalk],
    ["$reduce", viaReduce],
    ["$moveTo", viaMoveTo],
  ] as const;
  const first = int(w, paths.length);
  const got = paths.map((_, i) => {
    const [name, run] = paths[(first + i) % paths.length]!;
    return [name, run(f, c, start, hook)] as const;
  });
  const ref = reference(f, start, writable, hook);
  for (const [name, out] of got) check(w, here, name, ref, out);
  w.log.push(what + " under walks");
}

function mutate(w: World): void {
  const all = live(w);
  const r = int(w, 100);
  const alive = [...new Set(all.map((n) => n.obj))];
  if (r < 8 && alive.length > 1 && !w.dataView) {
    const x = pick(w, alive);
    w.blockers.push(w.twz.create({ size: 4096 }));
    const o = w.objs[x]!;
    const before = o.mapping.extent.bytes;
    o.grow(o.size + 4096 * (1 + int(w, 3)));
    const moved = o.mapping.extent.bytes.buffer !== before.buffer ||
      o.mapping.extent.bytes.byteOffset !== before.byteOffset;
    w.log.push(`grew #${x}${moved ? " (moved)" : ""}`);
  } else if (r < 11 && alive.length > 2) {
    const x = pick(w, alive);
    w.twz.delete(w.objs[x]!.id);
    w.gone.add(x);
    w.log.push(`deleted #${x}`);
  } else if (r < 13 && alive.length > 2) {
    // What the kernel's thread side does on a revocation (see cursor_test.ts).
    const x = pick(w, alive);
    const o = w.objs[x]!;
    o.mapping.extent.retarget(new Uint8Array(0), -1);
    o._withdraw();
    w.gone.add(x);
    w.log.push(`withdrew #${x}`);
  } else if (r < 20) {
    const n = pick(w, all);
    n.acc.value = int(w, 1000);
    w.log.push(`${tagOf(n)}.value`);
  } else {
    for (let k = 1 + int(w, 3); k > 0; k--) rewrite(w, pick(w, all), false);
  }
}

function scenario(twz: Twz, seed: number, rounds: number): void {
  const rnd = prng(seed);
  const w: World = {
    twz,
    seed,
    rnd,
    objs: [],
    ro: [],
    gone: new Set(),
    nodes: [],
    blockers: [],
    log: [],
    dataView: false,
  };
  w.dataView = int(w, 3) === 0;
  const k = 1 + int(w, 6);
  for (let i = 0; i < k; i++) {
    const o = twz.create({
      size: 4096 * (1 + int(w, 2)),
      fot: { entries: 40 },
      name: nameOf(w, i),
    });
    w.objs.push(o);
    w.ro.push(twz.open(o.id, { write: false }));
    if (w.dataView) {
      // What the kernel would do were an object ever placed off 8-alignment
      // (see cursor_test.ts): no word views, so accessors and cursors made
      // from here on are DataView code. A grow would give word views back,
      // and a word-code cursor does not move onto DataView bytes: no grows.
      for (const h of new Set([o, w.ro[i]!])) {
        const ext = h.mapping.extent;
        if (!ext.words) continue;
        const moved = new Uint8Array(ext.bytes.length + 8).subarray(4, 4 + ext.bytes.length);
        moved.set(ext.bytes);
        ext.retarget(moved, ext.base);
      }
    }
    assert.ok(o.baseOffset + SLOTS * Node.size <= o.meta.fotOffset, "nodes before the FOT");
    // Nodes at random slots, so list order is not address order.
    const slots = Array.from({ length: SLOTS }, (_, s) => s);
    for (let m = 3 + int(w, 8); m > 0; m--) {
      const s = slots.splice(int(w, slots.length), 1)[0]!;
      const acc = Node.at(o, o.baseOffset + s * Node.size);
      acc.value = int(w, 1000);
      acc.tag = w.nodes.length;
      w.nodes.push({ acc, obj: i });
    }
  }
  const byId = new Map(w.objs.map((o) => [o.id, o]));
  // Its live handles' bytes (a withdrawn one has none; the probe in
  // `refused` tells those apart first).
  sizeOf = (id) => {
    const i = w.objs.indexOf(byId.get(id)!);
    return Math.max(w.objs[i]!.mapping.extent.bytes.length, w.ro[i]!.mapping.extent.bytes.length);
  };
  for (const n of w.nodes) for (const f of FIELDS) rewrite(w, n, false, f);
  const first = w.nodes[0]!;
  const cw = first.acc.$cursor();
  const cr = Node.cursor(w.ro[first.obj]!, first.acc.$offset);
  for (const c of [cw, cr]) {
    count(
      `seeds with ${
        (c.constructor as unknown as { WORDS: boolean }).WORDS ? "word" : "DataView"
      } code cursors`,
    );
  }
  try {
    for (let i = 0; i < rounds; i++) {
      const ctx = `round ${i}`;
      const kind = int(w, 10);
      if (kind < 2) {
        // Inside a transaction that rewrote pointers and payloads: committed or aborted.
        const abort = int(w, 2) === 0;
        try {
          transaction(twz, () => {
            const all = live(w);
            for (let m = 1 + int(w, 4); m > 0; m--) {
              const n = pick(w, all);
              if (int(w, 2) === 0) n.acc.value = int(w, 1000);
              else rewrite(w, n, true);
            }
            round(w, `${ctx} (in a transaction)`, cw, cr);
            if (int(w, 2) === 0) eventWalks(w, `${ctx} (in a transaction)`, cw, cr, true);
            if (abort) throw STOP;
          });
        } catch (e) {
          if (e !== STOP) throw e;
        }
        w.log.push(abort ? "aborted" : "committed");
      } else if (kind < 4) eventWalks(w, ctx, cw, cr);
      round(w, ctx, cw, cr);
      mutate(w);
    }
  } finally {
    for (const o of w.objs) {
      try {
        twz.delete(o.id);
      } catch { /* deleted already */ }
    }
    for (const b of w.blockers) twz.delete(b.id);
  }
}

function seeds(): number[] {
  const one = Deno.env.get("FUZZ_SEED");
  if (one !== undefined) return [Number(one)];
  const n = Number(Deno.env.get("FUZZ_SEEDS") ?? 16);
  return Array.from({ length: n }, (_, i) => i + 1);
}

both("fuzz: $follow, $walk, $reduce and $moveTo agree with the plain follow", (twz) => {
  compared = 0;
  stats.clear();
  for (const seed of seeds()) scenario(twz, seed, 30);
  assert.ok(compared > 1000, `${compared} walks compared`);
  if (Deno.env.get("FUZZ_STATS") === "1") {
    console.log(compared, "walks compared;", Object.fromEntries([...stats].sort()));
  }
});

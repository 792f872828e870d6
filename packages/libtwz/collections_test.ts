// Persistent collections (issue 5): BTreeMap, Vector, Queue on hal-sim —
// behaviour, reopening, aborts, transactions over two collections, and
// crash consistency at every drain.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { openSim, openSimFromBytes, type SimHal } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { recoverTransactions, transaction, type TxLogHost } from "./_tx.ts";
import { sessionTxHost } from "./_session_tx.ts";
import { HashMap } from "./hashmap.ts";
import { codec } from "./codec.ts";
import { BTreeMap } from "./btree.ts";
import { Vector } from "./vector.ts";
import { Queue } from "./queue.ts";
import type { Heap } from "./heap.ts";

function session(size = 16 << 20): { hal: SimHal; twz: Twz; host: TxLogHost } {
  const hal = openSim({ size });
  const twz = Twz.attach(Kernel.boot(hal).port());
  return { hal, twz, host: sessionTxHost(twz) };
}

function boot(hal: SimHal): { twz: Twz; host: TxLogHost } {
  const twz = Twz.attach(Kernel.boot(hal).port());
  const host = sessionTxHost(twz);
  recoverTransactions(host);
  return { twz, host };
}

function reboot(hal: SimHal, policy: "all" | "strict" = "all"): { twz: Twz; host: TxLogHost } {
  hal.power!.powerFail({ policy });
  return boot(hal);
}

function heapClean(heap: Heap): void {
  const check = heap.check();
  assert.equal(check.problem, undefined);
  assert.equal(check.used, heap.live);
}

function treeClean(map: BTreeMap<unknown, unknown>): void {
  const check = map.check();
  assert.equal(check.problem, undefined, `tree: ${check.problem}`);
  assert.equal(check.entries, map.size);
  heapClean(map.heap);
}

/** A small deterministic generator. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- BTreeMap

Deno.test("BTreeMap: empty map and one entry", () => {
  const { hal, twz, host } = session();
  const map = BTreeMap.create(host, twz.create({ size: 1 << 16 }), codec.int, codec.string);
  assert.equal(map.size, 0);
  assert.equal(map.get(1), undefined);
  assert.equal(map.has(1), false);
  assert.equal(map.delete(1), false);
  assert.deepEqual([...map], []);
  assert.deepEqual([...map.range(0, 10)], []);
  assert.equal(map.set(1, "one"), true);
  assert.equal(map.set(1, "uno"), false, "same length: in place");
  assert.equal(map.get(1), "uno");
  assert.equal(map.set(1, "a longer one"), false, "another length: a new entry");
  assert.deepEqual([...map], [[1, "a longer one"]]);
  assert.deepEqual([...map.range(1, 1)], []);
  assert.deepEqual([...map.range(1, 1, { inclusive: true })], [[1, "a longer one"]]);
  assert.equal(map.delete(1), true);
  assert.equal(map.size, 0);
  assert.deepEqual([...map], []);
  treeClean(map);
  hal.close();
});

Deno.test("BTreeMap: many random int keys (negative too) split nodes and stay ordered", () => {
  const { hal, twz, host } = session();
  const map = BTreeMap.create(host, twz.create({ size: 1 << 20 }), codec.int, codec.int);
  const model = new Map<number, number>();
  const random = rng(42);
  transaction(host, () => {
    for (let i = 0; i < 3000; i++) {
      const k = Math.floor((random() - 0.5) * 2 ** 40);
      assert.equal(map.set(k, i), !model.has(k));
      model.set(k, i);
    }
  });
  for (
    const k of [0, -1, 1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, -(2 ** 32), 2 ** 32]
  ) {
    map.set(k, k % 1000);
    model.set(k, k % 1000);
  }
  const sorted = [...model.keys()].sort((a, b) => a - b);
  assert.equal(map.size, model.size);
  assert.ok(map.check().height >= 3, "splits reached the root twice");
  assert.deepEqual([...map.keys()], sorted);
  assert.deepEqual([...map.values()], sorted.map((k) => model.get(k)));
  for (const k of sorted) assert.equal(map.get(k), model.get(k));
  assert.equal(map.get(12345), model.get(12345));
  treeClean(map);
  // Delete every other key.
  for (let i = 0; i < sorted.length; i += 2) assert.equal(map.delete(sorted[i]!), true);
  const left = sorted.filter((_, i) => i % 2 === 1);
  assert.deepEqual([...map.keys()], left);
  assert.equal(map.size, left.length);
  for (let i = 0; i < sorted.length; i += 2) assert.equal(map.has(sorted[i]!), false);
  treeClean(map);
  hal.close();
});

Deno.test("BTreeMap: ascending inserts fill leaves; range bounds", () => {
  const { hal, twz, host } = session();
  const map = BTreeMap.create(host, twz.create({ size: 1 << 20 }), codec.int, codec.int);
  transaction(host, () => {
    for (let i = 0; i < 2048; i++) map.set(i * 10, i);
  });
  const check = map.check();
  assert.equal(check.problem, undefined);
  assert.ok(check.nodes < 2048 / 32 + 8, `${check.nodes} nodes: appends keep leaves full`);
  const keys = (it: Iterable<[number, number]>) => [...it].map(([k]) => k);
  assert.deepEqual(keys(map.range(95, 131)), [100, 110, 120, 130]);
  assert.deepEqual(keys(map.range(100, 130)), [100, 110, 120]);
  assert.deepEqual(keys(map.range(100, 130, { inclusive: true })), [100, 110, 120, 130]);
  assert.deepEqual(keys(map.range(undefined, 30)), [0, 10, 20]);
  assert.deepEqual(keys(map.range(20450)), [20450, 20460, 20470]);
  assert.deepEqual(keys(map.range(-100, 1)), [0]);
  assert.deepEqual(keys(map.range(500, 400)), [], "from > to: empty");
  assert.deepEqual(keys(map.range(30000)), []);
  assert.equal(keys(map.range()).length, 2048);
  // A range crossing many leaves.
  assert.deepEqual(
    keys(map.range(3195, 3605)),
    Array.from({ length: 41 }, (_, i) => 3200 + i * 10),
  );
  treeClean(map);
  hal.close();
});

Deno.test("BTreeMap: string, bytes and ref keys in byte order", () => {
  const { hal, twz, host } = session();
  const words = BTreeMap.create(host, twz.create({ size: 1 << 20 }), codec.string, codec.bytes);
  const list = [
    "",
    "a",
    "ab",
    "abc",
    "b",
    "B",
    "Zebra",
    "é",
    "😀",
    "\uffff",
    "longer key ".repeat(40),
  ];
  for (const [i, w] of list.entries()) words.set(w, new Uint8Array([i]));
  const enc = new TextEncoder();
  const byBytes = [...list].sort((x, y) => {
    const a = enc.encode(x), b = enc.encode(y);
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
    return a.length - b.length;
  });
  assert.deepEqual([...words.keys()], byBytes);
  assert.deepEqual(words.get("é"), new Uint8Array([7]));
  assert.deepEqual([...words.range("a", "b")].map(([k]) => k), ["a", "ab", "abc"]);
  treeClean(words);

  const blobs = BTreeMap.create(host, twz.create({ size: 1 << 20 }), codec.bytes, codec.int);
  const keys = [[], [0], [0, 0], [0, 1], [1], [255], [255, 0], [128, 3]].map((k) =>
    new Uint8Array(k)
  );
  for (const [i, k] of [...keys].reverse().entries()) blobs.set(k, i);
  const expected = [[], [0], [0, 0], [0, 1], [1], [128, 3], [255], [255, 0]];
  assert.deepEqual([...blobs.keys()].map((k) => [...k]), expected);
  treeClean(blobs);

  const refs = BTreeMap.create(host, twz.create({ size: 1 << 20 }), codec.ref, codec.int);
  const rs = [
    { id: 2n << 64n, offset: 5 },
    { id: 1n << 64n | 0xffn, offset: 9 },
    { id: 1n << 64n | 0xffn, offset: 300 },
    { id: (1n << 127n) + 1n, offset: 0 },
    { id: 1n << 64n, offset: 2 ** 40 },
  ];
  for (const [i, r] of rs.entries()) refs.set(r, i);
  assert.deepEqual([...refs.values()], [4, 1, 2, 0, 3]);
  assert.equal(refs.get({ id: 1n << 64n | 0xffn, offset: 300 }), 2);
  treeClean(refs);
  hal.close();
});

Deno.test("BTreeMap: deleting everything leaves empty leaves that scans skip; reuse works", () => {
  const { hal, twz, host } = session();
  const map = BTreeMap.create(host, twz.create({ size: 1 << 20 }), codec.int, codec.string);
  transaction(host, () => {
    for (let i = 0; i < 500; i++) map.set(i, `v${i}`);
  });
  const live = map.heap.live;
  transaction(host, () => {
    for (let i = 100; i < 400; i++) assert.equal(map.delete(i), true);
  });
  assert.ok(map.heap.live < live, "entry blobs are freed");
  assert.ok(map.check().emptyLeaves > 0);
  assert.deepEqual([...map.range(50, 450)].length, 100);
  assert.deepEqual([...map.range(150, 350)], []);
  assert.deepEqual([...map.range(99, 401)].map(([k]) => k), [99, 400]);
  treeClean(map);
  for (let i = 0; i < 500; i++) map.delete(i);
  assert.equal(map.size, 0);
  assert.deepEqual([...map], []);
  treeClean(map);
  for (let i = 499; i >= 0; i -= 3) map.set(i, "again");
  assert.equal(map.size, 167);
  assert.deepEqual([...map.keys()], Array.from({ length: 167 }, (_, i) => 1 + i * 3));
  treeClean(map);
  hal.close();
});

Deno.test("BTreeMap.open() refuses other structures and other codecs; create() refuses a used object", () => {
  const { hal, twz, host } = session();
  const obj = twz.create({ size: 1 << 16 });
  BTreeMap.create(host, obj, codec.string, codec.int);
  assert.throws(() => BTreeMap.open(host, obj, codec.int, codec.int), /other codecs than int\/int/);
  assert.throws(() => BTreeMap.open(host, obj, codec.string, codec.bytes), /other codecs/);
  assert.throws(() => Vector.open(host, obj, codec.int), /holds a B-tree map, not a vector/);
  assert.throws(() => Queue.open(host, obj, codec.int), /holds a B-tree map, not a queue/);
  assert.throws(
    () => BTreeMap.create(host, obj, codec.int, codec.int),
    /already holds a B-tree map/,
  );
  const blank = twz.create({ size: 1 << 16 });
  assert.throws(() => BTreeMap.open(host, blank, codec.int, codec.int), /holds no B-tree map/);
  const hashed = twz.create({ size: 1 << 16 });
  HashMap.create(host, hashed, codec.int, codec.int);
  assert.throws(
    () => BTreeMap.open(host, hashed, codec.int, codec.int),
    /holds a hash map, not a B-tree map/,
  );
  try {
    Vector.open(host, blank, codec.int);
    assert.fail("opened");
  } catch (e) {
    assert.equal((e as Error).name, "TwzError");
    assert.match((e as Error).message, /holds no vector/);
  }
  hal.close();
});

// ------------------------------------------------------------------ Vector

Deno.test("Vector: push, get, set, pop, iteration and growth past segments", () => {
  const { hal, twz, host } = session();
  const vec = Vector.create(host, twz.create({ size: 1 << 16 }), codec.string);
  const base = vec.heap.live;
  assert.equal(vec.length, 0);
  assert.equal(vec.get(0), undefined);
  assert.equal(vec.pop(), undefined);
  assert.deepEqual([...vec], []);
  assert.equal(vec.push(""), 1);
  assert.equal(vec.get(0), "");
  assert.equal(vec.get(1), undefined);
  assert.equal(vec.get(-1), undefined);
  assert.equal(vec.get(0.5), undefined);
  assert.equal(vec.pop(), "");
  assert.equal(vec.length, 0);
  assert.equal(vec.heap.live, base, "pop frees the element and the empty segment");
  const model: string[] = [];
  transaction(host, () => {
    for (let i = 0; i < 9000; i++) {
      model.push("x".repeat(i % 37) + i);
      vec.push(model[i]!); // past 16 segments: the directory grows by realloc
    }
  });
  assert.ok(twz.open(vec.obj.id).size > 1 << 16, "the object grew");
  assert.equal(vec.length, 9000);
  for (const i of [0, 1, 511, 512, 513, 4095, 8191, 8192, 8999]) assert.equal(vec.get(i), model[i]);
  assert.deepEqual([...vec], model);
  vec.set(512, "x".repeat(512 % 37) + "512".replace("5", "6")); // same length: in place
  model[512] = "x".repeat(512 % 37) + "612";
  vec.set(8192, "a different length");
  model[8192] = "a different length";
  assert.throws(() => vec.set(9000, "out"), RangeError);
  assert.throws(() => vec.set(-1, "out"), RangeError);
  assert.equal(vec.get(512), model[512]);
  assert.equal(vec.get(8192), model[8192]);
  transaction(host, () => {
    for (let i = 0; i < 8700; i++) assert.equal(vec.pop(), model.pop());
  });
  assert.deepEqual([...vec], model);
  heapClean(vec.heap);
  hal.close();
});

Deno.test("Vector: bytes and int elements; reopen checks the codec", () => {
  const { hal, twz, host } = session();
  const obj = twz.create({ size: 1 << 16 });
  const vec = Vector.create(host, obj, codec.bytes);
  vec.push(new Uint8Array(0));
  vec.push(new Uint8Array(5000).fill(7)); // a large blob
  vec.push(new Uint8Array([1, 2, 3]));
  assert.deepEqual(vec.get(0), new Uint8Array(0));
  assert.equal(vec.get(1)!.length, 5000);
  assert.deepEqual([...vec].map((b) => b.length), [0, 5000, 3]);
  assert.throws(() => Vector.open(host, obj, codec.int), /other codecs than int/);
  const ints = Vector.create(host, twz.create({ size: 1 << 16 }), codec.int);
  for (const n of [-1, 0, Number.MAX_SAFE_INTEGER]) ints.push(n);
  assert.deepEqual([...ints], [-1, 0, Number.MAX_SAFE_INTEGER]);
  assert.throws(() => ints.push(1.5), /not a safe integer/);
  assert.equal(ints.length, 3, "a refused push changes nothing");
  heapClean(ints.heap);
  hal.close();
});

// ------------------------------------------------------------------- Queue

Deno.test("Queue: FIFO push/shift/peek/size and iteration, empty again and reused", () => {
  const { hal, twz, host } = session();
  const q = Queue.create(host, twz.create({ size: 1 << 16 }), codec.string);
  const base = q.heap.live;
  assert.equal(q.size, 0);
  assert.equal(q.shift(), undefined);
  assert.equal(q.peek(), undefined);
  assert.equal(q.push("a"), 1);
  assert.equal(q.peek(), "a");
  assert.equal(q.shift(), "a");
  assert.equal(q.size, 0);
  assert.equal(q.peek(), undefined);
  assert.equal(q.heap.live, base);
  const model: string[] = [];
  for (let i = 0; i < 300; i++) {
    q.push(`job ${i}`);
    model.push(`job ${i}`);
    if (i % 3 === 2) assert.equal(q.shift(), model.shift());
  }
  assert.equal(q.size, model.length);
  assert.equal(q.peek(), model[0]);
  assert.deepEqual([...q], model);
  while (model.length > 0) assert.equal(q.shift(), model.shift());
  assert.equal(q.shift(), undefined);
  assert.equal(q.heap.live, base);
  q.push("after");
  assert.deepEqual([...q], ["after"]);
  heapClean(q.heap);
  hal.close();
});

// ----------------------------------------------- reopen, abort, two objects

Deno.test("Collections reopen after a clean reboot and after a crash", () => {
  const { hal, twz, host } = session();
  const a = twz.create({ size: 1 << 18 }), b = twz.create({ size: 1 << 16 });
  const c = twz.create({ size: 1 << 16 });
  const map = BTreeMap.create(host, a, codec.string, codec.int);
  const vec = Vector.create(host, b, codec.int);
  const q = Queue.create(host, c, codec.bytes);
  for (let i = 0; i < 200; i++) map.set(`k${i}`, i);
  for (let i = 0; i < 600; i++) vec.push(i * i);
  for (let i = 0; i < 10; i++) q.push(new Uint8Array([i]));
  let head = 0;
  for (const policy of ["all", "strict"] as const) {
    const again = reboot(hal, policy);
    const m2 = BTreeMap.open(again.host, again.twz.open(a.id), codec.string, codec.int);
    const v2 = Vector.open(again.host, again.twz.open(b.id), codec.int);
    const q2 = Queue.open(again.host, again.twz.open(c.id), codec.bytes);
    assert.equal(m2.size, 200);
    assert.equal(m2.get("k150"), 150);
    assert.deepEqual([...m2.keys()], Array.from({ length: 200 }, (_, i) => `k${i}`).sort());
    assert.equal(v2.length, 600);
    assert.equal(v2.get(599), 599 * 599);
    assert.equal(q2.size, 10);
    assert.deepEqual(q2.peek(), new Uint8Array([head]));
    treeClean(m2);
    heapClean(v2.heap);
    heapClean(q2.heap);
    m2.set("after", -1);
    v2.push(-1);
    q2.push(new Uint8Array([99]));
    assert.equal(m2.delete("after"), true);
    assert.equal(v2.pop(), -1);
    assert.equal([...q2].length, 11);
    assert.deepEqual(q2.shift(), new Uint8Array([head++])); // ten again, rotated
  }
  hal.close();
});

Deno.test("Collections: a throwing transaction of several operations changes nothing", () => {
  const { hal, twz, host } = session();
  const map = BTreeMap.create(host, twz.create({ size: 1 << 18 }), codec.int, codec.string);
  const vec = Vector.create(host, twz.create({ size: 1 << 16 }), codec.string);
  const q = Queue.create(host, twz.create({ size: 1 << 16 }), codec.int);
  for (let i = 0; i < 40; i++) map.set(i, `v${i}`); // one split
  vec.push("keep");
  q.push(1);
  const lives = [map.heap.live, vec.heap.live, q.heap.live];
  assert.throws(() =>
    transaction(host, () => {
      for (let i = 40; i < 200; i++) map.set(i, "new"); // more splits, a new root
      map.delete(3);
      map.set(4, "changed length");
      assert.equal(map.get(4), "changed length", "reads see the transaction's writes");
      assert.equal(map.has(3), false);
      assert.equal(map.size, 199);
      assert.equal([...map.range(0, 6)].length, 5);
      vec.push("x");
      vec.set(0, "changed");
      assert.equal(vec.pop(), "x");
      assert.equal(vec.get(0), "changed");
      q.push(2);
      assert.equal(q.shift(), 1);
      assert.deepEqual([...q], [2]);
      throw new Error("abort");
    }), /abort/);
  assert.equal(map.size, 40);
  assert.equal(map.get(3), "v3");
  assert.equal(map.get(4), "v4");
  assert.equal(map.has(100), false);
  assert.deepEqual([...map.keys()], Array.from({ length: 40 }, (_, i) => i));
  assert.deepEqual([...vec], ["keep"]);
  assert.deepEqual([...q], [1]);
  assert.deepEqual([map.heap.live, vec.heap.live, q.heap.live], lives);
  treeClean(map);
  hal.close();
});

Deno.test("Collections: one transaction over two objects commits and aborts together", () => {
  const { hal, twz, host } = session();
  const inbox = Queue.create(host, twz.create({ size: 1 << 16 }), codec.string);
  const done = BTreeMap.create(host, twz.create({ size: 1 << 16 }), codec.string, codec.int);
  for (const job of ["a", "b", "c"]) inbox.push(job);
  const move = (fail: boolean) =>
    transaction(host, () => {
      const job = inbox.shift()!;
      done.set(job, done.size + 1);
      if (fail) throw new Error("failed halfway");
    });
  move(false);
  assert.throws(() => move(true), /failed halfway/);
  assert.deepEqual([...inbox], ["b", "c"]);
  assert.deepEqual([...done], [["a", 1]]);
  move(false);
  const again = reboot(hal, "strict");
  const q2 = Queue.open(again.host, again.twz.open(inbox.obj.id), codec.string);
  const d2 = BTreeMap.open(again.host, again.twz.open(done.obj.id), codec.string, codec.int);
  assert.deepEqual([...q2], ["c"]);
  assert.deepEqual([...d2], [["a", 1], ["b", 2]]);
  hal.close();
});

// ------------------------------------------------------------ crash sweeps

interface Sweep<S> {
  /** Create the structure(s) and prefill; returns the IDs of the objects. */
  setup(twz: Twz, host: TxLogHost): bigint[];
  open(twz: Twz, host: TxLogHost, ids: bigint[]): S;
  ops: ((s: S) => unknown)[];
  /** The observable state, compared between runs. */
  state(s: S): unknown;
  /** Structure checks; returns heap summaries (compared between runs). */
  check(s: S): unknown;
}

/**
 * Run `ops` once to learn the states after each operation and the number of
 * drains, then once per drain k (and seed): power fails just before the k-th
 * drain, with random eviction of pending lines. After recovery the state
 * must be the one after the operations that returned, or after one more (the
 * operation in flight committed), with a clean structure and heap.
 */
function crashSweep<S>(name: string, sweep: Sweep<S>, seeds: number[]): void {
  const { hal, twz, host } = session(8 << 20);
  const ids = sweep.setup(twz, host);
  hal.power!.powerFail({ policy: "all" });
  const image = hal.region.bytes.slice();
  hal.close();

  // Reference run.
  const ref = openSimFromBytes(image);
  const r = boot(ref);
  const s0 = sweep.open(r.twz, r.host, ids);
  const states = [sweep.state(s0)];
  const heaps = [sweep.check(s0)];
  const d0 = ref.region.stats().drains;
  for (const op of sweep.ops) {
    op(s0);
    states.push(sweep.state(s0));
    heaps.push(sweep.check(s0));
  }
  const drains = ref.region.stats().drains - d0;
  ref.close();
  assert.ok(drains >= 2, `${name}: ${drains} drains`);

  let crashes = 0;
  for (let k = 1; k <= drains; k++) {
    for (const seed of seeds) {
      const hal = openSimFromBytes(image);
      const { twz, host } = boot(hal);
      const s = sweep.open(twz, host, ids);
      const region = hal.region;
      const drain = region.drain.bind(region);
      let n = 0;
      region.drain = () => {
        if (++n === k) {
          region.powerFail({ policy: "random", seed: seed * 1000 + k });
          throw new Error("power cut");
        }
        drain();
      };
      let returned = 0;
      try {
        for (const op of sweep.ops) {
          op(s);
          returned++;
        }
      } catch (e) {
        assert.match((e as Error).message, /power cut/);
        crashes++;
      }
      region.drain = drain;
      const again = reboot(hal, "strict");
      const after = sweep.open(again.twz, again.host, ids);
      const state = sweep.state(after);
      const heap = sweep.check(after);
      const at = `${name}: crash before drain ${k} (seed ${seed}), ${returned} ops returned`;
      let j = returned;
      if (returned < sweep.ops.length) {
        try {
          assert.deepEqual(state, states[returned]);
        } catch {
          j = returned + 1;
        }
      }
      assert.deepEqual(state, states[j], at);
      assert.deepEqual(heap, heaps[j], `${at}: heap`);
      hal.close();
    }
  }
  assert.ok(crashes > 0);
}

Deno.test("BTreeMap: every crash point leaves a prefix of the operations (splits, root split, deletes)", () => {
  type S = BTreeMap<number, string>;
  // Ascending keys 0, 2, 4, ... fill the leaves: 1020 entries leave the root
  // (height 2) two leaves short of full, so the appends below split the root.
  const ops: ((m: S) => unknown)[] = [];
  for (let i = 1020; i < 1060; i += 4) ops.push((m) => m.set(i * 2, `v${i}`));
  ops.push((m) => m.set(1, "odd: splits a full leaf in half"));
  ops.push((m) => m.set(-7, "negative"));
  ops.push((m) => m.set(4, "v2")); // same length: in place
  ops.push((m) => m.set(6, "a longer value than before"));
  ops.push((m) => m.delete(0));
  ops.push((m) => m.delete(1));
  ops.push((m) => m.delete(12345)); // absent: nothing written
  ops.push((m) => m.set(0, "back"));
  ops.push((m) => {
    transaction(m.host, () => {
      for (let i = 3; i < 60; i += 2) m.set(i, `odd ${i}`);
      for (let i = 8; i < 40; i += 2) m.delete(i);
    });
  });
  ops.push((m) => assert.equal(m.check().height, 3, "the root split"));
  crashSweep<S>("btree", {
    setup(twz, host) {
      const obj = twz.create({ size: 1 << 18 });
      const m = BTreeMap.create(host, obj, codec.int, codec.string);
      transaction(host, () => {
        for (let i = 0; i < 1020; i++) m.set(i * 2, `v${i}`);
      });
      assert.equal(m.check().height, 2);
      return [obj.id];
    },
    open: (twz, host, [id]) => BTreeMap.open(host, twz.open(id!), codec.int, codec.string),
    ops,
    state: (m) => [...m],
    check(m) {
      const c = m.check();
      assert.equal(c.problem, undefined);
      assert.equal(c.entries, m.size);
      heapClean(m.heap);
      return [c.height, c.nodes, m.heap.check()];
    },
  }, [1, 2]);
});

Deno.test("Vector: every crash point leaves a prefix of the operations", () => {
  type S = Vector<string>;
  const ops: ((v: S) => unknown)[] = [];
  for (let i = 0; i < 4; i++) ops.push((v) => v.push(`new ${i}`)); // crosses a segment
  ops.push((v) => v.set(0, "a longer first element"));
  ops.push((v) => v.set(1, "e1")); // same length
  for (let i = 0; i < 4; i++) ops.push((v) => v.pop()); // frees the segment
  ops.push((v) => v.pop());
  ops.push((v) => v.push("last"));
  crashSweep<S>("vector", {
    setup(twz, host) {
      const obj = twz.create({ size: 1 << 18 });
      const v = Vector.create(host, obj, codec.string);
      transaction(host, () => {
        for (let i = 0; i < 510; i++) v.push(`e${i}`);
      });
      return [obj.id];
    },
    open: (twz, host, [id]) => Vector.open(host, twz.open(id!), codec.string),
    ops,
    state: (v) => [...v],
    check(v) {
      assert.equal([...v].length, v.length);
      heapClean(v.heap);
      return v.heap.check();
    },
  }, [1, 2]);
});

Deno.test("Queue and a two-object transaction: every crash point leaves a prefix", () => {
  type S = { q: Queue<number>; done: BTreeMap<number, number> };
  const ops: ((s: S) => unknown)[] = [];
  for (let i = 0; i < 3; i++) ops.push((s) => s.q.push(100 + i));
  for (let i = 0; i < 4; i++) {
    ops.push((s) =>
      transaction(s.q.host, () => {
        const n = s.q.shift()!;
        s.done.set(n, n * 2);
      })
    );
  }
  ops.push((s) => s.q.shift());
  ops.push((s) => s.q.shift());
  ops.push((s) => s.q.shift()); // now empty
  ops.push((s) => s.q.push(7));
  crashSweep<S>("queue", {
    setup(twz, host) {
      const a = twz.create({ size: 1 << 16 }), b = twz.create({ size: 1 << 16 });
      const q = Queue.create(host, a, codec.int);
      BTreeMap.create(host, b, codec.int, codec.int);
      for (let i = 0; i < 3; i++) q.push(i);
      return [a.id, b.id];
    },
    open: (twz, host, [a, b]) => ({
      q: Queue.open(host, twz.open(a!), codec.int),
      done: BTreeMap.open(host, twz.open(b!), codec.int, codec.int),
    }),
    ops,
    state: (s) => [[...s.q], s.q.size, s.q.peek(), [...s.done]],
    check(s) {
      treeClean(s.done);
      heapClean(s.q.heap);
      return [s.q.heap.check(), s.done.heap.check()];
    },
  }, [1, 2]);
});

Deno.test("HashMap.create() refuses an object that holds a collection", () => {
  const { hal, twz, host } = session();
  const obj = twz.create({ size: 1 << 20 });
  const vec = Vector.create(host, obj, codec.int);
  for (let i = 0; i < 100; i++) vec.push(i * 7 + 1);
  assert.throws(() => HashMap.create(host, obj, codec.int, codec.int), /already holds a vector/);
  const again = Vector.open(host, obj, codec.int);
  assert.equal(again.length, 100);
  assert.equal(again.get(5), 36);
  const map = twz.create({ size: 1 << 16 });
  HashMap.create(host, map, codec.int, codec.int).set(1, 2);
  assert.throws(() => HashMap.create(host, map, codec.int, codec.int), /already holds a hash map/);
  assert.equal(HashMap.open(host, map, codec.int, codec.int).get(1), 2);
  hal.close();
});

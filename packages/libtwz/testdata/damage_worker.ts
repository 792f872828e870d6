// A worker for packages/libtwz/damage_test.ts: boots a (damaged) image copy,
// runs the deep check and then uses one structure, and reports what
// happened. In a worker so that the test can bound it with a timeout: a walk
// that loops forever is terminated and fails the test instead of hanging it.
/// <reference lib="deno.worker" />
import { Kernel } from "@twz/kernel";
import { parseId } from "@twz/kernel/abi";
import { openSimFromBytes } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { BTreeMap } from "@twz/libtwz/btree";
import { HashMap } from "@twz/libtwz/hashmap";
import { Vector } from "@twz/libtwz/vector";
import { Queue } from "@twz/libtwz/queue";
import { Heap } from "@twz/libtwz/heap";
import { checkObjects } from "@twz/libtwz/check";
import { transaction } from "@twz/libtwz/tx";

/** What the test asks: an image and a use of one structure. */
export interface DamageJob {
  bytes: Uint8Array;
  /** The use: "session", "list", "btree", "hashmap", "vector", "queue", "fot", "heap". */
  op: string;
  /** The object used (32 hex digits), or a path for "list". */
  target: string;
}

/** What the worker answers. */
export interface DamageResult {
  problems: Array<{ id?: string; area: string; message: string }>;
  warnings: Array<{ id?: string; area: string; message: string }>;
  /** The use's outcome: `ok`, or the error it threw. */
  use: { ok: true } | { ok: false; name: string; code?: number | undefined; message: string };
}

function use(twz: Twz, op: string, target: string): void {
  const obj = () => twz.open(parseId(target));
  switch (op) {
    case "session":
      for (const b of twz.naming.list("/")) twz.naming.resolve(`/${b.name}`);
      twz.naming.resolve("/data/map");
      return;
    case "list":
      twz.naming.list(target);
      twz.naming.resolve(`${target}/map`);
      return;
    case "btree": {
      const m = BTreeMap.open(twz, obj(), codec.string, codec.string);
      m.get("k5");
      for (const _ of m.range()) { /* walk the leaves */ }
      m.set("new", "value");
      return;
    }
    case "hashmap": {
      const m = HashMap.open(twz, obj(), codec.string, codec.int);
      for (let i = 0; i < 300; i++) m.get(`key-${i}`);
      for (const _ of m.entries()) { /* walk the chains */ }
      m.set("new", 1);
      return;
    }
    case "hashmap-set": {
      // Only inserts: the next bucket split walks the chain of bucket `split`.
      const m = HashMap.open(twz, obj(), codec.string, codec.int);
      for (let i = 0; i < 50; i++) m.set(`fresh-${i}`, i);
      return;
    }
    case "vector": {
      const v = Vector.open(twz, obj(), codec.int);
      for (let i = 0; i < v.length; i++) v.get(i);
      for (const _ of v) { /* walk */ }
      v.push(1);
      return;
    }
    case "queue": {
      const q = Queue.open(twz, obj(), codec.string);
      q.peek();
      for (const _ of q) { /* walk the list */ }
      q.push("x");
      q.shift();
      return;
    }
    case "heap": {
      const o = obj();
      const heap = Heap.open(o, (o.baseOffset + 64 + 63) & ~63);
      transaction(twz, (tx) => heap.alloc(tx, 5000));
      return;
    }
    case "fot": {
      const o = obj();
      void o.meta;
      o.fotEntries();
      o.fotIndex(parseId(target) ^ 1n);
      return;
    }
    default:
      throw new TypeError(`unknown op ${op}`);
  }
}

self.onmessage = (event: MessageEvent<DamageJob>) => {
  const { bytes, op, target } = event.data;
  const hal = openSimFromBytes(bytes);
  const kernel = Kernel.boot(hal);
  const report = checkObjects(kernel.port());
  let outcome: DamageResult["use"];
  try {
    use(Twz.attach(kernel.port()), op, target);
    outcome = { ok: true };
  } catch (error) {
    const e = error as Error & { code?: number };
    outcome = { ok: false, name: e.constructor.name, code: e.code, message: e.message };
  }
  kernel.halt();
  hal.close();
  const result: DamageResult = {
    problems: report.problems,
    warnings: report.warnings,
    use: outcome,
  };
  self.postMessage(result);
};

// Loaded: the test's timeout starts with the job, not with module loading.
self.postMessage("ready");

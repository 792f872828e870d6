// `twz bench ptr-chase` with tiny --ops/--rounds: every case's row is there,
// every walk summed the same, and the list it walks is what the bench says
// (shuffled, every hop across objects in the 16-object layout, and a walk
// that goes wrong fails the run).
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { plugin } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { run } from "./ptr_chase.ts";
import {
  cursorMaker,
  Node,
  NODES,
  OBJECTS,
  payloads,
  placement,
  timeInterleaved,
  walkHandMany,
  walkHandOne,
  walkPlainMany,
  walkPlainOne,
  walkReduceMany,
  walkReduceOne,
  walkWalkMany,
  walkWalkOne,
  writeList,
} from "./_chase_list.ts";

Deno.test("twz bench ptr-chase: a row per layout and case, the sums agree", async () => {
  const rows = await run({ hal: "sim", ops: 3, rounds: 2 });
  const cursor = cursorMaker() !== undefined;
  const names = ["plain", ...(cursor ? ["cursor", "walk", "reduce"] : []), "hand", "js"];
  assert.deepEqual(
    rows.map((r) => r.case),
    ["one object", "16 objects"].flatMap((l) => names.map((n) => `${l}, ${n}`)),
  );
  const sum = 3 * payloads(16).reduce((s, v) => s + v, 0);
  for (const r of rows) {
    assert.equal(r.bench, "ptr-chase");
    assert.equal(r.ops, 3 * NODES);
    assert.equal(r.sum, sum, r.case);
    assert.ok(typeof r.ns_per_op === "number" && r.ns_per_op > 0, r.case);
    assert.ok((r.min_ns as number) <= r.ns_per_op! && r.ns_per_op! <= (r.max_ns as number));
    if (r.case.endsWith("hand")) assert.equal(r.ratio_vs_hand, 1);
    else assert.ok((r.worst_ratio_vs_hand as number) > 0);
  }
});

Deno.test("ptr-chase list: shuffled, every hop changes object over 16 objects", () => {
  const one = placement(1, 16);
  assert.deepEqual([...one.slot].sort((a, b) => a - b), [...Array(NODES).keys()]);
  assert.notDeepEqual(one.slot.slice(0, 16), [...Array(16).keys()]);
  const many = placement(OBJECTS, 16);
  for (let k = 1; k < NODES; k++) assert.notEqual(many.obj[k], many.obj[k - 1], `hop ${k}`);
  for (let o = 0; o < OBJECTS; o++) {
    const slots = many.slot.filter((_, k) => many.obj[k] === o).sort((a, b) => a - b);
    assert.deepEqual(slots, [...Array(NODES / OBJECTS).keys()], `object ${o}`);
  }
  assert.deepEqual(placement(OBJECTS, 16), many, "the same seed gives the same list");
});

Deno.test("ptr-chase walks: hand, plain and cursor agree; a bad pointer fails loudly", async () => {
  const hal = await plugin.open({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  try {
    const twz = Twz.attach(kernel.port());
    const values = payloads(16);
    const sum = values.reduce((s, v) => s + v, 0);
    const one = writeList([twz.create({ size: 65536 })], placement(1, 16), values);
    const objs = Array.from({ length: OBJECTS }, () => twz.create({ size: 65536 }));
    const many = writeList(objs, placement(OBJECTS, 16), values);
    assert.equal(walkPlainOne(one.head, 2), 2 * sum);
    assert.equal(walkPlainMany(many.head, 2), 2 * sum);
    assert.equal(walkHandOne(one.hand[0]!.view, one.headOffset, 2), 2 * sum);
    assert.equal(walkHandMany(many.hand[many.headObject]!, many.headOffset, 2), 2 * sum);
    const make = cursorMaker();
    if (make !== undefined) {
      const c = make(many.objects[many.headObject]!, many.headOffset);
      let s = 0, hops = 0;
      c.$moveTo(many.head);
      do {
        s += c.a;
        hops++;
      } while (c.$follow("next"));
      assert.deepEqual([s, hops], [sum, NODES]);
      // The walk cases: libtwz's loop, both layouts, the same sums.
      const w = make(one.objects[0]!, one.headOffset);
      assert.equal(walkWalkOne(w, one.head, 2), 2 * sum);
      assert.equal(walkReduceOne(w, one.head, 2), 2 * sum);
      assert.equal(walkWalkMany(c, many.head, 2), 2 * sum);
      assert.equal(walkReduceMany(c, many.head, 2), 2 * sum);
    }
    // The one-object hand chase refuses a pointer into another object.
    const second = Node.at(one.objects[0]!, one.headOffset);
    second.next = many.head;
    assert.throws(
      () => walkHandOne(one.hand[0]!.view, one.headOffset, 1),
      /points out of its object/,
    );
  } finally {
    kernel.shutdown();
    hal.close();
  }
});

Deno.test("ptr-chase timing: a walk whose sum differs fails the run, naming the case", async () => {
  const calls: string[] = [];
  const good = {
    layout: "one object",
    name: "hand",
    walk: () => (calls.push("hand"), 42),
  } as const;
  const times = await timeInterleaved([good], 42, 4, () => Promise.resolve());
  assert.equal(times[0]!.length, 4);
  assert.equal(calls.length, 3 + 4, "three warm-up calls, then one per round");
  let n = 0;
  const bad = {
    layout: "16 objects",
    name: "cursor",
    walk: () => (++n > 5 ? 41 : 42), // goes wrong in the second round
  } as const;
  await assert.rejects(
    () => timeInterleaved([good, bad], 42, 4, () => Promise.resolve()),
    /16 objects, cursor: the walk summed 41, expected 42/,
  );
});

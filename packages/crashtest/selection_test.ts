import assert from "node:assert/strict";
import { openSim } from "@twz/hal-sim";
import { CrashStateError, selectionOf } from "./mod.ts";
import { variantsFor } from "./selection.ts";

/** A crash point with two pending lines, each with two outcomes (4 states). */
function twoLines() {
  const hal = openSim({ size: 4096 });
  hal.region.bytes[0] = 1;
  hal.region.bytes[64] = 1;
  const point = hal.region.crashPoint();
  hal.close();
  return point;
}

Deno.test("selectionOf() names states by number, all, drop-one and seeded random", () => {
  const p = twoLines();
  assert.equal(p.count, 4);
  assert.deepEqual([...selectionOf(p, "0", 1)], [0, 0]);
  assert.deepEqual([...selectionOf(p, "3", 1)], [...p.selection(3)]);
  assert.deepEqual([...selectionOf(p, "all", 1)], [1, 1]);
  assert.deepEqual([...selectionOf(p, "x1", 1)], [1, 0]);
  assert.deepEqual([...selectionOf(p, "s5", 7)], [...selectionOf(p, "s5", 7)]);
});

Deno.test("selectionOf() throws CrashStateError for a variant the point does not have", () => {
  const p = twoLines();
  assert.throws(() => selectionOf(p, "4", 1), CrashStateError);
  assert.throws(() => selectionOf(p, "x2", 1), /the point has 2 pending units/);
  assert.throws(() => selectionOf(p, "zz", 1), /"zz" is not a crash variant/);
  assert.ok(new CrashStateError("x") instanceof RangeError);
});

Deno.test("variantsFor() enumerates a small point and samples every policy of a large one", () => {
  const p = twoLines();
  assert.deepEqual(variantsFor(p, 10), ["0", "1", "2", "3"]);
  assert.deepEqual(variantsFor(p, 3), ["0", "all", "x0"]);
  assert.deepEqual(variantsFor(p, 3, true), ["0", "all", "s1"]);
});

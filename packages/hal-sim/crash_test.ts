import assert from "node:assert/strict";
import { openSim, PersistFault } from "./mod.ts";

Deno.test("SimRegion.crashPoint() gives a line stored again after its flush three outcomes", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.bytes[0] = 1;
  r.flush(0, 1);
  r.bytes[0] = 2;
  const p = r.crashPoint();
  assert.deepEqual([...p.units], [0]);
  assert.equal(p.count, 3);
  assert.equal(p.hasThreeWay, true);
  const seen = [0, 1, 2].map((v) => {
    const image = new Uint8Array(4096);
    p.materialize(p.selection(v), image);
    return image[0];
  });
  assert.deepEqual(seen, [0, 1, 2]); // media, flushed snapshot, current
  assert.deepEqual([...p.drainChoice], [1]); // a drain would write the snapshot
  hal.close();
});

Deno.test("SimRegion.crashPoint() sees a flushed snapshot even when the line was stored back", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.bytes[70] = 5;
  r.flush(64, 64);
  r.bytes[70] = 0; // the cache equals the media again; the snapshot does not
  const p = r.crashPoint();
  assert.deepEqual([...p.units], [1]);
  assert.equal(p.count, 2);
  hal.close();
});

Deno.test("CrashPoint enumerates every subset of pending lines exactly once", () => {
  const hal = openSim({ size: 8192 });
  const r = hal.region;
  for (const line of [1, 5, 9]) r.bytes[line * 64] = line;
  r.persist(5 * 64, 1); // durable: not pending
  const p = r.crashPoint();
  assert.deepEqual([...p.units], [1, 9]);
  assert.equal(p.count, 4);
  const images = new Set<string>();
  for (let v = 0; v < p.count; v++) {
    const image = r.durableImage();
    p.materialize(p.selection(v), image);
    images.add(`${image[64]},${image[320]},${image[576]}`);
  }
  assert.deepEqual([...images].sort(), ["0,5,0", "0,5,9", "1,5,0", "1,5,9"]);
  assert.throws(() => p.selection(4), RangeError);
  hal.close();
});

Deno.test("CrashPoint with 8-byte units tears a line between its words", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.bytes[0] = 1;
  r.bytes[8] = 2;
  r.bytes[9] = 3; // same word as byte 8: never torn apart
  assert.equal(r.crashPoint().units.length, 1);
  const p = r.crashPoint({ unit: 8 });
  assert.deepEqual([...p.units], [0, 1]);
  const image = new Uint8Array(4096);
  p.materialize(p.selection(2), image); // word 0 lost, word 1 kept
  assert.deepEqual([...image.subarray(0, 10)], [0, 0, 0, 0, 0, 0, 0, 0, 2, 3]);
  hal.close();
});

Deno.test("SimRegion.powerFail() random policy: probability 0 is strict, 1 keeps everything", () => {
  for (const [probability, kept] of [[0, 0], [1, 3]] as const) {
    const hal = openSim({ size: 4096 });
    for (const line of [0, 1, 2]) hal.region.bytes[line * 64] = 7;
    const result = hal.region.powerFail({ policy: "random", probability, seed: 3 });
    assert.deepEqual(result, { pending: 3, survived: kept });
    assert.equal([0, 1, 2].filter((l) => hal.region.bytes[l * 64] === 7).length, kept);
    hal.close();
  }
});

Deno.test("SimRegion.injectFault() fails the chosen flush or drain once, and nothing is durable", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.injectFault({ atFlush: 2, message: "flush failed" });
  r.flush(0, 8);
  r.bytes[64] = 1;
  assert.throws(
    () => r.flush(64, 8),
    (e) => e instanceof PersistFault && e.message === "flush failed",
  );
  r.flush(64, 8); // fires once
  r.injectFault({ atDrain: 1 });
  r.bytes[128] = 2;
  r.flush(128, 1);
  assert.throws(() => r.drain(), PersistFault);
  assert.equal(r.durableImage()[128], 0);
  assert.deepEqual([...r.crashPoint().units], [1, 2]); // still pending
  assert.throws(() => r.injectFault({ atDrain: 0 }), RangeError);
  hal.close();
});

Deno.test("SimRegion.loadCrashState() puts a crash image in both cache and media", () => {
  const hal = openSim({ size: 4096 });
  hal.region.bytes[0] = 9;
  const p = hal.region.crashPoint();
  const base = hal.region.durableImage();
  const other = openSim({ size: 4096 });
  other.region.loadCrashState(base, p, p.policySelection("all"));
  assert.equal(other.region.bytes[0], 9);
  assert.equal(other.region.durableImage()[0], 9);
  assert.throws(() => other.region.reload(new Uint8Array(10)), RangeError);
  hal.close();
  other.close();
});

Deno.test("SimRegion.crashPoint() on a 4 MiB region stays cheap (one pass over the region)", () => {
  const hal = openSim({ size: 4 << 20 });
  hal.region.bytes[12345] = 1;
  hal.region.crashPoint();
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) hal.region.crashPoint();
  const ms = (performance.now() - t0) / 20;
  assert.ok(ms < 20, `crashPoint took ${ms.toFixed(2)} ms`);
  hal.close();
});

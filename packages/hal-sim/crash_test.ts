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

Deno.test("recordHistory(): a value a line held at an earlier drain stays an outcome until written back", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  assert.equal(r.recordingHistory, false); // the normal path keeps no history
  r.recordHistory();
  r.bytes[0] = 0xee; // stored, never flushed
  r.persist(128, 1); // a drain while line 0 holds 0xee
  r.bytes[0] = 2;
  r.flush(0, 1);
  const p = r.crashPoint();
  assert.deepEqual([...p.units], [0]);
  assert.equal(p.count, 3); // media, the value at the drain, the flushed (and current) value
  assert.equal(p.hasHistory, true);
  const seen = [0, 1, 2].map((v) => {
    const image = r.durableImage();
    p.materialize(p.selection(v), image);
    return image[0];
  });
  assert.deepEqual(seen, [0, 0xee, 2]);
  assert.match(p.describe(p.selection(1)), /kept as it was at an earlier drain/);
  assert.match(p.describe(p.selection(2)), /\+64\) kept$/);
  assert.deepEqual([...p.drainChoice], [2]);
  r.drain(); // line 0 written back: 0xee can no longer reach the media
  r.bytes[0] = 3;
  assert.equal(r.crashPoint().count, 2);
  hal.close();
});

Deno.test("recordHistory(): unarmed, a value overwritten after a drain is not an outcome", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.bytes[0] = 0xee;
  r.persist(128, 1);
  r.bytes[0] = 2;
  r.flush(0, 1);
  assert.equal(r.crashPoint().count, 2); // media or 2: what the model offered before
  hal.close();
});

Deno.test("recordHistory(): history survives drains, tears by word, and goes with reload and powerFail", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.recordHistory();
  r.bytes[8] = 1; // word 1 of line 0
  r.persist(128, 1);
  r.bytes[8] = 2;
  r.persist(192, 1); // a second drain: line 0 now has two earlier values
  r.bytes[8] = 0; // stored back to the media's value: still pending
  const p64 = r.crashPoint();
  assert.deepEqual([...p64.units], [0]);
  assert.equal(p64.count, 3); // media (= current), 1, 2
  assert.deepEqual([...p64.currentChoice], [0]);
  const p8 = r.crashPoint({ unit: 8 });
  assert.deepEqual([...p8.units], [1]); // only word 1 ever differed
  assert.equal(p8.count, 3);
  r.reload(r.durableImage());
  assert.equal(r.crashPoint().count, 1);
  r.bytes[0] = 5;
  r.persist(128, 1);
  r.bytes[0] = 0;
  assert.equal(r.crashPoint().count, 2);
  r.powerFail({ policy: "strict" });
  assert.equal(r.crashPoint().count, 1);
  r.recordHistory(false);
  assert.equal(r.recordingHistory, false);
  hal.close();
});

Deno.test("recordHistory(): a failed drain's flushed values stay possible outcomes", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  r.recordHistory();
  r.bytes[0] = 1;
  r.flush(0, 1);
  r.bytes[0] = 0; // back to the media's value before the drain fails
  r.injectFault({ atDrain: 1 });
  assert.throws(() => r.drain(), PersistFault);
  const p = r.crashPoint();
  assert.equal(p.count, 2); // the flushed 1 may have reached the media
  hal.close();
});

Deno.test("SimRegion.flushedChanges() counts flushed lines a drain would change", () => {
  const hal = openSim({ size: 4096 });
  const r = hal.region;
  assert.equal(r.flushedChanges(), 0);
  r.flush(0, 256); // flushed, but equal to the media
  assert.equal(r.flushedChanges(), 0);
  r.bytes[70] = 1;
  r.bytes[200] = 1;
  r.flush(64, 192);
  assert.equal(r.flushedChanges(), 2);
  r.drain();
  assert.equal(r.flushedChanges(), 0);
  hal.close();
});

Deno.test("recordHistory() keeps the normal path as fast as before: armed costs one pass per drain", () => {
  const hal = openSim({ size: 4 << 20 });
  const r = hal.region;
  const drains = (n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      r.bytes[(i * 64) % r.size] = i;
      r.persist((i * 64) % r.size, 1);
    }
    return (performance.now() - t0) / n;
  };
  drains(200);
  const plain = drains(2000);
  assert.ok(plain < 0.05, `an unarmed persist took ${plain.toFixed(4)} ms`);
  r.recordHistory();
  drains(20);
  const armed = drains(50);
  assert.ok(armed < 20, `an armed persist on 4 MiB took ${armed.toFixed(2)} ms`);
  hal.close();
});

Deno.test("recordHistory(): a beforeDrain hook's crash point gives the same history as a full pass", () => {
  for (const unit of [64, 8] as const) {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const hooked = openSim({ size: 8192 + 40 }); // a partial last line too
    const plain = openSim({ size: 8192 + 40 });
    let points = 0;
    hooked.region.beforeDrain = () => void (points += hooked.region.crashPoint({ unit }).count);
    for (const r of [hooked.region, plain.region]) r.recordHistory();
    for (let step = 0; step < 400; step++) {
      const x = random();
      const at = Math.floor(random() * (8192 + 40));
      for (const r of [hooked.region, plain.region]) {
        if (x < 0.3) r.bytes[at] = 0; // often back to the media's value
        else if (x < 0.6) r.bytes[at] = step & 0xff;
        else if (x < 0.85) r.flush(at, Math.min(100, r.size - at));
        else r.drain();
      }
      if (step % 50 === 49) {
        const a = hooked.region.crashPoint({ unit }), b = plain.region.crashPoint({ unit });
        assert.deepEqual([...a.units], [...b.units]);
        assert.deepEqual([...a.choiceCount], [...b.choiceCount]);
        assert.deepEqual([...a.historyCount], [...b.historyCount]);
        assert.deepEqual(a.data, b.data);
      }
    }
    assert.ok(points > 0);
    assert.ok(plain.region.crashPoint({ unit }).hasHistory, "the sequence builds some history");
    // A line flushed, stored back to the media's value, then drained: it now
    // differs from the media although it did not before the drain.
    for (const r of [hooked.region, plain.region]) {
      r.bytes.fill(0, 0, 64);
      r.persist(0, 64);
      r.bytes[0] = 0xaa;
      r.flush(0, 1);
      r.bytes[0] = 0; // as before
      r.drain(); // the media now holds 0xaa, the line 0 ...
      r.bytes[0] = 0xbb; // ... which the line held at that drain, now overwritten
    }
    for (const r of [hooked.region, plain.region]) {
      const p = r.crashPoint({ unit });
      assert.equal(p.units[0], 0);
      assert.equal(p.choiceCount[0], 2, "0 (held at the drain) and 0xbb (current)");
    }
    hooked.close();
    plain.close();
  }
});

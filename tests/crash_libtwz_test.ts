// twz crashtest over libtwz: the naming service, the in-object heap and the
// persistent collections recover from every crash state tried.
import assert from "node:assert/strict";
import {
  CrashStateError,
  crashtest,
  type CrashtestReport,
  replay,
  type Workload,
} from "@twz/crashtest";
import { heap, kv, makeHeapWorkload, makeKvWorkload, naming } from "@twz/crashtest/workloads";
import { Tx } from "@twz/libtwz/tx";

function clean(report: CrashtestReport): void {
  assert.equal(report.run_error, undefined, report.run_error);
  assert.deepEqual(report.violations, [], JSON.stringify(report.violations.slice(0, 3)));
}

/**
 * A fifth of the states crashed a recovery, and those recoveries had crash
 * points past the boot's single log-replay drain: the session's opening
 * (libtwz's transaction replay, two drains) was crashed too.
 */
function recoveryCrashed(report: CrashtestReport): void {
  assert.equal(report.recovery_states, report.states / 5);
  assert.ok(report.recovery_runs > 50, `recoveries crashed: ${report.recovery_runs}`);
  assert.ok(
    report.recovery_points > 1.5 * report.recovery_runs,
    `${report.recovery_points} recovery crash points in ${report.recovery_runs} recoveries`,
  );
}

/** Seeds 1, 2, ... until `states` crash states were tried (every seed is a new run). */
async function overSeeds(w: Workload, states: number, unit: 8 | 64 = 64): Promise<number> {
  let tried = 0;
  for (let seed = 1; tried < states; seed++) {
    const report = await crashtest(w, { states: states - tried, seed, unit });
    clean(report);
    assert.ok(report.points > 100, `${w.name} seed ${seed}: ${report.points} crash points`);
    tried += report.states;
  }
  return tried;
}

Deno.test("crashtest() finds no violation in the naming workload over 10,000 crash states", async () => {
  // Every crash state of one run is ~2,000 (all points exhaustive), so several seeds.
  assert.ok(await overSeeds(naming, 10_000) >= 10_000);
});

Deno.test("crashtest() finds no violation in the heap workload over 10,000 crash states", async () => {
  const report = await crashtest(heap, { states: 10_000, seed: 1 });
  clean(report);
  assert.equal(report.states, 10_000);
  recoveryCrashed(report);
});

Deno.test("crashtest() finds no violation in the kv workload over 10,000 crash states", async () => {
  const report = await crashtest(kv, { states: 10_000, seed: 1 });
  clean(report);
  assert.equal(report.states, 10_000);
  recoveryCrashed(report);
});

Deno.test("crashtest() with torn lines (8-byte units) finds no violation in naming, heap, kv", async () => {
  for (const w of [naming, heap, kv]) {
    const report = await crashtest(w, { states: 1000, seed: 2, unit: 8 });
    clean(report);
  }
});

Deno.test("crashtest() catches a kv value written outside the transaction, and replays it", async () => {
  const broken = makeKvWorkload({ ops: 15, writeOutsideTx: true });
  const report = await crashtest(broken, { states: 400, seed: 1 });
  assert.ok(report.violation_count > 0, "a store outside the transaction must be caught");
  const v = report.violations[0]!;
  assert.equal(v.stage, "check");
  assert.match(v.message, /hash map key \d+: value differs/);
  const again = await replay(broken, v.point, v.variant, { seed: 1 });
  assert.equal(again.findings[0]?.message, v.message);
});

Deno.test("crashtest(heap) catches fresh blocks not made durable before the log that links them", async () => {
  // Blocks bumped past the heap's durable top and written whole
  // (Heap.alloc zero: false, Tx.writeFresh) are written in place, unlogged;
  // the commit makes them durable (flush, drain) before it writes the log.
  // With that step skipped (the transaction reports no fresh ranges to
  // commit), a crash can keep the log that links a record and lose the
  // record's bytes: the heap workload must see it.
  const small = makeHeapWorkload({ txs: 12 });
  const count = Object.getOwnPropertyDescriptor(Tx.prototype, "freshCount")!;
  let fresh = 0;
  const markFresh = Tx.prototype.markFresh;
  Tx.prototype.markFresh = function (this: Tx, ...args: Parameters<Tx["markFresh"]>) {
    fresh++;
    return markFresh.apply(this, args);
  };
  Object.defineProperty(Tx.prototype, "freshCount", { ...count, get: () => 0 });
  let report: CrashtestReport;
  try {
    report = await crashtest(small, { states: 600, seed: 1, recoveryStates: 0 });
  } finally {
    Object.defineProperty(Tx.prototype, "freshCount", count);
    Tx.prototype.markFresh = markFresh;
  }
  assert.ok(fresh > 0, "the heap workload allocates fresh blocks");
  assert.equal(report.run_error, undefined, report.run_error);
  assert.ok(report.violation_count > 0, "fresh bytes not durable before the log must be caught");
  assert.match(
    report.violations[0]!.message,
    /record \d+ is corrupt|bad block header|holds a record/,
  );
  // And with the step in place, no violation.
  clean(await crashtest(small, { states: 600, seed: 1, recoveryStates: 0 }));
});

Deno.test("crashtest: libtwz's transaction replay at session open is crashed at its own drains", async () => {
  const small = makeHeapWorkload({ txs: 4 });
  const report = await crashtest(small, { states: 400, seed: 1 });
  clean(report);
  // Find a state whose recovery replays a committed transaction: the boot's
  // log replay is one drain, libtwz's replay two more (the records, then the
  // applied mark).
  let found: { point: number; variant: string; points: number } | undefined;
  for (let point = report.points - 1; point >= 0 && !found; point--) {
    for (const variant of ["all", "0"]) {
      try {
        const r = await replay(small, point, variant, {
          seed: 1,
          recovery: { point: 0, variant: "all" },
        });
        if (r.recovery!.points >= 3) found = { point, variant, points: r.recovery!.points };
      } catch (error) {
        if (!(error instanceof CrashStateError)) throw error;
        continue; // this state's recovery has no crash point 0 (it drains nothing)
      }
      if (found) break;
    }
  }
  assert.ok(found, "some crash state's recovery replays a libtwz transaction");
  for (let q = 1; q < found.points; q++) {
    for (const variant of ["0", "all", "s1"]) {
      const r = await replay(small, found.point, found.variant, {
        seed: 1,
        recovery: { point: q, variant },
      });
      assert.deepEqual(r.findings, [], `${found.point}:${found.variant}/${q}:${variant}`);
    }
  }
});

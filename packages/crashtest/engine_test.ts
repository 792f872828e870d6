// The engine's crash model and reporting, on tiny kernel workloads.
import assert from "node:assert/strict";
import type { Kernel } from "@twz/kernel";
import { crashtest, replay, type Workload } from "./mod.ts";

Deno.test("crashtest(): a check that throws a non-Error or returns one string reports it", async () => {
  const base = {
    imageSize: 320 * 1024,
    run({ kernel }: { kernel: Kernel }) {
      kernel.create({ size: 100 });
    },
  };
  const threw = await crashtest({
    ...base,
    name: "throws-string",
    check: () => {
      throw "plain string thrown";
    },
  }, { states: 20 });
  assert.ok(threw.violation_count > 0);
  assert.equal(threw.violations[0]!.message, "plain string thrown");
  const one = await crashtest({ ...base, name: "returns-string", check: () => "one violation" }, {
    states: 20,
  });
  assert.equal(one.violation_count, one.states, "every state: one violation");
  assert.equal(one.violations[0]!.message, "one violation");
});

/**
 * A record R (line 0) holds a valid value (all 1s, then all 2s); a commit
 * flag C (line 1) says R was updated. The update uses R's line as scratch
 * (0xee, never flushed) across an unrelated drain, then writes the new value
 * and persists R and C together. A reader accepts either valid value when C
 * is set, never the scratch one, but a dirty line may be evicted at any
 * moment: the scratch value can reach the media and C persist after it.
 */
const scratchWorkload: Workload = {
  name: "scratch-line",
  imageSize: 320 * 1024,
  run({ kernel, journal }) {
    const id = journal.record("create", {}, () => kernel.create({ size: 4096 }));
    const m = kernel.map(id);
    journal.record("setup", {}, () => {
      m.bytes.fill(1, 0, 8);
      m.persist(0, 8);
    });
    journal.record("update", {}, () => {
      m.bytes.fill(0xee, 0, 8); // scratch, never flushed
      m.bytes[128] = 7;
      m.persist(128, 1); // an unrelated drain while R holds the scratch value
      m.bytes.fill(2, 0, 8);
      m.bytes[64] = 1;
      m.flush(0, 8);
      m.flush(64, 1);
      m.drain();
    });
  },
  check(kernel, journal) {
    const create = journal.find((e) => e.op === "create" && e.state === "done");
    if (!create) return [];
    const bytes = kernel.map(create.result as bigint).bytes;
    const r = bytes[0];
    if (bytes[64] === 1 && r !== 1 && r !== 2) return [`C is set but R holds ${r}`];
    return [];
  },
};

Deno.test("crashtest(): a value a line held at an earlier drain, then overwritten, is an outcome", async () => {
  const report = await crashtest(scratchWorkload, { states: 200, seed: 1 });
  assert.ok(report.violation_count > 0, "the scratch value reaching the media must be caught");
  const v = report.violations[0]!;
  assert.equal(v.recovery, undefined);
  assert.equal(v.message, "C is set but R holds 238");
  const again = await replay(scratchWorkload, v.point, v.variant, { seed: 1 });
  assert.match(again.crash, /kept as it was at an earlier drain/);
  assert.equal(again.findings[0]?.message, v.message);
});

Deno.test("crashtest(): a line flushed twice before one drain may persist the first value", async () => {
  const twice: Workload = {
    name: "flushed-twice",
    imageSize: 320 * 1024,
    run({ kernel, journal }) {
      const id = journal.record("create", {}, () => kernel.create({ size: 4096 }));
      const m = kernel.map(id);
      journal.record("update", {}, () => {
        m.bytes[0] = 0xee; // an intermediate value, flushed
        m.flush(0, 1);
        m.bytes[0] = 2; // the final value, flushed again
        m.flush(0, 1);
        m.bytes[64] = 1; // the commit flag, same drain
        m.flush(64, 1);
        m.drain();
      });
    },
    check(kernel, journal) {
      const create = journal.find((e) => e.op === "create" && e.state === "done");
      if (!create) return [];
      const bytes = kernel.map(create.result as bigint).bytes;
      return bytes[64] === 1 && bytes[0] === 0xee ? ["flag set with the intermediate value"] : [];
    },
  };
  const report = await crashtest(twice, { states: 100, seed: 1 });
  assert.ok(report.violation_count > 0);
  assert.equal(report.violations[0]!.message, "flag set with the intermediate value");
});

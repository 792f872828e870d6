// twz crashtest: the checker finds a broken protocol, the kernel passes, faults surface.
import assert from "node:assert/strict";
import { ErrorCode, fsck, Kernel, TwzError } from "@twz/kernel";
import { openSim, PersistFault } from "@twz/hal-sim";
import { crashtest, replay } from "@twz/crashtest";
import { kernelObjects } from "@twz/crashtest/workloads";
import { workload as broken } from "./crash_broken_workload.ts";
import { makeCounterWorkload } from "./crash_recovery_workload.ts";
import { twz } from "./_twz.ts";

const BROKEN = new URL("./crash_broken_workload.ts", import.meta.url).pathname;
const BROKEN_RECOVERY = new URL("./crash_recovery_workload.ts", import.meta.url).pathname;
const BLIND = new URL("./crash_deep_workload.ts", import.meta.url).pathname;

Deno.test("crashtest() catches a flag published before its data is flushed, and replays it", async () => {
  const report = await crashtest(broken, { states: 500, seed: 3 });
  assert.ok(report.violation_count > 0, "the broken workload must fail");
  const v = report.violations[0]!;
  assert.equal(v.stage, "check");
  assert.match(v.message, /flag says round \d but data byte/);
  const again = await replay(broken, v.point, v.variant, { seed: 3 });
  assert.equal(again.findings.length, 1);
  assert.equal(again.findings[0]?.message, v.message);
});

Deno.test("crashtest() finds no violation in kernel-objects over 10,000 crash states", async () => {
  const report = await crashtest(kernelObjects, { states: 10_000, seed: 1 });
  assert.equal(report.states, 10_000);
  assert.ok(report.points > 50, `crash after every drain: ${report.points} points`);
  // A fifth of them crash a recovery (the boot's log replay) and recover again.
  assert.equal(report.recovery_states, 2_000);
  assert.ok(report.recovery_runs > 100, `recoveries crashed: ${report.recovery_runs}`);
  assert.deepEqual(report.violations, [], JSON.stringify(report.violations.slice(0, 3)));
  assert.equal(report.run_error, undefined);
});

Deno.test("crashtest() with torn lines (8-byte units) finds no kernel violation (seed 2)", async () => {
  const report = await crashtest(kernelObjects, { states: 2000, seed: 2, unit: 8 });
  assert.deepEqual(report.violations, []);
});

Deno.test("crashtest() with torn lines, seed 1: a torn log never replays a mixed transaction", async () => {
  // Found by crashtest: the log was once checked with CRC-32, which cannot
  // tell one CRC-32-terminated root record from another (CRC is linear), so
  // an old log header with a new root record in its body passed the check.
  // The log now carries a non-linear 64-bit checksum.
  // Replay: twz crashtest kernel-objects --seed 1 --unit 8 --replay 86:s1
  const report = await crashtest(kernelObjects, { states: 5000, seed: 1, unit: 8 });
  assert.deepEqual(report.violations, []);
});

Deno.test("twz crashtest PATH reports a violation with a replay line; --replay reproduces it", async () => {
  const r = await twz(["crashtest", BROKEN, "--states", "300", "--json"]);
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.workload, "broken-flag");
  assert.ok(out.states > 0 && out.states <= 300);
  assert.ok(out.states_per_sec > 0);
  assert.ok(out.run_states_per_sec > 0 && out.run_seconds > 0);
  assert.ok(out.recovery_seconds >= 0 && out.recovery_states_per_sec >= 0);
  assert.ok(out.violations.length > 0);
  const line: string = out.violations[0].replay;
  assert.match(line, /^twz crashtest .*crash_broken_workload\.ts --seed 1 --replay \d+:\w+$/);
  const again = await twz(line.split(" ").slice(1));
  assert.equal(again.code, 1, again.stderr);
  assert.match(again.stdout, /VIOLATION \(check\): flag says round/);
});

Deno.test("twz crashtest --deep adds fsck --deep's object check: it finds what a workload's own check cannot", async () => {
  // The blind workload damages a named object's meta-info and checks nothing.
  const plain = await twz(["crashtest", BLIND, "--states", "200", "--json"]);
  assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  assert.equal(JSON.parse(plain.stdout).violation_count, 0);
  const deep = await twz(["crashtest", BLIND, "--states", "200", "--deep", "--json"]);
  assert.equal(deep.code, 1, deep.stderr);
  const out = JSON.parse(deep.stdout);
  assert.ok(out.violation_count > 0);
  const v = out.violations[0];
  assert.match(v.message, /^fsck --deep: meta [0-9a-f]{32}: /);
  assert.match(
    v.replay,
    /^twz crashtest .*crash_deep_workload\.ts --seed 1 --deep --replay \d+:\w+$/,
  );
  const again = await twz(v.replay.split(" ").slice(1));
  assert.equal(again.code, 1, again.stderr);
  assert.match(again.stdout, /VIOLATION \(check\): fsck --deep: meta /);
  // A built-in libtwz workload passes the deep check at every crash state tried.
  const kv = await twz(["crashtest", "kv", "--states", "300", "--deep"]);
  assert.equal(kv.code, 0, kv.stdout + kv.stderr);
});

Deno.test("twz crashtest kernel-objects exits 0; errors are one line", async () => {
  const ok = await twz(["crashtest", "kernel-objects", "--states", "400"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /crashtest kernel-objects: 400 crash states at \d+ crash points/);
  // The two kinds of state are timed apart: the run's, and the crashed recoveries'.
  assert.match(
    ok.stdout,
    /time: 320 states of the run in [\d.]+ s \(\d+\/s\), 80 of crashed recoveries in [\d.]+ s \(\d+\/s, recording each recovery included\)/,
  );
  assert.match(
    ok.stdout,
    /recovery crashed: 80 of those states, at \d+ crash points of the recovery of \d+ crash states/,
  );
  assert.match(ok.stdout, /no violations/);
  for (
    const [args, code, pattern] of [
      [["crashtest", "no-such-workload"], 3, /unknown workload "no-such-workload"/],
      [["crashtest", "./missing_workload.ts"], 3, /cannot load workload/],
      [["crashtest", "kernel-objects", "--states", "x"], 2, /--states: "x" is not a number/],
      [["crashtest", "kernel-objects", "--replay", "9999:0"], 2, /crash points 0 to \d+, not 9999/],
      [["crashtest", "kernel-objects", "--replay", "zz"], 2, /--replay: "zz" is not POINT:VARIANT/],
      [["crashtest", "kernel-objects", "--replay", "3:0/"], 2, /--replay: "3:0\/" is not POINT:/],
      [
        ["crashtest", "kernel-objects", "--recovery-states", "x"],
        2,
        /--recovery-states: "x" is not/,
      ],
      [
        ["crashtest", "kernel-objects", "--states", "10", "--recovery-states", "11"],
        2,
        /--recovery-states \(11\) cannot exceed --states \(10\)/,
      ],
    ] as const
  ) {
    const r = await twz([...args]);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.split("\n").filter((l) => l.length > 0);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  }
});

Deno.test("an injected persist fault reaches the caller, and the image still recovers", () => {
  const faults = [{ atFlush: 1 }, { atFlush: 2 }, { atFlush: 3 }, { atDrain: 1 }, { atDrain: 2 }, {
    atDrain: 3,
  }];
  for (const fault of faults) {
    const hal = openSim({ size: 1 << 20 });
    const kernel = Kernel.boot(hal);
    const keep = kernel.create({ size: 2000 });
    kernel.write(keep, 0, new Uint8Array(2000).fill(9));
    hal.region.injectFault({ ...fault, message: "media write error" });
    assert.throws(() => kernel.create({ size: 3000 }), (e: unknown) => {
      assert.ok(e instanceof PersistFault);
      assert.equal((e as Error).message, "media write error");
      return true;
    }, JSON.stringify(fault));
    // The kernel goes on only when nothing of the commit was under way; else it
    // has stopped (a reboot recovers), never running on with stale counters.
    try {
      kernel.delete(kernel.create({ size: 100 }));
      assert.ok(fsck(hal).clean, `live image after ${JSON.stringify(fault)}`);
    } catch (error) {
      assert.ok(error instanceof TwzError && error.code === ErrorCode.Shutdown, String(error));
    }
    kernel.halt();
    for (const policy of ["strict", "all"] as const) {
      const copy = openSim({ size: 1 << 20 });
      copy.region.reload(hal.region.durableImage());
      copy.region.bytes.set(hal.region.bytes); // the cache too, then crash it
      copy.region.powerFail({ policy });
      const again = Kernel.boot(copy);
      const report = fsck(copy);
      assert.ok(
        report.clean,
        `${JSON.stringify(fault)} ${policy}: ${JSON.stringify(report.problems)}`,
      );
      assert.ok(again.read(keep, 0, 2000).every((b) => b === 9));
      assert.ok(again.usage().objects === 1 || again.usage().objects === 2);
      copy.close();
    }
    hal.close();
  }
});

Deno.test("twz crashtest refuses a workload whose imageSize is unusable, in one line", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-crash-" });
  try {
    for (
      const [size, pattern] of [
        ["4096", /imageSize 4096 is below the smallest image \(\d+ bytes\)/],
        ["2 ** 50", /imageSize \d+ is too large/],
      ] as const
    ) {
      const path = `${dir}/w${size.length}.ts`;
      Deno.writeTextFileSync(
        path,
        `export const workload = { imageSize: ${size}, run() {}, check() {} };\n`,
      );
      const r = await twz(["crashtest", path]);
      assert.equal(r.code, 3, r.stderr);
      const lines = r.stderr.split("\n").filter((l) => l.length > 0);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, pattern);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the replay example in docs/CRASHTEST.md works", async () => {
  const doc = Deno.readTextFileSync(new URL("../docs/CRASHTEST.md", import.meta.url));
  const m = /Replay: `twz (crashtest kernel-objects [^`]+)`/.exec(doc);
  assert.ok(m, "the doc has a replay example");
  const r = await twz(m[1]!.split(" "));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /recovered correctly/);
});

Deno.test("crashtest() crashes recovery itself: a recovery that is not idempotent is caught", async () => {
  const brokenRecovery = makeCounterWorkload(false);
  // Every crash of the run recovers correctly: only crashing the recovery shows the bug.
  const plain = await crashtest(brokenRecovery, { states: 300, seed: 1, recoveryStates: 0 });
  assert.equal(plain.recovery_states, 0);
  assert.deepEqual(plain.violations, []);
  const report = await crashtest(brokenRecovery, { states: 300, seed: 1 });
  assert.equal(report.states, 300);
  assert.equal(report.recovery_states, 60);
  assert.ok(report.violation_count > 0, "a recovery applying an entry twice must be caught");
  const v = report.violations[0]!;
  assert.ok(v.recovery, "the violation names where the recovery crashed");
  assert.equal(v.stage, "check");
  assert.match(v.message, /counter is (\d+), acknowledged \d+/);
  const again = await replay(brokenRecovery, v.point, v.variant, {
    seed: 1,
    recovery: v.recovery,
  });
  assert.equal(again.recovery?.point, v.recovery.point);
  assert.equal(again.findings[0]?.message, v.message);
  // The state alone (its recovery not crashed) recovers correctly.
  assert.deepEqual((await replay(brokenRecovery, v.point, v.variant, { seed: 1 })).findings, []);
  // An idempotent recovery passes the same campaign, crashed as often.
  const fixed = await crashtest(makeCounterWorkload(true), { states: 300, seed: 1 });
  assert.equal(fixed.recovery_states, 60);
  assert.ok(fixed.recovery_runs > 5);
  assert.deepEqual(fixed.violations, []);
});

Deno.test("twz crashtest reports a crashed recovery with a replay line P:V/Q:W that reproduces it", async () => {
  const r = await twz(["crashtest", BROKEN_RECOVERY, "--states", "200", "--json"]);
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.states, 200);
  assert.equal(out.recovery_states, 40);
  assert.ok(out.recovery_points > 0 && out.recovery_runs > 0);
  const v = out.violations[0]!;
  assert.equal(typeof v.recovery.point, "number");
  assert.match(v.replay, /--replay \d+:\w+\/\d+:\w+$/);
  const again = await twz(v.replay.split(" ").slice(1));
  assert.equal(again.code, 1, again.stderr);
  assert.match(again.stdout, /then recovery crashed at its point \d+ \(of \d+\)/);
  assert.match(again.stdout, /VIOLATION \(check\): counter is/);
  const none = await twz([
    "crashtest",
    BROKEN_RECOVERY,
    "--states",
    "200",
    "--recovery-states",
    "0",
  ]);
  assert.equal(none.code, 0, none.stdout);
});

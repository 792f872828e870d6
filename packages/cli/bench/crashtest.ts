/**
 * `twz bench crashtest`: crash states checked per second by `twz crashtest`
 * on the kernel-objects and kv workloads (record the run, then for each state:
 * load the crash image, boot, fsck, check invariants). `--ops` is the number of
 * crash states per round, of which crashtest's default share (20 %) crash a
 * recovery; the median of `--rounds` is reported. The workload runs on
 * hal-sim whatever `--hal` says: crash states need the simulator.
 *
 * The two kinds of state are reported apart, since they cost differently:
 * `states_per_sec` (and `ns_per_op`) is the rate of the run's crash states
 * (recording the run included), `recovery_states_per_sec` that of the states
 * of crashed recoveries (recording each crashed recovery included), and
 * `all_states_per_sec` the rate of all of them over the whole check.
 *
 * @module
 */
import { crashtest, WORKLOADS } from "@twz/crashtest";
import { kernelObjects } from "@twz/crashtest/workloads";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { refuseImage } from "./_util.ts";

/** Run the crash-test benchmark. */
export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  refuseImage(opts, "crashtest", "the workloads run on anonymous simulated regions");
  const states = opts.ops ?? 5000;
  const rounds = opts.rounds ?? 3;
  const out: BenchResult[] = [];
  const kv = await WORKLOADS["kv"]!.load();
  const cases = [
    ["kernel-objects", kernelObjects, 64],
    ["kernel-objects", kernelObjects, 8],
    ["kv", kv, 64],
    ["kv", kv, 8],
  ] as const;
  for (const [name, workload, unit] of cases) {
    const rates: number[] = [];
    const recoveryRates: number[] = [];
    const allRates: number[] = [];
    let points = 0;
    let recoveryStates = 0;
    let violations = 0;
    for (let r = 0; r < rounds; r++) {
      const report = await crashtest(workload, { states, seed: 1 + r, unit });
      rates.push(report.run_states_per_sec);
      recoveryRates.push(report.recovery_states_per_sec);
      allRates.push(report.states_per_sec);
      points = report.points;
      recoveryStates = report.recovery_states;
      violations += report.violation_count;
    }
    const perSec = median(rates);
    out.push({
      bench: "crashtest",
      case: `${name}-unit${unit}`,
      hal: "sim",
      ops: states,
      states_per_sec: perSec,
      ns_per_op: Math.round(1e9 / perSec),
      recovery_states: recoveryStates,
      recovery_states_per_sec: median(recoveryRates),
      all_states_per_sec: median(allRates),
      crash_points: points,
      violations,
    });
  }
  return out;
}

/**
 * `twz bench crashtest`: crash states checked per second by `twz crashtest`
 * on the kernel-objects and kv workloads (record the run, then for each state:
 * load the crash image, boot, fsck, check invariants). `--ops` is the number of
 * crash states per round; the median of `--rounds` is reported. The workload
 * runs on hal-sim whatever `--hal` says: crash states need the simulator.
 *
 * @module
 */
import { crashtest } from "../crashtest.ts";
import { workload as kernelObjects } from "../workloads/kernel_objects.ts";
import { WORKLOADS } from "../workloads/mod.ts";
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
    let points = 0;
    let violations = 0;
    for (let r = 0; r < rounds; r++) {
      const report = await crashtest(workload, { states, seed: 1 + r, unit });
      rates.push(report.states_per_sec);
      points = report.points;
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
      crash_points: points,
      violations,
    });
  }
  return out;
}

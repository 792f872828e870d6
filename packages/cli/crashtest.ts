/**
 * `twz crashtest`: the command line over `@twz/crashtest`, an adversarial
 * crash-consistency checker for code running on the Twizzler kernel.
 *
 * A workload runs once on an anonymous simulated region with seeded entropy
 * and clock. Before every drain — and at the end of the run — the checker
 * records a *crash point*: the media as it stands, every unit (64-byte line,
 * or 8-byte word with `--unit 8`) that a power failure now could leave
 * different, and each unit's possible contents. Crash point N means "drain N
 * was the last to complete". For each point it tries crash states, booting a
 * kernel on each crashed image, running `fsck`, and calling the workload's
 * `check` with the journal as it stood at the crash; recovery is crashed too
 * (a fifth of the budget by default). Every violation comes with a
 * `--replay POINT:VARIANT[/Q:W]` that reproduces it. The engine and its
 * model are documented in `@twz/crashtest`; this file parses arguments,
 * prints and picks the exit code.
 *
 * ```
 * twz crashtest WORKLOAD [--states N] [--seed S] [--unit 64|8] [--json]
 *                        [--recovery-states N] [--replay P:V[/Q:W]]
 * ```
 *
 * Exit codes: 0 no violation; 1 violations found (or a replayed state
 * violates); 2 usage; 3 the workload cannot be loaded.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  CrashStateError,
  crashtest,
  loadWorkload,
  type RecoveryAt,
  replay,
  type ReplayResult,
  type Workload,
  WorkloadError,
  WORKLOADS,
} from "@twz/crashtest";
import { positive, UsageError } from "./board.ts";

const USAGE = `usage: twz crashtest WORKLOAD [--states N] [--seed S] [--unit 64|8] [--json]
                     [--recovery-states N] [--replay POINT:VARIANT[/RPOINT:RVARIANT]] [--list]
  WORKLOAD is a built-in name (${
  Object.keys(WORKLOADS).join(", ")
}) or a module path (./my_workload.ts)
exit codes: 0 no violation, 1 violations found, 2 usage mistake, 3 workload cannot be loaded`;

/**
 * `twz crashtest` on the command line; returns the exit code.
 *
 * @param args Arguments after `crashtest`.
 */
export async function main(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    options: {
      states: { type: "string", default: "10000" },
      "recovery-states": { type: "string" },
      seed: { type: "string", default: "1" },
      unit: { type: "string", default: "64" },
      json: { type: "boolean", default: false },
      replay: { type: "string" },
      list: { type: "boolean", default: false },
      debug: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  const values = { ...v };
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.list) {
    for (const [name, w] of Object.entries(WORKLOADS)) {
      console.log(`${name.padEnd(16)}${w.summary}`);
    }
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? `crashtest needs a WORKLOAD (${
          Object.keys(WORKLOADS).join(", ")
        }, or a module path; see twz help)`
        : "crashtest takes one WORKLOAD",
    );
  }
  const states = positive(values.states!, "--states");
  const recoveryStates = values["recovery-states"] === undefined
    ? undefined
    : positive(values["recovery-states"], "--recovery-states", true);
  if (recoveryStates !== undefined && recoveryStates > states) {
    throw new UsageError(
      `--recovery-states (${recoveryStates}) cannot exceed --states (${states}): they are part of it`,
    );
  }
  const seed = positive(values.seed!, "--seed", true);
  if (values.unit !== "64" && values.unit !== "8") {
    throw new UsageError(`--unit takes 64 or 8, not "${values.unit}"`);
  }
  const unit = Number(values.unit) as 8 | 64;
  const name = positionals[0]!;
  let workload: Workload;
  try {
    workload = await loadWorkload(name);
  } catch (error) {
    if (!(error instanceof WorkloadError)) throw error;
    console.error(`twz: ${error.message}`);
    return 3;
  }
  const replayLine = (point: number, variant: string, recovery?: RecoveryAt) =>
    `twz crashtest ${name} --seed ${seed}${
      unit === 8 ? " --unit 8" : ""
    } --replay ${point}:${variant}${recovery ? `/${recovery.point}:${recovery.variant}` : ""}`;

  if (values.replay !== undefined) {
    const m = /^(\d+):(\w+)(?:\/(\d+):(\w+))?$/.exec(values.replay);
    if (!m) {
      throw new UsageError(
        `--replay takes POINT:VARIANT or POINT:VARIANT/RPOINT:RVARIANT (like 12:3 or 12:3/0:all), not "${values.replay}"`,
      );
    }
    const recovery = m[3] === undefined ? undefined : { point: Number(m[3]), variant: m[4]! };
    let r: ReplayResult;
    try {
      r = await replay(workload, Number(m[1]), m[2]!, { seed, unit, recovery });
    } catch (error) {
      // No such crash state in this run: a usage mistake (exit 2).
      if (error instanceof CrashStateError) throw new UsageError(error.message);
      throw error;
    }
    if (values.json) {
      console.log(JSON.stringify({ workload: workload.name, seed, ...r }));
    } else {
      console.log(`crash point ${r.point} (after drain ${r.point}), variant ${r.variant}`);
      console.log(`  acknowledged operations: ${r.acknowledged}`);
      console.log(`  in flight: ${r.inflight ?? "nothing"}`);
      console.log(`  crash: ${r.crash}`);
      if (r.recovery) {
        console.log(
          `  then recovery crashed at its point ${r.recovery.point} (of ${r.recovery.points}), variant ${r.recovery.variant}`,
        );
        console.log(`  recovery crash: ${r.recovery.crash}`);
      }
      if (r.findings.length === 0) {
        console.log(
          `  recovered correctly${r.recovery ? " once more" : ""}: boot, fsck and check pass`,
        );
      }
      for (const f of r.findings) console.log(`  VIOLATION (${f.stage}): ${f.message}`);
    }
    return r.findings.length > 0 ? 1 : 0;
  }

  const tty = !values.json && Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const onProgress = tty
    ? (done: number, total: number, bad: number) => {
      const width = 30;
      const filled = Math.round((done / Math.max(1, total)) * width);
      Deno.stderr.writeSync(enc.encode(
        `\r${workload.name} [${"#".repeat(filled)}${
          "-".repeat(width - filled)
        }] ${done}/${total} states, ${bad} violation${bad === 1 ? "" : "s"} `,
      ));
    }
    : undefined;
  const report = await crashtest(workload, { states, recoveryStates, seed, unit, onProgress });
  if (tty) Deno.stderr.writeSync(enc.encode("\r\x1b[K"));
  if (values.json) {
    console.log(JSON.stringify({
      ...report,
      violations: report.violations.map((x) => ({
        ...x,
        replay: replayLine(x.point, x.variant, x.recovery),
      })),
    }));
  } else {
    console.log(
      `crashtest ${report.workload}: ${report.states} crash states at ${report.points} crash points (${report.exhaustive_points} exhaustive), seed ${seed}, ${report.states_per_sec} states/s`,
    );
    console.log(
      `  recovery crashed: ${report.recovery_states} of those states, at ${report.recovery_points} crash points of the recovery of ${report.recovery_runs} crash states`,
    );
    console.log(
      `  time: ${
        report.states - report.recovery_states
      } states of the run in ${report.run_seconds} s (${report.run_states_per_sec}/s), ${report.recovery_states} of crashed recoveries in ${report.recovery_seconds} s (${report.recovery_states_per_sec}/s, recording each recovery included)`,
    );
    if (report.run_error) console.log(`  the workload failed while running: ${report.run_error}`);
    for (const x of report.violations) {
      const where = x.recovery
        ? `, its recovery crashed at point ${x.recovery.point} variant ${x.recovery.variant}`
        : "";
      console.log(
        `  VIOLATION at point ${x.point} variant ${x.variant}${where} (${x.stage}): ${x.message}`,
      );
      console.log(`    replay: ${replayLine(x.point, x.variant, x.recovery)}`);
    }
    if (report.violation_count > report.violations.length) {
      console.log(`  ... and ${report.violation_count - report.violations.length} more`);
    }
    console.log(
      report.violation_count === 0
        ? "  no violations"
        : `  ${report.violation_count} violating state${report.violation_count === 1 ? "" : "s"}`,
    );
  }
  return report.violation_count > 0 || report.run_error ? 1 : 0;
}

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
 *                        [--recovery-states N] [--replay P:V[/Q:W]] [--deep]
 * ```
 *
 * `--deep` adds libtwz's whole-image check (`twz fsck --deep`'s
 * `checkObjects`) to the workload's own `check` at every crash state: each
 * problem it reports is a violation (its warnings, which name what a crash
 * legitimately leaves for repair, are not). For workloads on libtwz images.
 *
 * Exit codes: 0 no violation; 1 violations found (or a replayed state
 * violates); 2 usage; 3 the workload cannot be loaded.
 *
 * @module
 */
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
import type { Kernel } from "@twz/kernel";
import { checkObjects } from "@twz/libtwz/check";
import { UsageError } from "./board.ts";
import { type CommandSpec, count, parseArgv, quoted } from "./_args.ts";

/** `twz crashtest`'s options: what parses them and what `twz crashtest --help` prints. */
export const CRASHTEST: CommandSpec = {
  name: "twz crashtest",
  summary: "check a workload at every crash point, crashing recovery too; exit 1 when a " +
    "crash state breaks an invariant",
  options: [
    { name: "--states", value: "N", summary: "crash states to try (default 10000)" },
    {
      name: "--recovery-states",
      value: "N",
      summary: "how many of them crash the recovery too (default a fifth)",
    },
    { name: "--seed", value: "S", summary: "the seed of the run and its choices (default 1)" },
    {
      name: "--unit",
      value: "UNIT",
      choices: ["64", "8"],
      summary: "bytes a power failure keeps or loses together, default 64",
    },
    { name: "--json", summary: "print one JSON object" },
    {
      name: "--replay",
      value: "P:V[/Q:W]",
      summary: "run one crash state again (as a violation's replay line says)",
    },
    {
      name: "--deep",
      summary: "also run fsck --deep's object check (libtwz images) on every crash state",
    },
    { name: "--list", summary: "list the built-in workloads" },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  args: [{
    name: "WORKLOAD",
    optional: true,
    summary: "a built-in workload (--list names them) or a module path (./my_workload.ts)",
  }],
  details: [
    "Crash point N means drain N was the last to complete. Every violation comes with a " +
    "--replay POINT:VARIANT[/RPOINT:RVARIANT] that reproduces it (see docs/CRASHTEST.md).",
    "Exit codes: 0 no violation; 1 violations found (or a replayed state violates); " +
    "2 usage; 3 the workload cannot be loaded.",
  ],
};

/**
 * `twz crashtest` on the command line; returns the exit code.
 *
 * @param args Arguments after `crashtest` (parsed by {@linkcode CRASHTEST}).
 */
export async function main(args: string[]): Promise<number> {
  const p = parseArgv(CRASHTEST, args);
  const values = {
    states: p.value("--states") ?? "10000",
    "recovery-states": p.value("--recovery-states"),
    seed: p.value("--seed") ?? "1",
    unit: p.value("--unit") ?? "64",
    json: p.has("--json"),
    replay: p.value("--replay"),
    deep: p.has("--deep"),
  };
  const name = p.arg("WORKLOAD");
  if (p.has("--list")) {
    if (name !== undefined) {
      throw new UsageError(`unexpected argument ${quoted(name)} (see twz crashtest --help)`);
    }
    for (const [name, w] of Object.entries(WORKLOADS)) {
      console.log(`${name.padEnd(16)}${w.summary}`);
    }
    return 0;
  }
  if (name === undefined) {
    throw new UsageError("missing WORKLOAD (twz crashtest --list names the built-in ones)");
  }
  const states = count(values.states, "--states", 1);
  const recoveryStates = values["recovery-states"] === undefined
    ? undefined
    : count(values["recovery-states"], "--recovery-states");
  if (recoveryStates !== undefined && recoveryStates > states) {
    throw new UsageError(
      `--recovery-states (${recoveryStates}) cannot exceed --states (${states}): they are part of it`,
    );
  }
  const seed = count(values.seed, "--seed");
  const unit = Number(values.unit) as 8 | 64;
  // Checked before the workload is loaded: a usage mistake is exit 2 whatever the workload.
  const m = values.replay === undefined
    ? undefined
    : /^(\d+):(\w+)(?:\/(\d+):(\w+))?$/.exec(values.replay);
  if (m === null) {
    throw new UsageError(
      `--replay: ${quoted(values.replay!)} is not POINT:VARIANT or POINT:VARIANT/RPOINT:RVARIANT ` +
        "(like 12:3 or 12:3/0:all)",
    );
  }
  let workload: Workload;
  try {
    workload = await loadWorkload(name);
  } catch (error) {
    if (!(error instanceof WorkloadError)) throw error;
    console.error(`twz: ${error.message}`);
    return 3;
  }
  if (values.deep) workload = withDeepCheck(workload);
  const replayLine = (point: number, variant: string, recovery?: RecoveryAt) =>
    `twz crashtest ${name} --seed ${seed}${unit === 8 ? " --unit 8" : ""}${
      values.deep ? " --deep" : ""
    } --replay ${point}:${variant}${recovery ? `/${recovery.point}:${recovery.variant}` : ""}`;

  if (m !== undefined) {
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

/**
 * `workload` with `twz fsck --deep`'s object check after its own `check`:
 * every problem `checkObjects` reports on the recovered image is one more
 * violation (prefixed `fsck --deep:`). The rest of the workload is its own
 * (a proxy: methods run on the workload itself).
 */
function withDeepCheck(workload: Workload): Workload {
  const check: Workload["check"] = async (kernel: Kernel, journal, ctx) => {
    const own = await workload.check(kernel, journal, ctx);
    const out = own === undefined ? [] : typeof own === "string" ? [own] : [...own];
    for (const p of checkObjects(kernel.port()).problems) {
      out.push(`fsck --deep: ${p.area}${p.id === undefined ? "" : ` ${p.id}`}: ${p.message}`);
    }
    return out;
  };
  return new Proxy(workload, {
    get(target, key) {
      if (key === "check") return check;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

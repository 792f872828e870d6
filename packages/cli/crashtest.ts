/**
 * `twz crashtest`: an adversarial crash-consistency checker for code running
 * on the Twizzler kernel.
 *
 * A workload runs once on an anonymous simulated region with seeded entropy
 * and clock. Before every drain — and at the end of the run — the checker
 * records a *crash point*: the media as it stands, every unit (64-byte line,
 * or 8-byte word with `--unit 8`) that a power failure now could leave
 * different, and each unit's possible contents (see `@twz/hal-sim`'s
 * `crash.ts`). Crash point N means "drain N was the last to complete". For
 * each point it then tries crash states — all of them when few, a sample
 * otherwise — booting a kernel on each crashed image, running `fsck`, and
 * calling the workload's `check` with the journal as it stood at the crash.
 * Every violation comes with a `--replay POINT:VARIANT` that reproduces it.
 *
 * ```
 * twz crashtest WORKLOAD [--states N] [--seed S] [--unit 64|8] [--json] [--replay P:V]
 * ```
 *
 * Exit codes: 0 no violation; 1 violations found (or a replayed state
 * violates); 2 usage; 3 the workload cannot be loaded.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fsck, Kernel } from "@twz/kernel";
import {
  countingClock,
  type CrashPoint,
  openSim,
  openSimFromBytes,
  seededEntropy,
  seededRandom,
  type SimHal,
} from "@twz/hal-sim";
import { Journal, loadWorkload, type Workload, WorkloadError, WORKLOADS } from "./workloads/mod.ts";
import type { JournalSnapshot } from "./workloads/types.ts";
import { positive, UsageError } from "./board.ts";

/** Options for {@linkcode crashtest}. */
export interface CrashtestOptions {
  /** Crash states to try in all (spread over the crash points). @default {10000} */
  states?: number;
  /** Seed of the run (workload choices, entropy) and of sampling. @default {1} */
  seed?: number;
  /** Unit of loss: 64-byte lines, or 8-byte words (torn lines). @default {64} */
  unit?: 8 | 64;
  /** Survival probability of a unit in sampled (`s<k>`) states. @default {0.5} */
  probability?: number;
  /** Stop collecting violation details after this many. @default {50} */
  maxViolations?: number;
  /** Called now and then with states tried so far and the total planned. */
  onProgress?: (done: number, total: number, violations: number) => void;
}

/** One crash state that broke an invariant. */
export interface CrashViolation {
  /** The crash point: drains completed before the crash. */
  point: number;
  /** The crash state at that point (see {@linkcode selectionOf}). */
  variant: string;
  /** Where it showed: boot refused, fsck found problems, or the workload's check. */
  stage: "boot" | "fsck" | "check";
  /** What was wrong (several findings joined by "; "). */
  message: string;
}

/** What {@linkcode crashtest} found. */
export interface CrashtestReport {
  workload: string;
  seed: number;
  unit: number;
  /** Crash states tried. */
  states: number;
  /** Crash points (drains in the run, plus its end). */
  points: number;
  /** Points whose every crash state was tried. */
  exhaustive_points: number;
  /** States that broke an invariant (details for the first `maxViolations`). */
  violations: CrashViolation[];
  violation_count: number;
  /** Wall time of the whole check, and its rate. */
  seconds: number;
  states_per_sec: number;
  /** When the workload itself threw while running (the run is checked up to there). */
  run_error?: string;
}

interface Recorded {
  point: number;
  /** The crash hit before the first boot had finished formatting the image. */
  formatting: boolean;
  crash: CrashPoint;
  journal: JournalSnapshot;
  applied: boolean;
  final: boolean;
}

interface Recording {
  points: Recorded[];
  finalMedia: Uint8Array;
  runError?: Error;
}

async function record(workload: Workload, seed: number, unit: 8 | 64): Promise<Recording> {
  const hal = openSim({ size: workload.imageSize }, {
    entropy: seededEntropy(seed),
    clock: countingClock(),
  });
  const region = hal.region;
  const journal = new Journal();
  const points: Recorded[] = [];
  let last: Recorded | undefined;
  let kernel: Kernel | undefined;
  region.beforeDrain = (completed) => {
    last = {
      point: completed,
      formatting: kernel === undefined,
      crash: region.crashPoint({ unit }),
      journal: journal.snapshot(),
      applied: false,
      final: false,
    };
    points.push(last);
  };
  region.onDrain = () => {
    if (last) last.applied = true;
  };
  let runError: Error | undefined;
  try {
    kernel = Kernel.boot(hal);
    await workload.run({
      kernel,
      hal,
      journal,
      random: seededRandom((seed ^ 0x9e3779b9) >>> 0),
      seed,
    });
  } catch (error) {
    runError = error instanceof Error ? error : new Error(String(error));
  }
  region.beforeDrain = undefined;
  region.onDrain = undefined;
  points.push({
    point: region.stats().drains,
    formatting: kernel === undefined,
    crash: region.crashPoint({ unit }),
    journal: journal.snapshot(),
    applied: false,
    final: true,
  });
  kernel?.halt();
  const finalMedia = region.durableImage();
  hal.close();
  return { points, finalMedia, runError };
}

/**
 * The selection a variant names at a crash point:
 * - `N` (an integer): the N-th state in mixed radix; `0` loses every pending unit;
 * - `all`: every unit keeps its current contents;
 * - `xJ`: every unit keeps its current contents except unit J, which is lost;
 * - `sK`: each unit survives with `probability`, drawn from seed K (and the run's seed).
 *
 * @throws {UsageError} A malformed variant, or one out of range for the point.
 */
export function selectionOf(
  crash: CrashPoint,
  variant: string,
  seed: number,
  probability = 0.5,
): Uint8Array {
  if (/^\d+$/.test(variant)) {
    const n = Number(variant);
    if (n >= crash.count) {
      throw new UsageError(
        `variant ${variant} is out of range: the point has ${crash.count} states`,
      );
    }
    return crash.selection(n);
  }
  if (variant === "all") return crash.policySelection("all");
  const m = /^([xs])(\d+)$/.exec(variant);
  if (!m) throw new UsageError(`"${variant}" is not a crash variant (N, all, xJ or sK)`);
  const k = Number(m[2]);
  if (m[1] === "x") {
    if (k >= crash.units.length) {
      throw new UsageError(`variant ${variant}: the point has ${crash.units.length} pending units`);
    }
    const sel = crash.policySelection("all");
    sel[k] = 0;
    return sel;
  }
  return crash.randomSelection((Math.imul(seed, 0x85ebca6b) ^ (k * 0x27d4eb2f)) >>> 0, probability);
}

/** The variants to try at a point, given a budget of `take` states. */
function variantsFor(crash: CrashPoint, take: number): string[] {
  const count = crash.count;
  if (count <= take) return Array.from({ length: count }, (_, i) => String(i));
  const out = ["0", "all"];
  let j = 0;
  for (let k = 0; out.length < take; k++) {
    if (k % 2 === 0 && j < crash.units.length) out.push(`x${j++}`);
    else out.push(`s${k}`);
  }
  return out.slice(0, take);
}

/** Boot on the crashed image in `rec`, fsck it, and run the workload's check. */
async function recover(
  workload: Workload,
  rec: SimHal,
  p: Recorded,
): Promise<Array<{ stage: CrashViolation["stage"]; message: string }>> {
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(rec, { formatBlank: true });
  } catch (error) {
    // Even a crash in the middle of the very first format must leave an image
    // that boots: format writes the superblock's magic last, so a cut-short
    // format is blank (and formatted again here), never torn.
    return [{ stage: "boot", message: `boot failed: ${(error as Error).message}` }];
  }
  try {
    const report = fsck(rec.region);
    if (!report.clean) {
      return report.problems.map((x) => ({ stage: "fsck", message: `${x.area}: ${x.message}` }));
    }
    let result: unknown = workload.check(kernel, p.journal, {
      point: p.point,
      final: p.final,
      hal: rec,
    });
    if (result instanceof Promise) result = await result;
    // A list of violations; a single string is one violation.
    if (typeof result === "string") return [{ stage: "check", message: result }];
    return Array.isArray(result)
      ? result.map((message) => ({ stage: "check", message: String(message) }))
      : [];
  } catch (error) {
    return [{ stage: "check", message: error instanceof Error ? error.message : String(error) }];
  } finally {
    kernel.halt();
  }
}

/**
 * Run a workload and check it at every crash point.
 *
 * @param workload The workload (see `workloads/types.ts`).
 * @param options Budget, seed, unit of loss, progress.
 * @returns What was tried and every violation, each replayable.
 * @throws {Error} When the recorded crash model disagrees with the simulated
 * media (an internal error of the checker).
 */
export async function crashtest(
  workload: Workload,
  options: CrashtestOptions = {},
): Promise<CrashtestReport> {
  const t0 = performance.now();
  const seed = options.seed ?? 1;
  const unit = options.unit ?? 64;
  const budget = options.states ?? 10_000;
  const maxViolations = options.maxViolations ?? 50;
  const recording = await record(workload, seed, unit);
  const { points } = recording;

  // Spread the budget: points with few states get all of them, the rest share.
  const take = new Map<Recorded, number>();
  let remaining = budget;
  const byCount = [...points].sort((a, b) => a.crash.count - b.crash.count);
  byCount.forEach((p, i) => {
    const share = Math.max(1, Math.floor(remaining / (byCount.length - i)));
    const n = Math.min(p.crash.count, share);
    take.set(p, n);
    remaining -= n;
  });
  const total = [...take.values()].reduce((a, b) => a + b, 0);

  const rec = recoveryHal(workload.imageSize, seed);
  const base = new Uint8Array(workload.imageSize);
  const violations: CrashViolation[] = [];
  let violationCount = 0;
  let states = 0;
  let exhaustive = 0;
  let lastProgress = 0;
  for (const p of points) {
    const variants = variantsFor(p.crash, take.get(p)!);
    if (variants.length === p.crash.count) exhaustive++;
    for (const variant of variants) {
      const sel = selectionOf(p.crash, variant, seed, options.probability);
      rec.region.loadCrashState(base, p.crash, sel);
      const found = await recover(workload, rec, p);
      states++;
      if (found.length > 0) {
        violationCount++;
        if (violations.length < maxViolations) {
          violations.push({
            point: p.point,
            variant,
            stage: found[0].stage,
            message: found.map((f) => f.message).join("; "),
          });
        }
      }
      if (options.onProgress && (states & 63) === 0) {
        const now = performance.now();
        if (now - lastProgress > 100) {
          lastProgress = now;
          options.onProgress(states, total, violationCount);
        }
      }
    }
    if (p.applied) p.crash.materialize(p.crash.drainChoice, base);
  }
  rec.close();
  if (!base.every((b, i) => b === recording.finalMedia[i])) {
    throw new Error("the recorded crash points do not add up to the final media (checker bug)");
  }
  options.onProgress?.(states, total, violationCount);
  const seconds = (performance.now() - t0) / 1000;
  return {
    workload: workload.name,
    seed,
    unit,
    states,
    points: points.length,
    exhaustive_points: exhaustive,
    violations,
    violation_count: violationCount,
    seconds: +seconds.toFixed(3),
    states_per_sec: Math.round(states / seconds),
    run_error: recording.runError?.message,
  };
}

/**
 * The HAL recovery runs on: a `size`-byte region (each crash state reloads
 * all of it) with services seeded from `seed`, so a replay sees what the run saw.
 */
function recoveryHal(size: number, seed: number): SimHal {
  return openSimFromBytes(new Uint8Array(size), {
    entropy: seededEntropy((seed + 1) >>> 0),
    clock: countingClock(),
  });
}

/** What {@linkcode replay} found at one crash state. */
export interface ReplayResult {
  point: number;
  variant: string;
  /** Pending units and what the state did with each. */
  crash: string;
  /** The operation in flight at the crash, if any, and how many were acknowledged. */
  inflight?: string;
  acknowledged: number;
  /** Findings; empty when the state recovers correctly. */
  findings: Array<{ stage: CrashViolation["stage"]; message: string }>;
}

/**
 * Run a workload again and check one crash state.
 *
 * @throws {UsageError} No such crash point or variant in this run.
 */
export async function replay(
  workload: Workload,
  point: number,
  variant: string,
  options: Pick<CrashtestOptions, "seed" | "unit" | "probability"> = {},
): Promise<ReplayResult> {
  const seed = options.seed ?? 1;
  const recording = await record(workload, seed, options.unit ?? 64);
  const base = new Uint8Array(workload.imageSize);
  for (const p of recording.points) {
    if (p.point === point) {
      const sel = selectionOf(p.crash, variant, seed, options.probability);
      const rec = recoveryHal(workload.imageSize, seed);
      rec.region.loadCrashState(base, p.crash, sel);
      const findings = await recover(workload, rec, p);
      rec.close();
      const inflight = p.journal.find((e) => e.state === "started");
      return {
        point,
        variant,
        crash: p.crash.describe(sel),
        inflight: inflight ? `${inflight.op} ${describeArgs(inflight.args)}` : undefined,
        acknowledged: p.journal.filter((e) => e.state === "done").length,
        findings,
      };
    }
    if (p.applied) p.crash.materialize(p.crash.drainChoice, base);
  }
  const last = recording.points[recording.points.length - 1].point;
  throw new UsageError(`this run has crash points 0 to ${last}, not ${point}`);
}

function describeArgs(args: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(
    args,
    (_k, v) =>
      typeof v === "bigint"
        ? v.toString(16).padStart(32, "0")
        : v instanceof Uint8Array
        ? `<${v.length} bytes>`
        : v,
  );
}

const USAGE = `usage: twz crashtest WORKLOAD [--states N] [--seed S] [--unit 64|8] [--json]
                     [--replay POINT:VARIANT] [--list]
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
  const seed = positive(values.seed!, "--seed", true);
  if (values.unit !== "64" && values.unit !== "8") {
    throw new UsageError(`--unit takes 64 or 8, not "${values.unit}"`);
  }
  const unit = Number(values.unit) as 8 | 64;
  const name = positionals[0];
  let workload: Workload;
  try {
    workload = await loadWorkload(name);
  } catch (error) {
    if (!(error instanceof WorkloadError)) throw error;
    console.error(`twz: ${error.message}`);
    return 3;
  }
  const replayLine = (point: number, variant: string) =>
    `twz crashtest ${name} --seed ${seed}${
      unit === 8 ? " --unit 8" : ""
    } --replay ${point}:${variant}`;

  if (values.replay !== undefined) {
    const m = /^(\d+):(\w+)$/.exec(values.replay);
    if (!m) {
      throw new UsageError(`--replay takes POINT:VARIANT (like 12:3), not "${values.replay}"`);
    }
    const r = await replay(workload, Number(m[1]), m[2], { seed, unit });
    if (values.json) {
      console.log(JSON.stringify({ workload: workload.name, seed, ...r }));
    } else {
      console.log(`crash point ${r.point} (after drain ${r.point}), variant ${r.variant}`);
      console.log(`  acknowledged operations: ${r.acknowledged}`);
      console.log(`  in flight: ${r.inflight ?? "nothing"}`);
      console.log(`  crash: ${r.crash}`);
      if (r.findings.length === 0) console.log("  recovered correctly: boot, fsck and check pass");
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
  const report = await crashtest(workload, { states, seed, unit, onProgress });
  if (tty) Deno.stderr.writeSync(enc.encode("\r\x1b[K"));
  if (values.json) {
    console.log(JSON.stringify({
      ...report,
      violations: report.violations.map((x) => ({ ...x, replay: replayLine(x.point, x.variant) })),
    }));
  } else {
    console.log(
      `crashtest ${report.workload}: ${report.states} crash states at ${report.points} crash points (${report.exhaustive_points} exhaustive), seed ${seed}, ${report.states_per_sec} states/s`,
    );
    if (report.run_error) console.log(`  the workload failed while running: ${report.run_error}`);
    for (const x of report.violations) {
      console.log(
        `  VIOLATION at point ${x.point} variant ${x.variant} (${x.stage}): ${x.message}`,
      );
      console.log(`    replay: ${replayLine(x.point, x.variant)}`);
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

/**
 * Replaying one crash state: run a workload again and check the state a
 * violation names, as `twz crashtest --replay P:V[/Q:W]` does.
 *
 * @module
 */
import type { SimHal } from "@twz/hal-sim";
import type { Workload } from "./workload.ts";
import type { CrashViolation, RecoveryAt } from "./report.ts";
import type { CrashtestOptions } from "./engine.ts";
import { CrashStateError, selectionOf } from "./selection.ts";
import {
  type Finding,
  record,
  type Recorded,
  recordRecovery,
  recover,
  recoveryHal,
} from "./_recover.ts";

/** What {@linkcode replay} found at one crash state. */
export interface ReplayResult {
  /** The crash point replayed. */
  point: number;
  /** The crash state at that point. */
  variant: string;
  /** Pending units and what the state did with each. */
  crash: string;
  /** The operation in flight at the crash (name and arguments), if any. */
  inflight?: string | undefined;
  /** How many operations had been acknowledged at the crash. */
  acknowledged: number;
  /** Findings; empty when the state recovers correctly. */
  findings: Array<{ stage: CrashViolation["stage"]; message: string }>;
  /**
   * For a crashed recovery (`P:V/Q:W`): the recovery's crash point and
   * variant, its pending units and their fate, and its number of crash points.
   */
  recovery?: RecoveryAt & { crash: string; points: number };
}

/** Options for {@linkcode replay}: those of the run that found the state. */
export interface ReplayOptions extends Pick<CrashtestOptions, "seed" | "unit" | "probability"> {
  /** Crash the recovery of that state here, and check the recovery after. */
  recovery?: RecoveryAt | undefined;
}

/**
 * Run a workload again and check one crash state: what `--replay P:V[/Q:W]`
 * does with a violation's `point`, `variant` and `recovery`.
 *
 * @param workload The workload that was checked.
 * @param point The crash point: drains completed before the crash.
 * @param variant The crash state at that point (see {@linkcode selectionOf}).
 * @param options The run's seed and unit, and where to crash the recovery.
 * @returns The state's pending units and their fate, and the findings.
 * @throws {CrashStateError} No such crash point or variant in this run.
 *
 * @example Replay the state that loses everything pending at crash point 3
 * ```ts
 * import { replay } from "@twz/crashtest";
 * import { kernelObjects } from "@twz/crashtest/workloads";
 *
 * const r = await replay(kernelObjects, 3, "0");
 * console.log(r.findings); // []
 * ```
 */
export async function replay(
  workload: Workload,
  point: number,
  variant: string,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const seed = options.seed ?? 1;
  const unit = options.unit ?? 64;
  const recording = await record(workload, seed, unit);
  const base = new Uint8Array(workload.imageSize);
  for (const p of recording.points) {
    if (p.point === point) {
      const sel = selectionOf(p.crash, variant, seed, options.probability);
      const rec = recoveryHal(workload.imageSize, seed);
      let findings: Finding[];
      let recovery: ReplayResult["recovery"];
      try {
        if (options.recovery) {
          recovery = await replayRecovery(workload, rec, base, p, sel, unit, {
            ...options.recovery,
            seed,
            probability: options.probability,
          });
          findings = (await recover(workload, rec, p)).findings;
        } else {
          rec.region.loadCrashState(base, p.crash, sel);
          findings = (await recover(workload, rec, p)).findings;
        }
      } finally {
        rec.close();
      }
      const inflight = p.journal.find((e) => e.state === "started");
      return {
        point,
        variant,
        crash: p.crash.describe(sel),
        inflight: inflight ? `${inflight.op} ${describeArgs(inflight.args)}` : undefined,
        acknowledged: p.journal.filter((e) => e.state === "done").length,
        findings,
        ...(recovery ? { recovery } : {}),
      };
    }
    if (p.applied) p.crash.materialize(p.crash.drainChoice, base);
  }
  const last = recording.points[recording.points.length - 1]!.point;
  throw new CrashStateError(`this run has crash points 0 to ${last}, not ${point}`);
}

/**
 * Record the recovery of crash state `sel` of `p`, and load the state its
 * crash point `at.point`, variant `at.variant`, leaves into `rec`.
 *
 * @throws {CrashStateError} The state's recovery fails by itself, or has no such
 * crash point or variant.
 */
async function replayRecovery(
  workload: Workload,
  rec: SimHal,
  base: Uint8Array,
  p: Recorded,
  sel: Uint8Array,
  unit: 8 | 64,
  at: RecoveryAt & { seed: number; probability?: number | undefined },
): Promise<NonNullable<ReplayResult["recovery"]>> {
  const r = await recordRecovery(workload, rec, base, p, sel, unit);
  if (!r) {
    throw new CrashStateError(
      "this state fails to recover even without a crash in its recovery: replay it without /Q:W",
    );
  }
  const media = r.start;
  for (const q of r.points) {
    if (q.point === at.point) {
      const qsel = selectionOf(q.crash, at.variant, at.seed, at.probability);
      rec.region.loadCrashState(media, q.crash, qsel);
      return {
        point: at.point,
        variant: at.variant,
        crash: q.crash.describe(qsel),
        points: r.points.length,
      };
    }
    if (q.applied) q.crash.materialize(q.crash.drainChoice, media);
  }
  throw new CrashStateError(
    r.points.length === 0
      ? "the recovery of this state has no crash points (it drains nothing)"
      : `the recovery of this state has crash points 0 to ${
        r.points[r.points.length - 1]!.point
      }, not ${at.point}`,
  );
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

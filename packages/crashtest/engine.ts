/**
 * The crash checker: {@linkcode crashtest} runs a workload and checks it at
 * every crash point, and the recovery of some crash states at every crash
 * point of that recovery.
 *
 * @module
 */
import type { CrashPoint, SimHal } from "@twz/hal-sim";
import type { Workload } from "./workload.ts";
import type { CrashtestReport, CrashViolation, RecoveryAt } from "./report.ts";
import { selectionOf, variantsFor } from "./selection.ts";
import {
  type Finding,
  record,
  type Recorded,
  recordRecovery,
  recover,
  recoveryHal,
  type RecoveryRecording,
  sameBytes,
} from "./_recover.ts";

/** Options for {@linkcode crashtest}. */
export interface CrashtestOptions {
  /** Crash states to try in all (spread over the crash points). @default {10000} */
  states?: number | undefined;
  /** Seed of the run (workload choices, entropy) and of sampling. @default {1} */
  seed?: number | undefined;
  /** Unit of loss: 64-byte lines, or 8-byte words (torn lines). @default {64} */
  unit?: 8 | 64 | undefined;
  /** Survival probability of a unit in sampled (`s<k>`) states. @default {0.5} */
  probability?: number | undefined;
  /**
   * Of `states`, how many crash the recovery of a crash state at its own
   * crash points (and recover once more). @default {20 % of states}
   */
  recoveryStates?: number | undefined;
  /** Stop collecting violation details after this many. @default {50} */
  maxViolations?: number | undefined;
  /** Called now and then with states tried so far and the total planned. */
  onProgress?: ((done: number, total: number, violations: number) => void) | undefined;
}

/** Share of `--states` spent crashing recoveries, unless `recoveryStates` says otherwise. */
export const RECOVERY_SHARE = 0.2;

/** The order in which a point's states have their recovery crashed: strict first, `all` last. */
function recoveryOrder<T extends { variant: string }>(states: T[]): T[] {
  const rest = states.filter((c) => c.variant !== "0" && c.variant !== "all");
  return [
    ...states.filter((c) => c.variant === "0"),
    ...rest,
    ...states.filter((c) => c.variant === "all"),
  ];
}

/** A crash state of the run whose recovery is crashed, and what was tried of it. */
interface Candidate {
  /** The state's variant at its crash point. */
  variant: string;
  /** Recovery states tried, as `point:selection`. */
  tried: Set<string>;
  /** Recovery crash points where something was tried. */
  visited: Set<number>;
  /** The budget given so far, spread over the recovery's crash points. */
  given: number;
  /** Nothing more to try: its recovery drains nothing pending, or every state was tried. */
  done: boolean;
}

/**
 * Crash the recovery recorded in `r` at its crash points (`c.given` states
 * spread over them, at most `cap` not tried before), recover each crashed
 * recovery once more, and check it; `onState` hears of every state. The
 * state that loses everything the recovery wrote before its first drain is
 * the recorded state itself, so it is skipped.
 *
 * @throws {Error} The recovery's crash points do not add up to its end (a checker bug).
 */
async function crashRecovery(
  workload: Workload,
  rec: SimHal,
  p: Recorded,
  r: RecoveryRecording,
  c: Candidate,
  cap: number,
  seed: number,
  probability: number | undefined,
  onState: (point: number, variant: string, found: Finding[]) => void,
): Promise<{ states: number; points: number }> {
  const take = spread(r.points, c.given, false);
  const base = r.start;
  let states = 0;
  let capacity = 0;
  const visited = c.visited.size;
  for (const q of r.points) {
    const skip = q.point === 0 ? 1 : 0; // state 0 of point 0 is the recorded state itself
    capacity += q.crash.count - skip;
    const n = take.get(q)!;
    for (const variant of n > 0 && states < cap ? variantsFor(q.crash, n + skip, true) : []) {
      if (states >= cap) break;
      const sel = selectionOf(q.crash, variant, seed, probability);
      const key = `${q.point}:${sel.join(",")}`;
      if ((skip === 1 && sel.every((x) => x === 0)) || c.tried.has(key)) continue;
      c.tried.add(key);
      c.visited.add(q.point);
      rec.region.loadCrashState(base, q.crash, sel);
      const { findings } = await recover(workload, rec, p);
      onState(q.point, variant, findings);
      states++;
    }
    if (q.applied) q.crash.materialize(q.crash.drainChoice, base);
  }
  if (!sameBytes(base, r.end)) {
    throw new Error("a recovery's crash points do not add up to its end (checker bug)");
  }
  if (states === 0 || c.tried.size >= capacity) c.done = true;
  return { states, points: c.visited.size - visited };
}

/**
 * Spread `budget` states over crash points: points with few states get all
 * of them, the rest share. With `atLeastOne`, every point gets a state
 * whatever the budget.
 */
function spread<T extends { crash: CrashPoint }>(
  points: readonly T[],
  budget: number,
  atLeastOne: boolean,
): Map<T, number> {
  const take = new Map<T, number>();
  let remaining = budget;
  const byCount = [...points].sort((a, b) => a.crash.count - b.crash.count);
  byCount.forEach((p, i) => {
    const share = Math.floor(remaining / (byCount.length - i));
    const n = Math.min(p.crash.count, atLeastOne ? Math.max(1, share) : share);
    take.set(p, n);
    remaining -= n;
  });
  return take;
}

/** Recovery crash states per recovered state, at most (the rest go to other states). */
const RECOVERY_STATES_PER_RUN = 8;
/** Recoveries recorded per crash point that turned out to have nothing to crash, at most. */
const RECOVERY_IDLE_RUNS = 32;

/**
 * Run a workload and check it at every crash point, and the recovery of
 * some crash states at every crash point of that recovery.
 *
 * @param workload The workload (see {@linkcode Workload}).
 * @param options Budget, seed, unit of loss, progress.
 * @returns What was tried and every violation, each replayable.
 * @throws {Error} When the recorded crash model disagrees with the simulated
 * media (an internal error of the checker).
 *
 * @example Check a built-in workload on 8-byte units (torn lines)
 * ```ts
 * import { crashtest } from "@twz/crashtest";
 * import { kernelObjects } from "@twz/crashtest/workloads";
 *
 * const report = await crashtest(kernelObjects, { states: 200, seed: 2, unit: 8 });
 * console.log(report.points > 0, report.violation_count); // true 0
 * ```
 */
export async function crashtest(
  workload: Workload,
  options: CrashtestOptions = {},
): Promise<CrashtestReport> {
  const t0 = performance.now();
  const seed = options.seed ?? 1;
  const unit = options.unit ?? 64;
  const budget = options.states ?? 10_000;
  const recoveryBudget = Math.min(
    budget,
    options.recoveryStates ?? Math.floor(budget * RECOVERY_SHARE),
  );
  const maxViolations = options.maxViolations ?? 50;
  const recording = await record(workload, seed, unit);
  const { points } = recording;

  const take = spread(points, budget - recoveryBudget, true);
  const total = [...take.values()].reduce((a, b) => a + b, 0) + recoveryBudget;

  const rec = recoveryHal(workload.imageSize, seed);
  const base = new Uint8Array(workload.imageSize);
  const violations: CrashViolation[] = [];
  let violationCount = 0;
  let states = 0;
  let exhaustive = 0;
  let recoveryStates = 0;
  let recoveryPoints = 0;
  let recoveryRuns = 0;
  let lastProgress = 0;
  const note = (p: Recorded, variant: string, found: Finding[], recovery?: RecoveryAt) => {
    states++;
    if (found.length > 0) {
      violationCount++;
      if (violations.length < maxViolations) {
        violations.push({
          point: p.point,
          variant,
          stage: found[0]!.stage,
          message: found.map((f) => f.message).join("; "),
          ...(recovery ? { recovery } : {}),
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
  };
  // The run's crash states; those whose recovery writes something durable
  // are candidates for crashing that recovery.
  const candidates: Candidate[][] = [];
  for (const p of points) {
    const variants = variantsFor(p.crash, take.get(p)!);
    if (variants.length === p.crash.count) exhaustive++;
    const list: Candidate[] = [];
    for (const variant of variants) {
      const sel = selectionOf(p.crash, variant, seed, options.probability);
      rec.region.loadCrashState(base, p.crash, sel);
      const { findings, writes } = await recover(workload, rec, p, recoveryBudget > 0);
      note(p, variant, findings);
      if (findings.length === 0 && writes > 0) {
        list.push({ variant, tried: new Set(), visited: new Set(), given: 0, done: false });
      }
    }
    candidates.push(recoveryOrder(list));
    if (p.applied) p.crash.materialize(p.crash.drainChoice, base);
  }
  if (!sameBytes(base, recording.finalMedia)) {
    throw new Error("the recorded crash points do not add up to the final media (checker bug)");
  }
  // Crash recoveries: each round walks the run again (rebuilding the media
  // point by point) and gives every point with candidates left its share of
  // what remains of the budget; a first round tries few states of many
  // recoveries, later ones more of each, until the budget or the candidates
  // run out.
  const runStates = states;
  const tRecovery = performance.now();
  let recoveryLeft = recoveryBudget;
  for (let round = 0; recoveryLeft > 0; round++) {
    let live = candidates.filter((list) => list.some((c) => !c.done)).length;
    if (live === 0) break;
    let progress = false;
    base.fill(0);
    for (const [i, p] of points.entries()) {
      const list = candidates[i]!.filter((c) => !c.done);
      if (list.length > 0 && recoveryLeft > 0) {
        let share = live === 1 ? recoveryLeft : Math.ceil(recoveryLeft / live);
        live--;
        let idle = 0;
        for (const c of list) {
          if (share <= 0 || idle >= RECOVERY_IDLE_RUNS) break;
          const sel = selectionOf(p.crash, c.variant, seed, options.probability);
          const r = await recordRecovery(workload, rec, base, p, sel, unit);
          if (!r || r.points.every((q) => q.crash.count <= 1)) {
            c.done = true; // nothing pending at any drain: crashing it gives the state itself
            idle++;
            continue;
          }
          if (c.given === 0) recoveryRuns++;
          const cap = round === 0 ? Math.min(share, RECOVERY_STATES_PER_RUN) : share;
          c.given += cap;
          const tried = await crashRecovery(
            workload,
            rec,
            p,
            r,
            c,
            cap,
            seed,
            options.probability,
            (q, w, found) => note(p, c.variant, found, { point: q, variant: w }),
          );
          recoveryStates += tried.states;
          recoveryPoints += tried.points;
          share -= tried.states;
          recoveryLeft -= tried.states;
          if (tried.states > 0) progress = true;
        }
      }
      if (p.applied) p.crash.materialize(p.crash.drainChoice, base);
    }
    if (!progress) break;
  }
  rec.close();
  options.onProgress?.(states, total, violationCount);
  const tEnd = performance.now();
  const seconds = (tEnd - t0) / 1000;
  const runSeconds = (tRecovery - t0) / 1000;
  const recoverySeconds = (tEnd - tRecovery) / 1000;
  return {
    workload: workload.name,
    seed,
    unit,
    states,
    recovery_states: recoveryStates,
    recovery_points: recoveryPoints,
    recovery_runs: recoveryRuns,
    points: points.length,
    exhaustive_points: exhaustive,
    violations,
    violation_count: violationCount,
    seconds: +seconds.toFixed(3),
    states_per_sec: Math.round(states / seconds),
    run_seconds: +runSeconds.toFixed(3),
    run_states_per_sec: Math.round(runStates / runSeconds),
    recovery_seconds: +recoverySeconds.toFixed(3),
    recovery_states_per_sec: recoveryStates > 0 ? Math.round(recoveryStates / recoverySeconds) : 0,
    run_error: recording.runError?.message,
  };
}

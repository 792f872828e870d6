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
 * Recovery itself is crashed too: for some crash states (a fifth of the
 * budget by default), the recovery — the kernel's boot and the workload's
 * `recover` — is recorded with its own crash points, crashed at each with
 * the same policies, recovered once more and checked, so recovery is shown
 * idempotent rather than assumed. Such a violation replays as
 * `--replay P:V/Q:W` (recovery point Q, variant W).
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
import { fsck, FsckCache, Kernel } from "@twz/kernel";
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
import type { CheckContext, JournalSnapshot } from "./workloads/types.ts";
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
  /**
   * Of `states`, how many crash the recovery of a crash state at its own
   * crash points (and recover once more). @default {20 % of states}
   */
  recoveryStates?: number;
  /** Stop collecting violation details after this many. @default {50} */
  maxViolations?: number;
  /** Called now and then with states tried so far and the total planned. */
  onProgress?: (done: number, total: number, violations: number) => void;
}

/** Where a crash struck a recovery: its crash point (drains it had completed) and variant. */
export interface RecoveryAt {
  point: number;
  variant: string;
}

/** Share of `--states` spent crashing recoveries, unless `recoveryStates` says otherwise. */
export const RECOVERY_SHARE = 0.2;

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
  /**
   * Set when the crash struck the recovery of state `point`:`variant`, and
   * the recovery after it went wrong: where in that recovery.
   */
  recovery?: RecoveryAt;
}

/** What {@linkcode crashtest} found. */
export interface CrashtestReport {
  workload: string;
  seed: number;
  unit: number;
  /** Crash states tried (`recovery_states` included). */
  states: number;
  /** Of those, states of a crashed recovery (a crash state recovered, crashed again). */
  recovery_states: number;
  /** Crash points of recoveries those states were taken at. */
  recovery_points: number;
  /** Crash states whose recovery was crashed. */
  recovery_runs: number;
  /** Crash points (drains in the run, plus its end). */
  points: number;
  /** Points whose every crash state was tried. */
  exhaustive_points: number;
  /** States that broke an invariant (details for the first `maxViolations`). */
  violations: CrashViolation[];
  violation_count: number;
  /** Wall time of the whole check, and its rate (all states, recovery states included). */
  seconds: number;
  states_per_sec: number;
  /**
   * Wall time of the run's crash states: recording the run, then loading,
   * recovering, fsck-ing and checking each state (`states - recovery_states`
   * of them); and their rate.
   */
  run_seconds: number;
  run_states_per_sec: number;
  /**
   * Wall time of crashing recoveries: recording the recovery of each chosen
   * state (a crash point at every drain of it), then loading, recovering,
   * fsck-ing and checking each of its crash states; and the rate of
   * `recovery_states` (0 when there were none).
   */
  recovery_seconds: number;
  recovery_states_per_sec: number;
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
  region.recordHistory(true); // values lines held at earlier drains are outcomes too
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

/**
 * The variants to try at a point, given a budget of `take` states: all of
 * them when they fit, else strict, all, then drop-one and random in turn
 * (`randomFirst`: a random one before the first drop-one, so that even three
 * states try each policy).
 */
function variantsFor(crash: CrashPoint, take: number, randomFirst = false): string[] {
  const count = crash.count;
  if (count <= take) return Array.from({ length: count }, (_, i) => String(i));
  const out = ["0", "all"];
  let j = 0;
  for (let k = randomFirst ? 1 : 0; out.length < take; k++) {
    if (k % 2 === 0 && j < crash.units.length) out.push(`x${j++}`);
    else out.push(`s${k}`);
  }
  return out.slice(0, take);
}

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

/** Whether two images are equal (a word at a time where they are word-aligned). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let i = 0;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const n = a.length >>> 2;
    const x = new Int32Array(a.buffer, a.byteOffset, n);
    const y = new Int32Array(b.buffer, b.byteOffset, n);
    for (let w = 0; w < n; w++) if (x[w] !== y[w]) return false;
    i = n * 4;
  }
  for (; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What went wrong in one crash state: where it showed, and what. */
type Finding = { stage: CrashViolation["stage"]; message: string };

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function contextOf(rec: SimHal, p: Recorded): CheckContext {
  return { point: p.point, final: p.final, hal: rec };
}

/**
 * Recovery on the crashed image in `rec`: the kernel's boot (which replays
 * its metadata log), then the workload's `recover` (a session opening, which
 * may replay libtwz's transaction log). Returns the kernel, or what failed.
 */
async function bootAndRecover(
  workload: Workload,
  rec: SimHal,
  p: Recorded,
): Promise<{ kernel?: Kernel; findings: Finding[] }> {
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(rec, { formatBlank: true });
  } catch (error) {
    // Even a crash in the middle of the very first format must leave an image
    // that boots: format writes the superblock's magic last, so a cut-short
    // format is blank (and formatted again here), never torn.
    return { findings: [{ stage: "boot", message: `boot failed: ${(error as Error).message}` }] };
  }
  if (workload.recover) {
    try {
      const r = workload.recover(kernel, contextOf(rec, p));
      if (r instanceof Promise) await r;
    } catch (error) {
      kernel.halt();
      return {
        findings: [{ stage: "check", message: `session recovery failed: ${messageOf(error)}` }],
      };
    }
  }
  return { kernel, findings: [] };
}

/**
 * Per recovery HAL, the verdicts of fsck's slot checks: the crash states fsck
 * sees there differ from one another in a few lines, so only the slots whose
 * bytes changed since the last state are checked again (same reports).
 */
const fsckCaches = new WeakMap<SimHal, FsckCache>();

function fsckCacheOf(rec: SimHal): FsckCache {
  let cache = fsckCaches.get(rec);
  if (!cache) fsckCaches.set(rec, cache = new FsckCache());
  return cache;
}

/** `fsck` and the workload's check on a recovered kernel; halts it. */
async function verify(
  workload: Workload,
  rec: SimHal,
  kernel: Kernel,
  p: Recorded,
): Promise<Finding[]> {
  try {
    const report = fsck(rec.region, { cache: fsckCacheOf(rec) });
    if (!report.clean) {
      return report.problems.map((x) => ({ stage: "fsck", message: `${x.area}: ${x.message}` }));
    }
    let result: unknown = workload.check(kernel, p.journal, contextOf(rec, p));
    if (result instanceof Promise) result = await result;
    // A list of violations; a single string is one violation.
    if (typeof result === "string") return [{ stage: "check", message: result }];
    return Array.isArray(result)
      ? result.map((message) => ({ stage: "check", message: String(message) }))
      : [];
  } catch (error) {
    return [{ stage: "check", message: messageOf(error) }];
  } finally {
    kernel.halt();
  }
}

/**
 * Recover the crashed image in `rec`, fsck it, and run the workload's check.
 * Also says how many of recovery's drains changed the media (what crashing
 * the recovery can tell apart from the state itself), with `watch`.
 */
async function recover(
  workload: Workload,
  rec: SimHal,
  p: Recorded,
  watch = false,
): Promise<{ findings: Finding[]; writes: number }> {
  let writes = 0;
  const region = rec.region;
  if (watch) region.beforeDrain = () => void (writes += region.flushedChanges(1) > 0 ? 1 : 0);
  let r: Awaited<ReturnType<typeof bootAndRecover>>;
  try {
    r = await bootAndRecover(workload, rec, p);
  } finally {
    region.beforeDrain = undefined;
  }
  if (!r.kernel) return { findings: r.findings, writes };
  return { findings: await verify(workload, rec, r.kernel, p), writes };
}

/** One crash point of a recovery: `point` of its drains had completed. */
interface RecoveryPoint {
  point: number;
  crash: CrashPoint;
  applied: boolean;
}

/** The crash points of one recovery, recorded as the run's are. */
interface RecoveryRecording {
  points: RecoveryPoint[];
  /** The media when recovery began (the crash state), and when it ended. */
  start: Uint8Array;
  end: Uint8Array;
}

/**
 * Load crash state `sel` of `p` (over `base`, the media at `p`) and recover
 * it with crash recording armed: before every drain of the recovery, and at
 * its end when something is still pending, a crash point. `undefined` when
 * recovery itself fails (the state's own check reports that).
 */
async function recordRecovery(
  workload: Workload,
  rec: SimHal,
  base: Uint8Array,
  p: Recorded,
  sel: Uint8Array,
  unit: 8 | 64,
): Promise<RecoveryRecording | undefined> {
  const region = rec.region;
  region.loadCrashState(base, p.crash, sel);
  const start = region.durableImage();
  const points: RecoveryPoint[] = [];
  let last: RecoveryPoint | undefined;
  region.recordHistory(true);
  region.beforeDrain = () => {
    last = { point: points.length, crash: region.crashPoint({ unit }), applied: false };
    points.push(last);
  };
  region.onDrain = () => {
    if (last) last.applied = true;
  };
  let kernel: Kernel | undefined;
  try {
    kernel = (await bootAndRecover(workload, rec, p)).kernel;
    region.beforeDrain = undefined;
    region.onDrain = undefined;
    if (!kernel) return undefined;
    const end = region.crashPoint({ unit });
    if (end.units.length > 0) points.push({ point: points.length, crash: end, applied: false });
    kernel.halt();
    return { points, start, end: region.durableImage() };
  } finally {
    region.beforeDrain = undefined;
    region.onDrain = undefined;
    region.recordHistory(false);
  }
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
          stage: found[0].stage,
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
      const list = candidates[i].filter((c) => !c.done);
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
  /**
   * For a crashed recovery (`P:V/Q:W`): the recovery's crash point and
   * variant, its pending units and their fate, and its number of crash points.
   */
  recovery?: RecoveryAt & { crash: string; points: number };
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
  options: Pick<CrashtestOptions, "seed" | "unit" | "probability"> & {
    /** Crash the recovery of that state here, and check the recovery after. */
    recovery?: RecoveryAt;
  } = {},
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
  const last = recording.points[recording.points.length - 1].point;
  throw new UsageError(`this run has crash points 0 to ${last}, not ${point}`);
}

/**
 * Record the recovery of crash state `sel` of `p`, and load the state its
 * crash point `at.point`, variant `at.variant`, leaves into `rec`.
 *
 * @throws {UsageError} The state's recovery fails by itself, or has no such
 * crash point or variant.
 */
async function replayRecovery(
  workload: Workload,
  rec: SimHal,
  base: Uint8Array,
  p: Recorded,
  sel: Uint8Array,
  unit: 8 | 64,
  at: RecoveryAt & { seed: number; probability?: number },
): Promise<NonNullable<ReplayResult["recovery"]>> {
  const r = await recordRecovery(workload, rec, base, p, sel, unit);
  if (!r) {
    throw new UsageError(
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
  throw new UsageError(
    r.points.length === 0
      ? "the recovery of this state has no crash points (it drains nothing)"
      : `the recovery of this state has crash points 0 to ${
        r.points[r.points.length - 1].point
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
  const name = positionals[0];
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
    const recovery = m[3] === undefined ? undefined : { point: Number(m[3]), variant: m[4] };
    const r = await replay(workload, Number(m[1]), m[2], { seed, unit, recovery });
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

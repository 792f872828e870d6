/**
 * What the crash checker reports: the violations it found, where, and how
 * many states it tried. Every violation names the crash state that shows it
 * (`point`, `variant`, and for a crashed recovery `recovery`), which
 * `replay` reproduces.
 *
 * @module
 */

/** Where a crash struck a recovery: its crash point (drains it had completed) and variant. */
export interface RecoveryAt {
  /** The recovery's crash point: how many of its drains had completed. */
  point: number;
  /** The crash state at that point (see `selectionOf`). */
  variant: string;
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
  /**
   * Set when the crash struck the recovery of state `point`:`variant`, and
   * the recovery after it went wrong: where in that recovery.
   */
  recovery?: RecoveryAt;
}

/** What {@linkcode crashtest} found. */
export interface CrashtestReport {
  /** The workload's name. */
  workload: string;
  /** The seed of the run and of sampling. */
  seed: number;
  /** The unit of loss in bytes: 64 (lines) or 8 (words: torn lines). */
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
  /** States that broke an invariant, all of them. */
  violation_count: number;
  /** Wall time of the whole check in seconds (all states, recovery states included). */
  seconds: number;
  /** The rate of the whole check: all states per second. */
  states_per_sec: number;
  /**
   * Wall time of the run's crash states: recording the run, then loading,
   * recovering, fsck-ing and checking each state (`states - recovery_states`
   * of them); and their rate.
   */
  run_seconds: number;
  /** The rate of the run's crash states (see `run_seconds`). */
  run_states_per_sec: number;
  /**
   * Wall time of crashing recoveries: recording the recovery of each chosen
   * state (a crash point at every drain of it), then loading, recovering,
   * fsck-ing and checking each of its crash states; and the rate of
   * `recovery_states` (0 when there were none).
   */
  recovery_seconds: number;
  /** The rate of the states of crashed recoveries (see `recovery_seconds`). */
  recovery_states_per_sec: number;
  /** When the workload itself threw while running (the run is checked up to there). */
  run_error?: string | undefined;
}

/**
 * The shape every `twz bench` case shares. A bench module exports
 * `run(options: BenchOptions): Promise<BenchResult[]>`; `twz bench NAME`
 * prints each result as one JSON line with `--json`, or as a table row.
 *
 * @module
 */

/** Options every benchmark receives from the command line. */
export interface BenchOptions {
  /** HAL plugin name (`sim` or `pmem`). */
  hal: string;
  /**
   * Path of the new image a benchmark writes (it must not exist; removed
   * at the end unless `keep`); absent: a temporary folder, removed.
   */
  image?: string | undefined;
  /** Leave the `image` file in place at the end (`--keep`). @default {false} */
  keep?: boolean | undefined;
  /** Operations per measured round. */
  ops?: number | undefined;
  /** Measured rounds; the median is reported. */
  rounds?: number | undefined;
  /** Plugin settings passed to `open` (`--set key=value`). */
  settings?: Record<string, string> | undefined;
}

/** One result line. `case` names what was measured; other fields are figures. */
export interface BenchResult {
  bench: string;
  case: string;
  hal?: string;
  ops: number;
  ns_per_op?: number;
  ops_per_sec?: number;
  [figure: string]: string | number | boolean | undefined;
}

/** Median of a non-empty list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** What {@linkcode latencyFigures} makes of per-round samples of one case. */
export interface LatencyFigures {
  /** Samples over every round. */
  ops: number;
  /** Median of all samples, ns. */
  ns_per_op: number;
  /** 99th percentile, ns. */
  p99_ns: number;
  /** Mean, ns. */
  mean_ns: number;
  /** Smallest per-round median, ns. */
  round_median_min_ns: number;
  /** Largest per-round median, ns. */
  round_median_max_ns: number;
}

/**
 * The latency figures of one case from its per-round samples (each a list
 * of single-operation times in milliseconds): median, 99th percentile and
 * mean over all of them, and the range of the per-round medians, in
 * nanoseconds (rounded; `ns_per_op` is the median).
 */
export function latencyFigures(rounds: readonly Float64Array[]): LatencyFigures {
  const all = new Float64Array(rounds.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of rounds) {
    all.set(a, at);
    at += a.length;
  }
  all.sort();
  const pick = (p: number) => all[Math.min(all.length - 1, Math.floor(p * all.length))]! * 1e6;
  const roundMedians = rounds.map((a) => median([...a]) * 1e6);
  return {
    ops: all.length,
    ns_per_op: Math.round(pick(0.5)),
    p99_ns: Math.round(pick(0.99)),
    mean_ns: Math.round((all.reduce((sum, x) => sum + x, 0) / all.length) * 1e6),
    round_median_min_ns: Math.round(Math.min(...roundMedians)),
    round_median_max_ns: Math.round(Math.max(...roundMedians)),
  };
}

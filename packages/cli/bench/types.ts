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
  /** Image path; a benchmark makes a temporary one when absent. */
  image?: string | undefined;
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

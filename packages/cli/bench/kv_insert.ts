/**
 * `twz bench kv-insert`: 100,000 inserts (8-byte keys, 16-byte values) into a
 * persistent hash map, one durable transaction each; prints `ops_per_sec` and
 * `drains_per_op`.
 *
 * @module
 */
import type { BenchOptions, BenchResult } from "./types.ts";
import { runKv } from "./_kv.ts";

/** Run the insert benchmark. */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return runKv(opts, "insert");
}

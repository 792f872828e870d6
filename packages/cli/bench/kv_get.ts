/**
 * `twz bench kv-get`: lookups in the persistent hash map built by the
 * kv-insert workload (`get` decodes a copy of the value; `locate` finds it in
 * place).
 *
 * @module
 */
import type { BenchOptions, BenchResult } from "./types.ts";
import { runKv } from "./_kv.ts";

/** Run the lookup benchmark. */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return runKv(opts, "get");
}

/**
 * The built-in crash-test workloads, as values: `twz crashtest NAME` runs
 * them (loaded lazily through `WORKLOADS` in `@twz/crashtest`); tests and
 * benchmarks import them here, and the heap and kv workloads come in
 * shorter or longer variants.
 *
 * @example A shorter kv run, crash-tested
 * ```ts
 * import { crashtest } from "@twz/crashtest";
 * import { makeKvWorkload } from "@twz/crashtest/workloads";
 *
 * const report = await crashtest(makeKvWorkload({ ops: 4 }), { states: 50 });
 * console.log(report.violation_count); // 0
 * ```
 *
 * @module
 */
export { workload as kernelObjects } from "./kernel_objects.ts";
export { workload as naming } from "./naming.ts";
export { type HeapWorkloadOptions, makeHeapWorkload, workload as heap } from "./heap.ts";
export { type KvWorkloadOptions, makeKvWorkload, workload as kv } from "./kv.ts";

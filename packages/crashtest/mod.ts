/**
 * The crash checker as a library: crash-test your own persistent structure
 * the way `twz crashtest` tests the built-in ones.
 *
 * A {@linkcode Workload} runs once on a kernel booted on a simulated region
 * (hal-sim), recording each operation in a {@linkcode Journal}.
 * {@linkcode crashtest} records a *crash point* before every drain of that
 * run — the media as it stands and every unit a power failure now could lose
 * or keep — and for each point tries crash states (all of them when few, a
 * sample otherwise): it boots a kernel on the crashed image, runs the
 * workload's `recover`, `fsck`, and the workload's `check` with the journal
 * as it stood at the crash. Recovery is crashed too: for some crash states,
 * the recovery is recorded with its own crash points, crashed at each,
 * recovered once more and checked. Every violation names its crash state,
 * which {@linkcode replay} reproduces.
 *
 * The built-in workloads are in `@twz/crashtest/workloads` (and by name in
 * {@linkcode WORKLOADS}); a workload module on disk loads with
 * {@linkcode loadWorkload}.
 *
 * | Subpath | What |
 * | --- | --- |
 * | `@twz/crashtest` | {@linkcode crashtest}, {@linkcode replay}, {@linkcode Journal}, {@linkcode Workload}, {@linkcode loadWorkload} |
 * | `@twz/crashtest/workloads` | the built-in workloads as values (kernel objects, naming, heap, kv, …) |
 * | `@twz/crashtest/deep-check` | the deep check of an image (`twz fsck --deep`): `fsckImageFile`, `deepCheck`, the undo file |
 *
 * @example A flag that must not be set before the data it guards
 * ```ts
 * import { crashtest, type Workload } from "@twz/crashtest";
 *
 * const flagged: Workload = {
 *   name: "flag",
 *   imageSize: 320 * 1024,
 *   run({ kernel, journal }) {
 *     const id = journal.record("create", {}, () => kernel.create({ size: 4096 }));
 *     journal.record("publish", { id }, () => {
 *       const m = kernel.map(id);
 *       m.bytes.fill(7, 64, 128);
 *       m.persist(64, 64); // the data first...
 *       m.bytes[0] = 1;
 *       m.persist(0, 1); // ...then the flag
 *     });
 *   },
 *   check(kernel, journal) {
 *     const create = journal.find((e) => e.op === "create" && e.state === "done");
 *     if (!create) return [];
 *     const bytes = kernel.map(create.result as bigint).bytes;
 *     return bytes[0] === 1 && bytes[64] !== 7 ? ["flag set, data missing"] : [];
 *   },
 * };
 * const report = await crashtest(flagged, { states: 200 });
 * console.log(report.violation_count); // 0
 * ```
 *
 * @module
 */
export { crashtest, type CrashtestOptions, RECOVERY_SHARE } from "./engine.ts";
export { replay, type ReplayOptions, type ReplayResult } from "./replay.ts";
export type { CrashtestReport, CrashViolation, RecoveryAt } from "./report.ts";
export { CrashStateError, selectionOf } from "./selection.ts";
export {
  type CheckContext,
  Journal,
  type JournalEntry,
  type JournalSnapshot,
  type Workload,
  type WorkloadContext,
} from "./workload.ts";
export { loadWorkload, MAX_WORKLOAD_IMAGE, WorkloadError, WORKLOADS } from "./load.ts";

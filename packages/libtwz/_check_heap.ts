/**
 * The heap checker: the heap collections (and the heap workload) lay out
 * after the base's root words: its header, a walk of its blocks and of its
 * free lists, which must agree. Private to libtwz; the public entry is
 * `check.ts`.
 *
 * @module
 */
import type { ObjID } from "@twz/kernel/abi";
import { Heap } from "./heap.ts";
import { type CheckContext, HEAP_AT, type Target } from "./_check_common.ts";

/**
 * Check the heap at `HEAP_AT` of object `id` (its magic is there).
 *
 * @param ctx The run.
 * @param id The object.
 * @param obj The object, read-only.
 */
export function checkHeap(ctx: CheckContext, id: ObjID, obj: Target): void {
  const { problem, checked } = ctx;
  checked.heaps++;
  const heapHeader = Heap.headerProblem(obj, HEAP_AT, true);
  if (heapHeader !== undefined) {
    return void problem(id, "heap", `heap at ${HEAP_AT}: header damaged: ${heapHeader}`);
  }
  try {
    const heap = new Heap(obj, HEAP_AT);
    const walk = heap.check();
    if (walk.problem) return void problem(id, "heap", `heap at ${HEAP_AT}: ${walk.problem}`);
    const lists = heap.checkFreeLists();
    if (lists.problem) return void problem(id, "heap", `heap at ${HEAP_AT}: ${lists.problem}`);
    if (lists.free !== walk.free) {
      problem(
        id,
        "heap",
        `heap at ${HEAP_AT}: ${walk.free} bytes in free blocks but ${lists.free} on the free lists`,
      );
    }
  } catch (e) {
    problem(id, "heap", `heap at ${HEAP_AT}: ${(e as Error).message}`);
  }
}

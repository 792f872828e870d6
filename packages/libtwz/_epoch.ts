/**
 * Revocation epochs, libtwz's side (docs/SECURITY.md). The kernel adds one
 * to a thread's epoch word (`port.epoch`) whenever it withdraws one of the
 * thread's mappings (a capability removed, a key rotated, a mask set, a
 * context detached); the withdrawn mapping's bytes go empty at the thread's
 * next system call. A session compares the word with the value it last
 * saw — one load and a compare — when it maps, when a pointer is resolved
 * through the FOT cache and on each memoized pointer follow; when it moved,
 * the session makes a system call (so the withdrawals arrive), gives the
 * withdrawn mappings back and clears its FOT caches, so the next use maps
 * again and the kernel decides.
 *
 * The hot checks are plain loads, not `Atomics.load` (a call in V8: ~4.5 ns
 * per pointer follow in `twz bench ptr-resolve`, against ~0.4 ns): no
 * ordering rides on the word — it only sends libtwz to the kernel, which
 * takes the bytes away itself — and a loop the compiler keeps from seeing the
 * word makes no system call either, so its thread is killed when it does not
 * give the mapping up in time (the kernel's grace period).
 *
 * @module
 */
import { ErrorCode, formatId, type ObjID, TwzError } from "@twz/kernel/abi";

/**
 * The epoch word of a session whose port has none (the kernel's own
 * session, a client session): nothing ever changes it, so the checks cost
 * the same and never fire.
 */
export const NO_EPOCH: Int32Array = new Int32Array(1);

/**
 * The error of a use of an object whose mapping the kernel withdrew.
 *
 * @param id The object.
 * @param allowed Whether the kernel would map it again (`false`: no longer
 * allowed; `undefined`: not asked).
 */
export function withdrawnError(id: ObjID, allowed?: boolean): TwzError {
  return new TwzError(
    ErrorCode.AccessDenied,
    `access to object ${
      formatId(id)
    } was withdrawn (a capability revoked, a key rotated or a context detached)${
      allowed === true ? ": open it again" : ""
    }`,
  );
}

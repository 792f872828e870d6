/**
 * The kernel's side of the global object space (docs/GLOBAL.md): the
 * {@linkcode GlobalHook} a board installs (`kernel.global = …`) when the
 * system boots as a node of a cluster. The kernel knows nothing of NATS:
 * it asks the hook for an object it does not hold (`fetchMissing`, during
 * `map`, `stat`, `read` and `exists`), limits the protections of a mapping
 * of a global object this node does not own (`mapLimit`), and hands every
 * `global(op, args)` call of a port to it (`call`). Without a hook nothing
 * changes and nothing is looked up.
 *
 * @module
 */
import type { GlobalOp, GlobalOps, ObjID } from "./abi/mod.ts";
import type { Principal } from "./_security.ts";

/** What a node's global space gives the kernel. Every method is synchronous. */
export interface GlobalHook {
  /** This node's name (reported by `info().node`). */
  readonly node: string;
  /**
   * `id` is not held here: fetch it from the global space and adopt it
   * (`kernel.adopt`). Returns whether it now exists locally; `false` when
   * the global space does not have it either.
   *
   * @throws {TwzError} `TimedOut` when the cluster does not answer in time.
   */
  fetchMissing(id: ObjID): boolean;
  /**
   * The protections a mapping of `id` may have on this node: `Prot.All`
   * for an object that is not global or is owned here, read and execute
   * only for a global object owned elsewhere (one writer at a time).
   * Called on every map: a map lookup.
   */
  mapLimit(id: ObjID): number;
  /** One `global(op, args)` call from a port of `principal` (rights checked by the port). */
  call<K extends GlobalOp>(op: K, args: GlobalOps[K][0], principal: Principal): GlobalOps[K][1];
}

/**
 * The global object space (docs/GLOBAL.md): the kernel port's one call for
 * it, `global(op, args)` (`Sys.Global`), and what its operations take and
 * answer. A system booted with `twz boot --cluster … --node NAME` is a node;
 * on any other system every operation fails with `NotSupported` ("this
 * system is not in a cluster").
 *
 * Paths of the global namespace are given without the `/global` prefix
 * libtwz's naming shows (`/lists/demo`, `/` the global root).
 *
 * @example
 * ```ts
 * import type { GlobalOps } from "@twz/kernel/abi";
 * const args: GlobalOps["own"][0] = { id: 0x1234n << 64n };
 * console.log(typeof args.id); // bigint
 * ```
 *
 * @module
 */
import type { ObjID } from "./id.ts";

/** What a node says about itself and its cluster. */
export interface GlobalStatus {
  /** This node's name (`--node`). */
  node: string;
  /** The NATS server URLs it was given. */
  servers: string[];
  /** Whether its NATS connection is up now. */
  connected: boolean;
  /** Lease length in milliseconds. */
  leaseMs: number;
  /** Global objects held here (fetched or published). */
  held: number;
  /** Of those, owned by this node. */
  owned: number;
  /** Committed here but not yet acknowledged by the cluster (republished at boot). */
  unacked: number;
}

/** What the global space and this node know about one object. */
export interface GlobalInfo {
  /** The object. */
  id: ObjID;
  /** Whether the object is in the global space. */
  published: boolean;
  /** Its current committed version (1 = first published); 0 when not published. */
  version: number;
  /** Its size in bytes at that version. */
  size: number;
  /** The node owning it (may write and publish), or `null`. */
  owner: string | null;
  /** When the owner's lease lapses (ms since the Unix epoch); 0 without owner. */
  leaseExpiry: number;
  /** The version held here (0: not held). */
  localVersion: number;
  /** This node owns it now. */
  owned: boolean;
  /** Committed here after `localVersion` and not yet acknowledged. */
  unacked: boolean;
}

/** One entry of a global directory. */
export interface GlobalEntry {
  /** The entry's name (one path component). */
  name: string;
  /** An object binding or a directory. */
  kind: "object" | "dir";
  /** The bound object (0n for a directory). */
  id: ObjID;
}

/** What `publish` did. */
export interface PublishResult {
  /** Every object published (the one asked for first; with `deep`, what it reaches). */
  ids: ObjID[];
  /** The version of each, in the same order. */
  versions: number[];
}

/**
 * Every operation of `global(op, args)`: `[args, result]`.
 *
 * Rights (checked by the kernel against the caller's protections): `publish`
 * and `refresh` need READ of each object, `own`, `release` and `commit`
 * WRITE; naming needs nothing beyond the cluster itself (trusted, see
 * docs/GLOBAL.md).
 */
export interface GlobalOps {
  /** This node and its connection. */
  status: [Record<string, never>, GlobalStatus];
  /**
   * Put an object into the global space (version 1, owned by this node),
   * or, when it is already there and this node owns it, publish its current
   * bytes as the next version. `deep`: also every object it reaches through
   * its FOT (ID entries), transitively. `name`: bind it at that global path.
   */
  publish: [{ id: ObjID; deep?: boolean | undefined; name?: string | undefined }, PublishResult];
  /** What the global space and this node know about an object. */
  info: [{ id: ObjID }, GlobalInfo];
  /**
   * Take ownership (compare-and-set on its record). Held by another live
   * node: ask it to hand over and wait up to `timeoutMs` (default: the
   * lease length); refused with `Busy` when it does not.
   */
  own: [{ id: ObjID; timeoutMs?: number | undefined }, GlobalInfo];
  /** Give ownership up (the object stays published). */
  release: [{ id: ObjID }, void];
  /**
   * Publish the current bytes of owned objects as their next versions, all
   * or none (one transaction of the global space); returns the new
   * versions. Called by libtwz after each local commit that wrote them.
   */
  commit: [{ ids: ObjID[] }, number[]];
  /** Bring the local copy up to the current version now. */
  refresh: [{ id: ObjID }, GlobalInfo];
  /** The object bound at a global path, or `null`. */
  lookup: [{ path: string }, ObjID | null];
  /** Bind a global path (the object must be published). */
  bind: [{ path: string; id: ObjID; parents?: boolean | undefined }, void];
  /** Remove a binding; returns the object it named (0n for a directory). */
  unbind: [{ path: string }, ObjID];
  /** Make a global directory. */
  mkdir: [{ path: string; parents?: boolean | undefined }, void];
  /** A global directory's entries, sorted by name. */
  list: [{ path: string }, GlobalEntry[]];
}

/** The name of a global-space operation. */
export type GlobalOp = keyof GlobalOps;

/** The operations, in the order documented (for messages and checks). */
export const GLOBAL_OPS: readonly GlobalOp[] = [
  "status",
  "publish",
  "info",
  "own",
  "release",
  "commit",
  "refresh",
  "lookup",
  "bind",
  "unbind",
  "mkdir",
  "list",
];

/** The one-line message of every global operation on a system that is not a node. */
export const NOT_IN_CLUSTER =
  "this system is not in a cluster (boot it with `twz boot --cluster URL --node NAME`)";

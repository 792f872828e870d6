/**
 * What libtwz's locks and transaction logs ask a kernel port once: the
 * boot's tag and who the caller is, and (at the first transaction) whether the
 * system is a node of a cluster. One cache for all (`sync.ts`, `tx.ts`),
 * so a port is asked once.
 *
 * @module
 */
import type { KernelPort } from "@twz/kernel/abi";

/** The facts of one port. */
export interface PortFacts {
  /** The boot's tag: the low 30 bits of `SystemInfo.bootId`, never 0. */
  tag: number;
  /** The calling thread's number; 0 for the kernel's own session. */
  tid: number;
  /** A program's thread (it can sleep in `thread_sync`), not the kernel's own session. */
  thread: boolean;
  /**
   * Whether the media's stores persist by the page (`SystemInfo.granularity`
   * "page": every flush is an `msync` at the next drain), where an ordering
   * point costs a system call.
   */
  pages: boolean;
  /**
   * This system's node name when it is in a cluster (`SystemInfo.node`),
   * else `null`; `undefined` until first asked ({@linkcode nodeOf}). Asked
   * lazily, at the first transaction: a board joins its cluster right
   * after boot, after its first sessions opened but before any transaction.
   */
  node?: string | null | undefined;
}

const byPort = new WeakMap<KernelPort, PortFacts>();

/** The facts of `port` (asked on first use: `info()` and `threadSelf()`). */
export function portFacts(port: KernelPort): PortFacts {
  let f = byPort.get(port);
  if (f === undefined) {
    const self = port.threadSelf();
    const info = port.info();
    f = {
      tag: ((info.bootId ?? 0) & 0x3fffffff) || 1,
      tid: self?.tid ?? 0,
      thread: self !== null,
      pages: info.granularity === "page",
    };
    byPort.set(port, f);
  }
  return f;
}

/**
 * This system's node name, or `null` when it is not in a cluster (asked
 * once per port, then cached in its facts: one comparison afterwards).
 *
 * @param port The port.
 * @param f Its facts (from {@linkcode portFacts}).
 * @returns The node name or `null`.
 */
export function nodeOf(port: KernelPort, f: PortFacts = portFacts(port)): string | null {
  if (f.node === undefined) f.node = port.info().node ?? null;
  return f.node;
}

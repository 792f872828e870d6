/**
 * What libtwz's locks and transaction logs ask a kernel port once: the
 * boot's tag and who the caller is. One cache for both (`sync.ts`,
 * `tx.ts`), so a port is asked once.
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
}

const byPort = new WeakMap<KernelPort, PortFacts>();

/** The facts of `port` (asked on first use: `info()` and `threadSelf()`). */
export function portFacts(port: KernelPort): PortFacts {
  let f = byPort.get(port);
  if (f === undefined) {
    const self = port.threadSelf();
    f = {
      tag: ((port.info().bootId ?? 0) & 0x3fffffff) || 1,
      tid: self?.tid ?? 0,
      thread: self !== null,
    };
    byPort.set(port, f);
  }
  return f;
}

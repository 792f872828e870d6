/**
 * The libtwz session a workload's `recover` opens on a recovered kernel
 * (opening one replays a committed transaction), kept for its `check` to go
 * on with: one session per crash state, not two.
 *
 * @module
 */
import type { Kernel } from "@twz/kernel";
import { Twz } from "@twz/libtwz";

const sessions = new WeakMap<Kernel, Twz>();

/** Open a session on `kernel`, as `recover`: what opening one after a crash does. */
export function openSession(kernel: Kernel): void {
  sessions.set(kernel, Twz.attach(kernel.port()));
}

/** The session {@linkcode openSession} opened on `kernel`, or a new one. */
export function sessionOf(kernel: Kernel): Twz {
  return sessions.get(kernel) ?? Twz.attach(kernel.port());
}

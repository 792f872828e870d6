/**
 * The interface of a crash-test workload, and the journal a workload keeps
 * of what it did.
 *
 * A workload performs operations on a kernel booted on a fresh simulated
 * region (`run`), recording each operation in a {@linkcode Journal}: begun,
 * then done (acknowledged to its caller) or failed. The crash checker records
 * every crash point of the run, and for each crash state it tries, boots a
 * kernel on the crashed image, runs `fsck`, and calls `check` with the
 * journal as it stood at that crash point (after `recover`, the recovery a
 * session does when it opens, if the workload has one). `check` states the workload's
 * invariants: every acknowledged effect is there, an operation in flight
 * happened wholly or not at all, nothing unacknowledged is half visible.
 *
 * A run must be deterministic: use `ctx.random` (seeded) for every choice.
 * The kernel's entropy and clock are seeded too, so object IDs replay.
 * A run that starts threads (programs in Workers, through a
 * `ThreadManager` on `ctx.kernel`) is not deterministic: the crash points
 * are recorded as that one run went, and `replay` cannot
 * reproduce them. Programs cannot write the main thread's journal: let them
 * publish their progress in words of a volatile object, and turn those
 * into entries with {@linkcode Journal.observe}.
 *
 * @example A workload that keeps a flag and the data it guards
 * ```ts
 * import type { Workload } from "@twz/crashtest";
 * export const workload: Workload = {
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
 * ```
 *
 * @module
 */
import type { Kernel } from "@twz/kernel";
import type { SimHal } from "@twz/hal-sim";

/** One operation of a run, as the journal holds it. Entries are immutable. */
export interface JournalEntry {
  /** The operation's name (`create`, `write`, ...). */
  readonly op: string;
  /** Its arguments, as the workload recorded them. */
  readonly args: Readonly<Record<string, unknown>>;
  /** `started`: in flight at the crash; `done`: acknowledged; `failed`: it threw. */
  readonly state: "started" | "done" | "failed";
  /** What it returned, once done. */
  readonly result?: unknown;
  /** Its error message, when it failed. */
  readonly error?: string;
}

/** The journal as it stood at one crash point. */
export type JournalSnapshot = readonly JournalEntry[];

/** The record of acknowledged effects a workload keeps while it runs. */
export class Journal {
  #entries: JournalEntry[] = [];
  #observers: (() => readonly JournalEntry[])[] = [];

  /** Record that `op` begins; returns its index for {@linkcode Journal.done}. */
  begin(op: string, args: Record<string, unknown> = {}): number {
    this.#entries.push({ op, args, state: "started" });
    return this.#entries.length - 1;
  }

  /** Record that operation `index` was acknowledged, with its result. */
  done(index: number, result?: unknown): void {
    this.#entries[index] = { ...this.#entries[index]!, state: "done", result };
  }

  /** Record that operation `index` failed. */
  fail(index: number, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#entries[index] = { ...this.#entries[index]!, state: "failed", error: message };
  }

  /**
   * Run `fn` as operation `op`: begun, then done with its result, or failed
   * (and the error rethrown).
   */
  record<T>(op: string, args: Record<string, unknown>, fn: () => T): T {
    const i = this.begin(op, args);
    try {
      const result = fn();
      this.done(i, result);
      return result;
    } catch (error) {
      this.fail(i, error);
      throw error;
    }
  }

  /**
   * Add entries computed at every snapshot, after the recorded ones: the
   * progress of threads, which publish it where the main thread can read
   * it (words of a volatile object). The crash checker takes a snapshot in
   * each crash point, after the media's state: a thread that stores "begun"
   * before it writes anything, and "done" after its operation returned, is
   * then seen in flight whenever the crash state can hold its writes, and
   * done only when they are durable.
   *
   * @param source Returns the entries as of now; called on the main thread.
   * @returns A function that removes the observer.
   * @example Progress words a thread publishes
   * ```ts ignore
   * const words = kernel.map(progress, Prot.ReadWrite).extent.i32;
   * journal.observe(() => {
   *   const done = Atomics.load(words, 1), started = Atomics.load(words, 0);
   *   const out: JournalEntry[] = [];
   *   for (let i = 1; i <= done; i++) out.push({ op: "put", args: { i }, state: "done" });
   *   if (started > done) out.push({ op: "put", args: { i: started }, state: "started" });
   *   return out;
   * });
   * ```
   */
  observe(source: () => readonly JournalEntry[]): () => void {
    this.#observers.push(source);
    return () => {
      this.#observers = this.#observers.filter((s) => s !== source);
    };
  }

  /** The entries now: the recorded ones (a cheap copy), then each observer's. */
  snapshot(): JournalSnapshot {
    const out = this.#entries.slice();
    for (const source of this.#observers) out.push(...source());
    return out;
  }

  /** Number of recorded entries (observers' entries are not counted). */
  get length(): number {
    return this.#entries.length;
  }
}

/** What `run` receives. */
export interface WorkloadContext {
  /** A kernel booted on a freshly formatted region of `imageSize` bytes. */
  kernel: Kernel;
  /** The simulated HAL under it (for workloads that test the region itself). */
  hal: SimHal;
  /** Record every operation here. */
  journal: Journal;
  /** Seeded random numbers in [0, 1): the only randomness a run may use. */
  random: () => number;
  /** The run's seed (`--seed`). */
  seed: number;
}

/** What `check` receives besides the kernel and journal. */
export interface CheckContext {
  /** The crash point: the number of drains completed before the crash. */
  point: number;
  /** Whether this is the last point (the run had finished). */
  final: boolean;
  /** The recovery HAL (its region holds the recovered image). */
  hal: SimHal;
}

/** A crash-test workload (see the module documentation). */
export interface Workload {
  /** Its name, as reports print it. */
  readonly name: string;
  /** One line on what it exercises. */
  readonly summary?: string;
  /**
   * Size of the simulated region; small regions make crash states cheap. At
   * least `MIN_IMAGE` (about 204 KiB) and at most 1 GiB, checked at load.
   */
  readonly imageSize: number;
  /** Perform the operations, recording each in `ctx.journal`. */
  run(ctx: WorkloadContext): void | Promise<void>;
  /**
   * The recovery a session does when it opens, after the kernel's boot (which
   * replays the kernel's metadata log): libtwz workloads open a session
   * (`Twz.attach(kernel.port())`, which replays a committed transaction). The checker
   * calls it after every boot, before `fsck` and `check`, and crashes it
   * too: its drains, like the boot's, are crash points of the recovery.
   * Optional: without it recovery is the boot alone.
   */
  recover?(kernel: Kernel, ctx: CheckContext): void | Promise<void>;
  /**
   * Check invariants on a recovered kernel given the journal at the crash.
   * Throw (an `Error`; anything else is reported as `String(value)`), or
   * return a list of messages, one per violation (a single string counts as
   * one violation).
   */
  check(
    kernel: Kernel,
    journal: JournalSnapshot,
    ctx: CheckContext,
  ): void | string | string[] | Promise<void | string | string[]>;
}

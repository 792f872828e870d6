/**
 * Locks and signals between threads that share objects: {@linkcode Mutex}
 * and {@linkcode Condition}, each a few words inside
 * an object (persistent or volatile) at an offset the program chooses.
 *
 * They are built, as in Twizzler, on the kernel's one synchronization
 * primitive, `thread_sync` (sleep while a word equals a value; wake N
 * sleepers): taking a free lock and releasing a lock nobody waits for are one
 * atomic compare-and-exchange each on the mapped word, with no system call;
 * only a thread that must wait, or must wake a waiter, enters the kernel.
 *
 * **Persistent memory and crashes.** A lock word lives in object memory, so
 * it outlives the threads that used it: after a crash or a reboot a lock may
 * read "held" with no thread left to release it. Every word therefore carries
 * a tag of the boot that wrote it (`SystemInfo.bootId`, a random number
 * drawn at every boot): a word with another boot's tag is free, whatever it
 * says, and the first thread to take it in this boot retags it. Lock words
 * are never flushed: they are volatile state that happens to sit in
 * persistent memory. (Two boots draw the same 30-bit tag with probability
 * 2⁻³⁰; a lock held at a crash would then stay held.)
 *
 * **Who can wait.** A program's thread sleeps in the kernel (on hal-sim, on
 * the shared memory directly). The kernel's own session — a script that
 * booted the image with `Twz.open`, the shell — runs on the kernel's thread
 * and cannot sleep: for it `lock()` on a lock another thread holds throws
 * `TwzError` `Busy` (use `tryLock`), and `Condition.wait` is refused. A
 * client session of a running system (`Twz.open` on an image `twz boot`
 * holds) works on copies of object memory and cannot share lock words at
 * all.
 *
 * **Isolation.** Nothing here is tied to transactions: a lock protects what
 * the program decides it protects. Take the lock before a transaction that
 * reads and writes shared data and release it after the transaction has
 * returned (committed), so that no other thread reads the data between
 * commit and apply.
 *
 * @example Four increments under a lock
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { Mutex } from "@twz/libtwz/sync";
 *
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * const lock = new Mutex(obj, obj.baseOffset); // 8 bytes at the base
 * const counter = obj.baseOffset + 8;
 * for (let i = 0; i < 4; i++) {
 *   lock.lock();
 *   obj.view.setUint32(counter, obj.view.getUint32(counter, true) + 1, true);
 *   lock.unlock();
 * }
 * console.log(obj.view.getUint32(counter, true)); // 4
 * twz.close();
 * ```
 *
 * @module
 */
import {
  ErrorCode,
  type Extent,
  formatId,
  type KernelPort,
  type Mapping,
  type ObjID,
  type SyncOp,
  TwzError,
} from "@twz/kernel/abi";

/** Where a lock lives: an object handle (`TwzObject` is one). */
export interface SyncTarget {
  /** The object's ID (what `thread_sync` names). */
  readonly id: ObjID;
  /** The object's mapping (its word views are where the lock word is). */
  readonly mapping: Mapping;
  /** The port the mapping came from (for `thread_sync` and the boot tag). */
  readonly port: KernelPort;
}

/** Bytes a {@linkcode Mutex} takes (8-aligned). */
export const MUTEX_BYTES = 8;
/** Bytes a {@linkcode Condition} takes (8-aligned). */
export const CONDITION_BYTES = 8;

/** Spins on a held lock before sleeping (a holder usually releases it soon). */
const SPINS = 64;

/** What a port tells the locks: the boot tag and whether its caller can sleep. */
interface PortFacts {
  /** The boot's tag: 30 bits, never 0. */
  tag: number;
  /** A thread (it can sleep in `thread_sync`); not the kernel's own session. */
  canSleep: boolean;
}

const facts = new WeakMap<KernelPort, PortFacts>();

function portFacts(port: KernelPort): PortFacts {
  let f = facts.get(port);
  if (f === undefined) {
    f = { tag: (port.info().bootId & 0x3fffffff) || 1, canSleep: port.threadSelf() !== null };
    facts.set(port, f);
  }
  return f;
}

/** The extent and word index of an aligned 32-bit word; checks the range. */
function wordAt(t: SyncTarget, offset: number, bytes: number, what: string): number {
  const size = t.mapping.size;
  if (!Number.isInteger(offset) || offset < 0 || offset % 8 !== 0 || offset + bytes > size) {
    throw new RangeError(
      `${what}: offset ${offset} is not an 8-aligned place for ${bytes} bytes in ${
        formatId(t.id)
      } (${size} bytes)`,
    );
  }
  if (!t.mapping.extent.words) {
    throw new TwzError(
      ErrorCode.NotSupported,
      `${what}: the mapping of ${formatId(t.id)} has no word views (unaligned memory)`,
    );
  }
  return offset >>> 2;
}

/** Milliseconds left until `deadline` (a `performance.now()` time), or `undefined` for none. */
function left(deadline: number): number | undefined {
  return deadline === Infinity ? undefined : Math.max(0, deadline - performance.now());
}

/**
 * A mutual-exclusion lock: one 32-bit word (in an 8-byte slot) holding the
 * boot tag and a state — free, held, or held with waiters — after the
 * classic futex mutex (U. Drepper, "Futexes Are Tricky", 2011: mutex 3).
 * Not recursive; any thread may unlock it (there is no owner record).
 *
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { Mutex } from "@twz/libtwz/sync";
 *
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * const m = new Mutex(obj, obj.baseOffset);
 * console.log(m.tryLock(), m.tryLock()); // true false
 * m.unlock();
 * console.log(m.withLock(() => 42)); // 42
 * twz.close();
 * ```
 */
export class Mutex {
  readonly #t: SyncTarget;
  readonly #ext: Extent;
  readonly #i: number;
  readonly #tag: number;
  /** Word values: free, held, held with (possible) waiters. */
  readonly #free: number;
  readonly #held: number;
  readonly #waited: number;
  readonly #canSleep: boolean;
  readonly #sleep: SyncOp[];
  readonly #wake: SyncOp[];

  /**
   * The lock in the 8 bytes at `offset` of `target` (8-aligned). A zeroed
   * slot is a free lock; so is a slot another boot left, whatever it holds.
   *
   * @param target The object holding the lock (mapped writable).
   * @param offset Object-relative offset of the lock's 8 bytes.
   * @throws {RangeError} The offset is unaligned or outside the object.
   */
  constructor(target: SyncTarget, offset: number) {
    this.#i = wordAt(target, offset, MUTEX_BYTES, "Mutex");
    this.#t = target;
    this.#ext = target.mapping.extent;
    const f = portFacts(target.port);
    this.#tag = f.tag;
    this.#canSleep = f.canSleep;
    this.#free = (f.tag << 2) | 0;
    this.#held = this.#free | 1;
    this.#waited = this.#free | 2;
    this.#sleep = [{ op: "sleep", id: target.id, offset, value: this.#waited >>> 0 }];
    this.#wake = [{ op: "wake", id: target.id, offset, count: 1 }];
  }

  /** Whether `word` means "free" in this boot: free, or left by another boot. */
  #isFree(word: number): boolean {
    return word === this.#free || (word >>> 2) !== this.#tag;
  }

  /**
   * Take the lock if nobody holds it; never waits (with `timeoutMs`, waits at
   * most that long).
   *
   * @param timeoutMs How long to wait for it. @default {0}
   * @returns Whether the lock is now held by the caller.
   */
  tryLock(timeoutMs = 0): boolean {
    const a = this.#ext.i32, i = this.#i;
    const c = Atomics.compareExchange(a, i, this.#free, this.#held);
    if (c === this.#free) return true;
    if ((c >>> 2) !== this.#tag && Atomics.compareExchange(a, i, c, this.#held) === c) return true;
    return timeoutMs > 0 ? this.#contended(performance.now() + timeoutMs) : false;
  }

  /**
   * Take the lock, waiting as long as it takes.
   *
   * @throws {TwzError} `Busy` when the caller is the kernel's own session
   * (it cannot sleep) and another thread holds the lock; `Killed` when the
   * thread is killed while it waits.
   */
  lock(): void {
    if (Atomics.compareExchange(this.#ext.i32, this.#i, this.#free, this.#held) === this.#free) {
      return;
    }
    this.#contended(Infinity);
  }

  /** The slow path: spin a little, then mark the lock waited-for and sleep. */
  #contended(deadline: number): boolean {
    const a = this.#ext.i32, i = this.#i;
    for (let s = 0; s < SPINS; s++) {
      const c = Atomics.load(a, i);
      if (this.#isFree(c) && Atomics.compareExchange(a, i, c, this.#held) === c) return true;
    }
    let c = Atomics.exchange(a, i, this.#waited);
    while (!this.#isFree(c)) {
      const ms = left(deadline);
      if (ms === 0) return false;
      if (!this.#canSleep) {
        throw new TwzError(
          ErrorCode.Busy,
          `Mutex at ${this.#where()} is held by another thread, and the kernel's own session cannot wait for it (use tryLock)`,
        );
      }
      const op = this.#sleep[0] as { timeoutMs?: number | undefined };
      op.timeoutMs = ms;
      this.#t.port.threadSync(this.#sleep);
      c = Atomics.exchange(a, i, this.#waited);
    }
    return true;
  }

  /**
   * Release the lock (wakes one waiter, if any).
   *
   * @throws {TwzError} `InvalidArgument` when the lock is not held.
   */
  unlock(): void {
    const a = this.#ext.i32, i = this.#i;
    if (Atomics.compareExchange(a, i, this.#held, this.#free) === this.#held) return;
    if (Atomics.compareExchange(a, i, this.#waited, this.#free) !== this.#waited) {
      throw new TwzError(ErrorCode.InvalidArgument, `Mutex at ${this.#where()} is not locked`);
    }
    this.#t.port.threadSync(this.#wake);
  }

  /**
   * Run `fn` holding the lock; released when `fn` returns or throws.
   *
   * @param fn The critical section (synchronous).
   * @returns What `fn` returned.
   */
  withLock<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /** Whether some thread of this boot holds the lock (a snapshot). */
  get locked(): boolean {
    return !this.#isFree(Atomics.load(this.#ext.i32, this.#i));
  }

  /** @internal Re-take the lock after a condition wait, marked waited-for. */
  _relock(): void {
    const a = this.#ext.i32, i = this.#i;
    let c = Atomics.exchange(a, i, this.#waited);
    while (!this.#isFree(c)) {
      const op = this.#sleep[0] as { timeoutMs?: number | undefined };
      op.timeoutMs = undefined;
      this.#t.port.threadSync(this.#sleep);
      c = Atomics.exchange(a, i, this.#waited);
    }
  }

  /** @internal Whether this lock's port can sleep. */
  get _canSleep(): boolean {
    return this.#canSleep;
  }

  #where(): string {
    return `${formatId(this.#t.id)}+${this.#i * 4}`;
  }
}

/**
 * A condition variable: a sequence word and a waiter count (8 bytes).
 * `wait` releases the mutex, sleeps until signalled (or the timeout), and
 * takes the mutex again; `signal` wakes one waiter, `broadcast` all. As with
 * every condition variable a wake-up may be spurious: wait in a loop that
 * re-checks the condition. Signalling with nobody waiting costs no system
 * call.
 *
 * @example A flag another thread waits for
 * ```ts ignore
 * lock.lock();
 * while (view.getUint32(flag, true) === 0) ready.wait(lock);
 * lock.unlock();
 * // the other thread:
 * lock.withLock(() => view.setUint32(flag, 1, true));
 * ready.signal();
 * ```
 */
export class Condition {
  readonly #t: SyncTarget;
  readonly #ext: Extent;
  readonly #i: number;
  readonly #sleep: SyncOp[];
  readonly #wakeOne: SyncOp[];
  readonly #wakeAll: SyncOp[];

  /**
   * The condition in the 8 bytes at `offset` of `target` (8-aligned; zeroed
   * is a fresh condition).
   *
   * @param target The object holding it (mapped writable).
   * @param offset Object-relative offset of its 8 bytes.
   * @throws {RangeError} The offset is unaligned or outside the object.
   */
  constructor(target: SyncTarget, offset: number) {
    this.#i = wordAt(target, offset, CONDITION_BYTES, "Condition");
    this.#t = target;
    this.#ext = target.mapping.extent;
    this.#sleep = [{ op: "sleep", id: target.id, offset, value: 0 }];
    this.#wakeOne = [{ op: "wake", id: target.id, offset, count: 1 }];
    this.#wakeAll = [{ op: "wake", id: target.id, offset, count: 0x7fffffff }];
  }

  /**
   * Release `mutex` (which the caller holds), sleep until signalled or
   * `timeoutMs` passes, and take `mutex` again before returning.
   *
   * @param mutex The lock guarding the condition's state.
   * @param timeoutMs Longest wait. @default {Infinity}
   * @returns `false` when the wait timed out, else `true`.
   * @throws {TwzError} `NotSupported` from the kernel's own session (it
   * cannot sleep); `Killed` when the thread is killed.
   */
  wait(mutex: Mutex, timeoutMs = Infinity): boolean {
    if (!mutex._canSleep) {
      throw new TwzError(
        ErrorCode.NotSupported,
        "Condition.wait: the kernel's own session cannot sleep (wait from a program's thread)",
      );
    }
    const a = this.#ext.i32, i = this.#i;
    const seq = Atomics.load(a, i);
    Atomics.add(a, i + 1, 1);
    mutex.unlock();
    let result = 0;
    try {
      const op = this.#sleep[0] as { value: number; timeoutMs?: number | undefined };
      op.value = seq >>> 0;
      op.timeoutMs = timeoutMs === Infinity ? undefined : Math.max(0, timeoutMs);
      result = this.#t.port.threadSync(this.#sleep)[0]!;
    } finally {
      Atomics.sub(a, i + 1, 1);
      mutex._relock();
    }
    return result !== 2;
  }

  /** Wake one waiter (no system call when nobody waits). */
  signal(): void {
    this.#notify(this.#wakeOne);
  }

  /** Wake every waiter (no system call when nobody waits). */
  broadcast(): void {
    this.#notify(this.#wakeAll);
  }

  #notify(ops: SyncOp[]): void {
    const a = this.#ext.i32, i = this.#i;
    Atomics.add(a, i, 1);
    if (Atomics.load(a, i + 1) > 0) this.#t.port.threadSync(ops);
  }
}

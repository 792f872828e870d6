/**
 * Locks and signals between threads that share objects: {@linkcode Mutex},
 * {@linkcode Condition} and {@linkcode Semaphore}, each a few words inside
 * an object (persistent or volatile) at an offset the program chooses.
 *
 * They are built, as in Twizzler, on the kernel's one synchronization
 * primitive, `thread_sync` (sleep while a word equals a value; wake N
 * sleepers): taking a free lock and releasing a lock nobody waits for are one
 * atomic compare-and-exchange each on the mapped word, with no system call;
 * only a thread that must wait, or must wake a waiter, enters the kernel.
 *
 * | Slot | Bytes | Words (32-bit, little-endian) |
 * |---|---|---|
 * | `Mutex` | 8 | `tag << 2 \| state` (state 0 free, 1 held, 2 held and maybe waited for); 4 unused |
 * | `Condition` | 8 | sequence number; `tag16 << 16 \| waiters` |
 * | `Semaphore` | 16 | count; waiters; tag (bit 30: being reset); initial count |
 *
 * A zeroed slot is a free mutex, a condition nobody waits on, and a
 * semaphore whose initial count is 0.
 *
 * **Persistent memory and crashes.** A lock word lives in object memory, so
 * it outlives the threads that used it: after a crash or a reboot a lock may
 * read "held" with no thread left to release it. Every slot therefore carries
 * a tag of the boot that wrote it (`SystemInfo.bootId`, a random number
 * drawn at every boot, cut to 30 bits): state with another boot's tag is
 * stale. A mutex word with another boot's tag is free, whatever it says, and
 * the first thread to take it in this boot retags it; a semaphore goes back
 * to its initial count at its first use in a boot; a condition's waiter
 * count from another boot counts as none. The words are never flushed: they
 * are volatile state that happens to sit in persistent memory (only a
 * semaphore's initial count, written by {@linkcode Semaphore.init}, is made
 * durable). Two boots draw the same 30-bit tag with probability 2⁻³⁰; a lock
 * held at a crash would then stay held.
 *
 * **Who can wait.** A program's thread sleeps in `thread_sync` (on hal-sim,
 * on the shared memory directly). The kernel's own session — a script that
 * booted the image with `Twz.open`, the shell — runs on the kernel's thread
 * and cannot sleep: it may take, hold and release locks, but `lock()` on a
 * lock another thread holds throws `TwzError` `Busy` (so does
 * `Semaphore.acquire()` at count 0), `tryLock(ms)` and `acquire(ms)` return
 * `false` at once instead of waiting, and `Condition.wait` is refused. A
 * client session of a running system (`Twz.open` on an image `twz boot`
 * holds) works on copies of object memory and cannot share lock words at
 * all.
 *
 * **Killed threads.** A thread killed while it waits leaves the wait with
 * `TwzError` `Killed` (a `Condition.wait` takes the mutex back first, as
 * POSIX cancellation does, so the caller's `unlock` in a `finally` is
 * right). A thread that ends holding a mutex leaves it held for the rest of
 * the boot (there is no owner record: release locks in `finally`, or use
 * {@linkcode Mutex.withLock}). A killed thread cannot make system calls, so
 * its release or signal may not wake a waiter: waiters therefore look at
 * the word again at least every {@linkcode RECHECK_MS} ms.
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
import { portFacts } from "./_port_facts.ts";

/** Where a lock lives: an object handle (`TwzObject` is one). */
export interface SyncTarget {
  /** The object's ID (what `thread_sync` names). */
  readonly id: ObjID;
  /** The object's mapping (its word views are where the lock word is). */
  readonly mapping: Mapping;
  /** The port the mapping came from (for `thread_sync` and the boot tag). */
  readonly port: KernelPort;
  /** `false` for a read-only handle (refused, as a read-only mapping is). */
  readonly writable?: boolean;
}

/** Bytes a {@linkcode Mutex} takes (8-aligned). */
export const MUTEX_BYTES = 8;
/** Bytes a {@linkcode Condition} takes (8-aligned). */
export const CONDITION_BYTES = 8;
/** Bytes a {@linkcode Semaphore} takes (8-aligned). */
export const SEMAPHORE_BYTES = 16;
/** The largest count a {@linkcode Semaphore} holds. */
export const SEMAPHORE_MAX = 0x7fffffff;
/**
 * Longest sleep (ms) of a waiting thread before it looks at the word again
 * (and sleeps on when nothing changed): a release or signal whose wake-up
 * was lost (its thread was killed between the store and the wake, and could
 * not call the kernel) delays a waiter at most this long.
 */
export const RECHECK_MS = 100;

/** Spins on a held lock before sleeping (a holder usually releases it soon). */
const SPINS = 64;
/** Semaphore tag word: the slot is being reset to its initial count. */
const RESETTING = 1 << 30;

/**
 * The word index of a slot of `bytes` at `offset` (8-aligned, inside the
 * object, in a writable mapping with word views).
 */
function wordAt(t: SyncTarget, offset: number, bytes: number, what: string): number {
  const size = t.mapping.size;
  if (!Number.isInteger(offset) || offset < 0 || offset % 8 !== 0 || offset + bytes > size) {
    throw new RangeError(
      `${what}: offset ${offset} is not an 8-aligned place for ${bytes} bytes in ${
        formatId(t.id)
      } (${size} bytes)`,
    );
  }
  if (!t.mapping.writable || t.writable === false) {
    throw new TwzError(
      ErrorCode.AccessDenied,
      `${what}: ${formatId(t.id)} is mapped read-only (a lock needs a writable mapping)`,
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

/** Milliseconds left until `deadline` (a `performance.now()` time); Infinity for none. */
function left(deadline: number): number {
  return deadline === Infinity ? Infinity : Math.max(0, deadline - performance.now());
}

/** A deadline `timeoutMs` from now (Infinity for none). */
function deadlineOf(timeoutMs: number, what: string): number {
  if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
    throw new RangeError(`${what}: timeout ${timeoutMs} is not a number of milliseconds ≥ 0`);
  }
  return timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
}

/** Whether `e` says the calling thread is being killed or the kernel stopped. */
function isEnding(e: unknown): boolean {
  return e instanceof TwzError && (e.code === ErrorCode.Killed || e.code === ErrorCode.Shutdown);
}

/**
 * Wake sleepers after a release. A thread being killed cannot call the
 * kernel: its wake is lost, which waiters survive ({@linkcode RECHECK_MS}).
 * The release itself has happened, so that is not an error of the release.
 */
function wakeAfterRelease(port: KernelPort, ops: SyncOp[]): void {
  try {
    port.threadSync(ops);
  } catch (e) {
    if (!isEnding(e)) throw e;
  }
}

/** Sleep on the slot's word for at most `ms` (and at most RECHECK_MS). */
function sleepOn(port: KernelPort, ops: SyncOp[], ms: number): number {
  const op = ops[0] as { timeoutMs?: number | undefined };
  op.timeoutMs = Math.min(ms, RECHECK_MS);
  return port.threadSync(ops)[0]!;
}

/**
 * A mutual-exclusion lock: one 32-bit word (in an 8-byte slot) holding the
 * boot tag and a state — free, held, or held with waiters — after the
 * classic futex mutex (U. Drepper, "Futexes Are Tricky", 2011: mutex 3).
 * Not recursive; any thread may unlock it (there is no owner record), and a
 * thread that ends holding it leaves it held until the next boot.
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
   * @throws {TwzError} `AccessDenied`: the mapping is read-only.
   */
  constructor(target: SyncTarget, offset: number) {
    this.#i = wordAt(target, offset, MUTEX_BYTES, "Mutex");
    this.#t = target;
    this.#ext = target.mapping.extent;
    const f = portFacts(target.port);
    this.#tag = f.tag;
    this.#canSleep = f.thread;
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
   * most that long; the kernel's own session never waits).
   *
   * @param timeoutMs How long to wait for it. @default {0}
   * @returns Whether the lock is now held by the caller.
   * @throws {TwzError} `Killed` when the thread is killed while it waits.
   */
  tryLock(timeoutMs = 0): boolean {
    const a = this.#ext.i32, i = this.#i;
    const c = Atomics.compareExchange(a, i, this.#free, this.#held);
    if (c === this.#free) return true;
    if ((c >>> 2) !== this.#tag && Atomics.compareExchange(a, i, c, this.#held) === c) return true;
    return timeoutMs === 0 ? false : this.#contended(deadlineOf(timeoutMs, "Mutex.tryLock"));
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
    if (!this.#canSleep) {
      if (deadline !== Infinity) return false;
      throw new TwzError(
        ErrorCode.Busy,
        `Mutex at ${this.#where()} is held by another thread, and the kernel's own session cannot wait for it (use tryLock)`,
      );
    }
    return this.#acquireWaited(deadline);
  }

  /**
   * Take the lock marked waited-for (mutex 3's loop): the caller may not be
   * the only waiter, so its unlock must wake.
   */
  #acquireWaited(deadline: number): boolean {
    const a = this.#ext.i32, i = this.#i;
    let c = Atomics.exchange(a, i, this.#waited);
    while (!this.#isFree(c)) {
      const ms = left(deadline);
      if (ms === 0) return false;
      sleepOn(this.#t.port, this.#sleep, ms);
      c = Atomics.exchange(a, i, this.#waited);
    }
    return true;
  }

  /**
   * Release the lock (wakes one waiter, if any). A thread being killed
   * releases it too, but may not be able to wake the waiter (see
   * {@linkcode RECHECK_MS}).
   *
   * @throws {TwzError} `InvalidArgument` when the lock is not held.
   */
  unlock(): void {
    const a = this.#ext.i32, i = this.#i;
    if (Atomics.compareExchange(a, i, this.#held, this.#free) === this.#held) return;
    if (Atomics.compareExchange(a, i, this.#waited, this.#free) !== this.#waited) {
      throw new TwzError(ErrorCode.InvalidArgument, `Mutex at ${this.#where()} is not locked`);
    }
    wakeAfterRelease(this.#t.port, this.#wake);
  }

  /**
   * Run `fn` holding the lock; released when `fn` returns or throws.
   *
   * @param fn The critical section (synchronous).
   * @returns What `fn` returned.
   * @throws {TwzError} What {@linkcode Mutex.lock} throws, or what `fn` throws.
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

  /**
   * @internal Take the lock again after a condition wait. When the thread is
   * being killed (it cannot sleep any more), it spins until the lock is
   * free, then rethrows: the caller's `finally` then releases a lock it
   * holds, never one another thread holds.
   */
  _relock(): void {
    try {
      this.#acquireWaited(Infinity);
    } catch (e) {
      if (!isEnding(e)) throw e;
      const a = this.#ext.i32, i = this.#i;
      for (;;) {
        const c = Atomics.load(a, i);
        if (this.#isFree(c) && Atomics.compareExchange(a, i, c, this.#waited) === c) break;
      }
      throw e;
    }
  }

  /** @internal Whether this lock's port can sleep. */
  get _canSleep(): boolean {
    return this.#canSleep;
  }

  /** @internal The boot tag of this lock's port. */
  get _tag(): number {
    return this.#tag;
  }

  #where(): string {
    return `${formatId(this.#t.id)}+${this.#i * 4}`;
  }
}

/**
 * A condition variable: a sequence word and a waiter count (8 bytes; the
 * count carries 16 bits of the boot tag, so waiters counted by another boot
 * count as none). `wait` releases the mutex, sleeps until signalled (or the
 * timeout), and takes the mutex again; `signal` wakes one waiter,
 * `broadcast` all. As with every condition variable a wake-up may be
 * spurious: wait in a loop that re-checks the condition. Signalling with
 * nobody waiting costs no system call.
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
  /** 16 bits of the boot tag (never 0), in the waiter word's high half. */
  #tag16 = 0;
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
   * @throws {TwzError} `AccessDenied`: the mapping is read-only.
   */
  constructor(target: SyncTarget, offset: number) {
    this.#i = wordAt(target, offset, CONDITION_BYTES, "Condition");
    this.#t = target;
    this.#ext = target.mapping.extent;
    this.#sleep = [{ op: "sleep", id: target.id, offset, value: 0 }];
    this.#wakeOne = [{ op: "wake", id: target.id, offset, count: 1 }];
    this.#wakeAll = [{ op: "wake", id: target.id, offset, count: 0x7fffffff }];
  }

  /** The boot tag's low 16 bits (looked up on first use: a signal may never need it). */
  #myTag16(): number {
    return this.#tag16 ||= (portFacts(this.#t.port).tag & 0xffff) || 1;
  }

  /**
   * Release `mutex` (which the caller holds), sleep until signalled or
   * `timeoutMs` passes, and take `mutex` again before returning (also when
   * it throws `Killed`).
   *
   * @param mutex The lock guarding the condition's state.
   * @param timeoutMs Longest wait. @default {Infinity}
   * @returns `false` when the wait timed out, else `true`.
   * @throws {TwzError} `NotSupported` from the kernel's own session (it
   * cannot sleep); `InvalidArgument` when `mutex` is not locked; `Killed`
   * when the thread is killed.
   */
  wait(mutex: Mutex, timeoutMs = Infinity): boolean {
    if (!mutex._canSleep) {
      throw new TwzError(
        ErrorCode.NotSupported,
        "Condition.wait: the kernel's own session cannot sleep (wait from a program's thread)",
      );
    }
    const deadline = deadlineOf(timeoutMs, "Condition.wait");
    const a = this.#ext.i32, i = this.#i;
    const seq = Atomics.load(a, i);
    // A signal between here and the sleep changes the sequence word, and the
    // sleep then returns at once: no wake-up is lost.
    mutex.unlock();
    this.#count(1);
    let result = 2;
    try {
      const op = this.#sleep[0] as { value: number; timeoutMs?: number | undefined };
      op.value = seq >>> 0;
      for (;;) {
        const ms = left(deadline);
        if (ms === 0) {
          if (Atomics.load(a, i) !== seq) result = 1;
          break;
        }
        op.timeoutMs = Math.min(ms, RECHECK_MS);
        result = this.#t.port.threadSync(this.#sleep)[0]!;
        if (result !== 2) break;
        // Signalled, but the wake-up never came (its thread was killed).
        if (Atomics.load(a, i) !== seq) {
          result = 0;
          break;
        }
      }
    } finally {
      this.#count(-1);
      mutex._relock();
    }
    return result !== 2;
  }

  /** Add `d` to the waiter count (restarting it when another boot wrote it). */
  #count(d: number): void {
    const a = this.#ext.i32, i = this.#i + 1, tag = this.#myTag16();
    let w = Atomics.load(a, i);
    for (;;) {
      const n = (w >>> 16) === tag ? (w & 0xffff) + d : d;
      const next = ((tag << 16) | Math.min(0xffff, Math.max(0, n))) | 0;
      const seen = Atomics.compareExchange(a, i, w, next);
      if (seen === w) return;
      w = seen;
    }
  }

  /** Wake one waiter (no system call when nobody waits). */
  signal(): void {
    this.#notify(this.#wakeOne);
  }

  /** Wake every waiter (no system call when nobody waits). */
  broadcast(): void {
    this.#notify(this.#wakeAll);
  }

  /** How many threads of this boot wait (a snapshot). */
  get waiters(): number {
    const w = Atomics.load(this.#ext.i32, this.#i + 1);
    return (w >>> 16) === this.#myTag16() ? w & 0xffff : 0;
  }

  #notify(ops: SyncOp[]): void {
    const a = this.#ext.i32, i = this.#i;
    Atomics.add(a, i, 1);
    const w = Atomics.load(a, i + 1);
    if ((w & 0xffff) !== 0 && (w >>> 16) === this.#myTag16()) {
      wakeAfterRelease(this.#t.port, ops);
    }
  }
}

/**
 * A counting semaphore in a 16-byte slot: count, waiter count, boot tag and
 * initial count. `acquire` takes one unit (waiting while the count is 0),
 * `release(n)` gives `n` back and wakes up to `n` waiters. Any thread may
 * release; nothing records who acquired.
 *
 * **Across boots.** The count is volatile state: at the first use of the
 * semaphore in a boot (any thread's `acquire`, `tryAcquire` or `release`)
 * it goes back to the initial count, whatever the last boot left — units a
 * crashed thread held are not lost. The thread that finds the slot stale
 * claims the reset with a compare-and-exchange on the tag word (setting a
 * "resetting" bit); threads racing with it wait the few instructions until
 * it has stored the initial count, so all agree on one reset. The initial
 * count is set once by {@linkcode Semaphore.init}, which makes it durable; a
 * zeroed slot is a semaphore with initial count 0.
 *
 * Taking a unit when the count is positive, and releasing when nobody
 * waits, make no system call.
 *
 * @example At most two at a time
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { Semaphore } from "@twz/libtwz/sync";
 *
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * const sem = Semaphore.init(obj, obj.baseOffset, 2);
 * console.log(sem.tryAcquire(), sem.tryAcquire(), sem.tryAcquire()); // true true false
 * sem.release(2);
 * console.log(sem.value); // 2
 * twz.close();
 * ```
 */
export class Semaphore {
  readonly #t: SyncTarget;
  readonly #ext: Extent;
  /** Word index of the count; waiters, tag and initial follow. */
  readonly #i: number;
  readonly #tag: number;
  readonly #canSleep: boolean;
  readonly #sleep: SyncOp[];
  readonly #wake: SyncOp[];

  /**
   * The semaphore in the 16 bytes at `offset` of `target` (8-aligned), as
   * {@linkcode Semaphore.init} left it (zeroed: initial count 0).
   *
   * @param target The object holding it (mapped writable).
   * @param offset Object-relative offset of its 16 bytes.
   * @throws {RangeError} The offset is unaligned or outside the object.
   * @throws {TwzError} `AccessDenied`: the mapping is read-only.
   */
  constructor(target: SyncTarget, offset: number) {
    this.#i = wordAt(target, offset, SEMAPHORE_BYTES, "Semaphore");
    this.#t = target;
    this.#ext = target.mapping.extent;
    const f = portFacts(target.port);
    this.#tag = f.tag;
    this.#canSleep = f.thread;
    this.#sleep = [{ op: "sleep", id: target.id, offset, value: 0 }];
    this.#wake = [{ op: "wake", id: target.id, offset, count: 1 }];
  }

  /**
   * Make a semaphore with `initial` units at `offset` of `target`, and
   * persist its slot (the initial count must survive a crash). Do it before
   * other threads use the slot: threads waiting on it are not woken.
   *
   * @param target The object holding it (mapped writable).
   * @param offset Object-relative offset of its 16 bytes (8-aligned).
   * @param initial Units at the start of every boot (0 … {@linkcode SEMAPHORE_MAX}).
   * @returns The semaphore.
   * @throws {RangeError} A bad offset or initial count.
   */
  static init(target: SyncTarget, offset: number, initial: number): Semaphore {
    if (!Number.isInteger(initial) || initial < 0 || initial > SEMAPHORE_MAX) {
      throw new RangeError(
        `Semaphore.init: initial count ${initial} is not an integer in 0…${SEMAPHORE_MAX}`,
      );
    }
    const s = new Semaphore(target, offset);
    const a = target.mapping.extent.i32, i = offset >>> 2;
    Atomics.store(a, i + 3, initial);
    Atomics.store(a, i + 1, 0);
    Atomics.store(a, i, initial);
    Atomics.store(a, i + 2, s.#tag);
    target.mapping.persist(offset, SEMAPHORE_BYTES);
    return s;
  }

  /** The initial count as stored (a damaged negative one counts as 0). */
  #initial(): number {
    return Math.max(0, Atomics.load(this.#ext.i32, this.#i + 3));
  }

  /** Make the slot this boot's: reset it to the initial count if another boot left it. */
  #ready(): void {
    const a = this.#ext.i32, t = this.#i + 2, tag = this.#tag;
    let w = Atomics.load(a, t);
    while (w !== tag) {
      if (w === (tag | RESETTING)) {
        // Another thread of this boot is storing the initial count: a few stores.
        w = Atomics.load(a, t);
        continue;
      }
      const seen = Atomics.compareExchange(a, t, w, tag | RESETTING);
      if (seen === w) {
        Atomics.store(a, this.#i + 1, 0);
        Atomics.store(a, this.#i, this.#initial());
        Atomics.store(a, t, tag);
        return;
      }
      w = seen;
    }
  }

  /** Take a unit if the count is positive (no waiting, no system call). */
  #take(): boolean {
    const a = this.#ext.i32, i = this.#i;
    let c = Atomics.load(a, i);
    while (c > 0) {
      const seen = Atomics.compareExchange(a, i, c, c - 1);
      if (seen === c) return true;
      c = seen;
    }
    return false;
  }

  /**
   * Take a unit if one is free; never waits.
   *
   * @returns Whether a unit was taken.
   */
  tryAcquire(): boolean {
    this.#ready();
    return this.#take();
  }

  /**
   * Take a unit, waiting while there is none (at most `timeoutMs`; the
   * kernel's own session never waits).
   *
   * @param timeoutMs Longest wait. @default {Infinity}
   * @returns `false` when the wait timed out, else `true`.
   * @throws {TwzError} `Busy` when the caller is the kernel's own session,
   * the count is 0 and no timeout was given; `Killed` when the thread is
   * killed while it waits.
   */
  acquire(timeoutMs = Infinity): boolean {
    const deadline = deadlineOf(timeoutMs, "Semaphore.acquire");
    this.#ready();
    if (this.#take()) return true;
    for (let s = 0; s < SPINS; s++) if (this.#take()) return true;
    if (!this.#canSleep) {
      if (deadline !== Infinity) return false;
      throw new TwzError(
        ErrorCode.Busy,
        `Semaphore at ${this.#where()} has no unit free, and the kernel's own session cannot wait for one (use tryAcquire)`,
      );
    }
    if (timeoutMs === 0) return false;
    const a = this.#ext.i32, w = this.#i + 1;
    // Count first, then look at the count: a release stores the count before
    // it reads the waiters, so one of the two sees the other.
    Atomics.add(a, w, 1);
    try {
      for (;;) {
        if (this.#take()) return true;
        const ms = left(deadline);
        if (ms === 0) return false;
        sleepOn(this.#t.port, this.#sleep, ms);
      }
    } finally {
      Atomics.sub(a, w, 1);
    }
  }

  /**
   * Give back `n` units and wake up to `n` waiters (no system call when
   * nobody waits).
   *
   * @param n Units to give back. @default {1}
   * @throws {RangeError} `n` is not a positive integer.
   * @throws {TwzError} `InvalidArgument` when the count would pass
   * {@linkcode SEMAPHORE_MAX}.
   */
  release(n = 1): void {
    if (!Number.isInteger(n) || n < 1 || n > SEMAPHORE_MAX) {
      throw new RangeError(`Semaphore.release: ${n} is not a positive integer count`);
    }
    this.#ready();
    const a = this.#ext.i32, i = this.#i;
    let c = Atomics.load(a, i);
    for (;;) {
      if (c > SEMAPHORE_MAX - n) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `Semaphore at ${this.#where()}: releasing ${n} would pass the largest count (${c} held)`,
        );
      }
      const seen = Atomics.compareExchange(a, i, c, c + n);
      if (seen === c) break;
      c = seen;
    }
    if (Atomics.load(a, i + 1) > 0) {
      (this.#wake[0] as { count: number }).count = n;
      wakeAfterRelease(this.#t.port, this.#wake);
    }
  }

  /** Units free now (a snapshot; the initial count when the slot is another boot's). */
  get value(): number {
    const a = this.#ext.i32;
    return Atomics.load(a, this.#i + 2) === this.#tag ? Atomics.load(a, this.#i) : this.#initial();
  }

  /** The count every boot starts with. */
  get initial(): number {
    return this.#initial();
  }

  #where(): string {
    return `${formatId(this.#t.id)}+${this.#i * 4}`;
  }
}

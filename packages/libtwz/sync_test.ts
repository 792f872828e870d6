// Mutex, Condition and Semaphore in-process, on the kernel's own session
// (hal-sim): the paths that need no second thread, boot tags (another boot
// simulated by a foreign tag, and by crashing with a lock held), and the
// argument checks. Threads sharing locks: tests/sync_programs_test.ts.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { ErrorCode, type KernelPort, TwzError } from "@twz/kernel/abi";
import { openSim, type SimHal } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import type { TwzObject } from "./object.ts";
import {
  Condition,
  CONDITION_BYTES,
  Mutex,
  MUTEX_BYTES,
  Semaphore,
  SEMAPHORE_BYTES,
  SEMAPHORE_MAX,
  type SyncTarget,
} from "./sync.ts";

function session(): { hal: SimHal; kernel: Kernel; twz: Twz } {
  const hal = openSim({ size: 8 << 20 });
  const kernel = Kernel.boot(hal, { formatBlank: true });
  return { hal, kernel, twz: Twz.attach(kernel.port()) };
}

/** Power fails (keeping every store, or none that was not persisted) and the system boots again. */
function crash(hal: SimHal, policy: "all" | "strict"): Twz {
  hal.power!.powerFail({ policy });
  return Twz.attach(Kernel.boot(hal).port());
}

/** A target over `obj` whose port counts `threadSync` calls. */
function counting(obj: TwzObject): { target: SyncTarget; syncs: () => number } {
  let n = 0;
  const port = new Proxy(obj.port, {
    get(target, key) {
      const v = Reflect.get(target, key, target);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        if (key === "threadSync") n++;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as KernelPort;
  return { target: { id: obj.id, mapping: obj.mapping, port }, syncs: () => n };
}

const code = (c: number) => (e: unknown) => e instanceof TwzError && e.code === c;

Deno.test("Mutex: tryLock, lock, unlock, withLock and locked, with no system call", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const { target, syncs } = counting(obj);
  const m = new Mutex(target, obj.baseOffset);
  assert.equal(m.locked, false, "a zeroed slot is a free lock");
  assert.equal(m.tryLock(), true);
  assert.equal(m.locked, true);
  assert.equal(m.tryLock(), false, "not recursive");
  m.unlock();
  assert.equal(m.locked, false);
  m.lock();
  m.unlock();
  assert.equal(m.withLock(() => (assert.equal(m.locked, true), 42)), 42);
  assert.equal(m.locked, false);
  assert.throws(() =>
    m.withLock(() => {
      throw new Error("inside");
    }), /inside/);
  assert.equal(m.locked, false, "released when the section throws");
  assert.equal(syncs(), 0, "uncontended: no thread_sync");
  // The word: the boot's tag over state 0 (free) or 1 (held); the other 4 bytes stay 0.
  const word = () => obj.view.getUint32(obj.baseOffset, true);
  m.lock();
  assert.equal(word() & 3, 1);
  assert.equal(word() >>> 2, m._tag);
  m.unlock();
  assert.equal(word() & 3, 0);
  assert.equal(obj.view.getUint32(obj.baseOffset + 4, true), 0);
  hal.close();
});

Deno.test("Mutex.unlock() of a lock nobody holds is InvalidArgument", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const m = new Mutex(obj, obj.baseOffset);
  assert.throws(() => m.unlock(), code(ErrorCode.InvalidArgument));
  assert.throws(() => m.unlock(), /Mutex at [0-9a-f]+\+\d+ is not locked/);
  m.lock();
  m.unlock();
  assert.throws(() => m.unlock(), code(ErrorCode.InvalidArgument), "twice");
  hal.close();
});

Deno.test("Mutex.lock() of a held lock is Busy on the kernel's session; tryLock(ms) does not wait", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  // Another holder: a second handle on the same word.
  const holder = new Mutex(obj, obj.baseOffset);
  const { target, syncs } = counting(obj);
  const me = new Mutex(target, obj.baseOffset);
  holder.lock();
  const before = obj.view.getUint32(obj.baseOffset, true);
  assert.throws(() => me.lock(), code(ErrorCode.Busy));
  assert.throws(() => me.lock(), /kernel's own session cannot wait for it \(use tryLock\)/);
  assert.equal(me.tryLock(), false);
  assert.equal(me.tryLock(60_000), false, "the kernel's session cannot wait: false at once");
  assert.equal(obj.view.getUint32(obj.baseOffset, true), before, "the failed tries left the word");
  assert.throws(() => me.tryLock(-1), RangeError, "a timeout is checked when it is needed");
  assert.equal(syncs(), 0);
  holder.unlock();
  assert.equal(me.tryLock(), true);
  me.unlock();
  hal.close();
});

Deno.test("Mutex: a word another boot left is free, whatever its state", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const m = new Mutex(obj, obj.baseOffset);
  const other = ((m._tag ^ 0x155) & 0x3fffffff) || 7;
  for (const state of [1, 2, 3]) {
    obj.view.setUint32(obj.baseOffset, ((other << 2) | state) >>> 0, true);
    assert.equal(m.locked, false, `state ${state} of another boot`);
    assert.throws(() => m.unlock(), code(ErrorCode.InvalidArgument), "not held in this boot");
    assert.equal(m.tryLock(), true);
    assert.equal(obj.view.getUint32(obj.baseOffset, true), ((m._tag << 2) | 1) >>> 0, "retagged");
    m.unlock();
  }
  obj.view.setUint32(obj.baseOffset, ((other << 2) | 2) >>> 0, true);
  m.lock(); // the slow path sees the stale word as free too
  assert.equal(m.locked, true);
  m.unlock();
  hal.close();
});

Deno.test("Mutex: a lock held when the power failed is free after the reboot", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const m = new Mutex(obj, obj.baseOffset);
  m.lock();
  obj.persist(obj.baseOffset, MUTEX_BYTES); // the held word reaches the media for sure
  const held = obj.view.getUint32(obj.baseOffset, true);
  const after = crash(hal, "all");
  const o2 = after.open(obj.id);
  assert.equal(o2.view.getUint32(o2.baseOffset, true), held, "the word still says held");
  const m2 = new Mutex(o2, o2.baseOffset);
  assert.notEqual(m2._tag, m._tag, "a new boot tag");
  assert.equal(m2.locked, false);
  assert.equal(m2.tryLock(), true);
  m2.unlock();
  hal.close();
});

Deno.test("Condition.wait() is refused on the kernel's session; signal with no waiter makes no call", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const { target, syncs } = counting(obj);
  const m = new Mutex(target, obj.baseOffset);
  const c = new Condition(target, obj.baseOffset + 8);
  m.lock();
  assert.throws(() => c.wait(m), code(ErrorCode.NotSupported));
  assert.throws(() => c.wait(m, 10), /kernel's own session cannot sleep/);
  assert.equal(m.locked, true, "the refused wait kept the mutex");
  m.unlock();
  const seq = () => obj.view.getUint32(obj.baseOffset + 8, true);
  const s0 = seq();
  c.signal();
  c.broadcast();
  assert.equal(seq(), s0 + 2, "each signal advances the sequence word");
  assert.equal(c.waiters, 0);
  assert.equal(syncs(), 0);
  hal.close();
});

Deno.test("Condition: a waiter count another boot left counts as none (no wake call)", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const { target, syncs } = counting(obj);
  const c = new Condition(target, obj.baseOffset);
  const probe = new Mutex(obj, obj.baseOffset + 8);
  const mine = (probe._tag & 0xffff) || 1;
  const other = mine === 0xffff ? 1 : mine + 1;
  obj.view.setUint32(obj.baseOffset + 4, ((other << 16) | 5) >>> 0, true);
  assert.equal(c.waiters, 0);
  c.signal();
  assert.equal(syncs(), 0, "stale waiters are not woken");
  // This boot's count does make the call (a wake of nobody here).
  obj.view.setUint32(obj.baseOffset + 4, ((mine << 16) | 1) >>> 0, true);
  assert.equal(c.waiters, 1);
  c.signal();
  assert.equal(syncs(), 1);
  hal.close();
});

Deno.test("Semaphore: counts, tryAcquire, release(n), Busy and timeouts on the kernel's session", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const { target, syncs } = counting(obj);
  const s = Semaphore.init(target, obj.baseOffset, 2);
  assert.equal(s.initial, 2);
  assert.equal(s.value, 2);
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.acquire(), true);
  assert.equal(s.value, 0);
  assert.equal(s.tryAcquire(), false);
  assert.throws(() => s.acquire(), code(ErrorCode.Busy));
  assert.throws(() => s.acquire(), /cannot wait for one \(use tryAcquire\)/);
  assert.equal(s.acquire(60_000), false, "the kernel's session cannot wait: false at once");
  assert.equal(s.acquire(0), false);
  s.release();
  assert.equal(s.value, 1);
  s.release(3);
  assert.equal(s.value, 4, "release may pass the initial count");
  for (let i = 0; i < 4; i++) assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), false);
  assert.equal(syncs(), 0, "no waiter: no system call");
  assert.throws(() => s.release(0), RangeError);
  assert.throws(() => s.release(1.5), RangeError);
  assert.throws(() => s.acquire(-1), RangeError);
  s.release(SEMAPHORE_MAX);
  assert.throws(() => s.release(), code(ErrorCode.InvalidArgument), "the count would overflow");
  assert.equal(s.value, SEMAPHORE_MAX);
  // Layout: count, waiters, tag, initial.
  const w = (k: number) => obj.view.getInt32(obj.baseOffset + 4 * k, true);
  assert.deepEqual([w(0), w(1), w(3)], [SEMAPHORE_MAX, 0, 2]);
  hal.close();
});

Deno.test("Semaphore: a zeroed slot has initial count 0; init checks its count and works in volatile objects", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const s = new Semaphore(obj, obj.baseOffset);
  assert.equal(s.value, 0);
  assert.equal(s.tryAcquire(), false);
  s.release();
  assert.equal(s.tryAcquire(), true);
  const vol = twz.create({ size: 4096, lifetime: "volatile" });
  const v = Semaphore.init(vol, vol.baseOffset, 1);
  assert.equal(v.tryAcquire(), true, "in a volatile object too");
  assert.equal(v.tryAcquire(), false);
  for (const bad of [-1, 1.5, SEMAPHORE_MAX + 1, NaN]) {
    assert.throws(() => Semaphore.init(obj, obj.baseOffset, bad), RangeError, String(bad));
  }
  hal.close();
});

Deno.test("Semaphore: another boot's count goes back to the initial count at first use", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  const s = Semaphore.init(obj, obj.baseOffset, 3);
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), true);
  // A foreign tag (another boot), and the "being reset" mark of another boot.
  const tagAt = obj.baseOffset + 8;
  const tag = obj.view.getUint32(tagAt, true);
  for (const stale of [tag ^ 0x1234, (tag ^ 0x1234) | (1 << 30)]) {
    obj.view.setUint32(tagAt, stale, true);
    assert.equal(s.value, 3, "read as the initial count");
    assert.equal(s.tryAcquire(), true);
    assert.equal(s.value, 2, "reset once, then counted in this boot");
    assert.equal(obj.view.getUint32(tagAt, true), tag, "retagged");
  }
  hal.close();
});

Deno.test("Semaphore: units held when the power failed are back after the reboot", () => {
  for (const policy of ["all", "strict"] as const) {
    const { hal, twz } = session();
    const obj = twz.create({ size: 4096 });
    const s = Semaphore.init(obj, obj.baseOffset, 3);
    s.acquire();
    s.acquire();
    obj.persist(obj.baseOffset, SEMAPHORE_BYTES);
    const after = crash(hal, policy);
    const o2 = after.open(obj.id);
    assert.equal(o2.view.getInt32(o2.baseOffset, true), 1, `${policy}: the old count is there`);
    const s2 = new Semaphore(o2, o2.baseOffset);
    assert.equal(s2.value, 3, policy);
    for (let i = 0; i < 3; i++) assert.equal(s2.tryAcquire(), true, `${policy} ${i}`);
    assert.equal(s2.tryAcquire(), false);
    hal.close();
  }
});

Deno.test("Semaphore.init() persists the initial count (a crash keeping nothing else keeps it)", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  obj.persist(0, obj.size);
  Semaphore.init(obj, obj.baseOffset + 16, 5);
  const after = crash(hal, "strict");
  const o2 = after.open(obj.id);
  assert.equal(new Semaphore(o2, o2.baseOffset + 16).value, 5);
  hal.close();
});

Deno.test("sync slots: unaligned, outside, read-only and the sizes", () => {
  const { hal, twz } = session();
  const obj = twz.create({ size: 4096 });
  assert.deepEqual([MUTEX_BYTES, CONDITION_BYTES, SEMAPHORE_BYTES], [8, 8, 16]);
  const make = [
    (o: number) => new Mutex(obj, o),
    (o: number) => new Condition(obj, o),
    (o: number) => new Semaphore(obj, o),
  ];
  for (const f of make) {
    assert.throws(() => f(obj.baseOffset + 4), /is not an 8-aligned place/);
    assert.throws(() => f(-8), RangeError);
    assert.throws(() => f(1.5), RangeError);
    assert.throws(() => f(obj.size), RangeError);
  }
  assert.throws(() => new Semaphore(obj, obj.size - 8), RangeError, "16 bytes do not fit");
  new Mutex(obj, obj.size - 8); // the last 8 bytes fit
  const ro = twz.open(obj.id, { write: false });
  for (const C of [Mutex, Condition, Semaphore]) {
    assert.throws(() => new C(ro, ro.baseOffset), code(ErrorCode.AccessDenied), C.name);
  }
  hal.close();
});

// libtwz's locks between programs (issue 12): real permissions-"none"
// Workers started through the kernel's thread manager share one persistent
// object and synchronize with Mutex, Condition and Semaphore, on hal-sim and
// on hal-pmem. Single-thread paths are in packages/libtwz/sync_test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ErrorCode, Kernel, type ThreadInfo, ThreadState } from "@twz/kernel";
import type { Hal } from "@twz/kernel/hal";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { plugin as sim } from "@twz/hal-sim";
import { plugin as pmem } from "@twz/hal-pmem";
import type { TwzObject } from "@twz/libtwz";
import { KILLED_EXIT } from "@twz/libtwz/program";
import { Mutex, Semaphore } from "@twz/libtwz/sync";
import {
  attachThreads,
  bundleFile,
  installProgram,
  spawnProgram,
  stopThreads,
  type ThreadSystem,
} from "@twz/cli/run";

const tmpDir = scratchDirs("twz-sync-programs-");
const described = pmem.describe();
const PMEM_IGNORE = !described.available && Deno.env.get("CI") !== "true";
const PMEM_SKIP = described.available ? "" : ` (skipped: ${described.reason})`;

/**
 * Word offsets after an object's base, shared by the test and the program.
 * Every role keeps its lock(s) at the base and its counters after them.
 */
const W = {
  lock: 0, // Mutex (8 bytes) or Semaphore (16 bytes)
  cond1: 8, // Condition "not empty"
  cond2: 16, // Condition "not full"
  counter: 24, // the shared counter (u32)
  ready: 28, // programs at the start line
  go: 32, // non-zero: start
  seen: 36, // what a killed waiter caught (its error code)
  arrived: 40, // programs about to wait for the lock
  inside: 44, // programs inside the semaphore's section now
  most: 48, // the most ever inside at once
  full: 52, // the mailbox: 1 when `value` holds a message
  value: 56, // the message
  taken: 60, // messages the consumer took
  bad: 64, // messages taken out of order
  sum: 72, // f64: sum of the messages taken
} as const;

/**
 * One program with a role per first argument. Every role opens the object
 * named by the second argument; roles that start together wait for the
 * `go` word (sleeping in thread_sync, a few ms at a time) after counting
 * themselves in `ready`.
 */
const PROGRAM = `import type { ProgramEnv } from "@twz/libtwz/program";
import { Condition, Mutex, Semaphore } from "@twz/libtwz/sync";
import { TwzError } from "@twz/kernel/abi";

const W = ${JSON.stringify(W)};

export default function main(env: ProgramEnv, args: string[]): number {
  const [role, path, nText] = args;
  const n = Number(nText ?? 0);
  const obj = env.twz.open(path!);
  const base = obj.baseOffset;
  const view = obj.view;
  const i32 = obj.mapping.extent.i32;
  const at = (w: number) => (base + w) >>> 2;
  const startTogether = () => {
    Atomics.add(i32, at(W.ready), 1);
    const op = { op: "sleep" as const, id: obj.id, offset: base + W.go, value: 0, timeoutMs: 20 };
    while (Atomics.load(i32, at(W.go)) === 0) env.port.threadSync([op]);
  };
  switch (role) {
    case "count": {
      const lock = new Mutex(obj, base + W.lock);
      startTogether();
      for (let k = 0; k < n; k++) {
        lock.lock();
        view.setUint32(base + W.counter, view.getUint32(base + W.counter, true) + 1, true);
        lock.unlock();
      }
      return 0;
    }
    case "plain": {
      startTogether();
      for (let k = 0; k < n; k++) {
        view.setUint32(base + W.counter, view.getUint32(base + W.counter, true) + 1, true);
      }
      return 0;
    }
    case "locker": {
      const lock = new Mutex(obj, base + W.lock);
      Atomics.add(i32, at(W.arrived), 1);
      try {
        lock.lock();
      } catch (e) {
        Atomics.store(i32, at(W.seen), e instanceof TwzError ? e.code : -1);
        throw e;
      }
      view.setUint32(base + W.counter, view.getUint32(base + W.counter, true) + 1, true);
      lock.unlock();
      return 0;
    }
    case "holder": {
      // Hold the lock until killed (asleep in thread_sync), releasing it on the way out.
      const lock = new Mutex(obj, base + W.lock);
      const op = { op: "sleep" as const, id: obj.id, offset: base + W.go, value: 0, timeoutMs: 1000 };
      lock.withLock(() => {
        Atomics.store(i32, at(W.ready), 1);
        for (;;) env.port.threadSync([op]);
      });
      return 0;
    }
    case "waiter": {
      // Wait for the flag (in \`full\`), then count.
      const lock = new Mutex(obj, base + W.lock);
      const flag = new Condition(obj, base + W.cond1);
      lock.lock();
      Atomics.add(i32, at(W.arrived), 1);
      while (Atomics.load(i32, at(W.full)) === 0) flag.wait(lock);
      Atomics.add(i32, at(W.counter), 1);
      lock.unlock();
      return 0;
    }
    case "late": {
      // Sleep until killed; then (it can no longer call the kernel) raise the flag and signal.
      const lock = new Mutex(obj, base + W.lock);
      const flag = new Condition(obj, base + W.cond1);
      const op = { op: "sleep" as const, id: obj.id, offset: base + W.go, value: 0, timeoutMs: 1000 };
      Atomics.store(i32, at(W.ready), 1);
      try {
        for (;;) env.port.threadSync([op]);
      } catch (e) {
        Atomics.store(i32, at(W.seen), e instanceof TwzError ? e.code : -1);
      }
      lock.withLock(() => Atomics.store(i32, at(W.full), 1));
      flag.signal();
      Atomics.store(i32, at(W.taken), 1);
      return 0;
    }
    case "producer": {
      const lock = new Mutex(obj, base + W.lock);
      const notEmpty = new Condition(obj, base + W.cond1);
      const notFull = new Condition(obj, base + W.cond2);
      for (let k = 1; k <= n; k++) {
        lock.lock();
        while (Atomics.load(i32, at(W.full)) !== 0) notFull.wait(lock);
        Atomics.store(i32, at(W.value), k);
        Atomics.store(i32, at(W.full), 1);
        notEmpty.signal();
        lock.unlock();
      }
      return 0;
    }
    case "consumer": {
      const lock = new Mutex(obj, base + W.lock);
      const notEmpty = new Condition(obj, base + W.cond1);
      const notFull = new Condition(obj, base + W.cond2);
      let sum = 0, bad = 0;
      for (let k = 1; k <= n; k++) {
        lock.lock();
        while (Atomics.load(i32, at(W.full)) === 0) notEmpty.wait(lock);
        const v = Atomics.load(i32, at(W.value));
        Atomics.store(i32, at(W.full), 0);
        notFull.signal();
        lock.unlock();
        if (v !== k) bad++;
        sum += v;
        Atomics.add(i32, at(W.taken), 1);
      }
      Atomics.store(i32, at(W.bad), bad);
      view.setFloat64(base + W.sum, sum, true);
      return bad === 0 ? 0 : 1;
    }
    case "sem": {
      const sem = new Semaphore(obj, base + W.lock);
      startTogether();
      for (let k = 0; k < n; k++) {
        sem.acquire();
        const now = Atomics.add(i32, at(W.inside), 1) + 1;
        let most = Atomics.load(i32, at(W.most));
        while (now > most) {
          const seen = Atomics.compareExchange(i32, at(W.most), most, now);
          if (seen === most) break;
          most = seen;
        }
        // Stay a while (a system call): on the first round, until a second
        // program is inside too (or a while has passed), so that the limit
        // is reached, not just kept.
        for (let y = 0; y < (k === 0 ? 2000 : 1); y++) {
          env.port.threadYield();
          if (k === 0 && Atomics.load(i32, at(W.inside)) >= 2) break;
        }
        Atomics.sub(i32, at(W.inside), 1);
        sem.release();
      }
      return 0;
    }
  }
  console.error("unknown role " + role);
  return 2;
}
`;

let bundled: Promise<string> | undefined;

/** The program's bundle (made once per run with the real bundler). */
function programText(): Promise<string> {
  return bundled ??= (async () => {
    const file = join(tmpDir(), "synctest.ts");
    Deno.writeTextFileSync(file, PROGRAM);
    return (await bundleFile(file)).text;
  })();
}

/** A board as the thread functions see it: a HAL and its kernel, with the program installed. */
interface Board {
  hal: Hal;
  kernel: Kernel;
  system: ThreadSystem;
  /** Console output of every thread (shown when an assertion fails). */
  out: string[];
}

async function board(hal: Hal): Promise<Board> {
  const kernel = Kernel.boot(hal, { formatBlank: true });
  const out: string[] = [];
  const system = attachThreads({ kernel }, { console: (t) => out.push(t) });
  installProgram(system, "synctest", await programText());
  return { hal, kernel, system, out };
}

async function close(b: Board): Promise<void> {
  await stopThreads(b);
  b.kernel.shutdown();
  b.hal.close();
}

/** Run `fn` on a board over an anonymous hal-sim region. */
async function onSim(fn: (b: Board) => Promise<void>): Promise<void> {
  const b = await board(await sim.open({ size: 32 << 20 }));
  try {
    await fn(b);
  } finally {
    await close(b);
  }
}

/** Run `fn` on a board over a new hal-pmem image (removed after). */
async function onPmem(fn: (b: Board) => Promise<void>): Promise<void> {
  const image = join(tmpDir(), "sync.img");
  const b = await board(await pmem.open({ image, size: 32 << 20, create: true }));
  try {
    await fn(b);
  } finally {
    await close(b);
  }
}

/** A new persistent object bound at `name`, for one run. */
function shared(b: Board, name: string): TwzObject {
  return b.system.twz.create({ name, size: 4096 });
}

function word(obj: TwzObject, w: number): number {
  return Atomics.load(obj.mapping.extent.i32, (obj.baseOffset + w) >>> 2);
}

/** Wait (polling, no timing asserted) until `pred()` holds. */
async function until(pred: () => boolean, what: string, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The thread once it has ended; a test that would wait forever (a lost
 * wake-up) fails instead after `limitMs` (no timing is asserted).
 */
async function ended(b: Board, tid: number, limitMs = 120_000): Promise<ThreadInfo> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`gave up waiting for thread ${tid} to end: ${b.out.join("")}`)),
      limitMs,
    );
  });
  try {
    return await Promise.race([b.system.manager.wait(tid), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Start `count` programs of `role` on `name` and let them go together; returns their exit codes. */
async function together(
  b: Board,
  obj: TwzObject,
  name: string,
  role: string,
  count: number,
  n: number,
): Promise<number[]> {
  const threads = [];
  for (let i = 0; i < count; i++) {
    threads.push(await spawnProgram(b, "synctest", [role, name, String(n)]));
  }
  await until(() => word(obj, W.ready) === count, `${count} ${role} programs at the start`);
  Atomics.store(obj.mapping.extent.i32, (obj.baseOffset + W.go) >>> 2, 1);
  b.kernel.port().threadSync([{
    op: "wake",
    id: obj.id,
    offset: obj.baseOffset + W.go,
    count: count,
  }]);
  const ends = [];
  for (const t of threads) ends.push(await ended(b, t.tid));
  return ends.map((e) => e.exitCode ?? -1);
}

/** The must-show: 4 × 100,000 increments under the Mutex, then the same without it. */
async function counters(b: Board): Promise<void> {
  const locked = shared(b, "/sync/locked");
  const codes = await together(b, locked, "/sync/locked", "count", 4, 100_000);
  assert.deepEqual(codes, [0, 0, 0, 0], b.out.join(""));
  assert.equal(word(locked, W.counter), 400_000);
  assert.equal(word(locked, W.lock) & 3, 0, "the lock is free at the end");

  // Without the lock the same read-increment-write loses updates. The four
  // start together (woken from one word) and run 1,000,000 each: long
  // enough (milliseconds) that two of them overlap on two or more cores.
  const plain = shared(b, "/sync/plain");
  const n = 1_000_000;
  assert.deepEqual(await together(b, plain, "/sync/plain", "plain", 4, n), [0, 0, 0, 0]);
  const total = word(plain, W.counter);
  assert.ok(total < 4 * n, `no update was lost (${total}): the increments did not overlap`);
  // What unsynchronized increments guarantee: the last write stores a value
  // read + 1, and every value read after a program's first write is one some
  // program wrote (at least 1). Not `n`: a program that read early and stored
  // late can take the word back below `n` (CI saw 997,572 of 4,000,000).
  assert.ok(total >= 2, `${total}`);
}

Deno.test("Mutex: 4 programs × 100,000 increments under it make exactly 400,000; without it updates are lost (hal-sim)", async () => {
  await onSim(counters);
});

Deno.test({
  name:
    `Mutex: 4 programs × 100,000 increments under it make exactly 400,000; without it updates are lost (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => onPmem(counters),
});

/** A producer hands 2,000 messages to a consumer through a one-message mailbox. */
async function handOff(b: Board): Promise<void> {
  const obj = shared(b, "/sync/mailbox");
  const n = 2000;
  const producer = await spawnProgram(b, "synctest", ["producer", "/sync/mailbox", String(n)]);
  const consumer = await spawnProgram(b, "synctest", ["consumer", "/sync/mailbox", String(n)]);
  const [p, c] = [await ended(b, producer.tid), await ended(b, consumer.tid)];
  assert.equal(p.exitCode, 0, `producer: ${p.fault?.message} ${b.out.join("")}`);
  assert.equal(c.exitCode, 0, `consumer: ${c.fault?.message} ${b.out.join("")}`);
  assert.equal(word(obj, W.taken), n);
  assert.equal(word(obj, W.bad), 0, "in order");
  assert.equal(obj.view.getFloat64(obj.baseOffset + W.sum, true), (n * (n + 1)) / 2);
  assert.equal(word(obj, W.full), 0);
}

Deno.test("Condition: a producer and a consumer program hand over 2,000 messages one at a time, in order (hal-sim)", async () => {
  await onSim(handOff);
});

Deno.test({
  name:
    `Condition: a producer and a consumer program hand over 2,000 messages one at a time, in order (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => onPmem(handOff),
});

/** Four programs, a semaphore of 2: never more than 2 inside, and 2 reached. */
async function limit(b: Board): Promise<void> {
  const obj = shared(b, "/sync/sem");
  const sem = Semaphore.init(obj, obj.baseOffset + W.lock, 2);
  const codes = await together(b, obj, "/sync/sem", "sem", 4, 200);
  assert.deepEqual(codes, [0, 0, 0, 0], b.out.join(""));
  assert.equal(word(obj, W.most), 2, "at most 2 inside at once, and 2 were");
  assert.equal(word(obj, W.inside), 0);
  assert.equal(sem.value, 2, "every unit came back");
}

Deno.test("Semaphore(2): of 4 programs at most 2 are inside at once (hal-sim)", async () => {
  await onSim(limit);
});

Deno.test({
  name: `Semaphore(2): of 4 programs at most 2 are inside at once (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => onPmem(limit),
});

/**
 * The kernel's session holds a lock; two programs wait for it; one is
 * killed (its lock() throws Killed); once released the other takes it.
 */
async function killedWaiter(b: Board): Promise<void> {
  const obj = shared(b, "/sync/kill");
  const lock = new Mutex(obj, obj.baseOffset + W.lock);
  lock.lock();
  const victim = await spawnProgram(b, "synctest", ["locker", "/sync/kill"]);
  const other = await spawnProgram(b, "synctest", ["locker", "/sync/kill"]);
  await until(() => word(obj, W.arrived) === 2, "two programs at the lock");
  // Both are (about to be) asleep on the lock word: it reads "held, waited for".
  await until(() => (word(obj, W.lock) & 3) === 2, "a waiter marking the lock");
  await sleepingOrWhile(b, [victim.tid, other.tid]);
  const { manager } = b.system;
  manager.kill(victim.tid);
  const end = await ended(b, victim.tid);
  assert.equal(end.exitCode, KILLED_EXIT, b.out.join(""));
  assert.equal(end.fault?.kind, "killed");
  assert.equal(word(obj, W.seen), ErrorCode.Killed, "lock() threw Killed");
  assert.equal(word(obj, W.counter), 0, "nobody got in while the session held the lock");
  lock.unlock();
  const done = await ended(b, other.tid);
  assert.equal(done.exitCode, 0, `${done.fault?.message} ${b.out.join("")}`);
  assert.equal(word(obj, W.counter), 1, "the other program took the lock");
  assert.equal(lock.locked, false);
  assert.equal(lock.tryLock(), true, "and released it");
  lock.unlock();
}

/**
 * A program holding the lock in withLock is killed while another waits: the
 * holder releases it on its way out, but being killed it cannot call the
 * kernel to wake the waiter (on hal-pmem; on hal-sim the wake may happen in
 * the Worker): the waiter finds the lock free on its next look.
 */
async function killedHolder(b: Board): Promise<void> {
  const obj = shared(b, "/sync/holder");
  const holder = await spawnProgram(b, "synctest", ["holder", "/sync/holder"]);
  await until(() => word(obj, W.ready) === 1, "the holder holding the lock");
  const waiter = await spawnProgram(b, "synctest", ["locker", "/sync/holder"]);
  await until(() => word(obj, W.arrived) === 1, "the waiter at the lock");
  await until(() => (word(obj, W.lock) & 3) === 2, "the waiter marking the lock");
  await sleepingOrWhile(b, [waiter.tid]);
  const { manager } = b.system;
  manager.kill(holder.tid);
  const end = await ended(b, holder.tid);
  assert.equal(end.fault?.kind, "killed", b.out.join(""));
  const done = await ended(b, waiter.tid);
  assert.equal(done.exitCode, 0, `${done.fault?.message} ${b.out.join("")}`);
  assert.equal(word(obj, W.counter), 1, "the waiter got the lock");
  assert.equal(word(obj, W.lock) & 3, 0, "and released it");
}

Deno.test("Mutex: a program killed inside withLock releases the lock; a waiter gets it (hal-sim)", async () => {
  await onSim(killedHolder);
});

Deno.test({
  name:
    `Mutex: a program killed inside withLock releases the lock; a waiter gets it (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => onPmem(killedHolder),
});

/**
 * A program raises a flag and signals after it was killed (it cannot call
 * the kernel any more, so on hal-pmem its wake-up is lost): the waiter sees
 * the sequence word changed on its next look and returns.
 */
async function killedSignaller(b: Board): Promise<void> {
  const obj = shared(b, "/sync/late");
  const waiter = await spawnProgram(b, "synctest", ["waiter", "/sync/late"]);
  await until(() => word(obj, W.arrived) === 1, "the waiter at the condition");
  await sleepingOrWhile(b, [waiter.tid]);
  const late = await spawnProgram(b, "synctest", ["late", "/sync/late"]);
  await until(() => word(obj, W.ready) === 1, "the signaller asleep");
  b.system.manager.kill(late.tid);
  await ended(b, late.tid);
  assert.equal(word(obj, W.seen), ErrorCode.Killed);
  assert.equal(word(obj, W.taken), 1, `the killed program signalled: ${b.out.join("")}`);
  const done = await ended(b, waiter.tid);
  assert.equal(done.exitCode, 0, `${done.fault?.message} ${b.out.join("")}`);
  assert.equal(word(obj, W.counter), 1);
}

Deno.test("Condition: a signal from a killed program still ends the wait (hal-sim)", async () => {
  await onSim(killedSignaller);
});

Deno.test({
  name: `Condition: a signal from a killed program still ends the wait (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => onPmem(killedSignaller),
});

/**
 * Give the threads a moment to fall asleep: until the manager reports them
 * sleeping, or 500 ms (a thread sleeping in its Worker, without the
 * kernel, may never be reported so; the test holds either way).
 */
async function sleepingOrWhile(b: Board, tids: number[]): Promise<void> {
  const end = Date.now() + 500;
  const asleep = (tid: number) =>
    b.system.manager.threads().find((t) => t.tid === tid)?.state === ThreadState.Sleeping;
  while (Date.now() < end && !tids.every(asleep)) {
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("Mutex: a program killed while it waits for a lock ends Killed; the others go on (hal-sim)", async () => {
  await onSim(killedWaiter);
});

Deno.test({
  name:
    `Mutex: a program killed while it waits for a lock ends Killed; the others go on (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => onPmem(killedWaiter),
});

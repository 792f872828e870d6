// The thread manager with real Workers (permissions "none") on hal-sim:
// programs are bundled test modules stored as code objects; each test checks
// what `ps` would show (ThreadInfo) and what the thread objects hold.
import assert from "node:assert/strict";
import { ErrorCode, Kernel, Prot, type ThreadInfo, ThreadState, TwzError } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import {
  CODE_MAGIC,
  encodeCodeObject,
  isThreadObject,
  KILLED_EXIT_CODE,
  LOAD_EXIT_CODE,
  THREAD_MAGIC,
  ThreadField,
  ThreadFlag,
  ThreadManager,
  type ThreadManagerOptions,
} from "@twz/kernel/threads";
import { bundle, installCode, program, until } from "./_test_programs.ts";

const MiB = 1 << 20;

// Programs without imports are modules as they are; the others are bundled.
const RAW = {
  returns: `export default function start(init) { return init.args.length + 40; }`,
  throws: `export default function start() { throw new Error("boom"); }`,
  syntax: `export default function ( {`,
  nodefault: `export const x = 1;`,
  closes: `export default function start() { self.close(); return new Promise(() => {}); }`,
  exits: `export default function start() { Deno.exit(5); }`,
  late: `export default function start() {
    setTimeout(() => { throw new Error("late"); }, 0);
    return new Promise(() => {});
  }`,
};

const P = {
  ...RAW,
  ...await bundle({
    exit: program(`
    port.consoleWrite("hello " + args.join(" ") + "\\n");
    port.threadExit(args.length, null);
    return 99;`),
    readonly: program(`
    const id = BigInt(args[0]);
    const m = port.map(id, abi.Prot.Read);
    if (m.writable) return 3;
    port.write(id, 0, new Uint8Array([1]));
    return 0;`),
    perms: program(`
    try { await Deno.readTextFile("/etc/hostname"); return 1; }
    catch (e) { port.consoleWrite(e.name + "\\n"); return 0; }`),
    sleeper: program(`
    const id = BigInt(args[0]), off = Number(args[1]);
    const timeoutMs = args[2] === undefined ? undefined : Number(args[2]);
    const r = port.threadSync([{ op: "sleep", id, offset: off, value: 0, timeoutMs }]);
    const m = port.map(id);
    m.view.setUint32(off + 4, 100 + r[0], true);
    m.persist(off + 4, 4);
    return r[0];`),
    waker: program(`
    const id = BigInt(args[0]), off = Number(args[1]);
    const m = port.map(id);
    m.view.setUint32(off, 1, true);
    return port.threadSync([{ op: "wake", id, offset: off, count: 10 }])[0];`),
    waiter: program(`
    const info = port.threadWait(Number(args[0]), Infinity);
    return info.exitCode + 1;`),
    spawner: program(`
    const me = port.threadSelf();
    port.consoleWrite("parent " + me.tid + " " + me.name + "\\n");
    const t = port.spawn({ code: BigInt(args[0]), name: "child", args: ["x", "y", "z"] });
    const info = port.threadWait(t.tid, Infinity);
    return info.exitCode + 1;`),
    killer: program(`
    port.threadKill(Number(args[0]));
    return port.threads().length;`),
    forever: program(`
    port.consoleWrite("waiting\\n");
    await new Promise(() => {});`),
  }),
};

/** A sim kernel with a manager; console text collected. */
function system(options: ThreadManagerOptions = {}) {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  const out: string[] = [];
  const manager = new ThreadManager(kernel, { console: (t) => out.push(t), ...options });
  const code = Object.fromEntries(
    Object.entries(P).map(([k, text]) => [k, installCode(kernel, text)]),
  ) as Record<keyof typeof P, bigint>;
  const close = async () => {
    await manager.shutdown(500);
    kernel.shutdown();
  };
  return { kernel, manager, out, code, close };
}

function sleeping(m: ThreadManager, tid: number): () => boolean {
  return () => m.info(tid).state === ThreadState.Sleeping;
}

Deno.test("ThreadManager.spawn() runs a program in a permissions-none Worker: args, console, thread_exit's code", async () => {
  const s = system();
  try {
    const t = s.manager.spawn({ code: s.code.exit, name: "exit", args: ["a", "b"] });
    assert.equal(t.name, "exit");
    assert.equal(t.state, ThreadState.Starting);
    const end = await s.manager.wait(t.tid);
    assert.equal(end.state, ThreadState.Exited);
    assert.equal(end.exitCode, 2, "thread_exit's code, not the start function's return");
    assert.equal(end.fault, null);
    assert.ok(end.ended >= end.started);
    const p = await s.manager.wait(
      s.manager.spawn({ code: s.code.perms, name: "perms", args: [] }).tid,
    );
    assert.equal(p.exitCode, 0);
    assert.deepEqual(s.out, ["hello a b\n", "NotCapable\n"]);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: a start function's return value is the exit code when it never calls thread_exit", async () => {
  const s = system();
  try {
    const t = s.manager.spawn({ code: s.code.returns, name: "returns", args: ["1", "2", "3"] });
    assert.equal((await s.manager.wait(t.tid)).exitCode, 43);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: a program that calls close() or Deno.exit(n) ends with 0 or n", async () => {
  const s = system();
  try {
    const c = await s.manager.wait(
      s.manager.spawn({ code: s.code.closes, name: "c", args: [] }).tid,
    );
    assert.equal(c.state, ThreadState.Exited);
    assert.equal(c.exitCode, 0);
    const e = await s.manager.wait(
      s.manager.spawn({ code: s.code.exits, name: "e", args: [] }).tid,
    );
    assert.equal(e.exitCode, 5);
    assert.equal(e.fault, null);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: a program that throws ends with fault exception; the kernel and other threads go on", async () => {
  const s = system();
  try {
    const sleeper = s.manager.spawn({
      code: s.code.sleeper,
      name: "sleeper",
      args: [String(s.kernel.create({ size: 4096 })), "0"],
    });
    await until(sleeping(s.manager, sleeper.tid), "the sleeper");
    const t = await s.manager.wait(
      s.manager.spawn({ code: s.code.throws, name: "throws", args: [] }).tid,
    );
    assert.equal(t.state, ThreadState.Exited);
    assert.equal(t.exitCode, 1);
    assert.deepEqual(t.fault, { kind: "exception", message: "Error: boom" });
    // The kernel answers, the sleeper still sleeps, new programs run.
    assert.ok(s.kernel.create({ size: 4096 }) > 0n);
    assert.equal(s.manager.info(sleeper.tid).state, ThreadState.Sleeping);
    const e = await s.manager.wait(
      s.manager.spawn({ code: s.code.exit, name: "exit", args: [] }).tid,
    );
    assert.equal(e.exitCode, 0);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: a program that writes to a read-only object ends with fault protection", async () => {
  const s = system();
  try {
    const ro = s.kernel.create({ size: 4096, prot: Prot.Read });
    const t = await s.manager.wait(
      s.manager.spawn({ code: s.code.readonly, name: "ro", args: [String(ro)] }).tid,
    );
    assert.equal(t.exitCode, 1);
    assert.equal(t.fault?.kind, "protection");
    assert.match(t.fault!.message, /Cannot map .*: its protections are r--/);
    assert.equal(s.kernel.read(ro, 0, 1)[0], 0, "the object is unchanged");
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: a program that cannot load ends with fault load", async () => {
  const s = system();
  try {
    const a = await s.manager.wait(
      s.manager.spawn({ code: s.code.syntax, name: "syntax", args: [] }).tid,
    );
    assert.equal(a.exitCode, LOAD_EXIT_CODE);
    assert.equal(a.fault?.kind, "load");
    assert.match(a.fault!.message, /^cannot load the program: .*SyntaxError/);
    const b = await s.manager.wait(
      s.manager.spawn({ code: s.code.nodefault, name: "nd", args: [] }).tid,
    );
    assert.equal(b.fault?.kind, "load");
    assert.match(b.fault!.message, /no default export function/);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: a code object's URL serves every start: kept, revoked by nobody, new for writable code", async () => {
  const s = system();
  try {
    const run = async (code: bigint) =>
      (await s.manager.wait(s.manager.spawn({ code, name: "x", args: [] }).tid)).exitCode;
    // A program cannot revoke the URL the next start of its code imports.
    const revoker = installCode(
      s.kernel,
      `export default function start() { URL.revokeObjectURL(import.meta.url); return 7; }`,
    );
    assert.equal(await run(revoker), 7);
    assert.equal(await run(revoker), 7);
    // Deleting the code object right after spawns: the threads still load it.
    const spawned = [1, 2].map(() =>
      s.manager.spawn({ code: s.code.returns, name: "r", args: [] })
    );
    s.kernel.delete(s.code.returns);
    for (const t of spawned) assert.equal((await s.manager.wait(t.tid)).exitCode, 40);
    // A writable code object is read again at every spawn.
    const rw = installCode(s.kernel, `export default () => 1;`, Prot.All);
    assert.equal(await run(rw), 1);
    s.kernel.write(rw, 0, encodeCodeObject(`export default () => 2;`));
    assert.equal(await run(rw), 2);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: an uncaught error in a callback (a worker error event) ends the thread with a fault", async () => {
  const s = system();
  try {
    const t = await s.manager.wait(
      s.manager.spawn({ code: s.code.late, name: "late", args: [] }).tid,
    );
    assert.equal(t.exitCode, 1);
    assert.equal(t.fault?.kind, "exception");
    assert.match(t.fault!.message, /late/);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager.spawn() refuses what is not an executable code object", async () => {
  const s = system();
  try {
    const noExec = installCode(s.kernel, P.returns, Prot.Read);
    assert.throws(
      () => s.manager.spawn({ code: noExec, name: "x", args: [] }),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.AccessDenied &&
        /not executable/.test(e.message),
    );
    const junk = s.kernel.create({ size: 64, prot: Prot.All });
    assert.throws(
      () => s.manager.spawn({ code: junk, name: "x", args: [] }),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.InvalidArgument &&
        /no TWZX magic/.test(e.message),
    );
    const short = s.kernel.create({ size: 64, prot: Prot.All });
    const v = s.kernel.map(short).view;
    v.setUint32(0, CODE_MAGIC, true);
    v.setUint16(4, 1, true);
    v.setUint32(8, 1000, true);
    assert.throws(
      () => s.manager.spawn({ code: short, name: "x", args: [] }),
      (e) =>
        e instanceof TwzError && e.code === ErrorCode.InvalidArgument &&
        /runs past its end/.test(e.message),
    );
    assert.throws(
      () => s.manager.spawn({ code: 0x1234n << 64n, name: "x", args: [] }),
      (e) => e instanceof TwzError && e.code === ErrorCode.ObjectNotFound,
    );
    assert.throws(
      () => s.manager.spawn({ code: s.code.exit, name: "x", args: [1 as unknown as string] }),
      (e) => e instanceof TwzError && e.code === ErrorCode.InvalidArgument,
    );
    assert.deepEqual(s.manager.threads(), [], "nothing was started");
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: a thread object is a persistent kernel object holding state, exit code and fault", async () => {
  const s = system();
  try {
    const t = s.manager.spawn({ code: s.code.throws, name: "throws", args: [] });
    const stat = s.kernel.stat(t.id);
    assert.equal(stat.lifetime, "persistent");
    await s.manager.wait(t.tid);
    const bytes = s.kernel.read(t.id, 0, stat.size);
    assert.equal(isThreadObject(bytes), true);
    const v = new DataView(bytes.buffer);
    assert.equal(v.getUint32(ThreadField.magic, true), THREAD_MAGIC);
    assert.equal(v.getUint32(ThreadField.state, true), ThreadState.Exited);
    assert.equal(v.getInt32(ThreadField.exitCode, true), 1);
    assert.equal(v.getUint32(ThreadField.tid, true), t.tid);
    const text = (at: number) =>
      new TextDecoder().decode(bytes.subarray(at + 2, at + 2 + v.getUint16(at, true)));
    assert.equal(text(ThreadField.name), "throws");
    assert.equal(text(ThreadField.faultKind), "exception");
    assert.equal(text(ThreadField.faultMessage), "Error: boom");
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: thread_sync sleepers wake on another thread's wake and on the kernel session's", async () => {
  const s = system();
  try {
    const obj = s.kernel.create({ size: 4096 });
    const a = s.manager.spawn({ code: s.code.sleeper, name: "a", args: [String(obj), "0"] });
    const b = s.manager.spawn({ code: s.code.sleeper, name: "b", args: [String(obj), "16"] });
    await until(() => sleeping(s.manager, a.tid)() && sleeping(s.manager, b.tid)(), "both asleep");
    // Another thread stores the word and wakes its sleepers.
    const w = await s.manager.wait(
      s.manager.spawn({ code: s.code.waker, name: "w", args: [String(obj), "0"] }).tid,
    );
    assert.equal(w.exitCode, 1, "one sleeper woken");
    assert.equal((await s.manager.wait(a.tid)).exitCode, 0, "woken (0)");
    assert.equal(new DataView(s.kernel.read(obj, 4, 4).buffer).getUint32(0, true), 100);
    assert.equal(
      s.manager.info(b.tid).state,
      ThreadState.Sleeping,
      "a sleeper on another word sleeps on",
    );
    // The kernel's own session wakes through its port.
    assert.deepEqual(s.kernel.port().threadSync([{ op: "wake", id: obj, offset: 16, count: 1 }]), [
      1,
    ]);
    assert.equal((await s.manager.wait(b.tid)).exitCode, 0);
    assert.deepEqual(s.kernel.port().threadSync([{ op: "wake", id: obj, offset: 16, count: 1 }]), [
      0,
    ]);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: deleting an object a thread sleeps on ends its thread_sync with ObjectNotFound", async () => {
  const s = system();
  try {
    const obj = s.kernel.create({ size: 4096 });
    const a = s.manager.spawn({ code: s.code.sleeper, name: "a", args: [String(obj), "0"] });
    await until(sleeping(s.manager, a.tid), "asleep");
    const waited = s.manager.wait(a.tid);
    s.kernel.delete(obj);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const end = await Promise.race([
      waited,
      new Promise<null>((r) => timer = setTimeout(() => r(null), 5000)),
    ]);
    clearTimeout(timer);
    assert.ok(end !== null, "the sleeper was never woken");
    assert.equal(end.exitCode, 1);
    assert.match(end.fault?.message ?? "", /deleted while the thread slept/);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: thread_sync returns 1 when the word differs and 2 after its timeout", async () => {
  const s = system();
  try {
    const obj = s.kernel.create({ size: 4096 });
    s.kernel.write(obj, 32, new Uint8Array([7, 0, 0, 0]));
    const d = await s.manager.wait(
      s.manager.spawn({ code: s.code.sleeper, name: "d", args: [String(obj), "32"] }).tid,
    );
    assert.equal(d.exitCode, 1, "the word differs: no sleep");
    const t = await s.manager.wait(
      s.manager.spawn({ code: s.code.sleeper, name: "t", args: [String(obj), "0", "20"] }).tid,
    );
    assert.equal(t.exitCode, 2, "timed out");
    assert.equal(new DataView(s.kernel.read(obj, 4, 4).buffer).getUint32(0, true), 102);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager: thread_wait sleeps until the other thread ends; spawn from a thread shares its console", async () => {
  const s = system();
  try {
    const obj = s.kernel.create({ size: 4096 });
    const sl = s.manager.spawn({ code: s.code.sleeper, name: "sl", args: [String(obj), "0"] });
    const w = s.manager.spawn({ code: s.code.waiter, name: "waiter", args: [String(sl.tid)] });
    await until(() => sleeping(s.manager, sl.tid)() && sleeping(s.manager, w.tid)(), "both asleep");
    s.manager.wake(obj, 0, 1);
    assert.equal((await s.manager.wait(w.tid)).exitCode, 1, "the sleeper's code (0) + 1");

    const childOut: string[] = [];
    const p = s.manager.spawn(
      { code: s.code.spawner, name: "parent", args: [String(s.code.exit)] },
      { console: (t) => childOut.push(t) },
    );
    const end = await s.manager.wait(p.tid);
    assert.equal(end.exitCode, 4, "the child's thread_exit code (3 args) + 1");
    assert.deepEqual(childOut, [`parent ${p.tid} parent\n`, "hello x y z\n"]);
    const child = s.manager.threads().find((t) => t.name === "child");
    assert.equal(child?.state, ThreadState.Exited);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager.kill(): a sleeping thread ends killed (137); others go on; a thread kills another", async () => {
  const s = system();
  try {
    const obj = s.kernel.create({ size: 4096 });
    const a = s.manager.spawn({ code: s.code.sleeper, name: "a", args: [String(obj), "0"] });
    const b = s.manager.spawn({ code: s.code.sleeper, name: "b", args: [String(obj), "16"] });
    await until(() => sleeping(s.manager, a.tid)() && sleeping(s.manager, b.tid)(), "both asleep");
    s.manager.kill(a.tid);
    assert.equal(s.manager.info(a.tid).killing, true);
    const end = await s.manager.wait(a.tid);
    assert.equal(end.exitCode, KILLED_EXIT_CODE);
    assert.deepEqual(end.fault, { kind: "killed", message: "killed" });
    assert.equal(end.killing, false, "the kill was honoured");
    const flags = new DataView(s.kernel.read(a.id, 0, 8).buffer).getUint16(ThreadField.flags, true);
    assert.equal(flags & ThreadFlag.Killing, ThreadFlag.Killing, "the object records the request");
    assert.equal(s.manager.info(b.tid).state, ThreadState.Sleeping, "b sleeps on");
    assert.equal(s.kernel.read(obj, 4, 1)[0], 0, "the killed sleeper did not go on");
    // Another thread kills b through its port.
    const k = await s.manager.wait(
      s.manager.spawn({ code: s.code.killer, name: "killer", args: [String(b.tid)] }).tid,
    );
    assert.equal(k.exitCode, 3, "it saw three threads");
    const bEnd = await s.manager.wait(b.tid);
    assert.equal(bEnd.exitCode, KILLED_EXIT_CODE);
    assert.deepEqual(bEnd.fault, { kind: "killed", message: `killed by thread ${k.tid}` });
    s.manager.kill(a.tid); // an ended thread: nothing happens
    assert.throws(
      () => s.manager.kill(999),
      (e) => e instanceof TwzError && e.code === ErrorCode.InvalidArgument,
    );
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager.kill(): a thread that never calls the kernel again is terminated after the grace period", async () => {
  const s = system({ killGraceMs: 100 });
  try {
    const t = s.manager.spawn({ code: s.code.forever, name: "forever", args: [] });
    await until(() => s.out.includes("waiting\n"), "the program's output");
    s.manager.kill(t.tid);
    const end = await s.manager.wait(t.tid);
    assert.equal(end.exitCode, KILLED_EXIT_CODE);
    assert.equal(end.fault?.kind, "killed", "its event loop ran: terminate() stops it");
    assert.equal(s.manager.unstoppable, 0);
  } finally {
    await s.close();
  }
});

Deno.test("ThreadManager.shutdown(): every live thread ends killed; no new threads start", async () => {
  const s = system();
  const obj = s.kernel.create({ size: 4096 });
  const a = s.manager.spawn({ code: s.code.sleeper, name: "a", args: [String(obj), "0"] });
  const f = s.manager.spawn({ code: s.code.forever, name: "f", args: [] });
  await until(() => sleeping(s.manager, a.tid)() && s.out.includes("waiting\n"), "both running");
  await s.manager.shutdown(100);
  for (const tid of [a.tid, f.tid]) {
    const i = s.manager.info(tid);
    assert.equal(i.state, ThreadState.Exited);
    assert.equal(i.exitCode, KILLED_EXIT_CODE);
    assert.deepEqual(i.fault, { kind: "killed", message: "killed at shutdown" });
  }
  assert.throws(
    () => s.manager.spawn({ code: s.code.exit, name: "late", args: [] }),
    (e) => e instanceof TwzError && e.code === ErrorCode.Shutdown,
  );
  s.kernel.shutdown();
});

Deno.test("Kernel.shutdown() with live threads terminates them; they read killed at shutdown", async () => {
  const s = system();
  const obj = s.kernel.create({ size: 4096 });
  const a = s.manager.spawn({ code: s.code.sleeper, name: "a", args: [String(obj), "0"] });
  await until(sleeping(s.manager, a.tid), "asleep");
  const waited = s.manager.wait(a.tid);
  s.kernel.shutdown();
  const end = await waited;
  assert.equal(end.exitCode, KILLED_EXIT_CODE);
  assert.deepEqual(end.fault, { kind: "killed", message: "killed at shutdown" });
});

Deno.test("Kernel.shutdown({ reboot }) with live threads: they read lost at reboot, durably", async () => {
  const s = system();
  const obj = s.kernel.create({ size: 4096 });
  const a = s.manager.spawn({ code: s.code.sleeper, name: "a", args: [String(obj), "0"] });
  await until(sleeping(s.manager, a.tid), "asleep");
  const waited = s.manager.wait(a.tid);
  s.kernel.shutdown({ reboot: true });
  const end = await waited;
  assert.equal(end.exitCode, 1);
  assert.equal(end.fault?.kind, "lost");
  // The thread object says so on the next boot, before any markLost.
  const k2 = Kernel.boot(s.kernel.hal);
  const bytes = k2.read(a.id, 0, 512);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getUint32(ThreadField.state, true), ThreadState.Exited);
  assert.equal(view.getInt32(ThreadField.exitCode, true), 1);
  k2.shutdown();
});

Deno.test("ThreadManager.markLost(): threads of an earlier boot read exited (lost at reboot); tids go on above theirs", async () => {
  const hal = openSim({ size: 16 * MiB });
  const k1 = Kernel.boot(hal);
  const m1 = new ThreadManager(k1, { console: () => {} });
  const obj = k1.create({ size: 4096 });
  const code = installCode(k1, P.sleeper);
  const done = installCode(k1, P.returns);
  const ended = await m1.wait(m1.spawn({ code: done, name: "done", args: [] }).tid);
  const a = m1.spawn({ code, name: "a", args: [String(obj), "0"] });
  await until(sleeping(m1, a.tid), "asleep");
  k1.halt(); // a power failure: nothing more is written
  assert.equal(m1.info(a.tid).state, ThreadState.Exited, "its Worker is gone");

  const k2 = Kernel.boot(hal);
  const m2 = new ThreadManager(k2, { console: () => {} });
  try {
    const lost = m2.markLost([ended.id, a.id, obj]);
    assert.equal(lost.length, 2, "the object that is not a thread object is skipped");
    const [e, l] = lost as [ThreadInfo, ThreadInfo];
    assert.equal(e.exitCode, 40, "an exited thread keeps its record");
    assert.equal(e.fault, null);
    assert.equal(l.tid, a.tid);
    assert.equal(l.state, ThreadState.Exited);
    assert.deepEqual(l.fault, { kind: "lost", message: "lost at reboot" });
    assert.deepEqual(m2.threads().map((t) => t.tid), [ended.tid, a.tid]);
    const n = m2.spawn({ code: done, name: "new", args: [] });
    assert.ok(n.tid > a.tid, "thread numbers go on above the earlier boot's");
    await m2.wait(n.tid);
  } finally {
    await m2.shutdown(100);
    k2.shutdown();
  }
  // The record is durable: a third boot reads it as lost without help.
  const k3 = Kernel.boot(hal);
  try {
    const v = new DataView(k3.read(a.id, 0, 512).buffer);
    assert.equal(v.getUint32(ThreadField.state, true), ThreadState.Exited);
  } finally {
    k3.shutdown();
  }
});

Deno.test("ThreadManager on a read-only system: thread objects are volatile, programs still run", async () => {
  const hal = openSim({ size: 16 * MiB });
  const k1 = Kernel.boot(hal);
  const code = installCode(k1, P.returns);
  k1.shutdown();
  const kernel = Kernel.boot(hal, { readOnly: true });
  const manager = new ThreadManager(kernel, { console: () => {} });
  try {
    const t = manager.spawn({ code, name: "ro", args: ["x"] });
    assert.equal(kernel.stat(t.id).lifetime, "volatile");
    assert.equal((await manager.wait(t.tid)).exitCode, 41);
  } finally {
    await manager.shutdown(100);
    kernel.shutdown();
  }
});

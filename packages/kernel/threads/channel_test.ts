// The system-call channel with real Workers (permissions "none"): a thread's
// calls cross the SharedArrayBuffer channel to a kernel on hal-sim and on
// hal-pmem; errors cross with their code and message; kill, parking and
// mapping updates (grow/delete while mapped) work. The thread calls are a
// small fake here (the thread manager has its own tests).
import assert from "node:assert/strict";
import {
  ErrorCode,
  Kernel,
  Prot,
  type SyncOp,
  type ThreadFault,
  type ThreadInfo,
  ThreadState,
} from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { openThreadChannel, type ThreadCalls, type ThreadChannel } from "./_server.ts";
import { PMEM_IGNORE, PMEM_SKIP, withPmem } from "./_test_programs.ts";

const MiB = 1 << 20;
const ABI = new URL("../abi/mod.ts", import.meta.url).href;

/** Thread calls answered by the test: console text is kept, sleeps are deferred. */
class FakeCalls implements ThreadCalls {
  out = "";
  exited: number | undefined;
  fault: ThreadFault | null | undefined;
  waited: number | undefined;
  sleepers: ((v: number[]) => void)[] = [];
  info(tid: number): ThreadInfo {
    return {
      tid,
      id: 1n << 64n,
      name: "test",
      state: ThreadState.Running,
      exitCode: 0,
      fault: null,
      started: 0,
      ended: 0,
      killing: false,
    };
  }
  threadSelf(tid: number): ThreadInfo {
    return this.info(tid);
  }
  exit(_tid: number, code: number, fault?: ThreadFault | null): void {
    this.exited = code;
    this.fault = fault;
  }
  yield(): void {}
  kill(): void {}
  threads(tid: number): ThreadInfo[] {
    return [this.info(tid)];
  }
  wait(_tid: number, target: number, timeoutMs: number): ThreadInfo {
    this.waited = timeoutMs;
    return this.info(target);
  }
  sync(_tid: number, ops: SyncOp[]): number[] | Promise<number[]> {
    if (ops.some((o) => o.op === "sleep")) {
      return new Promise((resolve) => this.sleepers.push(resolve));
    }
    return ops.map(() => 0);
  }
  spawn(tid: number): ThreadInfo {
    return this.info(tid + 1);
  }
  console(_tid: number, text: string): void {
    this.out += text;
  }
}

interface Outcome {
  ok: boolean;
  value?: Record<string, unknown>;
  name?: string;
  code?: number;
  message?: string;
}

/**
 * A thread: a permissions-none Worker whose module (a blob) runs `body` as
 * an async function with `port` (from connectPort), `init`, `args` and `abi`
 * in scope; `note(x)` posts progress to the test.
 */
class TestThread {
  readonly ch: ThreadChannel;
  readonly worker: Worker;
  readonly result: Promise<Outcome>;
  readonly notes: unknown[] = [];
  #url: string;
  #onNote: (() => void) | undefined;

  constructor(
    kernel: Kernel,
    calls: ThreadCalls,
    body: string,
    args: string[] = [],
    options: { spinUs?: number } = {},
  ) {
    this.ch = openThreadChannel(kernel, 7, calls, options);
    const src = `import * as abi from ${JSON.stringify(ABI)};
const note = (x) => self.postMessage({ note: x });
self.onmessage = async (e) => {
  const init = e.data, args = init.args;
  const port = abi.connectPort(init);
  try {
    const value = await (async () => { ${body} })();
    self.postMessage({ ok: true, value });
  } catch (err) {
    self.postMessage({ ok: false, name: err?.name, code: err?.code, message: String(err?.message ?? err) });
  }
};`;
    this.#url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
    this.worker = new Worker(this.#url, {
      type: "module",
      deno: { permissions: "none" },
    } as WorkerOptions);
    this.result = new Promise<Outcome>((resolve) => {
      this.worker.onmessage = (e: MessageEvent) => {
        if (e.data && "note" in e.data) {
          this.notes.push(e.data.note);
          this.#onNote?.();
        } else resolve(e.data as Outcome);
      };
      this.worker.onerror = (e) => {
        e.preventDefault();
        resolve({ ok: false, name: "WorkerError", message: e.message });
      };
    });
    this.worker.postMessage({ tid: 7, id: 1n << 64n, name: "test", args, ...this.ch.init }, [
      this.ch.init.memory,
    ]);
  }

  /** Wait until the thread has posted `n` notes (fails if it ends first). */
  async notesAt(n: number): Promise<void> {
    while (this.notes.length < n) {
      const ended = await Promise.race([
        new Promise<undefined>((resolve) => this.#onNote = () => resolve(undefined)),
        this.result,
      ]);
      if (ended) assert.fail(`the thread ended early: ${JSON.stringify(ended)}`);
    }
  }

  async stop(): Promise<void> {
    this.worker.terminate();
    this.ch.server.close();
    await this.ch.server.done;
    URL.revokeObjectURL(this.#url);
  }
}

/** Run `body` in a thread to its end; returns its outcome. */
async function runThread(
  kernel: Kernel,
  body: string,
  args: string[] = [],
  calls: ThreadCalls = new FakeCalls(),
): Promise<Outcome> {
  const t = new TestThread(kernel, calls, body, args);
  try {
    return await t.result;
  } finally {
    await t.stop();
  }
}

/** Wait until `t` sleeps in thread_sync (fails if it ends first). */
async function sleeping(calls: FakeCalls, t: TestThread): Promise<void> {
  let ended: Outcome | undefined;
  t.result.then((o) => ended = o);
  while (calls.sleepers.length === 0) {
    if (ended) assert.fail(`the thread ended before it slept: ${JSON.stringify(ended)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function value(o: Outcome): Record<string, unknown> {
  assert.ok(o.ok, `the thread failed: ${o.name} ${o.code ?? ""} ${o.message}`);
  return o.value!;
}

// What a program does with objects: every object call over the channel, plus
// loads and stores through the mappings it got (zero copy: the kernel reads
// the same bytes). `args[0]`: an object the kernel made with a known pattern.
const OBJECT_CALLS = `
  let denied = null;
  try { await Deno.readTextFile("/etc/hostname"); } catch (e) { denied = e.name; }
  const given = BigInt(args[0]);
  const g = port.map(given, abi.Prot.Read);
  const givenBytes = [...g.bytes.subarray(0, 4)];
  const id = port.create({ size: 4096 });
  const m = port.map(id, abi.Prot.ReadWrite);
  m.bytes.set([1, 2, 3, 4], 100);
  m.view.setUint32(104, 0xdeadbeef, true);
  m.persist(100, 8);
  m.flush(100, 4);
  m.drain();
  const ranges = new Float64Array([m.handle, 100, 4, m.handle, 0, 8]);
  port.persist(ranges, 2);
  port.flush(ranges, 1);
  const readBack = [...port.read(id, 100, 4)];
  port.write(id, 200, new Uint8Array([9, 8]));
  const seen = [m.bytes[200], m.bytes[201]];
  const blocker = port.create({ size: 4096 });
  const m2 = port.map(id, abi.Prot.Read);
  port.grow(id, 3 * 65536);
  const grown = m.size;
  const grown2 = [m2.size, m2.bytes[101]];
  const kept = [...m.bytes.subarray(100, 104)];
  m.bytes[3 * 65536 - 1] = 7;
  const v = port.create({ size: 256, lifetime: "volatile" });
  const vm = port.map(v);
  vm.bytes[5] = 55;
  port.grow(v, 1024);
  const vGrown = [vm.size, vm.bytes[5]];
  vm.bytes[1000] = 66;
  const c = port.clock();
  const self_ = port.threadSelf();
  port.consoleWrite("hello from the thread\\n");
  const info = port.info();
  const listed = port.list().some((s) => s.id === id);
  const root = port.rootObject();
  const victim = port.create({ size: 4096 });
  const vmap = port.map(victim);
  const deleted = port.delete(victim);
  const n = port.random(32);
  port.unmap(g);
  return {
    denied, givenBytes, id: String(id), grown2, v: String(v), blocker: String(blocker), readBack, seen, grown, kept,
    vGrown, clock: c.wall > 1e12 && c.mono >= 0, tid: self_.tid, hal: info.hal, domain: info.domain,
    listed, root: root === port.rootObjectId(), deleted, victimGone: vmap.size, exists: port.exists(victim),
    random: n.length, distinct: new Set(n).size > 4, unmapped: g.size, size: port.stat(id).size,
  };
`;

async function objectCalls(kernel: Kernel, hal: string): Promise<void> {
  const given = kernel.create({ size: 4096, prot: Prot.Read });
  const gm = kernel.map(given, Prot.Read);
  gm.bytes.set([10, 20, 30, 40]); // a read-only object, written here below the API
  const calls = new FakeCalls();
  const r = value(await runThread(kernel, OBJECT_CALLS, [String(given)], calls));
  assert.equal(r.denied, "NotCapable", "the Worker runs with permissions none");
  assert.deepEqual(r.givenBytes, [10, 20, 30, 40]);
  assert.deepEqual(r.readBack, [1, 2, 3, 4]);
  assert.deepEqual(r.seen, [9, 8]);
  assert.equal(r.grown, 3 * 65536);
  assert.deepEqual(r.grown2, [3 * 65536, 2], "a second mapping of the object follows it too");
  assert.deepEqual(r.kept, [1, 2, 3, 4]);
  assert.deepEqual(r.vGrown, [1024, 55]);
  assert.equal(r.clock, true);
  assert.equal(r.tid, 7);
  assert.equal(r.hal, hal);
  assert.equal(r.domain, kernel.port().info().domain, "one durability domain per kernel");
  assert.equal(r.listed, true);
  assert.equal(r.root, true);
  assert.equal(r.deleted, 1);
  assert.equal(r.victimGone, 0, "a deleted object's mapping reads empty in the thread");
  assert.equal(r.exists, false);
  assert.equal(r.random, 32);
  assert.equal(r.distinct, true);
  assert.equal(r.unmapped, 0);
  assert.equal(r.size, 3 * 65536);
  assert.equal(calls.out, "hello from the thread\n");
  // Stores through the thread's mappings are the kernel's bytes.
  const id = BigInt(r.id as string), v = BigInt(r.v as string);
  assert.deepEqual([...kernel.read(id, 100, 8)], [1, 2, 3, 4, 0xef, 0xbe, 0xad, 0xde]);
  assert.equal(
    kernel.read(id, 3 * 65536 - 1, 1)[0],
    7,
    "a store after the move reaches the new place",
  );
  assert.deepEqual([...kernel.read(v, 1000, 1)], [66]);
  assert.deepEqual([...kernel.read(v, 5, 1)], [55]);
}

Deno.test("channel: a permissions-none Worker makes every object call over the channel (hal-sim)", async () => {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  try {
    await objectCalls(kernel, "sim");
  } finally {
    kernel.shutdown();
  }
});

Deno.test({
  name:
    `channel: a permissions-none Worker makes every object call over the channel (hal-pmem: per-object views)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => withPmem((kernel) => objectCalls(kernel, "pmem")),
});

const ERRORS = `
  const t = (f) => {
    try { f(); return null; } catch (e) {
      return { name: e.name, code: e.code, message: e.message, twz: e instanceof abi.TwzError };
    }
  };
  const ro = port.create({ size: 4096, prot: abi.Prot.Read });
  const wo = port.create({ size: 64, prot: abi.Prot.Write });
  return {
    missing: t(() => port.stat(0x1234n << 64n)),
    denied: t(() => port.map(ro, abi.Prot.ReadWrite)),
    range: t(() => port.read(ro, 4000, 200)),
    random: t(() => port.random(-1)),
    source: t(() => port.create({ size: 64, sources: [{ id: wo, srcOffset: 0, dstOffset: 0, length: 8 }] })),
    malformed: t(() => port.stat("x")),
    unknown: t(() => port.call(999, [])),
  };
`;

Deno.test("channel: errors cross as TwzError with their code and message (RangeError as itself)", async () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  try {
    const r = value(await runThread(kernel, ERRORS)) as Record<
      string,
      { name: string; code: number; message: string; twz: boolean }
    >;
    assert.equal(r.missing!.code, ErrorCode.ObjectNotFound);
    assert.equal(r.missing!.twz, true);
    assert.match(r.missing!.message, /No object 00000000000012340000000000000000|No object/);
    assert.equal(r.denied!.code, ErrorCode.AccessDenied);
    assert.match(r.denied!.message, /Cannot map .* rw-: its protections are r--/);
    assert.equal(r.range!.name, "RangeError");
    assert.match(r.range!.message, /outside/);
    assert.equal(r.random!.code, ErrorCode.InvalidArgument);
    assert.equal(
      r.source!.code,
      ErrorCode.AccessDenied,
      "create checks read permission on sources",
    );
    assert.match(r.source!.message, /may not be read/);
    assert.equal(r.malformed!.code, ErrorCode.InvalidArgument);
    assert.equal(r.unknown!.code, ErrorCode.NotSupported);
    assert.match(r.unknown!.message, /not a system call/);
  } finally {
    kernel.shutdown();
  }
});

Deno.test("channel: reads and writes of MiBs grow the channel and go in chunks", async () => {
  const kernel = Kernel.boot(openSim({ size: 64 * MiB }));
  try {
    const r = value(
      await runThread(
        kernel,
        `
      const n = 20 * 1024 * 1024 + 3;
      const id = port.create({ size: n });
      const data = new Uint8Array(n);
      for (let i = 0; i < n; i += 4096) data[i] = (i >>> 12) & 255;
      data[n - 1] = 99;
      port.write(id, 0, data);
      const back = port.read(id, 0, n);
      let same = back.length === n;
      for (let i = 0; same && i < n; i += 4096) same = back[i] === data[i];
      const mid = port.read(id, 4096, 3 * 1024 * 1024);
      return { id: String(id), same: same && back[n - 1] === 99, mid: mid.length, midFirst: mid[0],
        channel: init.channel.byteLength };
    `,
      ),
    );
    assert.equal(r.same, true);
    assert.equal(r.mid, 3 * MiB);
    assert.equal(r.midFirst, 1);
    assert.ok((r.channel as number) > 3 * MiB, "the channel grew");
    const id = BigInt(r.id as string);
    assert.equal(kernel.read(id, 20 * MiB + 2, 1)[0], 99);
    assert.equal(kernel.read(id, 4096 * 300, 1)[0], 300 & 255);
  } finally {
    kernel.shutdown();
  }
});

Deno.test("channel: kill makes the waiting call and every later one throw Killed", async () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  const calls = new FakeCalls();
  const sleeper = new TestThread(
    kernel,
    calls,
    `
    const id = port.create({ size: 64 });
    let during = null, later = null, exit = null;
    try { port.threadSync([{ op: "sleep", id, offset: 0, value: 0 }]); } catch (e) { during = e.code; }
    try { port.clock(); } catch (e) { later = e.code; }
    try { port.threadExit(0); } catch (e) { exit = e.code; }
    return { during, later, exit };
  `,
  );
  const busy = new TestThread(
    kernel,
    calls,
    `note("running"); let n = 0; for (;;) { port.clock(); n++; }`,
  );
  try {
    await sleeping(calls, sleeper);
    sleeper.ch.server.kill();
    const r = value(await sleeper.result);
    assert.deepEqual(r, {
      during: ErrorCode.Killed,
      later: ErrorCode.Killed,
      exit: ErrorCode.Killed,
    });
    assert.equal(calls.exited, undefined, "a killed thread's exit call never reached the kernel");
    await busy.notesAt(1);
    busy.ch.server.kill();
    const b = await busy.result;
    assert.equal(b.ok, false);
    assert.equal(b.code, ErrorCode.Killed);
    assert.match(b.message!, /thread 7 is being killed/);
    assert.equal(busy.ch.server.killed, true);
  } finally {
    await sleeper.stop();
    await busy.stop();
    kernel.shutdown();
  }
});

// The thread maps A (read-write), B (read-only) and a volatile flag object,
// writes A, and runs without calls while the flag is 0; then it keeps
// calling threadYield until it sees A grown and B gone, writes A's new part
// and returns.
const MAPPED = `
  const [A, B, F] = args.map(BigInt);
  const a = port.map(A), b = port.map(B, abi.Prot.Read), f = port.map(F);
  a.bytes.fill(0xaa, 0, 4096);
  note("mapped");
  while (Atomics.load(f.extent.i32, 0) === 0) { a.bytes[1] = 0xab; }
  let yields = 0;
  while ((a.size === 4096 || b.size !== 0) && yields < 100000) { port.threadYield(); yields++; }
  a.bytes.fill(0x55, 4096, a.size);
  return { size: a.size, first: a.bytes[0], second: a.bytes[1], b: b.size, yields };
`;

async function growDeleteWhileMapped(kernel: Kernel, sync: boolean): Promise<void> {
  const A = kernel.create({ size: 4096 });
  const C = kernel.create({ size: 8192 }); // right after A: growing A moves it
  const B = kernel.create({ size: 4096 });
  const F = kernel.create({ size: 64, lifetime: "volatile" });
  kernel.write(C, 0, new Uint8Array(8192).fill(0xcc));
  kernel.write(B, 0, new Uint8Array(4096).fill(0xbb));
  const t = new TestThread(kernel, new FakeCalls(), MAPPED, [A, B, F].map(String));
  try {
    await t.notesAt(1);
    // Spinning without calls: it cannot be parked.
    assert.equal(sync ? t.ch.server.parkSync(50) : await t.ch.server.park(50), false);
    assert.equal(t.ch.server.inCall, false);
    assert.equal(t.ch.port.maps(A), true);
    kernel.map(F).view.setInt32(0, 1, true); // let it go on to its calls
    if (sync) {
      // The kernel blocks until the thread is inside a call; it answers only
      // after this synchronous turn, so nothing needs unparking.
      assert.equal(t.ch.server.parkSync(10_000), true, "parked inside a call");
      assert.equal(t.ch.server.inCall, true);
    } else assert.equal(await t.ch.server.park(10_000), true, "parked inside a call");
    const aBefore = kernel.map(A).extent.bytes.byteOffset;
    kernel.grow(A, 64 * 1024);
    assert.notEqual(kernel.map(A).extent.bytes.byteOffset, aBefore, "A moved");
    kernel.delete(B);
    // An object made now may take A's old blocks: the thread's writes to A
    // must not reach it.
    const D = kernel.create({ size: 4096 });
    if (!sync) t.ch.server.unpark();
    const r = value(await t.result);
    assert.equal(r.size, 64 * 1024);
    assert.equal(r.first, 0xaa, "A's bytes followed it");
    assert.equal(r.second, 0xab);
    assert.equal(r.b, 0);
    assert.deepEqual(kernel.read(A, 4096, 4), new Uint8Array(4).fill(0x55));
    assert.deepEqual(kernel.read(C, 0, 8192), new Uint8Array(8192).fill(0xcc), "C unchanged");
    assert.deepEqual(kernel.read(D, 0, 4096), new Uint8Array(4096), "D unchanged");
    assert.equal(t.ch.port.maps(B), false);
  } finally {
    await t.stop();
  }
}

Deno.test("channel: an object grown and another deleted while a parked thread maps them (hal-sim, park)", async () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  try {
    await growDeleteWhileMapped(kernel, false);
  } finally {
    kernel.shutdown();
  }
});

Deno.test("channel: an object grown and another deleted while a parked thread maps them (hal-sim, parkSync)", async () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  try {
    await growDeleteWhileMapped(kernel, true);
  } finally {
    kernel.shutdown();
  }
});

Deno.test({
  name:
    `channel: an object grown and another deleted while a parked thread maps them (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => withPmem((kernel) => growDeleteWhileMapped(kernel, true)),
});

Deno.test("channel: close ends a waiting call with Shutdown and forgets the mappings", async () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  const calls = new FakeCalls();
  const t = new TestThread(
    kernel,
    calls,
    `
    const id = port.create({ size: 64 });
    const m = port.map(id);
    try { port.threadSync([{ op: "sleep", id, offset: 0, value: 0 }]); } catch (e) { return { code: e.code }; }
    return {};
  `,
  );
  try {
    await sleeping(calls, t);
    assert.equal(t.ch.port.mappings, 1);
    t.ch.server.close();
    assert.deepEqual(value(await t.result), { code: ErrorCode.Shutdown });
    assert.equal(t.ch.port.mappings, 0);
    assert.equal(await t.ch.server.park(10), true, "a closed thread counts as parked");
  } finally {
    await t.stop();
    kernel.shutdown();
  }
});

Deno.test("channel: thread_exit carries the code and the fault; thread_wait takes Infinity", async () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  const calls = new FakeCalls();
  try {
    const r = value(
      await runThread(
        kernel,
        `
      const other = port.threadWait(3, Infinity);
      const spawned = port.spawn({ code: 5n, name: "x", args: [] });
      const all = port.threads();
      port.threadExit(3, { kind: "exception", message: "boom" });
      return { other: other.tid, spawned: spawned.tid, all: all.length };
    `,
        [],
        calls,
      ),
    );
    assert.deepEqual(r, { other: 3, spawned: 8, all: 1 });
    assert.equal(calls.waited, Infinity);
    assert.equal(calls.exited, 3);
    assert.deepEqual(calls.fault, { kind: "exception", message: "boom" });
  } finally {
    kernel.shutdown();
  }
});

Deno.test("channel: a server that spins for the next call answers every call and still serves kill", async () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  const t = new TestThread(
    kernel,
    new FakeCalls(),
    `
    let sum = 0;
    for (let i = 0; i < 2000; i++) { port.threadYield(); sum += port.random(1).length; }
    note(sum);
    for (;;) port.clock();
  `,
    [],
    { spinUs: 20 },
  );
  try {
    await t.notesAt(1);
    assert.equal(t.notes[0], 2000);
    t.ch.server.kill();
    const r = await t.result;
    assert.equal(r.code, ErrorCode.Killed);
    assert.ok(t.ch.server.calls >= 4000);
  } finally {
    await t.stop();
    kernel.shutdown();
  }
});

// thread_sync between real permissions-"none" Workers on hal-sim and
// hal-pmem: 32- and 64-bit words, results (0 woken, 1 differed, 2 timed
// out), wake counts, batches, kill, volatile objects, the kernel's own
// session, bad words. On hal-sim (and for volatile objects on either HAL) a
// batch with one sleep sleeps in the Worker (`Atomics.wait`); a bare
// `Atomics.notify` on the kernel's view of the word then wakes it, which
// tells the direct path from the kernel's. No timing is asserted.
import assert from "node:assert/strict";
import { ErrorCode, Kernel, type ObjID, ThreadState, TwzError } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { KILLED_EXIT_CODE, ThreadManager } from "@twz/kernel/threads";
import {
  bundle,
  installCode,
  PMEM_IGNORE,
  PMEM_SKIP,
  program,
  until,
  withPmem,
} from "./_test_programs.ts";

const MiB = 1 << 20;

// One program for every test: args[0] is a JSON script. `map: false` skips
// mapping the object (its sleeps then go to the kernel); steps store words
// (with Atomics) and run thread_sync batches; the results (or the error) are
// printed as one JSON line. Values given as "123n" are bigints; an op's id
// defaults to the script's.
const P = await bundle({
  sync: program(`
    const spec = JSON.parse(args[0]);
    const big = (v) => typeof v === "string" && v.endsWith("n") ? BigInt(v.slice(0, -1)) : v;
    const id = BigInt(spec.id);
    const m = spec.map === false ? null : port.map(id);
    const out = [];
    for (const step of spec.steps) {
      if (step.wakeUntil) {
        // Wake until one is woken (a sleeper that reads "sleeping" may be a
        // moment from its Atomics.wait); at most 2000 tries.
        const pause = new Int32Array(new SharedArrayBuffer(4));
        let r = [0];
        for (let i = 0; i < 2000 && r[0] === 0; i++) {
          if (i > 0) Atomics.wait(pause, 0, 0, 2);
          r = port.threadSync([{ ...step.wakeUntil, id }]);
        }
        out.push(r);
      } else if (step.store) {
        const [off, value] = step.store;
        const v = big(value);
        if (typeof v === "bigint") Atomics.store(m.extent.bi64, off / 8, v);
        else Atomics.store(m.extent.i32, off / 4, v);
      } else {
        const ops = step.sync.map((op) => ({
          ...op,
          id: op.id === undefined ? id : BigInt(op.id),
          value: big(op.value),
        }));
        try {
          out.push(port.threadSync(ops));
        } catch (e) {
          port.consoleWrite(JSON.stringify({ error: e.name, code: e.code, message: e.message }) + "\\n");
          if (e.code === abi.ErrorCode.Killed) throw e;
          return 9;
        }
      }
    }
    port.consoleWrite(JSON.stringify(out) + "\\n");
    return 0;`),
});

interface Op {
  op: "sleep" | "wake";
  offset: number;
  id?: string;
  value?: number | string;
  count?: number;
  timeoutMs?: number;
}
type Step = { store: [number, number | string] } | { sync: Op[] } | { wakeUntil: Op };

/** A kernel with a thread manager, the program installed, and a way to run scripts. */
interface Sys {
  kernel: Kernel;
  manager: ThreadManager;
  hal: "sim" | "pmem";
  /** Start the program with a script on `obj`; `output()` is its printed JSON. */
  start(obj: ObjID, steps: Step[], map?: boolean): Run;
}
interface Run {
  tid: number;
  output(): unknown;
  end(): Promise<{ code: number; out: unknown; fault: string | undefined }>;
}

async function withSystem(hal: "sim" | "pmem", fn: (s: Sys) => Promise<void>): Promise<void> {
  const body = async (kernel: Kernel) => {
    const manager = new ThreadManager(kernel, { killGraceMs: 1000 });
    const code = installCode(kernel, P.sync);
    let n = 0;
    const sys: Sys = {
      kernel,
      manager,
      hal,
      start(obj, steps, map = true) {
        const lines: string[] = [];
        const t = manager.spawn(
          { code, name: `s${n++}`, args: [JSON.stringify({ id: String(obj), map, steps })] },
          { console: (text) => lines.push(text) },
        );
        const output = () => (lines.length > 0 ? JSON.parse(lines.join("")) : undefined);
        return {
          tid: t.tid,
          output,
          end: async () => {
            const info = await manager.wait(t.tid);
            return { code: info.exitCode, out: output(), fault: info.fault?.kind };
          },
        };
      },
    };
    try {
      await fn(sys);
    } finally {
      await manager.shutdown(500);
    }
  };
  if (hal === "sim") {
    const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
    try {
      await body(kernel);
    } finally {
      kernel.shutdown();
    }
  } else await withPmem((kernel) => body(kernel));
}

function both(name: string, fn: (s: Sys) => Promise<void>): void {
  Deno.test(`thread_sync (hal-sim): ${name}`, () => withSystem("sim", fn));
  Deno.test({
    name: `thread_sync (hal-pmem): ${name}${PMEM_SKIP}`,
    ignore: PMEM_IGNORE,
    fn: () => withSystem("pmem", fn),
  });
}

/**
 * Until every run reads "sleeping", and a moment more: a direct sleeper
 * reads sleeping just before it enters Atomics.wait.
 */
async function asleep(s: Sys, ...runs: Run[]): Promise<void> {
  await until(
    () => runs.every((r) => s.manager.info(r.tid).state === ThreadState.Sleeping),
    "the sleepers asleep",
  );
  await new Promise((r) => setTimeout(r, 20));
}

/** Whether a bare Atomics.notify on the kernel's view of the word woke someone. */
function bareNotify(s: Sys, obj: ObjID, offset: number): number {
  const e = s.kernel.map(obj).extent;
  return Atomics.notify(e.i32, offset / 4, 1);
}

for (const wide of [false, true]) {
  const bits = wide ? 64 : 32;
  both(`${bits}-bit words: a sleeper wakes on another thread's store and wake`, async (s) => {
    const obj = s.kernel.create({ size: 4096 });
    const v0 = wide ? "1099511627776n" : 0x7fff_fff0; // 2^40
    const v1 = wide ? "1099511627777n" : -5;
    const a = s.start(obj, [{ store: [8, v0] }, { sync: [{ op: "sleep", offset: 8, value: v0 }] }]);
    await asleep(s, a);
    const b = s.start(obj, [
      { wakeUntil: { op: "wake", offset: 8, count: 1 } },
      { store: [8, v1] },
      { sync: [{ op: "wake", offset: 8, count: 1 }] },
    ]);
    assert.deepEqual(await b.end(), { code: 0, out: [[1], [0]], fault: undefined });
    assert.deepEqual(await a.end(), { code: 0, out: [[0]], fault: undefined });
  });
  both(`${bits}-bit words: 1 when the word differs, 2 after a timeout`, async (s) => {
    const obj = s.kernel.create({ size: 4096 });
    const v = wide ? "77n" : 77;
    const r = await s.start(obj, [
      { store: [16, v] },
      { sync: [{ op: "sleep", offset: 16, value: wide ? "78n" : 78 }] },
      { sync: [{ op: "sleep", offset: 16, value: v, timeoutMs: 30 }] },
      { sync: [{ op: "sleep", offset: 16, value: v, timeoutMs: 0 }] },
    ]).end();
    assert.deepEqual(r, { code: 0, out: [[1], [2], [2]], fault: undefined });
  });
}

both("a wake of 1 with 3 sleepers wakes exactly one; the next wakes the other two", async (s) => {
  const obj = s.kernel.create({ size: 4096 });
  // On hal-sim two of them sleep in their Workers and one in the kernel (it
  // does not map the object): a count holds across both kinds.
  const sleep = [{ sync: [{ op: "sleep" as const, offset: 0, value: 0 }] }];
  const runs = [s.start(obj, sleep), s.start(obj, sleep, false), s.start(obj, sleep)];
  await asleep(s, ...runs);
  const w1 = s.start(obj, [{ sync: [{ op: "wake", offset: 0, count: 1 }] }]);
  assert.deepEqual((await w1.end()).out, [[1]]);
  await until(() => runs.filter((r) => r.output() !== undefined).length === 1, "one woken");
  const woken = runs.find((r) => r.output() !== undefined)!;
  assert.deepEqual(await woken.end(), { code: 0, out: [[0]], fault: undefined });
  // The other two still sleep (a wake that woke more would have ended them by now).
  await new Promise((r) => setTimeout(r, 100));
  const rest = runs.filter((r) => r !== woken);
  for (const r of rest) assert.equal(s.manager.info(r.tid).state, ThreadState.Sleeping);
  const w2 = s.start(obj, [{ sync: [{ op: "wake", offset: 0, count: 10 }] }]);
  assert.deepEqual((await w2.end()).out, [[2]]);
  for (const r of rest) assert.deepEqual((await r.end()).out, [[0]]);
});

both("a batch of two sleeps wakes on a wake of either word", async (s) => {
  const obj = s.kernel.create({ size: 4096 });
  for (const word of [0, 24]) {
    const a = s.start(obj, [{
      sync: [{ op: "sleep", offset: 0, value: 0 }, { op: "sleep", offset: 24, value: "0n" }],
    }]);
    await asleep(s, a);
    const w = s.start(obj, [{ sync: [{ op: "wake", offset: word, count: 5 }] }]);
    assert.deepEqual((await w.end()).out, [[1]], `a wake of word ${word}`);
    assert.deepEqual((await a.end()).out, [[0, 0]]);
  }
});

both("a batch that wakes one word and sleeps on another (ping-pong)", async (s) => {
  const obj = s.kernel.create({ size: 4096 });
  // B sleeps on word 4; A wakes it and sleeps on word 0 in one batch; B then
  // stores word 0 and wakes it.
  const b = s.start(obj, [
    { sync: [{ op: "sleep", offset: 4, value: 0 }] },
    { store: [0, 1] },
    { sync: [{ op: "wake", offset: 0, count: 1 }] },
  ]);
  await asleep(s, b);
  const a = s.start(obj, [{
    sync: [{ op: "wake", offset: 4, count: 1 }, { op: "sleep", offset: 0, value: 0 }],
  }]);
  const ra = JSON.stringify((await a.end()).out), rb = JSON.stringify((await b.end()).out);
  // A woke B (1); then A slept until B woke it (A 0, B's wake 1), or B stored
  // word 0 before A's sleep looked at it (A 1, B's wake 0).
  assert.ok(
    (ra === "[[1,0]]" && rb === "[[0],[1]]") || (ra === "[[1,1]]" && rb === "[[0],[0]]"),
    `A ${ra}, B ${rb}`,
  );
});

both("a sleeper is killed while it sleeps: it ends killed (137)", async (s) => {
  const obj = s.kernel.create({ size: 4096 });
  const a = s.start(obj, [{ sync: [{ op: "sleep", offset: 0, value: 0 }] }]);
  await asleep(s, a);
  s.manager.kill(a.tid);
  const r = await a.end();
  assert.equal(r.code, KILLED_EXIT_CODE);
  assert.equal(r.fault, "killed");
  assert.equal(r.out, undefined, "it did not go on (every call throws Killed, console too)");
});

both("a volatile object's word: the sleeper waits in its Worker on either HAL", async (s) => {
  const obj = s.kernel.create({ size: 4096, lifetime: "volatile" });
  const a = s.start(obj, [{ sync: [{ op: "sleep", offset: 12, value: 0 }] }]);
  const b = s.start(obj, [{ sync: [{ op: "sleep", offset: 16, value: 0 }] }]);
  await asleep(s, a, b);
  // A bare notify wakes only a thread asleep in Atomics.wait (the value is unchanged).
  await until(() => bareNotify(s, obj, 12) === 1, "a bare notify woke it");
  assert.deepEqual((await a.end()).out, [[0]]);
  const w = s.start(obj, [{ wakeUntil: { op: "wake", offset: 16, count: 1 } }]);
  assert.deepEqual((await w.end()).out, [[1]]);
  assert.deepEqual((await b.end()).out, [[0]]);
});

Deno.test("thread_sync (hal-sim): one sleep on mapped memory sleeps in the Worker; two go to the kernel", async () => {
  await withSystem("sim", async (s) => {
    const obj = s.kernel.create({ size: 4096 });
    const direct = s.start(obj, [{ sync: [{ op: "sleep", offset: 0, value: 0 }] }]);
    const kernel = s.start(obj, [{
      sync: [{ op: "sleep", offset: 8, value: 0 }, { op: "sleep", offset: 12, value: 0 }],
    }]);
    await asleep(s, direct, kernel);
    await until(() => bareNotify(s, obj, 0) === 1, "a bare notify woke the direct sleeper");
    assert.deepEqual((await direct.end()).out, [[0]]);
    assert.equal(bareNotify(s, obj, 8), 0, "the kernel sleeps the batch of two");
    assert.deepEqual(s.kernel.port().threadSync([{ op: "wake", id: obj, offset: 12, count: 1 }]), [
      1,
    ]);
    assert.deepEqual((await kernel.end()).out, [[0, 0]]);
  });
});

Deno.test({
  name: `thread_sync (hal-pmem): a persistent object's word sleeps in the kernel${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () =>
    withSystem("pmem", async (s) => {
      const obj = s.kernel.create({ size: 4096 });
      const a = s.start(obj, [{ sync: [{ op: "sleep", offset: 0, value: 0 }] }]);
      await asleep(s, a);
      assert.equal(bareNotify(s, obj, 0), 0, "pmem memory cannot be waited on");
      assert.deepEqual(s.kernel.port().threadSync([{ op: "wake", id: obj, offset: 0, count: 3 }]), [
        1,
      ]);
      assert.deepEqual((await a.end()).out, [[0]]);
    }),
});

both(
  "the kernel's own session wakes a sleeping thread; it cannot sleep itself (2 or 1)",
  async (s) => {
    const obj = s.kernel.create({ size: 4096 });
    const a = s.start(obj, [{ sync: [{ op: "sleep", offset: 40, value: "0n" }] }]);
    await asleep(s, a);
    const port = s.kernel.port();
    await until(() => {
      const r = port.threadSync([
        { op: "wake", id: obj, offset: 40, count: 1 },
        { op: "sleep", id: obj, offset: 0, value: 0, timeoutMs: 10 },
      ]);
      assert.equal(r[1], 2, "the session's sleep would have timed out");
      return r[0] === 1;
    }, "the session's wake woke it");
    assert.deepEqual((await a.end()).out, [[0]]);
    assert.deepEqual(port.threadSync([{ op: "sleep", id: obj, offset: 0, value: 9 }]), [1]);
    assert.deepEqual(port.threadSync([{ op: "wake", id: obj, offset: 40, count: 1 }]), [0]);
  },
);

both(
  "bad words and operations fail with one line, from a thread and from the kernel",
  async (s) => {
    const obj = s.kernel.create({ size: 4096 });
    const cases: [Op, RegExp, string][] = [
      [
        { op: "sleep", offset: 2, value: 0 },
        /^thread_sync: offset 2 is not a 32-bit word of /,
        "RangeError",
      ],
      [
        { op: "sleep", offset: 4, value: "0n" },
        /^thread_sync: offset 4 is not a 64-bit word of /,
        "RangeError",
      ],
      [
        { op: "wake", offset: 4096, count: 1 },
        /^thread_sync: offset 4096 is not a 32-bit word/,
        "RangeError",
      ],
      [{ op: "wake", offset: 0, count: -1 }, /^thread_sync: wake count -1$/, "TwzError"],
      [
        { op: "sleep", offset: 0, value: 0, timeoutMs: -5 },
        /^thread_sync: timeout -5$/,
        "TwzError",
      ],
    ];
    for (const [op, message, name] of cases) {
      for (const map of [true, false]) {
        const r = await s.start(obj, [{ sync: [op] }], map).end();
        assert.equal(r.code, 9);
        const err = r.out as { error: string; message: string };
        assert.equal(err.error, name, JSON.stringify(op));
        assert.match(err.message, message);
        assert.ok(!err.message.includes("\n"));
      }
      const local = { ...op, id: obj, value: typeof op.value === "string" ? 0n : op.value };
      assert.throws(
        () => s.kernel.port().threadSync([local as never]),
        (e: Error) => e.name === name && message.test(e.message) && !e.message.includes("\n"),
      );
    }
    // A bad operation later in a batch: nothing before it ran.
    const a = s.start(obj, [{ sync: [{ op: "sleep", offset: 0, value: 0 }] }]);
    await asleep(s, a);
    assert.throws(
      () =>
        s.kernel.port().threadSync([
          { op: "wake", id: obj, offset: 0, count: 1 },
          { op: "bogus", id: obj } as never,
        ]),
      (e) => e instanceof TwzError && e.code === ErrorCode.InvalidArgument,
    );
    assert.equal(s.manager.info(a.tid).state, ThreadState.Sleeping);
    s.manager.kill(a.tid);
  },
);

Deno.test("thread_sync (hal-sim): a direct sleeper is parked for a grow (woken, 0) and hears a delete (ObjectNotFound)", async () => {
  await withSystem("sim", async (s) => {
    const obj = s.kernel.create({ size: 4096 });
    const a = s.start(obj, [{ sync: [{ op: "sleep", offset: 0, value: 0 }] }]);
    await asleep(s, a);
    s.kernel.grow(obj, 256 * 1024); // parks the sleeper instead of killing it
    assert.deepEqual(await a.end(), { code: 0, out: [[0]], fault: undefined });
    const b = s.start(obj, [{ sync: [{ op: "sleep", offset: 0, value: 0 }] }]);
    await asleep(s, b);
    s.kernel.delete(obj);
    const rb = await b.end();
    assert.equal(rb.code, 9);
    assert.deepEqual(
      [(rb.out as { code: number }).code, (rb.out as { message: string }).message],
      [
        ErrorCode.ObjectNotFound,
        "thread_sync: the object slept on was deleted while the thread slept",
      ],
    );
  });
});

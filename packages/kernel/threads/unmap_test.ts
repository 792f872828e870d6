// Cooperative unmap: objects grown (moved) and deleted while a live thread
// maps them and keeps storing through its mappings. The thread is parked in
// a call while the kernel changes the object and hears the change with its
// answer; every other object's bytes stay unchanged, also objects made
// afterwards in the blocks the grown and deleted objects left.
import assert from "node:assert/strict";
import { Kernel, type ObjID, ThreadState } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { ThreadManager } from "@twz/kernel/threads";
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

const P = await bundle({
  // Maps A and B read-write; until the flag object F says stop: for 10 ms
  // (no calls) fills all of A (after its counter word) with 0xa5 and all of
  // B with 0xb5 over and over, bumps A's counter, then makes one call (a
  // yield). A change made while it runs without parking would let its stores
  // land in the freed blocks for up to 10 ms.
  mapper: program(`
    const [A, B, F] = args.map(BigInt);
    const a = port.map(A), b = port.map(B), f = port.map(F);
    let n = 0;
    while (f.view.getUint32(0, true) === 0) {
      const slice = Date.now() + 10;
      while (Date.now() < slice) {
        a.bytes.fill(0xa5, 4, a.size);
        b.bytes.fill(0xb5);
      }
      a.view.setUint32(0, ++n, true);
      port.threadYield();
    }
    port.consoleWrite(JSON.stringify({ a: a.size, b: b.size }) + "\\n");
    return 0;`),
  // Maps A and B, reports its end (thread_exit), then lingers for 2 s
  // without another call: ended for the kernel, its Worker not yet gone.
  lingerer: program(`
    const [A, B] = args.map(BigInt);
    port.map(A);
    port.map(B);
    port.threadExit(0);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
    return 0;`),
  // Grows A and deletes B through its own port, then makes D in the freed space.
  changer: program(`
    const [A, B] = args.map(BigInt);
    port.grow(A, 128 * 1024);
    port.delete(B);
    const d = port.create({ size: 4096 });
    port.write(d, 0, new Uint8Array(4096).fill(0xdd));
    port.consoleWrite(String(d) + "\\n");
    return 0;`),
});

interface Setup {
  A: ObjID;
  B: ObjID;
  C: ObjID;
  F: ObjID;
}

function setup(kernel: Kernel): Setup {
  const A = kernel.create({ size: 4096 });
  const C = kernel.create({ size: 8192 }); // right after A: growing A moves it
  const B = kernel.create({ size: 4096 });
  const F = kernel.create({ size: 64, lifetime: "volatile" });
  kernel.write(C, 0, new Uint8Array(8192).fill(0xcc));
  return { A, B, C, F };
}

const counter = (kernel: Kernel, A: ObjID) =>
  new DataView(kernel.read(A, 0, 4).buffer).getUint32(0, true);

function assertFilled(kernel: Kernel, id: ObjID, from: number, byte: number, what: string) {
  const size = kernel.stat(id).size;
  const bytes = kernel.read(id, from, size - from);
  const bad = bytes.findIndex((x) => x !== byte);
  assert.equal(bad, -1, `${what}: byte ${from + bad} is ${bytes[bad]}, not ${byte}`);
}

async function run(kernel: Kernel, changeInThread: boolean): Promise<void> {
  const out: string[] = [];
  const manager = new ThreadManager(kernel, { console: (t) => out.push(t) });
  try {
    const { A, B, C, F } = setup(kernel);
    const mapper = installCode(kernel, P.mapper), changer = installCode(kernel, P.changer);
    const t = manager.spawn({ code: mapper, name: "mapper", args: [A, B, F].map(String) });
    await until(() => counter(kernel, A) > 3, "the mapper's stores");
    // Change while it is inside a slice of stores, not inside a call: wait
    // for a new slice, then let its yield be answered.
    const c0 = counter(kernel, A);
    await until(() => counter(kernel, A) > c0, "a new slice");
    await new Promise((r) => setTimeout(r, 2));
    const before = kernel.map(A).extent.bytes.byteOffset;
    const made: ObjID[] = [];
    if (changeInThread) {
      const c = manager.spawn({ code: changer, name: "changer", args: [A, B].map(String) });
      assert.equal((await manager.wait(c.tid)).exitCode, 0);
      made.push(BigInt(out.shift()!.trim()));
    } else {
      kernel.grow(A, 128 * 1024);
      kernel.delete(B);
    }
    assert.notEqual(kernel.map(A).extent.bytes.byteOffset, before, "A moved");
    assert.equal(kernel.exists(B), false);
    // New objects may take the blocks A and B left: stores through a stale
    // view would land in them.
    for (let i = 0; i < 4; i++) {
      const x = kernel.create({ size: 4096 });
      kernel.write(x, 0, new Uint8Array(4096).fill(0xee));
      made.push(x);
    }
    const seen = counter(kernel, A);
    await until(() => counter(kernel, A) > seen + 3, "stores after the change");
    kernel.map(F).view.setUint32(0, 1, true);
    const end = await manager.wait(t.tid);
    assert.equal(end.state, ThreadState.Exited);
    assert.equal(end.exitCode, 0, `the mapper ended ${JSON.stringify(end.fault)}`);
    assert.deepEqual(JSON.parse(out.join("")), { a: 128 * 1024, b: 0 });
    assertFilled(kernel, A, 4, 0xa5, "A (grown: the thread stores into its new part)");
    assertFilled(kernel, C, 0, 0xcc, "C");
    const [d, ...rest] = made;
    if (changeInThread) assertFilled(kernel, d!, 0, 0xdd, "D (made by the changer)");
    else rest.unshift(d!);
    for (const x of rest) assertFilled(kernel, x, 0, 0xee, "an object made after the change");
  } finally {
    await manager.shutdown(200);
  }
}

Deno.test("threads: the kernel grows and deletes objects a running thread maps; other bytes unchanged (hal-sim)", async () => {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  try {
    await run(kernel, false);
  } finally {
    kernel.shutdown();
  }
});

Deno.test("threads: another thread grows and deletes objects a running thread maps; other bytes unchanged (hal-sim)", async () => {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  try {
    await run(kernel, true);
  } finally {
    kernel.shutdown();
  }
});

Deno.test({
  name:
    `threads: objects grown and deleted while a running thread maps them (hal-pmem: per-object views)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () =>
    withPmem(async (kernel) => {
      await run(kernel, false);
      await run(kernel, true);
    }),
});

Deno.test("threads: an object a thread mapped can be grown and deleted as soon as the thread has ended (no Busy, no kill)", async () => {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  const manager = new ThreadManager(kernel, { console: () => {} });
  try {
    const { A, B } = setup(kernel);
    const t = manager.spawn({
      code: installCode(kernel, P.lingerer),
      name: "lingerer",
      args: [A, B].map(String),
    });
    const end = await manager.wait(t.tid); // its thread_exit; the Worker lingers
    assert.equal(end.exitCode, 0, `it ended ${JSON.stringify(end.fault)}`);
    kernel.grow(A, 64 * 1024); // neither refused (Busy) nor a kill of the ended thread
    assert.equal(kernel.delete(B), 1);
    assert.equal(manager.threads().find((x) => x.tid === t.tid)?.fault, null);
  } finally {
    await manager.shutdown(200);
    kernel.shutdown();
  }
});

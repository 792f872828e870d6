// A thread spinning in JavaScript (never calling the kernel, never yielding
// to its event loop): the kernel and other threads stay responsive; when an
// object it maps is grown it cannot be parked, so it is killed and the grow
// refused; after the grace period it ends "exited" with fault
// "unresponsive", and its objects stay pinned (it still holds views). Deno 2.9's
// Worker.terminate() does not stop it: such a Worker keeps a CPU busy until
// the process exits. This one spins until the test stores a word in its
// object at the end (then terminate takes effect); it still has a file of
// its own and runs without the op/resource sanitizers.
import assert from "node:assert/strict";
import { ErrorCode, Kernel, ThreadState, TwzError } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { KILLED_EXIT_CODE, ThreadManager } from "@twz/kernel/threads";
import { bundle, installCode, program, until } from "./_test_programs.ts";

const P = await bundle({
  spin: program(`
    const a = port.map(BigInt(args[0]));
    port.consoleWrite("spinning\\n");
    // Spins until the test stores 1 at A[8] (so it does not outlive the test).
    while (a.bytes[8] !== 1) a.bytes[0] = 1;
    return 0;`),
  busy: program(`
    let last = 0;
    for (let i = 0; i < 200; i++) {
      const c = port.clock();
      if (c.mono < last) return 1;
      last = c.mono;
    }
    port.consoleWrite("clock ok\\n");
    return 0;`),
});

Deno.test({
  name:
    "threads: a spinning thread does not stop the system; growing its object kills it; it ends unresponsive",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const kernel = Kernel.boot(openSim({ size: 16 << 20 }));
    const out: string[] = [];
    const manager = new ThreadManager(kernel, {
      console: (t) => out.push(t),
      killGraceMs: 200,
      revokeGraceMs: 50,
    });
    const A = kernel.create({ size: 4096 });
    kernel.create({ size: 4096 }); // after A: growing A moves it
    try {
      const spin = manager.spawn({
        code: installCode(kernel, P.spin),
        name: "spin",
        args: [String(A)],
      });
      await until(() => out.includes("spinning\n"), "the spinner");
      // Other threads and the kernel go on meanwhile.
      const busy = installCode(kernel, P.busy);
      for (let i = 0; i < 3; i++) {
        const b = await manager.wait(manager.spawn({ code: busy, name: "busy", args: [] }).tid);
        assert.equal(b.exitCode, 0);
      }
      assert.equal(out.filter((t) => t === "clock ok\n").length, 3);
      assert.equal(manager.info(spin.tid).state, ThreadState.Running);
      // It maps A and never enters the kernel: growing A kills it, and is refused.
      assert.throws(
        () => kernel.grow(A, 64 * 1024),
        (e) =>
          e instanceof TwzError && e.code === ErrorCode.Busy &&
          /thread \d+ \(spin\) maps it and did not enter the kernel within 50 ms: it is being killed/
            .test(e.message),
      );
      assert.equal(kernel.stat(A).size, 4096, "nothing changed");
      assert.equal(manager.info(spin.tid).killing, true);
      const end = await manager.wait(spin.tid);
      assert.equal(end.state, ThreadState.Exited);
      assert.equal(end.exitCode, KILLED_EXIT_CODE);
      assert.equal(end.fault?.kind, "unresponsive");
      assert.match(end.fault!.message, /did not stop/);
      assert.equal(manager.unstoppable, 1);
      // Its Worker still holds a view of A: A stays as it is.
      assert.throws(
        () => kernel.delete(A),
        (e) => e instanceof TwzError && e.code === ErrorCode.Busy && /did not stop/.test(e.message),
      );
      assert.equal(kernel.exists(A), true);
      const other = kernel.create({ size: 4096 });
      kernel.grow(other, 8192);
      assert.equal(kernel.delete(other), 1, "other objects change as usual");
      // And the system still runs programs.
      const b = await manager.wait(manager.spawn({ code: busy, name: "busy", args: [] }).tid);
      assert.equal(b.exitCode, 0);
    } finally {
      kernel.map(A).bytes[8] = 1; // let the spinner go
      await manager.shutdown(100);
      kernel.shutdown();
    }
  },
});

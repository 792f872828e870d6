// `dependents(id)` through a thread's channel (a real Worker, permissions
// "none"): the IDs cross the channel, a thread may list the dependents of an
// object it may read and is refused (AccessDenied) on one it may not, an
// unknown ID is ObjectNotFound as for `stat`, and a thread's own ties and
// deletes show at once.
import assert from "node:assert/strict";
import { ErrorCode, Kernel, type ObjID, Prot, type ThreadInfo } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { ThreadManager } from "@twz/kernel/threads";
import { bundle, installCode, program, until } from "./_test_programs.ts";

const MiB = 1 << 20;

const P = await bundle({
  // args: a readable parent, a parent it may not read, an unknown ID, a
  // volatile parent. Reports each listing (sorted strings) or error code.
  lister: program(`
    const list = (id) => {
      try {
        return port.dependents(BigInt(id)).map(String).sort();
      } catch (e) {
        return { code: e.code ?? e.name, message: String(e.message) };
      }
    };
    const r = {
      readable: list(args[0]),
      hidden: list(args[1]),
      hiddenStat: port.stat(BigInt(args[1])).dependents,
      unknown: list(args[2]),
      unknownStat: (() => { try { port.stat(BigInt(args[2])); return 0; } catch (e) { return e.code; } })(),
      volatile: list(args[3]),
    };
    // Its own tie, then its delete, seen at once.
    const mine = port.create({ size: 1024, ties: [BigInt(args[0])] });
    r.mine = String(mine);
    r.withMine = list(args[0]);
    port.delete(mine);
    r.afterDelete = list(args[0]);
    port.consoleWrite("result " + JSON.stringify(r) + "\\n");
    return 0;`),
});

const sorted = (ids: ObjID[]) => ids.map(String).sort();

Deno.test("thread dependents(): listed over the channel, refused without Read, ObjectNotFound for an unknown ID", async () => {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  const out: string[] = [];
  const manager = new ThreadManager(kernel, { console: (t) => out.push(t), killGraceMs: 5000 });
  try {
    const readable = kernel.create({ size: 1024, prot: Prot.Read });
    const hidden = kernel.create({ size: 1024, prot: 0 });
    const a = kernel.create({ size: 1024, ties: [readable] });
    const b = kernel.create({ size: 1024, lifetime: "volatile", ties: [readable] });
    const h = kernel.create({ size: 1024, ties: [hidden] });
    const vparent = kernel.create({ size: 1024, lifetime: "volatile" });
    const v = kernel.create({ size: 1024, lifetime: "volatile", ties: [vparent] });
    const unknown = 0x4242n << 64n | 1n;
    const code = installCode(kernel, P.lister);
    const t: ThreadInfo = manager.spawn({
      code,
      name: "lister",
      args: [String(readable), String(hidden), String(unknown), String(vparent)],
    });
    const end = await manager.wait(t.tid);
    assert.equal(end.exitCode, 0, JSON.stringify(end.fault));
    let line: string | undefined;
    await until(() => (line = out.find((l) => l.startsWith("result "))) !== undefined, "result");
    const r = JSON.parse(line!.slice("result ".length));
    assert.deepEqual(r.readable, sorted([a, b]));
    assert.equal(r.hidden.code, ErrorCode.AccessDenied);
    assert.match(r.hidden.message, /cannot list the objects tied to/);
    assert.equal(r.hiddenStat, 1, "stat itself is not refused: only the list is");
    assert.equal(r.unknown.code, ErrorCode.ObjectNotFound);
    assert.equal(r.unknownStat, ErrorCode.ObjectNotFound);
    assert.deepEqual(r.volatile, [String(v)]);
    assert.deepEqual(r.withMine, [...sorted([a, b]), r.mine].sort());
    assert.deepEqual(r.afterDelete, sorted([a, b]));
    // The kernel's session lists what the thread could not.
    assert.deepEqual(kernel.port().dependents(hidden), [h]);
  } finally {
    await manager.shutdown(500);
    kernel.shutdown();
  }
});

// The control socket's `global` call (Sys.Global, `[op, args]`): a remote
// port session runs it as the system's admin — NotSupported (not in a
// cluster) without a hook, the hook reached with the admin's principal on a
// node — and a remote map of an object another node owns is refused
// writable like a local one.
import assert from "node:assert/strict";
import {
  decodeResponse,
  encodeRequest,
  ErrorCode,
  formatId,
  type GlobalOp,
  NOT_IN_CLUSTER,
  type ObjID,
  Prot,
  Sys,
  TwzError,
} from "@twz/kernel/abi";
import type { GlobalHook } from "@twz/kernel";
import { closeBoard, openBoard } from "./board.ts";
import { startControl } from "./control.ts";
import { frame, SocketReader, writeAll } from "./control_client.ts";

const quietConsole = { write() {}, readLine: () => Promise.resolve(null) };

/** A raw port session: one system call per frame (as control_test.ts does). */
async function session(path: string) {
  const conn = await Deno.connect({ transport: "unix", path });
  const reader = new SocketReader(conn);
  await reader.line();
  await writeAll(conn, new TextEncoder().encode("port\n"));
  assert.equal(await reader.line(), "ok");
  const buf = new Uint8Array(1 << 16);
  return {
    async call(sys: number, args: unknown[]): Promise<unknown> {
      const n = encodeRequest(buf, sys, args);
      await writeAll(conn, frame(buf.subarray(0, n)));
      const answer = (await reader.frame())!;
      if (answer[0] === 1) {
        const e = JSON.parse(new TextDecoder().decode(answer.subarray(1)));
        throw Object.assign(new Error(e.message), { name: e.name });
      }
      return decodeResponse(answer.subarray(1), answer.length - 1);
    },
    close: () => conn.close(),
  };
}

Deno.test("control socket: global is NotSupported off a cluster and reaches the node's hook as the admin", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-control-global-" });
  const board = await openBoard({
    hal: "sim",
    image: `${dir}/t.img`,
    size: 8 << 20,
    console: quietConsole,
  });
  const control = await startControl(board, {});
  const s = await session(control!.path);
  try {
    const fail = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
    // Not a node.
    const e = await fail(s.call(Sys.Global, ["status", {}]));
    assert.ok(e instanceof TwzError);
    assert.equal(e.code, ErrorCode.NotSupported);
    assert.equal(e.message, NOT_IN_CLUSTER);
    assert.equal((await s.call(Sys.Info, []) as { node: unknown }).node, null);
    // A node: the hook answers, with the admin's principal.
    const calls: { op: GlobalOp; args: unknown; admin: boolean }[] = [];
    const limited = await s.call(Sys.Create, [{ size: 4096 }]) as ObjID;
    const hook: GlobalHook = {
      node: "node-r",
      fetchMissing: () => false,
      mapLimit: (id) => id === limited ? Prot.Read : Prot.All,
      call(op, args, principal) {
        calls.push({ op, args, admin: principal.admin });
        return (op === "lookup" ? limited : undefined) as never;
      },
    };
    board.kernel.global = hook;
    assert.equal((await s.call(Sys.Info, []) as { node: unknown }).node, "node-r");
    assert.equal(await s.call(Sys.Global, ["lookup", { path: "/a/b" }]), limited);
    await s.call(Sys.Global, ["publish", { id: limited, deep: true }]);
    assert.deepEqual(calls, [
      { op: "lookup", args: { path: "/a/b" }, admin: true },
      { op: "publish", args: { id: limited, deep: true }, admin: true },
    ]);
    // Malformed: one-line InvalidArgument, the hook not reached.
    for (const args of [["nope", {}], ["own", 5], ["own", { id: "x" }], ["status"]]) {
      const bad = await fail(s.call(Sys.Global, args));
      assert.ok(bad instanceof TwzError, String(bad));
      assert.equal(bad.code, ErrorCode.InvalidArgument, bad.message);
      assert.ok(!bad.message.includes("\n"));
    }
    assert.equal(calls.length, 2);
    // A writable remote map of an object owned elsewhere: refused; read-only works.
    const hex = formatId(limited);
    const denied = await fail(s.call(Sys.Map, [limited, Prot.ReadWrite]));
    assert.ok(denied instanceof TwzError);
    assert.equal(denied.code, ErrorCode.AccessDenied);
    assert.equal(
      denied.message,
      `object ${hex} is owned by another node: take ownership first (own ${hex})`,
    );
    const m = await s.call(Sys.Map, [limited, Prot.Read]) as { prot: number };
    assert.equal(m.prot, Prot.Read);
  } finally {
    board.kernel.global = undefined;
    s.close();
    await control?.close();
    closeBoard(board);
    Deno.removeSync(dir, { recursive: true });
  }
});

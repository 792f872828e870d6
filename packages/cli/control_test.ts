import assert from "node:assert/strict";
import {
  decodeResponse,
  encodeRequest,
  ErrorCode,
  Prot,
  Sys,
  type ThreadInfo,
  ThreadState,
  TwzError,
} from "@twz/kernel/abi";
import { Twz } from "@twz/libtwz";
import { type Board, closeBoard, openBoard } from "./board.ts";
import { controlPath, type RunProgram, startControl } from "./control.ts";
import { frame, runRemote, SocketReader, writeAll } from "./control_client.ts";
import { bindDevices, DEVICE_SIZE, readDevice } from "./devices.ts";

const quietConsole = { write() {}, readLine: () => Promise.resolve(null) };

async function withBoard(fn: (board: Board, dir: string) => Promise<void> | void): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "twz-control-" });
  const board = await openBoard({
    hal: "sim",
    image: `${dir}/t.img`,
    size: 8 << 20,
    console: quietConsole,
  });
  try {
    await fn(board, dir);
  } finally {
    closeBoard(board);
    Deno.removeSync(dir, { recursive: true });
  }
}

function thread(name: string, exitCode: number, fault: ThreadInfo["fault"] = null): ThreadInfo {
  return {
    tid: 7,
    id: 1n,
    name,
    state: ThreadState.Exited,
    exitCode,
    fault,
    started: 1,
    ended: 2,
    killing: false,
  };
}

function collector() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => out.push(t), err: (l: string) => err.push(l) } };
}

Deno.test("startControl() listens beside the image (0600) and removes the socket at close", async () => {
  await withBoard(async (board, dir) => {
    const control = await startControl(board, {});
    assert.ok(control !== undefined);
    assert.deepEqual(control.path, `${dir}/t.img.sock`);
    const info = Deno.statSync(control.path);
    assert.ok(info.isSocket);
    assert.deepEqual(info.mode! & 0o777, 0o600);
    const conn = await Deno.connect({ transport: "unix", path: control.path });
    const reader = new SocketReader(conn);
    assert.deepEqual((await reader.line())?.startsWith(`twz-control 1 ${Deno.pid}`), true);
    await writeAll(conn, new TextEncoder().encode("ping\nbogus\n"));
    assert.deepEqual(await reader.line(), "pong");
    assert.deepEqual(await reader.line(), `error "unknown command \\"bogus\\""`);
    conn.close();
    await control.close();
    assert.deepEqual(await Deno.stat(control.path).then(() => true, () => false), false);
    await control.close(); // harmless twice
  });
});

/** Leave a socket at `path` the way a killed process does (nothing answers on it). */
async function staleSocket(path: string): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.listen({ transport: "unix", path: ${
        JSON.stringify(path)
      } }); console.log("up"); setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // "up": the socket exists
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
}

Deno.test("startControl() replaces a stale socket and leaves other files alone", async () => {
  await withBoard(async (board) => {
    const path = controlPath(board.hal.image!);
    // A socket nobody answers on, as a killed boot leaves it.
    await staleSocket(path);
    assert.ok(Deno.statSync(path).isSocket);
    const control = await startControl(board, {});
    assert.ok(control !== undefined);
    const c = collector();
    assert.deepEqual(await runRemote(board.hal.image!, "hello", [], c.io), 1);
    assert.deepEqual(c.err, ["twz: this system cannot run programs"]);
    await control.close();

    Deno.writeTextFileSync(path, "not a socket");
    const warnings: string[] = [];
    assert.deepEqual(await startControl(board, { warn: (l) => warnings.push(l) }), undefined);
    assert.deepEqual(Deno.readTextFileSync(path), "not a socket");
    assert.ok(warnings[0]?.includes("is not a socket"), warnings[0]);
  });
});

Deno.test("runRemote() streams the program's output and returns its exit code", async () => {
  await withBoard(async (board) => {
    const calls: { target: string; args: string[] }[] = [];
    const run: RunProgram = async (target, args, console) => {
      calls.push({ target, args });
      console("Hello, ");
      await new Promise((r) => setTimeout(r, 1));
      console("world\n");
      return thread("hello", 3);
    };
    const control = await startControl(board, { run });
    try {
      const c = collector();
      assert.deepEqual(
        await runRemote(board.hal.image!, "examples/hello.ts", ["a b", "c"], c.io),
        3,
      );
      assert.deepEqual(c.out.join(""), "Hello, world\n");
      assert.deepEqual(c.err, []);
      assert.deepEqual(calls[0], { target: `${Deno.cwd()}/examples/hello.ts`, args: ["a b", "c"] });
      // A name is sent as it is.
      assert.deepEqual(await runRemote(board.hal.image!, "kv", ["get", "k"], collector().io), 3);
      assert.deepEqual(calls[1], { target: "kv", args: ["get", "k"] });
    } finally {
      await control?.close();
    }
  });
});

Deno.test("runRemote() reports a fault, a failed start, and no listener", async () => {
  await withBoard(async (board) => {
    const c0 = collector();
    assert.deepEqual(await runRemote(board.hal.image!, "x", [], c0.io), undefined);
    let fail = false;
    const control = await startControl(board, {
      run: () =>
        fail
          ? Promise.reject(new TwzError(ErrorCode.NameNotFound, "no program /bin/x\nmore"))
          : Promise.resolve(thread("x", 1, { kind: "exception", message: "boom" })),
    });
    try {
      const c = collector();
      assert.deepEqual(await runRemote(board.hal.image!, "x", [], c.io), 1);
      assert.deepEqual(c.err, ["twz: x ended with a fault (exception): boom"]);
      fail = true;
      const d = collector();
      assert.deepEqual(await runRemote(board.hal.image!, "x", [], d.io), 1);
      assert.deepEqual(d.err, ["twz: no program /bin/x"]);
    } finally {
      await control?.close();
    }
  });
});

Deno.test("a client hanging up during a run aborts the run's signal", async () => {
  await withBoard(async (board) => {
    let aborted!: () => void;
    const wasAborted = new Promise<void>((r) => aborted = r);
    let started!: () => void;
    const isRunning = new Promise<void>((r) => started = r);
    const control = await startControl(board, {
      run: (_target, _args, console, signal) =>
        new Promise((resolve) => {
          console("working\n");
          started();
          signal.addEventListener("abort", () => {
            aborted();
            resolve(thread("loop", 137, { kind: "killed", message: "killed" }));
          });
        }),
    });
    try {
      const conn = await Deno.connect({ transport: "unix", path: control!.path });
      const reader = new SocketReader(conn);
      await reader.line();
      await writeAll(conn, new TextEncoder().encode(`run {"target":"loop","args":[]}\n`));
      assert.deepEqual(await reader.line(), `out "working\\n"`);
      await isRunning;
      conn.close();
      await wasAborted; // never resolves (the test times out) if the hang-up went unnoticed
    } finally {
      await control?.close();
    }
  });
});

/** A raw port session: one system call per frame. */
async function session(path: string) {
  const conn = await Deno.connect({ transport: "unix", path });
  const reader = new SocketReader(conn);
  await reader.line();
  await writeAll(conn, new TextEncoder().encode("port\n"));
  assert.deepEqual(await reader.line(), "ok");
  const buf = new Uint8Array(1 << 20);
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

Deno.test("a port session maps copies and writes flushed ranges back", async () => {
  await withBoard(async (board) => {
    const control = await startControl(board, {});
    const s = await session(control!.path);
    try {
      const k = board.kernel;
      const id = await s.call(Sys.Create, [{ size: 4096 }]) as bigint;
      k.write(id, 0, new Uint8Array([1, 2, 3]));
      const m = await s.call(Sys.Map, [id, Prot.ReadWrite]) as {
        handle: number;
        bytes: Uint8Array;
        prot: number;
      };
      assert.deepEqual([...m.bytes.subarray(0, 3)], [1, 2, 3]);
      assert.deepEqual(m.bytes.length, 4096);
      // The copy does not change the object: only the flushed range's bytes do.
      await s.call(Sys.Persist, [
        new Float64Array([m.handle, 1, 2]),
        1,
        [new Uint8Array([9, 8])],
      ]);
      assert.deepEqual([...k.read(id, 0, 4)], [1, 9, 8, 0]);
      // A read-only mapping may flush unchanged bytes, not changed ones.
      const r = await s.call(Sys.Map, [id, Prot.Read]) as { handle: number };
      await s.call(Sys.Flush, [new Float64Array([r.handle, 0, 2]), 1, [new Uint8Array([1, 9])]]);
      const denied = await s.call(Sys.Flush, [
        new Float64Array([r.handle, 0, 1]),
        1,
        [new Uint8Array([5])],
      ]).catch((e) => e);
      assert.ok(denied instanceof TwzError);
      assert.deepEqual(denied.code, ErrorCode.AccessDenied);
      // An error that is not a TwzError keeps its name.
      const outside = await s.call(Sys.Persist, [
        new Float64Array([m.handle, 4090, 10]),
        1,
        [new Uint8Array(10)],
      ]).catch((e: Error) => e);
      assert.deepEqual((outside as Error).name, "RangeError");
      // Delete names the session's mappings that went.
      const gone = await s.call(Sys.Delete, [id]) as { count: number; gone: number[] };
      assert.deepEqual(gone.count, 1);
      assert.deepEqual(gone.gone.sort(), [m.handle, r.handle].sort());
      assert.deepEqual(await s.call(Sys.Exists, [id]), false);
      const info = await s.call(Sys.Info, []) as { hal: string };
      assert.deepEqual(info.hal, "sim");
    } finally {
      s.close();
      await control?.close();
    }
  });
});

Deno.test("a port session does not outlive its kernel", async () => {
  await withBoard(async (board) => {
    const control = await startControl(board, {});
    const s = await session(control!.path);
    try {
      assert.deepEqual(await s.call(Sys.Exists, [1n]), false);
      const old = board.kernel;
      old.shutdown();
      board.kernel = (await import("./board.ts")).bootKernel(board.hal);
      const e = await s.call(Sys.Exists, [1n]).catch((x) => x);
      assert.ok(e instanceof TwzError);
      assert.deepEqual(e.code, ErrorCode.Shutdown);
    } finally {
      s.close();
      await control?.close();
    }
  });
});

Deno.test("startControl() does not listen for a read-only boot or an anonymous region", async () => {
  const anon = await openBoard({ hal: "sim", size: 8 << 20, console: quietConsole });
  try {
    assert.deepEqual(await startControl(anon, {}), undefined);
  } finally {
    closeBoard(anon);
  }
  await withBoard(async (board, dir) => {
    closeBoard(board);
    const ro = await openBoard({
      hal: "sim",
      image: `${dir}/t.img`,
      readOnly: true,
      console: quietConsole,
    });
    try {
      assert.deepEqual(await startControl(ro, {}), undefined);
    } finally {
      closeBoard(ro);
    }
  });
});

Deno.test("bindDevices() makes read-only device objects and reports the NVM device", async () => {
  await withBoard((board) => {
    const k = board.kernel;
    const twz = Twz.attach(k.port());
    const devices = bindDevices(k, twz.naming, { tickMs: 0 });
    try {
      for (const id of Object.values(devices.ids)) {
        const st = k.stat(id);
        assert.deepEqual(st.lifetime, "volatile");
        assert.deepEqual(st.prot, Prot.Read);
        assert.deepEqual(st.size, DEVICE_SIZE);
      }
      const nvm = readDevice(k.read(devices.ids.nvm, 0, DEVICE_SIZE));
      assert.deepEqual(nvm.name, "nvm");
      assert.deepEqual(nvm.fields.size, board.hal.region.size);
      assert.deepEqual(nvm.fields.hal, "sim");
      assert.deepEqual(nvm.fields.granularityName, board.hal.region.granularity);
      assert.deepEqual(nvm.fields.image, board.hal.image);
      assert.deepEqual(nvm.fields.flags, 4);
      assert.deepEqual(nvm.fields.free, k.usage().freeBytes);
      const clock = readDevice(k.read(devices.ids.clock, 0, DEVICE_SIZE));
      assert.deepEqual(clock.name, "clock");
      assert.ok((clock.fields.wall as number) >= clock.bootWall);
      const entropy = readDevice(k.read(devices.ids.entropy, 0, DEVICE_SIZE));
      assert.deepEqual((entropy.fields.seed as string).length, 64);
      assert.ok(entropy.fields.seed !== "0".repeat(64));
      assert.deepEqual(readDevice(k.read(devices.ids.console, 0, DEVICE_SIZE)).name, "console");
      // User space cannot map a device writable.
      const e = (() => {
        try {
          twz.port.map(devices.ids.clock, Prot.ReadWrite);
        } catch (x) {
          return x;
        }
        return undefined;
      })();
      assert.ok(e instanceof TwzError);
      assert.deepEqual(e.code, ErrorCode.AccessDenied);
      // Bound under /dev (rebound every boot), and unbound by stop().
      assert.deepEqual(devices.warnings, []);
      assert.deepEqual(devices.bound, ["/dev/console", "/dev/clock", "/dev/entropy", "/dev/nvm"]);
      assert.deepEqual(twz.naming.resolve("/dev/nvm"), devices.ids.nvm);
      const again = bindDevices(k, twz.naming, { tickMs: 0 });
      assert.deepEqual(twz.naming.resolve("/dev/nvm"), again.ids.nvm);
      again.stop();
      assert.deepEqual(twz.naming.exists("/dev/nvm"), false);
    } finally {
      devices.stop();
    }
  });
});

// The remote port against a system in another process that holds the image
// (packages/cli/testdata/control_server.ts): mappings are copies written
// back by flush/persist, libtwz runs on it (`Twz.attach`), and the security
// calls reach the system's admin session.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ErrorCode, Prot, SecProt, TwzError } from "@twz/kernel/abi";
import { connectRemotePort, controlPath } from "./_remote.ts";
import { Twz } from "./mod.ts";
import {
  access,
  callGate,
  createContext,
  createKey,
  grant,
  revoke,
  rotateKey,
} from "./security.ts";

const SERVER = fileURLToPath(new URL("../cli/testdata/control_server.ts", import.meta.url));

/** Start the fixture system on `image`; resolves once it listens. */
async function holdImage(image: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SERVER, image],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) break;
    text += value;
  }
  assert.equal(text.trim(), `listening ${controlPath(image)}`);
  return {
    /** End the system (stdin closes) and return what it printed after listening. */
    async stop(): Promise<string> {
      await child.stdin.close();
      let rest = "";
      for (;;) {
        const { value, done } = await lines.read();
        if (done) break;
        rest += value;
      }
      assert.equal((await child.status).code, 0);
      return rest.trim();
    },
  };
}

Deno.test("connectRemotePort() answers undefined when no system listens", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-remote-" });
  try {
    assert.equal(await connectRemotePort(`${dir}/none.img`), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("RemotePort maps copies: persist writes the range back, grow and delete follow", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-remote-" });
  const image = `${dir}/t.img`;
  const system = await holdImage(image);
  try {
    const port = (await connectRemotePort(image))!;
    const other = (await connectRemotePort(image))!;
    try {
      assert.equal(port.readOnly, false);
      assert.equal(port.info().hal, "sim");
      const id = port.create({ size: 4096 });
      const m = port.map(id, Prot.ReadWrite);
      assert.equal(m.size, 4096);
      m.bytes.set([1, 2, 3, 4], 8);
      // Not written back yet: the object (seen by another session) is unchanged.
      assert.deepEqual([...other.read(id, 8, 4)], [0, 0, 0, 0]);
      m.persist(9, 2);
      assert.deepEqual([...other.read(id, 8, 4)], [0, 2, 3, 0]);
      // Writes by others after the map are not seen through the copy.
      other.write(id, 100, new Uint8Array([7]));
      assert.equal(m.bytes[100], 0);
      assert.equal(port.read(id, 100, 1)[0], 7);
      // grow keeps the unsent stores in the copy.
      port.grow(id, 8192);
      assert.equal(m.size, 8192);
      assert.equal(m.bytes[8], 1);
      // A read-only mapping refuses changed bytes.
      const r = port.map(id, Prot.Read);
      r.bytes[0] = 42;
      assert.throws(
        () => r.persist(0, 1),
        (e) => e instanceof TwzError && e.code === ErrorCode.AccessDenied,
      );
      assert.throws(() => m.persist(8190, 10), RangeError);
      assert.equal(port.delete(id), 1);
      assert.equal(m.bytes.length, 0);
      assert.equal(r.bytes.length, 0);
      assert.equal(port.exists(id), false);
      assert.equal(port.clock().wall > 0, true);
      assert.equal(port.random(16).length, 16);
    } finally {
      port.close();
      other.close();
    }
    assert.throws(
      () => port.list(),
      (e) => e instanceof TwzError && e.code === ErrorCode.Shutdown,
    );
  } finally {
    assert.equal(await system.stop(), "closed");
    assert.equal(await Deno.stat(controlPath(image)).then(() => true, () => false), false);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("libtwz runs on a RemotePort (Twz.attach): names and bytes reach the system", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-remote-" });
  const image = `${dir}/t.img`;
  const system = await holdImage(image);
  try {
    const port = (await connectRemotePort(image))!;
    const twz = Twz.attach(port);
    const obj = twz.create({ name: "/remote/greeting", size: 4096 });
    const text = new TextEncoder().encode("hello over the socket");
    obj.write(obj.baseOffset, text);
    obj.persist(obj.baseOffset, text.length);
    const id = obj.id;
    twz.close();
    port.close();

    const port2 = (await connectRemotePort(image))!;
    const again = Twz.attach(port2);
    assert.equal(again.naming.resolve("/remote/greeting"), id);
    const back = again.open("/remote/greeting");
    assert.equal(
      new TextDecoder().decode(back.read(back.baseOffset, text.length)),
      "hello over the socket",
    );
    again.close();
    port2.close();
  } finally {
    assert.equal(await system.stop(), "closed");
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("RemotePort.dependents() lists the objects tied to an object, as the system sees them", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-remote-dep-" });
  const image = `${dir}/t.img`;
  const system = await holdImage(image);
  try {
    const port = (await connectRemotePort(image))!;
    const other = (await connectRemotePort(image))!;
    try {
      const byId = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
      // The admin session may list any object's dependents (default none too).
      const parent = port.create({ size: 1024, prot: 0 });
      const a = port.create({ size: 1024, ties: [parent] });
      const b = port.create({ size: 1024, lifetime: "volatile", ties: [parent] });
      assert.deepEqual(port.dependents(parent).sort(byId), [a, b].sort(byId));
      assert.equal(other.dependents(parent).length, other.stat(parent).dependents);
      assert.deepEqual(port.dependents(a), []);
      assert.equal(other.delete(a), 1);
      assert.deepEqual(port.dependents(parent), [b]);
      const unknown = 0x7777n << 64n | 3n;
      assert.equal((await codeOf(() => port.stat(unknown))).code, ErrorCode.ObjectNotFound);
      assert.deepEqual(
        await codeOf(() => port.dependents(unknown)),
        await codeOf(() => port.stat(unknown)),
      );
    } finally {
      port.close();
      other.close();
    }
  } finally {
    assert.equal(await system.stop(), "closed");
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("RemotePort forwards the security calls to the system's admin session", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-remote-sec-" });
  const image = `${dir}/t.img`;
  const system = await holdImage(image);
  try {
    const port = (await connectRemotePort(image))!;
    const twz = Twz.attach(port);
    try {
      assert.equal(port.epoch, undefined);
      assert.deepEqual(port.contexts(), []);
      const key = await createKey(twz, { scheme: "ed25519" });
      assert.equal(port.keyInfo(key.kuid).scheme, "ed25519");
      const obj = twz.create({ key: key.kuid, size: 4096 });
      assert.equal(port.stat(obj.id).keyId, key.kuid);
      const ctx = createContext(twz, { key: key.kuid });
      assert.equal(port.ctxInfo(ctx).key, key.kuid);
      const g = await grant(twz, { target: obj.id, to: ctx, prot: SecProt.Read });
      assert.equal(port.ctxInfo(ctx).grants.length, 1);
      assert.equal(port.ctxInfo(ctx).grants[0]!.grant.kind, "capability");
      const report = await access(twz, obj.id, [ctx]);
      assert.equal(report.prot & SecProt.Read, SecProt.Read);
      assert.ok(report.reasons.length > 0);
      port.ctxMask(ctx, obj.id, 0);
      assert.equal((await access(twz, obj.id, [ctx])).prot, 0);
      port.ctxMask(ctx, obj.id, null);
      revoke(twz, ctx, g.index);
      assert.deepEqual(port.ctxInfo(ctx).grants, []);
      await rotateKey(twz, key.kuid);
      assert.equal(port.keyInfo(key.kuid).generation, 1);
      // Errors come back as one-line TwzErrors; gates are not the admin's.
      const bad = await codeOf(() => port.ctxInfo(obj.id));
      assert.ok(bad.code !== 0 && !bad.message.includes("\n"));
      const gate = await codeOf(() => callGate(twz, obj.id, 0, new Uint8Array(1)));
      assert.equal(gate.code, ErrorCode.NotSupported);
    } finally {
      twz.close();
      port.close();
    }
  } finally {
    assert.equal(await system.stop(), "closed");
    Deno.removeSync(dir, { recursive: true });
  }
});

/** The code and message of the TwzError `f` throws (sync or async). */
async function codeOf(f: () => unknown): Promise<{ code: number; message: string }> {
  try {
    await f();
  } catch (e) {
    if (e instanceof TwzError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("no error was thrown");
}

// `@twz/libtwz/global`, naming's `/global` paths and the publish after a
// transaction's commit, against a Map-backed GlobalHook installed on an
// in-process kernel (no NATS: the hook records what libtwz asks of it).
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { ErrorCode, NOT_IN_CLUSTER, TwzError } from "@twz/kernel/abi";
import { openSim } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { transaction } from "@twz/libtwz/tx";
import {
  globalPath,
  info,
  isNode,
  own,
  publish,
  refresh,
  release,
  status,
} from "@twz/libtwz/global";

import { FakeSpace } from "@twz/global/testing";

/** A kernel on a fresh simulated region; with `node`, a fake space installed as its hook. */
function system(node?: string): { kernel: Kernel; space?: FakeSpace; twz: Twz; end(): void } {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  const space = node === undefined ? undefined : new FakeSpace(node);
  kernel.global = space;
  const twz = Twz.attach(kernel.port());
  return {
    kernel,
    ...(space === undefined ? {} : { space }),
    twz,
    end() {
      twz.close();
      kernel.shutdown();
      hal.close();
    },
  };
}

function assertNotInCluster(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TwzError, String(e));
    assert.equal(e.code, ErrorCode.NotSupported);
    assert.equal(e.message, NOT_IN_CLUSTER);
    return true;
  });
}

Deno.test("globalPath strips /global and leaves other names alone", () => {
  assert.equal(globalPath("/global"), "/");
  assert.equal(globalPath("/global/"), "/");
  assert.equal(globalPath("global/a/b"), "/a/b");
  assert.equal(globalPath("/global/a/"), "/a");
  assert.equal(globalPath("/globalist"), null);
  assert.equal(globalPath("/a/global"), null);
});

Deno.test("a system that is not a node: every call and every /global path is NotSupported", () => {
  const s = system();
  try {
    const obj = s.twz.create({ name: "/x", size: 4096 });
    assert.equal(isNode(s.twz), false);
    assertNotInCluster(() => status(s.twz));
    assertNotInCluster(() => publish(s.twz, obj));
    assertNotInCluster(() => own(s.twz, "/x"));
    assertNotInCluster(() => info(s.twz, obj.id));
    assertNotInCluster(() => s.twz.naming.lookup("/global/a"));
    assertNotInCluster(() => s.twz.naming.lookup("/global"));
    assertNotInCluster(() => s.twz.naming.list("/global"));
    assertNotInCluster(() => s.twz.naming.bind("/global/x", obj.id));
    assertNotInCluster(() => s.twz.naming.mkdir("/global/d"));
    assertNotInCluster(() => s.twz.open("/global/x"));
    // No global entry in the root, and transactions stay local.
    assert.deepEqual(s.twz.naming.list("/").map((b) => b.name), ["x"]);
    transaction(s.twz, (tx) => tx.write(obj, obj.baseOffset, new Uint8Array([7])));
    assert.equal(obj.read(obj.baseOffset, 1)[0], 7);
  } finally {
    s.end();
  }
});

Deno.test("on a node: status, publish with a name, info, release, refresh", () => {
  const s = system("n1");
  try {
    assert.equal(isNode(s.twz), true);
    assert.equal(status(s.twz).node, "n1");
    const obj = s.twz.create({ size: 4096 });
    const r = publish(s.twz, obj, { name: "/global/lists/demo" });
    assert.deepEqual(r, { ids: [obj.id], versions: [1] });
    assert.deepEqual(s.space!.calls.at(-1), ["publish", { id: obj.id, name: "/lists/demo" }]);
    assert.equal(s.twz.naming.resolve("/global/lists/demo"), obj.id);
    assert.equal(info(s.twz, "/global/lists/demo").owner, "n1");
    release(s.twz, obj.id);
    assert.equal(refresh(s.twz, obj).owner, null);
    publish(s.twz, obj.id, { deep: true });
    assert.deepEqual(s.space!.calls.at(-1), ["publish", { id: obj.id, deep: true }]);
    assert.throws(
      () => publish(s.twz, obj, { name: "/lists/x" }),
      /publish: a global name is a path under \/global\//,
    );
  } finally {
    s.end();
  }
});

Deno.test("on a node: naming's /global paths go to the global namespace", () => {
  const s = system("n1");
  try {
    const naming = s.twz.naming;
    const a = s.twz.create({ name: "/a", size: 4096 });
    publish(s.twz, a);
    // The root lists global beside the local names.
    assert.deepEqual(naming.list("/").map((b) => `${b.name}:${b.kind}`), [
      "a:object",
      "global:directory",
    ]);
    assert.equal(naming.mkdir("/global/d/e", { parents: true }), 0n);
    naming.bind("/global/d/obj", a.id);
    assert.deepEqual(naming.list("/global").map((b) => `${b.name}:${b.kind}`), ["d:directory"]);
    assert.deepEqual(naming.list("/global/d").map((b) => `${b.name}:${b.kind}:${b.id}`), [
      `e:directory:0`,
      `obj:object:${a.id}`,
    ]);
    assert.deepEqual([...naming.walk("/global")].map((b) => b.path), [
      "/global/d",
      "/global/d/e",
      "/global/d/obj",
    ]);
    assert.equal(naming.exists("/global/d/obj"), true);
    assert.equal(naming.exists("/global/d/none"), false);
    assert.equal(naming.exists("/global/none/x"), false);
    assert.deepEqual(naming.lookup("/global/d"), { name: "d", id: 0n, kind: "directory" });
    assert.deepEqual(naming.lookup("/global"), { name: "global", id: 0n, kind: "directory" });
    assert.equal(s.twz.open("/global/d/obj").id, a.id);
    assert.throws(() => naming.resolve("/global/d"), /is a directory of the global namespace/);
    // Rename within the global namespace (objects); across it refused.
    naming.rename("/global/d/obj", "/global/d/e/moved");
    assert.equal(naming.resolve("/global/d/e/moved"), a.id);
    assert.equal(naming.exists("/global/d/obj"), false);
    assert.throws(
      () => naming.rename("/a", "/global/a"),
      /between the local and the global namespace/,
    );
    assert.throws(
      () => naming.rename("/global/d/e/moved", "/b"),
      /between the local and the global namespace/,
    );
    assert.throws(() => naming.rename("/global/d", "/global/f"), (e: unknown) => {
      return e instanceof TwzError && e.code === ErrorCode.NotSupported;
    });
    assert.equal(naming.unbind("/global/d/e/moved"), a.id);
    assert.throws(() => naming.unbind("/global"), /Cannot unbind the global root/);
    assert.throws(() => naming.list("/global/none"), /No directory \/global\/none/);
    // A name bound to an object that is not published is refused by the space.
    const b = s.twz.create({ size: 4096 });
    assert.throws(() => naming.bind("/global/b", b.id), /not published/);
    // Local names are untouched.
    assert.equal(naming.resolve("/a"), a.id);
  } finally {
    s.end();
  }
});

Deno.test("on a node: a transaction publishes what it wrote after the local commit", () => {
  const s = system("n1");
  try {
    const a = s.twz.create({ size: 4096 });
    const b = s.twz.create({ size: 4096 });
    publish(s.twz, a);
    s.space!.calls.length = 0;
    transaction(s.twz, (tx) => {
      tx.write(a, a.baseOffset, new Uint8Array([1]));
      tx.write(b, b.baseOffset, new Uint8Array([2]));
      tx.write(a, a.baseOffset + 100, new Uint8Array([3]));
    });
    assert.deepEqual(s.space!.calls, [["commit", { ids: [a.id, b.id] }]]);
    assert.equal(s.space!.objects.get(a.id)!.version, 2);
    // An empty transaction publishes nothing.
    transaction(s.twz, () => {});
    assert.equal(s.space!.calls.length, 1);
    // A refused publish throws from transaction(), after the local commit.
    s.space!.failCommit = new TwzError(
      ErrorCode.Busy,
      "publish of a refused: ownership lost to node n2",
    );
    assert.throws(
      () => transaction(s.twz, (tx) => tx.write(a, a.baseOffset, new Uint8Array([9]))),
      /ownership lost to node n2/,
    );
    assert.equal(a.read(a.baseOffset, 1)[0], 9);
    // The next transaction runs (the failure left no transaction open).
    transaction(s.twz, (tx) => tx.write(b, b.baseOffset, new Uint8Array([5])));
    assert.equal(b.read(b.baseOffset, 1)[0], 5);
  } finally {
    s.end();
  }
});

Deno.test("own: the session's handles of the object become writable", () => {
  const s = system("n1");
  try {
    const target = s.twz.create({ size: 4096 });
    const from = s.twz.create({ size: 4096 });
    const index = from.fotIndex(target.id);
    // Published and owned by another node: maps read-only here.
    s.space!.objects.set(target.id, { version: 1, owner: "n2" });
    const twz = Twz.attach(s.kernel.port());
    const ro = twz.open(target.id);
    assert.equal(ro.writable, false);
    assert.throws(() => twz.open(target.id, { write: true }), /owned by another node/);
    const src = twz.open(from.id);
    assert.equal(src._fot(index).writable, false);
    const got = own(twz, target);
    assert.equal(got.owned, true);
    assert.equal(twz.open(target.id).writable, true);
    assert.equal(src._fot(index).writable, true);
    transaction(twz, (tx) => tx.write(twz.open(target.id), 300, new Uint8Array([4])));
    assert.equal(s.space!.objects.get(target.id)!.version, 2);
    twz.close();
  } finally {
    s.end();
  }
});

Deno.test("a name-based pointer to a global name follows a rebinding made elsewhere", () => {
  const s = system("n1");
  try {
    const a = s.twz.create({ size: 4096 });
    const b = s.twz.create({ size: 4096 });
    const from = s.twz.create({ size: 4096 });
    publish(s.twz, a, { name: "/global/cur" });
    publish(s.twz, b);
    const index = from.fotIndex({ name: "/global/cur" });
    assert.equal(from._fot(index).id, a.id);
    // Another node rebinds the name: no local name changes.
    s.space!.names.set("/cur", b.id);
    assert.equal(from._fot(index).id, b.id);
  } finally {
    s.end();
  }
});

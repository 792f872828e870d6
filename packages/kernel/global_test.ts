// The kernel's side of the global object space (global.ts, docs/GLOBAL.md)
// with a fake in-memory GlobalHook standing in for the cluster: a map, stat,
// read or exists of an ID held by neither store fetches it (adopt), mapLimit
// keeps writable maps of objects owned elsewhere out, replaceContents writes
// new bytes under existing mappings, adopt survives a power failure at every
// drain whole or not at all, and port.global checks rights before reaching
// the hook. Without a hook nothing of it happens.
import assert from "node:assert/strict";
import { ErrorCode, formatId, Kernel, type ObjID, Prot, TwzError } from "@twz/kernel";
import { type GlobalOp, NOT_IN_CLUSTER, SecProt } from "@twz/kernel/abi";
import { openSim, type SimHal } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { LocalPort } from "./_port.ts";
import { ADMIN } from "./_security.ts";
import { FakeCluster, freshId } from "./testdata/fake_cluster.ts";

const MiB = 1 << 20;
const text = (s: string) => new TextEncoder().encode(s);

function boot(size = 16 * MiB): { hal: SimHal; kernel: Kernel } {
  const hal = openSim({ size });
  return { hal, kernel: Kernel.boot(hal) };
}

function withHook(kernel: Kernel, cluster = new FakeCluster()): FakeCluster {
  cluster.kernel = kernel;
  kernel.global = cluster;
  return cluster;
}

function code(c: ErrorCode, pattern?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof TwzError, `expected TwzError, got ${e}`);
    assert.equal(e.code, c, e.message);
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

Deno.test("Kernel: map, stat, read and exists of an ID held nowhere fetch it once (bytes, prot, key kept; persistent)", () => {
  const { hal, kernel } = boot();
  const cluster = withHook(kernel);
  const key = freshId(99);
  const ids = [1, 2, 3, 4].map(freshId);
  ids.forEach((id, i) => {
    const bytes = new Uint8Array(5000 + i * 1000);
    bytes.set(text(`object ${i}`));
    bytes[bytes.length - 1] = 0xa0 + i;
    cluster.objects.set(id, {
      bytes,
      prot: i % 2 === 0 ? Prot.ReadWrite : Prot.Read,
      keyId: i === 1 ? key : 0n,
    });
  });
  const [a, b, c, d] = ids as [ObjID, ObjID, ObjID, ObjID];
  const m = kernel.map(a, Prot.Read);
  assert.equal(m.bytes.length, 5000);
  assert.equal(new TextDecoder().decode(m.bytes.subarray(0, 8)), "object 0");
  const s = kernel.stat(b);
  assert.deepEqual([s.size, s.prot, s.keyId, s.lifetime], [6000, Prot.Read, key, "persistent"]);
  assert.deepEqual([...kernel.read(c, 7000 - 1, 1)], [0xa2]);
  assert.equal(kernel.exists(d), true);
  assert.deepEqual(cluster.fetched, ids);
  // Held now: no more lookups.
  kernel.map(a, Prot.Read);
  kernel.stat(b);
  kernel.read(c, 0, 1);
  assert.equal(kernel.exists(d), true);
  assert.equal(cluster.fetched.length, 4);
  // An ID the cluster does not have either: ObjectNotFound, one lookup per call.
  const none = freshId(50);
  assert.throws(() => kernel.map(none, Prot.Read), code(ErrorCode.ObjectNotFound));
  assert.throws(() => kernel.stat(none), code(ErrorCode.ObjectNotFound));
  assert.throws(() => kernel.read(none, 0, 1), code(ErrorCode.ObjectNotFound));
  assert.equal(kernel.exists(none), false);
  assert.deepEqual(cluster.fetched.slice(4), [none, none, none, none]);
  // Adopted objects are ordinary persistent objects: they survive a reboot
  // (no hook any more) with their bytes, protections and key.
  kernel.shutdown();
  const again = Kernel.boot(hal);
  for (const [i, id] of ids.entries()) {
    const o = cluster.objects.get(id)!;
    const st = again.stat(id);
    assert.deepEqual([st.size, st.prot, st.keyId], [o.bytes.length, o.prot, o.keyId], `obj ${i}`);
    assert.deepEqual(again.read(id, 0, o.bytes.length), o.bytes);
  }
  again.shutdown();
  hal.close();
});

Deno.test("Kernel without a hook: an ID held nowhere is ObjectNotFound and nothing is looked up", () => {
  const { hal, kernel } = boot();
  const cluster = new FakeCluster();
  cluster.kernel = kernel; // not installed
  const id = freshId(7);
  cluster.objects.set(id, { bytes: new Uint8Array(64), prot: Prot.Read, keyId: 0n });
  assert.throws(() => kernel.map(id, Prot.Read), code(ErrorCode.ObjectNotFound));
  assert.throws(() => kernel.stat(id), code(ErrorCode.ObjectNotFound));
  assert.throws(() => kernel.read(id, 0, 1), code(ErrorCode.ObjectNotFound));
  assert.equal(kernel.exists(id), false);
  const port = kernel.port();
  assert.throws(() => port.map(id, Prot.Read), code(ErrorCode.ObjectNotFound));
  assert.throws(() => port.stat(id), code(ErrorCode.ObjectNotFound));
  assert.equal(port.info().node, null);
  assert.deepEqual(cluster.fetched, []);
  kernel.shutdown();
  hal.close();
});

Deno.test("Kernel: mapLimit refuses a writable map of an object owned elsewhere (one line); read-only works", () => {
  const { hal, kernel } = boot();
  const cluster = withHook(kernel);
  const id = kernel.create({ size: 4096 });
  kernel.write(id, 0, text("mine"));
  cluster.limits.set(id, Prot.Read | Prot.Exec);
  const line = `object ${formatId(id)} is owned by another node: take ownership first (own ${
    formatId(id)
  })`;
  const exact = (e: unknown) => code(ErrorCode.AccessDenied)(e) && (e as Error).message === line;
  assert.throws(() => kernel.map(id, Prot.ReadWrite), exact);
  assert.throws(() => kernel.write(id, 0, text("x")), exact);
  const port = kernel.port();
  assert.throws(() => port.map(id, Prot.ReadWrite), exact);
  assert.throws(() => port.write(id, 0, text("x")), exact);
  assert.throws(() => port.grow(id, 8192), exact);
  const thread = new LocalPort(kernel, { admin: false, tid: 3, contexts: [] });
  assert.throws(() => thread.map(id, Prot.Write), exact);
  assert.equal(new TextDecoder().decode(kernel.map(id, Prot.Read).bytes.subarray(0, 4)), "mine");
  assert.equal(thread.map(id, Prot.Read).writable, false);
  assert.deepEqual([...port.read(id, 0, 2)], [...text("mi")]);
  // A fetched object with a read-only limit: fetched, then mapped read-only only.
  const g = freshId(11);
  cluster.objects.set(g, { bytes: text("remote"), prot: Prot.ReadWrite, keyId: 0n });
  cluster.limits.set(g, Prot.Read);
  assert.throws(() => port.map(g, Prot.ReadWrite), code(ErrorCode.AccessDenied, /own /));
  assert.equal(port.map(g, Prot.Read).writable, false);
  assert.deepEqual(cluster.fetched, [g]);
  // Owned here (limit lifted): writable again.
  cluster.limits.delete(id);
  assert.equal(port.map(id, Prot.ReadWrite).writable, true);
  assert.equal(port.info().node, "node-a");
  kernel.shutdown();
  hal.close();
});

Deno.test("libtwz falls back to a read-only handle for an object owned elsewhere (fetched on open)", () => {
  // Node A makes a libtwz object; its bytes are "the cluster's" for node B.
  const a = boot();
  const twzA = Twz.attach(a.kernel.port());
  const objA = twzA.create({ size: 4096 });
  objA.write(objA.baseOffset, text("from node a"));
  const st = a.kernel.stat(objA.id);
  const bytes = a.kernel.read(objA.id, 0, st.size);
  const base = objA.baseOffset;
  twzA.close();
  a.kernel.shutdown();
  a.hal.close();
  const b = boot();
  const cluster = withHook(b.kernel);
  cluster.objects.set(st.id, { bytes, prot: st.prot, keyId: st.keyId });
  cluster.limits.set(st.id, Prot.Read | Prot.Exec);
  const twz = Twz.attach(b.kernel.port());
  const obj = twz.open(st.id);
  assert.equal(obj.writable, false);
  assert.equal(new TextDecoder().decode(obj.read(base, 11)), "from node a");
  assert.throws(() => twz.open(st.id, { write: true }), code(ErrorCode.AccessDenied, /own /));
  twz.close();
  b.kernel.shutdown();
  b.hal.close();
});

Deno.test("Kernel.adopt() refuses an existing or invalid ID, bad specs, and a read-only kernel (one line)", () => {
  const { hal, kernel } = boot();
  const have = kernel.create({ size: 64 });
  const vol = kernel.create({ size: 64, lifetime: "volatile" });
  const one = new Uint8Array(8);
  for (const id of [have, vol]) {
    assert.throws(
      () => kernel.adopt(id, one, { prot: Prot.Read }),
      code(ErrorCode.InvalidArgument, /exists/),
    );
  }
  assert.throws(
    () => kernel.adopt(0n, one, { prot: Prot.Read }),
    code(ErrorCode.InvalidArgument, /not a valid object ID/),
  );
  assert.throws(
    () => kernel.adopt(5n, one, { prot: Prot.Read }),
    code(ErrorCode.InvalidArgument, /not a valid object ID/),
  );
  const id = freshId(1);
  assert.throws(
    () => kernel.adopt(id, new Uint8Array(0), { prot: Prot.Read }),
    code(ErrorCode.InvalidArgument, /size 0/),
  );
  assert.throws(() => kernel.adopt(id, one, { prot: 9 }), code(ErrorCode.InvalidArgument));
  assert.throws(
    () => kernel.adopt(id, one, { prot: Prot.Read, keyId: 3n }),
    code(ErrorCode.InvalidArgument, /key/),
  );
  assert.equal(kernel.exists(id), false);
  kernel.adopt(id, text("x"), { prot: Prot.Read });
  assert.deepEqual(kernel.stat(id).size, 1);
  kernel.shutdown();
  const ro = Kernel.boot(hal, { readOnly: true });
  assert.throws(() => ro.adopt(freshId(2), one, { prot: Prot.Read }), code(ErrorCode.ReadOnly));
  assert.throws(() => ro.replaceContents(id, text("y")), code(ErrorCode.ReadOnly));
  assert.deepEqual([...ro.read(id, 0, 1)], [...text("x")]);
  ro.shutdown();
  hal.close();
});

Deno.test("Kernel.adopt() after a power failure at each of its drains: the object is absent or whole", () => {
  const bytes = new Uint8Array(3 * 4096 + 100);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
  const id = freshId(21), key = freshId(22);
  let drains = 0;
  {
    const { hal, kernel } = boot(8 * MiB);
    kernel.create({ size: 4096 }); // the image is not empty
    const before = hal.region.stats().drains;
    kernel.adopt(id, bytes, { prot: Prot.Read, keyId: key });
    drains = hal.region.stats().drains - before;
    kernel.shutdown();
    hal.close();
  }
  assert.ok(drains >= 2, `${drains} drains`);
  let whole = 0, absent = 0;
  for (let k = 1; k <= drains; k++) {
    for (const policy of ["random", "strict"] as const) {
      const { hal, kernel } = boot(8 * MiB);
      kernel.create({ size: 4096 });
      hal.region.armCrash(hal.region.stats().drains + k, { policy, seed: k });
      assert.throws(
        () => kernel.adopt(id, bytes, { prot: Prot.Read, keyId: key }),
        (e: unknown) => (e as Error).name === "PowerFailed",
        `+${k} ${policy}`,
      );
      const again = Kernel.boot(hal);
      if (again.exists(id)) {
        const st = again.stat(id);
        assert.deepEqual([st.size, st.prot, st.keyId], [bytes.length, Prot.Read, key]);
        assert.deepEqual(again.read(id, 0, bytes.length), bytes, `+${k} ${policy}: torn`);
        whole++;
      } else absent++;
      assert.equal(again.usage().objects, again.exists(id) ? 2 : 1);
      again.shutdown();
      hal.close();
    }
  }
  // The crash before the commit point leaves nothing, the one after it all.
  assert.ok(whole > 0 && absent > 0, `whole ${whole}, absent ${absent}`);
});

Deno.test("Kernel.replaceContents() writes under existing mappings, zeroes the tail, grows, and is durable", () => {
  const { hal, kernel } = boot();
  const id = kernel.create({ size: 4096 });
  kernel.write(id, 0, new Uint8Array(4096).fill(0x11));
  const m = kernel.map(id, Prot.Read);
  const pm = kernel.port().map(id, Prot.Read);
  kernel.replaceContents(id, text("new bytes"));
  assert.equal(m.bytes.length, 4096);
  assert.equal(new TextDecoder().decode(m.bytes.subarray(0, 9)), "new bytes");
  assert.ok(m.bytes.subarray(9).every((x) => x === 0), "tail zeroed");
  assert.equal(new TextDecoder().decode(pm.bytes.subarray(0, 9)), "new bytes");
  assert.equal(kernel.stat(id).size, 4096);
  // Longer: the object grows and the mappings follow.
  const big = new Uint8Array(3 * 4096 + 5).fill(0x22);
  kernel.create({ size: 4096 }); // right after it: growing moves it
  kernel.replaceContents(id, big);
  assert.equal(kernel.stat(id).size, big.length);
  assert.equal(m.bytes.length, big.length);
  assert.ok(m.bytes.every((x) => x === 0x22));
  assert.equal(pm.bytes.length, big.length);
  // A volatile object too.
  const v = kernel.create({ size: 16, lifetime: "volatile" });
  kernel.replaceContents(v, text("vol"));
  assert.deepEqual([...kernel.read(v, 0, 4)], [...text("vol"), 0]);
  assert.throws(
    () => kernel.replaceContents(freshId(3), text("x")),
    code(ErrorCode.ObjectNotFound),
  );
  // Durable when it returns: a strict power failure keeps it.
  kernel.replaceContents(id, text("durable"));
  hal.power!.powerFail({ policy: "strict" });
  const again = Kernel.boot(hal);
  assert.equal(new TextDecoder().decode(again.read(id, 0, 7)), "durable");
  assert.ok(again.read(id, 7, big.length - 7).every((x) => x === 0));
  again.shutdown();
  hal.close();
});

Deno.test("port.global checks rights (READ/WRITE, one line), then reaches the hook with the port's principal", () => {
  const { hal, kernel } = boot();
  const r = kernel.create({ size: 64, prot: Prot.Read });
  const rw = kernel.create({ size: 64, prot: Prot.ReadWrite });
  const none = kernel.create({ size: 64, prot: 0 });
  const admin = kernel.port();
  const thread = new LocalPort(kernel, { admin: false, tid: 5, contexts: [] });
  // Not a node: NotSupported, whatever the arguments name.
  for (const p of [admin, thread]) {
    assert.throws(
      () => p.global("status", {}),
      (e) => code(ErrorCode.NotSupported)(e) && (e as Error).message === NOT_IN_CLUSTER,
    );
    assert.throws(() => p.global("own", { id: freshId(9) }), code(ErrorCode.NotSupported));
  }
  const cluster = withHook(kernel);
  assert.equal(admin.global("status", {}).node, "node-a");
  assert.equal(cluster.calls[0]!.principal, ADMIN);
  thread.global("publish", { id: r });
  thread.global("refresh", { id: r });
  thread.global("own", { id: rw });
  thread.global("release", { id: rw });
  thread.global("commit", { ids: [rw, rw] });
  thread.global("lookup", { path: "/x" });
  assert.deepEqual(cluster.calls.slice(1).map((c) => c.op), [
    "publish",
    "refresh",
    "own",
    "release",
    "commit",
    "lookup",
  ]);
  for (const c of cluster.calls.slice(1)) {
    assert.deepEqual(c.principal, { admin: false, tid: 5, contexts: [] });
  }
  const n = cluster.calls.length;
  const denied = (what: string, id: ObjID) =>
    code(ErrorCode.AccessDenied, new RegExp(`^cannot ${what} ${formatId(id)}: its protections`));
  assert.throws(() => thread.global("own", { id: r }), denied("take ownership of", r));
  assert.throws(() => thread.global("release", { id: r }), denied("release", r));
  assert.throws(() => thread.global("commit", { ids: [rw, r] }), denied("commit", r));
  assert.throws(() => thread.global("publish", { id: none }), denied("publish", none));
  assert.throws(() => thread.global("refresh", { id: none }), denied("refresh", none));
  // The admin reads everything, but writes only what the defaults allow.
  admin.global("publish", { id: none });
  assert.throws(() => admin.global("own", { id: r }), denied("take ownership of", r));
  assert.equal(cluster.calls.length, n + 1);
  // Malformed calls: one-line InvalidArgument.
  const bad = code(ErrorCode.InvalidArgument);
  assert.throws(() => admin.global("nope" as GlobalOp, {} as never), bad);
  assert.throws(() => admin.global("status", null as never), bad);
  assert.throws(() => admin.global("status", [] as never), bad);
  assert.throws(() => admin.global("own", { id: "1" } as never), bad);
  assert.throws(() => admin.global("commit", { ids: [1] } as never), bad);
  // Rights on an object not held here: fetched first (then checked).
  const g = freshId(31);
  cluster.objects.set(g, { bytes: text("g"), prot: Prot.Read, keyId: 0n });
  assert.throws(() => thread.global("own", { id: g }), denied("take ownership of", g));
  assert.deepEqual(cluster.fetched, [g]);
  assert.throws(() => thread.global("own", { id: freshId(32) }), code(ErrorCode.ObjectNotFound));
  assert.equal(cluster.calls.length, n + 1);
  assert.equal(SecProt.Write, Prot.Write);
  kernel.shutdown();
  hal.close();
});

// The naming service's tree walk and its clean-up of names whose object is
// gone (what the shell's `rm` calls after deleting). Other naming tests are
// in twz_test.ts and damage_test.ts.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { BASE_OFFSET, ErrorCode, Prot, TwzError } from "@twz/kernel/abi";
import { openSim } from "@twz/hal-sim";
import { Twz } from "./twz.ts";

function boot(): { kernel: Kernel; twz: Twz } {
  const kernel = Kernel.boot(openSim({ size: 8 << 20 }));
  return { kernel, twz: Twz.attach(kernel.port()) };
}

Deno.test("Naming.walk() yields every binding with its path, parents first, in name order", () => {
  const { kernel, twz } = boot();
  const a = twz.create({ size: 4096 });
  twz.naming.bind("/z", a.id);
  twz.naming.bind("/d/b", a.id, { parents: true });
  twz.naming.bind("/d/a/x", a.id, { parents: true });
  twz.naming.mkdir("/e");
  const all = [...twz.naming.walk()].filter((b) => b.path !== "/.txlog");
  assert.deepEqual(all.map((b) => `${b.path} ${b.kind}`), [
    "/d directory",
    "/d/a directory",
    "/d/a/x object",
    "/d/b object",
    "/e directory",
    "/z object",
  ]);
  assert.ok(all.every((b) => b.path.endsWith(`/${b.name}`)));
  assert.equal(all[2]!.id, a.id);
  assert.deepEqual([...twz.naming.walk("/d/a")].map((b) => b.path), ["/d/a/x"]);
  assert.throws(() => [...twz.naming.walk("/nope")], /No directory \/nope/);
  assert.throws(() => [...twz.naming.walk("/z")], /\/z is not a directory/);
  kernel.shutdown();
});

Deno.test("Naming.walk() lists a directory whose object is gone but does not enter it", () => {
  const { kernel, twz } = boot();
  const a = twz.create({ size: 4096 });
  const dir = twz.naming.mkdir("/d");
  twz.naming.bind("/d/a", a.id);
  kernel.delete(dir); // behind the naming service's back
  const paths = [...twz.naming.walk()].map((b) => b.path).filter((p) => p !== "/.txlog");
  assert.deepEqual(paths, ["/d"]);
  kernel.shutdown();
});

Deno.test("Naming.unbindDangling() unbinds the names of deleted objects, deepest first", () => {
  const { kernel, twz } = boot();
  const keep = twz.create({ size: 4096, name: "/keep" });
  const parent = kernel.create({ size: 64 });
  const child = kernel.create({ size: 64, ties: [parent] });
  twz.naming.bind("/p", parent);
  twz.naming.bind("/d/child", child, { parents: true });
  twz.naming.bind("/alias", child);
  twz.naming.bind("/d/keep", keep.id);
  assert.deepEqual(twz.naming.unbindDangling(), [], "nothing dangles yet");
  assert.equal(kernel.delete(parent), 2, "the tied child goes too");
  const reported: string[] = [];
  const unbound = twz.naming.unbindDangling({ onUnbind: (p) => reported.push(p) });
  assert.deepEqual(unbound, ["/p", "/d/child", "/alias"]);
  assert.deepEqual(reported, unbound, "each reported as it is unbound");
  assert.deepEqual(
    [...twz.naming.walk()].map((b) => b.path).filter((p) => p !== "/.txlog"),
    ["/d", "/d/keep", "/keep"],
  );
  assert.equal(twz.naming.resolve("/d/keep"), keep.id);
  kernel.shutdown();
});

Deno.test("Naming.unbindDangling() unbinds a directory name whose object is gone", () => {
  const { kernel, twz } = boot();
  const dir = twz.naming.mkdir("/d");
  const obj = kernel.create({ size: 64 });
  twz.naming.bind("/d/x", obj);
  twz.naming.bind("/y", obj);
  kernel.delete(dir);
  kernel.delete(obj);
  // "/d/x" is inside the lost directory: gone with it, never walked.
  assert.deepEqual(twz.naming.unbindDangling(), ["/y", "/d"]);
  assert.equal(twz.naming.exists("/d"), false);
  kernel.shutdown();
});

Deno.test("Naming.unbindDangling() refuses a read-only kernel and a damaged directory", () => {
  const hal = openSim({ size: 8 << 20 });
  let kernel = Kernel.boot(hal);
  let twz = Twz.attach(kernel.port());
  const obj = kernel.create({ size: 64 });
  twz.naming.bind("/d/x", obj, { parents: true });
  const dir = twz.naming.resolve("/d");
  kernel.delete(obj);
  // A damaged directory header: the walk fails before anything is unbound.
  const m = kernel.map(dir, Prot.ReadWrite);
  const saved = m.view.getUint32(BASE_OFFSET, true);
  m.view.setUint32(BASE_OFFSET, 0xdead, true);
  assert.throws(
    () => twz.naming.unbindDangling(),
    (e: unknown) => e instanceof TwzError && e.code === ErrorCode.ObjectDamaged,
  );
  m.view.setUint32(BASE_OFFSET, saved, true);
  m.persist(BASE_OFFSET, 4);
  kernel.shutdown();
  kernel = Kernel.boot(hal, { readOnly: true });
  twz = Twz.attach(kernel.port());
  assert.throws(
    () => twz.naming.unbindDangling(),
    (e: unknown) => e instanceof TwzError && e.code === ErrorCode.ReadOnly,
  );
  assert.ok(twz.naming.exists("/d/x"), "nothing was unbound");
  kernel.halt();
});

Deno.test("Naming.walk() does not enter a directory that contains itself (damage)", () => {
  const { kernel, twz } = boot();
  const d = twz.naming.mkdir("/d");
  // What repair's _attach can bind: the directory inside itself.
  twz.naming._attach("/d/loop", d);
  assert.deepEqual(
    [...twz.naming.walk()].map((b) => `${b.path} ${b.kind}`).filter((p) => !p.startsWith("/.")),
    ["/d directory", "/d/loop directory"],
  );
  kernel.shutdown();
});

Deno.test("Naming.bind() binds a volatile object only when told; the name dangles after a reboot", () => {
  const hal = openSim({ size: 8 << 20 });
  let kernel = Kernel.boot(hal);
  let twz = Twz.attach(kernel.port());
  const v = twz.create({ size: 4096, lifetime: "volatile" });
  assert.throws(
    () => twz.naming.bind("/dev/clock", v.id, { parents: true }),
    (e) =>
      e instanceof TwzError && e.code === ErrorCode.InvalidArgument && /dangle/.test(e.message),
  );
  assert.equal(twz.naming.exists("/dev/clock"), false);
  twz.naming.bind("/dev/clock", v.id, { parents: true, volatile: true });
  assert.equal(twz.naming.resolve("/dev/clock"), v.id);
  kernel.shutdown();
  kernel = Kernel.boot(hal);
  twz = Twz.attach(kernel.port());
  // The object went with the boot; the name is left for the next boot to rebind.
  assert.equal(twz.port.exists(v.id), false);
  assert.deepEqual(twz.naming.unbindDangling(), ["/dev/clock"]);
  kernel.shutdown();
});

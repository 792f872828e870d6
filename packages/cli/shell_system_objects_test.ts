// The shell and the system's own objects: `new --name` leaves nothing when it
// fails and names no volatile object; rm, write, grow, unbind and rename
// refuse the kernel root object, the naming root, the transaction log and the
// kv store without --force; with a damaged naming root, names fail in one line
// while raw writes by ID still work. (Moved from the libtwz damage tests.)
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { BASE_OFFSET, formatId, type ObjID } from "@twz/kernel/abi";
import { openSim, openSimFromBytes, plugin } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { BTreeMap } from "@twz/libtwz/btree";
import { Shell } from "./shell.ts";

async function shell(script: string[]): Promise<{ out: string[]; err: string[]; kernel: Kernel }> {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  const out: string[] = [], err: string[] = [];
  const sh = new Shell(
    { plugin, hal, kernel, options: { hal: "sim" } },
    { out: (l) => out.push(l), err: (l) => err.push(l) },
    () => {},
  );
  for (const line of script) await sh.execute(line);
  return { out, err, kernel: sh.kernel };
}

Deno.test("shell: new --name leaves nothing when it fails; volatile objects are not named", async () => {
  const r = await shell([
    "new --size 4096 --name /f",
    "ls",
    "new --size 4096 --name /f/x",
    "new --volatile --size 64 --name /v",
    "new --prot - --size 4096 --name /noaccess",
    "ls",
  ]);
  assert.equal(r.err.length, 2, r.err.join("\n"));
  assert.match(r.err[0]!, /^new: .*not a directory/);
  assert.match(r.err[1]!, /^new: a volatile object cannot be named/);
  const objects = r.kernel.list();
  assert.ok(objects.every((o) => o.lifetime === "persistent"), "no volatile object was left");
  const twz = Twz.attach(r.kernel.port());
  assert.ok(twz.naming.exists("/noaccess"), "an unreadable object can be named");
  const named = new Set([twz.naming.resolve("/f"), twz.naming.resolve("/noaccess")]);
  const unnamed = objects.filter((o) =>
    !named.has(o.id) && o.id !== r.kernel.rootObjectId() && o.id !== twz.naming.rootId
  );
  assert.deepEqual(unnamed.map((o) => formatId(o.id)), [], "the failed new left an object");
  r.kernel.shutdown();
});

Deno.test("shell: rm, write, grow, unbind and rename refuse the system's objects without --force", async () => {
  const r = await shell([
    "kv put a 1",
    "bind /.txlog-alias /.txlog",
    "rm /.txlog",
    "write /kv 300 oops",
    "grow /.txlog 8M",
    "unbind /kv",
    "rename /.txlog /x",
    "rm /",
  ]);
  assert.equal(r.err.length, 6, r.err.join("\n"));
  assert.equal(r.err.pop(), "rm: / is the naming root directory: it cannot be removed");
  for (const line of r.err) {
    assert.match(
      line,
      /^(rm|write|grow|unbind|rename): .* is the .*; refusing to \w+ it \(add --force/,
    );
    assert.doesNotMatch(line, /\n/);
  }
  const twz = Twz.attach(r.kernel.port());
  const kv = BTreeMap.open(twz, twz.open("/kv"), codec.string, codec.string);
  assert.equal(kv.get("a"), "1", "the kv store is untouched");
  const root = formatId(r.kernel.rootObjectId());
  const sh = new Shell(
    { plugin, hal: r.kernel.hal, kernel: r.kernel, options: { hal: "sim" } },
    { out: () => {}, err: (l) => r.err.push(l) },
    () => {},
  );
  await sh.execute(`write ${root} 400 x`);
  assert.match(r.err.at(-1)!, /kernel's root object/);
  const before = r.err.length;
  await sh.execute("write --force /kv 100000 forced");
  await sh.execute("unbind --force /.txlog-alias");
  assert.equal(r.err.length, before, r.err.slice(before).join("\n"));
  await sh.execute("rm --force /kv");
  assert.equal(r.err.length, before, r.err.slice(before).join("\n"));
  assert.equal(Twz.attach(r.kernel.port()).naming.exists("/kv"), false);
  r.kernel.shutdown();
});

/** An image with names (the kernel root object, naming root, /b) and the root object's ID. */
function fixture(): { bytes: Uint8Array; root: ObjID; b: ObjID } {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  const twz = Twz.attach(kernel.port());
  const b = twz.create({ name: "/b", size: 4096 }).id;
  const root = kernel.rootObjectId();
  kernel.shutdown();
  const bytes = hal.region.bytes.slice();
  hal.close();
  return { bytes, root, b };
}

/** A copy of `bytes` with `mutate` applied to object `id`'s bytes. */
function damaged(bytes: Uint8Array, id: ObjID, mutate: (v: DataView) => void): Uint8Array {
  const hal = openSimFromBytes(bytes);
  const kernel = Kernel.boot(hal);
  const m = kernel.map(id);
  mutate(m.view);
  m.persist(0, m.bytes.length);
  kernel.shutdown();
  const out = hal.region.bytes.slice();
  hal.close();
  return out;
}

Deno.test("shell: with a damaged naming root, names fail in one line and raw writes by ID still work", async () => {
  const fx = fixture();
  const hal = openSimFromBytes(
    damaged(fx.bytes, fx.root, (v) => v.setUint32(BASE_OFFSET + 4, 77, true)),
  );
  const kernel = Kernel.boot(hal);
  const out: string[] = [], err: string[] = [];
  const sh = new Shell(
    { plugin, hal, kernel, options: { hal: "sim" } },
    { out: (l) => out.push(l), err: (l) => err.push(l) },
    () => {},
  );
  try {
    await sh.execute("names");
    await sh.execute("kv get k1");
    assert.equal(err.length, 2, err.join("\n"));
    for (const line of err) {
      assert.match(
        line,
        /^(names|kv): The naming root record .* is damaged: unknown root record version 77/,
      );
    }
    await sh.execute(`write ${formatId(fx.b)} 300 still-writable`);
    await sh.execute(`read ${formatId(fx.b)} 300 14`);
    assert.equal(err.length, 2, err.join("\n"));
    assert.deepEqual(out, ["wrote 14 bytes", "still-writable"]);
  } finally {
    kernel.halt();
    hal.close();
  }
});

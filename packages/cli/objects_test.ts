// The shell's object model (_objects.ts): `new` makes libtwz objects
// (meta-info and FOT) that libtwz opens and the deep check finds clean, and
// read/write/hexdump offsets count from the base, with --raw absolute.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import {
  BASE_OFFSET,
  META_OFFSET,
  MetaField,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
} from "@twz/kernel/abi";
import { openSim } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { checkObjects } from "@twz/libtwz/check";
import { UsageError } from "./board.ts";
import { byteRange, newObject } from "./_objects.ts";

/** libtwz's meta-info flag "created for a name, not bound yet". */
const META_PENDING_NAME = 0x8000;

function boot(): { kernel: Kernel; twz: Twz; [Symbol.dispose](): void } {
  const kernel = Kernel.boot(openSim({ size: 16 << 20 }));
  const twz = Twz.attach(kernel.port());
  return {
    kernel,
    twz,
    [Symbol.dispose]() {
      twz.close();
      kernel.shutdown();
    },
  };
}

function meta(kernel: Kernel, id: ObjID): DataView {
  const b = kernel.read(id, 0, BASE_OFFSET);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** The message of the UsageError `f` throws; fails when it throws none or another kind. */
function usage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof UsageError, `not a UsageError: ${e}`);
    assert.doesNotMatch(e.message, /\n/);
    return e.message;
  }
  assert.fail("no UsageError");
}

Deno.test("newObject: a libtwz object (meta-info, FOT), named, that libtwz opens and the deep check finds clean", () => {
  using s = boot();
  const id = newObject(s.twz, s.kernel, { volatile: false, size: 4096, ties: [], name: "/a/b" });
  const v = meta(s.kernel, id);
  assert.equal(v.getUint32(META_OFFSET + MetaField.magic, true), OBJECT_MAGIC);
  assert.equal(v.getUint16(META_OFFSET + MetaField.flags, true) & META_PENDING_NAME, 0);
  assert.equal(s.kernel.stat(id).size, 4096);
  assert.equal(s.twz.naming.resolve("/a/b"), id);
  const obj = s.twz.open("/a/b");
  assert.equal(obj.baseOffset, BASE_OFFSET);
  assert.equal(obj.meta.fotCapacity, 8, "the FOT libtwz gives a 4 KiB object");
  // An unnamed volatile object, read-only, tied to the first; and one nobody may access.
  const ro = newObject(s.twz, s.kernel, { volatile: true, prot: Prot.Read, ties: [id] });
  const none = newObject(s.twz, s.kernel, {
    volatile: false,
    size: 4096,
    prot: 0,
    ties: [],
    name: "/noaccess",
  });
  assert.equal(s.kernel.stat(ro).lifetime, "volatile");
  assert.equal(s.kernel.stat(ro).prot, Prot.Read);
  assert.equal(s.kernel.stat(ro).size, 65536, "libtwz's default size");
  assert.equal(s.twz.naming.resolve("/noaccess"), none);
  assert.equal(s.kernel.stat(none).prot, 0);
  const wo = newObject(s.twz, s.kernel, { volatile: false, prot: Prot.Write, ties: [] });
  assert.equal(s.kernel.stat(wo).prot, Prot.Write, "a write-only object (not mapped by libtwz)");
  const report = checkObjects(s.twz.port);
  assert.deepEqual(report.problems.map((p) => p.message), []);
  // The admin session reads every object (docs/SECURITY.md): none is left unchecked.
  assert.deepEqual(report.warnings.map((p) => p.message), []);
  // The tie holds: deleting the first deletes the read-only one.
  s.twz.delete("/a/b");
  assert.equal(s.kernel.exists(ro), false);
});

Deno.test("newObject refuses in one line and leaves nothing behind", () => {
  using s = boot();
  const before = s.kernel.list().length;
  assert.equal(
    usage(() => newObject(s.twz, s.kernel, { volatile: true, ties: [], name: "/v" })),
    "a volatile object cannot be named: the name would dangle after a crash",
  );
  assert.equal(
    usage(() => newObject(s.twz, s.kernel, { volatile: false, size: 64, ties: [] })),
    "--size: an object needs at least 256 bytes (null region, meta-info, base), not 64",
  );
  newObject(s.twz, s.kernel, { volatile: false, size: 4096, ties: [], name: "/f" });
  assert.equal(
    usage(() => newObject(s.twz, s.kernel, { volatile: false, ties: [], name: "/f" })),
    "the name /f is already bound",
  );
  assert.match(
    usage(() => newObject(s.twz, s.kernel, { volatile: false, ties: [123n], name: "/t" })),
    /^--tie: no object 0+7b$/,
  );
  const count = s.kernel.list().length;
  assert.equal(count, before + 1);
  // A bind that fails (a parent that is no directory) deletes the new object.
  assert.throws(
    () => newObject(s.twz, s.kernel, { volatile: false, size: 4096, ties: [], name: "/f/x" }),
    /not a directory/,
  );
  assert.equal(s.kernel.list().length, count, "the failed new left an object");
});

Deno.test("byteRange: offsets count from the base, the data ends at the FOT, --raw is absolute", () => {
  using s = boot();
  const id = newObject(s.twz, s.kernel, { volatile: false, size: 4096, ties: [] });
  const fot = meta(s.kernel, id).getUint32(META_OFFSET + MetaField.fotOffset, true);
  assert.equal(fot, 3584);
  const data = fot - BASE_OFFSET; // 3328 bytes of data
  const rel = { raw: false, force: false, write: false };
  assert.deepEqual(byteRange(s.kernel, id, 0, 5, rel), { start: BASE_OFFSET, length: 5 });
  assert.deepEqual(byteRange(s.kernel, id, 10, undefined, { ...rel, defaultLength: 256 }), {
    start: BASE_OFFSET + 10,
    length: 256,
  });
  assert.deepEqual(byteRange(s.kernel, id, data - 6, undefined, { ...rel, defaultLength: 256 }), {
    start: fot - 6,
    length: 6,
  });
  assert.deepEqual(byteRange(s.kernel, id, 0, undefined, rel), {
    start: BASE_OFFSET,
    length: data,
  });
  assert.deepEqual(byteRange(s.kernel, id, data, undefined, rel), { start: fot, length: 0 });
  assert.equal(
    usage(() => byteRange(s.kernel, id, data + 1, undefined, rel)),
    `OFFSET ${
      data + 1
    } is past the end of the data (${data} bytes from the base; --raw for absolute offsets)`,
  );
  assert.equal(
    usage(() => byteRange(s.kernel, id, data - 2, 3, { ...rel, write: true })),
    `LEN 3 at OFFSET ${
      data - 2
    } runs past the end of the data (${data} bytes from the base; --raw for absolute offsets)`,
  );
  // --raw: absolute; the null region and meta-info need --force, writes into the FOT too.
  const raw = { raw: true, force: false, write: false };
  assert.deepEqual(byteRange(s.kernel, id, 300, 4, raw), { start: 300, length: 4 });
  assert.deepEqual(byteRange(s.kernel, id, fot, 32, raw), { start: fot, length: 32 });
  assert.equal(
    usage(() => byteRange(s.kernel, id, 64, 16, raw)),
    "OFFSET 64 is in the null region and meta-info (bytes 0-255); add --force to read them",
  );
  assert.equal(
    usage(() => byteRange(s.kernel, id, 0, 1, { ...raw, write: true })),
    "OFFSET 0 is in the null region and meta-info (bytes 0-255); add --force to write them",
  );
  assert.equal(
    usage(() => byteRange(s.kernel, id, fot - 2, 4, { ...raw, write: true })),
    `OFFSET ${fot - 2} LEN 4 reaches the FOT (bytes ${fot}-4095); add --force to write it`,
  );
  const forced = { raw: true, force: true, write: true };
  assert.deepEqual(byteRange(s.kernel, id, 64, 16, forced), { start: 64, length: 16 });
  assert.deepEqual(byteRange(s.kernel, id, fot, 8, forced), { start: fot, length: 8 });
  assert.equal(
    usage(() => byteRange(s.kernel, id, 4090, 8, forced)),
    "LEN 8 at OFFSET 4090 runs past the end of the object (4096 bytes)",
  );
  assert.equal(
    usage(() => byteRange(s.kernel, id, 5000, undefined, forced)),
    "OFFSET 5000 is past the end of the object (4096 bytes)",
  );
  // --force alone does not make offsets absolute.
  assert.deepEqual(byteRange(s.kernel, id, 0, 1, { raw: false, force: true, write: true }), {
    start: BASE_OFFSET,
    length: 1,
  });
  // A write at the mapped range lands where libtwz reads the base.
  const r = byteRange(s.kernel, id, 3, 5, { ...rel, write: true });
  s.kernel.write(id, r.start, new TextEncoder().encode("hello"));
  const obj = s.twz.open(id);
  assert.equal(
    new TextDecoder().decode(obj.bytes.subarray(obj.baseOffset + 3, obj.baseOffset + 8)),
    "hello",
  );
});

Deno.test("byteRange: an object without libtwz meta-info counts from its first byte, to its end", () => {
  using s = boot();
  const id = s.kernel.create({ size: 1024 });
  const rel = { raw: false, force: false, write: true };
  assert.deepEqual(byteRange(s.kernel, id, 0, undefined, rel), { start: 0, length: 1024 });
  assert.deepEqual(byteRange(s.kernel, id, 64, 8, { ...rel, raw: true }), { start: 64, length: 8 });
  const small = s.kernel.create({ size: 64 });
  assert.deepEqual(byteRange(s.kernel, small, 0, 64, rel), { start: 0, length: 64 });
  assert.equal(
    usage(() => byteRange(s.kernel, small, 60, 8, rel)),
    "LEN 8 at OFFSET 60 runs past the end of the object (64 bytes)",
  );
});

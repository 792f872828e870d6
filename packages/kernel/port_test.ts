// The in-process kernel port (LocalPort) on hal-sim.
import assert from "node:assert/strict";
import { ErrorCode, Kernel, LocalPort, Prot, TwzError } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";

function boot(): Kernel {
  return Kernel.boot(openSim({ size: 8 << 20 }));
}

const code = (c: ErrorCode) => (e: unknown) => e instanceof TwzError && e.code === c;

Deno.test("LocalPort.create() copies from sources it may read, and refuses one a thread may not", () => {
  const kernel = boot();
  const port = kernel.port();
  const readable = port.create({ size: 4096 });
  port.write(readable, 0, new Uint8Array([7, 8, 9]));
  const writeOnly = port.create({ size: 4096, prot: Prot.Write });
  const copy = port.create({
    size: 4096,
    sources: [{ id: readable, srcOffset: 0, dstOffset: 10, length: 3 }],
  });
  assert.deepEqual([...port.read(copy, 10, 3)], [7, 8, 9]);
  const before = port.list().length;
  // The admin session may read every object; a thread only what its
  // protections allow (here: the defaults, write only).
  const thread = new LocalPort(kernel, { admin: false, tid: 1, contexts: [] });
  assert.throws(
    () => thread.create({ sources: [{ id: writeOnly, srcOffset: 0, dstOffset: 0, length: 1 }] }),
    (e: unknown) => code(ErrorCode.AccessDenied)(e) && /may not be read/.test(String(e)),
  );
  assert.equal(port.list().length, before); // nothing created
  kernel.shutdown();
});

Deno.test("LocalPort.persist()/flush() take object-relative ranges and check them", () => {
  const kernel = boot();
  const port = kernel.port();
  const id = port.create({ size: 4096 });
  const m = port.map(id);
  const other = port.map(port.create({ size: 4096 }));
  m.bytes[100] = 1;
  other.bytes[0] = 2;
  // Two objects in one call; drains once.
  const drains = kernel.hal.region.stats!().drains;
  port.persist(new Float64Array([m.handle, 64, 64, other.handle, 0, 64]), 2);
  assert.equal(kernel.hal.region.stats!().drains, drains + 1);
  assert.throws(() => port.flush(new Float64Array([m.handle, 4000, 200]), 1), RangeError);
  assert.throws(() => port.persist(new Float64Array([m.handle, -1, 1]), 1), RangeError);
  assert.throws(
    () => port.flush(new Float64Array([9999, 0, 1]), 1),
    code(ErrorCode.InvalidArgument),
  );
  port.unmap(m);
  // An unmapped handle is no longer a range's target.
  assert.throws(
    () => port.flush(new Float64Array([m.handle, 0, 1]), 1),
    code(ErrorCode.InvalidArgument),
  );
  kernel.shutdown();
});

Deno.test("LocalPort.info(), clock() and random() report the system", () => {
  const kernel = boot();
  const port = kernel.port();
  assert.equal(kernel.port(), port); // one per kernel
  const info = port.info();
  assert.equal(info.hal, kernel.hal.name);
  assert.equal(info.size, 8 << 20);
  assert.equal(info.readOnly, false);
  assert.equal(info.formatted, true);
  assert.notEqual(info.domain, boot().port().info().domain); // each kernel its own
  const { wall, mono } = port.clock();
  assert.ok(Math.abs(wall - Date.now()) < 60_000 && mono > 0);
  const r = port.random(32);
  assert.equal(r.length, 32);
  assert.ok(r.some((b) => b !== 0));
  assert.throws(() => port.random(-1), code(ErrorCode.InvalidArgument));
  assert.equal(port.threadSelf(), null); // the kernel's own session is no thread
  assert.throws(() => port.threads(), code(ErrorCode.NotSupported)); // no thread manager
  kernel.shutdown();
});

Deno.test("LocalPort: every port over one kernel reports the kernel's one durability domain", () => {
  const kernel = boot();
  const other = boot();
  assert.equal(new LocalPort(kernel).info().domain, kernel.port().info().domain);
  assert.notEqual(other.port().info().domain, kernel.port().info().domain);
  kernel.shutdown();
  other.shutdown();
});

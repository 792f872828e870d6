// `dependents(id)`: the objects tied to an object, in-process (the kernel and
// its LocalPort) on hal-sim — persistent and volatile ties, one level, after
// deletes and a reboot, unknown IDs, and the Read check for a thread's port.
import assert from "node:assert/strict";
import { ErrorCode, Kernel, LocalPort, type ObjID, Prot, TwzError } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";

const MiB = 1 << 20;

/** The IDs in a fixed order, to compare as sets. */
const sorted = (ids: ObjID[]) => [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

function rejectsWith(fn: () => unknown, code: ErrorCode, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TwzError, `expected TwzError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("dependents(): a parent's two tied children, one after a delete, none after both", () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  try {
    const port = kernel.port();
    const parent = port.create({ size: 1024 });
    const other = port.create({ size: 1024 });
    const a = port.create({ size: 1024, ties: [parent] });
    const b = port.create({ size: 1024, ties: [parent, other] });
    const grandchild = port.create({ size: 1024, ties: [a] });
    assert.deepEqual(sorted(port.dependents(parent)), sorted([a, b]));
    assert.equal(port.dependents(parent).length, port.stat(parent).dependents);
    // One level: the grandchild is a's, not the parent's.
    assert.deepEqual(port.dependents(a), [grandchild]);
    assert.deepEqual(port.dependents(other), [b]);
    assert.deepEqual(port.dependents(grandchild), []);
    // The kernel's own call answers the same.
    assert.deepEqual(sorted(kernel.dependents(parent)), sorted([a, b]));
    assert.equal(port.delete(a), 2); // a and its grandchild
    assert.deepEqual(port.dependents(parent), [b]);
    assert.equal(port.delete(b), 1);
    assert.deepEqual(port.dependents(parent), []);
    assert.deepEqual(port.dependents(other), []);
  } finally {
    kernel.shutdown();
  }
});

Deno.test("dependents(): volatile children of persistent and volatile parents, listed once", () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  try {
    const port = kernel.port();
    const parent = port.create({ size: 1024 });
    const p1 = port.create({ size: 1024, ties: [parent] });
    const v1 = port.create({ size: 1024, lifetime: "volatile", ties: [parent] });
    const vparent = port.create({ size: 1024, lifetime: "volatile" });
    const v2 = port.create({ size: 1024, lifetime: "volatile", ties: [vparent] });
    const v3 = port.create({ size: 1024, lifetime: "volatile", ties: [vparent, parent] });
    // Volatile dependents first, then the persistent tie edges.
    const list = port.dependents(parent);
    assert.deepEqual(sorted(list), sorted([p1, v1, v3]));
    assert.equal(new Set(list).size, list.length);
    assert.equal(list[list.length - 1], p1);
    assert.equal(list.length, port.stat(parent).dependents);
    assert.deepEqual(sorted(port.dependents(vparent)), sorted([v2, v3]));
    port.delete(v3);
    assert.deepEqual(port.dependents(vparent), [v2]);
    assert.deepEqual(sorted(port.dependents(parent)), sorted([p1, v1]));
  } finally {
    kernel.shutdown();
  }
});

Deno.test("dependents(): persistent ties are found again after a reboot, volatile ones are gone", () => {
  const hal = openSim({ size: 8 * MiB });
  let kernel = Kernel.boot(hal);
  const parent = kernel.create({ size: 1024 });
  const a = kernel.create({ size: 1024, ties: [parent] });
  const b = kernel.create({ size: 1024, ties: [parent] });
  kernel.create({ size: 1024, lifetime: "volatile", ties: [parent] });
  assert.equal(kernel.dependents(parent).length, 3);
  kernel.shutdown();
  hal.power!.powerFail({ policy: "all" });
  kernel = Kernel.boot(hal);
  try {
    assert.deepEqual(sorted(kernel.port().dependents(parent)), sorted([a, b]));
  } finally {
    kernel.shutdown();
    hal.close();
  }
});

Deno.test("dependents(): an unknown ID is ObjectNotFound, as for stat(); a deleted parent too", () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  try {
    const port = kernel.port();
    const unknown = 0x1234n << 64n | 0x5678n;
    rejectsWith(() => port.stat(unknown), ErrorCode.ObjectNotFound, /No object/);
    rejectsWith(() => port.dependents(unknown), ErrorCode.ObjectNotFound, /No object/);
    const parent = port.create({ size: 1024 });
    port.create({ size: 1024, ties: [parent] });
    const vparent = port.create({ size: 1024, lifetime: "volatile" });
    port.delete(parent);
    port.delete(vparent);
    rejectsWith(() => port.dependents(parent), ErrorCode.ObjectNotFound);
    rejectsWith(() => port.dependents(vparent), ErrorCode.ObjectNotFound);
  } finally {
    kernel.shutdown();
  }
});

Deno.test("dependents(): a thread's port needs Read on the parent; the admin always may", () => {
  const kernel = Kernel.boot(openSim({ size: 8 * MiB }));
  try {
    const admin = kernel.port();
    const thread = new LocalPort(kernel, { admin: false, tid: 1, contexts: [] });
    const readable = admin.create({ size: 1024, prot: Prot.Read });
    const writeOnly = admin.create({ size: 1024, prot: Prot.Write });
    const c1 = admin.create({ size: 1024, ties: [readable] });
    const c2 = admin.create({ size: 1024, ties: [writeOnly] });
    // A thread with no contexts has the defaults: read on one, not the other.
    assert.deepEqual(thread.dependents(readable), [c1]);
    rejectsWith(
      () => thread.dependents(writeOnly),
      ErrorCode.AccessDenied,
      /cannot list the objects tied to .*: its protections here are/,
    );
    assert.deepEqual(admin.dependents(writeOnly), [c2]);
    // An unknown ID is ObjectNotFound for a thread too (not AccessDenied).
    rejectsWith(() => thread.dependents(0x99n << 64n), ErrorCode.ObjectNotFound);
  } finally {
    kernel.shutdown();
  }
});

Deno.test("dependents(): a read-only kernel answers", () => {
  const hal = openSim({ size: 8 * MiB });
  let kernel = Kernel.boot(hal);
  const parent = kernel.create({ size: 1024 });
  const a = kernel.create({ size: 1024, ties: [parent] });
  kernel.shutdown();
  kernel = Kernel.boot(hal, { readOnly: true });
  try {
    assert.equal(kernel.readOnly, true);
    assert.deepEqual(kernel.port().dependents(parent), [a]);
  } finally {
    kernel.shutdown();
    hal.close();
  }
});

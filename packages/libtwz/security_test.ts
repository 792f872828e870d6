// `@twz/libtwz/security` in-process: the kernel's own session (the admin)
// and sessions over ports of other principals (`new LocalPort(kernel,
// principal)`), on hal-sim. Gates between two threads are tested in
// packages/kernel/threads/gate_test.ts and tests/security_programs_test.ts.
import assert from "node:assert/strict";
import {
  CapFlag,
  deriveObjectId,
  ErrorCode,
  Extent,
  formatId,
  type KernelPort,
  type Mapping,
  MappingBase,
  META_OFFSET,
  MetaField,
  type ObjID,
  Prot,
  readId,
  SecProt,
  signDelegation,
  TwzError,
} from "@twz/kernel/abi";
import { Kernel, LocalPort } from "@twz/kernel";
import { plugin } from "@twz/hal-sim";
import { attachThreads, spawnProgram, stopThreads } from "@twz/cli/run";
import { ptr, struct, Twz, u32 } from "./mod.ts";
import {
  access,
  callGate,
  createContext,
  createKey,
  createProtected,
  delegate,
  grant,
  revoke,
  rotateKey,
} from "./security.ts";

async function boot() {
  const hal = await plugin.open({ size: 32 << 20 });
  const kernel = Kernel.boot(hal);
  const admin = Twz.attach(kernel.port());
  return {
    kernel,
    admin,
    /** A port (and session) of a thread-like principal attached to `contexts`. */
    as(contexts: ObjID[], tid = 7): { port: LocalPort; twz: Twz } {
      const port = new LocalPort(kernel, { admin: false, tid, contexts });
      return { port, twz: Twz.attach(port) };
    },
    [Symbol.dispose]() {
      admin.close();
      kernel.shutdown();
      hal.close();
    },
  };
}

/** The code of a TwzError thrown by `f` (sync or async). */
async function codeOf(f: () => unknown): Promise<{ code: number; message: string }> {
  try {
    await f();
  } catch (e) {
    if (e instanceof TwzError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("no error was thrown");
}

/** A principal's verdict on `id`, settled (signatures verified). */
async function settle(port: KernelPort, id: ObjID): Promise<number> {
  return (await port.access(id)).prot;
}

Deno.test("keyed objects: the ID derives from the meta-info's nonce, the key and the protections", async () => {
  using sys = await boot();
  const twz = sys.admin;
  const key = await createKey(twz);
  const obj = twz.create({ key: key.kuid, size: 4096 });
  const nonce = readId(obj.view, META_OFFSET + MetaField.nonce);
  assert.equal(obj.meta.keyId, key.kuid);
  assert.equal(twz.port.stat(obj.id).keyId, key.kuid);
  assert.equal(obj.id, deriveObjectId(nonce, key.kuid, 0, Prot.ReadWrite));
  // The meta-info's checksum holds (meta checks it on first use).
  assert.equal(obj.meta.prot, Prot.ReadWrite);

  // Protections none (the shell's `new --key K --prot none`): no handle, same rule.
  const id = twz._createId({ key: key.kuid, prot: 0, size: 4096, name: "/secret" });
  const raw = twz.port.read(id, 0, META_OFFSET + 64);
  const n2 = readId(new DataView(raw.buffer), META_OFFSET + MetaField.nonce);
  assert.equal(id, deriveObjectId(n2, key.kuid, 0, 0));
  assert.equal(twz.naming.resolve("/secret"), id);

  // Without a key the ID stays random (no derivation).
  const plain = twz.create({ size: 4096 });
  const n3 = readId(plain.view, META_OFFSET + MetaField.nonce);
  assert.notEqual(plain.id, deriveObjectId(n3, 0n, 0, Prot.ReadWrite));
  assert.equal(plain.meta.keyId, 0n);
});

Deno.test("grant and revoke: a read capability reads and cannot write; revoked, nothing", async () => {
  using sys = await boot();
  const twz = sys.admin;
  const key = await createKey(twz);
  const id = twz._createId({ key: key.kuid, prot: 0, size: 4096 });
  const ctx = createContext(twz);
  const { port, twz: reader } = sys.as([ctx]);

  assert.equal(await settle(port, id), 0);
  assert.equal(
    (await codeOf(() => reader.open(id, { write: false }))).code,
    ErrorCode.AccessDenied,
  );

  const g = await grant(twz, { target: id, to: ctx, prot: SecProt.Read });
  assert.equal(g.grant.kind, "capability");
  assert.equal(g.grant.target, id);
  assert.equal(g.grant.accessor, ctx);
  assert.equal(g.grant.flags & CapFlag.Sha256, CapFlag.Sha256);
  assert.ok(g.index >= 0);
  assert.deepEqual(twz.port.ctxInfo(ctx).grants.map((x) => x.index), [g.index]);

  const report = await access(twz, id, [ctx]);
  assert.equal(report.prot & (SecProt.Read | SecProt.Write), SecProt.Read);
  assert.equal(await settle(port, id), SecProt.Read);
  const ro = reader.open(id, { write: false });
  assert.equal(ro.read(ro.baseOffset, 4).length, 4);
  const denied = await codeOf(() => reader.open(id, { write: true }));
  assert.equal(denied.code, ErrorCode.AccessDenied);
  assert.match(denied.message, new RegExp(formatId(id)));

  revoke(twz, ctx, g.index);
  assert.deepEqual(twz.port.ctxInfo(ctx).grants, []);
  assert.equal(await settle(port, id), 0);
  reader.close(); // the old handle is cached: a new session maps anew
  const again = Twz.attach(port);
  assert.equal((await codeOf(() => again.open(id, { write: false }))).code, ErrorCode.AccessDenied);
  again.close();
});

Deno.test("grant: one-line refusals (no key, bad terms, a private key the caller may not read)", async () => {
  using sys = await boot();
  const twz = sys.admin;
  const ctx = createContext(twz);
  const plain = twz.create({ size: 4096 });
  const noKey = await codeOf(() => grant(twz, { target: plain.id, to: ctx, prot: SecProt.Read }));
  assert.equal(noKey.code, ErrorCode.InvalidArgument);
  assert.match(noKey.message, /has no key/);

  const key = await createKey(twz);
  const id = twz._createId({ key: key.kuid, prot: 0, size: 4096 });
  for (const bad of [0, 32, 1.5, -1]) {
    const e = await codeOf(() => grant(twz, { target: id, to: ctx, prot: bad }));
    assert.equal(e.code, ErrorCode.InvalidArgument, String(bad));
    assert.ok(!e.message.includes("\n"));
  }
  const badGate = await codeOf(() =>
    grant(twz, { target: id, to: ctx, prot: 1, gate: { offset: 0n, length: 8n, align: 0n } })
  );
  assert.equal(badGate.code, ErrorCode.InvalidArgument);
  const badExpiry = await codeOf(() => grant(twz, { target: id, to: ctx, prot: 1, expires: NaN }));
  assert.equal(badExpiry.code, ErrorCode.InvalidArgument);

  // A principal with no capability on the key's private object cannot sign.
  const other = createContext(twz);
  const { twz: stranger } = sys.as([other]);
  const e = await codeOf(() => grant(stranger, { target: id, to: other, prot: SecProt.Read }));
  assert.equal(e.code, ErrorCode.AccessDenied);
  assert.match(e.message, new RegExp(`key ${formatId(key.kuid)}`));
  assert.equal(twz.port.ctxInfo(other).grants.length, 0);
});

Deno.test("grant: expiry is signed in nanoseconds; add: false only signs", async () => {
  using sys = await boot();
  const twz = sys.admin;
  const key = await createKey(twz, { scheme: "ed25519" });
  const id = twz._createId({ key: key.kuid, prot: 0, size: 4096 });
  const ctx = createContext(twz);
  const when = new Date(Date.now() + 3_600_000);
  const g = await grant(twz, {
    target: id,
    to: ctx,
    prot: SecProt.Read,
    expires: when,
    add: false,
  });
  assert.equal(g.index, -1);
  assert.equal(g.grant.expiry, BigInt(when.getTime()) * 1_000_000n);
  assert.equal(g.grant.flags & CapFlag.Ed25519, CapFlag.Ed25519);
  assert.equal(twz.port.ctxInfo(ctx).grants.length, 0);
  const i = twz.port.ctxAdd(ctx, g.bytes);
  assert.equal((await access(twz, id, [ctx])).prot & SecProt.Read, SecProt.Read);
  assert.ok(i >= 0);
});

Deno.test("delegate narrows; wider delegations are refused, and a hand-made one grants nothing", async () => {
  using sys = await boot();
  const twz = sys.admin;
  const key = await createKey(twz);
  const id = twz._createId({ key: key.kuid, prot: 0, size: 4096 });
  const aKey = await createKey(twz);
  const a = createContext(twz, { key: aKey.kuid });
  const b = createContext(twz);
  const parent = await grant(twz, {
    target: id,
    to: a,
    prot: SecProt.Read | SecProt.Write,
    delegable: true,
  });

  const d = await delegate(twz, { from: a, index: parent.index, to: b, prot: SecProt.Read });
  assert.equal(d.grant.kind, "delegation");
  assert.equal(d.grant.provider, a);
  assert.equal(d.grant.target, id);
  assert.equal((await access(twz, id, [b])).prot & (SecProt.Read | SecProt.Write), SecProt.Read);
  const { port } = sys.as([b]);
  assert.equal(await settle(port, id) & (SecProt.Read | SecProt.Write), SecProt.Read);

  // Wider than the parent: refused by delegate, one line each.
  const wider = [
    { prot: SecProt.Read | SecProt.Exec },
    { prot: SecProt.Read, gate: { offset: 0n, length: 1n << 70n, align: 1n } },
  ];
  for (const w of wider) {
    const e = await codeOf(() => delegate(twz, { from: a, index: parent.index, to: b, ...w }));
    assert.equal(e.code, ErrorCode.InvalidArgument);
    assert.ok(!e.message.includes("\n"));
  }
  const e = await codeOf(() =>
    delegate(twz, { from: a, index: parent.index, to: b, prot: SecProt.Read | SecProt.Exec })
  );
  assert.match(e.message, /cannot be wider than its parent.*rw---/);

  // An expiring parent: the delegation inherits its expiry and cannot outlive it.
  const soon = Date.now() + 600_000;
  const p2 = await grant(twz, {
    target: id,
    to: a,
    prot: SecProt.Read,
    delegable: true,
    expires: soon,
  });
  const inherit = await delegate(twz, { from: a, index: p2.index, to: b, prot: 1, add: false });
  assert.equal(inherit.grant.expiry, BigInt(soon) * 1_000_000n);
  const later = await codeOf(() =>
    delegate(twz, { from: a, index: p2.index, to: b, prot: 1, expires: soon + 1000 })
  );
  assert.match(later.message, /outlive/);

  // Not delegable, no key on `from`, no such grant.
  const p3 = await grant(twz, { target: id, to: a, prot: SecProt.Read });
  assert.match(
    (await codeOf(() => delegate(twz, { from: a, index: p3.index, to: b, prot: 1 }))).message,
    /may not be delegated/,
  );
  const keyless = createContext(twz);
  const p4 = await grant(twz, { target: id, to: keyless, prot: 1, delegable: true });
  assert.match(
    (await codeOf(() => delegate(twz, { from: keyless, index: p4.index, to: b, prot: 1 })))
      .message,
    /has no key/,
  );
  assert.match(
    (await codeOf(() => delegate(twz, { from: a, index: 99, to: b, prot: 1 }))).message,
    /has no grant 99/,
  );

  // Made by hand (abi signDelegation, signed with a's key): rw from an r parent.
  const c = createContext(twz);
  const privateKey = readPkcs8(twz, aKey.privateId);
  const readOnlyParent = await grant(twz, { target: id, to: a, prot: 1, delegable: true });
  const forged = await signDelegation(
    { ...readOnlyParent.grant, accessor: c, prot: SecProt.Read | SecProt.Write },
    a,
    readOnlyParent.grant,
    privateKey,
  );
  const { encodeGrant } = await import("@twz/kernel/abi");
  twz.port.ctxAdd(c, encodeGrant(forged));
  assert.equal((await access(twz, id, [c])).prot & (SecProt.Read | SecProt.Write), 0);
  const cPort = sys.as([c]).port;
  assert.equal(await settle(cPort, id) & (SecProt.Read | SecProt.Write), 0);
});

Deno.test("rotateKey: grants signed with the old key stop granting", async () => {
  using sys = await boot();
  const twz = sys.admin;
  const key = await createKey(twz);
  const id = twz._createId({ key: key.kuid, prot: 0, size: 4096 });
  const ctx = createContext(twz);
  await grant(twz, { target: id, to: ctx, prot: SecProt.Read });
  assert.equal((await access(twz, id, [ctx])).prot & SecProt.Read, SecProt.Read);
  await rotateKey(twz, key.kuid);
  assert.equal((await access(twz, id, [ctx])).prot & SecProt.Read, 0);
  await grant(twz, { target: id, to: ctx, prot: SecProt.Read }); // signed with the new pair
  assert.equal((await access(twz, id, [ctx])).prot & SecProt.Read, SecProt.Read);
});

Deno.test("createProtected: a keyed object only the creator's context may use", async () => {
  using sys = await boot();
  const mine = createContext(sys.admin);
  const { port, twz } = sys.as([mine], 11);
  // The key's creator context may read its private object (and so sign with it).
  const key = await createKey(twz);
  const obj = await createProtected(twz, { key: key.kuid, size: 4096, name: "/private/one" });
  assert.equal(obj.writable, true);
  assert.equal(obj.meta.keyId, key.kuid);
  assert.equal(port.stat(obj.id).prot, 0);
  obj.write(obj.baseOffset, new TextEncoder().encode("mine"));
  assert.equal(sys.admin.naming.resolve("/private/one"), obj.id);

  const other = createContext(sys.admin);
  const o = sys.as([other], 12);
  assert.equal(await settle(o.port, obj.id), 0);
  assert.equal(
    (await codeOf(() => o.twz.open(obj.id, { write: false }))).code,
    ErrorCode.AccessDenied,
  );
  // Nobody else can sign for that key either.
  const before = sys.admin.port.list().length;
  const e = await codeOf(() => createProtected(o.twz, { key: key.kuid, size: 4096 }));
  assert.equal(e.code, ErrorCode.AccessDenied);
  assert.equal(sys.admin.port.list().length, before); // nothing was left behind
  // The kernel's own session has no context to hold the capability.
  const admin = await codeOf(() => createProtected(sys.admin, { key: key.kuid }));
  assert.equal(admin.code, ErrorCode.NotSupported);
  // Twz.create says where to go for such an object.
  assert.match(
    (await codeOf(() => twz.create({ key: key.kuid, prot: 0 }))).message,
    /createProtected/,
  );
});

Deno.test("callGate on the kernel's session is refused in one line", async () => {
  using sys = await boot();
  const e = await codeOf(() => callGate(sys.admin, 1n << 64n, 0, new Uint8Array(1)));
  assert.ok(e.code === ErrorCode.NotSupported || e.code === ErrorCode.ObjectNotFound);
  assert.ok(!e.message.includes("\n"));
});

/** The PKCS#8 at the base of a private object (the admin may read it). */
function readPkcs8(twz: Twz, privateId: ObjID): Uint8Array {
  const head = twz.port.read(privateId, 256, 4);
  const len = head[1]! < 0x80
    ? head[1]! + 2
    : head[1] === 0x81
    ? head[2]! + 3
    : ((head[2]! << 8) | head[3]!) + 4;
  return twz.port.read(privateId, 256, len);
}

// --- revocation epochs -------------------------------------------------------

/**
 * A thread's port, in-process: a principal's LocalPort with an epoch word
 * and mappings of their own (so a test can withdraw one the way the thread
 * side does: its bytes go empty, the epoch moves by one).
 */
class EpochPort {
  readonly epoch = new Int32Array(new SharedArrayBuffer(4));
  readonly maps = new Set<TestMapping>();
  calls = 0;
  constructor(readonly inner: LocalPort) {}
  /** Withdraw every mapping of `id` (what the kernel's thread manager does). */
  withdraw(id: ObjID): number {
    let n = 0;
    for (const m of this.maps) {
      if (m.id !== id) continue;
      m.extent.retarget(new Uint8Array(0), -1);
      this.maps.delete(m);
      n++;
    }
    Atomics.add(this.epoch, 0, 1);
    return n;
  }
  asPort(): KernelPort {
    return new Proxy(this.inner, {
      get: (target, p) => {
        if (p === "epoch") return this.epoch;
        if (p === "map") {
          return (id: ObjID, prot?: number): Mapping => {
            const m = target.map(id, prot);
            const mine = new TestMapping(m, this);
            this.maps.add(mine);
            return mine;
          };
        }
        if (p === "unmap") {
          return (m: Mapping) => {
            if (m instanceof TestMapping) {
              this.maps.delete(m);
              target.unmap(m.inner);
            } else target.unmap(m);
          };
        }
        if (p === "contexts") {
          return () => {
            this.calls++;
            return target.contexts();
          };
        }
        const v = Reflect.get(target, p, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    }) as unknown as KernelPort;
  }
}

class TestMapping extends MappingBase {
  constructor(readonly inner: Mapping, _port: EpochPort) {
    super(
      inner.id,
      inner.lifetime,
      inner.prot,
      inner.handle,
      new Extent(inner.extent.bytes, inner.extent.base),
    );
  }
  flush(offset: number, length: number): void {
    this.inner.flush(offset, length);
  }
  drain(): void {
    this.inner.drain();
  }
  persist(offset: number, length: number): void {
    this.inner.persist(offset, length);
  }
}

const Target = struct({ value: u32 });
const Holder = struct({ tag: u32, link: ptr(Target) });

Deno.test("revocation epoch: a withdrawn mapping is dropped, re-mapped when allowed, AccessDenied when not", async () => {
  using sys = await boot();
  const twz = sys.admin;
  const key = await createKey(twz);
  const secret = twz._createId({ key: key.kuid, prot: 0, size: 4096 });
  const w = createContext(twz);
  const r = createContext(twz);
  await grant(twz, { target: secret, to: w, prot: SecProt.Read | SecProt.Write });
  const readGrant = await grant(twz, { target: secret, to: r, prot: SecProt.Read });

  // The writer puts 42 in the secret and a pointer to it in an open holder.
  const writer = sys.as([w], 8);
  await settle(writer.port, secret);
  const holder = writer.twz.create({ size: 4096 });
  const t = Target.at(writer.twz.open(secret, { write: true }), 256);
  t.value = 42;
  Holder.at(holder, 256).link = t;

  // The reader follows it (the memo and the FOT cache are warm).
  const ep = new EpochPort(new LocalPort(sys.kernel, { admin: false, tid: 9, contexts: [r] }));
  await settle(ep.inner, secret);
  await settle(ep.inner, holder.id);
  const reader = Twz.attach(ep.asPort());
  const h = Holder.at(reader.open(holder.id, { write: false }), 256);
  assert.equal(h.link!.value, 42);
  assert.equal(h.link!.value, 42);
  const held = h.link!;

  // Withdrawn while still allowed: the next follow re-maps (after one call into the kernel).
  assert.equal(ep.withdraw(secret), 1);
  assert.equal(ep.calls, 0);
  assert.equal(h.link!.value, 42);
  assert.equal(ep.calls, 1);
  // An accessor made before the withdrawal reaches nothing: AccessDenied naming the object.
  const old = await codeOf(() => held.value);
  assert.equal(old.code, ErrorCode.AccessDenied);
  assert.match(old.message, new RegExp(`${formatId(secret)} was withdrawn`));

  // Revoked and withdrawn: the next follow is refused, naming the object.
  revoke(twz, r, readGrant.index);
  assert.equal(await settle(ep.inner, secret), 0);
  ep.withdraw(secret);
  const e = await codeOf(() => h.link!.value);
  assert.equal(e.code, ErrorCode.AccessDenied);
  assert.match(e.message, new RegExp(formatId(secret)));
  assert.equal(
    (await codeOf(() => reader.open(secret, { write: false }))).code,
    ErrorCode.AccessDenied,
  );
  // The holder itself was never withdrawn: still readable.
  assert.equal(reader.open(holder.id, { write: false }).size, 4096);
  reader.close();
  writer.twz.close();
});

// --- in real threads -------------------------------------------------------------

const PROGRAM = new URL("./testdata/security_program.ts", import.meta.url).pathname;

Deno.test("in threads: serveGate/callGate across two programs; a revoked pointer target is refused at the next follow", async () => {
  const hal = await plugin.open({ size: 32 << 20 });
  const board = { kernel: Kernel.boot(hal) };
  let out = "";
  const console = (t: string) => out += t;
  try {
    const { twz, manager } = attachThreads(board);
    const key = await createKey(twz);

    // Gates: entry points 64, 96, 128 (align 32 in [64, 160)) for context C.
    const gate = twz.create({ key: key.kuid, size: 4096 });
    const c = createContext(twz);
    await grant(twz, {
      target: gate.id,
      to: c,
      prot: SecProt.Exec,
      gate: { offset: 64n, length: 96n, align: 32n },
    });
    const server = await spawnProgram(board, PROGRAM, ["serve", formatId(gate.id)], { console });
    const caller = await spawnProgram(board, "security_program", ["call", formatId(gate.id)], {
      console,
      contexts: [c],
    });
    const called = await manager.wait(caller.tid);
    const served = await manager.wait(server.tid);
    assert.equal(called.exitCode, 0, out);
    assert.equal(served.exitCode, 0, out);
    const line = (tag: string) => out.split("\n").find((l) => l.startsWith(`${tag} `)) ?? "";
    assert.equal(line("64"), `64 ok tid:${caller.tid}:cba`, out);
    assert.match(line("96"), /^96 error \d+ gate .* entry point 96 failed: entry 96 refuses$/, out);
    assert.match(line("65"), new RegExp(`^65 error ${ErrorCode.AccessDenied} `), out);
    assert.match(line("160"), new RegExp(`^160 error ${ErrorCode.AccessDenied} `), out);
    assert.equal(line("128"), "128 ok 1", out);
    assert.match(out, /^served$/m);

    // Revocation: a program follows a pointer into a secret it may read, then
    // the grant is removed; its next follow is refused, naming the secret.
    const secret = twz._createId({ key: key.kuid, prot: 0, size: 4096 });
    const w = createContext(twz);
    const r = createContext(twz);
    await grant(twz, { target: secret, to: w, prot: SecProt.Read | SecProt.Write });
    const readGrant = await grant(twz, { target: secret, to: r, prot: SecProt.Read });
    const writerPort = new LocalPort(board.kernel, { admin: false, tid: 1000, contexts: [w] });
    await settle(writerPort, secret);
    const writer = Twz.attach(writerPort);
    const holder = writer.create({ size: 4096 });
    const t = Target.at(writer.open(secret, { write: true }), 256);
    t.value = 42;
    Holder.at(holder, 256).link = t;
    out = "";
    const follower = await spawnProgram(board, "security_program", [
      "follow",
      formatId(holder.id),
      "64",
    ], { console, contexts: [r] });
    const word = () => new DataView(twz.port.read(holder.id, 320, 4).buffer).getUint32(0, true);
    for (const end = Date.now() + 20_000; word() !== 1;) {
      if (Date.now() > end) throw new Error(`the follower never followed:\n${out}`);
      await new Promise((res) => setTimeout(res, 10));
    }
    revoke(twz, r, readGrant.index);
    await settle(twz.port, secret); // let the kernel's verdicts settle
    twz.port.write(holder.id, 320, new Uint8Array([2, 0, 0, 0]));
    const ended = await manager.wait(follower.tid);
    assert.equal(ended.exitCode, 0, out);
    assert.match(out, /^first ok 42$/m);
    assert.match(out, /^again ok 42$/m);
    const epochs = [...out.matchAll(/^epoch (\d+)$/gm)].map((m) => Number(m[1]));
    assert.equal(epochs.length, 2, out);
    assert.ok(epochs[1]! > epochs[0]!, out);
    assert.match(
      out,
      new RegExp(`^after error ${ErrorCode.AccessDenied} .*${formatId(secret)}`, "m"),
    );
    assert.match(
      out,
      new RegExp(
        `^held error ${ErrorCode.AccessDenied} access to object ${formatId(secret)} was withdrawn`,
        "m",
      ),
    );
    writer.close();
  } finally {
    await stopThreads(board);
    board.kernel.shutdown();
    hal.close();
  }
});

Deno.test("a context masked read-only still resolves names and opens objects read-only", async () => {
  using sys = await boot();
  const obj = sys.admin.create({ name: "/docs/a", size: 4096 });
  obj.write(obj.baseOffset, new TextEncoder().encode("hi"));
  obj.persist(obj.baseOffset, 2);
  const ctx = createContext(sys.admin);
  sys.admin.port.ctxMask(ctx, 0n, SecProt.Read);
  const { twz } = sys.as([ctx]);
  // The root object and the directories allow writes by default, the mask
  // does not: lookups go through read-only handles.
  const seen = twz.open("/docs/a");
  assert.equal(seen.writable, false);
  assert.equal(new TextDecoder().decode(seen.read(seen.baseOffset, 2)), "hi");
  const refused = await codeOf(() => twz.open("/docs/a", { write: true }));
  assert.equal(refused.code, ErrorCode.AccessDenied);
  twz.close();
});

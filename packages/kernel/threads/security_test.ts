// Security contexts of threads (real Workers, permissions "none"): what a
// thread may map follows its contexts — given at spawn (or inherited), and
// attached or detached later; revocation (a grant removed, a key rotated, a
// context detached) withdraws a live mapping: its view goes empty, the
// thread's epoch word moves by one, and on hal-pmem a raw view the program
// kept reads length 0 (on hal-sim the region is shared: a raw view cannot
// be taken back, see docs/SECURITY.md); a thread that never enters the
// kernel is killed.
import assert from "node:assert/strict";
import {
  CapFlag,
  encodeGrant,
  ErrorCode,
  type Gate,
  generateKeyPair,
  type KeyIds,
  type ObjID,
  SecProt,
  signCapability,
  type ThreadInfo,
  ThreadState,
  WHOLE_OBJECT,
} from "@twz/kernel/abi";
import { Kernel as Kernel } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { KILLED_EXIT_CODE, ThreadManager } from "@twz/kernel/threads";
import { ADMIN } from "../_security.ts";
import {
  bundle,
  installCode,
  PMEM_IGNORE,
  PMEM_SKIP,
  program,
  until,
  withPmem,
} from "./_test_programs.ts";

const MiB = 1 << 20;

/** Program helpers: `code(f)` is 0 when `f` succeeds, else the error's code (or name). */
const HELPERS = `
  const code = (f) => { try { f(); return 0; } catch (e) { return e.code ?? e.name; } };
  const say = (tag, v) => port.consoleWrite(tag + " " + JSON.stringify(v) + "\\n");
`;

const P = await bundle({
  // Maps args[0] read-only and read-write, writes and reads it through the port.
  probe: program(`${HELPERS}
    const id = BigInt(args[0]);
    let m;
    const r = { contexts: port.contexts().map(String) };
    r.mapR = code(() => { m = port.map(id, abi.Prot.Read); });
    r.first = m ? m.bytes[0] : -1;
    r.writable = m ? m.writable : null;
    r.mapRW = code(() => port.map(id, abi.Prot.ReadWrite));
    r.write = code(() => port.write(id, 0, new Uint8Array([9])));
    r.read = code(() => port.read(id, 0, 1));
    // Two sleeps: the batch goes to the kernel (word 0 holds 42: "differs", 1).
    r.sync = code(() => port.threadSync([
      { op: "sleep", id, offset: 0, value: 0, timeoutMs: 0 },
      { op: "sleep", id, offset: 4, value: 1, timeoutMs: 0 },
    ]));
    say("probe", r);
    return 0;`),
  // Spawns args[0] (the probe, on args[1]) with contexts args[2..] (none: inherited).
  spawner: program(`${HELPERS}
    const ctxs = args.slice(2).map(BigInt);
    try {
      const t = port.spawn({ code: BigInt(args[0]), name: "child", args: [args[1]],
        contexts: ctxs.length > 0 ? ctxs : undefined });
      say("spawned", port.threadWait(t.tid, Infinity).exitCode);
    } catch (e) {
      say("spawned", e.code);
    }
    return 0;`),
  // Maps args[0] read-only, keeps a raw view, then naps (calls) until the
  // mapping goes empty; reports sizes, the epoch's move and a second map.
  holder: program(`${HELPERS}
    const id = BigInt(args[0]), nap = BigInt(args[1]);
    port.map(nap);
    const m = port.map(id, abi.Prot.Read);
    const raw = m.bytes;
    const e0 = Atomics.load(port.epoch, 0);
    say("mapped", { first: m.bytes[0], raw: raw.length });
    const end = Date.now() + 15000;
    while (m.size > 0 && Date.now() < end) {
      port.threadSync([{ op: "sleep", id: nap, offset: 0, value: 0, timeoutMs: 20 }]);
    }
    say("after", { size: m.size, raw: raw.length, epoch: Atomics.load(port.epoch, 0) - e0,
      again: code(() => port.map(id, abi.Prot.Read)) });
    return 0;`),
  // Refused a map first; waits until attached (by the kernel's session),
  // maps, then waits until the mapping is withdrawn (detach).
  attachee: program(`${HELPERS}
    const id = BigInt(args[0]), nap = BigInt(args[1]);
    port.map(nap);
    const sleep = () => port.threadSync([{ op: "sleep", id: nap, offset: 0, value: 0, timeoutMs: 20 }]);
    const r = { before: code(() => port.map(id, abi.Prot.Read)) };
    say("waiting", r.before);
    const end = Date.now() + 15000;
    while (port.contexts().length === 0 && Date.now() < end) sleep();
    let m;
    r.attached = code(() => { m = port.map(id, abi.Prot.Read); });
    say("attached", r.attached);
    while (m && m.size > 0 && Date.now() < end) sleep();
    r.size = m ? m.size : -1;
    r.after = code(() => port.map(id, abi.Prot.Read));
    r.contexts = port.contexts().length;
    say("done", r);
    return 0;`),
  // Attaches itself to args[0]; reports the outcome and its contexts.
  selfAttach: program(`${HELPERS}
    let r;
    try { await port.ctxAttach(BigInt(args[0])); r = 0; } catch (e) { r = e.code; }
    say("self", { r, contexts: port.contexts().map(String) });
    return 0;`),
  // Maps args[0] read-only and sleeps on its word 8 (in its Worker on
  // hal-sim) for up to 10 s; reports how the sleep ended.
  sleeper: program(`${HELPERS}
    const id = BigInt(args[0]);
    const m = port.map(id, abi.Prot.Read);
    say("mapped", { first: m.bytes[0], raw: m.bytes.length });
    const t0 = Date.now();
    const r = code(() => port.threadSync([{ op: "sleep", id, offset: 8, value: 0, timeoutMs: 10000 }]));
    say("woke", { r, size: m.size, quick: Date.now() - t0 < 5000 });
    return 0;`),
  // Manages a key, an object and its own context through its port (it runs in ctx).
  manage: program(`${HELPERS}
    const ctx = BigInt(args[0]);
    const r = {};
    const key = await port.keyCreate();
    r.scheme = port.keyInfo(key.kuid).scheme;
    const other = port.ctxCreate({ key: key.kuid });
    r.otherKey = port.ctxInfo(other).key === key.kuid;
    const obj = port.create({ size: 4096, prot: 0, keyId: key.kuid });
    r.before = code(() => port.map(obj, abi.Prot.Read));
    // The private half: PKCS#8 at the base of the private object (this thread's
    // first context got a read capability on it with the key).
    const head = port.read(key.privateId, 256, 4);
    const n = head[1] < 0x80 ? 2 + head[1] : head[1] === 0x81 ? 3 + head[2] : 4 + ((head[2] << 8) | head[3]);
    const secret = port.read(key.privateId, 256, n);
    const cap = await abi.signCapability({ target: obj, accessor: ctx, prot: abi.SecProt.Read,
      flags: abi.CapFlag.Sha256, expiry: 0n, gate: { ...abi.WHOLE_OBJECT } }, secret);
    const index = port.ctxAdd(ctx, abi.encodeGrant(cap));
    let m;
    r.granted = code(() => { m = port.map(obj, abi.Prot.Read); });
    r.access = (await port.access(obj)).prot;
    const e0 = Atomics.load(port.epoch, 0);
    port.ctxMask(ctx, obj, 0);
    port.threadYield();
    r.masked = { size: m.size, epoch: Atomics.load(port.epoch, 0) - e0,
      map: code(() => port.map(obj, abi.Prot.Read)) };
    port.ctxMask(ctx, obj, null);
    r.unmasked = code(() => port.map(obj, abi.Prot.Read));
    port.ctxRemove(ctx, index);
    r.removed = code(() => port.map(obj, abi.Prot.Read));
    await port.keyRotate(key.kuid);
    port.ctxDetach(ctx);
    r.contexts = port.contexts().length;
    r.others = code(() => port.ctxDetach(ctx, port.threadSelf().tid + 1000));
    say("manage", r);
    return 0;`),
  // Maps args[0], then spins for args[1] ms without a call; then calls.
  spinner: program(`
    const m = port.map(BigInt(args[0]), abi.Prot.Read);
    port.consoleWrite("mapped\\n");
    const end = Date.now() + Number(args[1]);
    let x = 0;
    while (Date.now() < end) x += m.bytes.length;
    port.threadYield();
    return x > 0 ? 0 : 1;`),
});

/** A kernel-side key whose private half the test holds (imported). */
async function makeKey(kernel: Kernel): Promise<KeyIds & { secret: Uint8Array }> {
  const pair = await generateKeyPair("ecdsa-p256");
  const ids = await kernel.security.keyCreate(ADMIN, {
    scheme: "ecdsa-p256",
    publicKey: pair.publicKey,
    privateKey: pair.privateKey,
  });
  return { ...ids, secret: pair.privateKey };
}

/** Sign a capability for `ctx` on `target` and add it to `ctx`; returns its index. */
async function grantTo(
  kernel: Kernel,
  secret: Uint8Array,
  target: ObjID,
  ctx: ObjID,
  prot: number,
  gate: Gate = WHOLE_OBJECT,
): Promise<number> {
  const cap = await signCapability({
    target,
    accessor: ctx,
    prot,
    flags: CapFlag.Sha256,
    expiry: 0n,
    gate: { ...gate },
  }, secret);
  return kernel.security.ctxAdd(ADMIN, ctx, encodeGrant(cap));
}

interface World {
  kernel: Kernel;
  manager: ThreadManager;
  out: string[];
  key: KeyIds & { secret: Uint8Array };
  /** A keyed object whose default protections are none (byte 0 is 42). */
  secret: ObjID;
  /** A context holding a read capability on `secret` (grant `index`). */
  ctx: ObjID;
  index: number;
  /** A volatile object to nap on. */
  nap: ObjID;
}

async function world(kernel: Kernel, revokeGraceMs = 2000): Promise<World> {
  const out: string[] = [];
  const manager = new ThreadManager(kernel, {
    console: (t) => out.push(t),
    revokeGraceMs,
    killGraceMs: 5000,
  });
  const key = await makeKey(kernel);
  // Nobody may write it (the admin neither): its first byte comes from a source.
  const scratch = kernel.create({ size: 64, lifetime: "volatile" });
  kernel.write(scratch, 0, new Uint8Array([42]));
  const secret = kernel.create({
    size: 4096,
    prot: 0,
    keyId: key.kuid,
    sources: [{ id: scratch, srcOffset: 0, dstOffset: 0, length: 1 }],
  });
  kernel.delete(scratch);
  const ctx = kernel.security.ctxCreate(ADMIN);
  const index = await grantTo(kernel, key.secret, secret, ctx, SecProt.Read);
  const nap = kernel.create({ size: 64, lifetime: "volatile" });
  return { kernel, manager, out, key, secret, ctx, index, nap };
}

/** The JSON a thread said after `tag` (waits for it). */
async function said(out: string[], tag: string): Promise<Record<string, unknown>> {
  let line: string | undefined;
  await until(() => (line = out.find((l) => l.startsWith(tag + " "))) !== undefined, tag);
  return JSON.parse(line!.slice(tag.length + 1));
}

async function ended(manager: ThreadManager, t: ThreadInfo): Promise<ThreadInfo> {
  const end = await manager.wait(t.tid);
  assert.equal(end.exitCode, 0, `thread ${t.name} ended ${JSON.stringify(end.fault)}`);
  return end;
}

async function onSim(fn: (kernel: Kernel) => Promise<void>): Promise<void> {
  const kernel = Kernel.boot(openSim({ size: 16 * MiB }));
  try {
    await fn(kernel);
  } finally {
    kernel.shutdown();
  }
}

async function mapsFollowContexts(kernel: Kernel): Promise<void> {
  const w = await world(kernel);
  try {
    const probe = installCode(kernel, P.probe);
    // No context: the defaults (none) apply.
    await ended(
      w.manager,
      w.manager.spawn({ code: probe, name: "bare", args: [String(w.secret)] }),
    );
    const bare = await said(w.out, "probe");
    assert.deepEqual(bare, {
      contexts: [],
      mapR: ErrorCode.AccessDenied,
      first: -1,
      writable: null,
      mapRW: ErrorCode.AccessDenied,
      write: ErrorCode.AccessDenied,
      read: ErrorCode.AccessDenied,
      sync: ErrorCode.AccessDenied,
    });
    w.out.length = 0;
    // In a context with a read capability: read-only.
    const t = w.manager.spawn({
      code: probe,
      name: "reader",
      args: [String(w.secret)],
      contexts: [w.ctx],
    });
    await ended(w.manager, t);
    assert.deepEqual(await said(w.out, "probe"), {
      contexts: [String(w.ctx)],
      mapR: 0,
      first: 42,
      writable: false,
      mapRW: ErrorCode.AccessDenied,
      write: ErrorCode.AccessDenied,
      read: 0,
      sync: 0,
    });
    assert.equal(kernel.port().read(w.secret, 0, 1)[0], 42, "nothing written");
  } finally {
    await w.manager.shutdown(500);
  }
}

Deno.test("thread security: no context → a default-none object cannot be mapped; a read capability → read-only (hal-sim)", () =>
  onSim(mapsFollowContexts));

Deno.test({
  name: `thread security: the same on hal-pmem${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () => withPmem((kernel) => mapsFollowContexts(kernel)),
});

Deno.test("thread security: spawn with contexts — inherited, given when the spawner may attach, refused when not", () =>
  onSim(async (kernel) => {
    const w = await world(kernel);
    try {
      const probe = installCode(kernel, P.probe), spawner = installCode(kernel, P.spawner);
      const sid = String(w.secret), ctx = String(w.ctx);
      // A spawner without contexts may not start a child in ctx.
      await ended(
        w.manager,
        w.manager.spawn({ code: spawner, name: "s1", args: [String(probe), sid, ctx] }),
      );
      assert.equal(await said(w.out, "spawned"), ErrorCode.AccessDenied);
      assert.equal(w.out.some((l) => l.startsWith("probe ")), false, "no child ran");
      w.out.length = 0;
      // A spawner in ctx: its child inherits ctx (no contexts named) …
      await ended(
        w.manager,
        w.manager.spawn({
          code: spawner,
          name: "s2",
          args: [String(probe), sid],
          contexts: [w.ctx],
        }),
      );
      assert.equal(await said(w.out, "spawned"), 0);
      assert.deepEqual((await said(w.out, "probe")).contexts, [ctx]);
      assert.equal((await said(w.out, "probe")).mapR, 0);
      w.out.length = 0;
      // … or gets it named (it may attach: it is attached itself).
      await ended(
        w.manager,
        w.manager.spawn({
          code: spawner,
          name: "s3",
          args: [String(probe), sid, ctx],
          contexts: [w.ctx],
        }),
      );
      assert.equal(await said(w.out, "spawned"), 0);
      assert.equal((await said(w.out, "probe")).mapR, 0);
      // Not a context: refused at spawn.
      assert.throws(
        () => w.manager.spawn({ code: probe, name: "x", args: [sid], contexts: [w.secret] }),
        (e: unknown) => (e as { code?: number }).code === ErrorCode.InvalidArgument,
      );
    } finally {
      await w.manager.shutdown(500);
    }
  }));

Deno.test("thread security: a thread attaches itself only with use on the context", () =>
  onSim(async (kernel) => {
    const w = await world(kernel);
    try {
      const selfAttach = installCode(kernel, P.selfAttach);
      // ctxB speaks with key K: a capability with USE on ctxB for ctx admits ctx's threads.
      const ctxB = kernel.security.ctxCreate(ADMIN, { key: w.key.kuid });
      await ended(
        w.manager,
        w.manager.spawn({ code: selfAttach, name: "a1", args: [String(ctxB)] }),
      );
      assert.deepEqual(await said(w.out, "self"), { r: ErrorCode.AccessDenied, contexts: [] });
      w.out.length = 0;
      await grantTo(kernel, w.key.secret, ctxB, w.ctx, SecProt.Use);
      await ended(
        w.manager,
        w.manager.spawn({ code: selfAttach, name: "a2", args: [String(ctxB)], contexts: [w.ctx] }),
      );
      assert.deepEqual(await said(w.out, "self"), {
        r: 0,
        contexts: [String(w.ctx), String(ctxB)],
      });
    } finally {
      await w.manager.shutdown(500);
    }
  }));

Deno.test("thread security: the kernel's session attaches a thread, and a detach withdraws its mapping", () =>
  onSim(async (kernel) => {
    const w = await world(kernel);
    try {
      const t = w.manager.spawn({
        code: installCode(kernel, P.attachee),
        name: "attachee",
        args: [String(w.secret), String(w.nap)],
      });
      assert.equal(await said(w.out, "waiting"), ErrorCode.AccessDenied);
      w.manager.attach(t.tid, w.ctx);
      assert.deepEqual(w.manager.contexts(t.tid), [w.ctx]);
      assert.equal(await said(w.out, "attached"), 0);
      w.manager.detach(t.tid, w.ctx);
      assert.deepEqual(w.manager.contexts(t.tid), []);
      await ended(w.manager, t);
      assert.deepEqual(await said(w.out, "done"), {
        before: ErrorCode.AccessDenied,
        attached: 0,
        size: 0,
        after: ErrorCode.AccessDenied,
        contexts: 0,
      });
      assert.throws(() => w.manager.detach(t.tid, w.ctx), /not attached/);
    } finally {
      await w.manager.shutdown(500);
    }
  }));

/** A holder maps `secret`; `narrow` takes its access away; what it saw. */
async function revoked(
  kernel: Kernel,
  narrow: (w: World) => Promise<void> | void,
): Promise<Record<string, unknown>> {
  const w = await world(kernel);
  try {
    const t = w.manager.spawn({
      code: installCode(kernel, P.holder),
      name: "holder",
      args: [String(w.secret), String(w.nap)],
      contexts: [w.ctx],
    });
    assert.deepEqual(await said(w.out, "mapped"), { first: 42, raw: 4096 });
    await narrow(w);
    await ended(w.manager, t);
    assert.equal(w.manager.info(t.tid).state, ThreadState.Exited);
    return await said(w.out, "after");
  } finally {
    await w.manager.shutdown(500);
  }
}

const removeGrant = (w: World) => w.kernel.security.ctxRemove(ADMIN, w.ctx, w.index);
const rotateKey = (w: World) => w.kernel.security.keyRotate(ADMIN, w.key.kuid);

Deno.test("thread security: a grant removed withdraws the live mapping (view empty, epoch +1; hal-sim: a raw view stays)", () =>
  onSim(async (k) => {
    assert.deepEqual(await revoked(k, removeGrant), {
      size: 0,
      raw: 4096, // hal-sim shares its region: a raw view cannot be taken back
      epoch: 1,
      again: ErrorCode.AccessDenied,
    });
  }));

Deno.test("thread security: a key rotated withdraws the live mapping (hal-sim)", () =>
  onSim(async (k) => {
    assert.deepEqual(await revoked(k, rotateKey), {
      size: 0,
      raw: 4096,
      epoch: 1,
      again: ErrorCode.AccessDenied,
    });
  }));

Deno.test("thread security: a grant that expires withdraws the live mapping when it expires", () =>
  onSim(async (k) => {
    const t0 = Date.now();
    let expires = 0;
    // The holder maps under a grant that expires 600 ms from now (the
    // permanent one is removed: the mapping stays, resting on the new one).
    assert.deepEqual(
      await revoked(k, async (w) => {
        expires = Date.now() + 600;
        const cap = await signCapability({
          target: w.secret,
          accessor: w.ctx,
          prot: SecProt.Read,
          flags: CapFlag.Sha256,
          expiry: BigInt(expires) * 1_000_000n,
          gate: { ...WHOLE_OBJECT },
        }, w.key.secret);
        w.kernel.security.ctxAdd(ADMIN, w.ctx, encodeGrant(cap));
        // Settle the new grant's verdict before the old one goes.
        await w.kernel.security.allowed({ admin: false, tid: 0, contexts: [w.ctx] }, w.secret);
        w.kernel.security.ctxRemove(ADMIN, w.ctx, w.index);
      }),
      { size: 0, raw: 4096, epoch: 1, again: ErrorCode.AccessDenied },
    );
    assert.ok(Date.now() >= expires && expires > t0, "withdrawn only once it expired");
  }));

Deno.test({
  name:
    `thread security: hal-pmem — a grant removed or a key rotated: the raw view the program kept reads length 0${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: () =>
    withPmem(async (k) => {
      for (const narrow of [removeGrant, rotateKey]) {
        assert.deepEqual(await revoked(k, narrow), {
          size: 0,
          raw: 0,
          epoch: 1,
          again: ErrorCode.AccessDenied,
        });
      }
    }),
});

Deno.test("thread security: a thread asleep on the object whose grant is removed wakes at once and hears it", () =>
  onSim(async (kernel) => {
    const w = await world(kernel);
    try {
      const t = w.manager.spawn({
        code: installCode(kernel, P.sleeper),
        name: "sleeper",
        args: [String(w.secret)],
        contexts: [w.ctx],
      });
      assert.deepEqual(await said(w.out, "mapped"), { first: 42, raw: 4096 });
      await until(() => w.manager.info(t.tid).state === ThreadState.Sleeping, "the sleep");
      kernel.security.ctxRemove(ADMIN, w.ctx, w.index);
      await ended(w.manager, t);
      assert.deepEqual(await said(w.out, "woke"), {
        r: ErrorCode.ObjectNotFound,
        size: 0,
        quick: true,
      });
    } finally {
      await w.manager.shutdown(500);
    }
  }));

Deno.test("thread security: a thread manages keys, grants, masks and its contexts through its port", () =>
  onSim(async (kernel) => {
    const w = await world(kernel);
    try {
      const t = w.manager.spawn({
        code: installCode(kernel, P.manage),
        name: "manage",
        args: [String(w.ctx)],
        contexts: [w.ctx],
      });
      await ended(w.manager, t);
      assert.deepEqual(await said(w.out, "manage"), {
        scheme: "ecdsa-p256",
        otherKey: true,
        before: ErrorCode.AccessDenied,
        granted: 0,
        access: SecProt.Read,
        masked: { size: 0, epoch: 1, map: ErrorCode.AccessDenied },
        unmasked: 0,
        removed: ErrorCode.AccessDenied,
        contexts: 0,
        others: ErrorCode.AccessDenied,
      });
    } finally {
      await w.manager.shutdown(500);
    }
  }));

Deno.test("thread security: a thread that does not enter the kernel to give up a revoked mapping is killed", () =>
  onSim(async (kernel) => {
    const w = await world(kernel, 100);
    try {
      const t = w.manager.spawn({
        code: installCode(kernel, P.spinner),
        name: "spinner",
        args: [String(w.secret), "1500"],
        contexts: [w.ctx],
      });
      await until(() => w.out.includes("mapped\n"), "the spinner's map");
      kernel.security.ctxRemove(ADMIN, w.ctx, w.index);
      await until(
        () => w.manager.info(t.tid).killing || w.manager.info(t.tid).ended > 0,
        "the kill",
      );
      const end = await w.manager.wait(t.tid);
      assert.equal(end.exitCode, KILLED_EXIT_CODE);
      assert.equal(end.fault?.kind, "killed");
      assert.match(end.fault!.message, /did not give up a revoked mapping/);
    } finally {
      await w.manager.shutdown(500);
    }
  }));

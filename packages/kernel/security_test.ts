// The kernel's security core (_security.ts): keyed IDs, key and context
// objects, effective protections through a thread principal's LocalPort,
// every bad grant, delegation, masks, revocation, caches, reboot and crash.
import assert from "node:assert/strict";
import {
  type CapFields,
  CapFlag,
  type Delegation,
  deriveObjectId,
  encodeGrant,
  ErrorCode,
  type Grant,
  type ObjID,
  Prot,
  SecProt,
  signCapability,
  signDelegation,
  TwzError,
  WHOLE_OBJECT,
} from "./abi/mod.ts";
import { Kernel } from "./kernel.ts";
import { LocalPort } from "./_port.ts";
import { CTX_OBJECT_SIZE, type Principal } from "./_security.ts";
import { openSim, type SimHal } from "@twz/hal-sim";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { join } from "node:path";
import type { Hal } from "./hal/mod.ts";

const MiB = 1 << 20;
const code = (c: ErrorCode) => (e: unknown) => e instanceof TwzError && e.code === c;

/** A thread principal over `contexts`. */
function thread(contexts: ObjID[], tid = 1): Principal & { admin: false } {
  return { admin: false, tid, contexts };
}

/** The private key bytes of `kuid` (the admin may read every private object). */
function privateKeyOf(kernel: Kernel, kuid: ObjID): Uint8Array {
  const info = kernel.security.keyInfo(kuid);
  const bytes = kernel.port().read(info.privateId, 0, kernel.stat(info.privateId).size);
  return bytes.slice(256);
}

interface World {
  kernel: Kernel;
  kuid: ObjID;
  priv: Uint8Array;
  /** An object with key `kuid`, default prot none, holding "secret" at 0. */
  obj: ObjID;
  ctx: ObjID;
  who: Principal & { admin: false };
  port: LocalPort;
}

async function world(
  kernel: Kernel,
  scheme: "ecdsa-p256" | "ed25519" = "ecdsa-p256",
): Promise<World> {
  const admin = kernel.port();
  const { kuid } = await admin.keyCreate({ scheme });
  const priv = privateKeyOf(kernel, kuid);
  const obj = admin.create({ size: 4096, keyId: kuid, prot: 0 });
  kernel.kernelWrite(obj, 0, new TextEncoder().encode("secret"));
  const ctx = admin.ctxCreate();
  const who = thread([ctx]);
  return { kernel, kuid, priv, obj, ctx, who, port: new LocalPort(kernel, who) };
}

function fields(w: World, over: Partial<CapFields> = {}): CapFields {
  return {
    target: w.obj,
    accessor: w.ctx,
    prot: SecProt.Read,
    flags: CapFlag.Sha256,
    expiry: 0n,
    gate: { ...WHOLE_OBJECT },
    ...over,
  };
}

/** Add `g` as the admin; returns its index. */
function add(w: World, g: Grant, ctx = w.ctx): number {
  return w.kernel.port().ctxAdd(ctx, encodeGrant(g));
}

async function allowed(w: World, who: Principal = w.who, id = w.obj): Promise<number> {
  return await w.kernel.security.allowed(who, id);
}

function bootSim(): { hal: SimHal; kernel: Kernel } {
  const hal = openSim({ size: 16 * MiB });
  return { hal, kernel: Kernel.boot(hal) };
}

const pmem = (await import("@twz/hal-pmem")).plugin;
const pmemInfo = pmem.describe();
const tmpDir = scratchDirs("twz-security-");

/** Run `fn` on hal-sim and on hal-pmem (a fresh image each). */
function onBothHals(name: string, fn: (kernel: Kernel, hal: Hal) => Promise<void>): void {
  Deno.test(`${name} (hal-sim)`, async () => {
    const { hal, kernel } = bootSim();
    try {
      await fn(kernel, hal);
    } finally {
      if (!kernel.isShutdown) kernel.shutdown();
      hal.close();
    }
  });
  Deno.test({
    name: `${name} (hal-pmem)${pmemInfo.available ? "" : ` (skipped: ${pmemInfo.reason})`}`,
    ignore: !pmemInfo.available && Deno.env.get("CI") !== "true",
    fn: async () => {
      const hal = await pmem.open({
        image: join(tmpDir(), "sec.img"),
        size: 16 * MiB,
        create: true,
      });
      const kernel = Kernel.boot(hal);
      try {
        await fn(kernel, hal);
      } finally {
        if (!kernel.isShutdown) kernel.shutdown();
        hal.close();
      }
    },
  });
}

onBothHals("keyed objects get IDs derived from nonce, key and protections", async (kernel) => {
  const port = kernel.port();
  const { kuid, privateId } = await port.keyCreate();
  assert.ok(kernel.security.isKeyObject(kuid));
  assert.equal(kernel.stat(privateId).keyId, kuid);
  assert.equal(kernel.stat(privateId).prot, 0);
  const nonce = 0x1234_5678_9abc_def0_1122_3344_5566_7788n;
  const id = port.create({ size: 4096, keyId: kuid, nonce, prot: Prot.Read });
  assert.equal(id, deriveObjectId(nonce, kuid, 0, Prot.Read));
  assert.equal(kernel.stat(id).keyId, kuid);
  // The same nonce again names an existing object.
  assert.throws(
    () => port.create({ size: 4096, keyId: kuid, nonce, prot: Prot.Read }),
    (e: unknown) => code(ErrorCode.InvalidArgument)(e) && /existing object/.test(String(e)),
  );
  // A random nonce still derives (verifiably for some nonce: at least not random-shaped).
  const other = port.create({ size: 4096, keyId: kuid });
  assert.equal(kernel.stat(other).keyId, kuid);
  // keyId must name a key object.
  const plain = port.create({ size: 4096 });
  assert.throws(() => port.create({ keyId: plain }), code(ErrorCode.InvalidArgument));
  assert.equal(kernel.security.isKernelObject(plain), false);
  assert.equal(kernel.security.isKernelObject(kuid), true);
  assert.equal(kernel.security.isKernelObject(privateId), true);
});

onBothHals(
  "default-none object: unreadable without a grant; a read grant reads, never writes",
  async (kernel) => {
    const w = await world(kernel);
    assert.equal(await allowed(w), 0);
    assert.throws(() => w.port.read(w.obj, 0, 6), code(ErrorCode.AccessDenied));
    assert.throws(() => w.port.map(w.obj, Prot.Read), code(ErrorCode.AccessDenied));
    add(w, await signCapability(fields(w), w.priv));
    assert.equal(await allowed(w), SecProt.Read);
    assert.equal(new TextDecoder().decode(w.port.read(w.obj, 0, 6)), "secret");
    const m = w.port.map(w.obj, Prot.Read);
    assert.equal(m.bytes[0], "s".charCodeAt(0));
    w.port.unmap(m);
    assert.throws(() => w.port.write(w.obj, 0, new Uint8Array(1)), code(ErrorCode.AccessDenied));
    assert.throws(() => w.port.map(w.obj, Prot.ReadWrite), code(ErrorCode.AccessDenied));
    assert.throws(() => w.port.delete(w.obj), code(ErrorCode.AccessDenied));
    // A thread with no contexts: the defaults only.
    assert.equal(await allowed(w, thread([])), 0);
    // The admin reads and deletes anything, writes per defaults.
    assert.equal(await allowed(w, { admin: true }), SecProt.Read | SecProt.Delete);
    // Create from a source needs Read on it.
    const none = thread([]);
    assert.throws(
      () =>
        new LocalPort(kernel, none).create({
          size: 4096,
          sources: [{ id: w.obj, srcOffset: 0, dstOffset: 0, length: 6 }],
        }),
      code(ErrorCode.AccessDenied),
    );
    const copy = w.port.create({
      size: 4096,
      sources: [{ id: w.obj, srcOffset: 0, dstOffset: 0, length: 6 }],
    });
    assert.equal(new TextDecoder().decode(kernel.read(copy, 0, 6)), "secret");
  },
);

Deno.test("a synchronous call before verification throws Busy; the second allowed() is a number", async () => {
  const { hal, kernel } = bootSim();
  const w = await world(kernel);
  add(w, await signCapability(fields(w, { prot: SecProt.Read | SecProt.Write }), w.priv));
  assert.throws(() => w.port.read(w.obj, 0, 1), code(ErrorCode.Busy));
  const first = kernel.security.allowed(w.who, w.obj);
  assert.ok(first instanceof Promise);
  assert.equal(await first, SecProt.Read | SecProt.Write);
  assert.equal(kernel.security.allowed(w.who, w.obj), SecProt.Read | SecProt.Write);
  w.port.write(w.obj, 0, new Uint8Array([65]));
  assert.equal(kernel.port().read(w.obj, 0, 1)[0], 65);
  kernel.shutdown();
  hal.close();
});

Deno.test("every bad grant grants nothing (and the report says why)", async () => {
  const { hal, kernel } = bootSim();
  const w = await world(kernel);
  const admin = kernel.port();
  const { kuid: otherKey } = await admin.keyCreate();
  const otherPriv = privateKeyOf(kernel, otherKey);
  const otherObj = admin.create({ size: 4096, keyId: w.kuid, prot: 0 });
  const otherCtx = admin.ctxCreate();
  const now = BigInt(Date.now()) * 1_000_000n;
  const sign = (c: ObjID, over: Partial<CapFields> = {}, key = w.priv) =>
    signCapability(fields(w, { accessor: c, ...over }), key);
  const bad: [string, (c: ObjID) => Promise<Grant>, RegExp][] = [
    ["expired", (c) => sign(c, { expiry: now - 1_000_000_000n }), /expired 20/],
    ["forged signature", async (c) => {
      const g = await sign(c);
      const s = g.signature.slice();
      s[10]! ^= 1;
      return { ...g, signature: s };
    }, /does not verify/],
    [
      "tampered field",
      async (c) => ({ ...(await sign(c)), prot: SecProt.Read | SecProt.Write }),
      /does not verify/,
    ],
    ["wrong key", (c) => sign(c, {}, otherPriv), /does not verify/],
    [
      "wrong target",
      async (c) => ({ ...(await sign(c, { target: otherObj })), target: w.obj }),
      /does not verify/,
    ],
    ["wrong accessor", () => sign(otherCtx), /another context/],
    [
      "gate not whole",
      (c) => sign(c, { gate: { offset: 0n, length: 64n, align: 1n } }),
      /not the whole object/,
    ],
    // signCapability refuses Blake3 and a missing Sha256: change the flags after signing.
    [
      "Blake3 flag",
      async (c) => ({ ...(await sign(c)), flags: CapFlag.Sha256 | CapFlag.Blake3 }),
      /Blake3/,
    ],
    ["no SHA-256 flag", async (c) => ({ ...(await sign(c)), flags: 0 }), /SHA-256/],
  ];
  for (const [what, make, why] of bad) {
    const c = admin.ctxCreate();
    const index = add(w, await make(c), c);
    assert.equal(await allowed(w, thread([c])), 0, what);
    const report = await admin.access(w.obj, [c]);
    const line = report.reasons.find((r) => r.index === index);
    assert.ok(line && line.prot === 0 && why.test(line.why), `${what}: ${line?.why}`);
  }
  // A grant for another object does not count for this one.
  const c = admin.ctxCreate();
  add(w, await sign(c, { target: otherObj }), c);
  assert.equal(await allowed(w, thread([c])), 0);
  assert.equal(await allowed(w, thread([c]), otherObj), SecProt.Read);
  // The good one grants (so the checks above can fail).
  const good = admin.ctxCreate();
  add(w, await sign(good), good);
  assert.equal(await allowed(w, thread([good])), SecProt.Read);
  assert.match(
    (await admin.access(w.obj, [good])).reasons.map((r) => r.why).join(),
    /grant 0: gives r----/,
  );
  kernel.shutdown();
  hal.close();
});

Deno.test("delegation narrows, never widens; needs Delegate; verifies to the target's key", async () => {
  const { hal, kernel } = bootSim();
  const w = await world(kernel);
  const admin = kernel.port();
  // The provider context has a key that speaks for it.
  const { kuid: provKey } = await admin.keyCreate();
  const provPriv = privateKeyOf(kernel, provKey);
  const provider = admin.ctxCreate({ key: provKey });
  const { kuid: strangerKey } = await admin.keyCreate();
  const strangerPriv = privateKeyOf(kernel, strangerKey);
  const now = BigInt(Date.now()) * 1_000_000n;
  const hour = 3_600_000_000_000n;
  const parent = await signCapability(
    fields(w, {
      accessor: provider,
      prot: SecProt.Read | SecProt.Write,
      flags: CapFlag.Sha256 | CapFlag.Delegate,
      expiry: now + hour,
    }),
    w.priv,
  );
  const plainParent = await signCapability(
    fields(w, { accessor: provider, prot: SecProt.Read | SecProt.Write }),
    w.priv,
  );
  const forgedParent = await signCapability(
    fields(w, { accessor: provider, prot: SecProt.Read, flags: CapFlag.Sha256 | CapFlag.Delegate }),
    strangerPriv,
  );
  type Make = (c: ObjID) => Promise<Delegation>;
  const del =
    (over: Partial<CapFields>, p: Grant = parent, key = provPriv, prov = provider): Make => (c) =>
      signDelegation(fields(w, { accessor: c, expiry: now + hour / 2n, ...over }), prov, p, key);
  const cases: [string, Make, number][] = [
    ["narrower read", del({ prot: SecProt.Read }), SecProt.Read],
    ["same rights", del({ prot: SecProt.Read | SecProt.Write }), SecProt.Read | SecProt.Write],
    ["widening prot", del({ prot: SecProt.Read | SecProt.Exec }), 0],
    ["extending expiry", del({ expiry: now + 2n * hour }), 0],
    ["no expiry under an expiring parent", del({ expiry: 0n }), 0],
    ["parent without Delegate", del({}, plainParent), 0],
    ["signed by a key not the provider's", del({}, parent, strangerPriv), 0],
    ["a provider that does not hold the parent", del({}, parent, provPriv, w.ctx), 0],
    ["a root not signed by the target's key", del({ prot: SecProt.Read }, forgedParent), 0],
  ];
  for (const [what, make, expect] of cases) {
    const c = admin.ctxCreate();
    add(w, await make(c), c);
    assert.equal(await allowed(w, thread([c])), expect, what);
  }
  // Two levels: a delegation of a delegation (the middle one must allow delegating).
  const mid = admin.ctxCreate({ key: strangerKey });
  const d1 = await signDelegation(
    fields(w, {
      accessor: mid,
      prot: SecProt.Read,
      flags: CapFlag.Sha256 | CapFlag.Delegate,
      expiry: now + hour / 2n,
    }),
    provider,
    parent,
    provPriv,
  );
  const leafCtx = admin.ctxCreate();
  add(
    w,
    await signDelegation(
      fields(w, { accessor: leafCtx, expiry: now + hour / 4n }),
      mid,
      d1,
      strangerPriv,
    ),
    leafCtx,
  );
  assert.equal(await allowed(w, thread([leafCtx])), SecProt.Read);
  // Gates: a widening gate grants nothing; a narrower gate admits its entry points only.
  const gated = await signCapability(
    fields(w, {
      accessor: provider,
      prot: SecProt.Read | SecProt.Exec,
      flags: CapFlag.Sha256 | CapFlag.Delegate,
      gate: { offset: 0n, length: 256n, align: 16n },
    }),
    w.priv,
  );
  const c1 = admin.ctxCreate();
  add(
    w,
    await signDelegation(
      fields(w, {
        accessor: c1,
        prot: SecProt.Exec,
        gate: { offset: 0n, length: 512n, align: 16n },
      }),
      provider,
      gated,
      provPriv,
    ),
    c1,
  );
  assert.equal(await kernel.security.gateAllowed(thread([c1]), w.obj, 32), false, "widened gate");
  const c2 = admin.ctxCreate();
  add(
    w,
    await signDelegation(
      fields(w, {
        accessor: c2,
        prot: SecProt.Exec,
        gate: { offset: 64n, length: 64n, align: 32n },
      }),
      provider,
      gated,
      provPriv,
    ),
    c2,
  );
  assert.equal(await kernel.security.gateAllowed(thread([c2]), w.obj, 64), true);
  assert.equal(await kernel.security.gateAllowed(thread([c2]), w.obj, 96), true);
  assert.equal(await kernel.security.gateAllowed(thread([c2]), w.obj, 80), false, "unaligned");
  assert.equal(await kernel.security.gateAllowed(thread([c2]), w.obj, 128), false, "past the gate");
  assert.equal(await kernel.security.gateAllowed(thread([c2]), w.obj, 0), false, "before the gate");
  assert.equal(await allowed(w, thread([c2])), 0, "a gate grant does not map");
  kernel.shutdown();
  hal.close();
});

Deno.test("masks limit; removal, key rotation and mask changes take effect at the next allowed()", async () => {
  const { hal, kernel } = bootSim();
  const w = await world(kernel);
  const admin = kernel.port();
  const narrowed: unknown[] = [];
  kernel.security.onNarrow = (c) => narrowed.push(c);
  const i = add(w, await signCapability(fields(w, { prot: SecProt.Read | SecProt.Write }), w.priv));
  assert.equal(await allowed(w), SecProt.Read | SecProt.Write);
  admin.ctxMask(w.ctx, w.obj, SecProt.Read);
  assert.equal(await allowed(w), SecProt.Read);
  assert.match(
    (await admin.access(w.obj, [w.ctx])).reasons.map((r) => r.why).join("\n"),
    /mask: limits to r----/,
  );
  admin.ctxMask(w.ctx, w.obj, null);
  admin.ctxMask(w.ctx, 0n, SecProt.Write);
  assert.equal(await allowed(w), SecProt.Write);
  admin.ctxMask(w.ctx, 0n, null);
  assert.equal(await allowed(w), SecProt.Read | SecProt.Write);
  assert.equal(narrowed.length, 4);
  // Removal.
  admin.ctxRemove(w.ctx, i);
  assert.equal(kernel.security.allowed(w.who, w.obj), 0);
  assert.throws(() => admin.ctxRemove(w.ctx, i), code(ErrorCode.InvalidArgument));
  // Rotation: the old signature stops granting.
  add(w, await signCapability(fields(w), w.priv));
  assert.equal(await allowed(w), SecProt.Read);
  const gen = admin.keyInfo(w.kuid).generation;
  await admin.keyRotate(w.kuid);
  assert.equal(admin.keyInfo(w.kuid).generation, gen + 1);
  assert.equal(await allowed(w), 0);
  const newPriv = privateKeyOf(kernel, w.kuid);
  add(w, await signCapability(fields(w), newPriv));
  assert.equal(await allowed(w), SecProt.Read);
  // A thread without rights cannot add to, remove from or mask a context it is not attached to.
  const stranger = new LocalPort(kernel, thread([admin.ctxCreate()], 2));
  assert.throws(() => stranger.ctxMask(w.ctx, w.obj, 0), code(ErrorCode.AccessDenied));
  assert.throws(() => stranger.ctxRemove(w.ctx, 0), code(ErrorCode.AccessDenied));
  await assert.rejects(() => stranger.keyRotate(w.kuid), code(ErrorCode.AccessDenied));
  // Key and context objects are never writable, not even by the admin.
  assert.throws(() => admin.map(w.ctx, Prot.ReadWrite), code(ErrorCode.AccessDenied));
  assert.throws(() => admin.write(w.kuid, 0, new Uint8Array(1)), code(ErrorCode.AccessDenied));
  kernel.shutdown();
  hal.close();
});

Deno.test("keyCreate by a thread: its first context may read the private object, and so manage the key", async () => {
  const { hal, kernel } = bootSim();
  const admin = kernel.port();
  const ctx = admin.ctxCreate();
  const who = thread([ctx]);
  const port = new LocalPort(kernel, who);
  const { kuid, privateId } = await port.keyCreate({ scheme: "ed25519" });
  // Rights resting on a grant not verified yet: Busy, until settleRights.
  const early = await signCapability({
    target: privateId,
    accessor: ctx,
    prot: SecProt.Read,
    flags: CapFlag.Sha256 | CapFlag.Ed25519,
    expiry: 0n,
    gate: { ...WHOLE_OBJECT },
  }, privateKeyOf(kernel, kuid));
  const elsewhere = admin.ctxCreate();
  assert.throws(() => port.ctxAdd(elsewhere, encodeGrant(early)), code(ErrorCode.Busy));
  await kernel.security.settleRights(who, "ctxAdd", elsewhere, encodeGrant(early));
  assert.equal(typeof port.ctxAdd(elsewhere, encodeGrant(early)), "number");
  assert.equal(await kernel.security.allowed(who, privateId), SecProt.Read);
  assert.equal(await kernel.security.allowed(thread([]), privateId), 0);
  const pkcs8 = port.read(privateId, 256, kernel.stat(privateId).size - 256);
  const obj = port.create({ size: 4096, keyId: kuid, prot: 0 });
  const other = admin.ctxCreate();
  // Not attached to `other`, but its key: may add a grant signed by it.
  const cap = await signCapability({
    target: obj,
    accessor: other,
    prot: SecProt.Read,
    flags: CapFlag.Sha256 | CapFlag.Ed25519,
    expiry: 0n,
    gate: { ...WHOLE_OBJECT },
  }, pkcs8);
  const i = port.ctxAdd(other, encodeGrant(cap));
  assert.equal(await kernel.security.allowed(thread([other]), obj), SecProt.Read);
  port.ctxRemove(other, i);
  assert.equal(await kernel.security.allowed(thread([other]), obj), 0);
  await port.keyRotate(kuid);
  const info = port.keyInfo(kuid);
  assert.notEqual(info.privateId, privateId);
  assert.equal(kernel.exists(privateId), false);
  assert.equal(await kernel.security.allowed(who, info.privateId), SecProt.Read);
  kernel.shutdown();
  hal.close();
});

Deno.test("the clock passing an expiry invalidates the cached protections", async () => {
  const { hal, kernel } = bootSim();
  const w = await world(kernel);
  const soon = BigInt(Date.now() + 200) * 1_000_000n;
  add(w, await signCapability(fields(w, { expiry: soon }), w.priv));
  assert.equal(await allowed(w), SecProt.Read);
  assert.equal(kernel.security.allowed(w.who, w.obj), SecProt.Read); // cached
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await allowed(w), 0);
  kernel.shutdown();
  hal.close();
});

Deno.test({
  name: `reboot keeps keys, contexts and grants, and verifies again (hal-pmem)${
    pmemInfo.available ? "" : ` (skipped: ${pmemInfo.reason})`
  }`,
  ignore: !pmemInfo.available && Deno.env.get("CI") !== "true",
  fn: async () => {
    const image = join(tmpDir(), "reboot.img");
    let hal = await pmem.open({ image, size: 16 * MiB, create: true });
    let kernel = Kernel.boot(hal);
    const w = await world(kernel);
    add(w, await signCapability(fields(w), w.priv));
    admin(kernel).ctxMask(w.ctx, 0n, SecProt.Read | SecProt.Use);
    assert.equal(await allowed(w), SecProt.Read);
    const info = kernel.security.keyInfo(w.kuid);
    kernel.shutdown();
    hal.close();
    hal = await pmem.open({ image });
    kernel = Kernel.boot(hal);
    try {
      assert.deepEqual(kernel.security.keyInfo(w.kuid), info);
      const c = kernel.security.ctxInfo(w.ctx);
      assert.equal(c.grants.length, 1);
      assert.equal(c.globalMask, SecProt.Read | SecProt.Use);
      const again = kernel.security.allowed(w.who, w.obj);
      assert.ok(again instanceof Promise, "verified again after reboot");
      assert.equal(await again, SecProt.Read);
    } finally {
      kernel.shutdown();
      hal.close();
    }
  },
});

function admin(kernel: Kernel): LocalPort {
  return kernel.port();
}

Deno.test("a power failure in the middle of ctxAdd/ctxRemove leaves a context that decodes", async () => {
  // Prepare once, then crash at each drain of one ctxAdd and of one ctxRemove.
  const grants: Uint8Array[] = [];
  const setup = async () => {
    const hal = openSim({ size: 16 * MiB });
    const kernel = Kernel.boot(hal);
    const w = await world(kernel);
    if (grants.length === 0) {
      grants.push(encodeGrant(await signCapability(fields(w), w.priv)));
    }
    return { hal, kernel, w };
  };
  for (const op of ["add", "remove"] as const) {
    let drains = 0;
    {
      const { hal, kernel, w } = await setup();
      // The grant was signed in another world: re-sign for this one.
      const g = encodeGrant(await signCapability(fields(w), w.priv));
      if (op === "remove") admin(kernel).ctxAdd(w.ctx, g);
      const before = hal.region.stats().drains;
      if (op === "add") admin(kernel).ctxAdd(w.ctx, g);
      else admin(kernel).ctxRemove(w.ctx, 0);
      drains = hal.region.stats().drains - before;
      kernel.shutdown();
      hal.close();
    }
    assert.ok(drains >= 2, `${op}: ${drains} drains`);
    for (let k = 1; k <= drains; k++) {
      const { hal, kernel, w } = await setup();
      const g = encodeGrant(await signCapability(fields(w), w.priv));
      if (op === "remove") admin(kernel).ctxAdd(w.ctx, g);
      hal.region.armCrash(hal.region.stats().drains + k, { policy: "random", seed: k });
      assert.throws(
        () => op === "add" ? admin(kernel).ctxAdd(w.ctx, g) : admin(kernel).ctxRemove(w.ctx, 0),
        (e: unknown) => (e as Error).name === "PowerFailed",
      );
      const again = Kernel.boot(hal);
      const info = again.security.ctxInfo(w.ctx);
      assert.ok(info.grants.length <= 1, `${op} +${k}`);
      // Every published slot (its bit set) holds a grant that decodes.
      const raw = again.objectBytes(w.ctx);
      const bits = new DataView(raw.buffer, raw.byteOffset).getUint32(256 + 32, true);
      for (let i = 0; i < 32; i++) {
        if (bits & (1 << i)) {
          assert.ok(
            info.grants.some((g) => g.index === i),
            `${op} +${k}: slot ${i} published, not decoded`,
          );
        }
      }
      if (k === drains) {
        assert.equal(info.grants.length, op === "add" ? 1 : 0, `${op}: all drains done`);
      }
      const p = await again.security.allowed(w.who, w.obj);
      assert.equal(p, info.grants.length === 1 ? SecProt.Read : 0, `${op} +${k}`);
      again.shutdown();
      hal.close();
    }
  }
});

Deno.test("a context object has the documented size", () => {
  assert.equal(CTX_OBJECT_SIZE % 1024, 0);
});

Deno.test("the admin's port: attach needs a thread, gates are refused, contexts() is empty", async () => {
  const { hal, kernel } = bootSim();
  const admin = kernel.port();
  const ctx = admin.ctxCreate();
  await assert.rejects(() => admin.ctxAttach(ctx), code(ErrorCode.InvalidArgument));
  await assert.rejects(() => admin.ctxAttach(ctx, 1), code(ErrorCode.NotSupported)); // no threads here
  assert.throws(() => admin.gateServe(ctx), /cannot serve or call gates/);
  assert.throws(() => admin.gateCall(ctx, 0, new Uint8Array()), code(ErrorCode.NotSupported));
  assert.deepEqual(admin.contexts(), []);
  assert.deepEqual(new LocalPort(kernel, thread([ctx])).contexts(), [ctx]);
  assert.throws(() => admin.ctxInfo(admin.create({ size: 4096 })), code(ErrorCode.InvalidArgument));
  assert.throws(() => admin.ctxAdd(ctx, new Uint8Array(10)), code(ErrorCode.InvalidArgument));
  kernel.shutdown();
  hal.close();
});

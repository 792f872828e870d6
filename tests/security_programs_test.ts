// Issue 14's must-shows through real programs: permissions-"none" Workers
// started by the kernel's thread manager in chosen security contexts
// (SpawnSpec.contexts, what `run --context` passes) try to map, read, write,
// delete and call objects on hal-pmem, where a thread holds views of exactly
// what it mapped (docs/SECURITY.md). The probe program
// (testdata/security/probe.ts) prints what each operation did; the grants
// are made here with keys whose private half the test holds. The demo of
// examples/secret_owner.ts and secret_reader.ts runs at the end.
import assert from "node:assert/strict";
import { bundleFile, installProgram } from "@twz/cli/run";
import {
  type Capability,
  type CapFields,
  CapFlag,
  encodeGrant,
  type ObjID,
  SecProt,
  signDelegation,
  signedMessage,
} from "@twz/kernel/abi";
import {
  add,
  allowed,
  BASE,
  type Board,
  denied,
  ended,
  fields,
  hex,
  makeKey,
  on,
  PMEM_IGNORE,
  PMEM_SKIP,
  probeIn,
  type ProbeResult,
  SECRET,
  secretObject,
  sign,
  start,
  Stepper,
  type TestKey,
  tmpDir,
} from "./testdata/security/board.ts";
import { twz } from "./_twz.ts";

const N = SECRET.length;
const ms = (t: number) => BigInt(t) * 1_000_000n;

/** A pmem test (skipped with its reason when libpmem2 cannot load). */
function pmemTest(name: string, fn: (b: Board) => Promise<void>): void {
  Deno.test({
    name: `${name} (hal-pmem)${PMEM_SKIP}`,
    ignore: PMEM_IGNORE,
    fn: () => on("pmem", fn),
  });
}

/**
 * A capability whose flags say Blake3 (which signCapability refuses to
 * make): signed by hand over the same message, so only the flag is wrong.
 */
async function signBlake3(key: TestKey, f: CapFields): Promise<Capability> {
  const cap: Capability = {
    kind: "capability",
    ...f,
    flags: CapFlag.Sha256 | CapFlag.Blake3,
    signature: new Uint8Array(64),
  };
  const k = await crypto.subtle.importKey(
    "pkcs8",
    new Uint8Array(key.pair.privateKey),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    k,
    new Uint8Array(signedMessage(cap)),
  );
  return { ...cap, signature: new Uint8Array(sig) };
}

/** The probe's operations that try every access to `id`. */
function everything(id: ObjID): string[] {
  const x = hex(id);
  return [
    `map:${x}:r`,
    `read:${x}:${BASE}:${N}`,
    `map:${x}:rw`,
    `write:${x}:${BASE}:x`,
    `copy:${x}`,
    `delete:${x}`,
  ];
}

/** Everything refused (what a program without a grant meets). */
function nothingAllowed(r: ProbeResult[], what: string): void {
  for (const x of r) denied(x, what);
}

pmemTest(
  "without a capability a program cannot map, read, write, copy or delete an object whose default protections are none",
  async (b) => {
    const key = await makeKey(b.port);
    const secret = secretObject(b.port, key.kuid);
    assert.equal(b.port.stat(secret).prot, 0);
    assert.equal(b.port.stat(secret).keyId, key.kuid);
    // A control: the same program reads an object whose defaults allow it.
    const open = secretObject(b.port, key.kuid, "open to all", SecProt.Read);

    // No contexts at all: the defaults, nothing more.
    const none = await probeIn(b, undefined, [
      ...everything(secret),
      `read:${hex(open)}:${BASE}:11`,
      "contexts",
    ]);
    nothingAllowed(none.slice(0, 6), "no contexts");
    allowed(none[6]!, "defaults r");
    assert.equal(none[6]!.text, "open to all");
    assert.deepEqual(none[7]!.contexts, []);

    // A context with no grant for it: still nothing.
    const ctx = b.port.ctxCreate();
    const empty = await probeIn(b, [ctx], [
      ...everything(secret),
      `access:${hex(secret)}`,
      "contexts",
    ]);
    nothingAllowed(empty.slice(0, 6), "an empty context");
    assert.equal(empty[6]!.prot, "-----");
    assert.deepEqual(empty[7]!.contexts, [ctx.toString(16)]);
    assert.ok(b.kernel.exists(secret), "the object was not deleted");
    assert.equal(new TextDecoder().decode(b.port.read(secret, BASE, N)), SECRET, "nor changed");
  },
);

pmemTest(
  "with a read capability a program reads the object and cannot write or delete it (P-256 and Ed25519)",
  async (b) => {
    for (const scheme of ["ecdsa-p256", "ed25519"] as const) {
      const key = await makeKey(b.port, scheme);
      const secret = secretObject(b.port, key.kuid);
      const ctx = b.port.ctxCreate();
      const index = add(b.port, ctx, await sign(key, fields(key, secret, ctx, SecProt.Read)));
      assert.equal(typeof index, "number", `${scheme}: the kernel took the grant: ${index}`);
      const x = hex(secret);
      const r = await probeIn(b, [ctx], [
        `access:${x}`,
        `map:${x}:r`,
        `view:${x}:${BASE}:${N}`,
        `read:${x}:${BASE}:${N}`,
        `map:${x}:rw`,
        `write:${x}:${BASE}:stolen`,
        `delete:${x}`,
        `copy:${x}`,
      ]);
      assert.equal(r[0]!.prot, "r----", `${scheme}: ${JSON.stringify(r[0])}`);
      allowed(r[1]!, scheme);
      assert.equal(r[1]!.prot, 1, "mapped read-only");
      assert.equal(r[2]!.text, SECRET, "the mapping holds the secret");
      assert.equal(r[3]!.text, SECRET);
      denied(r[4]!, `${scheme}: map rw`);
      denied(r[5]!, `${scheme}: write`);
      denied(r[6]!, `${scheme}: delete`);
      allowed(r[7]!, `${scheme}: read lets it copy`);
      assert.equal(new TextDecoder().decode(b.port.read(secret, BASE, N)), SECRET, "unchanged");
    }
  },
);

pmemTest(
  "each bad capability grants nothing: expired, revoked, forged, tampered, wrong key, wrong target, wrong accessor, Blake3",
  async (b) => {
    const key = await makeKey(b.port);
    const other = await makeKey(b.port);
    const secret = secretObject(b.port, key.kuid);
    const elsewhere = secretObject(b.port, key.kuid, "another object");
    const stranger = b.port.ctxCreate();
    const rw = SecProt.Read | SecProt.Write;
    const cases: [string, (ctx: ObjID) => Promise<Uint8Array>][] = [
      [
        "expired",
        async (ctx) =>
          encodeGrant(
            await sign(key, { ...fields(key, secret, ctx, rw), expiry: ms(Date.now() - 1000) }),
          ),
      ],
      ["forged", async (ctx) => {
        const cap = await sign(key, fields(key, secret, ctx, rw));
        return encodeGrant({ ...cap, signature: crypto.getRandomValues(new Uint8Array(64)) });
      }],
      ["tampered protections", async (ctx) => {
        // Signed for read only, then the protections raised in the signed
        // bytes (32–33 of the serialization).
        const bytes = encodeGrant(await sign(key, fields(key, secret, ctx, SecProt.Read)));
        bytes[32] = rw;
        return bytes;
      }],
      ["tampered expiry", async (ctx) => {
        // Signed to have expired a second ago, then pushed into the future
        // (expiry: bytes 36–51, ns since the Unix epoch).
        const f = { ...fields(key, secret, ctx, rw), expiry: ms(Date.now() - 1000) };
        const bytes = encodeGrant(await sign(key, f));
        bytes[36 + 7] = (bytes[36 + 7]! + 1) & 0xff; // + 2^56 ns: about two years
        return bytes;
      }],
      ["tampered gate", async (ctx) => {
        // Signed for a gate of 64 bytes (gate calls only), then widened to the
        // whole object (gate length: bytes 60–67).
        const f = { ...fields(key, secret, ctx, rw), gate: { offset: 0n, length: 64n, align: 1n } };
        const bytes = encodeGrant(await sign(key, f));
        bytes.fill(0xff, 60, 68);
        return bytes;
      }],
      ["wrong key", async (ctx) => encodeGrant(await sign(other, fields(other, secret, ctx, rw)))],
      [
        "wrong target",
        async (ctx) => encodeGrant(await sign(key, fields(key, elsewhere, ctx, rw))),
      ],
      [
        "wrong accessor",
        async () => encodeGrant(await sign(key, fields(key, secret, stranger, rw))),
      ],
      [
        "Blake3 hash",
        async (ctx) => encodeGrant(await signBlake3(key, fields(key, secret, ctx, rw))),
      ],
    ];
    // Revoked: a good grant, removed.
    const revoked = b.port.ctxCreate();
    const i = add(b.port, revoked, await sign(key, fields(key, secret, revoked, rw)));
    assert.equal(typeof i, "number", String(i));
    b.port.ctxRemove(revoked, i as number);

    const x = hex(secret);
    const ctxs: [string, ObjID][] = [["revoked", revoked]];
    for (const [what, make] of cases) {
      const ctx = b.port.ctxCreate();
      add(b.port, ctx, await make(ctx)); // refused at once, or kept and worthless
      ctxs.push([what, ctx]);
    }
    // The admin's view of each, then a program in each.
    for (const [what, ctx] of ctxs) {
      const report = await b.port.access(secret, [ctx]);
      assert.equal(report.prot, 0, `${what}: ${report.reasons.map((x) => x.why).join("; ")}`);
    }
    const runs = await Promise.all(
      ctxs.map(([, ctx]) =>
        probeIn(b, [ctx], [
          `map:${x}:r`,
          `read:${x}:${BASE}:${N}`,
          `map:${x}:rw`,
          `write:${x}:${BASE}:x`,
        ])
      ),
    );
    runs.forEach((r, k) => nothingAllowed(r, ctxs[k]![0]));
    // The wrong-target grant still works for its own target (the case was not broken by itself).
    const wrongTarget = ctxs.find(([w]) => w === "wrong target")![1];
    const own = await probeIn(b, [wrongTarget], [`read:${hex(elsewhere)}:${BASE}:14`]);
    allowed(own[0]!, "a grant reads its own target");
    assert.equal(own[0]!.text, "another object");
  },
);

pmemTest("a delegation narrows and never widens", async (b) => {
  const key = await makeKey(b.port);
  const holderKey = await makeKey(b.port);
  const secret = secretObject(b.port, key.kuid);
  const x = hex(secret);
  const holder = b.port.ctxCreate({ key: holderKey.kuid });
  const hour = Date.now() + 3600_000;
  const parentFields = {
    ...fields(key, secret, holder, SecProt.Read | SecProt.Write),
    flags: CapFlag.Sha256 | CapFlag.Delegate,
    expiry: ms(hour),
  };
  const parent = await sign(key, parentFields);
  assert.equal(typeof add(b.port, holder, parent), "number");
  const plain = await sign(key, { ...parentFields, flags: CapFlag.Sha256 }); // not delegable

  const delegation = async (
    to: ObjID,
    change: Partial<typeof parentFields>,
    opts: { parent?: typeof parent; signer?: typeof holderKey } = {},
  ) =>
    encodeGrant(
      await signDelegation(
        {
          ...fields(key, secret, to, SecProt.Read),
          flags: CapFlag.Sha256,
          expiry: ms(hour - 1000),
          ...change,
        },
        holder,
        opts.parent ?? parent,
        (opts.signer ?? holderKey).pair.privateKey,
      ),
    );

  // Narrower: read only, an earlier expiry. Reads; cannot write.
  const narrow = b.port.ctxCreate();
  assert.equal(typeof add(b.port, narrow, await delegation(narrow, {})), "number");
  const ok = await probeIn(b, [narrow], [
    `map:${x}:r`,
    `read:${x}:${BASE}:${N}`,
    `map:${x}:rw`,
    `write:${x}:${BASE}:x`,
  ]);
  allowed(ok[0]!, "narrow delegation");
  assert.equal(ok[1]!.text, SECRET);
  denied(ok[2]!, "narrow delegation: rw");
  denied(ok[3]!, "narrow delegation: write");

  // Wider in any way, or not allowed to delegate: nothing at all.
  const wide: [string, (to: ObjID) => Promise<Uint8Array>][] = [
    [
      "more protections",
      (to) => delegation(to, { prot: SecProt.Read | SecProt.Write | SecProt.Delete }),
    ],
    ["a later expiry", (to) => delegation(to, { expiry: ms(hour + 3600_000) })],
    ["no expiry under a parent that has one", (to) => delegation(to, { expiry: 0n })],
    [
      "a gate outside the parent's",
      (to) => delegation(to, { gate: { offset: 4096n, length: 4096n, align: 1n } }),
    ],
    ["a parent without Delegate", (to) => delegation(to, {}, { parent: plain })],
    [
      "signed by a key that does not speak for the provider",
      (to) => delegation(to, {}, { signer: key }),
    ],
  ];
  const ctxs: [string, ObjID][] = [];
  for (const [what, make] of wide) {
    const ctx = b.port.ctxCreate();
    add(b.port, ctx, await make(ctx));
    ctxs.push([what, ctx]);
    const report = await b.port.access(secret, [ctx]);
    assert.equal(report.prot, 0, `${what}: ${report.reasons.map((x) => x.why).join("; ")}`);
  }
  const runs = await Promise.all(
    ctxs.map(([, ctx]) => probeIn(b, [ctx], [`map:${x}:r`, `read:${x}:${BASE}:${N}`])),
  );
  runs.forEach((r, k) => nothingAllowed(r, `delegation with ${ctxs[k]![0]}`));
});

pmemTest(
  "revocation takes effect at the next map, and the mapping made before is withdrawn",
  async (b) => {
    const key = await makeKey(b.port);
    const secret = secretObject(b.port, key.kuid);
    const ctx = b.port.ctxCreate();
    const index = add(
      b.port,
      ctx,
      await sign(key, fields(key, secret, ctx, SecProt.Read)),
    ) as number;
    const step = new Stepper(b.port);
    const x = hex(secret);
    const p = start(b, [ctx], [
      "epoch",
      `map:${x}:r`,
      `view:${x}:${BASE}:${N}`,
      `step:${hex(step.id)}:1`,
      `map:${x}:r`,
      `read:${x}:${BASE}:${N}`,
      "epoch",
      `view:${x}:${BASE}:${N}`,
      `twzread:${x}:${BASE}:${N}`,
    ]);
    await step.reached(1, p.out);
    b.port.ctxRemove(ctx, index);
    step.go(1);
    const r = await p.done();
    allowed(r[1]!, "before");
    assert.equal(r[2]!.text, SECRET);
    denied(r[4]!, "map after revoke");
    denied(r[5]!, "read after revoke");
    assert.ok(
      (r[6]!.epoch as number) > (r[0]!.epoch as number),
      `the epoch moved: ${r[0]!.epoch} → ${r[6]!.epoch}`,
    );
    assert.equal(
      r[7]!.length,
      0,
      "the raw view kept from before reads nothing (its buffer was detached)",
    );
    denied(r[8]!, "libtwz open after revoke");
  },
);

pmemTest("key rotation takes effect at the next map; a grant by the new key works", async (b) => {
  const key = await makeKey(b.port);
  const secret = secretObject(b.port, key.kuid);
  const ctx = b.port.ctxCreate();
  add(b.port, ctx, await sign(key, fields(key, secret, ctx, SecProt.Read)));
  const step = new Stepper(b.port);
  const x = hex(secret);
  const p = start(b, [ctx], [
    `read:${x}:${BASE}:${N}`,
    `step:${hex(step.id)}:1`,
    `map:${x}:r`,
    `read:${x}:${BASE}:${N}`,
    `step:${hex(step.id)}:2`,
    `read:${x}:${BASE}:${N}`,
  ]);
  await step.reached(1, p.out);
  // Rotate to a pair the test holds, so it can sign for the new generation.
  const { generateKeyPair } = await import("@twz/kernel/abi");
  const pair = await generateKeyPair("ecdsa-p256");
  await b.port.keyRotate(key.kuid, {
    scheme: "ecdsa-p256",
    publicKey: pair.publicKey,
    privateKey: pair.privateKey,
  });
  assert.equal((await b.port.access(secret, [ctx])).prot, 0, "the old grant no longer counts");
  step.go(1);
  await step.reached(2, p.out);
  const fresh = { ...key, pair };
  add(b.port, ctx, await sign(fresh, fields(fresh, secret, ctx, SecProt.Read)));
  step.go(2);
  const r = await p.done();
  allowed(r[0]!, "before rotation");
  assert.equal(r[0]!.text, SECRET);
  denied(r[2]!, "map after rotation");
  denied(r[3]!, "read after rotation");
  allowed(r[5]!, "a grant signed by the rotated key");
  assert.equal(r[5]!.text, SECRET);
});

pmemTest(
  "a gate admits calls at its entry points and refuses others; the callee learns the caller",
  async (b) => {
    const key = await makeKey(b.port);
    const gate = secretObject(b.port, key.kuid, "gate code");
    const g = hex(gate);
    const serverCtx = b.port.ctxCreate();
    add(
      b.port,
      serverCtx,
      await sign(key, fields(key, gate, serverCtx, SecProt.Read | SecProt.Write)),
    );
    const callerCtx = b.port.ctxCreate();
    add(
      b.port,
      callerCtx,
      await sign(key, {
        ...fields(key, gate, callerCtx, SecProt.Exec),
        gate: { offset: 64n, length: 64n, align: 16n },
      }),
    );
    const step = new Stepper(b.port);
    const server = start(b, [serverCtx], [`serve:${g}`, `step:${hex(step.id)}:1`, "answer:2"]);
    await step.reached(1, server.out);
    step.go(1);
    const calling = start(b, [callerCtx], [
      `call:${g}:64:hello`,
      `call:${g}:112:last`,
      `call:${g}:72:misaligned`,
      `call:${g}:128:past`,
      `call:${g}:48:before`,
      `map:${g}:r`,
    ]);
    const caller = await calling.done();
    const nobody = await probeIn(b, undefined, [`call:${g}:64:hello`]);
    const served = await server.done();
    allowed(caller[0]!, "entry 64");
    allowed(caller[1]!, "entry 112");
    assert.equal(caller[0]!.reply, `echo:64:hello:${calling.info.tid}:${callerCtx.toString(16)}`);
    assert.match(caller[1]!.reply!, /^echo:112:last:/);
    for (const r of caller.slice(2, 5)) denied(r, "an offset the gate does not admit");
    denied(caller[5]!, "a gate-only grant does not map");
    denied(nobody[0]!, "no capability");
    assert.equal(served[2]!.seen!.length, 2, "exactly the admitted calls reached the server");
  },
);

// The demo: examples/secret_owner.ts and secret_reader.ts, two programs in two
// contexts. The reader sees the owner's private object only while granted.
pmemTest("the demo: the reader reads the owner's private object only while granted", async (b) => {
  for (const name of ["secret_owner", "secret_reader"]) {
    const file = new URL(`../examples/${name}.ts`, import.meta.url).pathname;
    installProgram(b.system, name, (await bundleFile(file)).text);
  }
  const ownerCtx = b.port.ctxCreate();
  const readerCtx = b.port.ctxCreate();
  const code = (name: string) => b.system.twz.naming.lookup(`/bin/${name}`)!.id;
  const outs: Record<string, string[]> = { owner: [], reader: [] };
  const owner = b.system.manager.spawn(
    {
      code: code("secret_owner"),
      name: "secret_owner",
      args: [hex(readerCtx), "/demo"],
      contexts: [ownerCtx],
    },
    { console: (t) => outs.owner!.push(t) },
  );
  const reader = b.system.manager.spawn(
    { code: code("secret_reader"), name: "secret_reader", args: ["/demo"], contexts: [readerCtx] },
    { console: (t) => outs.reader!.push(t) },
  );
  const [o, r] = [await ended(b, owner.tid, outs.owner!), await ended(b, reader.tid, outs.reader!)];
  const text = `owner: ${outs.owner!.join("")}\nreader: ${outs.reader!.join("")}`;
  assert.equal(o.exitCode, 0, text);
  assert.equal(r.exitCode, 0, text);
  const lines = outs.reader!.join("").trim().split("\n");
  assert.match(lines[0]!, new RegExp(`^reader: [0-9a-f]{32} says "${SECRET}"$`), text);
  assert.match(lines[1]!, /^reader: refused after the revocation: /, text);
  // And it was the capability: the object's defaults are none, and the reader's context holds nothing now.
  const secret = b.system.twz.naming.lookup("/demo/secret")!.id;
  assert.equal(b.port.stat(secret).prot, 0);
  assert.equal((await b.port.access(secret, [readerCtx])).prot, 0);
  assert.equal(
    (await b.port.access(secret, [ownerCtx])).prot & 3,
    3,
    "the owner still holds read-write",
  );
});

// The same demo as a user types it: one scripted `twz boot` on hal-pmem, the
// owner in the background and the reader in the foreground (docs/SECURITY.md).
Deno.test({
  name:
    `the demo in the shell: run --context owner … &, run --context reader … (hal-pmem)${PMEM_SKIP}`,
  ignore: PMEM_IGNORE,
  fn: async () => {
    const dir = tmpDir();
    const ex = (name: string) => new URL(`../examples/${name}.ts`, import.meta.url).pathname;
    const script = [
      "ctx new owner",
      "ctx new reader",
      `run --context owner ${ex("secret_owner")} reader /demo &`,
      `run --context reader ${ex("secret_reader")} /demo`,
      "access /demo/secret --context reader",
      "",
    ].join("\n");
    const r = await twz(
      ["boot", "--hal", "pmem", "--image", `${dir}/demo.img`, "--size", "16M", "--quiet"],
      script,
      { env: { TWZ_CACHE_DIR: `${dir}/cache` } },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.split("\n");
    const said = lines.findIndex((l) => l.endsWith(`says "${SECRET}"`));
    const revoked = lines.indexOf("owner: revoked the reader's capability");
    const refused = lines.findIndex((l) => l.startsWith("reader: refused after the revocation: "));
    assert.ok(said >= 0 && revoked > said && refused > revoked, r.stdout);
    assert.ok(
      lines.slice(refused).some((l) =>
        /^----- {2}[0-9a-f]{32} \(\/demo\/secret\) {2}defaults -----$/.test(l)
      ),
      `access shows nothing left for the reader: ${r.stdout}`,
    );
  },
});

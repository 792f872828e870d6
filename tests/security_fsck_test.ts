// fsck and crashtest keep working on images that hold keys, contexts, grants
// and keyed objects (issue 14): `twz fsck` and `twz fsck --deep` pass on such
// an image, on hal-pmem and hal-sim; `twz crashtest` runs a built-in
// workload and the security-context workload (testdata/security/
// ctx_workload.ts: ctxAdd, ctxRemove and ctxMask crashed at every drain).
// See docs/SECURITY.md.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Kernel } from "@twz/kernel";
import { SecProt } from "@twz/kernel/abi";
import { plugin as sim } from "@twz/hal-sim";
import { plugin as pmem } from "@twz/hal-pmem";
import { Twz } from "@twz/libtwz";
import { twz } from "./_twz.ts";
import {
  add,
  fields,
  makeKey,
  PMEM_IGNORE,
  PMEM_SKIP,
  secretObject,
  sign,
  tmpDir,
} from "./testdata/security/board.ts";

const WORKLOAD = new URL("./testdata/security/ctx_workload.ts", import.meta.url).pathname;

/** Make an image on `hal` holding two keys, contexts with grants and masks, and keyed objects. */
async function securityImage(hal: "sim" | "pmem", image: string): Promise<void> {
  const h = hal === "pmem"
    ? await pmem.open({ image, size: 16 << 20, create: true })
    : await sim.open({ image, size: 16 << 20, create: true });
  const kernel = Kernel.boot(h, { formatBlank: true });
  try {
    const port = kernel.port();
    const twz = Twz.attach(port);
    const p256 = await makeKey(port);
    const ed = await makeKey(port, "ed25519");
    const generated = await port.keyCreate(); // a pair the kernel made
    const a = secretObject(port, p256.kuid);
    const b = secretObject(port, ed.kuid, "other", SecProt.Read);
    const ctx = port.ctxCreate({ key: generated.kuid });
    const other = port.ctxCreate();
    add(port, ctx, await sign(p256, fields(p256, a, ctx, SecProt.Read)));
    const gone = add(
      port,
      ctx,
      await sign(ed, fields(ed, b, ctx, SecProt.Read | SecProt.Write)),
    ) as number;
    add(port, other, await sign(p256, fields(p256, a, other, SecProt.Read | SecProt.Write)));
    port.ctxMask(other, a, SecProt.Read);
    port.ctxMask(other, 0n, SecProt.Read | SecProt.Exec);
    port.ctxRemove(ctx, gone);
    // A keyed object made by libtwz (meta-info with its nonce), named.
    twz.create({ key: p256.kuid, size: 8192, name: "/keyed" });
    twz.naming.bind("/sec/ctx", ctx, { parents: true });
    await port.keyRotate(ed.kuid);
    assert.equal((await port.access(a, [ctx])).prot & SecProt.Read, SecProt.Read);
  } finally {
    kernel.shutdown();
    h.close();
  }
}

for (const hal of ["pmem", "sim"] as const) {
  Deno.test({
    name:
      `twz fsck and fsck --deep pass on an image holding keys, contexts, grants and keyed objects (hal-${hal})${
        hal === "pmem" ? PMEM_SKIP : ""
      }`,
    ignore: hal === "pmem" && PMEM_IGNORE,
    fn: async () => {
      const image = join(tmpDir(), "keys.img");
      await securityImage(hal, image);
      const plain = await twz(["fsck", "--hal", hal, "--image", image]);
      assert.equal(plain.code, 0, plain.stdout + plain.stderr);
      const deep = await twz(["fsck", "--hal", hal, "--image", image, "--deep"]);
      assert.equal(deep.code, 0, deep.stdout + deep.stderr);
      assert.match(deep.stdout, /libtwz: clean/);
      // And the system boots and answers for the context afterwards.
      const shell = await twz(["boot", "--hal", hal, "--image", image, "--quiet"], "stat /keyed\n");
      assert.equal(shell.code, 0, shell.stderr);
    },
  });
}

Deno.test("twz crashtest still runs (kv, a short run)", async () => {
  const r = await twz(["crashtest", "--states", "200", "kv"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

Deno.test("twz crashtest of security contexts: ctxAdd, ctxRemove and ctxMask at every crash point", async () => {
  const r = await twz(["crashtest", "--states", "300", "--json", WORKLOAD]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.violation_count, 0, r.stdout);
  assert.ok(report.points > 5, `crash points: ${r.stdout}`);
});

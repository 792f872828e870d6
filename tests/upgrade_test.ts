// `twz fsck --upgrade` on format-1 images (the fixtures of
// packages/kernel/upgrade_test.ts, in packages/kernel/testdata/v1: see its
// README): the command's output and exit codes, on hal-sim and hal-pmem. The
// upgrade itself (every object, name and kv entry intact, power failures at
// every drain) is tested beside it, in packages/kernel/upgrade_test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { twz } from "./_twz.ts";

const DATA = new URL("../packages/kernel/testdata/v1/", import.meta.url);

type FixtureName = "clean" | "crashed_log" | "log_tail" | "small";

async function fixture(name: FixtureName): Promise<Uint8Array> {
  const gz = await Deno.readFile(new URL(`${name}.img.gz`, DATA));
  const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Whether two byte arrays are equal (fast enough for whole images). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function damage(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] = value;
  return copy;
}

const tmpDir = scratchDirs("twz-upgrade-");

Deno.test("twz fsck --upgrade upgrades a format-1 image once, then says it is format 2 already", async () => {
  const image = join(tmpDir(), "old.img");
  await Deno.writeFile(image, await fixture("clean"));
  const before = await Deno.readFile(image);
  const refused = await twz(["boot", "--image", image, "--quiet"], "ls\n");
  assert.equal(refused.code, 3);
  assert.deepEqual(refused.stderr.trim().split("\n").length, 1, refused.stderr);
  assert.match(refused.stderr, /format version 1; run `twz fsck --upgrade --image /);
  assert.ok(sameBytes(await Deno.readFile(image), before), "a refused boot writes nothing");
  const up = await twz(["fsck", "--upgrade", "--image", image]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /upgraded to format 2; clean\n$/);
  const again = await twz(["fsck", "--upgrade", "--image", image]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, `twz fsck: ${image}: already format 2; nothing to do\n`);
  const deep = await twz(["fsck", "--deep", "--image", image]);
  assert.equal(deep.code, 0, deep.stdout + deep.stderr);
  const boot = await twz(
    ["boot", "--image", image, "--quiet"],
    "read /docs/readme 0 29\nkv get gamma\nkv put delta four\nkv count\n",
  );
  assert.equal(boot.code, 0, boot.stderr);
  assert.equal(boot.stdout, "hello from format version one\nthree\nok\n3\n");
});

Deno.test("twz fsck --upgrade: damaged format-1 metadata is one line and exit 3, --force upgrades", async () => {
  const original = await fixture("small");
  const bitmapOffset = Number(new DataView(original.buffer).getBigUint64(88, true));
  const image = join(tmpDir(), "damaged.img");
  await Deno.writeFile(image, damage(original, bitmapOffset, 0));
  const r = await twz(["fsck", "--upgrade", "--image", image]);
  assert.equal(r.code, 3);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^twz: cannot upgrade .*format-1 image has \d+ problem/);
  const forced = await twz(["fsck", "--upgrade", "--force", "--image", image]);
  assert.equal(forced.code, 1, forced.stderr);
  assert.match(forced.stdout, /upgraded to format 2; \d+ problem\(s\): run twz fsck --repair/);
});

const pmem = (await import("@twz/hal-pmem")).plugin;
const pmemInfo = pmem.describe();

Deno.test({
  name: `twz fsck --upgrade --hal pmem upgrades a format-1 image file, and fsck finds it clean${
    pmemInfo.available ? "" : ` (skipped: ${pmemInfo.reason})`
  }`,
  ignore: !pmemInfo.available && Deno.env.get("CI") !== "true",
  fn: async () => {
    const image = join(tmpDir(), "pmem.img");
    await Deno.writeFile(image, await fixture("clean"));
    const up = await twz(["fsck", "--upgrade", "--image", image, "--hal", "pmem"]);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const r = await twz(["fsck", "--image", image, "--hal", "pmem"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  },
});

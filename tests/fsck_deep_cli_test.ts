// `twz fsck --deep` on the command line: repairs that must keep every name, on
// both HALs, and /lost+found (the deep check's unit tests are in
// packages/crashtest/deep_check_test.ts).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Kernel, Prot } from "@twz/kernel";
import { META_OFFSET, MetaField } from "@twz/kernel/abi";
import { decodeSuperblock, findSlotOffset, type Geometry } from "@twz/kernel/format";
import { openSimFromBytes } from "@twz/hal-sim";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { Twz } from "@twz/libtwz";
import { twz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-fsck-deep-");
const BASE = 256;

// --- Repairs that must keep every name: through the command line, on both HALs.

const pmem = (await import("@twz/hal-pmem")).plugin.describe();
const HAL_NAMES = ["sim", ...(pmem.available ? ["pmem"] : [])];

const SCRIPT = [
  "new --size 5000 --name /a",
  "write /a 0 hello",
  "new --size 3000 --name /docs/b",
  "write /docs/b 0 world",
  "kv put k1 v1",
  "kv put k2 v2",
  "shutdown",
].join("\n") + "\n";

/** Make an image with names and a /kv store on `hal`; returns the ID of /a. */
async function makeImage(hal: string, path: string): Promise<string> {
  const r = await twz(["boot", "--hal", hal, "--image", path, "--size", String(8 << 20)], SCRIPT);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n")[0]!.trim();
}

/** Change the image file in place. */
function patch(path: string, f: (bytes: Uint8Array, g: Geometry) => void): void {
  const bytes = Deno.readFileSync(path);
  f(bytes, decodeSuperblock(bytes));
  Deno.writeFileSync(path, bytes);
}

const slotOfId = (bytes: Uint8Array, g: Geometry, hex: string) =>
  findSlotOffset(bytes, g, BigInt(`0x${hex}`));

const session = (hal: string, path: string, commands: string[]) =>
  twz(["boot", "--hal", hal, "--image", path], commands.join("\n") + "\nshutdown\n");

for (const hal of HAL_NAMES) {
  Deno.test(`twz fsck --repair --deep: a damaged root record keeps every name and /kv (hal ${hal})`, async () => {
    const dir = tmpDir();
    const path = join(dir, "t.img");
    await makeImage(hal, path);
    patch(path, (b, g) => b.fill(0, g.rootOffset, g.rootOffset + 64));
    const refused = await session(hal, path, ["read /a 0 5"]);
    assert.notEqual(refused.code, 0, "boot refuses the damaged root record");
    const fixed = await twz(["fsck", "--hal", hal, "--image", path, "--repair", "--deep"]);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(fixed.stdout, /rebuilt the root record .* keeping root object [0-9a-f]{32}/);
    assert.match(fixed.stdout, /libtwz: clean|libtwz: repaired/);
    const r = await session(hal, path, [
      "read /a 0 5",
      "read /docs/b 0 5",
      "kv get k1",
      "kv count",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v1", "2"]);
    const clean = await twz(["fsck", "--hal", hal, "--image", path, "--deep"]);
    assert.equal(clean.code, 0, clean.stdout);
    Deno.removeSync(dir, { recursive: true });
  });
}

Deno.test("twz fsck --repair --deep: a zeroed object slot's blocks become /lost+found/<ID>, bytes unchanged", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  const a = await makeImage("sim", path);
  patch(path, (b, g) => {
    const o = slotOfId(b, g, a);
    b.fill(0, o, o + 64);
  });
  // The deep repair writes objects too (directories, the log): --undo puts every byte back.
  const damaged = await sha(Deno.readFileSync(path));
  const first = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.notEqual(await sha(Deno.readFileSync(path)), damaged);
  const undone = await twz(["fsck", "--undo", `${path}.undo`, "--image", path]);
  assert.equal(undone.code, 0, undone.stderr);
  assert.equal(await sha(Deno.readFileSync(path)), damaged, "byte for byte");
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep", "--force"]);
  assert.equal(fixed.code, 1, "not clean: an object was put aside\n" + fixed.stdout + fixed.stderr);
  const m = /bound ([0-9a-f]{32}) as (\/lost\+found\/[0-9a-f]{32})/.exec(fixed.stdout);
  assert.ok(m, fixed.stdout);
  assert.match(fixed.stdout, /put aside for \/lost\+found: not clean/);
  const r = await session("sim", path, [`read ${m[2]} 0 5`, "read /docs/b 0 5", "kv get k2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v2"]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck --repair --deep: a lost root object; the naming root is found again by its structure", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  await makeImage("sim", path);
  patch(path, (b, g) => {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const root = (v.getBigUint64(g.rootOffset + 40, true) << 64n) |
      v.getBigUint64(g.rootOffset + 32, true);
    const o = slotOfId(b, g, root.toString(16).padStart(32, "0"));
    const data = g.dataOffset + v.getUint32(o + 20, true) * 1024;
    v.setUint16(data + META_OFFSET + MetaField.flags, 0, true); // no longer marked Root
    b.fill(0, g.rootOffset, g.rootOffset + 64); // and the root record names nothing
  });
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.match(
    fixed.stdout,
    /names root directory [0-9a-f]{32} again/,
    fixed.stdout + fixed.stderr,
  );
  const r = await session("sim", path, [
    "read /a 0 5",
    "read /docs/b 0 5",
    "kv get k1",
    "kv count",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v1", "2"]);
  Deno.removeSync(dir, { recursive: true });
});

async function sha(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

Deno.test("twz fsck --repair --deep: an object record it cannot trust becomes /lost+found/<ID>, bytes unchanged", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  const a = await makeImage("sim", path);
  patch(path, (b, g) => {
    const o = slotOfId(b, g, a);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    v.setFloat64(o + 56, 1.5, true); // two fields: no single fix checks again
    v.setUint16(o + 18, 5, true);
  });
  const refused = await session("sim", path, ["read /a 0 5"]);
  assert.match(refused.stderr, /is damaged \(table slot \d+/);
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.equal(fixed.code, 1, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, new RegExp(`lost\\+found: [0-9a-f]{32}: was object ${a}`));
  const m = /bound [0-9a-f]{32} as (\/lost\+found\/[0-9a-f]{32})/.exec(fixed.stdout);
  assert.ok(m, fixed.stdout);
  const r = await session("sim", path, [`read ${m[1]} 0 5`, "kv get k1"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "v1"]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck --repair --deep binds objects an earlier repair without --deep recovered", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  const a = await makeImage("sim", path);
  patch(path, (b, g) => {
    const o = slotOfId(b, g, a);
    b.fill(0, o, o + 64);
  });
  const kernelOnly = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(kernelOnly.code, 1, kernelOnly.stdout + kernelOnly.stderr);
  assert.match(
    kernelOnly.stdout,
    /note: objects were put aside: `twz fsck --repair --deep` binds them/,
  );
  const clean = await twz(["fsck", "--image", path]);
  assert.equal(clean.code, 0, "the kernel structures are sound now\n" + clean.stdout);
  const deep = await twz(["fsck", "--image", path, "--repair", "--deep", "--force"]);
  assert.equal(deep.code, 1, deep.stdout + deep.stderr);
  const m = /bound [0-9a-f]{32} as (\/lost\+found\/6c6f73742b666f75[0-9a-f]{16})/.exec(deep.stdout);
  assert.ok(m, deep.stdout);
  const r = await session("sim", path, [`read ${m[1]} 0 5`]);
  assert.equal(r.stdout.trim(), "hello");
  const again = await twz(["fsck", "--image", path, "--repair", "--deep", "--force"]);
  assert.equal(again.code, 0, "bound once: nothing to put aside now\n" + again.stdout);
  Deno.removeSync(dir, { recursive: true });
});

// --- A damaged naming root directory header: rewritten by --repair --deep (magic,
// version and capacity follow from the object's size), or reported as remaining.

/** Damage the root directory of the image at `path` through its mapping (header at BASE). */
function damageRootDir(path: string, f: (v: DataView) => void): string {
  const hal = openSimFromBytes(Deno.readFileSync(path));
  const kernel = Kernel.boot(hal);
  const dir = Twz.attach(kernel.port()).naming.rootId;
  const m = kernel.map(dir, Prot.ReadWrite);
  f(m.view);
  m.persist(0, m.bytes.length);
  kernel.shutdown();
  Deno.writeFileSync(path, hal.region.bytes);
  hal.close();
  return dir.toString(16).padStart(32, "0");
}

for (
  const [what, damage] of [
    ["magic zeroed", (v: DataView) => v.setUint32(BASE, 0, true)],
    ["version 9", (v: DataView) => v.setUint32(BASE + 4, 9, true)],
    ["capacity 2^32-1", (v: DataView) => v.setUint32(BASE + 8, 0xffffffff, true)],
    ["generation swapped with the magic", (v: DataView) => {
      const magic = v.getUint32(BASE, true);
      v.setUint32(BASE, v.getUint32(BASE + 12, true), true);
      v.setUint32(BASE + 12, magic, true);
    }],
  ] as const
) {
  Deno.test(`twz fsck --repair --deep rewrites the root directory's header (${what}); every name resolves`, async () => {
    const dir = tmpDir();
    const path = join(dir, "t.img");
    await makeImage("sim", path);
    const id = damageRootDir(path, damage);
    const found = await twz(["fsck", "--image", path, "--deep"]);
    assert.equal(found.code, 1, found.stdout + found.stderr);
    assert.match(found.stdout, new RegExp(`libtwz: naming ${id}: .*header damaged`));
    const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(
      fixed.stdout,
      new RegExp(`repaired: naming: directory ${id}: rewrote its header \\(magic, version`),
    );
    const r = await session("sim", path, ["read /a 0 5", "read /docs/b 0 5", "kv get k1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["hello", "world", "v1"]);
    const clean = await twz(["fsck", "--image", path, "--deep"]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    Deno.removeSync(dir, { recursive: true });
  });
}

Deno.test("twz fsck --repair --deep: a root directory header it cannot prove a directory's is reported, not called clean", async () => {
  const dir = tmpDir();
  const path = join(dir, "t.img");
  await makeImage("sim", path);
  damageRootDir(path, (v) => {
    v.setUint32(BASE, 0, true); // the header's magic
    // and the meta-info's Directory flag (its checksum no longer holds either)
    v.setUint16(META_OFFSET + MetaField.flags, 0, true);
  });
  const fixed = await twz(["fsck", "--image", path, "--repair", "--deep"]);
  assert.equal(fixed.code, 1, fixed.stdout + fixed.stderr);
  assert.doesNotMatch(fixed.stdout, /rewrote its header/);
  assert.match(fixed.stdout, /^remaining: libtwz: naming [0-9a-f]{32}: directory \/ /m);
  assert.doesNotMatch(fixed.stdout, /now clean|libtwz: clean|no problem remains/);
  Deno.removeSync(dir, { recursive: true });
});

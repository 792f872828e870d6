// `twz boot` on a damaged image: exit 3, one line naming the fix, the file untouched
// (the kernel's own damage tests are in packages/kernel/kernel_damage_test.ts).
import assert from "node:assert/strict";
import { crc32, decodeSuperblock, SLOT } from "@twz/kernel/format";
import { twz } from "./_twz.ts";

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

Deno.test("twz boot: damaged images exit 3 with one line naming the fix, file untouched", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/t.img`;
    const made = await twz(
      ["boot", "--image", path, "--size", "8M", "--quiet"],
      "new --size 3000\n",
    );
    assert.equal(made.code, 0, made.stderr);
    const good = Deno.readFileSync(path);
    const g = decodeSuperblock(good);
    const cases: Array<[string, (b: Uint8Array) => void, RegExp]> = [
      ["format 1", (b) => {
        const v = viewOf(b);
        v.setUint32(8, 1, true);
        v.setUint32(120, crc32(b.subarray(0, 120)), true);
      }, new RegExp(`format version 1; run \`twz fsck --upgrade --image ${path}\``)],
      [
        "zeroed table",
        (b) => b.fill(0, g.tableOffset, g.tableOffset + g.tableSlots * SLOT),
        /object table is damaged/,
      ],
      ["primary superblock", (b) => b[40]! ^= 1, /twz fsck --repair --image/],
    ];
    for (const [name, damage, pattern] of cases) {
      const bad = good.slice();
      damage(bad);
      Deno.writeFileSync(path, bad);
      const run = await twz(["boot", "--image", path, "--quiet"], "ls\n");
      assert.equal(run.code, 3, `${name}: ${run.stderr}`);
      assert.match(run.stderr, pattern, name);
      assert.equal(run.stderr.trim().split("\n").length, 1, `${name}: one line: ${run.stderr}`);
      assert.deepEqual(Deno.readFileSync(path), bad, `${name}: file untouched`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

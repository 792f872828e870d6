// `twz boot --read-only`: every read command works and sees what a writable
// session wrote, every write fails with one ReadOnly line, and the image file
// is never written. (libtwz's read-only sessions: packages/libtwz/readonly_test.ts.)
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { twz as runTwz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-readonly-cli-");
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);

Deno.test("twz boot --read-only: names, read, kv get/scan, ls, stat work; write, kv put, new are refused", async () => {
  const image = join(tmpDir(), "shell.img");
  const made = await runTwz(
    ["boot", "--image", image, "--size", "16M", "--quiet"],
    'new --size 4096 --name /a\nwrite /a 0 "hello"\nkv put x 1\nkv put y 2\n',
  );
  assert.equal(made.code, 0, made.stderr);
  const before = Deno.readFileSync(image);
  const id = lines(made.stdout)[0];
  const reads = await runTwz(
    ["boot", "--keep-going", "--image", image, "--read-only", "--quiet"],
    "names /\nread /a 0 5\nkv get x\nkv scan\nkv count\nls\nstat /a\n",
  );
  assert.equal(reads.code, 0, reads.stderr);
  assert.equal(reads.stderr, "");
  const out = lines(reads.stdout);
  assert.match(out.join("\n"), new RegExp(`${id}  obj  a`));
  assert.ok(out.includes("hello"), reads.stdout);
  assert.ok(out.includes("1"), reads.stdout);
  assert.match(reads.stdout, /x\s+1\n.*y\s+2/s);
  assert.match(reads.stdout, new RegExp(`^${id}  pers`, "m"));
  assert.match(reads.stdout, new RegExp(`id:\\s+${id}`));
  for (
    const cmd of ['write /a 0 "bye"', "kv put z 3", "kv del x", "new --size 4096", "bind /b /a"]
  ) {
    const r = await runTwz(
      ["boot", "--keep-going", "--image", image, "--read-only", "--quiet"],
      cmd + "\n",
    );
    const errs = lines(r.stderr);
    assert.equal(errs.length, 1, `${cmd}: ${r.stderr}`);
    assert.match(errs[0]!, /the image is open read-only: cannot /, cmd);
    assert.doesNotMatch(r.stderr, /\n\s+at |Uncaught/);
    assert.equal(r.stdout, "", cmd);
  }
  assert.deepEqual(Deno.readFileSync(image), before, "the image file is unchanged");
});

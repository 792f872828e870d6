// End-to-end: the README's smallest image size is the real one. At exactly
// that size, `kv put` works from the shell and from a program (`twz run kv`,
// which also stores its code object and the threads' transaction lanes);
// well below it, a fresh image cannot hold the kv store and the user is told
// so in one line.
// The size is read from the README, so the two cannot drift apart: code that
// makes the kv program or the logs larger fails here until the README says
// the new size.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { type Run, twz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-size-");
const README = new URL("../README.md", import.meta.url);
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);

/** The smallest size the README states, in KiB ("… is N KiB (`--size NK`)"). */
function readmeMinimum(): number {
  const text = Deno.readTextFileSync(README).replace(/\s+/g, " ");
  const m = /smallest image on which `kv` works, .*? is (\d+) KiB \(`--size (\d+)K`\)/.exec(text);
  assert.ok(m, "the README states the smallest image on which kv works");
  assert.equal(m[1], m[2], "the KiB figure and its --size agree");
  return Number(m[1]);
}

/** `twz ARGS` in `dir`, with its own program cache. */
function twzIn(dir: string, args: string[], input?: string): Promise<Run> {
  return twz(args, input, { cwd: dir, env: { TWZ_CACHE_DIR: join(dir, "cache") } });
}

Deno.test("the README's smallest image: kv works there from the shell and from twz run", async () => {
  const kib = readmeMinimum();
  const size = `${kib}K`;
  // The shell first, then a program on the same image.
  const dir = tmpDir();
  const shell = await twzIn(
    dir,
    ["boot", "--quiet", "--image", "a.img", "--size", size],
    "kv put k v\nkv get k\n",
  );
  assert.equal(shell.code, 0, shell.stderr);
  assert.equal(shell.stderr, "");
  assert.deepEqual(lines(shell.stdout), ["ok", "v"]);
  const after = await twzIn(dir, ["run", "--image", "a.img", "kv", "put", "k2", "v2"]);
  assert.equal(after.code, 0, after.stderr);
  assert.deepEqual(lines(after.stdout), ["ok"]);
  // A program first, on a fresh image of that size (the kv store made in a thread).
  const fresh = await twzIn(dir, [
    "run",
    "--image",
    "b.img",
    "--size",
    size,
    "kv",
    "put",
    "k",
    "v",
  ]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.deepEqual(lines(fresh.stdout), ["ok"]);
  for (const [image, want] of [["a.img", "k\tv,k2\tv2"], ["b.img", "k\tv"]] as const) {
    const scan = await twzIn(dir, ["boot", "--quiet", "--image", image], "kv scan\n");
    assert.equal(scan.code, 0, scan.stderr);
    assert.equal(lines(scan.stdout).join(","), want, image);
    const st = Deno.statSync(join(dir, image));
    assert.equal(st.size, kib * 1024, `${image} is exactly ${size}`);
  }
});

Deno.test("well below the README's smallest image, kv from a program says there is no space, in one line", async () => {
  // 256 KiB below: far enough that the kv program or the logs shrinking a
  // little does not make it fit (the README's figure keeps some room above
  // the measured minimum for them to grow).
  const size = `${readmeMinimum() - 256}K`;
  const dir = tmpDir();
  const r = await twzIn(dir, ["run", "--image", "b.img", "--size", size, "kv", "put", "k", "v"]);
  assert.equal(r.code, 1, `kv at ${size}: ${r.stdout} ${r.stderr}`);
  assert.match(r.stdout, /^kv: No space for 1048576 bytes: \d+ bytes free\n$/);
  assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at |uncaught/);
  // Nothing was named: the store is made first and named last.
  const ls = await twzIn(dir, ["boot", "--quiet", "--image", "b.img"], "kv count\n");
  assert.equal(ls.code, 0, ls.stderr);
  assert.deepEqual(lines(ls.stdout), ["0"]);
});

// End-to-end: the `twz` command as a user runs it, in a subprocess.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { type Run, twz } from "./_twz.ts";

const ID = /^[0-9a-f]{32}$/;

const tmpDir = scratchDirs("twz-cli-");
const tmpImage = () => join(tmpDir(), "t.img");
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);

/** The one-line, no-stack-trace error contract. */
function assertOneLineError(r: Run, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  const errs = lines(r.stderr);
  assert.equal(errs.length, 1, `one error line, got:\n${r.stderr}`);
  assert.match(errs[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at |Stack backtrace|error: Uncaught/);
}

Deno.test("twz boot: new, write, shutdown; a second boot reads the text back", async () => {
  const image = tmpImage();
  const first = await twz(["boot", "--image", image, "--size", "8M"], "new --size 4096\n");
  assert.equal(first.code, 0, first.stderr);
  const id = lines(first.stdout)[0];
  assert.match(id, ID);
  assert.match(first.stderr, /formatted a new image/);
  const second = await twz(
    ["boot", "--image", image],
    `write ${id} 100 "hello, persistent world"\nshutdown\n`,
  );
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(lines(second.stdout), ["wrote 23 bytes"]);
  assert.match(second.stderr, /1 object recovered/);
  const third = await twz(["boot", "--image", image, "--quiet"], `read ${id} 100 64\n`);
  assert.equal(third.code, 0, third.stderr);
  assert.deepEqual(lines(third.stdout), ["hello, persistent world"]);
  assert.equal(third.stderr, "");
});

Deno.test("twz boot: a volatile object is gone after reboot, a persistent one stays", async () => {
  const image = tmpImage();
  const r = await twz(
    ["boot", "--image", image, "--size", "8M", "--quiet"],
    "new --volatile --size 64\nnew --size 64\nls\nreboot\nls\n",
  );
  assert.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  const [vol, pers] = out;
  assert.match(vol, ID);
  assert.match(pers, ID);
  const before = out.slice(2, 4).join("\n");
  const after = out.slice(4).join("\n");
  assert.match(before, new RegExp(vol));
  assert.match(after, new RegExp(pers));
  assert.doesNotMatch(after, new RegExp(vol));
});

Deno.test("twz boot: after crash every acknowledged object is there and unpersisted data is lost", async () => {
  const image = tmpImage();
  const script = [
    ...Array(5).fill("new --size 2048"),
    "crash",
    "ls",
    "crash --policy random --seed 42",
    "ls",
  ].join("\n");
  const r = await twz(["boot", "--image", image, "--size", "8M"], script + "\n");
  assert.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  const ids = out.slice(0, 5);
  for (const id of ids) assert.match(id, ID);
  assert.match(out[5], /^power failure: \d+ of \d+ unpersisted cache lines survived$/);
  const listed = out.slice(6, 11).map((l) => l.split(/\s+/)[0]).sort();
  assert.deepEqual(listed, [...ids].sort());
  assert.match(r.stderr, /5 objects recovered/);
  const again = out.slice(12, 17).map((l) => l.split(/\s+/)[0]).sort();
  assert.deepEqual(again, [...ids].sort());
});

Deno.test("twz boot: a command error is one line, the shell goes on, the exit code says so", async () => {
  const r = await twz(
    ["boot", "--image", tmpImage(), "--size", "8M", "--quiet"],
    [
      "frobnicate",
      "read 00000000000000000000000000000000 0 1",
      "read 0123456789abcdef0123456789abcdef 0 1",
      "new --size 1G",
      "new --size 64",
    ].join("\n"),
  );
  assert.equal(r.code, 1);
  const errs = lines(r.stderr);
  assert.equal(errs.length, 4, r.stderr);
  assert.match(errs[0], /^frobnicate: unknown command/);
  assert.match(errs[1], /^read: .*not a valid object ID/);
  assert.match(errs[2], /^read: No object 0123456789abcdef0123456789abcdef/);
  assert.match(errs[3], /^new: No space for/);
  assert.match(lines(r.stdout)[0], ID);
});

async function damaged(mutate: (image: string) => void, pattern: RegExp): Promise<void> {
  const image = tmpImage();
  const made = await twz(["boot", "--image", image, "--size", "8M", "--quiet"], "new\n");
  assert.equal(made.code, 0, made.stderr);
  mutate(image);
  const before = Deno.readFileSync(image);
  const r = await twz(["boot", "--image", image], "ls\n");
  assertOneLineError(r, 3, pattern);
  assert.deepEqual(Deno.readFileSync(image), before, "the image is never reformatted or changed");
}

Deno.test("twz boot: a truncated image is one clear error line, never reformatted", async () => {
  await damaged(
    (p) => Deno.truncateSync(p, 3 << 20),
    /truncated: the superblock records 8388608 bytes, the image has 3145728/,
  );
  await damaged((p) => Deno.truncateSync(p, 100), /too small to hold a superblock/);
});

Deno.test("twz boot: a file of random bytes is one clear error line", async () => {
  await damaged((p) => {
    const junk = new Uint8Array(1 << 20);
    crypto.getRandomValues(junk.subarray(0, 65536));
    Deno.writeFileSync(p, junk);
  }, /not a Twizzler image/);
});

Deno.test("twz boot: one flipped byte in the superblock is one clear error line", async () => {
  for (const at of [8, 17, 50, 100]) {
    await damaged((p) => {
      const f = Deno.openSync(p, { read: true, write: true });
      const b = new Uint8Array(1);
      f.seekSync(at, Deno.SeekMode.Start);
      f.readSync(b);
      b[0] ^= 0x10;
      f.seekSync(at, Deno.SeekMode.Start);
      f.writeSync(b);
      f.close();
    }, /superblock checksum does not match/);
  }
});

Deno.test("twz: usage mistakes are one line with exit code 2", async () => {
  assertOneLineError(await twz(["frob"]), 2, /unknown command "frob"/);
  assertOneLineError(
    await twz(["boot", "--hal", "nope", "--image", tmpImage()]),
    2,
    /unknown HAL "nope"/,
  );
  assertOneLineError(await twz(["boot", "--bogus"]), 2, /bogus/);
  assertOneLineError(await twz(["boot", "--size", "lots", "--image", tmpImage()]), 2, /not a size/);
  assertOneLineError(await twz(["bench", "nope"]), 2, /unknown benchmark/);
});

Deno.test("twz boot --script runs a file of commands", async () => {
  const dir = tmpDir();
  const script = join(dir, "s.twz");
  Deno.writeTextFileSync(script, "# a comment\nnew --size 100\ndf\n");
  const r = await twz([
    "boot",
    "--image",
    join(dir, "t.img"),
    "--size",
    "8M",
    "--script",
    script,
    "--quiet",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(lines(r.stdout)[0], ID);
  assert.match(r.stdout, /objects: +1 persistent, 0 volatile/);
});

Deno.test("twz boot: names: new --name, OBJ by name across boots, rename, rm", async () => {
  const image = tmpImage();
  const first = await twz(
    ["boot", "--image", image, "--size", "16M", "--quiet"],
    'new --size 4096 --name /docs/readme\nwrite /docs/readme 0 "named hello"\n',
  );
  assert.equal(first.code, 0, first.stderr);
  const id = lines(first.stdout)[0];
  assert.match(id, ID);
  const second = await twz(
    ["boot", "--image", image, "--quiet"],
    [
      "read /docs/readme 0 32",
      "names /docs",
      "rename /docs/readme /docs/old",
      "read /docs/readme 0 5",
      "stat /docs/old",
      "rm /docs/old",
      "names /docs",
    ].join("\n"),
  );
  assert.equal(second.code, 1, "one command failed on purpose");
  const out = lines(second.stdout);
  assert.equal(out[0], "named hello");
  assert.equal(out[1], `${id}  obj  readme`);
  assert.equal(out[2], "/docs/readme -> /docs/old");
  assert.equal(out[3], `id:         ${id}`);
  assert.ok(out.includes("deleted 1 object"));
  assert.equal(out.at(-1), "deleted 1 object", "the directory is empty afterwards");
  assert.match(second.stderr, /^read: No object is named \/docs\/readme/m);
});

const pmem = (await import("@twz/hal-pmem")).plugin.describe();

Deno.test({
  name: `twz boot --hal pmem runs a script with the same output as --hal sim${
    pmem.available ? "" : ` (skipped: ${pmem.reason})`
  }`,
  ignore: !pmem.available && Deno.env.get("CI") !== "true",
  fn: async () => {
    const script = [
      "new --size 4096 --name /a",
      "new --size 100",
      'write /a 10 "same on every HAL"',
      "read /a 10 64",
      "grow /a 10000",
      "stat /a",
      "names /",
      "reboot",
      "read /a 10 64",
      "df",
      "shutdown",
    ].join("\n");
    const normalize = (out: string) => {
      const ids = new Map<string, string>();
      return out.replace(/[0-9a-f]{32}/g, (id) => {
        if (!ids.has(id)) ids.set(id, `<id${ids.size}>`);
        return ids.get(id)!;
      }).replace(/created: .*/g, "created: <time>");
    };
    const shm = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "twz-cli-" });
    try {
      const sim = await twz([
        "boot",
        "--hal",
        "sim",
        "--image",
        join(shm, "sim.img"),
        "--size",
        "16M",
        "--quiet",
      ], script);
      const real = await twz([
        "boot",
        "--hal",
        "pmem",
        "--image",
        join(shm, "pmem.img"),
        "--size",
        "16M",
        "--quiet",
      ], script);
      assert.equal(sim.code, 0, sim.stderr);
      assert.equal(real.code, 0, real.stderr);
      assert.equal(normalize(real.stdout), normalize(sim.stdout));
      assert.match(sim.stdout, /same on every HAL/);
    } finally {
      Deno.removeSync(shm, { recursive: true });
    }
  },
});

Deno.test("twz boot: kv put/get/del/count/scan; every ok survives a power failure", async () => {
  const image = tmpImage();
  const script = [
    "kv count",
    "kv put apple red fruit",
    'kv put banana "yellow\\tlong"',
    "kv put cherry dark red",
    "kv put apple green",
    "kv get apple",
    "kv scan b d",
    "kv del banana",
    "crash --policy random --seed 9",
    "kv count",
    "kv scan",
    "kv get banana",
    "kv del nothing",
  ].join("\n");
  const r = await twz(["boot", "--image", image, "--size", "16M", "--quiet"], script);
  assert.equal(r.code, 1, "the last two commands fail on purpose");
  const out = lines(r.stdout);
  assert.deepEqual(out.slice(0, 6), ["0", "ok", "ok", "ok", "ok", "green"]);
  assert.deepEqual(out.slice(6, 9), ["banana\tyellow\tlong", "cherry\tdark red", "ok"]);
  assert.match(out[9], /^power failure:/);
  assert.deepEqual(out.slice(10), ["2", "apple\tgreen", "cherry\tdark red"]);
  assert.deepEqual(lines(r.stderr), ['kv: no key "banana"', 'kv: no key "nothing"']);
});

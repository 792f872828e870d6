// End-to-end: the `twz` command as a user runs it, in a subprocess.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { assertOneLineError, twz } from "./_twz.ts";

const ID = /^[0-9a-f]{32}$/;

const tmpDir = scratchDirs("twz-cli-");
const tmpImage = () => join(tmpDir(), "t.img");
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);
/**
 * What every writable boot adds to an image: the naming root (the kernel root
 * object and the root directory) and `/dev`, where the boot binds its four
 * volatile device objects.
 */
const SYSTEM_OBJECTS = 3;
const DEVICES = 4;

Deno.test("twz boot: new, write, shutdown; a second boot reads the text back", async () => {
  const image = tmpImage();
  const first = await twz(["boot", "--image", image, "--size", "8M"], "new --size 4096\n");
  assert.equal(first.code, 0, first.stderr);
  const id = lines(first.stdout)[0]!;
  assert.match(id, ID);
  assert.match(first.stderr, /formatted a new image/);
  const second = await twz(
    ["boot", "--image", image],
    `write ${id} 100 "hello, persistent world"\nshutdown\n`,
  );
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(lines(second.stdout), ["wrote 23 bytes"]);
  assert.match(second.stderr, new RegExp(`${1 + SYSTEM_OBJECTS} objects recovered`));
  const third = await twz(["boot", "--image", image, "--quiet"], `read ${id} 100 64\n`);
  assert.equal(third.code, 0, third.stderr);
  assert.deepEqual(lines(third.stdout), ["hello, persistent world"]);
  assert.equal(third.stderr, "");
});

Deno.test("twz boot: a volatile object is gone after reboot, a persistent one stays", async () => {
  const image = tmpImage();
  const r = await twz(
    ["boot", "--image", image, "--size", "8M", "--quiet"],
    "new --volatile --size 4096\nnew --size 4096\nls\nreboot\ndf\nls\n",
  );
  assert.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  const [vol, pers] = out as [string, string];
  assert.match(vol, ID);
  assert.match(pers, ID);
  const df = out.findIndex((l) => l.startsWith("objects:")); // between the two listings
  const before = out.slice(2, df).join("\n");
  const after = out.slice(df + 3).join("\n");
  assert.match(before, new RegExp(vol));
  assert.match(after, new RegExp(pers));
  assert.doesNotMatch(after, new RegExp(vol));
});

Deno.test("twz boot: after crash every acknowledged object is there", async () => {
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
  assert.match(out[5]!, /^power failure: \d+ of \d+ unpersisted cache lines survived$/);
  const second = out.findIndex((l, i) => i > 5 && l.startsWith("power failure:"));
  // `ls` lists the system's objects too: every acknowledged one is among them.
  const listed = new Set(out.slice(6, second).map((l) => l.split(/\s+/)[0]));
  for (const id of ids) assert.ok(listed.has(id), `${id} after the first crash`);
  assert.match(r.stderr, new RegExp(`${5 + SYSTEM_OBJECTS} objects recovered`));
  const again = new Set(out.slice(second + 1).map((l) => l.split(/\s+/)[0]));
  for (const id of ids) assert.ok(again.has(id), `${id} after the second crash`);
});

/** An image holding the key a (its /kv made), for crash-point tests. */
async function kvBase(): Promise<string> {
  const image = tmpImage();
  const r = await twz(["boot", "--image", image, "--size", "16M", "--quiet"], "kv put a 1\n");
  assert.equal(r.code, 0, r.stderr);
  return image;
}

/**
 * The crash point (drains counted from image open) after which the first
 * `puts` commands of `script` on a copy of `image` were acknowledged and the
 * next one was not: a boot's own drains (recovery, binding `/dev`) come
 * first, so points are found, not assumed. Copies are probed, the image is
 * left alone.
 */
async function pointAfter(image: string, script: string, puts: number): Promise<number> {
  const probe = `${image}.probe`;
  const acknowledged = async (point: number) => {
    Deno.copyFileSync(image, probe);
    const r = await twz(["boot", "--image", probe, "--quiet", "--crash-at", String(point)], script);
    return lines(r.stdout).filter((l) => l === "ok").length;
  };
  let lo = 0, hi = 256; // the smallest point with `puts` acknowledged lies in [lo, hi]
  assert.ok(await acknowledged(hi) >= puts, "the script never acknowledged enough puts");
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (await acknowledged(mid) >= puts) hi = mid;
    else lo = mid + 1;
  }
  Deno.removeSync(probe);
  return lo;
}

async function kvScan(image: string): Promise<string[]> {
  const r = await twz(["boot", "--image", image, "--quiet"], "kv scan\n");
  assert.equal(r.code, 0, r.stderr);
  return lines(r.stdout);
}

Deno.test("twz boot --crash-at: unpersisted data is lost under --evict strict, kept under all", async () => {
  // The crash point right after b's put (two drains after the boot's own):
  // the put of b is acknowledged ("ok"); the put of c has stored and flushed
  // its transaction, which is pending at the crash: strict loses it, all
  // keeps it.
  const scan: Record<string, string[]> = {};
  const script = "kv put b 2\nkv put c 3\n";
  const point = await pointAfter(await kvBase(), script, 1);
  for (const evict of ["strict", "all"]) {
    const image = await kvBase();
    const r = await twz(
      ["boot", "--image", image, "--quiet", "--crash-at", String(point), "--evict", evict],
      script,
    );
    assertOneLineError(
      r,
      4,
      new RegExp(`^twz: power failed at drain ${point}: .*the image holds what survived$`),
    );
    assert.deepEqual(lines(r.stdout), ["ok"], "b was acknowledged, c was not");
    scan[evict] = await kvScan(image);
  }
  assert.deepEqual(scan.strict, ["a\t1", "b\t2"], "c's transaction was in flight: lost");
  assert.deepEqual(scan.all, ["a\t1", "b\t2", "c\t3"], "every pending line kept");
  // Crash point 0 (before the first drain): strict loses b too, but never a.
  const image = await kvBase();
  const r = await twz(["boot", "--image", image, "--quiet", "--crash-at", "0"], "kv put b 2\n");
  assert.equal(r.code, 4, r.stderr);
  assert.deepEqual(await kvScan(image), ["a\t1"]);
});

Deno.test("twz boot --crash-at: a point in the final shutdown exits 4; one never reached says so", async () => {
  const image = await kvBase();
  const script = "kv put b 2\nkv put c 3\n";
  // Both puts acknowledged: the next drain is the final shutdown's.
  const point = await pointAfter(image, script, 2);
  const r = await twz(["boot", "--image", image, "--quiet", "--crash-at", String(point)], script);
  assertOneLineError(r, 4, new RegExp(`power failed at drain ${point}\\b`));
  assert.deepEqual(lines(r.stdout), ["ok", "ok"], "both puts done; the shutdown crashed");
  assert.deepEqual(await kvScan(image), ["a\t1", "b\t2", "c\t3"]);
  const never = await twz(
    ["boot", "--image", image, "--quiet", "--crash-at", "1000"],
    "kv put d 4\n",
  );
  assertOneLineError(
    never,
    0,
    /^twz: crash point 1000 was never reached: the run ended after \d+ drains/,
  );
  assert.deepEqual(lines(never.stdout), ["ok"]);
});

Deno.test("twz boot --crash-at during the very first format: the next boot formats it again", async () => {
  for (
    const [point, evict] of [["0", "strict"], ["1", "strict"], ["1", "all"], [
      "2",
      "strict",
    ]] as const
  ) {
    const image = tmpImage();
    const r = await twz(
      ["boot", "--image", image, "--size", "1M", "--crash-at", point, "--evict", evict],
      "",
    );
    assertOneLineError(r, 4, /power failed/);
    assert.ok(Deno.statSync(image).size === 1 << 20, "the crashed image stays");
    const again = await twz(["boot", "--image", image], "new --size 4096\n");
    assert.equal(again.code, 0, `${point} ${evict}: ${again.stderr}`);
    assert.match(lines(again.stdout)[0]!, ID);
    assert.match(again.stderr, /formatted the image \(its first format had been cut short\)/);
  }
  // A used image whose magic was wiped is still refused, and left as it is.
  const used = tmpImage();
  assert.equal((await twz(["boot", "--image", used, "--size", "1M", "--quiet"], "new\n")).code, 0);
  const f = Deno.openSync(used, { write: true });
  f.writeSync(new Uint8Array(8));
  f.close();
  const before = Deno.readFileSync(used);
  assertOneLineError(
    await twz(["boot", "--image", used], "ls\n"),
    3,
    /no superblock magic|superblock has no magic/,
  );
  assert.deepEqual(Deno.readFileSync(used), before);
});

Deno.test("twz boot: a command error is one line, the shell goes on, the exit code says so", async () => {
  const r = await twz(
    ["boot", "--keep-going", "--image", tmpImage(), "--size", "8M", "--quiet"],
    [
      "frobnicate",
      "read 00000000000000000000000000000000 0 1",
      "read 0123456789abcdef0123456789abcdef 0 1",
      "new --size 1G",
      "new --size 4096",
    ].join("\n"),
  );
  assert.equal(r.code, 1);
  const errs = lines(r.stderr);
  assert.equal(errs.length, 4, r.stderr);
  assert.match(errs[0]!, /^frobnicate: unknown command/);
  assert.match(errs[1]!, /^read: .*not a valid object ID/);
  assert.match(errs[2]!, /^read: No object 0123456789abcdef0123456789abcdef/);
  assert.match(errs[3]!, /^new: No space for/);
  assert.match(lines(r.stdout)[0]!, ID);
});

async function damaged(mutate: (image: string) => void, pattern: RegExp): Promise<void> {
  const image = tmpImage();
  const made = await twz(
    ["boot", "--keep-going", "--image", image, "--size", "8M", "--quiet"],
    "new\n",
  );
  assert.equal(made.code, 0, made.stderr);
  mutate(image);
  const before = Deno.readFileSync(image);
  const r = await twz(["boot", "--keep-going", "--image", image], "ls\n");
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
      b[0]! ^= 0x10;
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
    /--hal: unknown hal "nope" \(sim or pmem\)/,
  );
  assertOneLineError(await twz(["boot", "--bogus"]), 2, /bogus/);
  assertOneLineError(await twz(["boot", "--size", "lots", "--image", tmpImage()]), 2, /not a size/);
  assertOneLineError(await twz(["bench", "nope"]), 2, /unknown benchmark/);
  // Negative values, missing values and arguments: one line each (tests/argv_test.ts has every case).
  assertOneLineError(await twz(["boot", "--size", "-1"]), 2, /^twz: --size: "-1" is negative/);
  assertOneLineError(
    await twz(["crashtest", "kv", "--seed", "-1"]),
    2,
    /^twz: --seed: "-1" is negative$/,
  );
  assertOneLineError(await twz(["crashtest", "kv", "--replay"]), 2, /^twz: --replay needs a value/);
  assertOneLineError(await twz(["fsck"]), 2, /^twz: missing --image PATH$/);
  assertOneLineError(await twz(["crashtest"]), 2, /^twz: missing WORKLOAD/);
  assertOneLineError(await twz([]), 2, /no command given/);
  assertOneLineError(
    await twz(["run", "prog.js"]),
    1,
    /cannot read program prog\.js: no such file/,
  );
});

Deno.test("twz boot: a bad --size is refused before any file is made", async () => {
  for (
    const [size, pattern] of [
      ["4K", /--size 4096 is too small: an image needs at least \d+ bytes/],
      ["1T", /--size 1099511627776 is too large for hal sim.*at most 16\.0 GiB/],
    ] as const
  ) {
    const image = tmpImage();
    assertOneLineError(await twz(["boot", "--image", image, "--size", size]), 2, pattern);
    assert.throws(() => Deno.statSync(image), Deno.errors.NotFound, `${size}: no file left`);
  }
});

Deno.test("twz boot: argument errors in the shell are one line and the shell goes on", async () => {
  const r = await twz(
    ["boot", "--keep-going", "--image", tmpImage(), "--size", "1M", "--quiet"],
    [
      "new --prot xyz",
      "new --size 4096 --name /x",
      "write /x 9007199254740993 a",
      "read /x 99999999999999999999 1",
      "read /x 0",
      "write /x 0 'unterminated",
      "write /x 0 hi",
      "read /x 0 2",
    ].join("\n"),
  );
  assert.equal(r.code, 1);
  assert.deepEqual(lines(r.stderr), [
    'new: --prot: "xyz" is not a protection (like "rw")',
    'write: OFFSET: "9007199254740993" is too large',
    'read: OFFSET: "99999999999999999999" is too large',
    "write: unterminated quote (') at column 12",
  ]);
  assert.match(lines(r.stdout)[0]!, ID);
  assert.deepEqual(lines(r.stdout).slice(1), ["wrote 2 bytes", "hi"], "the shell went on");
});

Deno.test("twz boot: rm refuses a directory and unbinds the names of everything it deleted", async () => {
  const r = await twz(
    ["boot", "--keep-going", "--image", tmpImage(), "--size", "4M", "--quiet"],
    [
      "new --size 4096 --name /d/a",
      "new --size 4096 --name /p",
      "new --size 4096 --tie /p --name /d/child",
      "bind /alias /d/child",
      "rm /d",
      "rm /p",
      "names /",
      "names /d",
    ].join("\n"),
  );
  assert.equal(r.code, 1, "rm /d fails on purpose");
  assert.deepEqual(lines(r.stderr), [
    "rm: /d is a directory of names (2 names in it): rm deletes objects; unbind its names first, then unbind the directory",
  ]);
  const out = lines(r.stdout);
  const a = out[0];
  assert.deepEqual(out.slice(4, 8), [
    "deleted 2 objects",
    "unbound /p",
    "unbound /d/child",
    "unbound /alias",
  ]);
  assert.match(out[8]!, /^[0-9a-f]{32} {2}dir {2}d\/$/);
  assert.match(out[9]!, /^[0-9a-f]{32} {2}dir {2}dev\/$/, "the boot's devices");
  assert.deepEqual(out.slice(10), [`${a}  obj  a`]);
});

Deno.test("twz fsck checks a read-only image without --repair", async () => {
  const image = tmpImage();
  assert.equal((await twz(["boot", "--image", image, "--size", "1M", "--quiet"], "new\n")).code, 0);
  Deno.chmodSync(image, 0o444);
  const r = await twz(["fsck", "--image", image, "--deep"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`: clean \\(${1 + SYSTEM_OBJECTS} objects`));
});

Deno.test("twz bench: tiny runs print their fields; images are never reused; errors are one line", async () => {
  const cd = await twz(["bench", "create-delete", "--ops", "20", "--rounds", "1", "--json"]);
  assert.equal(cd.code, 0, cd.stderr);
  const rows = lines(cd.stdout).map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((x) => x.case), [
    "create-4k",
    "delete-4k",
    "create+delete-4k",
    "metadata-bytes-per-object",
  ]);
  for (const x of rows.slice(0, 3)) {
    assert.equal(x.bench, "create-delete");
    assert.equal(x.ops, 20);
    assert.ok(x.ns_per_op > 0 && x.ops_per_sec > 0, JSON.stringify(x));
  }
  assert.equal(rows[0].drains_per_op, 3);
  assert.ok(rows[0].floor_ns_per_op > 0);
  assert.equal(rows[3].table_slot_bytes, 64);
  const kv = await twz(["bench", "kv-insert", "--ops", "50", "--rounds", "1", "--json"]);
  assert.equal(kv.code, 0, kv.stderr);
  const [row] = lines(kv.stdout).map((l) => JSON.parse(l));
  assert.equal(row.bench, "kv-insert");
  assert.equal(row.case, "hashmap-insert-tx");
  assert.equal(row.ops, 50);
  assert.ok(row.ops_per_sec > 0 && row.drains_per_op > 0, JSON.stringify(row));
  // Text output keeps integers exact.
  const text = await twz(["bench", "boot", "--ops", "5", "--rounds", "1"]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /image_bytes=67108864 /);

  const existing = tmpImage();
  Deno.writeFileSync(existing, new Uint8Array([1, 2, 3]));
  for (const name of ["create-delete", "kv-insert", "ptr-resolve", "accessors"]) {
    const r = await twz(["bench", name, "--image", existing, "--ops", "10", "--rounds", "1"]);
    assertOneLineError(r, 2, /exists: benchmarks write a new image/);
  }
  assert.deepEqual(Deno.readFileSync(existing), new Uint8Array([1, 2, 3]));
  assertOneLineError(await twz(["bench", "boot", "--image", tmpImage()]), 2, /takes no --image/);
  assertOneLineError(await twz(["bench", "persist"]), 2, /hal-pmem only/);
  assertOneLineError(
    await twz(["bench", "persist", "--hal", "pmem", "--image", existing]),
    2,
    /exists/,
  );
  assertOneLineError(
    await twz(["bench", "kv-insert", "--ops", "100000000", "--rounds", "1"]),
    2,
    /too large for hal sim/,
  );
});

Deno.test("twz boot --script runs a file of commands", async () => {
  const dir = tmpDir();
  const script = join(dir, "s.twz");
  Deno.writeTextFileSync(script, "# a comment\nnew --size 4096\ndf\n");
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
  assert.match(lines(r.stdout)[0]!, ID);
  assert.match(
    r.stdout,
    new RegExp(`objects: +${1 + SYSTEM_OBJECTS} persistent, ${DEVICES} volatile`),
  );
});

Deno.test("twz boot: names: new --name, OBJ by name across boots, rename, rm", async () => {
  const image = tmpImage();
  const first = await twz(
    ["boot", "--keep-going", "--image", image, "--size", "16M", "--quiet"],
    'new --size 4096 --name /docs/readme\nwrite /docs/readme 0 "named hello"\n',
  );
  assert.equal(first.code, 0, first.stderr);
  const id = lines(first.stdout)[0]!;
  assert.match(id, ID);
  const second = await twz(
    ["boot", "--keep-going", "--image", image, "--quiet"],
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
  assert.deepEqual(out.slice(-2), ["deleted 1 object", "unbound /docs/old"]);
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
      "new --size 512",
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
  const r = await twz(
    ["boot", "--keep-going", "--image", image, "--size", "16M", "--quiet"],
    script,
  );
  assert.equal(r.code, 1, "the last two commands fail on purpose");
  const out = lines(r.stdout);
  assert.deepEqual(out.slice(0, 6), ["0", "ok", "ok", "ok", "ok", "green"]);
  assert.deepEqual(out.slice(6, 9), ["banana\tyellow\tlong", "cherry\tdark red", "ok"]);
  assert.match(out[9]!, /^power failure:/);
  assert.deepEqual(out.slice(10), ["2", "apple\tgreen", "cherry\tdark red"]);
  assert.deepEqual(lines(r.stderr), ['kv: no key "banana"', 'kv: no key "nothing"']);
});

Deno.test("twz boot never formats over a file whose first pages are zero but holds data", async () => {
  const image = join(tmpDir(), "disk.iso");
  const bytes = new Uint8Array(1 << 20);
  bytes.set(new TextEncoder().encode("CD001 volume descriptor and data"), 32 * 1024);
  Deno.writeFileSync(image, bytes);
  const r = await twz(["boot", "--image", image], "ls\n");
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /no superblock magic/);
  assert.deepEqual(Deno.readFileSync(image), bytes, "the file is untouched");
});

Deno.test("twz help documents --read-only and exit code 5; --read-only never creates an image", async () => {
  const help = await twz(["help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--read-only/);
  assert.match(help.stdout, /5 image in use by another process/);
  assert.match(help.stdout, /--set sync=data/);
  const image = tmpImage();
  const r = await twz(["boot", "--image", image, "--read-only"], "ls\n");
  assertOneLineError(r, 3, /^twz: cannot boot .*t\.img: Cannot open image .*: no such file/);
  assert.throws(() => Deno.statSync(image), Deno.errors.NotFound);
});

Deno.test("twz boot: --evict and --seed without --crash-at are refused in one line, before the image is touched", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  for (const [flag, value] of [["--evict", "all"], ["--seed", "3"]] as const) {
    const r = await twz(["boot", "--image", image, flag, value], "");
    assertOneLineError(r, 2, new RegExp(`^twz: ${flag} only applies with --crash-at N$`));
  }
  const r = await twz(["boot", "--image", image, "--crash-at", "5", "--evict", "bogus"], "");
  assertOneLineError(r, 2, /^twz: --evict: unknown policy "bogus" \(strict, random or all\)$/);
  assert.throws(() => Deno.statSync(image), Deno.errors.NotFound);
});

Deno.test("negative numbers are refused as such: --size -5M, --crash-at -3, new --size -64", async () => {
  const image = tmpImage();
  assertOneLineError(
    await twz(["boot", "--keep-going", "--image", image, "--size", "-5M"], ""),
    2,
    /^twz: --size: "-5M" is negative: a size is a positive number of bytes$/,
  );
  assertOneLineError(
    await twz(["boot", "--keep-going", "--image", image, "--crash-at", "-3"], ""),
    2,
    /^twz: --crash-at: "-3" is negative$/,
  );
  const r = await twz(
    ["boot", "--keep-going", "--image", image, "--size", "8M", "--quiet"],
    "new --size -64\n",
  );
  assertOneLineError(
    r,
    1,
    /^new: --size: "-64" is negative: a size is a positive number of bytes$/,
  );
});

Deno.test("twz boot: scripted input (stdin and --script) stops at the first failing line unless --keep-going", async () => {
  const script = "mkdir /a\nread /nothing 0 1\nmkdir /b\nnames /\n";
  const check = (r: { code: number; stdout: string; stderr: string }) => {
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(lines(r.stderr), [
      "read: No object is named /nothing",
      "twz: stopped at line 2, the first that failed (--keep-going runs every line)",
    ]);
    assert.equal(lines(r.stdout).length, 1, "only mkdir /a ran");
  };
  check(await twz(["boot", "--image", tmpImage(), "--size", "1M", "--quiet"], script));
  const file = join(tmpDir(), "s.twz");
  Deno.writeTextFileSync(file, script);
  check(await twz(["boot", "--image", tmpImage(), "--size", "1M", "--quiet", "--script", file]));
  const all = await twz(
    ["boot", "--keep-going", "--image", tmpImage(), "--size", "1M", "--quiet"],
    script,
  );
  assert.equal(all.code, 1);
  assert.deepEqual(lines(all.stderr), ["read: No object is named /nothing"]);
  assert.match(all.stdout, /dir {2}a\/\n.*dir {2}b\//);
});

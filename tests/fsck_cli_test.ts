// `twz fsck` on the command line (packages/cli/fsck.ts over @twz/crashtest/deep-check): exit codes,
// output, the undo file, the image lock, memory. The kernel checker's unit tests are in
// packages/kernel/fsck_test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fsck, Kernel, type ObjID } from "@twz/kernel";
import { crc32, decodeSuperblock, findSlotOffset, type Geometry } from "@twz/kernel/format";
import { openSim, type SimHal } from "@twz/hal-sim";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { MAIN, twz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-fsck-");

const SIZE = 4 << 20;

interface Fixture {
  hal: SimHal;
  g: Geometry;
  ids: ObjID[];
  parent: ObjID;
  child: ObjID;
  contents: Map<ObjID, Uint8Array>;
}

/** An image with a few objects (one tied to another), cleanly shut down. */
function fixture(): Fixture {
  const hal = openSim({ size: SIZE });
  const kernel = Kernel.boot(hal);
  const contents = new Map<ObjID, Uint8Array>();
  const ids: ObjID[] = [];
  for (let i = 0; i < 6; i++) {
    const id = kernel.create({ size: 1000 + i * 900 });
    const data = new Uint8Array(1000 + i * 900).fill(i + 1);
    kernel.write(id, 0, data);
    contents.set(id, data);
    ids.push(id);
  }
  const parent = ids[0]!;
  const child = kernel.create({ size: 500, ties: [parent] });
  contents.set(child, new Uint8Array(500));
  ids.push(child);
  kernel.delete(kernel.create({ size: 3000 })); // leaves a tombstone or two
  kernel.shutdown();
  return { hal, g: decodeSuperblock(hal.region.bytes), ids, parent, child, contents };
}

const view = (f: Fixture) =>
  new DataView(f.hal.region.bytes.buffer, f.hal.region.bytes.byteOffset, f.hal.region.size);

const slotOf = (f: Fixture, id: ObjID, state?: number) =>
  findSlotOffset(f.hal.region.bytes, f.g, id, state);

Deno.test("twz fsck: exit 0 clean, 1 problems, --repair fixes, 3 cannot open, 2 usage", async () => {
  const f = fixture();
  const dir = tmpDir();
  const path = join(dir, "t.img");
  view(f).setUint32(f.g.bitmapOffset + 60, 1 << 31, true); // a leaked block (its line fails)
  Deno.writeFileSync(path, f.hal.region.bytes);
  f.hal.close();
  const found = await twz(["fsck", "--image", path]);
  assert.equal(found.code, 1, found.stderr);
  assert.match(found.stdout, /bitmap: 1 block\(s\) marked used belong to no object \(leaked\)/);
  assert.match(found.stdout, /bitmap: 1 bitmap line\(s\) fail their check: line 0/);
  assert.match(found.stdout, /2 problem\(s\) found; 2 repairable with --repair/);
  const json = await twz(["fsck", "--image", path, "--json", "--deep"]);
  const report = JSON.parse(json.stdout);
  assert.equal(report.clean, false);
  assert.equal(report.problems[0]!.area, "bitmap");
  assert.ok(report.libtwz, json.stdout + json.stderr);
  const fixed = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /repaired: bitmap: freed 1 leaked block/);
  const clean = await twz(["fsck", "--image", path]);
  assert.equal(clean.code, 0);
  assert.match(clean.stdout, /clean \(7 objects, 1 tie edges/);
  for (
    const [args, code, pattern] of [
      [["fsck", "--image", join(dir, "none.img")], 3, /cannot open .*none\.img: no such file/],
      [["fsck"], 2, /^twz: missing --image PATH$/],
      [["fsck", "--image", path, "--bogus"], 2, /bogus/],
    ] as const
  ) {
    const r = await twz([...args]);
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr.split("\n")[0]!, pattern);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  }
  Deno.removeSync(dir, { recursive: true });
});

async function sha(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

Deno.test("twz fsck --repair writes an undo file; --undo restores the image byte for byte", async () => {
  const f = fixture();
  const dir = tmpDir();
  const path = join(dir, "t.img");
  const other = join(dir, "other.img");
  Deno.writeFileSync(other, f.hal.region.bytes); // the same image before damage...
  f.hal.region.bytes[slotOf(f, f.ids[2]!) + 16] = 0; // ... then damaged
  view(f).setUint32(f.g.rootOffset + 4, 99, true);
  Deno.writeFileSync(path, f.hal.region.bytes);
  f.hal.close();
  const before = await sha(Deno.readFileSync(path));
  const fixed = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /undo file .*t\.img\.undo holds the \d+ original bytes/);
  assert.notEqual(await sha(Deno.readFileSync(path)), before);
  const refused = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /undo file .* already exists .* --force/);
  const undone = await twz(["fsck", "--undo", `${path}.undo`, "--image", path]);
  assert.equal(undone.code, 0, undone.stderr);
  assert.match(undone.stdout, /restored \d+ range\(s\), \d+ bytes/);
  assert.equal(await sha(Deno.readFileSync(path)), before, "byte for byte");
  const twice = await twz(["fsck", "--undo", `${path}.undo`, "--image", path]);
  assert.equal(twice.code, 0);
  assert.equal(await sha(Deno.readFileSync(path)), before, "idempotent");
  // An undo file of another image (another store ID) is refused.
  const g2 = openSim({ size: SIZE });
  Kernel.boot(g2).shutdown();
  Deno.writeFileSync(other, g2.region.bytes);
  g2.close();
  const otherBefore = await sha(Deno.readFileSync(other));
  const wrong = await twz(["fsck", "--undo", `${path}.undo`, "--image", other]);
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /belongs to another image .* nothing restored/);
  assert.equal(await sha(Deno.readFileSync(other)), otherBefore);
  // --undo-file and --force choose and overwrite.
  const custom = join(dir, "u.bin");
  Deno.writeFileSync(custom, new Uint8Array(1));
  assert.equal((await twz(["fsck", "--image", path, "--repair", "--undo-file", custom])).code, 2);
  const forced = await twz(["fsck", "--image", path, "--repair", "--undo-file", custom, "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.ok(Deno.statSync(custom).size > 64);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck --undo after a superblock restored from its backup (store ID bytes damaged)", async () => {
  const f = fixture();
  const dir = tmpDir();
  const path = join(dir, "t.img");
  f.hal.region.bytes[40]! ^= 0x5a; // inside the primary's store ID
  Deno.writeFileSync(path, f.hal.region.bytes);
  f.hal.close();
  const before = await sha(Deno.readFileSync(path));
  const fixed = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /repaired: restored the superblock from its backup copy/);
  const undone = await twz(["fsck", "--undo", `${path}.undo`, "--image", path]);
  assert.equal(undone.code, 0, undone.stderr);
  assert.equal(await sha(Deno.readFileSync(path)), before);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck refuses a FIFO or a directory at once, with one line", async () => {
  const dir = tmpDir();
  const fifo = join(dir, "fifo");
  await new Deno.Command("mkfifo", { args: [fifo] }).output();
  // In this process (no start-up time): refused well within a second, never blocking.
  const { fsckImageFile } = await import("@twz/crashtest/deep-check");
  for (const options of [{}, { repair: true }, { deep: true }]) {
    const t0 = performance.now();
    assert.throws(() => fsckImageFile(fifo, options), /it is a FIFO/);
    assert.ok(performance.now() - t0 < 1000, `${performance.now() - t0} ms`);
  }
  for (const p of [fifo, dir]) {
    for (const extra of [[], ["--repair"]]) {
      const t0 = performance.now();
      const r = await twz(["fsck", "--image", p, ...extra]);
      assert.ok(performance.now() - t0 < 5000);
      assert.equal(r.code, 3);
      assert.match(r.stderr, /cannot open .*: it is a (FIFO|directory)/);
      assert.equal(r.stderr.trim().split("\n").length, 1);
    }
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck --repair takes the image lock (exit 5); plain fsck runs and says it may be stale", async () => {
  const { lockImage } = await import("@twz/kernel/hal");
  const f = fixture();
  const dir = tmpDir();
  const path = join(dir, "t.img");
  Deno.writeFileSync(path, f.hal.region.bytes);
  f.hal.close();
  const lock = lockImage(path, { exclusive: true, what: "a test" });
  try {
    const busy = await twz(["fsck", "--image", path, "--repair"]);
    assert.equal(busy.code, 5, busy.stderr);
    assert.match(busy.stderr, /in use by process \d+ \(a test\)/);
    const plain = await twz(["fsck", "--image", path]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(
      plain.stdout,
      /note: the image is in use by process \d+ \(a test\): this result may be stale/,
    );
  } finally {
    lock.release();
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck checks a 1 GiB image in a fraction of its size in memory", async () => {
  const dir = tmpDir();
  const path = join(dir, "big.img");
  const made = await twz(
    ["boot", "--image", path, "--size", String(1 << 30)],
    "new --size 100000 --name /x\nwrite /x 0 hello\nshutdown\n",
  );
  assert.equal(made.code, 0, made.stderr);
  // Run fsck in a process of its own and read its peak resident set size.
  const probe = join(dir, "probe.ts");
  const cli = new URL(MAIN.replace(/main\.ts$/, "fsck.ts"), "file:///").href; // `twz fsck`'s main
  Deno.writeTextFileSync(
    probe,
    `const { main } = await import(${JSON.stringify(cli)});
const code = await main(["--image", ${JSON.stringify(path)}, "--json"]);
const hwm = /VmHWM:\\s+(\\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"))![1];
console.error(JSON.stringify({ code, peak: Number(hwm) * 1024 }));`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", new URL("../deno.json", import.meta.url).pathname, probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  const { code, peak } = JSON.parse(err.trim().split("\n").pop()!);
  const report = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(code, 0, err);
  assert.equal(report.clean, true);
  assert.ok(report.read.bytes < (1 << 30) / 10, `read ${report.read.bytes} bytes`);
  assert.ok(peak < (1 << 30) / 2, `peak RSS ${peak} bytes for a 1 GiB image`);
  Deno.removeSync(dir, { recursive: true });
});

// --- Two intact superblock copies that disagree (a wrong value sealed with its CRC).

/** Set superblock bytes at `at` of the copy at `base`, and seal that copy (CRC-32 at 252). */
function sealedSuperblock(f: Fixture, base: number, at: number, bytes: number[]): void {
  const b = f.hal.region.bytes;
  b.set(bytes, base + at);
  view(f).setUint32(base + 252, crc32(b.subarray(base, base + 252)), true);
}

Deno.test("twz fsck --repair: a sealed wrong store ID in the superblock; --undo restores it byte for byte", async () => {
  const f = fixture();
  const dir = tmpDir();
  const path = join(dir, "t.img");
  sealedSuperblock(f, 0, 40, [f.hal.region.bytes[40]! ^ 0x5a]);
  Deno.writeFileSync(path, f.hal.region.bytes);
  f.hal.close();
  const before = await sha(Deno.readFileSync(path));
  const boot = await twz(["boot", "--image", path], "shutdown\n");
  assert.equal(boot.code, 3, boot.stdout + boot.stderr);
  assert.match(boot.stderr, /disagree \(field storeId\): run `twz fsck --repair/);
  const fixed = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.match(fixed.stdout, /repaired: restored the superblock from its backup copy/);
  assert.doesNotMatch(fixed.stdout, /tombstone/);
  const undone = await twz(["fsck", "--undo", `${path}.undo`, "--image", path]);
  assert.equal(undone.code, 0, undone.stderr);
  assert.equal(await sha(Deno.readFileSync(path)), before);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("fsck --repair: a tie edge it cannot restore is dropped, reported, and not called clean", async () => {
  const f = fixture();
  const off = slotOf(f, f.parent, 3);
  // Two fields damaged: the parent ID and the edge index; no single fix checks.
  f.hal.region.bytes.fill(0, off, off + 16);
  view(f).setUint32(off + 48, 7, true);
  const dir = tmpDir();
  const path = join(dir, "t.img");
  Deno.writeFileSync(path, f.hal.region.bytes);
  const found = fsck(f.hal);
  assert.ok(
    found.problems.some((p) =>
      p.area === "ties" &&
      /cannot be restored: repair removes it, and the tie it kept is lost/.test(p.message)
    ),
    JSON.stringify(found.problems),
  );
  const r = fsck(f.hal, { repair: true });
  assert.deepEqual(r.remaining, []);
  assert.equal(r.dropped.length, 1, JSON.stringify(r));
  assert.match(r.dropped[0]!, /dependent [0-9a-f]{32}.* could not be restored/);
  assert.equal(r.clean, false, "a dropped tie is not clean");
  const kernel = Kernel.boot(f.hal);
  assert.equal(kernel.stat(f.parent).dependents, 0);
  for (const [id, data] of f.contents) assert.deepEqual(kernel.read(id, 0, data.length), data);
  kernel.shutdown();
  f.hal.close();
  // The command says so and exits 1.
  const cli = await twz(["fsck", "--image", path, "--repair"]);
  assert.equal(cli.code, 1, cli.stdout + cli.stderr);
  assert.match(cli.stdout, /^dropped: the tie edge in slot \d+ .*could not be restored/m);
  assert.match(cli.stdout, /1 tie\(s\) could not be kept: not clean/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("twz fsck checks an image with a committed log as replayed, writing nothing; --repair replays it", async () => {
  const hal = openSim({ size: SIZE });
  const kernel = Kernel.boot(hal);
  kernel.create({ size: 100 });
  const commit = hal.region.stats().drains + 2; // contents drain, then the commit drain
  hal.region.armCrash(commit, { policy: "strict" });
  assert.throws(() => kernel.create({ size: 100 }), /power failed/);
  const dir = tmpDir();
  const path = join(dir, "c.img");
  Deno.writeFileSync(path, hal.region.bytes);
  hal.close();
  const file = Deno.readFileSync(path);
  const checked = await twz(["fsck", "--image", path]);
  assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  assert.match(checked.stdout, /note: the log holds a committed transaction .* boot replays it/);
  assert.match(checked.stdout, /clean \(2 objects/);
  assert.deepEqual(Deno.readFileSync(path), file, "checking writes nothing");
  const cli = await twz(["fsck", "--image", path, "--repair"]);
  assert.match(cli.stdout, /repaired: replayed the committed metadata log/);
  Deno.removeSync(dir, { recursive: true });
});

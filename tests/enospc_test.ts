// A full disk, on a 10 MiB tmpfs mounted for the test (needs root: without
// it each case prints one SKIPPED line, and fails under CI=true). Images are
// allocated in full when created, so a disk without room fails at once with
// one line and no file left, and a session whose image fits never meets the
// full disk later: nothing acknowledged is lost. Both HALs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertOneLineError, BootSession as Session, type Run, twz } from "./_twz.ts";

const ID = /^[0-9a-f]{32}$/;
const CI = Deno.env.get("CI") === "true";
const pmem = (await import("@twz/hal-pmem")).plugin.describe();
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);

/** Why a 10 MiB tmpfs cannot be mounted here, or undefined when it can. */
function cannotMount(): string | undefined {
  if (Deno.build.os !== "linux") return "mounting a tmpfs needs Linux";
  if (Deno.uid() !== 0) return "mounting a tmpfs needs root";
  return undefined;
}
const why = cannotMount();
if (why !== undefined) console.log(`SKIPPED: enospc tests: ${why}`);

/** Run `fn` with a fresh 10 MiB tmpfs mounted at a temporary directory. */
async function withSmallDisk(fn: (dir: string) => Promise<void>): Promise<void> {
  if (why !== undefined) {
    if (CI) throw new Error(`CI=true forbids skipping: ${why}`);
    return;
  }
  const dir = Deno.makeTempDirSync({ prefix: "twz-enospc-" });
  const mount = new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=10m", "tmpfs", dir],
    stderr: "piped",
  }).outputSync();
  if (!mount.success) {
    Deno.removeSync(dir);
    const text = new TextDecoder().decode(mount.stderr).trim();
    if (CI) throw new Error(`cannot mount a tmpfs: ${text}`);
    console.log(`SKIPPED: enospc tests: cannot mount a tmpfs: ${text}`);
    return;
  }
  try {
    await fn(dir);
  } finally {
    const umount = new Deno.Command("umount", { args: [dir] }).outputSync();
    assert.ok(umount.success, "umount");
    Deno.removeSync(dir);
  }
}

/** Fill the file system holding `dir` to the last byte with one file. */
function fill(dir: string): void {
  const file = Deno.openSync(join(dir, "filler"), { write: true, create: true });
  const chunk = new Uint8Array(64 << 10).fill(1);
  try {
    for (;;) file.writeSync(chunk);
  } catch (e) {
    assert.match(String(e), /No space left|os error 28/);
  }
  try {
    for (;;) file.writeSync(chunk.subarray(0, 512));
  } catch { /* full to the last block */ }
  file.close();
}

for (
  const { hal, ignore, note } of [
    { hal: "sim", ignore: false, note: "" },
    {
      hal: "pmem",
      ignore: !pmem.available && !CI,
      note: pmem.available ? "" : ` (skipped: ${pmem.reason})`,
    },
  ]
) {
  Deno.test({
    name:
      `${hal}: an image larger than the disk's room fails at once, one line, no file left${note}`,
    ignore,
    fn: () =>
      withSmallDisk(async (dir) => {
        const image = join(dir, "big.img");
        const r = await twz(["boot", "--hal", hal, "--image", image, "--size", "16M"], "ls\n");
        assertOneLineError(
          r,
          3,
          /^twz: cannot boot .*big\.img: Cannot create image .*: it needs 16\.0 MiB but the disk has only [\d.]+ MiB free$/,
        );
        assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
        // One that fits is created and boots.
        const r2 = await twz(["boot", "--hal", hal, "--image", image, "--size", "9M"], "ls\n");
        assert.equal(r2.code, 0, r2.stderr);
        Deno.removeSync(image);
      }),
  });

  Deno.test({
    name: `${hal}: a session whose image fits loses nothing when the disk fills up${note}`,
    ignore,
    fn: () =>
      withSmallDisk(async (dir) => {
        const image = join(dir, "t.img");
        const session = new Session(["--hal", hal, "--image", image, "--size", "4M", "--quiet"]);
        let ids: string[] = [];
        let ended: Run;
        try {
          const id = await session.ask("new --size 64K");
          assert.match(id, ID);
          assert.equal(
            await session.ask(`write ${id} 0 "before the disk filled"`),
            "wrote 22 bytes",
          );
          fill(dir);
          assert.equal(
            await session.ask(`write ${id} 100 "after the disk filled"`),
            "wrote 21 bytes",
          );
          const id2 = await session.ask("new --size 1M");
          assert.match(id2, ID);
          assert.equal(await session.ask(`write ${id2} 500000 "deep inside"`), "wrote 11 bytes");
          ids = [id, id2];
        } finally {
          ended = await session.end();
        }
        assert.equal(ended.code, 0, ended.stderr);
        assert.equal(ended.stderr, "");
        // The disk is still full: the next boot cannot write its lock side
        // file, and needs none.
        const again = await twz(
          ["boot", "--hal", hal, "--image", image, "--quiet"],
          `read ${ids[0]} 0 22\nread ${ids[0]} 100 21\nread ${ids[1]} 500000 11\n`,
        );
        assert.equal(again.code, 0, again.stderr);
        assert.deepEqual(lines(again.stdout), [
          "before the disk filled",
          "after the disk filled",
          "deep inside",
        ]);
      }),
  });
}

Deno.test({
  name: "sim: creating an image on a full disk fails at once and leaves no partial file",
  fn: () =>
    withSmallDisk(async (dir) => {
      fill(dir);
      const image = join(dir, "t.img");
      const r = await twz(["boot", "--image", image, "--size", "1M"], "ls\n");
      assertOneLineError(
        r,
        3,
        /Cannot create image .*: (it needs 1\.0 MiB but the disk has only|no space left)/,
      );
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["filler"]);
    }),
});

Deno.test({
  name:
    "sim: a sparse image (made before full allocation) meeting ENOSPC: one line, nothing acknowledged lost",
  fn: () =>
    withSmallDisk(async (dir) => {
      // A formatted image with one object, copied onto the small disk with
      // its zero blocks left as holes, as images were made before.
      const elsewhere = Deno.makeTempDirSync({ prefix: "twz-enospc-src-" });
      const image = join(dir, "t.img");
      let id: string;
      try {
        const src = join(elsewhere, "t.img");
        const made = await twz(
          ["boot", "--image", src, "--size", "4M", "--quiet"],
          "new --size 1M\n",
        );
        assert.equal(made.code, 0, made.stderr);
        id = lines(made.stdout)[0]!;
        const cp = new Deno.Command("cp", { args: ["--sparse=always", src, image] }).outputSync();
        assert.ok(cp.success, "cp --sparse=always");
      } finally {
        Deno.removeSync(elsewhere, { recursive: true });
      }
      assert.ok((Deno.statSync(image).blocks ?? 0) * 512 < 4 << 20, "the copy is sparse");
      const session = new Session(["--image", image, "--quiet"]);
      assert.equal(await session.ask(`write ${id} 0 "acknowledged"`), "wrote 12 bytes");
      fill(dir);
      // Writes into holes now need blocks the disk does not have.
      const script = Array.from({ length: 64 }, (_, i) => `write ${id} ${i * 16384} "x"`);
      let failedAt = -1;
      for (let i = 0; i < script.length; i++) {
        try {
          const answer = await session.ask(script[i]!);
          assert.equal(answer, "wrote 1 bytes");
        } catch {
          failedAt = i;
          break;
        }
      }
      const end = await session.end();
      assert.ok(failedAt >= 0, "a write met the full disk");
      assert.notEqual(end.code, 0);
      const errs = lines(end.stderr);
      assert.equal(errs.length, 1, end.stderr);
      assert.match(errs[0]!, /^twz: Cannot write image .*t\.img: no space left on the disk$/);
      // Make room, and everything acknowledged is there.
      Deno.removeSync(join(dir, "filler"));
      const reads = [
        `read ${id} 0 12`,
        ...script.slice(0, failedAt).map((_, i) => `read ${id} ${i * 16384} 1`),
      ];
      const again = await twz(["boot", "--image", image, "--quiet"], reads.join("\n") + "\n");
      assert.equal(again.code, 0, again.stderr);
      const out = lines(again.stdout);
      assert.equal(out[0], failedAt > 0 ? "xcknowledged" : "acknowledged");
      assert.deepEqual(out.slice(1), Array(failedAt).fill("x"));
    }),
});

Deno.test({
  name:
    `pmem: a sparse image on a full disk is refused at open (no SIGBUS later); with room it is filled in${
      pmem.available ? "" : ` (skipped: ${pmem.reason})`
    }`,
  ignore: !pmem.available && !CI,
  fn: () =>
    withSmallDisk(async (dir) => {
      const elsewhere = Deno.makeTempDirSync({ prefix: "twz-enospc-src-" });
      const image = join(dir, "t.img");
      let id: string;
      try {
        const src = join(elsewhere, "t.img");
        const made = await twz(
          ["boot", "--hal", "pmem", "--image", src, "--size", "4M", "--quiet"],
          "new --size 1M\n",
        );
        assert.equal(made.code, 0, made.stderr);
        id = lines(made.stdout)[0]!;
        const wrote = await twz(
          ["boot", "--hal", "pmem", "--image", src, "--quiet"],
          `write ${id} 0 "acknowledged"\n`,
        );
        assert.equal(wrote.code, 0, wrote.stderr);
        const cp = new Deno.Command("cp", { args: ["--sparse=always", src, image] }).outputSync();
        assert.ok(cp.success, "cp --sparse=always");
      } finally {
        Deno.removeSync(elsewhere, { recursive: true });
      }
      assert.ok((Deno.statSync(image).blocks ?? 0) * 512 < 4 << 20, "the copy is sparse");
      fill(dir);
      const before = Deno.readFileSync(image);
      const refused = await twz(["boot", "--hal", "pmem", "--image", image], `read ${id} 0 12\n`);
      assertOneLineError(
        refused,
        3,
        /Cannot open image .*t\.img: it is sparse, and the disk has no room to allocate the rest of it/,
      );
      assert.deepEqual(Deno.readFileSync(image), before);
      Deno.removeSync(join(dir, "filler"));
      const r = await twz(
        ["boot", "--hal", "pmem", "--image", image, "--quiet"],
        `read ${id} 0 12\n`,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), ["acknowledged"]);
      assert.ok((Deno.statSync(image).blocks ?? 0) * 512 >= 4 << 20, "allocated in full now");
    }),
});

// One kernel per image: the image lock, read-only boots, refused non-regular
// files and large hal-sim images, end to end through `twz boot` subprocesses
// on both HALs (hal-pmem cases skip, with the reason in their name, when
// libpmem2 is missing; CI=true forbids that).
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { assertOneLineError, BootSession as Session, MAIN, type Run, twz } from "./_twz.ts";

const ID = /^[0-9a-f]{32}$/;
const CI = Deno.env.get("CI") === "true";
const pmem = (await import("@twz/hal-pmem")).plugin.describe();
const HALS = [
  { hal: "sim", ignore: false, note: "" },
  {
    hal: "pmem",
    ignore: !pmem.available && !CI,
    note: pmem.available ? "" : ` (skipped: ${pmem.reason})`,
  },
];

const tmpDir = scratchDirs("twz-lock-");
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);

/** A directory for images of `hal`: /dev/shm for pmem (as its tests do), else /tmp. */
function imageDir(hal: string): string {
  if (hal === "pmem") {
    const dir = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "twz-lock-" });
    shm.push(dir);
    return dir;
  }
  return tmpDir();
}
const shm: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of shm) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* gone */ }
  }
});

for (const { hal, ignore, note } of HALS) {
  Deno.test({
    name: `${hal}: a second boot of a held image exits 5 naming the holder; nothing is lost${note}`,
    ignore,
    fn: async () => {
      const image = join(imageDir(hal), "t.img");
      const first = new Session(["--hal", hal, "--image", image, "--size", "8M"]);
      let id = "";
      try {
        id = await first.ask("new --size 4096");
        assert.match(id, ID);
        assert.equal(await first.ask(`write ${id} 0 "first session"`), "wrote 13 bytes");

        // A second session (with a write of its own) is refused before it boots.
        const second = await twz(
          ["boot", "--hal", hal, "--image", image],
          `write ${id} 0 "second session"\n`,
        );
        assertOneLineError(
          second,
          5,
          new RegExp(
            `^twz: image .*t\\.img is in use by process ${first.pid} \\(twz boot\\); stop it first$`,
          ),
        );
        assert.equal(second.stdout, "");
        // Read-only openers and a repair are refused the same way.
        const ro = await twz(["boot", "--hal", hal, "--image", image, "--read-only"], "");
        assertOneLineError(ro, 5, new RegExp(`in use by process ${first.pid} \\(twz boot\\)`));
        const repair = await twz(["fsck", "--hal", hal, "--image", image, "--repair"]);
        assertOneLineError(
          repair,
          5,
          new RegExp(`in use by process ${first.pid} \\(twz boot\\); stop it first$`),
        );
        // A plain check reads the file and goes on, saying it may be stale.
        const check = await twz(["fsck", "--image", image]);
        assert.ok(check.code === 0 || check.code === 1, check.stderr);
        assert.match(
          check.stdout + check.stderr,
          new RegExp(`in use by process ${first.pid} \\(twz boot\\).*may be stale`),
        );

        assert.equal(await first.ask(`write ${id} 100 "still mine"`), "wrote 10 bytes");
        const end = await first.end();
        assert.equal(end.code, 0, end.stderr);
      } finally {
        if ((await Promise.race([first.child.status, null])) === null) await first.kill();
      }
      assert.throws(() => Deno.statSync(`${image}.lock`), Deno.errors.NotFound);
      const after = await twz(
        ["boot", "--hal", hal, "--image", image, "--quiet"],
        `read ${id} 0 13\nread ${id} 100 10\n`,
      );
      assert.equal(after.code, 0, after.stderr);
      assert.deepEqual(lines(after.stdout), ["first session", "still mine"]);
    },
  });

  Deno.test({
    name: `${hal}: kill -9 of the holder releases the lock; acknowledged writes survive${note}`,
    ignore,
    fn: async () => {
      const image = join(imageDir(hal), "t.img");
      const first = new Session(["--hal", hal, "--image", image, "--size", "8M", "--quiet"]);
      let id: string;
      try {
        id = await first.ask("new --size 4096");
        assert.match(id, ID);
        assert.equal(await first.ask(`write ${id} 0 "acknowledged"`), "wrote 12 bytes");
      } finally {
        await first.kill();
      }
      // The side file still names the killed process: it must not block anyone.
      assert.match(Deno.readTextFileSync(`${image}.lock`), new RegExp(`^${first.pid} twz boot`));
      const next = await twz(
        ["boot", "--hal", hal, "--image", image, "--quiet"],
        `read ${id} 0 12\n`,
      );
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(lines(next.stdout), ["acknowledged"]);
    },
  });

  Deno.test({
    name: `${hal}: --read-only refuses every write and leaves the file byte-identical${note}`,
    ignore,
    fn: async () => {
      const image = join(imageDir(hal), "t.img");
      const made = await twz(
        ["boot", "--hal", hal, "--image", image, "--size", "8M", "--quiet"],
        "new --size 4096\n",
      );
      assert.equal(made.code, 0, made.stderr);
      const id = lines(made.stdout)[0];
      assert.equal(
        (await twz(["boot", "--hal", hal, "--image", image, "--quiet"], `write ${id} 0 "kept"\n`))
          .code,
        0,
      );
      const before = Deno.readFileSync(image);
      const ro = await twz(
        ["boot", "--keep-going", "--hal", hal, "--image", image, "--read-only"],
        `read ${id} 0 4\nwrite ${id} 0 "lost"\nnew --size 4096\nread ${id} 0 4\n`,
      );
      assert.equal(ro.code, 1, ro.stderr);
      assert.deepEqual(lines(ro.stdout), ["kept", "kept"]);
      assert.match(ro.stderr, /\(8\.0 MiB, [^)]*free, read-only\): \d+ objects? recovered/);
      const errs = lines(ro.stderr).filter((l) => !l.startsWith("twz: "));
      assert.equal(errs.length, 2, ro.stderr);
      assert.match(errs[0]!, /^write: .*read-only/);
      assert.match(errs[1]!, /^new: .*read-only/);
      assert.deepEqual(Deno.readFileSync(image), before, "the file is byte-identical");

      // Without write permission the image opens read-only by itself, and says why.
      Deno.chmodSync(image, 0o444);
      try {
        const auto = await twz(
          ["boot", "--keep-going", "--hal", hal, "--image", image],
          `write ${id} 0 "lost"\nread ${id} 0 4\n`,
        );
        assert.equal(auto.code, 1, auto.stderr);
        assert.deepEqual(lines(auto.stdout), ["kept"]);
        assert.match(auto.stderr, /read-only: the image file is not writable\)/);
        assert.match(auto.stderr, /^write: .*read-only/m);
      } finally {
        Deno.chmodSync(image, 0o644);
      }
      assert.deepEqual(Deno.readFileSync(image), before, "the file is byte-identical");
    },
  });

  Deno.test({
    name: `${hal}: a FIFO or a directory as the image is one line at once, never a hang${note}`,
    ignore,
    fn: async () => {
      const dir = imageDir(hal);
      const fifo = join(dir, "fifo.img");
      assert.ok(new Deno.Command("mkfifo", { args: [fifo] }).outputSync().success);
      const t0 = performance.now();
      const r = await twz(["boot", "--hal", hal, "--image", fifo], "");
      assertOneLineError(r, 3, /is a FIFO \(named pipe\), not an image file$/);
      const d = await twz(["boot", "--hal", hal, "--image", dir], "");
      assertOneLineError(d, 3, /is a directory, not an image file$/);
      assert.ok(performance.now() - t0 < 30_000);
      assert.ok(Deno.statSync(fifo).isFifo, "the FIFO is left as it was");
    },
  });
}

Deno.test("sim: a read-only boot replays a committed log into a private overlay, file unchanged", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  // Find a crash point that leaves a committed kernel log behind: the first
  // session stops there (exit 4), and a read-only boot must replay it.
  let found: { before: Uint8Array; boot: Run } | undefined;
  for (let n = 4; n <= 20 && found === undefined; n++) {
    try {
      Deno.removeSync(image);
    } catch { /* first round */ }
    const crashed = await twz(
      ["boot", "--image", image, "--size", "1M", "--quiet", "--crash-at", String(n)],
      "new --size 4096\nnew --size 4096\n",
    );
    if (crashed.code !== 4) continue;
    const before = Deno.readFileSync(image);
    const boot = await twz(["boot", "--image", image, "--read-only"], "ls\nnew --size 4096\n");
    assert.deepEqual(Deno.readFileSync(image), before, `crash point ${n}: file unchanged`);
    // (An early point cuts the first format short: that image is refused.)
    const m = /(\d+) log records? replayed/.exec(boot.stderr);
    if (m && Number(m[1]) > 0) found = { before, boot };
  }
  assert.ok(found, "some crash point leaves a committed log");
  const { before, boot } = found;
  assert.match(
    boot.stderr,
    /read-only\): \d+ objects? recovered, \d+ log records? replayed into a private in-memory overlay \(the image file is not changed\)/,
  );
  assert.match(boot.stderr, /^new: .*read-only/m);
  assert.equal(boot.code, 1);
  assert.deepEqual(Deno.readFileSync(image), before, "the file is byte-identical");
  if (pmem.available) {
    // The same image on hal-pmem: a private copy-on-write mapping.
    const copy = join(dir, "copy.img");
    Deno.writeFileSync(copy, before);
    const p = await twz(["boot", "--hal", "pmem", "--image", copy, "--read-only"], "ls\n");
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stderr, /replayed into a private in-memory overlay/);
    assert.deepEqual(Deno.readFileSync(copy), before, "pmem: the file is byte-identical");
  }
  // A read-write boot then replays it for real.
  const rw = await twz(["boot", "--image", image], "ls\n");
  assert.equal(rw.code, 0, rw.stderr);
  assert.match(rw.stderr, /[1-9]\d* log records? replayed in/);
});

const strace = ["/usr/bin/strace", "/bin/strace"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

Deno.test(
  `sim: --set sync=data fdatasyncs at every drain, the default never${
    strace ? "" : " (fdatasync count not checked: no strace here)"
  }; a bad value is one line`,
  async () => {
    const dir = tmpDir();
    const syncs: Record<string, number> = {};
    for (const sync of ["data", "none"]) {
      const image = join(dir, `${sync}.img`);
      const trace = join(dir, `${sync}.trace`);
      const args = ["run", "-A", MAIN, "boot", "--image", image, "--size", "1M", "--quiet"];
      args.push("--set", `sync=${sync}`);
      const child = new Deno.Command(strace ?? Deno.execPath(), {
        args: strace
          ? ["-f", "-qq", "-e", "trace=fdatasync", "-o", trace, Deno.execPath(), ...args]
          : args,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode("new --size 4096\nnew --size 4096\n"));
      await w.close();
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const ids = lines(new TextDecoder().decode(out.stdout)).filter((l) => ID.test(l));
      assert.equal(ids.length, 2);
      if (strace) {
        syncs[sync] = Deno.readTextFileSync(trace).split("\n").filter((l) =>
          l.includes("fdatasync(")
        ).length;
      }
      const again = await twz(["boot", "--image", image, "--quiet"], "ls\n");
      assert.equal(again.code, 0, again.stderr);
      for (const id of ids) assert.match(again.stdout, new RegExp(`^${id} `, "m"));
    }
    if (strace) {
      assert.ok(syncs.data! >= 4, `fdatasync calls with sync=data: ${syncs.data}`);
      assert.equal(syncs.none, 0);
    }
    const bad = await twz(["boot", "--image", join(dir, "data.img"), "--set", "sync=always"], "");
    assertOneLineError(bad, 3, /sync must be none or data, not "always"/);
  },
);

Deno.test({
  name: "sim: a 2.5 GiB image is created, written and reopened with its data",
  // Needs 2.5 GiB on /tmp (not /dev/shm) and as much memory, twice.
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "twz-big-" });
    try {
      const image = join(dir, "big.img");
      const size = 2.5 * 2 ** 30;
      const first = await twz(
        ["boot", "--image", image, "--size", "2560M", "--quiet"],
        "new --size 2300M\n",
      );
      assert.equal(first.code, 0, first.stderr);
      const id = lines(first.stdout)[0]!;
      assert.match(id, ID);
      assert.equal(Deno.statSync(image).size, size);
      assert.ok((Deno.statSync(image).blocks ?? 0) * 512 >= size, "allocated in full");
      const write = await twz(
        ["boot", "--image", image, "--quiet"],
        `write ${id} 2306867200 "beyond two gibibytes"\n`,
      );
      assert.equal(write.code, 0, write.stderr);
      const read = await twz(["boot", "--image", image, "--quiet"], `read ${id} 2306867200 20\n`);
      assert.equal(read.code, 0, read.stderr);
      assert.deepEqual(lines(read.stdout), ["beyond two gibibytes"]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("Twz.open: a second session on a held image is refused (busy)", async () => {
  const { Twz } = await import("@twz/libtwz");
  const { HalError } = await import("@twz/kernel/hal");
  const image = join(tmpDir(), "t.img");
  const first = await Twz.open({ hal: "sim", image, size: 8 << 20, holder: "lock test" });
  try {
    await assert.rejects(() => Twz.open({ hal: "sim", image }), (e: unknown) => {
      assert.ok(e instanceof HalError);
      assert.equal(e.code, "busy");
      assert.equal(
        e.message,
        `image ${image} is in use by process ${Deno.pid} (lock test); stop it first`,
      );
      return true;
    });
  } finally {
    first.close();
  }
});

Deno.test({
  name: "Twz.open({ readOnly }): sessions share the image and never write it",
}, async () => {
  const { Twz } = await import("@twz/libtwz");
  const image = join(tmpDir(), "t.img");
  const made = await Twz.open({ hal: "sim", image, size: 8 << 20 });
  made.create({ size: 4096, name: "/kept" });
  made.close();
  const before = Deno.readFileSync(image);
  const a = await Twz.open({ hal: "sim", image, readOnly: true });
  const b = await Twz.open({ hal: "sim", image, readOnly: true });
  try {
    assert.equal(a.port.info().privateOverlay, true);
    assert.equal(a.naming.resolve("/kept"), b.naming.resolve("/kept"));
    assert.throws(() => a.create({ size: 4096 }), /read-only/);
  } finally {
    a.close();
    b.close();
  }
  assert.deepEqual(Deno.readFileSync(image), before);
});

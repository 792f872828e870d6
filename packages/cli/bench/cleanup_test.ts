// Benchmarks leave no files: their images go in a temporary folder (or at
// --image P) and are removed when the run ends, also when it fails or is
// interrupted. Real runs of `twz bench kv-insert` (tiny --ops) in a
// subprocess whose TMPDIR is a fresh folder, so every file it makes is seen.
import assert from "node:assert/strict";
import { join } from "node:path";
import { run as kvInsert } from "./kv_insert.ts";
import { openHal, Scratch, withScratch } from "./_util.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface Place {
  /** The folder the test owns: `tmp/` is the subprocess's TMPDIR. */
  dir: string;
  tmp: string;
}

function place(): Place {
  const dir = Deno.makeTempDirSync({ prefix: "twz-bench-cleanup-" });
  const tmp = join(dir, "tmp");
  Deno.mkdirSync(tmp);
  return { dir, tmp };
}

/** Everything under `dir`, as relative paths (folders end with "/"). */
function files(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) {
      out.push(`${prefix}${e.name}/`, ...files(join(dir, e.name), `${prefix}${e.name}/`));
    } else out.push(`${prefix}${e.name}`);
  }
  return out.sort();
}

function twzCommand(p: Place, args: string[]): Deno.Command {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1", TMPDIR: p.tmp };
  delete env.RUST_BACKTRACE;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env,
    clearEnv: true,
    cwd: p.dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function twz(p: Place, args: string[]) {
  const out = await twzCommand(p, args).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const TINY = ["--ops", "200", "--rounds", "1"];
const TWO_ROUNDS = ["--ops", "200", "--rounds", "2"];

Deno.test("twz bench kv-insert --image P: runs twice in a row and leaves no file", async () => {
  const p = place();
  try {
    const image = join(p.dir, "P");
    for (let i = 0; i < 2; i++) {
      // Two rounds: each makes P anew.
      const r = await twz(p, ["bench", "kv-insert", "--image", image, ...TWO_ROUNDS]);
      assert.equal(r.code, 0, `run ${i + 1}: ${r.stderr}`);
      assert.match(r.stdout, /^kv-insert hashmap-insert-tx: hal=sim {2}ops=200 /);
      assert.deepEqual(files(p.dir), ["tmp/"], `run ${i + 1} left files`);
    }
  } finally {
    Deno.removeSync(p.dir, { recursive: true });
  }
});

Deno.test("twz bench kv-insert without --image: its temporary folder is removed", async () => {
  const p = place();
  try {
    for (let i = 0; i < 2; i++) {
      const r = await twz(p, ["bench", "kv-insert", ...TINY]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(files(p.dir), ["tmp/"], `run ${i + 1} left files`);
    }
  } finally {
    Deno.removeSync(p.dir, { recursive: true });
  }
});

Deno.test("twz bench --image of an existing file: refused, the file untouched", async () => {
  const p = place();
  try {
    const image = join(p.dir, "mine.img");
    Deno.writeTextFileSync(image, "not yours");
    const r = await twz(p, ["bench", "kv-insert", "--image", image, ...TINY]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^twz: --image .*mine\.img exists: benchmarks write a new image/);
    assert.equal(Deno.readTextFileSync(image), "not yours");
    assert.deepEqual(files(p.dir), ["mine.img", "tmp/"]);
    const empty = await twz(p, ["bench", "kv-insert", "--image", "", ...TINY]);
    assert.equal(empty.code, 2, empty.stderr);
    assert.equal(empty.stderr.trim(), "twz: --image is empty");
  } finally {
    Deno.removeSync(p.dir, { recursive: true });
  }
});

Deno.test("twz bench kv-insert: Ctrl-C (SIGINT) mid-run removes its images and exits 130", async () => {
  for (const withImage of [false, true]) {
    const p = place();
    try {
      const image = join(p.dir, "P");
      const args = ["bench", "kv-insert", "--ops", "10000", "--rounds", "3"];
      const child = twzCommand(p, withImage ? [...args, "--image", image] : args).spawn();
      // Wait for the first round's image, then interrupt.
      const made = () => files(p.dir).some((f) => /(^P|\.img)$/.test(f));
      for (let i = 0; i < 3000 && !made(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(made(), "the benchmark made no image");
      child.kill("SIGINT");
      const out = await child.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 130, stderr);
      assert.equal(
        stderr.trim(),
        "twz: bench kv-insert: interrupted (SIGINT); its scratch files were removed",
      );
      assert.deepEqual(files(p.dir), ["tmp/"], `left files (--image: ${withImage})`);
    } finally {
      Deno.removeSync(p.dir, { recursive: true });
    }
  }
});

Deno.test("bench kv-insert: a run that fails after making its image removes it", async () => {
  const p = place();
  try {
    const image = join(p.dir, "P");
    // 0 operations: the run's check that the values were read fails after
    // the image was made and booted (the command line refuses --ops 0).
    await assert.rejects(
      () => kvInsert({ hal: "sim", image, ops: 0, rounds: 1 }),
      /values were not read/,
    );
    assert.deepEqual(files(p.dir), ["tmp/"]);
  } finally {
    Deno.removeSync(p.dir, { recursive: true });
  }
});

Deno.test("withScratch(): an exception removes the temporary folder and its open image", async () => {
  const p = place();
  const before = Deno.env.get("TMPDIR");
  Deno.env.set("TMPDIR", p.tmp);
  try {
    let seen = "";
    await assert.rejects(
      () =>
        withScratch({ hal: "sim" }, "test", async (scratch) => {
          seen = scratch.image("x.img");
          await openHal({ hal: "sim" }, seen, 1 << 20); // left open: the failure is mid-run
          assert.deepEqual(
            files(p.tmp).filter((f) => !f.endsWith("/")).map((f) => f.split("/")[1]),
            [
              "x.img",
              "x.img.lock",
            ],
          );
          throw new Error("boom");
        }),
      /boom/,
    );
    assert.ok(seen.startsWith(join(p.tmp, "twz-bench-")), seen);
    assert.deepEqual(files(p.tmp), []);
  } finally {
    if (before === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", before);
    Deno.removeSync(p.dir, { recursive: true });
  }
});

Deno.test("Scratch: with --image and keep, the image stays; remove() lets P be made again", () => {
  const p = place();
  try {
    const image = join(p.dir, "P");
    const scratch = new Scratch({ hal: "sim", image, keep: true }, "test");
    try {
      assert.equal(scratch.image("a.img"), image);
      Deno.writeFileSync(image, new Uint8Array(8));
      assert.throws(() => scratch.image("b.img"), /two images at once/);
      scratch.remove(image);
      assert.equal(scratch.image("b.img"), image);
      Deno.writeFileSync(image, new Uint8Array(8));
    } finally {
      scratch.close();
    }
    assert.deepEqual(files(p.dir), ["P", "tmp/"], "--keep keeps the image");
    const again = new Scratch({ hal: "sim", image }, "test");
    try {
      assert.throws(() => again.image("a.img"), /exists: benchmarks write a new image/);
    } finally {
      again.close();
    }
    assert.deepEqual(files(p.dir), ["P", "tmp/"], "a refused image is not removed");
  } finally {
    Deno.removeSync(p.dir, { recursive: true });
  }
});

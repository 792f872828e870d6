// An --image that cannot name an image gets one line saying what is wrong,
// the same for twz boot, run and fsck: an empty value (exit 2), a dangling
// symbolic link, a directory, a folder that does not exist (exit 3); and
// fsck of a file that holds no image exits 3, as boot does. A dangling link
// is left as it is: no file appears at its target.
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertOneLineError, type Run, twz } from "./_twz.ts";

/** `twz COMMAND --image IMAGE` the way each command is used, in `cwd`. */
function command(name: string, image: string, cwd: string): Promise<Run> {
  const args = name === "boot"
    ? ["boot", "--image", image, "--quiet"]
    : name === "run"
    ? ["run", "--image", image, "kv", "put", "a", "b"]
    : ["fsck", "--image", image];
  return twz(args, name === "boot" ? "ls\n" : undefined, { cwd });
}

const COMMANDS = ["boot", "run", "fsck"] as const;
const VERB = { boot: "cannot boot", run: "cannot boot", fsck: "cannot open" } as const;

function folder(): string {
  return Deno.makeTempDirSync({ prefix: "twz-image-path-" });
}

/** Entries of `dir`, sorted, with each symbolic link's target. */
function listing(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) =>
    e.isSymlink ? `${e.name} -> ${Deno.readLinkSync(join(dir, e.name))}` : e.name
  ).sort();
}

for (const name of COMMANDS) {
  Deno.test(`twz ${name} --image "": "--image is empty", exit 2`, async () => {
    const dir = folder();
    try {
      assertOneLineError(await command(name, "", dir), 2, /^twz: --image is empty$/);
      assert.deepEqual(listing(dir), [], "nothing is created");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  Deno.test(`twz ${name}: a dangling symbolic link is named as such and left alone`, async () => {
    const dir = folder();
    try {
      Deno.mkdirSync(join(dir, "there"));
      // The target's folder exists: the link could be followed to create it.
      Deno.symlinkSync("there/target.img", join(dir, "x.img"));
      Deno.symlinkSync("missing/target.img", join(dir, "y.img"));
      for (
        const [link, target] of [["x.img", "there/target.img"], ["y.img", "missing/target.img"]]
      ) {
        assertOneLineError(
          await command(name, link!, dir),
          3,
          new RegExp(
            `^twz: ${
              VERB[name]
            } ${link}: it is a symbolic link to ${target}, which does not exist$`,
          ),
        );
      }
      assert.deepEqual(listing(dir), [
        "there",
        "x.img -> there/target.img",
        "y.img -> missing/target.img",
      ]);
      assert.deepEqual(listing(join(dir, "there")), [], "no file at the link's target");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  Deno.test(`twz ${name}: a directory, and a folder that does not exist, exit 3`, async () => {
    const dir = folder();
    try {
      Deno.mkdirSync(join(dir, "adir"));
      assertOneLineError(
        await command(name, "adir", dir),
        3,
        new RegExp(`^twz: ${VERB[name]} adir: it is a directory, not an image file$`),
      );
      assertOneLineError(
        await command(name, "nofolder/x.img", dir),
        3,
        new RegExp(`^twz: ${VERB[name]} nofolder/x\\.img: the folder nofolder does not exist$`),
      );
      assert.deepEqual(listing(dir), ["adir"]);
      assert.deepEqual(listing(join(dir, "adir")), []);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("twz fsck: a file that holds no image exits 3, as twz boot does", async () => {
  const dir = folder();
  try {
    const cases: [string, Uint8Array, RegExp, RegExp][] = [
      [
        "text.img",
        new TextEncoder().encode("hello\n"),
        /it is 6 bytes, too small to hold a Twizzler image$/,
        /too small to hold a superblock$/,
      ],
      [
        "random.img",
        crypto.getRandomValues(new Uint8Array(65536)),
        /it is not a Twizzler image \(no TWZIMAGE magic in its superblock or the backup copy\)$/,
        /it is not a Twizzler image/,
      ],
    ];
    for (const [file, bytes, fsckSays, bootSays] of cases) {
      Deno.writeFileSync(join(dir, file), bytes);
      const fsck = await command("fsck", file, dir);
      assertOneLineError(fsck, 3, new RegExp(`^twz: cannot open ${file}: ${fsckSays.source}`));
      assert.equal(fsck.stdout, "");
      const boot = await command("boot", file, dir);
      assertOneLineError(boot, 3, new RegExp(`^twz: cannot boot ${file}: .*${bootSays.source}`));
      assert.deepEqual(Deno.readFileSync(join(dir, file)), bytes, "the file is not changed");
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("twz fsck: an image whose superblock alone is wiped is still an image (exit 1)", async () => {
  const dir = folder();
  try {
    const made = await twz(["boot", "--image", "t.img", "--size", "1M", "--quiet"], "", {
      cwd: dir,
    });
    assert.equal(made.code, 0, made.stderr);
    const f = Deno.openSync(join(dir, "t.img"), { read: true, write: true });
    f.writeSync(new Uint8Array(8)); // the magic of the primary superblock; the backup stays
    f.close();
    const r = await command("fsck", "t.img", dir);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /backup copy .* is intact \[repairable\]/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// The README's "Using libtwz outside this repository", run as printed: its
// files (`my-app/deno.json`, `my-app/main.ts`) are taken from README.md and
// written into a temporary folder beside a link named as the example names
// the checkout; its commands run with `sh` there, and what they print must be
// what the README's comments say. Then the README's `deno install` line
// installs `twz` into a temporary `--root`, and that `twz boot` runs a short
// script from another temporary folder, with `deno` on the PATH (the running
// Deno, linked into a temporary bin folder).
import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { type Run, runProcess, userEnv } from "./_twz.ts";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const HEADING = "## Using libtwz outside this repository";

/** The README's section, from its heading to the next `## ` heading. */
function section(): string {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  const start = readme.indexOf(`\n${HEADING}\n`);
  assert.ok(start >= 0, `README.md has no "${HEADING}" section`);
  const end = readme.indexOf("\n## ", start + HEADING.length + 2);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** The files the section prints: `` `PATH`: `` on the line before a fenced block. */
function files(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^`([\w./-]+)`:\n\n```\w*\n([\s\S]*?)^```$/gm)) {
    out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The section's `sh` blocks, in order. */
function shellBlocks(text: string): string[] {
  return [...text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** A folder with `deno` in it: the Deno running this test, under that name. */
function denoBin(dir: string): string {
  const bin = join(dir, "bin");
  Deno.mkdirSync(bin);
  Deno.symlinkSync(Deno.execPath(), join(bin, "deno"));
  return bin;
}

/** The environment of a subprocess: no colour, no backtraces, `bin` (if any) first on the PATH. */
function envWith(bin?: string): Record<string, string> {
  const env = userEnv();
  if (bin !== undefined) env.PATH = `${bin}:${env.PATH ?? ""}`;
  return env;
}

/** `cmd ARGS` in `cwd` with exactly the environment `env`, `input` on stdin. */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  input?: string,
): Promise<Run> {
  return runProcess(cmd, args, { cwd, env, ...(input !== undefined ? { input } : {}) });
}

Deno.test("README: a program in its own folder uses @twz/libtwz from a checkout", async () => {
  const text = section();
  const printed = files(text);
  assert.deepEqual([...printed.keys()].sort(), ["my-app/deno.json", "my-app/main.ts"]);
  const [commands] = shellBlocks(text);
  assert.ok(commands !== undefined, "the section prints the commands that run the example");

  const dir = Deno.makeTempDirSync({ prefix: "twz-outside-" });
  try {
    for (const [path, content] of printed) {
      Deno.mkdirSync(dirname(join(dir, path)), { recursive: true });
      Deno.writeTextFileSync(join(dir, path), content);
    }
    // The checkout goes where the example's "links" says it is.
    const config = JSON.parse(printed.get("my-app/deno.json")!);
    assert.equal(config.imports["@twz/libtwz"], "jsr:@twz/libtwz@^0.1.0");
    assert.equal(config.links.length, 1);
    const checkout = resolve(dir, "my-app", config.links[0]);
    assert.ok(
      checkout.startsWith(dir + "/"),
      `the link stays in the example's folder: ${checkout}`,
    );
    Deno.symlinkSync(ROOT, checkout);

    // What the commands should print: their trailing `# ...` comments.
    const expected = commands.split("\n").flatMap((line) => {
      const at = line.indexOf(" # ");
      return at < 0 ? [] : [line.slice(at + 3)];
    });
    assert.deepEqual(expected, ["Hello, Ada: visit 1", "Hello, Ada: visit 2"]);

    // `npx` is on the PATH already (the commands fetch Deno with it).
    const out = await run("sh", ["-e", "-c", commands], dir, envWith());
    assert.equal(out.code, 0, `exit code; stderr:\n${out.stderr}`);
    assert.deepEqual(out.stdout.trimEnd().split("\n"), expected, `stderr:\n${out.stderr}`);
    // The image is the program's, in its folder; nothing landed in the checkout.
    assert.ok(Deno.statSync(join(dir, "my-app", "visits.img")).size > 0);
    assert.throws(() => Deno.statSync(join(ROOT, "visits.img")), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("README: `deno install` puts a twz command that boots from any folder", async () => {
  const text = section();
  const line = shellBlocks(text)
    .flatMap((block) => block.split("\n"))
    .find((l) => l.startsWith("deno install "));
  assert.ok(line !== undefined, "the section prints a `deno install` line");
  const words = line.split(/\s+/).filter((w) => w.length > 0);
  assert.deepEqual(words.slice(0, 6), ["deno", "install", "-g", "-A", "-n", "twz"]);

  const dir = Deno.makeTempDirSync({ prefix: "twz-install-" });
  try {
    const bin = denoBin(dir);
    const env = envWith(bin);
    const root = join(dir, "root");
    // As printed, from the checkout's root, into a temporary root.
    const installed = await run(
      join(bin, "deno"),
      [...words.slice(1, 2), "--root", root, ...words.slice(2)],
      ROOT,
      env,
    );
    assert.equal(installed.code, 0, `deno install failed:\n${installed.stderr}`);
    const twz = join(root, "bin", "twz");
    assert.ok(Deno.statSync(twz).isFile);

    const elsewhere = join(dir, "elsewhere");
    Deno.mkdirSync(elsewhere);
    const booted = await run(
      twz,
      ["boot", "--image", "x.img", "--size", "8M"],
      elsewhere,
      env,
      "mkdir /outside\nnames /\n",
    );
    assert.equal(booted.code, 0, `twz boot failed:\n${booted.stderr}`);
    assert.match(booted.stderr, /^twz: booted on hal sim, image x\.img \(8\.0 MiB/m);
    assert.match(booted.stderr, /^twz: shut down cleanly$/m);
    assert.match(booted.stdout, /^[0-9a-f]{32}\s+dir\s+outside\/$/m);
    assert.equal(Deno.statSync(join(elsewhere, "x.img")).size, 8 << 20);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

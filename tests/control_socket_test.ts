// End-to-end: a `twz boot` subprocess holds the image and listens on its
// control socket (IMAGE.sock); a second process runs `twz run` against the
// same image and gets the program's output and exit code through the
// running system, instead of being refused by the image lock.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { BootSession as Session, MAIN, type Run } from "./_twz.ts";

const tmpDir = scratchDirs("twz-control-");
const HELLO = new URL("../examples/hello.ts", import.meta.url).pathname;

/** `twz ARGS` as a second terminal would run it (in `cwd`, its own program cache). */
async function twzIn(cwd: string, args: string[]): Promise<Run> {
  const env: Record<string, string> = {
    ...Deno.env.toObject(),
    NO_COLOR: "1",
    TWZ_CACHE_DIR: join(cwd, "cache"),
  };
  delete env.RUST_BACKTRACE;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
    clearEnv: true,
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/** A `twz boot` of `image` whose shell has answered once (so its socket listens). */
async function boot(image: string, size = "32M"): Promise<Session> {
  const session = new Session(["--image", image, "--size", size]);
  assert.match(await session.ask("kv count"), /^\d+/);
  return session;
}

Deno.test("twz run examples/hello.ts from a second process while twz boot holds the image", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const session = await boot(image);
  try {
    const sock = `${image}.sock`;
    const info = Deno.statSync(sock);
    assert.ok(info.isSocket, "the boot listens beside its image");
    assert.equal(info.mode! & 0o777, 0o600);

    const first = await twzIn(dir, ["run", "--image", image, HELLO, "Ada"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /Hello, Ada!/);
    assert.match(first.stdout, /\/hello\/count: run number 1\b/);

    // Installed in the running system's /bin: runs again by name, and the
    // persistent counter it keeps is the running system's.
    const second = await twzIn(dir, ["run", "--image", image, "hello"]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /Hello, world!/);
    assert.match(second.stdout, /\/hello\/count: run number 2\b/);
  } finally {
    const end = await session.end();
    assert.equal(end.code, 0, end.stderr);
  }
  assert.equal(await exists(`${image}.sock`), false, "the socket goes at shutdown");

  // The system ran them: a run on its own (no boot holding the image) sees the count.
  const third = await twzIn(dir, ["run", "--image", image, "hello"]);
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stdout, /\/hello\/count: run number 3\b/);
});

Deno.test("twz run through the socket returns the program's exit code and reports its fault", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  Deno.writeTextFileSync(
    join(dir, "seven.ts"),
    `export default function main(env: { console: { log(s: string): void } }) {
  env.console.log("about to exit");
  return 7;
}
`,
  );
  Deno.writeTextFileSync(
    join(dir, "boom.ts"),
    `export default function main() {
  throw new Error("boom from a program");
}
`,
  );
  const session = await boot(image);
  try {
    const seven = await twzIn(dir, ["run", "--image", image, "./seven.ts"]);
    assert.equal(seven.code, 7, seven.stderr);
    assert.match(seven.stdout, /about to exit/);
    const boom = await twzIn(dir, ["run", "--image", image, "./boom.ts"]);
    assert.equal(boom.code, 1);
    assert.match(boom.stdout, /uncaught Error: boom from a program/);
    assert.match(boom.stderr, /boom ended with a fault \(exception\): .*boom from a program/);
    // The shell of the holding system goes on.
    assert.match(await session.ask("kv count"), /^\d+/);
  } finally {
    const end = await session.end();
    assert.equal(end.code, 0, end.stderr);
  }
});

Deno.test("Twz.open in a script on a held image becomes a client session of the running system", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const script = new URL("./_test_control_open.ts", import.meta.url).pathname;
  const session = await boot(image);
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, image, "/notes/remote", "written from a script"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(r.stdout);
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    assert.match(stdout, /^port RemotePort$/m);
    const offset = /^wrote (\d+)$/m.exec(stdout)?.[1];
    assert.ok(offset !== undefined, stdout);
    // The running system sees it at once, through its own shell.
    assert.equal(
      await session.ask(`read --raw /notes/remote ${offset} 21`),
      "written from a script",
    );
  } finally {
    const end = await session.end();
    assert.equal(end.code, 0, end.stderr);
  }
});

Deno.test("a socket left by a killed twz boot is replaced by the next boot", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const killed = await boot(image);
  await killed.kill();
  assert.ok(Deno.statSync(`${image}.sock`).isSocket, "kill -9 leaves the socket file");

  const session = await boot(image);
  try {
    const r = await twzIn(dir, ["run", "--image", image, HELLO]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Hello, world!/);
  } finally {
    const end = await session.end();
    assert.equal(end.code, 0, end.stderr);
  }
  assert.equal(await exists(`${image}.sock`), false);
});

// The exit codes of `twz` (the table in the README/docs): the rows no other
// suite asserts. Already asserted elsewhere: boot 0/1/3/4/5 (cli_test,
// boot_line_test, image_lock_test), run's own codes, 1 for a fault, 2, 3
// (run_cli_test, control_socket_test), fsck 0/1/2/3/5 (fsck_cli_test,
// image_path_test), crashtest 0/1/3 (crash_test), bench 0/2 and Ctrl-C
// (cli_test, packages/cli/bench/cleanup_test.ts), an empty --image and bad
// image paths (image_path_test).
import assert from "node:assert/strict";
import { join } from "node:path";
import { lockImage } from "@twz/kernel/hal";
import { assertOneLineError, BootSession, MAIN, twz, userEnv } from "./_twz.ts";

function folder(): string {
  return Deno.makeTempDirSync({ prefix: "twz-exit-codes-" });
}

/** `twz ARGS` as a child whose output the test reads while it runs. */
function spawn(args: string[], cwd: string, stdin: "piped" | "null" = "null"): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    env: userEnv(),
    clearEnv: true,
    stdin,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Read `stream` until `pattern` matches what was read; the rest is read on in the background. */
async function readUntil(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
): Promise<{ match: RegExpExecArray; rest: Promise<string> }> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const m = pattern.exec(text);
    if (m) {
      const rest = (async () => {
        for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
        return text;
      })();
      return { match: m, rest };
    }
    const r = await reader.read();
    if (r.done) throw new Error(`the stream ended before ${pattern}: ${text}`);
    text += r.value;
  }
}

/** A program that prints its thread number, then waits until it is ended. */
const WAITER =
  `export default async (env: { thread: { tid: number }; port: { threadYield(): void } }) => {
  console.log("waiting as thread " + env.thread.tid);
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    env.port.threadYield();
  }
};
`;

Deno.test("twz help, --help, -h: 0; no command: 2", async () => {
  for (const args of [["help"], ["--help"], ["-h"]]) {
    const r = await twz(args);
    assert.equal(r.code, 0, `${args}: ${r.stderr}`);
    assert.match(r.stdout, /^usage: twz <command>/);
    assert.match(r.stdout, /exit codes/);
  }
  assertOneLineError(await twz([]), 2, /^twz: no command given/);
});

Deno.test("twz boot: Ctrl-C (SIGINT) shuts down cleanly and exits 130", async () => {
  const dir = folder();
  try {
    const child = spawn(["boot", "--image", "t.img", "--size", "1M"], dir, "piped");
    const stdin = child.stdin.getWriter();
    // Answered: the shell runs, and so does its Ctrl-C handler.
    await stdin.write(new TextEncoder().encode("kv count\n"));
    const out = await readUntil(child.stdout, /^\d+\n/m);
    child.kill("SIGINT");
    const status = await child.status;
    const stderr = await new Response(child.stderr).text();
    await stdin.close().catch(() => {/* gone with the process */});
    await out.rest;
    assert.equal(status.code, 130, stderr);
    assert.equal(status.signal, null, "it exited, it was not killed by the signal");
    assert.match(stderr, /\ntwz: interrupted; shut down cleanly\n$/);
    // Clean: fsck finds nothing to replay or repair.
    const next = await twz(["fsck", "--image", "t.img"], undefined, { cwd: dir });
    assert.equal(next.code, 0, next.stdout + next.stderr);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("twz run: Ctrl-C (SIGINT) stops the program and exits 130", async () => {
  const dir = folder();
  try {
    Deno.writeTextFileSync(join(dir, "waiter.ts"), WAITER);
    const child = spawn(["run", "--image", "t.img", "--size", "8M", "./waiter.ts"], dir);
    const out = await readUntil(child.stdout, /waiting as thread \d+/);
    child.kill("SIGINT");
    const status = await child.status;
    const stderr = await new Response(child.stderr).text();
    await out.rest;
    assert.equal(status.code, 130, stderr);
    assert.equal(status.signal, null, "it exited, it was not killed by the signal");
    assert.match(stderr, /^twz: interrupted: stopping the program/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("twz run: a program killed from the shell of the twz boot holding the image: 137", async () => {
  const dir = folder();
  const image = join(dir, "t.img");
  Deno.writeTextFileSync(join(dir, "waiter.ts"), WAITER);
  const session = new BootSession(["--image", image, "--size", "32M"]);
  try {
    assert.match(await session.ask("kv count"), /^\d+/);
    const child = spawn(["run", "--image", image, "./waiter.ts"], dir);
    const out = await readUntil(child.stdout, /waiting as thread (\d+)/);
    assert.match(await session.ask(`kill ${out.match[1]}`), /waiter: exited \(killed\)/);
    const status = await child.status;
    const stderr = await new Response(child.stderr).text();
    await out.rest;
    assert.equal(status.code, 137, stderr);
    assert.match(stderr, /waiter ended with a fault \(killed\)/);
  } finally {
    const end = await session.end();
    assert.equal(end.code, 0, end.stderr);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("twz run: an image another process holds (no twz boot socket beside it): 5", async () => {
  const dir = folder();
  const image = join(dir, "t.img");
  try {
    const made = await twz(["boot", "--image", image, "--size", "1M", "--quiet"], "");
    assert.equal(made.code, 0, made.stderr);
    const lock = lockImage(image, { exclusive: true, what: "exit codes test" });
    try {
      const r = await twz(["run", "--image", image, "kv", "count"]);
      assertOneLineError(r, 5, new RegExp(`in use by process ${Deno.pid} \\(exit codes test\\)`));
    } finally {
      lock.release();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("twz crashtest: no WORKLOAD is a usage mistake (2)", async () => {
  assertOneLineError(await twz(["crashtest"]), 2, /WORKLOAD/);
});

Deno.test("twz bench: an --image that cannot be created, a setting the HAL refuses: 3", async () => {
  const dir = folder();
  try {
    const r = await twz(
      ["bench", "kv-insert", "--image", "nofolder/x.img", "--ops", "10", "--rounds", "1"],
      undefined,
      { cwd: dir },
    );
    assertOneLineError(
      r,
      3,
      /^twz: Cannot create image nofolder\/x\.img: the folder nofolder does not exist$/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    // A HAL refusing its settings: 3 too, and its temporary folder is gone.
    const bad = await twz(
      ["bench", "kv-insert", "--set", "sync=bogus", "--ops", "10", "--rounds", "1"],
      undefined,
      { cwd: dir, env: { TMPDIR: dir } },
    );
    assertOneLineError(bad, 3, /^twz: Cannot open a sim image: sync must be none or data/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

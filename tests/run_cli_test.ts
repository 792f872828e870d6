// End-to-end: `twz run` and the shell's run/ps/kill, as a user types them,
// in subprocesses. Each program runs in a Worker with no permissions.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { type Run, twz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-run-");
const HELLO = new URL("../examples/hello.ts", import.meta.url).pathname;
const COUNTER = new URL("../examples/counter.ts", import.meta.url).pathname;
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);

/** `twz ARGS` in `cwd`, with its own program cache, `input` on stdin. */
function twzIn(cwd: string, args: string[], input?: string): Promise<Run> {
  return twz(args, input, { cwd, env: { TWZ_CACHE_DIR: join(cwd, "cache") } });
}

/** A program file in `dir`. */
function program(dir: string, name: string, body: string): string {
  const path = join(dir, `${name}.ts`);
  Deno.writeTextFileSync(
    path,
    `import type { ProgramEnv } from "@twz/libtwz/program";\n${body}\n`,
  );
  return path;
}

Deno.test("twz run examples/hello.ts: one command on a fresh directory; then twz run hello from /bin", async () => {
  const dir = tmpDir();
  const first = await twzIn(dir, ["run", HELLO, "Ada"]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stderr, "");
  const out = lines(first.stdout);
  assert.match(out[0]!, /^Hello, Ada! This is hello, thread \d+\.$/);
  assert.equal(out[1], "/hello/count: run number 1");
  assert.match(out[2]!, /^object [0-9a-f]{32}: "a note from Ada"$/);
  assert.ok(Deno.statSync(join(dir, "twz.img")).isFile, "the default image ./twz.img was made");

  // By name: from /bin, no file needed; the counter persisted.
  const again = await twzIn(dir, ["run", "hello"]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^Hello, world! This is hello/);
  assert.match(again.stdout, /run number 2\n/);

  // The code object: bound at /bin/hello, read and execute only.
  const shell = await twzIn(dir, ["boot", "--quiet"], "stat /bin/hello\n");
  assert.equal(shell.code, 0, shell.stderr);
  assert.match(shell.stdout, /prot:\s+r-x/);
});

Deno.test("twz run: the exit code is the program's; a fault is one line on stderr", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const three = program(dir, "three", "export default () => 3;");
  const r = await twzIn(dir, ["run", "--image", image, "--size", "8M", three]);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stderr, "");

  const exit = program(
    dir,
    "early",
    `export default (env: ProgramEnv) => { console.log("before"); env.exit(7); console.log("after"); };`,
  );
  const e = await twzIn(dir, ["run", "--image", image, exit]);
  assert.equal(e.code, 7, e.stderr);
  assert.deepEqual(lines(e.stdout), ["before"]);

  const boom = program(dir, "boom", `export default () => { throw new Error("boom"); };`);
  const b = await twzIn(dir, ["run", "--image", image, boom]);
  assert.equal(b.code, 1);
  assert.deepEqual(lines(b.stderr), ["twz: boom ended with a fault (exception): Error: boom"]);
  assert.match(b.stdout, /boom: uncaught Error: boom/, "the stack goes to the console");

  const ro = program(
    dir,
    "rowrite",
    `export default (env: ProgramEnv) => {
      const obj = env.twz.create({ size: 4096 });
      const view = env.twz.open(obj.id, { write: false });
      view.write(view.baseOffset, new Uint8Array([1]));
    };`,
  );
  const p = await twzIn(dir, ["run", "--image", image, ro]);
  assert.equal(p.code, 1);
  assert.match(lines(p.stderr)[0]!, /^twz: rowrite ended with a fault \(protection\): TwzError: /);
});

Deno.test("twz run: a program that does not bundle is refused before the image is touched", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const cases: [string, string, RegExp][] = [
    ["nodefault", "export const x = 1;", /has no default export/],
    ["syntax", "export default () => {", /cannot bundle .*syntax\.ts: /],
    [
      "bare",
      `import x from "left-pad";\nexport default () => x;`,
      /cannot bundle import "left-pad"/,
    ],
  ];
  for (const [name, body, pattern] of cases) {
    const r = await twzIn(dir, ["run", "--image", image, program(dir, name, body)]);
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    const errs = lines(r.stderr);
    assert.equal(errs.length, 1, r.stderr);
    assert.match(errs[0]!, pattern);
  }
  const missing = await twzIn(dir, ["run", "--image", image, join(dir, "nothere.ts")]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read program .*nothere\.ts: no such file/);
  assert.throws(() => Deno.statSync(image), "no image was made");

  const unknown = await twzIn(dir, ["run", "--image", image, "--size", "8M", "nosuch"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no program \/bin\/nosuch/);
});

Deno.test("twz run kv: the built-in kv tool shares the shell's store", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const put = await twzIn(dir, [
    "run",
    "--image",
    image,
    "--size",
    "8M",
    "kv",
    "put",
    "greeting",
    "hello",
    "there",
  ]);
  assert.equal(put.code, 0, put.stderr);
  assert.deepEqual(lines(put.stdout), ["ok"]);
  const get = await twzIn(dir, ["run", "--image", image, "kv", "get", "greeting"]);
  assert.equal(get.code, 0, get.stderr);
  assert.deepEqual(lines(get.stdout), ["hello there"]);
  const none = await twzIn(dir, ["run", "--image", image, "kv", "get", "nope"]);
  assert.equal(none.code, 1);
  const shell = await twzIn(
    dir,
    ["boot", "--image", image, "--quiet"],
    "kv get greeting\nkv put b 2\n",
  );
  assert.equal(shell.code, 0, shell.stderr);
  assert.deepEqual(lines(shell.stdout), ["hello there", "ok"]);
  const scan = await twzIn(dir, ["run", "--image", image, "kv", "scan"]);
  assert.deepEqual(lines(scan.stdout), ["b\t2", "greeting\thello there"]);
  // Installed in /bin on its first run, bundled into the cache once.
  assert.ok(Deno.statSync(join(dir, "cache", "programs", "kv.js")).isFile);
  const ls = await twzIn(dir, ["boot", "--image", image, "--quiet"], "stat /bin/kv\n");
  assert.match(ls.stdout, /prot:\s+r-x/);
});

Deno.test("shell: run, ps, kill — a faulting and a sleeping program leave the shell responsive", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const boom = program(dir, "boom", `export default () => { throw new Error("boom"); };`);
  const nap = program(
    dir,
    "nap",
    `export default async (env: ProgramEnv) => {
      console.log("napping");
      for (;;) { await new Promise((r) => setTimeout(r, 20)); env.port.threadYield(); }
    };`,
  );
  const r = await twzIn(
    dir,
    ["boot", "--keep-going", "--image", image, "--size", "8M", "--quiet"],
    [
      `run ${HELLO} Bob`,
      `run ${boom}`,
      `run ${nap} &`,
      "ps",
      "kill 3",
      "ps",
      "kv put still here",
    ].join("\n") + "\n",
  );
  const out = lines(r.stdout);
  assert.equal(r.code, 1, "the failed run counts as a failed command");
  assert.match(r.stderr, /run: boom ended with a fault \(exception\): Error: boom/);
  assert.ok(out.some((l) => l.startsWith("Hello, Bob!")), r.stdout);
  assert.ok(out.includes("[3] nap"), r.stdout);
  const ps1 = out.filter((l) => /^\d+\s/.test(l) || l.startsWith("TID"));
  assert.ok(ps1.some((l) => /^1\s+exited\s+0\s.*hello/.test(l)), ps1.join("\n"));
  assert.ok(
    ps1.some((l) => /^2\s+exited \(exception\)\s+1\s.*boom\s+Error: boom/.test(l)),
    ps1.join("\n"),
  );
  assert.ok(ps1.some((l) => /^3\s+(running|sleeping|starting)\s+-\s.*nap/.test(l)), ps1.join("\n"));
  assert.ok(out.some((l) => /^3 nap: exited \(killed\)$/.test(l)), r.stdout);
  assert.ok(out.some((l) => /^3\s+exited \(killed\)\s+137\s.*nap/.test(l)), r.stdout);
  assert.equal(out.at(-1), "ok");
});

Deno.test("shell: examples/counter.ts four times in the background under one Mutex; wait; the total is 400000", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const r = await twzIn(
    dir,
    ["boot", "--image", image, "--size", "16M", "--quiet"],
    [
      `run ${COUNTER}`,
      ...Array.from({ length: 4 }, () => "run counter 100000 &"),
      "wait",
      "run counter",
      "wait 99",
    ].join("\n") + "\n",
  );
  const out = lines(r.stdout);
  assert.equal(r.code, 1, `the wait for an unknown thread fails: ${r.stderr}`);
  assert.match(r.stderr, /wait: no thread 99 \(see ps\)/);
  for (const tid of [2, 3, 4, 5]) {
    assert.ok(out.includes(`[${tid}] counter`), r.stdout);
    assert.ok(out.includes(`${tid} counter: exited, code 0`), r.stdout);
  }
  assert.equal(out.filter((l) => l.startsWith("/counter: ")).at(-1), "/counter: 400000", r.stdout);
  assert.equal(out.at(0), "/counter: 0", r.stdout);
});

Deno.test("shell: a program that loops forever is killed, shows unresponsive, and the system goes on", async () => {
  const dir = tmpDir();
  const image = join(dir, "t.img");
  const spin = program(dir, "spin", `export default () => { for (;;) { /* never yields */ } };`);
  const r = await twzIn(
    dir,
    ["boot", "--image", image, "--size", "8M", "--quiet"],
    [`run ${spin} &`, "kill 1", `run ${HELLO} Spin`, "ps"].join("\n") + "\n",
  );
  assert.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  assert.ok(out.includes("[1] spin"), r.stdout);
  // Kill is cooperative; a thread that never makes a system call is stopped
  // by terminate() after the grace period — Deno 2.9 cannot stop a spinning
  // Worker, so it is recorded "unresponsive" (its Worker burns a CPU until
  // the process exits; see docs/THREADS.md).
  assert.ok(out.some((l) => /^1 spin: exited \((unresponsive|killed)\)$/.test(l)), r.stdout);
  assert.ok(out.some((l) => l.startsWith("Hello, Spin!")), r.stdout);
  assert.ok(
    out.some((l) => /^1\s+exited \((unresponsive|killed)\)\s+137\s.*spin/.test(l)),
    r.stdout,
  );
  assert.ok(out.some((l) => /^2\s+exited\s+0\s.*hello/.test(l)), r.stdout);
});

const pmemAvailable = (await import("@twz/hal-pmem")).plugin.describe().available;
Deno.test({
  name:
    `shell on hal-pmem: a killed program that never stopped pins the mapping: reboot is refused, shutdown exits cleanly${
      pmemAvailable ? "" : " (skipped: libpmem2 missing)"
    }`,
  ignore: !pmemAvailable && Deno.env.get("CI") !== "true",
  async fn() {
    const dir = tmpDir();
    const image = join(dir, "p.img");
    const spin = program(
      dir,
      "spinw",
      `export default (env: ProgramEnv) => {
  const o = env.twz.create({ size: 4096, name: "/spinning" }); // "I am in my loop"
  const b = o.bytes;
  for (let i = 0; ; i++) b[o.baseOffset + (i & 255)] = i; // writes its object forever
};`,
    );
    // Waits (sleeping in thread_sync, 10 ms at a time) until the spinner has
    // named its object: then it is past its last system call.
    const waitfor = program(
      dir,
      "waitfor",
      `export default (env: ProgramEnv) => {
  const nap = env.twz.create({ size: 4096, lifetime: "volatile" });
  while (!env.twz.naming.exists("/spinning")) {
    env.port.threadSync([{ op: "sleep", id: nap.id, offset: 0, value: 0, timeoutMs: 10 }]);
  }
};`,
    );
    const r = await twzIn(
      dir,
      ["boot", "--keep-going", "--hal", "pmem", "--image", image, "--size", "8M", "--quiet"],
      [`run ${spin} &`, `run ${waitfor}`, "kill 1", "reboot", `run ${HELLO} Pinned`].join("\n") +
        "\n",
    );
    // Before this guard, closing the HAL under the spinning Worker's view
    // killed the process with SIGSEGV (exit 139).
    assert.equal(r.code, 1, r.stdout + r.stderr); // a scripted command failed: the refused reboot
    assert.match(r.stdout, /^1 spinw: exited \(unresponsive\)$/m);
    assert.match(r.stderr, /cannot reboot: 1 killed thread\(s\) never stopped/);
    assert.match(r.stdout, /Hello, Pinned!/); // the system went on, then shut down
    // The image is whole: it boots and runs a program afterwards.
    const after = await twzIn(dir, ["run", "--hal", "pmem", "--image", image, HELLO, "After"]);
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /Hello, After!/);
  },
});

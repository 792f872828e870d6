// `twz`'s command lines: every bad-argument case of every subcommand is one
// line on stderr and exit code 2, `--help` of each exits 0 and prints the
// usage line made from the spec that parses it, and `--debug` is an option
// of every subcommand. Nearly every case fails before anything is booted, so
// the table runs in this process through `main` of `@twz/cli` (what the `twz`
// command calls, then exits with); a few cases also run as a real process.
import assert from "node:assert/strict";
import { join } from "node:path";
import { COMMANDS, main } from "@twz/cli";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { assertOneLineError, twz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-argv-");

interface Captured {
  code: number;
  out: string[];
  err: string[];
}

/** `twz ARGS` in this process: its exit code and what it printed, line by line. */
async function run(args: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const text = (xs: unknown[]) =>
    xs.map((x) => x instanceof Error ? (x.stack ?? String(x)) : String(x)).join(" ");
  const { log, error } = console;
  console.log = (...xs: unknown[]) => out.push(...text(xs).split("\n"));
  console.error = (...xs: unknown[]) => err.push(...text(xs).split("\n"));
  try {
    return { code: await main(args), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** Exit 2 and exactly one stderr line, `twz: ` and `message` (the whole line). */
function assertUsage(r: Captured, message: string, what: string): void {
  assert.equal(r.code, 2, `${what}: exit code (stderr: ${r.err.join("\n")})`);
  assert.deepEqual(r.err, [`twz: ${message}`], what);
}

const NO_IMAGE = "/nonexistent-folder/t.img";

/** [argv, the one line after "twz: "] */
const CASES: readonly (readonly [readonly string[], string])[] = [
  // twz itself
  [[], "no command given (see twz help)"],
  [["frob"], 'unknown command "frob" (see twz help)'],
  [
    ["fr\x1bob\nand-a-very-long-tail-of-junk"],
    'unknown command "fr\\x1bob\\nand-a-very-long-ta…" (see twz help)',
  ],
  [["--debug", "fsck"], 'unknown option "--debug": options go after the command (see twz help)'],
  [["help", "frob"], 'unknown command "frob" (see twz help)'],
  [["help", "boot", "fsck"], 'unexpected argument "fsck" (see twz help --help)'],
  [["help", "--bogus"], 'unknown option "--bogus" (see twz help --help)'],
  // twz boot (its spec is boot.ts's; main refuses these before booting)
  [["boot", "--bogus"], 'unknown option "--bogus" (see twz boot --help)'],
  [["boot", "--image", "a", "--image", "b"], "--image given twice"],
  [["boot", "extra"], 'unexpected argument "extra" (see twz boot --help)'],
  [["boot", "--hal", "nope"], '--hal: unknown hal "nope" (sim or pmem)'],
  // twz boot as a node of a cluster, and --serve
  [["boot", "--node", "a"], "--node only applies with --cluster URLS"],
  [["boot", "--lease", "500"], "--lease only applies with --cluster URLS"],
  [["boot", "--cluster", "nats://h:1"], "--cluster needs --node NAME (this node's name)"],
  [
    ["boot", "--cluster", "http://h", "--node", "a"],
    '--cluster: "http://h" is not a NATS server URL (like nats://127.0.0.1:4222)',
  ],
  [
    ["boot", "--cluster", "nats://h:1,", "--node", "a"],
    '--cluster: "" is not a NATS server URL (like nats://127.0.0.1:4222)',
  ],
  [
    ["boot", "--cluster", "nats://h:1", "--node", "a.b"],
    '--node: "a.b" is not a node name (letters, digits, - and _, at most 64)',
  ],
  [
    ["boot", "--cluster", "nats://h:1", "--node", "a", "--lease", "5"],
    '--lease: "5" is too small (at least 100)',
  ],
  [
    ["boot", "--cluster", "nats://h:1", "--node", "a", "--lease", "x"],
    '--lease: "x" is not a number',
  ],
  [
    ["boot", "--cluster", "nats://h:1", "--node", "a", "--read-only"],
    "--cluster does not apply with --read-only (a node writes its image)",
  ],
  [["boot", "--serve", "--script", "f"], "--serve runs no shell: --script does not apply with it"],
  [
    ["boot", "--serve", "--keep-going"],
    "--serve runs no shell: --keep-going does not apply with it",
  ],
  [["boot", "--serve=1"], "--serve takes no value"],
  // twz run: options before the program
  [["run"], "missing PROGRAM"],
  [["run", "--image", NO_IMAGE], "missing PROGRAM"],
  [["run", "--bogus", "kv"], 'unknown option "--bogus" (see twz run --help)'],
  [["run", "--image"], "--image needs a value (PATH)"],
  [["run", "--image", "a", "--image", "b", "kv"], "--image given twice"],
  [["run", "--hal", "nope", "kv"], '--hal: unknown hal "nope" (sim or pmem)'],
  [
    ["run", "--image", NO_IMAGE, "--size", "-5M", "kv"],
    '--size: "-5M" is negative: a size is a positive number of bytes',
  ],
  [
    ["run", "--image", NO_IMAGE, "--size", "lots", "kv"],
    '--size: "lots" is not a size (like 4096, 64K, 64M or 1G)',
  ],
  [["run", "--image", NO_IMAGE, "--set", "nokey", "kv"], '--set takes KEY=VALUE, not "nokey"'],
  [["run", "--debug=1", "kv"], "--debug takes no value"],
  [["run", "--context"], "--context needs a value (CTX)"],
  [
    ["run", "--image", NO_IMAGE, "--context", "..", "kv"],
    '--context: ".." is not a context name (one name component, at most 64 characters, no /)',
  ],
  [
    ["run", "--image", NO_IMAGE, "--context", "", "kv"],
    '--context: "" is not a context name (one name component, at most 64 characters, no /)',
  ],
  // twz fsck and its modes
  [["fsck"], "missing --image PATH"],
  [["fsck", "--json"], "missing --image PATH"],
  [["fsck", "--image"], "--image needs a value (PATH)"],
  [["fsck", "--image", "a", "--image", "b"], "--image given twice"],
  [["fsck", "--image", "a", "--bogus"], 'unknown option "--bogus" (see twz fsck --help)'],
  [["fsck", "--image", "a", "b.img"], 'unexpected argument "b.img" (see twz fsck --help)'],
  [["fsck", "--image", "a", "--hal", "nope"], '--hal: unknown hal "nope" (sim or pmem)'],
  [["fsck", "--image", "a", "--deep", "--deep"], "--deep given twice"],
  [["fsck", "--image", "a", "--repair=yes"], "--repair takes no value"],
  [["fsck", "--image", ""], "--image is empty"],
  [["fsck", "--image", "a", "--force"], "--force only applies with --repair"],
  [["fsck", "--image", "a", "--undo-file", "u"], "--undo-file only applies with --repair"],
  [["fsck", "--image", "a", "--upgrade", "--repair"], "--repair does not apply with --upgrade"],
  [["fsck", "--image", "a", "--upgrade", "--deep"], "--deep does not apply with --upgrade"],
  [
    ["fsck", "--image", "a", "--upgrade", "--undo-file", "u"],
    "--undo-file does not apply with --upgrade",
  ],
  [["fsck", "--image", "a", "--upgrade", "--undo", "u"], "--undo does not apply with --upgrade"],
  [["fsck", "--image", "a", "--undo", "u", "--repair"], "--repair does not apply with --undo"],
  [["fsck", "--image", "a", "--undo", "u", "--deep"], "--deep does not apply with --undo"],
  [["fsck", "--image", "a", "--undo", "u", "--force"], "--force does not apply with --undo"],
  [["fsck", "--image", "a", "--undo"], "--undo needs a value (FILE)"],
  // twz explore
  [["explore", "--bogus"], 'unknown option "--bogus" (see twz explore --help)'],
  [["explore", "extra"], 'unexpected argument "extra" (see twz explore --help)'],
  [["explore", "--port", "x"], '--port: "x" is not a number'],
  [["explore", "--port", "-1"], '--port: "-1" is negative'],
  [["explore", "--port", "70000"], "--port: 70000 is not a port (0 to 65535)"],
  [["explore", "--hal", "nope"], '--hal: unknown hal "nope" (sim or pmem)'],
  [
    ["explore", "--context", "list"],
    '--context: "list" is neither an object ID (32 hex digits) nor a path',
  ],
  [["explore", "--image", ""], "--image: an empty path"],
  [["explore", "--write", "--write"], "--write given twice"],
  // twz graph
  [["graph"], "missing OBJ"],
  [["graph", "--bogus"], 'unknown option "--bogus" (see twz graph --help)'],
  [["graph", "list"], 'OBJ: "list" is neither an object ID (32 hex digits) nor a path'],
  [["graph", "/a", "/b"], 'unexpected argument "/b" (see twz graph --help)'],
  [["graph", "/a", "--depth", "x"], '--depth: "x" is not a number'],
  [["graph", "/a", "--depth", "-1"], '--depth: "-1" is negative'],
  [["graph", "/a", "--depth", "65"], "--depth: 65 is too deep (at most 64)"],
  [["graph", "/a", "--format", "png"], '--format: unknown format "png" (dot, svg or json)'],
  [["graph", "/a", "--hal", "nope"], '--hal: unknown hal "nope" (sim or pmem)'],
  [["graph", "/a", "--image", ""], "--image: an empty path"],
  [["graph", "/a", "--output", ""], "--output: an empty path"],
  // twz crashtest
  [["crashtest"], "missing WORKLOAD (twz crashtest --list names the built-in ones)"],
  [["crashtest", "kv", "heap"], 'unexpected argument "heap" (see twz crashtest --help)'],
  [["crashtest", "--list", "kv"], 'unexpected argument "kv" (see twz crashtest --help)'],
  [["crashtest", "kv", "--bogus"], 'unknown option "--bogus" (see twz crashtest --help)'],
  [["crashtest", "kv", "--seed", "-1"], '--seed: "-1" is negative'],
  [["crashtest", "kv", "--seed", "x1"], '--seed: "x1" is not a number'],
  [["crashtest", "kv", "--seed", "1", "--seed", "2"], "--seed given twice"],
  [["crashtest", "kv", "--states", "-5"], '--states: "-5" is negative'],
  [["crashtest", "kv", "--states", "0"], '--states: "0" is too small (at least 1)'],
  [["crashtest", "kv", "--states", "x"], '--states: "x" is not a number'],
  [["crashtest", "kv", "--recovery-states", "-1"], '--recovery-states: "-1" is negative'],
  [
    ["crashtest", "kv", "--states", "10", "--recovery-states", "11"],
    "--recovery-states (11) cannot exceed --states (10): they are part of it",
  ],
  [["crashtest", "kv", "--unit", "16"], '--unit: unknown unit "16" (64 or 8)'],
  [["crashtest", "kv", "--replay"], "--replay needs a value (P:V[/Q:W])"],
  [
    ["crashtest", "kv", "--replay", "zz"],
    '--replay: "zz" is not POINT:VARIANT or POINT:VARIANT/RPOINT:RVARIANT (like 12:3 or 12:3/0:all)',
  ],
  [
    ["crashtest", "no-such-workload", "--replay", "3:0/"],
    '--replay: "3:0/" is not POINT:VARIANT or POINT:VARIANT/RPOINT:RVARIANT (like 12:3 or 12:3/0:all)',
  ],
  // twz bench
  [["bench"], "missing NAME (twz bench --list names them)"],
  [["bench", "nope"], 'unknown benchmark "nope" (twz bench --list names them)'],
  [["bench", "boot", "kv-get"], 'unexpected argument "kv-get" (see twz bench --help)'],
  [["bench", "--list", "boot"], 'unexpected argument "boot" (see twz bench --help)'],
  [["bench", "boot", "--bogus"], 'unknown option "--bogus" (see twz bench --help)'],
  [["bench", "boot", "--hal", "nope"], '--hal: unknown hal "nope" (sim or pmem)'],
  [["bench", "boot", "--ops", "-1"], '--ops: "-1" is negative'],
  [["bench", "boot", "--ops", "0"], '--ops: "0" is too small (at least 1)'],
  [["bench", "boot", "--ops", "many"], '--ops: "many" is not a number'],
  [["bench", "boot", "--rounds", "-2"], '--rounds: "-2" is negative'],
  [["bench", "boot", "--rounds", "1", "--rounds", "2"], "--rounds given twice"],
  [["bench", "boot", "--ops"], "--ops needs a value (N)"],
  [["bench", "boot", "--keep"], "--keep only applies with --image PATH"],
  // twz cluster
  [["cluster"], "missing ACTION"],
  [["cluster", "sideways"], 'unknown action "sideways" (up or down; see twz cluster --help)'],
  [["cluster", "up", "down"], 'unexpected argument "down" (see twz cluster --help)'],
  [["cluster", "up", "--servers", "0"], '--servers: "0" is too small (at least 1)'],
  [["cluster", "up", "--servers", "33"], '--servers: "33" is too large (at most 32)'],
  [["cluster", "up", "--nodes", "-1"], '--nodes: "-1" is negative'],
  [["cluster", "up", "--nodes", "65"], '--nodes: "65" is too large (at most 64)'],
  [["cluster", "up", "--lease", "50"], '--lease: "50" is too small (at least 100)'],
  [["cluster", "up", "--hal", "nope"], '--hal: unknown hal "nope" (sim or pmem)'],
  [["cluster", "up", "--dir", ""], "--dir is empty"],
  [["cluster", "down", "--nodes", "2"], "--nodes only applies with up"],
  [["cluster", "down", "--bogus"], 'unknown option "--bogus" (see twz cluster --help)'],
];

Deno.test("twz: every bad-argument case of every subcommand is one line naming it, exit 2", async () => {
  for (const [args, message] of CASES) {
    assertUsage(await run([...args]), message, `twz ${args.join(" ")}`);
  }
  // Nothing was made on the way.
  for (const name of ["a", "b", "b.img", "u"]) {
    assert.throws(() => Deno.statSync(name), Deno.errors.NotFound, name);
  }
});

Deno.test("twz CMD --help and twz help CMD print the usage line from the command's spec, exit 0", async () => {
  for (const [name, { spec }] of Object.entries(COMMANDS)) {
    for (const args of [[name, "--help"], ["help", name], [name, "--debug", "--help"]]) {
      const r = await run(args);
      const what = `twz ${args.join(" ")}`;
      assert.equal(r.code, 0, `${what}: ${r.err.join("\n")}`);
      assert.deepEqual(r.err, [], what);
      assert.match(r.out[0]!, new RegExp(`^usage: twz ${name}( |$)`), what);
      assert.equal(r.out[2], spec.summary, what);
      for (const o of spec.options ?? []) {
        assert.ok(r.out[0]!.includes(`${o.name}`), `${what}: ${o.name} in the usage line`);
        assert.ok(r.out.some((l) => l.startsWith(`  ${o.name}`)), `${what}: ${o.name} listed`);
      }
      // Details are wrapped at 80 columns: compare with the line breaks as spaces.
      const text = r.out.join(" ");
      for (const d of spec.details ?? []) assert.ok(text.includes(d), `${what}: details`);
    }
  }
  // --help wherever an option may stand; after twz run's program it is the program's.
  const fsck = await run(["fsck", "--image", "x", "--deep", "--help"]);
  assert.equal(fsck.code, 0);
  assert.match(fsck.out[0]!, /^usage: twz fsck /);
});

Deno.test("twz help lists every command with its synopsis and summary, the notes and the exit codes", async () => {
  for (const args of [["help"], ["--help"], ["-h"]]) {
    const r = await run(args);
    assert.equal(r.code, 0);
    const text = r.out.join("\n");
    for (const [name, { spec }] of Object.entries(COMMANDS)) {
      assert.match(text, new RegExp(`^  ${name}( |$)`, "m"), name);
      // The summary, wrapped into lines of the list.
      assert.ok(text.replace(/\n +/g, " ").includes(spec.summary), `${name}: summary`);
      for (const o of spec.options ?? []) {
        assert.ok(
          text.includes(`[${o.name}`),
          `${name}: ${o.name} in its synopsis`,
        );
      }
    }
    assert.ok(r.out.every((l) => l.length <= 80), "80 columns");
    for (const code of [0, 1, 2, 3, 4, 5, 6]) assert.match(text, new RegExp(`^  ${code} `, "m"));
    assert.match(text, /5 image in use by another process/);
    assert.match(text, /twz run exits with its program's exit code \(137: killed\)/);
    assert.match(text, /--set sync=data/);
  }
  // What the hand-written usage said is still said, in the commands' help.
  const said = [
    ["boot", /One process at a time may boot an image/],
    ["boot", /--read-only never writes the image/],
    ["boot", /crash point N was never reached/],
    ["run", /Options go before the program/],
    ["run", /control socket beside the image \(IMAGE\.sock\)/],
    ["fsck", /twz fsck --undo FILE --image PATH/],
    ["fsck", /twz fsck --upgrade --image PATH/],
    ["fsck", /2 usage, or the undo file exists/],
    ["crashtest", /--replay POINT:VARIANT\[\/RPOINT:RVARIANT\]/],
    ["crashtest", /3 the workload cannot be loaded/],
  ] as const;
  for (const [name, pattern] of said) {
    assert.match((await run(["help", name])).out.join(" "), pattern, name);
  }
});

Deno.test("twz bench --list and twz crashtest --list name what they run", async () => {
  const bench = await run(["bench", "--list"]);
  assert.equal(bench.code, 0);
  assert.ok(bench.out.some((l) => /^kv-insert +persistent hash map inserts/.test(l)));
  const crash = await run(["crashtest", "--list"]);
  assert.equal(crash.code, 0);
  assert.ok(crash.out.some((l) => /^kernel-objects +/.test(l)));
});

Deno.test("--debug is an option of every subcommand: accepted everywhere, adds the stack trace", async () => {
  for (const [name, { spec }] of Object.entries(COMMANDS)) {
    assert.ok(spec.options?.some((o) => o.name === "--debug"), `${name} takes --debug`);
  }
  const dir = tmpDir();
  const missing = join(dir, "none.img");
  const plain = await run(["fsck", "--image", missing]);
  assert.equal(plain.code, 3);
  assert.deepEqual(plain.err, [`twz: cannot open ${missing}: no such file`]);
  const debug = await run(["fsck", "--debug", "--image", missing]);
  assert.equal(debug.code, 3);
  assert.equal(debug.err[0], plain.err[0]);
  assert.ok(debug.err.some((l) => /^\s+at /.test(l)), debug.err.join("\n"));
  // Parsed like any option: a mistake after it is still one line.
  assertUsage(await run(["run", "--debug"]), "missing PROGRAM", "run --debug");
  // After twz run's program, --debug (and anything else) is the program's: no
  // usage error, the run goes on to open the image (here: it cannot).
  const program = await run(["run", "--image", NO_IMAGE, "kv", "--debug", "--bogus"]);
  assert.equal(program.code, 3, program.err.join("\n"));
  assert.deepEqual(program.err, [
    `twz: cannot boot ${NO_IMAGE}: the folder /nonexistent-folder does not exist`,
  ]);
  // A usage mistake found after parsing, with --debug: its line, then where it was found.
  for (
    const [args, message] of [
      [["crashtest", "kv", "--debug", "--states", "0"], '--states: "0" is too small (at least 1)'],
      [["bench", "nope", "--debug"], 'unknown benchmark "nope" (twz bench --list names them)'],
    ]
  ) {
    const r = await run(args as string[]);
    assert.equal(r.code, 2);
    assert.equal(r.err[0], `twz: ${message}`);
    assert.ok(r.err.slice(1).some((l) => /^\s+at /.test(l)), r.err.join("\n"));
  }
});

Deno.test("twz as a process: one line and exit 2 for a mistake, usage and exit 0 for --help", async () => {
  const dir = tmpDir();
  const [fsck, size, help, runHelp] = await Promise.all([
    twz(["fsck"], undefined, { cwd: dir }),
    twz(["run", "--size", "-5M", "kv"], undefined, { cwd: dir }),
    twz(["crashtest", "--help"], undefined, { cwd: dir }),
    twz(["run", "--help"], undefined, { cwd: dir }),
  ]);
  assertOneLineError(fsck, 2, /^twz: missing --image PATH$/);
  assertOneLineError(size, 2, /^twz: --size: "-5M" is negative: a size is a positive number/);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage: twz crashtest \[--states N\] .*\[WORKLOAD\]\n/);
  assert.equal(runHelp.code, 0, runHelp.stderr);
  assert.match(runHelp.stdout, /^usage: twz run .*PROGRAM \[ARGS\.\.\.\]\n/);
  assert.deepEqual([...Deno.readDirSync(dir)], [], "no image was made");
});

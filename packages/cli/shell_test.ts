// The shell's command table, in-process: help is made from the table, lines
// are dispatched through it (aliases, --force, subcommands, unknown words),
// and rm's name clean-up. End-to-end runs of `twz boot` are in
// tests/cli_test.ts.
import assert from "node:assert/strict";
import { formatId, Kernel, parseId } from "@twz/kernel";
import { openSim, plugin } from "@twz/hal-sim";
import { type Flow, helpText, Shell, shownWord } from "./shell.ts";
import { helpFor, synopsisOf } from "./_args.ts";
import { COMMANDS } from "./_commands.ts";

function shell(): { sh: Shell; out: string[]; err: string[] } {
  const hal = openSim({ size: 8 << 20 });
  const kernel = Kernel.boot(hal);
  const out: string[] = [], err: string[] = [];
  const sh = new Shell(
    { plugin, hal, kernel, options: { hal: "sim" } },
    { out: (l) => out.push(l), err: (l) => err.push(l) },
    () => {},
  );
  return { sh, out, err };
}

async function run(sh: Shell, lines: string[]): Promise<Flow[]> {
  const flows: Flow[] = [];
  for (const line of lines) flows.push(await sh.execute(line));
  return flows;
}

Deno.test("helpText() lists every command and subcommand with its synopsis from the spec", () => {
  const help = helpText();
  const lines = help.split("\n");
  assert.equal(lines[0], "commands:");
  for (const c of COMMANDS) {
    for (const s of c.sub ?? [c]) {
      const synopsis = synopsisOf(s.spec);
      const head = `  ${s.spec.name}${synopsis ? ` ${synopsis}` : ""}`;
      const at = lines.findIndex((l) => l === head || l.startsWith(`${head} `));
      assert.ok(at > 0, `no help line for ${s.spec.name}`);
      const line = lines[at]!.length > head.length ? lines[at]! : lines[at + 1]!;
      assert.ok(
        line.endsWith(s.spec.summary) || line.includes(`${s.spec.summary} (also:`),
        line,
      );
    }
    for (const alias of c.aliases ?? []) assert.match(help, new RegExp(`also: .*${alias}`));
  }
  for (const name of ["run", "ps", "kill", "wait", "hexdump", "kv put"]) {
    assert.match(help, new RegExp(`^  ${name} `, "m"));
  }
  assert.match(
    help,
    /^ {2}run \[--context CTX\]\.\.\. PROGRAM \[ARGS\.\.\.\] \[&\]\n {40}run a program/m,
  );
  assert.match(help, /^ {2}write \[--force\] \[--raw\] \[--hex\] OBJ OFFSET TEXT$/m);
  // Summaries line up in one column.
  for (const l of lines.slice(1)) {
    const gap = /^ {2}\S.*? {2,}(?=\S)/.exec(l) ?? /^ {3,}(?=\S)/.exec(l);
    if (gap) assert.equal(gap[0].length, 40, l);
  }
  assert.match(help, /^write, grow, rm, unbind and rename refuse the system's own objects/m);
});

Deno.test("Shell.execute() prints the help list for help; help CMD and CMD --help print the spec's help", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["help"]);
  assert.deepEqual(out, helpText().split("\n"));
  const byName = new Map(COMMANDS.map((c) => [c.spec.name, c]));
  for (const line of ["write --help", "help write", "write /x 0 --help"]) {
    out.length = 0;
    await run(sh, [line]);
    assert.deepEqual(out, helpFor(byName.get("write")!.spec).split("\n"), line);
  }
  const put = byName.get("kv")!.sub!.find((s) => s.spec.name === "kv put")!;
  for (const line of ["kv put --help", "help kv put"]) {
    out.length = 0;
    await run(sh, [line]);
    assert.deepEqual(out, helpFor(put.spec).split("\n"), line);
    assert.equal(out[0], "usage: kv put KEY VALUE");
  }
  out.length = 0;
  await run(sh, ["kv --help"]);
  assert.equal(out[0], "usage: kv COMMAND");
  for (const s of ["put KEY VALUE", "get KEY", "del KEY", "count", "scan [FROM] [TO]"]) {
    assert.ok(out.some((l) => l.startsWith(`  kv ${s}`)), `kv --help lists kv ${s}`);
  }
  // Every command of the table answers --help with its own usage line.
  for (const c of COMMANDS) {
    out.length = 0;
    await run(sh, [`${c.spec.name} --help`]);
    assert.equal(
      out[0],
      `usage: ${c.spec.name}${synopsisOf(c.spec) ? ` ${synopsisOf(c.spec)}` : ""}`,
    );
  }
  assert.deepEqual(err, []);
  assert.equal(sh.failures, 0, "help is not a failure");
  sh.kernel.shutdown();
});

Deno.test("Shell.execute() dispatches by the table: aliases, comments, unknown words", async () => {
  const { sh, out, err } = shell();
  const flows = await run(sh, [
    "",
    "   ",
    "# new",
    "  # it's a comment (an apostrophe in it is fine)",
    "frobnicate now",
    "--force",
    "shutdown",
    "exit",
    "quit",
    "run prog.js",
  ]);
  assert.deepEqual(flows, [
    "continue",
    "continue",
    "continue",
    "continue",
    "continue",
    "continue",
    "shutdown",
    "shutdown",
    "shutdown",
    "continue",
  ]);
  assert.deepEqual(out, []);
  assert.deepEqual(err, [
    'frobnicate: unknown command (try "help")',
    '--force: unknown command (try "help")',
    "run: cannot read program prog.js: no such file",
  ]);
  assert.equal(sh.failures, 3);
  sh.kernel.shutdown();
});

Deno.test("Shell.execute(): --force is an option of the writing commands, anywhere among the options", async () => {
  const { sh, out, err } = shell();
  await run(sh, [
    "kv put a 1",
    "write /kv 300 x",
    "write --force /kv 300   two  words ",
    "write /kv --force 300 x",
    "write /kv 300 --force x",
    "read /kv 300 10",
    "read --force /kv 300 10",
  ]);
  assert.deepEqual(out, ["ok", "wrote 10 bytes", "wrote 1 bytes", "wrote 1 bytes", "xwo  words"]);
  assert.deepEqual(err, [
    "write: /kv is the kv store (/kv); refusing to write it (add --force to do it anyway)",
    "read: --force goes with --raw (to reach the null region and meta-info)",
  ]);
  sh.kernel.shutdown();
});

Deno.test("quotes and escapes work for every argument: keys and names with spaces, \\n", async () => {
  const { sh, out, err } = shell();
  await run(sh, [
    'kv put "a key" "two\\nlines"  and more',
    "kv get 'a key'",
    "kv get a\\ key",
    'new --size 4096 --name "/my dir/my file"',
    'write "/my dir/my file" 0 \'single "quoted"\' text',
    "read '/my dir/my file' 0 20",
    'names "/my dir"',
    "kv scan",
  ]);
  assert.deepEqual(err, []);
  assert.equal(out[0], "ok");
  assert.equal(out[1], "two\nlines  and more");
  assert.equal(out[2], "two\nlines  and more");
  assert.equal(out[4], "wrote 20 bytes");
  assert.equal(out[5], 'single "quoted" text');
  assert.match(out[6]!, /^[0-9a-f]{32} {2}obj {2}my file$/);
  assert.equal(out[7], "a key\ttwo\nlines  and more");
  sh.kernel.shutdown();
});

Deno.test("Shell.execute() runs kv subcommands from the table; a wrong one lists them", async () => {
  const { sh, out, err } = shell();
  await run(sh, [
    "kv",
    "kv frob",
    "kv get",
    "kv count",
    'kv put k "a\\tb"',
    "kv get k",
    "kv scan",
    "kv del k",
    "kv count",
  ]);
  assert.deepEqual(out, ["0", "ok", "a\tb", "k\ta\tb", "ok", "0"]);
  assert.deepEqual(err, [
    "kv: missing COMMAND (put, get, del, count or scan; see kv --help)",
    'kv: unknown command "frob" (put, get, del, count or scan; see kv --help)',
    "kv: missing KEY",
  ]);
  sh.kernel.shutdown();
});

Deno.test("Shell rm unbinds every name of what it deleted, and names left dangling before", async () => {
  const { sh, out, err } = shell();
  await run(sh, [
    "new --size 4096 --name /p",
    "new --size 4096 --tie /p --name /d/child",
    "bind /alias /d/child",
    "new --size 4096 --name /gone",
    "new --size 4096 --name /other",
  ]);
  // A name whose object went behind the naming service's back (as a crash
  // between rm's delete and its unbinds leaves) goes with the next rm.
  sh.kernel.delete(sh.twz.naming.resolve("/gone"));
  out.length = 0;
  await run(sh, ["rm /d", "rm /", "rm --force /", "rm /p", "names /"]);
  assert.deepEqual(err, [
    "rm: /d is a directory of names (1 name in it): rm deletes objects; unbind its names first, then unbind the directory",
    "rm: / is the naming root directory: it cannot be removed",
    "rm: / is the naming root directory: it cannot be removed",
  ]);
  assert.deepEqual(out.slice(0, 5), [
    "deleted 2 objects",
    "unbound /p",
    "unbound /gone",
    "unbound /d/child",
    "unbound /alias",
  ]);
  assert.deepEqual(out.slice(5).map((l) => l.split(/\s+/).slice(1).join(" ")), [
    "dir d/",
    "obj other",
  ]);
  sh.kernel.shutdown();
});

Deno.test("hexdump OBJ [OFFSET [LEN]]: hex and text, 16 a line, equal lines starred; offsets from the base", async () => {
  const { sh, out, err } = shell();
  // A 4096-byte object: 256 bytes of null region and meta-info, then data up to the FOT.
  await run(sh, ["new --size 4096 --name /h", 'write /h 0 "Hello,\\n world"']);
  out.length = 0;
  await run(sh, ["hexdump /h 0 64", "hexdump /h 3322"]);
  assert.deepEqual(out, [
    "00000000  48 65 6c 6c 6f 2c 0a 20  77 6f 72 6c 64 00 00 00  |Hello,. world...|",
    "00000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|",
    "*",
    "00000040",
    "00000cfa  00 00 00 00 00 00                                 |......|",
    "00000d00",
  ]);
  out.length = 0;
  await run(sh, ["hexdump /h"]);
  assert.equal(out.length, 4, "no LEN: 256 bytes");
  assert.equal(out.at(-1), "00000100");
  out.length = 0;
  // --raw: absolute offsets; the meta-info only with --force.
  await run(sh, ["hexdump --raw /h 256 16", "hexdump --raw --force /h 0 16"]);
  assert.deepEqual(out, [
    "00000100  48 65 6c 6c 6f 2c 0a 20  77 6f 72 6c 64 00 00 00  |Hello,. world...|",
    "00000110",
    "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|",
    "00000010",
  ]);
  await run(sh, [
    "hexdump /h 5000",
    "hexdump /h x",
    "hexdump /h 0 10 9",
    "hexdump",
    "hexdump --raw /h 0",
  ]);
  assert.deepEqual(err, [
    "hexdump: OFFSET 5000 is past the end of the data (3328 bytes from the base; --raw for absolute offsets)",
    'hexdump: OFFSET: "x" is not a number',
    'hexdump: unexpected argument "9" (see hexdump --help)',
    "hexdump: missing OBJ",
    "hexdump: OFFSET 0 is in the null region and meta-info (bytes 0-255); add --force to read them",
  ]);
});

Deno.test("write --hex OBJ OFFSET HEX stores bytes; bad hex is one line naming it", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["new --size 4096 --name /h", "write --hex /h 2 48 65 6c6c 6f ff"]);
  assert.equal(out.at(-1), "wrote 6 bytes");
  out.length = 0;
  await run(sh, ["hexdump /h 0 8", "hexdump --raw /h 256 8"]);
  assert.equal(out[0], "00000000  00 00 48 65 6c 6c 6f ff                           |..Hello.|");
  assert.equal(out[2], "00000100  00 00 48 65 6c 6c 6f ff                           |..Hello.|");
  await run(sh, ["write --hex /h 0 4g", "write --hex /h 0 123", "write --hex /h 0"]);
  assert.deepEqual(err, [
    'write: HEX: "4g" is not bytes in hex (pairs of 0-9 a-f)',
    'write: HEX: "123" is not bytes in hex (pairs of 0-9 a-f)',
    "write: missing TEXT",
  ]);
});

Deno.test("ls and stat show the names bound to each object (every path, sorted; none when unnamed)", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["new --size 4096 --name /h", "mkdir /d", "bind /d/x /h", "new --size 512"]);
  const [h, d, , plain] = out.splice(0);
  out.length = 0;
  await run(sh, ["ls"]);
  const line = (id: string) => out.find((l) => l.startsWith(id))!;
  assert.match(line(h!), / {2}4096 {2}\/d\/x \/h$/);
  assert.match(line(d!), / {2}\/d$/);
  assert.match(line(plain!), / {7}512$/);
  assert.ok(out.some((l) => / \/$/.test(l)), "the root directory is /");
  out.length = 0;
  await run(sh, [`stat ${h}`, `stat ${plain}`]);
  assert.deepEqual(out.filter((l) => l.startsWith("names:")), [
    "names:      /d/x /h",
    "names:      none",
  ]);
  assert.deepEqual(err, []);
});

Deno.test("an unknown command is echoed as a short, escaped prefix only", async () => {
  const { sh, err } = shell();
  await run(sh, ["frobnicate", `${"x".repeat(100)} arg`, "\x1b[2Jclear\u00e9", "ls extra"]);
  assert.deepEqual(err, [
    'frobnicate: unknown command (try "help")',
    `"${"x".repeat(24)}…": unknown command (try "help")`,
    '"\\x1b[2Jclear\\u00e9": unknown command (try "help")',
    'ls: unexpected argument "extra" (see ls --help)',
  ]);
  assert.equal(shownWord("plain"), "plain");
  assert.equal(shownWord("tab\there"), '"tab\\there"');
  assert.equal(shownWord("😀"), '"\\u{1f600}"');
});

Deno.test("new refuses a repeated option (--tie may repeat)", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["new --size 4096 --size 8192", "new --volatile --volatile", "new --size 4096"]);
  const tie = out.at(-1)!;
  await run(sh, [`new --size 4096 --tie ${tie} --tie ${tie}`]);
  assert.deepEqual(err, ["new: --size given twice", "new: --volatile given twice"]);
  assert.equal(out.length, 2, out.join("\n"));
});

Deno.test("read/write offsets count from the base; --raw is absolute; --raw --force reaches the meta-info", async () => {
  const { sh, out, err } = shell();
  await run(sh, [
    "new --size 4096 --name /o",
    "write /o 0 base",
    "read /o 0",
    "read --raw /o 256 4",
    "write --raw /o 260 +raw",
    "read /o 0 8",
    "write --raw --force /o 8 meta",
    "read --raw --force /o 8 4",
    "write --raw --force /o 4000 fot",
    "read --raw /o 4000 3",
  ]);
  assert.deepEqual(err, []);
  assert.deepEqual(out.slice(1), [
    "wrote 4 bytes",
    "base",
    "base",
    "wrote 4 bytes",
    "base+raw",
    "wrote 4 bytes",
    "meta",
    "wrote 3 bytes",
    "fot",
  ]);
  // Every byte of the data, and no byte more.
  await run(sh, ["write /o 3327 !", "write /o 3328 !", "read --raw /o 4093 4"]);
  assert.equal(out.at(-1), "wrote 1 bytes");
  assert.deepEqual(err, [
    "write: LEN 1 at OFFSET 3328 runs past the end of the data (3328 bytes from the base; --raw for absolute offsets)",
    "read: LEN 4 at OFFSET 4093 runs past the end of the object (4096 bytes)",
  ]);
  sh.kernel.shutdown();
});

Deno.test("an object without libtwz meta-info (a raw kernel object) has no base: offsets from byte 0", async () => {
  const { sh, out, err } = shell();
  const id = formatId(sh.kernel.create({ size: 512 }));
  await run(sh, [`write ${id} 0 old`, `read ${id} 0 3`, `hexdump ${id} 0 4`, `read ${id} 510 4`]);
  assert.deepEqual(out, [
    "wrote 3 bytes",
    "old",
    "00000000  6f 6c 64 00                                       |old.|",
    "00000004",
  ]);
  assert.deepEqual(new TextDecoder().decode(sh.kernel.read(parseId(id), 0, 3)), "old");
  assert.deepEqual(err, ["read: LEN 4 at OFFSET 510 runs past the end of the object (512 bytes)"]);
  sh.kernel.shutdown();
});

// The shell's command table, in-process: help is made from the table, lines
// are dispatched through it (aliases, --force, subcommands, unknown words),
// and rm's name clean-up. End-to-end runs of `twz boot` are in
// tests/cli_test.ts.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { openSim, plugin } from "@twz/hal-sim";
import { type Flow, helpText, Shell, shownWord } from "./shell.ts";
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

Deno.test("helpText() lists every command of the table with its synopsis and summary", () => {
  const help = helpText();
  const lines = help.split("\n");
  assert.equal(lines[0], "commands:");
  for (const c of COMMANDS) {
    const head = `  ${c.name}${c.forceable ? " [--force]" : ""}${
      c.synopsis ? ` ${c.synopsis}` : ""
    }`;
    if (c.sub === undefined) {
      const at = lines.findIndex((l) => l.startsWith(head));
      assert.ok(at > 0, `no help line for ${c.name}`);
      const line = lines[at]!.length > head.length ? lines[at]! : lines[at + 1]!;
      assert.ok(line.endsWith(c.summary) || line.includes(`${c.summary} (also:`), line);
    } else {
      for (const s of c.sub) {
        assert.ok(lines.some((l) => l.startsWith(`  ${c.name} ${s.name}`)), `${c.name} ${s.name}`);
      }
    }
    for (const alias of c.aliases ?? []) assert.match(help, new RegExp(`also: .*${alias}`));
  }
  // Summaries line up in one column.
  for (const l of lines.slice(1)) {
    const gap = /^ {2}\S.*? {2,}(?=\S)/.exec(l) ?? /^ {3,}(?=\S)/.exec(l);
    if (gap) assert.equal(gap[0].length, 40, l);
  }
  assert.match(help, /^write, grow, rm, unbind and rename refuse the system's own objects/m);
});

Deno.test("Shell.execute() prints the help for help, with or without words after it", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["help", "help me"]);
  assert.deepEqual(out, [helpText(), helpText()]);
  assert.deepEqual(err, []);
  sh.kernel.shutdown();
});

Deno.test("Shell.execute() dispatches by the table: aliases, comments, unknown words", async () => {
  const { sh, out, err } = shell();
  const flows = await run(sh, [
    "",
    "   ",
    "# new",
    "frobnicate now",
    "--force",
    "shutdown",
    "exit",
    "quit now",
    "run prog.js",
  ]);
  assert.deepEqual(flows, [
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

Deno.test("Shell.execute() takes --force only after a command that writes or deletes", async () => {
  const { sh, out, err } = shell();
  await run(sh, [
    "kv put a 1",
    "write /kv 300 x",
    "write --force /kv 300   two  words ",
    "read --force /kv 300 10",
    "read /kv 300 10",
  ]);
  assert.deepEqual(out, ["ok", "wrote 10 bytes", "two  words"]);
  assert.deepEqual(err, [
    "write: /kv is the kv store (/kv); refusing to write it (add --force to do it anyway)",
    "read: No object is named --force",
  ]);
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
    "kv: kv takes put, get, del, count or scan (see help)",
    "kv: kv takes put, get, del, count or scan (see help)",
    "kv: kv get needs a KEY",
  ]);
  sh.kernel.shutdown();
});

Deno.test("Shell rm unbinds every name of what it deleted, and names left dangling before", async () => {
  const { sh, out, err } = shell();
  await run(sh, [
    "new --size 64 --name /p",
    "new --size 64 --tie /p --name /d/child",
    "bind /alias /d/child",
    "new --size 64 --name /gone",
    "new --size 64 --name /other",
  ]);
  // A name whose object went behind the naming service's back (as a crash
  // between rm's delete and its unbinds leaves) goes with the next rm.
  sh.kernel.delete(sh.twz.naming.resolve("/gone"));
  out.length = 0;
  await run(sh, ["rm /d", "rm /p", "names /"]);
  assert.deepEqual(err, [
    "rm: /d is a directory of names: unbind its names first, then unbind the directory",
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

Deno.test("hexdump OBJ [OFFSET [LEN]]: hex and text, 16 a line, equal lines starred; bad arguments are one line", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["new --size 4096 --name /h", 'write /h 0 "Hello,\\n world"']);
  out.length = 0;
  await run(sh, ["hexdump /h 0 64", "hexdump /h 4090"]);
  assert.deepEqual(out, [
    "00000000  48 65 6c 6c 6f 2c 0a 20  77 6f 72 6c 64 00 00 00  |Hello,. world...|",
    "00000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|",
    "*",
    "00000040",
    "00000ffa  00 00 00 00 00 00                                 |......|",
    "00001000",
  ]);
  out.length = 0;
  await run(sh, ["hexdump /h"]);
  assert.equal(out.length, 4, "no LEN: 256 bytes");
  assert.equal(out.at(-1), "00000100");
  await run(sh, ["hexdump /h 5000", "hexdump /h x", "hexdump /h 0 10 9", "hexdump"]);
  assert.deepEqual(err, [
    "hexdump: OFFSET 5000 is past the end (4096 bytes)",
    'hexdump: OFFSET must be a non-negative integer, not "x"',
    'hexdump: unexpected argument "9"',
    "hexdump: missing OBJ (an object ID or a name)",
  ]);
});

Deno.test("write --hex OBJ OFFSET HEX stores bytes; bad hex is one line naming it", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["new --size 4096 --name /h", "write --hex /h 2 48 65 6c6c 6f ff"]);
  assert.equal(out.at(-1), "wrote 6 bytes");
  out.length = 0;
  await run(sh, ["hexdump /h 0 8"]);
  assert.equal(out[0], "00000000  00 00 48 65 6c 6c 6f ff                           |..Hello.|");
  await run(sh, ["write --hex /h 0 4g", "write --hex /h 0 123", "write --hex /h 0"]);
  assert.deepEqual(err, [
    'write: HEX: "4g" is not bytes in hex (pairs of 0-9 a-f)',
    'write: HEX: "123" is not bytes in hex (pairs of 0-9 a-f)',
    "write: missing HEX",
  ]);
});

Deno.test("ls and stat show the names bound to each object (every path, sorted; none when unnamed)", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["new --size 4096 --name /h", "mkdir /d", "bind /d/x /h", "new --size 64"]);
  const [h, d, , plain] = out.splice(0);
  out.length = 0;
  await run(sh, ["ls"]);
  const line = (id: string) => out.find((l) => l.startsWith(id))!;
  assert.match(line(h!), / {2}4096 {2}\/d\/x \/h$/);
  assert.match(line(d!), / {2}\/d$/);
  assert.match(line(plain!), / {8}64$/);
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
  await run(sh, ["frobnicate", `${"x".repeat(100)} arg`, "\x1b[2Jclear\u00e9", "ls extra-is-fine"]);
  assert.deepEqual(err, [
    'frobnicate: unknown command (try "help")',
    `"${"x".repeat(24)}…": unknown command (try "help")`,
    '"\\x1b[2Jclear\\u00e9": unknown command (try "help")',
  ]);
  assert.equal(shownWord("plain"), "plain");
  assert.equal(shownWord("tab\there"), '"tab\\there"');
  assert.equal(shownWord("😀"), '"\\u{1f600}"');
});

Deno.test("new refuses a repeated option (--tie may repeat)", async () => {
  const { sh, out, err } = shell();
  await run(sh, ["new --size 64 --size 128", "new --volatile --volatile", "new --size 64"]);
  const tie = out.at(-1)!;
  await run(sh, [`new --size 64 --tie ${tie} --tie ${tie}`]);
  assert.deepEqual(err, ["new: --size given twice", "new: --volatile given twice"]);
  assert.equal(out.length, 2, out.join("\n"));
});

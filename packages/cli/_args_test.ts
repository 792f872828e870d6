import assert from "node:assert/strict";
import {
  count,
  helpFor,
  HelpRequested,
  parseArgv,
  parseLine,
  synopsisOf,
  tokenize,
} from "./_args.ts";
import { UsageError } from "./board.ts";

const words = (line: string) => tokenize(line).map((t) => t.text);

Deno.test("tokenize: quotes and escapes", () => {
  assert.deepEqual(words(`  a  "b c"  'd "e"' f\\ g "x\\ny" \\x41\\t `), [
    "a",
    "b c",
    'd "e"',
    "f g",
    "x\ny",
    "A\t",
  ]);
  assert.deepEqual(words(`ab"cd"'ef'`), ["abcdef"]);
  assert.deepEqual(words(`""`), [""]);
  assert.deepEqual(words(""), []);
});

Deno.test("tokenize: an unterminated quote, a lone backslash and unknown escapes are errors", () => {
  assert.throws(() => tokenize(`put "abc`), /^UsageError: unterminated quote \(\"\) at column 5$/);
  assert.throws(() => tokenize(`put 'abc`), /unterminated quote \(\'\) at column 5/);
  assert.throws(() => tokenize(`put abc\\`), /lone backslash/);
  assert.throws(() => tokenize(`put \\q`), /unknown escape "\\\\q"/);
  assert.throws(() => tokenize(`put \\x4`), /\\x takes two hex digits/);
});

const WRITE = {
  name: "write",
  summary: "store TEXT",
  options: [
    { name: "--force", summary: "even a system object" },
    { name: "--policy", value: "POLICY", choices: ["strict", "random", "all"], summary: "how" },
    { name: "--tie", value: "OBJ", repeat: true, summary: "tie" },
  ],
  args: [{ name: "OBJ" }, { name: "OFFSET", optional: true }, {
    name: "TEXT",
    optional: true,
    rest: true,
  }],
};

Deno.test("parse: options anywhere before a rest argument, rest keeps spacing", () => {
  const p = parseLine(WRITE, `write --force /a --tie x 12 hello   "big  world"  --tie y  `);
  assert.equal(p.has("--force"), true);
  assert.equal(p.arg("OBJ"), "/a");
  assert.equal(p.arg("OFFSET"), "12");
  assert.equal(p.arg("TEXT"), "hello   big  world  --tie y");
  assert.deepEqual(p.values("--tie"), ["x"]);
  assert.equal(p.has("--policy"), false);
  assert.equal(parseLine(WRITE, "write --policy=all o").value("--policy"), "all");
  assert.equal(parseLine(WRITE, 'write "--force" o').arg("OBJ"), "--force");
  assert.equal(parseLine(WRITE, "write -- --force").arg("OBJ"), "--force");
});

Deno.test("parse: each mistake is one line naming it", () => {
  const bad = (line: string, message: RegExp) =>
    assert.throws(() => parseLine(WRITE, line), (e) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.match(e.message, message);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
  bad("write", /^missing OBJ$/);
  bad("write --force --force o", /^--force given twice$/);
  bad("write --bogus o", /^unknown option "--bogus" \(see write --help\)$/);
  bad("write --policy bogus o", /^--policy: unknown policy "bogus" \(strict, random or all\)$/);
  bad("write --policy", /^--policy needs a value \(POLICY\)$/);
  bad("write --force=1 o", /^--force takes no value$/);
  const short = { name: "read", summary: "s", args: [{ name: "OBJ" }, { name: "LEN" }] };
  assert.throws(() => parseLine(short, "read o"), /^UsageError: missing LEN$/);
  assert.throws(() => parseLine(short, "read o 1 2"), /^UsageError: unexpected argument "2"/);
});

Deno.test("parse: --help asks for the help made from the same spec", () => {
  assert.throws(() => parseLine(WRITE, "write o --help"), (e) => {
    assert.ok(e instanceof HelpRequested);
    assert.equal(e.text, helpFor(WRITE));
    return true;
  });
  const help = helpFor(WRITE);
  assert.match(
    help,
    /^usage: write \[--force\] \[--policy strict\|random\|all\] \[--tie OBJ\]\.\.\. OBJ \[OFFSET\] \[TEXT\]\n/,
  );
  assert.match(help, /--policy POLICY +how \(strict, random or all\)/);
  assert.match(help, /--tie OBJ +tie; may repeat/);
  assert.equal(
    synopsisOf({ name: "x", summary: "", args: [{ name: "TID", variadic: true }] }),
    "TID...",
  );
});

Deno.test("parse: optionsFirst leaves the program's options to it; argv is not re-split", () => {
  const run = {
    name: "twz run",
    summary: "run",
    optionsFirst: true,
    options: [{ name: "--image", value: "PATH", summary: "image" }],
    args: [{ name: "PROGRAM" }, { name: "ARGS", optional: true, variadic: true }],
  };
  const p = parseArgv(run, ["--image", "a b.img", "kv", "put", "--image", "x y"]);
  assert.equal(p.value("--image"), "a b.img");
  assert.equal(p.arg("PROGRAM"), "kv");
  assert.deepEqual(p.args("ARGS"), ["put", "--image", "x y"]);
  assert.throws(() => parseArgv(run, []), /missing PROGRAM/);
});

Deno.test("count: negative and non-numbers are named", () => {
  assert.equal(count("42", "OFFSET"), 42);
  assert.throws(() => count("-3", "OFFSET"), /^UsageError: OFFSET: "-3" is negative$/);
  assert.throws(() => count("3x", "--seed"), /^UsageError: --seed: "3x" is not a number$/);
  assert.throws(() => count("99999999999999999999", "LEN"), /too large/);
});

Deno.test("parse: a required option is named when missing and shown without brackets", () => {
  const fsck = {
    name: "twz fsck",
    summary: "check",
    options: [
      { name: "--image", value: "PATH", required: true, summary: "the image" },
      { name: "--hal", value: "HAL", choices: ["sim", "pmem"], summary: "the HAL (default sim)" },
    ],
  };
  assert.throws(() => parseArgv(fsck, []), /^UsageError: missing --image PATH$/);
  assert.equal(parseArgv(fsck, ["--image", "x"]).value("--image"), "x");
  assert.equal(synopsisOf(fsck), "--image PATH [--hal sim|pmem]");
  assert.match(helpFor(fsck), /--hal HAL +the HAL \(sim or pmem; default sim\)/);
  assert.throws(
    () => count("0", "--ops", 1),
    /^UsageError: --ops: "0" is too small \(at least 1\)$/,
  );
});

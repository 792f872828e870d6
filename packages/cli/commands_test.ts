// Every bad-argument case of every shell command, in-process over a Board:
// each line is refused with exactly the one line shown, on the shell's
// error output, nothing on its output, and counts as a failed command. Then
// the cases that need a program: a foreground `run` ended by an interrupt.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Kernel } from "@twz/kernel";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { openSim, plugin } from "@twz/hal-sim";
import type { Board } from "./board.ts";
import { stopThreads } from "./run.ts";
import { Shell } from "./shell.ts";
import { COMMANDS } from "./_commands.ts";

function shell(): { sh: Shell; board: Board; out: string[]; err: string[] } {
  const hal = openSim({ size: 16 << 20 });
  const board: Board = { plugin, hal, kernel: Kernel.boot(hal), options: { hal: "sim" } };
  const out: string[] = [], err: string[] = [];
  const sh = new Shell(board, { out: (l) => out.push(l), err: (l) => err.push(l) }, () => {});
  return { sh, board, out, err };
}

/** Made before the rows run: /h (4096 bytes: 3328 data bytes from the base), /d/x, /kv. */
const FIXTURE = ["new --size 4096 --name /h", "mkdir /d", "bind /d/x /h", "kv put a 1"];

/** [line, the one error line it gets]. */
const BAD: readonly [string, string][] = [
  ["help frob", 'help: no command "frob" (try "help")'],
  ["help ls x", 'help: ls has no subcommands (try "help ls")'],
  ["help kv frob", 'help: unknown command "frob" (put, get, del, count or scan; see kv --help)'],
  ["help a b c", 'help: unexpected argument "c" (see help --help)'],
  [
    "new --size 64",
    "new: --size: an object needs at least 256 bytes (null region, meta-info, base), not 64",
  ],
  ["new --size -64", 'new: --size: "-64" is negative: a size is a positive number of bytes'],
  ["new --size x", 'new: --size: "x" is not a size (like 4096, 64K, 64M or 1G)'],
  ["new --size", "new: --size needs a value (SIZE)"],
  ["new --size 4096 --size 8192", "new: --size given twice"],
  ["new --prot q", 'new: --prot: "q" is not a protection (like "rw")'],
  ["new --tie /nothing", "new: No object is named /nothing"],
  [
    "new --volatile --name /v",
    "new: a volatile object cannot be named: the name would dangle after a crash",
  ],
  ["new --name /h", "new: the name /h is already bound"],
  ["new --bogus", 'new: unknown option "--bogus" (see new --help)'],
  ["new extra", 'new: unexpected argument "extra" (see new --help)'],
  ["ls x", 'ls: unexpected argument "x" (see ls --help)'],
  ["stat", "stat: missing OBJ"],
  ["stat a b", 'stat: unexpected argument "b" (see stat --help)'],
  ["stat /nothing", "stat: No object is named /nothing"],
  [
    "stat 0123456789abcdef0123456789abcdeg",
    "stat: No object is named 0123456789abcdef0123456789abcdeg",
  ],
  ["write", "write: missing OBJ"],
  ["write /h", "write: missing OFFSET"],
  ["write /h 0", "write: missing TEXT"],
  ["write /h -3 x", 'write: OFFSET: "-3" is negative'],
  ["write /h x y", 'write: OFFSET: "x" is not a number'],
  [
    "write /h 3328 x",
    "write: LEN 1 at OFFSET 3328 runs past the end of the data (3328 bytes from the base; --raw for absolute offsets)",
  ],
  [
    "write /h 3327 xy",
    "write: LEN 2 at OFFSET 3327 runs past the end of the data (3328 bytes from the base; --raw for absolute offsets)",
  ],
  ["write --hex /h 0 zz", 'write: HEX: "zz" is not bytes in hex (pairs of 0-9 a-f)'],
  [
    "write --raw /h 0 x",
    "write: OFFSET 0 is in the null region and meta-info (bytes 0-255); add --force to write them",
  ],
  [
    "write --raw /h 4000 x",
    "write: OFFSET 4000 LEN 1 reaches the FOT (bytes 3584-4095); add --force to write it",
  ],
  ["write --force --force /h 0 x", "write: --force given twice"],
  ['write /h 0 "abc', 'write: unterminated quote (") at column 12'],
  [
    "write /h 0 \\q",
    'write: unknown escape "\\\\q" (\\n \\t \\r \\0 \\xHH \\\\ \\" \\\' and "\\ " work)',
  ],
  ["write --bogus /h 0 x", 'write: unknown option "--bogus" (see write --help)'],
  [
    "write /kv 0 x",
    "write: /kv is the kv store (/kv); refusing to write it (add --force to do it anyway)",
  ],
  ["read", "read: missing OBJ"],
  ["read /h", "read: missing OFFSET"],
  ["read /h -1", 'read: OFFSET: "-1" is negative'],
  ["read /h 0 -1", 'read: LEN: "-1" is negative'],
  ["read /h 0 1 2", 'read: unexpected argument "2" (see read --help)'],
  [
    "read /h 0 99999",
    "read: LEN 99999 at OFFSET 0 runs past the end of the data (3328 bytes from the base; --raw for absolute offsets)",
  ],
  ["read --force /h 0", "read: --force goes with --raw (to reach the null region and meta-info)"],
  [
    "read --raw /h 0 4",
    "read: OFFSET 0 is in the null region and meta-info (bytes 0-255); add --force to read them",
  ],
  ["read /nothing 0", "read: No object is named /nothing"],
  ["hexdump /h -1", 'hexdump: OFFSET: "-1" is negative'],
  ["hexdump /h 0 x", 'hexdump: LEN: "x" is not a number'],
  [
    "hexdump /h 3000 400",
    "hexdump: LEN 400 at OFFSET 3000 runs past the end of the data (3328 bytes from the base; --raw for absolute offsets)",
  ],
  [
    "hexdump --force /h",
    "hexdump: --force goes with --raw (to reach the null region and meta-info)",
  ],
  ["grow /h", "grow: missing SIZE"],
  ["grow /h -5M", 'grow: SIZE: "-5M" is negative: a size is a positive number of bytes'],
  ["grow /h big", 'grow: SIZE: "big" is not a size (like 4096, 64K, 64M or 1G)'],
  [
    "grow /.txlog 8M",
    "grow: /.txlog is the transaction log (/.txlog); refusing to grow it (add --force to do it anyway)",
  ],
  ["grow", "grow: missing OBJ"],
  ["rm", "rm: missing OBJ"],
  ["rm /", "rm: / is the naming root directory: it cannot be removed"],
  [
    "rm /d",
    "rm: /d is a directory of names (1 name in it): rm deletes objects; unbind its names first, then unbind the directory",
  ],
  [
    "rm /.txlog",
    "rm: /.txlog is the transaction log (/.txlog); refusing to rm it (add --force to do it anyway)",
  ],
  ["rm a b", 'rm: unexpected argument "b" (see rm --help)'],
  ["rm /nothing", "rm: No object is named /nothing"],
  ["bind", "bind: missing PATH"],
  ["bind /x", "bind: missing OBJ"],
  ["bind /x /nothing", "bind: No object is named /nothing"],
  ["bind /h/x /h", "bind: /h is not a directory"],
  ["unbind", "unbind: missing PATH"],
  ["unbind /nothing", "unbind: No object is named /nothing"],
  [
    "unbind /kv",
    "unbind: /kv is the kv store (/kv); refusing to unbind it (add --force to do it anyway)",
  ],
  ["unbind a b", 'unbind: unexpected argument "b" (see unbind --help)'],
  ["rename", "rename: missing FROM"],
  ["rename /h", "rename: missing TO"],
  [
    "rename /.txlog /y",
    "rename: /.txlog is the transaction log (/.txlog); refusing to rename it (add --force to do it anyway)",
  ],
  ["rename /nothing /y", "rename: No object is named /nothing"],
  ["mkdir", "mkdir: missing PATH"],
  ["mkdir a b", 'mkdir: unexpected argument "b" (see mkdir --help)'],
  ["mkdir /h", "mkdir: /h is already bound"],
  ["names a b", 'names: unexpected argument "b" (see names --help)'],
  ["names /nothing", "names: No directory /nothing"],
  ["kv", "kv: missing COMMAND (put, get, del, count or scan; see kv --help)"],
  ["kv frob", 'kv: unknown command "frob" (put, get, del, count or scan; see kv --help)'],
  ["kv put", "kv: missing KEY"],
  ["kv put k", "kv: missing VALUE"],
  ["kv get", "kv: missing KEY"],
  ["kv get k extra", 'kv: unexpected argument "extra" (see kv get --help)'],
  ["kv get nokey", 'kv: no key "nokey"'],
  ["kv del nokey", 'kv: no key "nokey"'],
  ["kv count x", 'kv: unexpected argument "x" (see kv count --help)'],
  ["kv scan a b c", 'kv: unexpected argument "c" (see kv scan --help)'],
  ["kv put --bogus k v", 'kv: unknown option "--bogus" (see kv put --help)'],
  ["df x", 'df: unexpected argument "x" (see df --help)'],
  ["crash --policy bogus", 'crash: --policy: unknown policy "bogus" (strict, random or all)'],
  ["crash --seed -1", 'crash: --seed: "-1" is negative'],
  ["crash --seed x", 'crash: --seed: "x" is not a number'],
  ["crash --policy", "crash: --policy needs a value (POLICY)"],
  ["crash now", 'crash: unexpected argument "now" (see crash --help)'],
  ["reboot now", 'reboot: unexpected argument "now" (see reboot --help)'],
  ["shutdown now", 'shutdown: unexpected argument "now" (see shutdown --help)'],
  ["exit now", 'exit: unexpected argument "now" (see shutdown --help)'],
  ["run", "run: missing PROGRAM"],
  ["run --x prog", 'run: unknown option "--x" (see run --help)'],
  ["run nothing.ts", "run: cannot read program nothing.ts: no such file"],
  ["run &", "run: missing PROGRAM"],
  ["ps x", 'ps: unexpected argument "x" (see ps --help)'],
  ["kill", "kill: missing TID"],
  ["kill -1", 'kill: TID: "-1" is negative'],
  ["kill x", 'kill: TID: "x" is not a number'],
  ["kill 99", "kill: no thread 99 (see ps)"],
  ["wait x", 'wait: TID: "x" is not a number'],
  ["wait 99", "wait: no thread 99 (see ps)"],
  ["wait -2", 'wait: TID: "-2" is negative'],
  ["frobnicate", 'frobnicate: unknown command (try "help")'],
  ["'unterminated", "twz: unterminated quote (') at column 1"],
  ['kv put k "abc', 'kv: unterminated quote (") at column 10'],
  ["kv put k 'abc", "kv: unterminated quote (') at column 10"],
];

Deno.test("every bad argument of every shell command is one line naming it", async () => {
  const { sh, out, err } = shell();
  for (const line of FIXTURE) await sh.execute(line);
  assert.deepEqual(err, []);
  out.length = 0;
  for (const [line, expected] of BAD) {
    const failures = sh.failures;
    assert.equal(await sh.execute(line), "continue", line);
    assert.deepEqual(err.splice(0), [expected], line);
    assert.deepEqual(out.splice(0), [], line);
    assert.equal(sh.failures, failures + 1, `${line} counts as a failed command`);
  }
  // Every command (and kv subcommand) of the table has rows here.
  const covered = new Set(BAD.map(([line]) => line.split(" ")[0]));
  for (const c of COMMANDS) {
    assert.ok(covered.has(c.spec.name), `no bad-argument row for ${c.spec.name}`);
  }
  for (const s of COMMANDS.find((c) => c.spec.name === "kv")!.sub!) {
    assert.ok(BAD.some(([line]) => line.startsWith(s.spec.name)), `no row for ${s.spec.name}`);
  }
  // Nothing above changed /h or the store.
  await sh.execute("read /h 0 4");
  await sh.execute("kv get a");
  assert.deepEqual(out, ["", "1"]);
  sh.kernel.shutdown();
});

const tmpDir = scratchDirs("twz-commands-");

Deno.test("an interrupt ends a foreground run: the program is killed, one line, the shell goes on", async () => {
  const { sh, board, out, err } = shell();
  const nap = join(tmpDir(), "nap.ts");
  Deno.writeTextFileSync(
    nap,
    `import type { ProgramEnv } from "@twz/libtwz/program";
export default async (env: ProgramEnv) => {
  console.log("napping");
  // Bounded, so an interrupt that does not work fails the test instead of hanging it.
  for (let i = 0; i < 3000; i++) {
    await new Promise((r) => setTimeout(r, 20));
    env.port.threadYield();
  }
};
`,
  );
  const interrupt = new AbortController();
  const running = sh.execute(`run ${nap}`, { signal: interrupt.signal });
  // Interrupt once the program is under way (it has printed its line).
  while (!out.includes("napping")) await new Promise((r) => setTimeout(r, 10));
  interrupt.abort();
  assert.equal(await running, "continue");
  assert.deepEqual(err, ["run: nap ended: killed (interrupted)"]);
  assert.equal(sh.failures, 1);
  out.length = 0;
  await sh.execute("ps");
  assert.ok(out.some((l) => /^1\s+exited \(killed\)\s+137\s.*nap/.test(l)), out.join("\n"));
  out.length = 0;
  await sh.execute("kv put still here");
  assert.deepEqual(out, ["ok"]);
  // An interrupt that came before the program started kills it at once.
  const early = new AbortController();
  early.abort();
  await sh.execute(`run ${nap}`, { signal: early.signal });
  assert.equal(err.at(-1), "run: nap ended: killed (interrupted)");
  // A signal that never aborts changes nothing; a background run ignores it.
  out.length = 0;
  await sh.execute(`run ${nap} &`, { signal: new AbortController().signal });
  assert.deepEqual(out, ["[3] nap"]);
  // An interrupted wait stops waiting; the thread goes on.
  const stop = new AbortController();
  const waiting = sh.execute("wait 3", { signal: stop.signal });
  stop.abort();
  await waiting;
  assert.equal(err.at(-1), "wait: interrupted; thread 3 (nap) goes on (see ps)");
  await sh.execute("kill 3");
  assert.equal(out.at(-1), "3 nap: exited (killed)");
  await stopThreads(board);
  sh.kernel.shutdown();
});

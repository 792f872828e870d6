// Every bad-argument case of every shell command (the security commands'
// too), in-process over a Board:
// each line is refused with exactly the one line shown, on the shell's
// error output, nothing on its output, and counts as a failed command. Then
// the cases that need a program: a foreground `run` ended by an interrupt.
import assert from "node:assert/strict";
import { join } from "node:path";
import { formatId, Kernel } from "@twz/kernel";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { openSim, plugin } from "@twz/hal-sim";
import type { Board } from "./board.ts";
import { stopThreads } from "./run.ts";
import { Shell } from "./shell.ts";
import { COMMANDS } from "./_commands.ts";
import {
  formatExpiry,
  formatGate,
  parseExpiry,
  parseGate,
  parseProtArg,
} from "./_commands_security.ts";
import { NOT_IN_CLUSTER, SecProt, WHOLE_OBJECT } from "@twz/kernel/abi";

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
  ["run --context", "run: --context needs a value (CTX)"],
  ["run --context noctx prog", 'run: no context "noctx" (see ctx list)'],
  ["run --context a/b/ prog", "run: No object is named a/b/"],
  ["new --key nokey", 'new: no key "nokey" (see key list)'],
  ["new --key", "new: --key needs a value (KEY)"],
  [
    "new --key 0123456789abcdef0123456789abcdef",
    "new: 0123456789abcdef0123456789abcdef is not a key object",
  ],
  ["new --prot nothing", 'new: --prot: "nothing" is not a protection (like "rw")'],
  ["key", "key: missing COMMAND (new, rotate, show or list; see key --help)"],
  ["key frob", 'key: unknown command "frob" (new, rotate, show or list; see key --help)'],
  ["key new", "key: missing NAME"],
  ["key new a b", 'key: unexpected argument "b" (see key new --help)'],
  ["key new --scheme rsa a", 'key: --scheme: unknown scheme "rsa" (ecdsa-p256 or ed25519)'],
  ["key new --scheme", "key: --scheme needs a value (SCHEME)"],
  [
    "key new ..",
    'key: ".." is not a key name (one name component, at most 64 characters, no /)',
  ],
  ["key rotate", "key: missing KEY"],
  ["key rotate nokey", 'key: no key "nokey" (see key list)'],
  ["key show", "key: missing KEY"],
  ["key show /nothing", "key: No object is named /nothing"],
  ["key show a b", 'key: unexpected argument "b" (see key show --help)'],
  ["key list x", 'key: unexpected argument "x" (see key list --help)'],
  ["ctx", "ctx: missing COMMAND (new, list, show, mask, attach or detach; see ctx --help)"],
  [
    "ctx frob",
    'ctx: unknown command "frob" (new, list, show, mask, attach or detach; see ctx --help)',
  ],
  ["ctx new", "ctx: missing NAME"],
  ["ctx new --key", "ctx: --key needs a value (KEY)"],
  ["ctx new --key nokey c2", 'ctx: no key "nokey" (see key list)'],
  [
    "ctx new a/b",
    'ctx: "a/b" is not a context name (one name component, at most 64 characters, no /)',
  ],
  ["ctx list x", 'ctx: unexpected argument "x" (see ctx list --help)'],
  ["ctx show", "ctx: missing CTX"],
  ["ctx show noctx", 'ctx: no context "noctx" (see ctx list)'],
  ["ctx mask", "ctx: missing CTX"],
  ["ctx mask noctx", "ctx: missing PROT (or --remove)"],
  ["ctx mask --remove noctx r", "ctx: give PROT or --remove, not both"],
  [
    "ctx mask noctx q",
    'ctx: PROT: "q" is not a protection (letters of rwxud like "r" or "rw", or none)',
  ],
  ["ctx mask noctx r", 'ctx: no context "noctx" (see ctx list)'],
  ["ctx mask --object", "ctx: --object needs a value (OBJ)"],
  ["ctx attach", "ctx: missing CTX"],
  ["ctx attach noctx", "ctx: missing TID"],
  ["ctx attach noctx x", 'ctx: TID: "x" is not a number'],
  ["ctx attach noctx 1", 'ctx: no context "noctx" (see ctx list)'],
  ["ctx detach noctx -1", 'ctx: TID: "-1" is negative'],
  ["ctx detach noctx 1 2", 'ctx: unexpected argument "2" (see ctx detach --help)'],
  ["grant", "grant: missing OBJ"],
  ["grant /h", "grant: missing CTX"],
  ["grant /h c", "grant: missing PROT"],
  [
    "grant /h c q",
    'grant: PROT: "q" is not a protection (letters of rwxud like "r" or "rw", or none)',
  ],
  ["grant /h c -", "grant: PROT: a grant gives at least one of r, w, x, u, d"],
  ["grant /h c none", "grant: PROT: a grant gives at least one of r, w, x, u, d"],
  [
    "grant --expires soon /h c r",
    'grant: --expires: "soon" is not a duration (30s, 5m, 2h, 1d) or an ISO time (2026-12-31T12:00Z)',
  ],
  ["grant --expires 0s /h c r", 'grant: --expires: "0s" is too short (at least 1s)'],
  ["grant --expires 2001-01-01 /h c r", "grant: --expires: 2001-01-01 is in the past"],
  ["grant --expires 2001-13-45 /h c r", 'grant: --expires: "2001-13-45" is not a valid time'],
  ["grant --expires", "grant: --expires needs a value (WHEN)"],
  [
    "grant --gate 1:2 /h c r",
    'grant: --gate: "1:2" is not OFFSET:LENGTH:ALIGN (like 0:4096:8)',
  ],
  ["grant --gate 0:0:1 /h c r", 'grant: --gate: "0:0:1": LENGTH is 0'],
  ["grant --gate 0:8:0 /h c r", 'grant: --gate: "0:8:0": ALIGN is 0 (1: any offset)'],
  [
    "grant --gate 0:18446744073709551616:1 /h c r",
    'grant: --gate: "0:18446744073709551616:1" has a field past 2^64 - 1',
  ],
  ["grant --delegable=1 /h c r", "grant: --delegable takes no value"],
  ["grant /nothing c r", "grant: No object is named /nothing"],
  ["grant /h noctx r", 'grant: no context "noctx" (see ctx list)'],
  ["grant /h c r extra", 'grant: unexpected argument "extra" (see grant --help)'],
  ["delegate", "delegate: missing CTX"],
  ["delegate c", "delegate: missing INDEX"],
  ["delegate c 0", "delegate: missing TO-CTX"],
  ["delegate c 0 d", "delegate: missing PROT"],
  ["delegate c x d r", 'delegate: INDEX: "x" is not a number'],
  [
    "delegate c 0 d w+",
    'delegate: PROT: "w+" is not a protection (letters of rwxud like "r" or "rw", or none)',
  ],
  ["delegate --gate x c 0 d r", 'delegate: --gate: "x" is not OFFSET:LENGTH:ALIGN (like 0:4096:8)'],
  ["delegate noctx 0 d r", 'delegate: no context "noctx" (see ctx list)'],
  ["revoke", "revoke: missing CTX"],
  ["revoke c", "revoke: missing INDEX"],
  ["revoke c -1", 'revoke: INDEX: "-1" is negative'],
  ["revoke noctx 0", 'revoke: no context "noctx" (see ctx list)'],
  ["revoke c 0 1", 'revoke: unexpected argument "1" (see revoke --help)'],
  ["access", "access: missing OBJ"],
  ["access /nothing", "access: No object is named /nothing"],
  ["access --context", "access: --context needs a value (CTX)"],
  ["access --context noctx /h", 'access: no context "noctx" (see ctx list)'],
  ["access /h /h", 'access: unexpected argument "/h" (see access --help)'],
  // The global space's commands, on a system that is not a node.
  ["publish", "publish: missing OBJ"],
  ["publish --deep --deep /h", "publish: --deep given twice"],
  [
    "publish /h --name /x",
    'publish: --name: "/x" is not a global name (a path under /global/, like /global/lists/demo)',
  ],
  ["publish /nothing", "publish: No object is named /nothing"],
  ["publish /h", `publish: ${NOT_IN_CLUSTER}`],
  ["own", "own: missing OBJ"],
  ["own /h --timeout 0", 'own: --timeout: "0" is too small (at least 1)'],
  ["own /h --timeout x", 'own: --timeout: "x" is not a number'],
  ["own /h", `own: ${NOT_IN_CLUSTER}`],
  ["release", "release: missing OBJ"],
  ["release /h x", 'release: unexpected argument "x" (see release --help)'],
  ["release /h", `release: ${NOT_IN_CLUSTER}`],
  ["global", `global: ${NOT_IN_CLUSTER}`],
  ["global frob", 'global: unknown command "frob" (info; see global --help)'],
  ["global info", "global: missing OBJ"],
  ["global info /h x", 'global: unexpected argument "x" (see global --help)'],
  ["global info /h", `global: ${NOT_IN_CLUSTER}`],
  ["names /global", `names: ${NOT_IN_CLUSTER}`],
  ["bind /global/x /h", `bind: ${NOT_IN_CLUSTER}`],
  [
    "rename /h /global/h",
    "rename: Cannot rename /h to /global/h: between the local and the global namespace (bind the object under the new name instead)",
  ],
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
  for (const c of COMMANDS.filter((c) => c.sub !== undefined)) {
    for (const s of c.sub!) {
      assert.ok(BAD.some(([line]) => line.startsWith(s.spec.name)), `no row for ${s.spec.name}`);
    }
  }
  // Nothing above changed /h or the store.
  await sh.execute("read /h 0 4");
  await sh.execute("kv get a");
  assert.deepEqual(out, ["", "1"]);
  sh.kernel.shutdown();
});

/**
 * Made before the security rows run: /h (no key), key k, context c (with
 * key k) holding a delegable read grant (0) and a plain one (1) on /s (keyed
 * by k, prot none), context d (no key) holding a delegable read grant.
 */
const SEC_FIXTURE = [
  "new --size 4096 --name /h",
  "key new k",
  "ctx new --key k c",
  "ctx new d",
  "new --size 4096 --key k --prot none --name /s",
  "grant --delegable /s c r",
  "grant /s c r",
  "grant --delegable /s d r",
];

/** [line, the one error line it gets]: what the kernel and libtwz refuse. */
const SEC_BAD: readonly [string, string][] = [
  ["key new k", "key: the name /sec/keys/k is already bound"],
  ["ctx new c", "ctx: the name /sec/ctx/c is already bound"],
  ["key show /h", "key: {/h} is not a key object"],
  ["key rotate /h", "key: {/h} is not a key object"],
  ["ctx show /h", "ctx: {/h} is not a security context"],
  ["ctx new --key /h e", "ctx: {/h} is not a key object"],
  ["new --key /h", "new: {/h} is not a key object"],
  ["access --context /h /s", "access: {/h} is not a security context"],
  ["run --context /h nothing.ts", "run: {/h} is not a security context"],
  [
    "grant /h c r",
    "grant: object {/h} has no key: only an object created with a key takes capabilities",
  ],
  ["revoke c 9", "revoke: context {c} has no grant 9"],
  [
    "delegate c 0 d rw",
    "delegate: a delegation cannot be wider than its parent (grant 0 of {c}): protections rw--- exceed the parent's r----",
  ],
  [
    "delegate c 1 d r",
    "delegate: grant 1 of context {c} may not be delegated (it was not granted delegable)",
  ],
  ["delegate d 5 c r", "delegate: context {d} has no grant 5"],
  [
    "delegate d 0 c r",
    "delegate: context {d} has no key to sign delegations with (create it with a key)",
  ],
  ["ctx attach c 99", "ctx: no thread 99 (see ps)"],
  ["ctx mask --object /nothing c r", "ctx: No object is named /nothing"],
];

Deno.test("security commands: what the kernel and libtwz refuse is one line; delegate, Ed25519 keys and rotate work", async () => {
  const { sh, out, err } = shell();
  for (const line of SEC_FIXTURE) await sh.execute(line);
  assert.deepEqual(err, []);
  const ids = new Map([
    ["/h", sh.resolve("/h")],
    ["c", sh.resolve("/sec/ctx/c")],
    ["d", sh.resolve("/sec/ctx/d")],
  ]);
  const expand = (text: string) =>
    text.replace(/\{([^}]+)\}/g, (_, name: string) => formatId(ids.get(name)!));
  out.length = 0;
  for (const [line, expected] of SEC_BAD) {
    const failures = sh.failures;
    await sh.execute(line);
    assert.deepEqual(err.splice(0), [expand(expected)], line);
    assert.deepEqual(out.splice(0), [], line);
    assert.equal(sh.failures, failures + 1, `${line} counts as a failed command`);
  }
  // Nothing above changed the contexts: c holds its two grants, d none.
  await sh.execute("ctx list");
  assert.match(out[0]!, /^[0-9a-f]{32} {2}2 grants {2}0 masks {2}key [0-9a-f]{32} {2}c$/);
  assert.match(out[1]!, /^[0-9a-f]{32} {2}1 grant {2}0 masks {2}key none {2}d$/);
  // And what they allow: a narrower delegation is made; access shows it.
  out.length = 0;
  await sh.execute("delegate --gate 0:4096:1 c 0 d r");
  await sh.execute("access --context d /s");
  assert.deepEqual(err, []);
  assert.match(out[0]!, /^grant 1: delegation r---- on [0-9a-f]{32} for context [0-9a-f]{32}$/);
  assert.match(out[1]!, /^r---- {2}[0-9a-f]{32} \(\/s\) {2}defaults -----$/);
  // An Ed25519 key signs as well; rotating it takes its grants back.
  out.length = 0;
  for (
    const line of [
      "key new --scheme ed25519 e",
      "new --size 4096 --key e --prot none --name /e",
      "grant /e c rw",
      "access --context c /e",
      "ctx show c",
      "key rotate e",
      "access --context c /e",
    ]
  ) await sh.execute(line);
  assert.deepEqual(err, []);
  assert.match(out[2]!, /^scheme: +ed25519$/);
  assert.ok(
    out.some((l) => /^rw--- {2}[0-9a-f]{32} \(\/e\) {2}defaults -----$/.test(l)),
    out.join("\n"),
  );
  assert.ok(
    out.some((l) => /^ +2 {2}capability {2}rw--- {2}target .* \(\/e\) .* ed25519$/.test(l)),
  );
  assert.ok(out.some((l) => /^rotated [0-9a-f]{32}: generation 1$/.test(l)), out.join("\n"));
  assert.match(out.at(-1)!, /^ /, "reasons follow the protections");
  assert.ok(
    out.some((l) => /^----- {2}[0-9a-f]{32} \(\/e\) {2}defaults -----$/.test(l)),
    out.join("\n"),
  );
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

Deno.test("ctx attach gives a running thread what the context grants; ctx detach takes it back", async () => {
  const { sh, board, out, err } = shell();
  const watcher = join(tmpDir(), "watcher.ts");
  // Reads /s through the port until it may (then sets the flag object's
  // first data byte), then until it may no longer; bounded, so a command
  // that does nothing fails the test instead of hanging it.
  Deno.writeTextFileSync(
    watcher,
    `import type { ProgramEnv } from "@twz/libtwz/program";
export default async (env: ProgramEnv, args: string[]) => {
  const secret = env.twz.naming.resolve(args[0]!);
  const flag = env.twz.naming.resolve(args[1]!);
  const readable = () => {
    try {
      env.port.read(secret, 256, 4);
      return true;
    } catch {
      return false;
    }
  };
  const until = async (want: boolean) => {
    for (let i = 0; i < 1000; i++) {
      if (readable() === want) return true;
      await new Promise((r) => setTimeout(r, 10));
      env.port.threadYield();
    }
    return false;
  };
  if (!(await until(true))) return 4;
  env.port.write(flag, 256, new Uint8Array([49]));
  return (await until(false)) ? 0 : 5;
};
`,
  );
  for (
    const line of [
      "key new k",
      "ctx new c",
      "new --size 4096 --key k --prot none --name /s",
      "grant /s c r",
      "new --size 4096 --name /flag",
    ]
  ) await sh.execute(line);
  assert.deepEqual(err, []);
  const flag = sh.resolve("/flag");
  out.length = 0;
  await sh.execute(`run ${watcher} /s /flag &`);
  const tid = Number(/^\[(\d+)\] watcher$/.exec(out[0]!)?.[1]);
  assert.ok(tid > 0, out.join("\n"));
  await sh.execute(`ctx attach c ${tid}`);
  assert.match(out[1]!, new RegExp(`^thread ${tid} \\(watcher\\) attached to [0-9a-f]{32}$`));
  // The thread read /s through the context.
  for (let i = 0; i < 1000 && sh.kernel.read(flag, 256, 1)[0] !== 49; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(sh.kernel.read(flag, 256, 1)[0], 49, "the attached thread read /s");
  await sh.execute(`ctx detach c ${tid}`);
  assert.match(out[2]!, new RegExp(`^thread ${tid} \\(watcher\\) detached from [0-9a-f]{32}$`));
  await sh.execute(`wait ${tid}`);
  assert.deepEqual(err, []);
  assert.equal(
    out[3],
    `${tid} watcher: exited, code 0`,
    "after detach the thread could not read /s",
  );
  await sh.execute(`ctx attach c ${tid}`);
  assert.deepEqual(err, [`ctx: thread ${tid} (watcher) has ended`]);
  await stopThreads(board);
  sh.kernel.shutdown();
});

Deno.test("parseExpiry, parseGate, parseProtArg: what grant and delegate take", () => {
  const now = Date.UTC(2026, 11, 2, 12, 0, 0);
  assert.equal(parseExpiry("30s", now), now + 30_000);
  assert.equal(parseExpiry("5m", now), now + 300_000);
  assert.equal(parseExpiry("2h", now), now + 7_200_000);
  assert.equal(parseExpiry("1d", now), now + 86_400_000);
  assert.equal(parseExpiry("2026-12-31", now), Date.UTC(2026, 11, 31));
  assert.equal(parseExpiry("2026-12-02T12:00:01Z", now), now + 1000);
  assert.throws(() => parseExpiry("2026-12-02T12:00:00Z", now), /is in the past/);
  assert.deepEqual(parseGate("0x100:4096:8"), { offset: 256n, length: 4096n, align: 8n });
  assert.deepEqual(parseGate("0:18446744073709551615:1"), WHOLE_OBJECT);
  assert.equal(formatGate(parseGate("0:18446744073709551615:1")), "whole");
  assert.equal(formatGate(parseGate("64:128:16")), "64:128:16");
  assert.equal(formatExpiry(0n), "never");
  assert.equal(formatExpiry(BigInt(now) * 1_000_000n), "2026-12-02T12:00:00.000Z");
  assert.equal(parseProtArg("r--u-", "PROT"), SecProt.Read | SecProt.Use);
  assert.equal(parseProtArg("none", "PROT"), 0);
  assert.equal(parseProtArg("-", "PROT"), 0);
  assert.equal(parseProtArg("rwxud", "PROT"), SecProt.All);
});

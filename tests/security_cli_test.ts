// End-to-end: the shell's security commands and `run --context`, as a user
// types them (scripted `twz boot` sessions, then `twz run --context`), in
// subprocesses. On hal-pmem when libpmem2 loads (the HAL where the port's
// check is the only way to an object's bytes), else on hal-sim. The program
// is tests/testdata/security/cli_read_write.ts; the rules are in
// docs/SECURITY.md, the commands in docs/SHELL.md.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { BootSession, type Run, twz } from "./_twz.ts";

const pmem = (await import("@twz/hal-pmem")).plugin.describe();
/** The HAL these sessions boot: hal-pmem when it can load, else hal-sim. */
const HAL = pmem.available ? "pmem" : "sim";
/** Where images go (hal-pmem: a DAX-like tmpfs). */
const tmpDir = scratchDirs("twz-seccli-", pmem.available ? "/dev/shm" : undefined);
const PROGRAM = new URL("./testdata/security/cli_read_write.ts", import.meta.url).pathname;
const ID = /[0-9a-f]{32}/;

/** `twz ARGS` with the program cache in `dir`. */
function twzIn(dir: string, args: string[], input?: string): Promise<Run> {
  return twz(args, input, { cwd: dir, env: { TWZ_CACHE_DIR: join(dir, "cache") } });
}

/** A scripted `twz boot` session on `image` that runs every line. */
function session(dir: string, image: string, lines: string[]): Promise<Run> {
  return twzIn(
    dir,
    ["boot", "--hal", HAL, "--image", image, "--size", "16M", "--quiet", "--keep-going"],
    lines.join("\n") + "\n",
  );
}

Deno.test(`key, keyed object, context, grant, access, run --context, revoke, ctx show (hal-${HAL})`, async () => {
  const dir = tmpDir();
  const image = join(dir, "sec.img");
  const r = await session(dir, image, [
    "key new owner",
    "new --size 4096 --key owner --prot none --name /secret",
    "stat /secret",
    "ctx new writer",
    "grant /secret writer rw",
    `run --context writer ${PROGRAM} /secret "top secret"`,
    "ctx new reader",
    "grant --delegable /secret reader r",
    "access /secret --context reader",
    `run --context reader ${PROGRAM} /secret overwrite`,
    `run ${PROGRAM} /secret`,
    "ctx show reader",
    "revoke reader 0",
    `run --context reader ${PROGRAM} /secret`,
    "ctx show reader",
    "key list",
    "ctx list",
    "grant /secret reader q",
    "shutdown",
  ]);
  const out = r.stdout.split("\n");
  const err = r.stderr.split("\n").filter((l) => l !== "");
  const at = (re: RegExp, from = 0) => {
    const i = out.findIndex((l, n) => n >= from && re.test(l));
    assert.ok(i >= 0, `no line ${re} after line ${from} in:\n${r.stdout}\nstderr:\n${r.stderr}`);
    return i;
  };
  // key new: the key object, its private object, scheme, name.
  let i = at(/^key:\s+[0-9a-f]{32}$/);
  const kuid = ID.exec(out[i]!)![0];
  assert.match(out[i + 1]!, /^private:\s+[0-9a-f]{32}$/);
  assert.notEqual(ID.exec(out[i + 1]!)![0], kuid);
  assert.match(out[i + 2]!, /^scheme:\s+ecdsa-p256$/);
  assert.match(out[i + 3]!, /^name:\s+\/sec\/keys\/owner$/);
  // The keyed object records the key; prot none.
  i = at(/^prot:\s+---$/, i);
  i = at(new RegExp(`^key:\\s+${kuid}$`), i);
  // The writer (a read-write grant) wrote the secret; grant lines name the index.
  i = at(/^grant 0: rw--- on [0-9a-f]{32} for context [0-9a-f]{32}$/, i);
  i = at(/^wrote 10 bytes$/, i);
  i = at(/^grant 0: r---- on [0-9a-f]{32} for context [0-9a-f]{32}$/, i);
  // access: r for the reader, and why (one line per reason).
  i = at(/^r---- {2}[0-9a-f]{32} \(\/secret\) {2}defaults -----$/, i);
  const reasons = out.slice(i + 1, at(/^read: /, i));
  assert.ok(
    reasons.some((l) => /^ {2}context [0-9a-f]{32}: .*\br----/.test(l)),
    `a reason names the context and what it gives:\n${reasons.join("\n")}`,
  );
  // The reader reads, and its write is refused (exit code 3: a failed command).
  i = at(/^read: top secret$/, i);
  i = at(/^write refused: /, i);
  // Without a context: nothing.
  i = at(/^read refused: /, i);
  // ctx show lists the grant with its index, kind, prot, target, accessor, expiry, gate.
  i = at(/^grants:\s+1$/, i);
  assert.match(
    out[i + 1]!,
    /^\s+0 {2}capability {2}r---- {2}target [0-9a-f]{32} \(\/secret\) {2}accessor [0-9a-f]{32} {2}expires never {2}gate whole {2}delegable$/,
  );
  i = at(/^revoked grant 0 of [0-9a-f]{32}$/, i);
  // After revoke the reader reads nothing.
  i = at(/^read refused: /, i);
  i = at(/^grants:\s+0$/, i);
  i = at(new RegExp(`^${kuid}  ecdsa-p256\\s+gen \\d+\\s+with private  owner$`), i);
  at(/^[0-9a-f]{32} {2}0 grants {2}0 masks {2}key none {2}reader$/, i);
  at(/^[0-9a-f]{32} {2}1 grant {2}0 masks {2}key none {2}writer$/, i);
  // Failed lines: the reader's refused write, the run without a context, the
  // run after revoke, the bad PROT: one line each.
  assert.deepEqual(
    err.filter((l) => !l.startsWith("twz:")),
    [
      "run: cli_read_write exited with code 3",
      "run: cli_read_write exited with code 3",
      "run: cli_read_write exited with code 3",
      'grant: PROT: "q" is not a protection (letters of rwxud like "r" or "rw", or none)',
    ],
  );
  assert.equal(r.code, 1, "some lines failed");

  // twz run --context: the same rules from the command line.
  const regrant = await session(dir, image, ["grant /secret reader r", "shutdown"]);
  assert.equal(regrant.code, 0, regrant.stderr);
  const base = ["run", "--hal", HAL, "--image", image];
  const granted = await twzIn(dir, [...base, "--context", "reader", "cli_read_write", "/secret"]);
  assert.equal(granted.code, 0, granted.stderr);
  assert.equal(granted.stdout, "read: top secret\n");
  const ctxById = await twzIn(dir, [
    ...base,
    "--context",
    "/sec/ctx/reader",
    "cli_read_write",
    "/secret",
    "x",
  ]);
  assert.equal(ctxById.code, 3, ctxById.stderr);
  assert.match(ctxById.stdout, /^read: top secret\nwrite refused: /);
  const none = await twzIn(dir, [...base, "cli_read_write", "/secret"]);
  assert.equal(none.code, 3, none.stderr);
  assert.match(none.stdout, /^read refused: /);
  const unknown = await twzIn(dir, [...base, "--context", "nope", "cli_read_write", "/secret"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, 'twz: --context: no context "nope" (see ctx list)\n');
  const bad = await twzIn(dir, [...base, "--context", "..", "cli_read_write"]);
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    'twz: --context: ".." is not a context name (one name component, at most 64 characters, no /)\n',
  );
});

Deno.test("twz run --context on an image a twz boot holds: runs there in that context", async () => {
  const dir = tmpDir();
  const image = join(dir, "held.img");
  const session = new BootSession(["--hal", HAL, "--image", image, "--size", "16M"]);
  try {
    for (
      const line of [
        "key new owner",
        "new --size 4096 --key owner --prot none --name /secret",
        "ctx new reader",
        "ctx new nobody",
        "grant /secret reader r",
      ]
    ) await session.ask(line);
    // Through the control socket: the context reads, another does not.
    const r = await twzIn(dir, [
      "run",
      "--image",
      image,
      "--context",
      "reader",
      PROGRAM,
      "/secret",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "read: \n");
    const n = await twzIn(dir, [
      "run",
      "--image",
      image,
      "--context",
      "nobody",
      PROGRAM,
      "/secret",
    ]);
    assert.equal(n.code, 3, n.stderr);
    assert.match(n.stdout, /^read refused: /);
    // An unknown context: one line, nothing run.
    const u = await twzIn(dir, [
      "run",
      "--image",
      image,
      "--context",
      "nosuch",
      PROGRAM,
      "/secret",
    ]);
    assert.equal(u.code, 1);
    assert.equal(u.stderr.split("\n").filter((l) => l !== "").length, 1, u.stderr);
    assert.match(u.stderr, /^twz: .*nosuch/);
    assert.equal(u.stdout, "");
  } finally {
    const end = await session.end();
    assert.equal(end.code, 0, end.stderr);
  }
});

// The shell's global-space commands (`publish`, `own`, `release`,
// `global`, `global info`) and its naming commands on `/global/...`,
// against a Map-backed GlobalHook installed on the kernel (no NATS).
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { formatId } from "@twz/kernel/abi";
import { openSim, plugin } from "@twz/hal-sim";
import type { Board } from "./board.ts";
import { Shell } from "./shell.ts";

import { FakeSpace } from "@twz/global/testing";

/** A shell on a node named n1 whose global space is a {@linkcode FakeSpace}. */
function nodeShell(): { sh: Shell; space: FakeSpace; out: string[]; err: string[]; end(): void } {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  const space = new FakeSpace("n1");
  kernel.global = space;
  const board: Board = { plugin, hal, kernel, options: { hal: "sim" } };
  const out: string[] = [], err: string[] = [];
  const sh = new Shell(board, { out: (l) => out.push(l), err: (l) => err.push(l) }, () => {});
  return {
    sh,
    space,
    out,
    err,
    end() {
      kernel.shutdown();
      hal.close();
    },
  };
}

/** Run `line`; it must succeed. Returns its output lines. */
async function ok(s: { sh: Shell; out: string[]; err: string[] }, line: string): Promise<string[]> {
  const failures = s.sh.failures;
  await s.sh.execute(line);
  assert.deepEqual(s.err.splice(0), [], line);
  assert.equal(s.sh.failures, failures, line);
  return s.out.splice(0);
}

/** Run `line`; it must fail with exactly `error`, printing nothing. */
async function fails(s: { sh: Shell; out: string[]; err: string[] }, line: string, error: string) {
  const failures = s.sh.failures;
  await s.sh.execute(line);
  assert.deepEqual(s.err.splice(0), [error], line);
  assert.deepEqual(s.out.splice(0), [], line);
  assert.equal(s.sh.failures, failures + 1, line);
}

Deno.test("publish, global, global info, own, release on a node", async () => {
  const s = nodeShell();
  try {
    await ok(s, "new --size 4096 --name /head");
    const id = s.sh.twz.naming.resolve("/head");
    const hex = formatId(id);
    assert.deepEqual(await ok(s, "publish /head --name /global/lists/demo"), [
      `published ${hex} version 1`,
      `/global/lists/demo -> ${hex}`,
    ]);
    assert.deepEqual(s.space.calls.at(-1), ["publish", { id, name: "/lists/demo" }]);
    await ok(s, "publish --deep /head");
    assert.deepEqual(s.space.calls.at(-1), ["publish", { id, deep: true }]);
    assert.deepEqual(await ok(s, "global"), [
      "node:      n1",
      "servers:   nats://fake",
      "connected: yes",
      "lease:     2000 ms",
      "held:      1 (owned 1, unacked 0)",
    ]);
    const info = await ok(s, "global info /global/lists/demo");
    assert.equal(info[0], `id:         ${hex}`);
    assert.ok(info.includes("version:    2"), info.join("\n"));
    assert.ok(info.includes("owner:      n1"), info.join("\n"));
    assert.ok(info.includes("owned here: yes"), info.join("\n"));
    assert.deepEqual(await ok(s, `release ${hex}`), [`released ${hex}`]);
    assert.equal(s.space.objects.get(id)!.owner, null);
    assert.deepEqual(await ok(s, "own /global/lists/demo --timeout 500"), [
      `owned ${hex} (version 2)`,
    ]);
    assert.deepEqual(s.space.calls.at(-1), ["own", { id, timeoutMs: 500 }]);
    // What the space refuses is one line.
    s.space.objects.delete(id);
    await fails(s, "own /head", "own: not published");
  } finally {
    s.end();
  }
});

Deno.test("the naming commands work on /global/...", async () => {
  const s = nodeShell();
  try {
    await ok(s, "new --size 4096 --name /a");
    const hex = formatId(s.sh.twz.naming.resolve("/a"));
    await ok(s, "publish /a");
    await ok(s, "mkdir /global/d");
    assert.deepEqual(await ok(s, "bind /global/d/a /a"), [`/global/d/a -> ${hex}`]);
    assert.deepEqual(await ok(s, "names /global"), [`${"0".repeat(32)}  dir  d/`]);
    assert.deepEqual(await ok(s, "names /global/d"), [`${hex}  obj  a`]);
    // The root shows the global namespace beside the local names.
    assert.ok((await ok(s, "names")).some((l) => l.endsWith("dir  global/")));
    assert.deepEqual(await ok(s, "rename /global/d/a /global/b"), ["/global/d/a -> /global/b"]);
    assert.deepEqual(await ok(s, `stat /global/b`).then((l) => l[0]), `id:         ${hex}`);
    assert.deepEqual(await ok(s, "unbind /global/b"), [`unbound /global/b (was ${hex})`]);
    await fails(s, "unbind /global/b", "unbind: no /b");
    await fails(
      s,
      "rename /a /global/a",
      "rename: Cannot rename /a to /global/a: between the local and the global namespace (bind the object under the new name instead)",
    );
    await fails(s, "names /global/none", "names: No directory /global/none");
  } finally {
    s.end();
  }
});

// The public entries of @twz/cli (deno.json "exports") hold the entry points
// and none of the helpers only the cli uses: `deno doc` prints every export,
// so those live in `_` modules (`_run.ts`, `programs/_build.ts`) or are not
// exported. Types leave no runtime name; the values are listed exactly, so a
// new export is a decision made here.
import assert from "node:assert/strict";
import * as root from "@twz/cli";
import * as run from "@twz/cli/run";
import * as programs from "@twz/cli/programs";

const names = (m: object) => Object.keys(m).sort();

Deno.test("@twz/cli exports main, its command table and the exit codes", () => {
  assert.deepEqual(names(root), ["COMMANDS", "EXIT", "main"]);
  assert.deepEqual(Object.keys(root.COMMANDS), [
    "boot",
    "run",
    "fsck",
    "crashtest",
    "bench",
    "explore",
    "graph",
    "cluster",
    "help",
  ]);
  assert.equal(root.COMMANDS.run!.spec.name, "twz run");
});

Deno.test("@twz/cli/run exports what runs programs on a booted system", () => {
  assert.deepEqual(names(run), [
    "RUN",
    "attachThreads",
    "bundleFile",
    "installProgram",
    "isProgramFile",
    "programName",
    "psLines",
    "runCommand",
    "runProgram",
    "spawnProgram",
    "stopThreads",
  ]);
  // The cli's own helpers stay out.
  for (const n of ["BIN", "PROC", "PROC_KEEP", "resolveProgram", "stateText", "endLine"]) {
    assert.ok(!(n in run), `${n} is exported`);
  }
});

Deno.test("@twz/cli/programs exports the built-ins and their build", () => {
  assert.deepEqual(names(programs), ["BUILTINS", "buildPrograms"]);
  assert.deepEqual(Object.keys(programs.BUILTINS), ["kv"]);
});

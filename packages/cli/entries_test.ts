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

Deno.test("twz loads the explorer only when explore or graph runs", async () => {
  // main.ts's static imports: what every `twz` command loads at start-up.
  const main = new URL("./main.ts", import.meta.url).href;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", main],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { isDynamic?: boolean; code?: { specifier: string } }[];
    }[];
  };
  const deps = new Map(graph.modules.map((m) => [m.specifier, m.dependencies ?? []]));
  const reach = (dynamic: boolean) => {
    const seen = new Set([main]);
    for (const at of seen) {
      for (const d of deps.get(at) ?? []) {
        const to = d.code?.specifier;
        if (to !== undefined && (dynamic || !d.isDynamic)) seen.add(to);
      }
    }
    return seen;
  };
  const explorer = [
    "explore/command.ts",
    "explore/graph_command.ts",
    "explore/model.ts",
    "explore/server.ts",
  ];
  const loaded = [...reach(false)].filter((s) => explorer.some((e) => s.endsWith(`/cli/${e}`)));
  assert.deepEqual(loaded, [], "loaded by every twz command");
  // ...and still reachable when the commands run.
  const all = reach(true);
  for (const e of explorer) assert.ok([...all].some((s) => s.endsWith(`/cli/${e}`)), e);
});

// Programs as the board runs them: bundling, code objects in /bin, threads
// in Workers with no permissions, /proc, faults, and threads lost at reboot.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ErrorCode, formatId, Kernel, Prot, ThreadState, TwzError } from "@twz/kernel";
import type { Hal } from "@twz/kernel/hal";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { plugin } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { classify, KILLED_EXIT, ProgramExit, runMain } from "@twz/libtwz/program";
import {
  attachThreads,
  bundleFile,
  installProgram,
  isProgramFile,
  programName,
  psLines,
  runProgram,
  spawnProgram,
  stopThreads,
} from "@twz/cli/run";

/** A board as the thread functions see it: a HAL and its current kernel. */
interface Board {
  hal: Hal;
  kernel: Kernel;
}

const tmpDir = scratchDirs("twz-programs-");
const HELLO = new URL("../examples/hello.ts", import.meta.url).pathname;

/** A program file in a scratch directory. */
function program(name: string, body: string): string {
  const path = join(tmpDir(), `${name}.ts`);
  Deno.writeTextFileSync(
    path,
    `import type { ProgramEnv } from "@twz/libtwz/program";\n${body}\n`,
  );
  return path;
}

/** A board on an anonymous hal-sim region. */
async function board(): Promise<Board> {
  const hal = await plugin.open({ size: 16 << 20 });
  const kernel = Kernel.boot(hal, { formatBlank: true });
  return { hal, kernel };
}

async function close(b: Board): Promise<void> {
  await stopThreads(b);
  b.kernel.shutdown();
  b.hal.close();
}

/** A console that keeps what it gets. */
function capture(): { text: () => string; write: (t: string) => void } {
  let all = "";
  return { text: () => all, write: (t) => all += t };
}

Deno.test("bundleFile: one ES module, importing only node:*, without the kernel", async () => {
  const b = await bundleFile(HELLO);
  assert.equal(b.name, "hello");
  const imports = [...b.text.matchAll(/^\s*import\b[^"']*["']([^"']+)["']/gm)].map((m) => m[1]);
  assert.ok(imports.length > 0);
  for (const spec of imports) assert.match(spec!, /^node:/);
  assert.match(b.text, /export\s*\{\s*start as default\s*\}/);
  // Twz.open's embedded board (and with it the kernel) is a stub in a program.
  assert.doesNotMatch(b.text, /class Kernel\b/);
  assert.match(b.text, /Twz\.open is not available inside a program/);
  assert.ok(b.inputs.some((p) => p.endsWith("packages/libtwz/program.ts")));
});

Deno.test("bundleFile: refuses what a program cannot import, in one line", async () => {
  const bad = program("bad", `import { x } from "jsr:@std/foo";\nexport default () => x;`);
  await assert.rejects(() => bundleFile(bad), /cannot bundle import "jsr:@std\/foo"/);
  const none = program("none", "export const x = 1;");
  await assert.rejects(() => bundleFile(none), /has no default export/);
  const priv = program("priv", `import "@twz/kernel/_layout";\nexport default () => 0;`);
  await assert.rejects(() => bundleFile(priv), /@twz\/kernel exports no "\.\/_layout"/);
  assert.throws(() => programName("/x/bad name.ts"), /cannot name a program "bad name"/);
  assert.equal(isProgramFile("hello"), false);
  assert.equal(isProgramFile("hello.ts"), true);
  assert.equal(isProgramFile("./hello"), true);
});

Deno.test("runProgram: a file becomes /bin/NAME (r-x), runs in a thread, and /proc/<tid> names it", async () => {
  const b = await board();
  try {
    const out = capture();
    const end = await runProgram(b, HELLO, ["Eve"], { console: out.write });
    assert.equal(end.state, ThreadState.Exited);
    assert.equal(end.exitCode, 0, out.text());
    assert.equal(end.fault, null);
    assert.match(out.text(), new RegExp(`^Hello, Eve! This is hello, thread ${end.tid}\\.\\n`));
    assert.match(out.text(), /run number 1\n/);
    const twz = Twz.attach(b.kernel.port());
    const code = twz.naming.resolve("/bin/hello");
    assert.equal(b.kernel.stat(code).prot, Prot.Read | Prot.Exec);
    assert.equal(twz.naming.resolve(`/proc/${end.tid}`), end.id);
    // By name: no bundling, the same code object.
    const again = await runProgram(b, "hello", [], { console: out.write });
    assert.equal(again.exitCode, 0);
    assert.match(out.text(), /run number 2\n/);
    assert.equal(twz.naming.resolve("/bin/hello"), code);
    twz.close();
  } finally {
    await close(b);
  }
});

Deno.test("installProgram: a new version replaces the old code object; a non-program name is kept", async () => {
  const b = await board();
  try {
    const system = attachThreads(b);
    const first = installProgram(system, "seven", "export default () => 7;");
    const second = installProgram(system, "seven", "export default () => 8;");
    assert.notEqual(first, second);
    assert.equal(b.kernel.exists(first), false, "the old version is deleted");
    assert.equal((await runProgram(b, "seven", [])).exitCode, 8);
    const data = system.twz.create({ name: "/bin/data", size: 4096 });
    assert.throws(
      () => installProgram(system, "data", "export default () => 0;"),
      new RegExp(`/bin/data is bound to ${formatId(data.id)}, which is not a program`),
    );
  } finally {
    await close(b);
  }
});

Deno.test("a program runs with Deno permissions none: no files, no environment", async () => {
  const b = await board();
  try {
    const probe = program(
      "probe",
      `export default () => {
        const tries: [string, () => unknown][] = [
          ["read", () => Deno.readTextFileSync("/etc/hostname")],
          ["env", () => Deno.env.get("HOME")],
          ["run", () => new Deno.Command("true").outputSync()],
        ];
        for (const [what, f] of tries) {
          try { f(); console.log(what + ": allowed"); }
          catch (e) { console.log(what + ": " + (e as Error).name); }
        }
      };`,
    );
    const out = capture();
    const end = await runProgram(b, probe, [], { console: out.write });
    assert.equal(end.exitCode, 0, out.text());
    const lines = out.text().trim().split("\n");
    assert.equal(lines.length, 3, out.text());
    for (const l of lines) assert.doesNotMatch(l, /allowed/);
  } finally {
    await close(b);
  }
});

Deno.test("faults: an exception, a write through a read-only handle, an access outside an object", async () => {
  const b = await board();
  try {
    const cases: [string, string, string, RegExp][] = [
      ["boom", `export default () => { throw new Error("boom"); };`, "exception", /^Error: boom$/],
      [
        "rowrite",
        `export default (env: ProgramEnv) => {
          const obj = env.twz.create({ size: 4096 });
          env.twz.open(obj.id, { write: false }).write(300, new Uint8Array([1]));
        };`,
        "protection",
        /^TwzError: .*read-only/,
      ],
      [
        "outside",
        `export default (env: ProgramEnv) => {
          const obj = env.twz.create({ size: 4096 });
          obj.write(obj.size - 1, new Uint8Array([1, 2, 3]));
        };`,
        "memory",
        /^RangeError: .*outside/,
      ],
    ];
    for (const [name, body, kind, message] of cases) {
      const out = capture();
      const end = await runProgram(b, program(name, body), [], { console: out.write });
      assert.equal(end.exitCode, 1, name);
      assert.equal(end.fault?.kind, kind, `${name}: ${JSON.stringify(end.fault)}`);
      assert.match(end.fault!.message, message);
      assert.match(out.text(), new RegExp(`^${name}: uncaught `), "the stack went to the console");
    }
    // The kernel went on: a program still runs, and ps shows the three ended with their fault.
    assert.equal((await runProgram(b, program("fine", "export default () => 0;"), [])).exitCode, 0);
    const ps = psLines(attachThreads(b).manager.threads()).join("\n");
    assert.match(ps, /exited \(exception\)\s+1\s.*boom/);
    assert.match(ps, /exited \(protection\)\s+1\s.*rowrite/);
    assert.match(ps, /exited \(memory\)\s+1\s.*outside/);
  } finally {
    await close(b);
  }
});

Deno.test("kill: a sleeping program ends killed (137); after a crash earlier threads read lost", async () => {
  const b = await board();
  try {
    const nap = program(
      "nap",
      `export default async (env: ProgramEnv) => {
        for (;;) { await new Promise((r) => setTimeout(r, 10)); env.port.threadYield(); }
      };`,
    );
    const killed = await spawnProgram(b, nap, []);
    const { manager } = attachThreads(b);
    manager.kill(killed.tid);
    const end = await manager.wait(killed.tid);
    assert.equal(end.exitCode, KILLED_EXIT);
    assert.equal(end.fault?.kind, "killed");

    const lost = await spawnProgram(b, nap, []);
    // Power fails with the thread running; the next boot finds it in /proc.
    b.kernel.halt();
    b.hal.power!.powerFail({ policy: "all" });
    b.kernel = Kernel.boot(b.hal);
    const after = attachThreads(b);
    const found = after.lost.find((t) => t.tid === lost.tid);
    assert.ok(found, psLines(after.lost).join("\n"));
    assert.equal(found.state, ThreadState.Exited);
    assert.equal(found.fault?.kind, "lost");
    assert.match(psLines(after.manager.threads()).join("\n"), /exited \(lost at reboot\).*nap/);
    const next = await runProgram(b, program("zero", "export default () => 0;"), []);
    assert.ok(next.tid > lost.tid, "thread numbers continue above the lost ones");
  } finally {
    await close(b);
  }
});

Deno.test("attachThreads: /proc keeps the newest threads of earlier boots", async () => {
  const b = await board();
  try {
    const zero = program("zero", "export default () => 0;");
    const ends = [];
    for (let i = 0; i < 3; i++) ends.push(await runProgram(b, zero, []));
    await stopThreads(b);
    b.kernel.shutdown();
    b.kernel = Kernel.boot(b.hal);
    const after = attachThreads(b, { keep: 2 });
    assert.deepEqual(after.lost.map((t) => t.tid), [ends[1]!.tid, ends[2]!.tid]);
    assert.equal(b.kernel.exists(ends[0]!.id), false, "the oldest thread object is deleted");
    assert.deepEqual(
      after.twz.naming.list("/proc").map((e) => e.name).sort(),
      [String(ends[1]!.tid), String(ends[2]!.tid)],
    );
    assert.deepEqual(after.manager.threads().map((t) => t.tid), [ends[1]!.tid, ends[2]!.tid]);
  } finally {
    await close(b);
  }
});

Deno.test("a read-only system runs a file from a volatile code object and installs nothing", async () => {
  const b = await board();
  try {
    b.kernel.shutdown();
    b.kernel = Kernel.boot(b.hal, { readOnly: true });
    const persistent = () => b.kernel.list().filter((s) => s.lifetime === "persistent").length;
    const before = persistent();
    const out = capture();
    const end = await runProgram(
      b,
      program("ro", `export default () => { console.log("ro ok"); };`),
      [],
      {
        console: out.write,
      },
    );
    assert.equal(end.exitCode, 0, out.text());
    assert.equal(out.text(), "ro ok\n");
    assert.equal(persistent(), before);
    assert.equal(b.kernel.list().some((s) => s.prot & Prot.Exec), false, "the code object went");
  } finally {
    await close(b);
  }
});

Deno.test("runMain: in-process over kernel.port(), with exit codes and classified faults", async () => {
  const b = await board();
  try {
    const port = b.kernel.port();
    const out: string[] = [];
    const console = {
      write: (t: string) => out.push(t),
      log: (...d: unknown[]) => out.push(d.join(" ")),
      error: (...d: unknown[]) => out.push(d.join(" ")),
    };
    const who = { tid: 9, name: "inproc", args: ["a", "b"] };
    const r = await runMain(port, who, (env, args) => {
      env.console.log(env.name, env.thread.tid, args.join(","));
      return 300;
    }, console);
    assert.deepEqual(r, { code: 300 & 0xff, fault: null });
    assert.deepEqual(out, ["inproc 9 a,b"]);
    assert.deepEqual(await runMain(port, who, (env) => env.exit(4), console), {
      code: 4,
      fault: null,
    });
    const f = await runMain(port, who, () => {
      throw new TwzError(ErrorCode.Killed, "killed");
    }, console);
    assert.equal(f.code, KILLED_EXIT);
    assert.equal(f.fault?.kind, "killed");
  } finally {
    await close(b);
  }
});

Deno.test("classify: exit, killed, protection, memory, exception", () => {
  assert.deepEqual(classify(new ProgramExit(3)), { code: 3, fault: null });
  assert.equal(classify(new TwzError(ErrorCode.Killed, "k")).fault?.kind, "killed");
  assert.equal(classify(new TwzError(ErrorCode.ReadOnly, "r")).fault?.kind, "protection");
  assert.equal(classify(new TwzError(ErrorCode.AccessDenied, "a")).fault?.kind, "protection");
  assert.equal(classify(new RangeError("x")).fault?.kind, "memory");
  const e = classify("text");
  assert.deepEqual([e.code, e.fault], [1, { kind: "exception", message: "Error: text" }]);
});

const pmem = (await import("@twz/hal-pmem")).plugin;
const described = pmem.describe();

Deno.test({
  name: `programs on hal-pmem: per-object views, the kv tool and hello${
    described.available ? "" : ` (skipped: ${described.reason})`
  }`,
  ignore: !described.available && Deno.env.get("CI") !== "true",
  fn: async () => {
    const image = join(tmpDir(), "pmem.img");
    const hal = await pmem.open({ image, size: 16 << 20, create: true });
    const b: Board = { hal, kernel: Kernel.boot(hal, { formatBlank: true }) };
    try {
      const out = capture();
      const hello = await runProgram(b, HELLO, ["Pmem"], { console: out.write });
      assert.equal(hello.exitCode, 0, out.text());
      assert.match(out.text(), /^Hello, Pmem!.*\n\/hello\/count: run number 1\n/);
      const put = await runProgram(b, "kv", ["put", "k", "persistent", "value"], {
        console: out.write,
      });
      assert.equal(put.exitCode, 0, out.text());
    } finally {
      await close(b);
    }
    // After a clean close, a new boot reads what the programs wrote.
    const hal2 = await pmem.open({ image });
    const b2: Board = { hal: hal2, kernel: Kernel.boot(hal2) };
    try {
      const out = capture();
      const get = await runProgram(b2, "kv", ["get", "k"], { console: out.write });
      assert.equal(get.exitCode, 0, out.text());
      assert.equal(out.text(), "persistent value\n");
    } finally {
      await close(b2);
    }
  },
});

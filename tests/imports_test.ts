// The direction of imports (DESIGN §2): kernel -> nothing; HAL plugins ->
// @twz/kernel/hal; libtwz -> the kernel port, @twz/kernel/abi, only (its one
// embedded-board file also boots a kernel: @twz/kernel, @twz/kernel/hal and
// the HAL plugins);
// crashtest -> the kernel, hal-sim and libtwz; cli wires them. Every .ts file
// of a package is checked. Test files (`*_test.ts`, `_test_*.ts`, `testdata/`)
// may import any package's public exports (the keys of its deno.json
// `exports`), never another package's private files; tests/ and tools/ import
// only public exports and their own files.
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");

/** Allowed bare specifiers per package (relative imports must stay inside it). */
const RULES: Record<string, { allow: RegExp; exceptions?: Record<string, RegExp> }> = {
  kernel: { allow: /^node:/ },
  "hal-sim": { allow: /^(node:|@twz\/kernel\/hal(\/testing)?$)/ },
  "hal-pmem": { allow: /^(node:|@twz\/kernel\/hal(\/testing)?$)/ },
  libtwz: {
    // User space runs on a KernelPort: no kernel, no HAL reachable.
    allow: /^@twz\/kernel\/abi$/,
    // The embedded entry is a board: it boots a kernel and loads a HAL
    // plugin by name, lazily.
    exceptions: { "embedded.ts": /^(@twz\/kernel(\/hal)?|@twz\/hal-(sim|pmem))$/ },
  },
  crashtest: { allow: /^(node:|@twz\/(kernel|hal-sim|libtwz)(\/[a-z-\/]+)?$)/ },
  // The global space: a kernel service on NATS, wired by the cli.
  global: { allow: /^(node:|@nats-io\/[a-z-]+$|@twz\/kernel(\/abi)?$)/ },
  cli: { allow: /^(node:|npm:|@twz\/|esbuild$)/ },
};

/** The public specifiers of the workspace: `@twz/NAME` plus each export key. */
export function publicSpecifiers(root = ROOT): Set<string> {
  const out = new Set<string>();
  for (const e of Deno.readDirSync(join(root, "packages"))) {
    if (!e.isDirectory) continue;
    const config = JSON.parse(Deno.readTextFileSync(join(root, "packages", e.name, "deno.json")));
    for (const key of Object.keys(config.exports ?? {})) {
      out.add(key === "." ? config.name : `${config.name}${key.slice(1)}`);
    }
  }
  return out;
}

const PUBLIC = publicSpecifiers();

/** Whether a file is a test or test fixture (allowed any public export). */
export function isTestFile(file: string): boolean {
  const name = file.split("/").pop()!;
  return /_test\.ts$/.test(name) || name.startsWith("_test") || file.includes("/testdata/");
}

/** Remove comments (JSDoc examples are not imports), keeping strings intact. */
export function stripComments(source: string): string {
  return source.replace(
    /("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`)|\/\*[\s\S]*?\*\/|\/\/[^\n]*/g,
    (_m, str) => str ?? "",
  );
}

/**
 * Every module specifier a source imports or re-exports, static or dynamic.
 * A static import starts a statement (at a line's start or after `;`): text
 * that only looks like one (a bundler's generated entry in a template
 * literal, a message) is none.
 */
export function specifiers(source: string): string[] {
  const code = stripComments(source);
  const out: string[] = [];
  const patterns = [
    /(?:^|;)\s*(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/gm,
    /(?:^|;)\s*import\s*["']([^"']+)["']/gm,
    /(?<![\w$.-])import\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const p of patterns) for (const m of code.matchAll(p)) out.push(m[1]!);
  return out;
}

/** Violations of the rules for one file of a package. */
export function violations(pkg: string, file: string, source: string): string[] {
  const rule = RULES[pkg];
  const bad: string[] = [];
  const test = isTestFile(file);
  for (const spec of specifiers(source)) {
    if (spec.startsWith(".")) {
      const target = resolve(dirname(file), spec);
      const home = join(ROOT, "packages", pkg);
      if (relative(home, target).startsWith("..")) bad.push(`${spec} leaves packages/${pkg}`);
      continue;
    }
    const name = file.split("/").pop()!;
    if (spec.startsWith("@twz/") && !PUBLIC.has(spec)) {
      bad.push(`${spec} is not a public export`);
      continue;
    }
    if (rule?.allow.test(spec) || rule?.exceptions?.[name]?.test(spec)) continue;
    if (test && (/^(node:|npm:)/.test(spec) || PUBLIC.has(spec))) continue;
    bad.push(spec);
  }
  return bad;
}

/** Violations for a file of tests/ or tools/: public exports and own files only. */
export function outsideViolations(dir: string, file: string, source: string): string[] {
  const bad: string[] = [];
  for (const spec of specifiers(source)) {
    if (spec.startsWith(".")) {
      const target = resolve(dirname(file), spec);
      if (relative(join(ROOT, dir), target).startsWith("..")) bad.push(`${spec} leaves ${dir}/`);
    } else if (!/^(node:|npm:)/.test(spec) && !PUBLIC.has(spec)) {
      bad.push(`${spec} is not a public export`);
    }
  }
  return bad;
}

function* tsFiles(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory && e.name !== "node_modules") yield* tsFiles(p);
    else if (e.isFile && /\.(ts|tsx|js|mjs)$/.test(e.name)) yield p;
  }
}

Deno.test("imports: every package imports only in the allowed direction", () => {
  const found: string[] = [];
  for (const pkg of Object.keys(RULES)) {
    const dir = join(ROOT, "packages", pkg);
    for (const file of tsFiles(dir)) {
      for (const v of violations(pkg, file, Deno.readTextFileSync(file))) {
        found.push(`${relative(ROOT, file)}: ${v}`);
      }
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("imports: every package directory has a rule", () => {
  const dirs = [...Deno.readDirSync(join(ROOT, "packages"))].filter((e) => e.isDirectory);
  assert.deepEqual(dirs.map((e) => e.name).filter((n) => !RULES[n]), []);
});

Deno.test("imports: tests/ and tools/ import only public exports and their own files", () => {
  const found: string[] = [];
  for (const dir of ["tests", "tools"]) {
    for (const file of tsFiles(join(ROOT, dir))) {
      // The checker's own file holds import statements as test data.
      if (file.includes("/peers/") || file.endsWith("imports_test.ts")) continue;
      for (const v of outsideViolations(dir, file, Deno.readTextFileSync(file))) {
        found.push(`${relative(ROOT, file)}: ${v}`);
      }
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("imports: the checker catches a kernel file that imports a plugin", () => {
  const file = join(ROOT, "packages/kernel/x.ts");
  assert.deepEqual(violations("kernel", file, `import { plugin } from "@twz/hal-sim";`), [
    "@twz/hal-sim",
  ]);
  assert.deepEqual(violations("kernel", file, `const m = await import("@twz/libtwz");`), [
    "@twz/libtwz",
  ]);
  assert.deepEqual(violations("kernel", file, `export * from "../hal-sim/mod.ts";`), [
    "../hal-sim/mod.ts leaves packages/kernel",
  ]);
  assert.deepEqual(
    violations("kernel", file, `/** import { x } from "@twz/hal-sim"; */\nimport "./y.ts";`),
    [],
  );
  assert.deepEqual(
    violations("hal-sim", join(ROOT, "packages/hal-sim/a.ts"), `import "@twz/kernel";`),
    [
      "@twz/kernel",
    ],
  );
  assert.deepEqual(
    violations("libtwz", join(ROOT, "packages/libtwz/other.ts"), `await import("@twz/hal-sim")`),
    ["@twz/hal-sim"],
  );
});

Deno.test("imports: libtwz reaches the kernel only through the port (its board file excepted)", () => {
  const lib = (name: string, source: string) =>
    violations("libtwz", join(ROOT, "packages/libtwz", name), source);
  assert.deepEqual(lib("twz.ts", `import { Sys } from "@twz/kernel/abi";`), []);
  assert.deepEqual(lib("twz.ts", `import type { Kernel } from "@twz/kernel";`), ["@twz/kernel"]);
  assert.deepEqual(lib("tx.ts", `import type { Hal } from "@twz/kernel/hal";`), [
    "@twz/kernel/hal",
  ]);
  assert.deepEqual(lib("object.ts", `import { Buffer } from "node:buffer";`), ["node:buffer"]);
  assert.deepEqual(lib("twz.ts", `const e = await import("./embedded.ts");`), []);
  assert.deepEqual(
    lib("embedded.ts", `import { Kernel } from "@twz/kernel"; import "@twz/kernel/hal";`),
    [],
  );
  // Text that only looks like an import is none.
  assert.deepEqual(lib("a.ts", 'const entry = `import main from "x";`;'), []);
  assert.deepEqual(lib("a.ts", 'if (kind === "dynamic-import") f("@twz/kernel");'), []);
  // A test may still use any public export.
  assert.deepEqual(lib("twz_test.ts", `import { Kernel } from "@twz/kernel";`), []);
});

Deno.test("imports: the checker refuses private files and allows tests public exports", () => {
  const kernelTest = join(ROOT, "packages/kernel/kernel_test.ts");
  assert.deepEqual(violations("kernel", kernelTest, `import { plugin } from "@twz/hal-sim";`), []);
  assert.deepEqual(
    violations("kernel", join(ROOT, "packages/kernel/kernel.ts"), `import "@twz/hal-sim";`),
    ["@twz/hal-sim"],
  );
  assert.deepEqual(
    violations("libtwz", join(ROOT, "packages/libtwz/tx_test.ts"), `import "@twz/kernel/_layout";`),
    ["@twz/kernel/_layout is not a public export"],
  );
  assert.deepEqual(
    violations(
      "libtwz",
      join(ROOT, "packages/libtwz/tx_test.ts"),
      `import "../kernel/_layout.ts";`,
    ),
    ["../kernel/_layout.ts leaves packages/libtwz"],
  );
  const t = join(ROOT, "tests/x_test.ts");
  assert.deepEqual(outsideViolations("tests", t, `import "../packages/kernel/_layout.ts";`), [
    "../packages/kernel/_layout.ts leaves tests/",
  ]);
  assert.deepEqual(
    outsideViolations("tests", t, `import "@twz/libtwz/tx"; import "./_twz.ts";`),
    [],
  );
});

/**
 * Why a test file may live in tests/ rather than beside one package: it drives
 * the `twz` command (imports ./_twz.ts), spans packages (public exports of
 * two or more), or is a crash or damage campaign (`crash_*`, `damage_*`).
 * Returns undefined when it belongs here, else what is wrong.
 */
export function misplacedTest(file: string, source: string): string | undefined {
  const name = file.split("/").pop()!;
  if (!name.endsWith("_test.ts") || name === "imports_test.ts") return undefined;
  if (/^(crash|damage)_/.test(name)) return undefined;
  const specs = specifiers(source);
  if (specs.some((s) => /^\.\/_twz\.ts$/.test(s))) return undefined;
  const packages = new Set(
    specs.filter((s) => s.startsWith("@twz/")).map((s) => s.split("/").slice(0, 2).join("/")),
  );
  if (packages.size >= 2) return undefined;
  return `a unit test of ${[...packages].join("") || "no package"}: move it beside that package`;
}

Deno.test("imports: tests/ holds no unit test of a single package", () => {
  const found: string[] = [];
  for (const file of tsFiles(join(ROOT, "tests"))) {
    const why = misplacedTest(file, Deno.readTextFileSync(file));
    if (why) found.push(`${relative(ROOT, file)}: ${why}`);
  }
  assert.deepEqual(found, []);
  assert.equal(
    misplacedTest("tests/tx_test.ts", `import { transaction } from "@twz/libtwz/tx";`),
    "a unit test of @twz/libtwz: move it beside that package",
  );
  assert.equal(misplacedTest("tests/x_test.ts", `import { twz } from "./_twz.ts";`), undefined);
});

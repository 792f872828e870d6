// The direction of imports (DESIGN §2): kernel -> nothing; HAL plugins ->
// @twz/kernel/hal; libtwz -> @twz/kernel (+ its one embedded-board file); cli
// wires them. Every .ts file of a package is checked, tests included.
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");

/** Allowed bare specifiers per package (relative imports must stay inside it). */
const RULES: Record<string, { allow: RegExp; exceptions?: Record<string, RegExp> }> = {
  kernel: { allow: /^node:/ },
  "hal-sim": { allow: /^(node:|@twz\/kernel\/hal(\/testing)?$)/ },
  "hal-pmem": { allow: /^(node:|@twz\/kernel\/hal(\/testing)?$)/ },
  libtwz: {
    allow: /^(node:|@twz\/kernel(\/abi|\/hal)?$)/,
    // The embedded entry is a board: it loads a HAL plugin by name, lazily.
    exceptions: { "embedded.ts": /^@twz\/hal-(sim|pmem)$/ },
  },
  cli: { allow: /^(node:|npm:|@twz\/|esbuild$)/ },
};

/** Remove comments (JSDoc examples are not imports), keeping strings intact. */
export function stripComments(source: string): string {
  return source.replace(
    /("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`)|\/\*[\s\S]*?\*\/|\/\/[^\n]*/g,
    (_m, str) => str ?? "",
  );
}

/** Every module specifier a source imports or re-exports, static or dynamic. */
export function specifiers(source: string): string[] {
  const code = stripComments(source);
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const p of patterns) for (const m of code.matchAll(p)) out.push(m[1]);
  return out;
}

/** Violations of the rules for one file of a package. */
export function violations(pkg: string, file: string, source: string): string[] {
  const rule = RULES[pkg];
  const bad: string[] = [];
  for (const spec of specifiers(source)) {
    if (spec.startsWith(".")) {
      const target = resolve(dirname(file), spec);
      const home = join(ROOT, "packages", pkg);
      if (relative(home, target).startsWith("..")) bad.push(`${spec} leaves packages/${pkg}`);
      continue;
    }
    const name = file.split("/").pop()!;
    if (rule.allow.test(spec) || rule.exceptions?.[name]?.test(spec)) continue;
    bad.push(spec);
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

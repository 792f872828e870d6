/**
 * The program bundler: one TypeScript program (`export default async function
 * main(env, args)`) and everything it imports become ONE ES module whose
 * default export is the thread start function the kernel's loader calls
 * (`start(init: ThreadInit): Promise<void>`, built by `startProgram` of
 * `@twz/libtwz/program`). The module imports nothing at run time except
 * `node:*` modules (left external): a thread runs with Deno permissions
 * "none" and gets its code from a `blob:` URL, so it cannot resolve files or
 * packages.
 *
 * Resolution: relative files as esbuild resolves them; `@twz/*` through the
 * workspace members' `deno.json` `exports` (the program's file may live
 * anywhere); `node:*` external. Anything else (`jsr:`, `npm:`, `https:`,
 * bare names) is refused with one line. What only `Twz.open` loads, lazily
 * (libtwz's embedded board and through it the kernel and the HAL plugins),
 * becomes a stub that throws: a program runs on the kernel port it is
 * given (`env.twz`), never on a kernel of its own.

 * `run.ts` stores a bundle as a code object (`encodeCodeObject` of
 * `@twz/kernel/threads`).
 *
 * @module
 */
import * as esbuild from "esbuild";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "./board.ts";

/**
 * A bundle that could not be made: one line, naming the file (a
 * `UsageError`, so the shell reports it as `run: …`).
 */
export class BundleError extends UsageError {
  override name = "BundleError";
}

/** A bundled program. */
export interface Bundle {
  /** The program's name: the file's stem (`hello` for `examples/hello.ts`). */
  name: string;
  /** The ES module text (default export: the thread start function). */
  text: string;
  /** The files it was made of (absolute paths), for cache checks. */
  inputs: string[];
}

/** The repository root (the workspace), found from this file. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The program runtime the wrapper entry imports. */
const RUNTIME = join(ROOT, "packages", "libtwz", "program.ts");

/** Workspace packages: `@twz/NAME` → directory and `exports`. */
let packages: Map<string, { dir: string; exports: Record<string, string> }> | undefined;

function workspace(): Map<string, { dir: string; exports: Record<string, string> }> {
  if (packages) return packages;
  packages = new Map();
  const root = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))) as {
    workspace?: string[];
  };
  for (const member of root.workspace ?? []) {
    const dir = resolve(ROOT, member);
    const cfg = JSON.parse(Deno.readTextFileSync(join(dir, "deno.json"))) as {
      name?: string;
      exports?: string | Record<string, string>;
    };
    if (cfg.name === undefined) continue;
    const exports = typeof cfg.exports === "string" ? { ".": cfg.exports } : cfg.exports ?? {};
    packages.set(cfg.name, { dir, exports });
  }
  return packages;
}

/** Packages a program never loads: `Twz.open`'s HAL plugins (dynamic imports only). */
const STUBBED = new Set(["@twz/hal-sim", "@twz/hal-pmem"]);
/**
 * libtwz's embedded board (`Twz.open` imports it dynamically): it would
 * carry the whole kernel into every bundle, for a call a program cannot make.
 */
const EMBEDDED = join(ROOT, "packages", "libtwz", "embedded.ts");

/** Resolve `@twz/pkg[/sub]` to a file, or explain why not. */
function resolveWorkspace(spec: string): string {
  const m = /^(@twz\/[^/]+)(\/.*)?$/.exec(spec)!;
  const pkg = workspace().get(m[1]!);
  if (pkg === undefined) throw new BundleError(`no workspace package ${m[1]}`);
  const key = m[2] === undefined ? "." : `.${m[2]}`;
  const file = pkg.exports[key];
  if (file === undefined) {
    throw new BundleError(
      `${m[1]} exports no "${key}" (its exports: ${Object.keys(pkg.exports).join(", ")})`,
    );
  }
  return resolve(pkg.dir, file);
}

/** Builds under way (esbuild's service is stopped when none is). */
let building = 0;

/** The esbuild plugin that resolves the program's imports as described above. */
function twzResolver(): esbuild.Plugin {
  return {
    name: "twz-resolve",
    setup(build) {
      build.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, external: true }));
      build.onResolve({ filter: /^@twz\// }, (a) => {
        if (STUBBED.has(a.path)) return { path: a.path, namespace: "twz-stub" };
        try {
          const path = resolveWorkspace(a.path);
          if (path === EMBEDDED && a.kind === "dynamic-import") {
            return { path: "Twz.open", namespace: "twz-stub" };
          }
          return { path };
        } catch (error) {
          return { errors: [{ text: (error as Error).message }] };
        }
      });
      build.onResolve({ filter: /(^|\/)embedded\.ts$/ }, (a) => {
        if (a.kind !== "dynamic-import" || resolve(a.resolveDir, a.path) !== EMBEDDED) {
          return undefined;
        }
        return { path: "Twz.open", namespace: "twz-stub" };
      });
      build.onResolve({ filter: /^[^./]/ }, (a) => ({
        errors: [{
          text: `cannot bundle import "${a.path}": a program may import relative files, ` +
            `@twz/* packages and node:* modules`,
        }],
      }));
      build.onLoad({ filter: /.*/, namespace: "twz-stub" }, (a) => ({
        contents: [
          `import { ErrorCode, TwzError } from "@twz/kernel/abi";`,
          `throw new TwzError(ErrorCode.NotSupported, ${
            JSON.stringify(`${a.path} is not available inside a program: use env.twz`)
          });`,
        ].join("\n"),
        resolveDir: ROOT,
        loader: "js",
      }));
    },
  };
}

/**
 * Bundle a program file into one ES module.
 *
 * @param file The program (`.ts` or `.js`), relative to the working directory or absolute.
 * @param name The program's name.
 * @returns The bundle.
 * @throws {BundleError} The file is missing, does not compile, has no
 *   default export, or imports what a program cannot.
 * @tags allow-read, allow-env, allow-run
 */
export async function bundleProgram(file: string, name: string): Promise<Bundle> {
  const path = resolve(file);
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(path);
  } catch {
    throw new BundleError(`cannot read program ${file}: no such file`);
  }
  if (!stat.isFile) throw new BundleError(`cannot read program ${file}: not a file`);
  const entry = [
    `import main from ${JSON.stringify(path)};`,
    `import { startProgram } from ${JSON.stringify(RUNTIME)};`,
    `if (typeof main !== "function") {`,
    `  throw new TypeError(${
      JSON.stringify(`${basename(path)}: the default export is not a function`)
    });`,
    `}`,
    `/** Start the program in this thread (called by the kernel's loader). */`,
    `export default function start(init) { return startProgram(init, main); }`,
  ].join("\n");
  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  building++;
  try {
    result = await esbuild.build({
      stdin: { contents: entry, resolveDir: dirname(path), sourcefile: `<${name} entry>` },
      absWorkingDir: ROOT,
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "esnext",
      write: false,
      metafile: true,
      logLevel: "silent",
      legalComments: "none",
      plugins: [twzResolver()],
    });
  } catch (error) {
    throw new BundleError(describeFailure(file, error));
  } finally {
    // One esbuild service serves every concurrent build; the last one out stops it.
    if (--building === 0) await esbuild.stop();
  }
  const out = result.outputFiles[0];
  if (out === undefined) throw new BundleError(`bundling ${file} produced nothing`);
  const inputs = Object.keys(result.metafile.inputs).filter((p) => !/[:<]/.test(p))
    .map((p) => resolve(ROOT, p));
  return { name, text: out.text, inputs: [...new Set(inputs)] };
}

/** One line for an esbuild failure: the first error, where it is. */
function describeFailure(file: string, error: unknown): string {
  const errors = (error as { errors?: esbuild.Message[] }).errors;
  const first = errors?.[0];
  if (first === undefined) return `cannot bundle ${file}: ${(error as Error).message}`;
  let text = first.text;
  if (/No matching export .* for import "default"/.test(text)) {
    text =
      "it has no default export (a program is `export default async function main(env, args)`)";
  }
  const at = first.location;
  const where = at && !at.file.startsWith("<") ? ` (${at.file}:${at.line}:${at.column + 1})` : "";
  const more = (errors?.length ?? 0) > 1 ? ` (and ${errors!.length - 1} more)` : "";
  return `cannot bundle ${file}: ${text}${where}${more}`;
}

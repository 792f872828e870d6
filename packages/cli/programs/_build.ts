/**
 * The built-in programs' cache, behind `@twz/cli/programs` (`build.ts`):
 * where bundles are cached, when a cached bundle is fresh, and the bundle
 * `run NAME` installs for a built-in (`builtinCode`, for `run.ts`).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Bundle } from "../_bundle.ts";

/** The built-in programs: name → source file (beside this one). */
export const BUILTINS: Readonly<Record<string, string>> = {
  kv: "kv.ts",
};

/** Whether `name` is a built-in program. */
export function isBuiltin(name: string): boolean {
  return Object.hasOwn(BUILTINS, name);
}

/**
 * Where built-in bundles are cached.
 *
 * @returns `$TWZ_CACHE_DIR/programs`, else `$XDG_CACHE_HOME/twz/programs`,
 *   else `~/.cache/twz/programs`.
 */
export function programCacheDir(): string {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined;
    }
  };
  const base = env("TWZ_CACHE_DIR") ??
    (env("XDG_CACHE_HOME") !== undefined
      ? join(env("XDG_CACHE_HOME")!, "twz")
      : join(env("HOME") ?? Deno.cwd(), ".cache", "twz"));
  return join(base, "programs");
}

/** What the cache records beside a bundle: each input's size and mtime. */
interface Stamp {
  inputs: Record<string, [number, number]>;
}

function stampOf(inputs: string[]): Stamp {
  const out: Stamp = { inputs: {} };
  for (const p of inputs) {
    const s = Deno.statSync(p);
    out.inputs[p] = [s.size, s.mtime?.getTime() ?? 0];
  }
  return out;
}

function fresh(stamp: Stamp): boolean {
  for (const [p, [size, mtime]] of Object.entries(stamp.inputs)) {
    try {
      const s = Deno.statSync(p);
      if (s.size !== size || (s.mtime?.getTime() ?? 0) !== mtime) return false;
    } catch {
      return false;
    }
  }
  return Object.keys(stamp.inputs).length > 0;
}

function sourceOf(name: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), BUILTINS[name]!);
}

async function build(name: string, dir: string): Promise<Bundle> {
  // esbuild loads only when something is bundled.
  const { bundleProgram } = await import("../_bundle.ts");
  const bundle = await bundleProgram(sourceOf(name), name);
  Deno.mkdirSync(dir, { recursive: true });
  // Write beside, then rename: a concurrent reader sees the old or the new file.
  const tmp = join(dir, `.${name}.${crypto.randomUUID()}.tmp`);
  Deno.writeTextFileSync(tmp, bundle.text);
  Deno.renameSync(tmp, join(dir, `${name}.js`));
  Deno.writeTextFileSync(tmp, JSON.stringify(stampOf(bundle.inputs)));
  Deno.renameSync(tmp, join(dir, `${name}.json`));
  return bundle;
}

/**
 * The bundle of a built-in program: from the cache when it is fresh, else
 * bundled now (and cached).
 *
 * @param name A built-in program's name.
 * @returns The module text, or `undefined` when `name` is no built-in.
 * @tags allow-read, allow-write, allow-env, allow-run
 */
export async function builtinCode(name: string): Promise<string | undefined> {
  if (!isBuiltin(name)) return undefined;
  const dir = programCacheDir();
  try {
    const stamp = JSON.parse(Deno.readTextFileSync(join(dir, `${name}.json`))) as Stamp;
    if (fresh(stamp)) return Deno.readTextFileSync(join(dir, `${name}.js`));
  } catch { /* not cached yet, or unreadable: bundle it */ }
  return (await build(name, dir)).text;
}

/**
 * Bundle every built-in program into the cache (the root task `setup` calls
 * this). Fresh bundles are kept.
 *
 * @returns One line per program (`kv: built` or `kv: cached`).
 * @tags allow-read, allow-write, allow-env, allow-run
 */
export async function buildPrograms(): Promise<string[]> {
  const dir = programCacheDir();
  const lines: string[] = [];
  for (const name of Object.keys(BUILTINS)) {
    let cached = false;
    try {
      const stamp = JSON.parse(Deno.readTextFileSync(join(dir, `${name}.json`))) as Stamp;
      cached = fresh(stamp) && Deno.statSync(join(dir, `${name}.js`)).isFile;
    } catch { /* build it */ }
    if (!cached) await build(name, dir);
    lines.push(`${name}: ${cached ? "cached" : "built"} (${join(dir, `${name}.js`)})`);
  }
  return lines;
}

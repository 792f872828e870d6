/**
 * Builds the C trampoline (`trampoline.c`) into a per-user cache with the
 * system C compiler. Private: used by the plugin (lazily, in `open`/`attach`)
 * and by `setup.ts` (`@twz/hal-pmem/setup`, ahead of the tests).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** Where the trampoline comes from, for messages and `describe()`. */
export type TrampolineState =
  | { ok: true; path: string; built: boolean }
  | { ok: false; reason: string };

const SOURCE_URL = new URL("./trampoline.c", import.meta.url);
const PREFIX = "libtwz_pmem_trampoline-";

/** An environment variable, or `undefined` when unset or not readable (no --allow-env). */
export function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

/**
 * The cache directory: `$TWZ_CACHE_DIR`, else `$XDG_CACHE_HOME/twz`, else
 * `~/.cache/twz`.
 */
export function cacheDir(): string {
  const explicit = env("TWZ_CACHE_DIR");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "twz");
  return join(env("HOME") ?? Deno.cwd(), ".cache", "twz");
}

async function readSource(): Promise<string> {
  if (SOURCE_URL.protocol === "file:") return await Deno.readTextFile(SOURCE_URL);
  const response = await fetch(SOURCE_URL);
  if (!response.ok) throw new Error(`cannot fetch ${SOURCE_URL}: ${response.status}`);
  return await response.text();
}

/** Whether `path` names an existing file or directory. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Compilers tried in order: `$CC`, then `cc`, then `gcc`. */
function compilers(): string[] {
  const cc = env("CC");
  return [...new Set([...(cc ? [cc] : []), "cc", "gcc"])];
}

let pending: Promise<TrampolineState> | undefined;

/**
 * Make sure the trampoline for the current `trampoline.c` is built, building
 * it if needed; memoised per process. Never throws: a failure (no compiler,
 * no permission) comes back as `{ ok: false, reason }`.
 */
export function ensureTrampoline(): Promise<TrampolineState> {
  pending ??= build();
  return pending;
}

async function build(): Promise<TrampolineState> {
  let source: string;
  try {
    source = await readSource();
  } catch (e) {
    return { ok: false, reason: `cannot read trampoline.c: ${(e as Error).message}` };
  }
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const dir = cacheDir();
  const target = join(dir, `${PREFIX}${hash}.so`);
  if (exists(target)) return { ok: true, path: target, built: false };

  try {
    Deno.mkdirSync(dir, { recursive: true });
  } catch (e) {
    return { ok: false, reason: `cannot create ${dir}: ${(e as Error).message}` };
  }
  // Compile to a private name, then rename: concurrent builders never see a
  // half-written library.
  const temp = join(dir, `.${PREFIX}${hash}.${Deno.pid}.${Date.now()}.tmp`);
  const failures: string[] = [];
  for (const cc of compilers()) {
    let output: Deno.CommandOutput;
    try {
      const child = new Deno.Command(cc, {
        args: ["-O2", "-shared", "-fPIC", "-Wall", "-x", "c", "-", "-o", temp],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(source));
      await writer.close();
      output = await child.output();
    } catch (e) {
      failures.push(
        e instanceof Deno.errors.NotFound ? `${cc}: not found` : `${cc}: ${(e as Error).message}`,
      );
      continue;
    }
    if (!output.success) {
      failures.push(`${cc}: ${new TextDecoder().decode(output.stderr).trim().split("\n")[0]}`);
      try {
        Deno.removeSync(temp);
      } catch { /* nothing was written */ }
      continue;
    }
    Deno.renameSync(temp, target);
    removeStale(dir, target);
    return { ok: true, path: target, built: true };
  }
  return { ok: false, reason: `no C compiler could build the trampoline (${failures.join("; ")})` };
}

/** Remove trampolines built from older sources (a loaded one stays mapped). */
function removeStale(dir: string, keep: string): void {
  try {
    for (const entry of Deno.readDirSync(dir)) {
      const path = join(dir, entry.name);
      if (entry.name.startsWith(PREFIX) && entry.name.endsWith(".so") && path !== keep) {
        Deno.removeSync(path);
      }
    }
  } catch { /* best effort */ }
}

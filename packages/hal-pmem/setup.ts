/**
 * `@twz/hal-pmem/setup`: prepare hal-pmem before its tests or first use —
 * make sure libpmem2 can be loaded (installing it with apt-get when we are
 * root and may), then build the C trampoline (`trampoline.c`, ~10× cheaper
 * persists) into the per-user cache. Fast (one dlopen and one stat) when both
 * are already there. `tools/pmem_setup.ts` (the root task `setup`) runs
 * {@linkcode setup}.
 *
 * @example Prepare hal-pmem, then use it
 * ```ts ignore
 * import { setup } from "@twz/hal-pmem/setup";
 * if ((await setup()) !== 0) Deno.exit(1);
 * ```
 *
 * @tags allow-ffi, allow-run, allow-env, allow-read, allow-write
 * @module
 */
import { ensureTrampoline, type TrampolineState } from "./_build.ts";
import { INSTALL_HINT, libpmem2, LIBRARY_ENV, libraryInfo } from "./_ffi.ts";

export { ensureTrampoline, INSTALL_HINT, LIBRARY_ENV, type TrampolineState };

/**
 * The one line {@linkcode setup} prints on stdout when libpmem2 is missing
 * (the hal-pmem tests print the same and skip themselves).
 */
export const SKIPPED_LINE = `SKIPPED: hal-pmem tests need libpmem2 (${INSTALL_HINT})`;

/**
 * Why libpmem2 cannot be loaded here, or `undefined` when it can.
 *
 * @returns The loader's one-line message, or `undefined`.
 * @example
 * ```ts ignore
 * import { libpmem2Missing } from "@twz/hal-pmem/setup";
 * console.log(libpmem2Missing() ?? "libpmem2 is here");
 * ```
 */
export function libpmem2Missing(): string | undefined {
  try {
    libpmem2();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

async function install(): Promise<boolean> {
  console.error(`pmem_setup: libpmem2 is missing; installing it (${INSTALL_HINT})`);
  const { success } = await new Deno.Command("sh", {
    args: ["-c", "apt-get update -qq && apt-get install -y libpmem2"],
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return success;
}

/**
 * Run the setup: load libpmem2 (installing it with apt-get when it is
 * missing, the process is root, apt-get is on the path and
 * `TWZ_LIBPMEM2_PATH` is unset), then build or find the trampoline. Prints
 * one `pmem_setup:` line on stdout when ready; when libpmem2 is missing,
 * prints {@linkcode SKIPPED_LINE} on stdout and the reason on stderr.
 *
 * @returns The process exit code: 0 when ready, or when libpmem2 is missing
 *   outside CI (the hal-pmem tests then skip themselves); 1 when libpmem2 is
 *   missing under `CI=true`.
 * @example
 * ```ts ignore
 * import { setup } from "@twz/hal-pmem/setup";
 * Deno.exit(await setup());
 * ```
 */
export async function setup(): Promise<number> {
  let missing = libpmem2Missing();
  // With an explicit library path, installing the package would not help.
  if (missing && !Deno.env.get(LIBRARY_ENV) && Deno.uid() === 0 && onPath("apt-get")) {
    if (await install()) missing = libpmem2Missing();
  }
  if (missing) {
    console.log(SKIPPED_LINE);
    console.error(`pmem_setup: ${missing}`);
    if (Deno.env.get("CI") === "true") {
      console.error("pmem_setup: CI=true: a missing libpmem2 is an error");
      return 1;
    }
    return 0;
  }
  const info = libraryInfo();
  const trampoline = await ensureTrampoline();
  const tail = trampoline.ok
    ? `trampoline ${trampoline.path} (${trampoline.built ? "built" : "cached"})`
    : `no trampoline (${trampoline.reason}); persist will go through UnsafeFnPointer`;
  console.log(`pmem_setup: libpmem2 ${info.version ?? ""} ${info.library}; ${tail}`);
  return 0;
}

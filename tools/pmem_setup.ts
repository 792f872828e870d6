/**
 * Prepare hal-pmem before the tests run: make sure libpmem2 can be loaded
 * (installing it with apt-get when we are root and may), then build the C
 * trampoline into the cache. Fast (one dlopen and one stat) when both are
 * already there.
 *
 * Exit codes: 0 when ready, or when libpmem2 is missing outside CI (the
 * SKIPPED line is printed and the hal-pmem tests skip themselves); 1 when
 * libpmem2 is missing under `CI=true`.
 *
 * @example
 * ```sh
 * deno run -A tools/pmem_setup.ts && deno test -A packages/hal-pmem
 * ```
 *
 * @module
 */
import { ensureTrampoline } from "../packages/hal-pmem/_build.ts";
import { INSTALL_HINT, libpmem2, LIBRARY_ENV, libraryInfo } from "../packages/hal-pmem/_ffi.ts";

/** The one line printed when libpmem2 is missing. */
export const SKIPPED_LINE = `SKIPPED: hal-pmem tests need libpmem2 (${INSTALL_HINT})`;

function loadable(): string | undefined {
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
 * Run the setup.
 *
 * @returns The process exit code.
 */
export async function setup(): Promise<number> {
  let missing = loadable();
  // With an explicit library path, installing the package would not help.
  if (missing && !Deno.env.get(LIBRARY_ENV) && Deno.uid() === 0 && onPath("apt-get")) {
    if (await install()) missing = loadable();
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

if (import.meta.main) Deno.exit(await setup());

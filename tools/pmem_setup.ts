/**
 * Prepare hal-pmem before the tests run (the root task `setup`): make sure
 * libpmem2 can be loaded (installing it with apt-get when we are root and
 * may), then build the C trampoline into the cache. Fast (one dlopen and one
 * stat) when both are already there. The work is `setup` of
 * `@twz/hal-pmem/setup`. Then, whatever that found, bundle the built-in
 * programs (`run kv` …) into their cache (`buildPrograms` of
 * `@twz/cli/programs`; a few stats when they are current).
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
import { setup, SKIPPED_LINE } from "@twz/hal-pmem/setup";
import { buildPrograms } from "@twz/cli/programs";

export { setup, SKIPPED_LINE };

if (import.meta.main) {
  const code = await setup();
  for (const line of await buildPrograms()) console.log(`programs: ${line}`);
  Deno.exit(code);
}

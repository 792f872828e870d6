/**
 * Prepare the machine before the tests run (the root task `setup`): make sure
 * libpmem2 can be loaded (installing it with apt-get when we are root and
 * may), then build the C trampoline into the cache. Fast (one dlopen and one
 * stat) when both are already there. The work is `setup` of
 * `@twz/hal-pmem/setup`. Then make sure `nats-server` is there for the
 * cluster tests (`setupNats` of `@twz/global/cluster`: installed with apt-get
 * when missing and we are root; one `nats_setup:` line, or its SKIPPED line).
 * Then, whatever those found, bundle the built-in programs (`run kv` …) into
 * their cache (`buildPrograms` of `@twz/cli/programs`; a few stats when they
 * are current).
 *
 * Exit codes: 0 when ready, or when libpmem2 or nats-server is missing
 * outside CI (its SKIPPED line is printed and its tests skip themselves); 1
 * when either is missing under `CI=true`.
 *
 * @example
 * ```sh
 * deno run -A tools/pmem_setup.ts && deno test -A packages/hal-pmem
 * ```
 *
 * @module
 */
import { setup, SKIPPED_LINE } from "@twz/hal-pmem/setup";
import { NATS_SKIPPED_LINE, setupNats } from "@twz/global/cluster";
import { buildPrograms } from "@twz/cli/programs";

export { NATS_SKIPPED_LINE, setup, SKIPPED_LINE };

/**
 * Make sure nats-server is there (`setupNats`), print its line, and say
 * what that means for the exit code.
 *
 * @returns 0 when it is there, or missing outside CI; 1 when it is missing under `CI=true`.
 * @example
 * ```ts ignore
 * import { natsSetup } from "./pmem_setup.ts";
 * Deno.exit(await natsSetup());
 * ```
 */
export async function natsSetup(): Promise<number> {
  const { ok, line } = await setupNats();
  console.log(line);
  if (ok) return 0;
  if (Deno.env.get("CI") === "true") {
    console.error("nats_setup: CI=true: a missing nats-server is an error");
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  const code = await setup();
  const nats = await natsSetup();
  for (const line of await buildPrograms()) console.log(`programs: ${line}`);
  Deno.exit(Math.max(code, nats));
}

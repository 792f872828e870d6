/**
 * The built-in programs (`run kv …`): bundled once, at `deno task setup`,
 * into the per-user cache (`$TWZ_CACHE_DIR`, else `$XDG_CACHE_HOME/twz`,
 * else `~/.cache/twz`; under `programs/`), and installed in an image's
 * `/bin` the first time `run NAME` finds no `/bin/NAME` there. A cached
 * bundle whose source files changed since (size or modification time) is
 * bundled again; a missing one is bundled on first use.
 *
 * @example Bundle the built-ins ahead of time (what `deno task setup` does)
 * ```ts ignore
 * import { buildPrograms } from "@twz/cli/programs";
 *
 * for (const line of await buildPrograms()) console.log(line); // kv: built (…/kv.js)
 * ```
 *
 * @module
 */
export { buildPrograms, BUILTINS } from "./_build.ts";

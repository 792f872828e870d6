// What the per-HAL test files of libtwz (cursor_test.ts, records_test.ts)
// share: a test registered once per HAL, each on a fresh session, and the
// check that an error is a one-line `TwzError` naming an object.
import assert from "node:assert/strict";
import { join } from "node:path";
import { type ErrorCode, formatId, TwzError } from "@twz/kernel/abi";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { Twz } from "@twz/libtwz";

const pmem = (await import("@twz/hal-pmem")).plugin;
const described = pmem.describe();
// Without libpmem2 the hal-pmem tests are skipped, except under CI=true.
const pmemIgnore = !described.available && Deno.env.get("CI") !== "true";

/**
 * A function that registers `fn` as two tests, `NAME (hal-sim)` and
 * `NAME (hal-pmem)`, each on a fresh 16-MiB session closed at the end; the
 * hal-pmem images go in scratch folders named `prefix…` under /dev/shm.
 */
export function eachHal(
  prefix: string,
): (name: string, fn: (twz: Twz) => void | Promise<void>) => void {
  const shm = scratchDirs(prefix, "/dev/shm");
  return (name, fn) => {
    Deno.test(`${name} (hal-sim)`, async () => {
      const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
      try {
        await fn(twz);
      } finally {
        twz.close();
      }
    });
    Deno.test({
      name: `${name} (hal-pmem)${described.available ? "" : ` (skipped: ${described.reason})`}`,
      ignore: pmemIgnore,
      fn: async () => {
        const twz = await Twz.open({ hal: pmem, image: join(shm(), "twz.img"), size: 16 << 20 });
        try {
          await fn(twz);
        } finally {
          twz.close();
        }
      },
    });
  };
}

/** The error `fn` throws, which must be a `TwzError` of `code` on one line naming `id`. */
export function twzError(fn: () => unknown, code: ErrorCode, id: bigint): TwzError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TwzError, `expected a TwzError, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  assert.doesNotMatch(caught.message, /\n/);
  assert.match(caught.message, new RegExp(formatId(id)));
  return caught;
}

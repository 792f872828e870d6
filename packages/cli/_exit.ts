/**
 * What every `twz` command shares: its exit codes and the `--set K=V`
 * settings option.
 *
 * @module
 */
import { UsageError } from "./board.ts";

/** Exit codes. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  image: 3,
  crashed: 4,
  busy: 5,
  cluster: 6,
} as const;

/** The `--set K=V` values as a record (undefined when none were given). */
export function settingsFrom(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set takes KEY=VALUE, not "${kv}"`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

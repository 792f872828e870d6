/**
 * Naming crash states: a crash point (drains completed before the crash)
 * and a *variant* saying which pending units survive, as `--replay P:V`
 * prints them.
 *
 * @module
 */
import type { CrashPoint } from "@twz/hal-sim";

/**
 * A crash state that does not exist: no such crash point in the run, a
 * malformed variant, or one out of range for its point (`twz crashtest`
 * prints it as a usage mistake).
 */
export class CrashStateError extends RangeError {
  /** `"CrashStateError"`. */
  override name = "CrashStateError";
}

/**
 * The selection a variant names at a crash point:
 * - `N` (an integer): the N-th state in mixed radix; `0` loses every pending unit;
 * - `all`: every unit keeps its current contents;
 * - `xJ`: every unit keeps its current contents except unit J, which is lost;
 * - `sK`: each unit survives with `probability`, drawn from seed K (and the run's seed).
 *
 * @throws {CrashStateError} A malformed variant, or one out of range for the point.
 */
export function selectionOf(
  crash: CrashPoint,
  variant: string,
  seed: number,
  probability = 0.5,
): Uint8Array {
  if (/^\d+$/.test(variant)) {
    const n = Number(variant);
    if (n >= crash.count) {
      throw new CrashStateError(
        `variant ${variant} is out of range: the point has ${crash.count} states`,
      );
    }
    return crash.selection(n);
  }
  if (variant === "all") return crash.policySelection("all");
  const m = /^([xs])(\d+)$/.exec(variant);
  if (!m) throw new CrashStateError(`"${variant}" is not a crash variant (N, all, xJ or sK)`);
  const k = Number(m[2]);
  if (m[1] === "x") {
    if (k >= crash.units.length) {
      throw new CrashStateError(
        `variant ${variant}: the point has ${crash.units.length} pending units`,
      );
    }
    const sel = crash.policySelection("all");
    sel[k] = 0;
    return sel;
  }
  return crash.randomSelection((Math.imul(seed, 0x85ebca6b) ^ (k * 0x27d4eb2f)) >>> 0, probability);
}

/**
 * The variants to try at a point, given a budget of `take` states: all of
 * them when they fit, else strict, all, then drop-one and random in turn
 * (`randomFirst`: a random one before the first drop-one, so that even three
 * states try each policy).
 */
export function variantsFor(crash: CrashPoint, take: number, randomFirst = false): string[] {
  const count = crash.count;
  if (count <= take) return Array.from({ length: count }, (_, i) => String(i));
  const out = ["0", "all"];
  let j = 0;
  for (let k = randomFirst ? 1 : 0; out.length < take; k++) {
    if (k % 2 === 0 && j < crash.units.length) out.push(`x${j++}`);
    else out.push(`s${k}`);
  }
  return out.slice(0, take);
}

/**
 * The adversarial crash model of hal-sim: what a power failure may leave on
 * the media.
 *
 * Real persistent memory may write back any dirty cache line at any moment
 * and in any order; at a power failure whatever was not yet written back is
 * lost. At a crash every *unit* (a 64-byte line, or an aligned 8-byte word
 * when modelling torn lines) whose contents may differ from the media is
 * *pending*, and each pending unit ends up holding one of its possible
 * contents:
 *
 * - choice 0: the media as it was (the line was never written back);
 * - one choice per distinct snapshot taken by a `flush` that no `drain` has
 *   completed yet (the write-back happened, later stores did not);
 * - the current cached contents (evicted just before the power went).
 *
 * A line stored, flushed and stored again therefore has three outcomes.
 *
 * While crash recording is armed (`SimRegion.recordHistory`), a unit also
 * has one choice per distinct value its line held at an earlier *drain*
 * without being written back ({@linkcode LineHistory}): a dirty line may be
 * evicted at any moment, so a value overwritten later may be what the media
 * keeps. Stores in between are invisible to the simulator (it sees no
 * individual stores), so a value stored and overwritten between two flushes
 * or drains is never an outcome.
 *
 * A {@linkcode CrashPoint} holds the pending units of one moment and their
 * choices, and turns a *selection* (one choice per unit) into a crash image.
 * Selections are numbered in mixed radix (`variant`), so every crash state of
 * a point has a number that replays it, or drawn from a seed.
 *
 * @example Enumerate every crash state of a small point
 * ```ts
 * import { openSim } from "@twz/hal-sim";
 *
 * const hal = openSim({ size: 4096 });
 * const r = hal.region;
 * r.bytes[0] = 1;
 * r.flush(0, 1);
 * r.bytes[0] = 2; // stored again after the flush
 * r.bytes[64] = 3; // never flushed
 * const point = r.crashPoint();
 * console.log(point.units.length, point.count); // 2 6 (three outcomes x two)
 * const image = new Uint8Array(4096);
 * point.materialize(point.selection(5), image); // the last variant: all current
 * console.log(image[0], image[64]); // 2 3
 * hal.close();
 * ```
 *
 * @module
 */

/** A small seeded generator (mulberry32) so that random crashes replay. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The crash policies. `strict`: only drained data survives. `all`: every
 * pending unit keeps its current contents. `random`: each pending unit
 * survives (takes one of its written-back choices, uniformly) with a seeded
 * probability. `exhaustive`: every selection of a point when it has few
 * (see {@linkcode EXHAUSTIVE_LIMIT}), a seeded sample of them otherwise.
 */
export type CrashPolicy = "strict" | "random" | "all" | "exhaustive";

/** A point with at most this many crash states is enumerated in full by `exhaustive`. */
export const EXHAUSTIVE_LIMIT = 4096;

/**
 * The pending units of one moment and what each may hold after a crash.
 * Built by `SimRegion.crashPoint()`; immutable afterwards.
 */
export class CrashPoint {
  /**
   * A crash point from its parts (see `CrashPointBuilder`).
   *
   * @param unit Size in bytes of a unit (64: whole lines, 8: aligned words).
   * @param units Index of each pending unit (`offset = index * unit`), ascending.
   * @param choiceStart Where the choices of unit `j` start in `data`, in units.
   * @param choiceCount How many non-media choices unit `j` has (≥ 1).
   * @param drainChoice The choice a completed drain would leave (0: media unchanged).
   * @param data The contents of every non-media choice, `unit` bytes each.
   * @param currentChoice The choice equal to the unit's current contents (0:
   * they equal the media), what policy `all` keeps.
   * @param historyCount How many of unit `j`'s first choices are values its
   * line held at an earlier drain ({@linkcode LineHistory}; 0 when none).
   */
  constructor(
    readonly unit: number,
    readonly units: Int32Array,
    readonly choiceStart: Int32Array,
    readonly choiceCount: Uint8Array,
    readonly drainChoice: Uint8Array,
    readonly data: Uint8Array,
    readonly currentChoice: Uint8Array = choiceCount,
    readonly historyCount: Uint8Array = new Uint8Array(units.length),
  ) {}

  /**
   * The number of distinct crash states (selections) of this point:
   * the product over units of (1 + choices). `Infinity` when it exceeds 2^53.
   */
  get count(): number {
    let n = 1;
    for (let j = 0; j < this.choiceCount.length; j++) {
      n *= this.choiceCount[j]! + 1;
      if (n > Number.MAX_SAFE_INTEGER) return Infinity;
    }
    return n;
  }

  /** Whether some unit has more than two outcomes (stored again after a flush). */
  get hasThreeWay(): boolean {
    return this.choiceCount.some((c) => c > 1);
  }

  /** Whether some unit may keep a value its line held at an earlier drain. */
  get hasHistory(): boolean {
    return this.historyCount.some((c) => c > 0);
  }

  /**
   * The selection numbered `variant` in mixed radix (unit 0 is the least
   * significant digit). Variant 0 is `strict`; `count - 1` takes every unit's
   * last choice (for the current contents use `policySelection("all")`).
   *
   * @throws {RangeError} `variant` is not in `[0, count)`.
   */
  selection(variant: number): Uint8Array {
    if (!Number.isInteger(variant) || variant < 0 || variant >= this.count) {
      throw new RangeError(`Variant ${variant} is not in [0, ${this.count})`);
    }
    const sel = new Uint8Array(this.units.length);
    let v = variant;
    for (let j = 0; j < sel.length && v > 0; j++) {
      const radix = this.choiceCount[j]! + 1;
      sel[j] = v % radix;
      v = Math.floor(v / radix);
    }
    return sel;
  }

  /**
   * A seeded random selection: each unit survives with `probability`, taking
   * one of its written-back choices uniformly.
   */
  randomSelection(seed: number, probability = 0.5): Uint8Array {
    const random = seededRandom(seed);
    const sel = new Uint8Array(this.units.length);
    for (let j = 0; j < sel.length; j++) {
      if (random() < probability) sel[j] = 1 + Math.floor(random() * this.choiceCount[j]!);
    }
    return sel;
  }

  /** The selection a `strict` (0), `all` (current contents) or completed drain gives. */
  policySelection(policy: "strict" | "all" | "drain"): Uint8Array {
    if (policy === "strict") return new Uint8Array(this.units.length);
    if (policy === "drain") return this.drainChoice.slice();
    return this.currentChoice.slice();
  }

  /** How many units `sel` keeps (takes a choice other than the media's). */
  survivors(sel: Uint8Array): number {
    let n = 0;
    for (let j = 0; j < sel.length; j++) if (sel[j] !== 0) n++;
    return n;
  }

  /**
   * Write the crash state `sel` over `target`, which must hold the media of
   * this moment: units selecting choice 0 are left as they are.
   */
  materialize(sel: Uint8Array, target: Uint8Array): void {
    const u = this.unit;
    for (let j = 0; j < sel.length; j++) {
      const c = sel[j]!;
      if (c === 0) continue;
      const from = (this.choiceStart[j]! + c - 1) * u;
      const to = this.units[j]! * u;
      for (let k = 0; k < u; k++) target[to + k] = this.data[from + k]!;
    }
  }

  /** Describe a selection for people: which ranges were kept, and how. */
  describe(sel: Uint8Array): string {
    const parts: string[] = [];
    for (let j = 0; j < sel.length; j++) {
      const at = this.units[j]! * this.unit;
      const s = sel[j]!;
      const how = s === 0
        ? "lost"
        : s === this.currentChoice[j]
        ? "kept"
        : s <= this.historyCount[j]!
        ? `kept as it was at an earlier drain (value ${s})`
        : `kept as flushed (snapshot ${s - this.historyCount[j]!})`;
      parts.push(`[${at}, +${this.unit}) ${how}`);
    }
    return parts.length ? parts.join(", ") : "nothing pending";
  }
}

/** Growable storage used while a point is built. */
export class CrashPointBuilder {
  units: number[] = [];
  starts: number[] = [];
  counts: number[] = [];
  drains: number[] = [];
  current: number[] = [];
  history: number[] = [];
  data = new Uint8Array(4096);
  used = 0; // in units
  constructor(readonly unit: number) {}

  /** Begin a unit; returns its index. */
  begin(index: number): void {
    this.units.push(index);
    this.starts.push(this.used);
    this.counts.push(0);
    this.drains.push(0);
    this.current.push(0);
    this.history.push(0);
  }

  /**
   * Add `source[at, at + unit)` as a choice of the current unit unless an
   * equal choice exists; returns its choice number (1-based).
   */
  choice(source: Uint8Array, at: number): number {
    const u = this.unit;
    const j = this.counts.length - 1;
    const start = this.starts[j]!;
    const count = this.counts[j]!;
    for (let c = 0; c < count; c++) {
      const base = (start + c) * u;
      let same = true;
      for (let k = 0; k < u; k++) {
        if (this.data[base + k] !== source[at + k]) {
          same = false;
          break;
        }
      }
      if (same) return c + 1;
    }
    if (count === 255) return 255; // a unit's choices are counted in a byte
    if ((this.used + 1) * u > this.data.length) {
      const bigger = new Uint8Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data.set(source.subarray(at, at + u), this.used * u);
    this.used++;
    return (this.counts[j] = count + 1);
  }

  /** Finish: an immutable point. */
  build(): CrashPoint {
    return new CrashPoint(
      this.unit,
      Int32Array.from(this.units),
      Int32Array.from(this.starts),
      Uint8Array.from(this.counts),
      Uint8Array.from(this.drains),
      this.data.slice(0, this.used * this.unit),
      Uint8Array.from(this.current),
      Uint8Array.from(this.history),
    );
  }
}

/** Values kept per line by {@linkcode LineHistory} (the oldest are dropped first). */
export const HISTORY_LIMIT = 16;

/**
 * What each line held at earlier drains since it was last written back: kept
 * by a `SimRegion` only while crash recording is armed (the normal path pays
 * nothing). At every drain the region notes the contents of every line that
 * differs from the media and was not written back by that drain; a drain
 * that writes a line back forgets its history (the media holds what was
 * flushed, and older values can no longer reach it). A crash point then
 * offers each such value as an outcome of the line's units: the line may have
 * been evicted while it held it, and every later store lost.
 */
export class LineHistory {
  /** Line index → the distinct values (`line` bytes each), oldest first. */
  readonly lines: Map<number, Uint8Array[]> = new Map();

  /**
   * An empty history.
   *
   * @param line Size of a line in bytes.
   * @param limit Values kept per line, at most.
   */
  constructor(readonly line: number = 64, readonly limit: number = HISTORY_LIMIT) {}

  /** Forget everything (the region was reloaded, or its media replaced). */
  clear(): void {
    this.lines.clear();
  }

  /** Line `index` was written back: what it held before can no longer persist. */
  written(index: number): void {
    this.lines.delete(index);
  }

  /**
   * Note that line `index` holds `source[at, at + line)` (fewer bytes at the
   * end of the region), unless that value is already noted.
   */
  note(index: number, source: Uint8Array, at: number): void {
    const n = Math.min(this.line, source.length - at);
    let values = this.lines.get(index);
    if (values) {
      for (const v of values) {
        let same = true;
        for (let k = 0; k < n; k++) {
          if (v[k] !== source[at + k]) {
            same = false;
            break;
          }
        }
        if (same) return;
      }
    } else {
      values = [];
      this.lines.set(index, values);
    }
    if (values.length === this.limit) values.shift();
    const copy = new Uint8Array(this.line);
    copy.set(source.subarray(at, at + n));
    values.push(copy);
  }
}

/**
 * `twz bench ptr-chase`: walking a linked list of 1,024 nodes (a 16-byte
 * payload and a `next: ptr("self")` each, linked in a shuffled order from a
 * fixed seed), summing a payload field, laid out (a) in one object and (b)
 * over 16 objects, where every hop changes object (a cross-object pointer
 * through the FOT).
 *
 * Cases, per layout, measured in one run and interleaved (every round times
 * each case once, the order rotated by one per round; the sums must agree or
 * the run fails):
 * - `plain`: libtwz accessors, `n = n.next`. Each accessor memoizes its
 *   last follow (while the pointer's bits and the revocation epoch stay the
 *   same), so from the second walk on this is a chase over the same accessor
 *   objects with a check per hop: it does not decode the FOT again, and can
 *   beat `hand` across objects.
 * - `cursor`: one libtwz cursor moved in place, `c.$follow("next")` (skipped,
 *   with a line on stderr, when libtwz has no `Type.cursor`).
 * - `walk`: one libtwz cursor walked by libtwz's loop,
 *   `c.$walk("next", (n) => { s += n.a; })` (skipped, with a line on stderr,
 *   when libtwz has no `$walk`): the sum is a variable the callback captures.
 * - `reduce`: the same loop as a fold, `s = c.$reduce("next", (x, n) => x +
 *   n.a, s)`: the sum is carried by the callback's result (skipped when
 *   libtwz has no `$reduce`).
 * - `hand`: the same bytes decoded by hand from DataViews: two u32 loads of
 *   the pointer, the FOT index decoded, the offset, the payload load; across
 *   objects, a per-object table of targets indexed by FOT index, built once up
 *   front. The floor for an invariant-pointer chase in JavaScript.
 * - `js`: the same list as ordinary JavaScript objects.
 *
 * Rows: nanoseconds per hop (median over rounds, min and max), and the ratio
 * to `hand` of the same layout (of the medians, and the worst round's).
 * The session is the one programs get: the kernel port (`Twz.attach`),
 * checked integer stores, the revocation check.
 *
 * @example
 * ```sh
 * twz bench ptr-chase --json
 * twz bench ptr-chase --hal pmem --rounds 15
 * ```
 *
 * @module
 */
import { Kernel } from "@twz/kernel";
import { Twz, type TwzObject } from "@twz/libtwz";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { openHal, round3, type Scratch, withScratch } from "./_util.ts";
import {
  type Case,
  cursorMaker,
  jsList,
  NODES,
  OBJECTS,
  payloads,
  placement,
  timeInterleaved,
  walkCursorMany,
  walkCursorOne,
  walkHandMany,
  walkHandOne,
  walkJsMany,
  walkJsOne,
  walkPlainMany,
  walkPlainOne,
  walkReduceMany,
  walkReduceOne,
  walkWalkMany,
  walkWalkOne,
  writeList,
} from "./_chase_list.ts";

/** The seed of the list's order and payloads. */
const SEED = 16;

/**
 * Run the benchmark.
 *
 * @param opts HAL (`sim` or `pmem`), ops = walks of the list per round
 * (default 1,000; 1,024 hops each), rounds (default 9).
 * @returns One row per layout and case: `ns_per_op` (per hop, the median),
 * `min_ns`, `max_ns`, `ratio_vs_hand`, `worst_ratio_vs_hand`, `sum`.
 * @throws {Error} Two cases' sums differ (a wrong walk).
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "ptr-chase", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const walks = opts.ops ?? 1000;
  const rounds = opts.rounds ?? 9;
  if (!(Number.isInteger(walks) && walks > 0) || !(Number.isInteger(rounds) && rounds > 0)) {
    throw new RangeError("bench ptr-chase: --ops (walks) and --rounds must be positive integers");
  }
  const image = scratch.image("ptr_chase.img");
  const { hal } = await openHal(opts, image, 32 << 20);
  let kernel: Kernel | undefined;
  try {
    kernel = Kernel.boot(hal);
    const twz = Twz.attach(kernel.port());
    const values = payloads(SEED);
    const expect = walks * values.reduce((s, v) => s + v, 0);
    const size = 65536;
    const onePlace = placement(1, SEED);
    const one = writeList([twz.create({ size })], onePlace, values);
    const many = writeList(
      Array.from({ length: OBJECTS }, (): TwzObject => twz.create({ size })),
      placement(OBJECTS, SEED),
      values,
    );
    const js = jsList(values, onePlace.slot);
    const makeCursor = cursorMaker();
    if (makeCursor === undefined) {
      console.error("twz: bench ptr-chase: libtwz has no Type.cursor; the cursor case is skipped");
    }
    // Each layout's cases call functions of their own (the same code for
    // plain, cursor and js), so each loop is optimized for its layout only.
    const cases: Case[] = [
      { layout: "one object", name: "plain", walk: () => walkPlainOne(one.head, walks) },
      { layout: "16 objects", name: "plain", walk: () => walkPlainMany(many.head, walks) },
    ];
    if (makeCursor !== undefined) {
      const c1 = makeCursor(one.objects[one.headObject]!, one.headOffset);
      const c16 = makeCursor(many.objects[many.headObject]!, many.headOffset);
      cases.push(
        { layout: "one object", name: "cursor", walk: () => walkCursorOne(c1, one.head, walks) },
        {
          layout: "16 objects",
          name: "cursor",
          walk: () => walkCursorMany(c16, many.head, walks),
        },
      );
      // Cursors of their own: the walk leaves its cursor on the last node.
      const w1 = makeCursor(one.objects[one.headObject]!, one.headOffset);
      const w16 = makeCursor(many.objects[many.headObject]!, many.headOffset);
      if (typeof w1.$walk === "function") {
        cases.push(
          { layout: "one object", name: "walk", walk: () => walkWalkOne(w1, one.head, walks) },
          {
            layout: "16 objects",
            name: "walk",
            walk: () => walkWalkMany(w16, many.head, walks),
          },
        );
      } else console.error("twz: bench ptr-chase: libtwz has no $walk; the walk case is skipped");
      const r1 = makeCursor(one.objects[one.headObject]!, one.headOffset);
      const r16 = makeCursor(many.objects[many.headObject]!, many.headOffset);
      if (typeof r1.$reduce === "function") {
        cases.push(
          {
            layout: "one object",
            name: "reduce",
            walk: () => walkReduceOne(r1, one.head, walks),
          },
          {
            layout: "16 objects",
            name: "reduce",
            walk: () => walkReduceMany(r16, many.head, walks),
          },
        );
      } else {
        console.error("twz: bench ptr-chase: libtwz has no $reduce; the reduce case is skipped");
      }
    }
    const view = one.hand[0]!.view, hand16 = many.hand[many.headObject]!;
    cases.push(
      { layout: "one object", name: "hand", walk: () => walkHandOne(view, one.headOffset, walks) },
      {
        layout: "16 objects",
        name: "hand",
        walk: () => walkHandMany(hand16, many.headOffset, walks),
      },
      { layout: "one object", name: "js", walk: () => walkJsOne(js, walks) },
      { layout: "16 objects", name: "js", walk: () => walkJsMany(js, walks) },
    );
    const order = ["one object", "16 objects"].flatMap((l) =>
      ["plain", "cursor", "walk", "reduce", "hand", "js"].map((n) => `${l}, ${n}`)
    );
    cases.sort((x, y) =>
      order.indexOf(`${x.layout}, ${x.name}`) - order.indexOf(`${y.layout}, ${y.name}`)
    );
    const times = await timeInterleaved(cases, expect, rounds, () => scratch.checkpoint());
    const hops = walks * NODES;
    const results: BenchResult[] = [];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i]!, t = times[i]!;
      const h = cases.findIndex((x) => x.layout === c.layout && x.name === "hand");
      const ht = times[h]!;
      const ns = t.map((ms) => (ms * 1e6) / hops);
      const perRound = t.map((ms, r) => ms / ht[r]!);
      results.push({
        bench: "ptr-chase",
        case: `${c.layout}, ${c.name}`,
        hal: opts.hal,
        ops: hops,
        walks,
        rounds,
        ns_per_op: round3(median(ns)),
        min_ns: round3(Math.min(...ns)),
        max_ns: round3(Math.max(...ns)),
        ratio_vs_hand: round3(median(t) / median(ht)),
        worst_ratio_vs_hand: round3(Math.max(...perRound)),
        sum: expect,
      });
    }
    return results;
  } finally {
    kernel?.shutdown();
    hal.close();
  }
}

if (import.meta.main) {
  for (const r of await run({ hal: "sim" })) console.log(JSON.stringify(r));
}

// The list `twz bench ptr-chase` walks, and the walks it times. Private to
// ptr_chase.ts: the node type, the shuffled placement (fixed seed), the list
// written into twz objects and as ordinary JavaScript objects, the per-object
// FOT tables of the hand-written chase, and one walk function per case (each
// its own function, so every loop has one shape).
import type { ObjID } from "@twz/kernel";
import { ptr, struct, type TwzObject, u32 } from "@twz/libtwz";
import { sink } from "./_util.ts";

/** Nodes in the list. */
export const NODES = 1024;
/** Objects the list is spread over in the cross-object layout. */
export const OBJECTS = 16;

/** A list node: a 16-byte payload (four u32; the walks sum `a`) and the link. */
export const Node = struct({ a: u32, b: u32, c: u32, d: u32, next: ptr("self") });
/** An accessor of a node. */
export type NodeAcc = ReturnType<typeof Node.at>;

const A = Node.offsetOf("a");
const NEXT = Node.offsetOf("next");
const TWO32 = 4294967296; // the generator's scale

/**
 * A movable accessor of a node, as helper A's cursor API gives it
 * (`Node.cursor(obj, offset)`, `c.$follow("next")`, `c.$moveTo(acc)`):
 * typed here so the bench also runs (without its cursor case) before the
 * cursor exists.
 */
export interface NodeCursor {
  readonly a: number;
  $follow(field: "next"): boolean;
  $moveTo(target: NodeAcc | null): boolean;
  /** Absent before libtwz had `$walk` (the walk case is skipped then). */
  $walk?(field: "next", visit: (node: NodeCursor) => boolean | void): boolean;
  /** Absent before libtwz had `$reduce` (the reduce case is skipped then). */
  $reduce?<T>(field: "next", step: (acc: T, node: NodeCursor) => T, init: T): T;
}

/** `Node.cursor`, or undefined when libtwz has no cursors (yet). */
export function cursorMaker(): ((obj: TwzObject, offset: number) => NodeCursor) | undefined {
  const make = (Node as unknown as { cursor?: (o: TwzObject, off: number) => NodeCursor }).cursor;
  return typeof make === "function" ? make.bind(Node) : undefined;
}

/** A small seeded generator (mulberry32): the same list on every run. */
export function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / TWO32;
  };
}

/** `0..n-1` shuffled (Fisher–Yates with `rand`). */
export function shuffled(n: number, rand: () => number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Where each list position lives: `obj[k]` (object index) and `slot[k]`
 * (record index in that object). With one object, the slots are a shuffled
 * permutation. With `objects` objects, each block of `objects` positions
 * visits every object once in a shuffled order, never the same object twice
 * in a row (so every hop changes object), and each object's slots are
 * shuffled too.
 */
export function placement(objects: number, seed: number): { obj: number[]; slot: number[] } {
  const rand = random(seed);
  const per = NODES / objects;
  const obj: number[] = [];
  while (obj.length < NODES) {
    const block = shuffled(objects, rand);
    if (objects > 1 && obj.length > 0 && block[0] === obj.at(-1)) {
      [block[0], block[1]] = [block[1]!, block[0]!];
    }
    obj.push(...block);
  }
  const slots = Array.from({ length: objects }, () => shuffled(per, rand));
  const used = new Array<number>(objects).fill(0);
  const slot = obj.map((o) => slots[o]![used[o]!++]!);
  return { obj, slot };
}

/** The payload `a` of each list position (0..1023, so every sum stays a small integer). */
export function payloads(seed: number): number[] {
  const rand = random(seed ^ 0x5eed);
  return Array.from({ length: NODES }, () => Math.floor(rand() * 1024));
}

/** One object of the hand-written chase: its DataView and its FOT, as a table of targets. */
export class HandObject {
  /** The object's bytes, taken once up front. */
  readonly view: DataView;
  /** FOT index -> the target object (index 0: this object). */
  readonly fot: HandObject[] = [];
  constructor(view: DataView) {
    this.view = view;
    this.fot.push(this);
  }
}

/** The list written into twz objects, and everything the walks need. */
export interface TwzList {
  objects: TwzObject[];
  /** Accessor of the first node. */
  head: NodeAcc;
  /** Object index and offset of the first node. */
  headObject: number;
  headOffset: number;
  /** The hand chase's objects (FOT tables filled from the stored pointers). */
  hand: HandObject[];
}

/**
 * Write the list (positions placed by {@linkcode placement}, payload `a` from
 * `values`) into `objects`: records from each object's `baseOffset`, linked
 * through `next` (cross-object links make FOT entries), the last one null.
 */
export function writeList(
  objects: TwzObject[],
  place: { obj: number[]; slot: number[] },
  values: number[],
): TwzList {
  const accs: NodeAcc[] = [];
  for (let k = 0; k < NODES; k++) {
    const o = objects[place.obj[k]!]!;
    const n = Node.at(o, o.baseOffset + place.slot[k]! * Node.size);
    n.a = values[k]!;
    n.b = k;
    n.c = NODES - k;
    n.d = 0xc0ffee;
    accs.push(n);
  }
  for (let k = 0; k < NODES; k++) accs[k]!.next = k + 1 < NODES ? accs[k + 1]! : null;
  // The hand chase's tables: for each stored cross-object pointer, its FOT
  // index in the source object names the target object.
  const hand = objects.map((o) => new HandObject(o.view));
  const index = new Map<ObjID, number>(objects.map((o, i) => [o.id, i]));
  for (let k = 0; k + 1 < NODES; k++) {
    const from = place.obj[k]!, to = place.obj[k + 1]!;
    const fot = accs[k]!.$ptr("next").fot;
    if ((fot === 0) !== (from === to)) throw new Error(`node ${k}: unexpected FOT index ${fot}`);
    if (fot === 0) continue;
    const target = accs[k]!.$target("next");
    if (target === null || index.get(target.id) !== to) {
      throw new Error(`node ${k}: its pointer does not name object ${to}`);
    }
    const table = hand[from]!.fot;
    if (table[fot] !== undefined && table[fot] !== hand[to]) {
      throw new Error(`object ${from}: FOT entry ${fot} names two objects`);
    }
    while (table.length <= fot) table.push(undefined as unknown as HandObject);
    table[fot] = hand[to]!;
  }
  return {
    objects,
    head: accs[0]!,
    headObject: place.obj[0]!,
    headOffset: accs[0]!.$offset,
    hand,
  };
}

/** A node of the ordinary-JavaScript list. */
export class JsNode {
  constructor(
    public a: number,
    public b: number,
    public c: number,
    public d: number,
    public next: JsNode | null,
  ) {}
}

/**
 * The same list as ordinary JavaScript objects: allocated in the order of
 * `slot` (as the records lie in the one-object layout), then linked in list
 * order, so a walk does not run through memory in allocation order (V8's
 * garbage collector may still move them).
 */
export function jsList(values: number[], slot: number[]): JsNode {
  const bySlot: JsNode[] = [];
  for (let i = 0; i < NODES; i++) bySlot.push(new JsNode(0, 0, 0, 0, null));
  const nodes = slot.map((sl) => bySlot[sl]!);
  for (let k = 0; k < NODES; k++) {
    const n = nodes[k]!;
    n.a = values[k]!;
    n.b = k;
    n.c = NODES - k;
    n.d = 0xc0ffee;
    n.next = k + 1 < NODES ? nodes[k + 1]! : null;
  }
  return nodes[0]!;
}

/** `walks` walks through libtwz accessors: `n = n.next` (the one-object list). */
export function walkPlainOne(head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    for (let n: NodeAcc | null = head; n !== null; n = n.next) s += n.a;
  }
  return s;
}

/**
 * {@linkcode walkPlainOne} for the 16-object list: the same code, a function
 * of its own so each layout's loop is optimized for itself, as the hand
 * chase's two functions are.
 */
export function walkPlainMany(head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    for (let n: NodeAcc | null = head; n !== null; n = n.next) s += n.a;
  }
  return s;
}

/** `walks` walks with one libtwz cursor moved in place: `c.$follow("next")` (one object). */
export function walkCursorOne(c: NodeCursor, head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    c.$moveTo(head);
    do s += c.a; while (c.$follow("next"));
  }
  return s;
}

/** {@linkcode walkCursorOne} for the 16-object list (a function of its own). */
export function walkCursorMany(c: NodeCursor, head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    c.$moveTo(head);
    do s += c.a; while (c.$follow("next"));
  }
  return s;
}

/**
 * One walk with libtwz's walk loop: `c.$walk("next", (n) => { s += n.a; })`
 * from `head`, its sum. The walk and reduce cases call a function like this
 * once per walk, as a program calls its list functions: V8 compiles it with
 * the walk loop and the callback inlined once it has been called a few
 * hundred times. (Inlined into a function doing all the walks of a round in
 * one call, the loop stays in V8's middle tier for the bench's dozen calls:
 * 6.6 against 2.7 ns per hop after 40 rounds, one object.)
 */
function walkOnce(c: NodeCursor, head: NodeAcc): number {
  let s = 0;
  c.$moveTo(head);
  c.$walk!("next", (n) => {
    s += n.a;
  });
  return s;
}

/** {@linkcode walkOnce} for the 16-object list (a function of its own). */
function walkOnceMany(c: NodeCursor, head: NodeAcc): number {
  let s = 0;
  c.$moveTo(head);
  c.$walk!("next", (n) => {
    s += n.a;
  });
  return s;
}

/** One walk with libtwz's fold: `c.$reduce("next", (x, n) => x + n.a, 0)`. */
function reduceOnce(c: NodeCursor, head: NodeAcc): number {
  c.$moveTo(head);
  return c.$reduce!("next", (x: number, n) => x + n.a, 0);
}

/** {@linkcode reduceOnce} for the 16-object list (a function of its own). */
function reduceOnceMany(c: NodeCursor, head: NodeAcc): number {
  c.$moveTo(head);
  return c.$reduce!("next", (x: number, n) => x + n.a, 0);
}

/** `walks` walks with one libtwz cursor and `$walk` ({@linkcode walkOnce} each; one object). */
export function walkWalkOne(c: NodeCursor, head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) s += walkOnce(c, head);
  return s;
}

/** {@linkcode walkWalkOne} for the 16-object list (a function of its own). */
export function walkWalkMany(c: NodeCursor, head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) s += walkOnceMany(c, head);
  return s;
}

/** `walks` walks with one libtwz cursor and `$reduce` ({@linkcode reduceOnce} each; one object). */
export function walkReduceOne(c: NodeCursor, head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) s += reduceOnce(c, head);
  return s;
}

/** {@linkcode walkReduceOne} for the 16-object list (a function of its own). */
export function walkReduceMany(c: NodeCursor, head: NodeAcc, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) s += reduceOnceMany(c, head);
  return s;
}

/**
 * `walks` walks over one object's bytes decoded by hand, with raw 32-bit
 * offsets: two u32 loads of the pointer, the high word checked to be zero
 * (FOT index 0, this object, and an offset below 4 GiB; anything else is not
 * this list and fails loudly), the low word the offset of the next node.
 * Null (offset 0) ends a walk. (The high word is loaded first: V8 keeps the
 * offset a 32-bit integer that way, where a 48-bit decode
 * `(hi & 0xffff) * 2 ** 32 + lo` makes it a double and costs 4-6x.)
 */
export function walkHandOne(view: DataView, head: number, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    let p = head;
    do {
      s += view.getUint32(p + A, true);
      const hi = view.getUint32(p + NEXT + 4, true);
      if (hi !== 0) throw new Error(`hand chase: node at ${p} points out of its object (${hi})`);
      p = view.getUint32(p + NEXT, true);
    } while (p !== 0);
  }
  return s;
}

/**
 * `walks` walks across objects decoded by hand, as {@linkcode walkHandOne}:
 * the high word's upper half is the FOT index (0: this object), a nonzero
 * one moving to the target through the current object's table (built once
 * up front); its lower half (offset bits 32-47) must be zero.
 */
export function walkHandMany(head: HandObject, headOffset: number, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    let o = head, v = o.view, p = headOffset;
    do {
      s += v.getUint32(p + A, true);
      const hi = v.getUint32(p + NEXT + 4, true);
      if ((hi & 0xffff) !== 0) throw new Error(`hand chase: node at ${p}: offset past 4 GiB`);
      p = v.getUint32(p + NEXT, true);
      if (hi !== 0) {
        o = o.fot[hi >>> 16]!;
        v = o.view;
      }
    } while (p !== 0);
  }
  return s;
}

/** `walks` walks over the ordinary JavaScript list. */
export function walkJsOne(head: JsNode, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    for (let n: JsNode | null = head; n !== null; n = n.next) s += n.a;
  }
  return s;
}

/** {@linkcode walkJsOne} again, timed beside the 16-object cases (a function of its own). */
export function walkJsMany(head: JsNode, walks: number): number {
  let s = 0;
  for (let w = 0; w < walks; w++) {
    for (let n: JsNode | null = head; n !== null; n = n.next) s += n.a;
  }
  return s;
}

/** One timed case: its layout, name, and a function doing `walks` walks. */
export interface Case {
  layout: "one object" | "16 objects";
  name: "plain" | "cursor" | "walk" | "reduce" | "hand" | "js";
  walk: () => number;
}

/**
 * Time every case once per round (after three untimed warm-up rounds), the
 * order rotated by one each round; every call's sum is checked. `between`
 * runs before each round.
 *
 * @returns Per case, its time in milliseconds in each round.
 * @throws {Error} A case's sum is not `expect`.
 */
export async function timeInterleaved(
  cases: Case[],
  expect: number,
  rounds: number,
  between: () => Promise<void>,
): Promise<number[][]> {
  const once = (c: Case): number => {
    const t0 = performance.now();
    const s = c.walk();
    const ms = performance.now() - t0;
    if (s !== expect) {
      throw new Error(
        `bench ptr-chase: ${c.layout}, ${c.name}: the walk summed ${s}, expected ${expect}`,
      );
    }
    sink.value += s;
    return ms;
  };
  for (let w = 0; w < 3; w++) for (const c of cases) once(c);
  const times: number[][] = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    await between(); // (the bench lets a Ctrl-C end the run here)
    for (let j = 0; j < cases.length; j++) {
      const i = (j + r) % cases.length;
      times[i]!.push(once(cases[i]!));
    }
  }
  return times;
}

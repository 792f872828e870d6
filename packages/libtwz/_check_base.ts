/**
 * What is rooted at an object's base: a collection (B-tree map, hash map,
 * vector, queue: one checker each, found by the base's tag) over the heap
 * after the base's root words, or a heap alone; also the scan's check of a
 * collection found by its bytes. Private to libtwz; the public entry is
 * `check.ts`.
 *
 * @module
 */
import { BASE_OFFSET, ErrorCode, type Mapping, type ObjID, TwzError } from "@twz/kernel/abi";
import { Heap } from "./heap.ts";
import type { Codec } from "./codec.ts";
import { codecOfKind } from "./_codec_kind.ts";
import {
  type CheckContext,
  type CollectionChecker,
  HEAP_AT,
  HEAP_MAGIC,
  type Target,
} from "./_check_common.ts";
import { checkHeap } from "./_check_heap.ts";
import { hashMapChecker } from "./_check_hashmap.ts";
import { btreeChecker } from "./_check_btree.ts";
import { vectorChecker } from "./_check_vector.ts";
import { queueChecker } from "./_check_queue.ts";
import type { FoundStructure } from "./_check_scan.ts";

/** The collection checkers by their tag. */
export const COLLECTIONS: ReadonlyMap<number, CollectionChecker> = new Map(
  [hashMapChecker, btreeChecker, vectorChecker, queueChecker].map((c) => [c.magic, c]),
);
const kinds = COLLECTIONS;

/**
 * Check what is rooted at the base of object `id` (not a directory, the
 * kernel root object or the transaction log).
 *
 * @param ctx The run.
 * @param id The object.
 * @param m Its read mapping.
 */
export function checkBase(ctx: CheckContext, id: ObjID, m: Mapping): void {
  const { problem, checked } = ctx;
  const v = m.view;
  const size = m.bytes.length;
  if (size < HEAP_AT + 128) return;
  const obj: Target = {
    id,
    mapping: m,
    writable: false,
    baseOffset: BASE_OFFSET,
    port: ctx.port,
  };
  const magic = v.getUint32(BASE_OFFSET + 4, true);
  const header = v.getUint32(BASE_OFFSET, true);
  const kind = kinds.get(magic);
  const hasHeap = v.getUint32(HEAP_AT, true) === HEAP_MAGIC;
  if (!kind && hasHeap) {
    // Over a heap, the base's root words name no collection: a collection
    // header where word 0 points (the tag in word 1 damaged), or the two
    // words swapped (the tag in word 0, the header's offset in word 1).
    const headerAt = (at: number) =>
      at >= HEAP_AT + 128 && at + 64 <= size ? kinds.get(v.getUint32(at, true)) : undefined;
    const there = headerAt(header);
    const swapped = kinds.get(header);
    if (there) {
      problem(
        id,
        there.area,
        `the base's collection tag 0x${
          magic.toString(16)
        } is damaged: a ${there.what} header lies at ${header}`,
      );
    } else if (swapped && headerAt(magic)?.area === swapped.area) {
      problem(
        id,
        swapped.area,
        `the base's root words are damaged: word 0 holds the ${swapped.what} tag 0x${
          header.toString(16)
        } and word 1 the offset ${magic} of its header`,
      );
    }
  }
  if (kind) {
    const { area, what } = kind;
    if (header < HEAP_AT || header + 64 > size || v.getUint32(header, true) !== magic) {
      problem(id, area, `the base names a ${what} at ${header}, but its header is not there`);
      return;
    }
    if (!hasHeap) {
      problem(id, "heap", `holds a ${what} but no heap at ${HEAP_AT}`);
      return;
    }
    const heapHeader = Heap.headerProblem(obj, HEAP_AT, true);
    if (heapHeader !== undefined) {
      problem(id, "heap", `heap at ${HEAP_AT}: header damaged: ${heapHeader}`);
      return;
    }
    const damagedHeader = kind.headerProblem(obj, header);
    if (damagedHeader !== undefined) {
      problem(id, area, `${what} header at ${header} damaged: ${damagedHeader}`);
      return;
    }
    const codecs = (): [Codec<unknown>, Codec<unknown>] | null => {
      const keyed = kind.keyed;
      const k = keyed ? codecOfKind(v.getUint8(header + 4)) : codecOfKind(v.getUint8(header + 5));
      const val = codecOfKind(v.getUint8(header + 5));
      if (!k || !val) {
        problem(
          id,
          area,
          `the ${what} was made with unknown codecs (${v.getUint8(header + 4)}/${
            v.getUint8(header + 5)
          })`,
        );
        return null;
      }
      return [k, val];
    };
    try {
      const c = codecs();
      if (c) {
        checked[kind.counter]++;
        const found = kind.walk(obj, c[0], c[1]);
        if (found) problem(id, area, `${what}: ${found}`);
      }
    } catch (e) {
      // The checker reports whatever a walk meets; it never throws.
      const damagedError = e instanceof TwzError && e.code === ErrorCode.ObjectDamaged;
      problem(id, area, damagedError ? e.message : `${what}: ${(e as Error).message}`);
    }
  }
  if (hasHeap) checkHeap(ctx, id, obj);
}

const COLLECTIONS_BY_KIND = {
  hashmap: hashMapChecker,
  btree: btreeChecker,
  vector: vectorChecker,
  queue: queueChecker,
};

/** Check a collection found by its tag; fills counts and codecs. */
export function collectionProblem(
  obj: Target,
  kind: FoundStructure["kind"],
  s: FoundStructure,
): string | undefined {
  const v = obj.mapping.view;
  const size = obj.mapping.bytes.length;
  const header = v.getUint32(BASE_OFFSET, true);
  const checker = COLLECTIONS_BY_KIND[kind as CollectionChecker["area"]];
  const magic = checker.magic;
  if (v.getUint32(BASE_OFFSET + 4, true) !== magic) return "the base's collection tag is damaged";
  if (header < HEAP_AT + 128 || header + 64 > size || v.getUint32(header, true) !== magic) {
    return `no header at ${header}`;
  }
  const heap = Heap.headerProblem(obj, HEAP_AT, true);
  if (heap !== undefined) return `heap: ${heap}`;
  const k = codecOfKind(v.getUint8(header + 4)), val = codecOfKind(v.getUint8(header + 5));
  const keyed = checker.keyed;
  if (!val || (keyed && !k)) return "unknown codecs";
  s.codecs = keyed ? `${k!.name}/${val.name}` : val.name;
  try {
    const p = checker.headerProblem(obj, header);
    if (p) return p;
    return checker.walk(obj, k, val, (n) => {
      s.entries = n;
    });
  } catch (e) {
    return (e as Error).message;
  }
}

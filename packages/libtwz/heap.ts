/**
 * An in-object allocator: size classes and free lists inside the object, its
 * metadata in the object. Every allocator update is a write of the running
 * transaction, so an allocation and the store that publishes the new record
 * (into an owner field) commit together: a crash never leaks a record and
 * never publishes a half-built one.
 *
 * Layout at the heap's offset (64-byte aligned):
 *
 * ```text
 *  +0   magic "HEAP" u32, version u16, flags u16
 *  +8   top u32        next unallocated byte of the current arena
 *  +12  end u32        end of the current arena
 *  +16  live u32       bytes in live blocks
 *  +20  large u32      head of the free list of large blocks (first fit)
 *  +24  claimed u32    object bytes the heap has accounted for: its arenas
 *                      and whatever lay below its end (the FOT); bytes past
 *                      it are slack a growth left (0: the object's length)
 *  +28  grownTo u32    the object length this heap's last growth asked for
 *                      (a plain store, not a transaction write)
 *  +64  heads u32[16]  free-list heads, one per size class
 *  +128 first arena
 * ```
 *
 * A block is an 8-byte header (u32 block size, u32 state tag) and its
 * payload; a free block keeps the next free block's offset in its first
 * payload word. When the arena is used up the heap grows the object (the
 * kernel may move it; nothing in the heap holds an address) and continues in
 * the new space; a skip record at the old top (8 bytes kept free at every
 * arena's end for it) links the arenas, so the blocks can be walked. Growth
 * is not undone when the transaction aborts: the next new arena starts in the
 * space that growth left (`claimed` is a transaction write) before growing
 * again — but only while the object is still exactly as long as this heap
 * made it (`grownTo`), so space another heap or the user added is never taken.
 *
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { Heap } from "@twz/libtwz/heap";
 * import { transaction } from "@twz/libtwz/tx";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
 * const obj = twz.create({ size: 65536 });
 * const heap = transaction(twz, (tx) => Heap.create(tx, obj, obj.baseOffset + 64));
 * const rec = transaction(twz, (tx) => {
 *   const at = heap.alloc(tx, 24);
 *   tx.setU32(obj, at, 42);
 *   tx.setU32(obj, obj.baseOffset, at); // publish in the same commit
 *   return at;
 * });
 * console.log(obj.view.getUint32(rec, true)); // 42
 * twz.close();
 * ```
 *
 * @module
 */
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  META_OFFSET,
  MetaField,
  OBJECT_MAGIC,
  TwzError,
} from "@twz/kernel/abi";
import type { Tx, TxTarget } from "./_tx.ts";
import { ArgumentRangeError, damaged, stepLimit } from "./_mem.ts";

const MAGIC = 0x50414548; // "HEAP"
const HEAP_VERSION = 1;
const F = {
  magic: 0,
  top: 8,
  end: 12,
  live: 16,
  large: 20,
  claimed: 24,
  grownTo: 28,
  heads: 64,
} as const;
/** Bytes of the heap header; the first arena starts right after it. */
export const HEAP_HEADER = 128;
/** Bytes of a block header. */
export const BLOCK_HEADER = 8;
const USED = 0xa110c8ed;
const FREE = 0xf4eeb10c;
/** Tag of the record that jumps from the end of one arena to the next. */
const SKIP = 0x5c1bb10c;
/** Block sizes (header included) of the size classes. */
export const SIZE_CLASSES = [
  16,
  32,
  48,
  64,
  96,
  128,
  192,
  256,
  384,
  512,
  768,
  1024,
  1536,
  2048,
  3072,
  4096,
] as const;
const LARGEST = 4096;
/**
 * The smallest block written in place when fresh ({@linkcode Heap.alloc}):
 * below it, the drain a fresh block adds to the commit costs about what
 * logging its bytes would (measured: 48-byte blocks break even once the
 * code is optimized and lose before; 128-byte ones gain 10 %, 1 KiB ones
 * halve the insert). Zeroed blocks are logged (zeroing 4 KiB bucket
 * segments in place made `twz bench kv-insert` 5-8 % slower, unexplained).
 * A caller may write a smaller block with `Tx.write` directly: it is never
 * fresh.
 * @internal
 */
export const FRESH_MIN = 128;

const classIndex = new Uint8Array(LARGEST / 16 + 1);
{
  let c = 0;
  for (let units = 0; units <= LARGEST / 16; units++) {
    while (SIZE_CLASSES[c]! < units * 16) c++;
    classIndex[units] = c;
  }
}

/** The size class for a block of `bytes` (header included), or -1 for a large block. */
function classFor(bytes: number): number {
  return bytes > LARGEST ? -1 : classIndex[(bytes + 15) >>> 4]!;
}

/** Where a heap ends by default: where the object's FOT starts. */
function defaultEnd(obj: TxTarget & { readonly dataEnd?: number }): number {
  if (obj.dataEnd !== undefined) return obj.dataEnd;
  const v = obj.mapping.view;
  if (
    v.byteLength >= BASE_OFFSET && v.getUint32(META_OFFSET + MetaField.magic, true) === OBJECT_MAGIC
  ) {
    return v.getUint32(META_OFFSET + MetaField.fotOffset, true);
  }
  return v.byteLength;
}

/** Options of {@linkcode Heap.alloc}. */
export interface AllocOptions {
  /**
   * Zero the block. Pass `false` only when the caller writes every byte of
   * the block it reads later (the rest of the block keeps old contents).
   * @default {true}
   */
  zero?: boolean;
}

/** A heap inside an object. */
export class Heap {
  /**
   * A handle on the heap whose header is at `offset` of `obj` (see
   * {@linkcode Heap.open} for one that checks the header first).
   *
   * @param obj The object holding the heap.
   * @param offset Offset of the heap header.
   */
  constructor(readonly obj: TxTarget, readonly offset: number) {}

  /**
   * Lay out a new heap at `offset` (64-byte aligned) spanning to `end`, in
   * the running transaction. By default the heap ends where the object's FOT
   * starts: `obj.dataEnd` when the handle has it (a `TwzObject` does), else the
   * FOT offset of the object's meta-info, else the end of the object.
   *
   * @throws {RangeError} The offset is misaligned or the span too small.
   */
  static create(
    tx: Tx,
    obj: TxTarget & { readonly dataEnd?: number },
    offset: number,
    end: number = defaultEnd(obj),
  ): Heap {
    if (offset % 64 !== 0 || end - offset < HEAP_HEADER + 64) {
      throw new RangeError(`A heap needs a 64-byte aligned offset and room: [${offset}, ${end})`);
    }
    tx.fill(obj, offset, HEAP_HEADER);
    tx.setU32(obj, offset + F.magic, MAGIC);
    tx.setU16(obj, offset + 4, HEAP_VERSION);
    tx.setU32(obj, offset + F.top, offset + HEAP_HEADER);
    tx.setU32(obj, offset + F.end, (end & ~7) - 8);
    tx.setU32(obj, offset + F.claimed, Math.min(0xffffffff, obj.mapping.bytes.length));
    return new Heap(obj, offset);
  }

  /**
   * The heap at `offset` of `obj`, its header checked
   * ({@linkcode Heap.headerProblem}).
   *
   * @throws {TwzError} `InvalidArgument` when no heap is there;
   * `ObjectDamaged` when its header is damaged.
   */
  static open(obj: TxTarget, offset: number): Heap {
    const v = obj.mapping.view;
    if (
      !(offset >= 0 && offset + HEAP_HEADER <= v.byteLength) ||
      v.getUint32(offset + F.magic, true) !== MAGIC
    ) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `No heap at offset ${offset} of ${formatId(obj.id)}`,
      );
    }
    const problem = Heap.headerProblem(obj, offset);
    if (problem !== undefined) throw damaged(`The heap at ${offset}`, obj.id, problem);
    return new Heap(obj, offset);
  }

  /**
   * Check the header of the heap at `offset` (reads object memory in place,
   * constant time): magic, version, and that every offset it holds lies
   * inside the object and the heap, aligned as the heap writes it.
   *
   * @param deep Also check what only a deep check (fsck) needs: that a heap
   * that grew its object says how much of it it claimed.
   * @returns The first problem, or `undefined` when the header is sound.
   */
  static headerProblem(obj: TxTarget, offset: number, deep = false): string | undefined {
    const v = obj.mapping.view;
    const size = v.byteLength;
    if (!(Number.isInteger(offset) && offset >= 64 && offset % 64 === 0)) {
      return `heap offset ${offset} is not a 64-byte aligned offset past the null region`;
    }
    if (offset + HEAP_HEADER + 16 > size) return `the header at ${offset} lies outside the object`;
    const magic = v.getUint32(offset + F.magic, true);
    if (magic !== MAGIC) return `no heap magic (0x${magic.toString(16)})`;
    const version = v.getUint16(offset + 4, true);
    if (version !== HEAP_VERSION) return `unknown heap version ${version}`;
    const first = offset + HEAP_HEADER;
    const top = v.getUint32(offset + F.top, true);
    const end = v.getUint32(offset + F.end, true);
    if (top < first || top > size || top % 8 !== 0) {
      return `top ${top} lies outside the heap [${first}, ${size})`;
    }
    // An arena ends 8 bytes before an 8-byte boundary inside the object (room for its skip record).
    if (end < top || end + 8 > size || end % 8 !== 0) {
      return `arena end ${end} is not an 8-byte aligned offset in [top ${top}, ${size - 8}]`;
    }
    const live = v.getUint32(offset + F.live, true);
    if (live > top - first) return `live bytes ${live} exceed the ${top - first} bytes allocated`;
    // claimed: an object length the heap saw (0 in heaps made before it existed), at least
    // its arena's end and skip record; the object never shrinks.
    const claimed = v.getUint32(offset + F.claimed, true);
    if (claimed !== 0 && (claimed > size || claimed < end + 8)) {
      return `claimed ${claimed} bytes is not an object length in [${end + 8}, ${size}]`;
    }
    if (deep && claimed === 0 && v.getUint32(offset + F.grownTo, true) !== 0) {
      // Growth writes claimed (as a plain store first when it is 0), so a
      // heap that grew never has claimed 0.
      return `claimed 0 bytes, but the heap grew the object to ${
        v.getUint32(offset + F.grownTo, true)
      }`;
    }
    for (let c = -1; c < SIZE_CLASSES.length; c++) {
      const head = v.getUint32(c < 0 ? offset + F.large : offset + F.heads + c * 4, true);
      if (head !== 0 && (head < first || head + 16 > top || head % 8 !== 0)) {
        return `${
          c < 0 ? "the large free list" : `free list ${c}`
        } starts at ${head}, outside the heap`;
      }
    }
    return undefined;
  }

  /**
   * Allocate `size` bytes (zeroed, unless `options.zero` is false) in the
   * running transaction.
   *
   * @param tx The running transaction.
   * @param size Payload bytes.
   * @param options `zero: false` skips zeroing, for a caller that overwrites the block;
   * such a block of 128 bytes or more, bumped past the heap's durable top, is
   * fresh: write it with {@linkcode Tx.writeFresh} (in place, unlogged).
   * @returns The payload's offset in the object (8-byte aligned).
   * @throws {TwzError} `OutOfSpace` when the object cannot grow further.
   */
  alloc(tx: Tx, size: number, options?: AllocOptions): number {
    if (!Number.isInteger(size) || size < 0) {
      throw new ArgumentRangeError(`Cannot allocate ${size} bytes`);
    }
    const o = this.obj;
    const need = Math.max(16, (size + BLOCK_HEADER + 7) & ~7);
    const c = classFor(need);
    let block = 0;
    let blockSize = 0;
    if (c >= 0) {
      blockSize = SIZE_CLASSES[c]!;
      const head = this.offset + F.heads + c * 4;
      block = tx.getU32(o, head);
      if (block !== 0) {
        this.#needFree(tx, block, `free list ${c}`);
        tx.setU32(o, head, tx.getU32(o, block + BLOCK_HEADER));
      }
    } else {
      blockSize = (need + 63) & ~63;
      // First fit in the large free list (a list longer than the object can
      // hold blocks loops: damage, not a hang).
      let prev = this.offset + F.large;
      let steps = stepLimit(o.mapping.bytes.length, 64);
      for (let b = tx.getU32(o, prev); b !== 0; prev = b + BLOCK_HEADER, b = tx.getU32(o, prev)) {
        this.#needFree(tx, b, "the large free list");
        if (--steps < 0) {
          throw damaged(`The heap at ${this.offset}`, o.id, "the large free list loops");
        }
        if (tx.getU32(o, b) >= blockSize) {
          tx.setU32(o, prev, tx.getU32(o, b + BLOCK_HEADER));
          block = b;
          blockSize = tx.getU32(o, b);
          break;
        }
      }
    }
    // The live count first: the header's line was just written (the list
    // head or top), so the transaction finds it at once.
    tx.setU32(o, this.offset + F.live, tx.getU32(o, this.offset + F.live) + blockSize);
    if (block === 0) {
      block = this.#bump(tx, blockSize);
      // A block the caller writes whole (`zero: false`) and that is fresh:
      // its header in place, unlogged, and the caller's Tx.writeFresh too.
      if (
        options?.zero === false && blockSize >= FRESH_MIN && this.#markFresh(tx, block, blockSize)
      ) {
        tx.setU32Fresh(o, block, blockSize);
        tx.setU32Fresh(o, block + 4, USED);
        return block + BLOCK_HEADER;
      }
      tx.setU32(o, block, blockSize);
    }
    // Bumped space may hold old bytes too (the heap was laid over them).
    if (options?.zero !== false) tx.fill(o, block + BLOCK_HEADER, blockSize - BLOCK_HEADER);
    tx.setU32(o, block + 4, USED);
    return block + BLOCK_HEADER;
  }

  /**
   * Declare a bumped block fresh when it lies in the arena the heap's
   * durable header describes, at or past its durable top: nothing durable
   * refers to that space, so writes there need no log (an abort or a crash
   * leaves them past the top). Read from object memory, not through the
   * transaction: memory holds the last committed header. A heap made in
   * this transaction, or a block of an arena opened in it, stays logged.
   *
   * @returns Whether the block was declared fresh (the transaction may
   * still log it: a read-only handle, page-granular media).
   */
  #markFresh(tx: Tx, block: number, blockSize: number): boolean {
    const v = this.obj.mapping.view;
    const h = this.offset;
    if (
      v.getUint32(h + F.magic, true) !== MAGIC || block < v.getUint32(h + F.top, true) ||
      block + blockSize > v.getUint32(h + F.end, true)
    ) return false;
    tx.markFresh(this.obj, block, blockSize);
    return true;
  }

  /** A block taken from a free list must be a free block inside the heap. */
  #needFree(tx: Tx, block: number, list: string): void {
    const o = this.obj;
    if (
      block < this.offset + HEAP_HEADER || block % 8 !== 0 ||
      block + 16 > o.mapping.bytes.length || tx.getU32(o, block + 4) !== FREE
    ) {
      throw damaged(`The heap at ${this.offset}`, o.id, `${list} holds ${block}, not a free block`);
    }
  }

  #bump(tx: Tx, blockSize: number): number {
    const o = this.obj;
    let top = tx.getU32(o, this.offset + F.top);
    let end = tx.getU32(o, this.offset + F.end);
    if (top + blockSize > end) {
      // A new arena past what the heap has accounted for: in the slack an
      // aborted transaction's growth left when the block fits there, else
      // after growing the object.
      const size = o.mapping.bytes.length;
      let claimed = tx.getU32(o, this.offset + F.claimed);
      if (claimed === 0) {
        // A heap made before `claimed` existed: 0 meant the object's length.
        // Say so explicitly, durably (a plain store: the same meaning), so
        // that an aborted growth below never leaves 0 beside grownTo.
        claimed = Math.min(0xffffffff, size);
        o.mapping.view.setUint32(this.offset + F.claimed, claimed, true);
        o.mapping.persist(this.offset + F.claimed, 4);
      }
      if (claimed > size) claimed = size;
      // Read past the transaction's shadow: grownTo is not a transaction write.
      const ours = o.mapping.view.getUint32(this.offset + F.grownTo, true) === size;
      const next = ((ours ? claimed : size) + 63) & ~63;
      if (next + blockSize > (size & ~7) - 8) {
        if (!o.grow) {
          throw new TwzError(ErrorCode.OutOfSpace, `The heap in ${formatId(o.id)} is full`);
        }
        const grown = Math.min(0xffffffff, Math.max(size * 2, next + blockSize + 4096));
        if (next + blockSize > (grown & ~7) - 8) {
          throw new TwzError(ErrorCode.OutOfSpace, `The heap in ${formatId(o.id)} cannot grow`);
        }
        // Remember the growth as this heap's own before making it (durably:
        // the growth outlives an abort, and so must the mark).
        o.mapping.view.setUint32(this.offset + F.grownTo, grown, true);
        o.mapping.persist(this.offset + F.grownTo, 4);
        o.grow(grown);
      }
      tx.setU32(o, this.offset + F.claimed, Math.min(0xffffffff, o.mapping.bytes.length));
      tx.setU32(o, top, next - top); // skip record: the walk jumps to the new arena
      tx.setU32(o, top + 4, SKIP);
      top = next;
      end = (o.mapping.bytes.length & ~7) - 8;
      tx.setU32(o, this.offset + F.end, end);
    }
    tx.setU32(o, this.offset + F.top, top + blockSize);
    return top;
  }

  /**
   * Free the block whose payload is at `payload`, in the running transaction.
   *
   * @throws {TwzError} `InvalidArgument` when `payload` is not a live block.
   */
  free(tx: Tx, payload: number): void {
    const o = this.obj;
    const block = payload - BLOCK_HEADER;
    if (block < this.offset + HEAP_HEADER || tx.getU32(o, block + 4) !== USED) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Offset ${payload} of ${formatId(o.id)} is not an allocated block (double free?)`,
      );
    }
    const blockSize = tx.getU32(o, block);
    const c = classFor(blockSize);
    const head = c >= 0 && SIZE_CLASSES[c] === blockSize
      ? this.offset + F.heads + c * 4
      : this.offset + F.large;
    tx.setU32(o, block + 4, FREE);
    tx.setU32(o, block + BLOCK_HEADER, tx.getU32(o, head));
    tx.setU32(o, head, block);
    tx.setU32(o, this.offset + F.live, tx.getU32(o, this.offset + F.live) - blockSize);
  }

  /**
   * Resize an allocation: a new block, the contents copied, the old freed.
   *
   * @returns The new payload offset (the same one when it already fits).
   */
  realloc(tx: Tx, payload: number, size: number): number {
    const have = this.usable(tx, payload);
    if (size <= have && size >= have / 2) return payload;
    const next = this.alloc(tx, size);
    tx.write(this.obj, next, tx.read(this.obj, payload, Math.min(have, size)));
    this.free(tx, payload);
    return next;
  }

  /** Usable bytes of the allocation at `payload`. */
  usable(tx: Tx, payload: number): number {
    return tx.getU32(this.obj, payload - BLOCK_HEADER) - BLOCK_HEADER;
  }

  /** Bytes in live blocks (headers included). */
  get live(): number {
    return this.obj.mapping.view.getUint32(this.offset + F.live, true);
  }

  /**
   * Walk every block for checking (fsck): arenas, sizes and tags.
   *
   * @returns Counts, or a description of the first inconsistency.
   */
  check(): { blocks: number; used: number; free: number; problem?: string } {
    const v = this.obj.mapping.view;
    let blocks = 0, used = 0, free = 0;
    const header = Heap.headerProblem(this.obj, this.offset);
    if (header !== undefined) return { blocks, used, free, problem: header };
    const top = v.getUint32(this.offset + F.top, true);
    let at = this.offset + HEAP_HEADER;
    while (at < top) {
      const size = v.getUint32(at, true);
      const tag = v.getUint32(at + 4, true);
      if (tag === SKIP && size > 0 && at + size <= top) {
        at += size;
        continue;
      }
      if (
        size < 16 || size % 8 !== 0 || at + size > v.byteLength || (tag !== USED && tag !== FREE)
      ) {
        return { blocks, used, free, problem: `bad block header at ${at}` };
      }
      blocks++;
      if (tag === USED) used += size;
      else free += size;
      at += size;
    }
    const live = v.getUint32(this.offset + F.live, true);
    if (live !== used) {
      return { blocks, used, free, problem: `live bytes ${live} != ${used} in used blocks` };
    }
    return { blocks, used, free };
  }

  /**
   * Walk every free list for checking (fsck): each listed block lies inside
   * the heap, is tagged free and has its list's size class, and no list
   * loops. Compare `free` with {@linkcode Heap.check}'s `free`: a free block
   * on no list is leaked (harmless but lost), which a crash cannot cause.
   *
   * @returns Bytes and blocks on the lists, or the first inconsistency.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { Heap } from "@twz/libtwz/heap";
   * import { transaction } from "@twz/libtwz/tx";
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * const obj = twz.create({ size: 65536 });
   * const heap = transaction(twz, (tx) => Heap.create(tx, obj, obj.baseOffset + 64));
   * transaction(twz, (tx) => heap.free(tx, heap.alloc(tx, 40)));
   * console.log(heap.checkFreeLists(), heap.check().free); // { blocks: 1, free: 48 } 48
   * twz.close();
   * ```
   */
  checkFreeLists(): { blocks: number; free: number; problem?: string } {
    const header = Heap.headerProblem(this.obj, this.offset);
    if (header !== undefined) return { blocks: 0, free: 0, problem: header };
    const v = this.obj.mapping.view;
    const top = v.getUint32(this.offset + F.top, true);
    const first = this.offset + HEAP_HEADER;
    let blocks = 0, free = 0;
    const seen = new Set<number>();
    for (let c = -1; c < SIZE_CLASSES.length; c++) {
      const head = c < 0 ? this.offset + F.large : this.offset + F.heads + c * 4;
      const list = c < 0 ? "the large free list" : `free list ${c} (${SIZE_CLASSES[c]} bytes)`;
      for (let b = v.getUint32(head, true); b !== 0; b = v.getUint32(b + BLOCK_HEADER, true)) {
        if (b < first || b + 16 > top || b + 16 > v.byteLength || b % 8 !== 0) {
          return { blocks, free, problem: `${list} links to ${b}, outside the heap` };
        }
        if (seen.has(b)) return { blocks, free, problem: `${list} loops (block ${b} twice)` };
        seen.add(b);
        const size = v.getUint32(b, true);
        if (v.getUint32(b + 4, true) !== FREE) {
          return { blocks, free, problem: `${list} holds block ${b}, which is not free` };
        }
        if (c >= 0 ? size !== SIZE_CLASSES[c] : size <= LARGEST || size % 64 !== 0) {
          return { blocks, free, problem: `${list} holds block ${b} of ${size} bytes` };
        }
        blocks++;
        free += size;
      }
    }
    return { blocks, free };
  }
}

/**
 * A persistent first-in, first-out queue inside an object: a singly linked
 * list of heap blobs with its head and tail in the header. `push` links a new
 * blob after the tail, `shift` unlinks the head and frees it; both are one
 * transaction (or part of the caller's), so the queue survives any power
 * failure whole, and an element is never lost or delivered twice across a
 * crash.
 *
 * ```text
 * header (64 B): magic "QUEU", 0, value codec, 0, size u32, head u32, tail u32, heap u32
 * node:          next u32 | length u32 | value
 * ```
 *
 * @example Jobs in arrival order
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { Queue } from "@twz/libtwz/queue";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
 * const jobs = Queue.create(twz, twz.create({ size: 1 << 20 }), codec.string);
 * jobs.push("resize");
 * jobs.push("upload");
 * console.log(jobs.shift(), jobs.peek(), jobs.size); // resize upload 1
 * twz.close();
 * ```
 *
 * @module
 */
import { activeTx, transaction, type TxLogHost, type TxTarget } from "./_tx.ts";
import { Heap } from "./heap.ts";
import type { Codec } from "./codec.ts";
import {
  asDamage,
  type CollectionObject,
  createRoot,
  damaged,
  guard,
  Mem,
  openRoot,
  rootHeapOffset,
  Scratch,
  stepLimit,
} from "./_mem.ts";

const MAGIC = 0x55455551; // "QUEU"
const H = { magic: 0, valKind: 5, size: 8, head: 12, tail: 16, heap: 20 } as const;
const HEADER = 64;
const Q = { next: 0, length: 4, value: 8 } as const;
/** The class name, for damage messages. */
const NAME = "Queue";
/** The smallest heap block a node takes: a list longer than the object holds such blocks loops. */
const MIN_NODE = 16;

/**
 * A persistent FIFO queue of `T`.
 *
 * @example Integers through a queue, in order
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { Queue } from "@twz/libtwz/queue";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 16 << 20 });
 * const q = Queue.create(twz, twz.create({ size: 1 << 20 }), codec.int);
 * for (const n of [3, 1, 2]) q.push(n);
 * console.log([...q], q.shift(), q.size); // [ 3, 1, 2 ] 3 2
 * twz.close();
 * ```
 */
export class Queue<T> {
  #scratch = new Scratch();

  private constructor(
    readonly host: TxLogHost,
    readonly obj: TxTarget,
    /** Offset of the queue header in the object. */
    readonly offset: number,
    readonly valueCodec: Codec<T>,
  ) {}

  /**
   * Create an empty queue in `obj`: a heap after the object's base, the
   * header in the heap, named from the base. One transaction (or part of the
   * running one).
   *
   * @param host The session (its transaction log).
   * @param obj A fresh, writable object.
   * @param values The element codec (recorded and checked by `open`).
   * @returns The queue.
   * @throws {TwzError} `InvalidArgument` when `obj` already holds a collection.
   */
  static create<T>(host: TxLogHost, obj: CollectionObject, values: Codec<T>): Queue<T> {
    const offset = transaction(host, (tx) => {
      const { heap, header } = createRoot(tx, obj, MAGIC, HEADER);
      tx.setU8(obj, header + H.valKind, values.kind);
      tx.setU32(obj, header + H.heap, heap.offset);
      return header;
    });
    return new Queue(host, obj, offset, values);
  }

  /**
   * Open the queue created in `obj` by {@linkcode Queue.create}.
   *
   * @param host The session.
   * @param obj The object holding the queue.
   * @param values The element codec it was created with.
   * @returns The queue.
   * @throws {TwzError} `InvalidArgument` when `obj` holds no queue (or another
   * collection), or it was made with another codec.
   */
  static open<T>(host: TxLogHost, obj: CollectionObject, values: Codec<T>): Queue<T> {
    const header = openRoot(
      obj,
      MAGIC,
      NAME,
      "queue",
      HEADER,
      null,
      values,
      (h) => Queue.headerProblem(obj, h),
    );
    return new Queue(host, obj, header, values);
  }

  /**
   * Check a queue header in place (constant time): head and tail nodes
   * inside the heap (both or neither), the heap's offset and the size.
   * `open` refuses a queue that fails it.
   *
   * @param obj The object holding the queue.
   * @param header The header's offset.
   * @returns The first problem, or `undefined`.
   */
  static headerProblem(obj: CollectionObject, header: number): string | undefined {
    const v = obj.mapping.view;
    const size = v.byteLength;
    if (header + HEADER > size) return `header at ${header} lies outside the object`;
    const heap = v.getUint32(header + H.heap, true);
    const heapAt = rootHeapOffset(obj);
    if (heap !== heapAt) return `header names its heap at ${heap}, not ${heapAt}`;
    const n = v.getUint32(header + H.size, true);
    const head = v.getUint32(header + H.head, true);
    const tail = v.getUint32(header + H.tail, true);
    if (n > size / MIN_NODE) return `size ${n} is impossible in ${size} bytes`;
    for (const [what, at] of [["head", head], ["tail", tail]] as const) {
      if (at !== 0 && (at < heapAt + 136 || at % 8 !== 0 || at + Q.value > size)) {
        return `${what} node at ${at} lies outside the heap`;
      }
    }
    if ((head === 0) !== (n === 0) || (tail === 0) !== (n === 0)) {
      return `size ${n} does not match head ${head} and tail ${tail}`;
    }
    return undefined;
  }

  /** The damage error for this queue. */
  #bad(detail: string): Error {
    return damaged(NAME, this.obj.id, detail);
  }

  /** The heap holding the queue (for checking). */
  get heap(): Heap {
    return new Heap(this.obj, this.obj.mapping.view.getUint32(this.offset + H.heap, true));
  }

  /** Number of elements. */
  get size(): number {
    return guard(NAME, this.obj, () => new Mem(this.obj, activeTx()).u32(this.offset + H.size));
  }

  #decode(m: Mem, node: number): T {
    const len = m.u32(node + Q.length);
    if (node < 64 || node + Q.value + len > this.obj.mapping.bytes.length) {
      throw this.#bad(`node at ${node} (${len} bytes) lies outside the object`);
    }
    return this.valueCodec.decode(m.bytes(node + Q.value, len), m.start(node + Q.value), len);
  }

  /**
   * Append `value` at the tail (one transaction, or part of the running one).
   *
   * @param value The element.
   * @returns The new size.
   * @throws {TwzError} `InvalidArgument` when the codec refuses the value;
   * `OutOfSpace` when the object cannot grow.
   */
  push(value: T): number {
    return guard(NAME, this.obj, () => this.#push(value));
  }

  #push(value: T): number {
    return transaction(this.host, (tx) => {
      const o = this.obj;
      const h = this.offset;
      const len = this.valueCodec.encode(
        value,
        this.#scratch.reserve(this.valueCodec.size(value)),
        0,
      );
      const node = this.heap.alloc(tx, Q.value + len);
      tx.setU32(o, node + Q.length, len);
      tx.write(o, node + Q.value, this.#scratch.bytes.subarray(0, len));
      const tail = tx.getU32(o, h + H.tail);
      tx.setU32(o, tail === 0 ? h + H.head : tail + Q.next, node);
      tx.setU32(o, h + H.tail, node);
      const size = tx.getU32(o, h + H.size) + 1;
      tx.setU32(o, h + H.size, size);
      return size;
    });
  }

  /**
   * Remove the head element and free it (one transaction, or part of the
   * running one).
   *
   * @returns The element, or `undefined` when the queue is empty.
   */
  shift(): T | undefined {
    return guard(NAME, this.obj, () => this.#shift());
  }

  #shift(): T | undefined {
    return transaction(this.host, (tx) => {
      const o = this.obj;
      const h = this.offset;
      const head = tx.getU32(o, h + H.head);
      if (head === 0) return undefined;
      const value = this.#decode(new Mem(o, tx), head);
      const next = tx.getU32(o, head + Q.next);
      tx.setU32(o, h + H.head, next);
      if (next === 0) tx.setU32(o, h + H.tail, 0);
      tx.setU32(o, h + H.size, tx.getU32(o, h + H.size) - 1);
      this.heap.free(tx, head);
      return value;
    });
  }

  /**
   * The head element, left in the queue.
   *
   * @returns The element, or `undefined` when the queue is empty.
   */
  peek(): T | undefined {
    return guard(NAME, this.obj, () => {
      const m = new Mem(this.obj, activeTx());
      const head = m.u32(this.offset + H.head);
      return head === 0 ? undefined : this.#decode(m, head);
    });
  }

  /**
   * Check the queue (an fsck of it): the list from the head lies inside the
   * object, does not loop, ends at the tail, and holds `size` nodes. Reads
   * object memory in place.
   *
   * @returns Nodes seen; `problem` names the first inconsistency.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { codec } from "@twz/libtwz/codec";
   * import { Queue } from "@twz/libtwz/queue";
   * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
   * const q = Queue.create(twz, twz.create({ size: 1 << 20 }), codec.int);
   * q.push(1);
   * console.log(q.check()); // { nodes: 1 }
   * twz.close();
   * ```
   */
  check(): { nodes: number; problem?: string } {
    const header = Queue.headerProblem(this.obj as CollectionObject, this.offset);
    if (header !== undefined) return { nodes: 0, problem: header };
    const v = this.obj.mapping.view;
    const size = v.byteLength;
    const want = v.getUint32(this.offset + H.size, true);
    const tail = v.getUint32(this.offset + H.tail, true);
    let nodes = 0;
    let last = 0;
    for (let node = v.getUint32(this.offset + H.head, true); node !== 0;) {
      if (node + Q.value > size || node + Q.value + v.getUint32(node + Q.length, true) > size) {
        return { nodes, problem: `node ${node} lies outside the object` };
      }
      if (++nodes > want) return { nodes, problem: `more than size ${want} nodes (a loop?)` };
      last = node;
      node = v.getUint32(node + Q.next, true);
    }
    if (nodes !== want) return { nodes, problem: `size ${want} != ${nodes} nodes` };
    if (last !== tail) return { nodes, problem: `tail ${tail} is not the last node ${last}` };
    return { nodes };
  }

  /**
   * Every element, head to tail. Reads go through the running transaction,
   * if any; don't change the queue while iterating.
   *
   * @returns A generator of elements.
   */
  *values(): Generator<T> {
    let steps = stepLimit(this.obj.mapping.bytes.length, MIN_NODE);
    let node: number;
    try {
      node = new Mem(this.obj, activeTx()).u32(this.offset + H.head);
    } catch (error) {
      throw asDamage(NAME, this.obj, error);
    }
    while (node !== 0) {
      let value: T;
      try {
        if (--steps < 0) throw this.#bad("the list of nodes loops");
        value = this.#decode(new Mem(this.obj, activeTx()), node);
      } catch (error) {
        throw asDamage(NAME, this.obj, error);
      }
      yield value;
      node = guard(NAME, this.obj, () => new Mem(this.obj, activeTx()).u32(node + Q.next));
    }
  }

  /**
   * Every element, head to tail.
   *
   * @returns A generator of elements.
   */
  [Symbol.iterator](): Generator<T> {
    return this.values();
  }
}

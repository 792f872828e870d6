/**
 * A persistent message queue between programs: many producers and many
 * consumers (threads sharing one object) exchange messages through a ring of
 * fixed-size slots inside the object. {@linkcode MessageQueue.send} waits
 * while the queue is full, {@linkcode MessageQueue.receive} while it is
 * empty (both with a timeout), on a libtwz `Mutex` and two `Condition`s kept
 * in the object's header; every change is a transaction.
 *
 * **Durability.** A `send` that returned is durable: the message survives a
 * crash. A `receive` that returned removed its message durably: it is never
 * delivered again. Messages leave in the order they were sent (one FIFO for
 * all producers; two sends of one thread keep their order).
 *
 * **Exactly once across crashes.** A consumer that records what it did with
 * a message must record it in the same transaction as the `receive`, else a
 * crash between the two loses the message (received, not recorded) or
 * repeats it. `send` and `receive` join the caller's `transaction(...)`: the
 * queue's lock is then held until that transaction has committed (or
 * aborted; then the message stays queued) — released by a `Tx.onEnd` hook —
 * so no other thread sees the queue between the removal and the commit. A
 * producer records "sent n" with its `send` the same way.
 *
 * ```ts ignore
 * transaction(twz, (tx) => {
 *   const m = jobs.receive(); // waits for a message
 *   tx.setU32(done, done.baseOffset, tx.getU32(done, done.baseOffset) + 1);
 * }); // the message is gone and counted, or neither (a crash, an exception)
 * ```
 *
 * Inside one transaction the lock is taken once: a second `receive` (or
 * `send`) of the same transaction on the same queue cannot wait (nobody else
 * can change the queue while the transaction holds it) and returns
 * `undefined` (`false`) at once when the queue is empty (full). Locks of two
 * queues taken in one transaction are taken in program order: programs that
 * use several queues in one transaction must agree on an order.
 *
 * **The kernel's own session** (a script that booted the image with
 * `Twz.open`, the shell) cannot sleep: there `receive(0)` and `send(m, 0)`
 * poll, a wait with another timeout on an empty (full) queue throws
 * `TwzError` `NotSupported`, and a queue whose lock a program's thread holds
 * at that moment throws `Busy` (try again later). Client sessions of a
 * running system (`Twz.open` on an image `twz boot` holds) work on copies of
 * object memory and cannot use a message queue.
 *
 * ```text
 * base + 0:   header offset u32 | magic "MSGQ" u32            (the root words)
 * header + 0 (64 B, written once): magic "MSGQ" u32, version u8 (1), codec kind u8,
 *             0 u16, capacity u32, maxBytes u32, stride u32, ring u32
 * header + 64 (64 B, never logged): Mutex (8 B), Condition notEmpty (8 B),
 *             Condition notFull (8 B)
 * header + 128 (64 B, transactional): head u32, count u32, sent f64, received f64
 * ring = header + 192: capacity slots of stride = align8(4 + maxBytes) bytes,
 *             each length u32 | message bytes
 * ```
 *
 * @example Two messages through a queue
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { codec } from "@twz/libtwz/codec";
 * import { MessageQueue } from "@twz/libtwz/mqueue";
 *
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const obj = twz.create({ name: "/jobs", size: 64 << 10 });
 * const jobs = MessageQueue.create(twz, obj, codec.string, { capacity: 16, maxBytes: 64 });
 * jobs.send("resize");
 * jobs.send("upload");
 * console.log(jobs.receive(0), jobs.size); // resize 1
 * twz.close();
 * ```
 *
 * @module
 */
import { ErrorCode, formatId, type Mapping, TwzError } from "@twz/kernel/abi";
import { activeTx, transaction, type Tx, type TxLogHost, type TxTarget } from "./_tx.ts";
import type { Codec } from "./codec.ts";
import { codecOfKind } from "./_codec_kind.ts";
import { Condition, Mutex, type SyncTarget } from "./sync.ts";
import { damaged, guard, Scratch } from "./_mem.ts";

const MAGIC = 0x5147534d; // "MSGQ"
const VERSION = 1;
/** The header's three lines: constant, synchronization words, state. */
const C = { magic: 0, version: 4, codec: 5, capacity: 8, maxBytes: 12, stride: 16, ring: 20 };
const SYNC = 64;
const Y = { mutex: 0, notEmpty: 8, notFull: 16 };
const STATE = 128;
const S = { head: 0, count: 4, sent: 8, received: 16 };
const HEADER = 192;
/** The largest message a slot may hold (a transaction carries one slot per send). */
const MAX_BYTES = 1 << 20;
const NAME = "MessageQueue";

/**
 * What a queue lives in: an object a transaction writes and a lock lives in,
 * with a base and an end of data (`TwzObject` is one).
 */
export type MessageQueueObject = TxTarget & SyncTarget & {
  /** Where user data starts. */
  readonly baseOffset: number;
  /** Where user data ends (the FOT starts); the object's size when absent. */
  readonly dataEnd?: number;
};

/** Sizes of a new queue. */
export interface MessageQueueOptions {
  /** Slots: the most messages queued at once (a `send` waits beyond). @default {256} */
  capacity?: number | undefined;
  /** The largest encoded message, in bytes. @default {256} */
  maxBytes?: number | undefined;
}

/** The queues a transaction of this thread holds, by the object's extent. */
interface Held {
  tx: Tx;
  sent: number;
  received: number;
}
const held = new WeakMap<object, Held>();

/** Where the header goes: the first 64-byte line after the base's root words. */
function headerAt(obj: { baseOffset: number }): number {
  return (obj.baseOffset + 8 + 63) & ~63;
}

function strideOf(maxBytes: number): number {
  return (4 + maxBytes + 7) & ~7;
}

/**
 * A persistent multi-producer, multi-consumer queue of `T` (see the module
 * documentation for semantics and layout).
 */
export class MessageQueue<T> {
  /** The lock and the two conditions, made on first use (a read-only handle can still be read). */
  #sync: { mutex: Mutex; notEmpty: Condition; notFull: Condition; canSleep: boolean } | null = null;
  readonly #scratch = new Scratch();
  /** Slots. */
  readonly capacity: number;
  /** The largest encoded message. */
  readonly maxBytes: number;
  readonly #stride: number;
  readonly #ring: number;
  readonly #state: number;

  private constructor(
    readonly host: TxLogHost,
    readonly obj: MessageQueueObject,
    /** Offset of the header in the object. */
    readonly offset: number,
    readonly codec: Codec<T>,
  ) {
    const v = obj.mapping.view;
    this.capacity = v.getUint32(offset + C.capacity, true);
    this.maxBytes = v.getUint32(offset + C.maxBytes, true);
    this.#stride = v.getUint32(offset + C.stride, true);
    this.#ring = v.getUint32(offset + C.ring, true);
    this.#state = offset + STATE;
  }

  #syncWords(): { mutex: Mutex; notEmpty: Condition; notFull: Condition; canSleep: boolean } {
    if (this.#sync === null) {
      const o = this.obj, at = this.offset + SYNC;
      const mutex = new Mutex(o, at + Y.mutex);
      this.#sync = {
        mutex,
        notEmpty: new Condition(o, at + Y.notEmpty),
        notFull: new Condition(o, at + Y.notFull),
        canSleep: o.port.threadSelf() !== null,
      };
    }
    return this.#sync;
  }

  /**
   * Bytes from an object's base a queue of these sizes takes; the object
   * needs that much before its end of data (`dataEnd`: a new object's FOT
   * takes some of its size, so make it a few KiB larger).
   *
   * @param options Capacity and largest message.
   * @returns The bytes.
   */
  static bytesNeeded(options: MessageQueueOptions = {}): number {
    const { capacity, maxBytes } = sizes(options);
    return headerAt({ baseOffset: 0 }) + HEADER + capacity * strideOf(maxBytes);
  }

  /**
   * Make an empty queue in `obj` (one transaction, or part of the running
   * one).
   *
   * @param host The session (its transaction log).
   * @param obj A fresh, writable object, large enough (see
   * {@linkcode MessageQueue.bytesNeeded}).
   * @param codec How messages are encoded (recorded; `open` checks it):
   * `codec.bytes` for byte strings.
   * @param options Capacity and largest message.
   * @returns The queue.
   * @throws {TwzError} `InvalidArgument` when the sizes are out of range or
   * do not fit the object, or the object already holds something at its base.
   */
  static create<T>(
    host: TxLogHost,
    obj: MessageQueueObject,
    codec: Codec<T>,
    options: MessageQueueOptions = {},
  ): MessageQueue<T> {
    const { capacity, maxBytes } = sizes(options);
    const h = headerAt(obj);
    const stride = strideOf(maxBytes);
    const end = h + HEADER + capacity * stride;
    const room = obj.dataEnd ?? obj.mapping.bytes.length;
    if (end > room) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `A message queue of ${capacity} × ${maxBytes} bytes needs ${end} bytes of ${
          formatId(obj.id)
        }, which has ${room} before its end of data`,
      );
    }
    transaction(host, (tx) => {
      const b = obj.baseOffset;
      if (tx.getU32(obj, b) !== 0 || tx.getU32(obj, b + 4) !== 0) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `${formatId(obj.id)} already holds something at its base (0x${
            tx.getU32(obj, b + 4).toString(16)
          }): a message queue needs a fresh object`,
        );
      }
      tx.setU32(obj, h + C.magic, MAGIC);
      tx.setU8(obj, h + C.version, VERSION);
      tx.setU8(obj, h + C.codec, codec.kind);
      tx.setU32(obj, h + C.capacity, capacity);
      tx.setU32(obj, h + C.maxBytes, maxBytes);
      tx.setU32(obj, h + C.stride, stride);
      tx.setU32(obj, h + C.ring, h + HEADER);
      tx.fill(obj, h + STATE, 64);
      tx.setU32(obj, b, h);
      tx.setU32(obj, b + 4, MAGIC);
    });
    return new MessageQueue(host, obj, h, codec);
  }

  /**
   * Open the queue made in `obj` by {@linkcode MessageQueue.create}.
   *
   * @param host The session.
   * @param obj The object holding the queue (mapped writable to send or receive).
   * @param codec The codec it was made with.
   * @returns The queue.
   * @throws {TwzError} `InvalidArgument` when `obj` holds no message queue or
   * it was made with another codec; `ObjectDamaged` when its header is damaged.
   */
  static open<T>(host: TxLogHost, obj: MessageQueueObject, codec: Codec<T>): MessageQueue<T> {
    const v = obj.mapping.view;
    const b = obj.baseOffset;
    if (v.byteLength < b + 8 || v.getUint32(b + 4, true) !== MAGIC) {
      throw new TwzError(ErrorCode.InvalidArgument, `${formatId(obj.id)} holds no message queue`);
    }
    const h = v.getUint32(b, true);
    if (h !== headerAt(obj)) {
      throw damaged(NAME, obj.id, `the base names a header at ${h}, not ${headerAt(obj)}`);
    }
    const problem = MessageQueue.headerProblem(obj, h);
    if (problem !== undefined) throw damaged(NAME, obj.id, problem);
    const kind = v.getUint8(h + C.codec);
    if (kind !== codec.kind) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `The message queue in ${formatId(obj.id)} was made with codec ${
          codecOfKind(kind)?.name
        }, not ${codec.name}`,
      );
    }
    return new MessageQueue(host, obj, h, codec);
  }

  /**
   * Check a queue header in place (constant time): magic, version, codec,
   * sizes, the ring inside the object, head and count inside the ring.
   * `open` refuses a queue that fails it.
   *
   * @param obj The object.
   * @param header The header's offset.
   * @returns The first problem, or `undefined`.
   */
  static headerProblem(obj: { readonly mapping: Mapping }, header: number): string | undefined {
    const v = obj.mapping.view;
    const size = v.byteLength;
    if (header + HEADER > size) return `header at ${header} lies outside the object`;
    const u32 = (at: number) => v.getUint32(header + at, true);
    if (u32(C.magic) !== MAGIC) return `no header magic at ${header} (0x${u32(0).toString(16)})`;
    const version = v.getUint8(header + C.version);
    if (version !== VERSION) return `header version ${version} is not ${VERSION}`;
    const kind = v.getUint8(header + C.codec);
    if (codecOfKind(kind) === undefined) return `header names unknown codec ${kind}`;
    const capacity = u32(C.capacity), maxBytes = u32(C.maxBytes);
    if (capacity < 1) return `capacity ${capacity} is impossible`;
    if (maxBytes < 1 || maxBytes > MAX_BYTES) return `message size ${maxBytes} is impossible`;
    if (u32(C.stride) !== strideOf(maxBytes)) {
      return `slot stride ${u32(C.stride)} does not match message size ${maxBytes}`;
    }
    if (u32(C.ring) !== header + HEADER) return `ring at ${u32(C.ring)}, not ${header + HEADER}`;
    const end = header + HEADER + capacity * strideOf(maxBytes);
    if (end > size) return `${capacity} slots end at ${end}, past the object (${size} bytes)`;
    const head = u32(STATE + S.head), count = u32(STATE + S.count);
    if (head >= capacity) return `head slot ${head} is outside the ${capacity} slots`;
    if (count > capacity) return `count ${count} exceeds the capacity ${capacity}`;
    return undefined;
  }

  /** Messages queued now (a snapshot; through the running transaction, if any). */
  get size(): number {
    const tx = activeTx();
    const at = this.#state + S.count;
    return tx ? tx.getU32(this.obj, at) : this.obj.mapping.view.getUint32(at, true);
  }

  /** Messages ever sent and received through this queue (a snapshot). */
  get totals(): { sent: number; received: number } {
    const v = this.obj.mapping.view;
    return {
      sent: v.getFloat64(this.#state + S.sent, true),
      received: v.getFloat64(this.#state + S.received, true),
    };
  }

  /**
   * Append a message, waiting while the queue is full (one transaction, or
   * part of the running one: then the queue stays locked until it ends).
   *
   * @param value The message.
   * @param timeoutMs Longest wait for room (0: do not wait for room; a
   * thread may still wait briefly for the lock). @default {Infinity}
   * @returns `true` once queued (durable when the transaction returned);
   * `false` when the queue stayed full.
   * @throws {TwzError} `InvalidArgument` when the encoded message exceeds
   * `maxBytes`; `NotSupported`, `Busy` in the kernel's own session (module
   * docs); `Killed` when the thread is killed while it waits.
   */
  send(value: T, timeoutMs: number = Infinity): boolean {
    const c = this.codec;
    const len = c.encode(value, this.#scratch.reserve(c.size(value)), 0);
    if (len > this.maxBytes) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `A ${len}-byte message does not fit the message queue in ${
          formatId(this.obj.id)
        } (at most ${this.maxBytes} bytes)`,
      );
    }
    return guard(NAME, this.obj, () =>
      transaction(this.host, (tx) => {
        const h = this.#acquire(tx, timeoutMs, true);
        if (h === null) return false;
        const o = this.obj, s = this.#state;
        const count = tx.getU32(o, s + S.count);
        if (count >= this.capacity) return false; // held by this transaction: cannot wait
        const head = tx.getU32(o, s + S.head);
        let slot = head + count;
        if (slot >= this.capacity) slot -= this.capacity;
        const at = this.#ring + slot * this.#stride;
        tx.setU32(o, at, len);
        tx.write(o, at + 4, this.#scratch.bytes, len);
        tx.setU32(o, s + S.count, count + 1);
        tx.setF64(o, s + S.sent, tx.getF64(o, s + S.sent) + 1);
        h.sent++;
        return true;
      }));
  }

  /**
   * Remove the oldest message, waiting while the queue is empty (one
   * transaction, or part of the running one: then the queue stays locked
   * until it ends, and an abort leaves the message queued).
   *
   * @param timeoutMs Longest wait for a message (0: do not wait for one; a
   * thread may still wait briefly for the lock). @default {Infinity}
   * @returns The message, or `undefined` when none came in time.
   * @throws {TwzError} `NotSupported`, `Busy` in the kernel's own session
   * (module docs); `Killed` when the thread is killed while it waits;
   * `ObjectDamaged` when the slot is damaged.
   */
  receive(timeoutMs: number = Infinity): T | undefined {
    return guard(NAME, this.obj, () =>
      transaction(this.host, (tx) => {
        const h = this.#acquire(tx, timeoutMs, false);
        if (h === null) return undefined;
        const o = this.obj, s = this.#state;
        const count = tx.getU32(o, s + S.count);
        if (count === 0) return undefined; // held by this transaction: cannot wait
        const head = tx.getU32(o, s + S.head);
        const value = this.#decode(tx, head);
        tx.setU32(o, s + S.head, head + 1 === this.capacity ? 0 : head + 1);
        tx.setU32(o, s + S.count, count - 1);
        tx.setF64(o, s + S.received, tx.getF64(o, s + S.received) + 1);
        h.received++;
        return value;
      }));
  }

  #decode(tx: Tx | null, slot: number): T {
    const at = this.#ring + slot * this.#stride;
    const o = this.obj;
    const len = tx ? tx.getU32(o, at) : o.mapping.view.getUint32(at, true);
    if (len > this.maxBytes) {
      throw damaged(NAME, o.id, `slot ${slot} holds ${len} bytes, more than ${this.maxBytes}`);
    }
    if (tx) return this.codec.decode(tx.read(o, at + 4, len), 0, len);
    return this.codec.decode(o.mapping.bytes, at + 4, len);
  }

  /**
   * Every queued message, oldest first, read in place without the lock: a
   * snapshot for inspection (after a crash, say), not for consuming.
   *
   * @returns The messages.
   */
  snapshot(): T[] {
    return guard(NAME, this.obj, () => {
      const v = this.obj.mapping.view;
      const problem = MessageQueue.headerProblem(this.obj, this.offset);
      if (problem !== undefined) throw damaged(NAME, this.obj.id, problem);
      const out: T[] = [];
      let slot = v.getUint32(this.#state + S.head, true);
      for (let n = v.getUint32(this.#state + S.count, true); n > 0; n--) {
        out.push(this.#decode(null, slot));
        if (++slot === this.capacity) slot = 0;
      }
      return out;
    });
  }

  /**
   * Check the queue (an fsck of it), reading object memory in place without
   * the lock: the header, and every queued slot's length within `maxBytes`.
   *
   * @returns Messages queued; `problem` names the first inconsistency.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { codec } from "@twz/libtwz/codec";
   * import { MessageQueue } from "@twz/libtwz/mqueue";
   * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
   * const q = MessageQueue.create(twz, twz.create({ size: 64 << 10 }), codec.int, { capacity: 8 });
   * q.send(1);
   * console.log(q.check()); // { messages: 1 }
   * twz.close();
   * ```
   */
  check(): { messages: number; problem?: string } {
    const problem = MessageQueue.headerProblem(this.obj, this.offset);
    if (problem !== undefined) return { messages: 0, problem };
    const v = this.obj.mapping.view;
    const count = v.getUint32(this.#state + S.count, true);
    let slot = v.getUint32(this.#state + S.head, true);
    for (let n = 0; n < count; n++) {
      const len = v.getUint32(this.#ring + slot * this.#stride, true);
      if (len > this.maxBytes) {
        return {
          messages: n,
          problem: `slot ${slot} holds ${len} bytes, more than ${this.maxBytes}`,
        };
      }
      if (++slot === this.capacity) slot = 0;
    }
    return { messages: count };
  }

  /**
   * Take the queue's lock for transaction `tx` and wait until there is a
   * message (`room` false) or room for one (`room` true); the lock is then
   * held until `tx` ends. A transaction that holds it already gets it back
   * at once (its caller checks the state: it cannot wait).
   *
   * @returns The transaction's hold, or `null` when the wait timed out.
   */
  #acquire(tx: Tx, timeoutMs: number, room: boolean): Held | null {
    const key = this.obj.mapping.extent;
    const mine = held.get(key);
    if (mine !== undefined && mine.tx === tx) return mine;
    const { mutex: m, notEmpty, notFull, canSleep } = this.#syncWords();
    const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
    if (!canSleep) {
      if (!m.tryLock()) {
        throw new TwzError(
          ErrorCode.Busy,
          `The message queue in ${
            formatId(this.obj.id)
          } is locked by a program's thread, and the kernel's own session cannot wait for it: try again later`,
        );
      }
    } else if (timeoutMs === Infinity || timeoutMs <= 0) {
      m.lock();
    } else if (!m.tryLock(timeoutMs)) {
      return null;
    }
    let ok = false;
    try {
      const o = this.obj, s = this.#state;
      const cond = room ? notFull : notEmpty;
      for (;;) {
        const count = tx.getU32(o, s + S.count);
        if (room ? count < this.capacity : count > 0) break;
        if (timeoutMs <= 0) return null;
        if (!canSleep) {
          throw new TwzError(
            ErrorCode.NotSupported,
            `The message queue in ${formatId(o.id)} is ${
              room ? "full" : "empty"
            }, and the kernel's own session cannot wait (use a timeout of 0, or wait in a program's thread)`,
          );
        }
        const ms = deadline === Infinity ? Infinity : deadline - performance.now();
        if (ms <= 0) return null;
        cond.wait(m, ms);
      }
      ok = true;
    } finally {
      // Condition.wait returns, or throws, with the lock held again.
      if (!ok) m.unlock();
    }
    const h: Held = { tx, sent: 0, received: 0 };
    held.set(key, h);
    tx.onEnd.push((committed) => this.#release(key, h, committed));
    return h;
  }

  /** The end of the transaction that held the lock: release it, then wake waiters. */
  #release(key: object, h: Held, committed: boolean): void {
    held.delete(key);
    const { mutex, notEmpty, notFull } = this.#sync!;
    mutex.unlock();
    if (!committed) return;
    if (h.sent === 1) notEmpty.signal();
    else if (h.sent > 1) notEmpty.broadcast();
    if (h.received === 1) notFull.signal();
    else if (h.received > 1) notFull.broadcast();
  }
}

/** The sizes asked for, checked. */
function sizes(options: MessageQueueOptions): { capacity: number; maxBytes: number } {
  const capacity = options.capacity ?? 256;
  const maxBytes = options.maxBytes ?? 256;
  if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 0x7fffffff) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `A message queue's capacity must be a positive integer, not ${capacity}`,
    );
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_BYTES) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `A message queue's maxBytes must be an integer from 1 to ${MAX_BYTES}, not ${maxBytes}`,
    );
  }
  return { capacity, maxBytes };
}

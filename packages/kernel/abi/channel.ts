/**
 * The system-call channel: how a thread in a Worker reaches the kernel.
 * {@linkcode connectPort} builds the Worker side of the
 * {@linkcode KernelPort}; the kernel side (`threads/_server.ts`) answers.
 * Every call is synchronous for the thread: it writes the request into a
 * `SharedArrayBuffer`, wakes the kernel with `Atomics.notify`, and sleeps in
 * `Atomics.wait` until the answer is there (after spinning up to
 * {@linkcode CHANNEL_SPIN_US}: most answers come before a sleeping thread
 * would wake). The kernel waits with
 * `Atomics.waitAsync`, so it never blocks its own event loop.
 *
 * ## Layout
 *
 * The channel is a growable `SharedArrayBuffer` (made by
 * {@linkcode newChannel}): a 64-byte header of 32-bit words, then the data
 * area from byte {@linkcode CHANNEL_DATA}, which holds one message at a time.
 *
 * | word | name    | meaning                                                    |
 * | ---- | ------- | ---------------------------------------------------------- |
 * | 0    | `STATE` | `IDLE` 0, `CALL` 1 (a request waits: the kernel's turn), `ANSWER` 2 (the answer waits: the thread's turn), `CLOSED` 3 (the kernel stopped serving) |
 * | 1    | `KILL`  | non-zero: the thread is being killed                       |
 * | 2    | `LENGTH`| bytes of the message in the data area                      |
 * | 3    | `SLEEP` | `SLEEP_NONE` 0, `SLEEP_DIRECT` 1 (asleep in `thread_sync` in the Worker), `SLEEP_PARKED` 2 (so asleep, and parked by the kernel: it enters the kernel before it runs on) |
 * | 4    | `SLEEP_HANDLE` | the mapping handle of the word a direct sleep waits on |
 * | 5    | `SLEEP_OFFSET` | that word's offset in its object                     |
 *
 * A request is `encodeRequest` (`port.ts`): the call number and its
 * arguments. An answer is a frame:
 *
 * ```text
 * u32 count                        mapping updates, applied before the call returns
 * count × { u32 handle, u32 kind, f64 offset, f64 size }
 * u32 status, value                status 0: the result; 1–999: a TwzError code and
 *                                  its message; 1000 RangeError, 1001 TypeError, 1002 Error
 * ```
 *
 * Results travel as `port.ts` encodes them, except `clock`, which answers
 * a `Float64Array` `[wall, mono]` (no key strings to decode) that the
 * thread turns into `{ wall, mono }`.
 *
 * Either side grows the buffer (up to {@linkcode CHANNEL_MAX} bytes) when a
 * message does not fit; the other sees the new length. Reads and writes
 * larger than {@linkcode CHANNEL_CHUNK} go as several calls.
 *
 * ## Memory
 *
 * A `map` answers a {@linkcode MapReply}. `shared`: the bytes are at
 * `offset` in the region buffer the thread got at start (hal-sim, whose
 * region is one `SharedArrayBuffer`). `transfer`: the kernel posted
 * `{ handle, buffer, offset, length }` on the thread's memory port before
 * answering (hal-pmem: a view of just the object's bytes, transferred zero
 * copy; volatile objects: their own `SharedArrayBuffer`); the thread takes it
 * with `receiveMessageOnPort`, which works while it waits synchronously.
 *
 * ## Mapping updates (cooperative unmap)
 *
 * A view a Worker holds cannot be taken away by the kernel. So every answer
 * carries updates for the thread's live mappings whose object changed since
 * the thread last heard: kind {@linkcode UPDATE_GONE} (deleted or revoked:
 * the mapping's bytes go empty), {@linkcode UPDATE_SHARED} (moved or grown
 * within the shared region: new offset and size) or
 * {@linkcode UPDATE_TRANSFER} (a new buffer on the memory port). The thread
 * applies them before the call returns. The kernel changes an object mapped
 * by a running thread only while that thread sits inside a call (it holds the
 * answer back meanwhile), so the thread never runs holding a stale view.
 *
 * A buffer the kernel transferred (hal-pmem) is detached when its mapping
 * goes (gone, moved to a new buffer, or unmapped): views the program kept of
 * it read length 0 from then on. Shared memory (hal-sim's region, volatile
 * objects) cannot be taken back: only the mapping's own views go empty.
 *
 * ## Revocation
 *
 * When a thread's access narrows (a grant removed, a key rotated, a context
 * detached: docs/SECURITY.md), the kernel withdraws its mappings no longer
 * allowed: it adds 1 to the thread's epoch word (`ThreadInit.epoch`, one
 * `Int32`, the port's `epoch`) at once, and the thread's next answer carries
 * {@linkcode UPDATE_GONE} for them. A thread that does not enter the kernel
 * soon enough is killed. libtwz compares the epoch at map, at pointer
 * resolution and on each cross-object hop.
 *
 * ## Kill
 *
 * The kernel sets `KILL` and wakes the thread: the call it is waiting in, and
 * every later call (`thread_exit` included), throws `TwzError(Killed)`. (A
 * waiting thread also looks at `KILL` every {@linkcode KILL_POLL_MS}: the
 * wake-up of a kill that lands just before its wait begins is lost.) The
 * kernel stops serving a killed thread.
 *
 * ## thread_sync
 *
 * A batch with at most one sleep whose every word lies in a mapping of
 * shared memory this thread holds (hal-sim's region, any volatile object)
 * runs in the Worker, without a system call: a wake is `Atomics.notify`,
 * the sleep `Atomics.wait` (which compares and sleeps atomically), in slices
 * of at most {@linkcode SYNC_SLICE_MS} between looks at `KILL` and `SLEEP`.
 * Any other batch (several sleeps, pmem memory, an object not mapped here)
 * goes to the kernel, which sleeps the thread there. Wakes reach both kinds
 * of sleeper: the kernel's wake also notifies a word in shared memory, and
 * the kernel counts its own sleepers in `ThreadInit.sync`
 * ({@linkcode SYNC_BUCKETS} 32-bit counts, a word's bucket by
 * {@linkcode syncBucket}): a direct wake that woke fewer than asked and finds
 * its bucket non-zero asks the kernel to wake the rest. The kernel adds to
 * the count before it reads the word, and a waker stores the word (with
 * `Atomics`) before it reads the count, so one of them sees the other.
 *
 * While a thread sleeps directly its `SLEEP` word is `SLEEP_DIRECT`. To
 * change an object the thread maps (cooperative unmap), the kernel turns it
 * into `SLEEP_PARKED` (compare-and-exchange); the thread, finding that when
 * it wakes, calls the kernel (`thread_yield`) for its mapping updates before
 * it returns (a sleep so interrupted returns 0, woken). To park or kill
 * it at once, the kernel notifies the word it waits on (`SLEEP_HANDLE`,
 * `SLEEP_OFFSET`): other sleepers of that word then wake spuriously (0).
 *
 * @example A program's first lines (the loader passes `init`)
 * ```ts ignore
 * import { connectPort, type ThreadInit } from "@twz/kernel/abi";
 * export default function start(init: ThreadInit) {
 *   const port = connectPort(init);
 *   port.consoleWrite(`hello from thread ${init.tid}\n`);
 *   port.threadExit(0);
 * }
 * ```
 *
 * @module
 */
import { receiveMessageOnPort } from "node:worker_threads";
import type { CreateSpec, Lifetime, ObjectStat } from "./object.ts";
import { Prot } from "./object.ts";
import { formatId, type ObjID } from "./id.ts";
import { Extent } from "./extent.ts";
import { ErrorCode, TwzError } from "./errors.ts";
import {
  decodeResponse,
  EncodeOverflow,
  encodeRequest,
  type KernelPort,
  type Mapping,
  MappingBase,
  type MapReply,
  type SpawnSpec,
  type SyncOp,
  Sys,
  type SystemInfo,
  type ThreadFault,
  type ThreadInfo,
  type ThreadInit,
} from "./port.ts";
import type {
  AccessReport,
  ContextInfo,
  GateCallInfo,
  KeyIds,
  KeyInfo,
  KeySpec,
} from "./security.ts";
import type { GlobalOp, GlobalOps } from "./global.ts";

/** Header word: the channel's state (`CALL_*`). */
export const STATE = 0;
/** Header word: non-zero once the thread is being killed. */
export const KILL = 1;
/** Header word: length in bytes of the message in the data area. */
export const LENGTH = 2;
/** Header word: the thread's direct `thread_sync` sleep (`SLEEP_*`). */
export const SLEEP = 3;
/** Header word: the mapping handle of the word a direct sleep waits on. */
export const SLEEP_HANDLE = 4;
/** Header word: the offset (in its object) of the word a direct sleep waits on. */
export const SLEEP_OFFSET = 5;
/** `SLEEP`: not asleep in the Worker. */
export const SLEEP_NONE = 0;
/** `SLEEP`: asleep in `thread_sync` in the Worker (`Atomics.wait`). */
export const SLEEP_DIRECT = 1;
/** `SLEEP`: asleep directly, and parked: the thread calls the kernel before it runs on. */
export const SLEEP_PARKED = 2;
/** Longest slice (ms) of a direct sleep between looks at the kill word. */
export const SYNC_SLICE_MS = 50;
/** Number of 32-bit counts in `ThreadInit.sync` (the kernel's sleepers per bucket of words). */
export const SYNC_BUCKETS = 1024;
/** `STATE`: nothing pending. */
export const CALL_IDLE = 0;
/** `STATE`: a request waits for the kernel. */
export const CALL_REQUEST = 1;
/** `STATE`: an answer waits for the thread. */
export const CALL_ANSWER = 2;
/** `STATE`: the kernel stopped serving this channel. */
export const CALL_CLOSED = 3;
/** How often (ms) a thread waiting for an answer looks at the kill word anyway. */
export const KILL_POLL_MS = 50;
/**
 * How long (µs) a thread spins on the state word before it sleeps in
 * `Atomics.wait` for an answer.
 */
export const CHANNEL_SPIN_US = 50;
/** Byte offset of the data area (after the header). */
export const CHANNEL_DATA = 64;
/** Initial channel size in bytes. */
export const CHANNEL_INITIAL = 64 * 1024;
/** Largest channel size in bytes (the buffer's `maxByteLength`). */
export const CHANNEL_MAX = 64 * 1024 * 1024;
/** Reads and writes larger than this go as several calls. */
export const CHANNEL_CHUNK = 16 * 1024 * 1024;

/** Mapping update: the mapping's bytes go empty (object deleted or mapping revoked). */
export const UPDATE_GONE = 0;
/** Mapping update: the bytes are at `offset` (`size` bytes) in the shared region. */
export const UPDATE_SHARED = 1;
/** Mapping update: a new buffer for the mapping waits on the memory port. */
export const UPDATE_TRANSFER = 2;
/** Bytes per mapping update in an answer frame. */
export const UPDATE_BYTES = 24;

/** Answer status of a `RangeError` thrown by the kernel. */
export const STATUS_RANGE_ERROR = 1000;
/** Answer status of a `TypeError` thrown by the kernel. */
export const STATUS_TYPE_ERROR = 1001;
/** Answer status of any other error thrown by the kernel. */
export const STATUS_ERROR = 1002;

/** What the kernel posts on a thread's memory port for a `transfer` mapping. */
export interface MemoryMessage {
  /** The mapping's handle. */
  handle: number;
  /** Its bytes: a transferred `ArrayBuffer` (pmem view) or a shared buffer. */
  buffer: ArrayBuffer | SharedArrayBuffer;
  /** Offset of the object's bytes in `buffer`. */
  offset: number;
  /** Size in bytes. */
  length: number;
}

/** A new, empty channel buffer (growable up to {@linkcode CHANNEL_MAX}). */
export function newChannel(): SharedArrayBuffer {
  return new SharedArrayBuffer(CHANNEL_INITIAL, { maxByteLength: CHANNEL_MAX });
}

/**
 * Grow `channel` so that its data area holds at least `bytes` bytes (at
 * least doubling).
 *
 * @throws {TwzError} `InvalidArgument` when that exceeds {@linkcode CHANNEL_MAX}.
 */
export function growChannel(channel: SharedArrayBuffer, bytes: number): void {
  const want = Math.max(CHANNEL_DATA + bytes, 2 * channel.byteLength);
  if (channel.byteLength >= CHANNEL_MAX || CHANNEL_DATA + bytes > CHANNEL_MAX) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `a system-call message of more than ${
        CHANNEL_MAX - CHANNEL_DATA
      } bytes does not fit the channel`,
    );
  }
  channel.grow(Math.min(want, CHANNEL_MAX));
}

/**
 * Encode with `encode` into the channel's data area, growing the channel
 * until the message fits. Returns the bytes used.
 */
export function encodeInto(
  channel: SharedArrayBuffer,
  encode: (into: Uint8Array) => number,
): number {
  for (;;) {
    try {
      return encode(channelData(channel));
    } catch (e) {
      if (!(e instanceof EncodeOverflow)) throw e;
      growChannel(channel, 2 * (channel.byteLength - CHANNEL_DATA));
    }
  }
}

/**
 * The channel's data area now (a fixed-length view: V8 handles views that
 * track a growable buffer's length markedly slower).
 */
export function channelData(channel: SharedArrayBuffer): Uint8Array {
  return new Uint8Array(channel, CHANNEL_DATA, channel.byteLength - CHANNEL_DATA);
}

/**
 * The bucket of the `thread_sync` word at (`id`, `offset`) in
 * `ThreadInit.sync`: the kernel counts its sleepers on the word there. Words
 * of one bucket share a count (a direct wake then calls the kernel without
 * need, never the other way round).
 */
export function syncBucket(id: ObjID, offset: number): number {
  const lo = Number(BigInt.asUintN(32, id)) | 0;
  return Math.imul(lo ^ Math.imul(offset >>> 2, 0x85ebca6b), 0x9e3779b1) >>> 22;
}

/**
 * @internal Check the shape of `thread_sync` operation `i` (not its word):
 * returns its kind.
 *
 * @throws {TwzError} `InvalidArgument` for a malformed operation, a wake
 * count or a timeout that is not a number ≥ 0, or a sleep value that is
 * neither a number nor a bigint.
 */
export function syncOpKind(op: unknown, i: number): "sleep" | "wake" {
  const o = op as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null || typeof o.id !== "bigint") {
    throw new TwzError(ErrorCode.InvalidArgument, `thread_sync: operation ${i} is malformed`);
  }
  if (o.op === "wake") {
    if (typeof o.count !== "number" || !(o.count >= 0)) {
      throw new TwzError(ErrorCode.InvalidArgument, `thread_sync: wake count ${o.count}`);
    }
    return "wake";
  }
  if (o.op === "sleep") {
    if (typeof o.value !== "number" && typeof o.value !== "bigint") {
      throw new TwzError(ErrorCode.InvalidArgument, `thread_sync: sleep value ${o.value}`);
    }
    const ms = o.timeoutMs;
    if (ms !== undefined && ms !== null && (typeof ms !== "number" || !(ms >= 0))) {
      throw new TwzError(ErrorCode.InvalidArgument, `thread_sync: timeout ${ms}`);
    }
    return "sleep";
  }
  throw new TwzError(ErrorCode.InvalidArgument, `thread_sync: unknown operation ${o.op}`);
}

/**
 * @internal Check that `offset` is a `width`-byte word (aligned) of an
 * object of `size` bytes.
 *
 * @throws {RangeError} when it is not.
 */
export function syncWordCheck(size: number, id: ObjID, offset: unknown, width: number): void {
  if (
    typeof offset !== "number" || !Number.isInteger(offset) || offset < 0 ||
    offset % width !== 0 || offset + width > size
  ) {
    throw new RangeError(
      `thread_sync: offset ${offset} is not a ${width * 8}-bit word of ${formatId(id)}`,
    );
  }
}

/** @internal The width in bytes of a sleep's word (8 for a bigint value, else 4); a wake's is 4. */
export function syncWidth(op: SyncOp): number {
  return op.op === "sleep" && typeof op.value === "bigint" ? 8 : 4;
}

const ERROR_CLASSES: Record<number, new (message: string) => Error> = {
  [STATUS_RANGE_ERROR]: RangeError,
  [STATUS_TYPE_ERROR]: TypeError,
  [STATUS_ERROR]: Error,
};

/** A mapping held by a thread: the same {@linkcode Mapping} the kernel's own are. */
class ChannelMapping extends MappingBase {
  constructor(
    id: ObjID,
    lifetime: Lifetime,
    prot: number,
    handle: number,
    bytes: Uint8Array,
    private readonly port: ChannelPort,
  ) {
    super(id, lifetime, prot, handle, new Extent(bytes, -1));
  }
  flush(offset: number, length: number): void {
    this.port.rangeCall(Sys.Flush, this.handle, offset, length);
  }
  drain(): void {
    this.port.drain();
  }
  persist(offset: number, length: number): void {
    this.port.rangeCall(Sys.Persist, this.handle, offset, length);
  }
}

const EMPTY = new Uint8Array(0);

/** The Worker side of the kernel port (see the module doc). */
class ChannelPort implements KernelPort {
  readonly #channel: SharedArrayBuffer;
  readonly #state: Int32Array;
  readonly #memory: MessagePort;
  readonly #region: SharedArrayBuffer | null;
  readonly #tid: number;
  /** Live mappings by handle. */
  readonly #maps = new Map<number, ChannelMapping>();
  /** Buffers taken from the memory port and not yet claimed, by handle. */
  readonly #arrived = new Map<number, MemoryMessage>();
  readonly #one = new Float64Array(3);
  /** A live mapping of each mapped object (what a direct `thread_sync` uses). */
  readonly #byId = new Map<ObjID, ChannelMapping>();
  /** The kernel's sleeper counts (`ThreadInit.sync`); `null`: no direct `thread_sync`. */
  readonly #sleepers: Int32Array | null;
  /** The revocation epoch word (`ThreadInit.epoch`), if the kernel gave one. */
  readonly #epoch: Int32Array | undefined;
  #readOnly: boolean | undefined;

  constructor(init: ThreadInit) {
    this.#channel = init.channel;
    this.#state = new Int32Array(init.channel, 0, CHANNEL_DATA >> 2);
    this.#memory = init.memory;
    this.#region = init.region;
    this.#tid = init.tid;
    const sync = init.sync;
    this.#sleepers = sync instanceof SharedArrayBuffer && sync.byteLength >= 4 * SYNC_BUCKETS
      ? new Int32Array(sync, 0, SYNC_BUCKETS)
      : null;
    const epoch = init.epoch;
    this.#epoch = epoch instanceof SharedArrayBuffer && epoch.byteLength >= 4
      ? new Int32Array(epoch, 0, 1)
      : undefined;
  }

  #killed(): TwzError {
    return new TwzError(ErrorCode.Killed, `thread ${this.#tid} is being killed`);
  }

  /** One system call: send, wait, apply the mapping updates, return the result. */
  call(sys: number, args: readonly unknown[], spin = true): unknown {
    const s = this.#state;
    if (Atomics.load(s, KILL) !== 0) throw this.#killed();
    if (Atomics.load(s, STATE) === CALL_CLOSED) {
      throw new TwzError(ErrorCode.Shutdown, "the kernel has stopped serving this thread");
    }
    const n = encodeInto(this.#channel, (into) => encodeRequest(into, sys, args));
    s[LENGTH] = n;
    Atomics.store(s, STATE, CALL_REQUEST);
    Atomics.notify(s, STATE);
    // Spin a little first: a thread asleep in Atomics.wait wakes late (tens
    // of µs on an idle virtual machine), and most answers come sooner.
    if (spin && Atomics.load(s, STATE) === CALL_REQUEST) {
      const until = performance.now() + CHANNEL_SPIN_US / 1000;
      for (let i = 1; Atomics.load(s, STATE) === CALL_REQUEST; i++) {
        if ((i & 63) === 0 && performance.now() > until) break;
      }
    }
    for (;;) {
      // The kill word is not the word waited on: a kill whose wake-up came
      // just before this wait began would be lost, so wake now and then.
      Atomics.wait(s, STATE, CALL_REQUEST, KILL_POLL_MS);
      if (Atomics.load(s, KILL) !== 0) throw this.#killed();
      const st = Atomics.load(s, STATE);
      if (st === CALL_ANSWER) break;
      if (st === CALL_CLOSED) {
        throw new TwzError(ErrorCode.Shutdown, "the kernel has stopped serving this thread");
      }
    }
    const data = channelData(this.#channel).subarray(0, s[LENGTH]!);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const count = dv.getUint32(0, true);
    for (let i = 0; i < count; i++) {
      const at = 4 + i * UPDATE_BYTES;
      this.#update(
        dv.getUint32(at, true),
        dv.getUint32(at + 4, true),
        dv.getFloat64(at + 8, true),
        dv.getFloat64(at + 16, true),
      );
    }
    const body = 4 + count * UPDATE_BYTES;
    const status = dv.getUint32(body, true);
    if (status >= STATUS_RANGE_ERROR) {
      let message: unknown;
      try {
        decodeResponse(data.subarray(body), data.length - body);
      } catch (e) {
        message = (e as Error).message;
      }
      throw new (ERROR_CLASSES[status] ?? Error)(String(message));
    }
    return decodeResponse(data.subarray(body), data.length - body);
  }

  /** Apply one mapping update from an answer. */
  #update(handle: number, kind: number, offset: number, size: number): void {
    const m = this.#maps.get(handle);
    if (kind === UPDATE_TRANSFER) {
      const bytes = this.#take(handle);
      if (m) {
        // The old buffer views memory the object no longer occupies.
        const old = m.extent.bytes.buffer;
        m.extent.retarget(bytes, -1);
        if (old !== bytes.buffer) detach(old);
      }
      return;
    }
    if (!m) return;
    if (kind === UPDATE_SHARED && this.#region) {
      m.extent.retarget(new Uint8Array(this.#region, offset, size), -1);
    } else {
      // Deleted or revoked: libtwz's views go empty, and a transferred
      // buffer is detached, so raw views the program kept read length 0.
      const old = m.extent.bytes.buffer;
      m.extent.retarget(EMPTY, -1);
      detach(old);
      this.#maps.delete(handle);
      this.#unlist(m);
    }
  }

  /** `m` is no longer live: another live mapping of its object (if any) serves `thread_sync`. */
  #unlist(m: ChannelMapping): void {
    if (this.#byId.get(m.id) !== m) return;
    this.#byId.delete(m.id);
    for (const other of this.#maps.values()) {
      if (other.id === m.id) {
        this.#byId.set(m.id, other);
        return;
      }
    }
  }

  /** The buffer the kernel posted for `handle` on the memory port. */
  #take(handle: number): Uint8Array {
    let msg = this.#arrived.get(handle);
    // The kernel posts before it answers; delivery to this thread's port can
    // trail the answer by a little, so wait for it (bounded).
    const deadline = Date.now() + 5000;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (msg === undefined) {
      const got = receiveMessageOnPort(this.#memory as never) as
        | { message: MemoryMessage }
        | undefined;
      if (got) {
        const m = got.message;
        if (m.handle === handle) msg = m;
        else this.#arrived.set(m.handle, m);
        continue;
      }
      if (Date.now() > deadline) {
        throw new TwzError(
          ErrorCode.NotSupported,
          `the kernel's memory for mapping ${handle} never arrived`,
        );
      }
      Atomics.wait(pause, 0, 0, 0.002);
    }
    this.#arrived.delete(handle);
    return new Uint8Array(msg.buffer, msg.offset, msg.length);
  }

  rangeCall(sys: number, handle: number, offset: number, length: number): void {
    const r = this.#one;
    r[0] = handle;
    r[1] = offset;
    r[2] = length;
    this.call(sys, [r]);
  }

  get readOnly(): boolean {
    return this.#readOnly ??= this.info().readOnly;
  }
  create(spec?: CreateSpec): ObjID {
    return this.call(Sys.Create, [spec]) as ObjID;
  }
  delete(id: ObjID): number {
    return this.call(Sys.Delete, [id]) as number;
  }
  stat(id: ObjID): ObjectStat {
    return this.call(Sys.Stat, [id]) as ObjectStat;
  }
  dependents(id: ObjID): ObjID[] {
    return this.call(Sys.Dependents, [id]) as ObjID[];
  }
  exists(id: ObjID): boolean {
    return this.call(Sys.Exists, [id]) as boolean;
  }
  list(): ObjectStat[] {
    return this.call(Sys.List, []) as ObjectStat[];
  }
  map(id: ObjID, prot: number = Prot.ReadWrite): Mapping {
    const r = this.call(Sys.Map, [id, prot]) as MapReply;
    let bytes: Uint8Array;
    if (r.memory === "shared") {
      if (!this.#region) {
        throw new TwzError(
          ErrorCode.NotSupported,
          "the kernel answered a shared mapping, but this thread has no shared region",
        );
      }
      bytes = new Uint8Array(this.#region, r.offset, r.size);
    } else {
      bytes = this.#take(r.handle);
    }
    const m = new ChannelMapping(r.id, r.lifetime, r.prot, r.handle, bytes, this);
    this.#maps.set(r.handle, m);
    this.#byId.set(r.id, m);
    return m;
  }
  unmap(m: Mapping): void {
    const mine = this.#maps.get(m.handle);
    if (mine !== m) return;
    this.#maps.delete(m.handle);
    this.#unlist(mine);
    const old = mine.extent.bytes.buffer;
    mine.extent.retarget(EMPTY, -1);
    detach(old);
    this.call(Sys.Unmap, [m.handle]);
  }
  grow(id: ObjID, size: number): void {
    this.call(Sys.Grow, [id, size]);
  }
  flush(ranges: Float64Array, count: number): void {
    this.call(Sys.Flush, [ranges.subarray(0, 3 * count)]);
  }
  drain(): void {
    this.call(Sys.Drain, []);
  }
  persist(ranges: Float64Array, count: number): void {
    this.call(Sys.Persist, [ranges.subarray(0, 3 * count)]);
  }
  read(id: ObjID, offset: number, length: number): Uint8Array {
    if (length <= CHANNEL_CHUNK) return this.call(Sys.Read, [id, offset, length]) as Uint8Array;
    const out = new Uint8Array(length);
    for (let at = 0; at < length; at += CHANNEL_CHUNK) {
      const n = Math.min(CHANNEL_CHUNK, length - at);
      out.set(this.call(Sys.Read, [id, offset + at, n]) as Uint8Array, at);
    }
    return out;
  }
  write(id: ObjID, offset: number, data: Uint8Array): void {
    if (data.length <= CHANNEL_CHUNK) {
      this.call(Sys.Write, [id, offset, data]);
      return;
    }
    // Check the whole range first, so a write outside the object changes nothing.
    const size = this.stat(id).size;
    if (!(offset >= 0 && offset + data.length <= size)) {
      throw new RangeError(
        `Range [${offset}, ${offset + data.length}) is outside the object (${size} bytes)`,
      );
    }
    for (let at = 0; at < data.length; at += CHANNEL_CHUNK) {
      this.call(Sys.Write, [id, offset + at, data.subarray(at, at + CHANNEL_CHUNK)]);
    }
  }
  rootObject(): ObjID {
    return this.call(Sys.RootObject, []) as ObjID;
  }
  rootObjectId(): ObjID {
    return this.call(Sys.RootObjectId, []) as ObjID;
  }
  info(): SystemInfo {
    return this.call(Sys.Info, []) as SystemInfo;
  }
  threadSelf(): ThreadInfo | null {
    return this.call(Sys.ThreadSelf, []) as ThreadInfo;
  }
  spawn(spec: SpawnSpec): ThreadInfo {
    return this.call(Sys.Spawn, [spec]) as ThreadInfo;
  }
  threads(): ThreadInfo[] {
    return this.call(Sys.Threads, []) as ThreadInfo[];
  }
  threadKill(tid: number): void {
    this.call(Sys.ThreadKill, [tid]);
  }
  threadWait(tid: number, timeoutMs: number): ThreadInfo {
    return this.call(Sys.ThreadWait, [tid, timeoutMs]) as ThreadInfo;
  }
  threadYield(): void {
    this.call(Sys.ThreadYield, []);
  }
  threadSync(ops: SyncOp[]): number[] {
    // A sleep in the kernel is answered when woken: spinning for the answer
    // would only take a CPU from the thread that is to wake it.
    return (this.#sleepers !== null && this.#syncHere(ops)) ||
      this.call(Sys.ThreadSync, [ops], !ops.some((op) => op?.op === "sleep")) as number[];
  }

  /** The live mapping of shared memory `thread_sync` may use for `id`, if any. */
  #shared(id: ObjID): ChannelMapping | undefined {
    const m = this.#byId.get(id);
    if (m === undefined) return undefined;
    const e = m.extent;
    return e.words && e.bytes.length > 0 && e.bytes.buffer instanceof SharedArrayBuffer
      ? m
      : undefined;
  }

  /**
   * `thread_sync` in the Worker (module doc): `null` when the batch must go
   * to the kernel (more than one sleep, or a word not in shared memory this
   * thread maps). Checks every operation before doing any.
   */
  #syncHere(ops: SyncOp[]): number[] | null {
    if (!Array.isArray(ops)) return null;
    let sleep = -1;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (syncOpKind(op, i) === "sleep") {
        if (sleep >= 0) return null;
        sleep = i;
      }
      const m = this.#shared(op.id);
      if (m === undefined) return null;
      syncWordCheck(m.size, op.id, op.offset, syncWidth(op));
    }
    const out = new Array<number>(ops.length);
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.op === "wake") out[i] = this.#wakeHere(op.id, op.offset, Math.floor(op.count));
    }
    if (sleep >= 0) {
      const op = ops[sleep] as Extract<SyncOp, { op: "sleep" }>;
      out[sleep] = this.#sleepHere(op.id, op.offset, op.value, op.timeoutMs ?? Infinity);
    }
    return out;
  }

  /** Wake up to `count` sleepers on a word in shared memory: direct ones, then the kernel's. */
  #wakeHere(id: ObjID, offset: number, count: number): number {
    if (count <= 0) return 0;
    // A wake in this batch may have entered the kernel and moved the object: look again.
    const m = this.#shared(id);
    if (m === undefined) {
      return (this.call(Sys.ThreadSync, [[{ op: "wake", id, offset, count }]]) as number[])[0]!;
    }
    let n = Atomics.notify(m.extent.i32, offset / 4, count);
    if (n < count && Atomics.load(this.#sleepers!, syncBucket(id, offset)) !== 0) {
      const more = [{ op: "wake", id, offset, count: count - n }];
      n += (this.call(Sys.ThreadSync, [more]) as number[])[0]!;
    }
    return n;
  }

  /**
   * Sleep on a word in shared memory in this Worker while it equals `value`
   * (module doc): 0 woken, 1 the value differed, 2 timed out.
   */
  #sleepHere(id: ObjID, offset: number, value: number | bigint, timeoutMs: number): number {
    const s = this.#state;
    if (Atomics.load(s, KILL) !== 0) throw this.#killed();
    let m = this.#shared(id);
    if (m === undefined) {
      // A wake before it entered the kernel and the object went out of reach.
      const op = {
        op: "sleep",
        id,
        offset,
        value,
        timeoutMs: timeoutMs < Infinity ? timeoutMs : undefined,
      };
      return (this.call(Sys.ThreadSync, [[op]]) as number[])[0]!;
    }
    const e = m.extent;
    const wide = typeof value === "bigint";
    if (!(timeoutMs > 0)) {
      const now = wide
        ? Atomics.load(e.bu64, offset / 8) === BigInt.asUintN(64, value)
        : Atomics.load(e.u32, offset / 4) === (value as number) >>> 0;
      return now ? 2 : 1;
    }
    const end = performance.now() + timeoutMs;
    let outcome = 0, killed = false, closed = false, first = true;
    s[SLEEP_HANDLE] = m.handle;
    s[SLEEP_OFFSET] = offset;
    Atomics.store(s, SLEEP, SLEEP_DIRECT);
    try {
      // Each slice ends with a look at KILL, STATE and SLEEP (the kernel also
      // notifies the word to kill or park at once; looking first after
      // announcing SLEEP catches one that came just before).
      while (Atomics.load(s, KILL) === 0 && Atomics.load(s, SLEEP) === SLEEP_DIRECT) {
        if (Atomics.load(s, STATE) === CALL_CLOSED) {
          closed = true;
          break;
        }
        const slice = Math.min(SYNC_SLICE_MS, end - performance.now());
        if (!(slice > 0)) {
          outcome = 2;
          break;
        }
        const r = wide
          ? Atomics.wait(e.bi64, offset / 8, value as bigint, slice)
          : Atomics.wait(e.i32, offset / 4, value as number, slice);
        if (r === "ok") break;
        if (r === "not-equal") {
          // Changed while it slept between two slices: counts as woken.
          if (first) outcome = 1;
          break;
        }
        first = false;
      }
    } catch (err) {
      Atomics.store(s, SLEEP, SLEEP_NONE); // it runs again: no longer parkable
      throw err;
    }
    killed = Atomics.load(s, KILL) !== 0;
    if (Atomics.compareExchange(s, SLEEP, SLEEP_DIRECT, SLEEP_NONE) !== SLEEP_DIRECT) {
      // The kernel changed objects this thread maps meanwhile: hear of it
      // first. What the wait saw may have been the object's old place, so
      // it counts as woken.
      Atomics.store(s, SLEEP, SLEEP_NONE);
      if (outcome === 1) outcome = 0;
      if (!killed && !closed) {
        this.call(Sys.ThreadYield, []);
        m = this.#byId.get(id);
        if (m === undefined || m.size === 0) {
          throw new TwzError(
            ErrorCode.ObjectNotFound,
            "thread_sync: the object slept on was deleted while the thread slept",
          );
        }
      }
    }
    if (killed) throw this.#killed();
    if (closed) {
      throw new TwzError(ErrorCode.Shutdown, "the kernel has stopped serving this thread");
    }
    return outcome;
  }
  /** End this thread with `code` (and the fault that ended it, if one did). */
  threadExit(code: number, fault?: ThreadFault | null): void {
    this.call(Sys.ThreadExit, [code, fault ?? null]);
  }
  consoleWrite(text: string): void {
    this.call(Sys.ConsoleWrite, [text]);
  }
  clock(): { wall: number; mono: number } {
    const t = this.call(Sys.Clock, []) as Float64Array; // [wall, mono]
    return { wall: t[0]!, mono: t[1]! };
  }
  random(n: number): Uint8Array {
    return this.call(Sys.Random, [n]) as Uint8Array;
  }
  // Security (docs/SECURITY.md): every call goes to the kernel, which
  // answers for this thread's contexts. The calls the interface makes
  // asynchronous wait here like the others and answer settled promises.

  /** The thread's revocation epoch word (`ThreadInit.epoch`). */
  get epoch(): Int32Array | undefined {
    return this.#epoch;
  }
  keyCreate(spec?: KeySpec): Promise<KeyIds> {
    return settled(() => this.call(Sys.KeyCreate, [spec], false) as KeyIds);
  }
  keyRotate(kuid: ObjID, spec?: KeySpec): Promise<void> {
    return settled(() => {
      this.call(Sys.KeyRotate, [kuid, spec], false);
    });
  }
  keyInfo(kuid: ObjID): KeyInfo {
    return this.call(Sys.KeyInfo, [kuid]) as KeyInfo;
  }
  ctxCreate(spec?: { key?: ObjID | undefined }): ObjID {
    return this.call(Sys.CtxCreate, [spec]) as ObjID;
  }
  ctxInfo(ctx: ObjID): ContextInfo {
    return this.call(Sys.CtxInfo, [ctx]) as ContextInfo;
  }
  ctxAdd(ctx: ObjID, grant: Uint8Array): number {
    return this.call(Sys.CtxAdd, [ctx, grant], false) as number;
  }
  ctxRemove(ctx: ObjID, index: number): void {
    this.call(Sys.CtxRemove, [ctx, index]);
  }
  ctxMask(ctx: ObjID, target: ObjID, prot: number | null): void {
    this.call(Sys.CtxMask, [ctx, target, prot]);
  }
  ctxAttach(ctx: ObjID, tid?: number): Promise<void> {
    return settled(() => {
      this.call(Sys.CtxAttach, [ctx, tid], false);
    });
  }
  ctxDetach(ctx: ObjID, tid?: number): void {
    this.call(Sys.CtxDetach, [ctx, tid]);
  }
  contexts(): ObjID[] {
    return this.call(Sys.Contexts, []) as ObjID[];
  }
  access(id: ObjID, contexts?: ObjID[]): Promise<AccessReport> {
    return settled(() => this.call(Sys.Access, [id, contexts], false) as AccessReport);
  }
  gateServe(id: ObjID): void {
    this.call(Sys.GateServe, [id], false);
  }
  gateReceive(timeoutMs: number): GateCallInfo | null {
    // Asleep until a call comes: spinning would only take a CPU from the caller.
    return this.call(Sys.GateReceive, [timeoutMs], false) as GateCallInfo | null;
  }
  gateReply(call: number, result: Uint8Array): void {
    this.call(Sys.GateReply, [call, result]);
  }
  gateCall(id: ObjID, offset: number, args: Uint8Array, timeoutMs = 10_000): Uint8Array {
    return this.call(Sys.GateCall, [id, offset, args, timeoutMs], false) as Uint8Array;
  }
  global<K extends GlobalOp>(op: K, args: GlobalOps[K][0]): GlobalOps[K][1] {
    // The cluster may take a while: asleep, not spinning.
    return this.call(Sys.Global, [op, args], false) as GlobalOps[K][1];
  }
}

/**
 * The kernel port of a thread: every call goes over `init.channel` and waits
 * for the kernel's answer (synchronous). Mappings are zero-copy views of the
 * object's bytes (see the module doc for how they arrive and follow the
 * object). Besides {@linkcode KernelPort} it has {@linkcode ThreadPortExit.threadExit}.
 *
 * @param init What the thread received at start.
 * @returns The port; every failure throws `TwzError` (a kernel `RangeError`
 * or `TypeError` crosses as itself).
 */
export function connectPort(init: ThreadInit): KernelPort & ThreadPortExit {
  return new ChannelPort(init);
}

/** What a thread's port has besides {@linkcode KernelPort}. */
export interface ThreadPortExit {
  /**
   * Report how this thread ends: `code`, and the fault that ended it, if one
   * did (the Worker then ends; the kernel records both in the thread object).
   */
  threadExit(code: number, fault?: ThreadFault | null): void;
}

/** `fn()`'s result, or its failure, as a settled promise (a call never throws synchronously). */
function settled<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Make the bytes of a transferred `ArrayBuffer` unreachable: detach it, so
 * that every view the program kept of it reads length 0. Shared memory
 * (`SharedArrayBuffer`) cannot be taken back and is left alone.
 */
function detach(buffer: ArrayBufferLike): void {
  if (!(buffer instanceof ArrayBuffer) || buffer.detached || buffer.byteLength === 0) return;
  try {
    buffer.transfer(0);
  } catch {
    try {
      structuredClone(buffer, { transfer: [buffer] });
    } catch {
      // Not detachable (never a buffer the kernel transferred): nothing to take back.
    }
  }
}

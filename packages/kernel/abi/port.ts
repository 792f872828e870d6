/**
 * The kernel port: the system-call interface between user space and the
 * kernel (as `twizzler-abi`'s `Syscall` enum is for Twizzler), and the one
 * encoding its requests and responses travel in.
 *
 * A {@linkcode KernelPort} is all libtwz runs on. The kernel implements it
 * twice: in-process (`Kernel.port()`: direct calls, no encoding, for the
 * embedded `Twz.open` and the shell) and, for a program in a Worker, over a
 * SharedArrayBuffer channel (`connectPort` in `channel.ts` on the Worker's
 * side: every call is encoded with {@linkcode encodeRequest}, the kernel
 * answers with {@linkcode encodeResponse}). A program cannot tell which one
 * it has.
 *
 * ## The memory model, stated once
 * `map` hands out a {@linkcode Mapping}: loads and stores on its `bytes` are
 * loads and stores on the object, with no call on the data path. A store is
 * visible at once to every thread mapping the object, and durable only after
 * a flush covering it and a drain: `Mapping.persist`, or `KernelPort.persist`
 * with many ranges at once (what a transaction commit uses). Every offset a
 * port takes is relative to an object: user space never learns where an
 * object lives in the NVM region. A mapping grants at most the object's
 * protections; a read-only mapping refuses writes in libtwz's handles and
 * accessors (a raw store into `bytes` is not trapped: see docs/THREADS.md).
 *
 * ## Preconditions shared by every call
 * IDs are valid 128-bit IDs; offsets and lengths are non-negative integers
 * inside the object (a `RangeError` otherwise); failures the caller may
 * handle are {@linkcode TwzError}s with an {@linkcode ErrorCode}. A thread
 * being killed gets `ErrorCode.Killed` from its next call and must end.
 *
 * @example A caller: create an object, store into it, make it durable
 * ```ts
 * import type { KernelPort } from "@twz/kernel/abi";
 *
 * export function hello(port: KernelPort): bigint {
 *   const id = port.create({ size: 4096 });
 *   const m = port.map(id);
 *   m.bytes.set(new TextEncoder().encode("hello"), 0);
 *   m.persist(0, 5);
 *   return id;
 * }
 * ```
 *
 * @example The encoding: what travels over a channel
 * ```ts
 * import { decodeRequest, encodeRequest, Sys } from "@twz/kernel/abi";
 *
 * const buf = new Uint8Array(256);
 * const n = encodeRequest(buf, Sys.Read, [0xabcn << 64n, 0, 16]);
 * const { sys, args } = decodeRequest(buf, n);
 * console.log(sys === Sys.Read, args[0] === 0xabcn << 64n); // true true
 * ```
 *
 * @module
 */
import { type CreateSpec, type Lifetime, type ObjectStat, Prot } from "./object.ts";
import type { ObjID } from "./id.ts";
import type { Extent } from "./extent.ts";
import { ErrorCode, TwzError } from "./errors.ts";
import type {
  AccessReport,
  ContextInfo,
  GateCallInfo,
  KeyIds,
  KeyInfo,
  KeySpec,
} from "./security.ts";
import type { GlobalOp, GlobalOps } from "./global.ts";
// deno-lint-ignore no-unused-vars -- named in a doc link
import type { NOT_IN_CLUSTER } from "./global.ts";

/**
 * System-call numbers. A number is never reused: a retired call keeps its
 * number, new calls take the next one.
 */
export const Sys = {
  /** `create(spec) → id` */
  Create: 1,
  /** `delete(id) → count` */
  Delete: 2,
  /** `stat(id) → ObjectStat` */
  Stat: 3,
  /** `exists(id) → boolean` */
  Exists: 4,
  /** `list() → ObjectStat[]` */
  List: 5,
  /** `map(id, prot) → MapReply` */
  Map: 6,
  /** `unmap(handle)` */
  Unmap: 7,
  /** `grow(id, size)` */
  Grow: 8,
  /** `flush(ranges)`: `[handle, offset, length]` triples, relative to each object */
  Flush: 9,
  /** `drain()`: ordering point for earlier flushes */
  Drain: 10,
  /** `persist(ranges)`: flush, then drain */
  Persist: 11,
  /** `read(id, offset, length) → bytes` */
  Read: 12,
  /** `write(id, offset, bytes)` */
  Write: 13,
  /** `rootObject() → id` (created on first use) */
  RootObject: 14,
  /** `rootObjectId() → id` (0n when there is none) */
  RootObjectId: 15,
  /** `info() → SystemInfo` */
  Info: 16,
  /** `threadSelf() → ThreadInfo` */
  ThreadSelf: 17,
  /** `threadExit(code)`: the calling thread ends */
  ThreadExit: 18,
  /** `threadYield()`: a scheduling point; the kernel may deliver a kill here */
  ThreadYield: 19,
  /** `threadKill(tid)` */
  ThreadKill: 20,
  /** `threads() → ThreadInfo[]` */
  Threads: 21,
  /** `threadSync(ops) → results` (sleep while a word equals a value, wake N) */
  ThreadSync: 22,
  /** `spawn(spec) → ThreadInfo` */
  Spawn: 23,
  /** `consoleWrite(text)` */
  ConsoleWrite: 24,
  /** `clock() → { wall, mono }` milliseconds */
  Clock: 25,
  /** `random(n) → bytes` */
  Random: 26,
  /** `threadWait(tid, timeoutMs) → ThreadInfo` (returns when it ends or on timeout) */
  ThreadWait: 27,
  /** `keyCreate(spec) → KeyIds` */
  KeyCreate: 28,
  /** `keyRotate(kuid, spec)` */
  KeyRotate: 29,
  /** `keyInfo(kuid) → KeyInfo` */
  KeyInfo: 30,
  /** `ctxCreate(spec) → id` */
  CtxCreate: 31,
  /** `ctxInfo(ctx) → ContextInfo` */
  CtxInfo: 32,
  /** `ctxAdd(ctx, grant bytes) → index` */
  CtxAdd: 33,
  /** `ctxRemove(ctx, index)` */
  CtxRemove: 34,
  /** `ctxMask(ctx, target, prot)` (target 0n: the global mask; prot null: remove) */
  CtxMask: 35,
  /** `ctxAttach(ctx, tid)`: a thread attaches to a context */
  CtxAttach: 36,
  /** `ctxDetach(ctx, tid)` */
  CtxDetach: 37,
  /** `contexts() → ids` of the calling thread */
  Contexts: 38,
  /** `access(id, contexts) → AccessReport` */
  Access: 39,
  /** `gateServe(id)`: the calling thread answers the object's gate calls */
  GateServe: 40,
  /** `gateReceive(timeoutMs) → GateCallInfo | null` */
  GateReceive: 41,
  /** `gateReply(call, bytes)` */
  GateReply: 42,
  /** `gateCall(id, offset, bytes, timeoutMs) → bytes` */
  GateCall: 43,
  /** `global(op, args) → result`: the global object space (`global.ts`) */
  Global: 44,
  /** `dependents(id) → ids`: the objects tied to `id` (deleted with it) */
  Dependents: 45,
} as const;
/** A system-call number. */
export type SysNo = typeof Sys[keyof typeof Sys];

/** The name of a system call, for messages ("map", "thread_sync"). */
export function sysName(no: number): string {
  for (const [k, v] of Object.entries(Sys)) {
    if (v === no) return k.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
  }
  return `syscall ${no}`;
}

/**
 * An object mapped into the caller's address space: loads and stores on
 * `bytes` are loads and stores on the object. Offsets are relative to the
 * object.
 */
export interface Mapping {
  /** The object's ID. */
  readonly id: ObjID;
  /** Persistent or volatile. */
  readonly lifetime: Lifetime;
  /** Protections of this mapping (`Prot` bits). */
  readonly prot: number;
  /**
   * A small number naming this mapping in the port's calls (`flush`,
   * `persist`, `unmap`); unique among the port's live mappings.
   */
  readonly handle: number;
  /** The live bytes and word views (retargeted when the object moves). */
  readonly extent: Extent;
  /** The object's bytes (empty once the object is deleted or unmapped). */
  readonly bytes: Uint8Array;
  /** A DataView over {@linkcode Mapping.bytes}. */
  readonly view: DataView;
  /** Size in bytes. */
  readonly size: number;
  /** Whether the mapping allows writes. */
  readonly writable: boolean;
  /** Write back `[offset, offset + length)`; durable after {@linkcode Mapping.drain}. */
  flush(offset: number, length: number): void;
  /** Ordering point for earlier flushes (of every mapping of the port). */
  drain(): void;
  /** Make `[offset, offset + length)` durable. */
  persist(offset: number, length: number): void;
}

/**
 * What every {@linkcode Mapping} shares: the views over its live extent and
 * its protections. Each implementation (the kernel's in-process mapping, a
 * thread's over its channel, a remote session's copy) adds the durability
 * calls.
 */
export abstract class MappingBase implements Mapping {
  /**
   * A mapping of object `id` through `extent`.
   *
   * @param id The object's ID.
   * @param lifetime Persistent or volatile.
   * @param prot The mapping's protections.
   * @param handle The mapping's number in its port's calls.
   * @param extent The live bytes.
   */
  constructor(
    readonly id: ObjID,
    readonly lifetime: Lifetime,
    readonly prot: number,
    readonly handle: number,
    readonly extent: Extent,
  ) {}
  /** The object's bytes (empty once the object is deleted or unmapped). */
  get bytes(): Uint8Array {
    return this.extent.bytes;
  }
  /** A DataView over {@linkcode MappingBase.bytes}. */
  get view(): DataView {
    return this.extent.view;
  }
  /** Size in bytes. */
  get size(): number {
    return this.extent.bytes.length;
  }
  /** Whether the mapping allows writes. */
  get writable(): boolean {
    return (this.prot & Prot.Write) !== 0;
  }
  /** Write back `[offset, offset + length)`; durable after {@linkcode MappingBase.drain}. */
  abstract flush(offset: number, length: number): void;
  /** Ordering point for earlier flushes. */
  abstract drain(): void;
  /** Make `[offset, offset + length)` durable. */
  abstract persist(offset: number, length: number): void;
}

/** What the system reports about itself (`info`). */
export interface SystemInfo {
  /** Every mutating call fails with `ReadOnly`. */
  readOnly: boolean;
  /**
   * The HAL keeps writes in a private overlay (a read-only open over a
   * copy-on-write view): user space may replay into read-only mappings.
   */
  privateOverlay: boolean;
  /** The HAL's name (`sim`, `pmem`). */
  hal: string;
  /** Region size in bytes. */
  size: number;
  /** Free data bytes. */
  free: number;
  /** Persistence granularity of the NVM device (`cache-line`, `page`, `byte`). */
  granularity: string;
  /** The image was blank and has just been formatted. */
  formatted: boolean;
  /** Metadata log records replayed at boot. */
  replayed: number;
  /** Persistent objects at boot. */
  objects: number;
  /** Milliseconds boot took. */
  bootMs: number;
  /**
   * A number identifying the durability domain of this port's persistent
   * mappings: a transaction log makes durable only objects of its own domain.
   */
  domain: number;
  /**
   * A random non-zero 32-bit number, new at every boot: a tag for volatile
   * state kept in persistent memory (a lock word from an earlier boot
   * carries another tag and is stale).
   */
  bootId: number;
  /**
   * This node's name when the system is in a cluster (`twz boot --cluster
   * … --node NAME`); absent or `null` otherwise. libtwz publishes a
   * transaction's global objects only on a node.
   */
  node?: string | null | undefined;
}

/** A thread's state word. */
export const ThreadState = {
  /** Being started (loading its program). */
  Starting: 0,
  /** Running. */
  Running: 1,
  /** Asleep in `thread_sync` or `thread_wait`. */
  Sleeping: 2,
  /** Ended (see its exit code and fault). */
  Exited: 3,
} as const;
/** A thread state number. */
export type ThreadStateNo = typeof ThreadState[keyof typeof ThreadState];

/** How a thread ended, when it did not return normally. */
export interface ThreadFault {
  /** `exception`, `protection`, `memory`, `killed`, `unresponsive`, `lost`, `load`. */
  kind: string;
  /** One line: what happened. */
  message: string;
}

/** What the kernel reports about a thread (from its thread object). */
export interface ThreadInfo {
  /** Thread number (unique within one boot; `ps` shows it). */
  tid: number;
  /** The thread object's ID. */
  id: ObjID;
  /** The program's name (`/bin/NAME` without `/bin/`). */
  name: string;
  /** {@linkcode ThreadState}. */
  state: ThreadStateNo;
  /** Exit code once exited (0 on success, non-zero on failure or kill). */
  exitCode: number;
  /** The fault that ended it, if one did. */
  fault: ThreadFault | null;
  /** Start time, milliseconds since the Unix epoch. */
  started: number;
  /** End time, or 0 while it runs. */
  ended: number;
  /** A kill was requested and not yet honoured. */
  killing: boolean;
}

/** What `spawn` takes. */
export interface SpawnSpec {
  /** The code object: one ES module whose default export starts the program. */
  code: ObjID;
  /** The program's name (for `ps`). */
  name: string;
  /** Arguments (`args` of `main`). */
  args: string[];
  /**
   * The security contexts the thread attaches to (docs/SECURITY.md). The
   * spawner must be able to attach to each. Absent: the spawning thread's
   * own contexts (none when the kernel's session spawns).
   */
  contexts?: ObjID[] | undefined;
}

/**
 * What a thread receives when it starts (the kernel posts it to the loader,
 * which hands it to the program's start function): enough to build the
 * Worker side of the port with `connectPort` (`channel.ts`).
 */
export interface ThreadInit {
  /** Thread number. */
  tid: number;
  /** The thread object's ID. */
  id: ObjID;
  /** The program's name. */
  name: string;
  /** Arguments. */
  args: string[];
  /** The system-call channel (layout in `channel.ts`). */
  channel: SharedArrayBuffer;
  /** Where the kernel posts buffers for `transfer` mappings. */
  memory: MessagePort;
  /** The whole NVM region when the HAL shares it (hal-sim), else `null`. */
  region: SharedArrayBuffer | null;
  /**
   * The kernel's count of its `thread_sync` sleepers per bucket of words
   * (`SYNC_BUCKETS` 32-bit counts, see `channel.ts`), shared by every
   * thread. Absent or `null`: every `thread_sync` goes to the kernel.
   */
  sync?: SharedArrayBuffer | null;
  /**
   * The thread's revocation epoch (one Int32): the kernel adds 1 whenever
   * it withdraws one of the thread's mappings (a capability removed, a key
   * rotated, a context detached). Absent or `null`: never revoked.
   */
  epoch?: SharedArrayBuffer | null;
}

/** One `thread_sync` operation. */
export type SyncOp =
  | {
    /**
     * Sleep while the word at (id, offset) equals `value`: a 64-bit word
     * (offset a multiple of 8) when `value` is a `bigint`, a 32-bit one
     * (offset a multiple of 4) when it is a `number`. Little-endian,
     * compared unsigned. Its result 0 (woken) may be spurious: re-read the
     * word and sleep again if need be.
     */
    op: "sleep";
    id: ObjID;
    offset: number;
    value: number | bigint;
    /** Give up after this many milliseconds (none: wait until woken). */
    timeoutMs?: number | undefined;
  }
  | {
    /**
     * Wake up to `count` threads sleeping on the word at (id, offset) (a
     * multiple of 4; either width). Store the word's new value (with
     * `Atomics`) before waking.
     */
    op: "wake";
    id: ObjID;
    offset: number;
    count: number;
  };

/**
 * The system-call interface. Every method is synchronous (from a Worker it
 * waits for the kernel's answer). Failures throw {@linkcode TwzError}.
 */
export interface KernelPort {
  /** Whether the system is read-only (every mutating call fails). */
  readonly readOnly: boolean;
  /** Create an object. Sources need read permission. */
  create(spec?: CreateSpec): ObjID;
  /** Delete an object and those tied to it; returns how many went. */
  delete(id: ObjID): number;
  /** Facts about an object. */
  stat(id: ObjID): ObjectStat;
  /**
   * The objects tied to `id`: those created with `id` among their `ties`,
   * which {@linkcode KernelPort.delete} of `id` deletes with it (and, in
   * turn, theirs: this lists one level). Volatile dependents first, then
   * persistent ones, each once; a quarantined (damaged) dependent is counted
   * by `stat(id).dependents` but not listed. Needs read access to `id` (the
   * kernel's session always has it); an unknown `id` is `ObjectNotFound`,
   * as for {@linkcode KernelPort.stat}.
   */
  dependents(id: ObjID): ObjID[];
  /** Whether an object exists. */
  exists(id: ObjID): boolean;
  /** Every object. */
  list(): ObjectStat[];
  /** Map an object with protections `prot` (at most its default ones). */
  map(id: ObjID, prot?: number): Mapping;
  /**
   * Give a mapping back: it must not be used afterwards. Over a channel its
   * bytes read empty; in-process they may stay readable (the kernel's
   * mappings of one object share their bytes).
   */
  unmap(m: Mapping): void;
  /** Grow an object (its mappings follow it). */
  grow(id: ObjID, size: number): void;
  /**
   * Write back `count` ranges: `ranges` holds `[handle, offset, length]`
   * triples, offsets relative to each mapping's object.
   */
  flush(ranges: Float64Array, count: number): void;
  /** Ordering point for earlier flushes. */
  drain(): void;
  /** {@linkcode KernelPort.flush}, then {@linkcode KernelPort.drain}. */
  persist(ranges: Float64Array, count: number): void;
  /** Copy bytes out of an object. */
  read(id: ObjID, offset: number, length: number): Uint8Array;
  /** Copy bytes into an object (durable when it returns). */
  write(id: ObjID, offset: number, data: Uint8Array): void;
  /** The root object (created on first use). */
  rootObject(): ObjID;
  /** The root object's ID, or 0n when there is none. */
  rootObjectId(): ObjID;
  /** What the system reports about itself. */
  info(): SystemInfo;
  /** The calling thread, or `null` for the kernel's own (embedded) session. */
  threadSelf(): ThreadInfo | null;
  /** Start a program in a new thread. */
  spawn(spec: SpawnSpec): ThreadInfo;
  /** Every thread the system knows (this boot's and earlier ones'). */
  threads(): ThreadInfo[];
  /** Ask a thread to end (cooperative: see docs/THREADS.md). */
  threadKill(tid: number): void;
  /** Wait until a thread ends, at most `timeoutMs`; returns what it is then. */
  threadWait(tid: number, timeoutMs: number): ThreadInfo;
  /** A scheduling point: throws `Killed` when this thread is being killed. */
  threadYield(): void;
  /**
   * Sleep while a word equals a value, or wake sleepers. Returns, per
   * operation: for `sleep`, `0` woken, `1` the value differed, `2` timed out;
   * for `wake`, how many were woken.
   */
  threadSync(ops: SyncOp[]): number[];
  /** Write text to the system console. */
  consoleWrite(text: string): void;
  /** Wall-clock and monotonic time in milliseconds. */
  clock(): { wall: number; mono: number };
  /** `n` random bytes from the system entropy source. */
  random(n: number): Uint8Array;

  // Security (docs/SECURITY.md). The kernel's own session is the admin:
  // it may read and delete every object and manage every key and context,
  // and attaches to none.

  /**
   * The calling thread's revocation epoch word (see `ThreadInit.epoch`):
   * libtwz compares it at map, at pointer resolution and on each
   * cross-object hop. `undefined` for the kernel's session.
   */
  readonly epoch?: Int32Array | undefined;
  /** Create a key: its key object and private object (generated unless given). */
  keyCreate(spec?: KeySpec): Promise<KeyIds>;
  /** Replace a key's pair (generated unless given): its old grants stop granting. */
  keyRotate(kuid: ObjID, spec?: KeySpec): Promise<void>;
  /** A key object's contents. */
  keyInfo(kuid: ObjID): KeyInfo;
  /** Create a security context; `key` speaks for it (signs its delegations). */
  ctxCreate(spec?: { key?: ObjID | undefined }): ObjID;
  /** A context's contents. */
  ctxInfo(ctx: ObjID): ContextInfo;
  /** Add an encoded grant (`encodeGrant`) to a context; returns its index. */
  ctxAdd(ctx: ObjID, grant: Uint8Array): number;
  /** Remove grant `index` from a context (takes effect at the next map). */
  ctxRemove(ctx: ObjID, index: number): void;
  /** Set (or with `null` remove) the context's mask for `target` (0n: its global mask). */
  ctxMask(ctx: ObjID, target: ObjID, prot: number | null): void;
  /**
   * Attach a thread to a context: the calling thread (needs USE on the
   * context), or, from the admin session, thread `tid`.
   */
  ctxAttach(ctx: ObjID, tid?: number): Promise<void>;
  /** Detach a thread (the caller, or from the admin session `tid`) from a context. */
  ctxDetach(ctx: ObjID, tid?: number): void;
  /** The calling thread's contexts (empty for the kernel's session). */
  contexts(): ObjID[];
  /** Effective protections of `id` for `contexts` (default: the caller's), and why. */
  access(id: ObjID, contexts?: ObjID[]): Promise<AccessReport>;
  /** Answer gate calls into `id` from this thread (needs WRITE on it). */
  gateServe(id: ObjID): void;
  /** The next gate call into an object this thread serves (`null` on timeout). */
  gateReceive(timeoutMs: number): GateCallInfo | null;
  /** Answer gate call `call`. */
  gateReply(call: number, result: Uint8Array): void;
  /** Call entry point `offset` of gate object `id`; returns the callee's answer. */
  gateCall(id: ObjID, offset: number, args: Uint8Array, timeoutMs?: number): Uint8Array;

  // The global object space (docs/GLOBAL.md, `global.ts`).

  /**
   * One operation of the global object space. Synchronous: the caller
   * waits for the cluster's answer (a timeout is `TimedOut`). On a system
   * that is not a node: `NotSupported` ({@linkcode NOT_IN_CLUSTER}).
   */
  global<K extends GlobalOp>(op: K, args: GlobalOps[K][0]): GlobalOps[K][1];
}

/** What a `map` request answers over a channel (the Worker side builds the view). */
export interface MapReply {
  /** The object's ID. */
  id: ObjID;
  /** Persistent or volatile. */
  lifetime: Lifetime;
  /** Granted protections. */
  prot: number;
  /** The mapping's handle. */
  handle: number;
  /** Size in bytes. */
  size: number;
  /**
   * Where the bytes are: `shared` = at `offset` in the region buffer the
   * thread received at start (hal-sim); `transfer` = a buffer the kernel
   * posted on the thread's memory port before answering (hal-pmem, volatile
   * objects).
   */
  memory: "shared" | "transfer";
  /** Offset in the shared region buffer (`shared` only). */
  offset: number;
}

// ---------------------------------------------------------------------------
// The encoding. A request is `[u32 sys, value args]`; a response is
// `[u32 status, value]` where status 0 means success and the value is the
// result, and any other status is a TwzError code with a message string.
// Values are tagged: the tag byte says what follows (little-endian).
// ---------------------------------------------------------------------------

const T_UNDEF = 0,
  T_NULL = 1,
  T_FALSE = 2,
  T_TRUE = 3,
  T_I32 = 4,
  T_F64 = 5,
  T_BIGINT = 6,
  T_STRING = 7,
  T_BYTES = 8,
  T_ARRAY = 9,
  T_OBJECT = 10,
  T_F64ARRAY = 11;

/** Raised when a message does not fit its buffer (the caller grows it and retries). */
export class EncodeOverflow extends RangeError {
  constructor() {
    super("message does not fit the channel buffer");
    this.name = "EncodeOverflow";
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** A cursor writing values into a byte buffer. */
export class Writer {
  /** The next byte to write. */
  at = 0;
  /** A DataView over `bytes`. */
  readonly view: DataView;
  /** A writer at the start of `bytes` (the buffer it fills). */
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #room(n: number): void {
    if (this.at + n > this.bytes.length) throw new EncodeOverflow();
  }
  /** Write one byte. */
  u8(v: number): void {
    this.#room(1);
    this.bytes[this.at++] = v;
  }
  /** Write a little-endian u32. */
  u32(v: number): void {
    this.#room(4);
    this.view.setUint32(this.at, v, true);
    this.at += 4;
  }
  /** Write one tagged value. */
  value(v: unknown): void {
    switch (typeof v) {
      case "undefined":
        return this.u8(T_UNDEF);
      case "boolean":
        return this.u8(v ? T_TRUE : T_FALSE);
      case "number":
        if ((v | 0) === v && !Object.is(v, -0)) {
          this.u8(T_I32);
          this.#room(4);
          this.view.setInt32(this.at, v, true);
          this.at += 4;
        } else {
          this.u8(T_F64);
          this.#room(8);
          this.view.setFloat64(this.at, v, true);
          this.at += 8;
        }
        return;
      case "bigint": {
        // Sign byte, then 64-bit limbs, least significant first.
        this.u8(T_BIGINT);
        let x = v < 0n ? -v : v;
        this.u8(v < 0n ? 1 : 0);
        let n = 0;
        for (let y = x; y > 0n; y >>= 64n) n++;
        this.u8(n);
        this.#room(8 * n);
        for (let i = 0; i < n; i++) {
          this.view.setBigUint64(this.at, x & 0xffffffffffffffffn, true);
          this.at += 8;
          x >>= 64n;
        }
        return;
      }
      case "string": {
        this.u8(T_STRING);
        this.#room(4);
        const start = this.at + 4;
        const r = utf8.encodeInto(v, this.bytes.subarray(start));
        if (r.read !== v.length) throw new EncodeOverflow();
        this.view.setUint32(this.at, r.written, true);
        this.at = start + r.written;
        return;
      }
      case "object":
        if (v === null) return this.u8(T_NULL);
        if (v instanceof Uint8Array) {
          this.u8(T_BYTES);
          this.u32(v.length);
          this.#room(v.length);
          this.bytes.set(v, this.at);
          this.at += v.length;
          return;
        }
        if (v instanceof Float64Array) {
          this.u8(T_F64ARRAY);
          this.u32(v.length);
          this.#room(8 * v.length);
          for (let i = 0; i < v.length; i++) this.view.setFloat64(this.at + 8 * i, v[i]!, true);
          this.at += 8 * v.length;
          return;
        }
        if (Array.isArray(v)) {
          this.u8(T_ARRAY);
          this.u32(v.length);
          for (const x of v) this.value(x);
          return;
        }
        {
          const keys = Object.keys(v);
          this.u8(T_OBJECT);
          this.u32(keys.length);
          for (const k of keys) {
            this.value(k);
            this.value((v as Record<string, unknown>)[k]);
          }
          return;
        }
      default:
        throw new TypeError(`cannot encode a ${typeof v} in a system call`);
    }
  }
}

/** A cursor reading values written by {@linkcode Writer}. */
export class Reader {
  /** The next byte to read. */
  at = 0;
  /** A DataView over `bytes`. */
  readonly view: DataView;
  /** A reader of `bytes` up to `end` (reading past it is a malformed message). */
  constructor(readonly bytes: Uint8Array, readonly end: number = bytes.length) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #need(n: number): void {
    if (this.at + n > this.end) {
      throw new TwzError(ErrorCode.InvalidArgument, "malformed system-call message (truncated)");
    }
  }
  /** Read one byte. */
  u8(): number {
    this.#need(1);
    return this.bytes[this.at++]!;
  }
  /** Read a little-endian u32. */
  u32(): number {
    this.#need(4);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  /** Read one tagged value. */
  value(): unknown {
    const tag = this.u8();
    switch (tag) {
      case T_UNDEF:
        return undefined;
      case T_NULL:
        return null;
      case T_FALSE:
        return false;
      case T_TRUE:
        return true;
      case T_I32: {
        this.#need(4);
        const v = this.view.getInt32(this.at, true);
        this.at += 4;
        return v;
      }
      case T_F64: {
        this.#need(8);
        const v = this.view.getFloat64(this.at, true);
        this.at += 8;
        return v;
      }
      case T_BIGINT: {
        const neg = this.u8() === 1;
        const n = this.u8();
        this.#need(8 * n);
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) {
          x = (x << 64n) | this.view.getBigUint64(this.at + 8 * i, true);
        }
        this.at += 8 * n;
        return neg ? -x : x;
      }
      case T_STRING: {
        const n = this.u32();
        this.#need(n);
        const at = this.at;
        this.at += n;
        // Short ASCII strings (keys, kinds, names) without a decoder call.
        if (n <= 32) {
          let s = "";
          for (let i = at; i < at + n; i++) {
            const c = this.bytes[i]!;
            if (c > 127) return fromUtf8.decode(this.bytes.slice(at, at + n));
            s += String.fromCharCode(c);
          }
          return s;
        }
        return fromUtf8.decode(this.bytes.slice(at, at + n));
      }
      case T_BYTES: {
        const n = this.u32();
        this.#need(n);
        const b = this.bytes.slice(this.at, this.at + n);
        this.at += n;
        return b;
      }
      case T_F64ARRAY: {
        const n = this.u32();
        this.#need(8 * n);
        const out = new Float64Array(n);
        for (let i = 0; i < n; i++) out[i] = this.view.getFloat64(this.at + 8 * i, true);
        this.at += 8 * n;
        return out;
      }
      case T_ARRAY: {
        const n = this.u32();
        const out: unknown[] = [];
        for (let i = 0; i < n; i++) out.push(this.value());
        return out;
      }
      case T_OBJECT: {
        const n = this.u32();
        const out: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) {
          const k = this.value();
          if (typeof k !== "string") {
            throw new TwzError(ErrorCode.InvalidArgument, "malformed system-call message (key)");
          }
          out[k] = this.value();
        }
        return out;
      }
      default:
        throw new TwzError(ErrorCode.InvalidArgument, `malformed system-call message (tag ${tag})`);
    }
  }
}

/** Encode a request: the call number and its arguments. Returns the bytes used. */
export function encodeRequest(into: Uint8Array, sys: number, args: readonly unknown[]): number {
  const w = new Writer(into);
  w.u32(sys);
  w.value(args);
  return w.at;
}

/** Decode a request written by {@linkcode encodeRequest}. */
export function decodeRequest(from: Uint8Array, end: number): { sys: number; args: unknown[] } {
  const r = new Reader(from, end);
  const sys = r.u32();
  const args = r.value();
  if (!Array.isArray(args)) {
    throw new TwzError(ErrorCode.InvalidArgument, "malformed system-call message (arguments)");
  }
  return { sys, args };
}

/** Encode a response: a result, or a failure. Returns the bytes used. */
export function encodeResponse(into: Uint8Array, result: unknown, error?: TwzError): number {
  const w = new Writer(into);
  if (error) {
    w.u32(error.code);
    w.value(error.message);
  } else {
    w.u32(0);
    w.value(result);
  }
  return w.at;
}

/** Decode a response: return its result or throw its `TwzError`. */
export function decodeResponse(from: Uint8Array, end: number): unknown {
  const r = new Reader(from, end);
  const status = r.u32();
  const v = r.value();
  if (status !== 0) throw new TwzError(status as ErrorCode, String(v));
  return v;
}

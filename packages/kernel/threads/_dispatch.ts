/**
 * The kernel side of one thread's port: {@linkcode ThreadPort} answers the
 * thread's system calls (decoded by the channel server, `_server.ts`). Object
 * calls go to a {@linkcode LocalPort} of the thread's own (its mapping table
 * by handle, the read-permission check on create sources, one HAL call per
 * flush/persist); thread calls go to the thread manager through
 * {@linkcode ThreadCalls}.
 *
 * Memory handover: a mapping's bytes reach the Worker as
 * - `shared`: an offset in the region's `SharedArrayBuffer`, which every
 *   thread received at start (hal-sim);
 * - `transfer`: a buffer posted on the thread's memory port — a volatile
 *   object's own `SharedArrayBuffer` (any HAL), or, when the region is
 *   external memory (hal-pmem's libpmem2 mapping), a fresh `ArrayBuffer` over
 *   just the object's bytes (`Deno.UnsafePointerView.getArrayBuffer`),
 *   transferred zero copy.
 * After every call the port compares each live mapping's kernel extent with
 * what the thread last heard, and answers the changes as mapping updates
 * (`channel.ts`): grown or moved objects are retargeted, deleted ones emptied.
 *
 * @module
 */
import {
  type CreateSpec,
  ErrorCode,
  type Extent,
  type MapReply,
  type MemoryMessage,
  type ObjID,
  Prot,
  type SpawnSpec,
  type SyncOp,
  Sys,
  sysName,
  type ThreadFault,
  type ThreadInfo,
  TwzError,
  UPDATE_GONE,
  UPDATE_SHARED,
  UPDATE_TRANSFER,
} from "../abi/mod.ts";
import type { Kernel } from "../kernel.ts";
import type { ObjectMapping } from "../_mapping.ts";
import { LocalPort } from "../_port.ts";

/**
 * What a thread's calls need from the thread manager. `tid` is always the
 * calling thread. A method may answer with a Promise: the thread then waits
 * (a deferred answer: `thread_sync` sleep, `thread_wait`).
 */
export interface ThreadCalls {
  /** `thread_self`. */
  threadSelf(tid: number): ThreadInfo;
  /**
   * `thread_exit`: the thread reports its exit code and, when it ends by a
   * fault, the fault (its answer still goes back).
   */
  exit(tid: number, code: number, fault?: ThreadFault | null): void;
  /** `thread_yield`: a scheduling point. */
  yield(tid: number): void | Promise<void>;
  /** `thread_kill`. */
  kill(tid: number, target: number): void;
  /** `threads`. */
  threads(tid: number): ThreadInfo[];
  /** `thread_wait`. */
  wait(tid: number, target: number, timeoutMs: number): ThreadInfo | Promise<ThreadInfo>;
  /** `thread_sync`. */
  sync(tid: number, ops: SyncOp[]): number[] | Promise<number[]>;
  /** `spawn`. */
  spawn(tid: number, spec: SpawnSpec): ThreadInfo;
  /** `console_write`. */
  console(tid: number, text: string): void;
  /**
   * Before thread `tid` grows (`kind` "grow") or deletes (`kind` "delete",
   * which also deletes the objects tied to `id`) object `id`: make every other
   * thread that maps an affected object let go (park it: see
   * `ChannelServer.park`) or kill it. Optional.
   */
  beforeChange?(tid: number, id: ObjID, kind: "grow" | "delete"): void | Promise<void>;
}

/**
 * The thread's mappings of one object, and the object's bytes as the thread
 * last heard of them. The kernel keeps one extent per object and retargets
 * it with a new array when the object moves or goes, so one identity check
 * per mapped object tells whether anything changed.
 */
interface Held {
  extent: Extent;
  /** The extent's bytes when every mapping below was told. */
  bytes: Uint8Array;
  /** The mappings, with the bytes each was last told. */
  maps: Map<number, { m: ObjectMapping; bytes: Uint8Array }>;
}

function bad(what: string): TwzError {
  return new TwzError(ErrorCode.InvalidArgument, what);
}
function idArg(v: unknown): ObjID {
  if (typeof v !== "bigint") throw bad(`expected an object ID, got ${typeof v}`);
  return v;
}
function numArg(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(`${what}: expected a number`);
  return v;
}
/** A timeout: any number but NaN (`Infinity`: no limit). */
function timeoutArg(v: unknown): number {
  if (typeof v !== "number" || Number.isNaN(v)) throw bad("thread_wait: expected a timeout");
  return v;
}
function rangesArg(v: unknown): Float64Array {
  if (!(v instanceof Float64Array) || v.length % 3 !== 0) {
    throw bad("expected [handle, offset, length] triples");
  }
  return v;
}

/**
 * One thread's kernel port: its mappings and the answers to its calls.
 * `dispatch` answers a decoded call with a value, or a Promise when the
 * answer is deferred.
 */
export class ThreadPort {
  readonly #kernel: Kernel;
  readonly #local: LocalPort;
  readonly #calls: ThreadCalls;
  readonly #memory: MessagePort;
  readonly #region: SharedArrayBuffer | null;
  readonly #external: boolean;
  /** Mapped objects. */
  readonly #held = new Map<ObjID, Held>();
  /** The object of each live mapping, by handle. */
  readonly #handles = new Map<number, ObjectMapping>();
  /** The calling thread. */
  readonly tid: number;

  /**
   * A port for thread `tid`'s calls, with no mappings yet.
   *
   * @param kernel The kernel.
   * @param tid The thread.
   * @param calls Thread calls (the thread manager).
   * @param memory The kernel's end of the thread's memory port.
   * @param region The region buffer the thread received (hal-sim), or `null`.
   * @param external Whether the region's bytes are memory the HAL mapped
   *   itself (hal-pmem: its `share()` is a file): only then are views of an
   *   object's bytes made for the thread.
   */
  constructor(
    kernel: Kernel,
    tid: number,
    calls: ThreadCalls,
    memory: MessagePort,
    region: SharedArrayBuffer | null,
    external: boolean,
  ) {
    this.#kernel = kernel;
    this.#local = new LocalPort(kernel);
    this.#calls = calls;
    this.#memory = memory;
    this.#region = region;
    this.#external = external;
    this.tid = tid;
  }

  /** Whether this thread has a live mapping of `id`. */
  maps(id: ObjID): boolean {
    return this.#held.has(id);
  }

  /** The live bytes of the thread's mapping `handle`, if it holds one. */
  extentOf(handle: number): Extent | undefined {
    return this.#handles.get(handle)?.extent;
  }

  /** How many live mappings the thread holds. */
  get mappings(): number {
    return this.#handles.size;
  }

  /** Forget every mapping and close the memory port (the thread ended). */
  release(): void {
    for (const m of this.#handles.values()) this.#local.unmap(m);
    this.#handles.clear();
    this.#held.clear();
    this.#memory.close();
  }

  /**
   * Answer call `sys` with `args` (as decoded from the channel).
   *
   * @throws {TwzError} The call failed (or `InvalidArgument`: malformed).
   */
  dispatch(sys: number, args: unknown[]): unknown {
    const k = this.#local, c = this.#calls, tid = this.tid;
    switch (sys) {
      case Sys.Create:
        return k.create(args[0] as CreateSpec | undefined);
      case Sys.Delete:
        return this.#change(idArg(args[0]), "delete", (id) => k.delete(id));
      case Sys.Stat:
        return k.stat(idArg(args[0]));
      case Sys.Exists:
        return k.exists(idArg(args[0]));
      case Sys.List:
        return k.list();
      case Sys.Map:
        return this.#map(
          idArg(args[0]),
          args[1] === undefined ? Prot.ReadWrite : numArg(args[1], "map"),
        );
      case Sys.Unmap: {
        const m = this.#handles.get(numArg(args[0], "unmap"));
        if (m) this.#forget(m);
        return undefined;
      }
      case Sys.Grow: {
        const size = numArg(args[1], "grow");
        return this.#change(idArg(args[0]), "grow", (id) => k.grow(id, size));
      }
      case Sys.Flush: {
        const r = rangesArg(args[0]);
        return k.flush(r, r.length / 3);
      }
      case Sys.Drain:
        return k.drain();
      case Sys.Persist: {
        const r = rangesArg(args[0]);
        return k.persist(r, r.length / 3);
      }
      case Sys.Read:
        return k.read(idArg(args[0]), numArg(args[1], "read"), numArg(args[2], "read"));
      case Sys.Write: {
        if (!(args[2] instanceof Uint8Array)) throw bad("write: expected bytes");
        return k.write(idArg(args[0]), numArg(args[1], "write"), args[2]);
      }
      case Sys.RootObject:
        return k.rootObject();
      case Sys.RootObjectId:
        return k.rootObjectId();
      case Sys.Info:
        // The kernel's own port: one durability domain per kernel.
        return this.#kernel.port().info();
      case Sys.ThreadSelf:
        return c.threadSelf(tid);
      case Sys.ThreadExit:
        return c.exit(tid, numArg(args[0], "thread_exit"), (args[1] ?? null) as ThreadFault | null);
      case Sys.ThreadYield:
        return c.yield(tid);
      case Sys.ThreadKill:
        return c.kill(tid, numArg(args[0], "thread_kill"));
      case Sys.Threads:
        return c.threads(tid);
      case Sys.ThreadSync:
        if (!Array.isArray(args[0])) throw bad("thread_sync: expected a list of operations");
        return c.sync(tid, args[0] as SyncOp[]);
      case Sys.Spawn:
        return c.spawn(tid, args[0] as SpawnSpec);
      case Sys.ThreadWait:
        return c.wait(tid, numArg(args[0], "thread_wait"), timeoutArg(args[1]));
      case Sys.ConsoleWrite:
        if (typeof args[0] !== "string") throw bad("console_write: expected a string");
        return c.console(tid, args[0]);
      case Sys.Clock: {
        // Two numbers, not an object: keys cost a string decode each.
        const t = k.clock();
        return new Float64Array([t.wall, t.mono]);
      }
      case Sys.Random:
        return k.random(numArg(args[0], "random"));
      default:
        throw new TwzError(ErrorCode.NotSupported, `${sysName(sys)} is not a system call`);
    }
  }

  /** Drop one mapping. */
  #forget(m: ObjectMapping): void {
    this.#handles.delete(m.handle);
    const h = this.#held.get(m.id);
    if (h) {
      h.maps.delete(m.handle);
      if (h.maps.size === 0) this.#held.delete(m.id);
    }
    this.#local.unmap(m);
  }

  /** Grow or delete after the other threads let go of the object. */
  #change<T>(id: ObjID, kind: "grow" | "delete", act: (id: ObjID) => T): T | Promise<T> {
    const wait = this.#calls.beforeChange?.(this.tid, id, kind);
    if (wait instanceof Promise) return wait.then(() => act(id));
    return act(id);
  }

  #map(id: ObjID, prot: number): MapReply {
    const m = this.#local.map(id, prot) as ObjectMapping;
    const bytes = m.extent.bytes;
    let memory: "shared" | "transfer";
    try {
      memory = this.#hand(m.handle, bytes);
    } catch (e) {
      this.#local.unmap(m);
      throw e;
    }
    let h = this.#held.get(m.id);
    if (h === undefined) {
      h = { extent: m.extent, bytes, maps: new Map() };
      this.#held.set(m.id, h);
    }
    h.maps.set(m.handle, { m, bytes });
    this.#handles.set(m.handle, m);
    return {
      id: m.id,
      lifetime: m.lifetime,
      prot: m.prot,
      handle: m.handle,
      size: bytes.length,
      memory,
      offset: memory === "shared" ? bytes.byteOffset : 0,
    };
  }

  /**
   * Hand `bytes` to the thread: `shared` when they are in the region buffer
   * the thread has, else post a buffer on the memory port (`transfer`).
   */
  #hand(handle: number, bytes: Uint8Array): "shared" | "transfer" {
    if (this.#region !== null && bytes.buffer === this.#region) return "shared";
    let msg: MemoryMessage;
    if (bytes.buffer instanceof SharedArrayBuffer) {
      msg = { handle, buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.length };
      this.#memory.postMessage(msg);
      return "transfer";
    }
    let buffer: ArrayBuffer;
    if (bytes.length === 0) buffer = new ArrayBuffer(0);
    else if (!this.#external) {
      // An ordinary ArrayBuffer (e.g. a copy-on-write overlay): a second
      // view of it would outlive its owner's memory; nothing safe to hand.
      throw new TwzError(
        ErrorCode.NotSupported,
        "this HAL's memory cannot be mapped into a thread (neither shared nor mapped by the HAL)",
      );
    } else {
      // External memory (a libpmem2 mapping): a new ArrayBuffer over the same
      // bytes, which can be transferred without detaching the kernel's view.
      try {
        const at = Deno.UnsafePointer.of(bytes as Uint8Array<ArrayBuffer>);
        if (at === null) throw new Error("no address");
        buffer = Deno.UnsafePointerView.getArrayBuffer(at, bytes.length);
      } catch (e) {
        throw new TwzError(
          ErrorCode.NotSupported,
          `cannot hand ${bytes.length} bytes of this HAL's memory to a thread: ${
            (e as Error).message
          }`,
          { cause: e },
        );
      }
    }
    msg = { handle, buffer, offset: 0, length: bytes.length };
    this.#memory.postMessage(msg, [buffer]);
    return "transfer";
  }

  /**
   * The mapping updates the thread has not heard yet: pushes
   * `handle, kind, offset, size` per changed mapping onto `out` (posting new
   * buffers first) and returns how many.
   */
  updates(out: number[]): number {
    let n = 0;
    for (const h of this.#held.values()) {
      const bytes = h.extent.bytes;
      if (bytes === h.bytes) continue;
      h.bytes = bytes;
      for (const told of h.maps.values()) {
        if (told.bytes === bytes) continue;
        told.bytes = bytes;
        const handle = told.m.handle;
        n++;
        if (bytes.length === 0) {
          out.push(handle, UPDATE_GONE, 0, 0);
          this.#forget(told.m);
        } else if (this.#hand(handle, bytes) === "shared") {
          out.push(handle, UPDATE_SHARED, bytes.byteOffset, bytes.length);
        } else {
          out.push(handle, UPDATE_TRANSFER, 0, bytes.length);
        }
      }
    }
    return n;
  }
}

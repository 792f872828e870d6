/**
 * The thread manager: programs stored as code objects run as threads, each
 * a Worker with Deno permissions `"none"` that reaches the kernel only over
 * its system-call channel (`_server.ts`, `abi/channel.ts`).
 *
 * - **Spawn** reads the code object (it must be executable: `Prot.Exec`),
 *   creates the thread's state object (`_object.ts`), opens its channel and
 *   starts a Worker running the trusted loader (`loader.ts`), which imports
 *   the program from a `blob:` URL and calls its default export with the
 *   `ThreadInit`. The URL is made on a code object's first spawn and kept
 *   for the next ones (for the 32 most recently spawned code objects;
 *   dropped when the object is grown or deleted, or a load failed): Deno
 *   caches compiled code by URL, so later starts of a program skip most of
 *   the compiling, and spawn reads and decodes the code object once. A
 *   writable code object gets a new URL every spawn.
 * - **End**: `thread_exit` (authoritative when it comes first), or the
 *   loader's report when the start function returns or throws; a worker
 *   error event or a failed import ends the thread with a fault. The kernel
 *   and every other thread go on.
 * - **Kill** is cooperative: the kill word is set and the thread woken (its
 *   pending and every later call throw `Killed`); after a grace period the
 *   Worker is terminated. A thread whose event loop did not run during the
 *   grace period (it spins in JavaScript, never calling the kernel) ends as
 *   `exited` with fault `unresponsive`: Deno 2.9's `terminate()` does not
 *   stop it, so its Worker keeps a CPU busy until the system process exits
 *   (counted by {@linkcode ThreadManager.unstoppable}).
 * - **thread_sync**: `sleep` while a 32- or 64-bit word of an object equals
 *   a value, `wake` up to N sleepers, timeouts. A thread's batch with one
 *   sleep on shared memory (hal-sim's region, volatile objects) sleeps in
 *   its Worker (`Atomics.wait`, see `abi/channel.ts`); every other sleep is
 *   a deferred answer here. The kernel's wake also notifies a word in shared
 *   memory, and it counts its own sleepers per bucket of words in a buffer
 *   every thread gets (`ThreadInit.sync`), so a thread's direct wake knows
 *   when to ask the kernel to wake the rest. **thread_wait** sleeps until a
 *   thread ends.
 * - **Cooperative unmap**: before the kernel grows or deletes an object a
 *   live thread maps, that thread is parked inside a call (its answer then
 *   carries the mapping update). If it does not enter the kernel within
 *   `revokeGraceMs` it is killed and the grow/delete fails with `Busy`
 *   (try again once it has ended); objects an unresponsive thread mapped
 *   cannot be grown or deleted until the system stops (its Worker still
 *   holds views of them).
 * - **Security contexts** (docs/SECURITY.md): every thread acts for its
 *   principal, its number and the security contexts it is attached to (a
 *   spawn's `contexts`, else its spawner's; none when the kernel's session
 *   spawns). A thread attaches itself to a context it may use
 *   (`ctx_attach`); the kernel's session attaches and detaches any thread
 *   ({@linkcode ThreadManager.attach}, {@linkcode ThreadManager.detach}).
 * - **Revocation**: after every change that may narrow access (a grant
 *   removed, a key rotated, a mask set, a context detached) each live
 *   thread's mappings are checked again; those no longer allowed are
 *   withdrawn: the thread's epoch word (`ThreadInit.epoch`) moves at once,
 *   its next answer empties them (`UPDATE_GONE`), and a thread that does
 *   not enter the kernel within `revokeGraceMs` is killed ("did not give up
 *   a revoked mapping").
 * - **Gates**: a thread with write access to an object serves its gate
 *   (`gate_serve`), takes calls (`gate_receive`) and answers them
 *   (`gate_reply`); another thread calls an entry point (`gate_call`) when a
 *   capability's gate admits it. The callee learns the caller's number and
 *   contexts and runs with its own; the caller sleeps until the answer. A
 *   caller ending drops its call; a server ending fails the calls it had.
 * - Threads of an earlier boot read "exited (lost at reboot)" after
 *   {@linkcode ThreadManager.markLost}.
 *
 * @module
 */
import {
  ErrorCode,
  type Extent,
  formatId,
  type GateCallInfo,
  type ObjID,
  Prot,
  type SpawnSpec,
  SYNC_BUCKETS,
  syncBucket,
  type SyncOp,
  syncOpKind,
  syncWidth,
  syncWordCheck,
  type ThreadFault,
  type ThreadInfo,
  type ThreadInit,
  ThreadState,
  type ThreadStateNo,
  TwzError,
} from "../abi/mod.ts";
import type { Kernel } from "../kernel.ts";
import type { ObjectMapping } from "../_mapping.ts";
import { syncWordEquals, type ThreadService } from "../_port.ts";
import {
  KERNEL_SPIN_US,
  openThreadChannel,
  type ThreadCalls,
  type ThreadChannel,
} from "./_server.ts";
import { decodeCodeObject, THREAD_OBJECT_SIZE, ThreadFlag, ThreadObject } from "./_object.ts";
import { loaderSource } from "./loader.ts";

/** Exit code of a killed thread (128 + SIGKILL, as shells show it). */
export const KILLED_EXIT_CODE = 137;
/** Exit code of a thread whose program could not be loaded. */
export const LOAD_EXIT_CODE = 126;

/** Code objects whose `blob:` URL the manager keeps (the least recently spawned goes first). */
const CODE_URLS = 32;

/** Options of {@linkcode ThreadManager}. */
export interface ThreadManagerOptions {
  /** Called for every spawn (also spawns by programs), after the thread object exists. */
  onSpawn?: (info: ThreadInfo) => void;
  /** Called when a thread of this boot ends. */
  onExit?: (info: ThreadInfo) => void;
  /** Where threads' console text goes. @default {kernel.hal.console.write} */
  console?: (text: string) => void;
  /**
   * Milliseconds a killed thread has to end by itself before its Worker is
   * terminated. @default {2000}
   */
  killGraceMs?: number;
  /**
   * Milliseconds a thread that maps an object being grown or deleted has to
   * enter a call (the kernel waits synchronously) before it is killed and
   * the change refused; also how long a thread whose mapping was revoked
   * has to enter the kernel before it is killed.
   * @default {200}
   */
  revokeGraceMs?: number;
  /**
   * Microseconds the kernel keeps polling a thread's channel after each
   * answer before it sleeps in `Atomics.waitAsync`: a thread that calls again
   * within that time is served without a wake-up of the kernel's thread (the
   * wake-up is most of a round trip: see docs/BENCHMARKS.md). The kernel
   * gives its event loop a turn at least every 256 calls. 0 turns it off.
   * @default {20}
   */
  spinUs?: number;
}

/** Options of {@linkcode ThreadManager.spawn}. */
export interface SpawnOptions {
  /** Where this thread's console text goes (its children inherit it). */
  console?: (text: string) => void;
  /** The spawning thread (0: the kernel's own session). */
  parent?: number;
}

/** A gate call between two threads. */
interface GateCall {
  info: GateCallInfo;
  caller: Thread;
  server: Thread;
  resolve: (answer: Uint8Array) => void;
  reject: (e: TwzError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** A thread serving gates: the calls waiting for it and its pending receive. */
interface GateServer {
  /** The gate objects it serves. */
  ids: Set<ObjID>;
  /** Calls not yet received, oldest first. */
  inbox: GateCall[];
  /** Calls received and not yet answered, by number. */
  taken: Map<number, GateCall>;
  /** A pending `gate_receive`. */
  receive: ((call: GateCall | null) => void) | undefined;
  /** Calls received whose caller stopped waiting (why), until answered. */
  dropped: Map<number, string>;
}

/** A pending deferred call of a thread (a sleep or a wait). */
interface Pending {
  /** End it: resolve with the outcome, or reject (kill). */
  cancel(error: TwzError): void;
}

/** A code object's module text as a `blob:` URL (see the module doc). */
interface CodeUrl {
  /** The code object. */
  id: ObjID;
  url: string;
  /** Threads given the URL that have not imported it yet. */
  loading: number;
  /** No longer kept: revoked once nobody is loading it. */
  dropped: boolean;
}

/** One thread of this boot. */
interface Thread {
  tid: number;
  info: ThreadInfo;
  obj: ThreadObject;
  map: ObjectMapping;
  console: (text: string) => void;
  worker: Worker | undefined;
  chan: ThreadChannel | undefined;
  report: MessagePort | undefined;
  /** Its program's URL, until the loader imported it (or the thread ended). */
  code: CodeUrl | undefined;
  /** The exit was recorded (object says exited). */
  ended: boolean;
  /** The Worker was terminated and the channel closed. */
  reaped: boolean;
  /**
   * Killed while spinning: its Worker still runs and holds views of the
   * objects it mapped, so its channel stays open (every call throws
   * `Killed`) to keep its mapping table: those objects may not be grown or
   * deleted until the system stops.
   */
  zombie: boolean;
  pending: Pending | undefined;
  killTimer: ReturnType<typeof setTimeout> | undefined;
  reapTimer: ReturnType<typeof setTimeout> | undefined;
  /** The loader answered a ping since the kill. */
  alive: boolean;
  /** Why it is being killed (the fault message when it ends killed). */
  killReason: string;
  exitWaiters: ((info: ThreadInfo) => void)[];
  /** Its security contexts: the live array its principal holds. */
  contexts: ObjID[];
  /** Its revocation epoch word (`ThreadInit.epoch`). */
  epoch: Int32Array;
  /** Its gates, once it serves one. */
  gates: GateServer | undefined;
  /** Its gate call waiting for an answer, if any. */
  calling: GateCall | undefined;
}

/** One sleeper on one or more words (`thread_sync`). */
interface Sleeper {
  t: Thread;
  keys: string[];
  done: (outcome: number) => void;
}

const EXITED: ThreadStateNo = ThreadState.Exited;

function fault(kind: string, message: string): ThreadFault {
  return { kind, message };
}

/**
 * The kernel's thread manager (see the module doc). Making one installs it
 * as `kernel.threads` and hooks the kernel's grow/delete (cooperative unmap)
 * and shutdown/halt (every Worker terminated).
 *
 * @example Run a program stored as a code object
 * ```ts ignore
 * import { Kernel, Prot } from "@twz/kernel";
 * import { encodeCodeObject, ThreadManager } from "@twz/kernel/threads";
 *
 * const manager = new ThreadManager(kernel);
 * const bytes = encodeCodeObject("export default () => 7;");
 * const src = kernel.create({ size: bytes.length, lifetime: "volatile" });
 * kernel.write(src, 0, bytes);
 * const code = kernel.create({ size: bytes.length, prot: Prot.Read | Prot.Exec,
 *   sources: [{ id: src, srcOffset: 0, dstOffset: 0, length: bytes.length }] });
 * const t = manager.spawn({ code, name: "seven", args: [] });
 * console.log((await manager.wait(t.tid)).exitCode); // 7
 * await manager.shutdown(1000);
 * ```
 */
export class ThreadManager implements ThreadService {
  readonly #kernel: Kernel;
  readonly #options: ThreadManagerOptions;
  readonly #threads = new Map<number, Thread>();
  /** Thread objects of earlier boots (given to markLost), by ID. */
  readonly #earlier = new Map<ObjID, ThreadObject>();
  readonly #queues = new Map<string, Sleeper[]>();
  /**
   * Sleepers in `#queues` per bucket of words (`syncBucket`), shared with
   * every thread (`ThreadInit.sync`): a thread's direct wake asks the kernel
   * only when its word's count is non-zero.
   */
  readonly #sleepCounts = new Int32Array(new SharedArrayBuffer(4 * SYNC_BUCKETS));
  /** Kept code URLs by code object, the least recently spawned first. */
  readonly #codeUrls = new Map<ObjID, CodeUrl>();
  #nextTid = 1;
  #loaderUrl: string | undefined;
  #stopping = false;
  #unstoppable = 0;
  /** What threads' system calls reach (`tid` is the caller). */
  readonly #calls: ThreadCalls = {
    threadSelf: (tid) => this.info(tid),
    exit: (tid, code, reported?: ThreadFault | null) => this.#exit(tid, code, reported),
    yield: (tid) => {
      const t = this.#get(tid);
      if (t.info.killing) throw killedError(t);
    },
    kill: (tid, target) =>
      this.#kill(this.#get(target), `killed by thread ${tid}`, this.#killGraceMs),
    threads: () => this.threads(),
    wait: (tid, target, timeoutMs) => this.#threadWait(tid, target, timeoutMs),
    sync: (tid, ops) => this.#sync(tid, ops),
    spawn: (tid, spec) => this.#spawnBy(tid, spec),
    console: (tid, text) => this.#get(tid).console(text),
    attach: (tid, ctx) => this.#attachSelf(tid, ctx),
    detach: (tid, ctx) => this.detach(tid, ctx),
    gateServe: (tid, id) => this.#gateServe(tid, id),
    gateReceive: (tid, timeoutMs) => this.#gateReceive(tid, timeoutMs),
    gateReply: (tid, call, result) => this.#gateReply(tid, call, result),
    gateCall: (tid, id, offset, args, timeoutMs) =>
      this.#gateCall(tid, id, offset, args, timeoutMs),
  };
  /** Gate objects served, and by which thread. */
  readonly #gateServers = new Map<ObjID, Thread>();
  #nextCall = 1;

  /**
   * Make the manager of `kernel` and install it (`kernel.threads`, the
   * kernel's object-change and stop hooks).
   */
  constructor(kernel: Kernel, options: ThreadManagerOptions = {}) {
    this.#kernel = kernel;
    this.#options = options;
    kernel.threads = this;
    kernel.onObjectChange = (ids, why) => {
      for (const id of ids) {
        const code = this.#codeUrls.get(id);
        if (code !== undefined) this.#dropCode(code);
      }
      this.#revoke(ids, why);
      if (why === "delete") this.#wakeDeleted(ids);
    };
    kernel.onStop = (why) => this.#stopNow(why);
    kernel.security.onNarrow = () => {
      for (const t of this.#threads.values()) this.#recheck(t);
    };
  }

  /** Workers killed while spinning: they use a CPU until the process exits. */
  get unstoppable(): number {
    return this.#unstoppable;
  }

  get #killGraceMs(): number {
    return this.#options.killGraceMs ?? 2000;
  }

  // -------------------------------------------------------------------------
  // ThreadService (the kernel's own session) and the board's API
  // -------------------------------------------------------------------------

  /**
   * Start a program in a new thread.
   *
   * @param spec The code object, the program's name, its arguments and
   *   the security contexts it attaches to (absent: the parent's; none when
   *   the kernel's session spawns). Whether the spawner may attach to them
   *   is checked before (a thread's `spawn` call): here every context is
   *   taken.
   * @param options Console and parent.
   * @returns The new thread (state "starting").
   * @throws {TwzError} `ObjectNotFound` (no code object), `AccessDenied` (not
   * executable), `InvalidArgument` (not a code object, bad spec, a context
   * that is not one), `Shutdown` (the manager is stopping).
   */
  spawn(spec: SpawnSpec, options: SpawnOptions = {}): ThreadInfo {
    if (this.#stopping || this.#kernel.isShutdown) {
      throw new TwzError(ErrorCode.Shutdown, "the system is shutting down: no new threads");
    }
    const s = spec as Partial<SpawnSpec> | null;
    if (
      typeof s !== "object" || s === null || typeof s.code !== "bigint" ||
      typeof s.name !== "string" || !Array.isArray(s.args) ||
      !s.args.every((a) => typeof a === "string")
    ) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        "spawn: expected { code, name, args: string[] }",
      );
    }
    const kernel = this.#kernel;
    const contexts = s.contexts === undefined || s.contexts === null
      ? [...(this.#threads.get(options.parent ?? 0)?.contexts ?? [])]
      : this.#contextList(s.contexts);
    const st = kernel.stat(s.code);
    if (!(st.prot & Prot.Exec)) {
      throw new TwzError(
        ErrorCode.AccessDenied,
        `Cannot run ${formatId(s.code)}: it is not executable (protections lack x)`,
      );
    }
    // Its kept URL, or its text, read and decoded now (a bad code object makes no thread).
    const program = this.#codeUrls.get(s.code) ??
      decodeCodeObject(s.code, kernel.read(s.code, 0, st.size));
    const tid = this.#nextTid++;
    const started = kernel.hal.clock.wallclock();
    const objId = kernel.create({
      size: THREAD_OBJECT_SIZE,
      lifetime: kernel.readOnly ? "volatile" : "persistent",
    });
    const map = kernel.map(objId, Prot.ReadWrite);
    const obj = new ThreadObject(objId, map.extent);
    obj.init({ tid, parent: options.parent ?? 0, name: s.name, code: s.code, started });
    this.#persist(map);
    const t: Thread = {
      tid,
      info: {
        tid,
        id: objId,
        name: s.name,
        state: ThreadState.Starting,
        exitCode: 0,
        fault: null,
        started,
        ended: 0,
        killing: false,
      },
      obj,
      map,
      console: options.console ?? this.#options.console ??
        ((text) => kernel.hal.console.write(text)),
      worker: undefined,
      chan: undefined,
      report: undefined,
      code: undefined,
      ended: false,
      reaped: false,
      zombie: false,
      pending: undefined,
      killTimer: undefined,
      reapTimer: undefined,
      alive: false,
      killReason: "",
      exitWaiters: [],
      contexts,
      epoch: new Int32Array(new SharedArrayBuffer(4)),
      gates: undefined,
      calling: undefined,
    };
    this.#threads.set(tid, t);
    try {
      const code = t.code = this.#useCode(s.code, program, st.prot);
      const chan = openThreadChannel(kernel, tid, this.#calls, {
        spinUs: this.#options.spinUs ?? KERNEL_SPIN_US,
        principal: { admin: false, tid, contexts },
      });
      t.chan = chan;
      const { port1, port2 } = new MessageChannel();
      t.report = port1;
      port1.onmessage = (e: MessageEvent) => this.#onReport(t, e.data);
      const worker = new Worker(this.#loader(), {
        type: "module",
        name: `twz-${tid}-${s.name}`,
        deno: { permissions: "none" },
      });
      t.worker = worker;
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#faulted(t, 1, fault("exception", clean(e.message || "uncaught error in the thread")));
      };
      worker.onmessageerror = () => {
        this.#faulted(t, 1, fault("exception", "a message to the kernel could not be read"));
      };
      const init: ThreadInit = {
        tid,
        id: objId,
        name: s.name,
        args: [...s.args],
        channel: chan.init.channel,
        memory: chan.init.memory,
        region: chan.init.region,
        sync: this.#sleepCounts.buffer as SharedArrayBuffer,
        epoch: t.epoch.buffer as SharedArrayBuffer,
      };
      worker.postMessage({ t: "start", init, url: code.url, report: port2 }, [
        chan.init.memory,
        port2,
      ]);
    } catch (e) {
      this.#end(t, LOAD_EXIT_CODE, fault("load", `cannot start a Worker: ${(e as Error).message}`));
      this.#reap(t);
      throw e;
    }
    const info = this.#info(t);
    this.#options.onSpawn?.(info);
    return info;
  }

  /** Every thread: earlier boots' (given to {@linkcode markLost}), then this boot's. */
  threads(): ThreadInfo[] {
    const out: ThreadInfo[] = [];
    for (const o of this.#earlier.values()) if (o.valid) out.push(this.#lostInfo(o));
    for (const t of this.#threads.values()) out.push(this.#info(t));
    return out;
  }

  /**
   * What one thread of this boot is now.
   *
   * @throws {TwzError} `InvalidArgument` for an unknown thread number.
   */
  info(tid: number): ThreadInfo {
    return this.#info(this.#get(tid));
  }

  /** {@linkcode ThreadService.waitNow}: what the thread is now. */
  waitNow(tid: number): ThreadInfo {
    return this.info(tid);
  }

  /**
   * Wait until a thread of this boot ends.
   *
   * @throws {TwzError} `InvalidArgument` for an unknown thread number.
   */
  wait(tid: number): Promise<ThreadInfo> {
    const t = this.#get(tid);
    if (t.ended) return Promise.resolve(this.#info(t));
    return new Promise((resolve) => t.exitWaiters.push(resolve));
  }

  /**
   * Ask a thread to end (cooperative: see the module doc). Nothing happens
   * for a thread that has ended or is being killed already.
   *
   * @throws {TwzError} `InvalidArgument` for an unknown thread number.
   */
  kill(tid: number): void {
    this.#kill(this.#get(tid), "killed", this.#killGraceMs);
  }

  /**
   * Attach a thread to a security context (the kernel's own session: no
   * rights needed). Attaching twice changes nothing.
   *
   * @throws {TwzError} `InvalidArgument` for an unknown or ended thread, or
   * what `security.ctxInfo` throws for an object that is not a context.
   */
  attach(tid: number, ctx: ObjID): void {
    const t = this.#get(tid);
    if (t.ended) throw new TwzError(ErrorCode.InvalidArgument, `thread ${tid} has ended`);
    this.#contextList([ctx]);
    if (!t.contexts.includes(ctx)) t.contexts.push(ctx);
  }

  /**
   * Detach a thread from a security context: from now on it has what its
   * other contexts give it, and its mappings no longer allowed are
   * withdrawn (see the module doc).
   *
   * @throws {TwzError} `InvalidArgument` for an unknown thread, or one not
   * attached to `ctx`.
   */
  detach(tid: number, ctx: ObjID): void {
    const t = this.#get(tid);
    const at = t.contexts.indexOf(ctx);
    if (at < 0) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `thread ${tid} is not attached to context ${formatId(ctx)}`,
      );
    }
    t.contexts.splice(at, 1);
    this.#recheck(t);
    this.#kernel.security.detached(ctx);
  }

  /** The security contexts thread `tid` is attached to (a copy). */
  contexts(tid: number): ObjID[] {
    return [...this.#get(tid).contexts];
  }

  /**
   * Wake up to `count` threads sleeping on the word at (`id`, `offset`):
   * those the kernel sleeps (oldest first), then, when the word lies in
   * shared memory, those sleeping on it in their Workers (`Atomics.notify`).
   * An object that does not exist, or an offset that is not a word of it,
   * wakes nobody.
   *
   * @returns How many were woken.
   */
  wake(id: ObjID, offset: number, count: number): number {
    const key = wordKey(id, offset);
    const q = this.#queues.get(key);
    const want = Math.floor(count);
    let n = 0;
    while (q !== undefined && q.length > 0 && n < want) {
      q[0]!.done(0);
      n++;
    }
    if (n < want && Number.isInteger(offset) && offset >= 0 && offset % 4 === 0) {
      let e: Extent | undefined;
      try {
        // The kernel's own look (a waker's right to the word was checked by its port).
        if (!this.#kernel.isShutdown) e = this.#kernel.map(id, Prot.Read, Prot.Read).extent;
      } catch {
        e = undefined; // no such object (or not readable): nobody sleeps on it
      }
      if (
        e !== undefined && e.words && e.bytes.buffer instanceof SharedArrayBuffer &&
        offset + 4 <= e.bytes.length
      ) {
        n += Atomics.notify(e.i32, offset / 4, want - n);
      }
    }
    return n;
  }

  /**
   * Objects are about to be deleted: threads sleeping on a word of one of
   * them would never be woken, so their `thread_sync` fails now with
   * `ObjectNotFound`.
   */
  #wakeDeleted(ids: readonly ObjID[]): void {
    const gone = new Set(ids.map((id) => `${id}:`));
    const hit = new Set<Sleeper>();
    for (const [key, q] of this.#queues) {
      if (gone.has(key.slice(0, key.indexOf(":") + 1))) { for (const sl of q) hit.add(sl); }
    }
    for (const sl of hit) {
      sl.t.pending?.cancel(
        new TwzError(
          ErrorCode.ObjectNotFound,
          "thread_sync: the object slept on was deleted while the thread slept",
        ),
      );
    }
  }

  /**
   * Mark threads of an earlier boot lost: each ID that names a thread object
   * not of this boot and not exited is rewritten "exited, fault lost"
   * (persisted). Call at boot before the first spawn: new thread numbers
   * then start above the highest one seen, so `/proc/<tid>` stays unique.
   * IDs that do not name a thread object are skipped.
   *
   * @returns The threads as they read now.
   */
  markLost(ids: readonly ObjID[]): ThreadInfo[] {
    const kernel = this.#kernel;
    const out: ThreadInfo[] = [];
    const mine = new Set([...this.#threads.values()].map((t) => t.info.id));
    for (const id of ids) {
      if (mine.has(id) || !kernel.exists(id)) continue;
      let map: ObjectMapping;
      try {
        map = kernel.map(id, kernel.readOnly ? Prot.Read : Prot.ReadWrite);
      } catch {
        continue;
      }
      const o = new ThreadObject(id, map.extent);
      if (!o.valid) continue;
      if (o.state !== EXITED && !kernel.readOnly && (map.prot & Prot.Write)) {
        o.setEnd(1, 0, fault("lost", "lost at reboot"));
        o.flags = o.flags | ThreadFlag.Lost;
        this.#persist(map);
        o.state = EXITED;
        this.#persist(map);
      }
      this.#earlier.set(id, o);
      this.#nextTid = Math.max(this.#nextTid, o.tid + 1);
      out.push(this.#lostInfo(o));
    }
    return out;
  }

  /**
   * Stop every thread: no new spawns; each live thread is killed and has
   * `graceMs` to end before its Worker is terminated. Resolves when every
   * thread has ended. The kernel itself stays up (the board shuts it down).
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    const live = [...this.#threads.values()].filter((t) => !t.ended);
    for (const t of live) this.#kill(t, "killed at shutdown", graceMs);
    await Promise.all(live.map((t) => this.wait(t.tid)));
    for (const t of this.#threads.values()) this.#reap(t);
    this.#release();
  }

  // -------------------------------------------------------------------------
  // ThreadCalls (a thread's system calls; `tid` is the caller)
  // -------------------------------------------------------------------------

  /**
   * `ctx`s checked to be security contexts (`security.ctxInfo` throws for
   * anything else), without repeats.
   */
  #contextList(ctxs: unknown): ObjID[] {
    if (!Array.isArray(ctxs) || !ctxs.every((c) => typeof c === "bigint")) {
      throw new TwzError(ErrorCode.InvalidArgument, "spawn: contexts must be a list of object IDs");
    }
    const security = this.#kernel.security;
    for (const c of ctxs) security.ctxInfo(c);
    return [...new Set(ctxs as ObjID[])];
  }

  /**
   * `spawn` by thread `tid`: the contexts it names must each be ones it may
   * attach to (`security.mayAttach`, perhaps after verifying signatures).
   */
  #spawnBy(tid: number, spec: SpawnSpec): ThreadInfo | Promise<ThreadInfo> {
    const t = this.#get(tid);
    const go = () => this.spawn(spec, { console: t.console, parent: tid });
    const named = (spec as Partial<SpawnSpec> | null)?.contexts;
    if (named === undefined || named === null) return go();
    const ctxs = this.#contextList(named);
    const principal = { admin: false as const, tid, contexts: t.contexts };
    const security = this.#kernel.security;
    const refuse = (ctx: ObjID) =>
      new TwzError(
        ErrorCode.AccessDenied,
        `thread ${tid} may not start a thread in context ${formatId(ctx)} (it needs use on it)`,
      );
    const pending: Promise<void>[] = [];
    for (const ctx of ctxs) {
      const may = security.mayAttach(principal, ctx);
      if (may instanceof Promise) {
        pending.push(may.then((ok) => {
          if (!ok) throw refuse(ctx);
        }));
      } else if (!may) throw refuse(ctx);
    }
    return pending.length === 0 ? go() : Promise.all(pending).then(go);
  }

  /** `ctx_attach` of thread `tid` itself: it needs use on the context. */
  #attachSelf(tid: number, ctx: ObjID): void | Promise<void> {
    const t = this.#get(tid);
    const go = (ok: boolean) => {
      if (!ok) {
        throw new TwzError(
          ErrorCode.AccessDenied,
          `thread ${tid} may not attach to context ${formatId(ctx)} (it needs use on it)`,
        );
      }
      this.attach(tid, ctx);
    };
    this.#contextList([ctx]);
    const may = this.#kernel.security.mayAttach({ admin: false, tid, contexts: t.contexts }, ctx);
    return may instanceof Promise ? may.then(go) : go(may);
  }

  /**
   * Check a live thread's mappings against what it is allowed now, and
   * withdraw those it no longer may have (a verdict not known yet counts as
   * not allowed): its epoch word moves at once, its next answer empties
   * them, and it must enter the kernel within `revokeGraceMs` or be killed.
   */
  #recheck(t: Thread): void {
    const chan = t.chan;
    if (chan === undefined || chan.server.closed || t.ended || t.zombie) return;
    const port = chan.port;
    const security = this.#kernel.security;
    const withdraw: number[] = [];
    let first: ObjID | undefined;
    for (const m of port.held()) {
      let allowed: number | Promise<number>;
      try {
        allowed = security.allowed(port.principal, m.id);
      } catch {
        allowed = 0; // gone: nothing is allowed
      }
      const rwx = Prot.Read | Prot.Write | Prot.Exec;
      if (typeof allowed !== "number" || (m.prot & rwx & ~allowed) !== 0) {
        withdraw.push(m.handle);
        first ??= m.id;
      }
    }
    if (withdraw.length === 0) return;
    const ms = this.#options.revokeGraceMs ?? 200;
    const server = chan.server;
    // Park first: a thread asleep in its Worker is woken through the word it
    // sleeps on, found by the mapping's handle (still live until withdrawn).
    const parking = server.park(ms);
    port.withdraw(withdraw);
    Atomics.add(t.epoch, 0, 1);
    void parking.then((parked) => {
      if (parked) server.unpark();
      else if (!t.ended && !t.info.killing) {
        this.#kill(
          t,
          `killed: it did not give up a revoked mapping of ${formatId(first!)} within ${ms} ms`,
          this.#killGraceMs,
        );
      }
    });
  }

  // -------------------------------------------------------------------------
  // Gates (the port has checked the rights)
  // -------------------------------------------------------------------------

  /** `gate_serve`: thread `tid` answers the calls into gate `id`. */
  #gateServe(tid: number, id: ObjID): void {
    const t = this.#get(tid);
    const other = this.#gateServers.get(id);
    if (other !== undefined && other !== t && !other.ended) {
      throw new TwzError(
        ErrorCode.Busy,
        `gate ${formatId(id)} is served by thread ${other.tid} already`,
      );
    }
    this.#gateServers.set(id, t);
    t.gates ??= {
      ids: new Set(),
      inbox: [],
      taken: new Map(),
      receive: undefined,
      dropped: new Map(),
    };
    t.gates.ids.add(id);
  }

  /** `gate_receive`: the next call into a gate thread `tid` serves (`null` on timeout). */
  #gateReceive(
    tid: number,
    timeoutMs: number,
  ): GateCallInfo | null | Promise<GateCallInfo | null> {
    const t = this.#get(tid);
    if (t.info.killing) throw killedError(t);
    const g = t.gates;
    if (g === undefined || g.ids.size === 0) {
      throw new TwzError(ErrorCode.InvalidArgument, `thread ${tid} serves no gate`);
    }
    const take = (c: GateCall): GateCallInfo => {
      g.taken.set(c.info.call, c);
      return { ...c.info, callerContexts: [...c.info.callerContexts] };
    };
    const next = g.inbox.shift();
    if (next !== undefined) return take(next);
    if (!(timeoutMs > 0)) return null;
    if (g.receive !== undefined) {
      throw new TwzError(ErrorCode.Busy, `thread ${tid} is in gate_receive already`);
    }
    return new Promise<GateCallInfo | null>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        if (timer !== undefined) clearTimeout(timer);
        g.receive = undefined;
        t.pending = undefined;
        this.#setState(t, ThreadState.Running);
      };
      g.receive = (c) => {
        finish();
        resolve(c === null ? null : take(c));
      };
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => g.receive?.(null), timeoutMs);
      t.pending = {
        cancel: (e) => {
          finish();
          reject(e);
        },
      };
      this.#setState(t, ThreadState.Sleeping);
    });
  }

  /** `gate_reply`: thread `tid` answers call `call`, which it received. */
  #gateReply(tid: number, call: number, result: Uint8Array): void {
    const t = this.#get(tid);
    const g = t.gates;
    const why = g?.dropped.get(call);
    if (why !== undefined) {
      g!.dropped.delete(call);
      throw new TwzError(ErrorCode.ObjectNotFound, `gate call ${call} cannot be answered: ${why}`);
    }
    const c = g?.taken.get(call);
    if (c === undefined) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `thread ${tid} has no gate call ${call} to answer (not received, or answered already)`,
      );
    }
    c.resolve(result.slice());
  }

  /** `gate_call`: thread `tid` calls entry point `offset` of gate `id`. */
  #gateCall(
    tid: number,
    id: ObjID,
    offset: number,
    args: Uint8Array,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    const t = this.#get(tid);
    if (t.info.killing) throw killedError(t);
    const server = this.#gateServers.get(id);
    if (server === undefined || server.ended || server.info.killing || !server.gates) {
      throw new TwzError(ErrorCode.NotSupported, `no thread serves gate ${formatId(id)}`);
    }
    if (server === t) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `thread ${tid} serves gate ${formatId(id)} itself: it cannot call it`,
      );
    }
    const g = server.gates;
    return new Promise<Uint8Array>((resolve, reject) => {
      const c: GateCall = {
        info: {
          call: this.#nextCall++,
          id,
          offset,
          args: args.slice(),
          callerTid: tid,
          callerContexts: [...t.contexts],
        },
        caller: t,
        server,
        resolve: (answer) => {
          this.#settleCall(c);
          resolve(answer);
        },
        reject: (e) => {
          this.#settleCall(c, e.message);
          reject(e);
        },
        timer: undefined,
      };
      if (Number.isFinite(timeoutMs)) {
        c.timer = setTimeout(() => {
          c.reject(
            new TwzError(
              ErrorCode.TimedOut,
              `gate call ${c.info.call} into ${
                formatId(id)
              } (thread ${server.tid}) got no answer within ${timeoutMs} ms`,
            ),
          );
        }, Math.max(0, timeoutMs));
      }
      t.calling = c;
      t.pending = { cancel: (e) => c.reject(e) };
      this.#setState(t, ThreadState.Sleeping);
      if (g.receive !== undefined) g.receive(c);
      else g.inbox.push(c);
    });
  }

  /**
   * A gate call is over (answered; or failed, timed out, its caller gone:
   * `why`): forget it everywhere. A failed call its server received is
   * remembered, so that its answer is refused with the reason.
   */
  #settleCall(c: GateCall, why?: string): void {
    if (c.timer !== undefined) clearTimeout(c.timer);
    c.timer = undefined;
    const g = c.server.gates;
    if (g !== undefined) {
      const at = g.inbox.indexOf(c);
      if (at >= 0) g.inbox.splice(at, 1);
      if (g.taken.delete(c.info.call) && why !== undefined && !c.server.ended) {
        g.dropped.set(c.info.call, why);
      }
    }
    const t = c.caller;
    if (t.calling === c) {
      t.calling = undefined;
      t.pending = undefined;
      this.#setState(t, ThreadState.Running);
    }
  }

  /** Thread `t` ended: its gates are no longer served, and its calls fail. */
  #gatesEnd(t: Thread): void {
    const g = t.gates;
    if (g !== undefined) {
      for (const id of g.ids) if (this.#gateServers.get(id) === t) this.#gateServers.delete(id);
      const calls = [...g.inbox, ...g.taken.values()];
      g.inbox = [];
      g.taken.clear();
      for (const c of calls) {
        c.reject(
          new TwzError(
            ErrorCode.ObjectNotFound,
            `thread ${t.tid} serving gate ${formatId(c.info.id)} ended before it answered`,
          ),
        );
      }
    }
    // Its own call (if any) is cancelled with its pending answer.
  }

  /** `thread_exit`: the thread's own report of its end (authoritative when first). */
  #exit(tid: number, code: number, reported?: ThreadFault | null): void {
    const t = this.#get(tid);
    let f: ThreadFault | null = null;
    if (reported !== undefined && reported !== null) {
      const r = reported as Partial<ThreadFault>;
      f = fault(
        typeof r.kind === "string" ? r.kind : "exception",
        typeof r.message === "string" ? r.message : "",
      );
    }
    this.#end(t, Number.isInteger(code) ? code : 1, f);
    // The answer still goes back; the loader then reports "done" and the
    // Worker is reaped. A thread that never gets there is reaped anyway.
    t.reapTimer ??= setTimeout(() => this.#reap(t), this.#killGraceMs);
  }

  /**
   * `thread_sync` in the kernel (a thread's batch that did not run in its
   * Worker): every operation is checked first; then the wakes, in order;
   * then, if every sleep's word still equals its value, the thread sleeps (a
   * deferred answer) until a wake on any of its words (0 for every sleep) or
   * the smallest timeout (2). If any word differs, nothing sleeps (1 for
   * every sleep).
   */
  #sync(tid: number, ops: SyncOp[]): number[] | Promise<number[]> {
    const t = this.#get(tid);
    if (t.info.killing) throw killedError(t);
    const extents: Extent[] = [];
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      syncOpKind(op, i);
      const width = syncWidth(op);
      // The thread's port has checked that it may read op.id.
      const m = this.#kernel.map(op.id, Prot.Read, Prot.Read);
      syncWordCheck(m.size, op.id, op.offset, width);
      extents.push(m.extent);
    }
    const out: number[] = new Array(ops.length).fill(0);
    const sleeps: number[] = [];
    let timeout = Infinity;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.op === "wake") out[i] = this.wake(op.id, op.offset, op.count);
      else {
        sleeps.push(i);
        if (op.timeoutMs !== undefined && op.timeoutMs !== null) {
          timeout = Math.min(timeout, op.timeoutMs);
        }
      }
    }
    if (sleeps.length === 0) return out;
    // Count this sleeper before reading its words: a thread that stores a
    // word and then reads a count of 0 stored before the reads below.
    const counts = this.#sleepCounts;
    const buckets = sleeps.map((i) => syncBucket(ops[i]!.id, ops[i]!.offset));
    for (const b of buckets) Atomics.add(counts, b, 1);
    const uncount = () => {
      for (const b of buckets) Atomics.sub(counts, b, 1);
    };
    let differs = false;
    for (const i of sleeps) {
      const op = ops[i] as Extract<SyncOp, { op: "sleep" }>;
      if (!syncWordEquals(extents[i]!, op.id, op.offset, op.value)) differs = true;
    }
    if (differs || timeout === 0) {
      uncount();
      for (const i of sleeps) out[i] = differs ? 1 : 2;
      return out;
    }
    const keys = sleeps.map((i) => wordKey(ops[i]!.id, ops[i]!.offset));
    return new Promise<number[]>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const sleeper: Sleeper = {
        t,
        keys,
        done: (outcome) => {
          finish();
          for (const i of sleeps) out[i] = outcome;
          resolve(out);
        },
      };
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        uncount();
        if (timer !== undefined) clearTimeout(timer);
        for (const k of keys) {
          const q = this.#queues.get(k);
          if (q === undefined) continue;
          const at = q.indexOf(sleeper);
          if (at >= 0) q.splice(at, 1);
          if (q.length === 0) this.#queues.delete(k);
        }
        t.pending = undefined;
        this.#setState(t, ThreadState.Running);
      };
      for (const k of keys) {
        let q = this.#queues.get(k);
        if (q === undefined) this.#queues.set(k, q = []);
        q.push(sleeper);
      }
      if (timeout !== Infinity) timer = setTimeout(() => sleeper.done(2), timeout);
      t.pending = {
        cancel: (e) => {
          finish();
          reject(e);
        },
      };
      this.#setState(t, ThreadState.Sleeping);
    });
  }

  // -------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------

  #get(tid: number): Thread {
    const t = this.#threads.get(tid);
    if (t === undefined) throw new TwzError(ErrorCode.InvalidArgument, `No thread ${tid}`);
    return t;
  }

  #info(t: Thread): ThreadInfo {
    const info = { ...t.info, fault: t.info.fault ? { ...t.info.fault } : null };
    // Asleep in thread_sync in its Worker: the kernel hears of it only here.
    if (info.state === ThreadState.Running && t.chan?.server.sleeping) {
      info.state = ThreadState.Sleeping;
    }
    return info;
  }

  #lostInfo(o: ThreadObject): ThreadInfo {
    const info = o.info();
    // A read-only system cannot rewrite the object: report what markLost would.
    if (info.state !== EXITED) {
      return { ...info, state: EXITED, exitCode: 1, fault: fault("lost", "lost at reboot") };
    }
    return info;
  }

  #threadWait(caller: number, target: number, timeoutMs: number): ThreadInfo | Promise<ThreadInfo> {
    const me = this.#get(caller);
    const t = this.#get(target);
    if (me.info.killing) throw killedError(me);
    if (t === me) {
      throw new TwzError(ErrorCode.InvalidArgument, `thread ${caller} cannot wait for itself`);
    }
    if (t.ended || !(timeoutMs > 0)) return this.#info(t);
    return new Promise<ThreadInfo>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        if (timer !== undefined) clearTimeout(timer);
        const at = t.exitWaiters.indexOf(onExit);
        if (at >= 0) t.exitWaiters.splice(at, 1);
        me.pending = undefined;
        this.#setState(me, ThreadState.Running);
      };
      const onExit = (info: ThreadInfo) => {
        finish();
        resolve(info);
      };
      t.exitWaiters.push(onExit);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          finish();
          resolve(this.#info(t));
        }, timeoutMs);
      }
      me.pending = {
        cancel: (e) => {
          finish();
          reject(e);
        },
      };
      this.#setState(me, ThreadState.Sleeping);
    });
  }

  /** Store a running/sleeping state (not persisted: see `_object.ts`). */
  #setState(t: Thread, state: ThreadStateNo): void {
    if (t.ended) return;
    t.info.state = state;
    t.obj.state = state;
  }

  #persist(map: ObjectMapping): void {
    if (this.#kernel.isShutdown || map.size < THREAD_OBJECT_SIZE) return;
    map.persist(0, THREAD_OBJECT_SIZE);
  }

  /** What the loader reports on its private port. */
  #onReport(t: Thread, m: unknown): void {
    const msg = m as { t?: unknown; code?: unknown; name?: unknown; message?: unknown };
    switch (msg?.t) {
      case "running":
        this.#loaded(t);
        if (t.info.state === ThreadState.Starting) this.#setState(t, ThreadState.Running);
        return;
      case "pong":
        t.alive = true;
        return;
      case "load":
        // The URL may be what failed (a program can revoke its own): the
        // next spawn makes a new one.
        if (t.code !== undefined) this.#dropCode(t.code);
        this.#faulted(
          t,
          LOAD_EXIT_CODE,
          fault(
            "load",
            `cannot load the program: ${String(msg.name)}: ${
              clean(String(msg.message)).split("\n")[0]
            }`,
          ),
        );
        return;
      case "done":
        if (t.info.killing) this.#end(t, KILLED_EXIT_CODE, fault("killed", t.killReason));
        else this.#end(t, typeof msg.code === "number" ? msg.code : 0, null);
        this.#reap(t);
        return;
      case "exception": {
        const name = String(msg.name), message = clean(String(msg.message));
        const code = typeof msg.code === "number" ? msg.code : 0;
        this.#faulted(t, 1, classify(name, code, message));
        return;
      }
    }
  }

  /** The thread failed: record the fault (a kill in progress wins), reap it. */
  #faulted(t: Thread, code: number, f: ThreadFault): void {
    if (t.info.killing || f.kind === "killed") {
      this.#end(t, KILLED_EXIT_CODE, fault("killed", t.killReason || f.message));
    } else this.#end(t, code, f);
    this.#reap(t);
  }

  /** Record the end in the thread object (fields first, state word last). */
  #end(t: Thread, code: number, f: ThreadFault | null): void {
    if (t.ended) return;
    t.ended = true;
    const now = this.#kernel.isShutdown ? Date.now() : this.#kernel.hal.clock.wallclock();
    t.info.exitCode = code;
    t.info.fault = f;
    t.info.ended = now;
    t.info.state = EXITED;
    t.info.killing = false; // honoured (the object's flag keeps that one was asked)
    if (!this.#kernel.isShutdown) {
      t.obj.setEnd(code, now, f);
      this.#persist(t.map);
      t.obj.state = EXITED;
      this.#persist(t.map);
    }
    t.pending?.cancel(killedError(t));
    this.#gatesEnd(t);
    if (t.killTimer !== undefined) clearTimeout(t.killTimer);
    t.killTimer = undefined;
    const info = this.#info(t);
    for (const w of t.exitWaiters.splice(0)) w(info);
    this.#options.onExit?.(info);
  }

  /** Terminate the Worker and close the channel (after the end is recorded). */
  #reap(t: Thread): void {
    if (t.reaped) return;
    t.reaped = true;
    if (t.reapTimer !== undefined) clearTimeout(t.reapTimer);
    if (t.killTimer !== undefined) clearTimeout(t.killTimer);
    t.reapTimer = t.killTimer = undefined;
    t.worker?.terminate();
    this.#loaded(t);
    if (!t.zombie) t.chan?.server.close();
    if (t.report) {
      t.report.onmessage = null;
      t.report.close();
    }
  }

  #kill(t: Thread, reason: string, graceMs: number): void {
    if (t.ended) {
      this.#reap(t);
      return;
    }
    if (t.info.killing) {
      // A shorter deadline (shutdown) replaces a longer one.
      if (t.killTimer !== undefined && reason === "killed at shutdown") {
        clearTimeout(t.killTimer);
        t.killTimer = setTimeout(() => this.#killExpired(t, graceMs), graceMs);
      }
      return;
    }
    t.info.killing = true;
    t.killReason = reason;
    t.obj.flags = t.obj.flags | ThreadFlag.Killing;
    t.alive = false;
    t.chan?.server.kill();
    t.pending?.cancel(killedError(t));
    t.report?.postMessage({ t: "ping" });
    t.killTimer = setTimeout(() => this.#killExpired(t, graceMs), graceMs);
  }

  #killExpired(t: Thread, graceMs: number): void {
    t.killTimer = undefined;
    if (t.ended) return this.#reap(t);
    if (t.alive) {
      this.#end(t, KILLED_EXIT_CODE, fault("killed", t.killReason));
    } else {
      this.#unstoppable++;
      t.zombie = true;
      this.#end(
        t,
        KILLED_EXIT_CODE,
        fault(
          "unresponsive",
          `${t.killReason}, but did not stop within ${graceMs} ms: its Worker was terminated, ` +
            `yet a Worker busy in JavaScript runs on (using a CPU) until it returns to its ` +
            `event loop or the system process exits`,
        ),
      );
    }
    this.#reap(t);
  }

  /**
   * The kernel is about to grow or delete `ids`: park every live thread that
   * maps one of them inside a call (it then hears the change with its
   * answer). A thread that does not enter the kernel within `revokeGraceMs`
   * is killed and the change refused (`Busy`; the caller may try again
   * once the thread has ended); a thread killed earlier that never stopped
   * still holds its views, so changes to its objects are refused until the
   * system stops.
   */
  #revoke(ids: readonly ObjID[], why: "grow" | "delete"): void {
    const ms = this.#options.revokeGraceMs ?? 200;
    for (const t of this.#threads.values()) {
      const chan = t.chan;
      if (chan === undefined || chan.server.closed) continue;
      const id = ids.find((id) => chan.port.maps(id));
      if (id === undefined) continue;
      const what = `Cannot ${why} ${formatId(id)}: thread ${t.tid} (${t.info.name})`;
      if (t.ended && !t.zombie) {
        // It has ended (its exit is recorded) and only waits to be reaped:
        // reap it now instead of waiting for a call it will never make.
        this.#reap(t);
        continue;
      }
      if (t.zombie) {
        throw new TwzError(
          ErrorCode.Busy,
          `${what} did not stop when killed and still holds a view of it (until the system stops)`,
        );
      }
      if (t.info.killing) {
        throw new TwzError(
          ErrorCode.Busy,
          `${what} is being killed and still holds a view of it: try again when it has ended`,
        );
      }
      if (!chan.server.parkSync(ms)) {
        this.#kill(
          t,
          `killed: it held ${formatId(id)} and did not let go (${why})`,
          this.#killGraceMs,
        );
        throw new TwzError(
          ErrorCode.Busy,
          `${what} maps it and did not enter the kernel within ${ms} ms: it is being killed; ` +
            `try again when it has ended`,
        );
      }
    }
  }

  /**
   * The kernel stops (`shutdown`, or `halt`: a power failure). Every Worker
   * is terminated at once. On shutdown the threads are recorded killed; on
   * halt nothing is written (the next boot finds them lost).
   */
  #stopNow(why: "shutdown" | "reboot" | "halt"): void {
    this.#stopping = true;
    for (const t of this.#threads.values()) {
      if (!t.ended) {
        if (why === "shutdown") {
          this.#end(t, KILLED_EXIT_CODE, fault("killed", "killed at shutdown"));
        } else if (why === "reboot") {
          // Recorded now (the kernel still runs): what the next boot would say.
          this.#end(t, 1, fault("lost", "lost at reboot (the system rebooted)"));
        } else {
          t.ended = true;
          t.info.state = EXITED;
          t.info.exitCode = 1;
          t.info.fault = fault("lost", "lost at reboot (the system stopped)");
          t.pending?.cancel(killedError(t));
          const info = this.#info(t);
          for (const w of t.exitWaiters.splice(0)) w(info);
        }
      }
      this.#reap(t);
    }
    this.#release();
  }

  #release(): void {
    for (const t of this.#threads.values()) t.chan?.server.close();
    for (const q of this.#queues.values()) for (const s of [...q]) s.done(2);
    this.#queues.clear();
    if (this.#loaderUrl !== undefined) URL.revokeObjectURL(this.#loaderUrl);
    this.#loaderUrl = undefined;
    for (const c of [...this.#codeUrls.values()]) this.#dropCode(c);
  }

  /**
   * The URL a new thread of code object `id` imports (counted as loading
   * until {@linkcode #loaded}): the kept one, or one made of `program`'s
   * text, kept unless the object is writable (its text may change).
   */
  #useCode(id: ObjID, program: CodeUrl | string, prot: number): CodeUrl {
    let code: CodeUrl;
    if (typeof program === "string") {
      const url = URL.createObjectURL(new Blob([program], { type: "text/javascript" }));
      code = { id, url, loading: 0, dropped: (prot & Prot.Write) !== 0 };
    } else {
      code = program;
      this.#codeUrls.delete(id); // re-added last: the most recently spawned
    }
    if (!code.dropped) {
      this.#codeUrls.set(id, code);
      if (this.#codeUrls.size > CODE_URLS) this.#dropCode(this.#codeUrls.values().next().value!);
    }
    code.loading++;
    return code;
  }

  /** Stop keeping a code URL; revoke it unless a thread still loads it. */
  #dropCode(code: CodeUrl): void {
    if (this.#codeUrls.get(code.id) === code) this.#codeUrls.delete(code.id);
    code.dropped = true;
    if (code.loading === 0) URL.revokeObjectURL(code.url);
  }

  /** The thread no longer needs its program's URL (imported, or ended). */
  #loaded(t: Thread): void {
    const code = t.code;
    if (code === undefined) return;
    t.code = undefined;
    if (--code.loading === 0 && code.dropped) URL.revokeObjectURL(code.url);
  }

  #loader(): string {
    return this.#loaderUrl ??= URL.createObjectURL(
      new Blob([loaderSource()], { type: "text/javascript" }),
    );
  }
}

/** Text without terminal colour codes (Deno colours some error messages). */
function clean(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

function wordKey(id: ObjID, offset: unknown): string {
  return `${id}:${offset}`;
}

function killedError(t: Thread): TwzError {
  return new TwzError(ErrorCode.Killed, `thread ${t.tid} is being killed`);
}

/** A thread's end from the loader's exception report. */
function classify(name: string, code: number, message: string): ThreadFault {
  if (name === "TwzError" || code !== 0) {
    if (code === ErrorCode.Killed) return fault("killed", message);
    if (code === ErrorCode.AccessDenied || code === ErrorCode.ReadOnly) {
      return fault("protection", message);
    }
  }
  if (name === "RangeError") return fault("memory", message);
  return fault("exception", `${name}: ${message}`);
}

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
 * The global object space (`Sys.Global`, docs/GLOBAL.md) goes through the
 * same LocalPort: its rights checks, then the node's hook with the thread's
 * principal.
 *
 * Security (docs/SECURITY.md): the port acts for the thread's principal
 * (its number and its live list of security contexts). Every object call
 * first asks `security.allowed` for each object it touches; when the
 * verdict is not known yet (signatures to verify) the answer is deferred
 * until it is, and the LocalPort's synchronous check then decides. Mappings
 * no longer allowed are withdrawn by the thread manager
 * ({@linkcode ThreadPort.withdraw}): the next answer carries
 * `UPDATE_GONE` for each.
 *
 * @module
 */
import {
  type CreateSpec,
  ErrorCode,
  type Extent,
  formatId,
  type GateCallInfo,
  type GlobalOp,
  type GlobalOps,
  type KeySpec,
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
import { globalNeeds, LocalPort } from "../_port.ts";

/**
 * A thread's principal (`Principal` of `_security.ts` for a thread): its
 * number and its security contexts (a live array the thread manager
 * changes). Written out where public signatures take it.
 */
type ThreadPrincipal = { readonly admin: false; readonly tid: number; readonly contexts: ObjID[] };

/** How often a deferred check asks again when a verdict is still unknown. */
const VERDICT_TRIES = 8;

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
  /** `spawn` (deferred while the spawner's right to attach the given contexts is checked). */
  spawn(tid: number, spec: SpawnSpec): ThreadInfo | Promise<ThreadInfo>;
  /** `console_write`. */
  console(tid: number, text: string): void;
  /**
   * Before thread `tid` grows (`kind` "grow") or deletes (`kind` "delete",
   * which also deletes the objects tied to `id`) object `id`: make every other
   * thread that maps an affected object let go (park it: see
   * `ChannelServer.park`) or kill it. Optional.
   */
  beforeChange?(tid: number, id: ObjID, kind: "grow" | "delete"): void | Promise<void>;
  /** `ctx_attach` of the calling thread itself (needs USE on `ctx`). Optional. */
  attach?(tid: number, ctx: ObjID): void | Promise<void>;
  /** `ctx_detach` of the calling thread itself. Optional. */
  detach?(tid: number, ctx: ObjID): void;
  /** `gate_serve` (the port has checked WRITE on `id`). Optional. */
  gateServe?(tid: number, id: ObjID): void;
  /** `gate_receive`: the next call, deferred until one comes; `null` on timeout. Optional. */
  gateReceive?(tid: number, timeoutMs: number): GateCallInfo | null | Promise<GateCallInfo | null>;
  /** `gate_reply`. Optional. */
  gateReply?(tid: number, call: number, result: Uint8Array): void;
  /**
   * `gate_call` (the port has checked that the gate admits `offset`): the
   * callee's answer, deferred. Optional.
   */
  gateCall?(
    tid: number,
    id: ObjID,
    offset: number,
    args: Uint8Array,
    timeoutMs: number,
  ): Uint8Array | Promise<Uint8Array>;
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
function timeoutArg(v: unknown, what = "thread_wait"): number {
  if (typeof v !== "number" || Number.isNaN(v)) throw bad(`${what}: expected a timeout`);
  return v;
}
function bytesArg(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${what}: expected bytes`);
  return v;
}
function idsArg(v: unknown, what: string): ObjID[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === "bigint")) {
    throw bad(`${what}: expected a list of object IDs`);
  }
  return v as ObjID[];
}
/** A thread argument of ctx_attach/ctx_detach: absent, or the caller itself. */
function selfArg(v: unknown, tid: number, what: string): void {
  if (v === undefined || v === null || v === tid) return;
  throw new TwzError(
    ErrorCode.AccessDenied,
    `${what}: thread ${tid} may attach or detach only itself (the kernel's session does others)`,
  );
}
/** An options object, or `undefined` (null too). */
function specArg(v: unknown, what: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw bad(`${what}: expected an options object`);
  return v as Record<string, unknown>;
}
function notServed(what: string): TwzError {
  return new TwzError(ErrorCode.NotSupported, `${what} is not supported by this kernel`);
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
  readonly #principal: ThreadPrincipal;
  /** Handles withdrawn and not yet told (`UPDATE_GONE` in the next answer). */
  #gone: number[] = [];
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
   * @param principal Who the thread is: `{ admin: false, tid, contexts }`
   *   with its live array of contexts (default: no contexts).
   */
  constructor(
    kernel: Kernel,
    tid: number,
    calls: ThreadCalls,
    memory: MessagePort,
    region: SharedArrayBuffer | null,
    external: boolean,
    principal: { readonly admin: false; readonly tid: number; readonly contexts: ObjID[] } = {
      admin: false,
      tid,
      contexts: [],
    },
  ) {
    this.#kernel = kernel;
    this.#principal = principal;
    this.#local = new LocalPort(kernel, principal);
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

  /** Who the thread is (its contexts: the live array). */
  get principal(): { readonly admin: false; readonly tid: number; readonly contexts: ObjID[] } {
    return this.#principal;
  }

  /** The thread's live mappings: handle, object and protections of each. */
  held(): { handle: number; id: ObjID; prot: number }[] {
    const out: { handle: number; id: ObjID; prot: number }[] = [];
    for (const m of this.#handles.values()) out.push({ handle: m.handle, id: m.id, prot: m.prot });
    return out;
  }

  /**
   * Withdraw mappings (revocation): each is forgotten now (later calls
   * naming its handle fail) and the thread's next answer carries
   * `UPDATE_GONE` for it. Returns how many were live.
   */
  withdraw(handles: readonly number[]): number {
    let n = 0;
    for (const handle of handles) {
      const m = this.#handles.get(handle);
      if (m === undefined) continue;
      this.#forget(m);
      this.#gone.push(handle);
      n++;
    }
    return n;
  }

  /**
   * Run `act` once `security.allowed` knows its verdict on every object in
   * `ids` for this thread (at once when cached; else a deferred answer).
   * The check itself is `act`'s (the LocalPort's, synchronous).
   */
  #whenKnown<T>(ids: readonly ObjID[], act: () => T, tries = 0): T | Promise<T> {
    const security = this.#kernel.security;
    for (const id of ids) {
      const verdict = security.allowed(this.#principal, id);
      if (verdict instanceof Promise) {
        if (tries >= VERDICT_TRIES) {
          throw new TwzError(
            ErrorCode.Busy,
            `the protections of ${formatId(id)} keep changing: try again`,
          );
        }
        return verdict.then(() => this.#whenKnown(ids, act, tries + 1));
      }
    }
    return act();
  }

  /**
   * `security.allowed` for this thread as a number (waiting for the
   * verdict when it is not known yet), then `act(prot)`.
   */
  #withProt<T>(id: ObjID, act: (prot: number) => T): T | Promise<T> {
    const verdict = this.#kernel.security.allowed(this.#principal, id);
    if (verdict instanceof Promise) return verdict.then(act);
    return act(verdict);
  }

  /** Forget every mapping and close the memory port (the thread ended). */
  release(): void {
    for (const m of this.#handles.values()) this.#local.unmap(m);
    this.#handles.clear();
    this.#held.clear();
    this.#gone = [];
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
      case Sys.Create: {
        const spec = args[0] as CreateSpec | undefined;
        const sources = Array.isArray(spec?.sources)
          ? spec.sources.map((s) => s?.id).filter((id): id is ObjID => typeof id === "bigint")
          : [];
        return this.#whenKnown(sources, () => k.create(spec));
      }
      case Sys.Delete: {
        const id = idArg(args[0]);
        return this.#whenKnown([id], () => this.#change(id, "delete", (id) => k.delete(id)));
      }
      case Sys.Stat:
        return k.stat(idArg(args[0]));
      case Sys.Dependents: {
        const id = idArg(args[0]);
        return this.#whenKnown([id], () => k.dependents(id));
      }
      case Sys.Exists:
        return k.exists(idArg(args[0]));
      case Sys.List:
        return k.list();
      case Sys.Map: {
        const id = idArg(args[0]);
        const prot = args[1] === undefined ? Prot.ReadWrite : numArg(args[1], "map");
        return this.#whenKnown([id], () => this.#map(id, prot));
      }
      case Sys.Unmap: {
        const m = this.#handles.get(numArg(args[0], "unmap"));
        if (m) this.#forget(m);
        return undefined;
      }
      case Sys.Grow: {
        const id = idArg(args[0]), size = numArg(args[1], "grow");
        return this.#whenKnown([id], () => this.#change(id, "grow", (id) => k.grow(id, size)));
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
      case Sys.Read: {
        const id = idArg(args[0]), at = numArg(args[1], "read"), n = numArg(args[2], "read");
        return this.#whenKnown([id], () => k.read(id, at, n));
      }
      case Sys.Write: {
        const id = idArg(args[0]), at = numArg(args[1], "write"), data = bytesArg(args[2], "write");
        return this.#whenKnown([id], () => k.write(id, at, data));
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
      case Sys.ThreadSync: {
        if (!Array.isArray(args[0])) throw bad("thread_sync: expected a list of operations");
        const ops = args[0] as SyncOp[];
        // A word is read (or woken) only by a thread that may read its object.
        const ids = [
          ...new Set(
            ops.map((op) => op?.id).filter((id): id is ObjID =>
              typeof id === "bigint" && k.exists(id)
            ),
          ),
        ];
        return this.#whenKnown(ids, () => {
          for (const id of ids) {
            if (!((this.#kernel.security.allowed(this.#principal, id) as number) & Prot.Read)) {
              throw new TwzError(
                ErrorCode.AccessDenied,
                `thread_sync: thread ${tid} may not read ${formatId(id)}`,
              );
            }
          }
          return c.sync(tid, ops);
        });
      }
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
      case Sys.KeyCreate:
        return k.keyCreate(specArg(args[0], "key_create") as KeySpec | undefined);
      case Sys.KeyRotate:
        return k.keyRotate(idArg(args[0]), specArg(args[1], "key_rotate") as KeySpec | undefined);
      case Sys.KeyInfo:
        return k.keyInfo(idArg(args[0]));
      case Sys.CtxCreate: {
        const spec = specArg(args[0], "ctx_create");
        if (spec?.key !== undefined && spec.key !== null && typeof spec.key !== "bigint") {
          throw bad("ctx_create: key must be an object ID");
        }
        return k.ctxCreate(spec?.key == null ? {} : { key: spec.key as ObjID });
      }
      case Sys.CtxInfo:
        return k.ctxInfo(idArg(args[0]));
      case Sys.CtxAdd: {
        // The rights may rest on protections not verified yet: settle them first.
        const ctx = idArg(args[0]), grant = bytesArg(args[1], "ctx_add");
        return this.#kernel.security.settleRights(this.#principal, "ctxAdd", ctx, grant)
          .then(() => k.ctxAdd(ctx, grant));
      }
      case Sys.CtxRemove: {
        const ctx = idArg(args[0]), index = numArg(args[1], "ctx_remove");
        return this.#kernel.security.settleRights(this.#principal, "ctxRemove", ctx, index)
          .then(() => k.ctxRemove(ctx, index));
      }
      case Sys.CtxMask: {
        const prot = args[2] === null || args[2] === undefined ? null : numArg(args[2], "ctx_mask");
        return k.ctxMask(idArg(args[0]), idArg(args[1]), prot);
      }
      case Sys.CtxAttach: {
        const ctx = idArg(args[0]);
        selfArg(args[1], tid, "ctx_attach");
        if (c.attach === undefined) throw notServed("ctx_attach");
        return c.attach(tid, ctx);
      }
      case Sys.CtxDetach: {
        const ctx = idArg(args[0]);
        selfArg(args[1], tid, "ctx_detach");
        if (c.detach === undefined) throw notServed("ctx_detach");
        return c.detach(tid, ctx);
      }
      case Sys.Contexts:
        return [...this.#principal.contexts];
      case Sys.Access: {
        const id = idArg(args[0]);
        const ctxs = args[1] === undefined || args[1] === null
          ? undefined
          : idsArg(args[1], "access");
        return k.access(id, ctxs);
      }
      case Sys.GateServe: {
        const id = idArg(args[0]);
        if (c.gateServe === undefined) throw notServed("gate_serve");
        const serve = c.gateServe.bind(c);
        k.stat(id); // ObjectNotFound first
        return this.#withProt(id, (prot) => {
          if (!(prot & Prot.Write)) {
            throw new TwzError(
              ErrorCode.AccessDenied,
              `thread ${tid} may not serve gate ${formatId(id)}: serving needs write access`,
            );
          }
          return serve(tid, id);
        });
      }
      case Sys.GateReceive:
        if (c.gateReceive === undefined) throw notServed("gate_receive");
        return c.gateReceive(tid, timeoutArg(args[0], "gate_receive"));
      case Sys.GateReply:
        if (c.gateReply === undefined) throw notServed("gate_reply");
        return c.gateReply(tid, numArg(args[0], "gate_reply"), bytesArg(args[1], "gate_reply"));
      case Sys.GateCall: {
        const id = idArg(args[0]), offset = numArg(args[1], "gate_call");
        const bytes = bytesArg(args[2], "gate_call");
        const ms = args[3] === undefined ? 10_000 : timeoutArg(args[3], "gate_call");
        if (c.gateCall === undefined) throw notServed("gate_call");
        const call = c.gateCall.bind(c);
        if (!Number.isInteger(offset) || offset < 0) {
          throw bad(`gate_call: entry point ${offset} is not an offset`);
        }
        k.stat(id); // ObjectNotFound first
        const go = (ok: boolean) => {
          if (!ok) {
            throw new TwzError(
              ErrorCode.AccessDenied,
              `gate ${formatId(id)} does not admit entry point ${offset} for thread ${tid}`,
            );
          }
          return call(tid, id, offset, bytes, ms);
        };
        const ok = this.#kernel.security.gateAllowed(this.#principal, id, offset);
        return ok instanceof Promise ? ok.then(go) : go(ok);
      }
      case Sys.Global: {
        // [op, args]: checked here (one-line InvalidArgument), the rights'
        // verdicts settled first, then the thread's LocalPort checks them
        // and calls the node's hook with the thread's principal.
        const op = args[0] as GlobalOp, a = args[1] as GlobalOps[GlobalOp][0];
        const needs = globalNeeds(op, a);
        const ids = this.#kernel.global === undefined ? [] : needs.ids;
        return this.#whenKnown(ids, () => k.global(op, a));
      }
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
    if (this.#gone.length > 0) {
      for (const handle of this.#gone) out.push(handle, UPDATE_GONE, 0, 0);
      n = this.#gone.length;
      this.#gone = [];
    }
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

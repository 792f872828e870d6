/**
 * The kernel port in-process: {@linkcode LocalPort} answers every system call
 * by calling the kernel directly (no encoding), for the embedded session
 * (`Twz.open`) and the kernel's own shell. Threads in Workers reach the same
 * kernel through the channel (`threads/`), which answers with the same
 * kernel calls.
 *
 * @module
 */
import {
  type AccessReport,
  type ContextInfo,
  type CreateSpec,
  ErrorCode,
  type Extent,
  formatId,
  formatSecProt,
  type GateCallInfo,
  type KernelPort,
  type KeyIds,
  type KeyInfo,
  type KeySpec,
  type Mapping,
  type ObjectStat,
  type ObjID,
  Prot,
  SecProt,
  type SpawnSpec,
  type SyncOp,
  syncOpKind,
  syncWidth,
  syncWordCheck,
  type SystemInfo,
  type ThreadInfo,
  TwzError,
} from "./abi/mod.ts";
import { GLOBAL_OPS, type GlobalOp, type GlobalOps, NOT_IN_CLUSTER } from "./abi/mod.ts";
import type { Kernel } from "./kernel.ts";
import type { ObjectMapping } from "./_mapping.ts";
import { ownedElsewhere } from "./_store.ts";
import { ADMIN, type Principal } from "./_security.ts";

/**
 * What the thread manager offers a port. The kernel's `threads` implements
 * it; a port without one (a kernel that never started a thread) answers
 * thread calls as the kernel's own session would.
 */
export interface ThreadService {
  /** Start a program in a new thread. */
  spawn(spec: SpawnSpec): ThreadInfo;
  /** Every thread known (this boot's and earlier ones'). */
  threads(): ThreadInfo[];
  /** Ask a thread to end. */
  kill(tid: number): void;
  /** Wait from the kernel's own session: polls, since it cannot sleep. */
  waitNow(tid: number): ThreadInfo;
  /** Wake sleepers on a word (from the kernel's own session). */
  wake(id: ObjID, offset: number, count: number): number;
  /**
   * Attach thread `tid` to security context `ctx` (the kernel's own session:
   * no rights needed).
   */
  attach(tid: number, ctx: ObjID): void;
  /** Detach thread `tid` from `ctx`; its mappings no longer allowed are withdrawn. */
  detach(tid: number, ctx: ObjID): void;
  /** The security contexts thread `tid` is attached to (a copy). */
  contexts(tid: number): ObjID[];
  /**
   * Threads killed while busy in JavaScript that never stopped: their
   * Workers run on (Deno cannot stop them) and keep their views of object
   * memory until the system process exits.
   */
  readonly unstoppable: number;
}

/**
 * Durability domains: one number per kernel (shared by every port over it:
 * the kernel's own and each thread's), so logs can tell images apart.
 */
let nextDomain = 1;
const domains = new WeakMap<Kernel, number>();

function domainOf(kernel: Kernel): number {
  let d = domains.get(kernel);
  if (d === undefined) domains.set(kernel, d = nextDomain++);
  return d;
}

/**
 * The in-process port over a kernel. Mappings it hands out are the kernel's
 * own {@linkcode ObjectMapping}s (zero copy); `flush`/`persist` turn
 * object-relative ranges into region ranges and make one call to the HAL.
 *
 * Every object call is checked against what the port's principal may do
 * (`kernel.security.allowed`): map (prot within it), read (Read), write and
 * grow (Write), delete (Write or Delete), create from sources (Read on each).
 * The admin's answer is always known at once; a thread's may need its
 * signatures verified first: then the call throws `Busy` and the caller
 * awaits `access(id)` (or `kernel.security.allowed`) and calls again.
 */
export class LocalPort implements KernelPort {
  readonly #kernel: Kernel;
  readonly #principal: Principal;
  /** Extents by handle: the region offset of each live mapping's object. */
  readonly #maps: (ObjectMapping | undefined)[] = [];
  #scratch = new Float64Array(64);

  /**
   * The port of `kernel` for `principal` (the kernel's own is
   * `kernel.port()`, the admin's, one per kernel).
   */
  constructor(kernel: Kernel, principal: Principal = ADMIN) {
    this.#kernel = kernel;
    this.#principal = principal;
  }

  /** Who this port calls for. */
  get principal(): Principal {
    return this.#principal;
  }

  /** What the principal may do on `id` now (`Busy` while signatures await verification). */
  #allowed(id: ObjID): number {
    const a = this.#kernel.security.allowed(this.#principal, id);
    if (typeof a === "number") return a;
    a.catch(() => {}); // verification goes on; a later call sees its verdict
    throw new TwzError(
      ErrorCode.Busy,
      `the protections of ${formatId(id)} are being verified: await port.access(${
        formatId(id)
      }) first`,
    );
  }

  /** Refuse unless the principal's protections on `id` include one of `need`. */
  #need(id: ObjID, need: number, what: string): number {
    const a = this.#allowed(id);
    if ((a & need) === 0) {
      throw new TwzError(
        ErrorCode.AccessDenied,
        `cannot ${what} ${formatId(id)}: its protections here are ${formatSecProt(a)}`,
      );
    }
    return a;
  }

  get readOnly(): boolean {
    return this.#kernel.readOnly;
  }
  create(spec?: CreateSpec): ObjID {
    if (spec?.sources) {
      for (const s of spec.sources) {
        if (!this.#kernel.exists(s.id)) continue; // the kernel names the missing one
        const a = this.#allowed(s.id);
        if (!(a & Prot.Read)) {
          throw new TwzError(
            ErrorCode.AccessDenied,
            `cannot copy from ${formatId(s.id)}: it may not be read`,
          );
        }
      }
    }
    return this.#kernel.create(spec);
  }
  delete(id: ObjID): number {
    if (this.#kernel.exists(id)) this.#need(id, SecProt.Write | SecProt.Delete, "delete");
    return this.#kernel.delete(id);
  }
  stat(id: ObjID): ObjectStat {
    return this.#kernel.stat(id);
  }
  dependents(id: ObjID): ObjID[] {
    if (this.#kernel.exists(id)) this.#need(id, SecProt.Read, "list the objects tied to");
    return this.#kernel.dependents(id);
  }
  exists(id: ObjID): boolean {
    return this.#kernel.exists(id);
  }
  list(): ObjectStat[] {
    return this.#kernel.list();
  }
  map(id: ObjID, prot: number = Prot.ReadWrite): Mapping {
    const m = this.#kernel.map(id, prot, this.#allowed(id));
    this.#maps[m.handle] = m;
    return m;
  }
  unmap(m: Mapping): void {
    if (this.#maps[m.handle] === m) this.#maps[m.handle] = undefined;
  }
  grow(id: ObjID, size: number): void {
    this.#need(id, SecProt.Write, "grow");
    // A global object owned elsewhere is not written here, nor grown.
    const hook = this.#kernel.global;
    if (hook !== undefined && (hook.mapLimit(id) & Prot.Write) === 0) throw ownedElsewhere(id);
    this.#kernel.grow(id, size);
  }
  /** Region ranges for object-relative triples; volatile ones dropped. */
  #regionRanges(ranges: Float64Array, count: number): number {
    if (this.#scratch.length < 2 * count) this.#scratch = new Float64Array(4 * count);
    const out = this.#scratch;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const m = this.#maps[ranges[3 * i]!];
      if (m === undefined) {
        throw new TwzError(ErrorCode.InvalidArgument, `no mapping ${ranges[3 * i]}`);
      }
      const off = ranges[3 * i + 1]!, len = ranges[3 * i + 2]!;
      const e = m.extent;
      if (!(off >= 0 && len >= 0 && off + len <= e.bytes.length)) {
        throw new RangeError(
          `Range [${off}, ${off + len}) is outside ${formatId(m.id)} (${e.bytes.length} bytes)`,
        );
      }
      if (e.base < 0) continue;
      out[2 * n] = e.base + off;
      out[2 * n + 1] = len;
      n++;
    }
    return n;
  }
  flush(ranges: Float64Array, count: number): void {
    const n = this.#regionRanges(ranges, count);
    if (n === 0 || this.#kernel.readOnly) return;
    const region = this.#kernel.hal.region;
    if (region.flushRanges) region.flushRanges(this.#scratch, n);
    else for (let i = 0; i < n; i++) region.flush(this.#scratch[2 * i]!, this.#scratch[2 * i + 1]!);
  }
  drain(): void {
    this.#kernel.drainRegion();
  }
  persist(ranges: Float64Array, count: number): void {
    const n = this.#regionRanges(ranges, count);
    if (this.#kernel.readOnly) return;
    const region = this.#kernel.hal.region;
    if (n === 0) region.drain();
    else if (region.persistRanges) region.persistRanges(this.#scratch, n);
    else {
      if (region.flushRanges) region.flushRanges(this.#scratch, n);
      else {for (let i = 0; i < n; i++) {
          region.flush(this.#scratch[2 * i]!, this.#scratch[2 * i + 1]!);
        }}
      region.drain();
    }
  }
  read(id: ObjID, offset: number, length: number): Uint8Array {
    const m = this.#kernel.map(id, Prot.Read, this.#allowed(id));
    if (
      !Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 ||
      offset + length > m.size
    ) {
      throw new RangeError(
        `Range [${offset}, ${offset + length}) is outside ${formatId(id)} (${m.size} bytes)`,
      );
    }
    return m.bytes.slice(offset, offset + length);
  }
  write(id: ObjID, offset: number, data: Uint8Array): void {
    if (this.#principal.admin) return this.#kernel.write(id, offset, data);
    const m = this.#kernel.map(id, Prot.Write, this.#allowed(id));
    if (this.#kernel.readOnly && m.lifetime === "persistent") {
      this.#kernel.requireWritable("write an object");
    }
    if (
      !Number.isInteger(offset) || offset < 0 || offset + data.length > m.size
    ) {
      throw new RangeError(
        `Range [${offset}, ${offset + data.length}) is outside ${formatId(id)} (${m.size} bytes)`,
      );
    }
    m.bytes.set(data, offset);
    m.persist(offset, data.length);
  }
  rootObject(): ObjID {
    return this.#kernel.rootObject();
  }
  rootObjectId(): ObjID {
    return this.#kernel.rootObjectId();
  }
  info(): SystemInfo {
    const k = this.#kernel;
    const r = k.report;
    return {
      readOnly: k.readOnly,
      privateOverlay: k.hal.readOnly === true,
      hal: k.hal.name,
      size: r.size,
      free: k.usage().freeBytes,
      granularity: k.hal.region.granularity,
      formatted: r.formatted,
      replayed: r.replayed,
      objects: r.objects,
      bootMs: r.ms,
      domain: domainOf(k),
      bootId: r.bootId,
      node: k.global?.node ?? null,
    };
  }
  threadSelf(): ThreadInfo | null {
    return null;
  }
  spawn(spec: SpawnSpec): ThreadInfo {
    return this.#kernel.threads.spawn(spec);
  }
  threads(): ThreadInfo[] {
    return this.#kernel.threads.threads();
  }
  threadKill(tid: number): void {
    this.#kernel.threads.kill(tid);
  }
  threadWait(tid: number, _timeoutMs: number): ThreadInfo {
    return this.#kernel.threads.waitNow(tid);
  }
  threadYield(): void {}
  /**
   * `thread_sync` for the kernel's own session: every operation is checked
   * first, then the wakes run in order (they reach threads the kernel sleeps
   * and threads asleep in their Workers). The session cannot sleep: each
   * sleep answers what it would have — 2 (it would have slept until its
   * timeout) when every sleep's word equals its value, else 1.
   */
  threadSync(ops: SyncOp[]): number[] {
    if (!Array.isArray(ops)) {
      throw new TwzError(ErrorCode.InvalidArgument, "thread_sync: expected a list of operations");
    }
    const extents = ops.map((op, i) => {
      syncOpKind(op, i);
      const width = syncWidth(op);
      const m = this.#kernel.map(op.id, Prot.Read, this.#allowed(op.id));
      syncWordCheck(m.size, op.id, op.offset, width);
      return m.extent;
    });
    let differs = false;
    const out = ops.map((op) => {
      if (op.op !== "wake") return 0;
      return this.#kernel.threadsIfAny?.wake(op.id, op.offset, op.count) ?? 0;
    });
    ops.forEach((op, i) => {
      if (op.op === "sleep" && !syncWordEquals(extents[i]!, op.id, op.offset, op.value)) {
        differs = true;
      }
    });
    ops.forEach((op, i) => {
      if (op.op === "sleep") out[i] = differs ? 1 : 2;
    });
    return out;
  }
  consoleWrite(text: string): void {
    this.#kernel.hal.console.write(text);
  }
  clock(): { wall: number; mono: number } {
    const c = this.#kernel.hal.clock;
    return { wall: c.wallclock(), mono: c.monotonic() };
  }
  random(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0 || n > 65536) {
      throw new TwzError(ErrorCode.InvalidArgument, `random: ${n} is not a byte count (0–65536)`);
    }
    const out = new Uint8Array(n);
    this.#kernel.hal.entropy.fill(out);
    return out;
  }
  // Security: the kernel's security core with this port's principal.
  keyCreate(spec?: KeySpec): Promise<KeyIds> {
    return this.#kernel.security.keyCreate(this.#principal, spec);
  }
  keyRotate(kuid: ObjID, spec?: KeySpec): Promise<void> {
    return this.#kernel.security.keyRotate(this.#principal, kuid, spec);
  }
  keyInfo(kuid: ObjID): KeyInfo {
    return this.#kernel.security.keyInfo(kuid);
  }
  ctxCreate(spec?: { key?: ObjID | undefined }): ObjID {
    return this.#kernel.security.ctxCreate(this.#principal, spec);
  }
  ctxInfo(ctx: ObjID): ContextInfo {
    return this.#kernel.security.ctxInfo(ctx);
  }
  ctxAdd(ctx: ObjID, grant: Uint8Array): number {
    return this.#kernel.security.ctxAdd(this.#principal, ctx, grant);
  }
  ctxRemove(ctx: ObjID, index: number): void {
    this.#kernel.security.ctxRemove(this.#principal, ctx, index);
  }
  ctxMask(ctx: ObjID, target: ObjID, prot: number | null): void {
    this.#kernel.security.ctxMask(this.#principal, ctx, target, prot);
  }
  /**
   * Attach a thread to a context: on the admin's port thread `tid` (the
   * thread manager's `attach`); on a thread's port the thread itself, when
   * it may use the context.
   */
  async ctxAttach(ctx: ObjID, tid?: number): Promise<void> {
    const p = this.#principal;
    const target = p.admin ? tid : p.tid;
    if (target === undefined) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        "the kernel's session attaches a thread: give its number",
      );
    }
    if (!(await this.#kernel.security.mayAttach(p, ctx))) {
      throw new TwzError(
        ErrorCode.AccessDenied,
        `cannot attach to context ${formatId(ctx)}: no capability with Use on it`,
      );
    }
    this.#kernel.threads.attach(target, ctx);
  }
  /** Detach a thread (on the admin's port `tid`, else the caller) from a context. */
  ctxDetach(ctx: ObjID, tid?: number): void {
    const p = this.#principal;
    const target = p.admin ? tid : p.tid;
    if (target === undefined) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        "the kernel's session detaches a thread: give its number",
      );
    }
    this.#kernel.threads.detach(target, ctx);
  }
  contexts(): ObjID[] {
    return this.#principal.admin ? [] : [...this.#principal.contexts];
  }
  access(id: ObjID, contexts?: ObjID[]): Promise<AccessReport> {
    return this.#kernel.security.report(this.#principal, id, contexts);
  }
  gateServe(_id: ObjID): void {
    throw noGates();
  }
  gateReceive(_timeoutMs: number): GateCallInfo | null {
    throw noGates();
  }
  gateReply(_call: number, _result: Uint8Array): void {
    throw noGates();
  }
  gateCall(_id: ObjID, _offset: number, _args: Uint8Array, _timeoutMs?: number): Uint8Array {
    throw noGates();
  }
  /**
   * One operation of the global space: checked (`globalNeeds`), refused
   * with `NotSupported` on a system that is not a node, the principal's
   * rights on each object named checked (`publish`/`refresh` READ,
   * `own`/`release`/`commit` WRITE: an object not held here is fetched
   * first), then handed to the node's hook with this port's principal.
   */
  global<K extends GlobalOp>(op: K, args: GlobalOps[K][0]): GlobalOps[K][1] {
    const needs = globalNeeds(op, args);
    const hook = this.#kernel.global;
    if (!hook) throw new TwzError(ErrorCode.NotSupported, NOT_IN_CLUSTER);
    for (const id of needs.ids) this.#need(id, needs.prot, needs.what);
    return hook.call(op, args, this.#principal) as GlobalOps[K][1];
  }
}

/**
 * @internal Whether the `thread_sync` word at `offset` of an object's
 * extent equals `value`: a 64-bit word when `value` is a bigint, else 32-bit
 * (little-endian; an atomic load when the bytes are shared memory). Throws
 * `RangeError` when the offset is not an aligned word inside the object.
 */
export function syncWordEquals(
  extent: Extent,
  id: ObjID,
  offset: unknown,
  value: number | bigint,
): boolean {
  const wide = typeof value === "bigint";
  syncWordCheck(extent.bytes.length, id, offset, wide ? 8 : 4);
  const at = offset as number;
  if (extent.words && extent.bytes.buffer instanceof SharedArrayBuffer) {
    return wide
      ? Atomics.load(extent.bu64, at / 8) === BigInt.asUintN(64, value)
      : Atomics.load(extent.u32, at / 4) === (value as number) >>> 0;
  }
  return wide
    ? extent.view.getBigUint64(at, true) === BigInt.asUintN(64, value)
    : extent.view.getUint32(at, true) === (value as number) >>> 0;
}

/** What one global operation needs: `prot` (any of its bits) on each of `ids`. */
export interface GlobalNeeds {
  /** The objects the caller must have rights on. */
  ids: ObjID[];
  /** The rights ({@linkcode SecProt} bits), 0 when none. */
  prot: number;
  /** The verb for a refusal ("cannot <what> <id>: …"). */
  what: string;
}

/**
 * @internal Check a `global(op, args)` call's shape — `op` one of
 * `GLOBAL_OPS`, `args` an object, the object IDs the rights rest on
 * present — and say which rights it needs (the GlobalOps doc):
 * `publish` and `refresh` READ of `args.id`, `own` and `release` WRITE of
 * `args.id`, `commit` WRITE of each of `args.ids`; the rest none (the
 * hook checks their other fields).
 *
 * @throws {TwzError} `InvalidArgument` (one line).
 */
export function globalNeeds(op: unknown, args: unknown): GlobalNeeds {
  if (typeof op !== "string" || !(GLOBAL_OPS as readonly string[]).includes(op)) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `global: unknown operation ${
        typeof op === "string" ? JSON.stringify(op) : typeof op
      } (one of ${GLOBAL_OPS.join(", ")})`,
    );
  }
  if (
    typeof args !== "object" || args === null || Array.isArray(args) ||
    ArrayBuffer.isView(args)
  ) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `global ${op}: the arguments must be an object (${
        op === "status" ? "{}" : "e.g. { id }"
      }), not ${args === null ? "null" : Array.isArray(args) ? "a list" : typeof args}`,
    );
  }
  const a = args as Record<string, unknown>;
  const one = (prot: number, what: string): GlobalNeeds => {
    if (typeof a.id !== "bigint") {
      throw new TwzError(ErrorCode.InvalidArgument, `global ${op}: args.id must be an object ID`);
    }
    return { ids: [a.id], prot, what };
  };
  switch (op as GlobalOp) {
    case "publish":
      return one(SecProt.Read, "publish");
    case "refresh":
      return one(SecProt.Read, "refresh");
    case "own":
      return one(SecProt.Write, "take ownership of");
    case "release":
      return one(SecProt.Write, "release");
    case "commit": {
      const ids = a.ids;
      if (!Array.isArray(ids) || !ids.every((x) => typeof x === "bigint")) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          "global commit: args.ids must be a list of object IDs",
        );
      }
      return { ids: [...new Set(ids as ObjID[])], prot: SecProt.Write, what: "commit" };
    }
    default:
      return { ids: [], prot: 0, what: op };
  }
}

function noGates(): TwzError {
  return new TwzError(ErrorCode.NotSupported, "the kernel's session cannot serve or call gates");
}

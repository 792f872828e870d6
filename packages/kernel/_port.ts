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
  type GateCallInfo,
  type KernelPort,
  type KeyIds,
  type KeyInfo,
  type KeySpec,
  type Mapping,
  type ObjectStat,
  type ObjID,
  Prot,
  type SpawnSpec,
  type SyncOp,
  syncOpKind,
  syncWidth,
  syncWordCheck,
  type SystemInfo,
  type ThreadInfo,
  TwzError,
} from "./abi/mod.ts";
import type { Kernel } from "./kernel.ts";
import type { ObjectMapping } from "./_mapping.ts";

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
 */
export class LocalPort implements KernelPort {
  readonly #kernel: Kernel;
  /** Extents by handle: the region offset of each live mapping's object. */
  readonly #maps: (ObjectMapping | undefined)[] = [];
  #scratch = new Float64Array(64);

  /** The port of `kernel` (use `kernel.port()`, which makes one per kernel). */
  constructor(kernel: Kernel) {
    this.#kernel = kernel;
  }

  get readOnly(): boolean {
    return this.#kernel.readOnly;
  }
  create(spec?: CreateSpec): ObjID {
    if (spec?.sources) {
      for (const s of spec.sources) {
        if (!this.#kernel.exists(s.id)) continue; // the kernel names the missing one
        if (!(this.#kernel.stat(s.id).prot & Prot.Read)) {
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
    return this.#kernel.delete(id);
  }
  stat(id: ObjID): ObjectStat {
    return this.#kernel.stat(id);
  }
  exists(id: ObjID): boolean {
    return this.#kernel.exists(id);
  }
  list(): ObjectStat[] {
    return this.#kernel.list();
  }
  map(id: ObjID, prot: number = Prot.ReadWrite): Mapping {
    const m = this.#kernel.map(id, prot);
    this.#maps[m.handle] = m;
    return m;
  }
  unmap(m: Mapping): void {
    if (this.#maps[m.handle] === m) this.#maps[m.handle] = undefined;
  }
  grow(id: ObjID, size: number): void {
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
    return this.#kernel.read(id, offset, length);
  }
  write(id: ObjID, offset: number, data: Uint8Array): void {
    this.#kernel.write(id, offset, data);
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
      const m = this.#kernel.map(op.id, Prot.Read);
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
  // Security: not written yet (issue 14 groundwork).
  keyCreate(_spec?: KeySpec): Promise<KeyIds> {
    return Promise.reject(notYet("key_create"));
  }
  keyRotate(_kuid: ObjID, _spec?: KeySpec): Promise<void> {
    return Promise.reject(notYet("key_rotate"));
  }
  keyInfo(_kuid: ObjID): KeyInfo {
    throw notYet("key_info");
  }
  ctxCreate(_spec?: { key?: ObjID | undefined }): ObjID {
    throw notYet("ctx_create");
  }
  ctxInfo(_ctx: ObjID): ContextInfo {
    throw notYet("ctx_info");
  }
  ctxAdd(_ctx: ObjID, _grant: Uint8Array): number {
    throw notYet("ctx_add");
  }
  ctxRemove(_ctx: ObjID, _index: number): void {
    throw notYet("ctx_remove");
  }
  ctxMask(_ctx: ObjID, _target: ObjID, _prot: number | null): void {
    throw notYet("ctx_mask");
  }
  ctxAttach(_ctx: ObjID, _tid?: number): Promise<void> {
    return Promise.reject(notYet("ctx_attach"));
  }
  ctxDetach(_ctx: ObjID, _tid?: number): void {
    throw notYet("ctx_detach");
  }
  contexts(): ObjID[] {
    return [];
  }
  access(_id: ObjID, _contexts?: ObjID[]): Promise<AccessReport> {
    return Promise.reject(notYet("access"));
  }
  gateServe(_id: ObjID): void {
    throw notYet("gate_serve");
  }
  gateReceive(_timeoutMs: number): GateCallInfo | null {
    throw notYet("gate_receive");
  }
  gateReply(_call: number, _result: Uint8Array): void {
    throw notYet("gate_reply");
  }
  gateCall(_id: ObjID, _offset: number, _args: Uint8Array, _timeoutMs?: number): Uint8Array {
    throw notYet("gate_call");
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

function notYet(call: string): TwzError {
  return new TwzError(ErrorCode.NotSupported, `${call} is not supported yet`);
}

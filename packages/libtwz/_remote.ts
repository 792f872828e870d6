/**
 * A kernel port over the control socket of a running `twz boot`
 * (`IMAGE.sock`; the protocol is described in `packages/cli/control.ts`):
 * {@linkcode connectRemotePort} gives a {@linkcode KernelPort}, so that
 * `Twz.open` on an image a running system holds becomes a client session
 * (`Twz.attach(port)`) instead of being refused.
 *
 * The remote port is synchronous like every port: a small Worker does the
 * socket I/O while the caller waits in `Atomics.wait` on a shared control
 * word; requests and answers travel through two growable SharedArrayBuffers.
 *
 * **Mappings are copies.** `map` fetches the object's bytes into a buffer of
 * the client's own. Stores land in that copy only; `flush`/`persist` of a
 * range send the range's bytes back and the system writes them into the
 * object and flushes (persists) them there, in call order. What other
 * processes (the shell, programs) write after the `map` is not seen through
 * the mapping: `read()` fetches current bytes, and a fresh `map` takes a new
 * copy. `grow` extends the client's copies (keeping unsent stores); `delete`
 * and `unmap` empty them. A store that is never flushed never reaches the
 * object. This is what a client of a running system can have without shared
 * memory between two processes: enough for transactions (libtwz persists every
 * range it changes, in order), not for sharing words with running threads.
 *
 * This file imports only `@twz/kernel/abi` and Deno's own APIs.
 *
 * @module
 */
import {
  type AccessReport,
  type ContextInfo,
  decodeResponse,
  EncodeOverflow,
  encodeRequest,
  ErrorCode,
  Extent,
  type GateCallInfo,
  type GlobalOp,
  type GlobalOps,
  type KernelPort,
  type KeyIds,
  type KeyInfo,
  type KeySpec,
  type Lifetime,
  type Mapping,
  MappingBase,
  type ObjectStat,
  type ObjID,
  Prot,
  type SpawnSpec,
  type SyncOp,
  Sys,
  type SystemInfo,
  type ThreadInfo,
  TwzError,
} from "@twz/kernel/abi";

/** The control protocol version (the greeting is `twz-control 1 PID`); as in `packages/cli/control_client.ts`. */
export const CONTROL_PROTOCOL = 1;

/** Where the control socket of an image is: beside it, `IMAGE.sock`. */
export function controlPath(image: string): string {
  return `${image}.sock`;
}

const fromUtf8 = new TextDecoder();

/** Whether a socket file is there that something may answer on. */
async function reachable(path: string): Promise<boolean> {
  try {
    if (Deno.statSync(path).isSocket !== true) return false;
    (await Deno.connect({ transport: "unix", path })).close();
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// The remote port.
// ---------------------------------------------------------------------------

/** Control word states (`ctl[0]`). */
const IDLE = 0, REQUEST = 1, ANSWER = 2, CLOSE = 3;
/** `ctl[1]`: request length; `ctl[2]`: answer length. */
const REQ_LEN = 1, RES_LEN = 2;
const MAX_MESSAGE = 1 << 30;

/**
 * The Worker doing the socket I/O (plain JavaScript, loaded from a blob URL).
 * It connects, reads the greeting, asks for a port session, then for each
 * request the caller posts (`ctl[0] = REQUEST`) sends one frame and copies the
 * answer frame back (`ctl[0] = ANSWER`); `ctl[0] = CLOSE` ends it. A lost
 * connection answers with length -1.
 */
const WORKER = `
let conn, ctl, req, res, buf = new Uint8Array(65536), start = 0, end = 0;
async function fill() {
  if (start === end) start = end = 0;
  if (end === buf.length) {
    const next = new Uint8Array(buf.length * 2);
    next.set(buf.subarray(start, end)); end -= start; start = 0; buf = next;
  }
  const n = await conn.read(buf.subarray(end));
  if (n === null) return false;
  end += n; return true;
}
async function line() {
  for (;;) {
    const i = buf.subarray(start, end).indexOf(10);
    if (i >= 0) { const s = new TextDecoder().decode(buf.subarray(start, start + i)); start += i + 1; return s; }
    if (!(await fill())) return null;
  }
}
async function exact(n, into) {
  let got = 0;
  while (got < n) {
    if (start === end && !(await fill())) return false;
    const k = Math.min(n - got, end - start);
    into.set(buf.subarray(start, start + k), got); start += k; got += k;
  }
  return true;
}
async function writeAll(b) { for (let at = 0; at < b.length;) at += await conn.write(b.subarray(at)); }
function answer(state, len) {
  Atomics.store(ctl, ${RES_LEN}, len); Atomics.store(ctl, 0, state); Atomics.notify(ctl, 0);
}
self.onmessage = async (e) => {
  ({ ctl, req, res } = e.data);
  try {
    conn = await Deno.connect({ transport: "unix", path: e.data.path });
    const hello = await line();
    if (hello === null || !/^twz-control ${CONTROL_PROTOCOL} /.test(hello)) throw new Error("not a twz control socket (" + hello + ")");
    await writeAll(new TextEncoder().encode("port\\n"));
    const ok = await line();
    if (ok === null || !ok.startsWith("ok")) throw new Error(ok === null ? "connection closed" : ok);
  } catch (err) {
    self.postMessage({ error: String(err && err.message || err) });
    return;
  }
  self.postMessage({ ready: true });
  for (;;) {
    const state = Atomics.load(ctl, 0);
    if (state === ${CLOSE}) { try { conn.close(); } catch {} self.close(); return; }
    if (state !== ${REQUEST}) {
      const w = Atomics.waitAsync(ctl, 0, state);
      if (w.async) await w.value;
      continue;
    }
    try {
      const n = Atomics.load(ctl, ${REQ_LEN});
      const out = new Uint8Array(4 + n);
      new DataView(out.buffer).setUint32(0, n, true);
      out.set(new Uint8Array(req, 0, n), 4);
      await writeAll(out);
      const head = new Uint8Array(4);
      if (!(await exact(4, head))) { answer(${ANSWER}, -1); continue; }
      const len = new DataView(head.buffer).getUint32(0, true);
      if (res.byteLength < len) res.grow(Math.min(${MAX_MESSAGE}, Math.max(len, res.byteLength * 2)));
      if (!(await exact(len, new Uint8Array(res, 0, len)))) { answer(${ANSWER}, -1); continue; }
      answer(${ANSWER}, len);
    } catch {
      answer(${ANSWER}, -1);
    }
  }
};
`;

/** Answer kinds: the first byte of an answer frame. */
const ANSWER_ERROR = 1; // 0: the port's response encoding follows

/** Rebuild an error the system threw that is not a `TwzError` (kept by name). */
function foreignError(json: string): Error {
  const { name, message } = JSON.parse(json) as { name: string; message: string };
  if (name === "RangeError") return new RangeError(message);
  if (name === "TypeError") return new TypeError(message);
  const e = new Error(message);
  e.name = name;
  return e;
}

/** Durability domains of remote ports: far from the in-process ports' small numbers. */
let nextRemoteDomain = 0x4000_0000;

/** A mapping over a copy of the object's bytes (see the module doc). */
class RemoteMapping extends MappingBase {
  constructor(
    readonly port: RemotePort,
    id: ObjID,
    lifetime: Lifetime,
    prot: number,
    handle: number,
    bytes: Uint8Array,
  ) {
    super(id, lifetime, prot, handle, new Extent(bytes, -1));
  }
  flush(offset: number, length: number): void {
    this.port.flush(new Float64Array([this.handle, offset, length]), 1);
  }
  drain(): void {
    this.port.drain();
  }
  persist(offset: number, length: number): void {
    this.port.persist(new Float64Array([this.handle, offset, length]), 1);
  }
}

/** What the system answers for `map` over the socket. */
interface RemoteMapReply {
  id: ObjID;
  lifetime: Lifetime;
  prot: number;
  handle: number;
  bytes: Uint8Array;
}

/**
 * A {@linkcode KernelPort} over a running system's control socket (see the
 * module doc for what a mapping is here). Make one with
 * {@linkcode connectRemotePort}; {@linkcode RemotePort.close} ends the session
 * (the system forgets its mappings).
 */
export class RemotePort implements KernelPort {
  readonly #worker: Worker;
  readonly #ctl: Int32Array;
  readonly #req: SharedArrayBuffer;
  readonly #res: SharedArrayBuffer;
  #scratch = new Uint8Array(4096);
  readonly #maps = new Map<number, RemoteMapping>();
  readonly #domain = nextRemoteDomain++;
  #closed = false;
  #readOnly = false;

  /** @internal Use {@linkcode connectRemotePort}. */
  constructor(
    worker: Worker,
    ctl: Int32Array,
    req: SharedArrayBuffer,
    res: SharedArrayBuffer,
  ) {
    this.#worker = worker;
    this.#ctl = ctl;
    this.#req = req;
    this.#res = res;
  }

  /** @internal Ask the system once what it is, after connecting. */
  _start(): void {
    this.#readOnly = this.info().readOnly;
  }

  /** One request and its answer (the caller waits). */
  #call(sys: number, args: readonly unknown[]): unknown {
    if (this.#closed) throw new TwzError(ErrorCode.Shutdown, "the remote session is closed");
    let n: number;
    for (;;) {
      try {
        n = encodeRequest(this.#scratch, sys, args);
        break;
      } catch (error) {
        if (!(error instanceof EncodeOverflow) || this.#scratch.length >= MAX_MESSAGE) throw error;
        this.#scratch = new Uint8Array(this.#scratch.length * 4);
      }
    }
    if (this.#req.byteLength < n) this.#req.grow(Math.max(n, this.#req.byteLength * 2));
    new Uint8Array(this.#req, 0, n).set(this.#scratch.subarray(0, n));
    const ctl = this.#ctl;
    Atomics.store(ctl, REQ_LEN, n);
    Atomics.store(ctl, 0, REQUEST);
    Atomics.notify(ctl, 0);
    while (Atomics.load(ctl, 0) === REQUEST) Atomics.wait(ctl, 0, REQUEST);
    const len = Atomics.load(ctl, RES_LEN);
    Atomics.store(ctl, 0, IDLE);
    if (len < 0) {
      this.close();
      throw new TwzError(ErrorCode.Shutdown, "the system closed the control connection");
    }
    const answer = new Uint8Array(this.#res, 0, len).slice();
    if (answer[0] === ANSWER_ERROR) throw foreignError(fromUtf8.decode(answer.subarray(1)));
    return decodeResponse(answer.subarray(1), answer.length - 1);
  }

  get readOnly(): boolean {
    return this.#readOnly;
  }
  create(spec?: import("@twz/kernel/abi").CreateSpec): ObjID {
    return this.#call(Sys.Create, [spec]) as ObjID;
  }
  delete(id: ObjID): number {
    const r = this.#call(Sys.Delete, [id]) as { count: number; gone: number[] };
    for (const h of r.gone) this.#forget(h);
    return r.count;
  }
  stat(id: ObjID): ObjectStat {
    return this.#call(Sys.Stat, [id]) as ObjectStat;
  }
  dependents(id: ObjID): ObjID[] {
    return this.#call(Sys.Dependents, [id]) as ObjID[];
  }
  exists(id: ObjID): boolean {
    return this.#call(Sys.Exists, [id]) as boolean;
  }
  list(): ObjectStat[] {
    return this.#call(Sys.List, []) as ObjectStat[];
  }
  map(id: ObjID, prot: number = Prot.ReadWrite): Mapping {
    const r = this.#call(Sys.Map, [id, prot]) as RemoteMapReply;
    const m = new RemoteMapping(this, r.id, r.lifetime, r.prot, r.handle, r.bytes);
    this.#maps.set(r.handle, m);
    return m;
  }
  unmap(m: Mapping): void {
    if (this.#maps.get(m.handle) !== m) return;
    this.#call(Sys.Unmap, [m.handle]);
    this.#forget(m.handle);
  }
  #forget(handle: number): void {
    const m = this.#maps.get(handle);
    if (m === undefined) return;
    this.#maps.delete(handle);
    m.extent.retarget(new Uint8Array(0), -1);
  }
  grow(id: ObjID, size: number): void {
    this.#call(Sys.Grow, [id, size]);
    for (const m of this.#maps.values()) {
      if (m.id !== id || m.extent.bytes.length >= size) continue;
      const bigger = new Uint8Array(size);
      bigger.set(m.extent.bytes);
      m.extent.retarget(bigger, -1);
    }
  }
  /** The triples and, for each, the bytes of that range of the client's copy. */
  #ranges(ranges: Float64Array, count: number): [Float64Array, number, Uint8Array[]] {
    const data: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const h = ranges[3 * i]!, off = ranges[3 * i + 1]!, len = ranges[3 * i + 2]!;
      const m = this.#maps.get(h);
      if (m === undefined) throw new TwzError(ErrorCode.InvalidArgument, `no mapping ${h}`);
      if (!(off >= 0 && len >= 0 && off + len <= m.extent.bytes.length)) {
        throw new RangeError(
          `Range [${off}, ${off + len}) is outside the mapping of ${
            m.id.toString(16)
          } (${m.size} bytes)`,
        );
      }
      data.push(m.extent.bytes.subarray(off, off + len));
    }
    return [ranges.slice(0, 3 * count), count, data];
  }
  flush(ranges: Float64Array, count: number): void {
    this.#call(Sys.Flush, this.#ranges(ranges, count));
  }
  drain(): void {
    this.#call(Sys.Drain, []);
  }
  persist(ranges: Float64Array, count: number): void {
    this.#call(Sys.Persist, this.#ranges(ranges, count));
  }
  read(id: ObjID, offset: number, length: number): Uint8Array {
    return this.#call(Sys.Read, [id, offset, length]) as Uint8Array;
  }
  write(id: ObjID, offset: number, data: Uint8Array): void {
    this.#call(Sys.Write, [id, offset, data]);
  }
  rootObject(): ObjID {
    return this.#call(Sys.RootObject, []) as ObjID;
  }
  rootObjectId(): ObjID {
    return this.#call(Sys.RootObjectId, []) as ObjID;
  }
  /** The system's facts; `domain` is this session's own (its mappings are copies). */
  info(): SystemInfo {
    return { ...(this.#call(Sys.Info, []) as SystemInfo), domain: this.#domain };
  }
  threadSelf(): ThreadInfo | null {
    return null;
  }
  spawn(spec: SpawnSpec): ThreadInfo {
    return this.#call(Sys.Spawn, [spec]) as ThreadInfo;
  }
  threads(): ThreadInfo[] {
    return this.#call(Sys.Threads, []) as ThreadInfo[];
  }
  threadKill(tid: number): void {
    this.#call(Sys.ThreadKill, [tid]);
  }
  /** Waits in the system (not here) until the thread ends or `timeoutMs` passes. */
  threadWait(tid: number, timeoutMs: number): ThreadInfo {
    return this.#call(Sys.ThreadWait, [tid, timeoutMs]) as ThreadInfo;
  }
  threadYield(): void {}
  threadSync(ops: SyncOp[]): number[] {
    return this.#call(Sys.ThreadSync, [ops]) as number[];
  }
  consoleWrite(text: string): void {
    this.#call(Sys.ConsoleWrite, [text]);
  }
  clock(): { wall: number; mono: number } {
    return this.#call(Sys.Clock, []) as { wall: number; mono: number };
  }
  random(n: number): Uint8Array {
    return this.#call(Sys.Random, [n]) as Uint8Array;
  }

  /** Whether {@linkcode RemotePort.close} ran (or the system went away). */
  get closed(): boolean {
    return this.#closed;
  }

  /** End the session: mappings read empty, the socket is closed. Harmless twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of [...this.#maps.keys()]) this.#forget(h);
    Atomics.store(this.#ctl, 0, CLOSE);
    Atomics.notify(this.#ctl, 0);
    this.#worker.terminate();
  }

  /** {@linkcode RemotePort.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
  // Security: the system's admin session answers (the control socket is
  // the kernel's own session, docs/SECURITY.md). The calls that are
  // asynchronous on a port wait here like every other call and settle at once.

  /** A call whose port signature is asynchronous: made now, settled. */
  #settled<T>(sys: number, args: readonly unknown[]): Promise<T> {
    try {
      return Promise.resolve(this.#call(sys, args) as T);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  /** Kernel sessions have no revocation epoch (nothing is withdrawn from the admin). */
  get epoch(): Int32Array | undefined {
    return undefined;
  }
  keyCreate(spec?: KeySpec): Promise<KeyIds> {
    return this.#settled(Sys.KeyCreate, [spec]);
  }
  keyRotate(kuid: ObjID, spec?: KeySpec): Promise<void> {
    return this.#settled(Sys.KeyRotate, [kuid, spec]);
  }
  keyInfo(kuid: ObjID): KeyInfo {
    return this.#call(Sys.KeyInfo, [kuid]) as KeyInfo;
  }
  ctxCreate(spec?: { key?: ObjID | undefined }): ObjID {
    return this.#call(Sys.CtxCreate, [spec]) as ObjID;
  }
  ctxInfo(ctx: ObjID): ContextInfo {
    return this.#call(Sys.CtxInfo, [ctx]) as ContextInfo;
  }
  ctxAdd(ctx: ObjID, grant: Uint8Array): number {
    return this.#call(Sys.CtxAdd, [ctx, grant]) as number;
  }
  ctxRemove(ctx: ObjID, index: number): void {
    this.#call(Sys.CtxRemove, [ctx, index]);
  }
  ctxMask(ctx: ObjID, target: ObjID, prot: number | null): void {
    this.#call(Sys.CtxMask, [ctx, target, prot]);
  }
  ctxAttach(ctx: ObjID, tid?: number): Promise<void> {
    return this.#settled(Sys.CtxAttach, [ctx, tid]);
  }
  ctxDetach(ctx: ObjID, tid?: number): void {
    this.#call(Sys.CtxDetach, [ctx, tid]);
  }
  contexts(): ObjID[] {
    return this.#call(Sys.Contexts, []) as ObjID[];
  }
  access(id: ObjID, contexts?: ObjID[]): Promise<AccessReport> {
    return this.#settled(Sys.Access, [id, contexts]);
  }
  gateServe(id: ObjID): void {
    this.#call(Sys.GateServe, [id]);
  }
  gateReceive(timeoutMs: number): GateCallInfo | null {
    return this.#call(Sys.GateReceive, [timeoutMs]) as GateCallInfo | null;
  }
  gateReply(call: number, result: Uint8Array): void {
    this.#call(Sys.GateReply, [call, result]);
  }
  gateCall(id: ObjID, offset: number, args: Uint8Array, timeoutMs?: number): Uint8Array {
    return this.#call(Sys.GateCall, [id, offset, args, timeoutMs]) as Uint8Array;
  }
  global<K extends GlobalOp>(op: K, args: GlobalOps[K][0]): GlobalOps[K][1] {
    return this.#call(Sys.Global, [op, args]) as GlobalOps[K][1];
  }
}

/**
 * Connect a port session to the system that holds `image`.
 *
 * @param image The image path (`IMAGE.sock` beside it is dialled).
 * @returns The port, or `undefined` when no system listens beside the image.
 * @throws {Error} Something answers that is not a twz control socket.
 * @example
 * ```ts ignore
 * import { connectRemotePort } from "./_remote.ts";
 * const port = await connectRemotePort("./twz.img");
 * if (port) {
 *   console.log(port.list().length);
 *   port.close();
 * }
 * ```
 */
export async function connectRemotePort(image: string): Promise<RemotePort | undefined> {
  const path = controlPath(image);
  if (!(await reachable(path))) return undefined;
  const ctl = new Int32Array(new SharedArrayBuffer(16));
  const req = new SharedArrayBuffer(65536, { maxByteLength: MAX_MESSAGE });
  const res = new SharedArrayBuffer(65536, { maxByteLength: MAX_MESSAGE });
  const url = URL.createObjectURL(new Blob([WORKER], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    const started = await new Promise<{ ready?: boolean; error?: string }>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        resolve({ error: e.message });
      };
      worker.postMessage({ path, ctl, req, res });
    });
    if (started.error !== undefined) {
      worker.terminate();
      if (/refused|reset|not found|No such file/i.test(started.error)) return undefined;
      throw new Error(`cannot open a session on ${path}: ${started.error}`);
    }
  } finally {
    URL.revokeObjectURL(url);
  }
  worker.onmessage = null;
  Atomics.store(ctl, 0, IDLE);
  const port = new RemotePort(worker, ctl, req, res);
  port._start();
  return port;
}

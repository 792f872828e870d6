/**
 * `@twz/global/link`: {@linkcode NatsLink}, the node's link to a NATS
 * JetStream cluster. The `@nats-io` clients run in a Worker of their own
 * (`_nats_worker.ts`); a synchronous call posts its request and blocks the
 * calling thread in `Atomics.wait` on a shared control word until the Worker
 * has written the answer into a shared buffer, at most `timeoutMs` (then a
 * one-line `TwzError(TimedOut)`). That keeps dereferencing a remote object
 * synchronous for the kernel, while lease renewal, watches and served
 * requests go on in the Worker.
 *
 * @example Connect, write a key, read it back
 * ```ts ignore
 * import { NatsLink } from "@twz/global/link";
 * const link = await NatsLink.open({ servers: ["nats://127.0.0.1:4222"], name: "a" });
 * const rev = link.create("meta", "obj.demo", new TextEncoder().encode("{}"));
 * console.log(link.get("meta", "obj.demo")?.revision === rev); // true
 * await link.close();
 * ```
 *
 * @tags allow-net, allow-read
 * @module
 */
import { ErrorCode, Reader, TwzError } from "@twz/kernel/abi";
import {
  type Bucket,
  CasConflict,
  type KvEntry,
  type Link,
  type LinkOps,
  type LinkOptions,
} from "./_link_api.ts";
import type { FromWorker, ToWorker, WireError } from "./_nats_worker.ts";

// The shared control words and answer status bytes (the same values as in
// _nats_worker.ts, which must not be imported here: it is the Worker's module).
const ANS = 0, LEN = 1, REQ = 2, PROG = 3;
const ST_ERR = 1, ST_CAS = 2;

/** Default longest wait of a synchronous call, in ms. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** Largest answer a synchronous call can carry (the shared buffer's limit), in bytes. */
export const MAX_ANSWER_BYTES = 1 << 30;
const INITIAL_ANSWER_BYTES = 1 << 20;
/**
 * How long `open` waits for the Worker at most, in ms: the connection (a few
 * seconds at most) and the buckets (each retried up to `timeoutMs` while
 * JetStream elects its leaders).
 */
const openWaitMs = (timeoutMs: number) => 4000 + 3 * timeoutMs;

function fromWire(e: WireError): TwzError {
  if (e.casKey !== undefined) {
    const detail = e.message;
    return new CasConflict(e.casKey, detail);
  }
  return new TwzError(e.code as ErrorCode, e.message);
}

function describe(op: string, args: unknown[]): string {
  switch (op) {
    case "get":
    case "create":
    case "update":
    case "put":
    case "delete":
    case "keys":
      return `${op} ${String(args[1])}`;
    case "putBytes":
    case "getBytes":
    case "deleteBytes":
    case "request":
    case "holdLease":
    case "dropLease":
      return `${op} ${String(args[0])}`;
    case "watch":
      return `watch ${String(args[2])}`;
    case "serve":
      return `serve ${String(args[1])}`;
    default:
      return op;
  }
}

function timedOut(ms: number, op: string, args: unknown[]): TwzError {
  return new TwzError(
    ErrorCode.TimedOut,
    `global space: no answer from the cluster in ${ms} ms (${describe(op, args)})`,
  );
}

/**
 * A {@linkcode Link} over NATS JetStream: KV buckets `<prefix>-meta` and
 * `<prefix>-names` (history 1, leader reads), object store `<prefix>-bytes`
 * (chunked, so objects larger than the server's `max_payload` fit), all with
 * `replicas` copies; the connection knows every server URL and reconnects
 * forever. Use one link from one thread (its synchronous calls block that
 * thread).
 *
 * Reads go to each stream's leader, so a read sees every acknowledged write.
 * While a stream has no leader (its server was killed: nats-server 2.9 takes
 * about 4–9 s to elect another) an operation is retried inside the Worker
 * until `timeoutMs`, then fails with `TimedOut`. A compare-and-set whose
 * answer was lost is settled there too: it succeeds if the key now holds
 * exactly its bytes, else it is a {@linkcode CasConflict}.
 */
export class NatsLink implements Link {
  /** Its options, with defaults filled in. */
  readonly options: Readonly<LinkOptions>;
  /** The same operations, answering through the event loop. */
  readonly async: LinkOps<"async">;
  #worker: Worker;
  #ctl: Int32Array;
  #data: SharedArrayBuffer;
  #timeoutMs: number;
  #nextId = 1;
  #pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> }
  >();
  #watches = new Map<number, (key: string, entry: KvEntry | null) => void>();
  #serves = new Map<number, (data: Uint8Array) => Uint8Array | Promise<Uint8Array>>();
  #leases = new Map<string, (reason: string) => void>();
  #status: ((connected: boolean) => void)[] = [];
  #connected = true;
  #closed = false;
  #onClosed: (() => void) | null = null;

  private constructor(
    options: LinkOptions,
    worker: Worker,
    ctl: Int32Array,
    data: SharedArrayBuffer,
  ) {
    this.options = options;
    this.#worker = worker;
    this.#ctl = ctl;
    this.#data = data;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const call = <T>(op: string, ...args: unknown[]) => this.#callAsync(op, args) as Promise<T>;
    this.async = {
      get: (bucket, key) => call("get", bucket, key),
      create: (bucket, key, value) => call("create", bucket, key, value),
      update: (bucket, key, value, revision) => call("update", bucket, key, value, revision),
      put: (bucket, key, value) => call("put", bucket, key, value),
      delete: (bucket, key, revision) => call("delete", bucket, key, revision),
      keys: (bucket, filter) => call("keys", bucket, filter),
      putBytes: (name, bytes) => call("putBytes", name, bytes),
      getBytes: (name) => call("getBytes", name),
      deleteBytes: (name) => call("deleteBytes", name),
      request: (subject, data, timeoutMs) => call("request", subject, data, timeoutMs),
    };
  }

  /**
   * Start the Worker, connect to the cluster and make sure the buckets exist.
   *
   * @param options Servers, the connection's name, timeout, replicas, prefix.
   * @returns The open link.
   * @throws {TwzError} `TimedOut`, one line "cannot reach the cluster at
   *   nats://…: <reason>", when no server answers (within a few seconds).
   * @example
   * ```ts ignore
   * import { NatsLink } from "@twz/global/link";
   * const link = await NatsLink.open({ servers: ["nats://127.0.0.1:4222"], name: "a" });
   * await link.close();
   * ```
   */
  static async open(options: LinkOptions): Promise<NatsLink> {
    if (options.servers.length === 0) {
      throw new TwzError(ErrorCode.InvalidArgument, "global space: no cluster server given");
    }
    const full = {
      servers: [...options.servers],
      name: options.name,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      replicas: options.replicas ?? Math.min(3, options.servers.length),
      prefix: options.prefix ?? "twz",
    };
    const ctl = new Int32Array(new SharedArrayBuffer(16));
    const data = new SharedArrayBuffer(INITIAL_ANSWER_BYTES, { maxByteLength: MAX_ANSWER_BYTES });
    const worker = new Worker(new URL("./_nats_worker.ts", import.meta.url), { type: "module" });
    const link = new NatsLink(full, worker, ctl, data);
    const where = full.servers.join(",");
    const waitMs = openWaitMs(full.timeoutMs);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        worker.terminate();
        reject(
          new TwzError(
            ErrorCode.TimedOut,
            `cannot reach the cluster at ${where}: no answer in ${waitMs} ms`,
          ),
        );
      }, waitMs);
      worker.onerror = (e) => {
        e.preventDefault();
        clearTimeout(timer);
        worker.terminate();
        reject(new TwzError(ErrorCode.NotSupported, `cannot start the NATS worker: ${e.message}`));
      };
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.t === "ready") {
          clearTimeout(timer);
          worker.onmessage = (e: MessageEvent<FromWorker>) => link.#event(e.data);
          worker.onerror = (e) => {
            // The Worker died: the link is down for good (calls answer Shutdown).
            e.preventDefault();
            link.#broken(e.message);
          };
          resolve();
        } else if (m.t === "failed") {
          clearTimeout(timer);
          worker.terminate();
          reject(new TwzError(ErrorCode.TimedOut, m.message));
        }
      };
      const init: ToWorker = {
        t: "init",
        ctl: ctl.buffer as SharedArrayBuffer,
        data,
        options: full,
      };
      worker.postMessage(init);
    });
    return link;
  }

  /** Whether the NATS connection is up (from the Worker's status events). */
  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  #event(m: FromWorker): void {
    switch (m.t) {
      case "answer": {
        const p = this.#pending.get(m.id);
        if (!p) return; // timed out already
        this.#pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.value);
        else p.reject(fromWire(m.error));
        return;
      }
      case "status":
        this.#connected = m.connected;
        for (const cb of this.#status) cb(m.connected);
        return;
      case "watch": {
        const cb = this.#watches.get(m.wid);
        if (cb) cb(m.key, m.value === null ? null : { value: m.value, revision: m.revision });
        return;
      }
      case "serve": {
        const h = this.#serves.get(m.sid);
        const reply = (data: Uint8Array | null) => {
          if (!this.#closed) this.#post("reply", [m.rid, data]);
        };
        if (!h) return reply(null);
        try {
          Promise.resolve(h(m.data)).then(reply, () => reply(null));
        } catch {
          reply(null);
        }
        return;
      }
      case "lost": {
        const cb = this.#leases.get(m.key);
        this.#leases.delete(m.key);
        cb?.(m.reason);
        return;
      }
      case "closed":
        this.#onClosed?.();
        return;
      default:
        return;
    }
  }

  #broken(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
    const error = new TwzError(ErrorCode.Shutdown, `global space: the NATS worker failed: ${why}`);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.#pending.clear();
    for (const [key, cb] of this.#leases) cb(`the lease on ${key} stopped: ${error.message}`);
    this.#leases.clear();
    for (const cb of this.#status) cb(false);
  }

  #post(op: string, args: unknown[], sync = false, id = 0): void {
    const m: ToWorker = { t: "call", id, sync, op, args };
    this.#worker.postMessage(m);
  }

  #closedError(op: string, args: unknown[]): TwzError {
    return new TwzError(
      ErrorCode.Shutdown,
      `global space: the link is closed (${describe(op, args)})`,
    );
  }

  #callAsync(op: string, args: unknown[], timeoutMs = this.#timeoutMs): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closedError(op, args));
    const id = this.#nextId++;
    const transfer = op === "putBytes" || op === "getBytes";
    return new Promise((resolve, reject) => {
      let moved = Atomics.load(this.#ctl, PROG);
      let deadline = Date.now() + timeoutMs;
      const expire = () => {
        // A transfer of object-store bytes that keeps moving is not timed out.
        if (transfer && Atomics.load(this.#ctl, PROG) !== moved) {
          moved = Atomics.load(this.#ctl, PROG);
          deadline = Date.now() + timeoutMs;
        }
        if (Date.now() < deadline) {
          const p = this.#pending.get(id);
          if (p) p.timer = setTimeout(expire, Math.min(250, deadline - Date.now()));
          return;
        }
        this.#pending.delete(id);
        reject(timedOut(timeoutMs, op, args));
      };
      const timer = setTimeout(expire, transfer ? Math.min(250, timeoutMs) : timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#post(op, args, false, id);
    });
  }

  /** A synchronous call: post it, then wait in `Atomics.wait` for its answer. */
  #call(op: string, args: unknown[], timeoutMs = this.#timeoutMs): unknown {
    if (this.#closed) throw this.#closedError(op, args);
    const id = this.#nextId++;
    const ctl = this.#ctl;
    Atomics.store(ctl, REQ, id);
    this.#post(op, args, true, id);
    let deadline = performance.now() + timeoutMs;
    // A transfer of object-store bytes that keeps moving is not timed out.
    const transfer = op === "putBytes" || op === "getBytes";
    let moved = Atomics.load(ctl, PROG);
    for (;;) {
      const seen = Atomics.load(ctl, ANS);
      if (seen === id) break;
      if (transfer && Atomics.load(ctl, PROG) !== moved) {
        moved = Atomics.load(ctl, PROG);
        deadline = performance.now() + timeoutMs;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        Atomics.store(ctl, REQ, 0); // a late answer is dropped by the worker
        throw timedOut(timeoutMs, op, args);
      }
      Atomics.wait(ctl, ANS, seen, transfer ? Math.min(left, 200) : left);
    }
    const r = new Reader(new Uint8Array(this.#data), Atomics.load(ctl, LEN));
    const status = r.u8();
    if (status === ST_ERR) {
      const code = r.u32();
      throw new TwzError(code as ErrorCode, String(r.value()));
    }
    if (status === ST_CAS) {
      const key = String(r.value());
      throw new CasConflict(key, String(r.value()));
    }
    return r.value();
  }

  /** The current value of a key, or `null`. */
  get(bucket: Bucket, key: string): KvEntry | null {
    return this.#call("get", [bucket, key]) as KvEntry | null;
  }
  /** Create a key that must not exist ({@linkcode CasConflict} if it does). */
  create(bucket: Bucket, key: string, value: Uint8Array): number {
    return this.#call("create", [bucket, key, value]) as number;
  }
  /** Replace a key's value if its revision is `revision` ({@linkcode CasConflict} if not). */
  update(bucket: Bucket, key: string, value: Uint8Array, revision: number): number {
    return this.#call("update", [bucket, key, value, revision]) as number;
  }
  /** Set a key unconditionally; returns the new revision. */
  put(bucket: Bucket, key: string, value: Uint8Array): number {
    return this.#call("put", [bucket, key, value]) as number;
  }
  /** Delete a key (only at `revision` when given). */
  delete(bucket: Bucket, key: string, revision?: number): void {
    this.#call("delete", [bucket, key, revision]);
  }
  /** The keys matching a subject filter. */
  keys(bucket: Bucket, filter: string): string[] {
    return this.#call("keys", [bucket, filter]) as string[];
  }
  /** Store bytes under a name (chunked; acknowledged when it returns). */
  putBytes(name: string, bytes: Uint8Array): void {
    this.#call("putBytes", [name, bytes]);
  }
  /** The bytes stored under a name, or `null`. */
  getBytes(name: string): Uint8Array | null {
    return this.#call("getBytes", [name]) as Uint8Array | null;
  }
  /** Remove a name from the object store. */
  deleteBytes(name: string): void {
    this.#call("deleteBytes", [name]);
  }
  /** Send a request and wait for one answer (`TimedOut`; no responder: `Busy`). */
  request(subject: string, data: Uint8Array, timeoutMs: number): Uint8Array {
    return this.#call("request", [subject, data, timeoutMs], timeoutMs + 1000) as Uint8Array;
  }

  /**
   * Watch keys matching `filter` from now on (the watch is in place when
   * this returns); `onChange` runs on this thread's event loop.
   */
  watch(
    bucket: Bucket,
    filter: string,
    onChange: (key: string, entry: KvEntry | null) => void,
  ): () => void {
    const wid = this.#nextId++;
    this.#watches.set(wid, onChange);
    try {
      this.#call("watch", [wid, bucket, filter]);
    } catch (e) {
      this.#watches.delete(wid);
      throw e;
    }
    return () => {
      if (!this.#watches.delete(wid) || this.#closed) return;
      this.#post("unwatch", [wid]);
    };
  }

  /** Answer requests on `subject` (subscribed when this returns). */
  serve(
    subject: string,
    handler: (data: Uint8Array) => Uint8Array | Promise<Uint8Array>,
  ): () => void {
    const sid = this.#nextId++;
    this.#serves.set(sid, handler);
    try {
      this.#call("serve", [sid, subject]);
    } catch (e) {
      this.#serves.delete(sid);
      throw e;
    }
    return () => {
      if (!this.#serves.delete(sid) || this.#closed) return;
      this.#post("unserve", [sid]);
    };
  }

  /** Hold a lease on `key` of the meta bucket, renewed by the Worker every `leaseMs / 3`. */
  holdLease(
    key: string,
    leaseMs: number,
    fields: Record<string, unknown>,
    onLost: (reason: string) => void,
    revision?: number,
  ): number {
    this.#leases.set(key, onLost);
    try {
      return this.#call("holdLease", [key, leaseMs, fields, revision]) as number;
    } catch (e) {
      this.#leases.delete(key);
      throw e;
    }
  }

  /** Stop renewing the lease on `key`; with `expire`, write it once more as lapsed. */
  dropLease(key: string, expire: boolean): void {
    this.#leases.delete(key);
    this.#call("dropLease", [key, expire]);
  }

  /** The server names leading each bucket's stream now. */
  leaders(): { meta: string; names: string; bytes: string } {
    return this.#call("leaders", []) as { meta: string; names: string; bytes: string };
  }

  /** Called with `true`/`false` as the connection comes and goes. */
  onStatus(cb: (connected: boolean) => void): void {
    this.#status.push(cb);
  }

  /**
   * Stop watches, leases and serving; drain and close the connection; end
   * the Worker (it closes itself; terminated after a few seconds if not).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 3000);
      this.#onClosed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#post("close", []);
    await done;
    this.#worker.terminate();
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(this.#closedError("call", [id]));
    }
    this.#pending.clear();
    this.#watches.clear();
    this.#serves.clear();
    this.#leases.clear();
  }
}

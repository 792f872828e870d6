/**
 * The contract between the global space (`space.ts`) and its NATS link
 * (`link.ts`, whose client runs in a Worker of its own, `_nats_worker.ts`).
 * Every synchronous method blocks the calling thread in `Atomics.wait` until
 * the Worker answers, at most `timeoutMs` (then `TwzError(TimedOut)`, one
 * line naming the operation and the key); the `async` forms answer through
 * the event loop, for callers that must not block (races, benchmarks).
 *
 * @module
 */
import { ErrorCode, TwzError } from "@twz/kernel/abi";

/** The two KV buckets: object records (and node leases, transaction records), names. */
export type Bucket = "meta" | "names";

/** A KV value and the revision that wrote it. */
export interface KvEntry {
  /** The value's bytes. */
  value: Uint8Array;
  /** The bucket revision (stream sequence) of this value. */
  revision: number;
}

/** How to reach the cluster. */
export interface LinkOptions {
  /** NATS server URLs (`nats://127.0.0.1:4222`), all of one cluster. */
  servers: string[];
  /** The connection's name (the node's name). */
  name: string;
  /** Longest wait of a synchronous call, in ms (default 5000). */
  timeoutMs?: number | undefined;
  /** Replicas of each bucket (default: min(3, number of servers)). */
  replicas?: number | undefined;
  /** Bucket names start with this (default `twz`: `twz-meta`, `twz-names`, object store `twz-bytes`). */
  prefix?: string | undefined;
}

/** A compare-and-set lost: the key's revision was not the one expected (or it existed). */
export class CasConflict extends TwzError {
  /**
   * A compare-and-set on `key` that lost.
   *
   * @param key The key.
   * @param detail What the server said (one line).
   */
  constructor(readonly key: string, detail: string) {
    super(ErrorCode.Busy, `version conflict on ${key}: ${detail}`);
    this.name = "CasConflict";
  }
}

/** The operations both forms share. */
export interface LinkOps<R extends "sync" | "async"> {
  /** The current value of a key, or `null` (absent or deleted). */
  get(bucket: Bucket, key: string): Ret<R, KvEntry | null>;
  /** Create a key that must not exist; returns its revision ({@linkcode CasConflict} if it does). */
  create(bucket: Bucket, key: string, value: Uint8Array): Ret<R, number>;
  /** Replace a key's value if its revision is `revision` ({@linkcode CasConflict} if not). */
  update(bucket: Bucket, key: string, value: Uint8Array, revision: number): Ret<R, number>;
  /** Set a key unconditionally; returns the new revision. */
  put(bucket: Bucket, key: string, value: Uint8Array): Ret<R, number>;
  /** Delete a key (when `revision` is given, only if it is still the current one). */
  delete(bucket: Bucket, key: string, revision?: number): Ret<R, void>;
  /** The keys matching a NATS subject filter (`obj.>`, `d.ab12.*`). */
  keys(bucket: Bucket, filter: string): Ret<R, string[]>;
  /** Store bytes under a name in the object store (acknowledged when it returns; chunked). */
  putBytes(name: string, bytes: Uint8Array): Ret<R, void>;
  /** The bytes stored under a name, or `null`. */
  getBytes(name: string): Ret<R, Uint8Array | null>;
  /** Remove a name from the object store (absent: nothing). */
  deleteBytes(name: string): Ret<R, void>;
  /** Send a request to a subject and wait for one answer (`TimedOut`; no responder: `Busy`). */
  request(subject: string, data: Uint8Array, timeoutMs: number): Ret<R, Uint8Array>;
}
/** The result of a {@linkcode LinkOps} method: `T` (sync) or `Promise<T>` (async). */
export type Ret<R, T> = R extends "sync" ? T : Promise<T>;

/** The link: sync operations, their async twins, watches, a lease, requests served. */
export interface Link extends LinkOps<"sync"> {
  /** Its options (servers, name). */
  readonly options: Readonly<LinkOptions>;
  /** Whether the NATS connection is up (kept current from the Worker's status events). */
  readonly connected: boolean;
  /** The same operations, answering through the event loop. */
  readonly async: LinkOps<"async">;
  /**
   * Watch keys matching `filter` from now on: `onChange(key, entry)` runs on
   * the caller's event loop for each put (`entry`) or delete (`null`).
   * Returns a function that stops the watch.
   */
  watch(
    bucket: Bucket,
    filter: string,
    onChange: (key: string, entry: KvEntry | null) => void,
  ): () => void;
  /**
   * Answer requests on `subject`: `handler` runs on the caller's event loop
   * and its bytes are the reply. Returns a function that stops serving.
   */
  serve(
    subject: string,
    handler: (data: Uint8Array) => Uint8Array | Promise<Uint8Array>,
  ): () => void;
  /**
   * Hold a lease on `key` of the meta bucket: the Worker writes
   * `JSON.stringify({ ...fields, lease: Date.now() + leaseMs })` now (create,
   * or update of `revision` when given) and again every `leaseMs / 3`, each
   * a compare-and-set on its own last revision, so renewal goes on while the
   * caller's thread is blocked or busy. When a renewal loses its
   * compare-and-set or cannot reach the cluster before the lease would
   * lapse, `onLost(reason)` runs and renewal stops. Returns the first
   * revision ({@linkcode CasConflict} when the first write loses).
   */
  holdLease(
    key: string,
    leaseMs: number,
    fields: Record<string, unknown>,
    onLost: (reason: string) => void,
    revision?: number,
  ): number;
  /** Stop renewing the lease on `key`; with `expire`, write it once more as lapsed (`lease: 0`). */
  dropLease(key: string, expire: boolean): void;
  /** The server names leading each bucket's stream now (tests kill them). */
  leaders(): { meta: string; names: string; bytes: string };
  /** Called with `true`/`false` as the connection comes and goes. */
  onStatus(cb: (connected: boolean) => void): void;
  /** Stop watches, leases and serving; drain and close the connection; end the Worker. */
  close(): Promise<void>;
}

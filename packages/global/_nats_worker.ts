/**
 * The Worker that holds the NATS connection of one {@linkcode NatsLink}
 * (`link.ts`): the `@nats-io` clients live here so that the kernel's thread
 * can wait for them synchronously.
 *
 * Protocol (all messages are structured-cloned through `postMessage`):
 * - main → worker `{ t: "init", ctl, data, options }` once; the worker
 *   connects, ensures the buckets and answers `{ t: "ready" }` or
 *   `{ t: "failed", message }` (then it closes itself).
 * - main → worker `{ t: "call", id, sync, op, args }`. An async call is
 *   answered `{ t: "answer", id, ok, value | error }`. A sync call is
 *   answered in the shared buffers: the answer is written into `data`
 *   (tagged values of `@twz/kernel/abi`'s `Writer`, after one status byte),
 *   its length into `ctl[LEN]`, then `ctl[ANS] = id` and a notify. The
 *   worker writes a sync answer only while `ctl[REQ]` (the call the main
 *   side waits for) is still `id`: the answer to a call that timed out is
 *   dropped, never taken for the next one. `data` is a growable
 *   SharedArrayBuffer the worker grows to fit.
 * - worker → main events: `{ t: "status", connected }`, `{ t: "watch",
 *   wid, key, value, revision }` (value `null`: deleted), `{ t: "serve",
 *   sid, rid, data }` (the main side answers with a `reply` call), `{ t:
 *   "lost", key, reason }`, `{ t: "closed" }`.
 *
 * Inside, every operation is retried while a stream has no leader (a
 * failover) until `timeoutMs`; compare-and-sets use the stream-wide expected
 * sequence ({@linkcode strictCas}: the per-subject one is not serializable
 * on clustered nats-server 2.9); watches are remade after a leader change
 * ({@linkcode monitorWatches}); object-store transfers count their chunks
 * in `ctl[PROG]`.
 *
 * This worker never blocks (no `Atomics.wait`), so `close` ends it
 * cooperatively: it drains the connection and closes itself.
 *
 * @module
 */
import { connect, headers, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type JetStreamPublishOptions,
} from "@nats-io/jetstream";
import { type KV, type KvEntry as NatsKvEntry, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { EncodeOverflow, ErrorCode, Writer } from "@twz/kernel/abi";

// The control words (the same values in link.ts, which imports only types from here):
// ANS the id of the last sync answer written, LEN its byte length, REQ the id
// of the sync call the main side waits for.
// PROG counts chunks of object-store bytes moved: a long transfer that moves on
// is not timed out (by either side) while it keeps moving.
const ANS = 0, LEN = 1, REQ = 2, PROG = 3;
// Sync answer status byte: a value follows; an error code (u32) and a message;
// a compare-and-set conflict (key and detail).
const ST_OK = 0, ST_ERR = 1, ST_CAS = 2;

/** An error as it crosses to the main side. */
export interface WireError {
  /** `ErrorCode` of the `TwzError`. */
  code: number;
  /** One line. */
  message: string;
  /** Set for a compare-and-set conflict: the key. */
  casKey?: string;
}

/** The link's options with every default filled in. */
export interface WorkerOptions {
  /** NATS server URLs. */
  servers: string[];
  /** The connection's name. */
  name: string;
  /** Longest wait of one operation, in ms. */
  timeoutMs: number;
  /** Replicas of each bucket. */
  replicas: number;
  /** Bucket name prefix. */
  prefix: string;
}

/** Messages from the main side. */
export type ToWorker =
  | {
    t: "init";
    ctl: SharedArrayBuffer;
    data: SharedArrayBuffer;
    options: WorkerOptions;
  }
  | { t: "call"; id: number; sync: boolean; op: string; args: unknown[] };

/** Messages to the main side. */
export type FromWorker =
  | { t: "ready" }
  | { t: "failed"; message: string }
  | { t: "answer"; id: number; ok: true; value: unknown }
  | { t: "answer"; id: number; ok: false; error: WireError }
  | { t: "status"; connected: boolean }
  | { t: "watch"; wid: number; key: string; value: Uint8Array | null; revision: number }
  | { t: "serve"; sid: number; rid: number; data: Uint8Array }
  | { t: "lost"; key: string; reason: string }
  | { t: "closed" };

interface Scope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
  close(): void;
}
const scope = globalThis as unknown as Scope;
const post = (m: FromWorker) => scope.postMessage(m);

/** A failure to report: code, one-line message, and the CAS key when it is a conflict. */
class Failure extends Error {
  constructor(readonly code: number, message: string, readonly casKey?: string) {
    super(message);
  }
}

const JS_WRONG_LAST_SEQUENCE = 10071;
const JS_WRONG_LAST_SEQUENCE_UNKNOWN = 10164;

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

/** The name of an error and its causes, as one line. */
function reason(e: unknown): string {
  if (!(e instanceof Error)) return oneLine(String(e));
  let s = e.message || e.name;
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error && cause.message && !s.includes(cause.message)) {
    s += `: ${cause.message}`;
  }
  return oneLine(s);
}

let ctl: Int32Array | null = null;
let data: SharedArrayBuffer | null = null;
let opts: WorkerOptions | null = null;
let nc: NatsConnection | null = null;
let jsm: JetStreamManager | null = null;
let js: JetStreamClient | null = null;
const kvs = new Map<string, KV>();
let bytes: ObjectStore | null = null;
let closing = false;

/** A watch: its filter, the last revision delivered, the stream leader it was made on. */
interface Watch {
  wid: number;
  bucket: string;
  filter: string;
  /** The revision last delivered (or the stream's last sequence when it started). */
  last: number;
  /** The stream leader when its consumer was made ("" while it must be made again). */
  leader: string;
  it: { stop(): void } | null;
  stopped: boolean;
  stop(): void;
}
const watches = new Map<number, Watch>();
let watchMonitor: ReturnType<typeof setInterval> | undefined;
const serves = new Map<number, Subscription>();
const pendingReplies = new Map<number, (data: Uint8Array | null) => void>();
let nextRid = 1;

interface Lease {
  key: string;
  leaseMs: number;
  fields: Record<string, unknown>;
  rev: number;
  /** The lease time last written and acknowledged. */
  expiry: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  stopped: boolean;
}
const leases = new Map<string, Lease>();

function kv(bucket: unknown): KV {
  const b = kvs.get(String(bucket));
  if (!b) throw new Failure(ErrorCode.InvalidArgument, `global space: no bucket ${String(bucket)}`);
  return b;
}

function what(op: string, args: unknown[]): string {
  switch (op) {
    case "putBytes":
    case "getBytes":
    case "deleteBytes":
    case "request":
    case "open":
      return `${op} ${String(args[0])}`;
    case "get":
    case "create":
    case "update":
    case "put":
    case "delete":
    case "keys":
    case "holdLease":
    case "dropLease":
      return `${op} ${String(args[1])}`;
    default:
      return op;
  }
}

/** Turn a client error into a `Failure` (code and one line). */
function failure(e: unknown, op: string, args: unknown[]): Failure {
  if (e instanceof Failure) return e;
  const err = e as { name?: string; code?: unknown; message?: string; cause?: unknown };
  const name = err?.name ?? "";
  const jsCode = name === "JetStreamApiError" || typeof err?.code === "number" ? err.code : null;
  const key = op === "putBytes" || op === "getBytes" ? String(args[0]) : String(args[1]);
  if (jsCode === JS_WRONG_LAST_SEQUENCE || jsCode === JS_WRONG_LAST_SEQUENCE_UNKNOWN) {
    return new Failure(ErrorCode.Busy, reason(e), key);
  }
  const causeName = (err?.cause as { name?: string } | undefined)?.name ?? "";
  if (name === "TimeoutError" || causeName === "TimeoutError") {
    return new Failure(
      ErrorCode.TimedOut,
      `global space: no answer from the cluster in ${opts?.timeoutMs ?? 0} ms (${what(op, args)})`,
    );
  }
  if (name === "NoRespondersError" || causeName === "NoRespondersError") {
    return new Failure(
      ErrorCode.Busy,
      op === "request"
        ? `global space: no node answers on ${String(args[0])}`
        : `global space: JetStream does not answer now (${what(op, args)})`,
    );
  }
  if (name === "ClosedConnectionError" || name === "DrainingConnectionError") {
    return new Failure(ErrorCode.Shutdown, `global space: the link is closed (${what(op, args)})`);
  }
  if (name === "InvalidArgumentError" || /invalid key|invalid subject/i.test(err?.message ?? "")) {
    return new Failure(ErrorCode.InvalidArgument, `global space: ${what(op, args)}: ${reason(e)}`);
  }
  return new Failure(ErrorCode.Busy, `global space: ${what(op, args)} failed: ${reason(e)}`);
}

function entry(e: NatsKvEntry | null): { value: Uint8Array; revision: number } | null {
  if (!e || e.operation !== "PUT") return null;
  return { value: e.value, revision: e.revision };
}

const enc = new TextEncoder();

function leaseValue(l: Lease): { value: Uint8Array; expiry: number } {
  const expiry = Date.now() + l.leaseMs;
  return { value: enc.encode(JSON.stringify({ ...l.fields, lease: expiry })), expiry };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function loseLease(l: Lease, why: string): void {
  if (l.stopped) return;
  l.stopped = true;
  clearTimeout(l.timer);
  leases.delete(l.key);
  post({ t: "lost", key: l.key, reason: why });
}

/** One renewal: CAS on the lease's own last revision, bounded by its expiry. */
async function renew(l: Lease): Promise<void> {
  if (l.stopped) return;
  const meta = kv("meta");
  const { value, expiry } = leaseValue(l);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const lapse = new Promise<"lapsed">((resolve) => {
    timer = setTimeout(() => resolve("lapsed"), Math.max(0, l.expiry - Date.now()));
  });
  try {
    const r = await Promise.race([strictCas("meta", l.key, value, l.rev), lapse]);
    if (l.stopped) return;
    if (r === "lapsed") {
      return loseLease(l, `could not renew the lease on ${l.key} before it lapsed (no answer)`);
    }
    l.rev = r;
    l.expiry = expiry;
  } catch (e) {
    if (l.stopped) return;
    const f = failure(e, "update", ["meta", l.key]);
    if (f.casKey !== undefined) {
      // A renewal whose answer was lost (a failover) may have been written
      // all the same: then the key holds exactly our bytes.
      const cur = await meta.get(l.key).catch(() => null);
      if (cur && cur.operation === "PUT" && sameBytes(cur.value, value)) {
        l.rev = cur.revision;
        l.expiry = expiry;
      } else {
        return loseLease(l, `the lease on ${l.key} was changed by another writer`);
      }
    } else if (Date.now() >= l.expiry) {
      return loseLease(l, `could not renew the lease on ${l.key} before it lapsed: ${f.message}`);
    }
  } finally {
    clearTimeout(timer);
  }
  if (!l.stopped) l.timer = setTimeout(() => void renew(l), Math.max(1, l.leaseMs / 3));
}

async function holdLease(args: unknown[]): Promise<number> {
  const [key, leaseMs, fields, revision] = args as [
    string,
    number,
    Record<string, unknown>,
    number | undefined,
  ];
  const old = leases.get(key);
  if (old) {
    old.stopped = true;
    clearTimeout(old.timer);
    leases.delete(key);
  }
  const l: Lease = { key, leaseMs, fields, rev: 0, expiry: 0, timer: undefined, stopped: false };
  const { value, expiry } = leaseValue(l);
  const expected = revision ?? 0;
  l.rev = await retrying(
    "holdLease",
    ["meta", key],
    () => strictCas("meta", key, value, expected),
    casCheck("meta", key, value, expected),
  );
  l.expiry = expiry;
  leases.set(key, l);
  l.timer = setTimeout(() => void renew(l), Math.max(1, leaseMs / 3));
  return l.rev;
}

async function dropLease(args: unknown[]): Promise<void> {
  const [key, expire] = args as [string, boolean];
  const l = leases.get(key);
  if (!l) return;
  l.stopped = true;
  clearTimeout(l.timer);
  leases.delete(key);
  if (expire) {
    const value = enc.encode(JSON.stringify({ ...l.fields, lease: 0 }));
    try {
      await retrying(
        "dropLease",
        ["meta", key],
        () => strictCas("meta", key, value, l.rev),
        casCheck("meta", key, value, l.rev),
      );
    } catch (e) {
      // Someone else changed it: then it is not ours to expire.
      if (failure(e, "update", ["meta", key]).casKey === undefined) throw e;
    }
  }
}

/** The leader and last sequence of a bucket's stream. */
async function streamState(bucket: string): Promise<{ leader: string; last: number }> {
  const info = await jsm!.streams.info(`KV_${opts!.prefix}-${bucket}`);
  return {
    leader: info.cluster?.leader ?? nc?.info?.server_name ?? "",
    last: info.state.last_seq,
  };
}

/** (Re)make the consumer of a watch, delivering from the revision after its last. */
async function startIterator(w: Watch, leader: string): Promise<void> {
  const it = await kv(w.bucket).watch({ key: w.filter, resumeFromRevision: w.last + 1 });
  if (w.stopped) return it.stop();
  w.it = it;
  w.leader = leader;
  (async () => {
    try {
      for await (const e of it) {
        if (w.stopped || w.it !== it) return;
        if (e.revision <= w.last) continue; // seen before a restart
        w.last = e.revision;
        const v = entry(e);
        post({ t: "watch", wid: w.wid, key: e.key, value: v?.value ?? null, revision: e.revision });
      }
    } catch { /* made again by the monitor */ }
    if (w.it === it) w.leader = ""; // ended without stop(): the monitor makes it again
  })();
}

/**
 * Once a second while watches exist: a watch's consumer lives on its
 * stream's leader (an ephemeral consumer), so when the leader changes (a
 * failover) or the iterator ended, the watch is made again from the
 * revision after the last one it delivered: no change is missed (the
 * client's own recovery waits for missed heartbeats, 10 s and more).
 */
function monitorWatches(): void {
  if (watchMonitor !== undefined) return;
  let busy = false;
  watchMonitor = setInterval(async () => {
    if (busy || closing) return;
    if (watches.size === 0) {
      clearInterval(watchMonitor);
      watchMonitor = undefined;
      return;
    }
    busy = true;
    try {
      const leaders = new Map<string, string>();
      for (const w of watches.values()) {
        if (!leaders.has(w.bucket)) {
          const st = await attempt(streamState(w.bucket), ATTEMPT_MS).catch(() => null);
          leaders.set(w.bucket, st?.leader ?? "");
        }
        const leader = leaders.get(w.bucket)!;
        if (leader === "" || leader === w.leader || w.stopped) continue;
        w.it?.stop();
        w.it = null;
        await attempt(startIterator(w, leader), ATTEMPT_MS).catch(() => {
          w.leader = ""; // tried again next time
        });
      }
    } finally {
      busy = false;
    }
  }, 1000);
}

async function watch(args: unknown[]): Promise<void> {
  const [wid, bucket, filter] = args as [number, string, string];
  const st = await streamState(bucket);
  const w: Watch = {
    wid,
    bucket,
    filter,
    last: st.last,
    leader: "",
    it: null,
    stopped: false,
    stop() {
      w.stopped = true;
      w.it?.stop();
      w.it = null;
    },
  };
  await startIterator(w, st.leader);
  watches.set(wid, w);
  monitorWatches();
}

async function serve(args: unknown[]): Promise<void> {
  const [sid, subject] = args as [number, string];
  const sub = nc!.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      const rid = nextRid++;
      pendingReplies.set(rid, (reply) => {
        if (reply !== null) msg.respond(reply);
      });
      post({ t: "serve", sid, rid, data: msg.data });
    },
  });
  serves.set(sid, sub);
  await nc!.flush();
}

async function leaders(): Promise<{ meta: string; names: string; bytes: string }> {
  const p = opts!.prefix;
  const leader = async (stream: string) => {
    const info = await jsm!.streams.info(stream);
    return info.cluster?.leader ?? nc!.info?.server_name ?? "";
  };
  const [meta, names, bytes] = await Promise.all([
    leader(`KV_${p}-meta`),
    leader(`KV_${p}-names`),
    leader(`OBJ_${p}-bytes`),
  ]);
  return { meta, names, bytes };
}

/**
 * A compare-and-set on one key that holds under concurrency on a clustered
 * stream. nats-server 2.9 checks `Nats-Expected-Last-Subject-Sequence` (what
 * the KV client's `update`/`create` send) against the leader's stored state
 * only, before the Raft proposal: two concurrent updates at the same
 * revision can both succeed (nats-server issue #4320; seen here in a race of
 * two writers: 140 of 200 rounds had two winners). The stream-wide
 * `Nats-Expected-Last-Sequence` is checked against the leader's proposal
 * counter, in-flight writes included (0 double winners in the same race).
 * So: read the stream's last sequence L, then the key (both from the
 * leader); if the key's revision is `expected` (0: absent or deleted),
 * publish expecting last sequence L. Success means nothing was written to
 * the bucket since L, when the key was at `expected`. A write to any key in
 * between fails the publish, and it is tried again from the reads.
 *
 * @param value The new value, or `null` to delete (a `KV-Operation: DEL` marker).
 * @returns The new revision.
 */
async function strictCas(
  bucket: unknown,
  key: string,
  value: Uint8Array | null,
  expected: number,
): Promise<number> {
  const b = kv(bucket);
  const name = `${opts!.prefix}-${String(bucket)}`;
  const end = Date.now() + ATTEMPT_MS;
  for (let round = 0;; round++) {
    if (closing || Date.now() > end) {
      throw new Failure(ErrorCode.TimedOut, "compare-and-set kept meeting other writes");
    }
    const last = (await jsm!.streams.info(`KV_${name}`)).state.last_seq;
    const cur = await b.get(key);
    const live = cur !== null && cur.operation === "PUT";
    if (expected === 0 ? live : cur?.revision !== expected) {
      throw new Failure(ErrorCode.Busy, `wrong last sequence: ${cur?.revision ?? 0}`, key);
    }
    const o: Partial<JetStreamPublishOptions> = { expect: { lastSequence: last } };
    if (value === null) {
      const h = headers();
      h.set("KV-Operation", "DEL");
      o.headers = h;
    }
    try {
      return (await js!.publish(`$KV.${name}.${key}`, value ?? new Uint8Array(0), o)).seq;
    } catch (e) {
      if ((e as { code?: unknown }).code !== JS_WRONG_LAST_SEQUENCE) throw e;
      // Another write to the bucket came first: look again (with a little jitter).
      if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * Math.min(20, round)));
    }
  }
}

/** What a failed attempt means for a retry. */
function classify(e: unknown): "timeout" | "unavailable" | "other" {
  if (e instanceof Failure) return e.code === ErrorCode.TimedOut ? "timeout" : "other";
  const err = e as { name?: string; message?: string; status?: unknown; cause?: unknown };
  const cause = err?.cause as { name?: string; message?: string } | undefined;
  if (err?.name === "TimeoutError" || cause?.name === "TimeoutError") return "timeout";
  const text = `${err?.name ?? ""} ${err?.message ?? ""} ${cause?.name ?? ""} ${
    cause?.message ?? ""
  }`;
  if (
    /NoResponders|no responders|JetStreamNotEnabled|temporarily unavailable|no suitable peers|leader/i
      .test(text) || err?.status === 503
  ) return "unavailable";
  return "other";
}

/** Bump the progress word (a chunk of bytes moved). */
function bump(): void {
  if (ctl) Atomics.add(ctl, PROG, 1);
}
const progress = () => ctl ? Atomics.load(ctl, PROG) : 0;

/**
 * One attempt, bounded by `ms` (the client's own timeouts do not bound
 * every operation); with `stall`, bounded by `ms` without progress instead.
 */
function attempt<T>(p: Promise<T>, ms: number, stall = false): Promise<T> {
  let timer: ReturnType<typeof setInterval> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      const fail = () => reject(new Failure(ErrorCode.TimedOut, "attempt timed out"));
      if (!stall) {
        timer = setTimeout(fail, ms);
        return;
      }
      let seen = progress(), at = Date.now();
      timer = setInterval(() => {
        if (progress() !== seen) [seen, at] = [progress(), Date.now()];
        else if (Date.now() - at >= ms) fail();
      }, 100);
    }),
  ]).finally(() => {
    clearTimeout(timer);
    clearInterval(timer);
  });
}

/** Longest single attempt of an operation before it is tried again, in ms. */
const ATTEMPT_MS = 2000;

/**
 * Run `write` until it succeeds or the deadline passes. While the cluster
 * has no leader for the stream (a failover), attempts fail at once ("no
 * responders") or go unanswered: both are retried. After an unanswered
 * attempt of a compare-and-set the write may or may not have landed; then
 * `check` (when given) decides from the key's current value: landed (its
 * revision), not landed (write again), or someone else's (a conflict).
 */
async function retrying<T>(
  op: string,
  args: unknown[],
  write: () => Promise<T>,
  check?: (() => Promise<{ landed: T } | "again">) | undefined,
  stall = false,
): Promise<T> {
  let deadline = Date.now() + opts!.timeoutMs - 100;
  let ambiguous = false;
  let last: unknown = null;
  let seen = progress();
  for (;;) {
    if (stall && progress() !== seen) {
      // Bytes moved since: the transfer is alive; the deadline counts from now.
      seen = progress();
      deadline = Date.now() + opts!.timeoutMs - 100;
    }
    const left = deadline - Date.now();
    if (left <= 0 || closing) {
      throw new Failure(
        ErrorCode.TimedOut,
        `global space: no answer from the cluster in ${opts!.timeoutMs} ms (${what(op, args)})` +
          (last && classify(last) === "unavailable" ? ": no stream leader" : ""),
      );
    }
    try {
      if (ambiguous && check) {
        const r = await attempt(check(), Math.min(ATTEMPT_MS, left));
        if (r !== "again") return r.landed;
        ambiguous = false;
      }
      return await attempt(write(), Math.min(ATTEMPT_MS, left), stall);
    } catch (e) {
      const kind = classify(e);
      if (kind === "other") throw e;
      last = e;
      if (kind === "timeout") ambiguous = true;
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, deadline - Date.now()))));
    }
  }
}

/** The `check` of a compare-and-set write of `value` to `key`: `expected` 0 for a create. */
function casCheck(
  bucket: unknown,
  key: string,
  value: Uint8Array,
  expected: number,
): () => Promise<{ landed: number } | "again"> {
  return async () => {
    const cur = await kv(bucket).get(key);
    const live = cur && cur.operation === "PUT" ? cur : null;
    if (live && sameBytes(live.value, value) && live.revision > expected) {
      return { landed: live.revision };
    }
    if (expected === 0 ? live === null : cur?.revision === expected) return "again";
    throw new Failure(
      ErrorCode.Busy,
      `wrong last sequence: ${cur?.revision ?? 0} (an unanswered write did not land)`,
      key,
    );
  };
}

/** The object store's chunk size (its default). */
const CHUNK = 128 * 1024;

/** Store `data` under `name`, chunk by chunk (each acknowledged), bumping the progress word. */
async function putBytes(name: string, data: Uint8Array): Promise<void> {
  let at = 0;
  const rs = new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= data.length) return c.close();
      c.enqueue(data.subarray(at, at + CHUNK));
      at += CHUNK;
      bump();
    },
  });
  await bytes!.put({ name, options: { max_chunk_size: CHUNK } }, rs);
}

/** The bytes under `name` (or `null`), read chunk by chunk, bumping the progress word. */
async function getBytes(name: string): Promise<Uint8Array | null> {
  const r = await bytes!.get(name);
  if (r === null) return null;
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = r.data.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (value?.length) {
      parts.push(value);
      size += value.length;
      bump();
    }
  }
  const err = await r.error;
  if (err) throw err;
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function run(op: string, args: unknown[]): Promise<unknown> {
  if (!nc || closing) {
    throw new Failure(ErrorCode.Shutdown, `global space: the link is closed (${what(op, args)})`);
  }
  const key = String(args[1]);
  switch (op) {
    case "get":
      return entry(await retrying(op, args, () => kv(args[0]).get(key)));
    case "create": {
      const value = args[2] as Uint8Array;
      return await retrying(
        op,
        args,
        () => strictCas(args[0], key, value, 0),
        casCheck(args[0], key, value, 0),
      );
    }
    case "update": {
      const value = args[2] as Uint8Array;
      const rev = args[3] as number;
      return await retrying(
        op,
        args,
        () => strictCas(args[0], key, value, rev),
        casCheck(args[0], key, value, rev),
      );
    }
    case "put":
      return await retrying(op, args, () => kv(args[0]).put(key, args[2] as Uint8Array));
    case "delete": {
      const rev = args[2] as number | undefined;
      await retrying(
        op,
        args,
        async () => {
          if (rev === undefined) await kv(args[0]).delete(key);
          else await strictCas(args[0], key, null, rev);
        },
        async () => {
          const cur = await kv(args[0]).get(key);
          if (!cur || cur.operation !== "PUT") return { landed: undefined };
          if (rev === undefined || cur.revision === rev) return "again";
          throw new Failure(ErrorCode.Busy, `wrong last sequence: ${cur.revision}`, key);
        },
      );
      return undefined;
    }
    case "keys":
      return await retrying(op, args, async () => {
        const out: string[] = [];
        for await (const k of await kv(args[0]).keys(key)) out.push(k);
        return out;
      });
    case "putBytes":
      await retrying(
        op,
        args,
        () => putBytes(String(args[0]), args[1] as Uint8Array),
        undefined,
        true,
      );
      return undefined;
    case "getBytes":
      return await retrying(op, args, () => getBytes(String(args[0])), undefined, true);
    case "deleteBytes":
      await retrying(op, args, () => bytes!.delete(String(args[0])));
      return undefined;
    case "request": {
      const m = await nc.request(String(args[0]), args[1] as Uint8Array, {
        timeout: args[2] as number,
      });
      return m.data;
    }
    case "watch":
      return await watch(args);
    case "unwatch": {
      const w = watches.get(args[0] as number);
      watches.delete(args[0] as number);
      w?.stop();
      return undefined;
    }
    case "serve":
      return await serve(args);
    case "unserve": {
      const s = serves.get(args[0] as number);
      serves.delete(args[0] as number);
      s?.unsubscribe();
      return undefined;
    }
    case "reply": {
      const r = pendingReplies.get(args[0] as number);
      pendingReplies.delete(args[0] as number);
      r?.(args[1] as Uint8Array | null);
      return undefined;
    }
    case "holdLease":
      return await holdLease(args);
    case "dropLease":
      return await dropLease(args);
    case "leaders":
      return await retrying(op, args, leaders);
    default:
      throw new Failure(ErrorCode.InvalidArgument, `global space: unknown link operation ${op}`);
  }
}

/** A generous guess of the bytes `Writer` needs for `v`. */
function estimate(v: unknown): number {
  if (v instanceof Uint8Array) return v.length + 8;
  if (typeof v === "string") return 3 * v.length + 8;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + estimate(x), 8);
  if (v && typeof v === "object") {
    return Object.entries(v).reduce((n, [k, x]) => n + estimate(k) + estimate(x), 8);
  }
  return 16;
}

function writeSync(id: number, status: number, parts: unknown[]): void {
  if (!ctl || !data || Atomics.load(ctl, REQ) !== id) return; // nobody waits for it any more
  let need = 16 + parts.reduce((n: number, p) => n + estimate(p), 0);
  for (;;) {
    if (need > data.byteLength) {
      if (need > data.maxByteLength) {
        status = ST_ERR;
        parts = [
          ErrorCode.OutOfSpace,
          `global space: an answer of ${need} bytes is larger than the link carries (${data.maxByteLength})`,
        ];
        need = 1024;
        continue;
      }
      data.grow(Math.min(data.maxByteLength, Math.max(need, 2 * data.byteLength)));
    }
    try {
      const w = new Writer(new Uint8Array(data));
      w.u8(status);
      if (status === ST_ERR) {
        w.u32(parts[0] as number);
        w.value(parts[1]);
      } else for (const p of parts) w.value(p);
      Atomics.store(ctl, LEN, w.at);
      break;
    } catch (e) {
      if (!(e instanceof EncodeOverflow)) throw e;
      need = 2 * Math.max(need, data.byteLength);
    }
  }
  Atomics.store(ctl, ANS, id);
  Atomics.notify(ctl, ANS);
}

function answer(id: number, sync: boolean, result: { value: unknown } | { error: Failure }): void {
  if ("error" in result) {
    const f = result.error;
    if (sync) {
      if (f.casKey !== undefined) writeSync(id, ST_CAS, [f.casKey, f.message]);
      else writeSync(id, ST_ERR, [f.code, f.message]);
    } else {
      const error: WireError = { code: f.code, message: f.message };
      if (f.casKey !== undefined) error.casKey = f.casKey;
      post({ t: "answer", id, ok: false, error });
    }
  } else if (sync) writeSync(id, ST_OK, [result.value]);
  else post({ t: "answer", id, ok: true, value: result.value });
}

async function init(m: Extract<ToWorker, { t: "init" }>): Promise<void> {
  ctl = new Int32Array(m.ctl);
  data = m.data;
  opts = m.options;
  const o = m.options;
  try {
    nc = await connect({
      servers: o.servers,
      name: o.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: Math.min(o.timeoutMs, 3000),
      pingInterval: 2000,
      maxPingOut: 2,
    });
  } catch (e) {
    post({
      t: "failed",
      message: `cannot reach the cluster at ${o.servers.join(",")}: ${reason(e)}`,
    });
    scope.close();
    return;
  }
  try {
    const t = Math.min(ATTEMPT_MS, o.timeoutMs);
    js = jetstream(nc, { timeout: t });
    jsm = await retrying("open", ["jetstream"], () => jetstreamManager(nc!, { timeout: t }));
    const kvm = new Kvm(js!);
    // Right after the cluster starts JetStream may have no meta leader yet: retried.
    for (const b of ["meta", "names"]) {
      const bucket = await retrying(
        "open",
        [`${o.prefix}-${b}`],
        () =>
          kvm.create(`${o.prefix}-${b}`, {
            history: 1,
            replicas: o.replicas,
            allow_direct: false, // reads go to the stream leader: never a stale follower
          }),
      );
      kvs.set(b, bucket);
    }
    bytes = await retrying(
      "open",
      [`${o.prefix}-bytes`],
      () => new Objm(js!).create(`${o.prefix}-bytes`, { replicas: o.replicas }),
    );
  } catch (e) {
    const message = `cannot open the global space buckets at ${o.servers.join(",")}: ${reason(e)}`;
    await nc.close().catch(() => {});
    post({ t: "failed", message });
    scope.close();
    return;
  }
  (async () => {
    for await (const s of nc!.status()) {
      if (s.type === "disconnect") post({ t: "status", connected: false });
      else if (s.type === "reconnect") post({ t: "status", connected: true });
    }
  })().catch(() => {});
  post({ t: "ready" });
}

async function close(): Promise<void> {
  closing = true;
  for (const l of leases.values()) {
    l.stopped = true;
    clearTimeout(l.timer);
  }
  leases.clear();
  for (const w of watches.values()) w.stop();
  watches.clear();
  clearInterval(watchMonitor);
  for (const s of serves.values()) s.unsubscribe();
  serves.clear();
  pendingReplies.clear();
  try {
    await nc?.drain();
  } catch {
    await nc?.close().catch(() => {});
  }
  post({ t: "closed" });
  scope.close();
}

// A stray rejection inside the clients must not end the Worker (and with it the link).
globalThis.addEventListener("unhandledrejection", (e) => e.preventDefault());

scope.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.t === "init") {
    void init(m);
    return;
  }
  if (m.op === "close") {
    void close();
    return;
  }
  run(m.op, m.args).then(
    (value) => answer(m.id, m.sync, { value }),
    (err) => answer(m.id, m.sync, { error: failure(err, m.op, m.args) }),
  );
};

/**
 * The global space of one node: {@linkcode GlobalNode}, the kernel's
 * {@linkcode GlobalHook} on a system booted with `--cluster … --node NAME`
 * (docs/GLOBAL.md). It keeps published objects' records in the cluster's KV
 * bucket and their bytes, per version, in its object store
 * (`_records.ts`), moves ownership with compare-and-sets on those records,
 * fetches objects this node does not hold when the kernel asks, keeps held
 * copies current through a watch, and remembers in a local state object
 * (`_state.ts`) what it holds, owns and has not seen acknowledged, so that
 * it republishes that after a crash.
 *
 * The protocols (publish, own, release, commit, the pending-transaction
 * resolution) are written once as generators of link calls: the kernel's
 * calls run them synchronously (the link blocks the thread until its Worker
 * answers), the watch, the handover service, {@linkcode GlobalNode.tryOwn}
 * and {@linkcode GlobalNode.ownAsync} through the event loop.
 *
 * Consistency: a reader gets whole committed versions, never a torn one
 * (bytes are stored per version before the record names them); a held copy
 * follows the cluster through the watch, so it may lag by the watch's
 * latency (`refresh` reads the current version now); the objects of one
 * multi-object commit change together on this node's thread. Ownership is
 * safe without clocks (every publish is a compare-and-set on the record's
 * revision obtained with ownership); leases only decide when a silent owner
 * may be replaced.
 *
 * A synchronous `own` blocks its thread while it waits for a handover: an
 * owner in the same thread (two nodes in one process) cannot answer it, so
 * in-process callers use {@linkcode GlobalNode.ownAsync}.
 *
 * @example Join a cluster, publish an object, fetch it on another node
 * ```ts ignore
 * import { Kernel } from "@twz/kernel";
 * import { plugin } from "@twz/hal-sim";
 * import { GlobalNode } from "@twz/global";
 *
 * const a = Kernel.boot(await plugin.open({ size: 16 << 20 }));
 * const b = Kernel.boot(await plugin.open({ size: 16 << 20 }));
 * const servers = ["nats://127.0.0.1:4222"];
 * const na = await GlobalNode.join(a, { servers, node: "a" });
 * const nb = await GlobalNode.join(b, { servers, node: "b" });
 * const id = a.create({ size: 4096 });
 * na.publish(id, { name: "/demo" });
 * console.log(b.read(nb.lookup("/demo")!, 0, 4)); // fetched from the cluster
 * await nb.leave();
 * await na.leave();
 * ```
 *
 * @module
 */
import type { GlobalHook, Kernel, Principal } from "@twz/kernel";
import {
  ErrorCode,
  formatId,
  FOT_ENTRY_SIZE,
  FotFlags,
  type GlobalEntry,
  type GlobalInfo,
  type GlobalOp,
  type GlobalOps,
  type GlobalStatus,
  isValidId,
  META_OFFSET,
  META_SIZE,
  MetaField,
  OBJECT_MAGIC,
  type ObjID,
  parseId,
  Prot,
  type PublishResult,
  readId,
  SecProt,
  TwzError,
} from "@twz/kernel/abi";
import { type Bucket, CasConflict, type KvEntry, type Link, type LinkOps } from "./_link_api.ts";
import {
  bytesName,
  bytesTag,
  checkNodeName,
  decodeLease,
  decodeRecord,
  decodeTx,
  hashBytes,
  idOfKey,
  newTxId,
  nodeKey,
  type NodeLease,
  type ObjectRecord,
  objKey,
  recordKeyId,
  settled,
  toBytes,
  txKey,
} from "./_records.ts";
import { type Held, initialState, LocalState, STATE_ID } from "./_state.ts";
import { GlobalNames } from "./_names.ts";
import { NatsLink } from "./link.ts";

/** How a node joins its cluster. */
export interface NodeOptions {
  /** NATS server URLs of the cluster (`nats://127.0.0.1:4222`). */
  servers: string[];
  /** This node's name: one token of letters, digits, `_`, `-`, unique in the cluster. */
  node: string;
  /** Length of the node's lease in ms (renewed every third of it). @default {10000} */
  leaseMs?: number | undefined;
  /** Longest wait of one cluster call in ms. @default {5000} */
  timeoutMs?: number | undefined;
  /** Bucket name prefix. @default {"twz"} */
  prefix?: string | undefined;
  /** Where one-line reports go (lost ownership, republished objects). @default {console.error} */
  log?: ((line: string) => void) | undefined;
  /** A link to use instead of opening a {@linkcode NatsLink} (tests: fault injection). */
  link?: Link | undefined;
}

/**
 * One link call (or a pause) of a protocol: the protocol generators yield
 * these and a driver runs them synchronously or through the event loop.
 */
type Step =
  | { op: keyof LinkOps<"sync">; args: unknown[] }
  | { sleep: number };
type Proto<T> = Generator<Step, T, unknown>;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Run a protocol with the link's synchronous calls (blocks the thread). */
function runSync<T>(link: Link, g: Proto<T>): T {
  let r = g.next();
  for (;;) {
    if (r.done) return r.value;
    const s = r.value;
    let v: unknown;
    try {
      if ("sleep" in s) Atomics.wait(sleeper, 0, 0, Math.max(0, s.sleep));
      else v = (link[s.op] as (...a: unknown[]) => unknown)(...s.args);
    } catch (e) {
      r = g.throw(e);
      continue;
    }
    r = g.next(v);
  }
}

/** Run a protocol with the link's asynchronous calls. */
async function runAsync<T>(link: Link, g: Proto<T>): Promise<T> {
  let r = g.next();
  for (;;) {
    if (r.done) return r.value;
    const s = r.value;
    let v: unknown;
    try {
      if ("sleep" in s) await new Promise((res) => setTimeout(res, Math.max(0, s.sleep)));
      else v = await (link.async[s.op] as (...a: unknown[]) => Promise<unknown>)(...s.args);
    } catch (e) {
      r = g.throw(e);
      continue;
    }
    r = g.next(v);
  }
}

// The link calls as protocol steps.
function* get(bucket: Bucket, key: string): Proto<KvEntry | null> {
  return (yield { op: "get", args: [bucket, key] }) as KvEntry | null;
}
function* create(bucket: Bucket, key: string, value: Uint8Array): Proto<number> {
  return (yield { op: "create", args: [bucket, key, value] }) as number;
}
function* update(bucket: Bucket, key: string, value: Uint8Array, rev: number): Proto<number> {
  return (yield { op: "update", args: [bucket, key, value, rev] }) as number;
}
function* putBytes(name: string, bytes: Uint8Array): Proto<void> {
  yield { op: "putBytes", args: [name, bytes] };
}
function* getBytes(name: string): Proto<Uint8Array | null> {
  return (yield { op: "getBytes", args: [name] }) as Uint8Array | null;
}
function* request(subject: string, data: Uint8Array, timeoutMs: number): Proto<Uint8Array> {
  return (yield { op: "request", args: [subject, data, timeoutMs] }) as Uint8Array;
}
function* sleep(ms: number): Proto<void> {
  yield { sleep: ms };
}

/** One object of a commit. */
interface Work {
  id: ObjID;
  h: Held;
  bytes: Uint8Array;
  hash: bigint;
  version: number;
  tag: string;
  /** Its record at the new version. */
  next: ObjectRecord;
  /** Its record at the current version. */
  base: ObjectRecord;
}

const dec = new TextDecoder();
const READ_ONLY = Prot.Read | Prot.Exec;
const DEFAULT_LEASE_MS = 10000;
const DEFAULT_TIMEOUT_MS = 5000;
/** Versions kept in the object store per object (older ones are deleted after a commit). */
export const KEEP_VERSIONS = 2;

function notPublished(id: ObjID): TwzError {
  return new TwzError(
    ErrorCode.ObjectNotFound,
    `object ${formatId(id)} is not in the global space (publish it first)`,
  );
}

/** The IDs of the valid ID entries of an object's FOT (none without libtwz meta-info). */
export function fotTargets(bytes: Uint8Array): ObjID[] {
  if (bytes.length < META_OFFSET + META_SIZE) return [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(META_OFFSET + MetaField.magic, true) !== OBJECT_MAGIC) return [];
  const fotOffset = v.getUint32(META_OFFSET + MetaField.fotOffset, true);
  const capacity = v.getUint32(META_OFFSET + MetaField.fotCapacity, true);
  const count = Math.min(v.getUint32(META_OFFSET + MetaField.fotCount, true), capacity);
  const out: ObjID[] = [];
  for (let i = 1; i <= count; i++) {
    const at = fotOffset + (i - 1) * FOT_ENTRY_SIZE;
    if (at + FOT_ENTRY_SIZE > bytes.length) break;
    const flags = v.getUint32(at, true);
    if (!(flags & FotFlags.Valid) || (flags & FotFlags.Name)) continue;
    const id = readId(v, at + 8);
    if (isValidId(id)) out.push(id);
  }
  return out;
}

/**
 * A node of the global object space: the kernel's {@linkcode GlobalHook}
 * (set as `kernel.global` by {@linkcode GlobalNode.join}), with typed
 * forms of every operation for tests and benchmarks. Every method but the
 * `async` ones is synchronous and may block its thread for up to the
 * timeout per cluster call.
 */
export class GlobalNode implements GlobalHook {
  /** This node's name. */
  readonly node: string;
  /** The cluster link. */
  readonly link: Link;
  /** The kernel it serves. */
  readonly kernel: Kernel;
  /** Lease length in ms. */
  readonly leaseMs: number;
  /** Longest wait of one cluster call in ms. */
  readonly timeoutMs: number;
  readonly #servers: string[];
  readonly #boot: number;
  readonly #log: (line: string) => void;
  readonly #names: GlobalNames;
  #state: LocalState | undefined;
  /** Above 0: `fetchMissing` answers `false` (the node's own existence checks). */
  #quiet = 0;
  readonly #fetching = new Set<ObjID>();
  readonly #stops: (() => void)[] = [];
  #queue: Promise<void> = Promise.resolve();
  readonly #appliedTx = new Set<string>();
  /** Versions of each object known to be in the object store, oldest first. */
  readonly #kept = new Map<ObjID, { version: number; tag: string }[]>();
  #closed = false;

  private constructor(kernel: Kernel, link: Link, options: NodeOptions) {
    this.kernel = kernel;
    this.link = link;
    this.node = options.node;
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#servers = [...options.servers];
    this.#boot = kernel.report.bootId;
    this.#log = options.log ?? ((line) => console.error(line));
    this.#names = new GlobalNames(link);
  }

  /**
   * Join the cluster as node `options.node`: connect, take the node's lease
   * (waiting out a lapsing lease of an earlier boot of this node; another
   * live node of that name is refused), load the local state (adopting its
   * object at the first join), republish what was committed here but not
   * acknowledged, bring held copies up to date, watch the records, serve
   * handover requests, and set `kernel.global`.
   *
   * @param kernel The booted kernel (not read-only).
   * @param options Servers, node name, lease, timeout.
   * @returns The node.
   * @throws {TwzError} `InvalidArgument` (bad name or lease), `Busy` (the
   *   name is held by another live node), `TimedOut` (no server answers),
   *   `ReadOnly`.
   */
  static async join(kernel: Kernel, options: NodeOptions): Promise<GlobalNode> {
    checkNodeName(options.node);
    const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    if (!Number.isInteger(leaseMs) || leaseMs < 100) {
      throw new TwzError(ErrorCode.InvalidArgument, `lease ${leaseMs} ms is not an integer ≥ 100`);
    }
    kernel.requireWritable("join a cluster");
    const link = options.link ?? await NatsLink.open({
      servers: options.servers,
      name: options.node,
      timeoutMs: options.timeoutMs,
      prefix: options.prefix,
    });
    const node = new GlobalNode(kernel, link, { ...options, leaseMs });
    try {
      await node.#holdNodeLease();
      node.#loadState();
      // Watch first (changes queue up and apply after the recovery: none is missed).
      node.#stops.push(
        link.watch(
          "meta",
          "obj.>",
          (key, entry) => node.#enqueue(() => node.#onRecord(key, entry)),
        ),
        link.watch("meta", "tx.>", (key, entry) => node.#enqueue(() => node.#onTx(key, entry))),
      );
      node.#recover();
      node.#stops.push(
        link.serve(`twz.node.${node.node}.handover`, (data) => node.#handover(data)),
      );
    } catch (e) {
      try {
        link.dropLease(nodeKey(node.node), false);
      } catch { /* closing anyway */ }
      await link.close();
      throw e;
    }
    kernel.global = node;
    return node;
  }

  /** Leave the cluster: stop watching and serving, drop the node lease as lapsed, close the link. */
  async leave(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.kernel.global === this) this.kernel.global = undefined;
    for (const stop of this.#stops.splice(0)) stop();
    await this.#queue.catch(() => {});
    try {
      this.link.dropLease(nodeKey(this.node), true);
    } catch (e) {
      this.#log(`global: could not drop the lease of node ${this.node}: ${(e as Error).message}`);
    }
    await this.link.close();
  }

  /** The local state (after join). */
  get #st(): LocalState {
    if (!this.#state) throw new TwzError(ErrorCode.NotSupported, "the node has not joined yet");
    return this.#state;
  }

  #sync<T>(g: Proto<T>): T {
    if (this.#closed) {
      throw new TwzError(ErrorCode.Shutdown, `node ${this.node} has left the cluster`);
    }
    return runSync(this.link, g);
  }

  /**
   * The hash of the local copy's bytes (after a replace by a shorter
   * version, the zeroed tail counts: the object keeps its size).
   */
  #localHash(id: ObjID): bigint {
    return hashBytes(this.kernel.objectBytes(id));
  }

  /** Whether the kernel holds `id` (without asking the global space). */
  #has(id: ObjID): boolean {
    this.#quiet++;
    try {
      return this.kernel.exists(id);
    } finally {
      this.#quiet--;
    }
  }

  // ---------------------------------------------------------------------
  // Join
  // ---------------------------------------------------------------------

  async #holdNodeLease(): Promise<void> {
    const key = nodeKey(this.node);
    let e = await this.link.async.get("meta", key);
    for (;;) {
      const l = e ? decodeLease(e.value) : null;
      if (!e || !l || l.lease <= Date.now() || l.boot === this.#boot) break;
      // An earlier boot of this node (crashed) lapses; a live node renews.
      await new Promise((r) => setTimeout(r, Math.min(l.lease - Date.now() + 20, this.leaseMs)));
      const again = await this.link.async.get("meta", key);
      if (again && again.revision !== e.revision) {
        const l2 = decodeLease(again.value);
        if (l2 && l2.lease > Date.now()) throw this.#nameInUse(l2);
      }
      e = again;
    }
    try {
      this.#lease(e?.revision);
    } catch (err) {
      if (err instanceof CasConflict) {
        const now = this.link.get("meta", key);
        const l = now ? decodeLease(now.value) : null;
        throw this.#nameInUse(l ?? { node: this.node, boot: 0, lease: 0 });
      }
      throw err;
    }
  }

  /** Hold the node lease from `revision` (create when absent); when lost, take it again. */
  #lease(revision: number | undefined): void {
    this.link.holdLease(
      nodeKey(this.node),
      this.leaseMs,
      { node: this.node, boot: this.#boot },
      (reason) => {
        if (this.#closed) return;
        this.#log(
          `global: node ${this.node} lost its lease (${reason}): other nodes may take what it owns; taking it again`,
        );
        this.#retake();
      },
      revision,
    );
  }

  /** Take the node lease again after losing it (unless another boot of this name holds it). */
  #retake(): void {
    const retry = () => setTimeout(() => this.#retake(), Math.max(50, this.leaseMs / 3));
    if (this.#closed) return;
    this.link.async.get("meta", nodeKey(this.node)).then((e) => {
      if (this.#closed) return;
      const l = e ? decodeLease(e.value) : null;
      if (l && l.boot !== this.#boot && l.lease > Date.now()) {
        this.#log(`global: ${this.#nameInUse(l).message}: this node stays without a lease`);
        return;
      }
      try {
        this.#lease(e?.revision);
        this.#log(`global: node ${this.node} holds its lease again`);
      } catch {
        retry();
      }
    }, retry);
  }

  #nameInUse(l: NodeLease): TwzError {
    return new TwzError(
      ErrorCode.Busy,
      `node name ${this.node} is in use by a live node (boot ${l.boot}): stop it or choose another --node`,
    );
  }

  #loadState(): void {
    if (!this.#has(STATE_ID)) {
      // Protections 0: user space cannot map it (the kernel writes it for the node).
      this.kernel.adopt(STATE_ID, initialState(), { prot: 0 });
    }
    const st = LocalState.load(this.kernel, STATE_ID);
    for (const i of st.damaged) this.#log(`global: slot ${i} of the local state is damaged`);
    this.#state = st;
  }

  /**
   * Bring every held object in line with the cluster: catch up read-only
   * copies, replace the copies of objects taken while this node was down,
   * and republish, in one transaction, what was committed here and not
   * acknowledged (a local transaction stays all or none).
   */
  #recover(): void {
    const st = this.#st;
    const again: ObjID[] = [];
    const lost = { changes: false };
    for (const [id, h] of [...st.held]) {
      if (!this.#has(id)) {
        st.remove(id); // a fetch cut short before its adopt
        continue;
      }
      try {
        if (this.#sync(this.#recoverOne(id, { ...h }, lost))) again.push(id);
      } catch (e) {
        this.#log(`global: recovery of ${formatId(id)} failed: ${(e as Error).message}`);
      }
    }
    if (again.length === 0) return;
    if (lost.changes) {
      // Changes here to an object taken meanwhile are lost; the others may
      // belong to the same local transaction: republishing them alone would
      // split it. They are replaced too (all or none).
      for (const id of again) {
        this.#sync(this.#replace(id, st.get(id)!));
        this.#log(
          `global: ${
            formatId(id)
          }: its unacknowledged changes here are dropped with those of objects taken meanwhile`,
        );
      }
      return;
    }
    try {
      const versions = this.#sync(this.#commitSteps(again, 2));
      again.forEach((id, i) =>
        this.#log(
          `global: republished ${formatId(id)} as version ${
            versions[i]
          } (committed here, not acknowledged)`,
        )
      );
    } catch (e) {
      this.#log(`global: republishing ${again.length} object(s) failed: ${(e as Error).message}`);
    }
  }

  /** Recover one held object; returns whether it must be republished. */
  *#recoverOne(id: ObjID, h: Held, lost: { changes: boolean }): Proto<boolean> {
    const st = this.#st;
    const key = objKey(id);
    const entry = yield* get("meta", key);
    if (!entry) {
      if (h.owned && h.unacked && h.version === 0) {
        yield* this.#publishNew(id);
        this.#log(`global: republished ${formatId(id)} (its first publish was not acknowledged)`);
      } else {
        this.#log(`global: ${formatId(id)} is no longer in the cluster: it stays a local object`);
        st.remove(id);
      }
      return false;
    }
    let rec = decodeRecord(entry.value, key);
    if (rec.owner === this.node) {
      let revision = entry.revision;
      if (rec.pending) {
        rec = settled(rec, yield* this.#resolveTx(rec.pending.tx));
        revision = yield* update("meta", key, toBytes(rec), revision);
      }
      if (!h.owned) {
        // Handed to this node just before it went down.
        yield* this.#catchUp(id, rec, revision);
        return false;
      }
      const local = this.#localHash(id);
      // Unacked: `hash` is the version being published; it landed when the record passed `version`.
      const landed = h.unacked && rec.version > h.version;
      const known = !h.unacked || landed;
      st.set(id, {
        version: rec.version,
        revision,
        owned: true,
        unacked: false,
        hash: known ? h.hash : 0n,
        size: rec.size,
      });
      return !known || local !== h.hash;
    }
    if (h.owned) {
      const changed = h.unacked || this.#localHash(id) !== h.hash;
      yield* this.#replace(id, { ...h, owned: false });
      if (changed) {
        lost.changes = true;
        this.#log(
          `global: ${
            formatId(id)
          } was taken by node ${rec.owner} while this node was down: its changes here after version ${h.version} are lost`,
        );
      }
      return false;
    }
    const eff = yield* this.#effective(rec);
    if (eff.version > h.version) yield* this.#replace(id, h);
    return false;
  }

  // ---------------------------------------------------------------------
  // Records, transactions, local copies
  // ---------------------------------------------------------------------

  /** A transaction's state without changing it: committed or not (yet). */
  *#txCommitted(tx: string): Proto<boolean> {
    const e = yield* get("meta", txKey(tx));
    return e !== null && decodeTx(e.value, txKey(tx)).state === "committed";
  }

  /** Settle a pending transaction: abort it if it has not committed; whether it committed. */
  *#resolveTx(tx: string): Proto<boolean> {
    const e = yield* get("meta", txKey(tx));
    if (e) return decodeTx(e.value, txKey(tx)).state === "committed";
    try {
      yield* create("meta", txKey(tx), toBytes({ state: "aborted", node: this.node, objects: [] }));
      return false;
    } catch (err) {
      if (!(err instanceof CasConflict)) throw err;
      return yield* this.#txCommitted(tx);
    }
  }

  /** The effective version and size of a record. */
  *#effective(rec: ObjectRecord): Proto<{ version: number; size: number; tag: string }> {
    if (rec.pending && (yield* this.#txCommitted(rec.pending.tx))) {
      return { version: rec.pending.version, size: rec.pending.size, tag: rec.pending.tag };
    }
    return { version: rec.version, size: rec.size, tag: rec.tag };
  }

  /** The record and current bytes of `id`, or `null` when it is not published. */
  *#current(
    id: ObjID,
  ): Proto<{ entry: KvEntry; rec: ObjectRecord; version: number; bytes: Uint8Array } | null> {
    const key = objKey(id);
    for (let tries = 0; tries < 5; tries++) {
      const entry = yield* get("meta", key);
      if (!entry) return null;
      const rec = decodeRecord(entry.value, key);
      const { version, tag } = yield* this.#effective(rec);
      const bytes = yield* getBytes(bytesName(id, version, tag));
      if (bytes) return { entry, rec, version, bytes };
      // A newer version replaced it meanwhile (old versions are deleted): read again.
    }
    throw new TwzError(
      ErrorCode.ObjectDamaged,
      `the bytes of ${formatId(id)} are missing from the cluster's object store`,
    );
  }

  /**
   * Replace the local copy of held `id` with the cluster's current version;
   * it stays owned when `h` says so and the record still names this node.
   */
  *#replace(id: ObjID, h: Held): Proto<void> {
    const cur = yield* this.#current(id);
    if (!cur) return;
    if (cur.version !== h.version || this.#localHash(id) !== hashBytes(cur.bytes)) {
      this.kernel.replaceContents(id, cur.bytes);
    }
    this.#st.set(id, {
      version: cur.version,
      revision: cur.entry.revision,
      owned: h.owned && cur.rec.owner === this.node,
      unacked: false,
      hash: this.#localHash(id),
      size: cur.bytes.length,
    });
  }

  /** The record a commit writes for `id` at `version` (from the kernel's facts). */
  #recordOf(id: ObjID, version: number, size: number, tag: string): ObjectRecord {
    const st = this.kernel.stat(id);
    return {
      v: 1,
      size,
      version,
      tag,
      key: st.keyId === 0n ? "0" : formatId(st.keyId),
      prot: st.prot,
      owner: this.node,
    };
  }

  // ---------------------------------------------------------------------
  // GlobalHook
  // ---------------------------------------------------------------------

  /**
   * `id` is held by neither store: fetch its current version from the
   * cluster (its key object first) and adopt it with its protections and key.
   *
   * @returns Whether it now exists here (`false`: not in the global space).
   * @throws {TwzError} `TimedOut` (the cluster does not answer), `ObjectDamaged`.
   */
  fetchMissing(id: ObjID): boolean {
    if (this.#quiet > 0 || this.#closed || !this.#state || this.#fetching.has(id)) return false;
    this.#fetching.add(id);
    try {
      const cur = this.#sync(this.#current(id));
      if (!cur) return false;
      const keyId = recordKeyId(cur.rec);
      if (keyId !== 0n && !this.#has(keyId) && !this.fetchMissing(keyId)) {
        throw new TwzError(
          ErrorCode.ObjectDamaged,
          `the key object ${formatId(keyId)} of ${formatId(id)} is not in the global space`,
        );
      }
      if (this.#has(id)) return true;
      const h: Held = {
        version: cur.version,
        revision: cur.entry.revision,
        owned: false,
        unacked: false,
        hash: hashBytes(cur.bytes),
        size: cur.bytes.length,
      };
      // The slot first: a crash before the adopt leaves a slot that join drops.
      this.#st.set(id, h);
      try {
        this.kernel.adopt(id, cur.bytes, { prot: cur.rec.prot, keyId });
      } catch (e) {
        this.#st.remove(id);
        throw e;
      }
      return true;
    } finally {
      this.#fetching.delete(id);
    }
  }

  /**
   * The protections a mapping of `id` may have here: all for an object that
   * is not global or is owned here, read and execute for a held global
   * object this node does not own.
   */
  mapLimit(id: ObjID): number {
    const h = this.#state?.held.get(id);
    return h === undefined || h.owned ? Prot.All : READ_ONLY;
  }

  /**
   * One `global(op, args)` call of a port (rights already checked).
   *
   * @throws {TwzError} What the operation throws; `InvalidArgument` for an unknown op.
   */
  call<K extends GlobalOp>(op: K, args: GlobalOps[K][0], principal: Principal): GlobalOps[K][1] {
    // deno-lint-ignore no-explicit-any
    const a = (args ?? {}) as any;
    const r = ((): unknown => {
      switch (op) {
        case "status":
          return this.status();
        case "publish":
          return this.publish(a.id, { deep: a.deep, name: a.name, principal });
        case "info":
          return this.info(a.id);
        case "own":
          return this.own(a.id, { timeoutMs: a.timeoutMs });
        case "release":
          return this.release(a.id);
        case "commit":
          return this.commit(a.ids);
        case "refresh":
          return this.refresh(a.id);
        case "lookup":
          return this.lookup(a.path);
        case "bind":
          return this.bind(a.path, a.id, { parents: a.parents });
        case "unbind":
          return this.unbind(a.path);
        case "mkdir":
          return this.mkdir(a.path, { parents: a.parents });
        case "list":
          return this.list(a.path);
        default:
          throw new TwzError(ErrorCode.InvalidArgument, `unknown global operation "${String(op)}"`);
      }
    })();
    return r as GlobalOps[K][1];
  }

  // ---------------------------------------------------------------------
  // Operations
  // ---------------------------------------------------------------------

  /** This node and its connection. */
  status(): GlobalStatus {
    let owned = 0, unacked = 0, held = 0;
    for (const h of this.#st.held.values()) {
      held++;
      if (h.owned) owned++;
      if (h.unacked) unacked++;
    }
    return {
      node: this.node,
      servers: [...this.#servers],
      connected: this.link.connected,
      leaseMs: this.leaseMs,
      held,
      owned,
      unacked,
    };
  }

  /**
   * What the cluster and this node know about `id`.
   *
   * @throws {TwzError} `TimedOut`.
   */
  info(id: ObjID): GlobalInfo {
    checkId(id);
    return this.#sync(this.#info(id));
  }

  *#info(id: ObjID): Proto<GlobalInfo> {
    const h = this.#st.get(id);
    const entry = yield* get("meta", objKey(id));
    const local = { localVersion: h?.version ?? 0, unacked: h?.unacked ?? false };
    if (!entry) {
      return {
        id,
        published: false,
        version: 0,
        size: 0,
        owner: null,
        leaseExpiry: 0,
        owned: false,
        ...local,
      };
    }
    const rec = decodeRecord(entry.value, objKey(id));
    const eff = yield* this.#effective(rec);
    let leaseExpiry = 0;
    if (rec.owner !== null) {
      const l = yield* get("meta", nodeKey(rec.owner));
      leaseExpiry = (l && decodeLease(l.value)?.lease) || 0;
    }
    return {
      id,
      published: true,
      version: eff.version,
      size: eff.size,
      owner: rec.owner,
      leaseExpiry,
      owned: rec.owner === this.node && h?.owned === true && h.revision === entry.revision,
      ...local,
    };
  }

  /**
   * Publish `id` (version 1, owned here), or, when this node owns it, its
   * current bytes as the next version. `deep`: also every object its FOT
   * reaches, transitively; each keyed object's key object too. `name`: bind
   * it at that global path (missing directories made).
   *
   * @throws {TwzError} `ObjectNotFound`, `Busy` (published and owned by
   *   another node, with other bytes than here), `NameExists`, `TimedOut`.
   */
  publish(
    id: ObjID,
    options: {
      deep?: boolean | undefined;
      name?: string | undefined;
      /** Whose call it is: with `deep`, each object reached needs its READ too. */
      principal?: Principal | undefined;
    } = {},
  ): PublishResult {
    checkId(id);
    if (!this.#has(id) && !this.kernel.exists(id)) {
      throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(id)}`);
    }
    const order: ObjID[] = [id];
    const seen = new Set<ObjID>([id]);
    const keys: ObjID[] = [];
    for (let i = 0; i < order.length; i++) {
      const x = order[i]!;
      const keyId = this.kernel.stat(x).keyId;
      if (keyId !== 0n && !seen.has(keyId)) {
        seen.add(keyId);
        keys.push(keyId);
      }
      if (!options.deep) continue;
      for (const t of fotTargets(this.kernel.objectBytes(x))) {
        if (!seen.has(t) && this.#has(t)) {
          if (options.principal) this.#needRead(options.principal, t, id);
          seen.add(t);
          order.push(t);
        }
      }
    }
    const all = [...order, ...keys];
    const versions = new Map<ObjID, number>();
    // Keys first, then what is reached, the asked-for object last: once it
    // is visible, everything it reaches is too.
    for (const x of [...keys, ...order.slice(1).reverse(), id]) {
      versions.set(x, this.#sync(this.#publishOne(x, x === id)));
    }
    if (options.name !== undefined) this.bind(options.name, id, { parents: true });
    return { ids: all, versions: all.map((x) => versions.get(x)!) };
  }

  /** Refuse a deep publish from `root` that reaches `id` without READ on it. */
  #needRead(principal: Principal, id: ObjID, root: ObjID): void {
    const a = this.kernel.security.allowed(principal, id);
    if (typeof a !== "number") {
      a.catch(() => {}); // verification goes on; a later call sees its verdict
      throw new TwzError(
        ErrorCode.Busy,
        `cannot publish ${formatId(root)} deeply: the protections of ${
          formatId(id)
        } it reaches are being verified (try again)`,
      );
    }
    if ((a & SecProt.Read) === 0) {
      throw new TwzError(
        ErrorCode.AccessDenied,
        `cannot publish ${formatId(root)} deeply: it reaches ${
          formatId(id)
        }, which this caller may not read`,
      );
    }
  }

  *#publishOne(id: ObjID, strict: boolean): Proto<number> {
    const entry = yield* get("meta", objKey(id));
    if (!entry) return yield* this.#publishNew(id);
    const rec = decodeRecord(entry.value, objKey(id));
    const h = this.#st.get(id);
    if (h?.owned && rec.owner === this.node) return (yield* this.#commitSteps([id], 1))[0]!;
    const eff = yield* this.#effective(rec);
    if (!strict) return eff.version;
    if (h && h.version === eff.version && this.#localHash(id) === h.hash) {
      return eff.version; // published, unchanged here
    }
    throw new TwzError(
      ErrorCode.Busy,
      `publish of ${formatId(id)} refused: it is published and ${
        rec.owner === null ? "owned by no node" : `owned by node ${rec.owner}`
      } (own it first)`,
    );
  }

  /** Put a new object into the space (version 1, owned here). */
  *#publishNew(id: ObjID): Proto<number> {
    const st = this.#st;
    const bytes = this.kernel.objectBytes(id).slice();
    const hash = hashBytes(bytes);
    st.set(id, { version: 0, revision: 0, owned: true, unacked: true, hash, size: bytes.length });
    const tag = bytesTag(0, this.#boot);
    yield* putBytes(bytesName(id, 1, tag), bytes);
    let rev: number;
    try {
      rev = yield* create("meta", objKey(id), toBytes(this.#recordOf(id, 1, bytes.length, tag)));
    } catch (e) {
      if (!(e instanceof CasConflict)) throw e;
      const entry = yield* get("meta", objKey(id));
      const rec = entry ? decodeRecord(entry.value, objKey(id)) : null;
      if (entry && rec && rec.owner === this.node && rec.version === 1 && !rec.pending) {
        rev = entry.revision; // our own earlier attempt landed
      } else {
        st.set(id, {
          version: rec?.version ?? 0,
          revision: 0,
          owned: false,
          unacked: false,
          hash: 0n,
          size: 0,
        });
        throw new TwzError(
          ErrorCode.Busy,
          `publish of ${formatId(id)} refused: node ${rec?.owner ?? "(none)"} published it first`,
        );
      }
    }
    st.set(id, {
      version: 1,
      revision: rev,
      owned: true,
      unacked: false,
      hash,
      size: bytes.length,
    });
    this.#stored(id, 1, tag);
    return 1;
  }

  /**
   * Take ownership of `id`: a compare-and-set on its record when it is free,
   * ours, or its owner's lease lapsed; else ask the owner to hand it over,
   * and wait for its lease to lapse, up to `timeoutMs` (default: the lease).
   * The local copy is brought to the current version.
   *
   * @throws {TwzError} `ObjectNotFound` (not published), `Busy` (not handed
   *   over in time), `TimedOut`.
   */
  own(id: ObjID, options: { timeoutMs?: number | undefined } = {}): GlobalInfo {
    checkId(id);
    this.#sync(this.#ownSteps(id, options.timeoutMs ?? this.leaseMs, false));
    return this.#sync(this.#info(id));
  }

  /**
   * {@linkcode own} through the event loop: for a caller whose thread must
   * keep serving (two nodes in one thread: the owner answers the handover
   * request on that thread's event loop).
   */
  async ownAsync(id: ObjID, options: { timeoutMs?: number | undefined } = {}): Promise<GlobalInfo> {
    checkId(id);
    await runAsync(this.link, this.#ownSteps(id, options.timeoutMs ?? this.leaseMs, false));
    return await runAsync(this.link, this.#info(id));
  }

  /**
   * One compare-and-set attempt to take `id` (free, ours, or its owner's
   * lease lapsed), through the event loop.
   *
   * @returns Whether this node owns it now.
   */
  tryOwn(id: ObjID): Promise<boolean> {
    checkId(id);
    return runAsync(this.link, this.#ownSteps(id, 0, true));
  }

  *#ownSteps(id: ObjID, timeoutMs: number, once: boolean): Proto<boolean> {
    const key = objKey(id);
    const deadline = Date.now() + timeoutMs;
    let asked = false;
    for (;;) {
      const entry = yield* get("meta", key);
      if (!entry) throw notPublished(id);
      const rec = decodeRecord(entry.value, key);
      const h = this.#st.get(id);
      if (rec.owner === this.node && h?.owned && h.revision === entry.revision && !rec.pending) {
        yield* this.#catchUp(id, rec, entry.revision);
        return true;
      }
      let holder: NodeLease | null = null;
      if (rec.owner !== null && rec.owner !== this.node) {
        const l = yield* get("meta", nodeKey(rec.owner));
        const lease = l ? decodeLease(l.value) : null;
        if (lease && lease.lease > Date.now()) holder = lease;
      }
      if (holder === null) {
        const committed = rec.pending ? yield* this.#resolveTx(rec.pending.tx) : false;
        const next: ObjectRecord = { ...settled(rec, committed), owner: this.node };
        try {
          const rev = yield* update("meta", key, toBytes(next), entry.revision);
          yield* this.#catchUp(id, next, rev);
          return true;
        } catch (e) {
          if (!(e instanceof CasConflict) || once) {
            if (e instanceof CasConflict) return false;
            throw e;
          }
          continue;
        }
      }
      if (once) return false;
      const left = deadline - Date.now();
      if (!asked && left > 0) {
        asked = true;
        try {
          const reply = yield* request(
            `twz.node.${rec.owner}.handover`,
            toBytes({ id: formatId(id), node: this.node, until: deadline }),
            Math.max(1, Math.min(left, this.timeoutMs)),
          );
          const r = JSON.parse(dec.decode(reply));
          if (typeof r.revision === "number") {
            const now = yield* get("meta", key);
            if (now && now.revision === r.revision) {
              const got = decodeRecord(now.value, key);
              if (got.owner === this.node) {
                if (got.pending) continue; // settled by the CAS path above
                yield* this.#catchUp(id, got, now.revision);
                return true;
              }
            }
            continue;
          }
        } catch (e) {
          if (!(e instanceof TwzError)) throw e; // no answer: wait out the lease
        }
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new TwzError(
          ErrorCode.Busy,
          `cannot own ${
            formatId(id)
          }: node ${rec.owner} holds it and did not hand it over within ${timeoutMs} ms`,
        );
      }
      yield* sleep(Math.min(remaining, Math.max(10, holder.lease - Date.now() + 10), 250));
    }
  }

  /** Now owned at `revision`: bring the local copy to the record's version and record it. */
  *#catchUp(id: ObjID, rec: ObjectRecord, revision: number): Proto<void> {
    const st = this.#st;
    const h = st.get(id);
    if (h && h.version >= rec.version) {
      st.set(id, { ...h, owned: true, revision, unacked: h.unacked });
      return;
    }
    this.#know(id, rec);
    const bytes = yield* getBytes(bytesName(id, rec.version, rec.tag));
    if (!bytes) {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `version ${rec.version} of ${formatId(id)} is missing from the cluster's object store`,
      );
    }
    const next: Held = {
      version: rec.version,
      revision,
      owned: true,
      unacked: false,
      hash: hashBytes(bytes),
      size: bytes.length,
    };
    if (h || this.#has(id)) {
      // (Not held: a local object of that ID whose state was lost: the cluster's bytes win.)
      this.kernel.replaceContents(id, bytes);
      st.set(id, { ...next, hash: this.#localHash(id) });
    } else {
      st.set(id, next);
      this.kernel.adopt(id, bytes, { prot: rec.prot, keyId: recordKeyId(rec) });
    }
  }

  /**
   * Give ownership of `id` up (it stays published at its last committed
   * version; local changes not committed since are replaced by it).
   *
   * @throws {TwzError} `TimedOut`.
   */
  release(id: ObjID): void {
    checkId(id);
    this.#sync(this.#releaseSteps(id));
  }

  /** {@linkcode release} through the event loop. */
  releaseAsync(id: ObjID): Promise<void> {
    checkId(id);
    return runAsync(this.link, this.#releaseSteps(id));
  }

  *#releaseSteps(id: ObjID): Proto<void> {
    const st = this.#st;
    const h = st.get(id);
    if (!h?.owned) return;
    const key = objKey(id);
    const entry = yield* get("meta", key);
    if (!entry) {
      st.set(id, { ...h, owned: false });
      return;
    }
    const rec = decodeRecord(entry.value, key);
    if (rec.owner === this.node && entry.revision === h.revision) {
      const committed = rec.pending ? yield* this.#resolveTx(rec.pending.tx) : false;
      try {
        const rev = yield* update(
          "meta",
          key,
          toBytes({ ...settled(rec, committed), owner: null }),
          entry.revision,
        );
        st.set(id, { ...h, owned: false, revision: rev });
      } catch (e) {
        if (!(e instanceof CasConflict)) throw e;
      }
    }
    const now = st.get(id)!;
    if (now.owned) st.set(id, { ...now, owned: false });
    if (now.unacked || this.#localHash(id) !== now.hash) {
      yield* this.#replace(id, { ...now, owned: false });
    }
  }

  /**
   * Publish the current bytes of the owned global objects among `ids` as
   * their next versions, all or none. IDs that are not global are ignored;
   * an object unchanged since its last version keeps it.
   *
   * @returns The version of each global object of `ids` (in order; 0 for the others).
   * @throws {TwzError} `Busy` ("publish of <id> refused: ownership lost to
   *   node B"; the objects' local copies are then the cluster's current
   *   versions), `TimedOut`.
   */
  commit(ids: readonly ObjID[]): number[] {
    if (!Array.isArray(ids)) {
      throw new TwzError(ErrorCode.InvalidArgument, "commit takes a list of IDs");
    }
    for (const id of ids) checkId(id);
    const global = [...new Set(ids)].filter((id) => this.#st.get(id) !== undefined);
    if (global.length === 0) return ids.map(() => 0);
    let versions: number[];
    try {
      versions = this.#sync(this.#commitSteps(global, 2));
    } catch (e) {
      if (!(e instanceof TwzError) || e.code !== ErrorCode.TimedOut) throw e;
      this.#sync(this.#afterTimeout(global)); // refused when ownership moved meanwhile
      throw e;
    }
    const by = new Map(global.map((id, i) => [id, versions[i]!]));
    return ids.map((id) => by.get(id) ?? 0);
  }

  /**
   * A commit timed out (a slow cluster, or this process was paused with a
   * call in flight): when another node owns one of its objects now, the
   * commit is refused as a whole — its objects' local copies become the
   * cluster's current versions — rather than left in doubt.
   */
  *#afterTimeout(ids: ObjID[]): Proto<void> {
    for (const id of ids) {
      const now = yield* get("meta", objKey(id));
      const owner = now ? decodeRecord(now.value, objKey(id)).owner : null;
      if (owner === this.node) continue;
      for (const x of ids) yield* this.#replace(x, { ...this.#st.get(x)!, owned: false });
      throw new TwzError(
        ErrorCode.Busy,
        `publish of ${formatId(id)} refused: ownership lost to ${
          owner === null ? "another node" : `node ${owner}`
        }`,
      );
    }
  }

  *#commitSteps(ids: ObjID[], attempts: number): Proto<number[]> {
    const st = this.#st;
    const out = new Map<ObjID, number>();
    const work: Work[] = [];
    for (const id of ids) {
      const h = st.get(id)!;
      if (!h.owned) {
        // Refused as a whole: what the transaction wrote here to any of its
        // objects is replaced by the cluster's current versions, so nothing
        // written without ownership stays (or is ever republished).
        for (const x of ids) {
          const hx = st.get(x)!;
          if (hx.unacked || this.#localHash(x) !== hx.hash) yield* this.#replace(x, hx);
        }
        throw new TwzError(
          ErrorCode.Busy,
          `publish of ${formatId(id)} refused: this node does not own it (own it first)`,
        );
      }
      const bytes = this.kernel.objectBytes(id).slice();
      const hash = hashBytes(bytes);
      if (!h.unacked && hash === h.hash) {
        out.set(id, h.version);
        continue;
      }
      const cur = yield* this.#currentTag(id, h);
      const version = h.version + 1;
      const tag = bytesTag(h.revision, this.#boot);
      const next: ObjectRecord = {
        ...this.#recordOf(id, version, bytes.length, tag),
        ...(cur ? { prev: cur } : {}),
      };
      // The record as it is now (a multi-object commit adds its pending entry to it).
      const base = this.#recordOf(id, h.version, h.size, cur ?? tag);
      work.push({ id, h, bytes, hash, version, tag, next, base });
    }
    if (work.length === 0) return ids.map((id) => out.get(id)!);
    // Unacked first: a crash from here on republishes at join.
    for (const w of work) {
      st.set(w.id, { ...w.h, unacked: true, hash: w.hash, size: w.bytes.length });
    }
    for (const w of work) yield* putBytes(bytesName(w.id, w.version, w.tag), w.bytes);
    const tx = work.length > 1 ? newTxId() : undefined;
    const revs: number[] = [];
    const takenAfter = new Set<ObjID>();
    let lost: { id: ObjID; owner: string | null } | undefined;
    for (const w of work) {
      const body: ObjectRecord = tx
        ? { ...w.base, pending: { version: w.version, size: w.bytes.length, tx, tag: w.tag } }
        : w.next;
      try {
        revs.push(yield* update("meta", objKey(w.id), toBytes(body), w.h.revision));
      } catch (e) {
        if (e instanceof TwzError && e.code === ErrorCode.TimedOut) {
          // No answer in time (a slow cluster, or this process was paused
          // with the call in flight): look at the record before giving up.
          const now = yield* get("meta", objKey(w.id));
          const mine = toBytes(body);
          if (now && now.value.length === mine.length && now.value.every((b, i) => b === mine[i])) {
            revs.push(now.revision); // it landed
            continue;
          }
          if (!now || now.revision === w.h.revision) throw e; // it did not: still ours to retry
          const rec = decodeRecord(now.value, objKey(w.id));
          // It landed and another node took the object over since (paused
          // past the lease with the call in flight): the version is the
          // cluster's, so it is acknowledged, but no longer owned here. Seen
          // when the taker holds it at this version, or committed once on
          // top of it; after more commits the outcome cannot be told and the
          // commit counts as refused (the local copy follows the cluster).
          if (
            !tx && rec.owner !== this.node &&
            ((rec.version === w.version && rec.tag === w.tag) ||
              (rec.version === w.version + 1 && rec.prev === w.tag))
          ) {
            revs.push(now.revision);
            takenAfter.add(w.id);
            continue;
          }
          lost = { id: w.id, owner: rec.owner };
          break;
        }
        if (!(e instanceof CasConflict)) throw e;
        const now = yield* get("meta", objKey(w.id));
        lost = { id: w.id, owner: now ? decodeRecord(now.value, objKey(w.id)).owner : null };
        break;
      }
    }
    if (!lost && tx) {
      try {
        yield* create(
          "meta",
          txKey(tx),
          toBytes({
            state: "committed",
            node: this.node,
            objects: work.map((w) => [formatId(w.id), w.version, w.tag]),
          }),
        );
      } catch (e) {
        if (!(e instanceof CasConflict)) throw e;
        lost = { id: work[0]!.id, owner: null }; // a taker aborted it
      }
    }
    if (lost) return yield* this.#refused(ids, work, revs, tx, lost, attempts);
    // Acknowledged (the commit point passed): clear the pending entries.
    for (let i = 0; i < work.length; i++) {
      const w = work[i]!;
      let rev = revs[i]!, owned = !takenAfter.has(w.id);
      if (tx) {
        try {
          rev = yield* update("meta", objKey(w.id), toBytes({ ...w.next, tx }), rev);
        } catch (e) {
          if (!(e instanceof CasConflict)) throw e;
          owned = false; // taken after the commit point: the taker rolled it forward
        }
      }
      st.set(w.id, {
        version: w.version,
        revision: rev,
        owned,
        unacked: false,
        hash: w.hash,
        size: w.bytes.length,
      });
      out.set(w.id, w.version);
      this.#stored(w.id, w.version, w.tag);
      // Taken over after it landed: the local copy follows the taker's versions.
      if (!owned && !tx) yield* this.#replace(w.id, st.get(w.id)!);
    }
    if (tx) this.#appliedTx.add(tx);
    return ids.map((id) => out.get(id)!);
  }

  /** The tag of the version held here (from the kept names, else from the record). */
  *#currentTag(id: ObjID, h: Held): Proto<string | undefined> {
    const kept = this.#kept.get(id);
    const last = kept?.[kept.length - 1];
    if (last && last.version === h.version) return last.tag;
    const entry = yield* get("meta", objKey(id));
    if (!entry) return undefined;
    const rec = decodeRecord(entry.value, objKey(id));
    if (rec.version !== h.version) return undefined;
    this.#know(id, rec);
    return rec.tag;
  }

  /** Remember the stored versions a record names (its version and the previous one). */
  #know(id: ObjID, rec: ObjectRecord): void {
    const kept = rec.prev !== undefined && rec.version > 1
      ? [{ version: rec.version - 1, tag: rec.prev }]
      : [];
    kept.push({ version: rec.version, tag: rec.tag });
    this.#kept.set(id, kept);
  }

  /**
   * A version was stored and acknowledged: delete the ones older than the
   * last {@linkcode KEEP_VERSIONS} known here (in the background).
   */
  #stored(id: ObjID, version: number, tag: string): void {
    const kept = this.#kept.get(id) ?? [];
    kept.push({ version, tag });
    while (kept.length > KEEP_VERSIONS) {
      const old = kept.shift()!;
      const name = bytesName(id, old.version, old.tag);
      this.link.async.deleteBytes(name).catch((e) =>
        this.#log(`global: could not delete ${name}: ${(e as Error).message}`)
      );
    }
    this.#kept.set(id, kept);
  }

  /** A commit lost a compare-and-set: abort, undo pending entries, replace local copies, refuse. */
  *#refused(
    ids: ObjID[],
    work: Work[],
    revs: number[],
    tx: string | undefined,
    lost: { id: ObjID; owner: string | null },
    attempts: number,
  ): Proto<number[]> {
    const st = this.#st;
    if (tx) yield* this.#resolveTx(tx); // aborted unless it committed (then nothing was lost)
    for (let i = 0; i < revs.length; i++) {
      const w = work[i]!;
      try {
        revs[i] = yield* update("meta", objKey(w.id), toBytes(w.base), revs[i]!);
        st.set(w.id, { ...w.h, revision: revs[i]!, unacked: true });
      } catch (e) {
        if (!(e instanceof CasConflict)) throw e;
      }
    }
    if (lost.owner === this.node && attempts > 1) {
      // Our own earlier publish landed unrecorded (a timeout): take its revision and retry.
      const entry = yield* get("meta", objKey(lost.id));
      if (entry) {
        let rec = decodeRecord(entry.value, objKey(lost.id));
        let rev = entry.revision;
        if (rec.pending) {
          rec = settled(rec, yield* this.#resolveTx(rec.pending.tx));
          rev = yield* update("meta", objKey(lost.id), toBytes(rec), rev);
        }
        const h = st.get(lost.id)!;
        st.set(lost.id, { ...h, version: rec.version, revision: rev, size: rec.size });
        this.#know(lost.id, rec);
        return yield* this.#commitSteps(ids, attempts - 1);
      }
    }
    for (const w of work) yield* this.#replace(w.id, st.get(w.id)!);
    throw new TwzError(
      ErrorCode.Busy,
      `publish of ${formatId(lost.id)} refused: ownership lost to ${
        lost.owner === null ? "another node" : `node ${lost.owner}`
      }`,
    );
  }

  /**
   * Bring the local copy of `id` up to the cluster's current version now
   * (fetching it when it is not held).
   *
   * @throws {TwzError} `ObjectNotFound` (not published), `TimedOut`.
   */
  refresh(id: ObjID): GlobalInfo {
    checkId(id);
    const h = this.#st.get(id);
    if (!h) {
      if (!this.#has(id) && !this.fetchMissing(id)) throw notPublished(id);
    } else if (!h.owned) {
      this.#sync((function* (node: GlobalNode) {
        const entry = yield* get("meta", objKey(id));
        if (!entry) return;
        const rec = decodeRecord(entry.value, objKey(id));
        const eff = yield* node.#effective(rec);
        if (eff.version > h.version) yield* node.#replace(id, h);
      })(this));
    }
    return this.info(id);
  }

  // ---------------------------------------------------------------------
  // Names
  // ---------------------------------------------------------------------

  /**
   * The object bound at a global path (`0n` for a directory), or `null`.
   *
   * @throws {TwzError} `InvalidArgument` (a malformed path), `TimedOut`.
   */
  lookup(path: string): ObjID | null {
    return this.#names.lookup(path);
  }

  /**
   * Bind a global path to a published object.
   *
   * @throws {TwzError} `ObjectNotFound` (not published), `NameExists`,
   *   `NameNotFound` (a missing parent without `parents`), `InvalidArgument`.
   */
  bind(path: string, id: ObjID, options: { parents?: boolean | undefined } = {}): void {
    checkId(id);
    if (!this.link.get("meta", objKey(id))) {
      throw new TwzError(
        ErrorCode.ObjectNotFound,
        `Cannot bind /global${path.startsWith("/") ? "" : "/"}${path}: object ${
          formatId(id)
        } is not published (publish it first)`,
      );
    }
    this.#names.bind(path, id, options.parents ?? false);
  }

  /**
   * Remove a global binding or empty directory.
   *
   * @returns The object it named (`0n` for a directory).
   * @throws {TwzError} `NameNotFound`, `InvalidArgument`.
   */
  unbind(path: string): ObjID {
    return this.#names.unbind(path);
  }

  /**
   * Make a global directory.
   *
   * @throws {TwzError} `NameExists`, `NameNotFound`, `InvalidArgument`.
   */
  mkdir(path: string, options: { parents?: boolean | undefined } = {}): void {
    this.#names.mkdir(path, options.parents ?? false);
  }

  /**
   * A global directory's entries, sorted by name.
   *
   * @throws {TwzError} `NameNotFound`, `InvalidArgument`.
   */
  list(path: string): GlobalEntry[] {
    return this.#names.list(path);
  }

  // ---------------------------------------------------------------------
  // Watch and handover
  // ---------------------------------------------------------------------

  #enqueue(fn: () => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#closed || this.kernel.isShutdown) return;
      try {
        await fn();
      } catch (e) {
        if (!this.#closed) this.#log(`global: watch: ${(e as Error).message}`);
      }
    });
  }

  /** A record changed: note lost ownership, fetch a newer version of a held object. */
  async #onRecord(key: string, entry: KvEntry | null): Promise<void> {
    const id = idOfKey(key);
    if (id === undefined || !entry) return;
    const h = this.#st.get(id);
    if (!h) return;
    const rec = decodeRecord(entry.value, key);
    if (entry.revision > h.revision) {
      if (h.owned && rec.owner !== this.node) {
        this.#st.set(id, { ...h, owned: false });
        if (rec.owner !== null) {
          this.#log(`global: ownership of ${formatId(id)} passed to node ${rec.owner}`);
        }
        if (h.unacked || this.#localHash(id) !== h.hash) {
          // Changes here that were never published: the cluster's version replaces them.
          await runAsync(this.link, this.#replace(id, { ...h, owned: false }));
          return;
        }
      } else if (!h.owned && rec.owner === this.node && !rec.pending && rec.version === h.version) {
        // Handed to this node after its request stopped waiting: it owns it.
        this.#st.set(id, { ...h, owned: true, revision: entry.revision });
      }
    }
    if (rec.pending) return; // its transaction's record tells
    if (rec.tx) {
      await this.#applyTx(rec.tx);
      return;
    }
    const now = this.#st.get(id)!;
    if (now.owned || rec.version <= now.version) return;
    const bytes = await this.link.async.getBytes(bytesName(id, rec.version, rec.tag));
    if (!bytes) return; // replaced meanwhile: the next change brings it
    const cur = this.#st.get(id);
    if (!cur || cur.owned || cur.version >= rec.version || this.#closed) return;
    this.kernel.replaceContents(id, bytes);
    this.#st.set(id, {
      ...cur,
      version: rec.version,
      hash: this.#localHash(id),
      size: bytes.length,
    });
  }

  async #onTx(key: string, entry: KvEntry | null): Promise<void> {
    if (!entry) return;
    const tx = decodeTx(entry.value, key);
    if (tx.state === "committed") await this.#applyTxRecord(key.slice(3), tx.objects);
  }

  async #applyTx(tx: string): Promise<void> {
    if (this.#appliedTx.has(tx)) return;
    const e = await this.link.async.get("meta", txKey(tx));
    if (!e) return;
    const rec = decodeTx(e.value, txKey(tx));
    if (rec.state === "committed") await this.#applyTxRecord(tx, rec.objects);
  }

  /** Fetch every held object of a committed transaction, then replace them all in one step. */
  async #applyTxRecord(tx: string, objects: [string, number, string][]): Promise<void> {
    if (this.#appliedTx.has(tx)) return;
    const fetched: { id: ObjID; version: number; bytes: Uint8Array }[] = [];
    for (const [hex, version, tag] of objects) {
      const id = parseId(hex);
      const h = this.#st.get(id);
      if (!h || h.owned || h.version >= version) continue;
      const bytes = await this.link.async.getBytes(bytesName(id, version, tag));
      // Replaced meanwhile by a newer version (old ones are deleted): bring
      // every held object of the transaction to its current version instead.
      if (!bytes) return await this.#applyTxLate(tx, objects);
      fetched.push({ id, version, bytes });
    }
    if (this.#closed) return;
    // One synchronous step: a reader on this thread never sees a mix.
    for (const f of fetched) {
      const h = this.#st.get(f.id);
      if (!h || h.owned || h.version >= f.version) continue;
      this.kernel.replaceContents(f.id, f.bytes);
      this.#st.set(f.id, {
        ...h,
        version: f.version,
        hash: this.#localHash(f.id),
        size: f.bytes.length,
      });
    }
    this.#appliedTx.add(tx);
    if (this.#appliedTx.size > 4096) {
      for (const t of [...this.#appliedTx].slice(0, 2048)) this.#appliedTx.delete(t);
    }
  }

  /**
   * A committed transaction one of whose versions is gone: fetch the
   * current version of each of its held objects (each at least as new as
   * the transaction's), then replace them in one step, so its objects still
   * move together and none stays behind.
   */
  async #applyTxLate(tx: string, objects: [string, number, string][]): Promise<void> {
    const fetched: {
      id: ObjID;
      cur: { entry: KvEntry; rec: ObjectRecord; version: number; bytes: Uint8Array };
    }[] = [];
    for (const [hex] of objects) {
      const id = parseId(hex);
      const h = this.#st.get(id);
      if (!h || h.owned) continue;
      const cur = await runAsync(this.link, this.#current(id));
      if (cur && cur.version > h.version) fetched.push({ id, cur });
    }
    if (this.#closed) return;
    for (const { id, cur } of fetched) {
      const h = this.#st.get(id);
      if (!h || h.owned || h.version >= cur.version) continue;
      this.kernel.replaceContents(id, cur.bytes);
      this.#st.set(id, {
        ...h,
        version: cur.version,
        revision: cur.entry.revision,
        hash: this.#localHash(id),
        size: cur.bytes.length,
      });
    }
    this.#appliedTx.add(tx);
  }

  /** Another node asks for an object this node owns: hand it over (CAS `owner: requester`). */
  async #handover(data: Uint8Array): Promise<Uint8Array> {
    try {
      const req = JSON.parse(dec.decode(data));
      const id = parseId(String(req.id));
      const to = String(req.node);
      checkNodeName(to);
      // A requester that has stopped waiting would not know it owns the object.
      if (typeof req.until === "number" && req.until < Date.now()) {
        return toBytes({ error: "the request has expired" });
      }
      const h = this.#st.get(id);
      if (!h?.owned) return toBytes({ error: `node ${this.node} does not own ${formatId(id)}` });
      const key = objKey(id);
      const entry = await this.link.async.get("meta", key);
      if (!entry) return toBytes({ error: `${formatId(id)} is not published` });
      const rec = decodeRecord(entry.value, key);
      if (rec.owner !== this.node || entry.revision !== h.revision || rec.pending) {
        return toBytes({ error: `node ${this.node} no longer owns ${formatId(id)}` });
      }
      const rev = await this.link.async.update(
        "meta",
        key,
        toBytes({ ...rec, owner: to }),
        entry.revision,
      );
      const now = this.#st.get(id)!;
      this.#st.set(id, { ...now, owned: false, revision: rev });
      if (now.unacked || this.#localHash(id) !== now.hash) {
        this.#log(
          `global: ${
            formatId(id)
          } handed over to node ${to}: its uncommitted changes here are replaced by version ${now.version}`,
        );
        await runAsync(this.link, this.#replace(id, this.#st.get(id)!));
      }
      return toBytes({ revision: rev });
    } catch (e) {
      return toBytes({ error: (e as Error).message });
    }
  }
}

function checkId(id: ObjID): void {
  if (typeof id !== "bigint" || !isValidId(id)) {
    throw new TwzError(ErrorCode.InvalidArgument, `${String(id)} is not a valid object ID`);
  }
}

/**
 * The explorer's model: every fact `twz explore`'s page and `twz graph` show
 * about a system, as JSON-able values (IDs as 32 hex digits, no bigint).
 *
 * {@linkcode openSystem} opens an image the way the explorer needs it: a
 * read-only boot of the image (unless `write` is asked for), or, when a
 * running `twz boot` holds the image, that system's control socket.
 * {@linkcode ExplorerModel} reads the system through the kernel port and a
 * libtwz session on it:
 *
 * - the object list is taken once (`port.list()`) and kept, with its sorted
 *   orders, until the {@linkcode ExplorerModel.fingerprint} changes; names
 *   come from one reverse index of the naming tree, rebuilt when the naming
 *   generation changes; kinds and FOT counts are read only for the rows a
 *   page returns, so a page of a 100,000-object system costs the page;
 * - the kind of an object is what sits at its base, as `@twz/libtwz/check`'s
 *   `structureAt` finds it (directories, collections, the transaction log, a
 *   heap), or a kernel object found by its magic (thread and code objects,
 *   keys and security contexts: see docs/FORMATS.md), a device under `/dev`,
 *   or a typed object carrying a layout descriptor (`struct:NAME`);
 * - under a security context (`--context`), what the context may do with each
 *   object comes from `port.access(id, [ctx])`, which is asynchronous: the
 *   `prepare…` methods fetch it for what a request is about to show (the
 *   server calls them), so the synchronous methods find it; an object the
 *   context may not read is "no access" and nothing else of it is read.
 *
 * Ties: `port.dependents(id)` lists the objects tied to an object (deleted
 * with it). The model asks it once per listing for the objects whose
 * `stat().dependents` is not 0, so it knows both directions: an object's
 * `dependentIds` (tied to it) and `tiedTo` (what it is tied to); the graph
 * has a `tie` edge from each dependent to its parent.
 *
 * @example
 * ```ts ignore
 * import { ExplorerModel, openSystem } from "./model.ts";
 * const sys = await openSystem({ image: "twz.img" });
 * const model = new ExplorerModel(sys);
 * console.log(model.objects({ offset: 0, limit: 10 }).rows.map((r) => r.name));
 * sys.close();
 * ```
 *
 * @module
 */
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  formatProt,
  FotFlags,
  type KernelPort,
  looksLikeId,
  META_OFFSET,
  MetaField,
  OBJECT_MAGIC,
  type ObjectStat,
  type ObjID,
  parseId,
  Prot,
  type ThreadInfo,
  TwzError,
} from "@twz/kernel/abi";
import { HalError } from "@twz/kernel/hal";
import { CODE_MAGIC, THREAD_MAGIC } from "@twz/kernel/threads";
import { Twz, type TwzObject } from "@twz/libtwz";
import { bootEmbedded, connectRemotePort, type HalName, RemotePort } from "@twz/libtwz/embedded";
import { structureAt } from "@twz/libtwz/check";
import { type Codec, codec, type ObjRef } from "@twz/libtwz/codec";
import { HashMap } from "@twz/libtwz/hashmap";
import { BTreeMap } from "@twz/libtwz/btree";
import { Vector } from "@twz/libtwz/vector";
import { Queue } from "@twz/libtwz/queue";
import { readLayoutDescriptor } from "@twz/libtwz/layout";
import type {
  BytesView,
  CollectionPage,
  FotRow,
  GraphEdge,
  GraphNode,
  LayoutDescriptor,
  LayoutField,
  NamesView,
  ObjectKind,
  ObjectPage,
  ObjectRow,
  ObjectView,
  RecordField,
  SystemView,
  ThreadRow,
  TypedRecord,
} from "./api_types.ts";

// ---------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------

export type * from "./api_types.ts";

/** The sort keys of the object table. */
export type SortKey = "id" | "name" | "size" | "created";

/** What {@linkcode ExplorerModel.objects} selects. */
export interface ObjectQuery {
  /** Index of the first row. */
  offset: number;
  /** Rows (at most {@linkcode MAX_ROWS}). */
  limit: number;
  /** The order. @default {"id"} */
  sort?: SortKey | undefined;
  /** A substring of the ID or of a name (case-insensitive). */
  filter?: string | undefined;
}

/** An explorer failure with the HTTP status it stands for (400 bad input, 404 unknown, 403 refused). */
export class ExplorerError extends Error {
  override name = "ExplorerError";
  /**
   * @param status The HTTP status: 400, 403, 404 or 422.
   * @param message One line.
   */
  constructor(readonly status: 400 | 403 | 404 | 422, message: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------
// Opening a system
// ---------------------------------------------------------------------------

/** A system the explorer reads: a port and a libtwz session on it. */
export interface OpenedSystem {
  /** The kernel port (in-process, or a remote port over the control socket). */
  port: KernelPort;
  /** A session on it. */
  twz: Twz;
  /** A boot of the image in this process, or a running `twz boot`'s control socket. */
  source: "boot" | "socket";
  /** Nothing may be written (opened without `write`). */
  readOnly: boolean;
  /** The image path. */
  image: string;
  /** The HAL's name. */
  hal: string;
  /** Close the session, then shut the kernel down (or disconnect). */
  close(): void;
}

/** Options of {@linkcode openSystem}. */
export interface OpenSystemOptions {
  /** The image file (never created). */
  image: string;
  /** The HAL. @default {"sim"} */
  hal?: HalName | undefined;
  /** Open for writing (`--write`). @default {false} */
  write?: boolean | undefined;
}

/**
 * Open an image for the explorer: a boot of it in this process (read-only
 * unless `write`), or, when a running `twz boot` holds it, that system
 * through its control socket. A missing image is refused, never created.
 *
 * @param o Image, HAL, whether to write.
 * @returns The opened system.
 * @throws {ExplorerError} `no image at PATH` (404).
 * @throws {HalError} The image cannot be opened (`busy`: held, no socket answers).
 * @throws {TwzError} Boot refused the image.
 */
export async function openSystem(o: OpenSystemOptions): Promise<OpenedSystem> {
  const hal = o.hal ?? "sim";
  const write = o.write === true;
  try {
    Deno.statSync(o.image);
  } catch {
    throw new ExplorerError(404, `no image at ${o.image}`);
  }
  let port: KernelPort;
  let shutdown: () => void;
  try {
    const sys = await bootEmbedded({
      hal,
      image: o.image,
      readOnly: !write,
      holder: "twz explore",
    });
    port = sys.port;
    shutdown = sys.shutdown;
  } catch (error) {
    if (!(error instanceof HalError && error.code === "busy")) throw error;
    // Held by a running system: its control socket (a writable boot already
    // tried it inside bootEmbedded).
    const remote = await connectRemotePort(o.image);
    if (remote === undefined) throw error;
    port = remote;
    shutdown = () => remote.close();
  }
  let twz: Twz;
  try {
    twz = Twz.attach(port);
  } catch (error) {
    shutdown();
    throw error;
  }
  const source = port instanceof RemotePort ? "socket" : "boot";
  let closed = false;
  return {
    port,
    twz,
    source,
    readOnly: !write || port.readOnly,
    image: o.image,
    hal: port.info().hal,
    close() {
      if (closed) return;
      closed = true;
      try {
        twz.close();
      } finally {
        shutdown();
      }
    },
  };
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/** Bytes a {@linkcode ExplorerModel.bytes} answer may span. */
export const MAX_BYTES = 65536;
/** Rows an {@linkcode ExplorerModel.objects} page may hold. */
export const MAX_ROWS = 1000;
/** Typed records one bytes answer decodes at most. */
const MAX_RECORDS = 256;
/** The full object list is taken again at most this often by `fingerprint`. */
const LIST_EVERY_MS = 2000;

/** Key objects and security contexts: their magic at offset 256 (docs/FORMATS.md: `TZKY`, `TZCX`). */
const KEY_MAGIC = 0x594b5a54, CTX_MAGIC = 0x58435a54;
/** A layout descriptor object's magic at its base, `TLAY` (docs/FORMATS.md, layout descriptors). */
const LAYOUT_MAGIC = 0x59414c54;
/** Where a directory keeps the naming generation (docs/FORMATS.md, directories). */
const DIR_GENERATION = BASE_OFFSET + 12;

const ADMIN_LABEL = "admin (the shell's session)";
const STATES = ["starting", "running", "sleeping", "exited"] as const;

/** The list and what is derived from it, valid until the fingerprint changes. */
interface Listing {
  stats: ObjectStat[];
  byId: Map<ObjID, ObjectStat>;
  orders: Map<string, ObjectStat[]>;
  key: string;
  at: number;
  /** The tie edges, both ways (built on first use). */
  ties?: { children: Map<ObjID, ObjID[]>; parents: Map<ObjID, ObjID[]> };
}

/**
 * Every fact the explorer shows about one system, read through its port.
 * Methods are synchronous and throw {@linkcode ExplorerError} (bad input,
 * unknown objects) or `TwzError` (`ObjectDamaged`: a damaged structure).
 */
export class ExplorerModel {
  readonly #sys: OpenedSystem;
  readonly #port: KernelPort;
  readonly #context: ObjID | null;
  #twz: Twz;
  #ownTwz = false;
  #listing: Listing | null = null;
  #names: { key: string; byId: Map<ObjID, string[]> } | null = null;
  #threads: { at: number; list: ThreadInfo[]; ids: Set<ObjID> } | null = null;
  #kinds = new Map<ObjID, { kind: ObjectKind; fot: number }>();
  #access = new Map<ObjID, number>();
  #contextLabel: string;
  #lastKey = "";
  #lastCheap = "";

  /**
   * @param sys The opened system.
   * @param o `context`: the security context whose view is shown (null or absent: the admin session).
   */
  constructor(sys: OpenedSystem, o: { context?: ObjID | null } = {}) {
    this.#sys = sys;
    this.#port = sys.port;
    this.#twz = sys.twz;
    this.#context = o.context ?? null;
    if (this.#context !== null) {
      if (!this.#port.exists(this.#context)) {
        throw new ExplorerError(404, `no context ${formatId(this.#context)}`);
      }
      try {
        this.#port.ctxInfo(this.#context);
      } catch (error) {
        // The kernel says why ("… is not a security context").
        throw new ExplorerError(400, firstLine(error));
      }
      const name = this.#namesOf(this.#context)[0];
      this.#contextLabel = `context ${
        name ? `${name} (${formatId(this.#context)})` : formatId(this.#context)
      }`;
    } else this.#contextLabel = ADMIN_LABEL;
  }

  /** The opened system. */
  get sys(): OpenedSystem {
    return this.#sys;
  }

  /** The libtwz session the model reads through (renewed over a socket when the system changes). */
  get twz(): Twz {
    return this.#twz;
  }

  /**
   * Bring the model up to date: when the cheap facts (free bytes, naming
   * generation, threads) changed, list the objects again and drop what was
   * cached; over a socket, open a fresh session (its mappings are copies).
   * The server calls it before each request.
   *
   * @returns When done.
   */
  refresh(): Promise<void> {
    this.#check(false);
    // Over a socket the session's mappings are copies taken when first
    // mapped: every request reads through a fresh session.
    if (this.#sys.source === "socket") this.#renewSession();
    return Promise.resolve();
  }

  /**
   * Under a context, fetch what it may do with `ids` (`port.access`, which
   * is asynchronous) so the synchronous methods find it; kept until the
   * fingerprint changes. Without a context it does nothing. An object whose
   * access was never fetched shows as "no access".
   *
   * @param ids The objects about to be shown.
   */
  async prepare(ids: Iterable<ObjID>): Promise<void> {
    if (this.#context === null) return;
    const ctx = [this.#context];
    for (const id of ids) {
      if (this.#access.has(id)) continue;
      let prot = 0;
      try {
        prot = (await this.#port.access(id, ctx)).prot;
      } catch {
        // Gone, or not a context any more: nothing.
      }
      this.#access.set(id, prot);
    }
  }

  /**
   * {@linkcode ExplorerModel.prepare} for the rows
   * {@linkcode ExplorerModel.objects} will return for `q` (bad input is
   * left for `objects` to refuse).
   */
  async prepareObjects(q: ObjectQuery): Promise<void> {
    if (this.#context === null) return;
    let order: ObjectStat[];
    try {
      order = this.#filtered(q);
    } catch {
      return;
    }
    await this.prepare(order.slice(q.offset, q.offset + q.limit).map((s) => s.id));
  }

  /**
   * {@linkcode ExplorerModel.prepare} for every object a graph of `depth`
   * hops around `root` can reach (at most `maxNodes`).
   */
  async prepareGraph(root: ObjID, depth: number, maxNodes: number): Promise<void> {
    if (this.#context === null) return;
    const seen = new Set<ObjID>([root]);
    let frontier = [root];
    for (let d = 0; d <= depth && frontier.length > 0; d++) {
      await this.prepare(frontier);
      const next: ObjID[] = [];
      for (const id of frontier) {
        let edges: GraphEdge[] = [];
        try {
          edges = this.neighbours(id).edges;
        } catch {
          continue;
        }
        for (const e of edges) {
          const to = BigInt(`0x${e.to}`);
          if (seen.has(to) || seen.size >= maxNodes) continue;
          seen.add(to);
          next.push(to);
        }
      }
      frontier = next;
    }
  }

  /**
   * A text that changes when objects are created, deleted or resized, names
   * change, threads start or end, or (given `watch`) the watched object's
   * bytes change.
   *
   * @param watch An object whose bytes count too.
   * @returns The fingerprint.
   */
  fingerprint(watch?: ObjID): string {
    this.#check(true);
    let out = this.#lastKey;
    if (watch !== undefined && this.#port.exists(watch)) {
      const size = this.#port.stat(watch).size;
      out += `:${size}:${hash(this.#port.read(watch, 0, Math.min(size, 1 << 20)))}`;
    }
    return out;
  }

  /** The facts of the page's header. */
  system(): SystemView {
    const info = this.#port.info();
    return {
      hal: info.hal,
      image: this.#sys.image,
      size: info.size,
      free: info.free,
      objects: this.#list().stats.length,
      readOnly: this.#port.readOnly,
      writable: !this.#sys.readOnly,
      source: this.#sys.source,
      context: this.#contextLabel,
      contextId: this.#context === null ? null : formatId(this.#context),
      generation: this.#generation(),
    };
  }

  /**
   * One directory level of the naming tree.
   *
   * @param path The directory (`/` the root).
   * @throws {ExplorerError} No such directory (404), not a directory (400).
   */
  names(path: string): NamesView {
    let list;
    try {
      list = this.#twz.naming.list(path);
    } catch (error) {
      throw asExplorerError(error);
    }
    return {
      path,
      entries: list.filter((b) => b.id !== 0n).map((b) => ({
        name: b.name,
        id: formatId(b.id),
        dir: b.kind === "directory",
      })),
    };
  }

  /**
   * One page of the object table.
   *
   * @param q Offset, limit (≤ {@linkcode MAX_ROWS}), sort key, filter (a
   *   substring of the ID or of a name).
   * @throws {ExplorerError} A bad offset, limit or sort key (400).
   */
  objects(q: ObjectQuery): ObjectPage {
    const order = this.#filtered(q);
    const rows = order.slice(q.offset, q.offset + q.limit).map((s) => this.#row(s));
    return { total: order.length, offset: q.offset, rows };
  }

  /** The objects `q` selects, in its order (checked). */
  #filtered(q: ObjectQuery): ObjectStat[] {
    const offset = q.offset, limit = q.limit;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new ExplorerError(400, `offset ${offset} is not a non-negative integer`);
    }
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_ROWS) {
      throw new ExplorerError(400, `limit ${limit} is not in [1, ${MAX_ROWS}]`);
    }
    const sort = q.sort ?? "id";
    if (!["id", "name", "size", "created"].includes(sort)) {
      throw new ExplorerError(400, `unknown sort key "${sort}" (id, name, size or created)`);
    }
    const order = this.#order(sort);
    const filter = (q.filter ?? "").trim().toLowerCase();
    if (filter === "") return order;
    const names = this.#nameIndex();
    return order.filter((s) =>
      formatId(s.id).includes(filter) ||
      (names.get(s.id) ?? []).some((p) => p.toLowerCase().includes(filter))
    );
  }

  /**
   * Everything about one object.
   *
   * @param id The object.
   * @throws {ExplorerError} No such object (404).
   */
  object(id: ObjID): ObjectView {
    const stat = this.#stat(id);
    const row = this.#row(stat);
    const view: ObjectView = {
      ...row,
      capacity: stat.capacity,
      created: stat.created,
      keyId: stat.keyId === 0n ? null : formatId(stat.keyId),
      names: this.#namesOf(id),
      meta: null,
      metaProblem: null,
      fot: [],
      tiedTo: this.#parentsOf(id).map(formatId),
      dependents: stat.dependents,
      dependentIds: this.#childrenOf(id).map(formatId),
      layout: null,
      codecs: null,
      structureProblem: null,
    };
    if (row.access === "no access") return view;
    const obj = this.#handle(id);
    if (obj.hasMeta) {
      try {
        const m = obj.meta;
        view.meta = { ...m, keyId: formatId(m.keyId) };
        view.fot = this.#fotRows(obj);
      } catch (error) {
        view.metaProblem = firstLine(error);
      }
    }
    const s = structureAt(this.#port, id);
    if (s !== null) {
      view.codecs = s.codecs ?? null;
      view.structureProblem = s.problem ?? null;
    }
    view.layout = this.#layout(obj);
    return view;
  }

  /**
   * A window of an object's bytes, with the typed records that overlap it.
   *
   * @param id The object.
   * @param offset First byte (less than the size).
   * @param length Bytes (at most {@linkcode MAX_BYTES}; cut at the end of the object).
   * @throws {ExplorerError} No such object (404), bad offset or length (400), no access (403).
   */
  bytes(id: ObjID, offset: number, length: number): BytesView {
    const stat = this.#stat(id);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= Math.max(stat.size, 1)) {
      throw new ExplorerError(
        400,
        `offset ${offset} is outside object ${formatId(id)} (${stat.size} bytes)`,
      );
    }
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_BYTES) {
      throw new ExplorerError(400, `length ${length} is not in [0, ${MAX_BYTES}]`);
    }
    this.#needRead(stat);
    const n = Math.min(length, stat.size - offset);
    const data = n > 0 ? this.#port.read(id, offset, n) : new Uint8Array(0);
    return {
      id: formatId(id),
      offset,
      length: data.length,
      size: stat.size,
      hex: toHex(data),
      records: this.#records(id, offset, data.length),
    };
  }

  /**
   * Write bytes into an object (the explorer started with `--write`); durable
   * when it returns.
   *
   * @param id The object.
   * @param offset Where.
   * @param hex The bytes, two hex digits each.
   * @returns The written window.
   * @throws {ExplorerError} Read-only (403), bad input (400), no such object (404).
   */
  writeBytes(id: ObjID, offset: number, hex: string): BytesView {
    if (this.#sys.readOnly) {
      throw new ExplorerError(403, "the explorer is read-only (start it with --write)");
    }
    const stat = this.#stat(id);
    if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
      throw new ExplorerError(400, "hex must be an even number of hex digits");
    }
    const data = fromHex(hex);
    if (data.length === 0 || data.length > MAX_BYTES) {
      throw new ExplorerError(400, `write 1 to ${MAX_BYTES} bytes, not ${data.length}`);
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > stat.size) {
      throw new ExplorerError(
        400,
        `[${offset}, ${offset + data.length}) is outside object ${
          formatId(id)
        } (${stat.size} bytes)`,
      );
    }
    if (this.#context !== null && !(this.#accessOf(stat) & Prot.Write)) {
      throw new ExplorerError(403, `the context may not write object ${formatId(id)}`);
    }
    try {
      this.#port.write(id, offset, data);
    } catch (error) {
      throw asExplorerError(error);
    }
    return this.bytes(id, offset, data.length);
  }

  /**
   * The object as a graph node and its edges: one per FOT entry that names
   * or resolves to an object, a `tie` edge to each object it is tied to, and
   * one from each object tied to it.
   *
   * @param id The object.
   * @throws {ExplorerError} No such object (404).
   */
  neighbours(id: ObjID | string): { node: GraphNode; edges: GraphEdge[] } {
    const oid = typeof id === "string" ? this.resolve(id) : id;
    const stat = this.#stat(oid);
    const row = this.#row(stat);
    const edges: GraphEdge[] = [];
    if (row.access !== "no access") {
      const obj = this.#handle(oid);
      if (obj.hasMeta) {
        let rows: FotRow[] = [];
        try {
          rows = this.#fotRows(obj, false);
        } catch {
          // A damaged FOT: the node stands alone.
        }
        for (const f of rows) {
          const to = f.target ?? f.resolved;
          if (to === null) continue;
          edges.push({
            from: row.id,
            to,
            kind: "fot",
            label: f.name !== null ? f.name : `fot ${f.index}`,
          });
        }
      }
    }
    // Ties: this object tied to its parents, and its dependents tied to it.
    for (const parent of this.#parentsOf(oid)) {
      edges.push({ from: row.id, to: formatId(parent), kind: "tie", label: "tie" });
    }
    for (const child of this.#childrenOf(oid)) {
      edges.push({ from: formatId(child), to: row.id, kind: "tie", label: "tie" });
    }
    return {
      node: { id: row.id, name: row.name, kind: row.kind, size: row.size, degree: edges.length },
      edges,
    };
  }

  /**
   * A page of a collection's entries (HashMap, BTreeMap, Vector, Queue),
   * opened with the codecs its header records.
   *
   * @param id The object holding it.
   * @param q Offset and limit (≤ {@linkcode MAX_ROWS}).
   * @throws {ExplorerError} No collection there (400), no such object (404).
   * @throws {TwzError} `ObjectDamaged`: the collection is damaged.
   */
  collection(id: ObjID, q: { offset: number; limit: number }): CollectionPage {
    const stat = this.#stat(id);
    const { offset, limit } = q;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new ExplorerError(400, `offset ${offset} is not a non-negative integer`);
    }
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_ROWS) {
      throw new ExplorerError(400, `limit ${limit} is not in [1, ${MAX_ROWS}]`);
    }
    this.#needRead(stat);
    const s = structureAt(this.#port, id);
    const kind = s?.kind;
    if (kind !== "hashmap" && kind !== "btree" && kind !== "vector" && kind !== "queue") {
      throw new ExplorerError(
        400,
        `object ${formatId(id)} holds no collection (it is ${this.#row(stat).kind})`,
      );
    }
    if (s!.problem !== undefined || s!.codecs === undefined) {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `${kind} in ${formatId(id)} is damaged: ${s!.problem ?? "unknown codecs"}`,
      );
    }
    const codecs = s!.codecs;
    const [kName, vName] = codecs.includes("/") ? codecs.split("/") : [undefined, codecs];
    const kc = kName === undefined ? undefined : codecNamed(kName);
    const vc = codecNamed(vName!);
    const obj = this.#handle(id);
    const rows: { key: string; value: string }[] = [];
    let total: number;
    const take = <T>(it: Iterable<T>, row: (x: T, i: number) => { key: string; value: string }) => {
      let i = 0;
      for (const x of it) {
        if (i >= offset + limit) break;
        if (i >= offset) rows.push(row(x, i));
        i++;
      }
    };
    const pair = ([k, v]: [unknown, unknown]) => ({ key: show(k), value: show(v) });
    try {
      if (kind === "btree") {
        const m = BTreeMap.open(this.#twz, obj, kc!, vc);
        total = m.size;
        if (offset < total) take(m.entries(), pair);
      } else if (kind === "hashmap") {
        const m = HashMap.open(this.#twz, obj, kc!, vc);
        total = m.size;
        if (offset < total) take(m.entries(), pair);
      } else if (kind === "vector") {
        const v = Vector.open(this.#twz, obj, vc);
        total = v.length;
        if (offset < total) take(v.values(), (x, i) => ({ key: String(i), value: show(x) }));
      } else {
        const qu = Queue.open(this.#twz, obj, vc);
        total = qu.size;
        if (offset < total) take(qu.values(), (x, i) => ({ key: String(i), value: show(x) }));
      }
    } catch (error) {
      throw asExplorerError(error);
    }
    return { id: formatId(id), kind, codecs, total, offset, rows };
  }

  /** Every thread the system knows, newest first. */
  threads(): ThreadRow[] {
    return this.#threadList(true).map((t) => ({
      tid: t.tid,
      name: t.name,
      state: STATES[t.state] ?? "exited",
      exitCode: t.state === 3 ? t.exitCode : null,
      fault: t.fault === null ? null : `${t.fault.kind}: ${t.fault.message}`,
      started: t.started,
      ended: t.ended === 0 ? null : t.ended,
      id: formatId(t.id),
    })).sort((a, b) => b.tid - a.tid);
  }

  /**
   * An object named by its ID (32 hex digits) or a path.
   *
   * @throws {ExplorerError} Neither (400), no such name or object (404).
   */
  resolve(text: string): ObjID {
    if (looksLikeId(text)) {
      let id: ObjID;
      try {
        id = parseId(text);
      } catch (error) {
        throw new ExplorerError(400, firstLine(error));
      }
      if (!this.#port.exists(id)) throw new ExplorerError(404, `no object ${formatId(id)}`);
      return id;
    }
    if (!text.startsWith("/")) {
      throw new ExplorerError(400, `"${text}" is neither an object ID (32 hex digits) nor a path`);
    }
    try {
      return this.#twz.naming.resolve(text);
    } catch (error) {
      throw asExplorerError(error);
    }
  }

  // --- caches --------------------------------------------------------------

  /**
   * Compare the cheap facts (free bytes, naming generation, threads) with
   * the last ones; list the objects again when they differ, or (`full`)
   * when the list is older than {@linkcode LIST_EVERY_MS}. Drops the caches
   * when anything changed.
   */
  #check(full: boolean): void {
    const info = this.#port.info();
    const threads = this.#threadList(true).map((x) => `${x.tid}.${x.state}`).join(",");
    const cheap = `${info.free}:${this.#generation()}:${hash(threads)}`;
    let listing = this.#listing;
    if (
      listing === null || cheap !== this.#lastCheap ||
      (full && Date.now() - listing.at > LIST_EVERY_MS)
    ) {
      listing = this.#takeList();
    }
    this.#lastCheap = cheap;
    const key = `${cheap}:${listing.key}`;
    if (key !== this.#lastKey) {
      if (this.#lastKey !== "") this.#invalidate();
      this.#lastKey = key;
    }
  }

  #invalidate(): void {
    this.#kinds.clear();
    this.#access.clear();
    this.#names = null;
    if (this.#sys.source === "socket") this.#renewSession();
  }

  /** A fresh session (over a socket its mappings are copies: a new one sees the system as it is now). */
  #renewSession(): void {
    const old = this.#twz;
    this.#twz = Twz.attach(this.#port);
    if (this.#ownTwz) old.close();
    this.#ownTwz = true;
  }

  #takeList(): Listing {
    const stats = this.#port.list();
    const byId = new Map<ObjID, ObjectStat>();
    let h = 0x811c9dc5;
    for (const s of stats) {
      byId.set(s.id, s);
      h = mix(h, Number(s.id & 0xffffffffn));
      h = mix(h, s.size);
    }
    const listing: Listing = {
      stats,
      byId,
      orders: new Map(),
      key: `${stats.length}.${(h >>> 0).toString(16)}`,
      at: Date.now(),
    };
    if (this.#listing === null || this.#listing.key !== listing.key) this.#listing = listing;
    else this.#listing.at = listing.at;
    return this.#listing;
  }

  #list(): Listing {
    return this.#listing ?? this.#takeList();
  }

  #order(sort: SortKey): ObjectStat[] {
    const listing = this.#list();
    const key = sort === "name" ? `name.${this.#namesKey()}` : sort;
    let order = listing.orders.get(key);
    if (order !== undefined) return order;
    order = [...listing.stats];
    if (sort === "id") order.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    else if (sort === "size") order.sort((a, b) => a.size - b.size || cmpId(a.id, b.id));
    else if (sort === "created") order.sort((a, b) => a.created - b.created || cmpId(a.id, b.id));
    else {
      // Named objects by name, then the unnamed ones in ID order: only the
      // named ones are sorted.
      const names = this.#nameIndex();
      const named: [string, ObjectStat][] = [];
      const unnamed: ObjectStat[] = [];
      for (const s of this.#order("id")) {
        const n = names.get(s.id)?.[0];
        if (n === undefined) unnamed.push(s);
        else named.push([n, s]);
      }
      named.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : cmpId(a[1].id, b[1].id)));
      order = [...named.map((x) => x[1]), ...unnamed];
    }
    listing.orders.set(key, order);
    return order;
  }

  #generation(): number {
    // Read through the port: over a socket the session's copy of the root
    // directory does not follow the system.
    try {
      const root = this.#twz.naming.rootId;
      const b = this.#port.read(root, DIR_GENERATION, 4);
      return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
    } catch {
      return 0;
    }
  }

  #namesKey(): string {
    let root = 0n;
    try {
      root = this.#twz.naming.rootId;
    } catch {
      // No namespace.
    }
    return `${root}.${this.#generation()}`;
  }

  /** Every path reachable from the naming root, by object (rebuilt when the generation changes). */
  #nameIndex(): Map<ObjID, string[]> {
    const key = this.#namesKey();
    if (this.#names !== null && this.#names.key === key) return this.#names.byId;
    const byId = new Map<ObjID, string[]>();
    const add = (id: ObjID, path: string) => {
      const list = byId.get(id);
      if (list) list.push(path);
      else byId.set(id, [path]);
    };
    try {
      add(this.#twz.naming.rootId, "/");
      const it = this.#twz.naming.walk("/");
      for (;;) {
        let r: IteratorResult<{ path: string; id: ObjID }>;
        try {
          r = it.next();
        } catch {
          break; // A damaged directory: the names found so far.
        }
        if (r.done) break;
        if (r.value.id !== 0n) add(r.value.id, r.value.path);
      }
    } catch {
      // No namespace: no names.
    }
    this.#names = { key, byId };
    return byId;
  }

  #namesOf(id: ObjID): string[] {
    return [...(this.#nameIndex().get(id) ?? [])];
  }

  #threadList(fresh: boolean): ThreadInfo[] {
    const now = Date.now();
    if (this.#threads === null || fresh) {
      let list: ThreadInfo[] = [];
      try {
        list = this.#port.threads();
      } catch {
        // No thread manager (a read-only boot without one): none.
      }
      this.#threads = { at: now, list, ids: new Set(list.map((t) => t.id)) };
    }
    return this.#threads.list;
  }

  /** The tie edges of the current listing, both ways (one `dependents` call per parent). */
  #ties(): NonNullable<Listing["ties"]> {
    const listing = this.#list();
    if (listing.ties !== undefined) return listing.ties;
    const children = new Map<ObjID, ObjID[]>();
    const parents = new Map<ObjID, ObjID[]>();
    for (const s of listing.stats) {
      if (s.dependents === 0) continue;
      let kids: ObjID[];
      try {
        kids = this.#port.dependents(s.id);
      } catch {
        continue; // Gone since the list, or damaged: no edges.
      }
      children.set(s.id, kids);
      for (const k of kids) {
        const p = parents.get(k);
        if (p) p.push(s.id);
        else parents.set(k, [s.id]);
      }
    }
    return listing.ties = { children, parents };
  }

  #parentsOf(id: ObjID): ObjID[] {
    return this.#ties().parents.get(id) ?? [];
  }

  #childrenOf(id: ObjID): ObjID[] {
    return this.#ties().children.get(id) ?? [];
  }

  #stat(id: ObjID): ObjectStat {
    const known = this.#list().byId.get(id);
    if (known !== undefined) return known;
    try {
      return this.#port.stat(id);
    } catch (error) {
      if (error instanceof TwzError && error.code === ErrorCode.ObjectNotFound) {
        throw new ExplorerError(404, `no object ${formatId(id)}`);
      }
      throw asExplorerError(error);
    }
  }

  #accessOf(stat: ObjectStat): number {
    if (this.#context === null) return Prot.All; // the admin session
    return this.#access.get(stat.id) ?? 0;
  }

  #needRead(stat: ObjectStat): void {
    if (!(this.#accessOf(stat) & Prot.Read)) {
      throw new ExplorerError(
        403,
        `${this.#contextLabel} may not read object ${formatId(stat.id)}`,
      );
    }
  }

  #handle(id: ObjID): TwzObject {
    try {
      return this.#twz.handle(id, false);
    } catch (error) {
      throw asExplorerError(error);
    }
  }

  #row(stat: ObjectStat): ObjectRow {
    const id = stat.id;
    // The admin session reads every object (and writes what its defaults allow).
    const access = this.#context === null
      ? formatProt(stat.prot | Prot.Read)
      : (this.#accessOf(stat) & Prot.Read)
      ? formatProt(this.#accessOf(stat))
      : "no access";
    const name = this.#nameIndex().get(id)?.[0] ?? null;
    const { kind, fot } = access === "no access"
      ? { kind: "bytes" as const, fot: 0 }
      : this.#kind(stat, name);
    return {
      id: formatId(id),
      name,
      size: stat.size,
      lifetime: stat.lifetime,
      prot: formatProt(stat.prot),
      kind,
      fot,
      ties: stat.dependents,
      access,
    };
  }

  #kind(stat: ObjectStat, name: string | null): { kind: ObjectKind; fot: number } {
    const id = stat.id;
    const known = this.#kinds.get(id);
    if (known !== undefined) return known;
    let kind: ObjectKind = "bytes";
    let fot = 0;
    try {
      const head = stat.size > 0
        ? this.#port.read(id, 0, Math.min(stat.size, BASE_OFFSET + 8))
        : new Uint8Array(0);
      const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
      const u32 = (at: number) => at + 4 <= head.length ? v.getUint32(at, true) : -1;
      const hasMeta = u32(META_OFFSET + MetaField.magic) === OBJECT_MAGIC;
      if (hasMeta) fot = u32(META_OFFSET + MetaField.fotCount);
      this.#threadList(false);
      if (this.#threads!.ids.has(id) || u32(0) === THREAD_MAGIC) kind = "thread";
      else if (u32(0) === CODE_MAGIC) kind = "code";
      else if (u32(BASE_OFFSET) === KEY_MAGIC && !hasMeta) kind = "key";
      else if (u32(BASE_OFFSET) === CTX_MAGIC && !hasMeta) kind = "context";
      else if (u32(BASE_OFFSET) === LAYOUT_MAGIC) kind = "layout";
      else {
        const s = structureAt(this.#port, id);
        if (s !== null) kind = s.kind;
        else if (name !== null && name.startsWith("/dev/") && stat.lifetime === "volatile") {
          kind = "device";
        } else if (hasMeta && u32(META_OFFSET + MetaField.typeTag) !== 0) {
          const d = this.#layout(this.#handle(id));
          if (d !== null) kind = `struct:${d.name}`;
        }
      }
    } catch {
      // Unreadable: bytes.
    }
    const out = { kind, fot };
    this.#kinds.set(id, out);
    return out;
  }

  /** The object's layout descriptor; null when it has none or it is damaged. */
  #layout(obj: TwzObject): LayoutDescriptor | null {
    try {
      return readLayoutDescriptor(obj, this.#twz);
    } catch {
      return null;
    }
  }

  #fotRows(obj: TwzObject, withNames = true): FotRow[] {
    const names = withNames ? this.#nameIndex() : null;
    const pathOf = (id: ObjID) => names?.get(id)?.[0] ?? null;
    return obj.fotEntries().map((e) => {
      const f = e.flags;
      const flags = `${f & FotFlags.Read ? "r" : "-"}${f & FotFlags.Write ? "w" : "-"}${
        f & FotFlags.Exec ? "x" : "-"
      }${f & FotFlags.Name ? " name" : ""}${f & FotFlags.Valid ? " valid" : ""}`;
      const row: FotRow = {
        index: e.index,
        flags,
        target: null,
        targetName: null,
        name: null,
        resolver: null,
        resolved: null,
        problem: f & FotFlags.Valid ? null : "not valid (never published)",
      };
      if (e.kind === "id") {
        row.target = formatId(e.id);
        row.targetName = pathOf(e.id);
        if (row.problem === null && !this.#port.exists(e.id)) {
          row.problem = "dangling: the target no longer exists";
        }
      } else {
        row.name = e.name;
        row.resolver = e.resolver;
        try {
          const id = this.#twz.resolver(e.resolver).resolve(e.name);
          row.resolved = formatId(id);
          row.targetName = pathOf(id);
        } catch (error) {
          row.problem ??= firstLine(error);
        }
      }
      return row;
    });
  }

  #records(id: ObjID, offset: number, length: number): TypedRecord[] {
    if (length === 0) return [];
    const obj = this.#handle(id);
    const d = this.#layout(obj);
    if (d === null || d.size <= 0) return [];
    const first = Math.max(0, Math.floor((offset - d.offset) / d.size));
    const out: TypedRecord[] = [];
    let fot: FotRow[] | null = null;
    const fotRows = () => {
      if (fot === null) {
        try {
          fot = this.#fotRows(obj);
        } catch {
          fot = [];
        }
      }
      return fot;
    };
    const v = obj.view;
    const names = this.#nameIndex();
    for (let i = first; i < d.count && out.length < MAX_RECORDS; i++) {
      const at = d.offset + i * d.size;
      if (at >= offset + length) break;
      if (at + d.size <= offset || at + d.size > v.byteLength) continue;
      out.push({
        struct: d.name,
        offset: at,
        fields: d.fields.map((f) => decodeField(v, at, f, id, fotRows, names)),
      });
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Decode one field of a typed record at `at`. */
function decodeField(
  v: DataView,
  at: number,
  f: LayoutField,
  self: ObjID,
  fotRows: () => FotRow[],
  names: Map<ObjID, string[]>,
): RecordField {
  const o = at + f.offset;
  const out: RecordField = { name: f.name, type: f.type, offset: o, size: f.size, value: null };
  if (o + f.size > v.byteLength) return out;
  const t = f.type;
  switch (t) {
    case "u8":
      out.value = v.getUint8(o);
      break;
    case "i8":
      out.value = v.getInt8(o);
      break;
    case "u16":
      out.value = v.getUint16(o, true);
      break;
    case "i16":
      out.value = v.getInt16(o, true);
      break;
    case "u32":
      out.value = v.getUint32(o, true);
      break;
    case "i32":
      out.value = v.getInt32(o, true);
      break;
    case "u64":
      out.value = v.getBigUint64(o, true).toString();
      break;
    case "i64":
      out.value = v.getBigInt64(o, true).toString();
      break;
    case "f32":
      out.value = v.getFloat32(o, true);
      break;
    case "f64":
      out.value = v.getFloat64(o, true);
      break;
    case "bool":
      out.value = v.getUint8(o) !== 0 ? "true" : "false";
      break;
    case "ptr": {
      const lo = v.getUint32(o, true), hi = v.getUint32(o + 4, true);
      const offset = (hi & 0xffff) * 4294967296 + lo;
      const index = hi >>> 16;
      const raw = hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
      let target: ObjID | null = null;
      if (offset !== 0) {
        if (index === 0) target = self;
        else {
          const e = fotRows().find((r) => r.index === index);
          const t = e?.target ?? e?.resolved ?? null;
          target = t === null ? null : BigInt(`0x${t}`);
        }
      }
      out.value = offset === 0 ? "null" : `fot ${index} + ${offset}`;
      out.ptr = {
        raw,
        fot: index,
        offset,
        target: target === null ? null : formatId(target),
        targetName: target === null ? null : names.get(target)?.[0] ?? null,
        null: offset === 0,
      };
      break;
    }
    default: {
      const b = new Uint8Array(v.buffer, v.byteOffset + o, f.size);
      if (t.startsWith("string")) {
        // UTF-8, NUL-padded to the field's size (libtwz's `string(N)`).
        const end = b.indexOf(0);
        out.value = new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
      } else out.value = toHex(b);
    }
  }
  return out;
}

/** A codec by the name collection headers record. */
function codecNamed(name: string): Codec<unknown> {
  const c = (codec as Record<string, Codec<unknown>>)[name];
  if (c === undefined) {
    throw new TwzError(ErrorCode.ObjectDamaged, `unknown codec "${name}"`);
  }
  return c;
}

/** A collection key or value as text. */
function show(x: unknown): string {
  if (typeof x === "string") return x;
  if (typeof x === "number" || typeof x === "bigint") return String(x);
  if (x instanceof Uint8Array) return toHex(x);
  if (x !== null && typeof x === "object" && "id" in x && "offset" in x) {
    const r = x as ObjRef;
    return `${formatId(r.id)}+${r.offset}`;
  }
  return String(x);
}

/** Map a libtwz or kernel failure to the explorer's status, one line. */
export function asExplorerError(error: unknown): Error {
  if (error instanceof ExplorerError) return error;
  if (error instanceof TwzError) {
    const line = firstLine(error);
    switch (error.code) {
      case ErrorCode.ObjectNotFound:
      case ErrorCode.NameNotFound:
        return new ExplorerError(404, line);
      case ErrorCode.InvalidArgument:
        return new ExplorerError(400, line);
      case ErrorCode.AccessDenied:
      case ErrorCode.ReadOnly:
        return new ExplorerError(403, line);
      case ErrorCode.ObjectDamaged:
        return new ExplorerError(422, line);
    }
    return error;
  }
  if (error instanceof TypeError || error instanceof RangeError || error instanceof URIError) {
    return new ExplorerError(400, firstLine(error));
  }
  return error instanceof Error ? error : new Error(String(error));
}

/** An error's message, first line. */
function firstLine(error: unknown): string {
  const m = error instanceof Error ? error.message : String(error);
  return m.split("\n")[0]!.trim();
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Two hex digits per byte. */
function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!];
  return s;
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function cmpId(a: ObjID, b: ObjID): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** FNV-1a style mixing of a 32-bit word. */
function mix(h: number, x: number): number {
  h = Math.imul(h ^ (x & 0xffff), 0x01000193);
  return Math.imul(h ^ (x >>> 16), 0x01000193);
}

/** A short hash of text or bytes. */
function hash(x: string | Uint8Array): string {
  let h = 0x811c9dc5;
  if (typeof x === "string") { for (let i = 0; i < x.length; i++) h = mix(h, x.charCodeAt(i)); }
  else {
    const n = x.length - (x.length % 4);
    const v = new DataView(x.buffer, x.byteOffset, x.byteLength);
    for (let i = 0; i < n; i += 4) h = mix(h, v.getUint32(i, true));
    for (let i = n; i < x.length; i++) h = mix(h, x[i]!);
  }
  return (h >>> 0).toString(16);
}

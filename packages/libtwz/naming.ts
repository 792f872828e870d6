/**
 * The naming service: hierarchical names (`/a/b/c`) bound to object IDs,
 * kept in persistent directory objects, in user space. The root directory's
 * ID is stored in the kernel's root object, so every boot (and every process)
 * finds the same names.
 *
 * Directory object layout (after the object's base, see `@twz/kernel/abi`):
 *
 * ```text
 *  base + 0    header (64 bytes): magic "TDIR", version, capacity, generation
 *  base + 64   entry 0 (128 bytes): state u32 | kind u16 | name length u16 |
 *              ID (16 bytes) | name (up to 104 UTF-8 bytes)
 *  base + 192  entry 1 ...
 * ```
 *
 * Crash consistency: a bind fills a free entry (its state word still 0),
 * persists it, then publishes it with one aligned 4-byte store of the state
 * word and persists that; an unbind is one such store. So after a crash a
 * name is either bound to its full entry or not bound at all. A rename binds
 * the new name before unbinding the old one: a crash between the two leaves
 * both names (never neither). The root directory's `generation` changes on
 * every change anywhere in the tree; caches (name-based pointers) compare it.
 *
 * The global namespace: on a node of a cluster (docs/GLOBAL.md), `/global`
 * and the names under it are the cluster's shared directory tree, not
 * local directories: `lookup`, `resolve`, `exists`, `bind`, `unbind`,
 * `mkdir`, `list`, `walk` and `rename` (within it) go to the kernel port's
 * `global` call, and `list("/")` shows `global` as a directory. A global
 * directory names no object (its ID reads 0). On a system that is not a
 * node they throw `TwzError` `NotSupported` (`NOT_IN_CLUSTER`); a rename
 * between the local and the global namespace is refused.
 *
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * twz.naming.mkdir("/home/alice", { parents: true });
 * twz.naming.bind("/home/alice/notes", obj.id);
 * console.log(twz.naming.resolve("/home/alice/notes") === obj.id); // true
 * console.log(twz.naming.list("/home/alice").map((b) => b.name)); // ["notes"]
 * twz.close();
 * ```
 *
 * @module
 */
import { closedError } from "./_layout_accessor.ts";
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  type GlobalEntry,
  type KernelPort,
  type Mapping,
  META_OFFSET,
  MetaField,
  MetaFlags,
  NOT_IN_CLUSTER,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  readId,
  TwzError,
  writeId,
} from "@twz/kernel/abi";
import type { NameResolver, TwzObject } from "./object.ts";
import {
  BOUND,
  DIR_MAGIC,
  DIR_SIZE,
  DIR_VERSION,
  dirCapacityOf,
  dirProblem,
  E_ID,
  E_KIND,
  E_LEN,
  E_NAME,
  E_STATE,
  ENTRY,
  H_CAPACITY,
  H_GENERATION,
  H_MAGIC,
  H_VERSION,
  HEADER,
  KIND_DIR,
  KIND_OBJECT,
  MAX_NAME_BYTES,
  plausibleCapacity,
  R_MAGIC,
  readRootRecord,
  type RootRecord,
  writeRootMeta,
  writeRootRecord,
} from "./_naming_format.ts";

export { MAX_NAME_BYTES };

/** What the naming service needs from a session. @internal */
export interface NamingSession {
  /** The kernel port of the system the directories live in. */
  readonly port: KernelPort;
  /** A (cached) handle on an existing object, mapped writable or not. */
  handle(id: ObjID, writable: boolean): TwzObject;
  /** `handle`, read-only when a writable one is refused. */
  _handleBest(id: ObjID, writable: boolean): TwzObject;
  /** Create an initialized libtwz object (meta-info written and persisted). */
  _createRaw(spec: { size: number; flags: number; fotEntries: number }): TwzObject;
}

/** A directory entry. */
export interface Binding {
  /** The last path component. */
  name: string;
  /** The object it names. */
  id: ObjID;
  /** `"object"` or `"directory"`. */
  kind: "object" | "directory";
}

/** A binding with its full path, as {@linkcode Naming.walk} yields it. */
export interface PathBinding extends Binding {
  /** The full path, like `/a/b` (the name is its last component). */
  path: string;
}

/** Options for {@linkcode Naming.unbindDangling}. */
export interface UnbindDanglingOptions {
  /**
   * Called with each path right after it was unbound (say, to report it as
   * it happens: a power failure part way leaves what was reported unbound).
   */
  onUnbind?: ((path: string) => void) | undefined;
}

/** Options for {@linkcode Naming.bind} and {@linkcode Naming.mkdir}. */
export interface BindOptions {
  /** Create missing parent directories. @default {false} */
  parents?: boolean;
  /**
   * Allow binding a volatile object (`bind` only). Such a name dangles once
   * the object is gone (after a crash or reboot) until the caller rebinds it:
   * for names every boot binds again, as the system's `/dev` devices. A
   * dangling name is what `twz fsck --deep` warns about and
   * {@linkcode Naming.unbindDangling} removes.
   * @default {false}
   */
  volatile?: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Split and check a path. Leading `/` is optional; `/` alone is the root.
 *
 * @throws {TwzError} `InvalidArgument` for an empty component, `.`, `..`, a
 * NUL, or a component longer than {@linkcode MAX_NAME_BYTES}.
 */
function splitPath(path: string): string[] {
  if (typeof path !== "string" || path.length === 0) {
    throw new TwzError(ErrorCode.InvalidArgument, "A name cannot be empty");
  }
  const trimmed = path.startsWith("/") ? path.slice(1) : path;
  if (trimmed === "") return [];
  const parts = (trimmed.endsWith("/") ? trimmed.slice(0, -1) : trimmed).split("/");
  for (const p of parts) {
    if (p === "" || p === "." || p === ".." || p.includes("\0")) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `"${path}" is not a valid name (bad component "${p}")`,
      );
    }
    if (enc.encode(p).length > MAX_NAME_BYTES) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Name component "${p}" is longer than ${MAX_NAME_BYTES} UTF-8 bytes`,
      );
    }
  }
  return parts;
}

/** Bindings in name order (code unit order, as `list` has always sorted). */
function byName(x: Binding, y: Binding): number {
  return x.name < y.name ? -1 : x.name > y.name ? 1 : 0;
}

function join(parts: string[]): string {
  return "/" + parts.join("/");
}

/** The first component of a global name (`/global/…`). */
const GLOBAL = "global";

/**
 * The global namespace's path for split path `parts` (`/global` itself:
 * `/`), or `null` when the path is a local one.
 */
function globalOf(parts: string[]): string | null {
  return parts[0] === GLOBAL ? join(parts.slice(1)) : null;
}

/** A global directory entry as a {@linkcode Binding}. */
function bindingOf(e: GlobalEntry): Binding {
  return {
    name: e.name,
    id: e.kind === "dir" ? 0n : e.id,
    kind: e.kind === "dir" ? "directory" : "object",
  };
}

/** The error for a damaged directory. */
function damagedDir(path: string, id: ObjID, problem: string): TwzError {
  return new TwzError(
    ErrorCode.ObjectDamaged,
    `Naming directory ${path} in ${formatId(id)}: ${problem}`,
  );
}

/** A directory object, read and written in place; its header checked when made. */
class Dir {
  /**
   * @throws {TwzError} `ObjectDamaged` when the header is damaged.
   */
  constructor(readonly obj: TwzObject, readonly path = "/") {
    const problem = dirProblem(obj.view, obj.size);
    if (problem !== undefined) throw damagedDir(path, obj.id, problem);
  }
  get capacity(): number {
    // Checked again: the header may have changed since (a grow publishes it).
    const cap = this.obj.view.getUint32(BASE_OFFSET + H_CAPACITY, true);
    const size = this.obj.size;
    if (cap !== dirCapacityOf(size) && !plausibleCapacity(cap, size)) {
      throw damagedDir(
        this.path,
        this.obj.id,
        `capacity ${cap} entries, but its ${size} bytes make ${dirCapacityOf(size)}`,
      );
    }
    return cap;
  }
  #at(i: number): number {
    return BASE_OFFSET + HEADER + i * ENTRY;
  }
  /** The kind of the bound entry at `at`, checked with its name length. */
  #kind(at: number, slot: number): number {
    const v = this.obj.view;
    const kind = v.getUint16(at + E_KIND, true);
    const len = v.getUint16(at + E_LEN, true);
    if ((kind !== KIND_OBJECT && kind !== KIND_DIR) || len < 1 || len > MAX_NAME_BYTES) {
      throw damagedDir(
        this.path,
        this.obj.id,
        `entry ${slot} is damaged (kind ${kind}, name length ${len})`,
      );
    }
    return kind;
  }
  *entries(): Generator<{ slot: number; binding: Binding }> {
    const v = this.obj.view;
    const b = this.obj.bytes;
    const cap = this.capacity;
    for (let i = 0; i < cap; i++) {
      const at = this.#at(i);
      if (v.getUint32(at + E_STATE, true) !== BOUND) continue;
      const kind = this.#kind(at, i);
      const len = v.getUint16(at + E_LEN, true);
      yield {
        slot: i,
        binding: {
          name: dec.decode(b.slice(at + E_NAME, at + E_NAME + len)),
          id: readId(v, at + E_ID),
          kind: kind === KIND_DIR ? "directory" : "object",
        },
      };
    }
  }
  find(name: string): { slot: number; binding: Binding } | undefined {
    const want = enc.encode(name);
    const v = this.obj.view;
    const b = this.obj.bytes;
    const cap = this.capacity;
    outer: for (let i = 0; i < cap; i++) {
      const at = this.#at(i);
      if (
        v.getUint32(at + E_STATE, true) !== BOUND || v.getUint16(at + E_LEN, true) !== want.length
      ) continue;
      for (let k = 0; k < want.length; k++) if (b[at + E_NAME + k] !== want[k]) continue outer;
      return {
        slot: i,
        binding: {
          name,
          id: readId(v, at + E_ID),
          kind: this.#kind(at, i) === KIND_DIR ? "directory" : "object",
        },
      };
    }
    return undefined;
  }
  /** Bind atomically: fill a free entry, persist, publish with one aligned store, persist. */
  insert(name: string, id: ObjID, kind: number): void {
    let cap = this.capacity;
    const fits = dirCapacityOf(this.obj.size);
    if (cap < fits) {
      // A grow a crash cut short: the object was doubled but the capacity
      // not published. The entries past it are the grow's zeroed bytes.
      cap = fits;
      this.obj.view.setUint32(BASE_OFFSET + H_CAPACITY, cap, true);
      this.obj.persist(BASE_OFFSET + H_CAPACITY, 4);
    }
    const v = this.obj.view;
    let slot = -1;
    for (let i = 0; i < cap; i++) {
      if (v.getUint32(this.#at(i) + E_STATE, true) !== BOUND) {
        slot = i;
        break;
      }
    }
    if (slot < 0) {
      // Full: grow (new bytes read as zero, i.e. free entries), then publish the capacity.
      const size = this.obj.size * 2;
      this.obj.grow(size);
      slot = cap;
      cap = Math.floor((size - BASE_OFFSET - HEADER) / ENTRY);
      this.obj.view.setUint32(BASE_OFFSET + H_CAPACITY, cap, true);
      this.obj.persist(BASE_OFFSET + H_CAPACITY, 4);
    }
    const at = this.#at(slot);
    const data = enc.encode(name);
    const w = this.obj.view;
    const b = this.obj.bytes;
    b.fill(0, at + 4, at + ENTRY);
    w.setUint16(at + E_KIND, kind, true);
    w.setUint16(at + E_LEN, data.length, true);
    writeId(w, at + E_ID, id);
    b.set(data, at + E_NAME);
    this.obj.persist(at, ENTRY);
    w.setUint32(at + E_STATE, BOUND, true);
    this.obj.persist(at + E_STATE, 4);
  }
  remove(slot: number): void {
    const at = this.#at(slot);
    this.obj.view.setUint32(at + E_STATE, 0, true);
    this.obj.persist(at + E_STATE, 4);
  }
  isEmpty(): boolean {
    return this.entries().next().done === true;
  }
}

/**
 * The naming service of one session. Get it as `twz.naming`.
 */
export class Naming {
  readonly #session: NamingSession;
  #root: TwzObject | undefined;
  #cache = new Map<string, Binding>();
  #cacheGen = -1;
  /** The session was closed: every use throws. */
  #closed = false;
  /** A name-based pointer named a global name: resolutions are not cached. */
  #globalResolved = false;

  /** @internal Use `twz.naming`. */
  constructor(session: NamingSession) {
    this.#session = session;
  }

  /** Whether handles are mapped writable (not on a read-only kernel). */
  get #w(): boolean {
    return !this.#session.port.readOnly;
  }

  /** @throws {TwzError} `ReadOnly` on a read-only kernel. */
  #needWritable(what: string): void {
    if (this.#session.port.readOnly) {
      throw new TwzError(ErrorCode.ReadOnly, `the image is open read-only: cannot ${what}`);
    }
  }

  /** Whether the system is a node of a cluster (asked each time: naming's global calls are rare). */
  #isNode(): boolean {
    const node = this.#session.port.info().node;
    return typeof node === "string" && node !== "";
  }

  /** @throws {TwzError} `NotSupported` on a system that is not a node. */
  #needNode(): void {
    if (!this.#isNode()) throw new TwzError(ErrorCode.NotSupported, NOT_IN_CLUSTER);
  }

  /** What a global path is bound to, or `undefined` (`gpath` without the `/global` prefix). */
  #globalLookup(gpath: string): Binding | undefined {
    const port = this.#session.port;
    if (gpath === "/") {
      this.#needNode();
      return { name: GLOBAL, id: 0n, kind: "directory" };
    }
    const id = port.global("lookup", { path: gpath });
    const name = gpath.slice(gpath.lastIndexOf("/") + 1);
    if (id !== null && id !== 0n) return { name, id, kind: "object" };
    if (id === 0n) return { name, id: 0n, kind: "directory" };
    // Not an object binding: a directory, when its parent lists it as one.
    const parent = gpath.slice(0, gpath.lastIndexOf("/")) || "/";
    let entries: GlobalEntry[];
    try {
      entries = port.global("list", { path: parent });
    } catch (e) {
      if (e instanceof TwzError && e.code === ErrorCode.NameNotFound) return undefined;
      throw e;
    }
    const found = entries.find((e) => e.name === name);
    return found === undefined ? undefined : bindingOf(found);
  }

  /** The root directory's handle (created on first use of an image). */
  get #rootDir(): TwzObject {
    const root = this.#findRoot();
    if (root === undefined) this.#needWritable("make the naming root directory");
    return root!;
  }

  /**
   * The root directory's handle, made on first use of an image; on a
   * read-only kernel, `undefined` when the image has no namespace yet (a
   * first use, or one a crash cut short, would write it).
   */
  #findRoot(): TwzObject | undefined {
    if (this.#root && this.#root.bytes.length > 0) return this.#root;
    const port = this.#session.port;
    const w = this.#w;
    // A read-only kernel cannot make the root object: without one there is
    // no namespace yet.
    if (!w && port.rootObjectId() === 0n) return undefined;
    const rootObj = this.#session._handleBest(port.rootObject(), w);
    const v = rootObj.view;
    const rec = readRootRecord(v);
    let dirId: ObjID;
    const torn = this.#tornFirstUse(v, rec);
    if (rec.state === "blank" || torn === "new") this.#refuseLostNamespace(rootObj.id);
    if (rec.state === "valid") dirId = rec.dir;
    else if (!w && (rec.state === "blank" || torn !== false)) return undefined;
    else if (rec.state === "blank" || torn !== false) {
      // First use: make the root directory (or take the empty one a first use
      // cut short by a crash made), give the root object its meta-info, then
      // publish the record (its magic last).
      const dir = torn === "dir" && rec.state === "damaged" && rec.dir !== undefined
        ? this.#session.handle(rec.dir, true)
        : this.#newDir();
      if (v.getUint32(META_OFFSET + MetaField.magic, true) !== OBJECT_MAGIC) writeRootMeta(rootObj);
      writeRootRecord(rootObj, dir.id);
      dirId = dir.id;
    } else {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `The naming root record in the kernel root object ${
          formatId(rootObj.id)
        } is damaged: ${rec.problem} (twz fsck --deep --repair finds the root directory again)`,
      );
    }
    if (!port.exists(dirId)) {
      throw new TwzError(
        ErrorCode.ObjectDamaged,
        `The naming root record in the kernel root object ${
          formatId(rootObj.id)
        } names root directory ${formatId(dirId)}, which is missing`,
      );
    }
    const root = this.#session._handleBest(dirId, w);
    const problem = dirProblem(root.view, root.size);
    if (problem !== undefined) throw damagedDir("/", dirId, problem);
    this.#root = root;
    return this.#root;
  }

  /**
   * Before a first use makes a new, empty namespace: refuse when the image
   * already holds a directory with names in it. Then the root record was
   * lost (say, the kernel's root object was replaced), and a fresh root
   * would hide every name; fsck's deep repair finds the old root again. One
   * scan of the object table, once per image (the record is blank only
   * until the first use writes it).
   *
   * @throws {TwzError} `ObjectDamaged`.
   */
  #refuseLostNamespace(rootObj: ObjID): void {
    const port = this.#session.port;
    for (const stat of port.list()) {
      if (stat.lifetime !== "persistent" || !(stat.prot & Prot.Read) || stat.id === rootObj) {
        continue;
      }
      let m: Mapping;
      try {
        m = port.map(stat.id, Prot.Read);
      } catch (e) {
        if (e instanceof TwzError && e.code === ErrorCode.ObjectDamaged) continue;
        throw e;
      }
      try {
        this.#refuseDirectory(rootObj, stat.id, m.view);
      } finally {
        port.unmap(m);
      }
    }
  }

  /** {@linkcode Naming.#refuseLostNamespace} for one object: throw if it is a directory in use. */
  #refuseDirectory(rootObj: ObjID, id: ObjID, v: DataView): void {
    if (
      v.byteLength < BASE_OFFSET + HEADER ||
      v.getUint32(META_OFFSET + MetaField.magic, true) !== OBJECT_MAGIC ||
      !(v.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Directory)
    ) return;
    // Every entry its size holds (its header may be damaged too).
    const cap = dirCapacityOf(v.byteLength);
    for (let i = 0; i < cap; i++) {
      if (v.getUint32(BASE_OFFSET + HEADER + i * ENTRY + E_STATE, true) === BOUND) {
        throw new TwzError(
          ErrorCode.ObjectDamaged,
          `The kernel root object ${formatId(rootObj)} holds no naming root record, but directory ${
            formatId(id)
          } holds names: the record was lost (twz fsck --deep --repair finds the root directory again)`,
        );
      }
    }
  }

  /**
   * Whether a record without its magic is a first use cut short by a crash
   * (the record is written before its magic is published): `"dir"` when it
   * names an existing, empty directory that nothing has changed yet (take
   * it); `"new"` when the crash came before the record's bytes were durable,
   * so it names no existing object (torn: part of the ID written) — make a
   * new root, once no directory holding names says the record was lost
   * instead. A record whose directory holds names lost its magic to damage.
   */
  #tornFirstUse(v: DataView, rec: RootRecord): "dir" | "new" | false {
    if (rec.state !== "damaged") return false;
    if (v.getUint32(BASE_OFFSET + R_MAGIC, true) !== 0) return false;
    if (rec.dir === undefined || !this.#session.port.exists(rec.dir)) return "new";
    const dir = this.#session._handleBest(rec.dir, this.#w);
    if (dirProblem(dir.view, dir.size) !== undefined) return false;
    if (dir.view.getUint32(BASE_OFFSET + H_GENERATION, true) !== 0) return false;
    return new Dir(dir).isEmpty() ? "dir" : false;
  }

  #newDir(): TwzObject {
    const obj = this.#session._createRaw({
      size: DIR_SIZE,
      flags: MetaFlags.Directory,
      fotEntries: 0,
    });
    const v = obj.view;
    v.setUint32(BASE_OFFSET + H_VERSION, DIR_VERSION, true);
    v.setUint32(
      BASE_OFFSET + H_CAPACITY,
      Math.floor((obj.size - BASE_OFFSET - HEADER) / ENTRY),
      true,
    );
    obj.persist(BASE_OFFSET, HEADER);
    v.setUint32(BASE_OFFSET + H_MAGIC, DIR_MAGIC, true);
    obj.persist(BASE_OFFSET, 4);
    return obj;
  }

  /**
   * A number that changes on every bind, unbind and rename (persistent, in
   * the root directory): caches of resolutions compare it.
   */
  get generation(): number {
    const root = this.#findRoot();
    return root === undefined ? 0 : root.view.getUint32(BASE_OFFSET + H_GENERATION, true);
  }

  #bump(): void {
    const root = this.#rootDir;
    const v = root.view;
    v.setUint32(
      BASE_OFFSET + H_GENERATION,
      (v.getUint32(BASE_OFFSET + H_GENERATION, true) + 1) >>> 0,
      true,
    );
    root.persist(BASE_OFFSET + H_GENERATION, 4);
  }

  /** The ID of the root directory. */
  get rootId(): ObjID {
    if (this.#closed) throw closedError();
    return this.#rootDir.id;
  }

  #dir(id: ObjID, path: string[]): Dir {
    if (!this.#session.port.exists(id)) {
      throw new TwzError(
        ErrorCode.ObjectNotFound,
        `Directory ${join(path)} (${formatId(id)}) no longer exists`,
      );
    }
    const obj = this.#session._handleBest(id, this.#w);
    return new Dir(obj, join(path));
  }

  /** Walk to the directory holding `parts`' last component. */
  #parent(parts: string[], create: boolean): Dir {
    let dir = new Dir(this.#rootDir);
    for (let i = 0; i < parts.length - 1; i++) {
      const found = dir.find(parts[i]!);
      if (!found) {
        if (!create) {
          throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(parts.slice(0, i + 1))}`);
        }
        const sub = this.#newDir();
        dir.insert(parts[i]!, sub.id, KIND_DIR);
        this.#bump();
        dir = new Dir(sub);
        continue;
      }
      if (found.binding.kind !== "directory") {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `${join(parts.slice(0, i + 1))} is not a directory`,
        );
      }
      dir = this.#dir(found.binding.id, parts.slice(0, i + 1));
    }
    return dir;
  }

  /**
   * What a name is bound to, or `undefined`.
   *
   * @throws {TwzError} `InvalidArgument` for a malformed path or a path
   * through a non-directory.
   */
  lookup(path: string): Binding | undefined {
    if (this.#closed) throw closedError();
    const parts = splitPath(path);
    if (parts.length === 0) return { name: "/", id: this.#rootDir.id, kind: "directory" };
    const g = globalOf(parts);
    if (g !== null) return this.#globalLookup(g);
    const root = this.#findRoot();
    if (root === undefined) return undefined; // read-only, no namespace yet
    const gen = root.view.getUint32(BASE_OFFSET + H_GENERATION, true);
    if (gen !== this.#cacheGen) {
      this.#cache.clear();
      this.#cacheGen = gen;
    }
    const key = join(parts);
    const hit = this.#cache.get(key);
    if (hit) return hit;
    let dir: Dir;
    try {
      dir = this.#parent(parts, false);
    } catch (e) {
      if (e instanceof TwzError && e.code === ErrorCode.NameNotFound) return undefined;
      throw e;
    }
    const found = dir.find(parts[parts.length - 1]!)?.binding;
    if (found) this.#cache.set(key, found);
    return found;
  }

  /**
   * The object ID a name is bound to (`/` is the root directory).
   *
   * @throws {TwzError} `NameNotFound`; `InvalidArgument` for a malformed path.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
   * const obj = twz.create({ name: "/etc/motd", size: 1024 });
   * console.log(twz.naming.resolve("/etc/motd") === obj.id); // true
   * twz.close();
   * ```
   */
  resolve(path: string): ObjID {
    if (this.#closed) throw closedError();
    const b = this.lookup(path);
    if (!b) throw new TwzError(ErrorCode.NameNotFound, `No object is named ${path}`);
    if (b.kind === "directory" && b.id === 0n) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `${path} is a directory of the global namespace: it names no object`,
      );
    }
    return b.id;
  }

  /** Whether a name is bound. */
  exists(path: string): boolean {
    if (this.#closed) throw closedError();
    return this.lookup(path) !== undefined;
  }

  /**
   * Bind `path` to object `id` (atomically: see the module doc).
   *
   * @throws {TwzError} `NameExists`, `NameNotFound` (missing parent without
   * `parents`), `ObjectNotFound` (no such object), `InvalidArgument` (bad
   * path, `id` is a directory object: use {@linkcode Naming.mkdir} / rename,
   * or `id` is volatile without `volatile: true`).
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
   * const obj = twz.create({ size: 1024 });
   * twz.naming.bind("/tmp/scratch", obj.id, { parents: true });
   * twz.close();
   * ```
   */
  bind(path: string, id: ObjID, options: BindOptions = {}): void {
    if (this.#closed) throw closedError();
    this.#needWritable(`bind ${path}`);
    const parts = splitPath(path);
    if (parts.length === 0) throw new TwzError(ErrorCode.NameExists, "/ is the root directory");
    const g = globalOf(parts);
    if (g !== null) {
      if (g === "/") throw new TwzError(ErrorCode.NameExists, "/global is the global root");
      this.#session.port.global("bind", {
        path: g,
        id,
        ...(options.parents ? { parents: true } : {}),
      });
      return;
    }
    if (!this.#session.port.exists(id)) {
      throw new TwzError(
        ErrorCode.ObjectNotFound,
        `Cannot bind ${path}: no object ${formatId(id)}`,
      );
    }
    const stat = this.#session.port.stat(id);
    if (stat.lifetime === "volatile" && options.volatile !== true) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Cannot bind ${path} to volatile object ${
          formatId(id)
        }: the name would dangle after a crash`,
      );
    }
    // Directories are made read-write by libtwz: an object that cannot be
    // read is not one (and need not be mapped to name it).
    if ((stat.prot & Prot.Read) !== 0) {
      const target = this.#session.handle(id, false);
      if (
        target.hasMeta &&
        (target.view.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Directory)
      ) {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `Cannot bind ${path} to directory object ${formatId(id)}: use mkdir or rename`,
        );
      }
    }
    const dir = this.#parent(parts, options.parents ?? false);
    const name = parts[parts.length - 1]!;
    if (dir.find(name)) throw new TwzError(ErrorCode.NameExists, `${join(parts)} is already bound`);
    dir.insert(name, id, KIND_OBJECT);
    this.#bump();
  }

  /**
   * Make a directory.
   *
   * @returns The new directory object's ID (0 for a global directory: it
   * is no object).
   * @throws {TwzError} `NameExists`, `NameNotFound` (missing parent without `parents`).
   */
  mkdir(path: string, options: BindOptions = {}): ObjID {
    if (this.#closed) throw closedError();
    this.#needWritable(`make directory ${path}`);
    const parts = splitPath(path);
    if (parts.length === 0) throw new TwzError(ErrorCode.NameExists, "/ already exists");
    const g = globalOf(parts);
    if (g !== null) {
      if (g === "/") {
        this.#needNode();
        if (options.parents) return 0n;
        throw new TwzError(ErrorCode.NameExists, "/global already exists");
      }
      this.#session.port.global("mkdir", {
        path: g,
        ...(options.parents ? { parents: true } : {}),
      });
      return 0n;
    }
    const dir = this.#parent(parts, options.parents ?? false);
    const name = parts[parts.length - 1]!;
    const found = dir.find(name);
    if (found) {
      if (options.parents && found.binding.kind === "directory") return found.binding.id;
      throw new TwzError(ErrorCode.NameExists, `${join(parts)} is already bound`);
    }
    const sub = this.#newDir();
    dir.insert(name, sub.id, KIND_DIR);
    this.#bump();
    return sub.id;
  }

  /**
   * Remove a name (the object stays). An empty directory is removed and its
   * directory object deleted; a non-empty one is refused. A directory that
   * another entry still names (a crash inside a rename leaves both names) is
   * only unbound, empty or not: its object stays for the other name.
   *
   * @returns The ID the name was bound to.
   * @throws {TwzError} `NameNotFound`, `InvalidArgument` (the root, or a
   * non-empty directory).
   */
  unbind(path: string): ObjID {
    if (this.#closed) throw closedError();
    this.#needWritable(`unbind ${path}`);
    const parts = splitPath(path);
    if (parts.length === 0) {
      throw new TwzError(ErrorCode.InvalidArgument, "Cannot unbind the root directory");
    }
    const g = globalOf(parts);
    if (g !== null) {
      if (g === "/") {
        throw new TwzError(ErrorCode.InvalidArgument, "Cannot unbind the global root /global");
      }
      return this.#session.port.global("unbind", { path: g });
    }
    const dir = this.#parent(parts, false);
    const found = dir.find(parts[parts.length - 1]!);
    if (!found) throw new TwzError(ErrorCode.NameNotFound, `No object is named ${join(parts)}`);
    let sub: Dir | undefined;
    if (
      found.binding.kind === "directory" && this.#session.port.exists(found.binding.id) &&
      !this.#namedElsewhere(found.binding.id, dir, found.slot)
    ) {
      sub = this.#dir(found.binding.id, parts);
      if (!sub.isEmpty()) {
        throw new TwzError(ErrorCode.InvalidArgument, `Directory ${join(parts)} is not empty`);
      }
    }
    dir.remove(found.slot);
    this.#bump();
    if (sub) this.#session.port.delete(sub.obj.id);
    return found.binding.id;
  }

  /**
   * Whether an entry other than `slot` of `dir` names directory `id`: a walk
   * of the whole tree (directories are few; unbinding one is rare).
   */
  #namedElsewhere(id: ObjID, dir: Dir, slot: number): boolean {
    const port = this.#session.port;
    const root = this.#rootDir;
    const seen = new Set<ObjID>([root.id]);
    const todo: Dir[] = [new Dir(root)];
    while (todo.length > 0) {
      const d = todo.pop()!;
      for (const e of d.entries()) {
        if (e.binding.kind !== "directory") continue;
        const other = e.binding.id;
        if (other === id && !(d.obj.id === dir.obj.id && e.slot === slot)) return true;
        if (seen.has(other) || !port.exists(other)) continue;
        seen.add(other);
        const obj = this.#session.handle(other, true);
        if (obj.view.getUint32(BASE_OFFSET + H_MAGIC, true) === DIR_MAGIC) todo.push(new Dir(obj));
      }
    }
    return false;
  }

  /**
   * Move a binding to a new name (files and directories). The new name is
   * bound before the old one is removed.
   *
   * @throws {TwzError} `NameNotFound` (no `from`, or missing parent of `to`),
   * `NameExists` (`to` is bound), `InvalidArgument` (a directory into itself).
   */
  rename(from: string, to: string, options: BindOptions = {}): void {
    if (this.#closed) throw closedError();
    this.#needWritable(`rename ${from}`);
    const a = splitPath(from);
    const b = splitPath(to);
    if (a.length === 0 || b.length === 0) {
      throw new TwzError(ErrorCode.InvalidArgument, "Cannot rename the root directory");
    }
    const ga = globalOf(a), gb = globalOf(b);
    if ((ga === null) !== (gb === null)) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Cannot rename ${join(a)} to ${
          join(b)
        }: between the local and the global namespace (bind the object under the new name instead)`,
      );
    }
    if (ga !== null && gb !== null) {
      this.#globalRename(ga, gb, join(a), options);
      return;
    }
    const src = this.#parent(a, false);
    const found = src.find(a[a.length - 1]!);
    if (!found) throw new TwzError(ErrorCode.NameNotFound, `No object is named ${join(a)}`);
    if (
      found.binding.kind === "directory" && b.length > a.length && join(b).startsWith(join(a) + "/")
    ) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Cannot move directory ${join(a)} into itself (${join(b)})`,
      );
    }
    const dst = this.#parent(b, options.parents ?? false);
    const name = b[b.length - 1]!;
    if (dst.find(name)) throw new TwzError(ErrorCode.NameExists, `${join(b)} is already bound`);
    dst.insert(name, found.binding.id, found.binding.kind === "directory" ? KIND_DIR : KIND_OBJECT);
    // Slots are entry indices: growing a directory (as insert may) only adds
    // entries after them, so the old name is still in `found.slot`.
    src.remove(found.slot);
    this.#bump();
  }

  /** `rename` within the global namespace: an object's name only (bound anew, then unbound). */
  #globalRename(from: string, to: string, shown: string, options: BindOptions): void {
    if (from === "/" || to === "/") {
      throw new TwzError(ErrorCode.InvalidArgument, "Cannot rename the global root /global");
    }
    const found = this.#globalLookup(from);
    if (found === undefined) {
      throw new TwzError(ErrorCode.NameNotFound, `No object is named ${shown}`);
    }
    if (found.kind === "directory") {
      throw new TwzError(
        ErrorCode.NotSupported,
        `Cannot rename global directory ${shown}: make the new one and bind its names there`,
      );
    }
    const port = this.#session.port;
    port.global("bind", { path: to, id: found.id, ...(options.parents ? { parents: true } : {}) });
    port.global("unbind", { path: from });
  }

  /**
   * @internal Bind `path` to `id` whatever it is — a directory object as a
   * directory entry (repair re-attaches found directories this way), missing
   * parents made. Kept when `path` already names `id`.
   *
   * @throws {TwzError} `NameExists` (bound to another object), `ObjectNotFound`.
   */
  _attach(path: string, id: ObjID): void {
    this.#needWritable(`bind ${path}`);
    const parts = splitPath(path);
    if (parts.length === 0) throw new TwzError(ErrorCode.NameExists, "/ is the root directory");
    const port = this.#session.port;
    if (!port.exists(id)) {
      throw new TwzError(
        ErrorCode.ObjectNotFound,
        `Cannot bind ${path}: no object ${formatId(id)}`,
      );
    }
    const dir = this.#parent(parts, true);
    const name = parts[parts.length - 1]!;
    const found = dir.find(name);
    if (found) {
      if (found.binding.id === id) return;
      throw new TwzError(ErrorCode.NameExists, `${join(parts)} is already bound`);
    }
    let kind = KIND_OBJECT;
    if (port.stat(id).prot & Prot.Read) {
      const target = this.#session.handle(id, false);
      if (
        target.hasMeta &&
        (target.view.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Directory) &&
        dirProblem(target.view, target.size) === undefined
      ) kind = KIND_DIR;
    }
    if (kind === KIND_OBJECT && port.stat(id).lifetime === "volatile") {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Cannot bind ${path} to volatile object ${
          formatId(id)
        }: the name would dangle after a crash`,
      );
    }
    dir.insert(name, id, kind);
    this.#bump();
  }

  /**
   * The bindings of a directory, sorted by name.
   *
   * @throws {TwzError} `NameNotFound`, `InvalidArgument` (not a directory).
   */
  list(path = "/"): Binding[] {
    if (this.#closed) throw closedError();
    const parts = splitPath(path);
    let dir: Dir;
    const g = globalOf(parts);
    if (g !== null) return this.#globalList(g, parts);
    if (parts.length === 0) {
      const root = this.#findRoot();
      if (root === undefined) return []; // read-only, no namespace yet
      dir = new Dir(root);
      const local = [...dir.entries()].map((e) => e.binding);
      // A node shows its cluster's namespace beside its own.
      if (!local.some((b) => b.name === GLOBAL) && this.#isNode()) {
        local.push({ name: GLOBAL, id: 0n, kind: "directory" });
      }
      return local.sort(byName);
    } else {
      const b = this.lookup(path);
      if (!b) throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(parts)}`);
      if (b.kind !== "directory") {
        throw new TwzError(ErrorCode.InvalidArgument, `${join(parts)} is not a directory`);
      }
      dir = this.#dir(b.id, parts);
    }
    return [...dir.entries()].map((e) => e.binding).sort(byName);
  }

  /** `list` of a global directory (`gpath` without the prefix). */
  #globalList(gpath: string, parts: string[]): Binding[] {
    if (gpath === "/") this.#needNode();
    try {
      return this.#session.port.global("list", { path: gpath }).map(bindingOf).sort(byName);
    } catch (e) {
      if (e instanceof TwzError && e.code === ErrorCode.NameNotFound) {
        throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(parts)}`, { cause: e });
      }
      throw e;
    }
  }

  /** `walk` below a global directory: depth first, as `walk` does. */
  *#globalWalk(parts: string[]): Generator<PathBinding> {
    for (const b of this.#globalList(join(parts.slice(1)), parts)) {
      const at = [...parts, b.name];
      yield { ...b, path: join(at) };
      if (b.kind === "directory") yield* this.#globalWalk(at);
    }
  }

  /**
   * Every binding under a directory (default the root), depth first: each
   * directory's bindings in name order, a directory's bindings right after
   * it. A directory whose object no longer exists is yielded but not
   * entered, and so is one that contains itself (damage: a cycle). Reads
   * only; a walk of the whole tree takes time in the number of names.
   *
   * @param path The directory to walk.
   * @returns The bindings, with their full paths.
   * @throws {TwzError} `NameNotFound` (no such directory), `InvalidArgument`
   * (not a directory), `ObjectDamaged` (a damaged directory on the way,
   * thrown when the walk reaches it).
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
   * twz.create({ name: "/a/b", size: 1024 });
   * console.log([...twz.naming.walk()].map((b) => b.path)); // ["/a", "/a/b"]
   * twz.close();
   * ```
   */
  *walk(path: string = "/"): Generator<PathBinding> {
    if (this.#closed) throw closedError();
    const parts = splitPath(path);
    let dir: Dir;
    if (globalOf(parts) !== null) {
      yield* this.#globalWalk(parts);
      return;
    }
    if (parts.length === 0) {
      const root = this.#findRoot();
      if (root === undefined) return; // read-only, no namespace yet
      dir = new Dir(root);
    } else {
      const b = this.lookup(path);
      if (!b) throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(parts)}`);
      if (b.kind !== "directory") {
        throw new TwzError(ErrorCode.InvalidArgument, `${join(parts)} is not a directory`);
      }
      dir = this.#dir(b.id, parts);
    }
    yield* this.#walkDir(dir, parts, new Set([dir.obj.id]));
  }

  /** `walk` below `dir`; `open` holds the directories being walked (a cycle is damage). */
  *#walkDir(dir: Dir, parts: string[], open: Set<ObjID>): Generator<PathBinding> {
    const port = this.#session.port;
    const bindings = [...dir.entries()].map((e) => e.binding).sort(byName);
    for (const b of bindings) {
      const at = [...parts, b.name];
      yield { name: b.name, id: b.id, kind: b.kind, path: join(at) };
      if (b.kind === "directory" && port.exists(b.id) && !open.has(b.id)) {
        open.add(b.id);
        yield* this.#walkDir(this.#dir(b.id, at), at, open);
        open.delete(b.id);
      }
    }
  }

  /**
   * Unbind every name whose object no longer exists: the names a deletion
   * leaves behind. Deleting an object deletes everything tied to it, and
   * neither the kernel nor a crash between a delete and its unbinds takes
   * names along; call this after deleting (the shell's `rm` does). Names
   * are unbound deepest and last-in-name-order first (the reverse of
   * {@linkcode Naming.walk}), each atomically; a name that cannot be
   * unbound (a damaged directory on its path) is left and skipped.
   *
   * @param options `onUnbind`, called after each unbind.
   * @returns The paths unbound, in the order they were unbound.
   * @throws {TwzError} `ReadOnly` on a read-only kernel; `ObjectDamaged`
   * when the walk meets a damaged directory (then nothing was unbound).
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
   * const obj = twz.create({ name: "/data", size: 1024 });
   * twz.naming.bind("/alias", obj.id);
   * twz.port.delete(obj.id); // the kernel leaves both names
   * console.log(twz.naming.unbindDangling()); // ["/data", "/alias"]
   * twz.close();
   * ```
   */
  unbindDangling(options: UnbindDanglingOptions = {}): string[] {
    if (this.#closed) throw closedError();
    this.#needWritable("unbind dangling names");
    const port = this.#session.port;
    const all = [...this.walk()];
    const unbound: string[] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      const b = all[i]!;
      if (port.exists(b.id)) continue;
      try {
        this.unbind(b.path);
      } catch (error) {
        if (error instanceof TwzError) continue;
        throw error;
      }
      unbound.push(b.path);
      options.onUnbind?.(b.path);
    }
    return unbound;
  }

  /**
   * The naming service as a {@linkcode NameResolver} (the default, `""`).
   * Resolutions are cached until a local name changes (the generation);
   * once a name-based pointer named a global name (`/global/…`, which
   * other nodes change), the session's resolutions are no longer cached:
   * each is looked up again.
   */
  get resolver(): NameResolver {
    return {
      resolve: (name) => {
        if (!this.#globalResolved && globalOf(splitPath(name)) !== null) {
          this.#globalResolved = true;
        }
        return this.resolve(name);
      },
      // NaN equals nothing: no cached resolution is used again.
      generation: () => this.#globalResolved ? NaN : this.generation,
    };
  }

  /** @internal Forget cached state (session closed). */
  _reset(closed = false): void {
    if (closed) this.#closed = true;
    this.#root = undefined;
    this.#cache.clear();
    this.#cacheGen = -1;
  }
}

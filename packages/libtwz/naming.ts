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
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  readId,
  TwzError,
  writeId,
} from "@twz/kernel/abi";
import type { NameResolver, TwzObject } from "./object.ts";

/** What the naming service needs from a session. @internal */
export interface NamingSession {
  readonly kernel: import("@twz/kernel").Kernel;
  handle(id: ObjID, writable: boolean): TwzObject;
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

/** Options for {@linkcode Naming.bind} and {@linkcode Naming.mkdir}. */
export interface BindOptions {
  /** Create missing parent directories. @default {false} */
  parents?: boolean;
}

const DIR_MAGIC = 0x52494454; // "TDIR"
const ROOT_MAGIC = 0x52575a54; // "TZWR"
const DIR_VERSION = 1;
const HEADER = 64;
const ENTRY = 128;
/** Longest path component, in UTF-8 bytes. */
export const MAX_NAME_BYTES = ENTRY - 24;
const DIR_SIZE = 16384;

const H_MAGIC = 0, H_VERSION = 4, H_CAPACITY = 8, H_GENERATION = 12;
const E_STATE = 0, E_KIND = 4, E_LEN = 6, E_ID = 8, E_NAME = 24;
const BOUND = 1;
const KIND_OBJECT = 1, KIND_DIR = 2;
/** Root record, at the base of the kernel's root object. */
const R_MAGIC = 0, R_VERSION = 4, R_NAMING = 16;

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Split and check a path. Leading `/` is optional; `/` alone is the root.
 *
 * @throws {TwzError} `InvalidArgument` for an empty component, `.`, `..`, a
 * NUL, or a component longer than {@linkcode MAX_NAME_BYTES}.
 */
export function splitPath(path: string): string[] {
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

function join(parts: string[]): string {
  return "/" + parts.join("/");
}

/** A directory object, read and written in place. */
class Dir {
  constructor(readonly obj: TwzObject) {}
  get capacity(): number {
    return this.obj.view.getUint32(BASE_OFFSET + H_CAPACITY, true);
  }
  #at(i: number): number {
    return BASE_OFFSET + HEADER + i * ENTRY;
  }
  *entries(): Generator<{ slot: number; binding: Binding }> {
    const v = this.obj.view;
    const b = this.obj.bytes;
    const cap = this.capacity;
    for (let i = 0; i < cap; i++) {
      const at = this.#at(i);
      if (v.getUint32(at + E_STATE, true) !== BOUND) continue;
      const len = v.getUint16(at + E_LEN, true);
      yield {
        slot: i,
        binding: {
          name: dec.decode(b.slice(at + E_NAME, at + E_NAME + len)),
          id: readId(v, at + E_ID),
          kind: v.getUint16(at + E_KIND, true) === KIND_DIR ? "directory" : "object",
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
          kind: v.getUint16(at + E_KIND, true) === KIND_DIR ? "directory" : "object",
        },
      };
    }
    return undefined;
  }
  /** Bind atomically: fill a free entry, persist, publish with one aligned store, persist. */
  insert(name: string, id: ObjID, kind: number): void {
    const v = this.obj.view;
    let cap = this.capacity;
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
  #root?: TwzObject;
  #cache = new Map<string, Binding>();
  #cacheGen = -1;

  /** @internal Use `twz.naming`. */
  constructor(session: NamingSession) {
    this.#session = session;
  }

  /** The root directory's handle (created on first use of an image). */
  get #rootDir(): TwzObject {
    if (this.#root && this.#root.bytes.length > 0) return this.#root;
    const kernel = this.#session.kernel;
    const rootObj = this.#session.handle(kernel.rootObject(), true);
    const v = rootObj.view;
    let dirId: ObjID;
    if (v.getUint32(BASE_OFFSET + R_MAGIC, true) === ROOT_MAGIC) {
      dirId = readId(v, BASE_OFFSET + R_NAMING);
    } else {
      // First use: make the root directory, record it, then publish the record.
      const dir = this.#newDir();
      writeId(v, BASE_OFFSET + R_NAMING, dir.id);
      v.setUint32(BASE_OFFSET + R_VERSION, 1, true);
      rootObj.persist(BASE_OFFSET, 64);
      if (v.getUint32(META_OFFSET + MetaField.magic, true) !== OBJECT_MAGIC) {
        v.setUint16(META_OFFSET + MetaField.version, 1, true);
        v.setUint16(META_OFFSET + MetaField.flags, MetaFlags.Root, true);
        v.setUint32(META_OFFSET + MetaField.createdSize, rootObj.size, true);
        v.setUint32(META_OFFSET + MetaField.fotOffset, rootObj.size, true);
        v.setUint32(META_OFFSET + MetaField.namesOffset, rootObj.size, true);
        rootObj.persist(META_OFFSET, 128);
        v.setUint32(META_OFFSET + MetaField.magic, OBJECT_MAGIC, true);
        rootObj.persist(META_OFFSET, 4);
      }
      v.setUint32(BASE_OFFSET + R_MAGIC, ROOT_MAGIC, true);
      rootObj.persist(BASE_OFFSET, 4);
      dirId = dir.id;
    }
    if (!kernel.exists(dirId)) {
      throw new TwzError(
        ErrorCode.ImageCorrupt,
        `The naming service's root directory ${formatId(dirId)} is missing`,
      );
    }
    this.#root = this.#session.handle(dirId, true);
    return this.#root;
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
    return this.#rootDir.view.getUint32(BASE_OFFSET + H_GENERATION, true);
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
    return this.#rootDir.id;
  }

  #dir(id: ObjID, path: string[]): Dir {
    if (!this.#session.kernel.exists(id)) {
      throw new TwzError(
        ErrorCode.ObjectNotFound,
        `Directory ${join(path)} (${formatId(id)}) no longer exists`,
      );
    }
    const obj = this.#session.handle(id, true);
    if (obj.view.getUint32(BASE_OFFSET + H_MAGIC, true) !== DIR_MAGIC) {
      throw new TwzError(
        ErrorCode.ImageCorrupt,
        `${join(path)} (${formatId(id)}) is not a directory object`,
      );
    }
    return new Dir(obj);
  }

  /** Walk to the directory holding `parts`' last component. */
  #parent(parts: string[], create: boolean): Dir {
    let dir = new Dir(this.#rootDir);
    for (let i = 0; i < parts.length - 1; i++) {
      const found = dir.find(parts[i]);
      if (!found) {
        if (!create) {
          throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(parts.slice(0, i + 1))}`);
        }
        const sub = this.#newDir();
        dir.insert(parts[i], sub.id, KIND_DIR);
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
    const parts = splitPath(path);
    if (parts.length === 0) return { name: "/", id: this.#rootDir.id, kind: "directory" };
    const gen = this.generation;
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
    const found = dir.find(parts[parts.length - 1])?.binding;
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
    const b = this.lookup(path);
    if (!b) throw new TwzError(ErrorCode.NameNotFound, `No object is named ${path}`);
    return b.id;
  }

  /** Whether a name is bound. */
  exists(path: string): boolean {
    return this.lookup(path) !== undefined;
  }

  /**
   * Bind `path` to object `id` (atomically: see the module doc).
   *
   * @throws {TwzError} `NameExists`, `NameNotFound` (missing parent without
   * `parents`), `ObjectNotFound` (no such object), `InvalidArgument` (bad
   * path, or `id` is a directory object: use {@linkcode Naming.mkdir} / rename).
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
    const parts = splitPath(path);
    if (parts.length === 0) throw new TwzError(ErrorCode.NameExists, "/ is the root directory");
    if (!this.#session.kernel.exists(id)) {
      throw new TwzError(
        ErrorCode.ObjectNotFound,
        `Cannot bind ${path}: no object ${formatId(id)}`,
      );
    }
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
    const dir = this.#parent(parts, options.parents ?? false);
    const name = parts[parts.length - 1];
    if (dir.find(name)) throw new TwzError(ErrorCode.NameExists, `${join(parts)} is already bound`);
    dir.insert(name, id, KIND_OBJECT);
    this.#bump();
  }

  /**
   * Make a directory.
   *
   * @returns The new directory object's ID.
   * @throws {TwzError} `NameExists`, `NameNotFound` (missing parent without `parents`).
   */
  mkdir(path: string, options: BindOptions = {}): ObjID {
    const parts = splitPath(path);
    if (parts.length === 0) throw new TwzError(ErrorCode.NameExists, "/ already exists");
    const dir = this.#parent(parts, options.parents ?? false);
    const name = parts[parts.length - 1];
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
    const parts = splitPath(path);
    if (parts.length === 0) {
      throw new TwzError(ErrorCode.InvalidArgument, "Cannot unbind the root directory");
    }
    const dir = this.#parent(parts, false);
    const found = dir.find(parts[parts.length - 1]);
    if (!found) throw new TwzError(ErrorCode.NameNotFound, `No object is named ${join(parts)}`);
    let sub: Dir | undefined;
    if (
      found.binding.kind === "directory" && this.#session.kernel.exists(found.binding.id) &&
      !this.#namedElsewhere(found.binding.id, dir, found.slot)
    ) {
      sub = this.#dir(found.binding.id, parts);
      if (!sub.isEmpty()) {
        throw new TwzError(ErrorCode.InvalidArgument, `Directory ${join(parts)} is not empty`);
      }
    }
    dir.remove(found.slot);
    this.#bump();
    if (sub) this.#session.kernel.delete(sub.obj.id);
    return found.binding.id;
  }

  /**
   * Whether an entry other than `slot` of `dir` names directory `id`: a walk
   * of the whole tree (directories are few; unbinding one is rare).
   */
  #namedElsewhere(id: ObjID, dir: Dir, slot: number): boolean {
    const kernel = this.#session.kernel;
    const root = this.#rootDir;
    const seen = new Set<ObjID>([root.id]);
    const todo: Dir[] = [new Dir(root)];
    while (todo.length > 0) {
      const d = todo.pop()!;
      for (const e of d.entries()) {
        if (e.binding.kind !== "directory") continue;
        const other = e.binding.id;
        if (other === id && !(d.obj.id === dir.obj.id && e.slot === slot)) return true;
        if (seen.has(other) || !kernel.exists(other)) continue;
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
    const a = splitPath(from);
    const b = splitPath(to);
    if (a.length === 0 || b.length === 0) {
      throw new TwzError(ErrorCode.InvalidArgument, "Cannot rename the root directory");
    }
    const src = this.#parent(a, false);
    const found = src.find(a[a.length - 1]);
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
    const name = b[b.length - 1];
    if (dst.find(name)) throw new TwzError(ErrorCode.NameExists, `${join(b)} is already bound`);
    dst.insert(name, found.binding.id, found.binding.kind === "directory" ? KIND_DIR : KIND_OBJECT);
    // Slots are entry indices: growing a directory (as insert may) only adds
    // entries after them, so the old name is still in `found.slot`.
    src.remove(found.slot);
    this.#bump();
  }

  /**
   * The bindings of a directory, sorted by name.
   *
   * @throws {TwzError} `NameNotFound`, `InvalidArgument` (not a directory).
   */
  list(path = "/"): Binding[] {
    const parts = splitPath(path);
    let dir: Dir;
    if (parts.length === 0) dir = new Dir(this.#rootDir);
    else {
      const b = this.lookup(path);
      if (!b) throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(parts)}`);
      if (b.kind !== "directory") {
        throw new TwzError(ErrorCode.InvalidArgument, `${join(parts)} is not a directory`);
      }
      dir = this.#dir(b.id, parts);
    }
    return [...dir.entries()].map((e) => e.binding).sort((x, y) =>
      x.name < y.name ? -1 : x.name > y.name ? 1 : 0
    );
  }

  /** The naming service as a {@linkcode NameResolver} (the default, `""`). */
  get resolver(): NameResolver {
    return { resolve: (name) => this.resolve(name), generation: () => this.generation };
  }

  /** @internal Forget cached state (session closed). */
  _reset(): void {
    this.#root = undefined;
    this.#cache.clear();
    this.#cacheGen = -1;
  }
}

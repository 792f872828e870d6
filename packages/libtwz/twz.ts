/**
 * A libtwz session: objects, names and resolvers over one kernel — either
 * booted in-process on an image ({@linkcode Twz.open}), or a running kernel
 * ({@linkcode Twz.fromKernel}).
 *
 * @example Create a named object, close, open it again by name
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { plugin } from "@twz/hal-sim";
 *
 * const image = await Deno.makeTempFile({ suffix: ".img" });
 * await Deno.remove(image);
 * let twz = await Twz.open({ hal: plugin, image, size: 8 << 20 });
 * const obj = twz.create({ name: "/greeting", size: 4096 });
 * obj.write(obj.baseOffset, new TextEncoder().encode("hello"));
 * obj.persist(obj.baseOffset, 5);
 * twz.close();
 *
 * twz = await Twz.open({ hal: plugin, image });
 * const again = twz.open("/greeting");
 * console.log(new TextDecoder().decode(again.read(again.baseOffset, 5))); // hello
 * twz.close();
 * await Deno.remove(image);
 * ```
 *
 * @module
 */
import { Kernel, type ObjectMapping } from "@twz/kernel";
import type { HalPlugin } from "@twz/kernel/hal";
import {
  BASE_OFFSET,
  ErrorCode,
  formatId,
  LAYOUT_VERSION,
  type Lifetime,
  looksLikeId,
  META_OFFSET,
  MetaField,
  OBJECT_MAGIC,
  type ObjID,
  parseId,
  planFot,
  Prot,
  TwzError,
  writeId,
} from "@twz/kernel/abi";
import { type HalName, loadHalPlugin } from "./embedded.ts";
import { type HandleSession, type NameResolver, TwzObject } from "./object.ts";
import { Naming, type NamingSession } from "./naming.ts";
import { recoverTransactions, type TxLogHost, type TxTarget } from "./tx.ts";
import { sessionTxHost, TXLOG_NAME as TXLOG_PATH } from "./session_tx.ts";

/** Size of a new image when none is given: 64 MiB. */
export const DEFAULT_IMAGE_SIZE = 64 << 20;
/** Size of a new object when none is given: 64 KiB. */
export const DEFAULT_SIZE = 65536;

/** Options for {@linkcode Twz.open}. */
export interface TwzOpenOptions {
  /** The HAL: `"sim"`, `"pmem"`, or a plugin object. @default {"sim"} */
  hal?: HalName | HalPlugin;
  /**
   * The image file. Created (and formatted) when absent. Without it, hal-sim
   * gives an anonymous region that is gone at `close()`.
   */
  image?: string;
  /**
   * Size of a new image in bytes; for an existing image it must match or be
   * absent.
   * @default {DEFAULT_IMAGE_SIZE}
   */
  size?: number;
  /** Plugin settings. */
  settings?: Record<string, string>;
}

/** FOT sizing for a new object. */
export interface FotOptions {
  /** Entries to reserve (each names one other object or one name). */
  entries?: number;
  /** Bytes for the names of name-based entries. @default {entries * 32} */
  namesSize?: number;
}

/** Options for {@linkcode Twz.create}. */
export interface CreateOptions {
  /** Size in bytes. @default {DEFAULT_SIZE} */
  size?: number;
  /** @default {"persistent"} */
  lifetime?: Lifetime;
  /** Default protections. @default {Prot.ReadWrite} */
  prot?: number;
  /** Key object for capabilities. @default {0n} */
  keyId?: ObjID;
  /** Objects whose deletion deletes this one. */
  ties?: ObjID[];
  /**
   * Bind this name to the new object (missing parent directories are made).
   * The object is created, then named: a crash in between leaves it unnamed.
   */
  name?: string;
  /**
   * FOT size. Default: 64 entries for objects of 64 KiB or more, 8 from
   * 4 KiB, else none.
   */
  fot?: FotOptions;
  /** A type tag recorded in the meta-info. @default {0} */
  typeTag?: number;
}

/** Options for {@linkcode Twz.open}ing an object. */
export interface ObjectOpenOptions {
  /**
   * Map it writable (`true`), read-only (`false`), or writable when its
   * protections allow (absent).
   */
  write?: boolean;
}

function defaultFotEntries(size: number): number {
  return size >= 65536 ? 64 : size >= 4096 ? 8 : 0;
}

/**
 * A session over one kernel: create, open and delete objects, follow
 * invariant pointers between them, and name them.
 */
export class Twz implements HandleSession, NamingSession, TxLogHost {
  /** The kernel this session runs on. */
  readonly kernel: Kernel;
  /** The naming service. */
  readonly naming: Naming;
  readonly #owned: boolean;
  readonly #rw = new Map<ObjID, TwzObject>();
  readonly #ro = new Map<ObjID, TwzObject>();
  readonly #resolvers = new Map<string, NameResolver>();
  #txHost: TxLogHost | undefined;
  #closed = false;

  private constructor(kernel: Kernel, owned: boolean) {
    this.kernel = kernel;
    this.#owned = owned;
    this.naming = new Naming(this);
    this.#resolvers.set("", this.naming.resolver);
    // A transaction committed before a crash but not applied is replayed
    // before anyone reads object memory.
    if (this.naming.lookup(TXLOG_PATH)) recoverTransactions(this);
  }

  /** @internal The transaction log object (see `@twz/libtwz/tx`). */
  logObject(): TxTarget {
    return (this.#txHost ??= sessionTxHost(this)).logObject();
  }

  /** @internal Map an object for transaction replay; `null` when it is gone. */
  mapForReplay(id: ObjID): ObjectMapping | null {
    return (this.#txHost ??= sessionTxHost(this)).mapForReplay(id);
  }

  /**
   * Boot an in-process kernel on an image and open a session on it (the
   * embedded use: a plain Deno script working on an image file).
   *
   * @param options HAL, image, size.
   * @returns The session; {@linkcode Twz.close} shuts the kernel down and
   * closes the HAL.
   * @throws {HalError} The image cannot be opened; {TwzError} `ImageCorrupt`
   * or `ImageUnsupported` from boot.
   * @tags allow-read, allow-write
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * console.log(twz.kernel.report.formatted); // true
   * twz.close();
   * ```
   */
  static async open(options: TwzOpenOptions = {}): Promise<Twz> {
    const plugin = typeof options.hal === "object"
      ? options.hal
      : await loadHalPlugin(options.hal ?? "sim");
    let size = options.size;
    if (options.image === undefined) size ??= DEFAULT_IMAGE_SIZE;
    else if (size === undefined) {
      try {
        Deno.statSync(options.image);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) size = DEFAULT_IMAGE_SIZE;
        else throw e;
      }
    }
    const hal = await plugin.open({
      image: options.image,
      size,
      create: true,
      settings: options.settings,
    });
    try {
      return new Twz(Kernel.boot(hal), true);
    } catch (e) {
      hal.close();
      throw e;
    }
  }

  /**
   * A session on a kernel that is already running (the shell, or a program
   * run by the kernel). {@linkcode Twz.close} then leaves the kernel running.
   *
   * @example
   * ```ts
   * import { Kernel, type ObjectMapping } from "@twz/kernel";
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const hal = await plugin.open({ size: 8 << 20 });
   * const kernel = Kernel.boot(hal);
   * const twz = Twz.fromKernel(kernel);
   * twz.create({ name: "/hello", size: 1024 });
   * console.log(twz.naming.list().map((b) => b.name)); // ["hello"]
   * kernel.shutdown();
   * hal.close();
   * ```
   */
  static fromKernel(kernel: Kernel): Twz {
    return new Twz(kernel, false);
  }

  #check(): void {
    if (this.#closed) throw new TwzError(ErrorCode.Shutdown, "This libtwz session is closed");
  }

  /**
   * Create an object: the kernel makes it (zeroed), libtwz writes and
   * persists its meta-info (and FOT geometry), then binds `name` if given.
   *
   * @returns A writable handle.
   * @throws {TwzError} `InvalidArgument` (bad size, or too small for its
   * FOT), `OutOfSpace`, `TableFull`, `NameExists`.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
   * const obj = twz.create({ size: 65536, fot: { entries: 16 } });
   * console.log(obj.meta.fotCapacity, obj.baseOffset); // 16 256
   * twz.close();
   * ```
   */
  create(options: CreateOptions = {}): TwzObject {
    this.#check();
    const size = options.size ?? DEFAULT_SIZE;
    if (!Number.isInteger(size) || size < BASE_OFFSET) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `A libtwz object needs at least ${BASE_OFFSET} bytes, not ${size}`,
      );
    }
    const entries = options.fot?.entries ?? defaultFotEntries(size);
    const namesSize = options.fot?.namesSize ?? entries * 32;
    let geometry;
    try {
      geometry = planFot(size, entries, namesSize);
    } catch (e) {
      throw new TwzError(ErrorCode.InvalidArgument, (e as Error).message);
    }
    if (options.prot !== undefined && !(options.prot & Prot.Write)) {
      throw new TwzError(
        ErrorCode.NotSupported,
        "libtwz creates objects writable (it writes their meta-info); share them read-only instead",
      );
    }
    if (options.name !== undefined && this.naming.exists(options.name)) {
      throw new TwzError(ErrorCode.NameExists, `${options.name} is already bound`);
    }
    const id = this.kernel.create({
      size,
      lifetime: options.lifetime,
      prot: options.prot,
      keyId: options.keyId,
      ties: options.ties,
    });
    const prot = this.kernel.stat(id).prot;
    const m = this.kernel.map(id, Prot.ReadWrite);
    const v = m.view;
    v.setUint16(META_OFFSET + MetaField.version, LAYOUT_VERSION, true);
    v.setUint16(META_OFFSET + MetaField.flags, 0, true);
    v.setUint32(META_OFFSET + MetaField.prot, prot, true);
    v.setUint32(META_OFFSET + MetaField.createdSize, size, true);
    const nonce = new Uint8Array(16);
    this.kernel.hal.entropy.fill(nonce);
    m.bytes.set(nonce, META_OFFSET + MetaField.nonce);
    writeId(v, META_OFFSET + MetaField.keyId, options.keyId ?? 0n);
    v.setUint32(META_OFFSET + MetaField.fotOffset, geometry.fotOffset, true);
    v.setUint32(META_OFFSET + MetaField.fotCapacity, geometry.fotCapacity, true);
    v.setUint32(META_OFFSET + MetaField.namesOffset, geometry.namesOffset, true);
    v.setUint32(META_OFFSET + MetaField.namesSize, geometry.namesSize, true);
    v.setUint32(META_OFFSET + MetaField.typeTag, options.typeTag ?? 0, true);
    m.persist(META_OFFSET, 128);
    v.setUint32(META_OFFSET + MetaField.magic, OBJECT_MAGIC, true);
    m.persist(META_OFFSET, 4);
    const obj = this.handle(id, true);
    if (options.name !== undefined) this.naming.bind(options.name, id, { parents: true });
    return obj;
  }

  /** @internal Create an initialized object with meta flags (directories). */
  _createRaw(spec: { size: number; flags: number; fotEntries: number }): TwzObject {
    const obj = this.create({ size: spec.size, fot: { entries: spec.fotEntries, namesSize: 0 } });
    obj.view.setUint16(META_OFFSET + MetaField.flags, spec.flags, true);
    obj.persist(META_OFFSET, 8);
    return obj;
  }

  /**
   * The object ID for an ID or a name.
   *
   * @param target An ID, 32 hex digits, or a name.
   * @throws {TwzError} `NameNotFound`.
   */
  resolve(target: ObjID | string): ObjID {
    this.#check();
    return typeof target === "bigint" ? target : resolveObj(this, target);
  }

  /**
   * Open an object by ID or name.
   *
   * @param target An ID (bigint or 32 hex digits) or a name.
   * @param options `write: false` for a read-only handle.
   * @returns The session's handle for the object.
   * @throws {TwzError} `ObjectNotFound`, `NameNotFound`, `AccessDenied`
   * (`write: true` on an object whose protections forbid writes).
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
   * const obj = twz.create({ name: "/data", size: 4096 });
   * const ro = twz.open("/data", { write: false });
   * try {
   *   ro.write(ro.baseOffset, new Uint8Array([1]));
   * } catch (e) {
   *   console.log((e as Error).message); // Cannot write object …: this handle is read-only
   * }
   * twz.close();
   * ```
   */
  open(target: ObjID | string, options: ObjectOpenOptions = {}): TwzObject {
    this.#check();
    const id = this.resolve(target);
    if (options.write !== undefined) return this.handle(id, options.write);
    const prot = this.kernel.stat(id).prot;
    return this.handle(id, (prot & Prot.Write) !== 0);
  }

  /**
   * Delete an object (and, as the kernel does, everything tied to it). Given
   * a name, the name is unbound first (so a crash leaks the object rather than
   * leaving a dangling name).
   *
   * @returns How many objects were deleted.
   * @throws {TwzError} `ObjectNotFound`, `NameNotFound`.
   */
  delete(target: ObjID | string): number {
    this.#check();
    const id = this.resolve(target);
    if (!this.kernel.exists(id)) {
      throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(id)}`);
    }
    if (typeof target === "string" && !looksLikeId(target)) this.naming.unbind(target);
    const n = this.kernel.delete(id);
    for (const map of [this.#rw, this.#ro]) {
      for (const [k, h] of map) {
        if (h.bytes.length === 0) {
          h._reset();
          map.delete(k);
        }
      }
    }
    return n;
  }

  /**
   * Register a name resolver for name-based FOT entries. The naming service
   * is registered as `""` (the default).
   *
   * @param name The resolver's name, as stored in FOT entries.
   * @param resolver The resolver.
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * const table = new Map<string, bigint>();
   * twz.registerResolver("table", { resolve: (name) => table.get(name)! });
   * twz.close();
   * ```
   */
  registerResolver(name: string, resolver: NameResolver): void {
    if (name === "") throw new TypeError('"" is the naming service; register under another name');
    this.#resolvers.set(name, resolver);
  }

  /**
   * The resolver registered as `name`.
   * @throws {TwzError} `NotSupported`: none is registered.
   */
  resolver(name: string): NameResolver {
    const r = this.#resolvers.get(name);
    if (!r) {
      throw new TwzError(
        ErrorCode.NotSupported,
        `No name resolver "${name}" is registered in this session`,
      );
    }
    return r;
  }

  /**
   * The session's handle for an object (one writable and one read-only per
   * object). A writable request on an object that forbids writes falls back
   * to read-only only for FOT resolution; here it throws.
   *
   * @throws {TwzError} `ObjectNotFound`, `AccessDenied`.
   */
  handle(id: ObjID, writable: boolean): TwzObject {
    this.#check();
    const map = writable ? this.#rw : this.#ro;
    const h = map.get(id);
    if (h !== undefined && h.bytes.length > 0) return h;
    const obj = new TwzObject(this, this.kernel.map(id, writable ? Prot.ReadWrite : Prot.Read));
    map.set(id, obj);
    return obj;
  }

  /** Whether {@linkcode Twz.close} has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * End the session. For a session from {@linkcode Twz.open}, shut the kernel
   * down and close the HAL (unpersisted stores are written back by a clean
   * close). Harmless twice.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of [...this.#rw.values(), ...this.#ro.values()]) h._reset();
    this.#rw.clear();
    this.#ro.clear();
    this.naming._reset();
    if (this.#owned) {
      this.kernel.shutdown();
      this.kernel.hal.close();
    }
  }

  /** `using twz = await Twz.open(...)` closes it at the end of the block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Resolve text naming an object: 32 hex digits are an ID, anything else is a
 * name in the naming service (what the shell's OBJ arguments accept).
 *
 * @param session A session.
 * @param text An ID or a name.
 * @returns The object ID.
 * @throws {TwzError} `NameNotFound`; {TypeError} 32 hex digits that are not a valid ID.
 * @example
 * ```ts
 * import { resolveObj, Twz } from "@twz/libtwz";
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const obj = twz.create({ name: "/x", size: 1024 });
 * console.log(resolveObj(twz, "/x") === obj.id); // true
 * twz.close();
 * ```
 */
export function resolveObj(session: Twz, text: string): ObjID {
  return looksLikeId(text) ? parseId(text) : session.naming.resolve(text);
}

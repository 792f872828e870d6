/**
 * A libtwz session: objects, names and resolvers over one kernel port — the
 * system-call interface of `@twz/kernel/abi`. The port is either a kernel
 * booted in-process on an image ({@linkcode Twz.open}), or any port handed
 * over ({@linkcode Twz.attach}: a running kernel's `kernel.port()`, or a
 * program's port to the kernel that started it).
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
import {
  BASE_OFFSET,
  type CreateSpec,
  deriveObjectId,
  ErrorCode,
  formatId,
  isValidId,
  type KernelPort,
  LAYOUT_VERSION,
  type Lifetime,
  looksLikeId,
  type Mapping,
  META_OFFSET,
  META_SIZE,
  MetaField,
  OBJECT_MAGIC,
  type ObjID,
  parseId,
  planFot,
  Prot,
  readId,
  TwzError,
  writeId,
} from "@twz/kernel/abi";
// Types only: the embedded board (the kernel, the HAL plugins) is loaded when
// `Twz.open` runs, so a program bundling libtwz does not carry the kernel.
import type { TwzOpenOptions } from "./embedded.ts";
import { type HandleSession, type NameResolver, TwzObject } from "./object.ts";
import { META_CHECKSUM, META_PENDING_NAME, metaChecksum } from "./_meta.ts";
import { Naming, type NamingSession } from "./naming.ts";
import { closedError } from "./_layout_accessor.ts";
import {
  committedLogs,
  inspectTxLog,
  recoverTransactions,
  type TxLanesOptions,
  type TxLogHost,
  type TxTarget,
} from "./_tx.ts";
import { sessionTxHost, TXLANES_NAME, TXLOG_NAME as TXLOG_PATH } from "./_session_tx.ts";
import { NO_EPOCH } from "./_epoch.ts";
import { _createLayoutTag, type LayoutOption } from "./_layout_describe.ts";

export type { TwzOpenOptions };

/** What a session replayed when it opened: see {@linkcode Twz.recovered}. */
export interface RecoveredTransactions {
  /** Committed, unapplied transactions replayed (one per log that held one). */
  readonly transactions: number;
  /** Their log records. */
  readonly records: number;
}

/** Size of a new image when none is given: 64 MiB. */
export const DEFAULT_IMAGE_SIZE = 64 << 20;
/** Size of a new object when none is given: 64 KiB. */
export const DEFAULT_SIZE = 65536;

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
  /** Whether the object survives a reboot (`"persistent"`) or not (`"volatile"`). @default {"persistent"} */
  lifetime?: Lifetime;
  /** Default protections. @default {Prot.ReadWrite} */
  prot?: number;
  /**
   * The key object (`kuid`, from `createKey` in `@twz/libtwz/security`) whose
   * capabilities grant access to the object. With a key the object's ID is
   * derived from the nonce in its meta-info, the key, flags 0 and `prot`
   * (`deriveObjectId` in `@twz/kernel/abi`), so a capability names the object
   * and its key at once; without one the ID is random.
   */
  key?: ObjID;
  /** The same as {@linkcode CreateOptions.key} (its older name). */
  keyId?: ObjID;
  /** Objects whose deletion deletes this one. */
  ties?: ObjID[];
  /**
   * Bind this name to the new object (missing parent directories are made).
   * Create-and-name is failure-atomic: when the name cannot be bound the
   * object is deleted again. A crash in between leaves an object marked as
   * created for a name (`META_PENDING_NAME`), which `twz fsck --deep
   * --repair` deletes. Refused for a volatile object (the name would dangle
   * after a crash).
   */
  name?: string;
  /**
   * FOT size. Default: 64 entries for objects of 64 KiB or more, 8 from
   * 4 KiB, else none.
   */
  fot?: FotOptions;
  /** A type tag recorded in the meta-info. @default {0} */
  typeTag?: number;
  /**
   * The named struct whose records the object holds (at the base, one
   * record; or `{ type, offset, count }`): its layout descriptor is written
   * to `/.layouts/TAG` first (when missing) and the object is created with
   * that tag as its `typeTag`, so tools can type its bytes
   * (`readLayoutDescriptor` in `@twz/libtwz/layout`). Not with `typeTag`.
   */
  layout?: LayoutOption;
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
 * A session over one kernel port: create, open and delete objects, follow
 * invariant pointers between them, and name them.
 */
export class Twz implements HandleSession, NamingSession, TxLogHost {
  /**
   * The kernel port this session runs on: the system-call interface
   * (`@twz/kernel/abi`). Every object the session maps comes from it.
   */
  readonly port: KernelPort;
  /** The naming service. */
  readonly naming: Naming;
  /** How to stop what the session started (an embedded kernel), or nothing. */
  readonly #shutdown: (() => void) | undefined;
  readonly #rw = new Map<ObjID, TwzObject>();
  readonly #ro = new Map<ObjID, TwzObject>();
  readonly #resolvers = new Map<string, NameResolver>();
  #txHost: TxLogHost | undefined;
  #closed = false;
  /** @internal The port's revocation epoch word, or one nothing changes (see `_epoch.ts`). */
  readonly _ep: Int32Array;
  #seen: number;
  /**
   * What opening the session could not do (one line each): on a read-only
   * kernel whose HAL writes the image (no private overlay), a committed but
   * unapplied transaction is not replayed, so reads show the state before it.
   */
  readonly warnings: string[] = [];
  #recovered: RecoveredTransactions = { transactions: 0, records: 0 };

  /**
   * What opening the session replayed: the transactions an earlier boot
   * committed but did not apply (one per log that held one), and their log
   * records. Only the first session of a boot finds any (the one that runs
   * recovery; a `twz boot` reports its own in the boot line); a read-only
   * session counts what it replayed into its private overlay.
   *
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
   * console.log(twz.recovered); // { transactions: 0, records: 0 }
   * twz.close();
   * ```
   */
  get recovered(): RecoveredTransactions {
    return { ...this.#recovered };
  }

  private constructor(port: KernelPort, shutdown: (() => void) | undefined) {
    this.port = port;
    this.#shutdown = shutdown;
    this._ep = port.epoch ?? NO_EPOCH;
    this.#seen = Atomics.load(this._ep, 0);
    this.naming = new Naming(this);
    this.#resolvers.set("", this.naming.resolver);
    // Transactions committed before a crash but not applied are replayed
    // before anyone reads object memory: the first session of a boot
    // replays every log (the primary log and the lanes of threads) in
    // sequence order; a thread's session waits until that is done. A
    // read-only session never writes the image: over a read-only HAL (a
    // private in-memory overlay on hal-sim, a copy-on-write mapping on
    // hal-pmem, where the kernel replays its own log too) it replays into
    // memory only; otherwise it reports the transactions.
    const log = this.naming.lookup(TXLOG_PATH);
    if (log === undefined) return;
    if (!port.readOnly) {
      const before = committedLogs(this);
      const records = recoverTransactions(this);
      if (records > 0 || before > 0) {
        this.#recovered = {
          transactions: Math.max(0, before - committedLogs(this)),
          records,
        };
      }
      return;
    }
    if (!this.#readable(log.id)) return;
    const lanes = this.naming.lookup(TXLANES_NAME)?.id;
    const host = overlayHost(
      port,
      log.id,
      lanes !== undefined && this.#readable(lanes) ? lanes : 0n,
    );
    const n = committedLogs(host);
    if (n === 0) return;
    if (port.info().privateOverlay) {
      this.#recovered = { transactions: n, records: recoverTransactions(host) };
    } else {
      const inPrimary = inspectTxLog(host.logObject()).state === "committed" ? 1 : 0;
      const where = inPrimary === n
        ? TXLOG_PATH
        : inPrimary === 0
        ? TXLANES_NAME
        : `${TXLOG_PATH} and ${TXLANES_NAME}`;
      this.warnings.push(
        `${n === 1 ? "a committed transaction" : `${n} committed transactions`} in ${where} ${
          n === 1 ? "was" : "were"
        } not replayed (the image is open read-only): reads show the state before ${
          n === 1 ? "it" : "them"
        }`,
      );
    }
  }

  /** Whether object `id` exists and may be read. */
  #readable(id: ObjID): boolean {
    return this.port.exists(id) && (this.port.stat(id).prot & Prot.Read) !== 0;
  }

  /**
   * Whether the session runs on a read-only kernel: objects are mapped
   * read-only and every write fails with `TwzError` `ReadOnly`.
   */
  get readOnly(): boolean {
    return this.port.readOnly;
  }

  /** @internal Throw `ReadOnly` when the session is read-only. */
  _needWritable(what: string): void {
    if (this.port.readOnly) {
      throw new TwzError(ErrorCode.ReadOnly, `the image is open read-only: cannot ${what}`);
    }
  }

  /** @internal The transaction log object (see `@twz/libtwz/tx`). */
  logObject(): TxTarget {
    this.#check();
    this._needWritable("run a transaction");
    return (this.#txHost ??= sessionTxHost(this)).logObject();
  }

  /** @internal Map an object for transaction replay; `null` when it is gone. */
  mapForReplay(id: ObjID): Mapping | null {
    this.#check();
    return (this.#txHost ??= sessionTxHost(this)).mapForReplay(id);
  }

  /** @internal The transaction lanes object of threads (see `@twz/libtwz/tx`). */
  lanesObject(create?: TxLanesOptions): TxTarget | null {
    this.#check();
    if (create !== undefined) this._needWritable("make the transaction lanes");
    return (this.#txHost ??= sessionTxHost(this)).lanesObject!(create);
  }

  /**
   * Boot an in-process kernel on an image and open a session on it (the
   * embedded use: a plain Deno script working on an image file). The kernel
   * and the HAL plugin are loaded here, on first use (`@twz/libtwz/embedded`):
   * a program that only attaches to a port never loads them. On an image a
   * running `twz boot` holds, a writable open becomes a client session of
   * that system through its control socket (`IMAGE.sock`; mappings are then
   * copies that `persist` writes back: see `@twz/libtwz/embedded`).
   *
   * @param options HAL, image, size.
   * @returns The session; {@linkcode Twz.close} shuts the kernel down and
   * closes the HAL.
   * @throws {HalError} The image cannot be opened (`code: "busy"` when
   * another process or session holds it); {TwzError} `ImageCorrupt` or
   * `ImageUnsupported` from boot.
   * @tags allow-read, allow-write
   * @example
   * ```ts
   * import { Twz } from "@twz/libtwz";
   * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
   * console.log(twz.port.info().formatted); // true
   * twz.close();
   * ```
   */
  static async open(options: TwzOpenOptions = {}): Promise<Twz> {
    const { bootEmbedded } = await import("./embedded.ts");
    const system = await bootEmbedded(options);
    try {
      return new Twz(system.port, system.shutdown);
    } catch (e) {
      system.shutdown();
      throw e;
    }
  }

  /**
   * A session over a kernel port: a running kernel's (`kernel.port()`: the
   * shell, tools), or the port a program's thread was started with.
   * {@linkcode Twz.close} gives the session's mappings back and leaves the
   * system running.
   *
   * @param port The kernel port.
   * @returns The session.
   * @example
   * ```ts
   * import { Kernel } from "@twz/kernel";
   * import { Twz } from "@twz/libtwz";
   * import { plugin } from "@twz/hal-sim";
   * const hal = await plugin.open({ size: 8 << 20 });
   * const kernel = Kernel.boot(hal);
   * const twz = Twz.attach(kernel.port());
   * twz.create({ name: "/hello", size: 1024 });
   * console.log(twz.naming.list().map((b) => b.name)); // ["hello"]
   * kernel.shutdown();
   * hal.close();
   * ```
   */
  static attach(port: KernelPort): Twz {
    return new Twz(port, undefined);
  }

  #check(): void {
    if (this.#closed) throw closedError();
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
    if (
      options.prot !== undefined && (options.prot & Prot.ReadWrite) !== Prot.ReadWrite
    ) {
      throw new TwzError(
        ErrorCode.NotSupported,
        "libtwz creates objects readable and writable (it gives a read-write handle); share them read-only instead, or make one only your context may use with createProtected (@twz/libtwz/security)",
      );
    }
    return this.#create(options, 0);
  }

  /**
   * @internal Create an object as {@linkcode Twz.create} does, with any
   * protections (read-only, write-only or none: the shell's `new --prot`),
   * and give its ID; an object libtwz cannot map read-write is not mapped,
   * and is named without the pending mark (nobody could clear it).
   */
  _createId(options: CreateOptions = {}): ObjID {
    const prot = options.prot ?? Prot.ReadWrite;
    if ((prot & Prot.ReadWrite) === Prot.ReadWrite) return this.#create(options, 0).id;
    return this.#create(options, 0, false);
  }

  #create(options: CreateOptions, flags: number): TwzObject;
  #create(options: CreateOptions, flags: number, writable: false): ObjID;
  #create(options: CreateOptions, flags: number, writable = true): TwzObject | ObjID {
    this.#check();
    this._needWritable("create an object");
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
    if (options.name !== undefined) {
      if (options.lifetime === "volatile") {
        throw new TwzError(
          ErrorCode.InvalidArgument,
          `Cannot name volatile object ${options.name}: a name bound to a volatile object dangles after a crash`,
        );
      }
      if (this.naming.exists(options.name)) {
        throw new TwzError(ErrorCode.NameExists, `${options.name} is already bound`);
      }
    }
    if (options.layout !== undefined && options.typeTag !== undefined) {
      throw new TwzError(ErrorCode.InvalidArgument, "Give a layout or a typeTag, not both");
    }
    // The descriptor is durable before the object naming it is created.
    const typeTag = options.layout === undefined
      ? options.typeTag ?? 0
      : _createLayoutTag(this, options.layout, geometry.fotOffset);
    const prot = options.prot ?? Prot.ReadWrite;
    // An object its protections keep from being written gets its meta-info
    // all the same (in the create commit), but no pending-name mark: nobody
    // could clear it. A crash between its create and its bind leaves it
    // unnamed and unmarked, as any object no name reaches.
    const named = options.name !== undefined;
    const pending = named && writable;
    // The meta-info, built apart and handed to the kernel as a source range:
    // it is part of the kernel's create commit, so no crash leaves a new
    // object without it.
    const meta = new Uint8Array(META_OFFSET + META_SIZE);
    const mv = new DataView(meta.buffer);
    mv.setUint32(META_OFFSET + MetaField.magic, OBJECT_MAGIC, true);
    mv.setUint16(META_OFFSET + MetaField.version, LAYOUT_VERSION, true);
    mv.setUint16(
      META_OFFSET + MetaField.flags,
      flags | (pending ? META_PENDING_NAME : 0),
      true,
    );
    mv.setUint32(META_OFFSET + MetaField.prot, prot, true);
    mv.setUint32(META_OFFSET + MetaField.createdSize, size, true);
    const key = options.key ?? options.keyId ?? 0n;
    const nonce = this.#nonce(meta, key, prot);
    writeId(mv, META_OFFSET + MetaField.keyId, key);
    mv.setUint32(META_OFFSET + MetaField.fotOffset, geometry.fotOffset, true);
    mv.setUint32(META_OFFSET + MetaField.fotCapacity, geometry.fotCapacity, true);
    mv.setUint32(META_OFFSET + MetaField.namesOffset, geometry.namesOffset, true);
    mv.setUint32(META_OFFSET + MetaField.namesSize, geometry.namesSize, true);
    mv.setUint32(META_OFFSET + MetaField.typeTag, typeTag, true);
    mv.setUint32(META_OFFSET + META_CHECKSUM, metaChecksum(mv), true);
    const id = this.#createWithMeta(meta, {
      size,
      lifetime: options.lifetime,
      prot: options.prot,
      ...(key === 0n ? {} : { keyId: key, nonce }),
      ties: options.ties,
    });
    if (!writable) {
      if (named) this.#bindNew(options.name!, id);
      return id;
    }
    const obj = this.handle(id, true);
    if (named) {
      // Create-and-name is failure-atomic and crash-safe:
      // - a failing bind (a parent that is no directory, no space, ...) deletes
      //   the object before the error reaches the caller: nothing is left (a
      //   bind whose persist failed after publishing the entry is unbound
      //   first; when that fails too, the object stays, as a crash leaves it);
      // - a crash before the bind is published leaves an object that still
      //   carries META_PENDING_NAME (it was born with it) and that no name
      //   reaches: `twz fsck --deep` reports it and its repair deletes it
      //   (repairObjects), as never handed to anyone;
      // - a crash after the bind, before the flag is cleared, leaves a named
      //   object with the flag: repair only clears the flag.
      // The kernel cannot create and name in one commit (names are libtwz
      // data), so the flag, written in the kernel's commit, stands in for it.
      this.#bindNew(options.name!, id);
      const at = META_OFFSET + MetaField.flags;
      obj.view.setUint16(at, obj.view.getUint16(at, true) & ~META_PENDING_NAME, true);
      obj.persist(at, 2);
    }
    return obj;
  }

  /**
   * Bind `name` to the object `id` that create just made; when the bind
   * fails, undo the create and rethrow the bind's error. A bind whose
   * persist failed after the entry's publishing store may have bound the
   * name (in memory, and perhaps on the media): it is unbound first, so that
   * deleting the object never leaves a name bound to nothing (for `/.txlog`,
   * every later session would fail to open). When that unbind, or the
   * delete, fails too, the object stays, still marked as created for a name:
   * what a crash inside create leaves, which `twz fsck --deep --repair`
   * finishes.
   */
  #bindNew(name: string, id: ObjID): void {
    try {
      this.naming.bind(name, id, { parents: true });
    } catch (error) {
      if (this.#takeBackName(name, id)) {
        this.#drop(this.#rw, id);
        try {
          this.port.delete(id);
        } catch {
          // Left marked and unnamed, as a crash inside create leaves it.
        }
      }
      throw error;
    }
  }

  /** Whether no name reaches `id` after its bind to `name` failed (unbound now if it did). */
  #takeBackName(name: string, id: ObjID): boolean {
    let bound: boolean;
    try {
      bound = this.naming.lookup(name)?.id === id;
    } catch {
      return true; // the path resolves to nothing (a parent that is no directory, ...)
    }
    if (!bound) return true;
    try {
      this.naming.unbind(name);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Write a random nonce into `meta`'s meta-info and return it (u128, as
   * stored: little-endian). With a key, the kernel derives the object's ID
   * from it (`deriveObjectId(nonce, key, 0, prot)`): a nonce whose ID would
   * be invalid (upper half zero, one chance in 2^64) is drawn again, so the
   * kernel takes the nonce as given and the meta-info records the one used.
   */
  #nonce(meta: Uint8Array, key: ObjID, prot: number): bigint {
    const mv = new DataView(meta.buffer);
    for (let tries = 0;; tries++) {
      meta.set(this.port.random(16), META_OFFSET + MetaField.nonce);
      const nonce = readId(mv, META_OFFSET + MetaField.nonce);
      if (key === 0n || isValidId(deriveObjectId(nonce, key, 0, prot)) || tries >= 16) {
        return nonce;
      }
    }
  }

  /**
   * The kernel creates the object with `meta` (`META_OFFSET + META_SIZE`
   * bytes, the meta-info at its offset) copied in: through a short-lived
   * volatile object, as the kernel copies only from objects.
   */
  #createWithMeta(meta: Uint8Array, spec: CreateSpec): ObjID {
    const k = this.port;
    const scratch = k.create({ size: meta.length, lifetime: "volatile" });
    try {
      k.write(scratch, 0, meta);
      return k.create({
        ...spec,
        sources: [{
          id: scratch,
          srcOffset: META_OFFSET,
          dstOffset: META_OFFSET,
          length: META_SIZE,
        }],
      });
    } finally {
      k.delete(scratch);
    }
  }

  /** @internal Create an initialized object with meta flags (directories). */
  _createRaw(spec: { size: number; flags: number; fotEntries: number }): TwzObject {
    return this.#create(
      { size: spec.size, fot: { entries: spec.fotEntries, namesSize: 0 } },
      spec.flags,
    );
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
    const prot = this.port.stat(id).prot;
    return this._handleBest(id, (prot & Prot.Write) !== 0 && !this.port.readOnly);
  }

  /**
   * @internal {@linkcode Twz.handle}, falling back to a read-only handle
   * when a writable one is refused (`AccessDenied`): a thread whose
   * contexts allow less than an object's defaults (a mask, a read-only
   * grant) still reads it — names resolve, `open` without `write` works.
   */
  _handleBest(id: ObjID, writable: boolean): TwzObject {
    if (!writable) return this.handle(id, false);
    try {
      return this.handle(id, true);
    } catch (e) {
      if (e instanceof TwzError && e.code === ErrorCode.AccessDenied) return this.handle(id, false);
      throw e;
    }
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
    this._needWritable(`delete ${typeof target === "string" ? target : formatId(target)}`);
    const id = this.resolve(target);
    if (!this.port.exists(id)) {
      throw new TwzError(ErrorCode.ObjectNotFound, `No object ${formatId(id)}`);
    }
    if (typeof target === "string" && !looksLikeId(target)) this.naming.unbind(target);
    const n = this.port.delete(id);
    for (const map of [this.#rw, this.#ro]) {
      for (const [k, h] of map) if (h.bytes.length === 0) this.#drop(map, k);
    }
    return n;
  }

  /**
   * @internal `id` may be mapped writable now (this node took its
   * ownership: `own` of `@twz/libtwz/global`). Pointers followed from here
   * on resolve to a writable handle: every handle's FOT cache is cleared (a
   * cached target may be the read-only handle a refused writable map fell
   * back to). Handles given out before stay as they were: open it again.
   */
  _regained(_id: ObjID): void {
    this.#check();
    for (const map of [this.#rw, this.#ro]) for (const h of map.values()) h._forget(h._es);
  }

  /** Forget the handle of `id` in `map` and give its mapping back. */
  #drop(map: Map<ObjID, TwzObject>, id: ObjID): void {
    const h = map.get(id);
    if (h === undefined) return;
    h._reset();
    map.delete(id);
    try {
      this.port.unmap(h.mapping);
    } catch { /* the system is going down: nothing left to give back */ }
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
   * @throws {TwzError} `ObjectNotFound`, `AccessDenied`, `ReadOnly` (a
   * writable handle on a read-only session).
   */
  handle(id: ObjID, writable: boolean): TwzObject {
    this.#check();
    if (this._ep[0] !== this.#seen) this._epochSync();
    const map = writable ? this.#rw : this.#ro;
    const h = map.get(id);
    if (h !== undefined && h.bytes.length > 0) return h;
    if (h !== undefined) this.#drop(map, id);
    if (writable) this._needWritable(`map ${formatId(id)} writable`);
    let mapping: Mapping;
    try {
      mapping = this.port.map(id, writable ? Prot.ReadWrite : Prot.Read);
    } catch (e) {
      // Name the object when the kernel's refusal does not.
      if (
        e instanceof TwzError && e.code === ErrorCode.AccessDenied &&
        !e.message.includes(formatId(id))
      ) {
        throw new TwzError(ErrorCode.AccessDenied, `object ${formatId(id)}: ${e.message}`, {
          cause: e,
        });
      }
      throw e;
    }
    const obj = new TwzObject(this, mapping);
    map.set(id, obj);
    return obj;
  }

  /** @internal The revocation epoch the session last acted on. */
  get _epochSeen(): number {
    return this.#seen;
  }

  /**
   * @internal The revocation epoch moved (see `_epoch.ts`): make one system
   * call, so the kernel's withdrawals reach this thread's mappings (that is
   * what complying means: a thread that does not enter the kernel in time is
   * killed), then give back every handle whose bytes went empty — marked
   * withdrawn when its object still exists — and clear every FOT cache.
   */
  _epochSync(): void {
    const now = Atomics.load(this._ep, 0);
    if (now === this.#seen || this.#closed) return;
    try {
      this.port.contexts();
    } catch { /* the thread is going away: its next call says why */ }
    this.#seen = now;
    for (const map of [this.#rw, this.#ro]) {
      for (const [id, h] of [...map]) {
        if (h.mapping.bytes.length !== 0) {
          h._forget(now);
          continue;
        }
        let exists = false;
        try {
          exists = this.port.exists(id);
        } catch { /* as deleted */ }
        if (exists) h._withdraw();
        this.#drop(map, id);
      }
    }
  }

  /** Whether {@linkcode Twz.close} has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * End the session: its mappings go back to the port. For a session from
   * {@linkcode Twz.open}, shut the kernel down and close the HAL
   * (unpersisted stores are written back by a clean close). Harmless twice.
   *
   * Afterwards every use of the session and of what it gave out (object
   * handles, accessors, collections, naming, transactions) throws one line,
   * `TwzError` `Shutdown`: "the libtwz session is closed: …". (On a session
   * from {@linkcode Twz.attach}, an accessor made before the close still
   * reaches the object's bytes while the kernel keeps them mapped.)
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.naming._reset(true);
    for (const h of [...this.#rw.values(), ...this.#ro.values()]) h._reset(true);
    if (this.#shutdown !== undefined) {
      this.#rw.clear();
      this.#ro.clear();
      this.#shutdown();
      return;
    }
    for (const map of [this.#rw, this.#ro]) for (const id of [...map.keys()]) this.#drop(map, id);
  }

  /** `using twz = await Twz.open(...)` closes it at the end of the block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A log host that replays into a read-only HAL's private overlay: stores
 * through read-only mappings reach memory only, and the read-only kernel
 * drops their flushes and drains.
 */
function overlayHost(port: KernelPort, logId: ObjID, lanesId: ObjID): TxLogHost {
  let log: TxTarget | undefined;
  let lanes: TxTarget | undefined;
  return {
    logObject: () =>
      log ??= { id: logId, mapping: port.map(logId, Prot.Read), writable: false, port },
    lanesObject: () =>
      lanesId === 0n
        ? null
        : lanes ??= { id: lanesId, mapping: port.map(lanesId, Prot.Read), writable: false, port },
    mapForReplay: (id) => port.exists(id) ? port.map(id, Prot.Read) : null,
  };
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

/**
 * The global object space from a libtwz session (docs/GLOBAL.md): a system
 * booted with `twz boot --cluster nats://… --node NAME` is a node of a
 * cluster, and its objects can be published to the space every node of
 * the cluster shares. Object IDs are the same everywhere, so an invariant
 * pointer into a published object means the same on every node: opening or
 * following it on a node that does not hold it fetches it.
 *
 * Each function is a thin typed wrapper over the kernel port's one call for
 * the space, `port.global(op, args)` (`GlobalOps` of `@twz/kernel/abi`);
 * an object may be given as a handle, an ID, or a name (a local one, or a
 * global one under `/global`). On a system that is not a node every
 * function but {@linkcode isNode} throws `TwzError` `NotSupported`
 * (`NOT_IN_CLUSTER`).
 *
 * Names of the global namespace appear under `/global` in libtwz's naming
 * (`twz.naming.list("/global")`, `twz.open("/global/lists/demo")`); the
 * kernel's calls take them without the prefix ({@linkcode globalPath}).
 * Transactions publish what they wrote by themselves on a node (see
 * `transaction` of `@twz/libtwz/tx`).
 *
 * @example Publish an object on one node, own and update it on another
 * ```ts ignore
 * import { Twz } from "@twz/libtwz";
 * import { own, publish } from "@twz/libtwz/global";
 * import { transaction } from "@twz/libtwz/tx";
 *
 * // On node A (a `twz boot --cluster … --node a` holds a.img):
 * const a = await Twz.open({ image: "a.img" });
 * const obj = a.create({ size: 4096 });
 * publish(a, obj, { name: "/global/counter" });
 *
 * // On node B:
 * const b = await Twz.open({ image: "b.img" });
 * own(b, "/global/counter");
 * const counter = b.open("/global/counter");
 * transaction(b, (tx) => tx.write(counter, counter.baseOffset, new Uint8Array([1])));
 * ```
 *
 * @module
 */
import {
  ErrorCode,
  type GlobalEntry,
  type GlobalInfo,
  type GlobalStatus,
  type ObjID,
  type PublishResult,
  TwzError,
} from "@twz/kernel/abi";
import type { Twz } from "./twz.ts";
import type { TwzObject } from "./object.ts";

export type { GlobalEntry, GlobalInfo, GlobalStatus, PublishResult };

/** An object: its handle, its ID, or a name (32 hex digits are an ID). */
export type ObjectRef = TwzObject | ObjID | string;

/** Options of {@linkcode publish}. */
export interface PublishOptions {
  /** Also publish every object it reaches through its FOT, transitively. @default {false} */
  deep?: boolean | undefined;
  /** Bind it at this global name (`/global/…`; missing directories are made). */
  name?: string | undefined;
}

/** Options of {@linkcode own}. */
export interface OwnOptions {
  /**
   * How long to wait for a live owner to hand over, in milliseconds.
   * @default {the cluster's lease length}
   */
  timeoutMs?: number | undefined;
}

/** The prefix of global names in libtwz's naming. */
export const GLOBAL_PREFIX = "/global";

/**
 * The path in the global namespace for a name under `/global` (`/global`
 * itself is its root, `/`), or `null` for any other name.
 *
 * @param path A libtwz name.
 * @returns The global path, or `null`.
 * @example
 * ```ts
 * import { globalPath } from "@twz/libtwz/global";
 * console.log(globalPath("/global/lists/demo")); // "/lists/demo"
 * console.log(globalPath("/global")); // "/"
 * console.log(globalPath("/globalist")); // null
 * ```
 */
export function globalPath(path: string): string | null {
  if (typeof path !== "string") return null;
  const p = path.startsWith("/") ? path : "/" + path;
  if (p === GLOBAL_PREFIX || p === GLOBAL_PREFIX + "/") return "/";
  if (!p.startsWith(GLOBAL_PREFIX + "/")) return null;
  const rest = p.slice(GLOBAL_PREFIX.length);
  return rest.length > 1 && rest.endsWith("/") ? rest.slice(0, -1) : rest;
}

/** The ID of an object given as a handle, an ID or a name. */
function idOf(twz: Twz, obj: ObjectRef): ObjID {
  if (typeof obj === "bigint") return obj;
  if (typeof obj === "string") return twz.resolve(obj);
  return obj.id;
}

/**
 * Whether the session's system is a node of a cluster (booted with
 * `--cluster … --node NAME`). Asks the port every time (cheap; never
 * throws for a system that is not a node).
 *
 * @param twz The session.
 * @returns `true` on a node.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { isNode } from "@twz/libtwz/global";
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * console.log(isNode(twz)); // false
 * twz.close();
 * ```
 */
export function isNode(twz: Twz): boolean {
  const node = twz.port.info().node;
  return typeof node === "string" && node !== "";
}

/**
 * This node and its cluster: its name, the servers, whether it is
 * connected, the lease length, and how many global objects it holds, owns,
 * and has committed without an acknowledgement yet.
 *
 * @param twz A session on a node.
 * @returns The status.
 * @throws {TwzError} `NotSupported` on a system that is not a node.
 * @example
 * ```ts ignore
 * import { Twz } from "@twz/libtwz";
 * import { status } from "@twz/libtwz/global";
 * const twz = await Twz.open({ image: "n1.img" }); // held by a node's twz boot
 * console.log(status(twz).node); // n1
 * ```
 */
export function status(twz: Twz): GlobalStatus {
  return twz.port.global("status", {});
}

/**
 * Put an object into the global space: version 1, owned by this node (or,
 * when it is there already and this node owns it, its current bytes as the
 * next version). Keyed objects take their key object along.
 *
 * @param twz A session on a node.
 * @param obj The object (handle, ID or name).
 * @param options `deep`: also what it points to; `name`: a global name
 * (`/global/…`) to bind it at.
 * @returns The objects published and their versions.
 * @throws {TwzError} `NotSupported` (not a node), `InvalidArgument` (a
 * `name` outside `/global`), `AccessDenied` (the object cannot be read),
 * `Busy` (owned by another node), `NameExists`.
 * @example
 * ```ts ignore
 * import { Twz } from "@twz/libtwz";
 * import { publish } from "@twz/libtwz/global";
 * const twz = await Twz.open({ image: "n1.img" });
 * const head = twz.create({ size: 4096 });
 * const r = publish(twz, head, { deep: true, name: "/global/lists/demo" });
 * console.log(r.versions[0]); // 1
 * ```
 */
export function publish(twz: Twz, obj: ObjectRef, options: PublishOptions = {}): PublishResult {
  const id = idOf(twz, obj);
  let name: string | undefined;
  if (options.name !== undefined) {
    const g = globalPath(options.name);
    if (g === null || g === "/") {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `publish: a global name is a path under ${GLOBAL_PREFIX}/ (like ${GLOBAL_PREFIX}/lists/demo), not ${
          JSON.stringify(options.name)
        }`,
      );
    }
    name = g;
  }
  return twz.port.global("publish", {
    id,
    ...(options.deep ? { deep: true } : {}),
    ...(name !== undefined ? { name } : {}),
  });
}

/**
 * Take ownership of a global object: this node may then write it, and its
 * transactions publish it. A live owner elsewhere is asked to hand over;
 * when it does not within `timeoutMs`, the call fails with `Busy`.
 *
 * Afterwards the session maps the object writable: `twz.open` gives a
 * writable handle and pointers followed from then on resolve to it. A
 * read-only handle obtained before stays read-only (open it again).
 *
 * @param twz A session on a node.
 * @param obj The object (handle, ID or name).
 * @param options `timeoutMs`.
 * @returns What the space and this node now know of it.
 * @throws {TwzError} `NotSupported` (not a node), `ObjectNotFound` (not
 * published), `AccessDenied` (the object cannot be written), `Busy`.
 * @example
 * ```ts ignore
 * import { Twz } from "@twz/libtwz";
 * import { own } from "@twz/libtwz/global";
 * const twz = await Twz.open({ image: "n2.img" });
 * console.log(own(twz, "/global/lists/demo", { timeoutMs: 2000 }).owner); // n2
 * ```
 */
export function own(twz: Twz, obj: ObjectRef, options: OwnOptions = {}): GlobalInfo {
  const id = idOf(twz, obj);
  const info = twz.port.global("own", {
    id,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
  twz._regained(id);
  return info;
}

/**
 * Give up ownership of a global object (it stays published; another node
 * may take it at once).
 *
 * @param twz A session on a node.
 * @param obj The object (handle, ID or name).
 * @throws {TwzError} `NotSupported` (not a node), `ObjectNotFound`.
 * @example
 * ```ts ignore
 * import { Twz } from "@twz/libtwz";
 * import { release } from "@twz/libtwz/global";
 * const twz = await Twz.open({ image: "n2.img" });
 * release(twz, "/global/lists/demo");
 * ```
 */
export function release(twz: Twz, obj: ObjectRef): void {
  twz.port.global("release", { id: idOf(twz, obj) });
}

/**
 * What the global space and this node know about an object: published or
 * not, its version, size and owner (with the owner's lease), the version
 * held here, and whether this node owns it.
 *
 * @param twz A session on a node.
 * @param obj The object (handle, ID or name).
 * @returns The facts.
 * @throws {TwzError} `NotSupported` (not a node).
 * @example
 * ```ts ignore
 * import { Twz } from "@twz/libtwz";
 * import { info } from "@twz/libtwz/global";
 * const twz = await Twz.open({ image: "n3.img" });
 * const i = info(twz, "/global/lists/demo");
 * console.log(i.published, i.version, i.owner);
 * ```
 */
export function info(twz: Twz, obj: ObjectRef): GlobalInfo {
  return twz.port.global("info", { id: idOf(twz, obj) });
}

/**
 * Bring the local copy of a global object up to its current version now
 * (the node's watch does it by itself shortly after a change).
 *
 * @param twz A session on a node.
 * @param obj The object (handle, ID or name).
 * @returns The facts after the refresh.
 * @throws {TwzError} `NotSupported` (not a node), `ObjectNotFound`
 * (not published), `TimedOut` (the cluster did not answer).
 * @example
 * ```ts ignore
 * import { Twz } from "@twz/libtwz";
 * import { refresh } from "@twz/libtwz/global";
 * const twz = await Twz.open({ image: "n3.img" });
 * console.log(refresh(twz, "/global/lists/demo").localVersion);
 * ```
 */
export function refresh(twz: Twz, obj: ObjectRef): GlobalInfo {
  return twz.port.global("refresh", { id: idOf(twz, obj) });
}

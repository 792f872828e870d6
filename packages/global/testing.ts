/**
 * A global space in memory, for tests of code above the kernel (libtwz, the
 * shell) that must not need a NATS cluster: {@linkcode FakeSpace} is a
 * {@linkcode GlobalHook} over Maps — objects with a version and an owner, and
 * a name tree — that answers every `global(op, args)` operation and records
 * the calls. Install it with `kernel.global = new FakeSpace("a")`.
 *
 * @example
 * ```ts
 * import { FakeSpace } from "@twz/global/testing";
 * const space = new FakeSpace("a");
 * console.log(space.node, space.calls.length); // a 0
 * ```
 *
 * @module
 */
import type { GlobalHook } from "@twz/kernel";
import {
  ErrorCode,
  type GlobalEntry,
  type GlobalInfo,
  type GlobalOp,
  type GlobalOps,
  type ObjID,
  Prot,
  TwzError,
} from "@twz/kernel/abi";

/** A global space in Maps: objects (version, owner) and a name tree. */
export class FakeSpace implements GlobalHook {
  /** The published objects: version and owner. */
  readonly objects: Map<ObjID, { version: number; owner: string | null }> = new Map();
  /** Path (without /global) → object ID, or 0n for a directory. */
  readonly names: Map<string, ObjID> = new Map([["/", 0n]]);
  /** Every call, in order. */
  readonly calls: [GlobalOp, unknown][] = [];
  /** Thrown by the next `commit`, when set. */
  failCommit: TwzError | undefined;
  /** A fake space whose node is called `node`. */
  constructor(readonly node: string) {}
  fetchMissing(_id: ObjID): boolean {
    return false;
  }
  mapLimit(id: ObjID): number {
    const o = this.objects.get(id);
    return o === undefined || o.owner === this.node ? Prot.All : Prot.Read | Prot.Exec;
  }
  #info(id: ObjID): GlobalInfo {
    const o = this.objects.get(id);
    return {
      id,
      published: o !== undefined,
      version: o?.version ?? 0,
      size: 0,
      owner: o?.owner ?? null,
      leaseExpiry: 0,
      localVersion: o?.version ?? 0,
      owned: o?.owner === this.node,
      unacked: false,
    };
  }
  #parentOf(path: string): string {
    return path.slice(0, path.lastIndexOf("/")) || "/";
  }
  #mkdirs(path: string): void {
    if (path === "/" || this.names.get(path) === 0n) return;
    this.#mkdirs(this.#parentOf(path));
    this.names.set(path, 0n);
  }
  #needParent(path: string, parents: boolean | undefined): void {
    const parent = this.#parentOf(path);
    if (parents) this.#mkdirs(parent);
    else if (this.names.get(parent) !== 0n) {
      throw new TwzError(ErrorCode.NameNotFound, `no global directory ${parent}`);
    }
    if (this.names.has(path)) throw new TwzError(ErrorCode.NameExists, `${path} is bound`);
  }
  call<K extends GlobalOp>(op: K, a: GlobalOps[K][0]): GlobalOps[K][1] {
    this.calls.push([op, a]);
    // deno-lint-ignore no-explicit-any
    const args = a as any;
    switch (op) {
      case "status":
        return {
          node: this.node,
          servers: ["nats://fake"],
          connected: true,
          leaseMs: 2000,
          held: this.objects.size,
          owned: [...this.objects.values()].filter((o) => o.owner === this.node).length,
          unacked: 0,
        } as GlobalOps[K][1];
      case "publish": {
        const o = this.objects.get(args.id);
        if (o === undefined) this.objects.set(args.id, { version: 1, owner: this.node });
        else o.version++;
        if (args.name !== undefined) {
          this.#needParent(args.name, true);
          this.names.set(args.name, args.id);
        }
        return {
          ids: [args.id],
          versions: [this.objects.get(args.id)!.version],
        } as GlobalOps[K][1];
      }
      case "info":
      case "refresh":
        return this.#info(args.id) as GlobalOps[K][1];
      case "own": {
        const o = this.objects.get(args.id);
        if (o === undefined) throw new TwzError(ErrorCode.ObjectNotFound, "not published");
        o.owner = this.node;
        return this.#info(args.id) as GlobalOps[K][1];
      }
      case "release":
        this.objects.get(args.id)!.owner = null;
        return undefined as GlobalOps[K][1];
      case "commit": {
        if (this.failCommit !== undefined) {
          const e = this.failCommit;
          this.failCommit = undefined;
          throw e;
        }
        const versions: number[] = [];
        for (const id of args.ids as ObjID[]) {
          const o = this.objects.get(id);
          if (o !== undefined && o.owner === this.node) versions.push(++o.version);
        }
        return versions as GlobalOps[K][1];
      }
      case "lookup": {
        const id = this.names.get(args.path);
        return (id === undefined ? null : id) as GlobalOps[K][1];
      }
      case "bind":
        if (!this.objects.has(args.id)) {
          throw new TwzError(ErrorCode.InvalidArgument, "bind: the object is not published");
        }
        this.#needParent(args.path, args.parents);
        this.names.set(args.path, args.id);
        return undefined as GlobalOps[K][1];
      case "unbind": {
        const id = this.names.get(args.path);
        if (id === undefined) throw new TwzError(ErrorCode.NameNotFound, `no ${args.path}`);
        this.names.delete(args.path);
        return id as GlobalOps[K][1];
      }
      case "mkdir":
        if (args.parents && this.names.get(args.path) === 0n) return undefined as GlobalOps[K][1];
        this.#needParent(args.path, args.parents);
        this.names.set(args.path, 0n);
        return undefined as GlobalOps[K][1];
      case "list": {
        if (this.names.get(args.path) !== 0n) {
          throw new TwzError(ErrorCode.NameNotFound, `no global directory ${args.path}`);
        }
        const prefix = args.path === "/" ? "/" : args.path + "/";
        const out: GlobalEntry[] = [];
        for (const [p, id] of this.names) {
          if (p === "/" || !p.startsWith(prefix) || p.slice(prefix.length).includes("/")) continue;
          out.push({ name: p.slice(prefix.length), kind: id === 0n ? "dir" : "object", id });
        }
        return out.sort((x, y) => x.name < y.name ? -1 : 1) as GlobalOps[K][1];
      }
    }
    throw new TwzError(ErrorCode.InvalidArgument, `no op ${op}`);
  }
}

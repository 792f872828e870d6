// The shell's global-space commands (`publish`, `own`, `release`,
// `global`, `global info`) and its naming commands on `/global/...`,
// against a Map-backed GlobalHook installed on the kernel (no NATS).
import assert from "node:assert/strict";
import { type GlobalHook, Kernel } from "@twz/kernel";
import {
  ErrorCode,
  formatId,
  type GlobalEntry,
  type GlobalInfo,
  type GlobalOp,
  type GlobalOps,
  type ObjID,
  Prot,
  TwzError,
} from "@twz/kernel/abi";
import { openSim, plugin } from "@twz/hal-sim";
import type { Board } from "./board.ts";
import { Shell } from "./shell.ts";

/** A global space in Maps: objects (version, owner) and a name tree. */
class FakeSpace implements GlobalHook {
  readonly objects = new Map<ObjID, { version: number; owner: string | null }>();
  /** Path (without /global) → object ID, or 0n for a directory. */
  readonly names = new Map<string, ObjID>([["/", 0n]]);
  /** Every call, in order. */
  readonly calls: [GlobalOp, unknown][] = [];
  /** Thrown by the next `commit`, when set. */
  failCommit: TwzError | undefined;
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

/** A shell on a node named n1 whose global space is a {@linkcode FakeSpace}. */
function nodeShell(): { sh: Shell; space: FakeSpace; out: string[]; err: string[]; end(): void } {
  const hal = openSim({ size: 16 << 20 });
  const kernel = Kernel.boot(hal);
  const space = new FakeSpace("n1");
  kernel.global = space;
  const board: Board = { plugin, hal, kernel, options: { hal: "sim" } };
  const out: string[] = [], err: string[] = [];
  const sh = new Shell(board, { out: (l) => out.push(l), err: (l) => err.push(l) }, () => {});
  return {
    sh,
    space,
    out,
    err,
    end() {
      kernel.shutdown();
      hal.close();
    },
  };
}

/** Run `line`; it must succeed. Returns its output lines. */
async function ok(s: { sh: Shell; out: string[]; err: string[] }, line: string): Promise<string[]> {
  const failures = s.sh.failures;
  await s.sh.execute(line);
  assert.deepEqual(s.err.splice(0), [], line);
  assert.equal(s.sh.failures, failures, line);
  return s.out.splice(0);
}

/** Run `line`; it must fail with exactly `error`, printing nothing. */
async function fails(s: { sh: Shell; out: string[]; err: string[] }, line: string, error: string) {
  const failures = s.sh.failures;
  await s.sh.execute(line);
  assert.deepEqual(s.err.splice(0), [error], line);
  assert.deepEqual(s.out.splice(0), [], line);
  assert.equal(s.sh.failures, failures + 1, line);
}

Deno.test("publish, global, global info, own, release on a node", async () => {
  const s = nodeShell();
  try {
    await ok(s, "new --size 4096 --name /head");
    const id = s.sh.twz.naming.resolve("/head");
    const hex = formatId(id);
    assert.deepEqual(await ok(s, "publish /head --name /global/lists/demo"), [
      `published ${hex} version 1`,
      `/global/lists/demo -> ${hex}`,
    ]);
    assert.deepEqual(s.space.calls.at(-1), ["publish", { id, name: "/lists/demo" }]);
    await ok(s, "publish --deep /head");
    assert.deepEqual(s.space.calls.at(-1), ["publish", { id, deep: true }]);
    assert.deepEqual(await ok(s, "global"), [
      "node:      n1",
      "servers:   nats://fake",
      "connected: yes",
      "lease:     2000 ms",
      "held:      1 (owned 1, unacked 0)",
    ]);
    const info = await ok(s, "global info /global/lists/demo");
    assert.equal(info[0], `id:         ${hex}`);
    assert.ok(info.includes("version:    2"), info.join("\n"));
    assert.ok(info.includes("owner:      n1"), info.join("\n"));
    assert.ok(info.includes("owned here: yes"), info.join("\n"));
    assert.deepEqual(await ok(s, `release ${hex}`), [`released ${hex}`]);
    assert.equal(s.space.objects.get(id)!.owner, null);
    assert.deepEqual(await ok(s, "own /global/lists/demo --timeout 500"), [
      `owned ${hex} (version 2)`,
    ]);
    assert.deepEqual(s.space.calls.at(-1), ["own", { id, timeoutMs: 500 }]);
    // What the space refuses is one line.
    s.space.objects.delete(id);
    await fails(s, "own /head", "own: not published");
  } finally {
    s.end();
  }
});

Deno.test("the naming commands work on /global/...", async () => {
  const s = nodeShell();
  try {
    await ok(s, "new --size 4096 --name /a");
    const hex = formatId(s.sh.twz.naming.resolve("/a"));
    await ok(s, "publish /a");
    await ok(s, "mkdir /global/d");
    assert.deepEqual(await ok(s, "bind /global/d/a /a"), [`/global/d/a -> ${hex}`]);
    assert.deepEqual(await ok(s, "names /global"), [`${"0".repeat(32)}  dir  d/`]);
    assert.deepEqual(await ok(s, "names /global/d"), [`${hex}  obj  a`]);
    // The root shows the global namespace beside the local names.
    assert.ok((await ok(s, "names")).some((l) => l.endsWith("dir  global/")));
    assert.deepEqual(await ok(s, "rename /global/d/a /global/b"), ["/global/d/a -> /global/b"]);
    assert.deepEqual(await ok(s, `stat /global/b`).then((l) => l[0]), `id:         ${hex}`);
    assert.deepEqual(await ok(s, "unbind /global/b"), [`unbound /global/b (was ${hex})`]);
    await fails(s, "unbind /global/b", "unbind: no /b");
    await fails(
      s,
      "rename /a /global/a",
      "rename: Cannot rename /a to /global/a: between the local and the global namespace (bind the object under the new name instead)",
    );
    await fails(s, "names /global/none", "names: No directory /global/none");
  } finally {
    s.end();
  }
});

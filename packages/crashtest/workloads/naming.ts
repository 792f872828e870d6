/**
 * The `naming` crash-test workload: the libtwz naming service (`Naming`)
 * under power failures. A seeded sequence of mkdir (also `parents`), bind,
 * rename (objects and whole directories, across directories) and unbind over
 * nested directories, then a directory filled past its first capacity (125
 * entries) by binds, a rename inside the full directory (the insert grows
 * it) and more binds and unbinds.
 *
 * After every crash it walks the whole tree (`list` of every directory, and
 * `resolve` of every name) and requires it to be exactly the tree of the
 * acknowledged operations, or — for the operation in flight — one of the
 * states the naming service documents: a bind, mkdir or unbind wholly done or
 * not at all (`mkdir` with `parents`: any prefix of the missing directories),
 * a rename leaving the old name, both names, or the new name (never neither).
 * Every bound object exists and no directory lists a name twice. Objects left
 * unnamed by a crash (a directory made but not yet bound, or unbound but not
 * yet deleted) are leaks the service accepts, not violations.
 *
 * @module
 */
import type { Kernel, ObjID } from "@twz/kernel";
import { formatId } from "@twz/kernel/abi";
import { Twz } from "@twz/libtwz";
import type { JournalEntry, JournalSnapshot, Workload, WorkloadContext } from "../workload.ts";
import { openSession, sessionOf } from "./_session.ts";

/** Random naming operations before the directory-growth phase. */
const OPS = 40;
/** Entries of a fresh (16 KiB) directory: (16384 - 256 - 64) / 128. */
const DIR_CAPACITY = 125;
/** The log object, bound by the first transaction of a session (none here). */
const TXLOG = "/.txlog";

type Kind = "object" | "directory";
/** A binding of the model; `id` undefined: a directory whose ID nobody was told. */
interface Bound {
  kind: Kind;
  id: ObjID | undefined;
}
/** Full path → binding. */
type Tree = Map<string, Bound>;

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === "/" ? "/" : dir + "/");
}

/** Apply a done (or, for candidates, an in-flight) operation to a tree. */
function apply(tree: Tree, e: JournalEntry): void {
  const a = e.args as Record<string, unknown>;
  switch (e.op) {
    case "mkdir": {
      const path = a.path as string;
      if (a.parents) {
        const parts = path.split("/").filter((p) => p !== "");
        for (let i = 1; i < parts.length; i++) {
          const p = "/" + parts.slice(0, i).join("/");
          if (!tree.has(p)) tree.set(p, { kind: "directory", id: undefined });
        }
      }
      tree.set(path, { kind: "directory", id: e.result as ObjID | undefined });
      break;
    }
    case "bind":
      tree.set(a.path as string, { kind: "object", id: a.id as ObjID });
      break;
    case "unbind":
      tree.delete(a.path as string);
      break;
    case "rename":
      rename(tree, a.from as string, a.to as string, false);
      break;
  }
}

function rename(tree: Tree, from: string, to: string, keepOld: boolean): void {
  const moved: Array<[string, Bound]> = [];
  for (const [p, b] of tree) if (under(p, from)) moved.push([to + p.slice(from.length), b]);
  if (!keepOld) { for (const [p] of tree) if (under(p, from)) tree.delete(p); }
  for (const [p, b] of moved) tree.set(p, b);
}

/** The trees a crash may leave: the acknowledged one first, then the in-flight outcomes. */
function candidates(journal: JournalSnapshot): { trees: Tree[]; objects: ObjID[] } {
  const tree: Tree = new Map();
  const objects: ObjID[] = [];
  let inflight: JournalEntry | undefined;
  for (const e of journal) {
    if (e.state === "failed") continue;
    if (e.state === "started") {
      inflight = e;
      break;
    }
    if (e.op === "create") objects.push(e.result as ObjID);
    apply(tree, e);
  }
  const trees = [tree];
  if (inflight === undefined) return { trees, objects };
  const a = inflight.args as Record<string, unknown>;
  if (inflight.op === "mkdir" && a.parents) {
    // Each missing directory is made and bound in turn.
    const parts = (a.path as string).split("/").filter((p) => p !== "");
    let t = new Map(tree);
    for (let i = 1; i <= parts.length; i++) {
      const p = "/" + parts.slice(0, i).join("/");
      if (t.has(p)) continue;
      t = new Map(t);
      t.set(p, { kind: "directory", id: undefined });
      trees.push(t);
    }
  } else if (inflight.op === "rename") {
    const both = new Map(tree);
    rename(both, a.from as string, a.to as string, true);
    trees.push(both);
    const moved = new Map(tree);
    rename(moved, a.from as string, a.to as string, false);
    trees.push(moved);
  } else if (inflight.op !== "create" && inflight.op !== "init") {
    const t = new Map(tree);
    apply(t, { ...inflight, result: undefined });
    trees.push(t);
  }
  return { trees, objects };
}

const cache = new WeakMap<JournalSnapshot, ReturnType<typeof candidates>>();

/** The first difference between the recovered tree and a candidate, or undefined. */
function differs(actual: Tree, want: Tree): string | undefined {
  for (const [p, b] of want) {
    const got = actual.get(p);
    if (!got) return `${p} (${b.kind}) is missing`;
    if (got.kind !== b.kind) return `${p} is a ${got.kind}, expected a ${b.kind}`;
    if (b.id !== undefined && got.id !== b.id) {
      return `${p} names ${formatId(got.id!)}, expected ${formatId(b.id)}`;
    }
  }
  for (const [p] of actual) if (!want.has(p)) return `${p} is bound but no operation bound it`;
  return undefined;
}

/** Walk the recovered tree: every directory listed, every name resolved. */
function walk(twz: Twz, out: string[]): Tree {
  const tree: Tree = new Map();
  const dirs = ["/"];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    const seen = new Set<string>();
    for (const b of twz.naming.list(dir)) {
      const path = dir === "/" ? "/" + b.name : `${dir}/${b.name}`;
      if (path === TXLOG) continue;
      if (seen.has(b.name)) out.push(`directory ${dir} lists ${b.name} twice`);
      seen.add(b.name);
      tree.set(path, { kind: b.kind, id: b.id });
      if (b.kind === "directory") dirs.push(path);
      const resolved = twz.naming.resolve(path);
      if (resolved !== b.id) {
        out.push(`${path} lists as ${formatId(b.id)} but resolves to ${formatId(resolved)}`);
      }
      if (!twz.port.exists(b.id)) out.push(`${path} names ${formatId(b.id)}, which is gone`);
    }
  }
  return tree;
}

/** The naming workload. */
export const workload: Workload = {
  name: "naming",
  summary: "naming service: nested mkdir/bind/rename/unbind, a directory grown past capacity",
  imageSize: 768 * 1024,

  run({ kernel, journal, random }: WorkloadContext): void {
    const twz = journal.record("init", {}, () => Twz.attach(kernel.port()));
    const objects: ObjID[] = [];
    for (let i = 0; i < 4; i++) {
      objects.push(journal.record("create", {}, () => twz.create({ size: 1024 }).id));
    }
    // The run's own view of the tree (kept in step with what each call did).
    const tree: Tree = new Map();
    let fresh = 0;
    const name = () => `n${fresh++}${random() < 0.2 ? "-long-name-" + "x".repeat(40) : ""}`;
    const pickOf = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
    const dirs =
      () => ["/", ...[...tree].filter(([, b]) => b.kind === "directory").map(([p]) => p)];
    const join = (dir: string, n: string) => (dir === "/" ? "/" : dir + "/") + n;
    const depth = (p: string) => p.split("/").length - 1;
    const mkdir = (path: string, parents = false) => {
      const e = { op: "mkdir", args: { path, parents }, state: "done" as const };
      const id = journal.record("mkdir", e.args, () => twz.naming.mkdir(path, { parents }));
      apply(tree, { ...e, result: id });
    };
    const bind = (path: string, id: ObjID) => {
      journal.record("bind", { path, id }, () => twz.naming.bind(path, id));
      tree.set(path, { kind: "object", id });
    };
    const rename_ = (from: string, to: string) => {
      journal.record("rename", { from, to }, () => twz.naming.rename(from, to));
      rename(tree, from, to, false);
    };
    const unbind = (path: string) => {
      journal.record("unbind", { path }, () => twz.naming.unbind(path));
      tree.delete(path);
    };

    mkdir("/a");
    mkdir("/a/b");
    for (let i = 0; i < OPS; i++) {
      const r = random();
      const shallow = dirs().filter((d) => depth(d) < 4);
      const names = [...tree.keys()];
      const emptyDir = (p: string) =>
        tree.get(p)!.kind === "object" || ![...tree.keys()].some((q) => q !== p && under(q, p));
      if (r < 0.15) mkdir(join(pickOf(shallow), name()));
      else if (r < 0.2) mkdir(join(pickOf(shallow), `${name()}/${name()}/${name()}`), true);
      else if (r < 0.55 || names.length < 4) bind(join(pickOf(shallow), name()), pickOf(objects));
      else if (r < 0.8) {
        const from = pickOf(names);
        const targets = shallow.filter((d) => !under(d, from));
        rename_(from, join(pickOf(targets), name()));
      } else {
        const gone = names.filter(emptyDir);
        if (gone.length > 0) unbind(pickOf(gone));
      }
    }
    // Grow a directory past its first capacity: fill it, then rename inside it.
    mkdir("/big");
    for (let i = 0; i < DIR_CAPACITY; i++) bind(`/big/e${i}`, objects[i % objects.length]!);
    rename_("/big/e0", "/big/renamed-while-full");
    for (let i = 0; i < 4; i++) bind(`/big/late${i}`, objects[i]!);
    unbind("/big/e7");
    const elsewhere = dirs().filter((d) => d !== "/big" && depth(d) < 4);
    rename_("/big/late1", join(elsewhere[elsewhere.length - 1]!, "from-big"));
    unbind("/big/late3");
  },

  /** Opening a session replays a committed transaction (the checker crashes it too). */
  recover(kernel: Kernel): void {
    openSession(kernel);
  },

  check(kernel: Kernel, journal: JournalSnapshot): string[] {
    let c = cache.get(journal);
    if (!c) {
      c = candidates(journal);
      cache.set(journal, c);
    }
    const out: string[] = [];
    for (const id of c.objects) {
      if (!kernel.exists(id)) out.push(`acknowledged object ${formatId(id)} is missing`);
    }
    const twz = sessionOf(kernel);
    const actual = walk(twz, out);
    let first: string | undefined;
    let ok = false;
    for (const want of c.trees) {
      const d = differs(actual, want);
      if (d === undefined) {
        ok = true;
        break;
      }
      first ??= d;
    }
    if (!ok) {
      const inflight = journal.find((e) => e.state === "started");
      out.push(
        `names differ from the acknowledged tree: ${first}${
          inflight ? ` (in flight: ${inflight.op} ${JSON.stringify(inflight.args, hex)})` : ""
        }`,
      );
    }
    return out;
  },
};

function hex(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? formatId(v) : v;
}

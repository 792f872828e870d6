/**
 * A linked list across three objects, shared by the nodes of a cluster
 * (docs/GLOBAL.md). Run it on nodes (`twz boot --cluster URLS --node NAME`;
 * `twz cluster up` starts three):
 *
 *   twz cluster up --dir /tmp/demo                                            # n1, n2, n3
 *   twz run --image /tmp/demo/n1.img examples/global_list.ts make demo        # build, publish /global/demo
 *   twz run --image /tmp/demo/n2.img examples/global_list.ts walk demo        # fetch it by name
 *   twz run --image /tmp/demo/n3.img examples/global_list.ts watch demo 11,21,31 &
 *   twz run --image /tmp/demo/n2.img examples/global_list.ts bump demo        # own it, add 1 to each
 *   twz cluster down --dir /tmp/demo
 *
 * `make NAME [V1 V2 V3]` creates three objects, each holding one node
 * record (a value, a label and an invariant pointer to the next node, through
 * the object's FOT), and publishes the head deeply under `/global/NAME`: the
 * head and every object it reaches go to the global space, owned by this
 * node. `walk NAME` opens the head by its global name; each pointer it
 * follows names its target by ID, which a node that does not hold it fetches
 * transparently. `bump NAME [DELTA]` takes ownership of the three objects
 * (the owner hands them over) and adds `DELTA` to every value in one
 * transaction: the node publishes the three new versions together, so every
 * other node sees all three old values or all three new ones, never a mix.
 * `watch NAME V1,V2,V3 [MS]` shows that: it walks the list again and again
 * until it sees those values (at most `MS` milliseconds, default 30000) and
 * 20 walks more, printing the values whenever they differ from the last
 * walk's, then how often it saw each set. A walk counts only when
 * this node's versions of the three objects are the same before and after it
 * (a program's thread reads while the node's main thread may be replacing
 * them with a newer version; it replaces all objects of one transaction in
 * one step).
 *
 * @module
 */
import { formatId, type ObjID, TwzError } from "@twz/kernel/abi";
import { ptr, string, struct, type Twz, u32 } from "@twz/libtwz";
import { info, own, publish } from "@twz/libtwz/global";
import type { ProgramEnv } from "@twz/libtwz/program";
import { transaction } from "@twz/libtwz/tx";

/**
 * One list node: a value, a label, and an invariant pointer to the next node.
 * Named, so its objects carry a layout descriptor (`/.layouts/…`) that
 * `twz explore` and `twz graph` use to show the records typed.
 */
export const ListNode = struct({ value: u32, label: string(16), next: ptr("self") }, {
  name: "ListNode",
});

/** The accessor of one node record. */
export type ListNodeRecord = ReturnType<typeof ListNode.at>;

const LABELS = ["head", "middle", "tail"];

/**
 * The nodes of the list published as `/global/NAME`, head first, each read
 * through a handle of this session (writable when `write`).
 *
 * @param twz The session.
 * @param name The list's global name (without `/global/`).
 * @param write Open every object writable (this node must own them).
 * @returns The node records, head first.
 */
export function nodesOf(twz: Twz, name: string, write = false): ListNodeRecord[] {
  const head = twz.open(`/global/${name}`);
  const nodes: ListNodeRecord[] = [];
  for (let n: ListNodeRecord | null = ListNode.at(head, head.baseOffset); n; n = n.next) {
    if (nodes.length === 16) throw new Error(`/global/${name} has no end (a cycle?)`);
    nodes.push(n);
  }
  if (!write) return nodes;
  return nodes.map((n) => {
    const obj = twz.open(n.$id, { write: true });
    return ListNode.at(obj, obj.baseOffset);
  });
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function make(twz: Twz, name: string, values: number[]): number {
  if (twz.naming.exists(`/global/${name}`)) {
    console.error(`global_list: /global/${name} exists already`);
    return 1;
  }
  const objs = LABELS.map(() => twz.create({ size: 4096, layout: ListNode }));
  const nodes = objs.map((o) => ListNode.at(o, o.baseOffset));
  nodes.forEach((n, i) => {
    n.value = values[i]!;
    n.label = LABELS[i]!;
    n.next = nodes[i + 1] ?? null; // an FOT entry naming the next object by ID
    n.$persist();
  });
  const done = publish(twz, objs[0]!, { deep: true, name: `/global/${name}` });
  console.log(`made /global/${name}: ${objs.map((o) => formatId(o.id)).join(" ")}`);
  console.log(`published ${done.ids.length} objects, versions ${done.versions.join(",")}`);
  return 0;
}

function walk(twz: Twz, name: string): number {
  const nodes = nodesOf(twz, name);
  nodes.forEach((n, i) => {
    console.log(`${i}. ${n.label.padEnd(6)} value=${n.value} object=${formatId(n.$id)}`);
  });
  console.log(`values ${nodes.map((n) => n.value).join(",")}`);
  return 0;
}

function bump(twz: Twz, name: string, delta: number): number {
  const ids: ObjID[] = nodesOf(twz, name).map((n) => n.$id);
  for (const id of ids) own(twz, id, { timeoutMs: 10_000 });
  const nodes = nodesOf(twz, name, true);
  transaction(twz, () => {
    for (const n of nodes) n.value += delta;
  });
  const versions = ids.map((id) => info(twz, id).version);
  console.log(`values ${nodes.map((n) => n.value).join(",")} versions ${versions.join(",")}`);
  return 0;
}

function watch(twz: Twz, name: string, until: string, maxMs: number): number {
  const nodes = nodesOf(twz, name);
  const ids = nodes.map((n) => n.$id);
  const versions = () => ids.map((id) => info(twz, id).localVersion).join(",");
  const seen = new Map<string, number>();
  let walks = 0;
  let straddled = 0;
  let last = "";
  let after = -1; // walks left once `until` was seen (it must stay)
  const start = Date.now();
  console.log(`watching /global/${name} for ${until}`);
  while (after !== 0) {
    const before = versions();
    const values = nodes.map((n) => n.value).join(",");
    if (versions() !== before) {
      straddled++; // replaced during this walk: not a snapshot, walk again
      continue;
    }
    walks++;
    if (values !== last) console.log(`seen ${values} versions ${before}`);
    last = values;
    seen.set(values, (seen.get(values) ?? 0) + 1);
    if (after > 0) after--;
    else if (values === until && after < 0) after = 20;
    if (after < 0 && Date.now() - start > maxMs) {
      console.error(`global_list: ${until} not seen in ${maxMs} ms (last ${values})`);
      return 1;
    }
    sleep(2);
  }
  const counts = [...seen].map(([v, n]) => `${v} x${n}`).join("; ");
  console.log(`walks ${walks} straddled ${straddled}: ${counts}`);
  return 0;
}

/**
 * The program: `make NAME [V1 V2 V3]`, `walk NAME`, `bump NAME [DELTA]`,
 * `watch NAME V1,V2,V3 [MS]`.
 */
export default function main(env: ProgramEnv, args: string[]): number {
  const [command, name] = args;
  if (!name || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    console.error("usage: global_list make|walk|bump|watch NAME [...]");
    return 2;
  }
  try {
    switch (command) {
      case "make": {
        const values = args.length > 2 ? args.slice(2, 5).map(Number) : [10, 20, 30];
        if (values.length !== 3 || !values.every((v) => Number.isInteger(v) && v >= 0)) {
          console.error(`global_list: make takes three values, not ${args.slice(2).join(" ")}`);
          return 2;
        }
        return make(env.twz, name, values);
      }
      case "walk":
        return walk(env.twz, name);
      case "bump":
        return bump(env.twz, name, Number(args[2] ?? 1));
      case "watch":
        return watch(env.twz, name, args[2] ?? "", Number(args[3] ?? 30_000));
      default:
        console.error(`global_list: unknown command ${command}`);
        return 2;
    }
  } catch (e) {
    if (!(e instanceof TwzError)) throw e;
    console.error(`global_list: ${e.message}`);
    return 1;
  }
}

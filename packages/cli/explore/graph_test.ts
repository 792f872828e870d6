import assert from "node:assert/strict";
import { ErrorCode, TwzError } from "@twz/kernel/abi";
import {
  buildGraph,
  type GraphEdge,
  type GraphNode,
  type GraphSource,
  toDot,
  toJson,
  toSvg,
} from "./graph.ts";

/** A source over a table of out-edges (`"a": ["b", "c"]`), counting its calls. */
function source(
  links: Record<string, string[]>,
  o: { ties?: [string, string][]; missing?: string[] } = {},
): GraphSource & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    neighbours(id: string) {
      calls.push(id);
      if (o.missing?.includes(id) || !(id in links)) {
        throw Object.assign(new Error(`no object ${id}`), { status: 404 });
      }
      const edges: GraphEdge[] = links[id]!.map((to, i) => ({
        from: id,
        to,
        kind: "fot",
        label: `fot ${i + 1}`,
      }));
      for (const [from, to] of o.ties ?? []) {
        if (from === id || to === id) edges.push({ from, to, kind: "tie", label: "tie" });
      }
      const node: GraphNode = {
        id,
        name: `/${id}`,
        kind: "bytes",
        size: 4096,
        degree: links[id]!.length,
      };
      return { node, edges };
    },
  };
}

const ids = (nodes: { id: string }[]) => nodes.map((n) => n.id);
const arrows = (edges: GraphEdge[]) => edges.map((e) => `${e.from}>${e.to}`);

Deno.test("buildGraph() walks breadth-first to the depth asked", () => {
  // a -> b -> c -> d, a -> e
  const links = { a: ["b", "e"], b: ["c"], c: ["d"], d: [], e: [] };
  const g0 = buildGraph(source(links), "a", { depth: 0 });
  assert.deepEqual(ids(g0.nodes), ["a"]);
  assert.deepEqual(g0.edges, []);
  const g1 = buildGraph(source(links), "a");
  assert.deepEqual(ids(g1.nodes), ["a", "b", "e"]);
  assert.deepEqual(arrows(g1.edges), ["a>b", "a>e"]);
  assert.equal(g1.truncated, false);
  const g2 = buildGraph(source(links), "a", { depth: 2 });
  assert.deepEqual(ids(g2.nodes), ["a", "b", "e", "c"]);
  assert.deepEqual(arrows(g2.edges), ["a>b", "a>e", "b>c"]);
  const g9 = buildGraph(source(links), "a", { depth: 9 });
  assert.deepEqual(ids(g9.nodes), ["a", "b", "e", "c", "d"]);
  assert.equal(g9.edges[0]!.label, "fot 1");
  assert.equal(g9.nodes[0]!.name, "/a");
});

Deno.test("buildGraph() visits each object once and keeps edges back into the graph", () => {
  // A cycle a -> b -> c -> a, and b -> a too.
  const src = source({ a: ["b"], b: ["c", "a"], c: ["a"] });
  const g = buildGraph(src, "a", { depth: 2 });
  assert.deepEqual(ids(g.nodes), ["a", "b", "c"]);
  assert.deepEqual(arrows(g.edges), ["a>b", "b>c", "b>a", "c>a"], "c is the last hop: c>a kept");
  assert.deepEqual(src.calls, ["a", "b", "c"], "one neighbours() call per object");
  // At depth 1, c is not in the graph: no edge to it.
  assert.deepEqual(arrows(buildGraph(source({ a: ["b"], b: ["c", "a"], c: [] }), "a").edges), [
    "a>b",
    "b>a",
  ]);
});

Deno.test("buildGraph() follows ties both ways and lists an edge once", () => {
  // x is tied to a (an in-tie of a, reported by both a and x).
  const src = source({ a: [], x: [] }, { ties: [["x", "a"]] });
  const g = buildGraph(src, "a");
  assert.deepEqual(ids(g.nodes), ["a", "x"]);
  assert.deepEqual(g.edges, [{ from: "x", to: "a", kind: "tie", label: "tie" }]);
});

Deno.test("buildGraph() stops at maxNodes and says so", () => {
  const hub: Record<string, string[]> = { hub: [] };
  for (let i = 0; i < 1000; i++) {
    hub.hub!.push(`n${i}`);
    hub[`n${i}`] = [];
  }
  const g = buildGraph(source(hub), "hub", { maxNodes: 101 });
  assert.equal(g.nodes.length, 101);
  assert.equal(g.edges.length, 100);
  assert.equal(g.truncated, true);
  const all = buildGraph(source(hub), "hub");
  assert.equal(all.nodes.length, 1001);
  assert.equal(all.truncated, false);
});

Deno.test("buildGraph() shows an unreadable neighbour as missing; the root's error is thrown", () => {
  const g = buildGraph(source({ a: ["gone"] }), "a", { depth: 3 });
  assert.deepEqual(g.nodes[1], { id: "gone", name: null, kind: "missing", size: 0, degree: 0 });
  assert.deepEqual(arrows(g.edges), ["a>gone"]);
  const odd: GraphSource = {
    neighbours: (id) => {
      if (id === "b") throw new TypeError("boom");
      return source({ a: ["b"] }).neighbours(id);
    },
  };
  assert.equal(buildGraph(odd, "a").nodes[1]!.kind, "unreadable");
  assert.throws(() => buildGraph(source({}), "nope"), /no object nope/);
  assert.throws(() => buildGraph(source({ a: [] }), "a", { depth: -1 }), RangeError);
  assert.throws(() => buildGraph(source({ a: [] }), "a", { depth: 1.5 }), RangeError);
  assert.throws(() => buildGraph(source({ a: [] }), "a", { maxNodes: 0 }), RangeError);
});

Deno.test("toDot() writes every node and edge, quoting names", () => {
  const src = source({ a: ["b"], b: [] }, { ties: [["b", "a"]] });
  const g = buildGraph(src, "a");
  g.nodes[1]!.name = '/we"ird\\name';
  const dot = toDot(g);
  assert.match(dot, /^digraph twz \{\n/);
  assert.match(dot, /\}\n$/);
  assert.match(dot, /"a" \[label="\/a\\nbytes, 4 KiB\\na", style="rounded,bold"\];/);
  assert.ok(dot.includes('"b" [label="/we\\"ird\\\\name\\nbytes, 4 KiB\\nb"]'), dot);
  assert.ok(dot.includes('"a" -> "b" [label="fot 1"];'), dot);
  assert.ok(dot.includes('"b" -> "a" [label="tie", style=dashed];'), dot);
  assert.ok(!dot.includes("truncated"));
  assert.match(toDot({ ...g, truncated: true }), /label="truncated: 2 nodes shown"/);
});

Deno.test("toJson() is the graph as JSON", () => {
  const g = buildGraph(source({ a: ["b"], b: [] }), "a");
  const j = JSON.parse(toJson(g));
  assert.deepEqual(j, { nodes: g.nodes, edges: g.edges, truncated: false });
  assert.ok(toJson(g).endsWith("}\n"));
});

Deno.test("toSvg() lays the graph out with Graphviz", async () => {
  const g = buildGraph(source({ a: ["b"], b: [] }), "a");
  const svg = await toSvg(g, { dot: "/usr/bin/dot" });
  assert.match(svg, /<svg[\s>]/);
  assert.match(svg, /<\/svg>\s*$/);
  assert.ok(svg.includes("fot 1"), "the edge's label is drawn");
  assert.ok(svg.includes("/a"), "the node's name is drawn");
});

Deno.test("toSvg() without Graphviz is one line naming apt-get install graphviz", async () => {
  const g = buildGraph(source({ a: [] }), "a");
  await assert.rejects(() => toSvg(g, { dot: "/nonexistent/dot" }), (e: unknown) => {
    assert.ok(e instanceof TwzError);
    assert.equal(e.code, ErrorCode.NotSupported);
    assert.match(e.message, /apt-get install graphviz/);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  // A dot that fails: its first error line — also when it exits before
  // reading a large graph (a broken pipe, which a small one may or may not hit).
  const names = Array.from({ length: 3000 }, (_, i) => `n${i}`);
  const big = buildGraph(
    source(Object.fromEntries(names.map((n, i) => [n, i === 0 ? names.slice(1) : []]))),
    "n0",
    { maxNodes: names.length },
  );
  for (const graph of [g, big]) {
    await assert.rejects(
      () => toSvg(graph, { dot: "false" }),
      (e: unknown) => e instanceof TwzError && /false -Tsvg failed: exit code 1/.test(e.message),
    );
  }
});

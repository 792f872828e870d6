/**
 * The pointer graph around an object, for `twz graph` and the explorer's
 * `/api/graph/ID`: nodes are objects, edges their FOT entries (an object
 * naming another, by ID or through a resolved name) and ties.
 *
 * {@linkcode buildGraph} walks breadth-first from a root over a
 * {@linkcode GraphSource} (the explorer's `ExplorerModel` is one; a test's
 * little map is another) up to a depth and a node budget;
 * {@linkcode toDot}, {@linkcode toJson} and {@linkcode toSvg} write it out
 * (the SVG through Graphviz's `dot`, the Debian package `graphviz`).
 *
 * @example A graph from a small source, as DOT
 * ```ts
 * import { buildGraph, type GraphSource, toDot } from "./graph.ts";
 * const links: Record<string, string[]> = { a: ["b"], b: ["c"], c: [] };
 * const src: GraphSource = {
 *   neighbours: (id) => ({
 *     node: { id, name: `/${id}`, kind: "bytes", size: 4096, degree: links[id]!.length },
 *     edges: links[id]!.map((to, i) => ({ from: id, to, kind: "fot", label: `fot ${i + 1}` })),
 *   }),
 * };
 * const g = buildGraph(src, "a", { depth: 1 });
 * console.log(g.nodes.map((n) => n.id), g.edges.length); // ["a", "b"] 1
 * console.log(toDot(g).includes('"a" -> "b"')); // true
 * ```
 *
 * @module
 */
import { ErrorCode, TwzError } from "@twz/kernel/abi";
import type { GraphEdge, GraphNode, GraphView } from "./api_types.ts";

export type { GraphEdge, GraphNode };

/** What the graph is built from: one object and the edges that touch it. */
export interface GraphSource {
  /**
   * The object `id` as a node, and its edges: its out-edges (FOT entries,
   * ties it holds) and any in-edges the source knows (objects tied to it).
   *
   * @throws For an object that cannot be read (unknown, no access): the
   * root's error reaches the caller; any other node is shown as
   * `missing` (an `ExplorerError` with status 404) or `unreadable`.
   */
  neighbours(id: string): { node: GraphNode; edges: GraphEdge[] };
}

/** Options of {@linkcode buildGraph}. */
export interface GraphOptions {
  /** Hops from the root (0: the root alone). @default {1} */
  depth?: number | undefined;
  /** Most nodes; past it the walk stops and `truncated` is set. @default {5000} */
  maxNodes?: number | undefined;
}

/** A pointer graph: its nodes (the root first), edges, and whether the node budget cut it short. */
export type Graph = GraphView;

/** The default node budget of {@linkcode buildGraph}. */
export const MAX_NODES = 5000;

/**
 * The graph around `root`, breadth-first: the root's edges, then its
 * neighbours' (while fewer than `depth` hops from the root), each object
 * once. Edges between two nodes already in the graph are kept also when
 * they start at the last hop (a list's tail pointing back at the head shows
 * as the cycle it is); an edge is listed once even when two nodes report it.
 * A neighbour the source cannot read is a node of kind `missing` (unknown
 * object) or `unreadable`, with no edges of its own.
 *
 * @param src Where nodes and edges come from.
 * @param root The root object's ID (as the source names objects).
 * @param o `depth` (default 1) and `maxNodes` (default 5000).
 * @returns The graph.
 * @throws {RangeError} `depth` is not an integer >= 0 or `maxNodes` not >= 1.
 * @throws Whatever `src.neighbours(root)` throws.
 * @example A cycle of two objects
 * ```ts
 * import { buildGraph } from "./graph.ts";
 * const node = (id: string) => ({ id, name: null, kind: "bytes", size: 1024, degree: 1 });
 * const g = buildGraph({
 *   neighbours: (id) => ({
 *     node: node(id),
 *     edges: [{ from: id, to: id === "a" ? "b" : "a", kind: "fot", label: "fot 1" }],
 *   }),
 * }, "a");
 * console.log(g.edges.map((e) => `${e.from}->${e.to}`)); // ["a->b", "b->a"]
 * ```
 */
export function buildGraph(src: GraphSource, root: string, o: GraphOptions = {}): Graph {
  const depth = o.depth ?? 1;
  const maxNodes = o.maxNodes ?? MAX_NODES;
  if (!Number.isSafeInteger(depth) || depth < 0) {
    throw new RangeError(`depth must be an integer >= 0, not ${depth}`);
  }
  if (!Number.isSafeInteger(maxNodes) || maxNodes < 1) {
    throw new RangeError(`maxNodes must be an integer >= 1, not ${maxNodes}`);
  }
  const nodes = new Map<string, GraphNode>();
  const edges: GraphEdge[] = [];
  const seen = new Set<string>();
  let truncated = false;

  const first = src.neighbours(root);
  const queue: { id: string; hop: number; edges: GraphEdge[] }[] = [];
  nodes.set(root, first.node);
  queue.push({ id: root, hop: 0, edges: first.edges });

  const addEdge = (e: GraphEdge) => {
    const key = `${e.from}\0${e.to}\0${e.kind}\0${e.label}`;
    if (seen.has(key)) return;
    seen.add(key);
    edges.push(e);
  };

  for (let head = 0; head < queue.length; head++) {
    const { id, hop, edges: out } = queue[head]!;
    for (const e of out) {
      if (e.from !== id && e.to !== id) continue; // not this node's
      const other = e.from === id ? e.to : e.from;
      if (nodes.has(other)) {
        addEdge(e);
        continue;
      }
      // A node at the last hop keeps only edges to nodes already in (every
      // node is in by then: breadth-first, the last hop comes last).
      if (hop >= depth) continue;
      if (nodes.size >= maxNodes) {
        truncated = true;
        continue;
      }
      const n = visit(src, other);
      nodes.set(other, n.node);
      addEdge(e);
      queue.push({ id: other, hop: hop + 1, edges: n.edges });
    }
  }
  return { nodes: [...nodes.values()], edges, truncated };
}

/** A neighbour's node and edges; one the source cannot read stands alone. */
function visit(src: GraphSource, id: string): { node: GraphNode; edges: GraphEdge[] } {
  try {
    return src.neighbours(id);
  } catch (error) {
    const status = (error as { status?: unknown } | null)?.status;
    return {
      node: { id, name: null, kind: status === 404 ? "missing" : "unreadable", size: 0, degree: 0 },
      edges: [],
    };
  }
}

/** A DOT string literal. */
function dotString(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\r?\n/g, "\\n")}"`;
}

/** A size for a node's label: `4096 B`, `64 KiB`, `1.5 MiB`. */
function sizeText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/**
 * The graph in Graphviz's DOT language: one box per object (its name when
 * it has one, its kind and size, and its ID), FOT edges as solid arrows
 * labelled with the entry (`fot 1`, or the name a name entry holds), ties
 * as dashed ones; the root is drawn bold. Node names are the object IDs.
 *
 * @param g The graph.
 * @returns The DOT text, ending in a newline.
 * @example
 * ```ts
 * import { toDot } from "./graph.ts";
 * const dot = toDot({
 *   nodes: [{ id: "a", name: "/a", kind: "bytes", size: 4096, degree: 0 }],
 *   edges: [],
 *   truncated: false,
 * });
 * console.log(dot.split("\n")[0]); // digraph twz {
 * ```
 */
export function toDot(g: Graph): string {
  const out = [
    "digraph twz {",
    "  graph [rankdir=LR];",
    '  node [shape=box, style=rounded, fontname="monospace", fontsize=10];',
    '  edge [fontname="monospace", fontsize=9];',
  ];
  if (g.truncated) {
    out.push(
      `  graph [label=${dotString(`truncated: ${g.nodes.length} nodes shown`)}, labelloc=t];`,
    );
  }
  g.nodes.forEach((n, i) => {
    const lines = [n.name ?? n.id, `${n.kind}, ${sizeText(n.size)}`];
    if (n.name !== null) lines.push(n.id);
    const attrs = [`label=${dotString(lines.join("\n"))}`];
    if (i === 0) attrs.push('style="rounded,bold"');
    if (n.kind === "missing" || n.kind === "unreadable") attrs.push('color="gray50"');
    out.push(`  ${dotString(n.id)} [${attrs.join(", ")}];`);
  });
  for (const e of g.edges) {
    const attrs = [`label=${dotString(e.label)}`];
    if (e.kind === "tie") attrs.push("style=dashed");
    out.push(`  ${dotString(e.from)} -> ${dotString(e.to)} [${attrs.join(", ")}];`);
  }
  out.push("}");
  return out.join("\n") + "\n";
}

/**
 * The graph as JSON: `{ "nodes": [...], "edges": [...], "truncated": … }`
 * (the explorer's `/api/graph/ID` shape), indented, ending in a newline.
 *
 * @param g The graph.
 * @returns The JSON text.
 * @example
 * ```ts
 * import { toJson } from "./graph.ts";
 * console.log(JSON.parse(toJson({ nodes: [], edges: [], truncated: false })).truncated); // false
 * ```
 */
export function toJson(g: Graph): string {
  return JSON.stringify({ nodes: g.nodes, edges: g.edges, truncated: g.truncated }, null, 2) +
    "\n";
}

/** Options of {@linkcode toSvg}. */
export interface SvgOptions {
  /** The Graphviz `dot` program. @default {Deno.env TWZ_DOT, else "dot" on the PATH} */
  dot?: string | undefined;
}

/**
 * The graph as SVG, laid out by Graphviz (`dot -Tsvg`, fed {@linkcode toDot}).
 *
 * @param g The graph.
 * @param o `dot`: the program (default `$TWZ_DOT`, else `dot` from the PATH).
 * @returns The SVG document.
 * @throws {TwzError} `NotSupported` (one line naming `apt-get install
 * graphviz`) when `dot` is not installed; `InvalidArgument` when it fails
 * (its first line of errors).
 * @tags allow-run, allow-env
 * @example
 * ```ts ignore
 * import { toSvg } from "./graph.ts";
 * const svg = await toSvg({ nodes: [], edges: [], truncated: false });
 * console.log(svg.includes("<svg")); // true
 * ```
 */
export async function toSvg(g: Graph, o: SvgOptions = {}): Promise<string> {
  const dot = o.dot ?? envDot() ?? "dot";
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(dot, {
      args: ["-Tsvg"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new TwzError(
        ErrorCode.NotSupported,
        `--format svg needs Graphviz, and ${dot} is not installed (apt-get install graphviz)`,
      );
    }
    throw error;
  }
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(toDot(g)));
    await writer.close();
  } catch (error) {
    // A program that exits before reading its input breaks the pipe; its
    // exit status and error output below say why.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
  const r = await child.output();
  if (!r.success) {
    const why = new TextDecoder().decode(r.stderr).split("\n").find((l) => l.trim() !== "") ??
      `exit code ${r.code}`;
    throw new TwzError(ErrorCode.InvalidArgument, `${dot} -Tsvg failed: ${why.trim()}`);
  }
  return new TextDecoder().decode(r.stdout);
}

/** `$TWZ_DOT`, when set and readable. */
function envDot(): string | undefined {
  try {
    return Deno.env.get("TWZ_DOT") || undefined;
  } catch {
    return undefined; // no --allow-env: the PATH's dot
  }
}

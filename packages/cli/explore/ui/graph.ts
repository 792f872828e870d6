/// <reference lib="dom" />
/**
 * The graph view (`#/graph/ID`): the pointer graph around an object on a
 * canvas. Nodes are objects, edges are FOT entries (solid, with an arrow)
 * and ties (dashed). It starts with the object and its neighbours; clicking a
 * node (on the canvas or in the list beside it) expands it one hop (the
 * server's `/api/graph/ID?depth=1`). Drag to pan, wheel to zoom, `fit` to see
 * everything. The layout is `layout.ts` (rings around the expanded node and a
 * bounded relaxation; only new nodes move); drawing batches every node of a
 * colour and every edge of a kind into one path, so thousands of nodes draw
 * in a few milliseconds, and labels appear only when zoomed in enough to read.
 *
 * Test hooks: `canvas#graph`; `ul#graph-nodes > li[data-id]` (one per node,
 * a click expands it); `globalThis.twzGraph = { expand(id), nodeCount() }`;
 * after each render `body.dataset.graphNodes = String(n)` and the performance
 * mark `twz:graph-rendered`.
 *
 * @module
 */
import { getJson, type GraphEdge, type GraphNode, type GraphView } from "./api.ts";
import { type Ctx, objectHref, type View } from "./app.ts";
import { bytes, count, h, replace, shortId } from "./dom.ts";
import { GraphLayout, type Point } from "./layout.ts";

/** What tests and scripts may call: `globalThis.twzGraph`. */
export interface GraphHandle {
  /** Expand a node one hop; resolves once the result is drawn. */
  expand(id: string): Promise<void>;
  /** Nodes shown. */
  nodeCount(): number;
}

/** Node colours by kind (the part before `:`). */
const COLOURS: Record<string, string> = {
  "naming-root": "#7c3aed",
  directory: "#8b5cf6",
  hashmap: "#0891b2",
  btree: "#0e7490",
  vector: "#0284c7",
  queue: "#0369a1",
  heap: "#65a30d",
  txlog: "#a16207",
  thread: "#db2777",
  code: "#be185d",
  key: "#b45309",
  context: "#c2410c",
  device: "#475569",
  layout: "#6b7280",
  struct: "#16a34a",
  bytes: "#64748b",
};
const RADIUS = 7;

function colour(kind: string): string {
  return COLOURS[kind.replace(/:.*$/, "")] ?? "#64748b";
}

function edgeKey(e: GraphEdge): string {
  return `${e.from}>${e.to}>${e.kind}>${e.label}`;
}

/**
 * Render the graph view.
 *
 * @param ctx The view's context.
 * @param root The object the graph starts from.
 * @returns The view.
 */
export async function graphView(ctx: Ctx, root: string): Promise<View> {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const expanded = new Set<string>();
  const items = new Map<string, HTMLLIElement>();
  const layout = new GraphLayout();
  let selected: string | null = root;
  let truncated = false;
  const view = { scale: 1, tx: 0, ty: 0, touched: false };

  const canvas = h("canvas#graph", { "aria-label": "pointer graph" });
  const list = h("ul#graph-nodes");
  const stats = h("span.summary");
  const info = h("div.nodeinfo");
  const fit = h("button", { type: "button", title: "show every node" }, "fit");
  replace(
    ctx.main,
    h(
      "div.toolbar",
      null,
      h("h2", null, "Pointer graph"),
      h("span.hint", null, "click a node to expand it · drag to pan · wheel to zoom"),
      h("span.spacer"),
      stats,
      fit,
    ),
    h(
      "div.graphwrap",
      null,
      h("div.canvaswrap", null, canvas),
      h("aside.graphside", null, info, h("h3", null, "Nodes"), list),
    ),
  );

  // --- drawing -------------------------------------------------------------
  let frame = 0;
  function schedule(): void {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      draw();
    });
  }

  function size(): { w: number; h: number } {
    const box = canvas.parentElement!.getBoundingClientRect();
    const dpr = globalThis.devicePixelRatio || 1;
    const w = Math.max(100, Math.floor(box.width));
    const hh = Math.max(100, Math.floor(box.height));
    if (canvas.width !== w * dpr || canvas.height !== hh * dpr) {
      canvas.width = w * dpr;
      canvas.height = hh * dpr;
      canvas.style.width = `${w}px`;
      canvas.style.height = `${hh}px`;
    }
    return { w, h: hh };
  }

  function toScreen(p: Point): Point {
    return { x: p.x * view.scale + view.tx, y: p.y * view.scale + view.ty };
  }

  function fitView(): void {
    const b = layout.bounds();
    const { w, h: hh } = size();
    if (!b) return;
    const pad = 40;
    const sw = Math.max(1, b.maxX - b.minX);
    const sh = Math.max(1, b.maxY - b.minY);
    view.scale = Math.min(1.6, (w - 2 * pad) / sw, (hh - 2 * pad) / sh);
    view.tx = w / 2 - ((b.minX + b.maxX) / 2) * view.scale;
    view.ty = hh / 2 - ((b.minY + b.maxY) / 2) * view.scale;
  }

  function draw(): void {
    const { w, h: hh } = size();
    const dpr = globalThis.devicePixelRatio || 1;
    const g = canvas.getContext("2d");
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hh);
    const r = Math.max(2, Math.min(12, RADIUS * Math.sqrt(view.scale)));
    const arrows = edges.size <= 400 ? view.scale > 0.3 : view.scale > 1.2;
    for (const kind of ["fot", "tie"]) {
      g.beginPath();
      const heads: [Point, Point][] = [];
      for (const e of edges.values()) {
        if ((e.kind === "tie") !== (kind === "tie")) continue;
        const a = layout.positions.get(e.from);
        const b = layout.positions.get(e.to);
        if (!a || !b) continue;
        const p = toScreen(a);
        const q = toScreen(b);
        g.moveTo(p.x, p.y);
        g.lineTo(q.x, q.y);
        if (arrows) heads.push([p, q]);
      }
      g.setLineDash(kind === "tie" ? [5, 4] : []);
      g.strokeStyle = kind === "tie" ? "rgba(217,119,6,0.8)" : "rgba(100,116,139,0.5)";
      g.lineWidth = edges.size <= 200 ? 1.5 : 1;
      g.stroke();
      g.setLineDash([]);
      if (heads.length) {
        g.beginPath();
        for (const [p, q] of heads) {
          const d = Math.hypot(q.x - p.x, q.y - p.y);
          if (d < r * 3) continue;
          const ux = (q.x - p.x) / d;
          const uy = (q.y - p.y) / d;
          const tipX = q.x - ux * (r + 1);
          const tipY = q.y - uy * (r + 1);
          g.moveTo(tipX, tipY);
          g.lineTo(tipX - ux * 9 - uy * 4, tipY - uy * 9 + ux * 4);
          g.lineTo(tipX - ux * 9 + uy * 4, tipY - uy * 9 - ux * 4);
          g.closePath();
        }
        g.fillStyle = kind === "tie" ? "rgba(217,119,6,0.9)" : "rgba(71,85,105,0.8)";
        g.fill();
      }
    }
    // Nodes, one path per colour; only those on screen.
    const byColour = new Map<string, Point[]>();
    const onScreen: [string, Point][] = [];
    for (const [id, p] of layout.positions) {
      const s = toScreen(p);
      if (s.x < -20 || s.y < -20 || s.x > w + 20 || s.y > hh + 20) continue;
      const c = colour(nodes.get(id)?.kind ?? "bytes");
      let l = byColour.get(c);
      if (!l) byColour.set(c, l = []);
      l.push(s);
      onScreen.push([id, s]);
    }
    for (const [c, pts] of byColour) {
      g.beginPath();
      for (const s of pts) {
        g.moveTo(s.x + r, s.y);
        g.arc(s.x, s.y, r, 0, 2 * Math.PI);
      }
      g.fillStyle = c;
      g.fill();
    }
    // Expanded nodes: a white ring; the selected one: a dark ring.
    g.beginPath();
    for (const id of expanded) {
      const p = layout.positions.get(id);
      if (!p) continue;
      const s = toScreen(p);
      g.moveTo(s.x + r + 2.5, s.y);
      g.arc(s.x, s.y, r + 2.5, 0, 2 * Math.PI);
    }
    g.strokeStyle = "#94a3b8";
    g.lineWidth = 1.5;
    g.stroke();
    const sp = selected ? layout.positions.get(selected) : undefined;
    if (sp) {
      const s = toScreen(sp);
      g.beginPath();
      g.arc(s.x, s.y, r + 4, 0, 2 * Math.PI);
      g.strokeStyle = "#0f172a";
      g.lineWidth = 2;
      g.stroke();
    }
    if (onScreen.length <= 300 && view.scale >= 0.5) {
      g.textBaseline = "middle";
      if (edges.size <= 60) {
        // Edge labels (`fot 1`, a name entry's name) at the middle of each edge.
        g.font = "11px system-ui, sans-serif";
        g.textAlign = "center";
        for (const e of edges.values()) {
          const a = layout.positions.get(e.from);
          const b = layout.positions.get(e.to);
          if (!a || !b || !e.label) continue;
          const p = toScreen({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
          g.lineWidth = 3;
          g.strokeStyle = "rgba(255,255,255,0.95)";
          g.strokeText(e.label, p.x, p.y);
          g.fillStyle = e.kind === "tie" ? "#b45309" : "#64748b";
          g.fillText(e.label, p.x, p.y);
        }
        g.textAlign = "start";
      }
      g.font = "12px system-ui, sans-serif";
      for (const [id, s] of onScreen) {
        const label = labelOf(id);
        g.lineWidth = 3;
        g.strokeStyle = "rgba(255,255,255,0.9)";
        g.strokeText(label, s.x + r + 8, s.y);
        g.fillStyle = "#0f172a";
        g.fillText(label, s.x + r + 8, s.y);
      }
    }
  }

  function labelOf(id: string): string {
    const n = nodes.get(id);
    const name = n?.name;
    if (name) return name.length > 28 ? `…${name.slice(-27)}` : name;
    return shortId(id);
  }

  function rendered(): void {
    stats.textContent = `${count(nodes.size)} nodes · ${count(edges.size)} edges${
      truncated ? " · truncated by the server" : ""
    }`;
    showInfo();
    draw();
    document.body.dataset.graphNodes = String(nodes.size);
    performance.mark("twz:graph-rendered");
  }

  function showInfo(): void {
    const n = selected ? nodes.get(selected) : undefined;
    if (!n) {
      replace(info, h("p.none", null, "select a node"));
      return;
    }
    replace(
      info,
      h("h3", null, n.name ?? "(unnamed)"),
      h("div.mono.objid", null, n.id),
      h(
        "p",
        null,
        h("span", { class: `kind k-${n.kind.replace(/:.*$/, "")}` }, n.kind),
        ` ${bytes(n.size)} · degree ${n.degree}`,
      ),
      h(
        "p",
        null,
        h("a.button", { href: objectHref(n.id) }, "open object"),
        " ",
        expanded.has(n.id) ? h("span.sub", null, "expanded") : null,
      ),
    );
  }

  // --- data ----------------------------------------------------------------
  function merge(g: GraphView, center: string): string[] {
    for (const n of g.nodes) nodes.set(n.id, n);
    const order: string[] = [];
    for (const e of g.edges) {
      edges.set(edgeKey(e), e);
      if (e.from === center) order.push(e.to);
      else if (e.to === center) order.push(e.from);
    }
    for (const n of g.nodes) order.push(n.id);
    truncated ||= g.truncated;
    const fresh = layout.expand(center, order);
    // Nodes the answer holds but that were not reached through `center` (depth > 1).
    for (const n of g.nodes) if (!layout.positions.has(n.id)) layout.pin(n.id);
    return fresh;
  }

  function addItems(ids: string[]): void {
    const frag = document.createDocumentFragment();
    for (const id of ids) {
      if (items.has(id)) continue;
      const n = nodes.get(id);
      const li = h(
        "li",
        { "data-id": id, title: id },
        h("span.dot", { style: `background:${colour(n?.kind ?? "bytes")}` }),
        labelOf(id),
      );
      items.set(id, li);
      frag.appendChild(li);
    }
    list.appendChild(frag);
  }

  const pending = new Map<string, Promise<void>>();
  function expand(id: string): Promise<void> {
    const had = pending.get(id);
    if (had) return had;
    const p = (async () => {
      let g: GraphView;
      try {
        g = await getJson<GraphView>(`/api/graph/${id}?depth=1`);
      } catch (e) {
        if (ctx.live()) ctx.error(e);
        return;
      }
      if (!ctx.live()) return;
      expanded.add(id);
      const fresh = merge(g, id);
      addItems([id, ...fresh, ...g.nodes.map((n) => n.id)]);
      items.get(id)?.classList.add("expanded");
      selected = id;
      for (const li of list.querySelectorAll("li.selected")) li.classList.remove("selected");
      items.get(id)?.classList.add("selected");
      if (!view.touched) fitView();
      rendered();
    })().finally(() => pending.delete(id));
    pending.set(id, p);
    return p;
  }

  // --- input ---------------------------------------------------------------
  list.addEventListener("click", (ev) => {
    const li = (ev.target as HTMLElement).closest<HTMLLIElement>("li[data-id]");
    if (li) void expand(li.dataset.id!);
  });
  fit.addEventListener("click", () => {
    fitView();
    schedule();
  });
  let drag: { x: number; y: number; tx: number; ty: number; moved: boolean } | null = null;
  canvas.addEventListener("pointerdown", (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false };
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    view.touched = true;
    view.tx = drag.tx + dx;
    view.ty = drag.ty + dy;
    schedule();
  });
  canvas.addEventListener("pointerup", (ev) => {
    const d = drag;
    drag = null;
    if (!d || d.moved) return;
    const box = canvas.getBoundingClientRect();
    const p = {
      x: (ev.clientX - box.left - view.tx) / view.scale,
      y: (ev.clientY - box.top - view.ty) / view.scale,
    };
    const id = layout.hit(p, Math.max(RADIUS + 4, 12 / view.scale));
    if (!id) return;
    selected = id;
    for (const li of list.querySelectorAll("li.selected")) li.classList.remove("selected");
    items.get(id)?.classList.add("selected");
    items.get(id)?.scrollIntoView({ block: "nearest" });
    if (expanded.has(id)) {
      showInfo();
      schedule();
    } else void expand(id);
  });
  canvas.addEventListener("dblclick", (ev) => {
    const box = canvas.getBoundingClientRect();
    const p = {
      x: (ev.clientX - box.left - view.tx) / view.scale,
      y: (ev.clientY - box.top - view.ty) / view.scale,
    };
    const id = layout.hit(p, Math.max(RADIUS + 4, 12 / view.scale));
    if (id) location.hash = objectHref(id);
  });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const box = canvas.getBoundingClientRect();
    const mx = ev.clientX - box.left;
    const my = ev.clientY - box.top;
    const k = Math.exp(-ev.deltaY * 0.0015);
    const scale = Math.min(8, Math.max(0.02, view.scale * k));
    view.tx = mx - ((mx - view.tx) * scale) / view.scale;
    view.ty = my - ((my - view.ty) * scale) / view.scale;
    view.scale = scale;
    view.touched = true;
    schedule();
  }, { passive: false });
  const resize = new ResizeObserver(() => schedule());
  resize.observe(canvas.parentElement!);

  const handle: GraphHandle = { expand, nodeCount: () => nodes.size };
  (globalThis as unknown as { twzGraph?: GraphHandle }).twzGraph = handle;

  await expand(root);
  return {
    watch: root,
    async refresh() {
      // Re-ask each expanded node (at most 50) for its neighbours; new ones are placed.
      for (const id of [...expanded].slice(0, 50)) {
        let g: GraphView;
        try {
          g = await getJson<GraphView>(`/api/graph/${id}?depth=1`);
        } catch {
          continue;
        }
        if (!ctx.live()) return;
        addItems(merge(g, id));
      }
      rendered();
    },
    dispose() {
      resize.disconnect();
      if (frame) cancelAnimationFrame(frame);
      const g = globalThis as unknown as { twzGraph?: GraphHandle };
      if (g.twzGraph === handle) delete g.twzGraph;
    },
  };
}

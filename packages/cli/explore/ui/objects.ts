/// <reference lib="dom" />
/**
 * The object table: one page of the server's object list (the server sorts,
 * filters and pages; the page renders only the rows it receives, so 100,000
 * objects cost the browser what 100 do). Sortable by clicking a column head,
 * filtered by the box above it (as you type, after a short pause), paged by
 * the buttons. The state lives in the hash: `#/objects?offset=0&sort=id&filter=`.
 *
 * Test hooks: `table#objects`, rows `tr[data-id]` with `td.name`; after each
 * page is in the DOM `body.dataset.objectsReady = "1"` and the performance mark
 * `twz:objects-ready`.
 *
 * @module
 */
import { getJson, type ObjectPage, type ObjectRow } from "./api.ts";
import { type Ctx, hashOf, objectHref, setHashQuietly, type View } from "./app.ts";
import { bytes, count, h, replace } from "./dom.ts";

const SORTS = ["id", "name", "size", "created"] as const;
type Sort = typeof SORTS[number];

/** The table's columns: head, sort key (if sortable), cell. */
const COLUMNS: { head: string; sort?: Sort; cell: (r: ObjectRow) => HTMLTableCellElement }[] = [
  {
    head: "ID",
    sort: "id",
    cell: (r) => h("td.id", null, h("a", { href: objectHref(r.id), title: r.id }, r.id)),
  },
  { head: "Name", sort: "name", cell: (r) => h("td.name", null, r.name ?? "") },
  {
    head: "Size",
    sort: "size",
    cell: (r) => h("td.num", { title: `${r.size} bytes` }, bytes(r.size)),
  },
  { head: "Lifetime", cell: (r) => h("td", null, r.lifetime) },
  { head: "Prot", cell: (r) => h("td.mono", null, r.prot) },
  {
    head: "Kind",
    cell: (r) => h("td", null, h("span", { class: `kind k-${kindClass(r.kind)}` }, r.kind)),
  },
  { head: "FOT", cell: (r) => h("td.num", null, r.fot) },
  { head: "Ties", cell: (r) => h("td.num", null, r.ties) },
  {
    head: "Access",
    cell: (r) => h("td", { class: r.access === "no access" ? "noaccess" : "mono" }, r.access),
  },
];

/** A CSS-safe class suffix for a kind (`struct:ListNode` → `struct`). */
export function kindClass(kind: string): string {
  return kind.replace(/:.*$/, "").replace(/[^a-z0-9-]/gi, "");
}

/**
 * Render the object table.
 *
 * @param ctx The view's context.
 * @param query The route's query: `offset`, `limit` (≤ 1000, default 100), `sort`, `filter`.
 * @returns The view.
 */
export async function objectsView(ctx: Ctx, query: URLSearchParams): Promise<View> {
  delete document.body.dataset.objectsReady;
  const state = {
    offset: Math.max(0, Number(query.get("offset")) || 0),
    limit: Math.min(1000, Math.max(1, Number(query.get("limit")) || 100)),
    sort: (SORTS as readonly string[]).includes(query.get("sort") ?? "")
      ? query.get("sort") as Sort
      : "id",
    filter: query.get("filter") ?? "",
  };
  const filter = h("input#filter", {
    type: "search",
    placeholder: "filter: name, ID prefix or kind",
    value: state.filter,
    "aria-label": "filter objects",
  });
  const summary = h("span.summary");
  const prev = h("button#prev", { type: "button", title: "previous page" }, "‹ prev");
  const next = h("button#next", { type: "button", title: "next page" }, "next ›");
  const heads = COLUMNS.map((c) =>
    h("th", {
      class: c.sort ? "sortable" : null,
      "data-sort": c.sort,
      onclick: c.sort
        ? () => {
          state.sort = c.sort!;
          state.offset = 0;
          void load();
        }
        : null,
    }, c.head)
  );
  const tbody = h("tbody");
  const table = h("table#objects.grid", null, h("thead", null, h("tr", null, ...heads)), tbody);
  replace(
    ctx.main,
    h(
      "div.toolbar",
      null,
      h("h2", null, "Objects"),
      filter,
      h("span.spacer"),
      summary,
      prev,
      next,
    ),
    h("div.scroll", null, table),
  );

  let seq = 0;
  let shown = "";
  async function load(): Promise<void> {
    const mine = ++seq;
    setHashQuietly(hashOf("/objects", {
      offset: state.offset || undefined,
      limit: state.limit === 100 ? undefined : state.limit,
      sort: state.sort === "id" ? undefined : state.sort,
      filter: state.filter,
    }));
    const q = new URLSearchParams({
      offset: String(state.offset),
      limit: String(state.limit),
      sort: state.sort,
      filter: state.filter,
    });
    let page: ObjectPage;
    try {
      page = await getJson<ObjectPage>(`/api/objects?${q}`);
    } catch (e) {
      if (ctx.live() && mine === seq) ctx.error(e);
      return;
    }
    if (!ctx.live() || mine !== seq) return;
    // Unchanged (a live refresh of the same page): leave the rows alone.
    const key = JSON.stringify([state, page]);
    if (key === shown) return;
    shown = key;
    const frag = document.createDocumentFragment();
    for (const r of page.rows) {
      const tr = h("tr", { "data-id": r.id, class: r.access === "no access" ? "dim" : null });
      for (const c of COLUMNS) tr.appendChild(c.cell(r));
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    if (page.rows.length === 0) {
      tbody.appendChild(
        h("tr.empty", null, h("td", { colspan: COLUMNS.length }, "no objects match")),
      );
    }
    const first = page.total === 0 ? 0 : page.offset + 1;
    summary.textContent = `${count(first)}–${count(page.offset + page.rows.length)} of ${
      count(page.total)
    }`;
    prev.disabled = page.offset <= 0;
    next.disabled = page.offset + page.rows.length >= page.total;
    for (const th of heads) th.classList.toggle("sorted", th.dataset.sort === state.sort);
    document.body.dataset.objectsReady = "1";
    performance.mark("twz:objects-ready");
  }

  prev.addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    void load();
  });
  next.addEventListener("click", () => {
    state.offset += state.limit;
    void load();
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  filter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      state.filter = filter.value.trim();
      state.offset = 0;
      void load();
    }, 250);
  });
  tbody.addEventListener("click", (ev) => {
    const target = ev.target as HTMLElement;
    if (target.closest("a")) return;
    const tr = target.closest<HTMLTableRowElement>("tr[data-id]");
    if (tr) location.hash = objectHref(tr.dataset.id!);
  });

  await load();
  return { watch: null, refresh: load, dispose: () => clearTimeout(timer) };
}

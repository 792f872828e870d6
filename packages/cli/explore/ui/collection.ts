/// <reference lib="dom" />
/**
 * The collection view (`#/collection/ID?offset=0`): one page (50 entries) of a
 * HashMap, BTreeMap, Vector or Queue as a key/value table, decoded by the
 * server with the codecs the collection records. `#/kv` opens the kv store
 * (the collection named `/kv`).
 *
 * Test hooks: `table#collection`, rows `tr[data-key]` with `td.key` and `td.value`.
 *
 * @module
 */
import { type CollectionPage, getJson } from "./api.ts";
import { type Ctx, hashOf, objectHref, setHashQuietly, type View } from "./app.ts";
import { count, h, replace, shortId } from "./dom.ts";

/** Entries per page. */
const LIMIT = 50;

/**
 * Render the collection view.
 *
 * @param ctx The view's context.
 * @param id The collection object's ID.
 * @param query `offset`: the first entry shown.
 * @param title A heading (the kv store's), else the kind and ID.
 * @returns The view.
 */
export async function collectionView(
  ctx: Ctx,
  id: string,
  query: URLSearchParams,
  title?: string,
): Promise<View> {
  let offset = Math.max(0, Number(query.get("offset")) || 0);
  const heading = h("h2", null, title ?? "Collection");
  const summary = h("span.summary");
  const prev = h("button", { type: "button" }, "‹ prev");
  const next = h("button", { type: "button" }, "next ›");
  const meta = h("p.sub");
  const tbody = h("tbody");
  replace(
    ctx.main,
    h("div.toolbar", null, heading, h("span.spacer"), summary, prev, next),
    meta,
    h(
      "div.scroll",
      null,
      h(
        "table#collection.grid",
        { "data-id": id },
        h("thead", null, h("tr", null, h("th", null, "key"), h("th", null, "value"))),
        tbody,
      ),
    ),
  );

  let seq = 0;
  let shown = "";
  async function load(): Promise<void> {
    const mine = ++seq;
    let page: CollectionPage;
    try {
      page = await getJson<CollectionPage>(`/api/collection/${id}?offset=${offset}&limit=${LIMIT}`);
    } catch (e) {
      if (ctx.live() && mine === seq) ctx.error(e);
      return;
    }
    if (!ctx.live() || mine !== seq) return;
    const key = JSON.stringify(page);
    if (key === shown) return;
    shown = key;
    if (!title) heading.textContent = `${page.kind} ${shortId(page.id)}`;
    replace(
      meta,
      `${page.kind} · codecs ${page.codecs} · object `,
      h("a.mono", { href: objectHref(page.id) }, page.id),
    );
    const frag = document.createDocumentFragment();
    for (const r of page.rows) {
      frag.appendChild(
        h(
          "tr",
          { "data-key": r.key },
          h("td.key.mono", null, r.key),
          h("td.value.mono", null, r.value),
        ),
      );
    }
    tbody.replaceChildren(frag);
    if (page.rows.length === 0) {
      tbody.appendChild(h("tr.empty", null, h("td", { colspan: 2 }, "no entries")));
    }
    summary.textContent = `${count(page.total === 0 ? 0 : page.offset + 1)}–${
      count(page.offset + page.rows.length)
    } of ${count(page.total)}`;
    prev.disabled = page.offset <= 0;
    next.disabled = page.offset + page.rows.length >= page.total;
  }
  function go(to: number): void {
    offset = Math.max(0, to);
    setHashQuietly(
      location.hash.startsWith("#/kv")
        ? hashOf("/kv", { offset: offset || undefined })
        : hashOf(`/collection/${id}`, { offset: offset || undefined }),
    );
    void load();
  }
  prev.addEventListener("click", () => go(offset - LIMIT));
  next.addEventListener("click", () => go(offset + LIMIT));
  await load();
  return { watch: id, refresh: load };
}

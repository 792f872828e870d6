/// <reference lib="dom" />
/**
 * The threads view (`#/threads`): every thread of the system with its state,
 * exit code or fault, and times; each links to its thread object.
 *
 * Test hooks: `table#threads`, rows `tr[data-tid]` with `td.state` and `td.name`.
 *
 * @module
 */
import { getJson, type ThreadRow } from "./api.ts";
import { type Ctx, objectHref, type View } from "./app.ts";
import { h, replace, time } from "./dom.ts";

/**
 * Render the threads view.
 *
 * @param ctx The view's context.
 * @returns The view.
 */
export async function threadsView(ctx: Ctx): Promise<View> {
  const tbody = h("tbody");
  const summary = h("span.summary");
  replace(
    ctx.main,
    h("div.toolbar", null, h("h2", null, "Threads"), h("span.spacer"), summary),
    h(
      "div.scroll",
      null,
      h(
        "table#threads.grid",
        null,
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ...["tid", "name", "state", "exit", "fault", "started", "ended", "object"].map((t) =>
              h("th", null, t)
            ),
          ),
        ),
        tbody,
      ),
    ),
  );
  let seq = 0;
  let shown = "";
  async function load(): Promise<void> {
    const mine = ++seq;
    let threads: ThreadRow[];
    try {
      threads = (await getJson<{ threads: ThreadRow[] }>("/api/threads")).threads;
    } catch (e) {
      if (ctx.live() && mine === seq) ctx.error(e);
      return;
    }
    if (!ctx.live() || mine !== seq) return;
    const key = JSON.stringify(threads);
    if (key === shown) return;
    shown = key;
    const frag = document.createDocumentFragment();
    for (const t of threads) {
      frag.appendChild(h(
        "tr",
        { "data-tid": t.tid },
        h("td.num", null, t.tid),
        h("td.name", null, t.name),
        h("td.state", { class: `st-${t.state}` }, t.state),
        h("td.num", null, t.exitCode ?? ""),
        h("td", { class: t.fault ? "problem" : null }, t.fault ?? ""),
        h("td.mono", null, time(t.started)),
        h("td.mono", null, time(t.ended)),
        h("td", null, t.id ? h("a.mono", { href: objectHref(t.id), title: t.id }, t.id) : ""),
      ));
    }
    tbody.replaceChildren(frag);
    if (threads.length === 0) {
      tbody.appendChild(h("tr.empty", null, h("td", { colspan: 8 }, "no threads")));
    }
    const running = threads.filter((t) => t.state !== "exited").length;
    summary.textContent = `${threads.length} thread${
      threads.length === 1 ? "" : "s"
    }, ${running} live`;
  }
  await load();
  return { watch: null, refresh: load };
}

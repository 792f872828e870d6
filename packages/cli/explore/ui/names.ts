/// <reference lib="dom" />
/**
 * The naming tree (left pane) and the directory view (`#/names/PATH`).
 *
 * The tree starts with `/` open; a directory's caret opens or closes it (one
 * `/api/names?path=` request per directory opened); a name opens the object
 * (`#/object/ID`), a directory's name its listing. Large directories show
 * their first 200 entries and a "more" button. On a change of the system the
 * open directories are fetched again and the tree redrawn, keeping what was open.
 *
 * Test hooks: every entry's link carries `data-path="/a/b"`; the directory
 * view is `table#names` with rows `tr[data-path]`.
 *
 * @module
 */
import { getJson, type NameEntry } from "./api.ts";
import { type Ctx, hashOf, objectHref, type View } from "./app.ts";
import { h, replace, shortId } from "./dom.ts";

/** Entries shown per directory before "more". */
const SHOWN = 200;

/** A directory level from `/api/names` (an array, or an object holding one). */
export function entriesOf(v: unknown): NameEntry[] {
  if (Array.isArray(v)) return v as NameEntry[];
  const o = v as { entries?: unknown; names?: unknown };
  if (Array.isArray(o?.entries)) return o.entries as NameEntry[];
  if (Array.isArray(o?.names)) return o.names as NameEntry[];
  return [];
}

/** `/a` + `b` → `/a/b`. */
export function join(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/** Fetch one directory level. */
export async function listDir(path: string): Promise<NameEntry[]> {
  return entriesOf(await getJson<unknown>(`/api/names?path=${encodeURIComponent(path)}`));
}

/** The naming tree of the left pane. */
export class NamingTree {
  readonly #el: HTMLElement;
  readonly #onError: (e: unknown) => void;
  /** Open directories. */
  readonly #open = new Set<string>(["/"]);
  /** Entries shown per directory (grown by "more"). */
  readonly #limit = new Map<string, number>();
  #cache = new Map<string, Promise<NameEntry[]>>();
  #current: string | null = null;
  #drawing = 0;
  /** What the drawn tree shows (open levels and their entries), to skip redrawing the same. */
  #drawn = "";

  /**
   * A tree drawn into `el` (call `draw`).
   *
   * @param el The element to draw into.
   * @param onError Where request errors go.
   */
  constructor(el: HTMLElement, onError: (e: unknown) => void) {
    this.#el = el;
    this.#onError = onError;
    el.addEventListener("click", (ev) => {
      const caret = (ev.target as HTMLElement).closest<HTMLElement>("[data-toggle]");
      if (caret) {
        ev.preventDefault();
        this.toggle(caret.dataset.toggle!);
      }
    });
  }

  /** Open or close a directory. */
  toggle(path: string): void {
    if (this.#open.has(path) && path !== "/") this.#open.delete(path);
    else this.#open.add(path);
    void this.draw();
  }

  /** Open every directory on the way to `path` (and `path` itself when it is one). */
  reveal(path: string): void {
    let p = "";
    for (const part of path.split("/").filter(Boolean)) {
      p += `/${part}`;
      this.#open.add(p);
    }
    void this.draw();
  }

  /** Mark the entry of the object or path shown in the main pane. */
  highlight(key: string | null): void {
    this.#current = key;
    for (const el of this.#el.querySelectorAll(".current")) el.classList.remove("current");
    if (!key) return;
    let first: HTMLElement | null = null;
    for (const el of this.#el.querySelectorAll<HTMLElement>("[data-path]")) {
      if (el.dataset.id === key || el.dataset.path === key) {
        el.classList.add("current");
        first ??= el;
      }
    }
    first?.scrollIntoView({ block: "nearest" });
  }

  /** Fetch the open directories again and redraw. */
  refresh(): Promise<void> {
    this.#cache = new Map();
    return this.draw();
  }

  /**
   * Draw the tree (open directories fetched once each until `refresh`). When
   * nothing shown changed the DOM is left alone (a live system changes often;
   * an entry replaced under the pointer would swallow a click).
   */
  async draw(): Promise<void> {
    const mine = ++this.#drawing;
    const sig: string[] = [];
    const root = await this.#level("/", sig);
    if (mine !== this.#drawing) return;
    const drawn = sig.join("\n");
    if (drawn === this.#drawn && this.#el.firstChild) return;
    this.#drawn = drawn;
    replace(
      this.#el,
      h("div.treehead", null, h("a", { href: hashOf("/names/"), "data-path": "/" }, "/")),
      root,
    );
    this.highlight(this.#current);
  }

  async #level(path: string, sig: string[]): Promise<HTMLElement> {
    let entries: NameEntry[];
    let p = this.#cache.get(path);
    if (!p) this.#cache.set(path, p = listDir(path));
    try {
      entries = await p;
    } catch (e) {
      this.#cache.delete(path);
      this.#onError(e);
      sig.push(`${path} failed`);
      return h("ul.tree", null, h("li.problem", null, (e as Error).message));
    }
    const sorted = [...entries].sort((a, b) =>
      Number(b.dir) - Number(a.dir) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    );
    const limit = this.#limit.get(path) ?? SHOWN;
    sig.push(`${path} ${limit} ${JSON.stringify(entries)}`);
    const ul = h("ul.tree");
    const subs: Promise<void>[] = [];
    const subSigs: string[][] = [];
    for (const e of sorted.slice(0, limit)) {
      const full = join(path, e.name);
      const open = e.dir && this.#open.has(full);
      const li = h(
        "li",
        { class: e.dir ? "dir" : "leaf" },
        e.dir
          ? h(
            "span.caret",
            { "data-toggle": full, title: open ? "close" : "open" },
            open ? "▾" : "▸",
          )
          : h("span.caret.none", null, ""),
        h("a", {
          href: e.dir ? hashOf(`/names${full}`) : objectHref(e.id),
          "data-path": full,
          "data-id": e.id,
          title: `${full}\n${e.id}`,
        }, e.name),
      );
      ul.appendChild(li);
      if (open) {
        const sub: string[] = [];
        subSigs.push(sub);
        subs.push(this.#level(full, sub).then((child) => void li.appendChild(child)));
      }
    }
    if (sorted.length > limit) {
      const more = h("button.more", { type: "button" }, `${sorted.length - limit} more…`);
      more.addEventListener("click", () => {
        this.#limit.set(path, limit + SHOWN * 5);
        void this.draw();
      });
      ul.appendChild(h("li.more", null, more));
    }
    await Promise.all(subs);
    for (const sub of subSigs) sig.push(...sub);
    return ul;
  }
}

/**
 * Render a directory's listing (`#/names/PATH`).
 *
 * @param ctx The view's context.
 * @param path The directory.
 * @returns The view.
 */
export async function namesView(ctx: Ctx, path: string): Promise<View> {
  const tbody = h("tbody");
  replace(
    ctx.main,
    h("div.toolbar", null, h("h2", null, "Directory ", h("span.mono", null, path))),
    h(
      "div.scroll",
      null,
      h(
        "table#names.grid",
        { "data-path": path },
        h("thead", null, h("tr", null, h("th", null, "name"), h("th", null, "object"))),
        tbody,
      ),
    ),
  );
  let seq = 0;
  let shown = "";
  async function load(): Promise<void> {
    const mine = ++seq;
    let entries: NameEntry[];
    try {
      entries = await listDir(path);
    } catch (e) {
      if (ctx.live() && mine === seq) ctx.error(e);
      return;
    }
    if (!ctx.live() || mine !== seq) return;
    const key = JSON.stringify(entries);
    if (key === shown) return;
    shown = key;
    const frag = document.createDocumentFragment();
    for (const e of entries.slice(0, 2000)) {
      const full = join(path, e.name);
      frag.appendChild(h(
        "tr",
        { "data-path": full },
        h(
          "td.name",
          null,
          h(
            "a",
            { href: e.dir ? hashOf(`/names${full}`) : objectHref(e.id) },
            e.name,
            e.dir ? "/" : "",
          ),
        ),
        h("td", null, h("a.mono", { href: objectHref(e.id), title: e.id }, shortId(e.id))),
      ));
    }
    tbody.replaceChildren(frag);
    if (entries.length === 0) {
      tbody.appendChild(h("tr.empty", null, h("td", { colspan: 2 }, "empty directory")));
    }
  }
  await load();
  return { watch: null, refresh: load };
}

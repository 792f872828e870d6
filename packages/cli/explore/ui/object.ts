/// <reference lib="dom" />
/**
 * The object view (`#/object/ID?offset=0`): the object's meta-info, its FOT
 * (each entry linked to its target, or showing its name and resolver), its
 * ties, the typed records of its layout descriptor (pointer fields are links
 * to the objects they point into), and a hex view of its bytes paged by
 * 4 KiB, with offsets and ASCII.
 *
 * Test hooks: `section#object[data-id]`; typed fields `[data-field="NAME"]`
 * whose text is the value; pointer fields `a[data-ptr-target="ID"]`; FOT
 * rows `tr[data-fot-index="i"]` with `a[data-target="ID"]`; after each render
 * `body.dataset.objectReady = ID`.
 *
 * @module
 */
import {
  type BytesView,
  type FotRow,
  getJson,
  type ObjectView,
  postJson,
  type RecordField,
  type TypedRecord,
} from "./api.ts";
import {
  COLLECTION_KINDS,
  type Ctx,
  hashOf,
  objectHref,
  setHashQuietly,
  type View,
} from "./app.ts";
import { bytes, type Child, h, replace, text, time } from "./dom.ts";
import { kindClass } from "./objects.ts";

/** The hex view's page: 4 KiB. */
export const HEX_PAGE = 4096;

/**
 * Render the object view.
 *
 * @param ctx The view's context.
 * @param id The object's ID.
 * @param query `offset`: the hex page's first byte (rounded down to 4 KiB).
 * @returns The view.
 */
export async function objectView(ctx: Ctx, id: string, query: URLSearchParams): Promise<View> {
  delete document.body.dataset.objectReady;
  showLine = ctx.error;
  let offset = Math.max(0, Math.floor((Number(query.get("offset")) || 0) / HEX_PAGE) * HEX_PAGE);
  const section = h("section#object", { "data-id": id });
  replace(ctx.main, section);
  section.appendChild(h("p.loading", null, "loading ", id, " …"));

  let seq = 0;
  let shown = "";
  let firstName: string | null = null;
  async function load(): Promise<void> {
    const mine = ++seq;
    let view: ObjectView;
    let data: BytesView | null = null;
    try {
      const [v, b] = await Promise.all([
        getJson<ObjectView>(`/api/object/${id}`),
        getJson<BytesView>(`/api/object/${id}/bytes?offset=${offset}&length=${HEX_PAGE}`)
          .catch((e) => e as Error),
      ]);
      view = v;
      if (!(b instanceof Error)) data = b;
      else if (v.access !== "no access" && v.size > 0 && ctx.live() && mine === seq) {
        // The object shows; only its bytes could not be read (an offset beyond its size).
        ctx.error(b);
      }
    } catch (e) {
      if (ctx.live() && mine === seq) {
        ctx.error(e);
        replace(section, h("p.problem", null, (e as Error).message));
      }
      return;
    }
    if (!ctx.live() || mine !== seq) return;
    firstName = view.names[0] ?? null;
    // Unchanged (a live refresh): leave the DOM alone.
    const key = JSON.stringify([view, data]);
    if (key !== shown) {
      shown = key;
      render(view, data);
    }
    document.body.dataset.objectReady = id;
  }

  async function page(to: number): Promise<void> {
    offset = to;
    setHashQuietly(hashOf(`/object/${id}`, { offset: offset || undefined }));
    let data: BytesView;
    try {
      data = await getJson<BytesView>(
        `/api/object/${id}/bytes?offset=${offset}&length=${HEX_PAGE}`,
      );
    } catch (e) {
      ctx.error(e);
      return;
    }
    if (!ctx.live()) return;
    shown = "";
    section.querySelector("#records")?.replaceWith(recordsBlock(data.records));
    section.querySelector("#bytes")?.replaceWith(bytesSection(data, page));
  }

  function render(v: ObjectView, data: BytesView | null): void {
    const title = v.names[0] ?? v.name ?? v.id;
    const actions: Child[] = [
      h("a.button", { href: hashOf(`/graph/${v.id}`) }, "pointer graph"),
      COLLECTION_KINDS.has(v.kind)
        ? h("a.button", { href: hashOf(`/collection/${v.id}`) }, "contents")
        : null,
      (v.kind === "directory" || v.kind === "naming-root") && v.names[0]
        ? h(
          "a.button",
          { href: hashOf(`/names${v.names[0] === "/" ? "/" : v.names[0]}`) },
          "listing",
        )
        : null,
    ];
    const noAccess = v.access === "no access";
    replace(
      section,
      h(
        "div.objhead",
        null,
        h("h2", null, title, " ", h("span", { class: `kind k-${kindClass(v.kind)}` }, v.kind)),
        h("div.objid.mono", null, v.id),
        h("div.actions", null, ...actions),
      ),
      noAccess
        ? h(
          "p.noaccess",
          null,
          "no access: the security context may not read this object (nothing else of it is read)",
        )
        : null,
      recordsBlock(data?.records ?? []),
      h(
        "div.cols",
        null,
        h("div.card", null, h("h3", null, "Meta-info"), metaTable(v)),
        h(
          "div.card",
          null,
          h("h3", null, `FOT (${v.fot.length})`),
          h("div.scroll.fotscroll", null, fotTable(v.fot)),
          h("h3", null, "Ties"),
          tiesBlock(v),
        ),
      ),
      data ? bytesSection(data, page) : noBytes(v, page),
    );
  }

  await load();
  return { watch: id, path: firstName, refresh: load };
}

function metaTable(v: ObjectView): HTMLElement {
  const rows: [string, Child][] = [
    ["ID", h("span.mono", null, v.id)],
    ["names", v.names.length ? v.names.join(", ") : "—"],
    ["kind", v.kind],
    ["size", `${bytes(v.size)} (${v.size} bytes)`],
    ["capacity", v.capacity === undefined ? "" : `${bytes(v.capacity)}`],
    ["lifetime", v.lifetime],
    ["protections", h("span.mono", null, v.prot)],
    ["access", h("span", { class: v.access === "no access" ? "noaccess" : "mono" }, v.access)],
    ["created", time(v.created)],
    ["key", v.keyId ? h("span.mono", null, v.keyId) : "—"],
  ];
  if (v.layout) {
    rows.push([
      "layout",
      `${v.layout.name} (${v.layout.size} B × ${v.layout.count} at ${hex(v.layout.offset)})`,
    ]);
  }
  for (const [k, val] of Object.entries(v.meta ?? {})) {
    rows.push([`meta.${k}`, h("span.mono", null, text(val))]);
  }
  if (v.metaProblem) rows.push(["meta-info", h("span.problem", null, v.metaProblem)]);
  const extra = v as ObjectView & { codecs?: string | null; structureProblem?: string | null };
  if (extra.codecs) rows.splice(3, 0, ["codecs", extra.codecs]);
  if (extra.structureProblem) {
    rows.splice(3, 0, ["structure", h("span.problem", null, extra.structureProblem)]);
  }
  return h(
    "table.kv",
    null,
    h(
      "tbody",
      null,
      ...rows.map(([k, val]) => h("tr", null, h("th", null, k), h("td", null, val))),
    ),
  );
}

function fotTable(fot: FotRow[]): HTMLElement {
  if (fot.length === 0) return h("p.none", null, "no FOT entries");
  return h(
    "table#fot.grid",
    null,
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        ...["#", "flags", "target", "name", "resolver", "resolved"].map((t) => h("th", null, t)),
      ),
    ),
    h(
      "tbody",
      null,
      ...fot.map((f) =>
        h(
          "tr",
          { "data-fot-index": f.index },
          h("td.num", null, f.index),
          h("td.mono", null, f.flags),
          h(
            "td",
            null,
            f.target
              ? h(
                "a",
                { href: objectHref(f.target), "data-target": f.target, title: f.target },
                f.targetName ?? f.target,
              )
              : "—",
            f.problem ? h("div.problem", null, f.problem) : null,
          ),
          h("td", null, f.name ?? ""),
          h("td.mono", null, f.resolver ?? ""),
          h(
            "td",
            null,
            f.resolved && /^[0-9a-f]{32}$/i.test(f.resolved)
              ? h("a", { href: objectHref(f.resolved), title: f.resolved }, f.resolved)
              : f.resolved ?? "",
          ),
        )
      ),
    ),
  );
}

function tiesBlock(v: ObjectView): HTMLElement {
  return h(
    "div.ties",
    null,
    v.tiedTo.length
      ? h(
        "ul",
        null,
        ...v.tiedTo.map((t) =>
          h("li", null, "tied to ", h("a.mono", { href: objectHref(t), "data-tie": t }, t))
        ),
      )
      : h("p.none", null, "tied to nothing"),
    h("p", null, `${v.dependents} object${v.dependents === 1 ? "" : "s"} tied to it`),
  );
}

/**
 * The write form: bytes as hex at an offset; the view re-reads after. Shown
 * only when the explorer writes (`body[data-writable="1"]`, set from
 * `/api/system`; the server refuses writes otherwise anyway).
 */
function writeForm(b: BytesView, page: (offset: number) => void): HTMLElement {
  const at = h("input.mono", {
    type: "text",
    size: 8,
    value: `0x${b.offset.toString(16)}`,
    "aria-label": "offset",
  });
  const data = h("input.mono", {
    type: "text",
    size: 24,
    placeholder: "hex bytes, e.g. 2a000000",
    "aria-label": "bytes (hex)",
  });
  const go = h("button", { type: "submit" }, "write");
  const form = h("form.write", null, "write ", data, " at ", at, " ", go);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const offset = Number(at.value.trim());
    const hexText = data.value.replace(/\s+/g, "");
    if (!Number.isInteger(offset) || offset < 0) {
      showLine(`not an offset: "${at.value}"`);
      return;
    }
    if (!/^([0-9a-f]{2})+$/i.test(hexText)) {
      showLine(`not hex bytes: "${data.value}" (two hex digits per byte)`);
      return;
    }
    go.disabled = true;
    try {
      await postJson(`/api/object/${b.id}/bytes`, { offset, hex: hexText.toLowerCase() });
      data.value = "";
      page(Math.floor(offset / HEX_PAGE) * HEX_PAGE);
    } catch (e) {
      showLine(e);
    } finally {
      go.disabled = false;
    }
  });
  return form;
}

/** Report through the page's error line (the `ctx.error` of the view that made the form). */
let showLine: (e: unknown) => void = () => {};

/** In place of the bytes when they could not be read: a way back to the first page. */
function noBytes(v: ObjectView, page: (offset: number) => void): HTMLElement | null {
  if (v.access === "no access" || v.size === 0) return null;
  const first = h("button", { type: "button" }, "show the first 4 KiB");
  first.addEventListener("click", () => page(0));
  return h("div#bytes", null, h("div.card", null, h("h3", null, "Bytes"), first));
}

function bytesSection(b: BytesView, page: (offset: number) => void): HTMLElement {
  const end = b.offset + b.length;
  const prev = h("button", { type: "button", disabled: b.offset <= 0 }, "‹ prev 4 KiB");
  const next = h("button", { type: "button", disabled: end >= b.size }, "next 4 KiB ›");
  prev.addEventListener("click", () => page(Math.max(0, b.offset - HEX_PAGE)));
  next.addEventListener("click", () => page(b.offset + HEX_PAGE));
  return h(
    "div#bytes",
    null,
    h(
      "div.card",
      null,
      h(
        "div.toolbar",
        null,
        h("h3", null, "Bytes"),
        writeForm(b, page),
        h("span.spacer"),
        h("span.summary", null, `${hex(b.offset)}–${hex(end)} of ${bytes(b.size)}`),
        prev,
        next,
      ),
      hexDump(b),
    ),
  );
}

/** Typed records, one table per struct: a row per record, a column per field. */
function recordsBlock(records: TypedRecord[]): HTMLElement {
  const byStruct = new Map<string, TypedRecord[]>();
  for (const r of records) {
    let list = byStruct.get(r.struct);
    if (!list) byStruct.set(r.struct, list = []);
    list.push(r);
  }
  const cards: HTMLElement[] = [];
  for (const [name, list] of byStruct) {
    const fields = list[0]!.fields;
    cards.push(h(
      "div.card.records",
      null,
      h(
        "h3",
        null,
        `struct ${name}`,
        h("span.sub", null, ` ${list.length} record${list.length === 1 ? "" : "s"}`),
      ),
      h(
        "div.scroll",
        null,
        h(
          "table.grid.records",
          { "data-struct": name },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "offset"),
              ...fields.map((f) =>
                h(
                  "th",
                  { title: `${f.type} at +${f.offset - list[0]!.offset}` },
                  f.name,
                  h("span.sub", null, ` ${f.type}`),
                )
              ),
            ),
          ),
          h(
            "tbody",
            null,
            ...list.map((r) =>
              h(
                "tr",
                { "data-offset": r.offset },
                h("td.mono", null, hex(r.offset)),
                ...r.fields.map(fieldCell),
              )
            ),
          ),
        ),
      ),
    ));
  }
  return h("div#records", null, ...cards);
}

function fieldCell(f: RecordField): HTMLElement {
  if (f.ptr) {
    const p = f.ptr;
    if (p.null) return h("td.mono", { "data-field": f.name, title: p.raw }, "null");
    if (p.target) {
      return h(
        "td",
        { "data-field": f.name },
        h("a", {
          href: objectHref(p.target),
          "data-ptr-target": p.target,
          title: `${p.target} + ${hex(p.offset)} (pointer ${p.raw}: FOT entry ${p.fot})`,
        }, p.targetName ?? p.target),
      );
    }
    return h(
      "td.problem",
      { "data-field": f.name, title: p.raw },
      `FOT ${p.fot} +${hex(p.offset)} (unresolved)`,
    );
  }
  return h(
    "td",
    { "data-field": f.name, class: typeof f.value === "number" ? "num" : null },
    text(f.value),
  );
}

/**
 * The hex dump: offset, 16 bytes (two groups of 8), ASCII. Bytes of typed
 * records are tinted (pointer fields in their own colour), field by field.
 */
function hexDump(b: BytesView): HTMLElement {
  const pre = h("pre.hex");
  const n = b.hex.length / 2;
  if (n === 0) {
    pre.textContent = "(no bytes)";
    return pre;
  }
  // Per byte of the window: 0 none, 1/2 alternate fields, 3 a pointer field.
  const tint = new Uint8Array(n);
  let typed = false;
  for (const r of b.records) {
    r.fields.forEach((f, i) => {
      const from = Math.max(0, f.offset - b.offset);
      const to = Math.min(n, f.offset + f.size - b.offset);
      for (let k = from; k < to; k++) tint[k] = f.ptr ? 3 : 1 + (i % 2);
      typed ||= to > from;
    });
  }
  const CLASSES = ["", "f1", "f2", "fp"];
  const lines: Node[] = [];
  for (let row = 0; row < n; row += 16) {
    const rowTinted = typed && tint.subarray(row, row + 16).some((t) => t !== 0);
    const hexPart = h("span.hx");
    let plain = "";
    let ascii = "";
    for (let i = 0; i < 16; i++) {
      if (i === 8) plain += " ";
      if (row + i >= n) {
        plain += "   ";
        continue;
      }
      const pair = b.hex.slice((row + i) * 2, (row + i) * 2 + 2);
      const c = parseInt(pair, 16);
      ascii += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : "·";
      const t = tint[row + i]!;
      if (rowTinted && t !== 0) {
        if (plain) hexPart.append(plain);
        plain = "";
        hexPart.append(h("span", { class: CLASSES[t] }, pair), " ");
      } else plain += pair + " ";
    }
    if (plain) hexPart.append(plain);
    if (!rowTinted && /^[0 ]*$/.test(hexPart.textContent ?? "")) hexPart.classList.add("zero");
    lines.push(h(
      "span.line",
      null,
      h("span.off", null, (b.offset + row).toString(16).padStart(8, "0")),
      "  ",
      hexPart,
      " ",
      h("span.asc", null, ascii),
      "\n",
    ));
  }
  pre.append(...lines);
  return pre;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/// <reference lib="dom" />
/**
 * Small DOM helpers for the explorer's page: `h` builds an element from a tag,
 * attributes and children (text nodes for strings, so nothing the server
 * sends is ever parsed as HTML), plus formatting of sizes, IDs and times.
 *
 * @module
 */

/** A child of `h`: an element, text, or nothing. */
export type Child = Node | string | number | null | undefined | false;

/** Attributes of `h`: `class`, `data-*`, `href`, … and `on*` event handlers. */
export type Attrs = Record<
  string,
  string | number | boolean | null | undefined | ((ev: Event) => void)
>;

/**
 * Make an element.
 *
 * @param tag The tag name, optionally with `#id` and `.class` (`td.name`).
 * @param attrs Attributes; functions under `onNAME` become listeners; null,
 *   undefined and false are left out.
 * @param children Its children, in order.
 * @returns The element.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K | `${K}${"#" | "."}${string}`,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const m = /^([a-z0-9]+)((?:[#.][\w-]+)*)$/.exec(tag);
  const el = document.createElement((m?.[1] ?? tag) as K);
  for (const part of (m?.[2] ?? "").match(/[#.][\w-]+/g) ?? []) {
    if (part[0] === "#") el.id = part.slice(1);
    else el.classList.add(part.slice(1));
  }
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (key === "class") {
      for (const c of String(value).split(/\s+/)) if (c) el.classList.add(c);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (see `h`) to an element. */
export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.textContent = "";
  append(el, children);
}

/** A byte count for people: `4096` → `4 KiB`, `1536` → `1.5 KiB`. */
export function bytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0
    ? `${n} B`
    : `${v >= 100 || v === Math.floor(v) ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** An ID shortened for tables: its first 8 and last 4 hex digits. */
export function shortId(id: string): string {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

/** A time for people: milliseconds since the epoch → ISO text (UTC, seconds); text as is. */
export function time(t: unknown): string {
  if (t === null || t === undefined || t === "") return "";
  if (typeof t === "number" && t > 1e11) return new Date(t).toISOString().replace(/\.\d+Z$/, "Z");
  return String(t);
}

/** A number with thin thousands separators (`100000` → `100,000`). */
export function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** A value of unknown shape as one line of text. */
export function text(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

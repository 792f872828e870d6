/// <reference lib="dom" />
/**
 * What every view of the explorer's page shares: the `View` a route renders
 * into the main pane, the `Ctx` it renders with (its element, whether it is
 * still the visible view, how to report an error), and hash-route helpers.
 *
 * Routes (the part after `#`): `/objects?offset=0&sort=id&filter=`,
 * `/object/ID?offset=0`, `/graph/ID`, `/collection/ID?offset=0`, `/threads`,
 * `/names/PATH`, `/kv` (the kv store: the collection named `/kv`).
 *
 * @module
 */

/** A rendered view of the main pane. */
export interface View {
  /** The object whose changes the page watches (server-sent events), if any. */
  readonly watch: string | null;
  /** A path the naming tree should open to (the shown object's first name), if any. */
  readonly path?: string | null;
  /** Re-fetch what is shown (the system changed); keeps the reader's place. */
  refresh(): Promise<void>;
  /** Stop timers and listeners (another view replaces it). */
  dispose?(): void;
}

/** What a view renders with. */
export interface Ctx {
  /** The main pane (empty when the view starts). */
  readonly main: HTMLElement;
  /** Whether this view is still the visible one (answers for an old view are dropped). */
  live(): boolean;
  /** Show a one-line error in `#error`; the page keeps working. */
  error(e: unknown): void;
}

/** A parsed hash route. */
export interface Route {
  /** Path segments after `#/` (`["object", "ID"]`), decoded. */
  parts: string[];
  /** Its query. */
  query: URLSearchParams;
}

/** Parse `location.hash`. */
export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const parts = path.split("/").filter((p) => p !== "").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, query };
}

/**
 * A hash for a route.
 *
 * @param path The path (`/object/ID`).
 * @param query Query parameters; empty strings and undefined are left out.
 * @returns `#/object/ID?offset=4096`.
 */
export function hashOf(
  path: string,
  query: Record<string, string | number | undefined> = {},
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ""}`;
}

/** Change the hash without re-rendering (the view already shows that state). */
export function setHashQuietly(hash: string): void {
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

/** The link to an object's view. */
export function objectHref(id: string): string {
  return `#/object/${id}`;
}

/** Collection kinds the collection view can page. */
export const COLLECTION_KINDS: ReadonlySet<string> = new Set([
  "hashmap",
  "btree",
  "vector",
  "queue",
]);

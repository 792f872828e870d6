/// <reference lib="dom" />
/**
 * The explorer page's entry (bundled by `../bundle.ts` into `/app.js`): the
 * header with the system's facts and the security context (`#context`), the
 * naming tree on the left, the hash router that renders one view into the
 * main pane (`body[data-view]` names it), the error line (`#error`: one line;
 * the page keeps working), and live updates: one `EventSource` on
 * `/api/events?token=…&watch=ID` (the object the view shows), and on each
 * `change` event the visible view, the tree and the header are fetched again
 * (one refresh at a time; changes during one cause one more).
 *
 * @module
 */
import { ApiError, eventsUrl, getJson, type SystemView, token } from "./api.ts";
import { type Ctx, hashOf, parseRoute, type View } from "./app.ts";
import { collectionView } from "./collection.ts";
import { bytes, count, h, replace, text } from "./dom.ts";
import { graphView } from "./graph.ts";
import { listDir, namesView, NamingTree } from "./names.ts";
import { objectView } from "./object.ts";
import { objectsView } from "./objects.ts";
import { threadsView } from "./threads.ts";

const ID = /^[0-9a-f]{32}$/i;

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}

const main = byId("main");
const errorLine = byId("error");
const facts = byId("facts");
const contextLabel = byId("context");
const tree = new NamingTree(byId("tree"), showError);

/** Show one line in `#error` (the server's message for a failed request). */
function showError(e: unknown): void {
  const msg = e instanceof Error ? e.message : text(e);
  errorLine.textContent = msg.split("\n")[0]!.trim() || "error";
  errorLine.hidden = false;
  errorLine.dataset.status = e instanceof ApiError ? String(e.status) : "";
}

function clearError(): void {
  errorLine.textContent = "";
  errorLine.hidden = true;
}

// --- the header ------------------------------------------------------------

let systemShown = "";

async function loadSystem(): Promise<void> {
  let s: SystemView;
  try {
    s = await getJson<SystemView>("/api/system");
  } catch (e) {
    showError(e);
    return;
  }
  const key = JSON.stringify(s);
  if (key === systemShown) return;
  systemShown = key;
  const chips: HTMLElement[] = [];
  const chip = (label: string, value: unknown, title?: string) =>
    chips.push(
      h(
        "span",
        { class: "fact", "data-fact": label, title: title ?? `${label}: ${text(value)}` },
        h("b", null, label),
        " ",
        text(value),
      ),
    );
  const ro = s.readOnly === true || s.writable === false;
  if (s.writable === true) document.body.dataset.writable = "1";
  else delete document.body.dataset.writable;
  chips.push(
    h("span", {
      class: `fact mode ${ro ? "ro" : "rw"}`,
      title: ro ? "nothing is written" : "writes are allowed (--write)",
    }, ro ? "read-only" : "writable"),
  );
  if (typeof s.objects === "number") chip("objects", count(s.objects));
  if (typeof s.size === "number") chip("size", bytes(s.size));
  if (typeof s.free === "number") chip("free", bytes(s.free));
  if (s.hal !== undefined) chip("hal", s.hal);
  if (s.source !== undefined) chip("via", s.source);
  if (s.image !== undefined) chip("image", s.image.replace(/^.*\//, ""), `image: ${s.image}`);
  replace(facts, ...chips);
  const label = s.context ?? "admin (the shell's session)";
  replace(contextLabel, h("span.sub", null, "context "), label);
  contextLabel.title = `security context: ${label}`;
}

// --- routing -----------------------------------------------------------------

let generation = 0;
let current: View | null = null;

async function route(): Promise<void> {
  const gen = ++generation;
  current?.dispose?.();
  current = null;
  clearError();
  const ctx: Ctx = { main, live: () => gen === generation, error: showError };
  const { parts, query } = parseRoute(location.hash);
  const [page = "objects", arg = ""] = parts;
  let name = page;
  let render: () => Promise<View>;
  const needId = (f: (id: string) => Promise<View>) => () => {
    if (!ID.test(arg)) {
      return Promise.reject(new Error(`not an object ID: "${arg}" (32 hex digits)`));
    }
    return f(arg.toLowerCase());
  };
  switch (page) {
    case "objects":
      render = () => objectsView(ctx, query);
      break;
    case "object":
      render = needId((id) => objectView(ctx, id, query));
      break;
    case "graph":
      render = needId((id) => graphView(ctx, id));
      break;
    case "collection":
      render = needId((id) => collectionView(ctx, id, query));
      break;
    case "kv":
      name = "collection";
      render = async () => {
        const kv = (await listDir("/")).find((e) => e.name === "kv");
        if (!kv) throw new Error("no kv store: nothing is named /kv");
        return collectionView(ctx, kv.id, query, "kv store /kv");
      };
      break;
    case "threads":
      render = () => threadsView(ctx);
      break;
    case "names": {
      const path = "/" + parts.slice(1).join("/");
      render = () => namesView(ctx, path);
      tree.reveal(path);
      break;
    }
    default:
      name = "objects";
      render = () => {
        showError(`unknown page "${location.hash}": showing the objects`);
        return objectsView(ctx, new URLSearchParams());
      };
  }
  document.body.dataset.view = name;
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    a.classList.toggle("active", a.dataset.nav === (page === "kv" ? "kv" : name));
  }
  tree.highlight(
    ID.test(arg) ? arg.toLowerCase() : page === "names" ? "/" + parts.slice(1).join("/") : null,
  );
  main.scrollTop = 0;
  let view: View;
  try {
    view = await render();
  } catch (e) {
    if (gen !== generation) return;
    showError(e);
    replace(main, h("p.problem", null, e instanceof Error ? e.message : text(e)));
    return;
  }
  if (gen !== generation) {
    view.dispose?.();
    return;
  }
  current = view;
  watch(view.watch);
  if (view.path) {
    // Open the tree to the object's directory and mark its entry.
    tree.reveal(view.path.replace(/\/[^/]*$/, "") || "/");
  }
}

// --- live updates ------------------------------------------------------------

let events: EventSource | null = null;
let watching: string | null = null;
let refreshing = false;
let again = false;

function watch(id: string | null): void {
  if (events && watching === id && events.readyState !== EventSource.CLOSED) return;
  events?.close();
  watching = id;
  events = new EventSource(eventsUrl(id));
  events.addEventListener("change", () => void changed());
  // The stream compares against the system as it is when it opens: a change
  // between the view's first load and that moment (or while a dropped stream
  // reconnects) sends no event, so fetch again once on every open.
  events.addEventListener("open", () => void changed());
  events.addEventListener("error", () => {
    if (events?.readyState === EventSource.CLOSED) {
      showError("live updates stopped: the explorer does not answer (reload the page to retry)");
    }
  });
}

async function changed(): Promise<void> {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    await Promise.all([current?.refresh(), tree.refresh(), loadSystem()]);
  } catch (e) {
    showError(e);
  } finally {
    refreshing = false;
    if (again) {
      again = false;
      void changed();
    }
  }
}

// --- start -------------------------------------------------------------------

globalThis.addEventListener("unhandledrejection", (ev) => showError(ev.reason));
globalThis.addEventListener("hashchange", () => void route());
if (!token()) showError("no token: open the URL twz explore printed (it ends in ?token=…)");
if (!location.hash) history.replaceState(null, "", hashOf("/objects"));
void route();
void tree.draw();
void loadSystem();

/**
 * The explorer's HTTP server: the page and a JSON API over an
 * {@linkcode ExplorerModel}, on `127.0.0.1` only.
 *
 * Every request is refused (403) unless all of these hold, so that neither
 * another machine nor a page of another site open in the same browser can
 * reach it (a DNS-rebinding page sends a foreign `Host`, a cross-site fetch a
 * foreign `Origin`):
 *
 * - the peer is a loopback address;
 * - `Host` is `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT`;
 * - `Origin`, when sent, is `http://127.0.0.1:PORT` or `http://localhost:PORT`;
 * - the token (128 random bits, hex) is given as `?token=T` or `X-Twz-Token: T`.
 *
 * Writes (any POST) are refused unless the server was started with `write`.
 * Routes (JSON unless said):
 *
 * | Route | Answer |
 * | --- | --- |
 * | `/` | the page, the token in `<meta name="twz-token">` |
 * | `/app.js`, `/app.css` | the page's bundle |
 * | `/api/system` | `SystemView` |
 * | `/api/names?path=/` | `NamesView` |
 * | `/api/objects?offset=0&limit=100&sort=id&filter=` | `ObjectPage` |
 * | `/api/object/ID` | `ObjectView` |
 * | `/api/object/ID/bytes?offset=0&length=1024` | `BytesView` |
 * | `/api/graph/ID?depth=1` | `{ nodes, edges, truncated }` |
 * | `/api/collection/ID?offset=0&limit=50` | `CollectionPage` |
 * | `/api/threads` | `{ threads }` |
 * | `/api/events?watch=ID` | server-sent events: `change` when the fingerprint changes |
 * | POST `/api/object/ID/bytes` `{ offset, hex }` | writes (with `write` only), answers `BytesView` |
 *
 * Errors are `{ "error": "one line" }` with 400 (bad parameter), 403
 * (refused), 404 (unknown object or path), 422 (a damaged object); a request
 * never takes the server down.
 *
 * @example
 * ```ts ignore
 * import { ExplorerModel, openSystem } from "./model.ts";
 * import { startExplorer } from "./server.ts";
 * const sys = await openSystem({ image: "twz.img" });
 * const server = await startExplorer(new ExplorerModel(sys), {});
 * console.log(server.url); // http://127.0.0.1:PORT/?token=…
 * await server.close();
 * sys.close();
 * ```
 *
 * @module
 */
import { ErrorCode, formatId, type ObjID, parseId, TwzError } from "@twz/kernel/abi";
import { buildGraph } from "./graph.ts";
import { bundleExplorerUi, type ExplorerUi, TOKEN_PLACEHOLDER } from "./bundle.ts";
import {
  asExplorerError,
  ExplorerError,
  type ExplorerModel,
  type ObjectQuery,
  type SortKey,
} from "./model.ts";

/** Options of {@linkcode startExplorer}. */
export interface ExplorerServerOptions {
  /** The port (0: a free one). @default {0} */
  port?: number | undefined;
  /** Accept writes (POST). @default {false} */
  write?: boolean | undefined;
  /** The token (tests); absent: 128 random bits as hex. */
  token?: string | undefined;
  /** How often `/api/events` compares fingerprints, in milliseconds. @default {500} */
  pollMs?: number | undefined;
}

/** A running explorer server. */
export interface ExplorerServer {
  /** The page's URL with its token. */
  url: string;
  /** The port it listens on. */
  port: number;
  /** The token every request must carry. */
  token: string;
  /** Stop listening, end the event streams, wait for open requests. */
  close(): Promise<void>;
}

/** The page: HTML (with the token placeholder), script and style. */
type Ui = ExplorerUi;
/** Most graph depth a request may ask for. */
const MAX_DEPTH = 4;
/** Most graph nodes an answer holds. */
const MAX_NODES = 5000;
/** Largest POST body. */
const MAX_BODY = 1 << 18;
const HEARTBEAT_MS = 15000;

/**
 * Serve the explorer over `model` on `127.0.0.1`, once the page is
 * bundled (so the first navigation does not wait for it). Prints nothing.
 *
 * @param model The model.
 * @param o Port, writes, token.
 * @returns The running server.
 */
export async function startExplorer(
  model: ExplorerModel,
  o: ExplorerServerOptions = {},
): Promise<ExplorerServer> {
  const token = o.token ?? randomToken();
  const write = o.write === true;
  const pollMs = o.pollMs ?? 500;
  const streams = new Set<() => void>();
  let ui: Promise<Ui> | null = null;
  let port = 0;
  const ac = new AbortController();
  // Bundle the page before listening, not at the first navigation (a
  // failure is the page's answer then, the API works without it).
  ui = loadUi();
  await ui.catch(() => {});

  const handler = async (req: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    const url = new URL(req.url);
    const isApi = url.pathname.startsWith("/api/");
    const refuse = (why: string) => isApi ? json({ error: why }, 403) : text(why, 403);
    const peer = (info.remoteAddr as Deno.NetAddr).hostname;
    if (!isLoopback(peer)) return refuse(`refused: ${peer} is not a loopback address`);
    const host = req.headers.get("host") ?? "";
    if (![`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host.toLowerCase())) {
      return refuse(`refused: foreign Host "${host}"`);
    }
    const origin = req.headers.get("origin");
    if (
      origin !== null &&
      ![`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`].includes(
        origin.toLowerCase(),
      )
    ) {
      return refuse(`refused: foreign Origin "${origin}"`);
    }
    const given = req.headers.get("x-twz-token") ?? url.searchParams.get("token") ?? "";
    if (!sameToken(given, token)) {
      return refuse("refused: the token is missing or wrong (open the URL twz explore printed)");
    }
    if (req.method === "POST" && !write) {
      return refuse("the explorer is read-only (start it with --write)");
    }
    if (req.method !== "GET" && req.method !== "HEAD" && req.method !== "POST") {
      return json({ error: `method ${req.method} is not allowed` }, 405);
    }
    try {
      if (!isApi) {
        if (req.method !== "GET" && req.method !== "HEAD") {
          return text(`method ${req.method} is not allowed here`, 405);
        }
        if (url.pathname === "/" || url.pathname === "/index.html") {
          const page = await (ui ??= loadUi());
          return new Response(page.html.replaceAll(TOKEN_PLACEHOLDER, token), {
            headers: pageHeaders("text/html; charset=utf-8"),
          });
        }
        if (url.pathname === "/app.js") {
          return new Response((await (ui ??= loadUi())).js, {
            headers: pageHeaders("text/javascript; charset=utf-8"),
          });
        }
        if (url.pathname === "/app.css") {
          return new Response((await (ui ??= loadUi())).css, {
            headers: pageHeaders("text/css; charset=utf-8"),
          });
        }
        return text(`no page ${url.pathname}`, 404);
      }
      if (url.pathname === "/api/events") return events(url);
      await model.refresh();
      return json(await api(req, url), 200);
    } catch (error) {
      const e = asExplorerError(error);
      if (e instanceof ExplorerError) return json({ error: e.message }, e.status);
      if (e instanceof TwzError && e.code === ErrorCode.ObjectDamaged) {
        return json({ error: oneLine(e) }, 422);
      }
      return json({ error: `internal error: ${oneLine(e)}` }, 500);
    }
  };

  /** The JSON API (everything but the events). */
  const api = async (req: Request, url: URL): Promise<unknown> => {
    const p = url.pathname.split("/").slice(2).map(decodeURIComponent); // after "/api/"
    const q = url.searchParams;
    const route = p[0];
    if (req.method === "POST") {
      if (route === "object" && p.length === 3 && p[2] === "bytes") {
        const body = await readBody(req);
        const offset = body["offset"], hex = body["hex"];
        if (typeof offset !== "number" || typeof hex !== "string") {
          throw new ExplorerError(400, 'the body must be { "offset": N, "hex": "…" }');
        }
        const id = idParam(p[1]);
        await model.prepare([id]);
        return model.writeBytes(id, offset, hex);
      }
      throw new ExplorerError(404, `no route POST ${url.pathname}`);
    }
    if (route === "system" && p.length === 1) return model.system();
    if (route === "names" && p.length === 1) return model.names(q.get("path") || "/");
    if (route === "objects" && p.length === 1) {
      const query: ObjectQuery = {
        offset: intParam(q, "offset", 0),
        limit: intParam(q, "limit", 100),
        sort: (q.get("sort") || "id") as SortKey,
        filter: q.get("filter") ?? "",
      };
      await model.prepareObjects(query);
      return model.objects(query);
    }
    if (route === "object" && (p.length === 2 || (p.length === 3 && p[2] === "bytes"))) {
      const id = idParam(p[1]);
      await model.prepare([id]);
      if (p.length === 2) return model.object(id);
      return model.bytes(id, intParam(q, "offset", 0), intParam(q, "length", 1024));
    }
    if (route === "graph" && p.length === 2) {
      const depth = intParam(q, "depth", 1);
      if (depth < 0 || depth > MAX_DEPTH) {
        throw new ExplorerError(400, `depth ${depth} is not in [0, ${MAX_DEPTH}]`);
      }
      const root = idParam(p[1]);
      await model.prepareGraph(root, depth, MAX_NODES);
      return buildGraph(model, formatId(root), { depth, maxNodes: MAX_NODES });
    }
    if (route === "collection" && p.length === 2) {
      const id = idParam(p[1]);
      await model.prepare([id]);
      return model.collection(id, {
        offset: intParam(q, "offset", 0),
        limit: intParam(q, "limit", 50),
      });
    }
    if (route === "threads" && p.length === 1) return { threads: model.threads() };
    throw new ExplorerError(404, `no route ${url.pathname}`);
  };

  /** `/api/events`: a `change` event whenever the fingerprint changes, a comment every 15 s. */
  const events = (url: URL): Response => {
    const w = url.searchParams.get("watch");
    const watch = w === null || w === "" ? undefined : idParam(w);
    const enc = new TextEncoder();
    let timer: ReturnType<typeof setInterval> | undefined;
    let beat: ReturnType<typeof setInterval> | undefined;
    let stop = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        let last: string | null = null;
        const send = (s: string) => {
          try {
            controller.enqueue(enc.encode(s));
          } catch {
            stop();
          }
        };
        const poll = () => {
          let fp: string;
          try {
            fp = model.fingerprint(watch);
          } catch (error) {
            fp = `error:${oneLine(error)}`;
          }
          if (last !== null && fp !== last) {
            send(`event: change\ndata: ${JSON.stringify({ fingerprint: fp })}\n\n`);
          }
          last = fp;
        };
        stop = () => {
          clearInterval(timer);
          clearInterval(beat);
          streams.delete(stop);
          try {
            controller.close();
          } catch {
            // Already closed.
          }
        };
        streams.add(stop);
        send(": twz explorer events\nretry: 2000\n\n");
        poll();
        timer = setInterval(poll, pollMs);
        beat = setInterval(() => send(": keep-alive\n\n"), HEARTBEAT_MS);
      },
      cancel() {
        stop();
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  };

  return await new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: "127.0.0.1",
        port: o.port ?? 0,
        signal: ac.signal,
        onListen(addr) {
          port = addr.port;
          resolve({
            url: `http://127.0.0.1:${port}/?token=${token}`,
            port,
            token,
            async close() {
              for (const stop of [...streams]) stop();
              ac.abort();
              await server.finished;
            },
          });
        },
        onError(error) {
          return json({ error: `internal error: ${oneLine(error)}` }, 500);
        },
      }, handler);
    } catch (error) {
      reject(error);
    }
  });
}

/** The page, bundled once per process (`bundle.ts`). */
function loadUi(): Promise<Ui> {
  return bundleExplorerUi();
}

function idParam(text: string | undefined): ObjID {
  try {
    return parseId(text ?? "");
  } catch (error) {
    throw new ExplorerError(400, oneLine(error));
  }
}

function intParam(q: URLSearchParams, name: string, fallback: number): number {
  const s = q.get(name);
  if (s === null || s === "") return fallback;
  if (!/^-?\d+$/.test(s)) throw new ExplorerError(400, `${name} "${s}" is not an integer`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new ExplorerError(400, `${name} ${s} is too large`);
  return n;
}

async function readBody(req: Request): Promise<Record<string, unknown>> {
  const buf = new Uint8Array(await req.arrayBuffer());
  if (buf.length > MAX_BODY) throw new ExplorerError(400, `the body exceeds ${MAX_BODY} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(buf));
  } catch {
    throw new ExplorerError(400, "the body is not JSON");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new ExplorerError(400, "the body is not a JSON object");
  }
  return v as Record<string, unknown>;
}

function isLoopback(host: string): boolean {
  return host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::ffff:127.0.0.1";
}

/** Compare tokens without an early exit. */
function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length || b.length === 0) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

function randomToken(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

function oneLine(error: unknown): string {
  const m = error instanceof Error ? error.message : String(error);
  return m.split("\n")[0]!.trim();
}

function json(value: unknown, status: number): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

function text(line: string, status: number): Response {
  return new Response(`${line}\n`, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

function pageHeaders(type: string): HeadersInit {
  return {
    "content-type": type,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; " +
      "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  };
}

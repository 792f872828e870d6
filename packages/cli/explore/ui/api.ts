/// <reference lib="dom" />
/**
 * The page's side of the explorer's HTTP API (docs: the server,
 * `packages/cli/explore/server.ts`): the JSON shapes it answers (from
 * `../api_types.ts`, the one file of the packages the page imports: types
 * only, no imports of its own), and `getJson`, which sends the session's
 * token with every request and turns an error answer into an `ApiError`
 * with the server's one-line message.
 *
 * @module
 */

export type * from "../api_types.ts";

/** A failed request: the server's one-line message and the HTTP status. */
export class ApiError extends Error {
  /** The error's class name. */
  override name = "ApiError";
  /**
   * A failed request.
   *
   * @param message The one-line message.
   * @param status The HTTP status (0: no answer).
   */
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** The session's token: the page's `<meta name="twz-token">`, else `?token=` of its URL. */
export function token(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="twz-token"]');
  const fromMeta = meta?.content ?? "";
  if (/^[0-9a-f]+$/i.test(fromMeta)) return fromMeta;
  return new URLSearchParams(location.search).get("token") ?? "";
}

/**
 * GET a JSON route, with the token.
 *
 * @param path The route and its query (`/api/objects?offset=0`).
 * @returns The parsed answer.
 * @throws {ApiError} The server refused or failed; its one-line message.
 */
export async function getJson<T>(path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { headers: { "X-Twz-Token": token() } });
  } catch {
    throw new ApiError(`no answer from the explorer (${path}): is twz explore still running?`, 0);
  }
  return await answer<T>(path, res);
}

/** A response's JSON, or an `ApiError` with the server's one line. */
async function answer<T>(path: string, res: Response): Promise<T> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(
      res.ok ? `${path}: not JSON` : `${res.status}: ${firstLine(text) || res.statusText}`,
      res.status,
    );
  }
  if (!res.ok) {
    const msg = (body as { error?: unknown })?.error;
    throw new ApiError(
      typeof msg === "string" ? msg : `${res.status} ${res.statusText} (${path})`,
      res.status,
    );
  }
  return body as T;
}

/**
 * POST JSON to a route, with the token (writes: the server takes them only
 * when started with `--write`).
 *
 * @param path The route.
 * @param body What to send.
 * @returns The parsed answer.
 * @throws {ApiError} The server refused or failed; its one-line message.
 */
export async function postJson<T>(path: string, body: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: "POST",
      headers: { "X-Twz-Token": token(), "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(`no answer from the explorer (${path}): is twz explore still running?`, 0);
  }
  return await answer<T>(path, res);
}

/** The URL of the event stream (EventSource cannot send headers: the token is a query parameter). */
export function eventsUrl(watch: string | null): string {
  const q = new URLSearchParams({ token: token() });
  if (watch) q.set("watch", watch);
  return `/api/events?${q}`;
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0]!.slice(0, 300);
}

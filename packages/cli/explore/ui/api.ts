/// <reference lib="dom" />
/**
 * The page's side of the explorer's HTTP API (docs: the server,
 * `packages/cli/explore/server.ts`): the JSON shapes it answers, mirrored
 * here as types (the page is bundled for the browser and imports nothing of
 * the packages), and `getJson`, which sends the session's token with every
 * request and turns an error answer into an `ApiError` with the server's
 * one-line message.
 *
 * @module
 */

/** One object of the object table. IDs are 32 hex digits. */
export interface ObjectRow {
  /** The object's ID (32 hex digits). */
  id: string;
  /** A path naming it, or null. */
  name: string | null;
  /** Size in bytes. */
  size: number;
  /** Whether it survives a reboot. */
  lifetime: "persistent" | "volatile" | string;
  /** Protections, `rw-` style. */
  prot: string;
  /** The structure recognised at its base (`bytes` otherwise). */
  kind: string;
  /** Number of FOT entries. */
  fot: number;
  /** Number of ties. */
  ties: number;
  /** What the security context may do with it, or `no access`. */
  access: string;
}

/** One page of the object table. */
export interface ObjectPage {
  /** Objects matching the filter. */
  total: number;
  /** Index of the first row. */
  offset: number;
  /** The rows of this page. */
  rows: ObjectRow[];
}

/** One FOT entry of an object. */
export interface FotRow {
  /** The entry's index (pointers name it). */
  index: number;
  /** Its flags, as text. */
  flags: string;
  /** The target's ID, when the entry names one. */
  target: string | null;
  /** A path naming the target. */
  targetName: string | null;
  /** The entry's name (a name entry), or null. */
  name: string | null;
  /** The resolver of a name entry. */
  resolver: string | null;
  /** What the name resolves to now. */
  resolved: string | null;
  /** Why the entry cannot be followed. */
  problem: string | null;
}

/** A layout descriptor's field. */
export interface LayoutField {
  /** Field name. */
  name: string;
  /** Its type (`u32`, `string(16)`, `ptr`, …). */
  type: string;
  /** Offset in the record. */
  offset: number;
  /** Size in bytes. */
  size: number;
  /** The pointed struct's name (pointers). */
  target?: string;
}

/** The layout descriptor an object carries. */
export interface LayoutDescriptor {
  /** The struct's name. */
  name: string;
  /** A record's size. */
  size: number;
  /** Where the records start. */
  offset: number;
  /** How many records. */
  count: number;
  /** The fields. */
  fields: LayoutField[];
}

/** Everything the object view shows of one object. */
export interface ObjectView extends Omit<ObjectRow, "fot"> {
  /** Bytes reserved. */
  capacity: number;
  /** Creation time (milliseconds since the epoch, or text). */
  created: number | string;
  /** The signing key's ID, or null. */
  keyId: string | null;
  /** Every path naming it. */
  names: string[];
  /** The meta-info's fields, or null when unreadable. */
  meta: Record<string, unknown> | null;
  /** Why the meta-info could not be read. */
  metaProblem: string | null;
  /** The FOT. */
  fot: FotRow[];
  /** Objects this one is tied to. */
  tiedTo: string[];
  /** How many objects are tied to it. */
  dependents: number;
  /** Its layout descriptor. */
  layout: LayoutDescriptor | null;
}

/** An invariant pointer field's decoding. */
export interface PtrValue {
  /** The raw 64-bit pointer (hex). */
  raw: string;
  /** The FOT index it names. */
  fot: number;
  /** The offset in the target. */
  offset: number;
  /** The target object's ID. */
  target: string | null;
  /** A path naming the target. */
  targetName: string | null;
  /** Whether it is the null pointer. */
  null: boolean;
}

/** One field of a typed record. */
export interface RecordField {
  /** Field name. */
  name: string;
  /** Its type. */
  type: string;
  /** Offset in the object. */
  offset: number;
  /** Size in bytes. */
  size: number;
  /** The decoded value. */
  value: string | number | null;
  /** A pointer field's target. */
  ptr?: PtrValue;
}

/** One record typed by a layout descriptor. */
export interface TypedRecord {
  /** The struct's name. */
  struct: string;
  /** Where it starts in the object. */
  offset: number;
  /** Its fields. */
  fields: RecordField[];
}

/** A window of an object's bytes. */
export interface BytesView {
  /** The object. */
  id: string;
  /** First byte shown. */
  offset: number;
  /** Bytes shown. */
  length: number;
  /** The object's size. */
  size: number;
  /** Two hex digits per byte. */
  hex: string;
  /** Typed records in the window. */
  records: TypedRecord[];
}

/** A node of the pointer graph. */
export interface GraphNode {
  /** Object ID. */
  id: string;
  /** A path naming it. */
  name: string | null;
  /** Its kind. */
  kind: string;
  /** Its size. */
  size: number;
  /** Its number of edges. */
  degree: number;
}

/** An edge of the pointer graph. */
export interface GraphEdge {
  /** Source object. */
  from: string;
  /** Target object. */
  to: string;
  /** A FOT entry or a tie. */
  kind: "fot" | "tie" | string;
  /** E.g. `fot 1`. */
  label: string;
}

/** The graph around an object. */
export interface GraphView {
  /** Its nodes. */
  nodes: GraphNode[];
  /** Its edges. */
  edges: GraphEdge[];
  /** Whether the server stopped at its node limit. */
  truncated: boolean;
}

/** A page of a collection. */
export interface CollectionPage {
  /** The collection object. */
  id: string;
  /** HashMap, BTreeMap, Vector or Queue. */
  kind: string;
  /** The key/value codecs, as text. */
  codecs: string;
  /** Entries in all. */
  total: number;
  /** First entry shown. */
  offset: number;
  /** The entries. */
  rows: { key: string; value: string }[];
}

/** A thread of the system. */
export interface ThreadRow {
  /** Thread ID. */
  tid: number;
  /** Program name. */
  name: string;
  /** Its state. */
  state: string;
  /** Exit code, once exited. */
  exitCode: number | null;
  /** Why it faulted. */
  fault: string | null;
  /** Start time. */
  started: number | string | null;
  /** End time. */
  ended: number | string | null;
  /** The thread object's ID. */
  id: string;
}

/** One entry of a directory. */
export interface NameEntry {
  /** Entry name (no slashes). */
  name: string;
  /** The object it names. */
  id: string;
  /** Whether it is a directory. */
  dir: boolean;
}

/** The system facts of the header (`/api/system`). */
export interface SystemView {
  /** The HAL's name. */
  hal?: string;
  /** The image path. */
  image?: string;
  /** Region size in bytes. */
  size?: number;
  /** Free data bytes. */
  free?: number;
  /** Objects now. */
  objects?: number;
  /** Nothing can be written. */
  readOnly?: boolean;
  /** The explorer writes (`--write`). */
  writable?: boolean;
  /** `boot` (a read-only boot of the image) or `socket` (a running `twz boot`). */
  source?: string;
  /** Whose view is shown: `admin (the shell's session)` or `context PATH (ID)`. */
  context?: string;
}

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

/**
 * The JSON shapes of the explorer's HTTP API (`server.ts` answers them,
 * `model.ts` builds them, the page in `ui/` reads them). Types only, and
 * no imports: the page is bundled for the browser and type-checked with the
 * DOM library, so it may import this file and nothing else of the packages.
 *
 * @module
 */

/** What an object is, as far as the explorer can tell (`bytes` otherwise). */
export type ObjectKind =
  | "naming-root"
  | "directory"
  | "hashmap"
  | "btree"
  | "vector"
  | "queue"
  | "heap"
  | "txlog"
  | "thread"
  | "code"
  | "key"
  | "context"
  | "device"
  | "layout"
  | `struct:${string}`
  | "bytes";

/** One row of the object table. */
export interface ObjectRow {
  /** The object's ID (32 hex digits). */
  id: string;
  /** A path naming it (the first the naming tree gives), or null. */
  name: string | null;
  /** Size in bytes. */
  size: number;
  /** Persistent or volatile. */
  lifetime: "persistent" | "volatile";
  /** The object's default protections, `rw-` style. */
  prot: string;
  /** What sits at its base. */
  kind: ObjectKind;
  /** FOT entries in use (0 without libtwz meta-info). */
  fot: number;
  /** How many objects are tied to it (deleted with it). */
  ties: number;
  /** What the explorer's context may do with it (`rw-` style), or `no access`. */
  access: string;
}

/** One page of the object table. */
export interface ObjectPage {
  /** Objects matching the filter. */
  total: number;
  /** Index of the first row. */
  offset: number;
  /** The rows. */
  rows: ObjectRow[];
}

/** One FOT entry of an object. */
export interface FotRow {
  /** The entry's index (pointers name it; 1 is the first). */
  index: number;
  /** Its flags as letters: `r`, `w`, `x`, then `name`, `valid`. */
  flags: string;
  /** The target's ID, for an ID entry. */
  target: string | null;
  /** A path naming the target (an ID entry's, or what a name entry resolves to). */
  targetName: string | null;
  /** A name entry's name. */
  name: string | null;
  /** A name entry's resolver (`""` is the naming service). */
  resolver: string | null;
  /** What a name entry resolves to now (an ID). */
  resolved: string | null;
  /** Why the entry cannot be followed, or null. */
  problem: string | null;
}

/** A field of a layout descriptor (the shape of `@twz/libtwz/layout`'s `LayoutField`). */
export interface LayoutField {
  /** The field's name (`outer.inner` in a nested struct, `ports[0]` in a short array). */
  readonly name: string;
  /** `u8` … `f64`, `bool`, `string(N)`, `bytes(N)` or `ptr`. */
  readonly type: string;
  /** Offset within the record. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  /** For a `ptr` field: the name of the struct it points at, when named. */
  readonly target?: string;
}

/** The layout descriptor an object carries (the shape of `@twz/libtwz/layout`'s). */
export interface LayoutDescriptor {
  /** The struct's name. */
  readonly name: string;
  /** The record size in bytes. */
  readonly size: number;
  /** The record alignment in bytes. */
  readonly align: number;
  /** Offset in the object of record 0. */
  readonly offset: number;
  /** Number of records, back to back from `offset`. */
  readonly count: number;
  /** The fields, in order. */
  readonly fields: readonly LayoutField[];
}

/** Everything the object view shows. */
export interface ObjectView extends Omit<ObjectRow, "fot"> {
  /** Bytes reserved in the store. */
  capacity: number;
  /** Creation time, milliseconds since the epoch. */
  created: number;
  /** The key object signing its capabilities, or null. */
  keyId: string | null;
  /** Every path naming it. */
  names: string[];
  /** The libtwz meta-info's fields (IDs as hex), or null. */
  meta: Record<string, string | number> | null;
  /** Why the meta-info cannot be read, or null (no meta-info at all: null too). */
  metaProblem: string | null;
  /** The FOT entries. */
  fot: FotRow[];
  /** The objects this one is tied to (deleting one of them deletes this one). */
  tiedTo: string[];
  /** How many objects are tied to this one. */
  dependents: number;
  /** The objects tied to this one (deleted with it). */
  dependentIds: string[];
  /** Its layout descriptor, or null. */
  layout: LayoutDescriptor | null;
  /** The structure at its base: codecs of a collection (`string/string`), or null. */
  codecs: string | null;
  /** The structure's header problem, or null. */
  structureProblem: string | null;
}

/** An invariant pointer field, decoded. */
export interface PtrValue {
  /** The raw 64-bit pointer, 16 hex digits. */
  raw: string;
  /** The FOT index (0: this object). */
  fot: number;
  /** The offset in the target. */
  offset: number;
  /** The target object's ID, or null (null pointer, or an entry that does not resolve). */
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
  /** The value (64-bit integers and byte strings as text). */
  value: string | number | null;
  /** A pointer field's decoding. */
  ptr?: PtrValue;
}

/** One record typed by the object's layout descriptor. */
export interface TypedRecord {
  /** The struct's name. */
  struct: string;
  /** Where the record starts in the object. */
  offset: number;
  /** Its fields. */
  fields: RecordField[];
}

/** A window of an object's bytes. */
export interface BytesView {
  /** The object. */
  id: string;
  /** First byte. */
  offset: number;
  /** Bytes in `hex`. */
  length: number;
  /** The object's size. */
  size: number;
  /** Two hex digits per byte. */
  hex: string;
  /** The typed records that overlap the window. */
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
  /** Its out-edges. */
  degree: number;
}

/** An edge of the pointer graph. */
export interface GraphEdge {
  /** Source object. */
  from: string;
  /** Target object. */
  to: string;
  /** A FOT entry or a tie. */
  kind: "fot" | "tie";
  /** `fot 1`, a name entry's name, or `tie`. */
  label: string;
}

/** The graph around an object (`/api/graph`): nodes (the root first), edges, and whether the node budget cut it short. */
export interface GraphView {
  /** The objects, breadth-first from the root. */
  nodes: GraphNode[];
  /** The edges between them. */
  edges: GraphEdge[];
  /** Some nodes (and the edges to them) were left out. */
  truncated: boolean;
}

/** A page of a collection's entries. */
export interface CollectionPage {
  /** The collection's object. */
  id: string;
  /** `hashmap`, `btree`, `vector` or `queue`. */
  kind: string;
  /** Its codecs (`string/string`; a vector's or queue's value codec). */
  codecs: string;
  /** Entries (elements) in all. */
  total: number;
  /** Index of the first row. */
  offset: number;
  /** Keys and values as text (a vector's key is its index, a queue's its position). */
  rows: { key: string; value: string }[];
}

/** A thread of the system. */
export interface ThreadRow {
  /** Thread number. */
  tid: number;
  /** Program name. */
  name: string;
  /** Its state. */
  state: "starting" | "running" | "sleeping" | "exited";
  /** Exit code once exited, else null. */
  exitCode: number | null;
  /** `kind: message` of the fault that ended it, or null. */
  fault: string | null;
  /** Start time, milliseconds since the epoch. */
  started: number;
  /** End time, or null while it runs. */
  ended: number | null;
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

/** One directory level of the naming tree. */
export interface NamesView {
  /** The directory's path. */
  path: string;
  /** Its entries, sorted by name. */
  entries: NameEntry[];
}

/** The system the explorer shows. */
export interface SystemView {
  /** The HAL's name. */
  hal: string;
  /** The image path. */
  image: string;
  /** Region size in bytes. */
  size: number;
  /** Free data bytes. */
  free: number;
  /** Objects now. */
  objects: number;
  /** The system cannot be written (a read-only boot or a read-only kernel). */
  readOnly: boolean;
  /** The explorer writes (`--write`). */
  writable: boolean;
  /** A read-only boot of the image, or a running `twz boot`'s control socket. */
  source: "boot" | "socket";
  /** Whose view is shown: `admin (the shell's session)` or `context PATH (ID)`. */
  context: string;
  /** The context's ID, or null for the admin session. */
  contextId: string | null;
  /** The naming generation. */
  generation: number;
}

/**
 * Layout descriptors: a named struct (`struct(fields, { name })`) described
 * in the object space, so that a tool that does not have the program's code
 * (the object explorer, `twz graph`) can type an object's bytes.
 *
 * The format (docs/FORMATS.md, "Layout descriptors"):
 *
 * - A **descriptor** is a small persistent object bound at
 *   `/.layouts/TTTTTTTT` (`TTTTTTTT`: the tag, 8 lowercase hex digits). At
 *   its base: a 16-byte header (magic `TLAY`, version 1, the payload's
 *   length, the tag) and a payload, the descriptor as UTF-8 JSON
 *   ({@linkcode LayoutDescriptor}: the struct's name, size and alignment,
 *   where the records start and how many there are, and every field,
 *   nested structs and short arrays flattened).
 * - The **tag** is a 32-bit hash of the payload (never 0). An object that
 *   carries a descriptor has it as the meta-info's `typeTag`, written by
 *   `Twz.create` in the kernel's create commit and covered by the meta-info
 *   checksum. Nothing else changes: the object's bytes, FOT and meta-info
 *   are laid out as before, and an object without a layout has typeTag 0
 *   (or whatever its creator chose) and no descriptor.
 *
 * Commit protocol, and why a crash never leaves an object naming a
 * descriptor that is not there:
 *
 * 1. `Twz.create({ name: "/.layouts/T" })`: the kernel commits the object,
 *    then the name is bound (create-and-name is crash-safe on its own: an
 *    object cut off before its bind carries `META_PENDING_NAME` and `twz
 *    fsck --deep --repair` deletes it).
 * 2. The payload and the header without its magic are stored and persisted.
 * 3. The magic is stored and persisted last: only now is the descriptor
 *    complete. A crash before it leaves a named descriptor with no magic,
 *    which readers take for absent and the next {@linkcode registerLayout}
 *    of the same layout fills in (the bytes are a function of the layout:
 *    two writers write the same ones).
 * 4. Only after {@linkcode registerLayout} returned does `Twz.create`
 *    create the described object with the tag: every object whose typeTag
 *    names a descriptor was created after the descriptor was durable.
 *
 * Descriptors are shared by every object of the same layout and placement
 * and never deleted.
 *
 * @module
 */
import { BASE_OFFSET, ErrorCode, formatId, type ObjID, TwzError } from "@twz/kernel/abi";
import type { Twz } from "./twz.ts";
import type { TwzObject } from "./object.ts";
import { hashBytes } from "./_hash.ts";
import {
  ArrayType,
  type FieldInfo,
  type Fields,
  FieldType,
  PtrType,
  StructType,
} from "./_layout_dsl.ts";

/** The directory of the descriptors. */
export const LAYOUTS_DIR = "/.layouts";
/** The descriptor header's magic: the bytes `T L A Y`. */
export const LAYOUT_MAGIC = 0x59414c54;
/** The descriptor format's version. */
export const LAYOUT_DESCRIPTOR_VERSION = 1;
/** Size of the descriptor header at the base of a descriptor object. */
const HEADER = 16;
/** Header fields, from the base. */
const H_MAGIC = 0, H_VERSION = 4, H_LENGTH = 8, H_TAG = 12;
/** Largest payload a reader accepts (a descriptor of 256 fields is about 20 KiB). */
const MAX_PAYLOAD = 64 << 10;
/** Most fields a descriptor lists (after flattening). */
const MAX_FIELDS = 256;
/** Arrays of at most this many elements are listed element by element; longer ones as `bytes(n)`. */
const MAX_ARRAY_ELEMENTS = 32;

/** One field of a {@linkcode LayoutDescriptor}. */
export interface LayoutField {
  /**
   * The field's name; a nested struct's fields are `outer.inner`, a short
   * array's elements `ports[0]`, `ports[1]`, ….
   */
  readonly name: string;
  /**
   * `"u8"`, `"u16"`, `"u32"`, `"u64"`, `"i8"`, `"i16"`, `"i32"`, `"i64"`,
   * `"f32"`, `"f64"`, `"bool"`, `"string(N)"`, `"bytes(N)"` or `"ptr"`
   * (an 8-byte invariant pointer). An array of more than 32 elements is one
   * `"bytes(N)"` field.
   */
  readonly type: string;
  /** Offset within the record. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  /** For a `"ptr"` field: the name of the struct it points at, when that struct is named. */
  readonly target?: string;
}

/** A struct layout and where its records lie in an object: see {@linkcode readLayoutDescriptor}. */
export interface LayoutDescriptor {
  /** The struct's name (`struct(fields, { name })`). */
  readonly name: string;
  /** The record size in bytes. */
  readonly size: number;
  /** The record alignment in bytes. */
  readonly align: number;
  /** Offset in the object of record 0 (at least the base, 256). */
  readonly offset: number;
  /** Number of records, back to back from `offset`. */
  readonly count: number;
  /** The fields, in order. */
  readonly fields: readonly LayoutField[];
}

/** Where a described struct's records lie in an object. */
export interface LayoutPlacement {
  /** Offset of record 0. @default {256} (the base) */
  readonly offset?: number;
  /** Number of records back to back. @default {1} */
  readonly count?: number;
}

/**
 * Any struct type, whatever its fields (what `struct()` returns; a
 * `StructType<F>` is not assignable to `StructType<Fields>`).
 */
export type AnyStructType = FieldType & {
  /** The struct's name, or `null`. */
  readonly name: string | null;
  /** Its fields in order. */
  readonly layout: ReadonlyMap<string, FieldInfo>;
};

/** The `layout` option of `Twz.create`: a named struct, or one with its placement. */
export type LayoutOption =
  | AnyStructType
  | ({ readonly type: AnyStructType } & LayoutPlacement);

const TYPE_RE = /^(u8|u16|u32|u64|i8|i16|i32|i64|f32|f64|bool|ptr|string\((\d+)\)|bytes\((\d+)\))$/;
const SCALAR_SIZE: Record<string, number> = {
  u8: 1,
  u16: 2,
  u32: 4,
  u64: 8,
  i8: 1,
  i16: 2,
  i32: 4,
  i64: 8,
  f32: 4,
  f64: 8,
  bool: 1,
  ptr: 8,
};
const NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const FIELD_RE = /^[A-Za-z][A-Za-z0-9_]*(\[\d+\])*(\.[A-Za-z][A-Za-z0-9_]*(\[\d+\])*)*$/;

function flatten(
  self: StructType<Fields>,
  type: FieldType,
  name: string,
  offset: number,
  out: LayoutField[],
): void {
  if (out.length > MAX_FIELDS) return;
  if (type instanceof StructType) {
    for (const [n, f] of type.layout) flatten(type, f.type, `${name}.${n}`, offset + f.offset, out);
  } else if (type instanceof ArrayType) {
    if (type.length > MAX_ARRAY_ELEMENTS) {
      out.push({ name, type: `bytes(${type.size})`, offset, size: type.size });
      return;
    }
    for (let i = 0; i < type.length; i++) {
      flatten(self, type.element, `${name}[${i}]`, offset + i * type.element.size, out);
    }
  } else if (type instanceof PtrType) {
    const target = type.resolve(self).name;
    out.push({ name, type: "ptr", offset, size: 8, ...(target === null ? {} : { target }) });
  } else {
    out.push({ name, type: type.kind, offset, size: type.size });
  }
}

/**
 * The descriptor of a named struct placed at `placement` (no object space
 * involved: what {@linkcode registerLayout} writes and
 * {@linkcode readLayoutDescriptor} gives back).
 *
 * @param type A struct made with a name (`struct(fields, { name })`).
 * @param placement Where the records lie: `offset` (default the base, 256)
 * and `count` (default 1).
 * @returns The descriptor.
 * @throws {TypeError} The struct has no name, or has more than 256 fields
 * once flattened; {RangeError} a bad offset or count.
 * @example
 * ```ts
 * import { layoutDescriptor, ptr, string, struct, u32 } from "@twz/libtwz/layout";
 * const ListNode = struct({ value: u32, label: string(16), next: ptr("self") }, { name: "ListNode" });
 * const d = layoutDescriptor(ListNode);
 * console.log(d.size, d.fields[2]); // 32 { name: "next", type: "ptr", offset: 24, size: 8, target: "ListNode" }
 * ```
 */
export function layoutDescriptor(
  type: AnyStructType,
  placement: LayoutPlacement = {},
): LayoutDescriptor {
  if (!(type instanceof StructType)) {
    throw new TypeError("A layout descriptor describes a struct type (struct(fields, { name }))");
  }
  if (type.name === null) {
    throw new TypeError(
      `Only a named struct can be described (struct(fields, { name: "..." })): ${type.kind}`,
    );
  }
  const offset = placement.offset ?? BASE_OFFSET;
  const count = placement.count ?? 1;
  if (!Number.isInteger(offset) || offset < BASE_OFFSET || offset % type.align !== 0) {
    throw new RangeError(
      `A layout's records start at an offset >= ${BASE_OFFSET} aligned to ${type.align}, not ${offset}`,
    );
  }
  if (!Number.isInteger(count) || count < 1 || count > 0x7fffffff) {
    throw new RangeError(`A layout's record count is a positive integer, not ${count}`);
  }
  const fields: LayoutField[] = [];
  for (const [n, f] of type.layout) {
    flatten(type as StructType<Fields>, f.type, n, f.offset, fields);
  }
  if (fields.length > MAX_FIELDS) {
    throw new TypeError(
      `${type.name} has more than ${MAX_FIELDS} fields once nested structs and arrays are listed: it cannot be described`,
    );
  }
  return { name: type.name!, size: type.size, align: type.align, offset, count, fields };
}

/** The payload of a descriptor: canonical JSON (fixed key order). */
function payloadOf(d: LayoutDescriptor): Uint8Array {
  const fields = d.fields.map((f) => ({
    name: f.name,
    type: f.type,
    offset: f.offset,
    size: f.size,
    ...(f.target === undefined ? {} : { target: f.target }),
  }));
  return new TextEncoder().encode(JSON.stringify({
    name: d.name,
    size: d.size,
    align: d.align,
    offset: d.offset,
    count: d.count,
    fields,
  }));
}

function tagOf(payload: Uint8Array): number {
  return hashBytes(payload, 0, payload.length) || 1;
}

/**
 * The name a descriptor with tag `tag` is bound at: `/.layouts/` and 8 hex digits.
 *
 * @param tag A typeTag (a u32, not 0).
 * @returns The path.
 */
export function layoutPath(tag: number): string {
  return `${LAYOUTS_DIR}/${(tag >>> 0).toString(16).padStart(8, "0")}`;
}

/**
 * Make sure the descriptor of `type` at `placement` is in the object space
 * (`/.layouts/TAG`, created when missing, durable when this returns) and
 * give its tag: the `typeTag` an object carrying it is created with.
 * `Twz.create({ layout })` calls it; call it yourself to create the
 * objects with `Twz.create({ typeTag })`. Outside transactions (the
 * descriptor is written directly, as names are).
 *
 * @param twz A writable session.
 * @param type A named struct.
 * @param placement Where the records lie (see {@linkcode layoutDescriptor}).
 * @returns The tag (a u32, never 0).
 * @throws {TypeError}/{RangeError} As {@linkcode layoutDescriptor};
 * {TwzError} `ReadOnly` on a read-only session (when the descriptor is not
 * there yet); `ObjectDamaged` when `/.layouts/TAG` holds a damaged
 * descriptor; `NameExists` when it holds another layout's (two layouts whose
 * 32-bit tags collide, about one chance in 4 billion per pair).
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { readLayoutDescriptor, registerLayout, struct, u32 } from "@twz/libtwz/layout";
 * const Point = struct({ x: u32, y: u32 }, { name: "Point" });
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const tag = registerLayout(twz, Point, { count: 4 });
 * const obj = twz.create({ size: 4096, typeTag: tag });
 * console.log(readLayoutDescriptor(obj, twz)?.count); // 4
 * twz.close();
 * ```
 */
export function registerLayout(
  twz: Twz,
  type: AnyStructType,
  placement: LayoutPlacement = {},
): number {
  const payload = payloadOf(layoutDescriptor(type, placement));
  const tag = tagOf(payload);
  const path = layoutPath(tag);
  for (let attempt = 0; attempt < 3; attempt++) {
    const found = twz.naming.lookup(path);
    if (found !== undefined && !twz.port.exists(found.id)) {
      // A name a crash left bound to an object that is gone: bind anew.
      twz.naming.unbind(path);
      continue;
    }
    if (found !== undefined) {
      const obj = twz.open(found.id);
      const have = readPayload(obj, path);
      if (have === "unfinished") {
        fill(twz.open(found.id, { write: true }), payload, tag);
        return tag;
      }
      if (!sameBytes(have, payload)) {
        const other = parse(have);
        if (typeof other === "string") throw damaged(path, found.id, other);
        throw new TwzError(
          ErrorCode.NameExists,
          `${path} describes another layout (${other.name}) with the same tag as ${type.name}: rename one of the structs`,
        );
      }
      return tag;
    }
    let obj: TwzObject;
    try {
      obj = twz.create({
        name: path,
        size: Math.ceil((BASE_OFFSET + HEADER + payload.length) / 1024) * 1024,
        fot: { entries: 0, namesSize: 0 },
      });
    } catch (e) {
      // Another session bound it first: use (or finish) that one.
      if (e instanceof TwzError && e.code === ErrorCode.NameExists) continue;
      throw e;
    }
    fill(obj, payload, tag);
    return tag;
  }
  throw new TwzError(ErrorCode.Busy, `${path} keeps changing under this session: try again`);
}

/** Write a descriptor into `obj`: payload and header first, the magic last (see the module doc). */
function fill(obj: TwzObject, payload: Uint8Array, tag: number): void {
  const v = obj.view;
  obj.write(BASE_OFFSET + HEADER, payload);
  v.setUint16(BASE_OFFSET + H_VERSION, LAYOUT_DESCRIPTOR_VERSION, true);
  v.setUint16(BASE_OFFSET + H_VERSION + 2, 0, true);
  v.setUint32(BASE_OFFSET + H_LENGTH, payload.length, true);
  v.setUint32(BASE_OFFSET + H_TAG, tag, true);
  obj.persist(BASE_OFFSET, HEADER + payload.length);
  v.setUint32(BASE_OFFSET + H_MAGIC, LAYOUT_MAGIC, true);
  obj.persist(BASE_OFFSET + H_MAGIC, 4);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function damaged(path: string, id: ObjID, why: string): TwzError {
  return new TwzError(
    ErrorCode.ObjectDamaged,
    `The layout descriptor ${path} (${formatId(id)}) is damaged: ${why}`,
  );
}

/**
 * The payload of the descriptor object `obj` (checked against its tag), or
 * `"unfinished"` when its magic is not written yet (cut short by a crash).
 */
function readPayload(obj: TwzObject, path: string): Uint8Array | "unfinished" {
  const v = obj.view;
  if (obj.size < BASE_OFFSET + HEADER) throw damaged(path, obj.id, `only ${obj.size} bytes`);
  const magic = v.getUint32(BASE_OFFSET + H_MAGIC, true);
  if (magic === 0) return "unfinished";
  if (magic !== LAYOUT_MAGIC) throw damaged(path, obj.id, "bad magic");
  const version = v.getUint16(BASE_OFFSET + H_VERSION, true);
  if (version !== LAYOUT_DESCRIPTOR_VERSION) {
    throw damaged(path, obj.id, `unknown descriptor version ${version}`);
  }
  const length = v.getUint32(BASE_OFFSET + H_LENGTH, true);
  if (length === 0 || length > MAX_PAYLOAD || BASE_OFFSET + HEADER + length > obj.size) {
    throw damaged(path, obj.id, `bad payload length ${length}`);
  }
  const payload = obj.read(BASE_OFFSET + HEADER, length);
  const tag = v.getUint32(BASE_OFFSET + H_TAG, true);
  if (tagOf(payload) !== tag) throw damaged(path, obj.id, "its checksum does not match");
  return payload;
}

/** Parse and check a payload; a one-line reason when it is not a descriptor. */
function parse(payload: Uint8Array): LayoutDescriptor | string {
  let j: unknown;
  try {
    j = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    return "its payload is not JSON";
  }
  const d = j as Record<string, unknown>;
  const int = (x: unknown, min: number) => Number.isSafeInteger(x) && (x as number) >= min;
  if (typeof d !== "object" || d === null || Array.isArray(d)) {
    return "its payload is not an object";
  }
  if (typeof d.name !== "string" || !NAME_RE.test(d.name)) return "bad struct name";
  if (!int(d.size, 1) || !int(d.align, 1) || !int(d.offset, BASE_OFFSET) || !int(d.count, 1)) {
    return "bad size, alignment, offset or count";
  }
  if (!Array.isArray(d.fields) || d.fields.length > MAX_FIELDS) return "bad field list";
  const fields: LayoutField[] = [];
  for (const f of d.fields as Record<string, unknown>[]) {
    if (typeof f !== "object" || f === null) return "bad field";
    const m = typeof f.type === "string" ? TYPE_RE.exec(f.type) : null;
    if (typeof f.name !== "string" || !FIELD_RE.test(f.name) || m === null) {
      return `bad field ${JSON.stringify(f.name)}`;
    }
    const size = SCALAR_SIZE[m[1]!] ?? Number(m[2] ?? m[3]);
    if (f.size !== size || !int(f.offset, 0) || (f.offset as number) + size > (d.size as number)) {
      return `field ${f.name} does not fit its record`;
    }
    if (f.target !== undefined && (f.type !== "ptr" || typeof f.target !== "string")) {
      return `bad pointer target of ${f.name}`;
    }
    fields.push(Object.freeze({
      name: f.name,
      type: f.type as string,
      offset: f.offset as number,
      size,
      ...(f.target === undefined ? {} : { target: f.target as string }),
    }));
  }
  return Object.freeze({
    name: d.name,
    size: d.size as number,
    align: d.align as number,
    offset: d.offset as number,
    count: d.count as number,
    fields: Object.freeze(fields),
  });
}

/** Per session: complete descriptors by tag, valid while the naming generation holds. */
const CACHE = new WeakMap<Twz, { gen: number; byTag: Map<number, LayoutDescriptor> }>();

/**
 * The layout descriptor an object carries: the named struct its creator
 * gave (`Twz.create({ layout })`) and where its records lie, read from
 * `/.layouts/TAG` for the object's typeTag. Never writes; works on a
 * read-only session.
 *
 * @param obj The object (any handle, read-only is enough).
 * @param twz The session `obj` belongs to (its names are looked up).
 * @returns The descriptor (frozen), or `null` when the object carries none:
 * typeTag 0, no libtwz meta-info, a typeTag no descriptor is bound for (or
 * whose name is left bound to a deleted object), a descriptor this session
 * may not read, or one a crash cut short (its magic not yet written).
 * @throws {TypeError} No session given.
 * @throws {TwzError} `ObjectDamaged` (one line naming the descriptor) when
 * the descriptor is damaged: bad magic, version, length, checksum or
 * contents; or when `obj`'s own meta-info is.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { ptr, readLayoutDescriptor, struct, u32 } from "@twz/libtwz/layout";
 * const Node = struct({ value: u32, next: ptr("self") }, { name: "Node" });
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const typed = twz.create({ size: 4096, layout: Node });
 * const plain = twz.create({ size: 4096 });
 * console.log(readLayoutDescriptor(typed, twz)?.name, readLayoutDescriptor(plain, twz)); // Node null
 * twz.close();
 * ```
 */
export function readLayoutDescriptor(obj: TwzObject, twz: Twz): LayoutDescriptor | null {
  if (typeof twz?.naming?.lookup !== "function") {
    throw new TypeError("readLayoutDescriptor(obj, twz) takes the session obj belongs to");
  }
  if (!obj.hasMeta) return null;
  const tag = obj.meta.typeTag;
  if (tag === 0) return null;
  const gen = twz.naming.generation;
  let c = CACHE.get(twz);
  if (c === undefined || c.gen !== gen) CACHE.set(twz, c = { gen, byTag: new Map() });
  const hit = c.byTag.get(tag);
  if (hit !== undefined) return hit;
  const path = layoutPath(tag);
  const found = twz.naming.lookup(path);
  if (found === undefined || found.kind !== "object" || !twz.port.exists(found.id)) return null;
  let dobj: TwzObject;
  try {
    dobj = twz.open(found.id, { write: false });
  } catch (e) {
    // Deleted meanwhile, or this session may not read it: none to show.
    const gone = e instanceof TwzError &&
      (e.code === ErrorCode.ObjectNotFound || e.code === ErrorCode.AccessDenied);
    if (gone) return null;
    throw e;
  }
  const payload = readPayload(dobj, path);
  if (payload === "unfinished") return null;
  const d = parse(payload);
  if (typeof d === "string") throw damaged(path, dobj.id, d);
  c.byTag.set(tag, d);
  return d;
}

/**
 * @internal The typeTag `Twz.create` writes for `layout`, registering the
 * descriptor first; checks that the records fit the new object's data
 * (`dataEnd`: where its FOT starts).
 */
export function _createLayoutTag(twz: Twz, layout: LayoutOption, dataEnd: number): number {
  const spec = layout as { readonly type: AnyStructType } & LayoutPlacement;
  const [type, placement]: [AnyStructType, LayoutPlacement] = layout instanceof FieldType
    ? [layout as AnyStructType, {}]
    : [spec.type, spec];
  const d = layoutDescriptor(type, placement);
  if (d.offset + d.size * d.count > dataEnd) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `${d.count} ${d.name} record${
        d.count === 1 ? "" : "s"
      } at ${d.offset} (${d.size} bytes each) do not fit the object's data (it ends at ${dataEnd})`,
    );
  }
  return registerLayout(twz, type, placement);
}

/**
 * Typed layouts: a small schema DSL compiled to accessor classes over an
 * object's bytes. Reading a field is a load from object memory and writing it
 * a store: no JSON, no copies. Every field is fixed-width and address-free
 * (integers, floats, booleans, fixed-size bytes and strings, nested structs,
 * fixed arrays, invariant pointers), so a record means the same thing in every
 * process, on every boot. Anything else cannot be declared: {@linkcode struct}
 * accepts only the field types of this module, at the type level and at run
 * time.
 *
 * Accessor classes are generated once per struct (with `new Function`, so each
 * getter and setter is its own small function with constant offsets). Fields
 * are laid out in declaration order with natural alignment, as a C compiler
 * would; little-endian. Integer fields refuse a value they cannot hold
 * (`RangeError: field "count" (u8) takes 0..255, not 300`), before anything
 * is stored; `struct(fields, { unchecked: true })` stores modulo 2^n instead.
 *
 * This module is the public entry; the parts live in private files: the DSL
 * (field and struct types, `_layout_dsl.ts`), the code generator
 * (`_layout_codegen.ts`) and the accessor base classes with the run-time
 * support generated code calls (`_layout_accessor.ts`).
 *
 * @example A record with a pointer to another record
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { bool, f64, ptr, string, struct, u32, u64 } from "@twz/libtwz/layout";
 * import { plugin } from "@twz/hal-sim";
 *
 * const Point = struct({ x: f64, y: f64 });
 * const Shape = struct({ id: u64, name: string(16), visible: bool, corners: u32, origin: ptr(Point) });
 *
 * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * const shape = Shape.at(obj, obj.baseOffset);
 * const point = Point.at(obj, obj.baseOffset + Shape.size);
 * point.x = 1.5;
 * shape.name = "triangle";
 * shape.origin = point;
 * console.log(shape.name, shape.origin?.x); // triangle 1.5
 * twz.close();
 * ```
 *
 * @module
 */
export {
  type AccessorHost,
  ArrayAccessor,
  type LiveBytes,
  named,
  type NamedTarget,
  RecordArray,
  RecordColumn,
  StructAccessor,
  StructCursor,
} from "./_layout_accessor.ts";
export {
  type Accessor,
  type AnyAccessor,
  array,
  ArrayType,
  bool,
  bytes,
  type ColumnKeys,
  type Cursor,
  f32,
  f64,
  type FieldInfo,
  type Fields,
  FieldType,
  type FollowKeys,
  i16,
  i32,
  i64,
  i8,
  ptr,
  type PtrTarget,
  PtrType,
  type ReadonlyKeys,
  type Records,
  type SelfPtr,
  type SelfResolved,
  string,
  struct,
  type StructOptions,
  StructType,
  u16,
  u32,
  u64,
  u8,
  type Value,
} from "./_layout_dsl.ts";
export {
  type AnyStructType,
  LAYOUT_DESCRIPTOR_VERSION,
  LAYOUT_MAGIC,
  type LayoutDescriptor,
  layoutDescriptor,
  type LayoutField,
  type LayoutOption,
  layoutPath,
  type LayoutPlacement,
  LAYOUTS_DIR,
  readLayoutDescriptor,
  registerLayout,
} from "./_layout_describe.ts";

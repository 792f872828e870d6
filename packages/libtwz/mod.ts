/**
 * libtwz: the user-space object API of Twizzler on Deno. Open an image (or a
 * running kernel), create objects, lay out typed records in them, link
 * records across objects with invariant pointers, and name objects in a
 * hierarchical naming service — all of it persistent, with in-memory
 * semantics (loads and stores on mapped bytes, no serialization).
 *
 * The entry point is {@linkcode Twz}: `Twz.open({ hal, image })` boots a
 * kernel in this process (or joins the system that holds the image),
 * `Twz.attach(port)` runs on a kernel port; `twz.create`, `twz.open` and
 * `twz.naming` make, find and name objects. This module holds the session,
 * object handles, naming and typed layouts; the rest are subpaths:
 *
 * | Subpath | What |
 * | --- | --- |
 * | `@twz/libtwz/layout` | typed records (`struct`, `u32`, `ptr`, …) over object memory |
 * | `@twz/libtwz/object` | object handles and invariant pointers |
 * | `@twz/libtwz/naming` | the naming service |
 * | `@twz/libtwz/tx` | failure-atomic transactions (`transaction`) |
 * | `@twz/libtwz/heap` | an allocator inside an object |
 * | `@twz/libtwz/codec` | value encodings for the collections |
 * | `@twz/libtwz/hashmap`, `/btree`, `/vector`, `/queue` | persistent collections |
 * | `@twz/libtwz/sync` | `Mutex`, `Condition`, `Semaphore` between threads |
 * | `@twz/libtwz/mqueue` | a message queue object between programs |
 * | `@twz/libtwz/security` | keys, security contexts, capabilities and delegations, secure gates |
 * | `@twz/libtwz/program` | what a program run by `twz run` gets (`main(env, args)`) |
 * | `@twz/libtwz/check` | a checker for every libtwz structure (fsck) |
 * | `@twz/libtwz/embedded` | the board `Twz.open` loads: a kernel in this process |
 *
 * @example A linked list across two objects, found again by name
 * ```ts
 * import { ptr, string, struct, Twz, u32 } from "@twz/libtwz";
 *
 * const Node = struct({ value: u32, label: string(12), next: ptr("self") });
 * const twz = await Twz.open({ hal: "sim", size: 8 << 20 });
 * const a = twz.create({ name: "/lists/a", size: 4096 });
 * const b = twz.create({ name: "/lists/b", size: 4096 });
 * const first = Node.at(a, a.baseOffset);
 * const second = Node.at(b, b.baseOffset);
 * first.value = 1;
 * second.value = 2;
 * second.label = "tail";
 * first.next = second; // a cross-object pointer: FOT entry 1 of a names b
 * first.$persist();
 * second.$persist();
 *
 * const head = Node.at(twz.open("/lists/a"), 256);
 * console.log(head.next?.label, head.$ptr("next")); // tail { fot: 1, offset: 256 }
 * twz.close();
 * ```
 *
 * @module
 */
export {
  type CreateOptions,
  DEFAULT_IMAGE_SIZE,
  DEFAULT_SIZE,
  type FotOptions,
  type ObjectOpenOptions,
  type RecoveredTransactions,
  resolveObj,
  Twz,
  type TwzOpenOptions,
} from "./twz.ts";
export { type FotEntry, type MetaInfo, type NameResolver, TwzObject } from "./object.ts";
export {
  type Binding,
  type BindOptions,
  MAX_NAME_BYTES,
  Naming,
  type PathBinding,
  type UnbindDanglingOptions,
} from "./naming.ts";
export {
  type Accessor,
  type AccessorHost,
  type AnyAccessor,
  array,
  ArrayAccessor,
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
  type LiveBytes,
  named,
  type NamedTarget,
  ptr,
  type PtrTarget,
  PtrType,
  type ReadonlyKeys,
  RecordArray,
  RecordColumn,
  type Records,
  type SelfPtr,
  type SelfResolved,
  string,
  struct,
  StructAccessor,
  StructCursor,
  type StructOptions,
  StructType,
  u16,
  u32,
  u64,
  u8,
  type Value,
} from "./layout.ts";
export {
  type AnyStructType,
  type LayoutDescriptor,
  layoutDescriptor,
  type LayoutField,
  type LayoutOption,
  type LayoutPlacement,
  readLayoutDescriptor,
  registerLayout,
} from "./layout.ts";

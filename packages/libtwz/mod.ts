/**
 * libtwz: the user-space object API of Twizzler on Deno. Open an image (or a
 * running kernel), create objects, lay out typed records in them, link
 * records across objects with invariant pointers, and name objects in a
 * hierarchical naming service — all of it persistent, with in-memory
 * semantics (loads and stores on mapped bytes, no serialization).
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
export * from "./twz.ts";
export * from "./object.ts";
export * from "./naming.ts";
export * from "./layout.ts";

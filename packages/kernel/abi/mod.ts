/**
 * The kernel/user contract (as `twizzler-abi` is for Twizzler): object IDs,
 * lifetimes and protections, the numbered error codes, the object layout and
 * invariant pointers, and the kernel port (system calls, their encoding, the
 * Worker channel: `port.ts`, `channel.ts`). Kernel and user
 * space (libtwz) both import it; it imports nothing outside itself but
 * `node:worker_threads` (the channel's `receiveMessageOnPort`).
 *
 * @example
 * ```ts
 * import { formatId, parseId } from "@twz/kernel/abi";
 * const id = parseId("1234567890abcdef1234567890abcdef");
 * console.log(formatId(id));
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./id.ts";
export * from "./object.ts";
export * from "./layout.ts";
export * from "./ptr.ts";
export * from "./extent.ts";
export * from "./port.ts";
export * from "./channel.ts";
export * from "./security.ts";
export * from "./global.ts";

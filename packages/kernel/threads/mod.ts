/**
 * Threads: programs stored as code objects, run as Workers with Deno
 * permissions `"none"` that reach the kernel only through their system-call
 * channel. The board makes one {@linkcode ThreadManager} per kernel; `twz
 * run` stores a bundle as a code object ({@linkcode encodeCodeObject}) and
 * spawns it.
 *
 * @example Run a program and wait for it
 * ```ts ignore
 * import { Kernel, Prot } from "@twz/kernel";
 * import { encodeCodeObject, ThreadManager } from "@twz/kernel/threads";
 *
 * const manager = new ThreadManager(kernel, { console: (t) => Deno.stdout.write(new TextEncoder().encode(t)) });
 * const bytes = encodeCodeObject("export default function start(init) { return init.args.length; }");
 * const src = kernel.create({ size: bytes.length, lifetime: "volatile" });
 * kernel.write(src, 0, bytes);
 * const code = kernel.create({
 *   size: bytes.length,
 *   prot: Prot.Read | Prot.Exec,
 *   sources: [{ id: src, srcOffset: 0, dstOffset: 0, length: bytes.length }],
 * });
 * const t = manager.spawn({ code, name: "count", args: ["a", "b"] });
 * console.log((await manager.wait(t.tid)).exitCode); // 2
 * await manager.shutdown(1000);
 * ```
 *
 * @module
 */
export {
  KILLED_EXIT_CODE,
  LOAD_EXIT_CODE,
  type SpawnOptions,
  ThreadManager,
  type ThreadManagerOptions,
} from "./manager.ts";
export {
  ChannelServer,
  KERNEL_SPIN_US,
  openThreadChannel,
  type ThreadCalls,
  type ThreadChannel,
  ThreadPort,
} from "./_server.ts";
export {
  CODE_HEADER,
  CODE_MAGIC,
  CODE_VERSION,
  decodeCodeObject,
  encodeCodeObject,
  isThreadObject,
  THREAD_MAGIC,
  THREAD_OBJECT_SIZE,
  THREAD_VERSION,
  ThreadField,
  ThreadFlag,
} from "./_object.ts";

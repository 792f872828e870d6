/**
 * The built-in crash-test workloads by name, and loading one supplied by
 * the user as a module path (what `twz crashtest WORKLOAD` does). See
 * `workload.ts` for the interface.
 *
 * @example Load a built-in workload by name
 * ```ts
 * import { loadWorkload } from "@twz/crashtest";
 *
 * const workload = await loadWorkload("kernel-objects");
 * console.log(workload.name, workload.imageSize); // kernel-objects 327680
 * ```
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { MIN_IMAGE } from "@twz/kernel";
import type { Workload } from "./workload.ts";

/** The largest `imageSize` a workload may ask for: crashtest keeps several copies. */
export const MAX_WORKLOAD_IMAGE = 2 ** 30;

/** Built-in workloads by name, loaded when asked for. */
export const WORKLOADS: Record<string, { summary: string; load: () => Promise<Workload> }> = {
  "kernel-objects": {
    summary: "object create (ties, sources), write, grow, delete (tie cascades), root object",
    load: async () => (await import("./workloads/kernel_objects.ts")).workload,
  },
  "naming": {
    summary: "naming service: nested mkdir/bind/rename/unbind, a directory grown past capacity",
    load: async () => (await import("./workloads/naming.ts")).workload,
  },
  "heap": {
    summary: "in-object allocator: alloc (large, growing), link, free, realloc in transactions",
    load: async () => (await import("./workloads/heap.ts")).workload,
  },
  "kv": {
    summary:
      "hash map (int keys) and B-tree map (string keys): set, delete, multi-map transactions",
    load: async () => (await import("./workloads/kv.ts")).workload,
  },
};

/** A workload module that cannot be used: printed as one line, exit code 3. */
export class WorkloadError extends Error {
  /** `"WorkloadError"`. */
  override name = "WorkloadError";
}

/**
 * A built-in workload by name, or a module by path (anything with a `/` or
 * ending in `.ts`/`.js`) exporting `workload` or a default export.
 *
 * @throws {WorkloadError} Unknown name, unloadable module, or a bad shape.
 */
export async function loadWorkload(nameOrPath: string): Promise<Workload> {
  const builtin = WORKLOADS[nameOrPath];
  if (builtin) return await builtin.load();
  if (!/[\\/]/.test(nameOrPath) && !/\.[mc]?[jt]s$/.test(nameOrPath)) {
    throw new WorkloadError(
      `unknown workload "${nameOrPath}" (built in: ${
        Object.keys(WORKLOADS).join(", ")
      }; or give a module path like ./my_workload.ts)`,
    );
  }
  const path = isAbsolute(nameOrPath) ? nameOrPath : resolve(Deno.cwd(), nameOrPath);
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(path).href);
  } catch (error) {
    throw new WorkloadError(
      `cannot load workload ${nameOrPath}: ${(error as Error).message.split("\n")[0]}`,
    );
  }
  const w = (mod.workload ?? mod.default) as Partial<Workload> | undefined;
  const missing = !w
    ? "no `workload` or default export"
    : typeof w.run !== "function"
    ? "no run() function"
    : typeof w.check !== "function"
    ? "no check() function"
    : !Number.isInteger(w.imageSize) || w.imageSize! <= 0
    ? "no positive integer imageSize"
    : w.imageSize! < MIN_IMAGE
    ? `imageSize ${w.imageSize} is below the smallest image (${MIN_IMAGE} bytes)`
    : w.imageSize! > MAX_WORKLOAD_IMAGE
    ? `imageSize ${w.imageSize} is too large: crashtest holds several copies in memory (at most ${MAX_WORKLOAD_IMAGE} bytes, 1 GiB)`
    : undefined;
  if (missing) throw new WorkloadError(`workload ${nameOrPath} is not usable: ${missing}`);
  return { ...w, name: w!.name ?? nameOrPath } as Workload;
}

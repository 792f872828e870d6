/**
 * A deep check (fsck) of the libtwz structures inside an image's objects:
 * meta-info and foreign object tables, the naming service's directories, the
 * transaction log (`/.txlog`), and the heaps and collections rooted at an
 * object's base. The kernel's own structures are `fsck` of `@twz/kernel`;
 * `twz fsck --deep` runs both.
 *
 * Findings come in two kinds. A *problem* is corruption no crash can leave
 * (a published FOT entry without its valid flag, a hash-map entry in the
 * wrong bucket, a garbage log header). A *warning* is a state that crashes
 * or ordinary use leave and libtwz copes with: a FOT entry or a name whose
 * target was deleted (dangling), a directory a crash left unnamed, a log
 * whose last commit was torn, a committed transaction not yet applied.
 *
 * Checking reads only, except that with `replay` a committed, unapplied
 * transaction is replayed first (what opening a session does). Object
 * structures are only trustworthy as replayed: a crash in the middle of
 * applying leaves some of a transaction's writes in place and others not.
 * `twz fsck --deep` therefore checks a private copy of the image, with
 * `replay`, and writes nothing unless `--repair` is given.
 *
 * One checker per structure, each in its own private file: the root record
 * (`_check_root.ts`), directories (`_check_naming.ts`), the transaction log
 * (`_check_txlog.ts`), meta-info and FOT (`_check_object.ts`), what is
 * rooted at an object's base (`_check_base.ts`: the heap, B-tree map, hash
 * map, vector and queue checkers), the scan for lost structures
 * (`_check_scan.ts`) and the repairs (`_check_repair.ts`).
 *
 * @example Check an image in memory
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { checkObjects } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * twz.create({ name: "/notes", size: 4096 });
 * const report = checkObjects(twz.port);
 * console.log(report.problems.length, report.checked.names); // 0 1
 * twz.close();
 * ```
 *
 * @module
 */
import type { KernelPort } from "@twz/kernel/abi";
import { CheckContext, type CheckOptions, type CheckReport, portOf } from "./_check_common.ts";
import { checkRootRecord } from "./_check_root.ts";
import { checkNaming } from "./_check_naming.ts";
import { checkTxLog, repairTxLog } from "./_check_txlog.ts";
import { checkObject, repairPending } from "./_check_object.ts";

export type {
  CheckArea,
  CheckCounts,
  CheckFinding,
  CheckOptions,
  CheckReport,
  CheckTxLog,
} from "./_check_common.ts";
export {
  type BaseStructure,
  findRootDirCandidate,
  type FoundStructure,
  scanStructures,
  structureAt,
} from "./_check_scan.ts";
export {
  bindLostFound,
  bindRecovered,
  reattachNamingRoot,
  repairDirectoryHeader,
} from "./_check_repair.ts";

/**
 * Check the libtwz structures of every object of a kernel's image.
 *
 * @param target A kernel port (or a session: its port), of a kernel booted on the image.
 * @param options `replay`: replay a committed transaction log first (writes).
 * @returns Problems, warnings, the log's state and counts.
 * @example Find a corruption
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { checkObjects } from "@twz/libtwz/check";
 * import { FotField, META_OFFSET, MetaField } from "@twz/kernel/abi";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * const a = twz.create({ size: 65536 });
 * const b = twz.create({ size: 4096 });
 * a.fotIndex(b.id);
 * const fot = a.view.getUint32(META_OFFSET + MetaField.fotOffset, true);
 * a.view.setUint32(fot + FotField.flags, 0, true); // entry 1 loses its flags
 * console.log(checkObjects(twz).problems[0]?.message); // published FOT entry 1 is not valid (flags 0x0)
 * twz.close();
 * ```
 */
export function checkObjects(
  target: KernelPort | { readonly port: KernelPort },
  options: CheckOptions = {},
): CheckReport {
  const port = portOf(target);
  const ctx = new CheckContext(port);
  // 0. The kernel root object as libtwz lays it out: meta-info and root record.
  checkRootRecord(ctx);
  // 1. Naming: walk the tree read-only, collecting paths (for name-based FOT entries).
  checkNaming(ctx);
  // 2. The transaction log, before anything reads object structures.
  const txlog = checkTxLog(ctx, options);
  // 3. Every object: meta-info, FOT, and what is rooted at its base.
  for (const stat of port.list()) checkObject(ctx, stat.id);
  for (const m of ctx.maps.values()) port.unmap(m);
  return { problems: ctx.problems, warnings: ctx.warnings, txlog, checked: ctx.checked };
}

/**
 * Repair what {@linkcode checkObjects} can repair in place: replay a
 * committed, unapplied transaction (exactly what opening a session does) and
 * clear a garbage transaction log header (recovery ignores it anyway; the
 * next commit rewrites it). Everything else is reported, not repaired.
 *
 * @param target A kernel port (or a session: its port), of a kernel booted on the image.
 * @returns What was done, one line each.
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { repairObjects } from "@twz/libtwz/check";
 * const twz = await Twz.open({ hal: "sim", size: 16 << 20 });
 * console.log(repairObjects(twz)); // []
 * twz.close();
 * ```
 */
export function repairObjects(target: KernelPort | { readonly port: KernelPort }): string[] {
  const port = portOf(target);
  const lines = repairTxLog(port);
  lines.push(...repairPending(port));
  return lines;
}

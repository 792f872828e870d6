/**
 * The root record checker: the kernel root object as libtwz lays it out (its
 * meta-info and the naming root record at its base), and a lost record (none
 * while a directory holds names). Private to libtwz; the public entry is
 * `check.ts`.
 *
 * @module
 */
import { BASE_OFFSET, formatId, MetaFlags, type ObjID } from "@twz/kernel/abi";
import { dirCapacityOf, dirProblem, readRootRecord } from "./_naming_format.ts";
import {
  type CheckContext,
  DIR_ENTRY,
  DIR_HEADER,
  E_STATE,
  presence,
  rootObjectOf,
  usable,
} from "./_check_common.ts";

/**
 * Check the kernel root object and its naming root record; sets
 * `ctx.rootObjId`, `ctx.rootObjDamage` and `ctx.rootDir`.
 *
 * @param ctx The run.
 */
export function checkRootRecord(ctx: CheckContext): void {
  const { port, problem, warn, mapOf, metaFlags } = ctx;
  // 0. The kernel root object as libtwz lays it out: meta-info and root record.
  const rootObjOf = rootObjectOf(port);
  const rootObjId = rootObjOf.id;
  ctx.rootObjId = rootObjId;
  ctx.rootObjDamage = rootObjOf.damage;
  let rootDir: ObjID | null = null;
  if (rootObjOf.damage !== undefined) {
    problem(
      undefined,
      "root",
      `the kernel root object is damaged (quarantined), so the naming root is unreachable: ${rootObjOf.damage}`,
    );
  }
  if (rootObjId !== 0n) {
    const m = mapOf(rootObjId);
    if (!m) problem(rootObjId, "root", "the kernel root object cannot be mapped");
    else {
      const rec = readRootRecord(m.view);
      if (rec.state === "valid") rootDir = rec.dir;
      else if (rec.state === "damaged") {
        // Cut short before its magic: it names the new, empty root directory,
        // or (its bytes not durable yet) no object — while no directory holds names.
        const torn = m.view.getUint32(BASE_OFFSET, true) === 0 &&
          (rec.dir !== undefined && emptyDir(rec.dir) ||
            (rec.dir === undefined || presence(port, rec.dir).state === "no") &&
              namedDirectory() === undefined);
        if (torn) {
          warn(
            rootObjId,
            "root",
            "the naming root record is not published yet (a crash during the first use of the naming service leaves this; the next session completes it)",
          );
        } else {
          problem(
            rootObjId,
            "root",
            `the naming root record is damaged: ${rec.problem}${
              rec.dir !== undefined ? ` (it names ${formatId(rec.dir)})` : ""
            }`,
          );
        }
      }
      if (rec.state === "valid") {
        const flags = metaFlags(m);
        if (flags === null) problem(rootObjId, "root", "the kernel root object has no meta-info");
        else if (!(flags & MetaFlags.Root)) {
          problem(rootObjId, "root", `the kernel root object's meta-info lacks the Root flag`);
        }
      }
    }
  }

  ctx.rootDir = rootDir;

  // No record (or no root object) while a directory holds names: the record was lost.
  if (
    rootDir === null && rootObjOf.damage === undefined &&
    (rootObjId === 0n || readRootRecordOf(rootObjId) === "blank")
  ) {
    const named = namedDirectory();
    if (named !== undefined) {
      problem(
        rootObjId === 0n ? undefined : rootObjId,
        "root",
        `no naming root record, but directory ${formatId(named)} holds names: the record was lost`,
      );
    }
  }

  /** A directory object (other than the root object) holding a bound entry, if any. */
  function namedDirectory(): ObjID | undefined {
    for (const stat of port.list()) {
      if (stat.lifetime !== "persistent" || stat.id === rootObjId) continue;
      const m = mapOf(stat.id);
      if (!m || !((metaFlags(m) ?? 0) & MetaFlags.Directory)) continue;
      // Every entry its size holds: its header may be damaged too.
      const cap = dirCapacityOf(m.bytes.length);
      for (let i = 0; i < cap; i++) {
        if (m.view.getUint32(BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY + E_STATE, true) === 1) {
          return stat.id;
        }
      }
    }
    return undefined;
  }

  function readRootRecordOf(id: ObjID): string {
    const m = mapOf(id);
    return m ? readRootRecord(m.view).state : "unmapped";
  }

  /** Whether `id` is an intact, never-changed, empty directory (what a torn first use leaves). */
  function emptyDir(id: ObjID): boolean {
    if (!usable(port, id)) return false;
    const m = mapOf(id);
    if (!m || dirProblem(m.view, m.bytes.length) !== undefined) return false;
    if (m.view.getUint32(BASE_OFFSET + 12, true) !== 0) return false;
    const cap = m.view.getUint32(BASE_OFFSET + 8, true);
    for (let i = 0; i < cap; i++) {
      if (m.view.getUint32(BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY + E_STATE, true) !== 0) {
        return false;
      }
    }
    return true;
  }
}

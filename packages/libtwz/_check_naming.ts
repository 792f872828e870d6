/**
 * The directory (naming) checker: a read-only walk of the tree from the
 * naming root, each directory's header and entries checked and every bound
 * path collected; and the defensive directory readers the repairs and the
 * scan use. Private to libtwz; the public entry is `check.ts`.
 *
 * @module
 */
import {
  BASE_OFFSET,
  formatId,
  isValidId,
  type KernelPort,
  type Mapping,
  MetaFlags,
  type ObjID,
  Prot,
  readId,
} from "@twz/kernel/abi";
import { dirCapacityOf, dirProblem } from "./_naming_format.ts";
import { TXLOG_NAME } from "./_session_tx.ts";
import {
  type CheckContext,
  DIR_ENTRY,
  DIR_HEADER,
  E_ID,
  E_KIND,
  E_LEN,
  E_NAME,
  E_STATE,
  fatal,
  findRootDir,
  KIND_DIR,
  KIND_OBJECT,
  MAX_NAME,
  presence,
  usable,
} from "./_check_common.ts";

/**
 * Walk the naming tree from `ctx.rootDir`; fills `ctx.paths`, `ctx.reached`,
 * `ctx.bound` and `ctx.txlogId`.
 *
 * @param ctx The run (after the root record checker).
 */
export function checkNaming(ctx: CheckContext): void {
  const { port, problem, warn, mapOf, metaFlags, checked, paths, reached, bound } = ctx;
  const rootDir = ctx.rootDir, rootObjId = ctx.rootObjId;
  // 1. Naming: walk the tree read-only, collecting paths (for name-based FOT entries).
  const rootDirPresence = rootDir === null ? undefined : presence(port, rootDir);
  if (rootDir !== null) {
    if (rootDirPresence!.state === "damaged") {
      problem(
        rootDir,
        "naming",
        `the root directory ${formatId(rootDir)} is damaged (quarantined): ${
          (rootDirPresence as { message: string }).message
        }`,
      );
    } else if (rootDirPresence!.state === "no") {
      problem(
        rootObjId,
        "root",
        `the naming root record names root directory ${formatId(rootDir)}, which does not exist`,
      );
    } else {
      const queue: Array<[ObjID, string]> = [[rootDir, ""]];
      reached.add(rootDir);
      paths.set("/", rootDir);
      while (queue.length > 0) {
        const [dirId, path] = queue.shift()!;
        checkDir(dirId, path, queue);
      }
      ctx.txlogId = paths.get(TXLOG_NAME);
    }
  }

  function checkDir(dirId: ObjID, path: string, queue: Array<[ObjID, string]>): void {
    const m = mapOf(dirId);
    const where = path === "" ? "/" : path;
    if (!m) return problem(dirId, "naming", `directory ${where} cannot be mapped`);
    const flags = metaFlags(m);
    if (flags === null || !(flags & MetaFlags.Directory)) {
      return problem(dirId, "naming", `directory ${where} is not a directory object`);
    }
    const v = m.view;
    const header = dirProblem(v, m.bytes.length);
    if (header !== undefined) {
      return problem(dirId, "naming", `directory ${where}: header damaged: ${header}`);
    }
    checked.directories++;
    const cap = v.getUint32(BASE_OFFSET + 8, true);
    if (cap !== dirCapacityOf(m.bytes.length)) {
      warn(
        dirId,
        "naming",
        `directory ${where}: capacity ${cap} of ${
          dirCapacityOf(m.bytes.length)
        } entries (a grow cut short by a crash leaves this; the next bind publishes it)`,
      );
    }
    const names = new Set<string>();
    for (let i = 0; i < cap; i++) {
      const at = BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY;
      const state = v.getUint32(at + E_STATE, true);
      if (state === 0) continue;
      if (state !== 1) {
        problem(dirId, "naming", `directory ${where}: entry ${i} has unknown state ${state}`);
        continue;
      }
      const kind = v.getUint16(at + E_KIND, true);
      const len = v.getUint16(at + E_LEN, true);
      let name: string;
      try {
        if (len < 1 || len > MAX_NAME) throw new RangeError();
        name = fatal.decode(m.bytes.subarray(at + E_NAME, at + E_NAME + len));
      } catch {
        problem(
          dirId,
          "naming",
          `directory ${where}: entry ${i} has a malformed name (${len} bytes)`,
        );
        continue;
      }
      if (name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
        problem(dirId, "naming", `directory ${where}: entry ${i} has an invalid name "${name}"`);
        continue;
      }
      const full = `${path}/${name}`;
      if (names.has(name)) {
        problem(dirId, "naming", `directory ${where}: ${name} is bound twice`);
        continue;
      }
      names.add(name);
      if (kind !== KIND_OBJECT && kind !== KIND_DIR) {
        problem(dirId, "naming", `${full}: unknown entry kind ${kind}`);
        continue;
      }
      const id = readId(v, at + E_ID);
      if (!isValidId(id)) {
        problem(dirId, "naming", `${full} is bound to an invalid ID ${formatId(id)}`);
        continue;
      }
      checked.names++;
      paths.set(full, id);
      bound.add(id);
      const there = presence(port, id);
      if (there.state === "damaged") {
        // The kernel quarantined it: report it and go on with the rest.
        problem(
          id,
          "naming",
          `${full} is bound to ${formatId(id)}, which is damaged (quarantined): ${there.message}`,
        );
        continue;
      }
      if (there.state === "no") {
        warn(
          dirId,
          "naming",
          `${full} is bound to ${formatId(id)}, which no longer exists (dangling name)`,
        );
        continue;
      }
      const tm = mapOf(id);
      const isDir = tm !== null && ((metaFlags(tm) ?? 0) & MetaFlags.Directory) !== 0;
      if (kind === KIND_DIR) {
        if (!isDir) {
          problem(
            dirId,
            "naming",
            `${full} is bound as a directory to ${formatId(id)}, which is not one`,
          );
        } else if (reached.has(id)) {
          warn(
            dirId,
            "naming",
            `${full} names directory ${
              formatId(id)
            }, which has another name too (a rename cut short by a crash leaves this)`,
          );
        } else {
          reached.add(id);
          queue.push([id, full]);
        }
      } else if (isDir) {
        problem(dirId, "naming", `${full} is bound as an object to directory ${formatId(id)}`);
      }
    }
  }
}

/** Bindings of a directory object, read defensively (bounded; damaged entries skipped). */
export function dirEntries(m: Mapping): Array<{ name: string; id: ObjID; dir: boolean }> {
  const v = m.view;
  if (dirProblem(v, m.bytes.length) !== undefined) return [];
  const cap = v.getUint32(BASE_OFFSET + 8, true);
  const out: Array<{ name: string; id: ObjID; dir: boolean }> = [];
  for (let i = 0; i < cap; i++) {
    const at = BASE_OFFSET + DIR_HEADER + i * DIR_ENTRY;
    if (v.getUint32(at + E_STATE, true) !== 1) continue;
    const kind = v.getUint16(at + E_KIND, true);
    const len = v.getUint16(at + E_LEN, true);
    if ((kind !== KIND_OBJECT && kind !== KIND_DIR) || len < 1 || len > MAX_NAME) continue;
    let name: string;
    try {
      name = fatal.decode(m.bytes.subarray(at + E_NAME, at + E_NAME + len));
    } catch {
      continue;
    }
    const id = readId(v, at + E_ID);
    if (isValidId(id)) out.push({ name, id, dir: kind === KIND_DIR });
  }
  return out;
}

/** Every path reachable from the current naming root, by object (bounded: each directory once). */
export function namesByObject(port: KernelPort): Map<ObjID, string[]> {
  const out = new Map<ObjID, string[]>();
  const root = findRootDir(port);
  if (root === null || !usable(port, root)) return out;
  out.set(root, ["/"]);
  const seen = new Set<ObjID>([root]);
  const queue: Array<[ObjID, string]> = [[root, ""]];
  while (queue.length > 0) {
    const [id, path] = queue.shift()!;
    let m: Mapping;
    try {
      m = port.map(id, Prot.Read);
    } catch {
      continue;
    }
    for (const e of dirEntries(m)) {
      const full = `${path}/${e.name}`;
      const list = out.get(e.id);
      if (list) list.push(full);
      else out.set(e.id, [full]);
      if (e.dir && !seen.has(e.id) && usable(port, e.id)) {
        seen.add(e.id);
        queue.push([e.id, full]);
      }
    }
  }
  return out;
}

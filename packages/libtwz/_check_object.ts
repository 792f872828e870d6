/**
 * The meta-info and object checker: every object's libtwz meta-info and FOT,
 * the marks a crash inside `Twz.create({ name })` leaves (and their repair),
 * and the dispatch to what is rooted at its base. Private to libtwz; the
 * public entry is `check.ts`.
 *
 * @module
 */
import {
  BASE_OFFSET,
  formatId,
  FOT_ENTRY_SIZE,
  FotField,
  FotFlags,
  isValidId,
  type KernelPort,
  type Mapping,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  Prot,
  readId,
} from "@twz/kernel/abi";
import { META_PENDING_NAME, metaProblem } from "./_meta.ts";
import {
  type CheckContext,
  fatal,
  findRootDir,
  isDamage,
  KNOWN_FOT_FLAGS,
  presence,
  usable,
} from "./_check_common.ts";
import { namesByObject } from "./_check_naming.ts";
import { checkBase } from "./_check_base.ts";
import { bindLostFound } from "./_check_repair.ts";

/**
 * Check object `id` (counted): its meta-info and FOT, a pending-name mark,
 * a directory no name reaches, and what is rooted at its base.
 *
 * @param ctx The run (after the naming walk and the log check).
 * @param id The object.
 */
export function checkObject(ctx: CheckContext, id: ObjID): void {
  const { problem, warn, mapOf, metaFlags, checked, reached, bound } = ctx;
  const rootObjId = ctx.rootObjId, txlogId = ctx.txlogId;
  checked.objects++;
  const m = mapOf(id);
  if (!m) {
    warn(id, "meta", "cannot be mapped for reading; not checked");
    return;
  }
  const flags = metaFlags(m);
  if (flags === null) return; // not a libtwz object
  checked.libtwzObjects++;
  if (checkMeta(ctx, id, m, flags) && (flags & MetaFlags.Directory) && !reached.has(id)) {
    warn(
      id,
      "naming",
      "a directory object that no name reaches (a crash during mkdir leaves this)",
    );
  }
  if ((flags & META_PENDING_NAME) && id === rootObjId) {
    // The kernel makes the root object, never Twz.create: the mark is damage
    // to its flags. (The transaction log is made by Twz.create with its
    // name, at a session's first transaction: a crash after its bind and
    // before the mark is cleared leaves it marked, as any named object.)
    problem(
      id,
      "meta",
      "the kernel root object is marked as created for a name: its meta-info flags are damaged",
    );
  } else if (flags & META_PENDING_NAME) {
    warn(
      id,
      "meta",
      bound.has(id)
        ? "created for a name and named, but still marked pending (a crash inside Twz.create leaves this; repair clears the mark)"
        : "created for a name that was never bound (a crash inside Twz.create leaves this; repair deletes it if it was never written, else binds it under /lost+found)",
    );
  }
  if (!(flags & MetaFlags.Directory) && id !== txlogId && id !== rootObjId) checkBase(ctx, id, m);
}

/**
 * Check an object's meta-info and its FOT entries (each published entry
 * valid, its name inside the names area, its target alive).
 *
 * @returns Whether the meta-info is sound (else its problem is reported).
 */
function checkMeta(ctx: CheckContext, id: ObjID, m: Mapping, flags: number): boolean {
  const { port, problem, warn, checked, paths } = ctx;
  const rootDir = ctx.rootDir, rootObjId = ctx.rootObjId;
  const v = m.view;
  const size = m.bytes.length;
  const f = (field: number) => v.getUint32(META_OFFSET + field, true);
  const bad = metaProblem(v, size);
  if (bad !== undefined) {
    problem(id, /FOT|fotCount|namesUsed/.test(bad) ? "fot" : "meta", bad);
    return false;
  }
  if ((flags & MetaFlags.Root) && id !== rootObjId) {
    problem(id, "meta", "has the Root flag but is not the kernel root object");
  }
  const fotOffset = f(MetaField.fotOffset);
  const count = f(MetaField.fotCount), namesUsed = f(MetaField.namesUsed);
  const namesOffset = f(MetaField.namesOffset);
  if (f(MetaField.createdSize) > size) {
    problem(id, "meta", `created with ${f(MetaField.createdSize)} bytes but now ${size}`);
  }
  for (let i = 1; i <= count; i++) {
    checked.fotEntries++;
    const at = fotOffset + (i - 1) * FOT_ENTRY_SIZE;
    const eflags = v.getUint32(at + FotField.flags, true);
    if (!(eflags & FotFlags.Valid)) {
      problem(
        id,
        "fot",
        `published FOT entry ${i} is not valid (flags 0x${eflags.toString(16)})`,
      );
      continue;
    }
    if (eflags & ~KNOWN_FOT_FLAGS) {
      problem(id, "fot", `FOT entry ${i} has unknown flags 0x${eflags.toString(16)}`);
      continue;
    }
    if (eflags & FotFlags.Name) {
      const off = v.getUint32(at + FotField.nameOffset, true);
      const len = v.getUint16(at + FotField.nameLength, true);
      const rlen = v.getUint16(at + FotField.resolverLength, true);
      if (off < namesOffset || off + len + rlen > namesOffset + namesUsed) {
        problem(
          id,
          "fot",
          `FOT entry ${i}'s name [${off}, ${off + len + rlen}) lies outside the used names area`,
        );
        continue;
      }
      let name: string, resolver: string;
      try {
        name = fatal.decode(m.bytes.subarray(off, off + len));
        resolver = fatal.decode(m.bytes.subarray(off + len, off + len + rlen));
      } catch {
        problem(id, "fot", `FOT entry ${i}'s name is not UTF-8`);
        continue;
      }
      if (resolver === "" && rootDir !== null) {
        const path = "/" + name.split("/").filter((p) => p !== "").join("/");
        const bound = paths.get(path);
        if (bound === undefined || !usable(port, bound)) {
          warn(
            id,
            "fot",
            `FOT entry ${i} names ${name}, which resolves to nothing now (dangling)`,
          );
        }
      }
    } else {
      const target = readId(v, at + FotField.id);
      if (!isValidId(target)) {
        problem(id, "fot", `FOT entry ${i} holds an invalid ID ${formatId(target)}`);
      } else {
        const there = presence(port, target);
        if (there.state !== "yes") {
          warn(
            id,
            "fot",
            there.state === "no"
              ? `FOT entry ${i} names ${formatId(target)}, which no longer exists (dangling)`
              : `FOT entry ${i} names ${formatId(target)}, which is damaged (quarantined)`,
          );
        }
      }
    }
  }
  return true;
}

/**
 * Finish what a crash inside `Twz.create({ name })` cut short: an object
 * still marked {@linkcode META_PENDING_NAME} that a name reaches loses the
 * mark; one that no name reaches was never handed to anyone and is deleted
 * when nothing was ever written past its meta-info (so nothing is lost);
 * otherwise the mark may be damage to a real object's flags, and the object
 * is kept under `/lost+found/<ID>`. The kernel root object (whose mark is
 * damage) and the transaction log are never deleted: their mark is cleared.
 * Nothing is deleted while the naming root is unreadable.
 */
export function repairPending(port: KernelPort): string[] {
  const lines: string[] = [];
  const rootDir = findRootDir(port);
  if (rootDir === null || !usable(port, rootDir)) return lines;
  const names = namesByObject(port);
  const rootObject = port.rootObjectId();
  for (const stat of port.list()) {
    if (stat.lifetime !== "persistent" || !(stat.prot & Prot.Read)) continue;
    let m: Mapping;
    try {
      m = port.map(stat.id, Prot.Read);
    } catch (e) {
      if (isDamage(e)) continue;
      throw e;
    }
    const v = m.view;
    if (m.bytes.length < BASE_OFFSET || v.getUint32(META_OFFSET, true) !== OBJECT_MAGIC) continue;
    const flags = v.getUint16(META_OFFSET + MetaField.flags, true);
    if (!(flags & META_PENDING_NAME) || metaProblem(v, m.bytes.length) !== undefined) continue;
    const system = stat.id === rootObject || names.get(stat.id)?.includes("/.txlog");
    if (names.has(stat.id) || system) {
      const w = port.map(stat.id, Prot.ReadWrite);
      w.view.setUint16(META_OFFSET + MetaField.flags, flags & ~META_PENDING_NAME, true);
      w.persist(META_OFFSET + MetaField.flags, 2);
      lines.push(
        `meta ${formatId(stat.id)}: cleared the pending-name mark of ${
          system && !names.has(stat.id) ? "the kernel root object" : names.get(stat.id)![0]
        }`,
      );
    } else if (writtenTo(m)) {
      const path = bindLostFound(port, stat.id);
      const w = port.map(stat.id, Prot.ReadWrite);
      w.view.setUint16(META_OFFSET + MetaField.flags, flags & ~META_PENDING_NAME, true);
      w.persist(META_OFFSET + MetaField.flags, 2);
      lines.push(
        `meta ${
          formatId(stat.id)
        }: marked as created for a name but holds data: kept as ${path} (not deleted)`,
      );
    } else if (stat.dependents === 0) {
      port.delete(stat.id);
      lines.push(
        `meta ${
          formatId(stat.id)
        }: deleted an object created for a name that was never bound (a crash inside create)`,
      );
    }
  }
  return lines;
}

/** Whether anything was stored in an object past its meta-info: data or FOT entries. */
function writtenTo(m: Mapping): boolean {
  const v = m.view;
  if (v.getUint32(META_OFFSET + MetaField.fotCount, true) !== 0) return true;
  const end = Math.min(v.getUint32(META_OFFSET + MetaField.fotOffset, true), m.bytes.length);
  for (let i = BASE_OFFSET; i < end; i++) if (m.bytes[i] !== 0) return true;
  return false;
}

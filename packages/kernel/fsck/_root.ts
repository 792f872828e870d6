// fsck's root checker: the root record (magic and checksum), the root
// object it names (found again by its meta-info when the record is damaged
// or names an object that is not there), and its counters against what the
// table and bitmap say.
import {
  isValidId,
  META_OFFSET,
  MetaField,
  MetaFlags,
  OBJECT_MAGIC,
  type ObjID,
  readId,
} from "../abi/mod.ts";
import { decodeRoot } from "../_root.ts";
import { ROOT_OBJECT_SIZE } from "../kernel.ts";
import { hexId, type Scan } from "./_scan.ts";

/** Check the root record's magic and checksum (`sc.root`, `sc.rootOk`). */
export function checkRootRecord(sc: Scan): void {
  sc.root = decodeRoot(sc.bytes, sc.g.rootOffset);
  sc.rootOk = sc.root !== undefined;
  if (!sc.rootOk) sc.problem("root", "the root record is damaged (bad magic or checksum)", true);
}

/**
 * Find the root object (`sc.rootObject`) and check the root record's
 * counters against the table and bitmap as repaired (after the other
 * checkers); plan the record's rebuild when it is wrong.
 */
export function checkRoot(sc: Scan): void {
  const { g, view, root, plan, objects, byId, untrusted, notes, kept, owner } = sc;
  const ro = g.rootOffset;
  const problem = (area: "root", message: string, repairable: boolean) =>
    sc.problem(area, message, repairable);
  // The root object: the root record names it; when the record is damaged or
  // names an object that is not there, look for it by its meta-info (libtwz
  // marks the kernel's root object with the Root flag).
  const rawRoot = readId(view, ro + 32);
  let rootObject = root ? root.rootObject : rawRoot;
  const exists = (id: ObjID) =>
    isValidId(id) && (byId.has(id) || untrusted.some((u) => u.s.id === id));
  if (!exists(rootObject)) {
    // The kernel makes it ROOT_OBJECT_SIZE bytes: those are read first (one
    // page each), every object only when none of them is it.
    const candidates: ObjID[] = [];
    for (
      const pass of [(n: number) => n === ROOT_OBJECT_SIZE, (n: number) => n !== ROOT_OBJECT_SIZE]
    ) {
      for (const s of objects) {
        if (!pass(s.size) || s.size < META_OFFSET + 8) continue;
        const m = sc.objectBytes(s.start, META_OFFSET + 8);
        const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
        if (v.getUint32(META_OFFSET + MetaField.magic, true) !== OBJECT_MAGIC) continue;
        if (v.getUint16(META_OFFSET + MetaField.flags, true) & MetaFlags.Root) {
          candidates.push(s.id);
        }
      }
      if (candidates.length > 0) break;
    }
    const named = rootObject === 0n
      ? "names no root object"
      : `names root object ${hexId(rootObject)}, which does not exist`;
    if (candidates.length === 1) {
      if (root) {
        problem(
          "root",
          `the root record ${named}; object ${
            hexId(candidates[0]!)
          } is the root object (its meta-info says so)`,
          true,
        );
        sc.rootOk = false;
      } else {
        notes.push(
          `the root object ${
            hexId(candidates[0]!)
          } was found by its meta-info (the damaged root record ${
            rawRoot === 0n ? "names none" : `names ${hexId(rawRoot)}`
          })`,
        );
      }
      rootObject = candidates[0]!;
    } else if (candidates.length > 1) {
      problem(
        "root",
        `the root record ${named}; ${candidates.length} objects claim to be the root object (${
          candidates.slice(0, 4).map(hexId).join(", ")
        }${candidates.length > 4 ? ", ..." : ""}): not chosen`,
        false,
      );
      rootObject = isValidId(rootObject) ? rootObject : 0n;
    } else if (root && rootObject !== 0n) {
      notes.push(
        `the root object ${hexId(rootObject)} does not exist (it is made again when asked for)`,
      );
    } else if (!root) {
      rootObject = isValidId(rawRoot) ? rawRoot : 0n;
    }
  }
  plan.rootObject = rootObject;
  sc.rootObject = rootObject;

  // Root counters against what the table and bitmap say (as repaired).
  let keptUsed = 0;
  for (let b = 0; b < g.dataBlocks; b++) if (kept[b] && owner[b]! < 0) keptUsed++;
  if (root) {
    const { objects: objectsCount, slotsUsed, freeBlocks, cursor } = root;
    const check = (what: string, has: number, want: number) => {
      if (has !== want) {
        problem("root", `the root record counts ${has} ${what}; the image holds ${want}`, true);
        sc.rootOk = false;
      }
    };
    check("objects", objectsCount, objects.length + untrusted.length);
    check("used table slots", slotsUsed, sc.nonEmpty);
    check("free blocks", freeBlocks, g.dataBlocks - sc.owned - keptUsed);
    if (cursor > g.dataBlocks) {
      problem(
        "root",
        `the allocation cursor ${cursor} lies beyond the ${g.dataBlocks} blocks`,
        true,
      );
      sc.rootOk = false;
    }
  }
  if (!sc.rootOk) {
    plan.rebuildRoot = true;
    plan.lines.push(
      `rebuilt the root record from the table and bitmap${
        rootObject !== 0n ? `, keeping root object ${hexId(rootObject)}` : ""
      }`,
    );
  }
}

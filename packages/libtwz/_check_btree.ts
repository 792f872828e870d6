/**
 * The B-tree map checker: its header at an object's base and a bounded walk
 * (`BTreeMap.check()`). Private to libtwz; the public entry is `check.ts`.
 *
 * @module
 */
import { BTreeMap } from "./btree.ts";
import { BTRE, type CollectionChecker, noHost } from "./_check_common.ts";

/** Checks B-tree maps. */
export const btreeChecker: CollectionChecker = {
  area: "btree",
  what: "B-tree map",
  magic: BTRE,
  keyed: true,
  counter: "btrees",
  headerProblem: (obj, header) => BTreeMap.headerProblem(obj, header),
  walk(obj, key, value, entries) {
    const c = BTreeMap.open(noHost, obj, key!, value);
    if (entries) entries(c.size);
    return c.check().problem;
  },
};

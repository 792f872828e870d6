/**
 * The hash map checker: its header at an object's base and a bounded walk
 * (`HashMap.check()`). Private to libtwz; the public entry is `check.ts`.
 *
 * @module
 */
import { HashMap } from "./hashmap.ts";
import { type CollectionChecker, HMAP, noHost } from "./_check_common.ts";

/** Checks hash maps. */
export const hashMapChecker: CollectionChecker = {
  area: "hashmap",
  what: "hash map",
  magic: HMAP,
  keyed: true,
  counter: "hashMaps",
  headerProblem: (obj, header) => HashMap.headerProblem(obj, header),
  walk(obj, key, value, entries) {
    const c = HashMap.open(noHost, obj, key!, value);
    if (entries) entries(c.size);
    return c.check().problem;
  },
};

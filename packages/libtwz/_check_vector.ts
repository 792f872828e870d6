/**
 * The vector checker: its header at an object's base and a bounded walk
 * (`Vector.check()`). Private to libtwz; the public entry is `check.ts`.
 *
 * @module
 */
import { Vector } from "./vector.ts";
import { type CollectionChecker, noHost, VECT } from "./_check_common.ts";

/** Checks vectors. */
export const vectorChecker: CollectionChecker = {
  area: "vector",
  what: "vector",
  magic: VECT,
  keyed: false,
  counter: "vectors",
  headerProblem: (obj, header) => Vector.headerProblem(obj, header),
  walk(obj, _key, value, entries) {
    const c = Vector.open(noHost, obj, value);
    if (entries) entries(c.length);
    return c.check().problem;
  },
};

/**
 * The queue checker: its header at an object's base and a bounded walk
 * (`Queue.check()`). Private to libtwz; the public entry is `check.ts`.
 *
 * @module
 */
import { Queue } from "./queue.ts";
import { type CollectionChecker, noHost, QUEU } from "./_check_common.ts";

/** Checks queues. */
export const queueChecker: CollectionChecker = {
  area: "queue",
  what: "queue",
  magic: QUEU,
  keyed: false,
  counter: "queues",
  headerProblem: (obj, header) => Queue.headerProblem(obj, header),
  walk(obj, _key, value, entries) {
    const c = Queue.open(noHost, obj, value);
    if (entries) entries(c.size);
    return c.check().problem;
  },
};

// A deliberately broken crash-test workload (used by tests/crash_test.ts):
// it writes an object's contents, then publishes a "ready" flag, but forgets
// to flush the contents before the flag's drain. `twz crashtest` must catch it.
import type { Kernel, ObjID } from "@twz/kernel";
import type { JournalSnapshot, Workload, WorkloadContext } from "@twz/crashtest";

const DATA = 64; // the contents live in their own cache line, after the flag's

/** The broken publish: contents stored, never flushed; flag persisted. */
export const workload: Workload = {
  name: "broken-flag",
  summary: "publishes a ready flag without flushing the data it guards (must fail)",
  imageSize: 320 * 1024,
  run({ kernel, journal }: WorkloadContext): void {
    const id = journal.record("create", {}, () => kernel.create({ size: 4096 }));
    for (let round = 1; round <= 3; round++) {
      journal.record("publish", { id, round }, () => {
        const m = kernel.map(id);
        m.bytes.fill(round, DATA, DATA + 256); // BUG: no flush of these lines
        m.bytes[0] = round;
        m.persist(0, 1);
      });
    }
  },
  check(kernel: Kernel, journal: JournalSnapshot): string[] {
    const create = journal.find((e) => e.op === "create" && e.state === "done");
    if (!create) return [];
    const bytes = kernel.map(create.result as ObjID).bytes;
    const flag = bytes[0];
    if (flag === 0) return [];
    for (let i = DATA; i < DATA + 256; i++) {
      if (bytes[i] !== flag) return [`flag says round ${flag} but data byte ${i} is ${bytes[i]}`];
    }
    return [];
  },
};

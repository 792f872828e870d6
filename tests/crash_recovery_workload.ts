// A crash-test workload whose recovery is not idempotent (used by tests/crash_test.ts).
//
// An object holds a counter and the sequence number of the last applied
// addition in one aligned 8-byte word (line 0), and a one-entry redo log
// (amount, sequence) in line 1. `run` commits each addition by persisting
// the log, then applies it with a single 8-byte store (counter and applied
// sequence together), so every crash of the run recovers correctly.
// Recovery (`recover`, what opening a session does) applies a committed,
// unapplied entry. The broken recovery does it in two steps: the counter
// first (persisted), then the applied sequence: a crash between the two
// leaves the entry unapplied with the counter already bumped, and the next
// recovery adds the amount again. Only crashing the recovery itself finds it.
import type { Kernel, ObjID } from "@twz/kernel";
import type { JournalSnapshot, Workload, WorkloadContext } from "@twz/crashtest";

const COUNTER = 0; // u32 counter, u32 applied sequence: one 8-byte word
const LOG = 64; // u32 amount, u32 sequence (the commit mark)
const ROUNDS = 4;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The workload's object: the only persistent object there is. */
function objectOf(kernel: Kernel): ObjID | undefined {
  return kernel.list().find((s) => s.lifetime === "persistent")?.id;
}

/**
 * The counter workload.
 *
 * @param idempotent Whether recovery applies the entry with one 8-byte store
 * (correct) or in two persisted steps (broken: a crash between them makes the
 * next recovery apply it twice).
 */
export function makeCounterWorkload(idempotent: boolean): Workload {
  return {
    name: idempotent ? "counter" : "counter-broken-recovery",
    summary: "a redo-logged counter; recovery " +
      (idempotent ? "applies in one store" : "is not idempotent (must fail)"),
    imageSize: 320 * 1024,

    run({ kernel, journal }: WorkloadContext): void {
      const id = journal.record("create", {}, () => kernel.create({ size: 4096 }));
      for (let seq = 1; seq <= ROUNDS; seq++) {
        journal.record("add", { amount: seq * 10 }, () => {
          const m = kernel.map(id);
          const v = view(m.bytes);
          v.setUint32(LOG, seq * 10, true);
          m.persist(LOG, 4);
          v.setUint32(LOG + 4, seq, true);
          m.persist(LOG + 4, 4); // committed
          const counter = v.getUint32(COUNTER, true);
          v.setBigUint64(COUNTER, BigInt(counter + seq * 10) | (BigInt(seq) << 32n), true);
          m.persist(COUNTER, 8); // applied
        });
      }
    },

    recover(kernel: Kernel): void {
      const id = objectOf(kernel);
      if (id === undefined) return;
      const m = kernel.map(id);
      const v = view(m.bytes);
      const seq = v.getUint32(LOG + 4, true);
      if (seq === 0 || seq === v.getUint32(COUNTER + 4, true)) return;
      const counter = v.getUint32(COUNTER, true) + v.getUint32(LOG, true);
      if (idempotent) {
        v.setBigUint64(COUNTER, BigInt(counter) | (BigInt(seq) << 32n), true);
        m.persist(COUNTER, 8);
      } else {
        v.setUint32(COUNTER, counter, true);
        m.persist(COUNTER, 4); // BUG: the counter is durable before the mark
        v.setUint32(COUNTER + 4, seq, true);
        m.persist(COUNTER + 4, 4);
      }
    },

    check(kernel: Kernel, journal: JournalSnapshot): string[] {
      const create = journal.find((e) => e.op === "create" && e.state === "done");
      if (!create) return [];
      let sum = 0;
      let inflight = 0;
      for (const e of journal) {
        if (e.op !== "add") continue;
        const amount = (e.args as { amount: number }).amount;
        if (e.state === "done") sum += amount;
        else if (e.state === "started") inflight = amount;
      }
      const counter = view(kernel.map(create.result as ObjID).bytes).getUint32(COUNTER, true);
      if (counter === sum || counter === sum + inflight) return [];
      return [
        `counter is ${counter}, acknowledged ${sum}${inflight ? ` (+${inflight} in flight)` : ""}`,
      ];
    },
  };
}

/** The broken one, for `twz crashtest tests/crash_recovery_workload.ts`. */
export const workload: Workload = makeCounterWorkload(false);

// A program for tests/crash_concurrent_tx_test.ts: transaction number i
// (1..count) of program P writes, on even i, i into three lines of P's own
// object; on odd i, under the shared Mutex, increments the shared counter
// (two copies, two lines) and stores i in P's slot of the shared object and
// in P's own object. It publishes its progress in a volatile object: word
// 2P = the transaction in flight (stored before it begins), word 2P + 1 =
// the last one acknowledged (stored after `transaction` returned).
//
// Both start together (word 8 counts the programs that have started); word
// 10 + P counts P's transactions that began while the other program's was
// in flight (evidence the two really ran at once).
//
// Arguments: P, count, own object, shared object, progress object (IDs),
// and a mode: "tx"; "raw" for the broken variant (the same stores, each
// persisted on its own, with no transaction: the test's check must catch
// it); "poll" to take the lock with tryLock(20) in a loop (a test that kills
// the other program: a killed thread's unlock cannot wake a sleeper).
import type { ProgramEnv } from "@twz/libtwz/program";
import { transaction } from "@twz/libtwz/tx";
import { Mutex } from "@twz/libtwz/sync";
import { parseId } from "@twz/kernel/abi";

/** Offsets (from the base, 256) of what the test checks. */
const OWN = [0, 1024, 2048];
const OWN_SHARED = 3072;
const LOCK = 0;
const COUNTER = [64, 1088];
const SLOT = 2112;

export default function main(env: ProgramEnv, args: string[]): number {
  const p = Number(args[0]);
  const count = Number(args[1]);
  const twz = env.twz;
  const own = twz.open(parseId(args[2]!));
  const shared = twz.open(parseId(args[3]!));
  const progress = twz.open(parseId(args[4]!));
  const words = new Int32Array(progress.bytes.buffer, progress.bytes.byteOffset, 64);
  const lock = new Mutex(shared, shared.baseOffset + LOCK);
  const b = own.baseOffset, s = shared.baseOffset;
  const raw = args[5] === "raw", poll = args[5] === "poll";
  const other = 1 - p;
  Atomics.add(words, 8, 1);
  while (Atomics.load(words, 8) < 2) { /* wait for the other program */ }
  for (let i = 1; i <= count; i++) {
    Atomics.store(words, 2 * p, i);
    if (Atomics.load(words, 2 * other) > Atomics.load(words, 2 * other + 1)) {
      Atomics.add(words, 10 + p, 1);
    }
    if (raw) {
      if (i % 2 === 0) {
        for (const at of OWN) own.view.setUint32(b + at, i, true), own.persist(b + at, 4);
      } else {
        lock.lock();
        const c = shared.view.getUint32(s + COUNTER[0]!, true);
        for (const at of COUNTER) {
          shared.view.setUint32(s + at, c + 1, true), shared.persist(s + at, 4);
        }
        shared.view.setUint32(s + SLOT + 64 * p, i, true);
        shared.persist(s + SLOT + 64 * p, 4);
        own.view.setUint32(b + OWN_SHARED, i, true);
        own.persist(b + OWN_SHARED, 4);
        lock.unlock();
      }
    } else if (i % 2 === 0) {
      transaction(twz, (tx) => {
        for (const at of OWN) tx.setU32(own, b + at, i);
      });
    } else {
      if (poll) { while (!lock.tryLock(20)) { /* look again */ } }
      else lock.lock();
      try {
        transaction(twz, (tx) => {
          const c = tx.getU32(shared, s + COUNTER[0]!);
          for (const at of COUNTER) tx.setU32(shared, s + at, c + 1);
          tx.setU32(shared, s + SLOT + 64 * p, i);
          tx.setU32(own, b + OWN_SHARED, i);
        });
      } finally {
        lock.unlock();
      }
    }
    Atomics.store(words, 2 * p + 1, i);
  }
  return 0;
}

/**
 * Several programs sharing one persistent object: each run adds N to a
 * counter in `/counter`, one increment at a time under a libtwz `Mutex`
 * kept in the same object, so runs at the same time never lose an update.
 *
 *   twz> run examples/counter.ts             # makes /counter, prints 0
 *   twz> run counter 100000 &                # four at once, in the background
 *   twz> run counter 100000 &
 *   twz> run counter 100000 &
 *   twz> run counter 100000 &
 *   twz> run counter                         # once they ended: 400000
 *
 * Each increment is a plain store into mapped memory (no transaction): the
 * lock orders the threads, and the total is made durable at the end of the
 * run. A crash in the middle keeps what the last persist saw.
 *
 * @module
 */
import { struct, u32 } from "@twz/libtwz";
import type { ProgramEnv } from "@twz/libtwz/program";
import { Mutex, MUTEX_BYTES } from "@twz/libtwz/sync";

// The object's record: the lock's 8 bytes, then the count.
const Shared = struct({ lockWord: u32, lockSpare: u32, count: u32 });

export default function main(env: ProgramEnv, args: string[]): number {
  const n = Number(args[0] ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`counter: ${args[0]} is not a count`);
    return 2;
  }
  const twz = env.twz;
  // Made by the first run; start the background runs after it.
  const obj = twz.naming.exists("/counter")
    ? twz.open("/counter")
    : twz.create({ name: "/counter", size: 4096 });
  const shared = Shared.at(obj, obj.baseOffset);
  const lock = new Mutex(obj, obj.baseOffset); // the first MUTEX_BYTES of the record
  for (let i = 0; i < n; i++) {
    lock.lock();
    shared.count += 1;
    lock.unlock();
  }
  lock.withLock(() => obj.persist(obj.baseOffset + MUTEX_BYTES, 4));
  console.log(`/counter: ${shared.count}`);
  return 0;
}

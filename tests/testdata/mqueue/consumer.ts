// A consumer: receives until the shared record counts EXPECTED messages. Each
// receive and its record (the producer's next sequence number, checked, and
// the total) are one transaction, so a crash neither loses nor repeats a
// message; several consumers share the record (they write it holding the
// queue's lock). A message out of order or damaged ends the program with a
// fault.
//
// args: PRODUCERS EXPECTED
import type { ProgramEnv } from "@twz/libtwz/program";
import { codec } from "@twz/libtwz/codec";
import { MessageQueue } from "@twz/libtwz/mqueue";
import { transaction } from "@twz/libtwz/tx";
import { parse, PATHS, RECORD } from "./_message.ts";

export default function main(env: ProgramEnv, args: string[]): number {
  const producers = Number(args[0]), expected = Number(args[1]);
  const twz = env.twz;
  const q = MessageQueue.open(twz, twz.open(PATHS.queue), codec.bytes);
  const rec = twz.open(PATHS.record);
  const at = rec.baseOffset;
  let mine = 0;
  for (;;) {
    const done = transaction(twz, (tx) => {
      if (tx.getU32(rec, at + RECORD.total) >= expected) return true;
      const m = q.receive(100);
      if (m === undefined) return false;
      const { id, seq } = parse(m);
      if (id >= producers) throw new Error(`a message from producer ${id} of ${producers}`);
      const next = tx.getU32(rec, at + RECORD.next(id));
      if (seq !== next) {
        throw new Error(`producer ${id}: message ${seq} arrived when ${next} was due`);
      }
      tx.setU32(rec, at + RECORD.next(id), seq + 1);
      tx.setU32(rec, at + RECORD.total, tx.getU32(rec, at + RECORD.total) + 1);
      mine++;
      return false;
    });
    if (done) break;
  }
  console.log(`consumer ${env.thread.tid}: received ${mine}`);
  return 0;
}

// A producer: sends messages id:0 .. id:total-1 into the queue, each send in
// one transaction with its durable count ("sent n") in its state object, and
// resumes from that count when run again (after a crash).
//
// args: ID TOTAL
import type { ProgramEnv } from "@twz/libtwz/program";
import { codec } from "@twz/libtwz/codec";
import { MessageQueue } from "@twz/libtwz/mqueue";
import { transaction } from "@twz/libtwz/tx";
import { fill, MESSAGE_BYTES, PATHS } from "./_message.ts";

export default function main(env: ProgramEnv, args: string[]): number {
  const id = Number(args[0]), total = Number(args[1]);
  const twz = env.twz;
  const q = MessageQueue.open(twz, twz.open(PATHS.queue), codec.bytes);
  const state = twz.open(PATHS.state(id));
  const at = state.baseOffset;
  const m = new Uint8Array(MESSAGE_BYTES);
  const first = state.view.getUint32(at, true);
  for (let seq = first; seq < total; seq++) {
    fill(m, id, seq);
    transaction(twz, (tx) => {
      q.send(m);
      tx.setU32(state, at, seq + 1);
    });
  }
  console.log(`producer ${id}: sent ${first}..${total - 1}`);
  return 0;
}

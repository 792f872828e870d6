// Timeouts in a thread: on the test's queue (capacity 4, empty), a send to
// the full queue and a receive from the empty queue each wait their timeout
// and give up (false, undefined). Prints what it saw.
import type { ProgramEnv } from "@twz/libtwz/program";
import { codec } from "@twz/libtwz/codec";
import { MessageQueue } from "@twz/libtwz/mqueue";
import { fill, MESSAGE_BYTES, PATHS } from "./_message.ts";

export default function main(env: ProgramEnv): number {
  const twz = env.twz;
  const q = MessageQueue.open(twz, twz.open(PATHS.queue), codec.bytes);
  const m = new Uint8Array(MESSAGE_BYTES);
  const seen: unknown[] = [];
  for (let i = 0; i < q.capacity; i++) {
    fill(m, 0, i);
    seen.push(q.send(m, 0));
  }
  let t0 = performance.now();
  seen.push(q.send(m, 30), performance.now() - t0 >= 25);
  for (let i = 0; i < q.capacity; i++) seen.push(q.receive(0) !== undefined);
  t0 = performance.now();
  seen.push(q.receive(30), performance.now() - t0 >= 25);
  console.log(JSON.stringify(seen));
  return 0;
}

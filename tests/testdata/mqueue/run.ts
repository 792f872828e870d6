// A system in its own process for the queue's crash test: boot a kernel on
// the image (hal-sim: the image file is the media, so a SIGKILL of this
// process loses exactly what was not drained; hal-pmem: the mapped file),
// make the objects unless there, run the producers and consumers to the end
// and shut down. Prints a JSON progress line every 20 ms and "done" at the end.
//
// deno run -A tests/testdata/mqueue/run.ts HAL IMAGE PRODUCERS PER_PRODUCER CONSUMERS CAPACITY
import { Kernel } from "@twz/kernel";
import { plugin as sim } from "@twz/hal-sim";
import type { TwzObject } from "@twz/libtwz";
import { attachThreads, stopThreads } from "@twz/cli/run";
import { PATHS, RECORD } from "./_message.ts";
import { exchange } from "./_system.ts";

const [hal, image, ...numbers] = Deno.args;
const [producers, perProducer, consumers, capacity] = numbers.map(Number) as [
  number,
  number,
  number,
  number,
];
const plugin = hal === "pmem" ? (await import("@twz/hal-pmem")).plugin : sim;
let created = false;
try {
  Deno.statSync(image!);
} catch {
  created = true;
}
const h = await plugin.open({ image: image!, size: 32 << 20, create: created });
const board = { kernel: Kernel.boot(h, { formatBlank: created }) };
const { twz } = attachThreads(board);
let watched: TwzObject[] | undefined;
const progress = setInterval(() => {
  if (watched === undefined) {
    if (!twz.naming.exists(PATHS.queue)) return;
    watched = [PATHS.record, ...Array.from({ length: producers }, (_, id) => PATHS.state(id))]
      .map((path) => twz.open(path, { write: false }));
  }
  const [rec, ...states] = watched as [TwzObject, ...TwzObject[]];
  const sent = states.map((s) => s.view.getUint32(s.baseOffset, true));
  const received = rec.view.getUint32(rec.baseOffset + RECORD.total, true);
  console.log(JSON.stringify({ received, sent }));
}, 20);
const ends = await exchange(board, { producers, perProducer, consumers, capacity }, (t) => {
  Deno.stdout.writeSync(new TextEncoder().encode(`program: ${t}`));
});
clearInterval(progress);
for (const e of ends) {
  if (e.exitCode !== 0) {
    console.log(`program ${e.name} ${e.tid} ended ${e.exitCode}: ${e.fault?.message}`);
  }
}
await stopThreads(board);
board.kernel.shutdown();
h.close();
console.log(ends.every((e) => e.exitCode === 0) ? "done" : "failed");

// The queue test's system side, shared by tests/mqueue_programs_test.ts (in
// process) and run.ts (a subprocess the test kills): make the objects, start
// the producer and consumer programs, read back what is durable.
import { join } from "node:path";
import type { ThreadInfo } from "@twz/kernel";
import type { Twz } from "@twz/libtwz";
import { codec } from "@twz/libtwz/codec";
import { MessageQueue } from "@twz/libtwz/mqueue";
import { prepareThreadLogs } from "@twz/libtwz/tx";
import { attachThreads, type KernelHost, spawnProgram } from "@twz/cli/run";
import { MESSAGE_BYTES, parse, PATHS, RECORD } from "./_message.ts";

const HERE = new URL(".", import.meta.url).pathname;
/** The program files. */
export const PRODUCER = join(HERE, "producer.ts");
export const CONSUMER = join(HERE, "consumer.ts");

/** A run: how many producers, messages each, consumers, and the queue's capacity. */
export interface Exchange {
  producers: number;
  perProducer: number;
  consumers: number;
  capacity: number;
}

/** Make the queue, the consumers' record and the producers' states, unless there. */
export function setup(twz: Twz, x: Exchange): void {
  // The thread logs (transaction lanes) are made before any program commits.
  prepareThreadLogs(twz);
  if (twz.naming.exists(PATHS.queue)) return;
  for (let id = 0; id < x.producers; id++) twz.create({ name: PATHS.state(id), size: 4096 });
  twz.create({ name: PATHS.record, size: 4096 });
  const options = { capacity: x.capacity, maxBytes: MESSAGE_BYTES };
  const size = MessageQueue.bytesNeeded(options) + (16 << 10);
  const obj = twz.create({ name: PATHS.queue, size });
  MessageQueue.create(twz, obj, codec.bytes, options);
}

/**
 * Start the consumers, then the producers (resuming from their durable
 * counts); resolve when every program has ended.
 *
 * @returns The threads as they ended.
 */
export async function exchange(
  board: KernelHost,
  x: Exchange,
  console?: (text: string) => void,
): Promise<ThreadInfo[]> {
  const { manager, twz } = attachThreads(board);
  setup(twz, x);
  const options = console ? { console } : {};
  const total = x.producers * x.perProducer;
  const threads: ThreadInfo[] = [];
  // The first start of each program bundles and installs it in /bin; the others run /bin/NAME.
  for (let c = 0; c < x.consumers; c++) {
    const target = c === 0 ? CONSUMER : "consumer";
    threads.push(await spawnProgram(board, target, [String(x.producers), String(total)], options));
  }
  for (let id = 0; id < x.producers; id++) {
    const target = id === 0 ? PRODUCER : "producer";
    threads.push(await spawnProgram(board, target, [String(id), String(x.perProducer)], options));
  }
  const ends: ThreadInfo[] = [];
  for (const t of threads) ends.push(await manager.wait(t.tid));
  return ends;
}

/** What is durable: each producer's count, the record, the queued messages. */
export interface Durable {
  /** Per producer: messages it acknowledged ("sent n"). */
  sent: number[];
  /** Per producer: the next sequence number the consumers' record expects. */
  next: number[];
  /** Messages the record counts. */
  total: number;
  /** The queue's messages, oldest first. */
  queued: { id: number; seq: number }[];
}

/** Read what is durable (after a crash: as the next boot found it). */
export function durable(twz: Twz, producers: number): Durable {
  const rec = twz.open(PATHS.record, { write: false });
  const v = rec.view, at = rec.baseOffset;
  const sent = [], next = [];
  for (let id = 0; id < producers; id++) {
    const s = twz.open(PATHS.state(id), { write: false });
    sent.push(s.view.getUint32(s.baseOffset, true));
    next.push(v.getUint32(at + RECORD.next(id), true));
  }
  const q = MessageQueue.open(twz, twz.open(PATHS.queue, { write: false }), codec.bytes);
  return {
    sent,
    next,
    total: v.getUint32(at + RECORD.total, true),
    queued: q.snapshot().map(parse),
  };
}

/**
 * The problems of a durable state, none when: per producer, the queue holds
 * exactly its messages next..sent-1 in order, and the record's total is the
 * sum of what it recorded.
 */
export function problems(d: Durable): string[] {
  const out: string[] = [];
  d.sent.forEach((sent, id) => {
    const next = d.next[id]!;
    const mine = d.queued.filter((m) => m.id === id).map((m) => m.seq);
    const want = Array.from({ length: Math.max(0, sent - next) }, (_, i) => next + i);
    if (next > sent) out.push(`producer ${id}: ${next} recorded but only ${sent} sent`);
    if (mine.join() !== want.join()) {
      out.push(
        `producer ${id}: queued ${mine.length} messages [${mine.slice(0, 5)}…], want ${next}..${
          sent - 1
        }`,
      );
    }
  });
  const sum = d.next.reduce((a, b) => a + b, 0);
  if (sum !== d.total) out.push(`the record's total ${d.total} is not the sum ${sum}`);
  return out;
}

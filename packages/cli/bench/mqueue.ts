/**
 * `twz bench mqueue`: messages per second through a libtwz message queue
 * (`@twz/libtwz/mqueue`) between two programs, each a thread (a
 * permissions-none Worker): one producer sends `--ops` 64-byte messages, one
 * consumer receives them; the queue holds 256. Cases, measured in one
 * process, in turns round by round:
 *
 * - `programs-64`: `send(m)` and `receive()` each one durable transaction
 *   (two drains each).
 * - `programs-64-exactly-once`: the pattern of the module docs: the producer
 *   records "sent n" in the transaction of each send, the consumer records
 *   what it received in the transaction of each receive.
 * - `one-thread-64`: the kernel's own session sends a message and receives
 *   it again, `--ops` times: the same two transactions per message without
 *   threads, wake-ups or system calls over a channel (a reference).
 *
 * A program case times the consumer from its first message to its last (the
 * programs' start is not timed): `ns_per_op` is nanoseconds per message,
 * `ops_per_sec` messages per second, the median of `--rounds` rounds
 * (default 3; `--ops` default 5000). Every message is checked (its producer
 * number and sequence number, in order).
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench mqueue --json
 * deno run -A packages/cli/main.ts bench mqueue --hal pmem --ops 1000 --rounds 1
 * ```
 *
 * @module
 */
import { codec } from "@twz/libtwz/codec";
import { MessageQueue } from "@twz/libtwz/mqueue";
import { prepareThreadLogs } from "@twz/libtwz/tx";
import { closeBoard, openBoard } from "../board.ts";
import { attachThreads, installProgram, runProgram, stopThreads } from "../run.ts";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { bundleSource, rateRow, round3, type Scratch, withScratch } from "./_util.ts";

const MESSAGE = 64;
const CAPACITY = 256;
const QUEUE = "/bench/mqueue";
const STATE = "/bench/mqueue-state";

/**
 * The benchmark's one program: `produce N EXACT` or `consume N EXACT`. The
 * consumer prints `mqueue-bench MS` (first to last message).
 */
const PROGRAM = `import type { ProgramEnv } from "@twz/libtwz/program";
import { codec } from "@twz/libtwz/codec";
import { MessageQueue } from "@twz/libtwz/mqueue";
import { transaction } from "@twz/libtwz/tx";

export default function main(env: ProgramEnv, args: string[]): number {
  const [role, count, exact] = [args[0], Number(args[1]), args[2] === "1"];
  const twz = env.twz;
  const q = MessageQueue.open(twz, twz.open(${JSON.stringify(QUEUE)}), codec.bytes);
  const state = twz.open(${JSON.stringify(STATE)});
  const at = state.baseOffset + (role === "produce" ? 0 : 8);
  if (role === "produce") {
    const m = new Uint8Array(${MESSAGE});
    const v = new DataView(m.buffer);
    for (let i = 0; i < count; i++) {
      v.setUint32(0, i, true);
      if (exact) {
        transaction(twz, (tx) => {
          q.send(m);
          tx.setU32(state, at, i + 1);
        });
      } else q.send(m);
    }
    return 0;
  }
  let first = 0;
  for (let i = 0; i < count; i++) {
    const m = exact
      ? transaction(twz, (tx) => {
        const m = q.receive()!;
        tx.setU32(state, at, i + 1);
        return m;
      })
      : q.receive()!;
    if (i === 0) first = performance.now();
    const seq = new DataView(m.buffer, m.byteOffset, m.length).getUint32(0, true);
    if (m.length !== ${MESSAGE} || seq !== i) throw new Error("message " + seq + " arrived when " + i + " was due");
  }
  console.log("mqueue-bench " + (performance.now() - first));
  return 0;
}
`;

/**
 * Run the message queue benchmark.
 *
 * @param opts `hal`, `image` (a new one; default: a temporary file), `ops`
 *   messages per round (default 5000), `rounds` (default 3).
 * @returns One row per case: nanoseconds per message and messages per
 *   second (median of the rounds), and the rounds' range.
 */
export function run(opts: BenchOptions): Promise<BenchResult[]> {
  return withScratch(opts, "mqueue", (scratch) => benchmark(opts, scratch));
}

async function benchmark(opts: BenchOptions, scratch: Scratch): Promise<BenchResult[]> {
  const ops = opts.ops ?? 5000;
  const rounds = opts.rounds ?? 3;
  const image = scratch.image("mqueue.img");
  const bundle = await bundleSource("mqueue-bench", PROGRAM);
  const board = await openBoard({
    hal: opts.hal,
    image,
    settings: opts.settings,
    holder: "twz bench mqueue",
  });
  try {
    const system = attachThreads(board);
    const { twz } = system;
    installProgram(system, bundle.name, bundle.text);
    prepareThreadLogs(twz); // the programs' transaction lanes, before they run
    const options = { capacity: CAPACITY, maxBytes: MESSAGE };
    const obj = twz.create({
      name: QUEUE,
      size: MessageQueue.bytesNeeded(options) + (16 << 10),
    });
    const q = MessageQueue.create(twz, obj, codec.bytes, options);
    twz.create({ name: STATE, size: 4096 });

    const programs = async (exact: boolean): Promise<number> => {
      let out = "";
      const console = (t: string) => out += t;
      const flag = exact ? "1" : "0";
      const ends = await Promise.all([
        runProgram(board, bundle.name, ["consume", String(ops), flag], { console }),
        runProgram(board, bundle.name, ["produce", String(ops), flag], { console }),
      ]);
      for (const end of ends) {
        if (end.exitCode !== 0) {
          throw new Error(
            `bench mqueue: a program ended with ${end.exitCode}: ${end.fault?.message}`,
          );
        }
      }
      const ms = /mqueue-bench ([\d.]+)/.exec(out);
      if (ms === null) throw new Error(`bench mqueue: the consumer printed no time: ${out}`);
      return (Number(ms[1]) * 1e6) / Math.max(1, ops - 1);
    };
    const oneThread = (): number => {
      const m = new Uint8Array(MESSAGE);
      const t0 = performance.now();
      for (let i = 0; i < ops; i++) {
        m[0] = i;
        q.send(m, 0);
        if (q.receive(0)?.[0] !== (i & 0xff)) throw new Error("bench mqueue: lost a message");
      }
      return ((performance.now() - t0) * 1e6) / ops;
    };
    const cases: [string, () => Promise<number> | number][] = [
      ["programs-64", () => programs(false)],
      ["programs-64-exactly-once", () => programs(true)],
      ["one-thread-64", oneThread],
    ];
    const times: number[][] = cases.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let c = 0; c < cases.length; c++) {
        const at = (c + r) % cases.length;
        times[at]!.push(await cases[at]![1]());
      }
    }
    const row = rateRow("mqueue", opts.hal, ops);
    return cases.map(([name], c) =>
      row(name, median(times[c]!), {
        round_min_ns: round3(Math.min(...times[c]!)),
        round_max_ns: round3(Math.max(...times[c]!)),
        message_bytes: MESSAGE,
        capacity: CAPACITY,
      })
    );
  } finally {
    await stopThreads(board);
    closeBoard(board);
  }
}

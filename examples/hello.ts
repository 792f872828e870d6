/**
 * A Twizzler program: it runs in a thread of its own (a Worker with no
 * Deno permissions) and reaches the system only through the kernel port.
 *
 *   npx -y deno@2.9.6 task twz run examples/hello.ts            # image: ./twz.img
 *   npx -y deno@2.9.6 task twz run examples/hello.ts Ada        # greet Ada
 *   npx -y deno@2.9.6 task twz run hello                        # again, from /bin/hello
 *
 * It greets, counts its runs in an object named /hello/count (created on the
 * first run, persistent after that), writes a note into a new volatile
 * object and reads it back.
 *
 * @module
 */
import { formatId } from "@twz/kernel/abi";
import { struct, u32 } from "@twz/libtwz";
import type { ProgramEnv } from "@twz/libtwz/program";

// The counter's record: one persistent u32.
const Counter = struct({ runs: u32 });

export default function main(env: ProgramEnv, args: string[]): number {
  const who = args[0] ?? "world";
  console.log(`Hello, ${who}! This is ${env.name}, thread ${env.thread.tid}.`);

  // A persistent counter, found again by name on every run.
  const twz = env.twz;
  const counter = twz.naming.exists("/hello/count")
    ? twz.open("/hello/count")
    : twz.create({ name: "/hello/count", size: 4096 });
  const record = Counter.at(counter, counter.baseOffset);
  record.runs += 1;
  record.$persist();
  console.log(`/hello/count: run number ${record.runs}`);

  // A volatile scratch object: written, read back, deleted.
  const note = twz.create({ size: 4096, lifetime: "volatile" });
  const text = new TextEncoder().encode(`a note from ${who}`);
  note.write(note.baseOffset, text);
  const back = new TextDecoder().decode(note.read(note.baseOffset, text.length));
  console.log(`object ${formatId(note.id)}: "${back}"`);
  twz.delete(note.id);
  return 0;
}

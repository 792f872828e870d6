/**
 * A writer loop for the paused-owner test (tests/global_test.ts): run on a
 * node as `writer ID [MS]`, it takes ownership of the global object `ID`
 * (32 hex digits) and commits 1, 2, 3, … into the u32 at its base offset,
 * one transaction each (the node publishes each as the next version),
 * printing `acked N` after each commit the cluster acknowledged. The first
 * refused commit ends it: it prints `refused N: MESSAGE` and the value the
 * object holds here afterwards (`local V`), and returns 0. It returns 3 when
 * nothing was refused within `MS` milliseconds (default 60000).
 *
 * @module
 */
import { parseId, TwzError } from "@twz/kernel/abi";
import { own } from "@twz/libtwz/global";
import type { ProgramEnv } from "@twz/libtwz/program";
import { transaction } from "@twz/libtwz/tx";

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The program. */
export default function main(env: ProgramEnv, args: string[]): number {
  const id = parseId(args[0] ?? "");
  const maxMs = Number(args[1] ?? 60_000);
  const twz = env.twz;
  own(twz, id, { timeoutMs: 10_000 });
  const obj = twz.open(id, { write: true });
  console.log("writing");
  const start = Date.now();
  for (let n = 1; Date.now() - start < maxMs; n++) {
    try {
      transaction(twz, (tx) => tx.setU32(obj, obj.baseOffset, n));
    } catch (e) {
      if (!(e instanceof TwzError)) throw e;
      console.log(`refused ${n}: ${e.message}`);
      const local = new DataView(twz.port.read(id, obj.baseOffset, 4).slice().buffer);
      console.log(`local ${local.getUint32(0, true)}`);
      return 0;
    }
    console.log(`acked ${n}`);
    sleep(20);
  }
  console.log(`no commit refused in ${maxMs} ms`);
  return 3;
}

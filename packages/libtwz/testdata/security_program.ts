// A program for packages/libtwz/security_test.ts (run in a real thread by
// `spawnProgram`): libtwz's security helpers and revocation epoch seen from
// a program. Modes:
//   serve GATE           serveGate: entry 64 answers "tid:<caller tid>:<args reversed>",
//                        entry 96 throws; entry 128 stops the server
//   call GATE            callGate at 64, 96 (handler throws), 65 (misaligned), 160 (outside), 128 (stop)
//   follow HOLDER WORD   follow HOLDER's pointer, print the value, say so in WORD of HOLDER and wait
//                        for the test to bump it again, then follow again and print what happens
import type { ProgramEnv } from "@twz/libtwz/program";
import { ptr, struct, u32 } from "@twz/libtwz";
import { callGate, serveGate } from "@twz/libtwz/security";
import { ErrorCode, parseId, TwzError } from "@twz/kernel/abi";

const Target = struct({ value: u32 });
const Holder = struct({ tag: u32, link: ptr(Target) });

function outcome(f: () => unknown): string {
  try {
    return `ok ${String(f())}`;
  } catch (e) {
    return e instanceof TwzError ? `error ${e.code} ${e.message}` : `throw ${String(e)}`;
  }
}

export default async function main(env: ProgramEnv, args: string[]): Promise<number> {
  const [mode, target, word] = args;
  const twz = env.twz;
  const id = parseId(target!);
  const text = new TextDecoder();
  if (mode === "serve") {
    const stop = new AbortController();
    await serveGate(twz, id, {
      64: (a, caller) =>
        new TextEncoder().encode(`tid:${caller.tid}:${[...text.decode(a)].reverse().join("")}`),
      96: () => {
        throw new Error("entry 96 refuses");
      },
      128: () => {
        stop.abort();
        return new Uint8Array([1]);
      },
    }, { signal: stop.signal, timeoutMs: 20_000 });
    console.log("served");
    return 0;
  }
  if (mode === "call") {
    const enc = new TextEncoder();
    // The server may not serve yet: try the first call for a while.
    let first = "";
    for (const end = Date.now() + 10_000; Date.now() < end;) {
      first = outcome(() => text.decode(callGate(twz, id, 64, enc.encode("abc"))));
      if (first.startsWith("ok") || first.startsWith(`error ${ErrorCode.AccessDenied}`)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    console.log(`64 ${first}`);
    console.log(`96 ${outcome(() => callGate(twz, id, 96, enc.encode("x")))}`);
    console.log(`65 ${outcome(() => callGate(twz, id, 65, enc.encode("x")))}`);
    console.log(`160 ${outcome(() => callGate(twz, id, 160, enc.encode("x")))}`);
    console.log(`128 ${outcome(() => callGate(twz, id, 128, enc.encode("x"))[0])}`);
    return 0;
  }
  if (mode === "follow") {
    const holder = twz.open(id, { write: true });
    const h = Holder.at(holder, 256);
    const at = 256 + Number(word);
    console.log(`first ${outcome(() => h.link!.value)}`);
    console.log(`again ${outcome(() => h.link!.value)}`);
    const held = h.link!;
    console.log(`epoch ${env.port.epoch === undefined ? "none" : Atomics.load(env.port.epoch, 0)}`);
    holder.view.setUint32(at, 1, true);
    env.port.threadSync([{ op: "wake", id, offset: at, count: 1 }]);
    // Wait (sleeping on the word) until the test says it revoked.
    const end = Date.now() + 20_000;
    while (holder.view.getUint32(at, true) !== 2 && Date.now() < end) {
      env.port.threadSync([{ op: "sleep", id, offset: at, value: 1, timeoutMs: 20 }]);
    }
    console.log(`epoch ${env.port.epoch === undefined ? "none" : Atomics.load(env.port.epoch, 0)}`);
    console.log(`after ${outcome(() => h.link!.value)}`);
    console.log(`held ${outcome(() => held.value)}`);
    return 0;
  }
  console.error(`unknown mode ${mode}`);
  return 2;
}

/**
 * The platform services of a hal-pmem HAL: clock, entropy, console. Nothing
 * here is native; they are the host's own.
 *
 * @module
 */
import type { Clock, Console, Entropy } from "@twz/kernel/hal";

/** `performance.now()` and `Date.now()`. */
export const clock: Clock = {
  monotonic: () => performance.now(),
  wallclock: () => Date.now(),
};

/** `crypto.getRandomValues`, in chunks of its 65536-byte limit. */
export const entropy: Entropy = {
  fill(target: Uint8Array): void {
    for (let at = 0; at < target.length; at += 65536) {
      crypto.getRandomValues(target.subarray(at, at + 65536));
    }
  },
};

/** A console on stdout (write) and stdin (read lines). */
export function stdConsole(): Console {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let pending = "";
  let ended = false;
  return {
    write(text: string): void {
      const data = encoder.encode(text);
      for (let at = 0; at < data.length;) at += Deno.stdout.writeSync(data.subarray(at));
    },
    async readLine(): Promise<string | null> {
      const chunk = new Uint8Array(4096);
      for (;;) {
        const newline = pending.indexOf("\n");
        if (newline >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          return line.endsWith("\r") ? line.slice(0, -1) : line;
        }
        if (ended) {
          const rest = pending;
          pending = "";
          return rest === "" ? null : rest;
        }
        const n = await Deno.stdin.read(chunk);
        if (n === null) {
          ended = true;
          pending += decoder.decode();
        } else {
          pending += decoder.decode(chunk.subarray(0, n), { stream: true });
        }
      }
    },
  };
}

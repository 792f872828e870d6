/**
 * Platform services every plugin can share: a clock, an entropy source and a
 * console on the process's stdin/stdout.
 *
 * @module
 */
import type { Clock, Console, Entropy } from "./mod.ts";

/**
 * The process clock: `performance.now()` and `Date.now()`.
 *
 * @returns A {@linkcode Clock}.
 * @example
 * ```ts
 * import { systemClock } from "@twz/kernel/hal";
 * const t0 = systemClock().monotonic();
 * ```
 */
export function systemClock(): Clock {
  return { monotonic: () => performance.now(), wallclock: () => Date.now() };
}

/**
 * WebCrypto random bytes (`crypto.getRandomValues`, in 64 KiB chunks).
 *
 * @returns An {@linkcode Entropy}.
 * @example
 * ```ts
 * import { cryptoEntropy } from "@twz/kernel/hal";
 * const bytes = new Uint8Array(16);
 * cryptoEntropy().fill(bytes);
 * ```
 */
export function cryptoEntropy(): Entropy {
  return {
    fill(target: Uint8Array): void {
      for (let at = 0; at < target.length; at += 65536) {
        crypto.getRandomValues(target.subarray(at, Math.min(at + 65536, target.length)));
      }
    },
  };
}

/**
 * A console over the process's stdout and stdin. Lines are read lazily, so a
 * console that is never read never touches stdin.
 *
 * @returns A {@linkcode Console}.
 * @example
 * ```ts
 * import { stdioConsole } from "@twz/kernel/hal";
 * stdioConsole().write("hello\n");
 * ```
 */
export function stdioConsole(): Console {
  const encoder = new TextEncoder();
  let lines: AsyncIterator<string> | undefined;
  return {
    write(text: string): void {
      const data = encoder.encode(text);
      let done = 0;
      while (done < data.length) done += Deno.stdout.writeSync(data.subarray(done));
    },
    async readLine(): Promise<string | null> {
      lines ??= readLines(Deno.stdin.readable);
      const next = await lines.next();
      return next.done ? null : next.value;
    },
  };
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
    }
  }
  if (pending.length > 0) yield pending;
}

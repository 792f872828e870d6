/**
 * `twz`: boot Twizzler, run its shell, benchmark and check it.
 *
 * ```
 * twz boot [--hal sim|pmem] [--image PATH] [--size SIZE] [--read-only] [--script FILE] [--quiet]
 * twz bench NAME [--hal H] [--image P] [--ops N] [--rounds R] [--json]
 * twz crashtest WORKLOAD ...     (see crashtest.ts)
 * twz fsck --image PATH ...      (see fsck.ts)
 * twz help
 * twz run [--hal H] [--image P] FILE.ts|NAME [ARGS]   (see run.ts)
 * ```
 *
 * Exit codes: 0 success; 1 a shell command or operation failed; 2 a usage
 * mistake; 3 the image cannot be opened or booted (damaged, truncated, not an
 * image, unsupported version, HAL unavailable); 4 the power failed at a
 * `--crash-at` point (the image holds what survived); 5 the image is in use
 * by another process (a running `twz boot`, a repair). `twz run` exits with
 * the program's exit code (137 when it was killed). Errors are one line on stderr;
 * `--debug` adds the stack trace.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type EvictionPolicy, HalError } from "@twz/kernel/hal";
import { type Kernel, TwzError } from "@twz/kernel";
import {
  type Board,
  closeBoard,
  closeHal,
  formatSize,
  isPowerFailure,
  openBoard,
  parseSize,
  positive,
  UsageError,
} from "./board.ts";
import { quotedWord, Shell } from "./shell.ts";
import { attachThreads, runCommand, runProgram, stopThreads } from "./run.ts";
import { startControl } from "./control.ts";
import { BENCHMARKS } from "./bench/mod.ts";
import type { BenchResult } from "./bench/types.ts";

/** Exit codes. */
export const EXIT = { ok: 0, failed: 1, usage: 2, image: 3, crashed: 4, busy: 5 } as const;

const USAGE = `usage: twz <command> [options]

commands:
  boot [--hal sim|pmem] [--image PATH] [--size SIZE] [--read-only] [--script FILE]
       [--quiet] [--set K=V] [--crash-at N [--evict strict|random|all] [--seed S]]
        boot the image (default ./twz.img, created with --size or 64M when
        absent) and run the shell: interactive on a terminal, else one command
        per line from stdin or --script. One process at a time may boot an
        image (a second one exits 5). --read-only never writes the image: every
        write is refused, and a log found committed is replayed into a private
        in-memory copy (an image without write permission opens read-only).
        --set sync=data (sim) makes every drain fdatasync the image, so what
        was drained survives a host power loss, not only a process kill.
        With --crash-at N (sim only) the power fails at crash point N as
        crashtest numbers it: when drain N+1 (counted from opening the image)
        is called, before it takes effect; what was stored or flushed since
        drain N is lost (--evict strict), kept (all) or each line either way
        (random, seeded by --seed). The image is left as the crash left it and
        twz exits with code 4; a run that ends before then says "crash point N
        was never reached"
  bench NAME [--hal H] [--image P] [--ops N] [--rounds R] [--json] [--set K=V]
        run a benchmark (twz bench --list names them); --image P names a new
        image for it to write (an existing file is refused)
  crashtest WORKLOAD [--states N] [--seed S] [--unit 64|8] [--json] [--replay P:V[/Q:W]]
        check a workload (kernel-objects, or ./my_workload.ts) at every crash
        point, crashing recovery too (--recovery-states N of the states); exit 1
        when a crash state breaks an invariant (docs/CRASHTEST.md)
  fsck --image PATH [--hal H] [--repair [--undo-file F] [--force]] [--deep] [--json]
        check an image's kernel structures (--deep: libtwz's too); exit 0
        clean, 1 problems remain or objects were put in /lost+found, 3 cannot
        open, 5 in use (--repair); --repair fixes what is safely fixable and
        first saves the bytes it overwrites to an undo file (default PATH.undo)
  fsck --undo FILE --image PATH
        write back the bytes an undo file saved (refuses another image's)
  fsck --upgrade --image PATH [--hal H] [--force] [--json]
        upgrade an image of on-NVM format 1 to format 2 in place (crash-safe:
        run it again after a crash), then check it; exit 3 when it cannot
  run [--hal H] [--image PATH] [--size SIZE] [--set K=V] FILE.ts|NAME [ARGS]
        run a program: FILE.ts (export default async function main(env, args))
        is bundled, stored as a code object at /bin/NAME (NAME: the file's
        stem) and run in a thread of its own; NAME runs /bin/NAME (built-in:
        kv). Boots the image (default ./twz.img, created when absent), prints
        the program's output, shuts down, and exits with the program's exit
        code (137: killed). Options go before the program, its ARGS after it.
        When a twz boot holds the image, the program runs on that system,
        through the control socket beside the image (IMAGE.sock)
  help  this text

common options: --debug (stack traces on errors)
exit codes: 0 ok, 1 a command failed, 2 usage mistake, 3 image cannot be booted,
            4 stopped at a --crash-at crash point, 5 image in use by another process`;

const stderr = (line: string) => console.error(line);

const EVICTION_POLICIES: readonly EvictionPolicy[] = ["strict", "random", "all"];

function settingsFrom(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set takes KEY=VALUE, not "${kv}"`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** " and N libtwz transactions (M records)", when the boot's session replayed any. */
function transactions(board: Board): string {
  const t = board.recovered;
  if (t === undefined || t.transactions === 0) return "";
  return ` and ${t.transactions} libtwz transaction${
    t.transactions === 1 ? "" : "s"
  } (${t.records} record${t.records === 1 ? "" : "s"})`;
}

function describeBoot(board: Board, kernel: Kernel): string {
  const r = kernel.report;
  const hal = board.hal;
  const readOnly = hal.readOnly === true || board.options.readOnly === true;
  const where = hal.image === undefined ? "anonymous region" : `image ${hal.image}`;
  const mode = !readOnly
    ? ""
    : hal.readOnlyReason !== undefined && !board.options.readOnly
    ? `, read-only: ${hal.readOnlyReason}`
    : ", read-only";
  const what = r.formatted
    ? hal.created
      ? "formatted a new image"
      : "formatted the image (its first format had been cut short)"
    : `${r.objects} object${r.objects === 1 ? "" : "s"} recovered, ${r.replayed} log record${
      r.replayed === 1 ? "" : "s"
    }${transactions(board)} replayed${
      readOnly && r.replayed > 0
        ? " into a private in-memory overlay (the image file is not changed)"
        : ""
    }`;
  return `twz: booted on hal ${hal.name}, ${where} (${formatSize(r.size)}, ${
    formatSize(r.free)
  } free${mode}): ${what} in ${r.ms.toFixed(1)} ms`;
}

function* linesOf(text: string): Generator<string> {
  for (const line of text.split(/\r?\n/)) yield line;
}

async function boot(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      hal: { type: "string", default: "sim" },
      image: { type: "string", default: "./twz.img" },
      size: { type: "string" },
      script: { type: "string" },
      quiet: { type: "boolean", default: false },
      "read-only": { type: "boolean", default: false },
      set: { type: "string", multiple: true },
      debug: { type: "boolean", default: false },
      "crash-at": { type: "string" },
      evict: { type: "string" },
      seed: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const script = values.script !== undefined ? readScript(values.script) : undefined;
  const crashAt = values["crash-at"] === undefined
    ? undefined
    : positive(values["crash-at"], "--crash-at", true);
  for (const flag of ["evict", "seed"] as const) {
    if (values[flag] !== undefined && crashAt === undefined) {
      throw new UsageError(`--${flag} only applies with --crash-at N`);
    }
  }
  const evict = (values.evict ?? "strict") as EvictionPolicy;
  if (!EVICTION_POLICIES.includes(evict)) {
    throw new UsageError(`--evict takes strict, random or all, not "${evict}"`);
  }
  const seed = positive(values.seed ?? "1", "--seed", true);
  let board: Board;
  try {
    board = await openBoard({
      hal: values.hal!,
      image: values.image,
      size: values.size !== undefined ? parseSize(values.size) : undefined,
      settings: settingsFrom(values.set),
      readOnly: values["read-only"],
      holder: values["read-only"] ? "twz boot --read-only" : "twz boot",
      beforeBoot: crashAt === undefined ? undefined : (hal) => {
        const power = hal.power;
        if (power?.armCrash === undefined) {
          throw new UsageError(
            `--crash-at needs a HAL that can lose power (--hal sim), not ${hal.name}`,
          );
        }
        // Crash point N, as twz crashtest defines it: drain N was the last to
        // complete; whatever was stored or flushed since is at the policy's mercy.
        power.armCrash(crashAt, { before: true, policy: evict, seed });
      },
    });
  } catch (error) {
    if (isPowerFailure(error)) {
      stderr(`twz: ${(error as Error).message}; the image holds what survived`);
      return EXIT.crashed;
    }
    if (error instanceof HalError && error.code === "busy") {
      stderr(`twz: ${error.message}`);
      if (values.debug) console.error(error);
      return EXIT.busy;
    }
    if (error instanceof TwzError || error instanceof HalError) {
      stderr(`twz: cannot boot ${values.image}: ${error.message}`);
      if (values.debug) console.error(error);
      return EXIT.image;
    }
    throw error;
  }
  const log = (k: Kernel) => {
    if (!values.quiet) stderr(describeBoot(board, k));
  };
  log(board.kernel);
  // Threads: /proc entries of an earlier boot are marked lost now, not at the first ps.
  attachThreads(board);
  // `twz run` from another terminal reaches this system through IMAGE.sock.
  const control = await startControl(board, {
    run: (target, args, console, signal) => runProgram(board, target, args, { console, signal }),
  });
  const interactive = script === undefined && Deno.stdin.isTerminal();
  const shell = new Shell(board, {
    out: (line) => console.log(line),
    err: stderr,
  }, log);
  const onInterrupt = () => {
    void control?.close(); // the socket file goes at once
    try {
      closeBoard(board);
    } catch {
      board.kernel.halt();
      closeHal(board);
    }
    stderr("\ntwz: interrupted; shut down cleanly");
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  let crashed: Error | undefined;
  try {
    const lines = script !== undefined ? linesOf(script) : consoleLines(board);
    if (interactive) console.log('Twizzler shell. Type "help" for commands.');
    for (;;) {
      if (interactive) board.hal.console.write("twz> ");
      const next = await lines.next();
      if (next.done) break;
      if ((await shell.execute(next.value)) === "shutdown") break;
    }
    // No more programs from other terminals; running ones get a grace
    // period to end, then are stopped.
    await control?.close();
    await stopThreads(board);
    // /dev names go before the kernel (they would dangle after it).
    board.devices?.stop();
    // The clean shutdown drains too: a crash point may fall in it.
    board.kernel.shutdown();
  } catch (error) {
    if (!isPowerFailure(error)) {
      try {
        closeBoard(board);
      } catch { /* reporting the first error */ }
      throw error;
    }
    crashed = error as Error;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await control?.close();
  }
  if (crashed) {
    // Stop as a power failure would: no clean shutdown, nothing more written
    // (the region already holds only what survived).
    board.kernel.halt();
    closeHal(board);
    stderr(`twz: ${crashed.message}; the image holds what survived`);
    return EXIT.crashed;
  }
  const drains = board.hal.region.stats?.().drains;
  closeHal(board);
  if (crashAt !== undefined) {
    stderr(
      `twz: crash point ${crashAt} was never reached: the run ended after ${
        drains ?? "?"
      } drains (counted since the image was last opened)`,
    );
  }
  if (!values.quiet) stderr("twz: shut down cleanly");
  return shell.failures > 0 ? EXIT.failed : EXIT.ok;
}

async function* consoleLines(board: Board): AsyncGenerator<string> {
  for (;;) {
    const line = await board.hal.console.readLine();
    if (line === null) return;
    yield line;
  }
}

function readScript(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new UsageError(`cannot read script ${path}: ${(error as Error).message}`);
  }
}

async function bench(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      hal: { type: "string", default: "sim" },
      image: { type: "string" },
      ops: { type: "string" },
      rounds: { type: "string" },
      json: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
      set: { type: "string", multiple: true },
      debug: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.list) {
    for (const [name, b] of Object.entries(BENCHMARKS)) {
      console.log(`${name.padEnd(16)}${b.summary}`);
    }
    return EXIT.ok;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "bench needs a NAME (twz bench --list names them)"
        : "bench takes one NAME",
    );
  }
  const name = positionals[0]!;
  const entry = BENCHMARKS[name];
  if (!entry) {
    throw new UsageError(`unknown benchmark "${name}" (twz bench --list names them)`);
  }
  const count = (text: string | undefined, what: string) => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text) || Number(text) < 1) {
      throw new UsageError(`--${what} must be a positive integer`);
    }
    return Number(text);
  };
  let results: BenchResult[];
  try {
    results = await (await entry.load()).run({
      hal: values.hal!,
      image: values.image,
      ops: count(values.ops, "ops"),
      rounds: count(values.rounds, "rounds"),
      settings: settingsFrom(values.set),
    });
  } catch (error) {
    // An operation failing inside a benchmark (No space, say) is a failure
    // (exit 1), not an image that cannot be booted (exit 3).
    if (!(error instanceof TwzError)) throw error;
    stderr(`twz: bench ${name}: ${error.message.split("\n")[0]}`);
    if (values.debug) console.error(error);
    return EXIT.failed;
  }
  for (const r of results) {
    if (values.json) console.log(JSON.stringify(r));
    else {
      const figures = Object.entries(r).filter(([k]) => !["bench", "case"].includes(k))
        .map(([k, v]) =>
          `${k}=${typeof v === "number" && !Number.isInteger(v) ? +v.toPrecision(4) : v}`
        ).join("  ");
      console.log(`${r.bench} ${r.case}: ${figures}`);
    }
  }
  return EXIT.ok;
}

/**
 * Run the `twz` command with `args`; returns the exit code.
 *
 * @param args Command-line arguments (without the program name).
 */
export async function main(args: string[]): Promise<number> {
  const debug = args.includes("--debug");
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "boot":
        return await boot(rest);
      case "bench":
        return await bench(rest);
      case "crashtest":
        return await (await import("./crashtest.ts")).main(rest);
      case "fsck":
        return await (await import("./fsck.ts")).main(rest);
      case "run":
        return await runCommand(rest);
      case undefined:
        throw new UsageError("no command given (see twz help)");
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return EXIT.ok;
      default:
        throw new UsageError(`unknown command ${quotedWord(command)} (try: twz help)`);
    }
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    if (debug) console.error(e);
    // Every error is exactly one line: parseArgs adds hint lines; keep the first.
    const first = String(e.message).split("\n")[0]!.trim();
    if ((e as { code?: string }).code?.startsWith?.("ERR_PARSE_ARGS")) {
      // parseArgs calls "--size -5M" ambiguous: say what it is.
      const negative = /^Option '(--[\w-]+)' argument is ambiguous/.exec(first);
      const value = negative ? args[args.indexOf(negative[1]!) + 1] : undefined;
      if (negative && value !== undefined && /^-\d/.test(value)) {
        stderr(`twz: ${negative[1]}: ${quotedWord(value)} is negative (see twz help)`);
      } else stderr(`twz: ${first} (see twz help)`);
      return EXIT.usage;
    }
    if (error instanceof UsageError) {
      stderr(`twz: ${first}`);
      return EXIT.usage;
    }
    if (error instanceof HalError) {
      stderr(`twz: ${first}`);
      return error.code === "busy" ? EXIT.busy : EXIT.image;
    }
    if (error instanceof TwzError) {
      // Opening and booting images report their own errors (exit 3); a
      // TwzError that gets here is an operation failing (a benchmark running
      // out of space, say).
      stderr(`twz: ${first}`);
      return EXIT.failed;
    }
    stderr(`twz: internal error: ${first} (run with --debug for the stack trace)`);
    return EXIT.failed;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

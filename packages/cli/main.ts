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
import { HalError } from "@twz/kernel/hal";
import { TwzError } from "@twz/kernel";
import { UsageError } from "./board.ts";
import { quotedWord } from "./shell.ts";
import { boot } from "./boot.ts";
import { EXIT, settingsFrom } from "./_exit.ts";
import { runCommand } from "./run.ts";
import { HelpRequested } from "./_args.ts";
import { BENCHMARKS } from "./bench/mod.ts";
import type { BenchResult } from "./bench/types.ts";

export { EXIT } from "./_exit.ts";

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
    if (error instanceof HelpRequested) {
      console.log(error.text);
      return EXIT.ok;
    }
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

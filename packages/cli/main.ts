/**
 * `twz`: boot Twizzler, run its shell and programs, benchmark and check it.
 *
 * The entry point is {@linkcode main}: `main(args)` runs the `twz` command
 * (`twz boot`, `twz run`, `twz fsck`, `twz crashtest`, `twz bench`,
 * `twz help`) and returns its exit code; run as a script, this module is
 * `twz`. {@linkcode COMMANDS} is the command table: each subcommand's spec
 * (its options and arguments, what parses them and what its `--help`
 * prints) and what runs it; {@linkcode EXIT} names the exit codes. The rest
 * are subpaths:
 *
 * | Entry | What |
 * | --- | --- |
 * | `@twz/cli` | `main` (the `twz` command), `COMMANDS` (its command table), `EXIT` |
 * | `@twz/cli/run` | running programs on a booted system: `runProgram`, `spawnProgram`, `attachThreads`, `stopThreads`, `bundleFile`, `installProgram`, `twz run` (`runCommand`) |
 * | `@twz/cli/programs` | the built-in programs (`BUILTINS`) and their cache (`buildPrograms`, what `deno task setup` runs) |
 *
 * Every subcommand is parsed by the one parser of `_args.ts` from its spec
 * (`twz boot`'s `BOOT`, `twz run`'s `RUN`, `twz fsck`'s `FSCK`, `twz
 * crashtest`'s `CRASHTEST`, `twz bench`'s and `twz help`'s), and the same
 * specs make `twz help` (the list of commands with their synopses, the
 * common notes and the exit codes) and each command's help (`twz help CMD`,
 * `twz CMD --help`). Every spec has `--debug` (stack traces on errors);
 * `twz run` takes it only before the program (after it, it is the
 * program's).
 *
 * Exit codes ({@linkcode EXIT}): 0 success; 1 a shell command or operation
 * failed; 2 a usage mistake; 3 the image cannot be opened or booted
 * (damaged, truncated, not an image, unsupported version, HAL unavailable);
 * 4 the power failed at a `--crash-at` point (the image holds what
 * survived); 5 the image is in use by another process (a running
 * `twz boot`, a repair). `twz run` exits with the program's exit code (137
 * when it was killed). Errors are one line on stderr; `--debug` adds the
 * stack trace.
 *
 * @example Run `twz` from a program, and list its commands
 * ```ts ignore
 * import { COMMANDS, main } from "@twz/cli";
 *
 * for (const [name, { spec }] of Object.entries(COMMANDS)) console.log(name, spec.summary);
 * const code = await main(["fsck", "--image", "twz.img"]); // 0: the image is sound
 * ```
 *
 * @module
 */
import { HalError } from "@twz/kernel/hal";
import { TwzError } from "@twz/kernel";
import { HALS, UsageError } from "./board.ts";
import { BOOT, boot, EXIT_CLUSTER } from "./boot.ts";
import { CLUSTER, cluster } from "./cluster.ts";
import { EXIT as CODES, settingsFrom } from "./_exit.ts";
import { RUN, runCommand } from "./run.ts";
import { FSCK, main as fsck } from "./fsck.ts";
import { CRASHTEST, main as crashtest } from "./crashtest.ts";
import { EXPLORE, GRAPH } from "./explore/specs.ts";
import {
  type CommandSpec,
  count,
  helpFor,
  HelpRequested,
  parseArgv,
  quoted,
  synopsisOf,
  wrap,
} from "./_args.ts";
import { BENCHMARKS } from "./bench/mod.ts";
import type { BenchResult } from "./bench/types.ts";

/** What a subcommand's spec is made of (`COMMANDS`, and `RUN` of `@twz/cli/run`). */
export type { ArgSpec, CommandSpec, OptionSpec } from "./_args.ts";

/**
 * The exit codes of every `twz` command (as `twz help` lists them): `ok`,
 * `failed` (a command or operation failed; fsck: problems remain;
 * crashtest: a violation), `usage` (a usage mistake), `image` (the image
 * cannot be opened or booted), `crashed` (stopped at a `--crash-at` point),
 * `busy` (the image is in use by another process). `twz run` exits with its
 * program's exit code instead (137: killed).
 */
export const EXIT: {
  readonly ok: 0;
  readonly failed: 1;
  readonly usage: 2;
  readonly image: 3;
  readonly crashed: 4;
  readonly busy: 5;
} = CODES;

const stderr = (line: string) => console.error(line);

/** `twz bench`'s options: what parses them and what `twz bench --help` prints. */
const BENCH: CommandSpec = {
  name: "twz bench",
  summary: "run a benchmark (twz bench --list names them)",
  options: [
    { name: "--hal", value: "HAL", choices: Object.keys(HALS), summary: "the HAL, default sim" },
    {
      name: "--image",
      value: "PATH",
      summary: "the new image it writes (an existing file is refused; default: a temporary " +
        "folder, removed at the end)",
    },
    { name: "--keep", summary: "with --image: leave the image in place at the end" },
    { name: "--ops", value: "N", summary: "operations per measured round" },
    { name: "--rounds", value: "R", summary: "measured rounds (the median is reported)" },
    { name: "--json", summary: "one JSON object per result line" },
    {
      name: "--set",
      value: "K=V",
      repeat: true,
      summary: "a HAL setting (sync=data: sim drains fdatasync)",
    },
    { name: "--list", summary: "list the benchmarks" },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  args: [{ name: "NAME", optional: true, summary: "the benchmark (--list names them)" }],
  details: [
    "Scratch images go in a temporary folder, removed at the end (also on failure or Ctrl-C). " +
    "docs/BENCHMARKS.md tells what each benchmark measures and the figures.",
  ],
};

/** `twz help`'s arguments. */
const HELP: CommandSpec = {
  name: "twz help",
  summary: "list the commands, or print one command's help (as twz COMMAND --help)",
  options: [{ name: "--debug", summary: "stack traces on errors" }],
  args: [{ name: "COMMAND", optional: true, summary: "the command" }],
};

/** A `twz` subcommand: its spec and what runs it (with the words after its name). */
export interface Subcommand {
  /** What parses its arguments and makes its help. */
  readonly spec: CommandSpec;
  /** Run it; returns the exit code. */
  readonly run: (argv: string[]) => Promise<number>;
}

/** Every `twz` subcommand, in the order `twz help` lists them. */
export const COMMANDS: Readonly<Record<string, Subcommand>> = {
  boot: { spec: BOOT, run: boot },
  run: { spec: RUN, run: runCommand },
  fsck: { spec: FSCK, run: fsck },
  crashtest: { spec: CRASHTEST, run: crashtest },
  bench: { spec: BENCH, run: bench },
  // The explorer (its model, server and page bundler) is loaded when it runs.
  explore: {
    spec: EXPLORE,
    run: async (argv) => (await import("./explore/command.ts")).main(argv),
  },
  graph: {
    spec: GRAPH,
    run: async (argv) => (await import("./explore/graph_command.ts")).main(argv),
  },
  cluster: { spec: CLUSTER, run: cluster },
  help: { spec: HELP, run: (argv) => Promise.resolve(help(argv)) },
};

/** Exit codes as `twz help` lists them. */
const EXIT_CODES: readonly (readonly [number, string])[] = [
  [EXIT.ok, "ok"],
  [EXIT.failed, "a command failed (fsck: problems remain; crashtest: a violation)"],
  [EXIT.usage, "usage mistake"],
  [
    EXIT.image,
    "image cannot be opened or booted (damaged, truncated, not an image, unsupported " +
    "version, HAL unavailable)",
  ],
  [EXIT.crashed, "stopped at a --crash-at crash point (the image holds what survived)"],
  [EXIT.busy, "image in use by another process (a running twz boot, a repair)"],
  [
    EXIT_CLUSTER,
    "twz boot --cluster: the cluster cannot be joined (the image is shut down cleanly)",
  ],
];

/** What `twz help` says after the list of commands. */
const NOTES: readonly string[] = [
  "Every command takes --debug (stack traces on errors) and --help (its options and details).",
  "--image defaults to ./twz.img (boot and run create it when absent: --size, default 64M).",
  "--set sync=data (sim; boot, run, bench): every drain fdatasyncs the image, so what was " +
  "drained survives a host power loss, not only a process kill.",
  "Errors are one line on stderr.",
];

/** `twz help`: every command with its synopsis and summary, the notes, the exit codes. */
function usage(): string {
  const out = [
    "usage: twz <command> [options] [arguments]",
    "       (twz help <command> or twz <command> --help: that command's help)",
    "",
    "commands:",
  ];
  for (const [name, { spec }] of Object.entries(COMMANDS)) {
    const synopsis = synopsisOf(spec);
    const head = `  ${name} `;
    out.push(...wrap(synopsis, " ".repeat(head.length), head));
    out.push(...wrap(spec.summary, "        "));
  }
  out.push("", "notes:");
  for (const note of NOTES) out.push(...wrap(note, "    ", "  "));
  out.push("", "exit codes:");
  for (const [code, what] of EXIT_CODES) out.push(...wrap(what, "      ", `  ${code} `));
  out.push("  twz run exits with its program's exit code (137: killed)");
  return out.join("\n");
}

function help(argv: string[]): number {
  const name = parseArgv(HELP, argv).arg("COMMAND");
  if (name === undefined) console.log(usage());
  else console.log(helpFor(commandNamed(name).spec));
  return EXIT.ok;
}

/**
 * The subcommand called `name`.
 *
 * @throws {UsageError} There is none.
 */
function commandNamed(name: string): Subcommand {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command !== undefined) return command;
  if (name.startsWith("-")) {
    throw new UsageError(
      `unknown option ${quoted(name)}: options go after the command (see twz help)`,
    );
  }
  throw new UsageError(`unknown command ${quoted(name)} (see twz help)`);
}

async function bench(args: string[]): Promise<number> {
  const p = parseArgv(BENCH, args);
  const name = p.arg("NAME");
  if (p.has("--list")) {
    if (name !== undefined) {
      throw new UsageError(`unexpected argument ${quoted(name)} (see twz bench --help)`);
    }
    for (const [name, b] of Object.entries(BENCHMARKS)) {
      console.log(`${name.padEnd(16)}${b.summary}`);
    }
    return EXIT.ok;
  }
  if (name === undefined) throw new UsageError("missing NAME (twz bench --list names them)");
  const entry = Object.hasOwn(BENCHMARKS, name) ? BENCHMARKS[name] : undefined;
  if (!entry) {
    throw new UsageError(`unknown benchmark ${quoted(name)} (twz bench --list names them)`);
  }
  const image = p.value("--image");
  if (p.has("--keep") && image === undefined) {
    throw new UsageError("--keep only applies with --image PATH");
  }
  const ops = p.value("--ops");
  const rounds = p.value("--rounds");
  let results: BenchResult[];
  try {
    results = await (await entry.load()).run({
      hal: p.value("--hal") ?? "sim",
      image,
      keep: p.has("--keep"),
      ops: ops === undefined ? undefined : count(ops, "--ops", 1),
      rounds: rounds === undefined ? undefined : count(rounds, "--rounds", 1),
      settings: settingsFrom(p.values("--set")),
    });
  } catch (error) {
    // An operation failing inside a benchmark (No space, say) is a failure
    // (exit 1), not an image that cannot be booted (exit 3).
    if (!(error instanceof TwzError)) throw error;
    stderr(`twz: bench ${name}: ${error.message.split("\n")[0]}`);
    if (p.has("--debug")) console.error(error);
    return EXIT.failed;
  }
  for (const r of results) {
    if (p.has("--json")) console.log(JSON.stringify(r));
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
  const [name, ...rest] = args;
  let debug = false;
  try {
    if (name === undefined) throw new UsageError("no command given (see twz help)");
    if (name === "--help" || name === "-h") {
      console.log(usage());
      return EXIT.ok;
    }
    const command = commandNamed(name);
    // Parsed here first by the same spec the command parses by: `--help`
    // and `--debug` mean one thing for every command, and a mistake is
    // refused before anything runs.
    debug = parseArgv(command.spec, rest).has("--debug");
    return await command.run(rest);
  } catch (error) {
    if (error instanceof HelpRequested) {
      console.log(error.text);
      return EXIT.ok;
    }
    const e = error instanceof Error ? error : new Error(String(error));
    const first = String(e.message).split("\n")[0]!.trim();
    const [line, code]: [string, number] = error instanceof UsageError
      ? [first, EXIT.usage]
      : error instanceof HalError
      ? [first, error.code === "busy" ? EXIT.busy : EXIT.image]
      : error instanceof TwzError
      // Opening and booting images report their own errors (exit 3); a
      // TwzError that gets here is an operation failing (a benchmark
      // running out of space, say).
      ? [first, EXIT.failed]
      : [`internal error: ${first} (run with --debug for the stack trace)`, EXIT.failed];
    stderr(`twz: ${line}`);
    // The one line first, then (--debug) where it came from.
    if (debug) console.error(e);
    return code;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

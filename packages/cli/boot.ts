/**
 * `twz boot`: open (or create) an image, boot the kernel on it, and run the
 * shell, interactive on a terminal, else one command per line from stdin or
 * `--script`.
 *
 * @module
 */
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
  UsageError,
} from "./board.ts";
import { Shell } from "./shell.ts";
import { attachThreads, runProgram, stopThreads } from "./run.ts";
import { startControl } from "./control.ts";
import { EXIT, settingsFrom } from "./_exit.ts";
import { type CommandSpec, count, parseArgv } from "./_args.ts";

const stderr = (line: string) => console.error(line);

const EVICTION_POLICIES: readonly EvictionPolicy[] = ["strict", "random", "all"];

/** `twz boot`'s options: what parses them and what `twz boot --help` prints. */
export const BOOT: CommandSpec = {
  name: "twz boot",
  summary: "boot an image and run the shell (interactive on a terminal, else one " +
    "command per line from stdin or --script)",
  options: [
    { name: "--hal", value: "HAL", choices: ["sim", "pmem"], summary: "the HAL (default sim)" },
    { name: "--image", value: "PATH", summary: "the image (default ./twz.img)" },
    { name: "--size", value: "SIZE", summary: "size of a new image (default 64M)" },
    {
      name: "--read-only",
      summary: "never write the image (a committed log is replayed in memory)",
    },
    { name: "--script", value: "FILE", summary: "run the commands in FILE" },
    { name: "--quiet", summary: "no boot and shutdown lines" },
    {
      name: "--keep-going",
      summary: "scripted input: run every line (by default the first failing one stops the run)",
    },
    {
      name: "--set",
      value: "K=V",
      repeat: true,
      summary: "a HAL setting (sync=data: sim drains fdatasync)",
    },
    { name: "--crash-at", value: "N", summary: "sim: lose power at crash point N, exit 4" },
    {
      name: "--evict",
      value: "POLICY",
      choices: EVICTION_POLICIES,
      summary: "with --crash-at: what unflushed lines do (default strict)",
    },
    { name: "--seed", value: "S", summary: "with --crash-at --evict random: the seed (default 1)" },
    { name: "--debug", summary: "stack traces on errors" },
  ],
};

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

/**
 * Run `twz boot` with `args`; returns the exit code.
 *
 * @param args Its arguments (after `boot`).
 */
export async function boot(args: string[]): Promise<number> {
  const p = parseArgv(BOOT, args);
  const values = {
    hal: p.value("--hal") ?? "sim",
    image: p.value("--image") ?? "./twz.img",
    size: p.value("--size"),
    script: p.value("--script"),
    quiet: p.has("--quiet"),
    "read-only": p.has("--read-only"),
    set: p.values("--set"),
    debug: p.has("--debug"),
    "crash-at": p.value("--crash-at"),
    evict: p.value("--evict"),
    seed: p.value("--seed"),
  };
  const script = values.script !== undefined ? readScript(values.script) : undefined;
  const crashAt = values["crash-at"] === undefined
    ? undefined
    : count(values["crash-at"], "--crash-at");
  for (const flag of ["evict", "seed"] as const) {
    if (values[flag] !== undefined && crashAt === undefined) {
      throw new UsageError(`--${flag} only applies with --crash-at N`);
    }
  }
  const evict = (values.evict ?? "strict") as EvictionPolicy;
  const seed = count(values.seed ?? "1", "--seed");
  let board: Board;
  try {
    board = await openBoard({
      hal: values.hal!,
      image: values.image,
      size: values.size !== undefined ? parseSize(values.size, "--size") : undefined,
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
  const keepGoing = p.has("--keep-going");
  let lineNumber = 0;
  try {
    const lines = script !== undefined ? linesOf(script) : consoleLines(board);
    if (interactive) console.log('Twizzler shell. Type "help" for commands.');
    for (;;) {
      if (interactive) board.hal.console.write("twz> ");
      const next = await lines.next();
      if (next.done) break;
      lineNumber++;
      const failures = shell.failures;
      if ((await shell.execute(next.value)) === "shutdown") break;
      if (!interactive && !keepGoing && shell.failures > failures) {
        stderr(
          `twz: stopped at line ${lineNumber}, the first that failed (--keep-going runs every line)`,
        );
        break;
      }
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

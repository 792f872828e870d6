/**
 * Running programs: `twz run [--context CTX]... FILE.ts|NAME [ARGS]` and the
 * shell's `run`.
 *
 * A program file is bundled (`_bundle.ts`) into one ES module, stored as an
 * immutable code object (prot `r-x`) and bound at `/bin/NAME` (NAME: the
 * file's stem; an earlier program of that name is replaced). `run NAME`
 * starts `/bin/NAME` without bundling; a built-in program (`kv`) missing
 * from `/bin` is installed there first, from the bundle `deno task setup`
 * cached. Each run is a thread (a Worker with Deno permissions "none") of
 * the kernel's thread manager, which this module attaches to a board's
 * kernel on first use ({@linkcode attachThreads}): every thread's object is
 * bound at `/proc/<tid>`, and thread objects found there from an earlier
 * boot are marked "exited (lost at reboot)".
 *
 * `@twz/cli/run` is the API for running programs on a booted system (any
 * {@linkcode KernelHost}: an object holding the current kernel):
 * {@linkcode runProgram} runs one to its end, {@linkcode spawnProgram}
 * starts one, {@linkcode attachThreads} gives the kernel's
 * {@linkcode ThreadSystem} (its `ThreadManager`: `wait`, `kill`, `threads`),
 * {@linkcode stopThreads} ends them before a shutdown; {@linkcode bundleFile}
 * and {@linkcode installProgram} bundle a file and store it in `/bin`;
 * {@linkcode programName}, {@linkcode isProgramFile} and {@linkcode psLines}
 * are the rules and the table `run` and `ps` use; {@linkcode runCommand}
 * (parsed by {@linkcode RUN}) is `twz run`.
 *
 * @example Run a program file on a kernel booted in this process
 * ```ts ignore
 * import { Kernel } from "@twz/kernel";
 * import { plugin } from "@twz/hal-sim";
 * import { runProgram, stopThreads } from "@twz/cli/run";
 *
 * const hal = await plugin.open({ image: "twz.img", size: 64 << 20, create: true });
 * const board = { kernel: Kernel.boot(hal) };
 * const end = await runProgram(board, "examples/hello.ts", []); // output: the HAL console
 * console.log(end.exitCode, end.fault); // 0 null
 * await stopThreads(board);
 * board.kernel.shutdown();
 * hal.close();
 * ```
 *
 * @module
 */
import {
  ErrorCode,
  formatId,
  type Kernel,
  looksLikeId,
  type ObjID,
  Prot,
  type ThreadInfo,
  ThreadState,
  TwzError,
} from "@twz/kernel";
import { encodeCodeObject, ThreadManager } from "@twz/kernel/threads";
import { HalError } from "@twz/kernel/hal";
import { Twz } from "@twz/libtwz";
import { prepareThreadLogs } from "@twz/libtwz/tx";
import { basename } from "node:path";
import {
  type Board,
  closeBoard,
  fileExists,
  HALS,
  openBoard,
  parseSize,
  UsageError,
} from "./board.ts";
import { EXIT, settingsFrom } from "./_exit.ts";
import { type CommandSpec, parseArgv } from "./_args.ts";
import { controlPath, isProgramFile, runRemote } from "./control_client.ts";
import { endLine, secObject, secPath } from "./_run.ts";
import { builtinCode, isBuiltin } from "./programs/_build.ts";

export { isProgramFile } from "./control_client.ts";
export { psLines } from "./_run.ts";

/** Where programs are bound: `/bin/NAME`. */
const BIN = "/bin";
/** Where thread objects are bound: `/proc/<tid>`. */
const PROC = "/proc";

/**
 * What the functions here need of a board: its current kernel (`reboot`
 * and `crash` replace it; threads follow).
 */
export interface KernelHost {
  /** The kernel running now. */
  readonly kernel: Kernel;
}

/** The threads of one kernel, as the board drives them. */
export interface ThreadSystem {
  /** The kernel. */
  readonly kernel: Kernel;
  /** Its thread manager. */
  readonly manager: ThreadManager;
  /** A libtwz session on it (names: /bin, /proc). */
  readonly twz: Twz;
  /** Threads of earlier boots found in /proc at attach (those still running then read lost). */
  readonly lost: ThreadInfo[];
}

const systems = new WeakMap<Kernel, ThreadSystem>();

/** Bind `/proc/<tid>` to a thread's object (a failure to bind is not the thread's). */
function bindProc(twz: Twz, info: ThreadInfo): void {
  if (twz.readOnly) return;
  try {
    const path = `${PROC}/${info.tid}`;
    if (twz.naming.exists(path)) twz.naming.unbind(path);
    twz.naming.bind(path, info.id, { parents: true });
  } catch { /* /proc is a convenience: ps asks the manager */ }
}

/**
 * The thread system of the board's current kernel, attaching a thread
 * manager on first use (per kernel: after `reboot` or `crash` the new
 * kernel gets its own). At attach, thread objects bound in `/proc` by an
 * earlier boot are handed to the manager as lost, and names in `/proc`
 * whose object is gone are unbound.
 *
 * @param board The board.
 * @param options `console`: where threads write by default (the HAL
 *   console); `keep`: how many threads of earlier boots stay in `/proc`
 *   (default 64; older ones are unbound and deleted).
 * @returns The thread system.
 */
export function attachThreads(
  board: KernelHost,
  options: { console?: (text: string) => void; keep?: number } = {},
): ThreadSystem {
  const kernel = board.kernel;
  const known = systems.get(kernel);
  if (known !== undefined) return known;
  const twz = Twz.attach(kernel.port());
  const earlier: ObjID[] = [];
  try {
    if (twz.naming.exists(PROC)) {
      for (const b of twz.naming.list(PROC)) {
        if (kernel.exists(b.id)) earlier.push(b.id);
        else if (!twz.readOnly) twz.naming.unbind(`${PROC}/${b.name}`);
      }
    }
  } catch { /* damaged naming: no lost threads to show */ }
  const manager = new ThreadManager(kernel, {
    onSpawn: (info: ThreadInfo) => bindProc(twz, info),
    ...(options.console ? { console: options.console } : {}),
  });
  let lost: ThreadInfo[] = [];
  try {
    lost = pruneProc(kernel, twz, manager.markLost(earlier), options.keep ?? PROC_KEEP);
  } catch { /* an unreadable thread object: left out */ }
  const system: ThreadSystem = { kernel, manager, twz, lost };
  systems.set(kernel, system);
  return system;
}

/** Thread objects of earlier boots kept in `/proc` (the newest by thread number). */
const PROC_KEEP = 64;

/**
 * Keep `/proc` bounded: of the earlier boots' threads (all ended now), the
 * `keep` newest stay; older ones are unbound and their thread objects
 * deleted.
 */
function pruneProc(kernel: Kernel, twz: Twz, earlier: ThreadInfo[], keep: number): ThreadInfo[] {
  if (earlier.length <= keep || twz.readOnly) return earlier;
  const sorted = [...earlier].sort((a, b) => b.tid - a.tid);
  for (const t of sorted.slice(keep)) {
    if (t.state !== ThreadState.Exited) continue;
    const path = `${PROC}/${t.tid}`;
    if (twz.naming.lookup(path)?.id === t.id) twz.naming.unbind(path);
    if (kernel.exists(t.id)) kernel.delete(t.id);
  }
  return sorted.slice(0, keep).reverse();
}

/**
 * Stop every thread of the board's kernel (if any ran): killed, then
 * terminated after `graceMs`. Call before a clean shutdown.
 *
 * @param board The board.
 * @param graceMs How long threads get to end after the kill.
 */
export async function stopThreads(board: KernelHost, graceMs = 2000): Promise<void> {
  const system = systems.get(board.kernel);
  if (system === undefined) return;
  await system.manager.shutdown(graceMs);
}

/**
 * Store a module as a code object and bind it at `/bin/NAME`, replacing an
 * earlier program of that name (its code object is deleted; threads
 * running it keep their copy). A name bound to something that is not code
 * is not replaced.
 *
 * @param system The thread system (its session names the object).
 * @param name The program's name.
 * @param text The bundled ES module.
 * @returns The code object's ID.
 * @throws {UsageError} `/bin/NAME` holds something else. {TwzError} from the kernel.
 */
export function installProgram(system: ThreadSystem, name: string, text: string): ObjID {
  const { kernel, twz } = system;
  twz._needWritable(`install ${BIN}/${name}`);
  const path = `${BIN}/${name}`;
  const old = twz.naming.lookup(path)?.id;
  if (old !== undefined && kernel.exists(old) && !(kernel.stat(old).prot & Prot.Exec)) {
    throw new UsageError(`${path} is bound to ${formatId(old)}, which is not a program`);
  }
  const id = storeCode(kernel, text, "persistent");
  // New code first, then the name: a crash in between leaves an unnamed
  // code object (fsck --deep lists it), never a name without a program.
  if (old !== undefined) twz.naming.unbind(path);
  twz.naming.bind(path, id, { parents: true });
  if (old !== undefined && kernel.exists(old)) kernel.delete(old);
  return id;
}

/**
 * Store a module as a code object (prot `r-x`). The kernel copies only
 * from objects: the bytes go through a volatile scratch object, so the code
 * object is never mapped writable.
 */
function storeCode(kernel: Kernel, text: string, lifetime: "persistent" | "volatile"): ObjID {
  const bytes = encodeCodeObject(text);
  const scratch = kernel.create({ size: bytes.length, lifetime: "volatile" });
  try {
    kernel.map(scratch, Prot.ReadWrite).bytes.set(bytes);
    return kernel.create({
      size: bytes.length,
      lifetime,
      prot: Prot.Read | Prot.Exec,
      sources: [{ id: scratch, srcOffset: 0, dstOffset: 0, length: bytes.length }],
    });
  } finally {
    kernel.delete(scratch);
  }
}

/**
 * The program for a bundle: installed in `/bin`, or, on a read-only
 * system (nothing can be installed), a volatile code object for this one
 * run.
 */
function fromBundle(system: ThreadSystem, name: string, text: string): ResolvedProgram {
  if (system.kernel.readOnly) {
    return { name, code: storeCode(system.kernel, text, "volatile"), source: "transient" };
  }
  return { name, code: installProgram(system, name, text), source: "bundled" };
}

/** A program ready to start. */
interface ResolvedProgram {
  /** Its name (for `ps`). */
  name: string;
  /** Its code object. */
  code: ObjID;
  /**
   * How it got there: `bundled` (a file, now in `/bin`), `installed` (a
   * built-in, first run), `bin`, or `transient` (a read-only system: a
   * volatile code object, deleted once the thread has started).
   */
  source: "bundled" | "installed" | "bin" | "transient";
}

/**
 * Find or make the code object for `target`: a file is bundled and
 * installed; a name is looked up in `/bin`, a built-in installed there on
 * its first run.
 *
 * @param system The thread system.
 * @param target A program file or a name.
 * @returns The program.
 * @throws {UsageError} No such program. {BundleError} The file does not bundle.
 */
async function resolveProgram(
  system: ThreadSystem,
  target: string,
): Promise<ResolvedProgram> {
  if (isProgramFile(target)) {
    const bundle = await bundleFile(target);
    return fromBundle(system, bundle.name, bundle.text);
  }
  const name = programName(target);
  const bound = system.twz.naming.lookup(`${BIN}/${name}`)?.id;
  if (bound !== undefined && system.kernel.exists(bound)) {
    return { name, code: bound, source: "bin" };
  }
  if (isBuiltin(name)) {
    const text = (await builtinCode(name))!;
    const program = fromBundle(system, name, text);
    return program.source === "bundled" ? { ...program, source: "installed" } : program;
  }
  throw new UsageError(`no program ${BIN}/${name} (run a file: run path/to/${name}.ts)`);
}

/** Options for {@linkcode spawnProgram} and {@linkcode runProgram}. */
export interface RunOptions {
  /** Where the thread's console output goes. @default {the HAL console} */
  console?: ((text: string) => void) | undefined;
  /** `runProgram` only: aborting it kills the program (a client hung up). */
  signal?: AbortSignal | undefined;
  /**
   * The security contexts the program's thread attaches to (`run --context
   * CTX`; docs/SECURITY.md). Absent or empty: none, so the program gets
   * every object's default protections only.
   */
  contexts?: readonly ObjID[] | undefined;
}

/**
 * Start a program in a new thread.
 *
 * @param board The board (its current kernel runs the thread).
 * @param target A program file or a `/bin` name.
 * @param args The program's arguments.
 * @param options Console.
 * @returns The thread as it started.
 */
export async function spawnProgram(
  board: KernelHost,
  target: string,
  args: string[],
  options: RunOptions = {},
): Promise<ThreadInfo> {
  const system = attachThreads(board);
  return startThread(system, await resolveProgram(system, target), args, options);
}

/** Systems whose thread logs were looked at (made, or found) by {@linkcode startThread}. */
const logsReady = new WeakSet<ThreadSystem>();

/**
 * Make the transaction logs programs commit into (`/.txlog`, `/.txlanes`)
 * from the kernel's own session before the first program starts: naming is
 * not safe for binds from several threads at once. A full image is no reason
 * to refuse the spawn (a program may never commit); the program meets the
 * `OutOfSpace` at its first transaction.
 */
function prepareLogs(system: ThreadSystem): void {
  if (logsReady.has(system) || system.twz.readOnly) return;
  logsReady.add(system);
  try {
    prepareThreadLogs(system.twz);
  } catch (e) {
    if (!(e instanceof TwzError && e.code === ErrorCode.OutOfSpace)) throw e;
  }
}

function startThread(
  system: ThreadSystem,
  program: ResolvedProgram,
  args: string[],
  options: RunOptions,
): ThreadInfo {
  prepareLogs(system);
  try {
    const contexts = options.contexts ?? [];
    return system.manager.spawn(
      {
        code: program.code,
        name: program.name,
        args,
        ...(contexts.length > 0 ? { contexts: [...contexts] } : {}),
      },
      options.console ? { console: options.console } : {},
    );
  } finally {
    // The thread has its copy of the code: a one-run code object goes.
    if (program.source === "transient") system.kernel.delete(program.code);
  }
}

/**
 * Run a program to its end (the function `twz run`, the shell's `run` and
 * the control socket use).
 *
 * @param board The board.
 * @param target A program file or a `/bin` name.
 * @param args The program's arguments.
 * @param options Console.
 * @returns The thread once it exited: `exitCode`, `fault`.
 */
export async function runProgram(
  board: KernelHost,
  target: string,
  args: string[],
  options: RunOptions = {},
): Promise<ThreadInfo> {
  options.signal?.throwIfAborted();
  const system = attachThreads(board);
  const info = startThread(system, await resolveProgram(system, target), args, options);
  const { manager } = system;
  const kill = () => {
    try {
      manager.kill(info.tid);
    } catch { /* ended, or the kernel is gone */ }
  };
  options.signal?.addEventListener("abort", kill, { once: true });
  try {
    return await manager.wait(info.tid);
  } finally {
    options.signal?.removeEventListener("abort", kill);
  }
}

/** `twz run`'s options and arguments: what parses them and what `twz run --help` prints. */
export const RUN: CommandSpec = {
  name: "twz run",
  summary: "run a program (FILE.ts, or NAME: /bin/NAME) on the image, print its output, " +
    "exit with its exit code",
  optionsFirst: true,
  options: [
    { name: "--hal", value: "HAL", choices: Object.keys(HALS), summary: "the HAL, default sim" },
    {
      name: "--image",
      value: "PATH",
      summary: "the image (default ./twz.img, created when absent)",
    },
    { name: "--size", value: "SIZE", summary: "size of a new image (default 64M)" },
    {
      name: "--set",
      value: "K=V",
      repeat: true,
      summary: "a HAL setting (sync=data: sim drains fdatasync)",
    },
    {
      name: "--context",
      value: "CTX",
      repeat: true,
      summary: "a security context the program attaches to (a name in /sec/ctx, a path or an ID)",
    },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  args: [
    { name: "PROGRAM", summary: "a program file (FILE.ts) or the NAME of one in /bin" },
    { name: "ARGS", optional: true, variadic: true, summary: "the program's arguments" },
  ],
  details: [
    "FILE.ts (export default async function main(env, args)) is bundled, stored as a code " +
    "object at /bin/NAME (NAME: the file's stem) and run in a thread of its own; NAME runs " +
    "/bin/NAME (built-in: kv). Boots the image, prints the program's output, shuts down, and " +
    "exits with the program's exit code (137: killed). Options go before the program; " +
    "everything after it (options too) is the program's.",
    "When a twz boot holds the image, the program runs on that system, through the control " +
    "socket beside the image (IMAGE.sock).",
    "--context CTX (repeatable) runs the program attached to those security contexts: it gets " +
    "what their grants give on top of each object's default protections (docs/SECURITY.md). " +
    "Without it the program has no context and gets the default protections only.",
  ],
};

/**
 * `twz run [--hal H] [--image P] [--size S] [--set K=V] [--context CTX]...
 * FILE.ts|NAME [ARGS]`: boot the image (created when absent), run the
 * program (attached to the security contexts named: a name in `/sec/ctx`,
 * a path or an ID), print its output, shut down, and exit with the
 * program's exit code. Options go before the program; everything after it
 * is the program's. When a `twz boot` holds the image, the program runs
 * there instead, through the control socket beside the image
 * (`IMAGE.sock`); `--context` is refused then (name the contexts in that
 * system's shell: `run --context CTX PROGRAM`).
 *
 * @param argv The arguments after `run` (parsed by {@linkcode RUN}).
 * @returns The exit code.
 * @throws {UsageError} A usage mistake. {HelpRequested} `--help` before the program.
 */
export async function runCommand(argv: string[]): Promise<number> {
  const p = parseArgv(RUN, argv);
  const size = p.value("--size");
  const opts = {
    hal: p.value("--hal") ?? "sim",
    image: p.value("--image") ?? "./twz.img",
    size: size === undefined ? undefined : parseSize(size, "--size"),
    settings: settingsFrom(p.values("--set")),
  };
  const target = p.arg("PROGRAM")!;
  const args = p.args("ARGS");
  const contextNames = p.values("--context");
  const encoder = new TextEncoder();
  const write = (text: string) => {
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
  };
  // A running `twz boot` holds the image: run there, through its control
  // socket (undefined: nothing listens, a stale socket).
  const remote = () =>
    runRemote(
      opts.image,
      target,
      args,
      { out: write, err: (line) => console.error(line) },
      contextNames,
    );
  // A bare context name must be one name component: checked before anything
  // is booted (whether it is bound is known only after).
  for (const name of contextNames) {
    if (!looksLikeId(name) && !name.includes("/")) {
      try {
        secPath("context", name);
      } catch (error) {
        throw new UsageError(`--context: ${(error as Error).message}`);
      }
    }
  }
  if (fileExists(controlPath(opts.image))) {
    const code = await remote();
    if (code !== undefined) return code;
  }
  // A file is bundled before the image is opened: a program that does not
  // compile touches nothing.
  let bundle: { name: string; text: string } | undefined;
  if (isProgramFile(target)) {
    try {
      bundle = await bundleFile(target);
    } catch (error) {
      if (!(error instanceof UsageError) || error.name !== "BundleError") throw error;
      console.error(`twz: ${error.message}`);
      return EXIT.failed;
    }
  }
  let board: Board;
  try {
    board = await openBoard({
      hal: opts.hal,
      image: opts.image,
      size: opts.size,
      settings: opts.settings,
      holder: "twz run",
    });
  } catch (error) {
    if (error instanceof HalError && error.code === "busy") {
      // Held by a boot that started its socket after we looked (contexts
      // cannot be named through it yet: see above).
      const code = fileExists(controlPath(opts.image)) && contextNames.length === 0
        ? await remote()
        : undefined;
      if (code !== undefined) return code;
      console.error(`twz: ${error.message}`);
      return EXIT.busy;
    }
    if (error instanceof TwzError || error instanceof HalError) {
      console.error(`twz: cannot boot ${opts.image}: ${error.message}`);
      return EXIT.image;
    }
    throw error;
  }
  let info: ThreadInfo;
  // ^C: the program is killed (cooperatively, then stopped) and the system
  // shuts down cleanly; a second ^C leaves at once (the image recovers as
  // after a crash).
  let stop: (() => void) | undefined;
  let interrupted = false;
  const onInterrupt = () => {
    if (!interrupted && stop !== undefined) {
      interrupted = true;
      console.error("twz: interrupted: stopping the program (^C again to quit at once)");
      stop();
      return;
    }
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const system = attachThreads(board, { console: write });
    let contexts: ObjID[];
    try {
      contexts = contextNames.map((c) => secObject(system.twz, c, "context"));
    } catch (error) {
      if (!(error instanceof UsageError || error instanceof TwzError)) throw error;
      console.error(`twz: --context: ${error.message}`);
      return EXIT.usage;
    }
    const program = bundle !== undefined
      ? fromBundle(system, bundle.name, bundle.text)
      : await resolveProgram(system, target);
    let started: ThreadInfo;
    try {
      started = startThread(system, program, args, { console: write, contexts });
    } catch (error) {
      if (!(error instanceof TwzError)) throw error;
      console.error(`twz: cannot start ${program.name}: ${error.message}`);
      return EXIT.failed;
    }
    stop = () => system.manager.kill(started.tid);
    info = await system.manager.wait(started.tid);
  } finally {
    try {
      await stopThreads(board);
    } finally {
      closeBoard(board);
      Deno.removeSignalListener("SIGINT", onInterrupt);
    }
  }
  if (interrupted) return 130;
  const line = endLine(info);
  if (line !== undefined && info.fault !== null) console.error(`twz: ${line}`);
  return info.exitCode;
}

/**
 * Bundle a program file into one ES module (esbuild is loaded on first use).
 *
 * @param file The program file.
 * @param options `name`: the program's name (default: the file's stem).
 * @returns The program's name, the module text and the files it was made of.
 * @throws {UsageError} (a `BundleError`): the file is missing, does not
 *   compile, has no default export, or imports what a program cannot.
 */
export async function bundleFile(
  file: string,
  options: { name?: string } = {},
): Promise<{ name: string; text: string; inputs: string[] }> {
  const name = options.name ?? programName(file);
  return await (await import("./_bundle.ts")).bundleProgram(file, name);
}

/**
 * The program's name for a file: its stem, which must be a usable name
 * component (letters, digits, `-`, `_`, `.`; at most 64).
 *
 * @param file The program file, or a name.
 * @returns The name (`hello` for `examples/hello.ts`).
 * @throws {UsageError} The stem is no usable name.
 */
export function programName(file: string): string {
  const stem = basename(file).replace(/\.(ts|tsx|js|mjs)$/, "");
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(stem)) {
    throw new UsageError(
      `cannot name a program "${stem}": a name takes letters, digits, -, _ and . (at most 64)`,
    );
  }
  return stem;
}

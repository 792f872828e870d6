/**
 * `twz boot`: open (or create) an image, boot the kernel on it, and run the
 * shell, interactive on a terminal, else one command per line from stdin or
 * `--script`; with `--serve`, no shell: the system serves its control
 * socket (`twz run`, `Twz.open`) until SIGTERM or SIGINT. With `--cluster
 * URLS --node NAME` the system joins a cluster as a node of the global
 * object space (`@twz/global`, loaded only then) and leaves it at shutdown.
 *
 * @module
 */
import { type Console, type EvictionPolicy, HalError, stdioConsole } from "@twz/kernel/hal";
import { formatId, type Kernel, TwzError } from "@twz/kernel";
import {
  type Board,
  closeBoard,
  closeHal,
  EVICTION_POLICIES,
  formatSize,
  isPowerFailure,
  openBoard,
  parseSize,
  UsageError,
} from "./board.ts";
import { commandNames, type Flow, Shell } from "./shell.ts";
import { attachThreads, runProgram, stopThreads } from "./run.ts";
import { startControl } from "./control.ts";
import { secObject } from "./_run.ts";
import { EXIT, settingsFrom } from "./_exit.ts";
import { type CommandSpec, count, parseArgv } from "./_args.ts";
import {
  completionsAt,
  type CompletionSource,
  History,
  historyPath,
  LineEditor,
  terminalIO,
} from "./_lineedit.ts";

const stderr = (line: string) => console.error(line);

/** Exit code of a boot whose cluster cannot be joined (the image is shut down cleanly). */
export const EXIT_CLUSTER: number = EXIT.cluster;

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
    {
      name: "--cluster",
      value: "URLS",
      summary: "join the cluster at these NATS servers (nats://HOST:PORT, comma-separated)",
    },
    { name: "--node", value: "NAME", summary: "with --cluster: this node's name" },
    {
      name: "--lease",
      value: "MS",
      summary: "with --cluster: the ownership lease in milliseconds (default 10000)",
    },
    {
      name: "--serve",
      summary: "no shell: serve the control socket (twz run, Twz.open) until SIGTERM or SIGINT",
    },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  details: [
    "The image is created (--size, default 64M) when absent. One process at a time may boot " +
    "an image (a second one exits 5).",
    "--read-only never writes the image: every write is refused, and a log found committed is " +
    "replayed into a private in-memory copy (an image without write permission opens read-only).",
    "--set sync=data (sim) makes every drain fdatasync the image, so what was drained survives " +
    "a host power loss, not only a process kill.",
    "With --crash-at N (sim only) the power fails at crash point N as crashtest numbers it: " +
    "when drain N+1 (counted from opening the image) is called, before it takes effect; what " +
    "was stored or flushed since drain N is lost (--evict strict), kept (all) or each line " +
    "either way (random, seeded by --seed). The image is left as the crash left it and twz " +
    'exits with code 4; a run that ends before then says "crash point N was never reached".',
    "Scripted input (stdin or --script) stops at the first failing line unless --keep-going.",
    "On a terminal the shell edits lines (arrows, Home/End, Ctrl-A/E/U/K/W), keeps a history " +
    "(Up/Down; in $XDG_STATE_HOME/twz/history, default ~/.local/state/twz/history, never in " +
    "the image) and completes commands, names and object IDs with Tab. Ctrl-C cancels the " +
    "line, or interrupts the command running (a foreground run ends its program); Ctrl-D on " +
    "an empty line, or a second Ctrl-C, shuts down cleanly.",
    "--cluster URLS --node NAME: after booting, the system joins the cluster as node NAME " +
    "(docs/GLOBAL.md): its objects can be published, objects of other nodes are fetched when " +
    "opened, and the shell's publish, own, release, global and /global/... names work. It " +
    "leaves the cluster at shutdown. A cluster that cannot be reached is one line and exit " +
    `code ${EXIT_CLUSTER}, the image shut down cleanly.`,
    "--serve runs no shell and reads no input: the system serves IMAGE.sock (one line on " +
    "stdout says so) until SIGTERM or SIGINT, then shuts down cleanly and exits 0 (twz " +
    "cluster up starts its nodes this way).",
  ],
};

/** What `--cluster`, `--node` and `--lease` ask for, checked. */
export interface ClusterArgs {
  /** The NATS server URLs. */
  servers: string[];
  /** The node's name. */
  node: string;
  /** The lease, when given. */
  leaseMs: number | undefined;
}

/**
 * Check `--cluster`, `--node` and `--lease` (each needs the others as
 * documented); `undefined` when the boot is not a node's.
 *
 * @throws {UsageError} One line.
 */
export function clusterArgs(
  cluster: string | undefined,
  node: string | undefined,
  lease: string | undefined,
): ClusterArgs | undefined {
  if (cluster === undefined) {
    if (node !== undefined) throw new UsageError("--node only applies with --cluster URLS");
    if (lease !== undefined) throw new UsageError("--lease only applies with --cluster URLS");
    return undefined;
  }
  if (node === undefined) throw new UsageError("--cluster needs --node NAME (this node's name)");
  const servers = cluster.split(",").map((u) => u.trim());
  for (const url of servers) {
    if (!/^nats:\/\/[^\s/,]+:\d{1,5}$/.test(url)) {
      throw new UsageError(
        `--cluster: ${JSON.stringify(url)} is not a NATS server URL (like nats://127.0.0.1:4222)`,
      );
    }
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(node)) {
    throw new UsageError(
      `--node: ${JSON.stringify(node)} is not a node name (letters, digits, - and _, at most 64)`,
    );
  }
  const leaseMs = lease === undefined ? undefined : count(lease, "--lease", 100);
  return { servers, node, leaseMs };
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
  const cluster = clusterArgs(p.value("--cluster"), p.value("--node"), p.value("--lease"));
  const serve = p.has("--serve");
  if (serve && values.script !== undefined) {
    throw new UsageError("--serve runs no shell: --script does not apply with it");
  }
  if (serve && p.has("--keep-going")) {
    throw new UsageError("--serve runs no shell: --keep-going does not apply with it");
  }
  if (cluster !== undefined && values["read-only"]) {
    throw new UsageError("--cluster does not apply with --read-only (a node writes its image)");
  }
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
  // The console threads write to: above the line being edited while the
  // interactive shell waits at its prompt (set once the editor exists).
  const stdio = stdioConsole();
  let above: ((text: string) => void) | undefined;
  const console_: Console = {
    write: (text) => above === undefined ? stdio.write(text) : above(text),
    readLine: () => stdio.readLine(),
  };
  let board: Board;
  try {
    board = await openBoard({
      console: console_,
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
  // A node joins before any session of threads, the shell or the control
  // socket commits (libtwz asks whether it runs on a node at a port's first
  // transaction).
  let node: GlobalNodeLike | undefined;
  if (cluster !== undefined) {
    try {
      const { GlobalNode } = await import("@twz/global");
      node = await GlobalNode.join(board.kernel, {
        servers: cluster.servers,
        node: cluster.node,
        ...(cluster.leaseMs !== undefined ? { leaseMs: cluster.leaseMs } : {}),
        log: stderr,
      });
    } catch (error) {
      stderr(`twz: node ${cluster.node}: ${firstLine(error)}`);
      if (values.debug) console.error(error);
      // The image is shut down cleanly; the error stays the last line.
      try {
        closeBoard(board);
      } catch { /* reporting the first error */ }
      return EXIT_CLUSTER;
    }
    if (!values.quiet) {
      stderr(
        `twz: node ${cluster.node} joined the cluster (${cluster.servers.length} server${
          cluster.servers.length === 1 ? "" : "s"
        })`,
      );
    }
  }
  /** Leave the cluster (once; a failure is one warning line: shutdown goes on). */
  const leave = async () => {
    const n = node;
    node = undefined;
    if (n === undefined) return;
    try {
      await n.leave();
    } catch (error) {
      stderr(`twz: warning: leaving the cluster: ${firstLine(error)}`);
    }
  };
  // Threads: /proc entries of an earlier boot are marked lost now, not at the first ps.
  attachThreads(board);
  // `twz run` from another terminal reaches this system through IMAGE.sock.
  const control = await startControl(board, {
    run: (target, args, console, signal, contexts) => {
      // Names as `twz run --context` gave them (a name under /sec/ctx, a path, an ID).
      const ids = contexts.map((c) => secObject(attachThreads(board).twz, c, "context"));
      return runProgram(board, target, args, { console, signal, contexts: ids });
    },
  });
  if (serve) return await serveUntilSignal(board, control, cluster?.node, leave, values.quiet);
  const interactive = script === undefined && Deno.stdin.isTerminal();
  // The line editor needs the terminal on both sides (a prompt and its
  // echo written into a file would be noise).
  const editing = interactive && Deno.stdout.isTerminal();
  const shell = new Shell(board, {
    out: (line) => console.log(line),
    err: stderr,
  }, log);
  const editor = editing
    ? new LineEditor({
      io: terminalIO(),
      history: new History({ path: historyPath(Deno.env), warn: stderr }),
      complete: (line, cursor) => completionsAt(line, cursor, completionSource(shell)),
    })
    : undefined;
  if (editor !== undefined) above = (text) => editor.printAbove(text);
  /** The command running now (interactive): Ctrl-C aborts its signal. */
  let running: AbortController | undefined;
  const shutDownNow = async (code: number, why: string) => {
    editor?.restore();
    void control?.close(); // the socket file goes at once
    await leave();
    try {
      closeBoard(board);
    } catch {
      board.kernel.halt();
      closeHal(board);
    }
    try {
      stderr(`\ntwz: ${why}; shut down cleanly`);
    } catch { /* the terminal is gone */ }
    Deno.exit(code);
  };
  const onInterrupt = () => {
    // Interactive: Ctrl-C while a command runs (the terminal is not raw
    // then, so it comes as SIGINT) interrupts that command; one that does
    // not stop for it runs to its end, and the shell stays.
    // At the prompt, Ctrl-C is a key (raw mode): a SIGINT then is a late
    // one for a command that ran without pausing, or a kill from outside
    // (SIGTERM shuts down); either is ignored, as shells do.
    if (editor !== undefined) {
      if (running !== undefined && !running.signal.aborted) {
        console.log("");
        running.abort(new DOMException("interrupted (Ctrl-C)", "AbortError"));
      }
      return;
    }
    void shutDownNow(130, "interrupted");
  };
  const onTerminate = () => void shutDownNow(143, "terminated");
  Deno.addSignalListener("SIGINT", onInterrupt);
  // A raw terminal must not outlive the process: SIGTERM also restores it.
  if (editor !== undefined) Deno.addSignalListener("SIGTERM", onTerminate);
  let crashed: Error | undefined;
  const keepGoing = p.has("--keep-going");
  let lineNumber = 0;
  try {
    if (interactive) console.log('Twizzler shell. Type "help" for commands.');
    if (editor !== undefined) {
      for (;;) {
        const read = await editor.readLine("twz> ");
        if (read.kind === "eof") break;
        if (read.kind === "interrupt") {
          if (read.again) break;
          if (read.text === "") stderr("(Ctrl-C again or Ctrl-D shuts down)");
          continue;
        }
        running = new AbortController();
        let flow: Flow;
        try {
          flow = await shell.execute(read.text, { signal: running.signal });
        } finally {
          running = undefined;
        }
        if (flow === "shutdown") break;
      }
    } else {
      const lines = script !== undefined ? linesOf(script) : consoleLines(board);
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
    }
    await shutdownBoard(board, control, leave);
  } catch (error) {
    await leave();
    if (!isPowerFailure(error)) {
      try {
        closeBoard(board);
      } catch { /* reporting the first error */ }
      throw error;
    }
    crashed = error as Error;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    if (editor !== undefined) Deno.removeSignalListener("SIGTERM", onTerminate);
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
  // A session typed at a terminal ends as the user ended it (Ctrl-D,
  // shutdown): a mistyped command on the way is not the session failing.
  return shell.failures > 0 && !interactive ? EXIT.failed : EXIT.ok;
}

/** What boot uses of a joined `GlobalNode` (`@twz/global` is loaded only for `--cluster`). */
interface GlobalNodeLike {
  leave(): Promise<void>;
}

/** The first line of an error's message. */
function firstLine(error: unknown): string {
  return String(error instanceof Error ? error.message : error).split("\n")[0]!.trim();
}

/**
 * `--serve`: no shell, no input read. Say where the system listens (one
 * line on stdout), wait for SIGTERM or SIGINT, then shut down cleanly: the
 * control socket closed (its file removed), programs stopped, the cluster
 * left, the kernel shut down and the HAL closed. Exits 0.
 */
async function serveUntilSignal(
  board: Board,
  control: { readonly path: string; close(): Promise<void> } | undefined,
  node: string | undefined,
  leave: () => Promise<void>,
  quiet: boolean,
): Promise<number> {
  let stop = (_why: string) => {};
  const stopped = new Promise<string>((resolve) => stop = resolve);
  const onInt = () => stop("interrupted");
  const onTerm = () => stop("terminated");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  const where = control?.path ?? `${board.hal.image ?? "an anonymous region"} (no control socket)`;
  console.log(`serving ${where}${node === undefined ? "" : ` as node ${node}`}`);
  let why: string;
  try {
    why = await stopped;
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
  try {
    await shutdownBoard(board, control, leave);
  } catch (error) {
    await leave();
    try {
      closeBoard(board);
    } catch { /* reporting the first error */ }
    throw error;
  }
  closeHal(board);
  if (!quiet) stderr(`twz: ${why}; shut down cleanly`);
  return EXIT.ok;
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

/**
 * What Tab completes from: the command names and aliases (and the
 * subcommands of a command that has them), the naming tree of the current
 * kernel, and its object IDs. Read-only; a damaged image throws, and the
 * completion offers nothing from that part.
 */
function completionSource(shell: Shell): CompletionSource {
  const { names, subcommands } = commandNames();
  return {
    commands: () => names,
    subcommands: (command) => subcommands.get(command) ?? [],
    list: (dir) => shell.twz.naming.list(dir),
    ids: () => shell.kernel.list().map((s) => formatId(s.id)),
  };
}

/**
 * The clean end of a boot, shell or `--serve`: no more programs from other
 * terminals (running ones get a grace period to end, then are stopped), the
 * cluster left, the /dev names gone before the kernel (they would dangle
 * after it), then the kernel's clean shutdown (it drains too: a crash point
 * may fall in it).
 */
async function shutdownBoard(
  board: Board,
  control: { close(): Promise<void> } | undefined,
  leave: () => Promise<void>,
): Promise<void> {
  await control?.close();
  await stopThreads(board);
  await leave();
  board.devices?.stop();
  board.kernel.shutdown();
}

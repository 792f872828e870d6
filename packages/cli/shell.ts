/**
 * The `twz boot` shell: one command per line, output on `out`, errors as one
 * line each on `err`. It runs in-process over a {@linkcode Board}, so tests
 * drive it without spawning. The commands themselves, and the help text
 * made from them, are the table in `_commands.ts`.
 *
 * A line is tokenized once (`_args.ts`: quotes and escapes), its first word
 * picks the command (the second, a subcommand: `kv put`), and the rest is
 * parsed by that command's spec. Empty lines and lines starting with `#`
 * are skipped. An error is one line: `NAME: message` for a known command
 * (a line that cannot be tokenized, such as an unterminated quote, too,
 * when its first word names a command; else `twz: message`), and an
 * unknown command is echoed as a short, escaped prefix. `--help` (and
 * `help CMD`) print the command's help on `out` and do not count as a
 * failure.
 *
 * @module
 */
import { type Kernel, looksLikeId, type ObjID, parseId, TwzError } from "@twz/kernel";
import { resolveObj, Twz } from "@twz/libtwz";
import { type Board, UsageError } from "./board.ts";
import { HelpRequested, parseTokens, shownWord, type Token, tokenize } from "./_args.ts";
import {
  type Command,
  commandIndex,
  type Flow,
  KV_NAME,
  type ShellContext,
  type ShellIO,
  subcommand,
} from "./_commands.ts";

export { helpText, KV_NAME } from "./_commands.ts";
export { quoted as quotedWord, shownWord } from "./_args.ts";
export type { Flow, ShellIO } from "./_commands.ts";

/** Every command name and alias, to its entry in the table. */
const COMMANDS: Map<string, Command> = commandIndex();

/**
 * Every command name and alias, sorted, and the subcommands of each
 * command that has them (`kv` → `put`, `get`, …): for completion.
 */
export function commandNames(): { names: string[]; subcommands: Map<string, string[]> } {
  const subcommands = new Map<string, string[]>();
  for (const [name, c] of COMMANDS) {
    if (c.sub !== undefined) {
      subcommands.set(name, c.sub.map((s) => s.spec.name.slice(name.length + 1)));
    }
  }
  return { names: [...COMMANDS.keys()].sort(), subcommands };
}

/** How {@linkcode Shell.execute} runs a line. */
export interface ExecuteOptions {
  /** Aborted when the user interrupts the command (Ctrl-C). */
  readonly signal?: AbortSignal;
}

/** The shell over a board; `reboot` and `crash` replace the kernel in place. */
export class Shell implements ShellContext {
  #failed = 0;
  #twz: Twz | undefined;
  #twzKernel: Kernel | undefined;
  /**
   * A shell over `board`.
   *
   * @param board The board the commands work on.
   * @param io Where output and error lines go.
   * @param bootLog Reports a boot (after `crash` and `reboot`).
   */
  constructor(readonly board: Board, readonly io: ShellIO, readonly bootLog: (k: Kernel) => void) {}

  /** The libtwz session on the current kernel (names, transactions). */
  get twz(): Twz {
    if (this.#twz === undefined || this.#twzKernel !== this.board.kernel) {
      this.#twz = Twz.attach(this.board.kernel.port());
      this.#twzKernel = this.board.kernel;
      for (const w of this.#twz.warnings) this.io.err(`twz: warning: ${w}`);
    }
    return this.#twz;
  }

  /** Commands that failed so far. */
  get failures(): number {
    return this.#failed;
  }

  /** The current kernel (`crash` and `reboot` replace it). */
  get kernel(): Kernel {
    return this.board.kernel;
  }

  /** Resolve an OBJ argument. */
  resolve(text: string | undefined): ObjID {
    if (text === undefined) throw new UsageError("missing OBJ (an object ID or a name)");
    if (looksLikeId(text)) {
      try {
        return parseId(text);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
    return resolveObj(this.twz, text);
  }

  /**
   * Run one line; errors are reported, counted, and not thrown.
   *
   * @param line The command line.
   * @param options `signal`: aborted when the user interrupts the command
   *   (Ctrl-C); a foreground `run` kills its program then, and `wait`
   *   stops waiting.
   */
  async execute(line: string, options: ExecuteOptions = {}): Promise<Flow> {
    const trimmed = line.trimStart();
    if (trimmed === "" || trimmed.startsWith("#")) return "continue";
    // The command as it will be named in an error: known once tokenized.
    let name = "twz";
    try {
      let tokens: Token[];
      try {
        tokens = tokenize(line);
      } catch (error) {
        // A line that cannot be split is blamed on its command when its
        // first word plainly names one, else on twz.
        const first = /^\S+/.exec(trimmed)![0];
        if (COMMANDS.has(first)) name = first;
        throw error;
      }
      if (tokens.length === 0) return "continue";
      const word = tokens[0]!.text;
      if (!COMMANDS.has(word)) {
        // Anything unknown is shown as a short, escaped prefix (a pasted
        // binary line must not reach the terminal).
        name = shownWord(word);
        throw new UsageError(`unknown command (try "help")`);
      }
      name = word;
      return await this.#dispatch(COMMANDS.get(word)!, line, tokens, options.signal);
    } catch (error) {
      if (error instanceof HelpRequested) {
        for (const l of error.text.split("\n")) this.io.out(l);
        return "continue";
      }
      this.#failed++;
      if (error instanceof UsageError || error instanceof TwzError || error instanceof RangeError) {
        this.io.err(`${name}: ${error.message}`);
        return "continue";
      }
      throw error;
    }
  }

  /**
   * What the system uses `id` for, when it is one of its own objects: the
   * transaction log, the kv store, the naming root directory, the kernel's
   * root object. Damaged naming answers only what it can.
   */
  #systemRole(id: ObjID): string | undefined {
    const k = this.kernel;
    if (id === k.rootObjectId()) {
      return "the kernel's root object (it holds the naming root record)";
    }
    const named = (path: string) => {
      try {
        return this.twz.naming.lookup(path)?.id;
      } catch {
        return undefined; // damaged naming: what cannot be read is not refused here
      }
    };
    if (id === named("/")) return "the naming root directory";
    if (id === named("/.txlog")) return "the transaction log (/.txlog)";
    if (id === named(KV_NAME)) return `the kv store (${KV_NAME})`;
    return undefined;
  }

  /** Refuse a writing command on a system object unless forced: one line. */
  guard(command: string, text: string, id: ObjID, force: boolean): void {
    if (force) return;
    const role = this.#systemRole(id);
    if (role !== undefined) {
      throw new UsageError(
        `${text} is ${role}; refusing to ${command} it (add --force to do it anyway)`,
      );
    }
  }

  /**
   * Parse the line by its command's spec (a subcommand's, for `kv put`) and
   * run the handler. A final unquoted `&` is taken off for a command that
   * runs in the background.
   */
  async #dispatch(
    command: Command,
    line: string,
    tokens: Token[],
    signal: AbortSignal | undefined,
  ): Promise<Flow> {
    let skip = 1;
    if (command.sub !== undefined) {
      const second = tokens[1];
      if (second !== undefined && !second.quoted && second.text === "--help") {
        throw new HelpRequested(command.spec);
      }
      command = subcommand(command, second?.text);
      skip = 2;
    }
    const last = tokens.at(-1)!;
    const background = command.background === true && tokens.length > skip && !last.quoted &&
      last.text === "&";
    const p = parseTokens(command.spec, line, background ? tokens.slice(0, -1) : tokens, skip);
    if (command.run === undefined) throw new UsageError(`unknown command (try "help")`);
    return (await command.run(this, p, { signal, background })) ?? "continue";
  }
}

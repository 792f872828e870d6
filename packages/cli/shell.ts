/**
 * The `twz boot` shell: one command per line, output on `out`, errors as one
 * line each on `err`. It runs in-process over a {@linkcode Board}, so tests
 * drive it without spawning. The commands themselves, and the help text
 * made from them, are the table in `_commands.ts`.
 *
 * @module
 */
import { type Kernel, looksLikeId, type ObjID, parseId, TwzError } from "@twz/kernel";
import { resolveObj, Twz } from "@twz/libtwz";
import { type Board, UsageError } from "./board.ts";
import { shownWord } from "./_args.ts";
import {
  type Args,
  type Command,
  commandIndex,
  type Flow,
  KV_NAME,
  restAfter,
  type ShellContext,
  type ShellIO,
  subcommandError,
  words,
} from "./_commands.ts";

export { helpText, KV_NAME, parseText } from "./_commands.ts";
export { quoted as quotedWord, shownWord } from "./_args.ts";
export type { Flow, ShellIO } from "./_commands.ts";

/** Every command name and alias, to its entry in the table. */
const COMMANDS: Map<string, Command> = commandIndex();

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
   *   (Ctrl-C); a foreground `run` ends its program then.
   */
  async execute(line: string, options: ExecuteOptions = {}): Promise<Flow> {
    void options.signal; // the commands that can be interrupted take it from here
    const w = words(line);
    if (w.length === 0 || w[0]!.startsWith("#")) return "continue";
    try {
      return await this.#dispatch(w, line);
    } catch (error) {
      this.#failed++;
      if (error instanceof UsageError || error instanceof TwzError || error instanceof RangeError) {
        // A known command names itself; anything else is shown as a short,
        // escaped prefix (a pasted binary line must not reach the terminal).
        const known = COMMANDS.has(w[0]!);
        this.io.err(`${known ? w[0] : shownWord(w[0]!)}: ${error.message}`);
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
   * Find the line's command in the table and run its handler. `--force`
   * right after a command that takes it is taken out of the words and the
   * line, and handed over as `force`.
   */
  async #dispatch(w: string[], line: string): Promise<Flow> {
    let command = COMMANDS.get(w[0]!);
    const force = w[1] === "--force" && command?.forceable === true;
    const args: Args = force
      ? { w: [w[0]!, ...w.slice(2)], line: `${w[0]} ${restAfter(line, 2)}`, force }
      : { w, line, force };
    if (command?.sub !== undefined) {
      const parent = command;
      command = parent.sub.find((s) => s.name === args.w[1]);
      if (command === undefined) throw subcommandError(parent);
    }
    if (command?.run === undefined) throw new UsageError(`unknown command (try "help")`);
    return (await command.run(this, args)) ?? "continue";
  }
}

/**
 * The shell's commands, as one table: each entry has its name, argument
 * synopsis, one-line summary and handler. The shell looks commands up here,
 * and `help` is printed from it ({@linkcode helpText}), so a command and its
 * help line cannot drift apart.
 *
 * A handler gets the shell ({@linkcode ShellContext}) and the command line
 * ({@linkcode Args}); it prints on `io.out` and reports a mistake by throwing
 * a {@linkcode UsageError} (or a `TwzError` / `RangeError` from below),
 * which the shell prints as one line, `NAME: message`.
 *
 * @module
 */
import { type CreateSpec, formatId, formatProt, Kernel, type ObjID, parseProt } from "@twz/kernel";
import type { EvictionPolicy } from "@twz/kernel/hal";
import type { Twz } from "@twz/libtwz";
import {
  attachDevices,
  type Board,
  formatSize,
  parseSize,
  rebootBoard,
  UsageError,
} from "./board.ts";
import { THREAD_COMMANDS } from "./_commands_threads.ts";
import { KV_OBJECT, kvStore } from "./programs/kv.ts";

/** Name of the object that holds the shell's key-value store. */
export const KV_NAME: string = KV_OBJECT;

/** Where the shell writes. */
export interface ShellIO {
  /** Print one line of output. */
  out(line: string): void;
  /** Print one line of diagnostics (errors, warnings). */
  err(line: string): void;
}

/** What a command asks of the loop. */
export type Flow = "continue" | "shutdown";

/** What a handler may use of the shell. */
export interface ShellContext {
  /** The board: HAL and current kernel (`crash` and `reboot` replace the kernel). */
  readonly board: Board;
  /** Where output goes. */
  readonly io: ShellIO;
  /** The current kernel. */
  readonly kernel: Kernel;
  /** The libtwz session on the current kernel (names, transactions). */
  readonly twz: Twz;
  /** Report a boot (after `crash` and `reboot`). */
  readonly bootLog: (k: Kernel) => void;
  /** Resolve an OBJ argument (an ID or a name). */
  resolve(text: string | undefined): ObjID;
  /**
   * Refuse a writing command on one of the system's own objects unless
   * `force`: throws a one-line {@linkcode UsageError}.
   */
  guard(command: string, text: string, id: ObjID, force: boolean): void;
}

/** One command line, as a handler gets it. */
export interface Args {
  /** The words, the command's name first (a leading `--force` taken out). */
  readonly w: readonly string[];
  /** The line (a leading `--force` taken out): for the raw rest of a line. */
  readonly line: string;
  /** Whether `--force` followed the name (only for `forceable` commands). */
  readonly force: boolean;
}

/** A command's handler. */
export type Handler = (sh: ShellContext, args: Args) => Flow | void | Promise<Flow | void>;

/**
 * One entry of the command table: a command with a handler, or one whose
 * second word picks a subcommand (`kv put`).
 */
export type Command =
  & CommandInfo
  & (
    | { readonly run: Handler; readonly sub?: undefined }
    | {
      /** Subcommands (chosen by the second word), each with its own handler. */
      readonly sub: readonly Command[];
      readonly run?: undefined;
    }
  );

/** What help shows of a command. */
export interface CommandInfo {
  /** The word that runs it. */
  readonly name: string;
  /** Other words that run it. */
  readonly aliases?: readonly string[];
  /** Its arguments, as help shows them (`[--force]` is added for `forceable`). */
  readonly synopsis: string;
  /** One line for help. */
  readonly summary: string;
  /** Takes `--force` right after its name: it writes or deletes. */
  readonly forceable?: boolean;
}

/** Split a command line into words. */
export function words(line: string): string[] {
  return line.trim().split(/\s+/).filter((w) => w.length > 0);
}

/** The text after the first `n` words of `line`, as typed. */
export function restAfter(line: string, n: number): string {
  let at = 0;
  for (let i = 0; i < n; i++) {
    while (at < line.length && /\s/.test(line[at]!)) at++;
    while (at < line.length && !/\s/.test(line[at]!)) at++;
  }
  while (at < line.length && /\s/.test(line[at]!)) at++;
  return line.slice(at);
}

/** Interpret `"quoted \n text"` (quotes optional) the way the help says. */
export function parseText(raw: string): string {
  const trimmed = raw.replace(/\s+$/, "");
  if (trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')) {
    return trimmed.slice(1, -1).replace(
      /\\(.)/g,
      (_, c: string) => c === "n" ? "\n" : c === "t" ? "\t" : c === "0" ? "\0" : c,
    );
  }
  return trimmed;
}

function parseOffset(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d+$/.test(text)) {
    throw new UsageError(`${what} must be a non-negative integer, not "${text ?? ""}"`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} ${text} is not a usable offset`);
  return n;
}

/** Bytes `hexdump` shows when no LEN is given. */
const HEXDUMP_DEFAULT = 256;

/**
 * Lines of a hex dump of `data`, which starts at `offset`: the offset (8 hex
 * digits), 16 bytes in hex (two groups of 8), then the bytes as text (`.`
 * for anything not printable ASCII); a run of lines equal to the one before
 * shows as one `*` line, and the last line is the end offset (as
 * `hexdump -C` prints them).
 *
 * @param data The bytes.
 * @param offset Where they start in their object.
 * @returns The lines.
 */
export function hexLines(data: Uint8Array, offset: number): string[] {
  const out: string[] = [];
  const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
  let previous = "";
  let starred = false;
  for (let at = 0; at < data.length; at += 16) {
    const row = data.subarray(at, Math.min(at + 16, data.length));
    const key = row.join(",");
    if (key === previous && row.length === 16) {
      if (!starred) out.push("*");
      starred = true;
      continue;
    }
    previous = key;
    starred = false;
    let bytes = "";
    let text = "";
    for (let i = 0; i < 16; i++) {
      bytes += i < row.length ? `${hex(row[i]!, 2)} ` : "   ";
      if (i === 7) bytes += " ";
      if (i < row.length) {
        const c = row[i]!;
        text += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".";
      }
    }
    out.push(`${hex(offset + at, 8)}  ${bytes} |${text}|`);
  }
  out.push(hex(offset + data.length, 8));
  return out;
}

/**
 * Bytes written in hex: pairs of hex digits, spaces between bytes allowed
 * (`48 65 6c`, `48656c`).
 *
 * @throws {UsageError} Anything but hex digits and spaces, or an odd digit.
 */
export function parseHex(text: string): Uint8Array {
  const groups = text.trim().split(/\s+/);
  const bad = groups.find((g) => !/^(?:[0-9a-fA-F]{2})+$/.test(g));
  if (bad !== undefined) {
    const shown = bad.length > 16 ? `${bad.slice(0, 16)}…` : bad;
    throw new UsageError(`HEX: "${shown}" is not bytes in hex (pairs of 0-9 a-f)`);
  }
  const digits = groups.join("");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Every name bound to each object, walking the naming tree from `/`
 * (directories once each; sorted paths). A damaged directory is skipped:
 * listing objects must not fail on it.
 */
function namesById(twz: Twz): Map<ObjID, string[]> {
  const names = new Map<ObjID, string[]>();
  const seen = new Set<ObjID>();
  const walk = (dir: string) => {
    let entries;
    try {
      entries = twz.naming.list(dir);
    } catch {
      return;
    }
    for (const b of entries) {
      const path = dir === "/" ? `/${b.name}` : `${dir}/${b.name}`;
      const list = names.get(b.id);
      if (list) list.push(path);
      else names.set(b.id, [path]);
      if (b.kind === "directory" && !seen.has(b.id)) {
        seen.add(b.id);
        walk(path);
      }
    }
  };
  let root: ObjID | undefined;
  try {
    root = twz.naming.lookup("/")?.id;
  } catch {
    root = undefined; // read-only and no namespace yet, or damaged naming
  }
  if (root !== undefined) {
    names.set(root, ["/"]);
    seen.add(root);
  }
  walk("/");
  for (const list of names.values()) list.sort();
  return names;
}

/** Run an argument parser that throws TypeError (like `parseProt`) as a usage mistake. */
function parseArg<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(`${what}: ${error.message}`);
    throw error;
  }
}

/** A required PATH-like argument. */
function needed(text: string | undefined, what: string): string {
  if (text === undefined) throw new UsageError(`missing ${what}`);
  return text;
}

/** The KEY argument of a kv subcommand. */
function kvKey(w: readonly string[]): string {
  if (w[2] === undefined) throw new UsageError(`kv ${w[1]} needs a KEY`);
  return w[2];
}

/** The kv subcommands, in the order help and the "kv takes" error list them. */
const KV: readonly Command[] = [
  {
    name: "put",
    synopsis: "KEY VALUE",
    summary: 'set KEY to VALUE (rest of the line); "ok" once durable',
    run(sh, { w, line }) {
      const k = kvKey(w);
      if (w.length < 4) throw new UsageError("kv put needs a VALUE");
      kvStore(sh.twz, true)!.set(k, parseText(restAfter(line, 3)));
      sh.io.out("ok");
    },
  },
  {
    name: "get",
    synopsis: "KEY",
    summary: "print KEY's value",
    run(sh, { w }) {
      const k = kvKey(w);
      const v = kvStore(sh.twz, false)?.get(k);
      if (v === undefined) throw new UsageError(`no key "${k}"`);
      sh.io.out(v);
    },
  },
  {
    name: "del",
    synopsis: "KEY",
    summary: 'delete KEY; "ok" once durable',
    run(sh, { w }) {
      const k = kvKey(w);
      if (!kvStore(sh.twz, false)?.delete(k)) throw new UsageError(`no key "${k}"`);
      sh.io.out("ok");
    },
  },
  {
    name: "count",
    synopsis: "",
    summary: "print how many keys the store holds",
    run(sh) {
      sh.io.out(String(kvStore(sh.twz, false)?.size ?? 0));
    },
  },
  {
    name: "scan",
    synopsis: "[FROM [TO]]",
    summary: "list the keys in [FROM, TO) in order, with their values",
    run(sh, { w }) {
      const map = kvStore(sh.twz, false);
      if (!map) return;
      for (const [k, v] of map.range(w[2], w[3])) sh.io.out(`${k}\t${v}`);
    },
  },
];

/** The shell's commands, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  {
    name: "help",
    synopsis: "",
    summary: "this text",
    run(sh) {
      sh.io.out(HELP);
    },
  },
  {
    name: "new",
    synopsis: "[--volatile] [--size N] [--prot rw] [--tie OBJ]... [--name PATH]",
    summary: "create an object (and name it); prints its ID",
    run(sh, { w }) {
      const k = sh.kernel;
      let size: number | undefined;
      let name: string | undefined;
      let volatile = false;
      let prot: number | undefined;
      const ties: ObjID[] = [];
      const seen = new Set<string>();
      for (let i = 1; i < w.length; i++) {
        const flag = w[i]!;
        if (flag !== "--tie" && seen.has(flag)) throw new UsageError(`${flag} given twice`);
        seen.add(flag);
        const value = () => {
          if (i + 1 >= w.length) throw new UsageError(`${flag} needs a value`);
          return w[++i]!;
        };
        if (flag === "--volatile") volatile = true;
        else if (flag === "--size") size = parseSize(value(), "--size");
        else if (flag === "--prot") {
          const text = value();
          prot = parseArg("--prot", () => parseProt(text));
        } else if (flag === "--tie") ties.push(sh.resolve(value()));
        else if (flag === "--name") name = value();
        else throw new UsageError(`unknown option "${flag}" (see help)`);
      }
      if (name !== undefined && volatile) {
        throw new UsageError(
          "a volatile object cannot be named: the name would dangle after a crash",
        );
      }
      if (name !== undefined && sh.twz.naming.exists(name)) {
        throw new UsageError(`the name ${name} is already bound`);
      }
      const spec: CreateSpec = { lifetime: volatile ? "volatile" : "persistent", ties };
      if (size !== undefined) spec.size = size;
      if (prot !== undefined) spec.prot = prot;
      const id = k.create(spec);
      if (name !== undefined) {
        // Create, then name; a bind that fails deletes the object again, so
        // a failed `new --name` leaves nothing. (These are raw kernel
        // objects, without libtwz meta-info to mark them pending: a power
        // failure between the kernel's create commit and the bind leaves an
        // unnamed object, which `ls` shows and `rm` removes. Objects made
        // with libtwz's Twz.create({ name }) are marked and swept by fsck.)
        try {
          sh.twz.naming.bind(name, id, { parents: true });
        } catch (error) {
          k.delete(id);
          throw error;
        }
      }
      sh.io.out(formatId(id));
    },
  },
  {
    name: "ls",
    synopsis: "",
    summary: "list objects, with the names bound to each",
    run(sh) {
      const names = namesById(sh.twz);
      for (const s of sh.kernel.list()) {
        const named = names.get(s.id);
        sh.io.out(
          `${formatId(s.id)}  ${s.lifetime === "persistent" ? "pers" : "vola"}  ${
            formatProt(s.prot)
          }  ${String(s.size).padStart(10)}${named ? `  ${named.join(" ")}` : ""}`,
        );
      }
    },
  },
  {
    name: "stat",
    synopsis: "OBJ",
    summary: "facts about an object",
    run(sh, { w }) {
      const { out } = sh.io;
      const s = sh.kernel.stat(sh.resolve(w[1]));
      out(`id:         ${formatId(s.id)}`);
      out(`lifetime:   ${s.lifetime}`);
      out(`size:       ${s.size}`);
      out(`capacity:   ${s.capacity}`);
      out(`prot:       ${formatProt(s.prot)}`);
      out(`key:        ${s.keyId === 0n ? "none" : formatId(s.keyId)}`);
      out(`dependents: ${s.dependents}`);
      out(`created:    ${new Date(s.created).toISOString()}`);
      out(`names:      ${namesById(sh.twz).get(s.id)?.join(" ") ?? "none"}`);
    },
  },
  {
    name: "write",
    forceable: true,
    synopsis: "[--hex] OBJ OFFSET TEXT|HEX",
    summary: "store TEXT (the rest of the line), or with --hex bytes in hex, at OFFSET, durably",
    run(sh, { w, line, force }) {
      const hex = w[1] === "--hex";
      const at = hex ? 2 : 1;
      const id = sh.resolve(w[at]);
      sh.guard("write", w[at]!, id, force);
      const offset = parseOffset(w[at + 1], "OFFSET");
      if (w.length < at + 3) throw new UsageError(hex ? "missing HEX" : "missing TEXT");
      const rest = restAfter(line, at + 2);
      const data = hex ? parseHex(rest) : new TextEncoder().encode(parseText(rest));
      sh.kernel.write(id, offset, data);
      sh.io.out(`wrote ${data.length} bytes`);
    },
  },
  {
    name: "read",
    synopsis: "OBJ OFFSET LEN",
    summary: "print LEN bytes as text (trailing zero bytes dropped)",
    run(sh, { w }) {
      const id = sh.resolve(w[1]);
      const offset = parseOffset(w[2], "OFFSET");
      const length = parseOffset(w[3], "LEN");
      const data = sh.kernel.read(id, offset, length);
      let end = data.length;
      while (end > 0 && data[end - 1] === 0) end--;
      sh.io.out(new TextDecoder().decode(data.subarray(0, end)));
    },
  },
  {
    name: "hexdump",
    synopsis: "OBJ [OFFSET [LEN]]",
    summary: "print bytes as hex and text, 16 a line (LEN: 256 or to the end)",
    run(sh, { w }) {
      const id = sh.resolve(w[1]);
      if (w.length > 4) throw new UsageError(`unexpected argument "${w[4]}"`);
      const offset = w[2] === undefined ? 0 : parseOffset(w[2], "OFFSET");
      const size = sh.kernel.stat(id).size;
      if (offset > size) throw new UsageError(`OFFSET ${offset} is past the end (${size} bytes)`);
      const length = w[3] === undefined
        ? Math.min(HEXDUMP_DEFAULT, size - offset)
        : parseOffset(w[3], "LEN");
      for (const line of hexLines(sh.kernel.read(id, offset, length), offset)) sh.io.out(line);
    },
  },
  {
    name: "grow",
    forceable: true,
    synopsis: "OBJ SIZE",
    summary: "grow an object",
    run(sh, { w, force }) {
      const k = sh.kernel;
      const id = sh.resolve(w[1]);
      sh.guard("grow", w[1]!, id, force);
      if (w[2] === undefined) throw new UsageError("missing SIZE");
      k.grow(id, parseSize(w[2]));
      sh.io.out(`size ${k.stat(id).size}`);
    },
  },
  {
    name: "rm",
    forceable: true,
    synopsis: "OBJ",
    summary: "delete an object, what is tied to it, and their names",
    run(sh, { w, force }) {
      const k = sh.kernel;
      const naming = sh.twz.naming;
      const id = sh.resolve(w[1]);
      sh.guard("rm", w[1]!, id, force);
      // The whole tree is read first: a damaged directory anywhere fails
      // the command before anything is deleted.
      const names = [...naming.walk()];
      const dir = names.find((b) => b.kind === "directory" && b.id === id);
      if (dir || id === naming.lookup("/")!.id) {
        throw new UsageError(
          `${w[1]} is a directory of names: unbind its names first, then unbind the directory`,
        );
      }
      const n = k.delete(id);
      sh.io.out(`deleted ${n} object${n === 1 ? "" : "s"}`);
      // Names of the object and of everything deleted with it (ties) go too.
      naming.unbindDangling({ onUnbind: (path) => sh.io.out(`unbound ${path}`) });
    },
  },
  {
    name: "bind",
    synopsis: "PATH OBJ",
    summary: "name an object (missing directories are made)",
    run(sh, { w }) {
      const path = needed(w[1], "PATH");
      const id = sh.resolve(w[2]);
      sh.twz.naming.bind(path, id, { parents: true });
      sh.io.out(`${path} -> ${formatId(id)}`);
    },
  },
  {
    name: "unbind",
    forceable: true,
    synopsis: "PATH",
    summary: "remove a name (the object stays)",
    run(sh, { w, force }) {
      const naming = sh.twz.naming;
      const path = needed(w[1], "PATH");
      const bound = naming.lookup(path);
      if (bound) sh.guard("unbind", path, bound.id, force);
      sh.io.out(`unbound ${path} (was ${formatId(naming.unbind(path))})`);
    },
  },
  {
    name: "rename",
    forceable: true,
    synopsis: "FROM TO",
    summary: "move a name",
    run(sh, { w, force }) {
      const naming = sh.twz.naming;
      const from = needed(w[1], "FROM");
      const moved = naming.lookup(from);
      if (moved) sh.guard("rename", from, moved.id, force);
      const to = needed(w[2], "TO");
      naming.rename(from, to, { parents: true });
      sh.io.out(`${from} -> ${to}`);
    },
  },
  {
    name: "mkdir",
    synopsis: "PATH",
    summary: "make a directory of names",
    run(sh, { w }) {
      const path = needed(w[1], "PATH");
      sh.io.out(formatId(sh.twz.naming.mkdir(path, { parents: true })));
    },
  },
  {
    name: "names",
    synopsis: "[DIR]",
    summary: "list the names in a directory (default /)",
    run(sh, { w }) {
      for (const b of sh.twz.naming.list(w[1] ?? "/")) {
        sh.io.out(
          `${formatId(b.id)}  ${b.kind === "directory" ? "dir " : "obj "} ${b.name}${
            b.kind === "directory" ? "/" : ""
          }`,
        );
      }
    },
  },
  {
    name: "kv",
    synopsis: "",
    summary: `a persistent ordered key-value store (the object ${KV_NAME})`,
    sub: KV,
  },
  {
    name: "df",
    synopsis: "",
    summary: "space and table usage",
    run(sh) {
      const k = sh.kernel;
      const u = k.usage();
      sh.io.out(`objects:   ${u.objects} persistent, ${u.volatile} volatile`);
      sh.io.out(`free:      ${formatSize(u.freeBytes)} of ${formatSize(k.geometry.regionSize)}`);
      sh.io.out(`table:     ${u.slotsUsed} of ${u.tableSlots} slots in use`);
    },
  },
  {
    name: "crash",
    synopsis: "[--policy strict|random|all] [--seed S]",
    summary: "sim only: lose power, then boot again",
    run(sh, { w }) {
      const board = sh.board;
      const power = board.hal.power;
      if (!power) {
        throw new UsageError(
          `the ${board.hal.name} HAL cannot simulate a power failure (use --hal sim)`,
        );
      }
      let policy: EvictionPolicy = "strict";
      let seed = 1;
      for (let i = 1; i < w.length; i++) {
        const next = w[i + 1];
        if (w[i] === "--policy" && next !== undefined && POLICIES.includes(next)) {
          policy = next as EvictionPolicy;
          i++;
        } else if (w[i] === "--seed" && /^\d+$/.test(next ?? "")) {
          seed = Number(next);
          i++;
        } else {
          throw new UsageError(`bad option "${w[i]}" (--policy strict|random|all, --seed N)`);
        }
      }
      sh.kernel.halt();
      const r = power.powerFail({ policy, seed });
      sh.io.out(`power failure: ${r.survived} of ${r.pending} unpersisted cache lines survived`);
      board.kernel = Kernel.boot(board.hal);
      attachDevices(board);
      sh.bootLog(board.kernel);
    },
  },
  {
    name: "reboot",
    synopsis: "",
    summary: "clean shutdown, then boot again",
    async run(sh) {
      await rebootBoard(sh.board);
      sh.bootLog(sh.board.kernel);
    },
  },
  {
    name: "shutdown",
    aliases: ["exit", "quit"],
    synopsis: "",
    summary: "clean shutdown and exit",
    run() {
      return "shutdown";
    },
  },
  ...THREAD_COMMANDS,
];

const POLICIES: readonly string[] = ["strict", "random", "all"];

/** Where help's summaries start. */
const SUMMARY_COLUMN = 40;

/** The lines after the table in help. */
function helpNotes(commands: readonly Command[]): string[] {
  const forceable = commands.filter((c) => c.forceable).map((c) => c.name);
  const list = forceable.length < 2
    ? forceable.join("")
    : `${forceable.slice(0, -1).join(", ")} and ${forceable.at(-1)}`;
  return [
    "OBJ is an object ID (32 hex digits) or a name (/a/b). Sizes take K, M, G suffixes.",
    'TEXT and VALUE are the rest of the line; in "quotes" they may hold \\n, \\t and \\0.',
    "rm refuses a directory of names: unbind its names first, then the directory.",
    `${list} refuse the system's own objects (/.txlog, the`,
    "kv store, the naming root directory, the kernel root object) unless --force is given.",
  ];
}

/** The help line(s) of one command (`prefix` names its parent command). */
function helpLines(c: Command, prefix = ""): string[] {
  const head = `  ${prefix}${c.name}${c.forceable ? " [--force]" : ""}${
    c.synopsis === "" ? "" : ` ${c.synopsis}`
  }`;
  const summary = c.aliases === undefined
    ? c.summary
    : `${c.summary} (also: ${c.aliases.join(", ")})`;
  if (c.sub !== undefined) {
    return [
      `  ${prefix}${c.name} ${c.sub.map((s) => s.name).join("|")}`.padEnd(SUMMARY_COLUMN) +
      summary,
      ...c.sub.flatMap((s) => helpLines(s, `${prefix}${c.name} `)),
    ];
  }
  return head.length < SUMMARY_COLUMN
    ? [head.padEnd(SUMMARY_COLUMN) + summary]
    : [head, " ".repeat(SUMMARY_COLUMN) + summary];
}

/**
 * The shell's help, generated from a command table: one line per command
 * (name, synopsis, summary; a long synopsis puts the summary on the next
 * line), then the notes that apply to several commands.
 *
 * @param commands The table (default: the shell's).
 * @returns The text, without a final newline.
 */
export function helpText(commands: readonly Command[] = COMMANDS): string {
  return ["commands:", ...commands.flatMap((c) => helpLines(c)), ...helpNotes(commands)].join(
    "\n",
  );
}

const HELP = helpText();

/** The table as a lookup: every name and alias to its command. */
export function commandIndex(commands: readonly Command[] = COMMANDS): Map<string, Command> {
  const index = new Map<string, Command>();
  for (const c of commands) {
    for (const name of [c.name, ...(c.aliases ?? [])]) {
      if (index.has(name)) throw new Error(`two shell commands are called ${name}`);
      index.set(name, c);
    }
  }
  return index;
}

/** What a `sub` command says when its second word names none of its subcommands. */
export function subcommandError(c: Command): UsageError {
  const names = (c.sub ?? []).map((s) => s.name);
  const list = names.length < 2
    ? names.join("")
    : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
  return new UsageError(`${c.name} takes ${list} (see help)`);
}

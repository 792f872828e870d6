/**
 * One way to read a command line, for the shell's commands and for `twz`'s
 * subcommands alike: a tokenizer (quotes and escapes) and a parser driven by
 * a command's spec ({@linkcode CommandSpec}: its options and arguments), from
 * which the same spec also prints `--help` ({@linkcode helpFor}) and the
 * synopsis a command list shows ({@linkcode synopsisOf}).
 *
 * Words are split at whitespace. `"double quotes"` and `'single quotes'`
 * keep spaces; a backslash escapes the next character, inside double
 * quotes and outside any quotes alike: `\n` newline, `\t` tab, `\r`, `\0`,
 * `\xHH` a byte, `\\`, `\"`, `\'`, `\ ` (a space), `\#`; any other escape is an error, and so
 * is an unterminated quote. Single quotes take everything literally.
 *
 * Parsing: options (`--name`, `--name VALUE`, `--name=VALUE`) may come
 * anywhere among the arguments (for `optionsFirst` commands: only before the
 * first argument; the rest belongs to the program), `--` ends them, an
 * option given twice is refused unless it may repeat, a value is taken as
 * given (`--size -5M` is the value `-5M`, which the size parser refuses as
 * negative), every missing argument is named (`missing OFFSET`) and extra
 * ones are refused. `--help` anywhere an option may stand asks for the
 * command's help instead.
 *
 * @example
 * ```ts
 * import { parseLine } from "./_args.ts";
 * const spec = {
 *   name: "kv put",
 *   summary: "set KEY to VALUE",
 *   args: [{ name: "KEY" }, { name: "VALUE", rest: true }],
 * };
 * const p = parseLine(spec, 'kv put "a key" hello  world', 2);
 * console.log(p.arg("KEY"), "|", p.arg("VALUE")); // a key | hello  world
 * ```
 *
 * @module
 */
import { UsageError } from "./board.ts";

/** One word of a command line, decoded, and where it stood in the line. */
export interface Token {
  /** The word with quotes and escapes applied. */
  readonly text: string;
  /** Index of its first character in the line. */
  readonly start: number;
  /** Index just past its last character in the line. */
  readonly end: number;
  /** Whether any part of it was quoted or escaped (so `"--x"` is not an option). */
  readonly quoted: boolean;
}

const ESCAPES: Readonly<Record<string, string>> = {
  n: "\n",
  t: "\t",
  r: "\r",
  "0": "\0",
  "\\": "\\",
  '"': '"',
  "'": "'",
  " ": " ",
  "#": "#",
};

/**
 * Split a line into words, applying quotes and escapes.
 *
 * @throws {UsageError} An unterminated quote, a line ending in a lone
 *   backslash, or an unknown escape.
 */
export function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && isSpace(line[i]!)) i++;
    if (i >= n) break;
    const start = i;
    let text = "";
    let quoted = false;
    while (i < n && !isSpace(line[i]!)) {
      const c = line[i]!;
      if (c === "'") {
        const close = line.indexOf("'", i + 1);
        if (close < 0) throw new UsageError(`unterminated quote (') at column ${i + 1}`);
        text += line.slice(i + 1, close);
        i = close + 1;
        quoted = true;
      } else if (c === '"') {
        quoted = true;
        const open = i++;
        for (;;) {
          if (i >= n) throw new UsageError(`unterminated quote (") at column ${open + 1}`);
          const d = line[i]!;
          if (d === '"') {
            i++;
            break;
          }
          if (d === "\\") {
            const [s, next] = escape(line, i);
            text += s;
            i = next;
          } else {
            text += d;
            i++;
          }
        }
      } else if (c === "\\") {
        const [s, next] = escape(line, i);
        text += s;
        i = next;
        quoted = true;
      } else {
        text += c;
        i++;
      }
    }
    tokens.push({ text, start, end: i, quoted });
  }
  return tokens;
}

function isSpace(c: string): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
}

/** Decode the escape at `line[at]` (a backslash): its text and the index after it. */
function escape(line: string, at: number): [string, number] {
  const c = line[at + 1];
  if (c === undefined) throw new UsageError("the line ends in a lone backslash (\\\\ for one)");
  if (c === "x") {
    const hex = line.slice(at + 2, at + 4);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
      throw new UsageError(`\\x takes two hex digits, not ${quoted(hex)}`);
    }
    return [String.fromCharCode(parseInt(hex, 16)), at + 4];
  }
  const s = ESCAPES[c];
  if (s === undefined) {
    throw new UsageError(
      `unknown escape ${quoted(`\\${c}`)} (\\n \\t \\r \\0 \\xHH \\\\ \\" \\' and "\\ " work)`,
    );
  }
  return [s, at + 2];
}

/**
 * The words from `from` to the end as one text, as typed between them: the
 * spacing between words is kept, quotes and escapes are applied, trailing
 * whitespace is dropped. (What a `rest` argument such as `kv put`'s VALUE gets.)
 */
export function restText(line: string, tokens: readonly Token[], from: number): string {
  let out = "";
  for (let i = from; i < tokens.length; i++) {
    if (i > from) out += line.slice(tokens[i - 1]!.end, tokens[i]!.start);
    out += tokens[i]!.text;
  }
  return out;
}

/** An option of a command. */
export interface OptionSpec {
  /** Its name with the dashes: `--size`. */
  readonly name: string;
  /** The name of its value in help (`N`, `PATH`); absent: a flag without a value. */
  readonly value?: string;
  /** The values it accepts, when they are a fixed list. */
  readonly choices?: readonly string[];
  /** It may be given more than once (each value is kept). */
  readonly repeat?: boolean;
  /** It must be given (`twz fsck --image PATH`). */
  readonly required?: boolean;
  /** One line for help. */
  readonly summary: string;
}

/** A positional argument of a command. */
export interface ArgSpec {
  /** Its name in help and in errors: `OBJ`, `OFFSET`. */
  readonly name: string;
  /** It may be left out (only trailing arguments may). */
  readonly optional?: boolean;
  /** It takes every remaining word (`TID...`); at least one unless optional. */
  readonly variadic?: boolean;
  /** It takes the rest of the line as typed (spacing kept); options end before it. */
  readonly rest?: boolean;
  /** One line for help. */
  readonly summary?: string;
}

/** What a command takes: the table entries of the shell and of `twz` are these. */
export interface CommandSpec {
  /** The words that name it (`kv put`, `twz boot`). */
  readonly name: string;
  /** One line for help. */
  readonly summary: string;
  /** Its options, in the order help lists them. */
  readonly options?: readonly OptionSpec[];
  /** Its positional arguments, in order. */
  readonly args?: readonly ArgSpec[];
  /** Options only before the first argument (the rest is a program's). */
  readonly optionsFirst?: boolean;
  /** Paragraphs help prints after the options. */
  readonly details?: readonly string[];
}

/** `--help` was asked for: the caller prints {@linkcode HelpRequested.text} and succeeds. */
export class HelpRequested extends Error {
  /** The help. */
  readonly text: string;
  /** @param spec The command whose help was asked for. */
  constructor(spec: CommandSpec) {
    super(`help for ${spec.name}`);
    this.name = "HelpRequested";
    this.text = helpFor(spec);
  }
}

/** A parsed command line. */
export class Parsed {
  readonly #options: Map<string, string[]>;
  readonly #args: Map<string, string[]>;
  /** @internal Built by {@linkcode parseTokens}. */
  constructor(options: Map<string, string[]>, args: Map<string, string[]>) {
    this.#options = options;
    this.#args = args;
  }
  /** Whether option `name` (`--force`) was given. */
  has(name: string): boolean {
    return this.#options.has(name);
  }
  /** The value of option `name`, or undefined when it was not given. */
  value(name: string): string | undefined {
    return this.#options.get(name)?.[0];
  }
  /** Every value of a repeatable option, in order. */
  values(name: string): string[] {
    return [...(this.#options.get(name) ?? [])];
  }
  /** Argument `name` (`OBJ`), or undefined when an optional one was left out. */
  arg(name: string): string | undefined {
    return this.#args.get(name)?.[0];
  }
  /** Every word of a variadic argument. */
  args(name: string): string[] {
    return [...(this.#args.get(name) ?? [])];
  }
}

/**
 * Parse `tokens[from..]` (the words after the command's name) by `spec`.
 *
 * @throws {HelpRequested} `--help` was given.
 * @throws {UsageError} One line naming what is wrong.
 */
export function parseTokens(
  spec: CommandSpec,
  line: string,
  tokens: readonly Token[],
  from: number,
): Parsed {
  const options = new Map<string, string[]>();
  const args = new Map<string, string[]>();
  const specs = spec.options ?? [];
  const argSpecs = spec.args ?? [];
  let argIndex = 0;
  let optionsOpen = true;
  for (let i = from; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (optionsOpen && !t.quoted && t.text === "--") {
      optionsOpen = false;
      continue;
    }
    if (optionsOpen && !t.quoted && t.text.startsWith("--") && t.text.length > 2) {
      const eq = t.text.indexOf("=");
      const name = eq < 0 ? t.text : t.text.slice(0, eq);
      if (name === "--help") throw new HelpRequested(spec);
      const o = specs.find((s) => s.name === name);
      if (o === undefined) {
        throw new UsageError(`unknown option ${quoted(name)} (see ${spec.name} --help)`);
      }
      const list = options.get(name);
      if (list !== undefined && !o.repeat) throw new UsageError(`${name} given twice`);
      let value: string;
      if (o.value === undefined) {
        if (eq >= 0) throw new UsageError(`${name} takes no value`);
        value = "";
      } else if (eq >= 0) {
        value = t.text.slice(eq + 1);
      } else {
        const next = tokens[++i];
        if (next === undefined) throw new UsageError(`${name} needs a value (${o.value})`);
        value = next.text;
      }
      if (o.choices !== undefined && !o.choices.includes(value)) {
        throw new UsageError(
          `${name}: unknown ${o.value!.toLowerCase()} ${quoted(value)} (${listOf(o.choices)})`,
        );
      }
      if (list) list.push(value);
      else options.set(name, [value]);
      continue;
    }
    const a = argSpecs[argIndex];
    if (a === undefined) {
      throw new UsageError(`unexpected argument ${quoted(t.text)} (see ${spec.name} --help)`);
    }
    if (a.rest) {
      args.set(a.name, [restText(line, tokens, i)]);
      argIndex++;
      break;
    }
    if (spec.optionsFirst) optionsOpen = false;
    if (a.variadic) {
      const list = args.get(a.name);
      if (list) list.push(t.text);
      else args.set(a.name, [t.text]);
      continue;
    }
    args.set(a.name, [t.text]);
    argIndex++;
  }
  for (const o of specs) {
    if (o.required && !options.has(o.name)) {
      throw new UsageError(`missing ${o.name}${o.value === undefined ? "" : ` ${o.value}`}`);
    }
  }
  for (const a of argSpecs) {
    if (!a.optional && !args.has(a.name)) throw new UsageError(`missing ${a.name}`);
  }
  return new Parsed(options, args);
}

/**
 * Tokenize `line` and parse the words after its first `skip` (the command's
 * name: 1, or 2 for `kv put`) by `spec`.
 *
 * @throws {HelpRequested} `--help` was given.
 * @throws {UsageError} One line naming what is wrong.
 */
export function parseLine(spec: CommandSpec, line: string, skip = 1): Parsed {
  return parseTokens(spec, line, tokenize(line), skip);
}

/**
 * Parse an argument vector (a `twz` subcommand's, as the program got it:
 * already split by the user's shell, so no quotes to apply).
 */
export function parseArgv(spec: CommandSpec, argv: readonly string[]): Parsed {
  let at = 0;
  const tokens = argv.map((text) => {
    const t = { text, start: at, end: at + text.length, quoted: false };
    at += text.length + 1;
    return t;
  });
  return parseTokens(spec, argv.join(" "), tokens, 0);
}

/** `[--size N]`, `[--tie OBJ]...`, `[--force]`. */
function optionSynopsis(o: OptionSpec): string {
  const value = o.value === undefined
    ? ""
    : o.choices !== undefined && o.choices.join("|").length <= 24
    ? ` ${o.choices.join("|")}`
    : ` ${o.value}`;
  return o.required ? `${o.name}${value}` : `[${o.name}${value}]${o.repeat ? "..." : ""}`;
}

/** `OBJ`, `[LEN]`, `TID...`, `[ARGS...]`. */
function argSynopsis(a: ArgSpec): string {
  const name = a.variadic ? `${a.name}...` : a.name;
  return a.optional ? `[${name}]` : name;
}

/** A command's arguments as a list or help line shows them: options, then arguments. */
export function synopsisOf(spec: CommandSpec): string {
  return [...(spec.options ?? []).map(optionSynopsis), ...(spec.args ?? []).map(argSynopsis)]
    .join(" ");
}

/**
 * A command's `--help`: usage line, summary, each argument and option with
 * its summary, then the details.
 */
export function helpFor(spec: CommandSpec): string {
  const synopsis = synopsisOf(spec);
  const lines = [`usage: ${spec.name}${synopsis === "" ? "" : ` ${synopsis}`}`, "", spec.summary];
  const rows: [string, string][] = [];
  for (const a of spec.args ?? []) {
    if (a.summary !== undefined) rows.push([a.name, a.summary]);
  }
  for (const o of spec.options ?? []) {
    const value = o.value === undefined ? "" : ` ${o.value}`;
    rows.push([`${o.name}${value}`, `${withChoices(o)}${o.repeat ? "; may repeat" : ""}`]);
  }
  rows.push(["--help", "print this help"]);
  const width = Math.min(24, Math.max(...rows.map(([l]) => l.length)) + 2);
  lines.push("");
  for (const [left, right] of rows) {
    lines.push(
      left.length + 2 > width
        ? `  ${left}\n  ${" ".repeat(width)}${right}`
        : `  ${left.padEnd(width)}${right}`,
    );
  }
  for (const d of spec.details ?? []) lines.push("", ...wrap(d, ""));
  return lines.join("\n");
}

/**
 * An option's summary with its choices: `the HAL (default sim)` becomes
 * `the HAL (sim or pmem; default sim)`, `how` becomes `how (a, b or c)`.
 */
function withChoices(o: OptionSpec): string {
  if (o.choices === undefined) return o.summary;
  const list = listOf(o.choices);
  const m = /^(.*)\(([^()]*)\)$/.exec(o.summary);
  return m ? `${m[1]}(${list}; ${m[2]})` : `${o.summary} (${list})`;
}

/** Columns help text is wrapped to. */
export const WIDTH = 80;

/**
 * `text` in lines of at most {@linkcode WIDTH} columns, the first after
 * `first`, the others after `indent`; a synopsis item (`[--size SIZE]`) is
 * never split.
 */
export function wrap(text: string, indent: string, first = indent): string[] {
  const words: string[] = [];
  let depth = 0;
  for (const word of text.split(" ")) {
    if (depth > 0) words[words.length - 1] += ` ${word}`;
    else words.push(word);
    depth += (word.match(/\[/g)?.length ?? 0) - (word.match(/\]/g)?.length ?? 0);
  }
  const lines: string[] = [];
  let line = first;
  for (const word of words) {
    if (
      line.length > first.length && line.trimEnd().length > 0 &&
      line.length + word.length > WIDTH
    ) {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${word} `;
  }
  lines.push(line.trimEnd());
  return lines;
}

/** `a`, `a or b`, `a, b or c`. */
export function listOf(items: readonly string[]): string {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items.at(-1)}`;
}

/** Longest prefix of a word an error line echoes. */
const SHOWN_MAX = 24;

/**
 * A word as an error line shows it: at most {@linkcode SHOWN_MAX} characters
 * (then `…`), control and non-ASCII characters escaped (`\n`, `\x1b`,
 * `\u00e9`), in quotes when anything was changed.
 */
export function shownWord(word: string): string {
  const chars = [...word];
  let out = "";
  for (const c of chars.slice(0, SHOWN_MAX)) {
    const code = c.codePointAt(0)!;
    if (c === '"' || c === "\\") out += `\\${c}`;
    else if (c === "\n") out += "\\n";
    else if (c === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else if (code > 0x7e) {
      out += code > 0xffff
        ? `\\u{${code.toString(16)}}`
        : `\\u${code.toString(16).padStart(4, "0")}`;
    } else out += c;
  }
  if (chars.length > SHOWN_MAX) out += "…";
  return out === word ? word : `"${out}"`;
}

/** {@linkcode shownWord}, always in quotes: how errors quote a value. */
export function quoted(word: string): string {
  const shown = shownWord(word);
  return shown.startsWith('"') ? shown : `"${shown}"`;
}

/**
 * A non-negative integer argument or option value.
 *
 * @param text The word.
 * @param what Its name for the error (`OFFSET`, `--seed`).
 * @param min The smallest value it takes.
 * @throws {UsageError} `OFFSET: "-3" is negative`, `OFFSET: "x" is not a number`,
 *   `--ops: "0" is too small (at least 1)`.
 */
export function count(text: string, what: string, min = 0): number {
  if (/^-\s*\d/.test(text)) throw new UsageError(`${what}: ${quoted(text)} is negative`);
  if (!/^\d+$/.test(text)) throw new UsageError(`${what}: ${quoted(text)} is not a number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what}: ${quoted(text)} is too large`);
  if (n < min) throw new UsageError(`${what}: ${quoted(text)} is too small (at least ${min})`);
  return n;
}

/**
 * The line editor of the interactive shell (`twz boot` on a terminal): one
 * line at a time in raw mode, with the usual keys, a history kept in a file
 * outside the image, and Tab completion. No dependencies.
 *
 * Parts, each usable alone (and tested alone):
 * - {@linkcode KeyDecoder}: terminal bytes to keys (UTF-8 split across
 *   reads, escape sequences, bracketed paste, `\r\n` as one Enter).
 * - {@linkcode LineBuffer}: the text and the cursor, moved by grapheme
 *   (a multi-byte character, an emoji with its modifiers, a letter with its
 *   combining accents are one step), and the editing operations.
 * - {@linkcode layout}: what one redraw writes. The line never wraps: a line
 *   wider than the terminal scrolls sideways around the cursor, `<` and `>`
 *   marking hidden text; an accepted line is written out whole.
 * - {@linkcode History} and {@linkcode historyPath}: entries in memory and in
 *   `$XDG_STATE_HOME/twz/history` (default `~/.local/state/twz/history`;
 *   folder 0700, file 0600). Blank lines and a repeat of the line before are
 *   not kept; the file is cut back to the newest {@linkcode HISTORY_MAX}
 *   lines. A file that cannot be read or written costs one warning line, and
 *   the history lives on for the session.
 * - {@linkcode completionsAt}: Tab candidates for the word at the cursor, from
 *   a {@linkcode CompletionSource} (command names, names in the naming tree,
 *   object IDs).
 * - {@linkcode LineEditor}: the loop over a {@linkcode TerminalIO}; the
 *   terminal is raw only inside {@linkcode LineEditor.readLine} and restored
 *   on every way out of it ({@linkcode LineEditor.restore} for signal
 *   handlers and `unload`).
 *
 * Keys: Left/Right (Ctrl-B/Ctrl-F), Home/End (Ctrl-A/Ctrl-E), Alt-B/Alt-F
 * and Ctrl-Left/Ctrl-Right by word, Backspace, Delete (Ctrl-D on a non-empty
 * line), Ctrl-U (to the start), Ctrl-K (to the end), Ctrl-W (the word
 * before), Ctrl-Y (put back what was cut), Up/Down (Ctrl-P/Ctrl-N) through
 * the history, Tab, Ctrl-L (clear the screen), Enter. Ctrl-C cancels the
 * line; Ctrl-D on an empty line is the end of input.
 *
 * @example Reading lines from a scripted terminal
 * ```ts
 * import { History, LineEditor } from "./_lineedit.ts";
 * const input = [new TextEncoder().encode("helo\x1b[Dl\r")];
 * const editor = new LineEditor({
 *   io: {
 *     read: (buf) => {
 *       const next = input.shift();
 *       if (next === undefined) return Promise.resolve(null);
 *       buf.set(next);
 *       return Promise.resolve(next.length);
 *     },
 *     write: () => {},
 *     setRaw: () => {},
 *     columns: () => 80,
 *   },
 *   history: new History(),
 * });
 * console.log(await editor.readLine("twz> ")); // { kind: "line", text: "hello" }
 * ```
 *
 * @module
 */

// ---------------------------------------------------------------------------
// Keys

/** What the editor does for a key or a run of typed text. */
export type Key =
  | { readonly type: "text"; readonly text: string }
  | {
    readonly type:
      | "enter"
      | "interrupt"
      | "eof-or-delete"
      | "tab"
      | "left"
      | "right"
      | "home"
      | "end"
      | "word-left"
      | "word-right"
      | "backspace"
      | "delete"
      | "kill-start"
      | "kill-end"
      | "kill-word-back"
      | "kill-word-forward"
      | "yank"
      | "up"
      | "down"
      | "clear";
  };

/** Control characters (as typed, outside a paste) and their keys. */
const CONTROL: Readonly<Record<string, Key["type"]>> = {
  "\x01": "home",
  "\x02": "left",
  "\x03": "interrupt",
  "\x04": "eof-or-delete",
  "\x05": "end",
  "\x06": "right",
  "\x08": "backspace",
  "\t": "tab",
  "\x0b": "kill-end",
  "\x0c": "clear",
  "\x0e": "down",
  "\x10": "up",
  "\x15": "kill-start",
  "\x17": "kill-word-back",
  "\x19": "yank",
  "\x7f": "backspace",
};

/** CSI sequences (`ESC [ params final`) and their keys, by `params + final`. */
const CSI: Readonly<Record<string, Key["type"]>> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
  "1~": "home",
  "7~": "home",
  "4~": "end",
  "8~": "end",
  "3~": "delete",
  "1;5C": "word-right",
  "1;5D": "word-left",
  "1;3C": "word-right",
  "1;3D": "word-left",
  "1;5H": "home",
  "1;5F": "end",
};

/** SS3 sequences (`ESC O x`, keypad application mode). */
const SS3: Readonly<Record<string, Key["type"]>> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
};

/** Alt-x (`ESC x`). */
const ALT: Readonly<Record<string, Key["type"]>> = {
  b: "word-left",
  f: "word-right",
  d: "kill-word-forward",
  "\x7f": "kill-word-back",
  "\x08": "kill-word-back",
};

const PASTE_START = "200~";
const PASTE_END = "201~";

/** Printable: anything but C0 controls, DEL and C1 controls. */
function isPrintable(c: string): boolean {
  const code = c.codePointAt(0)!;
  return code >= 0x20 && code !== 0x7f && !(code >= 0x80 && code < 0xa0);
}

/**
 * Turns the bytes a terminal sends into keys. Bytes may arrive in any
 * pieces: a UTF-8 character or an escape sequence cut between two reads is
 * completed by the next. In a bracketed paste (`ESC[200~ … ESC[201~`, which
 * {@linkcode LineEditor} asks the terminal for) every newline is an Enter,
 * a tab is a space and nothing else is a key (a pasted Tab or Ctrl-C does
 * nothing). A `\n` right after a `\r` is part of the same Enter.
 */
export class KeyDecoder {
  #utf8 = new TextDecoder("utf-8", { fatal: false });
  #pending = "";
  #paste = false;
  #afterCR = false;

  /** The keys in `bytes` (with what an earlier call left unfinished). */
  push(bytes: Uint8Array): Key[] {
    this.#pending += this.#utf8.decode(bytes, { stream: true });
    const keys: Key[] = [];
    const s = this.#pending;
    let i = 0;
    let text = "";
    const flushText = () => {
      if (text !== "") keys.push({ type: "text", text });
      text = "";
    };
    const key = (type: Key["type"]) => {
      flushText();
      if (type !== "text") keys.push({ type } as Key);
    };
    while (i < s.length) {
      const c = s[i]!;
      if (c !== "\n") this.#afterCR = false;
      if (c === "\x1b") {
        const seq = parseEscape(s, i);
        if (seq === "incomplete") break;
        i = seq.next;
        if (seq.csi === PASTE_START) this.#paste = true;
        else if (seq.csi === PASTE_END) this.#paste = false;
        else if (!this.#paste && seq.key !== undefined) key(seq.key);
        continue;
      }
      i++;
      if (c === "\r" || c === "\n") {
        if (c === "\n" && this.#afterCR) {
          this.#afterCR = false;
          continue;
        }
        this.#afterCR = c === "\r";
        key("enter");
      } else if (this.#paste) {
        if (c === "\t") text += " ";
        else if (isPrintable(c)) text += c;
      } else if (isPrintable(c)) {
        text += c;
      } else {
        const type = CONTROL[c];
        if (type !== undefined) key(type);
      }
    }
    flushText();
    this.#pending = s.slice(i);
    return keys;
  }
}

/**
 * The escape sequence at `s[at]` (an ESC): its key, if it is one the editor
 * knows, and where it ends; `"incomplete"` when `s` ends inside it.
 */
function parseEscape(
  s: string,
  at: number,
): { key?: Key["type"]; csi?: string; next: number } | "incomplete" {
  const c = s[at + 1];
  if (c === undefined) return "incomplete";
  if (c === "[") {
    let j = at + 2;
    while (j < s.length && /[0-9;?]/.test(s[j]!)) j++;
    if (j >= s.length) return j - at > 16 ? { next: j } : "incomplete";
    const final = s[j]!;
    const body = s.slice(at + 2, j + 1);
    if (final < "@" || final > "~") return { next: j }; // not a sequence: dropped
    const key = CSI[body];
    return { ...(key !== undefined ? { key } : {}), csi: body, next: j + 1 };
  }
  if (c === "O") {
    const x = s[at + 2];
    if (x === undefined) return "incomplete";
    const key = SS3[x];
    return { ...(key !== undefined ? { key } : {}), next: at + 3 };
  }
  const key = ALT[c];
  // Alt with a key it does not know, or a lone Esc: the Esc goes, the key stays.
  return key !== undefined ? { key, next: at + 2 } : { next: at + 1 };
}

// ---------------------------------------------------------------------------
// The line

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** The grapheme boundaries of `text` (UTF-16 indexes), from 0 to its length. */
function boundaries(text: string): number[] {
  const out: number[] = [];
  for (const s of graphemes.segment(text)) out.push(s.index);
  out.push(text.length);
  return out;
}

function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t";
}

/**
 * The line being edited: its text, the cursor (a UTF-16 index, always on a
 * grapheme boundary) and the text cut last (for Ctrl-Y).
 *
 * @example
 * ```ts
 * import { LineBuffer } from "./_lineedit.ts";
 * const b = new LineBuffer("kv put k v");
 * b.killWordBack();
 * b.insert("w");
 * console.log(b.text, b.cursor); // kv put k w 10
 * ```
 */
export class LineBuffer {
  /** Text cut by the last kill, for {@linkcode LineBuffer.yank}. */
  killed = "";
  /**
   * A line holding `text`.
   *
   * @param text The text.
   * @param cursor Where the cursor is (default: at the end).
   */
  constructor(public text = "", public cursor: number = text.length) {}

  /** Replace the text; the cursor goes to its end. */
  set(text: string): void {
    this.text = text;
    this.cursor = text.length;
  }

  /** Insert `s` at the cursor, which moves past it. */
  insert(s: string): void {
    this.text = this.text.slice(0, this.cursor) + s + this.text.slice(this.cursor);
    this.cursor += s.length;
    // A combining mark joins the grapheme before it: stay on a boundary.
    const b = boundaries(this.text);
    if (!b.includes(this.cursor)) this.cursor = b.find((x) => x > this.cursor) ?? this.text.length;
  }

  #prev(): number {
    const b = boundaries(this.text);
    for (let i = b.length - 1; i >= 0; i--) if (b[i]! < this.cursor) return b[i]!;
    return 0;
  }

  #next(): number {
    for (const x of boundaries(this.text)) if (x > this.cursor) return x;
    return this.text.length;
  }

  /** One grapheme left. */
  left(): void {
    this.cursor = this.#prev();
  }

  /** One grapheme right. */
  right(): void {
    this.cursor = this.#next();
  }

  /** To the start. */
  home(): void {
    this.cursor = 0;
  }

  /** To the end. */
  end(): void {
    this.cursor = this.text.length;
  }

  /** Where the word before the cursor starts (blanks before it skipped). */
  #wordStart(): number {
    let i = this.cursor;
    while (i > 0 && isSpace(this.text[i - 1])) i--;
    while (i > 0 && !isSpace(this.text[i - 1])) i--;
    return i;
  }

  /** Where the word after the cursor ends (blanks before it skipped). */
  #wordEnd(): number {
    let i = this.cursor;
    while (i < this.text.length && isSpace(this.text[i])) i++;
    while (i < this.text.length && !isSpace(this.text[i])) i++;
    return i;
  }

  /** To the start of this or the previous word. */
  wordLeft(): void {
    this.cursor = this.#wordStart();
  }

  /** To the end of this or the next word. */
  wordRight(): void {
    this.cursor = this.#wordEnd();
  }

  /** Delete the grapheme before the cursor. */
  backspace(): void {
    const from = this.#prev();
    this.text = this.text.slice(0, from) + this.text.slice(this.cursor);
    this.cursor = from;
  }

  /** Delete the grapheme under the cursor. */
  delete(): void {
    const to = this.#next();
    this.text = this.text.slice(0, this.cursor) + this.text.slice(to);
  }

  #kill(from: number, to: number): void {
    if (from === to) return;
    this.killed = this.text.slice(from, to);
    this.text = this.text.slice(0, from) + this.text.slice(to);
    this.cursor = from;
  }

  /** Cut from the start to the cursor (Ctrl-U). */
  killStart(): void {
    this.#kill(0, this.cursor);
  }

  /** Cut from the cursor to the end (Ctrl-K). */
  killEnd(): void {
    this.#kill(this.cursor, this.text.length);
  }

  /** Cut the word before the cursor, and the blanks after it (Ctrl-W). */
  killWordBack(): void {
    this.#kill(this.#wordStart(), this.cursor);
  }

  /** Cut to the end of the word after the cursor (Alt-D). */
  killWordForward(): void {
    this.#kill(this.cursor, this.#wordEnd());
  }

  /** Insert what was cut last (Ctrl-Y). */
  yank(): void {
    if (this.killed !== "") this.insert(this.killed);
  }
}

// ---------------------------------------------------------------------------
// Display

const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]/u;
const EMOJI = /\p{Emoji_Presentation}|\uFE0F/u;

/** Code point ranges shown two columns wide (East Asian Wide and Fullwidth). */
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe30, 0xfe4f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f],
  [0x1f900, 0x1f9ff],
  [0x20000, 0x3fffd],
];

/**
 * Columns a grapheme takes on a terminal: 0 (a lone combining mark), 1, or
 * 2 (East Asian wide characters, emoji).
 */
export function graphemeWidth(g: string): number {
  if (g === "" || ZERO_WIDTH.test(g)) return 0;
  if (EMOJI.test(g)) return 2;
  const code = g.codePointAt(0)!;
  for (const [lo, hi] of WIDE) if (code >= lo && code <= hi) return 2;
  return 1;
}

/** Columns `text` takes on a terminal. */
export function textWidth(text: string): number {
  let w = 0;
  for (const s of graphemes.segment(text)) w += graphemeWidth(s.segment);
  return w;
}

/** What one redraw of the line shows. */
export interface Layout {
  /** The text shown after the prompt (with `<` / `>` when scrolled). */
  readonly shown: string;
  /** The cursor's column (0 = the first column of the prompt). */
  readonly column: number;
  /** Index (UTF-16) of the first character shown: pass it to the next layout. */
  readonly scroll: number;
}

/**
 * How to show `text` after `prompt` on a terminal `columns` wide without
 * ever wrapping. A line that fits is shown whole; a longer one scrolls
 * sideways: the view moves only as far as the cursor needs (so it does not
 * jump at every key), `<` marks text hidden on the left and `>` on the
 * right.
 *
 * @param prompt The prompt.
 * @param text The line.
 * @param cursor The cursor (UTF-16 index, on a grapheme boundary).
 * @param columns The terminal's width.
 * @param scroll The previous layout's `scroll` (0 for a new line).
 */
export function layout(
  prompt: string,
  text: string,
  cursor: number,
  columns: number,
  scroll = 0,
): Layout {
  const promptWidth = textWidth(prompt);
  // The last column stays free: writing there makes some terminals wrap.
  const room = Math.max(1, columns - promptWidth - 1);
  const parts: { at: number; g: string; w: number }[] = [];
  for (const s of graphemes.segment(text)) {
    parts.push({ at: s.index, g: s.segment, w: graphemeWidth(s.segment) });
  }
  const total = parts.reduce((n, p) => n + p.w, 0);
  const ci = parts.findIndex((p) => p.at >= cursor);
  const cur = ci < 0 ? parts.length : ci;
  const widthOf = (from: number, to: number) => {
    let w = 0;
    for (let i = from; i < to; i++) w += parts[i]!.w;
    return w;
  };
  if (total + 1 <= room) {
    return { shown: text, column: promptWidth + widthOf(0, cur), scroll: 0 };
  }
  // Scrolled: one column for each marker, the rest for text.
  const space = Math.max(1, room - 2);
  let first = parts.findIndex((p) => p.at >= scroll);
  if (first < 0) first = parts.length;
  if (cur < first) first = cur;
  while (first < cur && widthOf(first, cur) + 1 > space) first++;
  // Text cut on the left while the end has room: show more of it.
  while (first > 0 && widthOf(first - 1, parts.length) + 1 <= space) first--;
  let shown = first > 0 ? "<" : "";
  let w = 0;
  let last = first;
  while (last < parts.length && w + parts[last]!.w <= space) {
    w += parts[last]!.w;
    shown += parts[last]!.g;
    last++;
  }
  if (last < parts.length) shown += ">";
  return {
    shown,
    column: promptWidth + (first > 0 ? 1 : 0) + widthOf(first, cur),
    scroll: parts[first]?.at ?? text.length,
  };
}

/**
 * `items` in columns across a terminal `columns` wide, as the lines to print
 * (what the second Tab shows).
 */
export function columnize(items: readonly string[], columns: number): string[] {
  if (items.length === 0) return [];
  const width = Math.max(...items.map(textWidth)) + 2;
  const perRow = Math.max(1, Math.floor(columns / width));
  const rows = Math.ceil(items.length / perRow);
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    let line = "";
    for (let c = 0; c < perRow; c++) {
      const item = items[c * rows + r];
      if (item === undefined) continue;
      line += item + " ".repeat(width - textWidth(item));
    }
    lines.push(line.trimEnd());
  }
  return lines;
}

// ---------------------------------------------------------------------------
// History

/** Most lines the history keeps (in memory and in its file). */
export const HISTORY_MAX = 1000;

/**
 * Where the history file is: `$XDG_STATE_HOME/twz/history`, else
 * `$HOME/.local/state/twz/history`; `undefined` when neither is set (an
 * XDG_STATE_HOME that is not an absolute path is ignored, as the XDG spec
 * says).
 *
 * @param env The environment (`Deno.env`).
 */
export function historyPath(env: { get(name: string): string | undefined }): string | undefined {
  const state = env.get("XDG_STATE_HOME");
  if (state !== undefined && state.startsWith("/")) {
    return `${state.replace(/\/+$/, "")}/twz/history`;
  }
  const home = env.get("HOME");
  if (home !== undefined && home !== "") {
    return `${home.replace(/\/+$/, "")}/.local/state/twz/history`;
  }
  return undefined;
}

/** Options of a {@linkcode History}. */
export interface HistoryOptions {
  /** The file to keep it in (none: this session only). */
  readonly path?: string | undefined;
  /** Most lines kept. @default {HISTORY_MAX} */
  readonly max?: number;
  /** Where the one warning goes when the file cannot be read or written. */
  readonly warn?: (line: string) => void;
}

/**
 * The lines entered, oldest first, optionally kept in a file: read when
 * made, each new line appended as it is added (the file is created 0600 in
 * a folder created 0700), and rewritten to the newest `max` lines when it
 * has grown to half as many again. Reading or writing the file never
 * throws: the first failure is one warning, and the history goes on in
 * memory.
 *
 * @example
 * ```ts
 * import { History } from "./_lineedit.ts";
 * const h = new History();
 * h.add("ls");
 * h.add("ls"); // a repeat of the line before: not kept
 * h.add("   "); // blank: not kept
 * console.log(h.entries); // ["ls"]
 * ```
 */
export class History {
  #entries: string[] = [];
  #path: string | undefined;
  #max: number;
  #warn: (line: string) => void;
  #warned = false;
  /** Lines in the file (to know when to cut it back). */
  #fileLines = 0;

  /** A history, read from `options.path` when given. */
  constructor(options: HistoryOptions = {}) {
    this.#path = options.path;
    this.#max = options.max ?? HISTORY_MAX;
    this.#warn = options.warn ?? (() => {});
    if (this.#path === undefined) return;
    let text: string;
    try {
      text = Deno.readTextFileSync(this.#path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) this.#failed("read", error);
      return;
    }
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    this.#fileLines = lines.length;
    for (const line of lines) {
      if (this.#entries.at(-1) !== line) this.#entries.push(line);
    }
    this.#entries = this.#entries.slice(-this.#max);
  }

  /** The lines, oldest first. */
  get entries(): readonly string[] {
    return this.#entries;
  }

  /** The file, if the history is kept in one. */
  get path(): string | undefined {
    return this.#path;
  }

  /**
   * Add a line (not a blank one, nor a repeat of the last), and append it to
   * the file.
   *
   * @returns Whether it was added.
   */
  add(line: string): boolean {
    if (line.trim() === "" || line.includes("\n") || this.#entries.at(-1) === line) return false;
    this.#entries.push(line);
    if (this.#entries.length > this.#max) this.#entries.splice(0, this.#entries.length - this.#max);
    this.#save(line);
    return true;
  }

  #save(line: string): void {
    const path = this.#path;
    if (path === undefined || this.#warned) return;
    try {
      const dir = path.slice(0, path.lastIndexOf("/"));
      if (dir !== "") Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (this.#fileLines + 1 > this.#max + (this.#max >> 1)) {
        // Cut back: a new file with the newest lines replaces the old one.
        const tmp = `${path}.${Deno.pid}.tmp`;
        Deno.writeTextFileSync(tmp, this.#entries.join("\n") + "\n", { mode: 0o600 });
        Deno.renameSync(tmp, path);
        this.#fileLines = this.#entries.length;
      } else {
        Deno.writeTextFileSync(path, line + "\n", { append: true, create: true, mode: 0o600 });
        this.#fileLines++;
      }
    } catch (error) {
      this.#failed("write", error);
    }
  }

  #failed(what: string, error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    // Deno's messages end in the call and path ("…(os error 20): readfile '/x'").
    const reason = (error instanceof Error ? error.message.split("\n")[0]! : String(error))
      .replace(/(\(os error \d+\)):.*$/, "$1");
    this.#warn(
      `twz: warning: cannot ${what} the history file ${this.#path}: ${reason} ` +
        `(history is kept for this session only)`,
    );
  }
}

// ---------------------------------------------------------------------------
// Completion

/** Where completion finds what it offers. Any of these may throw: that part offers nothing. */
export interface CompletionSource {
  /** Command names and aliases. */
  commands(): readonly string[];
  /** The subcommands of a command (`put` of `kv`), if it has any. */
  subcommands(command: string): readonly string[];
  /** The bindings of a directory of the naming tree. */
  list(dir: string): readonly { readonly name: string; readonly kind: string }[];
  /** Every object ID, as 32 hex digits. */
  ids(): readonly string[];
}

/** One thing Tab may insert. */
export interface Candidate {
  /** The whole word, unquoted (`/dir/name`). */
  readonly word: string;
  /** How the list shows it (`name`, `dir/`). */
  readonly display: string;
  /** Nothing more can follow it in the word: a space goes after it. */
  readonly complete: boolean;
}

/** What Tab can do at a cursor: the word's span in the line, and its candidates. */
export interface Completion {
  /** Where the word starts in the line (as typed, quotes and all). */
  readonly start: number;
  /** Where it ends: the cursor. */
  readonly end: number;
  /** The word so far, quotes and escapes applied. */
  readonly word: string;
  /** What it may become, sorted. */
  readonly candidates: readonly Candidate[];
}

/**
 * The words before `end`, leniently: quotes and backslashes apply, an
 * unterminated quote runs to `end`; the last word is the one the cursor is
 * in (empty, starting at `end`, after a blank).
 */
function wordsBefore(line: string, end: number): { text: string; start: number }[] {
  const out: { text: string; start: number }[] = [];
  let i = 0;
  let current: { text: string; start: number } | undefined;
  let quote: string | undefined;
  while (i < end) {
    const c = line[i]!;
    if (quote === undefined && isSpace(c)) {
      if (current) out.push(current);
      current = undefined;
      i++;
      continue;
    }
    current ??= { text: "", start: i };
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else current.text += c;
      i++;
    } else if (c === "\\" && i + 1 < end) {
      const d = line[i + 1]!;
      const escaped: Record<string, string> = { n: "\n", t: "\t", r: "\r", "0": "\0" };
      current.text += escaped[d] ?? d;
      i += 2;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else current.text += c;
      i++;
    } else if (c === "'" || c === '"') {
      quote = c;
      i++;
    } else {
      current.text += c;
      i++;
    }
  }
  out.push(current ?? { text: "", start: end });
  return out;
}

/** Run a source's call; anything it throws (a damaged image) offers nothing. */
function tryList<T>(f: () => readonly T[]): readonly T[] {
  try {
    return f();
  } catch {
    return [];
  }
}

/**
 * What Tab can complete at `cursor` in `line`: the first word from the
 * command names, the second from a command's subcommands (when it has any),
 * any other word (not an option) from the names in the naming tree (a
 * directory ends in `/`; hidden names only when the word's last part starts
 * with `.`; an empty word offers the root's names, `/name`) and, when it is
 * hex digits, from object IDs. Never throws.
 *
 * @param line The line.
 * @param cursor The cursor (the word is completed up to it).
 * @param source What there is to offer.
 */
export function completionsAt(line: string, cursor: number, source: CompletionSource): Completion {
  const words = wordsBefore(line, cursor);
  const index = words.length - 1;
  const { text: word, start } = words[index]!;
  const found: Candidate[] = [];
  const offer = (list: readonly string[]) => {
    for (const name of new Set(list)) {
      if (name.startsWith(word)) found.push({ word: name, display: name, complete: true });
    }
  };
  if (index === 0) {
    offer(tryList(() => source.commands()));
  } else if (!word.startsWith("-")) {
    const subs = index === 1 ? tryList(() => source.subcommands(words[0]!.text)) : [];
    if (subs.length > 0) offer(subs);
    else {
      const slash = word.lastIndexOf("/");
      const base = word === "" ? "/" : word.slice(0, slash + 1);
      const dir = base === "" ? "/" : base;
      const prefix = word.slice(slash + 1);
      for (const b of tryList(() => source.list(dir))) {
        if (!b.name.startsWith(prefix)) continue;
        if (b.name.startsWith(".") && !prefix.startsWith(".")) continue;
        const isDir = b.kind === "directory";
        found.push({
          word: base + b.name + (isDir ? "/" : ""),
          display: b.name + (isDir ? "/" : ""),
          complete: !isDir,
        });
      }
      if (/^[0-9a-fA-F]+$/.test(word)) {
        const hex = word.toLowerCase();
        for (const id of tryList(() => source.ids())) {
          if (id.startsWith(hex)) found.push({ word: id, display: id, complete: true });
        }
      }
    }
  }
  found.sort((a, b) => (a.word < b.word ? -1 : a.word > b.word ? 1 : 0));
  return { start, end: cursor, word, candidates: found };
}

/** The longest common prefix of `words` (whole code points). */
export function commonPrefix(words: readonly string[]): string {
  if (words.length === 0) return "";
  let prefix = [...words[0]!];
  for (const w of words.slice(1)) {
    const chars = [...w];
    let n = 0;
    while (n < prefix.length && n < chars.length && prefix[n] === chars[n]) n++;
    prefix = prefix.slice(0, n);
  }
  return prefix.join("");
}

/**
 * A word as it must be typed to mean `word`: blanks, quotes, backslashes
 * and a leading `#` escaped with a backslash, control characters as `\n`,
 * `\t`, `\r`, `\0` or `\xHH`.
 */
export function escapeWord(word: string): string {
  let out = "";
  for (const c of word) {
    const code = c.codePointAt(0)!;
    if (c === " " || c === '"' || c === "'" || c === "\\" || (c === "#" && out === "")) {
      out += `\\${c}`;
    } else if (c === "\n") out += "\\n";
    else if (c === "\t") out += "\\t";
    else if (c === "\r") out += "\\r";
    else if (c === "\0") out += "\\0";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------
// The editor

/** The terminal, as the editor uses it. */
export interface TerminalIO {
  /** Read what is there into `buf` (at least one byte); `null` at the end of input. */
  read(buf: Uint8Array): Promise<number | null>;
  /** Write text (escape sequences included). */
  write(text: string): void;
  /** Switch raw mode on or off. */
  setRaw(on: boolean): void;
  /** The terminal's width in columns. */
  columns(): number;
  /** Call `redraw` when the terminal is resized; returns what stops that. */
  onResize?(redraw: () => void): () => void;
}

/** The process's terminal: stdin (raw while a line is read) and stdout. */
export function terminalIO(): TerminalIO {
  const encoder = new TextEncoder();
  return {
    read: (buf) => Deno.stdin.read(buf),
    write(text) {
      const data = encoder.encode(text);
      let done = 0;
      while (done < data.length) done += Deno.stdout.writeSync(data.subarray(done));
    },
    setRaw: (on) => Deno.stdin.setRaw(on),
    onResize(redraw) {
      try {
        Deno.addSignalListener("SIGWINCH", redraw);
      } catch {
        return () => {}; // no such signal here
      }
      return () => Deno.removeSignalListener("SIGWINCH", redraw);
    },
    columns() {
      try {
        return Deno.consoleSize().columns || 80;
      } catch {
        return 80;
      }
    },
  };
}

/** What {@linkcode LineEditor.readLine} read. */
export type ReadResult =
  /** A line, Enter pressed. */
  | { readonly kind: "line"; readonly text: string }
  /**
   * Ctrl-C: the line (`text`) is cancelled. `again`: it was empty and the key
   * before it was a Ctrl-C too (the second one in a row).
   */
  | { readonly kind: "interrupt"; readonly text: string; readonly again: boolean }
  /** Ctrl-D on an empty line, or the terminal's input ended. */
  | { readonly kind: "eof" };

/** What a {@linkcode LineEditor} works with. */
export interface LineEditorOptions {
  /** The terminal. */
  readonly io: TerminalIO;
  /** The history (Up/Down); lines read are added to it. */
  readonly history: History;
  /** Tab's candidates (none: Tab does nothing). */
  readonly complete?: (line: string, cursor: number) => Completion;
}

const BRACKETED_PASTE_ON = "\x1b[?2004h";
const BRACKETED_PASTE_OFF = "\x1b[?2004l";

/**
 * Reads lines from a terminal with editing, history and completion (keys:
 * see the module doc). Keys that arrive after an Enter (a pasted block of
 * lines) are kept for the next {@linkcode LineEditor.readLine}.
 */
export class LineEditor {
  #io: TerminalIO;
  #history: History;
  #complete: ((line: string, cursor: number) => Completion) | undefined;
  #decoder = new KeyDecoder();
  #keys: Key[] = [];
  #raw = false;
  #lastWasInterrupt = false;
  #readBuffer = new Uint8Array(4096);
  /** Draws the line being edited again (set while a line is read). */
  #redrawLine: (() => void) | undefined;

  /** An editor over `options.io`. */
  constructor(options: LineEditorOptions) {
    this.#io = options.io;
    this.#history = options.history;
    this.#complete = options.complete;
  }

  /** The history it adds to. */
  get history(): History {
    return this.#history;
  }

  /**
   * Put the terminal back as it was (raw mode off, bracketed paste off) if a
   * line is being read: for signal handlers and `unload`. Never throws.
   */
  restore(): void {
    if (!this.#raw) return;
    this.#raw = false;
    try {
      this.#io.write(BRACKETED_PASTE_OFF);
    } catch { /* the terminal is gone */ }
    try {
      this.#io.setRaw(false);
    } catch { /* the terminal is gone */ }
  }

  /**
   * Write `text` (a background program's output, say) above the line being
   * edited, then draw the prompt and the line again below it; when no line
   * is being read, write it as it is. In raw mode a newline does not return
   * the cursor, so each is written as CR LF, and text that does not end a
   * line is ended here (the prompt needs a line of its own).
   */
  printAbove(text: string): void {
    const redraw = this.#redrawLine;
    if (redraw === undefined) {
      this.#io.write(text);
      return;
    }
    let body = text.replace(/\r?\n/g, "\r\n");
    if (!body.endsWith("\r\n")) body += "\r\n";
    this.#io.write(`\r\x1b[K${body}`);
    redraw();
  }

  /**
   * Show `prompt` and read one line.
   *
   * @param prompt The prompt (one line, no control characters).
   * @returns The line, a cancelled line, or the end of input.
   */
  async readLine(prompt: string): Promise<ReadResult> {
    const restoreOnExit = () => this.restore();
    globalThis.addEventListener("unload", restoreOnExit);
    this.#io.setRaw(true);
    this.#raw = true;
    let result: ReadResult;
    try {
      this.#io.write(BRACKETED_PASTE_ON);
      result = await this.#edit(prompt);
    } finally {
      this.restore();
      globalThis.removeEventListener("unload", restoreOnExit);
    }
    this.#lastWasInterrupt = result.kind === "interrupt";
    if (result.kind === "line") this.#history.add(result.text);
    return result;
  }

  async #nextKey(): Promise<Key | null> {
    while (this.#keys.length === 0) {
      let n: number | null;
      try {
        n = await this.#io.read(this.#readBuffer);
      } catch {
        n = null; // the terminal went away
      }
      if (n === null) return null;
      this.#keys.push(...this.#decoder.push(this.#readBuffer.subarray(0, n)));
    }
    return this.#keys.shift()!;
  }

  async #edit(prompt: string): Promise<ReadResult> {
    const io = this.#io;
    const buffer = new LineBuffer();
    // Up/Down walk a copy: a recalled line edited and left keeps its edit
    // until Enter, and the history itself is not changed.
    const lines = [...this.#history.entries, ""];
    let at = lines.length - 1;
    let scroll = 0;
    const redraw = () => {
      const l = layout(prompt, buffer.text, buffer.cursor, io.columns(), scroll);
      scroll = l.scroll;
      io.write(`\r${prompt}${l.shown}\x1b[K\r${l.column > 0 ? `\x1b[${l.column}C` : ""}`);
    };
    /** The line written out whole (it may wrap), then a new line. */
    const finish = (suffix: string) => {
      io.write(`\r${prompt}${buffer.text}${suffix}\x1b[K\r\n`);
    };
    /** Up (-1) or Down (+1) in the history, as far as it goes. */
    const recall = (step: number) => {
      const to = at + step;
      if (to < 0 || to >= lines.length) return;
      lines[at] = buffer.text;
      at = to;
      buffer.set(lines[at]!);
      scroll = 0;
    };
    redraw();
    const stopResize = io.onResize?.(redraw);
    this.#redrawLine = redraw;
    try {
      return await this.#keyLoop(prompt, buffer, redraw, finish, recall);
    } finally {
      this.#redrawLine = undefined;
      stopResize?.();
    }
  }

  async #keyLoop(
    prompt: string,
    buffer: LineBuffer,
    redraw: () => void,
    finish: (suffix: string) => void,
    recall: (step: number) => void,
  ): Promise<ReadResult> {
    const io = this.#io;
    let tabs = 0;
    let keysSeen = 0;
    for (;;) {
      const key = await this.#nextKey();
      if (key === null) {
        finish("");
        return { kind: "eof" };
      }
      const first = keysSeen++ === 0;
      tabs = key.type === "tab" ? tabs + 1 : 0;
      switch (key.type) {
        case "text":
          buffer.insert(key.text);
          break;
        case "enter":
          finish("");
          return { kind: "line", text: buffer.text };
        case "interrupt": {
          const again = first && this.#lastWasInterrupt && buffer.text === "";
          finish("^C");
          return { kind: "interrupt", text: buffer.text, again };
        }
        case "eof-or-delete":
          if (buffer.text === "") {
            finish("");
            return { kind: "eof" };
          }
          buffer.delete();
          break;
        case "tab":
          this.#tab(buffer, tabs, prompt);
          break;
        case "left":
          buffer.left();
          break;
        case "right":
          buffer.right();
          break;
        case "home":
          buffer.home();
          break;
        case "end":
          buffer.end();
          break;
        case "word-left":
          buffer.wordLeft();
          break;
        case "word-right":
          buffer.wordRight();
          break;
        case "backspace":
          buffer.backspace();
          break;
        case "delete":
          buffer.delete();
          break;
        case "kill-start":
          buffer.killStart();
          break;
        case "kill-end":
          buffer.killEnd();
          break;
        case "kill-word-back":
          buffer.killWordBack();
          break;
        case "kill-word-forward":
          buffer.killWordForward();
          break;
        case "yank":
          buffer.yank();
          break;
        case "up":
          recall(-1);
          break;
        case "down":
          recall(1);
          break;
        case "clear":
          io.write("\x1b[H\x1b[2J");
          break;
      }
      redraw();
    }
  }

  /**
   * Tab: one candidate is inserted (with a space after a complete word);
   * several insert what they have in common, and a second Tab in a row
   * lists them; none rings the bell.
   */
  #tab(buffer: LineBuffer, tabs: number, prompt: string): void {
    if (this.#complete === undefined) return;
    let c: Completion;
    try {
      c = this.#complete(buffer.text, buffer.cursor);
    } catch {
      return; // completion never breaks the line
    }
    const words = c.candidates.map((x) => x.word);
    if (words.length === 0) {
      this.#io.write("\x07");
      return;
    }
    const only = c.candidates.length === 1 ? c.candidates[0]! : undefined;
    const common = only?.word ?? commonPrefix(words);
    if (common.length > c.word.length || (only?.complete === true && common === c.word)) {
      let insert = escapeWord(common);
      const after = buffer.text.slice(c.end);
      if (only?.complete === true && !after.startsWith(" ")) insert += " ";
      buffer.text = buffer.text.slice(0, c.start) + insert + after;
      buffer.cursor = c.start + insert.length;
      return;
    }
    if (only !== undefined) return; // a directory, already complete
    if (tabs < 2) {
      this.#io.write("\x07");
      return;
    }
    // The list, below the line; then the prompt again.
    const columns = this.#io.columns();
    const displays = [...new Set(c.candidates.map((x) => x.display))];
    const LIST_MAX = 200;
    const lines = columnize(displays.slice(0, LIST_MAX), columns);
    if (displays.length > LIST_MAX) lines.push(`(${displays.length - LIST_MAX} more)`);
    this.#io.write(`\r${prompt}${buffer.text}\x1b[K\r\n${lines.join("\r\n")}\r\n`);
  }
}

// The line editor's logic without a terminal: keys decoded from bytes, the
// buffer and cursor, the layout of long lines, the history file, completion
// candidates, and whole lines read through a scripted TerminalIO. (The real
// terminal is driven in tests/interactive_test.ts.)
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  columnize,
  commonPrefix,
  completionsAt,
  type CompletionSource,
  escapeWord,
  History,
  historyPath,
  type Key,
  KeyDecoder,
  layout,
  LineBuffer,
  LineEditor,
  type ReadResult,
  type TerminalIO,
  textWidth,
} from "./_lineedit.ts";
import { tokenize } from "./_args.ts";

const enc = new TextEncoder();

/** A terminal that sends `chunks` one read at a time, then ends. */
class FakeTerminal implements TerminalIO {
  out = "";
  raw = false;
  rawChanges: boolean[] = [];
  constructor(public chunks: (string | Uint8Array)[], public width = 80) {}
  read(buf: Uint8Array): Promise<number | null> {
    const next = this.chunks.shift();
    if (next === undefined) return Promise.resolve(null);
    const bytes = typeof next === "string" ? enc.encode(next) : next;
    buf.set(bytes);
    return Promise.resolve(bytes.length);
  }
  write(text: string): void {
    this.out += text;
  }
  setRaw(on: boolean): void {
    this.raw = on;
    this.rawChanges.push(on);
  }
  columns(): number {
    return this.width;
  }
}

function editor(
  chunks: (string | Uint8Array)[],
  options: { history?: History; source?: CompletionSource; width?: number } = {},
): { ed: LineEditor; term: FakeTerminal } {
  const term = new FakeTerminal(chunks, options.width);
  const source = options.source;
  const ed = new LineEditor({
    io: term,
    history: options.history ?? new History(),
    ...(source ? { complete: (l: string, c: number) => completionsAt(l, c, source) } : {}),
  });
  return { ed, term };
}

async function readAll(ed: LineEditor, n: number): Promise<ReadResult[]> {
  const out: ReadResult[] = [];
  for (let i = 0; i < n; i++) out.push(await ed.readLine("twz> "));
  return out;
}

const line = (text: string): ReadResult => ({ kind: "line", text });

function tmpDir(): string {
  return Deno.makeTempDirSync({ prefix: "twz-lineedit-" });
}

const SOURCE: CompletionSource = {
  commands: () => ["help", "hexdump", "kv", "ls", "new", "read", "rm", "quit", "exit"],
  subcommands: (c) => (c === "kv" ? ["get", "put", "del", "scan"] : []),
  list(dir) {
    const tree: Record<string, { name: string; kind: string }[]> = {
      "/": [
        { name: "hello", kind: "directory" },
        { name: "help me", kind: "object" },
        { name: "notes", kind: "object" },
        { name: ".txlog", kind: "object" },
      ],
      "/hello/": [{ name: "count", kind: "object" }, { name: "cache", kind: "object" }],
    };
    const found = tree[dir];
    if (found === undefined) throw new Error(`no directory ${dir}`);
    return found;
  },
  ids: () => ["ab12" + "0".repeat(28), "ab34" + "0".repeat(28), "cd00" + "1".repeat(28)],
};

// ---------------------------------------------------------------------------
// Keys

Deno.test("KeyDecoder: control keys, escape sequences, Alt keys", () => {
  const d = new KeyDecoder();
  const types = (keys: Key[]) => keys.map((k) => (k.type === "text" ? `text:${k.text}` : k.type));
  assert.deepEqual(
    types(d.push(enc.encode("ab\x1b[D\x1b[C\x1b[A\x1b[B\x1b[H\x1b[F\x1b[3~\x1bOH\x1b[1~\x1b[4~"))),
    ["text:ab", "left", "right", "up", "down", "home", "end", "delete", "home", "home", "end"],
  );
  assert.deepEqual(
    types(d.push(enc.encode("\x01\x05\x02\x06\x7f\x08\x15\x0b\x17\x19\x03\x04\t\x0c\x10\x0e"))),
    [
      "home",
      "end",
      "left",
      "right",
      "backspace",
      "backspace",
      "kill-start",
      "kill-end",
      "kill-word-back",
      "yank",
      "interrupt",
      "eof-or-delete",
      "tab",
      "clear",
      "up",
      "down",
    ],
  );
  assert.deepEqual(types(d.push(enc.encode("\x1bb\x1bf\x1b[1;5D\x1b[1;5C\x1bd"))), [
    "word-left",
    "word-right",
    "word-left",
    "word-right",
    "kill-word-forward",
  ]);
  // A lone Esc (or Alt with another key) drops the Esc only.
  assert.deepEqual(types(d.push(enc.encode("\x1bx\x1b\r\x1b\x1b[D"))), ["text:x", "enter", "left"]);
  // Unknown sequences and control characters are no keys.
  assert.deepEqual(types(d.push(enc.encode("\x1b[15~\x1b[?1;2cx\x07\x1a"))), ["text:x"]);
});

Deno.test("KeyDecoder: a UTF-8 character or an escape sequence split between reads", () => {
  const d = new KeyDecoder();
  const bytes = enc.encode("日🙂");
  assert.deepEqual(d.push(bytes.subarray(0, 2)), []);
  assert.deepEqual(d.push(bytes.subarray(2, 5)), [{ type: "text", text: "日" }]);
  assert.deepEqual(d.push(bytes.subarray(5)), [{ type: "text", text: "🙂" }]);
  assert.deepEqual(d.push(enc.encode("\x1b")), []);
  assert.deepEqual(d.push(enc.encode("[")), []);
  assert.deepEqual(d.push(enc.encode("D")), [{ type: "left" }]);
});

Deno.test("KeyDecoder: \\r\\n is one Enter, also across reads; \\n alone is one", () => {
  const d = new KeyDecoder();
  assert.deepEqual(d.push(enc.encode("a\r\nb\r")), [
    { type: "text", text: "a" },
    { type: "enter" },
    { type: "text", text: "b" },
    { type: "enter" },
  ]);
  assert.deepEqual(d.push(enc.encode("\nc\n\n")), [
    { type: "text", text: "c" },
    { type: "enter" },
    { type: "enter" },
  ]);
});

Deno.test("KeyDecoder: in a bracketed paste, newlines are Enters, a tab a space, Ctrl-C nothing", () => {
  const d = new KeyDecoder();
  assert.deepEqual(d.push(enc.encode("\x1b[200~ls\ta\x03\nkv\x1b[D\x1b[201~\x03")), [
    { type: "text", text: "ls a" },
    { type: "enter" },
    { type: "text", text: "kv" },
    { type: "interrupt" },
  ]);
});

// ---------------------------------------------------------------------------
// The buffer

Deno.test("LineBuffer: moves by grapheme over multi-byte characters, emoji and combining marks", () => {
  const family = "👨‍👩‍👧";
  const b = new LineBuffer(`aé${family}e\u0301`);
  b.left();
  assert.equal(b.text.slice(b.cursor), "e\u0301", "e + combining acute is one step");
  b.left();
  assert.equal(b.text.slice(b.cursor), `${family}e\u0301`, "a ZWJ family is one step");
  b.backspace();
  assert.equal(b.text, `a${family}e\u0301`);
  b.delete();
  assert.equal(b.text, "ae\u0301");
  b.home();
  b.right();
  b.insert("\u0308"); // a combining diaeresis joins the a
  assert.equal(b.text, "a\u0308e\u0301");
  assert.equal(b.cursor, 2);
});

Deno.test("LineBuffer: Ctrl-U, Ctrl-K, Ctrl-W, Alt-D and Ctrl-Y", () => {
  const b = new LineBuffer("kv put  key value");
  b.killWordBack();
  assert.deepEqual([b.text, b.cursor], ["kv put  key ", 12]);
  b.killWordBack();
  assert.deepEqual([b.text, b.cursor], ["kv put  ", 8]);
  b.yank();
  assert.equal(b.text, "kv put  key ");
  b.home();
  b.wordRight();
  assert.equal(b.cursor, 2);
  b.killEnd();
  assert.deepEqual([b.text, b.killed], ["kv", " put  key "]);
  b.set("a b c");
  b.wordLeft();
  b.killStart();
  assert.deepEqual([b.text, b.cursor], ["c", 0]);
  b.killWordForward();
  assert.deepEqual([b.text, b.killed], ["", "c"]);
});

// ---------------------------------------------------------------------------
// Layout

Deno.test("layout: a line that fits is shown whole; the cursor column counts wide characters", () => {
  assert.equal(textWidth("日本🙂é"), 7);
  const l = layout("twz> ", "kv put 日本", 8, 80);
  assert.deepEqual(l, { shown: "kv put 日本", column: 5 + 7 + 2, scroll: 0 });
});

Deno.test("layout: a longer line scrolls sideways, never reaches the last column, marks what is hidden", () => {
  const text = "0123456789".repeat(10);
  const width = 40;
  let scroll = 0;
  for (let cursor = 0; cursor <= text.length; cursor++) {
    const l = layout("twz> ", text, cursor, width, scroll);
    scroll = l.scroll;
    assert.ok(5 + textWidth(l.shown) <= width - 1, `no wrap at ${cursor}: ${l.shown}`);
    assert.ok(l.column < width - 1, `cursor visible at ${cursor}`);
    // The character under the cursor is the one shown at its column.
    const at = l.column - 5;
    if (cursor < text.length) {
      assert.equal(l.shown[at], text[cursor], `under the cursor at ${cursor}`);
    }
  }
  const start = layout("twz> ", text, 0, width);
  assert.ok(start.shown.startsWith("0123") && start.shown.endsWith(">"));
  const end = layout("twz> ", text, text.length, width, 0);
  assert.ok(end.shown.startsWith("<") && end.shown.endsWith("789"));
  // Moving back a little from the end does not jump the view.
  const back = layout("twz> ", text, text.length - 3, width, end.scroll);
  assert.equal(back.scroll, end.scroll);
});

Deno.test("columnize: items in columns, down then across", () => {
  assert.deepEqual(columnize(["a", "bb", "c", "d", "e"], 12), ["a   c   e", "bb  d"]);
  assert.deepEqual(columnize([], 80), []);
});

// ---------------------------------------------------------------------------
// History

Deno.test("historyPath: XDG_STATE_HOME, else ~/.local/state; a relative XDG_STATE_HOME is ignored", () => {
  const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });
  assert.equal(historyPath(env({ XDG_STATE_HOME: "/s", HOME: "/h" })), "/s/twz/history");
  assert.equal(
    historyPath(env({ XDG_STATE_HOME: "rel", HOME: "/h/" })),
    "/h/.local/state/twz/history",
  );
  assert.equal(historyPath(env({})), undefined);
});

Deno.test("History: blank lines and repeats of the line before are not kept; the file has what was kept", () => {
  const dir = tmpDir();
  try {
    const path = join(dir, "state", "twz", "history");
    const h = new History({ path });
    assert.deepEqual(
      ["ls", "ls", "  ", "", "kv get a", "ls"].map((l) => h.add(l)),
      [true, false, false, false, true, true],
    );
    assert.deepEqual(h.entries, ["ls", "kv get a", "ls"]);
    assert.equal(Deno.readTextFileSync(path), "ls\nkv get a\nls\n");
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(join(dir, "state", "twz")).mode! & 0o777, 0o700);
    // Read back by the next session.
    assert.deepEqual(new History({ path }).entries, ["ls", "kv get a", "ls"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("History: the file is cut back to the newest lines", () => {
  const dir = tmpDir();
  try {
    const path = join(dir, "history");
    const h = new History({ path, max: 10 });
    for (let i = 0; i < 40; i++) h.add(`line ${i}`);
    assert.deepEqual(h.entries, Array.from({ length: 10 }, (_, i) => `line ${30 + i}`));
    const lines = Deno.readTextFileSync(path).trimEnd().split("\n");
    assert.ok(lines.length <= 15, `at most max and a half: ${lines.length}`);
    assert.equal(lines.at(-1), "line 39");
    assert.deepEqual(new History({ path, max: 10 }).entries, h.entries);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("History: an unwritable or unreadable file is one warning, and the history goes on", () => {
  const dir = tmpDir();
  try {
    // A directory where the file should be: cannot be read nor written.
    const path = join(dir, "history");
    Deno.mkdirSync(path);
    const warnings: string[] = [];
    const h = new History({ path, warn: (l) => warnings.push(l) });
    h.add("ls");
    h.add("kv scan");
    assert.deepEqual(h.entries, ["ls", "kv scan"]);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(
      warnings[0]!,
      /^twz: warning: cannot read the history file .*history: .*session only\)$/,
    );
    // A folder that cannot be made (a file is in the way): one warning.
    Deno.writeTextFileSync(join(dir, "file"), "");
    const w2: string[] = [];
    const h2 = new History({ path: join(dir, "file", "twz", "history"), warn: (l) => w2.push(l) });
    h2.add("a");
    h2.add("b");
    assert.deepEqual(h2.entries, ["a", "b"]);
    assert.equal(w2.length, 1);
    assert.match(w2[0]!, /^twz: warning: cannot read the history file .*: Not a directory \(/);
    // A file that can be read but not written (by anyone, root too): the
    // warning comes at the first line added.
    const w3: string[] = [];
    const h3 = new History({ path: "/proc/version", warn: (l) => w3.push(l) });
    assert.deepEqual([h3.entries.length, w3], [1, []]);
    h3.add("new");
    h3.add("newer");
    assert.deepEqual(h3.entries.slice(1), ["new", "newer"]);
    assert.equal(w3.length, 1);
    assert.match(w3[0]!, /^twz: warning: cannot write the history file \/proc\/version: /);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Completion

Deno.test("completionsAt: the first word from the commands, kv's second from its subcommands", () => {
  const words = (line: string, cursor = line.length) =>
    completionsAt(line, cursor, SOURCE).candidates.map((c) => c.word);
  assert.deepEqual(words("he"), ["help", "hexdump"]);
  assert.deepEqual(words("  l"), ["ls"]);
  assert.deepEqual(words("kv p"), ["put"]);
  assert.deepEqual(words("x"), []);
  assert.deepEqual(words("ls --f"), [], "options are not completed");
});

Deno.test("completionsAt: names (directories end in /, hidden ones only for a dot) and IDs", () => {
  const got = (line: string) =>
    completionsAt(line, line.length, SOURCE).candidates.map((c) => [c.word, c.complete]);
  assert.deepEqual(got("read /he"), [["/hello/", false], ["/help me", true]]);
  assert.deepEqual(got("read /hello/c"), [["/hello/cache", true], ["/hello/count", true]]);
  assert.deepEqual(got("read /."), [["/.txlog", true]]);
  assert.deepEqual(got("read no"), [["notes", true]], "a name without / is from the root");
  assert.deepEqual(got("read "), [
    ["/hello/", false],
    ["/help me", true],
    ["/notes", true],
  ]);
  assert.deepEqual(got("read AB"), [["ab12" + "0".repeat(28), true], [
    "ab34" + "0".repeat(28),
    true,
  ]]);
  assert.deepEqual(got("read /nosuch/x"), [], "a missing directory offers nothing");
  // The word at the cursor, quotes applied.
  const c = completionsAt('read "/hello/c', 14, SOURCE);
  assert.deepEqual([c.start, c.word, c.candidates.length], [5, "/hello/c", 2]);
});

Deno.test("completionsAt: a source that throws (a damaged image) offers nothing, never throws", () => {
  const broken: CompletionSource = {
    commands: () => ["ls"],
    subcommands: () => {
      throw new Error("damaged");
    },
    list: () => {
      throw new Error("damaged");
    },
    ids: () => {
      throw new Error("damaged");
    },
  };
  assert.deepEqual(completionsAt("kv /a", 5, broken).candidates, []);
  assert.deepEqual(completionsAt("read ab", 7, broken).candidates, []);
  assert.deepEqual(completionsAt("l", 1, broken).candidates.map((c) => c.word), ["ls"]);
});

Deno.test("escapeWord: what it writes reads back as the word; commonPrefix by code point", () => {
  for (const word of ["/help me", "a'b\"c\\d", "#x", "tab\there", "nl\nx", "日本"]) {
    assert.equal(tokenize(escapeWord(word))[0]!.text, word, escapeWord(word));
  }
  assert.equal(commonPrefix(["/hello/cache", "/hello/count"]), "/hello/c");
  assert.equal(commonPrefix(["a🙂", "a🙃"]), "a");
});

// ---------------------------------------------------------------------------
// Whole lines

Deno.test("LineEditor: typing with moves and deletions gives the line; raw mode only while reading", async () => {
  const { ed, term } = editor([
    "kv put x yz",
    "\x1b[D\x1b[D\x7f", // left left backspace: "kv put xyz"
    "\x01\x1b[3~\x05!\r", // home, delete, end, "!"
  ]);
  assert.deepEqual(await ed.readLine("twz> "), line("v put xyz!"));
  assert.deepEqual(term.rawChanges, [true, false]);
  assert.equal(term.raw, false);
  assert.ok(term.out.includes("\x1b[?2004h"), "bracketed paste on");
  assert.ok(term.out.endsWith("\x1b[?2004l"), "bracketed paste off again");
});

Deno.test("LineEditor: pasted lines are read one by one; the rest waits for the next readLine", async () => {
  const { ed } = editor(["\x1b[200~ls\nkv put a b\r\nkv get a\x1b[201~", "\r"]);
  assert.deepEqual(await readAll(ed, 3), [line("ls"), line("kv put a b"), line("kv get a")]);
  assert.deepEqual(ed.history.entries, ["ls", "kv put a b", "kv get a"]);
});

Deno.test("LineEditor: Up and Down walk the history; an edited recall does not change it", async () => {
  const history = new History();
  history.add("ls");
  history.add("kv scan");
  const { ed } = editor(
    [
      "\x1b[A\x1b[A\r", // ls
      "draft\x1b[A\x1b[A\x1b[B\x1b[B\r", // back down to the draft
      "\x1b[Ax\x1b[A\x1b[B\r", // the last (draft) edited: "draftx"
      "\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\r", // stops at the oldest
    ],
    { history },
  );
  assert.deepEqual(await readAll(ed, 4), [line("ls"), line("draft"), line("draftx"), line("ls")]);
  assert.deepEqual(history.entries, ["ls", "kv scan", "ls", "draft", "draftx", "ls"]);
});

Deno.test("LineEditor: Ctrl-C cancels the line; the second in a row on an empty line says so; Ctrl-D", async () => {
  const { ed, term } = editor([
    "kv put a b\x03",
    "\x03",
    "x\x7f\x03",
    "\x03",
    "ab\x01\x04\r",
    "\x04",
  ]);
  assert.deepEqual(await readAll(ed, 6), [
    { kind: "interrupt", text: "kv put a b", again: false },
    { kind: "interrupt", text: "", again: true },
    { kind: "interrupt", text: "", again: false }, // a key came between
    { kind: "interrupt", text: "", again: true },
    line("b"), // Ctrl-D on a non-empty line deletes
    { kind: "eof" },
  ]);
  assert.match(term.out, /kv put a b\^C/);
  assert.deepEqual(ed.history.entries, ["b"], "cancelled lines are not kept");
  // The end of input is the end, too.
  assert.deepEqual(await ed.readLine("twz> "), { kind: "eof" });
});

Deno.test("LineEditor: Tab completes one candidate, the common prefix of several, lists them at the second Tab", async () => {
  const { ed, term } = editor(
    [
      "l\t/he\t\t\r",
      "read /hello/\t\t",
      "o\t\r",
      "read /help\t\r",
      "read ab1\t\r",
      "k\tp\tx\r",
    ],
    { source: SOURCE, width: 40 },
  );
  const [first, second, third, fourth, fifth] = await readAll(ed, 5);
  assert.deepEqual(first, line("ls /hel"));
  assert.match(term.out, /\r\nhello\/\s+help me\r\n/, "the second Tab listed both");
  assert.deepEqual(second, line("read /hello/count "));
  assert.match(term.out, /\r\ncache\s+count\r\n/);
  assert.deepEqual(third, line("read /help\\ me "), "a space in a name is escaped");
  assert.deepEqual(fourth, line(`read ab12${"0".repeat(28)} `));
  assert.deepEqual(fifth, line("kv put x"));
});

Deno.test("LineEditor: a line wider than the terminal is written out whole when accepted", async () => {
  const long = "kv put k " + "v".repeat(100);
  const { ed, term } = editor([long, "\x01\r"], { width: 30 });
  assert.deepEqual(await ed.readLine("twz> "), line(long));
  assert.ok(term.out.includes(`twz> ${long}\x1b[K\r\n`));
  // No redraw before that ever wrote a line wider than 29 columns.
  const redraws = term.out.split("\r").filter((s) => s.startsWith("twz> ") && !s.includes(long));
  assert.ok(redraws.length > 0);
  // deno-lint-ignore no-control-regex
  for (const r of redraws) assert.ok(textWidth(r.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "")) <= 29, r);
});

Deno.test("LineEditor: restore() turns raw mode off (a signal handler mid-line)", async () => {
  let release!: () => void;
  const term = new FakeTerminal([]);
  term.read = () => new Promise((resolve) => (release = () => resolve(null)));
  const ed = new LineEditor({ io: term, history: new History() });
  const reading = ed.readLine("twz> ");
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(term.raw, true);
  ed.restore();
  assert.equal(term.raw, false);
  release();
  assert.deepEqual(await reading, { kind: "eof" });
  assert.deepEqual(term.rawChanges, [true, false], "restored once");
});

Deno.test("LineEditor: printAbove writes above the line being edited, then draws it again", async () => {
  let release!: (n: number | null) => void;
  const term = new FakeTerminal([]);
  let first = true;
  term.read = (buf) => {
    if (first) {
      first = false;
      buf.set(enc.encode("kv ge"));
      return Promise.resolve(5);
    }
    return new Promise((resolve) => (release = resolve));
  };
  const ed = new LineEditor({ io: term, history: new History() });
  ed.printAbove("before\n"); // no line being read: as it is
  assert.equal(term.out, "before\n");
  const reading = ed.readLine("twz> ");
  await new Promise((r) => setTimeout(r, 0));
  term.out = "";
  ed.printAbove("[3] napping\nsecond");
  assert.ok(term.out.startsWith("\r\x1b[K[3] napping\r\nsecond\r\n"), JSON.stringify(term.out));
  assert.match(term.out.slice("\r\x1b[K[3] napping\r\nsecond\r\n".length), /^\rtwz> kv ge/);
  release(null);
  await reading;
  term.out = "";
  ed.printAbove("after\n"); // the line is done: as it is again
  assert.equal(term.out, "after\n");
});

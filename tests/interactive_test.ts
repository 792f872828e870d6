// The interactive shell through a real pseudo-terminal: `twz boot` runs in a
// tmux pane, keys go in with send-keys, and what the terminal shows is read
// back with capture-pane (polled until it appears, with a deadline; nothing
// is timed). Every session gets its own tmux server, HOME and
// XDG_STATE_HOME, all removed in a finally. After twz exits, the pane
// prints its exit code and whether the terminal is back in canonical mode
// with echo (raw mode restored).
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAIN, twz } from "./_twz.ts";

const HAVE_TMUX = (() => {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
const IGNORE = !HAVE_TMUX;
const NO_TMUX = HAVE_TMUX ? "" : " (SKIPPED: tmux is not installed)";

/** How long to wait for a screen: a slow, shared machine boots Deno slowly. */
const DEADLINE_MS = 90_000;

/** Where Deno keeps its cache: kept when HOME changes (no downloads in the pane). */
function denoDir(): string {
  const set = Deno.env.get("DENO_DIR");
  if (set) return set;
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache");
  return join(cache, "deno");
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

let sessions = 0;

/** One `twz boot` in a tmux pane of 120×40. */
class Pane {
  readonly socket = `twz-test-${Deno.pid}-${++sessions}`;
  #socketPath = "";

  /** Start `twz boot ARGS` in `dir`, with HOME and XDG_STATE_HOME set to `home`/`state`. */
  constructor(readonly dir: string, args: string[]) {
    const env: Record<string, string> = {
      HOME: join(dir, "home"),
      XDG_STATE_HOME: join(dir, "state"),
      DENO_DIR: denoDir(),
      NO_COLOR: "1",
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      TERM: "xterm-256color",
    };
    Deno.mkdirSync(env.HOME!, { recursive: true });
    const script = join(dir, `pane-${this.socket}.sh`);
    Deno.writeTextFileSync(
      script,
      [
        // Ctrl-C goes to the whole foreground group, this shell too: it stays.
        "trap : INT",
        `cd ${shellQuote(dir)}`,
        `env -i ${Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ")} ` +
        `${shellQuote(Deno.execPath())} run -A ${shellQuote(MAIN)} boot ${
          args.map(shellQuote).join(" ")
        }`,
        `echo "[twz exited $?]"`,
        // Raw mode left on would show as -icanon / -echo here.
        `echo "[terminal $(stty -a | tr ' ;' '\\n\\n' | grep -E -x -- '-?(icanon|echo)' | tr '\\n' ' ')]"`,
        // Bracketed paste left on would wrap a paste in ESC[200~ … ESC[201~ here.
        `IFS= read -r -t 600 pasted; echo "[pasted $(printf %q "$pasted")]"`,
        "sleep 600",
      ].join("\n") + "\n",
    );
    this.#tmux([
      "new-session",
      "-d",
      "-x",
      "120",
      "-y",
      "40",
      "-s",
      "twz",
      `bash ${shellQuote(script)}`,
    ]);
    this.#socketPath = this.#tmux(["display-message", "-p", "#{socket_path}"]).trim();
  }

  #tmux(args: string[]): string {
    const out = new Deno.Command("tmux", { args: ["-L", this.socket, ...args], stderr: "piped" })
      .outputSync();
    if (!out.success) {
      throw new Error(`tmux ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout);
  }

  /** Press keys (tmux names: Enter, Up, Tab, C-c, C-d…). */
  keys(...keys: string[]): void {
    this.#tmux(["send-keys", "-t", "twz", ...keys]);
  }

  /** Type `text` as it is. */
  type(text: string): void {
    this.#tmux(["send-keys", "-t", "twz", "-l", text]);
  }

  /** Paste `text` as a terminal does (bracketed, as the shell asks). */
  paste(text: string): void {
    this.#tmux(["set-buffer", "-b", "twz-test", "--", text]);
    this.#tmux(["paste-buffer", "-p", "-d", "-b", "twz-test", "-t", "twz"]);
  }

  /** The screen and the scrollback, wrapped lines joined. */
  screen(): string {
    return this.#tmux(["capture-pane", "-p", "-J", "-S", "-200", "-t", "twz"]);
  }

  /** The line the cursor is on, up to the cursor (so a trailing space shows). */
  cursorLine(whole = false): string {
    const [x, y] = this.#tmux(["display-message", "-p", "-t", "twz", "#{cursor_x} #{cursor_y}"])
      .trim().split(" ").map(Number);
    const line = this.#tmux(["capture-pane", "-p", "-N", "-t", "twz"]).split("\n")[y!] ?? "";
    if (whole) return line.trimEnd();
    // Columns to characters: wide characters take two columns.
    let out = "";
    let column = 0;
    for (const c of line) {
      if (column >= x!) break;
      out += c;
      column +=
        /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\uff00-\uff60]|\p{Emoji_Presentation}/u
            .test(c)
          ? 2
          : 1;
    }
    return out;
  }

  /** Wait until `pattern` is on the screen; its match. */
  async waitFor(pattern: RegExp, what = String(pattern)): Promise<RegExpMatchArray> {
    const end = Date.now() + DEADLINE_MS;
    for (;;) {
      const m = this.screen().match(pattern);
      if (m) return m;
      if (Date.now() > end) {
        throw new Error(`waited in vain for ${what}; the screen:\n${this.screen()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Wait until the line the cursor is on, up to the cursor (`whole`: all of
   * it), matches `pattern`: a key's effect shown.
   */
  async waitForCursorLine(pattern: RegExp, whole = false): Promise<string> {
    const end = Date.now() + DEADLINE_MS;
    for (;;) {
      const line = this.cursorLine(whole);
      if (pattern.test(line)) return line;
      if (Date.now() > end) {
        throw new Error(
          `waited in vain for a line ${pattern}; it is "${line}"; the screen:\n${this.screen()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Prompts shown so far. */
  prompts(): number {
    return this.screen().split("\n").filter((l) => l.startsWith("twz>")).length;
  }

  /** Wait for prompt number `n` (1 is the first). */
  async waitForPrompt(n: number): Promise<void> {
    const end = Date.now() + DEADLINE_MS;
    while (this.prompts() < n) {
      if (Date.now() > end) throw new Error(`no prompt ${n}; the screen:\n${this.screen()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Wait for twz to exit: its exit code, and the terminal modes after it. */
  async exited(): Promise<{ code: number; terminal: string }> {
    const m = await this.waitFor(/\[twz exited (\d+)\]\n\[terminal ([^\]]*)\]/, "twz to exit");
    return { code: Number(m[1]), terminal: m[2]!.trim() };
  }

  /**
   * After twz exited: paste a line into the pane's shell and return what it
   * read (`after` when the terminal was left as it was found).
   */
  async pasteAfterExit(): Promise<string> {
    this.paste("after\n");
    return (await this.waitFor(/^\[pasted (.*)\]$/m, "the pasted line"))[1]!;
  }

  /** The pid of twz (the pane's shell's child). */
  twzPid(): number {
    const sh = this.#tmux(["display-message", "-p", "-t", "twz", "#{pane_pid}"]).trim();
    const children = Deno.readTextFileSync(`/proc/${sh}/task/${sh}/children`).trim();
    return Number(children.split(/\s+/)[0]);
  }

  /** Stop the tmux server (and whatever runs in it). */
  close(): void {
    try {
      this.#tmux(["kill-server"]);
    } catch { /* already gone */ }
    // tmux leaves its socket file behind.
    try {
      if (this.#socketPath !== "") Deno.removeSync(this.#socketPath);
    } catch { /* gone */ }
  }
}

/** A temporary folder for a test; `run(dir)` then the folder goes. */
async function inTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "twz-interactive-" });
  try {
    await run(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Run `body` with a pane booting `image`; the pane is closed in any case. */
async function withPane(
  dir: string,
  args: string[],
  body: (pane: Pane) => Promise<void>,
): Promise<void> {
  const pane = new Pane(dir, args);
  try {
    await body(pane);
  } finally {
    pane.close();
  }
}

const BOOT = (image: string) => ["--image", image, "--size", "8M"];

Deno.test({
  name:
    `interactive: Up recalls the line before, across two boots (the history file persists)${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type("kv put greeting hi there");
        pane.keys("Enter");
        await pane.waitForPrompt(2);
        pane.type("kv get greeting");
        pane.keys("Enter");
        await pane.waitFor(/^hi there$/m);
        await pane.waitForPrompt(3);
        // Up, Up, Down: the last line again.
        pane.keys("Up");
        await pane.waitForCursorLine(/^twz> kv get greeting\s*$/);
        pane.keys("Up");
        await pane.waitForCursorLine(/^twz> kv put greeting hi there\s*$/);
        pane.keys("Down");
        await pane.waitForCursorLine(/^twz> kv get greeting\s*$/);
        pane.keys("C-u", "C-d");
        const end = await pane.exited();
        assert.equal(end.code, 0, pane.screen());
        assert.equal(end.terminal, "icanon echo");
        assert.equal(await pane.pasteAfterExit(), "after");
        // The shutdown line is on its own line, after the last prompt.
        assert.match(pane.screen(), /\ntwz>\s*\ntwz: shut down cleanly\n/);
      });
      const path = join(dir, "state", "twz", "history");
      assert.equal(Deno.readTextFileSync(path), "kv put greeting hi there\nkv get greeting\n");
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
      assert.equal(Deno.statSync(join(dir, "state", "twz")).mode! & 0o777, 0o700);
      // The next boot: Up brings back the last line of the first, Enter runs it.
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.keys("Up");
        await pane.waitForCursorLine(/^twz> kv get greeting\s*$/);
        pane.keys("Enter");
        await pane.waitFor(/^hi there$/m);
        await pane.waitForPrompt(2);
        pane.type("kv put greeting hi again");
        pane.keys("Enter");
        await pane.waitForPrompt(3);
        pane.keys("C-d");
        assert.equal((await pane.exited()).code, 0);
      });
      assert.equal(
        Deno.readTextFileSync(join(dir, "state", "twz", "history")),
        "kv put greeting hi there\nkv get greeting\nkv put greeting hi again\n",
        "the recalled line (the same as the last one kept) is not kept twice",
      );
    });
  },
});

Deno.test({
  name:
    `interactive: Tab completes a command, a name, a directory and an ID; a second Tab lists${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      const made = await twz(
        ["boot", ...BOOT(image), "--quiet"],
        "new --name /hello/world\nnew --name /hello/wide\n",
      );
      assert.equal(made.code, 0, made.stderr);
      const id = made.stdout.trim().split("\n")[0]!.match(/[0-9a-f]{32}/)![0];
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type("hexd");
        pane.keys("Tab");
        await pane.waitForCursorLine(/^twz> hexdump $/);
        pane.type("/hel");
        pane.keys("Tab");
        await pane.waitForCursorLine(/^twz> hexdump \/hello\/$/);
        pane.type("wo");
        pane.keys("Tab");
        await pane.waitForCursorLine(/^twz> hexdump \/hello\/world $/);
        pane.keys("Enter");
        await pane.waitForPrompt(2);
        assert.doesNotMatch(pane.screen(), /hexdump: /, "the completed line ran without an error");
        // Two candidates: the first Tab adds what they share ("w"), the second lists them.
        pane.type("stat /hello/");
        pane.keys("Tab");
        pane.keys("Tab");
        await pane.waitFor(/^wide\s+world$/m, "the list of both");
        await pane.waitForCursorLine(/^twz> stat \/hello\/w$/);
        pane.keys("C-u");
        // An ID from its first hex digits.
        pane.type(`stat ${id.slice(0, 6)}`);
        pane.keys("Tab");
        await pane.waitForCursorLine(new RegExp(`^twz> stat ${id} $`));
        pane.keys("C-u", "C-d");
        assert.equal((await pane.exited()).code, 0);
      });
      // A read-only boot completes names too (completion only reads).
      await withPane(dir, [...BOOT(image), "--read-only"], async (pane) => {
        await pane.waitForPrompt(1);
        pane.type("stat /hello/wo");
        pane.keys("Tab");
        await pane.waitForCursorLine(/^twz> stat \/hello\/world $/);
        pane.keys("C-u", "C-d");
        assert.equal((await pane.exited()).code, 0);
      });
    });
  },
});

Deno.test({
  name:
    `interactive: Tab in a damaged directory completes nothing, and the shell goes on${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      // /hello's directory header overwritten: naming below it cannot be read.
      const made = await twz(
        ["boot", ...BOOT(image), "--quiet"],
        `new --name /hello/world\nwrite --force --hex /hello 0 ${"ff".repeat(64)}\n`,
      );
      assert.equal(made.code, 0, made.stderr);
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type("stat /hello/w");
        pane.keys("Tab", "Tab");
        pane.type("!");
        await pane.waitForCursorLine(/^twz> stat \/hello\/w!$/);
        pane.keys("C-u");
        pane.type("stat /hel");
        pane.keys("Tab");
        await pane.waitForCursorLine(/^twz> stat \/hello\/$/);
        pane.keys("Enter");
        await pane.waitForPrompt(2);
        pane.type("kv");
        pane.keys("Tab");
        await pane.waitForCursorLine(/^twz> kv $/);
        pane.keys("C-u", "C-d");
        const end = await pane.exited();
        assert.equal(end.terminal, "icanon echo");
        assert.match(pane.screen(), /twz: shut down cleanly/);
      });
    });
  },
});

Deno.test({
  name:
    `interactive: Ctrl-C cancels the line (it is not run); two on an empty line shut down cleanly${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type("kv put cancelled yes");
        pane.keys("C-c");
        await pane.waitFor(/^twz> kv put cancelled yes\^C$/m);
        await pane.waitForPrompt(2);
        pane.type("kv scan");
        pane.keys("Enter");
        await pane.waitForPrompt(3);
        pane.keys("C-c");
        await pane.waitFor(/Ctrl-C again or Ctrl-D shuts down/);
        await pane.waitForPrompt(4);
        pane.keys("C-c");
        const end = await pane.exited();
        assert.equal(end.code, 0, pane.screen());
        assert.equal(end.terminal, "icanon echo");
        assert.match(pane.screen(), /\ntwz> \^C\ntwz: shut down cleanly\n/);
      });
      const scan = await twz(["boot", "--image", image, "--quiet"], "kv get cancelled\n");
      assert.match(scan.stderr, /cancelled/, "the key was never put");
      assert.notEqual(scan.code, 0);
      const history = Deno.readTextFileSync(join(dir, "state", "twz", "history"));
      assert.equal(history, "kv scan\n", "a cancelled line is not kept");
    });
  },
});

Deno.test({
  name: `interactive: UTF-8 and a line wider than the pane are edited and run whole${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      const value = "日本語🙂é-" + "0123456789".repeat(20);
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type(`kv put k x${value}`);
        // Never wider than the pane while editing: the start scrolled out of view.
        await pane.waitForCursorLine(/^twz> <.*789$/);
        // Home, delete the x, End.
        pane.keys("Home");
        await pane.waitForCursorLine(/^twz> kv put k x日本語.*>$/, true);
        await pane.waitForCursorLine(/^twz> $/);
        pane.keys("Right", "Right", "Right", "Right", "Right", "Right", "Right", "Right", "Right");
        pane.keys("DC", "End", "Enter");
        await pane.waitForPrompt(2);
        pane.type("kv get k");
        pane.keys("Enter");
        await pane.waitFor(new RegExp(`^${value}$`, "m"));
        pane.keys("C-d");
        assert.equal((await pane.exited()).code, 0, pane.screen());
      });
    });
  },
});

Deno.test({
  name: `interactive: several pasted lines run one after the other${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.paste("kv put a 1\nkv put b\t2\nkv scan\n");
        await pane.waitForPrompt(4);
        await pane.waitFor(/^twz> kv scan\na\s+1\nb\s+2\n/m, "kv scan's answer");
        pane.keys("C-d");
        assert.equal((await pane.exited()).code, 0, pane.screen());
      });
      assert.equal(
        Deno.readTextFileSync(join(dir, "state", "twz", "history")),
        "kv put a 1\nkv put b 2\nkv scan\n",
        "a pasted tab is a space",
      );
    });
  },
});

Deno.test({
  name:
    `interactive: Ctrl-C ends a foreground run of a sleeping program, and the shell stays${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      const nap = join(dir, "nap.ts");
      Deno.writeTextFileSync(
        nap,
        `import type { ProgramEnv } from "@twz/libtwz/program";
export default async (env: ProgramEnv) => {
  console.log("napping");
  for (;;) { await new Promise((r) => setTimeout(r, 20)); env.port.threadYield(); }
};
`,
      );
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type(`run ${nap}`);
        pane.keys("Enter");
        await pane.waitFor(/^napping$/m);
        pane.keys("C-c");
        await pane.waitFor(/^run: .*nap.*(killed|interrupted)/m, "the run to end");
        await pane.waitForPrompt(2);
        pane.type("kv put after yes");
        pane.keys("Enter");
        await pane.waitFor(/^ok$/m);
        pane.keys("C-d");
        const end = await pane.exited();
        // The system is up until Ctrl-D; an interactive session exits 0 even
        // after a failed (here: interrupted) command.
        assert.equal(end.code, 0, pane.screen());
        assert.equal(end.terminal, "icanon echo");
        assert.match(pane.screen(), /twz: shut down cleanly/);
      });
    });
  },
});

Deno.test({
  name: `interactive: SIGTERM at the prompt restores the terminal and shuts down cleanly${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type("kv put half");
        await pane.waitForCursorLine(/^twz> kv put half$/);
        Deno.kill(pane.twzPid(), "SIGTERM");
        const end = await pane.exited();
        assert.equal(end.code, 143);
        // (Deno itself puts the tty modes back at exit; bracketed paste is the editor's to undo.)
        assert.equal(end.terminal, "icanon echo", "raw mode is off again");
        assert.equal(await pane.pasteAfterExit(), "after", "bracketed paste is off again");
        assert.match(pane.screen(), /twz: terminated; shut down cleanly/);
      });
      // It was a clean shutdown: the next boot replays nothing.
      const again = await twz(["boot", "--image", image], "");
      assert.match(again.stderr, /, 0 log records replayed/);
    });
  },
});

Deno.test({
  name:
    `interactive: a background program's output goes above the line being typed, which stays${NO_TMUX}`,
  ignore: IGNORE,
  async fn() {
    await inTempDir(async (dir) => {
      const image = join(dir, "t.img");
      const bg = join(dir, "bg.ts");
      // It waits for /go to be named, then a moment more (while the user types), then prints.
      Deno.writeTextFileSync(
        bg,
        `import type { ProgramEnv } from "@twz/libtwz/program";
export default async (env: ProgramEnv) => {
  while (!env.twz.naming.exists("/go")) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 1500));
  console.log("tick from the background");
  return 0;
};
`,
      );
      await withPane(dir, BOOT(image), async (pane) => {
        await pane.waitForPrompt(1);
        pane.type(`run ${bg} &`);
        pane.keys("Enter");
        await pane.waitFor(/^\[\d+\] bg$/m);
        // (Deno clears its own progress line once the thread's code has
        // loaded, which can blank the prompt until the next key: no wait
        // for the prompt here.)
        pane.type("mkdir /go");
        pane.keys("Enter");
        await pane.waitForPrompt(3);
        pane.type("kv get par");
        await pane.waitForCursorLine(/^twz> kv get par$/);
        await pane.waitFor(/^tick from the background$/m, "the program's line");
        // The line being typed is drawn again below it, and can be finished.
        await pane.waitForCursorLine(/^twz> kv get par$/);
        pane.type("t");
        pane.keys("Enter");
        await pane.waitFor(/: no key "part"$/m);
        pane.keys("C-d");
        assert.equal((await pane.exited()).code, 0, pane.screen());
      });
    });
  },
});

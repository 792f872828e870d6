// Run the `twz` command in a subprocess, as a user would (shared by the
// end-to-end tests). No RUST_BACKTRACE (so error output is what a user sees)
// and no colour.
import assert from "node:assert/strict";

/** The `twz` command's entry file. */
export const MAIN = new URL("../packages/cli/main.ts", import.meta.url).pathname;

/** What a run printed and returned. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where a run happens: its working directory and extra environment. */
export interface RunPlace {
  /** Working directory (default: the test's). */
  cwd?: string;
  /** Variables added to the environment. */
  env?: Record<string, string>;
}

/**
 * Run `twz ARGS`, with `input` on stdin (stdin is empty when absent).
 *
 * @param args Command-line arguments.
 * @param input Text for stdin.
 * @param place Working directory and extra environment.
 */
export function twz(args: string[], input?: string, place: RunPlace = {}): Promise<Run> {
  const env = userEnv(place.env);
  return runProcess(Deno.execPath(), ["run", "-A", MAIN, ...args], {
    ...(place.cwd !== undefined ? { cwd: place.cwd } : {}),
    env,
    ...(input !== undefined ? { input } : {}),
  });
}

/**
 * The environment a user's command sees in these tests: this process's,
 * without RUST_BACKTRACE (so error output is what a user sees), no colour,
 * then `extra`.
 */
export function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1", ...extra };
  delete env.RUST_BACKTRACE;
  return env;
}

/**
 * Run `cmd ARGS` with exactly the environment `env` (nothing inherited),
 * `input` on stdin (stdin is empty when absent), and collect what it
 * printed and its exit code.
 */
export async function runProcess(
  cmd: string,
  args: string[],
  options: { cwd?: string; env: Record<string, string>; input?: string },
): Promise<Run> {
  const child = new Deno.Command(cmd, {
    args,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    stdin: options.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
    clearEnv: true,
  }).spawn();
  if (options.input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.input));
    await writer.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * The one-line, no-stack-trace error contract: exit `code`, exactly one
 * line on stderr matching `pattern`, no trace.
 */
export function assertOneLineError(r: Run, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  const errs = r.stderr.split("\n").filter((l) => l.length > 0);
  assert.equal(errs.length, 1, `one error line, got:\n${r.stderr}`);
  assert.match(errs[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at |Stack backtrace|error: Uncaught/);
}

/**
 * A `twz boot` that stays up: commands go to its stdin one at a time, and
 * each answer is awaited on its stdout, so a test knows what the session has
 * acknowledged. `pid` is the Deno process itself (no wrapper).
 */
export class BootSession {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  #stderr: Promise<string>;

  /** Start `twz boot ARGS`. */
  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "boot", ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.pid = this.child.pid;
    this.#writer = this.child.stdin.getWriter();
    this.#lines = splitLines(this.child.stdout.pipeThrough(new TextDecoderStream()));
    this.#stderr = new Response(this.child.stderr).text();
  }

  /** Send one command and return the first line it prints on stdout. */
  async ask(command: string): Promise<string> {
    await this.#writer.write(new TextEncoder().encode(command + "\n"));
    const next = await this.#lines.next();
    if (next.done) throw new Error(`the session ended before answering "${command}"`);
    return next.value;
  }

  /** End stdin (a clean shutdown) and wait for the exit; `stdout` is what was not asked for. */
  async end(): Promise<Run> {
    await this.#writer.close();
    let stdout = "";
    for (let next = await this.#lines.next(); !next.done; next = await this.#lines.next()) {
      stdout += next.value + "\n";
    }
    const status = await this.child.status;
    return { code: status.code, stdout, stderr: await this.#stderr };
  }

  /** kill -9, and wait until the process is gone. */
  async kill(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.child.status;
    try {
      await this.#writer.close();
    } catch { /* the pipe is gone with the process */ }
    for (;;) if ((await this.#lines.next()).done) break;
    await this.#stderr;
  }
}

async function* splitLines(stream: ReadableStream<string>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  if (pending.length > 0) yield pending;
}

// Run the `twz` command in a subprocess, as a user would (shared by the
// end-to-end tests). No RUST_BACKTRACE (so error output is what a user sees)
// and no colour.

const MAIN = new URL("../packages/cli/main.ts", import.meta.url).pathname;

/** What a run printed and returned. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `twz ARGS`, with `input` on stdin (stdin is empty when absent).
 *
 * @param args Command-line arguments.
 * @param input Text for stdin.
 */
export async function twz(args: string[], input?: string): Promise<Run> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.RUST_BACKTRACE;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env,
    clearEnv: true,
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

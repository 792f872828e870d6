/**
 * The client side of the control socket a running `twz boot` listens on
 * (`IMAGE.sock`; the protocol is described in `control.ts`), and the
 * connection helpers the server shares: {@linkcode runRemote} is what
 * `twz run` does when another process holds the image: the booted system
 * runs the program, its console output comes back over the socket, and the
 * exit code is the program's. The remote kernel port (`Twz.open` on a held
 * image) is libtwz's `_remote.ts`.
 *
 * @module
 */
import { ErrorCode, type ThreadFault, TwzError } from "@twz/kernel/abi";

/** The version the greeting line carries (`twz-control 1 PID`). */
export const CONTROL_PROTOCOL = 1;

/** Where the control socket of an image is: beside it, `IMAGE.sock`. */
export function controlPath(image: string): string {
  return `${image}.sock`;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Something bytes can be read from, like a `Deno.Conn`. */
export interface ByteSource {
  /** Read into `p`; the count read, or `null` at the end. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Something bytes can be written to, like a `Deno.Conn`. */
export interface ByteSink {
  /** Write some of `p`; returns how many bytes were written. */
  write(p: Uint8Array): Promise<number>;
}

/** Write all of `bytes` (a connection may take them in pieces). */
export async function writeAll(sink: ByteSink, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await sink.write(bytes.subarray(at));
}

/**
 * A buffered reader of lines and length-prefixed frames over a connection.
 */
export class SocketReader {
  #buf = new Uint8Array(4096);
  #start = 0;
  #end = 0;
  /**
   * A reader over a connection.
   *
   * @param source The connection.
   */
  constructor(readonly source: ByteSource) {}

  /** Read more bytes; false at the end of the stream. */
  async #fill(): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      const size = this.#end - this.#start;
      const next = size * 2 > this.#buf.length ? new Uint8Array(this.#buf.length * 2) : this.#buf;
      next.set(this.#buf.subarray(this.#start, this.#end), 0);
      this.#buf = next;
      this.#start = 0;
      this.#end = size;
    }
    const n = await this.source.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /**
   * One line without its `\n`, or `null` at the end of the stream.
   *
   * @throws {RangeError} The line is longer than `max` bytes.
   */
  async line(max = 1 << 20): Promise<string | null> {
    let scanned = this.#start;
    for (;;) {
      const nl = this.#buf.subarray(scanned, this.#end).indexOf(10);
      if (nl >= 0) {
        const end = scanned + nl;
        const text = fromUtf8.decode(this.#buf.subarray(this.#start, end));
        this.#start = end + 1;
        return text;
      }
      if (this.#end - this.#start > max) throw new RangeError(`line longer than ${max} bytes`);
      scanned = this.#end;
      const before = this.#start;
      if (!(await this.#fill())) return null;
      scanned += this.#start - before; // the buffer may have been compacted
    }
  }

  /** Exactly `n` bytes (a copy), or `null` when the stream ends first. */
  async exact(n: number): Promise<Uint8Array | null> {
    while (this.#end - this.#start < n) {
      if (!(await this.#fill())) return null;
    }
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** One frame (`u32` little-endian length, then that many bytes), or `null` at the end. */
  async frame(max = 1 << 30): Promise<Uint8Array | null> {
    const head = await this.exact(4);
    if (head === null) return null;
    const n = new DataView(head.buffer).getUint32(0, true);
    if (n > max) throw new RangeError(`frame of ${n} bytes is larger than ${max}`);
    return await this.exact(n);
  }
}

/** A frame: `u32` little-endian length, then the bytes. */
export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, true);
  out.set(payload, 4);
  return out;
}

/** What {@linkcode runRemote} writes to. */
export interface RemoteIO {
  /** The program's console output, as it comes (no newline added). */
  out(text: string): void;
  /** One line for the user (errors, the fault report). */
  err(line: string): void;
}

/** What the system reports when a program ended (`exit` line). */
export interface RemoteExit {
  /** The exit code. */
  code: number;
  /** The program's name. */
  name: string;
  /** The thread number it ran as. */
  tid: number;
  /** The fault that ended it, if one did. */
  fault: ThreadFault | null;
}

async function dial(path: string): Promise<Deno.UnixConn | undefined> {
  try {
    const info = Deno.statSync(path);
    if (info.isSocket !== true) return undefined;
  } catch {
    return undefined;
  }
  try {
    return await Deno.connect({ transport: "unix", path });
  } catch {
    return undefined; // a stale socket: nothing listens
  }
}

async function greet(reader: SocketReader, path: string): Promise<void> {
  const hello = await reader.line(4096);
  const m = hello === null ? null : /^twz-control (\d+) /.exec(hello);
  if (m === null) {
    throw new TwzError(ErrorCode.NotSupported, `${path} does not speak the twz control protocol`);
  }
  if (Number(m[1]) !== CONTROL_PROTOCOL) {
    throw new TwzError(
      ErrorCode.NotSupported,
      `${path} speaks control protocol ${m[1]}, not ${CONTROL_PROTOCOL}: use that system's twz`,
    );
  }
}

/**
 * Whether `target` names a program file rather than a name in `/bin`: it
 * has a `/` or ends in `.ts`, `.tsx`, `.js` or `.mjs` (the rule of `twz run`).
 */
export function isProgramFile(target: string): boolean {
  return target.includes("/") || /\.(ts|tsx|js|mjs)$/.test(target);
}

function absolute(path: string): string {
  if (path.startsWith("/")) return path;
  const cwd = Deno.cwd();
  return `${cwd.endsWith("/") ? cwd : `${cwd}/`}${path.replace(/^\.\//, "")}`;
}

/**
 * Run a program on the system that holds `image`, through its control
 * socket: a FILE (resolved against this process's working directory) is
 * bundled and installed there, a NAME runs from its `/bin`. The program's
 * console output goes to `io.out` as it comes; a fault is reported on
 * `io.err`. Closing the connection early (this process ends) asks the
 * system to kill the program.
 *
 * @param image The image path (`IMAGE.sock` beside it is dialled).
 * @param target A program file or a name in `/bin`.
 * @param args The program's arguments.
 * @param io Where output and messages go.
 * @returns The program's exit code (1 when it could not be started), or
 *   `undefined` when no system listens beside the image.
 * @example
 * ```ts ignore
 * import { runRemote } from "./control_client.ts";
 * const code = await runRemote("./twz.img", "examples/hello.ts", [], {
 *   out: (t) => Deno.stdout.writeSync(new TextEncoder().encode(t)),
 *   err: (line) => console.error(line),
 * });
 * ```
 */
export async function runRemote(
  image: string,
  target: string,
  args: string[],
  io: RemoteIO,
  contexts: string[] = [],
): Promise<number | undefined> {
  const path = controlPath(image);
  const conn = await dial(path);
  if (conn === undefined) return undefined;
  try {
    const reader = new SocketReader(conn);
    await greet(reader, path);
    const what = isProgramFile(target) ? absolute(target) : target;
    await writeAll(
      conn,
      utf8.encode(`run ${JSON.stringify({ target: what, args, contexts })}\n`),
    );
    for (;;) {
      const line = await reader.line();
      if (line === null) {
        io.err(`twz: the system holding ${image} went away before the program ended`);
        return 1;
      }
      const sp = line.indexOf(" ");
      const verb = sp < 0 ? line : line.slice(0, sp);
      const rest = sp < 0 ? "" : line.slice(sp + 1);
      if (verb === "out") io.out(JSON.parse(rest) as string);
      else if (verb === "exit") {
        const end = JSON.parse(rest) as RemoteExit;
        if (end.fault !== null) {
          io.err(`twz: ${end.name} ended with a fault (${end.fault.kind}): ${end.fault.message}`);
        }
        return end.code;
      } else if (verb === "error") {
        io.err(`twz: ${JSON.parse(rest) as string}`);
        return 1;
      }
      // Unknown lines are ignored: a newer system may say more.
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

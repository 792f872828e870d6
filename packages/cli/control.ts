/**
 * The control socket: a running `twz boot` listens on a Unix socket beside
 * its image (`IMAGE.sock`, mode 0600, removed at shutdown), so that a second
 * process can use the system the first one holds instead of being refused
 * by the image lock: `twz run FILE|NAME` from another terminal, and a script's
 * libtwz session (`control_client.ts`).
 *
 * Only a writable boot of an image file listens (an anonymous region has no
 * place for a socket; a read-only boot holds a shared lock other read-only
 * openers can share). A socket file left by a boot that crashed is found
 * when nothing answers on it, and replaced; a path that is not a socket, or
 * a socket something answers on, is left alone and nothing listens.
 *
 * ## The protocol (version 1)
 *
 * Lines are UTF-8 and end with `\n`; JSON values are on one line. On
 * connecting, the system says `twz-control 1 PID`. The client then sends one
 * command:
 *
 * - `ping` → `pong` (and another command may follow).
 * - `run {"target": T, "args": [...]}` — run a program: `T` is an absolute
 *   path of a program file (the system bundles it, stores it in `/bin` and
 *   starts it) or a name in `/bin`. The system answers `out "TEXT"` for each
 *   console write of the program, as it comes, then one
 *   `exit {"code": N, "name": NAME, "tid": TID, "fault": null | {"kind", "message"}}`
 *   — or `error "MESSAGE"` when it could not start the program. The
 *   connection then closes. A client that hangs up first asks the system to
 *   kill the program.
 * - `port` → `ok`, and the connection becomes a port session: from then on
 *   both sides send frames (a `u32` little-endian length, then that many
 *   bytes). A request frame is one system call in the kernel port's encoding
 *   (`encodeRequest` of `@twz/kernel/abi`); the answer frame is one byte
 *   `0` followed by the port's response encoding (`encodeResponse`: result or
 *   `TwzError`), or one byte `1` followed by JSON `{"name", "message"}` for an
 *   error that is not a `TwzError` (a `RangeError`, say). Arguments are those
 *   of the `KernelPort` method, except: `map` answers
 *   `{id, lifetime, prot, handle, bytes}` (a copy of the object's bytes);
 *   `flush` and `persist` take `[triples, count, data]` where `data[i]` holds
 *   the bytes of range `i`, which the system writes into the object before
 *   flushing; `delete` answers `{count, gone}`, `gone` being the session's
 *   mapping handles whose objects went. The security calls (keys,
 *   contexts, grants, `access`; Sys 28–43) run as the system's admin — the
 *   kernel's own session, as the shell does (docs/SECURITY.md) — and the
 *   asynchronous ones (`keyCreate`, `keyRotate`, `ctxAttach`, `access`) are
 *   answered once settled; the gate calls answer `NotSupported` (the admin
 *   serves and calls no gates). `global` (Sys 44) takes `[op, args]` and
 *   runs as the admin too (`NotSupported` when the system is not a node of
 *   a cluster); `dependents` (Sys 45) lists the objects tied to an object,
 *   for the admin too. Closing the connection ends the
 *   session and its mappings. A session does not outlive a `reboot` or
 *   `crash` of the shell: its calls then fail with `Shutdown`.
 *
 * @module
 */
import type { Kernel } from "@twz/kernel";
import {
  type CreateSpec,
  decodeRequest,
  EncodeOverflow,
  encodeResponse,
  ErrorCode,
  formatId,
  type GlobalOp,
  type GlobalOps,
  type KernelPort,
  type KeySpec,
  type Mapping,
  type ObjID,
  type SpawnSpec,
  type SyncOp,
  Sys,
  type ThreadInfo,
  ThreadState,
  TwzError,
} from "@twz/kernel/abi";
import type { Board } from "./board.ts";
import { CONTROL_PROTOCOL, controlPath, frame, SocketReader, writeAll } from "./control_client.ts";

export { controlPath };

const utf8 = new TextEncoder();

/**
 * Runs a program for a client (the board's thread system does it: `twz
 * run`'s own function). Resolves with the thread when it has ended.
 */
export type RunProgram = (
  target: string,
  args: string[],
  console: (text: string) => void,
  signal: AbortSignal,
  contexts: string[],
) => Promise<ThreadInfo>;

/** Options for {@linkcode startControl}. */
export interface ControlOptions {
  /**
   * Run a program (`run` command): `target` is an absolute program file
   * path or a name in `/bin`; `console` receives the program's console
   * writes; `signal` aborts when the client hangs up (kill the program).
   * Absent: `run` answers that this system cannot run programs.
   */
  run?: RunProgram | undefined;
  /** Where warnings go (a socket that cannot be made). @default {console.error} */
  warn?: ((line: string) => void) | undefined;
}

/** A listening control socket. */
export interface ControlServer {
  /** The socket's path (`IMAGE.sock`). */
  readonly path: string;
  /**
   * Stop listening, end every connection and remove the socket file (the
   * file goes before this returns its promise). Harmless twice.
   */
  close(): Promise<void>;
}

function arg<T>(
  args: unknown[],
  i: number,
  type: "bigint" | "number" | "string",
  what: string,
): T {
  const v = args[i];
  const ok = type === "bigint"
    ? typeof v === "bigint"
    : type === "number"
    ? typeof v === "number"
    : typeof v === "string";
  if (!ok) {
    throw new TwzError(ErrorCode.InvalidArgument, `${what}: argument ${i + 1} is not a ${type}`);
  }
  return v as T;
}

const id = (args: unknown[], i = 0) => arg<ObjID>(args, i, "bigint", "object ID");
const num = (args: unknown[], i: number) => arg<number>(args, i, "number", "number");
const optNum = (args: unknown[], i: number) => args[i] === undefined ? undefined : num(args, i);

/** An optional plain-object argument (a spec); the port checks its fields. */
function spec<T>(args: unknown[], i: number, what: string): T | undefined {
  const v = args[i];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) {
    throw new TwzError(ErrorCode.InvalidArgument, `${what}: argument ${i + 1} is not an object`);
  }
  return v as T;
}

/** One port session: the system calls of one connection, over the current kernel. */
class PortSession {
  readonly #board: Board;
  readonly #kernel: Kernel;
  readonly #port: KernelPort;
  readonly #maps = new Map<number, Mapping>();

  constructor(board: Board) {
    this.#board = board;
    this.#kernel = board.kernel;
    this.#port = board.kernel.port();
  }

  #mapping(handle: number): Mapping {
    const m = this.#maps.get(handle);
    if (m === undefined) throw new TwzError(ErrorCode.InvalidArgument, `no mapping ${handle}`);
    return m;
  }

  /** Write the client's bytes of each range into the objects. */
  #takeRanges(args: unknown[]): [Float64Array, number] {
    const ranges = args[0], count = args[1], data = args[2];
    if (
      !(ranges instanceof Float64Array) || typeof count !== "number" || !Array.isArray(data) ||
      ranges.length < 3 * count || data.length !== count
    ) {
      throw new TwzError(ErrorCode.InvalidArgument, "flush: expected [triples, count, data]");
    }
    for (let i = 0; i < count; i++) {
      const m = this.#mapping(ranges[3 * i]!);
      const off = ranges[3 * i + 1]!, len = ranges[3 * i + 2]!;
      const bytes = data[i];
      if (!(bytes instanceof Uint8Array) || bytes.length !== len) {
        throw new TwzError(ErrorCode.InvalidArgument, `flush: range ${i} has no bytes of its own`);
      }
      if (!(off >= 0 && len >= 0 && off + len <= m.bytes.length)) {
        throw new RangeError(
          `Range [${off}, ${off + len}) is outside ${formatId(m.id)} (${m.bytes.length} bytes)`,
        );
      }
      const target = m.bytes.subarray(off, off + len);
      if (!m.writable) {
        if (target.every((b, j) => b === bytes[j])) continue;
        throw new TwzError(
          ErrorCode.AccessDenied,
          `Cannot write ${formatId(m.id)}: it is mapped read-only`,
        );
      }
      target.set(bytes);
    }
    return [ranges, count];
  }

  /** Answer one system call. */
  async call(sys: number, args: unknown[]): Promise<unknown> {
    if (this.#board.kernel !== this.#kernel) {
      throw new TwzError(
        ErrorCode.Shutdown,
        "the system rebooted since this session began; connect again",
      );
    }
    const p = this.#port;
    switch (sys) {
      case Sys.Create:
        return p.create(args[0] as CreateSpec | undefined);
      case Sys.Delete: {
        const count = p.delete(id(args));
        const gone: number[] = [];
        for (const [h, m] of this.#maps) {
          if (m.bytes.length === 0) { // the kernel empties the extents of what it deleted
            gone.push(h);
            this.#maps.delete(h);
          }
        }
        return { count, gone };
      }
      case Sys.Stat:
        return p.stat(id(args));
      case Sys.Dependents:
        return p.dependents(id(args));
      case Sys.Exists:
        return p.exists(id(args));
      case Sys.List:
        return p.list();
      case Sys.Map: {
        const m = args[1] === undefined ? p.map(id(args)) : p.map(id(args), num(args, 1));
        this.#maps.set(m.handle, m);
        return { id: m.id, lifetime: m.lifetime, prot: m.prot, handle: m.handle, bytes: m.bytes };
      }
      case Sys.Unmap: {
        const h = num(args, 0);
        const m = this.#maps.get(h);
        if (m !== undefined) {
          p.unmap(m);
          this.#maps.delete(h);
        }
        return undefined;
      }
      case Sys.Grow:
        return p.grow(id(args), num(args, 1));
      case Sys.Flush:
        return p.flush(...this.#takeRanges(args));
      case Sys.Persist:
        return p.persist(...this.#takeRanges(args));
      case Sys.Drain:
        return p.drain();
      case Sys.Read:
        return p.read(id(args), num(args, 1), num(args, 2));
      case Sys.Write: {
        const data = args[2];
        if (!(data instanceof Uint8Array)) {
          throw new TwzError(ErrorCode.InvalidArgument, "write: argument 3 is not bytes");
        }
        return p.write(id(args), num(args, 1), data);
      }
      case Sys.RootObject:
        return p.rootObject();
      case Sys.RootObjectId:
        return p.rootObjectId();
      case Sys.Info:
        return p.info();
      case Sys.ThreadSelf:
        return null;
      case Sys.Spawn:
        return p.spawn(args[0] as SpawnSpec);
      case Sys.Threads:
        return p.threads();
      case Sys.ThreadKill:
        return p.threadKill(num(args, 0));
      case Sys.ThreadWait:
        return await this.#wait(num(args, 0), num(args, 1));
      case Sys.ThreadYield:
        return undefined;
      case Sys.ThreadSync:
        return p.threadSync(args[0] as SyncOp[]);
      case Sys.ConsoleWrite:
        return p.consoleWrite(arg<string>(args, 0, "string", "console text"));
      case Sys.Clock:
        return p.clock();
      case Sys.Random:
        return p.random(num(args, 0));
      // Security: the session is the system's admin (the kernel's own port).
      case Sys.KeyCreate:
        return await p.keyCreate(spec<KeySpec>(args, 0, "key spec"));
      case Sys.KeyRotate:
        return await p.keyRotate(id(args), spec<KeySpec>(args, 1, "key spec"));
      case Sys.KeyInfo:
        return p.keyInfo(id(args));
      case Sys.CtxCreate:
        return p.ctxCreate(spec<{ key?: ObjID }>(args, 0, "context spec"));
      case Sys.CtxInfo:
        return p.ctxInfo(id(args));
      case Sys.CtxAdd: {
        const grant = args[1];
        if (!(grant instanceof Uint8Array)) {
          throw new TwzError(ErrorCode.InvalidArgument, "ctx_add: argument 2 is not bytes");
        }
        return p.ctxAdd(id(args), grant);
      }
      case Sys.CtxRemove:
        return p.ctxRemove(id(args), num(args, 1));
      case Sys.CtxMask: {
        const prot = args[2] === null ? null : num(args, 2);
        return p.ctxMask(id(args), id(args, 1), prot);
      }
      case Sys.CtxAttach:
        return await p.ctxAttach(id(args), optNum(args, 1));
      case Sys.CtxDetach:
        return p.ctxDetach(id(args), optNum(args, 1));
      case Sys.Contexts:
        return p.contexts();
      case Sys.Access: {
        const list = args[1];
        if (
          list !== undefined && !(Array.isArray(list) && list.every((x) => typeof x === "bigint"))
        ) {
          throw new TwzError(ErrorCode.InvalidArgument, "access: argument 2 is not a list of IDs");
        }
        return await p.access(id(args), list as ObjID[] | undefined);
      }
      case Sys.GateServe:
        return p.gateServe(id(args));
      case Sys.GateReceive:
        return p.gateReceive(num(args, 0));
      case Sys.GateReply: {
        const result = args[1];
        if (!(result instanceof Uint8Array)) {
          throw new TwzError(ErrorCode.InvalidArgument, "gate_reply: argument 2 is not bytes");
        }
        return p.gateReply(num(args, 0), result);
      }
      case Sys.GateCall: {
        const bytes = args[2];
        if (!(bytes instanceof Uint8Array)) {
          throw new TwzError(ErrorCode.InvalidArgument, "gate_call: argument 3 is not bytes");
        }
        return p.gateCall(id(args), num(args, 1), bytes, optNum(args, 3));
      }
      case Sys.Global:
        // [op, args], checked by the port (one-line InvalidArgument); the
        // session is the admin, as for the security calls.
        return p.global(args[0] as GlobalOp, args[1] as GlobalOps[GlobalOp][0]);
      default:
        throw new TwzError(
          ErrorCode.NotSupported,
          `system call ${sys} is not offered over the control socket`,
        );
    }
  }

  /** Wait for a thread here, in the system: the client is blocked meanwhile. */
  async #wait(tid: number, timeoutMs: number): Promise<ThreadInfo> {
    const deadline = Date.now() + Math.max(0, timeoutMs);
    for (;;) {
      const t = this.#port.threads().find((x) => x.tid === tid);
      if (t === undefined) throw new TwzError(ErrorCode.ObjectNotFound, `no thread ${tid}`);
      if (t.state === ThreadState.Exited || Date.now() >= deadline) return t;
      await new Promise((r) => setTimeout(r, Math.min(20, Math.max(1, deadline - Date.now()))));
    }
  }

  /** Forget the session's mappings. */
  close(): void {
    for (const m of this.#maps.values()) {
      try {
        this.#port.unmap(m);
      } catch { /* the kernel is gone */ }
    }
    this.#maps.clear();
  }
}

let scratch = new Uint8Array(65536);

/** The answer frame for a result or an error. */
function answer(result: unknown, error?: unknown): Uint8Array {
  if (error !== undefined && !(error instanceof TwzError)) {
    const e = error instanceof Error ? error : new Error(String(error));
    const json = utf8.encode(JSON.stringify({ name: e.name, message: e.message }));
    const out = new Uint8Array(1 + json.length);
    out[0] = 1;
    out.set(json, 1);
    return frame(out);
  }
  for (;;) {
    try {
      const n = encodeResponse(scratch.subarray(1), result, error as TwzError | undefined);
      scratch[0] = 0;
      return frame(scratch.subarray(0, 1 + n));
    } catch (e) {
      if (!(e instanceof EncodeOverflow) || scratch.length >= 1 << 30) throw e;
      scratch = new Uint8Array(scratch.length * 4);
    }
  }
}

class Server implements ControlServer {
  readonly #conns = new Set<Deno.Conn>();
  readonly #sessions = new Set<PortSession>();
  #closed = false;
  readonly #loop: Promise<void>;
  readonly #ino: number | null;

  constructor(
    readonly path: string,
    readonly listener: Deno.Listener,
    readonly board: Board,
    readonly options: ControlOptions,
  ) {
    this.#ino = Deno.statSync(path).ino;
    this.#loop = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.listener) {
        if (this.#closed) {
          conn.close();
          break;
        }
        this.#conns.add(conn);
        this.#serve(conn).finally(() => {
          this.#conns.delete(conn);
          try {
            conn.close();
          } catch { /* closed */ }
        });
      }
    } catch {
      // The listener was closed.
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const reader = new SocketReader(conn);
    const send = (line: string) => writeAll(conn, utf8.encode(`${line}\n`));
    try {
      await send(`twz-control ${CONTROL_PROTOCOL} ${Deno.pid}`);
      for (;;) {
        const line = await reader.line();
        if (line === null) return;
        const sp = line.indexOf(" ");
        const verb = sp < 0 ? line : line.slice(0, sp);
        const rest = sp < 0 ? "" : line.slice(sp + 1);
        if (verb === "") continue;
        if (verb === "ping") await send("pong");
        else if (verb === "run") return await this.#run(reader, send, rest);
        else if (verb === "port") {
          await send("ok");
          return await this.#session(conn, reader);
        } else await send(`error ${JSON.stringify(`unknown command "${verb}"`)}`);
      }
    } catch {
      // The client went away, or sent something unreadable: drop it.
    }
  }

  async #run(
    reader: SocketReader,
    send: (line: string) => Promise<void>,
    text: string,
  ): Promise<void> {
    let request: { target?: unknown; args?: unknown; contexts?: unknown };
    try {
      request = JSON.parse(text);
    } catch {
      return await send(`error ${JSON.stringify("run takes a JSON object")}`);
    }
    const { target, args = [], contexts = [] } = request ?? {};
    if (
      typeof target !== "string" || !Array.isArray(args) ||
      !args.every((a) => typeof a === "string") || !Array.isArray(contexts) ||
      !contexts.every((c) => typeof c === "string")
    ) {
      return await send(
        `error ${
          JSON.stringify(
            'run takes {"target": FILE or NAME, "args": [strings], "contexts": [strings]}',
          )
        }`,
      );
    }
    const run = this.options.run;
    if (run === undefined) {
      return await send(`error ${JSON.stringify("this system cannot run programs")}`);
    }
    // The client sends nothing more: the end of its stream is a hang-up.
    const hangup = new AbortController();
    reader.line().then(() => hangup.abort(), () => hangup.abort());
    let output = Promise.resolve();
    const consoleOut = (chunk: string) => {
      if (hangup.signal.aborted) return;
      output = output.then(() => send(`out ${JSON.stringify(chunk)}`)).catch(() => {
        hangup.abort();
      });
    };
    let info: ThreadInfo;
    try {
      info = await run(
        target,
        args as string[],
        consoleOut,
        hangup.signal,
        contexts as string[],
      );
    } catch (error) {
      await output;
      const message = String((error as Error)?.message ?? error).split("\n")[0]!;
      return await send(`error ${JSON.stringify(message)}`);
    }
    await output;
    await send(
      `exit ${
        JSON.stringify({ code: info.exitCode, name: info.name, tid: info.tid, fault: info.fault })
      }`,
    );
  }

  async #session(conn: Deno.Conn, reader: SocketReader): Promise<void> {
    const session = new PortSession(this.board);
    this.#sessions.add(session);
    try {
      for (;;) {
        const request = await reader.frame();
        if (request === null) return;
        let reply: Uint8Array;
        try {
          const { sys, args } = decodeRequest(request, request.length);
          reply = answer(await session.call(sys, args));
        } catch (error) {
          reply = answer(undefined, error);
        }
        await writeAll(conn, reply);
      }
    } finally {
      session.close();
      this.#sessions.delete(session);
    }
  }

  /** Remove the socket file if it is still the one this server made. */
  #unlink(): void {
    try {
      const info = Deno.statSync(this.path);
      if (info.isSocket === true && info.ino === this.#ino) Deno.removeSync(this.path);
    } catch { /* gone */ }
  }

  async close(): Promise<void> {
    if (this.#closed) return await this.#loop;
    this.#closed = true;
    this.#unlink();
    try {
      this.listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    for (const s of this.#sessions) s.close();
    await this.#loop;
  }
}

/**
 * Whether a socket file at `path` is stale (nothing answers on it). A path
 * that does not exist is not stale; one that is not a socket is `"other"`.
 */
async function socketState(path: string): Promise<"absent" | "stale" | "live" | "other"> {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return "absent";
  }
  if (info.isSocket !== true) return "other";
  try {
    const c = await Deno.connect({ transport: "unix", path });
    c.close();
    return "live";
  } catch {
    return "stale";
  }
}

/**
 * Listen on the control socket beside the board's image.
 *
 * @param board The booted board (its current kernel answers; `reboot` and
 *   `crash` of the shell are followed).
 * @param options How to run programs, where warnings go.
 * @returns The server, or `undefined` when nothing listens: an anonymous
 *   region, a read-only boot, or a socket path that is taken (warned).
 * @example
 * ```ts ignore
 * import { startControl } from "./control.ts";
 * const control = await startControl(board, { run: (t, a, out) => runIt(t, a, out) });
 * // ... the shell runs ...
 * await control?.close();
 * ```
 */
export async function startControl(
  board: Board,
  options: ControlOptions = {},
): Promise<ControlServer | undefined> {
  const image = board.hal.image;
  if (image === undefined || board.hal.readOnly === true || board.options.readOnly === true) {
    return undefined;
  }
  const warn = options.warn ?? ((line: string) => console.error(line));
  const path = controlPath(image);
  const state = await socketState(path);
  if (state === "other") {
    warn(
      `twz: warning: ${path} exists and is not a socket; no control socket (twz run from another terminal will be refused)`,
    );
    return undefined;
  }
  if (state === "live") {
    warn(`twz: warning: another process answers on ${path}; no control socket of this boot`);
    return undefined;
  }
  if (state === "stale") {
    // Left by a boot that ended without removing it (killed, crashed): this
    // process holds the image lock, so no live system can own it.
    try {
      Deno.removeSync(path);
    } catch (error) {
      warn(`twz: warning: cannot remove the stale socket ${path}: ${(error as Error).message}`);
      return undefined;
    }
  }
  let listener: Deno.Listener;
  const mask = Deno.umask(0o077); // the socket is born 0600: only this user may connect
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch (error) {
    warn(`twz: warning: cannot listen on ${path}: ${(error as Error).message}`);
    return undefined;
  } finally {
    Deno.umask(mask);
  }
  try {
    Deno.chmodSync(path, 0o600);
  } catch { /* the umask made it so already */ }
  return new Server(path, listener, board, options);
}

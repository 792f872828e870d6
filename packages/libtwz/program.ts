/**
 * The program runtime: what a Twizzler program runs on inside its thread.
 *
 * A program is a module whose default export is
 * `async function main(env, args)`. `twz run` bundles it with a small entry
 * whose default export, the thread's start function, is
 * `(init) => startProgram(init, main)`: {@linkcode startProgram} connects the
 * kernel port over the thread's channel, opens a libtwz session on it
 * (`env.twz`), routes `console` through the port, runs `main`, and reports
 * how the thread ended (exit code and fault) with the `thread_exit` system
 * call.
 *
 * How a program ends:
 * - `main` returns a number: that is the exit code (0–255); anything else: 0.
 * - `env.exit(code)`: ends at once with `code`.
 * - `main` throws: exit code 1 and a fault — `protection` for a `TwzError`
 *   `ReadOnly` or `AccessDenied` (a write through a read-only handle),
 *   `memory` for a `RangeError` (an access outside an object), `exception`
 *   for anything else; its stack goes to the console.
 * - the thread is killed (a system call throws `TwzError` `Killed`): exit
 *   code {@linkcode KILLED_EXIT}, fault `killed`.
 *
 * @example A program
 * ```ts
 * import type { ProgramEnv } from "@twz/libtwz/program";
 *
 * export default function main(env: ProgramEnv, args: string[]): number {
 *   const obj = env.twz.create({ size: 4096 });
 *   obj.write(obj.baseOffset, new TextEncoder().encode(args.join(" ")));
 *   env.console.log(`hello from thread ${env.thread.tid}`);
 *   return 0;
 * }
 * ```
 *
 * @module
 */
import {
  connectPort,
  ErrorCode,
  type KernelPort,
  type ThreadFault,
  type ThreadInfo,
  type ThreadInit,
  ThreadState,
  TwzError,
} from "@twz/kernel/abi";
import { Twz } from "./twz.ts";

/** The exit code of a killed thread (128 + SIGKILL, as a shell reports it). */
export const KILLED_EXIT = 137;

/** The console of a program: text written through the kernel port. */
export interface ProgramConsole {
  /** Write `text` as it is (no newline added). */
  write(text: string): void;
  /** Write the arguments, formatted as `console.log` does, and a newline. */
  log(...data: unknown[]): void;
  /** Like {@linkcode ProgramConsole.log} (the system console has one stream). */
  error(...data: unknown[]): void;
}

/** What a program gets (`main(env, args)`). */
export interface ProgramEnv {
  /**
   * A libtwz session on the kernel port: objects, names, transactions
   * (opened on first use; closed when the program ends).
   */
  readonly twz: Twz;
  /** The kernel port itself (system calls). */
  readonly port: KernelPort;
  /** The program's arguments (the same array `main` gets). */
  readonly args: string[];
  /** The program's name (`/bin/NAME`). */
  readonly name: string;
  /** The thread running the program, as it was when first asked. */
  readonly thread: ThreadInfo;
  /** The console (also what the global `console` writes to inside a thread). */
  readonly console: ProgramConsole;
  /**
   * End the program now with `code` (0–255).
   * @throws {ProgramExit} Always: it unwinds `main`; do not catch it.
   */
  exit(code?: number): never;
}

/** A program's entry point. */
export type ProgramMain = (
  env: ProgramEnv,
  args: string[],
) => unknown;

/** Thrown by `env.exit(code)` to unwind the program; caught by the runtime. */
export class ProgramExit extends Error {
  /** The exit code. */
  readonly code: number;
  /**
   * Make the exit of a program with `code`.
   *
   * @param code The exit code.
   */
  constructor(code: number) {
    super(`exit(${code})`);
    this.name = "ProgramExit";
    this.code = code;
  }
}

/** How a program ended. */
export interface ProgramOutcome {
  /** Exit code (0 success). */
  code: number;
  /** The fault that ended it, or `null`. */
  fault: ThreadFault | null;
  /** The error behind the fault, if any. */
  error?: unknown;
}

/** What {@linkcode runMain} needs to know about the thread. */
export interface ProgramIdentity {
  /** Thread number. */
  tid: number;
  /** Program name. */
  name: string;
  /** Arguments. */
  args: string[];
}

function exitCode(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v)) return 0;
  return v & 0xff;
}

function format(data: unknown[]): string {
  const inspect = (globalThis as { Deno?: { inspect?: (v: unknown) => string } }).Deno?.inspect;
  return data.map((d) => typeof d === "string" ? d : inspect ? inspect(d) : String(d)).join(" ");
}

/**
 * A console writing through `port.consoleWrite`.
 *
 * @param port The kernel port.
 * @returns The console.
 */
export function portConsole(port: KernelPort): ProgramConsole {
  return {
    write: (text) => port.consoleWrite(text),
    log: (...data) => port.consoleWrite(format(data) + "\n"),
    error: (...data) => port.consoleWrite(format(data) + "\n"),
  };
}

/**
 * The fault for an error that ended a program.
 *
 * @param error What `main` threw.
 * @returns Exit code and fault (`null` for {@linkcode ProgramExit}).
 */
export function classify(error: unknown): ProgramOutcome {
  if (error instanceof ProgramExit) return { code: exitCode(error.code), fault: null };
  const e = error instanceof Error ? error : new Error(String(error));
  const message = `${e.name}: ${String(e.message).split("\n")[0]}`.slice(0, 400);
  if (error instanceof TwzError) {
    if (error.code === ErrorCode.Killed) {
      return { code: KILLED_EXIT, fault: { kind: "killed", message }, error };
    }
    if (error.code === ErrorCode.ReadOnly || error.code === ErrorCode.AccessDenied) {
      return { code: 1, fault: { kind: "protection", message }, error };
    }
  }
  if (error instanceof RangeError) return { code: 1, fault: { kind: "memory", message }, error };
  return { code: 1, fault: { kind: "exception", message }, error };
}

/**
 * Run `main` on a port and say how it ended (without ending the thread):
 * the part of {@linkcode startProgram} that does not need a channel, so a
 * program can also run in-process (tests, the kernel's own session).
 *
 * @param port The kernel port.
 * @param who Thread number, program name and arguments.
 * @param main The program.
 * @param console Where the program's console writes. @default {portConsole(port)}
 * @returns Exit code and fault; a stack trace of an exception was written
 * to the console.
 */
export async function runMain(
  port: KernelPort,
  who: ProgramIdentity,
  main: ProgramMain,
  console: ProgramConsole = portConsole(port),
): Promise<ProgramOutcome> {
  // The session and the thread's facts are made on first use: a program
  // that never touches them starts without their system calls.
  let twz: Twz | undefined;
  let thread: ThreadInfo | undefined;
  try {
    const env: ProgramEnv = {
      get twz(): Twz {
        return twz ??= Twz.attach(port);
      },
      port,
      args: who.args,
      name: who.name,
      get thread(): ThreadInfo {
        return thread ??= port.threadSelf() ?? {
          tid: who.tid,
          id: 0n,
          name: who.name,
          state: ThreadState.Running,
          exitCode: 0,
          fault: null,
          started: Date.now(),
          ended: 0,
          killing: false,
        };
      },
      console,
      exit(code = 0): never {
        throw new ProgramExit(code);
      },
    };
    return { code: exitCode(await main(env, who.args)), fault: null };
  } catch (error) {
    const outcome = classify(error);
    if (outcome.fault !== null && outcome.fault.kind !== "killed") {
      try {
        console.error(`${who.name}: uncaught ${programStack(error)}`);
      } catch { /* the console went away with the kernel */ }
    }
    return outcome;
  } finally {
    try {
      twz?.close();
    } catch { /* ending anyway */ }
  }
}

/** An error's stack without the runtime's own frames (from `runMain` down). */
function programStack(error: unknown): string {
  const stack = error instanceof Error && typeof error.stack === "string"
    ? error.stack
    : String(error);
  const lines = stack.split("\n");
  const cut = lines.findIndex((l) => /^\s+at (async )?runMain\b/.test(l));
  return (cut > 0 ? lines.slice(0, cut) : lines).join("\n");
}

/** The global console methods a program's thread routes to the port. */
const CONSOLE_METHODS = [
  "log",
  "info",
  "debug",
  "warn",
  "error",
  "trace",
  "dir",
  "dirxml",
  "table",
] as const;

/**
 * Start a program in this thread: the default export of every program
 * bundle is `(init) => startProgram(init, main)`. Connects the port, routes
 * the global `console` through it, runs `main` ({@linkcode runMain}) and
 * ends the thread with `thread_exit(code, fault)`.
 *
 * @param init What the kernel's loader handed the thread.
 * @param main The program.
 * @returns When the thread has reported its end.
 * @throws {TwzError} Only when the port cannot be connected (the loader
 *   then reports the fault).
 */
export async function startProgram(init: ThreadInit, main: ProgramMain): Promise<void> {
  const port = connectPort(init);
  const console = portConsole(port);
  const global = globalThis.console as unknown as Record<string, unknown>;
  for (const m of CONSOLE_METHODS) {
    global[m] = m === "trace" || m === "warn" || m === "error" ? console.error : console.log;
  }
  const outcome = await runMain(port, init, main, console);
  try {
    port.threadExit(outcome.code, outcome.fault);
  } catch (error) {
    // Killed while exiting: the kernel ends the thread itself.
    if (!(error instanceof TwzError && error.code === ErrorCode.Killed)) throw error;
  }
}

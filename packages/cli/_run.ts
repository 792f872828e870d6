/**
 * What the shell shows of threads: a thread's state (`ps`, `wait`), the line
 * for a thread that ended badly, and the `ps` table (public as `psLines` of
 * `@twz/cli/run`); and how a KEY or CTX argument (`run --context CTX`,
 * `twz run --context CTX`, the shell's `key` and `ctx` commands) names its
 * object ({@linkcode secObject}).
 *
 * @module
 */
import { looksLikeId, type ObjID, parseId, type ThreadInfo, ThreadState } from "@twz/kernel/abi";
import type { Twz } from "@twz/libtwz";
import { UsageError } from "./board.ts";

/** Where the shell binds keys (`/sec/keys/NAME`) and contexts (`/sec/ctx/NAME`). */
export const SEC_DIRS: Readonly<Record<"key" | "context", string>> = {
  key: "/sec/keys",
  context: "/sec/ctx",
};

/**
 * The path a key or context called `name` is bound at (`/sec/keys/alice`).
 *
 * @throws {UsageError} `name` is no single name component (empty, `.`,
 *   `..`, a `/`, a NUL, longer than 64 characters).
 */
export function secPath(kind: "key" | "context", name: string): string {
  if (!/^[^/\0]{1,64}$/.test(name) || name === "." || name === "..") {
    throw new UsageError(
      `${quotedName(name)} is not a ${kind} name (one name component, at most 64 characters, no /)`,
    );
  }
  return `${SEC_DIRS[kind]}/${name}`;
}

function quotedName(name: string): string {
  return JSON.stringify(name.length > 24 ? `${name.slice(0, 24)}…` : name);
}

/**
 * The object a KEY or CTX argument names: an object ID (32 hex digits), a
 * path (`/sec/ctx/reader`, anything with a `/`), or a bare name, which is
 * looked up where the shell binds that kind (`reader` is `/sec/ctx/reader`).
 *
 * @param twz The session whose names are used.
 * @param text The argument as given.
 * @param kind What it must name (for the bare-name directory and errors).
 * @returns The ID of a key object or a context, as the kernel reads it.
 * @throws {UsageError} No such bare name (`no context "x" (see ctx list)`)
 *   or a malformed ID. {TwzError} A path bound to nothing (`NameNotFound`),
 *   an object that is not a key or context (the kernel's one line).
 */
export function secObject(twz: Twz, text: string, kind: "key" | "context"): ObjID {
  const id = secName(twz, text, kind);
  // The kernel reads it (one line when it is not one: "… is not a key object").
  if (kind === "key") twz.port.keyInfo(id);
  else twz.port.ctxInfo(id);
  return id;
}

/** {@linkcode secObject} without asking the kernel what the object is. */
function secName(twz: Twz, text: string, kind: "key" | "context"): ObjID {
  if (looksLikeId(text)) {
    try {
      return parseId(text);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  if (text.includes("/")) return twz.naming.resolve(text);
  const path = secPath(kind, text);
  const bound = twz.naming.lookup(path);
  if (bound === undefined) {
    throw new UsageError(
      `no ${kind} ${quotedName(text)} (see ${kind === "key" ? "key" : "ctx"} list)`,
    );
  }
  return bound.id;
}

/** What `ps` shows as a thread's state. */
export function stateText(t: ThreadInfo): string {
  switch (t.state) {
    case ThreadState.Starting:
      return t.killing ? "starting (killing)" : "starting";
    case ThreadState.Running:
      return t.killing ? "running (killing)" : "running";
    case ThreadState.Sleeping:
      return t.killing ? "sleeping (killing)" : "sleeping";
    default:
      if (t.fault?.kind === "lost") return "exited (lost at reboot)";
      return t.fault !== null ? `exited (${t.fault.kind})` : "exited";
  }
}

/**
 * One line for a thread that ended badly (`undefined` for exit code 0
 * without a fault).
 *
 * @param t The thread.
 * @returns `NAME ended with a fault (KIND): MESSAGE` or `NAME exited with code N`.
 */
export function endLine(t: ThreadInfo): string | undefined {
  if (t.fault !== null) return `${t.name} ended with a fault (${t.fault.kind}): ${t.fault.message}`;
  if (t.exitCode !== 0) return `${t.name} exited with code ${t.exitCode}`;
  return undefined;
}

/**
 * The `ps` table: one line per thread (by thread number) with its state,
 * exit code, run time, name and fault, as the shell's `ps` prints it.
 *
 * @param threads The threads (this boot's and lost ones).
 * @param now Wall clock, ms since the epoch.
 * @returns The lines, a header first.
 */
export function psLines(threads: readonly ThreadInfo[], now: number = Date.now()): string[] {
  const rows = [["TID", "STATE", "CODE", "TIME", "NAME", "FAULT"]];
  for (const t of [...threads].sort((a, b) => a.tid - b.tid)) {
    const ended = t.state === ThreadState.Exited;
    const ms = (ended ? (t.ended || t.started) : now) - t.started;
    rows.push([
      String(t.tid),
      stateText(t),
      ended ? String(t.exitCode) : "-",
      t.fault?.kind === "lost" ? "-" : formatDuration(ms),
      t.name,
      t.fault !== null ? t.fault.message : "",
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i]!)).join("  ").trimEnd()
  );
}

function formatDuration(ms: number): string {
  if (!(ms >= 0)) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${String(Math.floor(ms / 1000) % 60).padStart(2, "0")}s`;
}

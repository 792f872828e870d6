/**
 * What the shell shows of threads: a thread's state (`ps`, `wait`), the line
 * for a thread that ended badly, and the `ps` table (public as `psLines` of
 * `@twz/cli/run`).
 *
 * @module
 */
import { type ThreadInfo, ThreadState } from "@twz/kernel/abi";

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

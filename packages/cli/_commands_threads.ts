/**
 * The shell's thread commands — `run`, `ps`, `kill`, `wait` — as entries of the
 * command table (`_commands.ts` lists them with the others).
 *
 * `run PROGRAM [ARGS]` waits for the program and prints its output; a
 * final `&` starts it in the background (its output goes to the console as
 * it comes) and prints its thread number, so the shell stays free for
 * `ps` and `kill` meanwhile, and `wait` waits for background threads to end.
 *
 * @module
 */
import { ThreadState } from "@twz/kernel";
import { UsageError } from "./board.ts";
import type { Command } from "./_commands.ts";
import { attachThreads, endLine, psLines, spawnProgram, stateText } from "./run.ts";

/** How long `kill` waits to report the end of a thread it asked to end. */
const KILL_REPORT_MS = 5000;

/** A TID argument. */
function tidOf(text: string | undefined): number {
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`a thread number (see ps), not "${text ?? ""}"`);
  }
  return Number(text);
}

/** The thread commands, in the order help lists them. */
export const THREAD_COMMANDS: readonly Command[] = [
  {
    name: "run",
    synopsis: "PROGRAM [ARGS] [&]",
    summary: "run a program (a .ts file, or NAME from /bin); & runs it in the background",
    async run(sh, { w }) {
      const words = [...w.slice(1)];
      const background = words.at(-1) === "&";
      if (background) words.pop();
      const [target, ...args] = words;
      if (target === undefined) {
        throw new UsageError("run needs a PROGRAM (a .ts file or a /bin name)");
      }
      // Foreground output goes to the shell's output line by line.
      let pending = "";
      const toShell = (text: string) => {
        pending += text;
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          sh.io.out(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
        }
      };
      const info = await spawnProgram(
        sh.board,
        target,
        args,
        background ? {} : { console: toShell },
      );
      if (background) {
        sh.io.out(`[${info.tid}] ${info.name}`);
        return;
      }
      const end = await attachThreads(sh.board).manager.wait(info.tid);
      if (pending !== "") sh.io.out(pending);
      const line = endLine(end);
      if (line !== undefined) throw new UsageError(line);
    },
  },
  {
    name: "ps",
    synopsis: "",
    summary: "list threads: this boot's and earlier boots' (kept in /proc)",
    run(sh) {
      for (const line of psLines(attachThreads(sh.board).manager.threads())) sh.io.out(line);
    },
  },
  {
    name: "kill",
    synopsis: "TID...",
    summary: "end threads (asked first; stopped after a grace period)",
    async run(sh, { w }) {
      if (w.length < 2) throw new UsageError("kill needs a thread number (see ps)");
      const tids = w.slice(1).map(tidOf);
      const { manager } = attachThreads(sh.board);
      const all = new Map(manager.threads().map((t) => [t.tid, t]));
      for (const tid of tids) {
        const t = all.get(tid);
        if (t === undefined) throw new UsageError(`no thread ${tid} (see ps)`);
        if (t.state === ThreadState.Exited) {
          throw new UsageError(`thread ${tid} (${t.name}) has already ended: ${stateText(t)}`);
        }
      }
      for (const tid of tids) manager.kill(tid);
      for (const tid of tids) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const end = await Promise.race([
          manager.wait(tid),
          new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), KILL_REPORT_MS)),
        ]).finally(() => clearTimeout(timer));
        const t = end ?? manager.info(tid);
        sh.io.out(`${tid} ${t.name}: ${stateText(t)}`);
      }
    },
  },
  {
    name: "wait",
    synopsis: "[TID...]",
    summary:
      "wait until threads end (no TID: every thread of this boot still running); says how each ended",
    async run(sh, { w }) {
      const { manager } = attachThreads(sh.board);
      const all = new Map(manager.threads().map((t) => [t.tid, t]));
      const tids = w.length > 1
        ? w.slice(1).map(tidOf)
        : [...all.values()].filter((t) => t.state !== ThreadState.Exited).map((t) => t.tid);
      for (const tid of tids) {
        if (!all.has(tid)) throw new UsageError(`no thread ${tid} (see ps)`);
      }
      for (const tid of tids) {
        const seen = all.get(tid)!;
        const t = seen.state === ThreadState.Exited ? seen : await manager.wait(tid);
        const code = t.fault === null ? `, code ${t.exitCode}` : `: ${t.fault.message}`;
        sh.io.out(`${tid} ${t.name}: ${stateText(t)}${code}`);
      }
    },
  },
];

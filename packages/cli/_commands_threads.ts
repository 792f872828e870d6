/**
 * The shell's thread commands — `run`, `ps`, `kill`, `wait` — as entries of the
 * command table (`_commands.ts` lists them with the others).
 *
 * `run [--context CTX]... PROGRAM [ARGS...]` waits for the program and
 * prints its output (attached to the security contexts named); an
 * interrupt (the signal the shell hands it, aborted on Ctrl-C) kills the
 * program and the shell goes on. A final `&` starts it in the background
 * (its output goes to the console as it comes) and prints its thread
 * number, so the shell stays free for `ps` and `kill` meanwhile, and `wait`
 * waits for background threads to end.
 *
 * @module
 */
import { ThreadState } from "@twz/kernel";
import { UsageError } from "./board.ts";
import { count } from "./_args.ts";
import type { Command } from "./_commands.ts";
import { attachThreads, spawnProgram } from "./run.ts";
import { endLine, psLines, secObject, stateText } from "./_run.ts";

/** How long `kill` waits to report the end of a thread it asked to end. */
const KILL_REPORT_MS = 5000;

/** A TID argument. */
function tidOf(text: string): number {
  return count(text, "TID");
}

/** `promise`, or undefined as soon as `signal` aborts (the promise goes on). */
function untilInterrupted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T | undefined> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve(undefined);
  let stop = () => {};
  const aborted = new Promise<undefined>((resolve) => {
    stop = () => resolve(undefined);
    signal.addEventListener("abort", stop, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener("abort", stop));
}

/** The thread commands, in the order help lists them. */
export const THREAD_COMMANDS: readonly Command[] = [
  {
    background: true,
    spec: {
      name: "run",
      summary: "run a program (a .ts file or a /bin name); & in the background",
      optionsFirst: true,
      options: [{
        name: "--context",
        value: "CTX",
        repeat: true,
        summary: "a security context the program attaches to (a name in /sec/ctx, a path or an ID)",
      }],
      args: [
        { name: "PROGRAM", summary: "a .ts file, or a program's name in /bin" },
        {
          name: "ARGS",
          optional: true,
          variadic: true,
          summary: "the program's arguments (options included)",
        },
        { name: "&", optional: true, summary: "last: run it in the background (see ps, wait)" },
      ],
      details: [
        "In the foreground the shell waits and prints the program's output; Ctrl-C ends " +
        "the program (it is killed) and the shell goes on.",
        "With --context the program gets what those contexts' grants give on top of each " +
        "object's default protections; without it, the default protections only.",
      ],
    },
    async run(sh, p, { signal, background }) {
      const target = p.arg("PROGRAM")!;
      const contexts = p.values("--context").map((c) => secObject(sh.twz, c, "context"));
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
        p.args("ARGS"),
        background ? { contexts } : { console: toShell, contexts },
      );
      if (background) {
        sh.io.out(`[${info.tid}] ${info.name}`);
        return;
      }
      const { manager } = attachThreads(sh.board);
      const interrupt = () => {
        try {
          manager.kill(info.tid);
        } catch { /* it ended already */ }
      };
      signal?.addEventListener("abort", interrupt, { once: true });
      if (signal?.aborted) interrupt();
      let end;
      try {
        end = await manager.wait(info.tid);
      } finally {
        signal?.removeEventListener("abort", interrupt);
      }
      if (pending !== "") sh.io.out(pending);
      if (signal?.aborted && (end.fault !== null || end.exitCode !== 0)) {
        const how = end.fault?.kind ?? `exit code ${end.exitCode}`;
        throw new UsageError(`${end.name} ended: ${how} (interrupted)`);
      }
      const line = endLine(end);
      if (line !== undefined) throw new UsageError(line);
    },
  },
  {
    spec: { name: "ps", summary: "list threads (this boot's, and earlier ones' from /proc)" },
    run(sh) {
      for (const line of psLines(attachThreads(sh.board).manager.threads())) sh.io.out(line);
    },
  },
  {
    spec: {
      name: "kill",
      summary: "end threads (asked first, stopped after a grace period)",
      args: [{ name: "TID", variadic: true, summary: "a thread number (see ps)" }],
    },
    async run(sh, p) {
      const tids = p.args("TID").map(tidOf);
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
    spec: {
      name: "wait",
      summary: "wait until threads end; says how each ended",
      details: ["Ctrl-C stops the waiting; the threads go on."],
      args: [{
        name: "TID",
        optional: true,
        variadic: true,
        summary: "a thread number (default: every thread of this boot still running)",
      }],
    },
    async run(sh, p, { signal }) {
      const { manager } = attachThreads(sh.board);
      const all = new Map(manager.threads().map((t) => [t.tid, t]));
      const given = p.args("TID");
      const tids = given.length > 0
        ? given.map(tidOf)
        : [...all.values()].filter((t) => t.state !== ThreadState.Exited).map((t) => t.tid);
      for (const tid of tids) {
        if (!all.has(tid)) throw new UsageError(`no thread ${tid} (see ps)`);
      }
      for (const tid of tids) {
        const seen = all.get(tid)!;
        const t = seen.state === ThreadState.Exited ? seen : await untilInterrupted(
          manager.wait(tid),
          signal,
        );
        if (t === undefined) {
          throw new UsageError(`interrupted; thread ${tid} (${seen.name}) goes on (see ps)`);
        }
        const code = t.fault === null ? `, code ${t.exitCode}` : `: ${t.fault.message}`;
        sh.io.out(`${tid} ${t.name}: ${stateText(t)}${code}`);
      }
    },
  },
];

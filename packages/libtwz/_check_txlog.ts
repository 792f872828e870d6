/**
 * The transaction log checker (`/.txlog`: header state, a torn or committed
 * transaction, replay on request) and its repair. Private to libtwz; the
 * public entry is `check.ts`.
 *
 * @module
 */
import { BASE_OFFSET, formatId, type KernelPort, Prot, TwzError } from "@twz/kernel/abi";
import { inspectTxLog, recoverTransactions } from "./tx.ts";
import { TXLOG_NAME } from "./_session_tx.ts";
import {
  type CheckContext,
  type CheckOptions,
  type CheckTxLog,
  findRootDir,
  replayHost,
  usable,
} from "./_check_common.ts";
import { dirEntries } from "./_check_naming.ts";

/**
 * Check the transaction log the naming walk found (`ctx.txlogId`), replaying
 * a committed transaction first with `options.replay` (read mappings are
 * dropped then).
 *
 * @param ctx The run (after the naming walk).
 * @param options The run's options.
 * @returns The log as found, or null when there is none.
 */
export function checkTxLog(ctx: CheckContext, options: CheckOptions): CheckTxLog | null {
  const { port, problem, warn, mapOf } = ctx;
  // 2. The transaction log, before anything reads object structures.
  const txlogId = ctx.txlogId;
  let txlog: CheckTxLog | null = null;
  if (txlogId !== undefined && usable(port, txlogId) && mapOf(txlogId) !== null) {
    const m = mapOf(txlogId)!;
    const s = inspectTxLog({ mapping: m });
    txlog = { id: formatId(txlogId), state: s.state, records: s.records, replayed: 0 };
    if (s.state === "garbage") {
      problem(txlogId, "txlog", `the transaction log header is garbage: ${s.problem}`);
    } else if (s.state === "torn") {
      warn(
        txlogId,
        "txlog",
        `the transaction log holds a torn commit (seq ${s.seq}); recovery ignores it`,
      );
    } else if (s.state === "committed") {
      // A read-only kernel refuses the writable maps a replay needs.
      const replay = options.replay === true && !port.readOnly;
      if (replay) {
        try {
          txlog.replayed = recoverTransactions(replayHost(port, txlogId));
        } catch (e) {
          if (!(e instanceof TwzError)) throw e;
          problem(txlogId, "txlog", `replaying the committed transaction failed: ${e.message}`);
        }
        ctx.maps.clear();
      }
      warn(
        txlogId,
        "txlog",
        `the transaction log holds a committed transaction not marked applied: ${s.records} records; opening a session replays it${
          replay
            ? " (checked as replayed)"
            : options.replay
            ? " (not replayed: the image is open read-only)"
            : ""
        }`,
      );
    }
  }
  return txlog;
}

/** Replay a committed log or clear a garbage header (see {@linkcode repairObjects}). */
export function repairTxLog(port: KernelPort): string[] {
  const rootDir = findRootDir(port);
  if (rootDir === null || !usable(port, rootDir)) return [];
  // The log's name sits in the root directory.
  const logId = dirEntries(port.map(rootDir, Prot.Read)).find((e) => `/${e.name}` === TXLOG_NAME)
    ?.id;
  if (logId === undefined || !usable(port, logId)) return [];
  const log = port.map(logId, Prot.ReadWrite);
  const s = inspectTxLog({ mapping: log });
  if (s.state === "committed") {
    const n = recoverTransactions(replayHost(port, logId));
    return [`txlog: replayed the committed transaction (${n} records), as opening a session would`];
  }
  if (s.state === "garbage") {
    const base = log.bytes.length >= 512 ? BASE_OFFSET : 0;
    log.bytes.fill(0, base, base + 64);
    log.persist(base, 64);
    return ["txlog: cleared the garbage transaction log header"];
  }
  return [];
}

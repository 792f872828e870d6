/**
 * The transaction log checker (`/.txlog` and the lanes of `/.txlanes`:
 * header state, a torn or committed transaction, replay on request) and its
 * repair. Private to libtwz; the public entry is `check.ts`.
 *
 * @module
 */
import {
  BASE_OFFSET,
  formatId,
  type KernelPort,
  type Mapping,
  type ObjID,
  Prot,
  TwzError,
} from "@twz/kernel/abi";
import {
  inspectTxLanes,
  inspectTxLog,
  recoverTransactions,
  type TxLogHost,
  type TxLogState,
  type TxTarget,
} from "./_tx.ts";
import { TXLANES_NAME, TXLOG_NAME } from "./_session_tx.ts";
import {
  type CheckContext,
  type CheckOptions,
  type CheckTxLog,
  findRootDir,
  usable,
} from "./_check_common.ts";
import { dirEntries } from "./_check_naming.ts";

/** The object the root directory binds to `path` (`/.txlog`, `/.txlanes`), if usable. */
function rootBinding(port: KernelPort, path: string): ObjID | undefined {
  const rootDir = findRootDir(port);
  if (rootDir === null || !usable(port, rootDir)) return undefined;
  const id = dirEntries(port.map(rootDir, Prot.Read)).find((e) => `/${e.name}` === path)?.id;
  return id !== undefined && usable(port, id) ? id : undefined;
}

/** A host that only ever replays: both log objects and the objects, mapped writable. */
function replayAllHost(port: KernelPort, logId: ObjID, lanesId: ObjID | undefined): TxLogHost {
  let log: TxTarget | undefined;
  let lanes: TxTarget | undefined;
  return {
    logObject: () =>
      log ??= { id: logId, mapping: port.map(logId, Prot.ReadWrite), writable: true, port },
    lanesObject: () =>
      lanesId === undefined ? null : lanes ??= {
        id: lanesId,
        mapping: port.map(lanesId, Prot.ReadWrite),
        writable: true,
        port,
      },
    mapForReplay: (id) => port.exists(id) ? port.map(id, Prot.ReadWrite) : null,
  };
}

/**
 * Check the transaction logs: the primary log the naming walk found
 * (`ctx.txlogId`) and each lane of `/.txlanes`, replaying every committed
 * transaction first (in sequence order) with `options.replay` (read
 * mappings are dropped then).
 *
 * @param ctx The run (after the naming walk).
 * @param options The run's options.
 * @returns The primary log as found, or null when there is none.
 */
export function checkTxLog(ctx: CheckContext, options: CheckOptions): CheckTxLog | null {
  const { port, problem, warn, mapOf } = ctx;
  // 2. The transaction logs, before anything reads object structures.
  const txlogId = ctx.txlogId;
  if (txlogId === undefined || !usable(port, txlogId) || mapOf(txlogId) === null) return null;
  const s = inspectTxLog({ mapping: mapOf(txlogId)! });
  const txlog: CheckTxLog = {
    id: formatId(txlogId),
    state: s.state,
    records: s.records,
    replayed: 0,
  };
  const logs: { id: ObjID; what: string; s: TxLogState }[] = [{
    id: txlogId,
    what: "the transaction log",
    s,
  }];
  const lanesId = rootBinding(port, TXLANES_NAME);
  const lanesMap: Mapping | null = lanesId === undefined ? null : mapOf(lanesId);
  if (lanesId !== undefined && lanesMap !== null) {
    const l = inspectTxLanes({ mapping: lanesMap });
    if (l.header === "unknown") {
      problem(lanesId, "txlog", `the transaction lanes header is not readable: ${l.problem}`);
    }
    l.lanes.forEach((state, i) =>
      logs.push({ id: lanesId, what: `transaction lane ${i}`, s: state })
    );
  }
  let committed = 0;
  for (const { id, what, s } of logs) {
    if (s.state === "garbage") problem(id, "txlog", `${what} header is garbage: ${s.problem}`);
    else if (s.state === "torn") {
      warn(id, "txlog", `${what} holds a torn commit (seq ${s.seq}); recovery ignores it`);
    } else if (s.state === "committed") committed++;
  }
  if (committed === 0) return txlog;
  // A read-only kernel refuses the writable maps a replay needs.
  const replay = options.replay === true && !port.readOnly;
  if (replay) {
    try {
      txlog.replayed = recoverTransactions(replayAllHost(port, txlogId, lanesId));
    } catch (e) {
      if (!(e instanceof TwzError)) throw e;
      problem(txlogId, "txlog", `replaying the committed transactions failed: ${e.message}`);
    }
    ctx.maps.clear();
  }
  const how = replay
    ? " (checked as replayed)"
    : options.replay
    ? " (not replayed: the image is open read-only)"
    : "";
  for (const { id, what, s } of logs) {
    if (s.state !== "committed") continue;
    warn(
      id,
      "txlog",
      `${what} holds a committed transaction not marked applied: ${s.records} records; opening a session replays it${how}`,
    );
  }
  return txlog;
}

/** Replay committed logs or clear garbage headers (see {@linkcode repairObjects}). */
export function repairTxLog(port: KernelPort): string[] {
  const logId = rootBinding(port, TXLOG_NAME);
  if (logId === undefined) return [];
  const lanesId = rootBinding(port, TXLANES_NAME);
  const log = port.map(logId, Prot.ReadWrite);
  const lanes = lanesId === undefined ? null : port.map(lanesId, Prot.ReadWrite);
  const lines: string[] = [];
  const s = inspectTxLog({ mapping: log });
  const laneStates = lanes === null ? [] : inspectTxLanes({ mapping: lanes }).lanes;
  const committed = [s, ...laneStates].filter((x) => x.state === "committed").length;
  if (committed > 0) {
    const n = recoverTransactions(replayAllHost(port, logId, lanesId));
    lines.push(
      committed === 1 && s.state === "committed"
        ? `txlog: replayed the committed transaction (${n} records), as opening a session would`
        : `txlog: replayed ${committed} committed transactions (${n} records) in sequence order, as opening a session would`,
    );
  }
  if (s.state === "garbage") {
    const base = log.bytes.length >= 512 ? BASE_OFFSET : 0;
    log.bytes.fill(0, base, base + 64);
    log.persist(base, 64);
    lines.push("txlog: cleared the garbage transaction log header");
  }
  return lines;
}

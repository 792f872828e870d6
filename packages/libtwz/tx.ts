/**
 * Crash-consistent transactions over object memory.
 *
 * Inside a transaction every write is *redo-logged* automatically: stores go
 * to a private shadow of the touched 64-byte lines (so the transaction reads
 * its own writes), and nothing reaches object memory before commit. Commit
 * writes the changed bytes to the session's log object with a checksum and
 * makes it durable (ordering point 1: committed), then applies them in place
 * (ordering point 2: applied). Two drains, whatever the number of ranges or
 * objects. An exception inside the transaction aborts it: the shadow is
 * dropped and object memory was never touched. Recovery (when the session
 * opens) replays a committed log that was not yet applied, and only that.
 * Nested transactions flatten into the outermost one.
 *
 * The shadow is kept per object ID: every handle of a written object (a
 * read-only one, another session's) reads the transaction's writes. The
 * objects written must live in the log object's image (or be volatile):
 * commit refuses others, which that log could neither make durable nor
 * replay.
 *
 * **Several threads.** The kernel's own sessions (the main thread) commit
 * into the primary log, `/.txlog`; a program's thread commits into a lane of
 * `/.txlanes`, taken for the commit only (a lock word in the lane's header),
 * so transactions of several threads run at the same time. Every commit
 * takes its sequence number from one clock in the primary log's header, and
 * recovery replays every committed, unapplied log in sequence order.
 * Transactions are isolated from one another only by the locks the program
 * takes (`@twz/libtwz/sync`): hold the lock until `transaction` has
 * returned. {@linkcode prepareThreadLogs} makes both log objects from the
 * kernel's session before programs run. Layouts: `docs/FORMATS.md`.
 *
 * **On a node of a cluster** (`twz boot --cluster … --node NAME`,
 * docs/GLOBAL.md), a transaction that wrote global objects this node owns
 * publishes them as their next versions, all or none, after the local
 * commit: `transaction` returns once the cluster acknowledged them, and
 * throws (the local commit standing) when it refused them, say because the
 * ownership was lost (`@twz/libtwz/global`). Elsewhere this costs one
 * comparison per transaction.
 *
 * There is no `tx_add_range` to forget: writes made through typed accessors
 * (`@twz/libtwz/layout`) or through {@linkcode Tx}'s setters inside `tx` are
 * the transaction's writes.
 *
 * @example
 * ```ts
 * import { Twz } from "@twz/libtwz";
 * import { transaction } from "@twz/libtwz/tx";
 * import { plugin } from "@twz/hal-sim";
 *
 * const twz = await Twz.open({ hal: plugin, size: 8 << 20 });
 * const obj = twz.create({ size: 4096 });
 * transaction(twz, (tx) => {
 *   tx.setU32(obj, obj.baseOffset, 7);
 *   tx.setU32(obj, obj.baseOffset + 4, tx.getU32(obj, obj.baseOffset) + 1);
 * });
 * console.log(obj.view.getUint32(obj.baseOffset + 4, true)); // 8
 * twz.close();
 * ```
 *
 * @module
 */
export {
  inspectTxLanes,
  inspectTxLog,
  prepareThreadLogs,
  transaction,
  Tx,
  TXLANES_HEADER,
  TXLANES_MAX,
  TXLANES_VERSION,
  type TxLanesOptions,
  type TxLanesState,
  type TxLogHost,
  type TxLogState,
  type TxTarget,
} from "./_tx.ts";

/**
 * The transaction log of a libtwz session: one log object per image, bound
 * to the name `/.txlog`, created on first use. Recovery (replaying a
 * committed but unapplied transaction) runs when the session opens.
 *
 * @module
 */
import { type KernelPort, type Mapping, type ObjID, Prot } from "@twz/kernel/abi";
import type { TxLogHost, TxTarget } from "./tx.ts";

/** Name of the log object. */
export const TXLOG_NAME = "/.txlog";
/** Size of a new log object: the largest transaction it holds is a little less. */
export const TXLOG_SIZE = 4 << 20;

/** What the log host needs from a session (`Twz` provides it). */
export interface TxSessionLike {
  readonly port: Pick<KernelPort, "exists" | "map">;
  readonly naming: { lookup(path: string): { id: ObjID } | undefined };
  create(options: { size: number; name: string }): TxTarget;
  open(target: ObjID | string): TxTarget;
}

const hosts = new WeakMap<object, TxLogHost>();

/**
 * The {@linkcode TxLogHost} of a session.
 *
 * @param session A libtwz session.
 * @returns Its log host (the same one on every call).
 */
export function sessionTxHost(session: TxSessionLike): TxLogHost {
  let host = hosts.get(session);
  if (host) return host;
  let log: TxTarget | undefined;
  host = {
    logObject(): TxTarget {
      if (log && log.mapping.bytes.length > 0) return log;
      log = session.naming.lookup(TXLOG_NAME)
        ? session.open(TXLOG_NAME)
        : session.create({ size: TXLOG_SIZE, name: TXLOG_NAME });
      return log;
    },
    mapForReplay(id: ObjID): Mapping | null {
      return session.port.exists(id) ? session.port.map(id, Prot.ReadWrite) : null;
    },
  };
  hosts.set(session, host);
  return host;
}

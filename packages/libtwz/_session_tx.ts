/**
 * The transaction logs of a libtwz session: the primary log object, bound
 * to `/.txlog` and created on first use (the log of the kernel's own
 * sessions, and the home of the sequence clock), and the lanes object,
 * bound to `/.txlanes` (the logs threads commit into), made by
 * `prepareThreadLogs` or by the first thread that commits. Recovery
 * (replaying committed but unapplied transactions) runs when the session
 * opens.
 *
 * @module
 */
import {
  ErrorCode,
  type KernelPort,
  type Mapping,
  type ObjID,
  Prot,
  TwzError,
} from "@twz/kernel/abi";
import { type TxLanesOptions, type TxLogHost, type TxTarget, writeLanesHeader } from "./_tx.ts";

/** Name of the primary log object. */
export const TXLOG_NAME = "/.txlog";
/**
 * Largest size of a new primary log object (on an image of 64 MiB or more,
 * the default size): the largest transaction it holds is a little less.
 */
export const TXLOG_SIZE = 4 << 20;
/** Smallest size of a new primary log object. */
export const TXLOG_MIN_SIZE = 16 << 10;
/** Name of the lanes object (the logs of threads). */
export const TXLANES_NAME = "/.txlanes";
/** Lanes in a new lanes object, unless told otherwise. */
export const TXLANES_COUNT = 8;

/** What the log host needs from a session (`Twz` provides it). */
export interface TxSessionLike {
  readonly port: Pick<KernelPort, "exists" | "map" | "info">;
  readonly naming: {
    lookup(path: string): { id: ObjID } | undefined;
    bind(path: string, id: ObjID): void;
  };
  create(options: { size: number; name?: string; fot?: { entries: number } }): TxTarget;
  open(target: ObjID | string): TxTarget;
  delete(target: ObjID | string): number;
}

const hosts = new WeakMap<object, TxLogHost>();

/**
 * The size of a new primary log object (`/.txlog`) on an image of
 * `imageSize` bytes: 1/16 of it, from 16 KiB to 4 MiB, in 4 KiB steps. The
 * default 64 MiB image keeps the 4 MiB log (and so its largest
 * transaction); a small image does not give a quarter of its space to a
 * log it may never fill. An existing log is used at whatever size it has.
 */
export function defaultLogBytes(imageSize: number): number {
  const bytes = Math.floor(imageSize / 16 / 4096) * 4096;
  return Math.min(TXLOG_SIZE, Math.max(TXLOG_MIN_SIZE, bytes));
}

/**
 * The default size of a lane on an image of `imageSize` bytes: 1/256 of it,
 * from 16 KiB to 4 MiB (the primary log's size), in 4 KiB steps.
 */
export function defaultLaneBytes(imageSize: number): number {
  const bytes = Math.floor(imageSize / 256 / 4096) * 4096;
  return Math.min(TXLOG_SIZE, Math.max(16 << 10, bytes));
}

/**
 * Make the lanes object: created unnamed, its header written and persisted,
 * then named, so a named lanes object always has its header. When another
 * session bound the name first, that one is used and this one deleted.
 */
function createLanes(session: TxSessionLike, options: TxLanesOptions): TxTarget {
  const count = options.lanes ?? TXLANES_COUNT;
  const laneBytes = options.laneBytes ?? defaultLaneBytes(session.port.info().size);
  if (!Number.isInteger(laneBytes) || laneBytes % 4096 !== 0 || laneBytes <= 0) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `A transaction lane's size must be a positive multiple of 4096 bytes, not ${laneBytes}`,
    );
  }
  const obj = session.create({ size: 320 + count * laneBytes, fot: { entries: 0 } });
  try {
    writeLanesHeader(obj, count, laneBytes);
    session.naming.bind(TXLANES_NAME, obj.id);
  } catch (e) {
    session.delete(obj.id);
    if (e instanceof TwzError && e.code === ErrorCode.NameExists) return session.open(TXLANES_NAME);
    throw e;
  }
  return obj;
}

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
  let lanes: TxTarget | undefined;
  host = {
    logObject(): TxTarget {
      if (log && log.mapping.bytes.length > 0) return log;
      log = session.naming.lookup(TXLOG_NAME) ? session.open(TXLOG_NAME) : session.create({
        size: defaultLogBytes(session.port.info().size),
        name: TXLOG_NAME,
        fot: { entries: 0 },
      });
      return log;
    },
    lanesObject(create?: TxLanesOptions): TxTarget | null {
      if (lanes && lanes.mapping.bytes.length > 0) return lanes;
      if (session.naming.lookup(TXLANES_NAME)) lanes = session.open(TXLANES_NAME);
      else if (create !== undefined) {
        host!.logObject(); // the clock's home first: lanes never exist without it
        lanes = createLanes(session, create);
      } else return null;
      return lanes;
    },
    mapForReplay(id: ObjID): Mapping | null {
      return session.port.exists(id) ? session.port.map(id, Prot.ReadWrite) : null;
    },
  };
  hosts.set(session, host);
  return host;
}

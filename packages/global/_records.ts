/**
 * The cluster's data, as the global space writes it (docs/GLOBAL.md):
 *
 * ```text
 * KV twz-meta   obj.<id hex>   ObjectRecord   the object's current version, owner, pending tx
 *               node.<name>    NodeLease      a node's lease (renewed by the link's Worker)
 *               tx.<txid>      TxRecord       a multi-object transaction: committed or aborted
 * KV twz-names  n.<hex>.<hex>  NameRecord     one entry of the global directory tree (_names.ts)
 * store twz-bytes  <id hex>.<version>.<tag>   the bytes of one version
 * ```
 *
 * A version's bytes are named with a tag the writer derives from the record
 * revision its commit is based on and its boot (`r<rev>b<boot>`): a former
 * owner whose publish is refused may have stored bytes already, but under
 * another name than the version the new owner published, so it never
 * overwrites them.
 *
 * Every value is JSON. The KV revision of `obj.<id>` is the one a node holds
 * with ownership: each change of the record is a compare-and-set on it.
 * A record's effective version is `pending.version` when its pending
 * transaction committed, else `version`.
 *
 * @module
 */
import { ErrorCode, formatId, type ObjID, parseId, TwzError } from "@twz/kernel/abi";

/** The record of one published object (`obj.<id>`). */
export interface ObjectRecord {
  /** Record format (1). */
  v: 1;
  /** Size in bytes at `version`. */
  size: number;
  /** The current committed version (1 = first published). */
  version: number;
  /** The tag of its bytes' name ({@linkcode bytesName}). */
  tag: string;
  /** The tag of the previous version's bytes, when known (deleted later). */
  prev?: string;
  /** The key object's ID as 32 hex digits, or `"0"`. */
  key: string;
  /** Default protections. */
  prot: number;
  /** The owning node, or `null`. */
  owner: string | null;
  /** The transaction that made `version`, when several objects committed together. */
  tx?: string;
  /** A multi-object transaction in flight: its version counts once `tx.<tx>` is committed. */
  pending?: { version: number; size: number; tx: string; tag: string };
}

/** A node's lease (`node.<name>`). */
export interface NodeLease {
  /** The node's name. */
  node: string;
  /** The boot it belongs to (a different boot is another incarnation). */
  boot: number;
  /** When it lapses (ms since the Unix epoch); 0: dropped. */
  lease: number;
}

/** A multi-object transaction's outcome (`tx.<txid>`), written once with `create`. */
export interface TxRecord {
  /** Committed (its pending versions count) or aborted. */
  state: "committed" | "aborted";
  /** The node that committed it, or that aborted it. */
  node: string;
  /** `[id hex, version, tag]` of each object (empty for an abort). */
  objects: [string, number, string][];
}

/** The record format this code writes. */
export const RECORD_FORMAT = 1;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** JSON bytes of a value. */
export function toBytes(value: unknown): Uint8Array {
  return enc.encode(JSON.stringify(value));
}

/** The key of an object's record. */
export function objKey(id: ObjID): string {
  return `obj.${formatId(id)}`;
}

/** The ID a record key names, or `undefined` for another key. */
export function idOfKey(key: string): ObjID | undefined {
  if (!key.startsWith("obj.")) return undefined;
  try {
    return parseId(key.slice(4));
  } catch {
    return undefined;
  }
}

/** The key of a node's lease. */
export function nodeKey(node: string): string {
  return `node.${node}`;
}

/** The key of a transaction's record. */
export function txKey(tx: string): string {
  return `tx.${tx}`;
}

/** The object store name of one version's bytes. */
export function bytesName(id: ObjID, version: number, tag: string): string {
  return `${formatId(id)}.${version}.${tag}`;
}

/** The tag of bytes a commit based on record revision `revision` stores, on boot `boot`. */
export function bytesTag(revision: number, boot: number): string {
  return `r${revision}b${boot >>> 0}`;
}

/** A node name is one NATS token of letters, digits, `_` and `-`. */
export function checkNodeName(node: string): void {
  if (typeof node !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(node)) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `node name "${node}" is not 1 to 64 letters, digits, "_" or "-"`,
    );
  }
}

/** A fresh transaction ID (32 hex digits). */
export function newTxId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function parse(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(dec.decode(bytes));
  } catch {
    v = undefined;
  }
  if (typeof v !== "object" || v === null) {
    throw new TwzError(ErrorCode.ObjectDamaged, `the cluster's ${what} is not a JSON record`);
  }
  return v as Record<string, unknown>;
}

/**
 * Decode an object record.
 *
 * @throws {TwzError} `ObjectDamaged` for a malformed record, `NotSupported`
 * for a newer record format.
 */
export function decodeRecord(bytes: Uint8Array, key: string): ObjectRecord {
  const r = parse(bytes, `record ${key}`);
  if (r.v !== RECORD_FORMAT) {
    throw new TwzError(
      ErrorCode.NotSupported,
      `the cluster's record ${key} has format ${r.v}; this node reads ${RECORD_FORMAT}`,
    );
  }
  const bad = !Number.isInteger(r.size) || !Number.isInteger(r.version) ||
    typeof r.key !== "string" || !Number.isInteger(r.prot) || typeof r.tag !== "string" ||
    (r.owner !== null && typeof r.owner !== "string");
  if (bad) throw new TwzError(ErrorCode.ObjectDamaged, `the cluster's record ${key} is malformed`);
  return r as unknown as ObjectRecord;
}

/** Decode a node lease (`null` when malformed: treated as lapsed). */
export function decodeLease(bytes: Uint8Array): NodeLease | null {
  try {
    const r = parse(bytes, "node lease");
    if (typeof r.node !== "string" || typeof r.lease !== "number") return null;
    return { node: r.node, boot: Number(r.boot ?? 0), lease: r.lease };
  } catch {
    return null;
  }
}

/** Decode a transaction record. */
export function decodeTx(bytes: Uint8Array, key: string): TxRecord {
  const r = parse(bytes, `transaction ${key}`);
  if (r.state !== "committed" && r.state !== "aborted") {
    throw new TwzError(ErrorCode.ObjectDamaged, `the cluster's transaction ${key} is malformed`);
  }
  return {
    state: r.state,
    node: String(r.node ?? ""),
    objects: Array.isArray(r.objects) ? r.objects as [string, number, string][] : [],
  };
}

/** The key object's ID of a record (`0n` for none). */
export function recordKeyId(r: ObjectRecord): ObjID {
  return r.key === "0" ? 0n : parseId(r.key);
}

/** A record without its pending entry, at `version` (what a roll-forward or abort writes). */
export function settled(r: ObjectRecord, committed: boolean): ObjectRecord {
  const out: ObjectRecord = { ...r };
  if (r.pending && committed) {
    out.version = r.pending.version;
    out.size = r.pending.size;
    out.tx = r.pending.tx;
    out.prev = r.tag;
    out.tag = r.pending.tag;
  }
  delete out.pending;
  return out;
}

/**
 * A 64-bit hash of bytes (two 32-bit multiply-xorshift lanes over words):
 * tells whether an object changed since its last acknowledged version. Not
 * a cryptographic hash (the cluster is trusted).
 */
export function hashBytes(bytes: Uint8Array): bigint {
  let a = 0x9e3779b9 ^ bytes.length, b = 0x85ebca6b;
  const words = bytes.length >>> 2;
  const aligned = (bytes.byteOffset & 3) === 0;
  const w = aligned ? new Uint32Array(bytes.buffer, bytes.byteOffset, words) : null;
  const dv = aligned ? null : new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < words; i++) {
    const x = w ? w[i]! : dv!.getUint32(i * 4, true);
    a = Math.imul(a ^ x, 0x5bd1e995);
    a ^= a >>> 15;
    b = Math.imul(b + x, 0xcc9e2d51) ^ (b >>> 13);
  }
  for (let i = words * 4; i < bytes.length; i++) {
    a = Math.imul(a ^ bytes[i]!, 0x5bd1e995);
    b = Math.imul(b + bytes[i]!, 0xcc9e2d51);
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b) ^ b;
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35) ^ a;
  return (BigInt(a >>> 0) << 32n) | BigInt(b >>> 0);
}

// The metadata redo log. Every change to kernel metadata (root record, object
// table, block bitmap) is collected in a MetaTx and committed here:
//
//   1. the records and a header with a 64-bit checksum over them are written
//      to the log area and flushed; drain -> committed (the checksum makes a
//                                           torn log detectable, so one drain
//                                           suffices)
//   2. each record is applied in place and flushed; drain
//
// Recovery replays the log when its checksum holds. Replaying is idempotent: the
// log only ever holds the latest transaction, and step 2 of a transaction
// completes before the next one overwrites the log. Recovery costs one pass
// over at most LOG_SIZE bytes, whatever the number of objects.
import type { PersistentRegion } from "./hal/mod.ts";
import { ErrorCode, TwzError } from "./abi/mod.ts";
import { logHash } from "./_hash.ts";

const LOG_MAGIC = 0x474f4c54; // "TLOG"
const HEADER = 64;
const RECORD_HEADER = 16;

/** Size of the log header. */
export const LOG_HEADER = HEADER;

/**
 * A metadata transaction too large for the log: refused before anything was
 * written, so the kernel can go on.
 */
export class LogFullError extends TwzError {
  /**
   * @param need Bytes of log the transaction needs.
   * @param capacity Bytes the log holds.
   */
  constructor(readonly need: number, readonly capacity: number) {
    super(
      ErrorCode.OutOfSpace,
      `The operation needs ${need} bytes of metadata log; the log holds ${capacity}`,
    );
  }
}

/** A set of metadata writes that commit together. */
export class MetaTx {
  /** Aligned 4-byte words (the bitmap). */
  readonly words = new Map<number, number>();
  /** Whole records (slots, root), each written as one range. */
  readonly blobs = new Map<number, Uint8Array>();

  constructor(private readonly view: DataView) {}

  /** Read a word, seeing this transaction's own writes. */
  u32(offset: number): number {
    return this.words.get(offset) ?? this.view.getUint32(offset, true);
  }

  /** Write a word (offset aligned to 4). */
  setU32(offset: number, value: number): void {
    this.words.set(offset, value >>> 0);
  }

  /** Write `bytes` at `offset`; a later put at the same offset replaces it. */
  put(offset: number, bytes: Uint8Array): void {
    this.blobs.set(offset, bytes);
  }

  /** Bytes of log space this transaction needs. */
  logBytes(): number {
    let n = 0;
    for (const b of this.blobs.values()) n += RECORD_HEADER + align8(b.length);
    return n + this.words.size * (RECORD_HEADER + 8);
  }

  /** The records, word runs coalesced. */
  records(): Array<[number, Uint8Array]> {
    const out: Array<[number, Uint8Array]> = [...this.blobs.entries()];
    const offsets = [...this.words.keys()].sort((a, b) => a - b);
    for (let i = 0; i < offsets.length;) {
      let j = i + 1;
      while (j < offsets.length && offsets[j] === offsets[j - 1]! + 4) j++;
      const run = new Uint8Array((j - i) * 4);
      const v = new DataView(run.buffer);
      for (let k = i; k < j; k++) v.setUint32((k - i) * 4, this.words.get(offsets[k]!)!, true);
      out.push([offsets[i]!, run]);
      i = j;
    }
    return out;
  }
}

const align8 = (n: number) => (n + 7) & ~7;

/** The log area and the commit protocol. */
export class MetaLog {
  #seq = 0;
  readonly view: DataView;

  constructor(
    readonly region: PersistentRegion,
    readonly offset: number,
    readonly size: number,
    /** Where records may write: the metadata areas (never the superblock or log). */
    readonly isMetadata: (offset: number, length: number) => boolean,
  ) {
    const b = region.bytes;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Largest transaction body that fits. */
  get capacity(): number {
    return this.size - HEADER;
  }

  begin(): MetaTx {
    return new MetaTx(this.view);
  }

  /**
   * Commit and apply `tx` (two drains).
   *
   * @throws {LogFullError} Before anything is written, when `tx` does not fit.
   */
  commit(tx: MetaTx): void {
    const records = tx.records();
    if (records.length === 0) return;
    let need = 0;
    for (const [, data] of records) need += RECORD_HEADER + align8(data.length);
    if (need > this.capacity) throw new LogFullError(need, this.capacity);
    const bytes = this.region.bytes;
    const body = this.offset + HEADER;
    let at = body;
    for (const [offset, data] of records) {
      this.view.setUint32(at, offset % 0x100000000, true);
      this.view.setUint32(at + 4, Math.floor(offset / 0x100000000), true);
      this.view.setUint32(at + 8, data.length, true);
      this.view.setUint32(at + 12, 0, true);
      bytes.set(data, at + RECORD_HEADER);
      at += RECORD_HEADER + align8(data.length);
    }
    const bodyBytes = at - body;
    this.#seq = (this.#seq + 1) >>> 0;
    this.view.setUint32(this.offset, LOG_MAGIC, true);
    this.view.setUint32(this.offset + 4, this.#seq, true);
    this.view.setUint32(this.offset + 8, records.length, true);
    this.view.setUint32(this.offset + 12, bodyBytes, true);
    const [lo, hi] = logHash(this.view, this.offset, this.offset + 16, body, at);
    this.view.setUint32(this.offset + 16, lo, true);
    this.view.setUint32(this.offset + 20, hi, true);
    this.region.flush(this.offset, HEADER + bodyBytes);
    this.region.drain(); // committed
    for (const [offset, data] of records) {
      bytes.set(data, offset);
      this.region.flush(offset, data.length);
    }
    this.region.drain(); // applied
  }

  /** Mark the log empty (at a clean shutdown), so the next boot replays nothing. */
  clear(): void {
    this.view.setUint32(this.offset, 0, true);
    this.region.persist(this.offset, 4);
  }

  /**
   * Replay the committed transaction in the log, if any.
   *
   * With `persist` false (a read-only boot) the records are copied into the
   * region's bytes only (the HAL's private overlay): nothing is flushed or
   * drained.
   *
   * @returns How many records were replayed (0 when the log holds nothing valid).
   * @throws {TwzError} `ImageCorrupt` when a committed log writes outside the
   * metadata areas.
   */
  recover(persist = true): number {
    const bytes = this.region.bytes;
    const parsed = parseLog(this.view, this.offset, this.size, this.isMetadata);
    if (parsed.seq !== undefined) this.#seq = parsed.seq;
    if (parsed.state === "garbage" && parsed.outside) {
      throw new TwzError(ErrorCode.ImageCorrupt, parsed.bad!);
    }
    if (parsed.state !== "committed") return 0;
    const records = parsed.records;
    for (const [offset, from, length] of records) {
      bytes.copyWithin(offset, from, from + length);
      if (persist) this.region.flush(offset, length);
    }
    if (persist) this.region.drain();
    return records.length;
  }
}

/** What a log holds (see {@linkcode parseLog}). */
export interface ParsedLog {
  /** empty (cleared), garbage (not a log header), torn (never committed), committed. */
  state: "empty" | "garbage" | "torn" | "committed";
  /** Records as [target offset, position of the data, length]. */
  records: Array<[number, number, number]>;
  /** The header's sequence number, when there is a header. */
  seq?: number;
  /** What is wrong, for garbage. */
  bad?: string;
  /** Set when a committed log writes outside the metadata areas. */
  outside?: boolean;
}

/** Read and check the log at `offset` (used by recovery and by fsck). */
export function parseLog(
  view: DataView,
  offset: number,
  size: number,
  isMetadata: (offset: number, length: number) => boolean,
): ParsedLog {
  const magic = view.getUint32(offset, true);
  if (magic === 0) return { state: "empty", records: [] };
  if (magic !== LOG_MAGIC) {
    return {
      state: "garbage",
      records: [],
      bad: `the log header holds garbage (magic 0x${magic.toString(16)})`,
    };
  }
  const seq = view.getUint32(offset + 4, true);
  const count = view.getUint32(offset + 8, true);
  const bodyBytes = view.getUint32(offset + 12, true);
  if (bodyBytes > size - HEADER || bodyBytes % 8 !== 0) {
    return {
      state: "garbage",
      records: [],
      seq,
      bad: `the log header records a body of ${bodyBytes} bytes, more than the log holds`,
    };
  }
  const body = offset + HEADER;
  const [lo, hi] = logHash(view, offset, offset + 16, body, body + bodyBytes);
  if (lo !== view.getUint32(offset + 16, true) || hi !== view.getUint32(offset + 20, true)) {
    return { state: "torn", records: [], seq };
  }
  const records: Array<[number, number, number]> = [];
  let at = body;
  for (let i = 0; i < count; i++) {
    if (at + RECORD_HEADER > body + bodyBytes) {
      return {
        state: "garbage",
        records: [],
        seq,
        bad: "the committed log's records overrun its body",
      };
    }
    const target = view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x100000000;
    const length = view.getUint32(at + 8, true);
    if (at + RECORD_HEADER + align8(length) > body + bodyBytes) {
      return {
        state: "garbage",
        records: [],
        seq,
        bad: "the committed log's records overrun its body",
      };
    }
    if (!isMetadata(target, length)) {
      return {
        state: "garbage",
        records: [],
        seq,
        outside: true,
        bad: `the metadata log holds a record for [${target}, ${
          target + length
        }) outside the metadata areas`,
      };
    }
    records.push([target, at + RECORD_HEADER, length]);
    at += RECORD_HEADER + align8(length);
  }
  return { state: "committed", records, seq };
}

/**
 * Simulated non-volatile memory: the default HAL, pure TypeScript.
 *
 * The region is a `SharedArrayBuffer` (what the CPU sees: memory plus its
 * volatile cache) in front of a *media* copy (what is durable: the image file,
 * or an in-memory array for an anonymous region). A store is visible at once
 * but reaches the media only through `flush` (which snapshots the covered
 * 64-byte lines) and `drain` (which writes the snapshots to the media). A clean
 * `close` writes everything back. `power.powerFail()` models a power failure:
 * each line that differs between cache and media is kept or lost according to
 * the eviction policy, and the region then holds exactly what survived.
 *
 * An image file is opened as every plugin opens one (`openImageFile` of
 * `@twz/kernel/hal`): locked for one opener, allocated in full when created,
 * read in chunks (so images of 2 GiB and more open), and read-only when asked
 * or not writable: the region is then a private overlay the file never sees.
 * A drained store is in the image file, that is in the host's page cache: it
 * survives a process kill. The setting `sync=data` adds an `fdatasync` to every
 * drain, so it survives a host power loss too (at a cost in speed).
 *
 * @example Boot-free use of the region
 * ```ts
 * import { plugin } from "@twz/hal-sim";
 *
 * const hal = await plugin.open({ size: 1 << 16 });
 * hal.region.bytes[64] = 1;
 * hal.region.persist(64, 1); // durable
 * hal.region.bytes[128] = 2; // not yet
 * hal.power!.powerFail({ policy: "strict" });
 * console.log(hal.region.bytes[64], hal.region.bytes[128]); // 1 0
 * hal.close();
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import {
  type AttachedRegion,
  checkRange,
  type Clock,
  cryptoEntropy,
  type Entropy,
  type Hal,
  HalError,
  type HalOpenOptions,
  type HalPlugin,
  type ImageFile,
  ioError,
  openImageFile,
  type PersistentRegion,
  type PowerFailureOptions,
  readWholeFile,
  type RegionShare,
  type RegionStats,
  stdioConsole,
  systemClock,
  writeWholeFile,
} from "@twz/kernel/hal";

import { type CrashPoint, CrashPointBuilder, LineHistory, seededRandom } from "./crash.ts";

export {
  CrashPoint,
  type CrashPolicy,
  EXHAUSTIVE_LIMIT,
  HISTORY_LIMIT,
  LineHistory,
  seededRandom,
} from "./crash.ts";

/** Size of a simulated cache line. */
export const LINE = 64;

/**
 * Words per chunk when a crash point compares the region with the media:
 * chunks found equal by one native comparison are not scanned in JavaScript.
 */
const SCAN_WORDS = 1024;

/** Where durable bytes live. */
interface Media {
  read(offset: number, target: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
  /** End of a drain: with the `sync=data` setting, make the writes durable on the host. */
  sync(): void;
  close(): void;
}

class MemoryMedia implements Media {
  constructor(readonly bytes: Uint8Array) {}
  read(offset: number, target: Uint8Array): void {
    target.set(this.bytes.subarray(offset, offset + target.length));
  }
  write(offset: number, data: Uint8Array): void {
    this.bytes.set(data, offset);
  }
  sync(): void {}
  close(): void {}
}

/**
 * The image file as media. Reads and writes go in chunks (one call cannot
 * move 2 GiB or more). A read-only file is never written: what the region
 * holds stays a private in-memory overlay. With `syncData`, every drain ends
 * with an `fdatasync`, so a drained store survives a host power loss too.
 */
class FileMedia implements Media {
  #dirty = false;
  constructor(readonly file: ImageFile, readonly syncData: boolean) {}
  get path(): string {
    return this.file.path;
  }
  read(offset: number, target: Uint8Array): void {
    readWholeFile(this.file.fd, this.file.path, target, offset);
  }
  write(offset: number, data: Uint8Array): void {
    if (this.file.readOnly) return;
    writeWholeFile(this.file.fd, this.file.path, data, offset);
    this.#dirty = true;
  }
  sync(): void {
    if (!this.syncData || !this.#dirty) return;
    try {
      fs.fdatasyncSync(this.file.fd);
    } catch (cause) {
      throw ioError("sync", this.file.path, cause);
    }
    this.#dirty = false;
  }
  close(): void {
    this.file.close();
  }
}

/**
 * Flushed ranges waiting for the next drain, with their contents at flush
 * time (a later store to a flushed line is not made durable by the drain).
 * Snapshots go into one reusable staging buffer and the ranges into one
 * reusable typed array, so a flush allocates nothing once they have grown.
 */
class PendingFlushes {
  staging = new Uint8Array(1 << 16);
  used = 0;
  /** Triples: region offset, length, staging position. */
  ranges = new Float64Array(3 * 64);
  count = 0; // numbers used in `ranges`

  add(source: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (this.used + length > this.staging.length) {
      const bigger = new Uint8Array(Math.max(this.staging.length * 2, this.used + length));
      bigger.set(this.staging.subarray(0, this.used));
      this.staging = bigger;
    }
    if (this.count + 3 > this.ranges.length) {
      const bigger = new Float64Array(this.ranges.length * 2);
      bigger.set(this.ranges);
      this.ranges = bigger;
    }
    const staging = this.staging;
    const at = this.used;
    if (length <= 256) {
      for (let i = 0; i < length; i++) staging[at + i] = source[start + i];
    } else {
      staging.set(source.subarray(start, end), at);
    }
    const r = this.ranges;
    r[this.count] = start;
    r[this.count + 1] = length;
    r[this.count + 2] = at;
    this.count += 3;
    this.used += length;
  }

  clear(): void {
    this.count = 0;
    this.used = 0;
  }
}

/** Thrown by a drain at an armed crash point, after the power failure happened. */
export class PowerFailed extends Error {
  override name = "PowerFailed";
  /**
   * @param drain The drain count at which power failed.
   * @param result What the power failure kept.
   */
  constructor(readonly drain: number, readonly result: { pending: number; survived: number }) {
    super(
      `power failed at drain ${drain}: ${result.survived} of ${result.pending} pending lines survived`,
    );
  }
}

/**
 * A persistence failure injected with {@linkcode SimRegion.injectFault}: the
 * platform reported that a flush or drain failed. Nothing that call was to
 * make durable is known to be durable.
 */
export class PersistFault extends Error {
  override name = "PersistFault";
}

/** Options for {@linkcode SimRegion.injectFault}: which call fails, and how. */
export interface FaultSpec {
  /** Fail the n-th flush from now (1: the next one). */
  atFlush?: number;
  /** Fail the n-th drain from now (1: the next one). */
  atDrain?: number;
  /** The error message. @default {"injected persistence fault"} */
  message?: string;
}

/** Options for {@linkcode SimRegion.crashPoint}. */
export interface CrashPointOptions {
  /**
   * Unit of loss: 64 (whole cache lines survive or not) or 8 (each aligned
   * 8-byte word on its own: lines may tear between words, as x86 allows).
   * @default {64}
   */
  unit?: 8 | 64;
}

/** The simulated region. Exported for hal-sim's own tests and the crash checker. */
export class SimRegion implements PersistentRegion {
  readonly granularity = "cache-line" as const;
  #bytes: Uint8Array;
  #words: Int32Array;
  #pending = new PendingFlushes();
  #flushes = 0;
  #drains = 0;
  #closed = false;
  #scratch: Uint8Array | undefined;
  /** Per-line values at earlier drains; only while crash recording is armed. */
  #history: LineHistory | undefined;
  /** Set while `beforeDrain` runs (which must not store to the region). */
  #inBeforeDrain = false;
  /** Lines that differed from the media when `beforeDrain` took a crash point (history only). */
  #dirtyBefore: number[] | undefined;
  /** Cached `Buffer` views for {@linkcode SimRegion.#native}. */
  #nativeViews:
    | { of: Uint8Array; bytes: Uint8Array; cache: Buffer; media: Buffer }
    | undefined;
  /** Called after every drain with the drain count (crash points hook here). */
  onDrain?: (drains: number) => void;
  /**
   * Called at the start of every drain, before it takes effect, with the
   * number of drains completed so far: the crash checker records the crash
   * point "drain N was the last to complete" here.
   */
  beforeDrain?: (completed: number) => void;
  #crashAt = 0;
  #crashBefore = 0;
  #crashOptions: PowerFailureOptions = {};
  #faultFlush = 0;
  #faultDrain = 0;
  #faultMessage = "";

  /**
   * Arm a crash point: right after drain number `drain` (counted from when the
   * region was opened) the power fails with `options`, and that drain throws
   * {@linkcode PowerFailed}. The region then holds what survived.
   *
   * With `before: true` the power fails instead when the *next* drain is
   * called, before it takes effect: the crash point of `twz crashtest`
   * ("drain N was the last to complete"), where everything stored and
   * flushed since drain N is pending and `options.policy` decides its fate.
   * If no later drain comes, nothing happens.
   */
  armCrash(drain: number, options: PowerFailureOptions & { before?: boolean } = {}): void {
    if (!Number.isInteger(drain) || drain < (options.before ? 0 : 1)) {
      throw new RangeError(`Crash point ${drain} is not a drain number`);
    }
    this.#crashAt = options.before ? 0 : drain;
    this.#crashBefore = options.before ? drain + 1 : 0;
    this.#crashOptions = options;
  }

  /**
   * Make a later flush or drain fail with a {@linkcode PersistFault}, as a
   * platform reporting a write-back error would. A failing flush stages
   * nothing; a failing drain makes nothing durable (its flushed lines stay
   * pending, so a crash may keep or lose them). Each fault fires once.
   *
   * @example
   * ```ts
   * import { openSim, PersistFault } from "@twz/hal-sim";
   * const hal = openSim({ size: 4096 });
   * hal.region.injectFault({ atDrain: 1, message: "media error" });
   * try {
   *   hal.region.persist(0, 8);
   * } catch (e) {
   *   console.log(e instanceof PersistFault, (e as Error).message); // true media error
   * }
   * hal.close();
   * ```
   */
  injectFault(fault: FaultSpec): void {
    for (const [k, v] of [["atFlush", fault.atFlush], ["atDrain", fault.atDrain]] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
        throw new RangeError(`${k} takes a positive integer, not ${v}`);
      }
    }
    this.#faultFlush = fault.atFlush ?? 0;
    this.#faultDrain = fault.atDrain ?? 0;
    this.#faultMessage = fault.message ?? "injected persistence fault";
  }

  /**
   * Arm (or disarm) crash recording's per-line history: from now on every
   * drain notes, for each line that differs from the media and that it does
   * not write back, the value the line holds, and {@linkcode crashPoint}
   * offers those values as outcomes (a dirty line may be evicted at any
   * moment; see `LineHistory`). Each armed drain costs one pass over the
   * region (and, for an image file, a read of it): the crash checker arms it
   * on its anonymous regions, the normal path never does. Disarming forgets
   * the history.
   */
  recordHistory(on = true): void {
    this.#history = on ? (this.#history ?? new LineHistory(LINE)) : undefined;
  }

  /** Whether {@linkcode recordHistory} is armed. */
  get recordingHistory(): boolean {
    return this.#history !== undefined;
  }

  constructor(readonly buffer: SharedArrayBuffer, readonly media: Media) {
    this.#bytes = new Uint8Array(buffer);
    this.#words = new Int32Array(buffer, 0, Math.floor(buffer.byteLength / 4));
  }

  get size(): number {
    return this.buffer.byteLength;
  }

  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** @throws {HalError} After close: the region's image is gone. */
  #open(): void {
    if (this.#closed) throw new HalError("The simulated region is closed");
  }

  flush(offset: number, length: number): void {
    this.#open();
    checkRange(this.size, offset, length);
    this.#flushes++;
    if (this.#faultFlush > 0 && --this.#faultFlush === 0) {
      throw new PersistFault(this.#faultMessage);
    }
    if (length === 0) return;
    const start = offset - (offset % LINE);
    const end = Math.min(this.size, Math.ceil((offset + length) / LINE) * LINE);
    this.#pending.add(this.#bytes, start, end);
  }

  flushRanges(ranges: Float64Array, count: number): void {
    for (let i = 0; i < count; i++) this.flush(ranges[2 * i], ranges[2 * i + 1]);
  }

  persistRanges(ranges: Float64Array, count: number): void {
    this.flushRanges(ranges, count);
    this.drain();
  }

  drain(): void {
    this.#open();
    this.#dirtyBefore = undefined;
    if (this.beforeDrain) {
      this.#inBeforeDrain = true;
      try {
        this.beforeDrain(this.#drains);
      } finally {
        this.#inBeforeDrain = false;
      }
    }
    if (this.#drains + 1 === this.#crashBefore) {
      this.#crashBefore = 0;
      throw new PowerFailed(this.#drains, this.powerFail(this.#crashOptions));
    }
    this.#drains++;
    const p = this.#pending;
    if (this.#faultDrain > 0 && --this.#faultDrain === 0) {
      // The flushed values may or may not have reached the media.
      if (this.#history) this.#keepSnapshots(this.#history);
      p.clear();
      throw new PersistFault(this.#faultMessage);
    }
    const r = p.ranges;
    const staging = p.staging;
    const mem = this.media instanceof MemoryMedia ? this.media.bytes : undefined;
    for (let i = 0; i < p.count; i += 3) {
      const at = r[i], length = r[i + 1], from = r[i + 2];
      if (mem && length <= 256) {
        for (let k = 0; k < length; k++) mem[at + k] = staging[from + k];
      } else {
        this.media.write(at, staging.subarray(from, from + length));
      }
    }
    if (this.#history) this.#noteDrain(this.#history);
    p.clear();
    this.media.sync();
    this.onDrain?.(this.#drains);
    if (this.#drains === this.#crashAt) {
      this.#crashAt = 0;
      throw new PowerFailed(this.#drains, this.powerFail(this.#crashOptions));
    }
  }

  persist(offset: number, length: number): void {
    this.flush(offset, length);
    this.drain();
  }

  share(): RegionShare {
    return { kind: "shared-memory", buffer: this.buffer, size: this.size };
  }

  stats(): RegionStats {
    return { flushes: this.#flushes, drains: this.#drains };
  }

  /** A drain wrote back the pending flushes: note what every other dirty line holds. */
  #noteDrain(history: LineHistory): void {
    const p = this.#pending;
    for (let i = 0; i < p.count; i += 3) {
      const at = p.ranges[i], length = p.ranges[i + 1];
      for (let line = at / LINE; line < (at + length) / LINE; line++) history.written(line);
    }
    const media = this.#mediaBytes();
    const dirty = this.#dirtyBefore;
    this.#dirtyBefore = undefined;
    if (dirty) {
      // The hook's crash point already found the lines differing before this
      // drain; only those, and the lines it wrote back, can differ now.
      const note = (line: number) => {
        if (this.#lineDiffers(line, media)) history.note(line, this.#bytes, line * LINE);
      };
      for (const line of dirty) note(line);
      for (let i = 0; i < p.count; i += 3) {
        const at = p.ranges[i], length = p.ranges[i + 1];
        for (let line = at / LINE; line < (at + length) / LINE; line++) note(line);
      }
      return;
    }
    const a = this.#words;
    const b = new Int32Array(media.buffer, media.byteOffset, a.length);
    const cache = this.#bytes;
    const native = this.#native(media);
    for (let c = 0; c < a.length; c += SCAN_WORDS) {
      const cEnd = Math.min(a.length, c + SCAN_WORDS);
      if (native.cache.compare(native.media, c * 4, cEnd * 4, c * 4, cEnd * 4) === 0) continue;
      for (let w = c; w < cEnd; w++) {
        if (a[w] !== b[w]) {
          const line = w >>> 4; // 16 words a line
          history.note(line, cache, line * LINE);
          w = (line + 1) * 16 - 1;
        }
      }
    }
    for (let i = a.length * 4; i < this.size; i++) {
      if (cache[i] !== media[i]) {
        const line = Math.floor(i / LINE);
        history.note(line, cache, line * LINE);
        i = (line + 1) * LINE - 1;
      }
    }
  }

  /**
   * `Buffer` views of the region and of `media` (the media's bytes as
   * `#mediaBytes` returns them), for native comparisons of whole chunks.
   */
  #native(media: Uint8Array): { cache: Buffer; media: Buffer } {
    const n = this.#nativeViews;
    if (n && n.of === media && n.bytes === this.#bytes) return n;
    const cache = this.#bytes;
    this.#nativeViews = {
      of: media,
      bytes: cache,
      cache: Buffer.from(cache.buffer, cache.byteOffset, cache.byteLength),
      media: Buffer.from(media.buffer, media.byteOffset, media.byteLength),
    };
    return this.#nativeViews;
  }

  /** Whether line `line` of the region differs from `media`. */
  #lineDiffers(line: number, media: Uint8Array): boolean {
    const a = this.#words;
    const b = new Int32Array(media.buffer, media.byteOffset, a.length);
    const w0 = line * 16;
    const w1 = Math.min(a.length, w0 + 16);
    for (let w = w0; w < w1; w++) if (a[w] !== b[w]) return true;
    const cache = this.#bytes;
    for (let i = Math.max(w1 * 4, line * LINE); i < Math.min(this.size, (line + 1) * LINE); i++) {
      if (cache[i] !== media[i]) return true;
    }
    return false;
  }

  /** A failed drain: its flushed snapshots join the history of their lines. */
  #keepSnapshots(history: LineHistory): void {
    const p = this.#pending;
    for (let i = 0; i < p.count; i += 3) {
      const at = p.ranges[i], length = p.ranges[i + 1], from = p.ranges[i + 2];
      for (let off = 0; off < length; off += LINE) {
        history.note((at + off) / LINE, p.staging, from + off);
      }
    }
  }

  /** The media's bytes: the in-memory copy itself, or a scratch copy of the file. */
  #mediaBytes(): Uint8Array {
    if (this.media instanceof MemoryMedia) return this.media.bytes;
    this.#scratch ??= new Uint8Array(this.size);
    this.media.read(0, this.#scratch);
    return this.#scratch;
  }

  /**
   * The crash point of this moment: every unit that a power failure now could
   * leave different from the media, with its possible contents (see
   * `crash.ts`). Costs one pass comparing the region with the media, plus the
   * flushed ranges; allocates only for what is pending.
   *
   * @throws {RangeError} `unit` is not 8 or 64.
   */
  crashPoint(options: CrashPointOptions = {}): CrashPoint {
    const unit = options.unit ?? LINE;
    if (unit !== 8 && unit !== LINE) throw new RangeError(`A crash unit is 8 or 64, not ${unit}`);
    return this.#crashPointOver(this.#mediaBytes(), unit);
  }

  /** {@linkcode SimRegion.crashPoint} against `media`, the media's bytes as they are now. */
  #crashPointOver(media: Uint8Array, unit: number): CrashPoint {
    const cache = this.#bytes;
    const size = this.size;
    // Snapshots per unit, in flush order (staging positions).
    const p = this.#pending;
    const snaps = new Map<number, number[]>();
    for (let i = 0; i < p.count; i += 3) {
      const at = p.ranges[i], length = p.ranges[i + 1], from = p.ranges[i + 2];
      for (let off = 0; off < length; off += unit) {
        const u = (at + off) / unit;
        const list = snaps.get(u);
        if (list) list.push(from + off);
        else snaps.set(u, [from + off]);
      }
    }
    // Units whose cached contents differ from the media: equal chunks are
    // skipped by a native comparison, the others scanned a word at a time.
    const differ: number[] = [];
    const a = this.#words;
    const b = new Int32Array(media.buffer, media.byteOffset, a.length);
    const step = unit >>> 2;
    const whole = a.length - (a.length % step);
    const native = this.#native(media);
    for (let c = 0; c < whole; c += SCAN_WORDS) {
      const cEnd = Math.min(whole, c + SCAN_WORDS);
      if (native.cache.compare(native.media, c * 4, cEnd * 4, c * 4, cEnd * 4) === 0) continue;
      for (let w = c; w < cEnd; w += step) {
        for (let k = 0; k < step; k++) {
          if (a[w + k] !== b[w + k]) {
            differ.push(w / step);
            break;
          }
        }
      }
    }
    for (let i = whole * 4; i < size; i++) {
      if (cache[i] !== media[i]) {
        const u = Math.floor(i / unit);
        if (differ[differ.length - 1] !== u) differ.push(u);
        i = (u + 1) * unit - 1;
      }
    }
    if (this.#inBeforeDrain && this.#history) {
      // The drain about to happen notes the history of these lines only.
      const lines: number[] = [];
      for (const u of differ) {
        const line = Math.floor((u * unit) / LINE);
        if (lines[lines.length - 1] !== line) lines.push(line);
      }
      this.#dirtyBefore = lines;
    }
    // Lines with values held at earlier drains (only while recording is armed).
    const history = this.#history?.lines;
    const hasHistory = history !== undefined && history.size > 0;
    let all = differ;
    if (snaps.size > 0 || hasHistory) {
      const set = new Set(differ);
      for (const u of snaps.keys()) set.add(u);
      if (hasHistory) {
        const per = LINE / unit;
        for (const line of history.keys()) {
          for (let k = 0; k < per && (line * per + k) * unit < size; k++) set.add(line * per + k);
        }
      }
      all = [...set].sort((x, y) => x - y);
    }
    const builder = new CrashPointBuilder(unit);
    const staging = p.staging;
    const differs = all === differ ? undefined : new Set(differ);
    for (const u of all) {
      const at = u * unit;
      const list = snaps.get(u);
      const end = Math.min(size, at + unit);
      let started = false;
      let drainChoice = 0;
      const values = hasHistory ? history.get(Math.floor(at / LINE)) : undefined;
      if (values) {
        // Oldest first; a value equal to the media is choice 0 already.
        const off = at % LINE;
        for (const v of values) {
          let equal = true;
          for (let k = 0; k < end - at; k++) {
            if (v[off + k] !== media[at + k]) {
              equal = false;
              break;
            }
          }
          if (equal) continue;
          if (!started) builder.begin(u), started = true;
          builder.choice(v, off);
        }
        if (started) builder.history[builder.history.length - 1] = builder.counts.at(-1)!;
      }
      if (list) {
        for (const from of list) {
          let equal = true;
          for (let k = 0; k < end - at; k++) {
            if (staging[from + k] !== media[at + k]) {
              equal = false;
              break;
            }
          }
          if (equal) {
            drainChoice = 0;
            continue;
          }
          if (!started) builder.begin(u), started = true;
          drainChoice = builder.choice(staging, from);
        }
      }
      if (differs === undefined || differs.has(u)) {
        if (!started) builder.begin(u), started = true;
        builder.current[builder.current.length - 1] = builder.choice(cache, at);
      }
      if (started) builder.drains[builder.drains.length - 1] = drainChoice;
    }
    return builder.build();
  }

  /**
   * How many flushed, not yet drained lines hold a snapshot that differs
   * from the media: what the next drain would change. Costs only the flushed
   * bytes (the crash checker's cheap test of whether a recovery writes
   * anything), not a pass over the region. Counting stops at `limit` (1: is
   * there any?).
   */
  flushedChanges(limit = Infinity): number {
    const p = this.#pending;
    if (p.count === 0) return 0;
    const media = this.#mediaBytes();
    const staging = p.staging;
    let n = 0;
    for (let i = 0; i < p.count; i += 3) {
      const at = p.ranges[i], length = p.ranges[i + 1], from = p.ranges[i + 2];
      for (let off = 0; off < length; off += LINE) {
        const end = Math.min(length, off + LINE);
        for (let k = off; k < end; k++) {
          if (staging[from + k] !== media[at + k]) {
            n++;
            break;
          }
        }
        if (n >= limit) return n;
      }
    }
    return n;
  }

  /** Lines whose cached contents differ from the media or are flushed but not drained. */
  pendingLines(): number[] {
    return [...this.crashPoint().units];
  }

  /** See {@linkcode PowerFailure.powerFail}. */
  powerFail(options: PowerFailureOptions = {}): { pending: number; survived: number } {
    const policy = options.policy ?? "strict";
    const media = this.#mediaBytes(); // read once: nothing below writes the media before materializing
    const point = this.#crashPointOver(media, LINE);
    const sel = policy === "random"
      ? point.randomSelection(options.seed ?? 1, options.probability ?? 0.5)
      : point.policySelection(policy === "all" ? "all" : "strict");
    this.#pending.clear();
    this.#history?.clear(); // the region now equals the media
    point.materialize(sel, media);
    if (!(this.media instanceof MemoryMedia)) {
      for (let j = 0; j < sel.length; j++) {
        if (sel[j] === 0) continue;
        const at = point.units[j] * point.unit;
        this.media.write(at, media.subarray(at, Math.min(this.size, at + point.unit)));
      }
    }
    this.#bytes.set(media);
    return { pending: point.units.length, survived: point.survivors(sel) };
  }

  /**
   * Replace both the region and its media with `image` (the crash checker
   * boots one recovery kernel after another in the same region). Pending
   * flushes, armed crashes and faults are dropped; the counters go on.
   *
   * @throws {RangeError} `image` is not exactly `size` bytes.
   */
  reload(image: Uint8Array): void {
    if (image.length !== this.size) {
      throw new RangeError(
        `An image of ${image.length} bytes cannot fill a ${this.size}-byte region`,
      );
    }
    this.#pending.clear();
    this.#history?.clear();
    this.#crashAt = 0;
    this.#faultFlush = this.#faultDrain = 0;
    this.#bytes.set(image);
    this.media.write(0, image);
  }

  /**
   * Load the crash state `sel` of `point` over `base` (the media at that
   * point) into both the region and its media, as a reboot after that crash
   * would find it.
   *
   * @throws {RangeError} `base` is not exactly `size` bytes.
   */
  loadCrashState(base: Uint8Array, point: CrashPoint, sel: Uint8Array): void {
    this.reload(base);
    point.materialize(sel, this.#bytes);
    if (this.media instanceof MemoryMedia) point.materialize(sel, this.media.bytes);
    else this.media.write(0, this.#bytes);
  }

  /** A copy of the media: what a reboot would find now. */
  durableImage(): Uint8Array {
    return this.#mediaBytes().slice();
  }

  /** Write everything back and release the media. Harmless twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending.clear();
    try {
      this.media.write(0, this.#bytes);
      this.media.sync();
    } finally {
      this.media.close(); // releases the image lock even when the write-back failed
      this.#bytes = new Uint8Array(0);
    }
  }
}

class SharedRegion implements AttachedRegion {
  readonly granularity = "cache-line" as const;
  #bytes: Uint8Array;
  constructor(readonly buffer: SharedArrayBuffer) {
    this.#bytes = new Uint8Array(buffer);
  }
  get size(): number {
    return this.buffer.byteLength;
  }
  get bytes(): Uint8Array {
    return this.#bytes;
  }
  // A Worker shares the owner's cache model: its stores reach the media when
  // the owner (the kernel) persists them, or at a clean close.
  flush(offset: number, length: number): void {
    checkRange(this.size, offset, length);
  }
  drain(): void {}
  persist(offset: number, length: number): void {
    checkRange(this.size, offset, length);
  }
  share(): RegionShare {
    return { kind: "shared-memory", buffer: this.buffer, size: this.size };
  }
  close(): void {
    this.#bytes = new Uint8Array(0);
  }
}

/** hal-sim's settings: `sync` = `none` (default) | `data`. */
const SETTINGS: Record<string, readonly string[]> = { sync: ["none", "data"] };

function syncSetting(settings: Record<string, string> | undefined): boolean {
  for (const [key, value] of Object.entries(settings ?? {})) {
    const allowed = SETTINGS[key];
    if (!allowed) {
      throw new HalError(
        `Cannot open a sim image: unknown setting "${key}" (known: ${
          Object.keys(SETTINGS).join(", ")
        })`,
      );
    }
    if (!allowed.includes(value)) {
      throw new HalError(
        `Cannot open a sim image: ${key} must be ${allowed.join(" or ")}, not "${value}"`,
      );
    }
  }
  return settings?.sync === "data";
}

/**
 * The simulated-NVM plugin.
 *
 * @example
 * ```ts
 * import { plugin } from "@twz/hal-sim";
 * const hal = await plugin.open({ size: 4096 });
 * console.log(hal.region.granularity); // "cache-line"
 * hal.close();
 * ```
 */
export const plugin: HalPlugin = {
  name: "sim",
  describe() {
    return {
      name: "sim",
      summary: "simulated NVM: SharedArrayBuffer + image file, volatile cache model",
      available: true,
      details: { granularity: "cache-line", "power-failure": "yes", settings: "sync=none|data" },
    };
  },
  // deno-lint-ignore require-await
  async open(options: HalOpenOptions): Promise<Hal> {
    return openSim(options);
  },
  // deno-lint-ignore require-await
  async attach(share: RegionShare): Promise<AttachedRegion> {
    if (share.kind !== "shared-memory") {
      throw new HalError(`hal-sim cannot attach a ${share.kind} share`);
    }
    return new SharedRegion(share.buffer);
  },
};

/** A simulated HAL, with its region's extra powers visible to tests. */
export interface SimHal extends Hal {
  readonly region: SimRegion;
}

/**
 * Open a simulated HAL synchronously (what `plugin.open` does).
 *
 * @param options As for {@linkcode HalPlugin.open}; without `image` the region
 * is anonymous and `size` is required.
 * @param services Clock and entropy to use instead of the system's (replays).
 * @returns The open HAL.
 * @throws {HalError} The image cannot be opened or created.
 */
export function openSim(options: HalOpenOptions, services: SimServices = {}): SimHal {
  let media: Media;
  let created: boolean;
  let size: number;
  let buffer: SharedArrayBuffer;
  let file: ImageFile | undefined;
  const syncData = syncSetting(options.settings);
  if (options.image === undefined) {
    if (!options.size || options.size <= 0 || !Number.isInteger(options.size)) {
      throw new HalError("An anonymous sim region needs a positive integer size");
    }
    size = options.size;
    created = true;
    buffer = new SharedArrayBuffer(size);
    media = new MemoryMedia(new Uint8Array(size));
  } else {
    file = openImageFile({ ...options, image: options.image });
    ({ created, size } = file);
    media = new FileMedia(file, syncData);
    try {
      buffer = new SharedArrayBuffer(size);
      if (!created) media.read(0, new Uint8Array(buffer));
    } catch (error) {
      if (created) {
        try {
          Deno.removeSync(options.image);
        } catch { /* already gone */ }
      }
      file.close();
      if (error instanceof RangeError) {
        throw new HalError(
          `Cannot open image ${options.image}: ${size} bytes do not fit in memory (${error.message})`,
          { cause: error },
        );
      }
      throw error;
    }
  }
  const hal = simHal(
    new SimRegion(buffer, media),
    services,
    options.image,
    created,
    options.console,
  );
  if (!file?.readOnly) return hal;
  return {
    ...hal,
    readOnly: true,
    ...(file.readOnlyReason !== undefined ? { readOnlyReason: file.readOnlyReason } : {}),
  };
}

/** The HAL over `region`: the system's services unless `services` names others. */
function simHal(
  region: SimRegion,
  services: SimServices,
  image: string | undefined,
  created: boolean,
  console: HalOpenOptions["console"],
): SimHal {
  return {
    name: "sim",
    image,
    created,
    region,
    clock: services.clock ?? systemClock(),
    entropy: services.entropy ?? cryptoEntropy(),
    console: console ?? stdioConsole(),
    power: { powerFail: (o?: PowerFailureOptions) => region.powerFail(o) },
    close: () => region.close(),
  };
}

/**
 * Services to use instead of the system's, so that a run replays exactly
 * (the crash checker gives seeded entropy and a counting clock).
 */
export interface SimServices {
  /** @default {the system clock} */
  clock?: Clock;
  /** @default {crypto.getRandomValues} */
  entropy?: Entropy;
}

/**
 * Entropy from a seed: the same seed gives the same bytes (tests, replays).
 *
 * @example
 * ```ts
 * import { seededEntropy } from "@twz/hal-sim";
 * const a = new Uint8Array(4), b = new Uint8Array(4);
 * seededEntropy(7).fill(a);
 * seededEntropy(7).fill(b);
 * console.log(a.join() === b.join()); // true
 * ```
 */
export function seededEntropy(seed: number): Entropy {
  const random = seededRandom(seed);
  return { fill: (target) => target.forEach((_, i) => target[i] = (random() * 256) | 0) };
}

/**
 * A clock that advances by `step` ms at every reading, from `start`: runs that
 * read it in the same order see the same times.
 */
export function countingClock(start = 1_700_000_000_000, step = 1): Clock {
  let now = start;
  return { monotonic: () => (now += step), wallclock: () => (now += step) };
}

/**
 * Build a sim HAL over an existing media snapshot (the crash checker's entry).
 *
 * @param image The media contents; copied.
 * @param services Clock and entropy to use instead of the system's.
 */
export function openSimFromBytes(image: Uint8Array, services: SimServices = {}): SimHal {
  const buffer = new SharedArrayBuffer(image.length);
  new Uint8Array(buffer).set(image);
  return simHal(
    new SimRegion(buffer, new MemoryMedia(image.slice())),
    services,
    undefined,
    false,
    undefined,
  );
}

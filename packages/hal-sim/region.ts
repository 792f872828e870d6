/**
 * The simulated region: a `SharedArrayBuffer` (what the CPU sees: memory
 * plus its volatile cache) in front of a media copy (`media.ts`: what is
 * durable). `flush` snapshots the covered lines, `drain` writes the
 * snapshots to the media, a power failure keeps or loses each line that
 * differs, and a crash point (`crash.ts`) lists every outcome a power
 * failure could have now. The plugin (`plugin.ts`) opens one per HAL.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  type AttachedRegion,
  checkRange,
  type CrashArmOptions,
  HalError,
  type PersistentRegion,
  PowerFailed,
  type PowerFailureOptions,
  type PowerFailureResult,
  type RegionShare,
  type RegionStats,
} from "@twz/kernel/hal";
import { type CrashPoint, CrashPointBuilder, LineHistory } from "./crash.ts";
import { LINE, MemoryMedia, PendingFlushes, type SimMedia } from "./media.ts";

export { PowerFailed };

/**
 * Words per chunk when a crash point compares the region with the media:
 * chunks found equal by one native comparison are not scanned in JavaScript.
 */
const SCAN_WORDS = 1024;

/**
 * A persistence failure injected with {@linkcode SimRegion.injectFault}: the
 * platform reported that a flush or drain failed. Nothing that call was to
 * make durable is known to be durable.
 */
export class PersistFault extends Error {
  /** Always `"PersistFault"`. */
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
  onDrain?: ((drains: number) => void) | undefined;
  /**
   * Called at the start of every drain, before it takes effect, with the
   * number of drains completed so far: the crash checker records the crash
   * point "drain N was the last to complete" here.
   */
  beforeDrain?: ((completed: number) => void) | undefined;
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
  armCrash(drain: number, options: CrashArmOptions = {}): void {
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

  /**
   * A region over `buffer` (what the CPU sees) in front of `media` (what is
   * durable); `buffer` must already hold the media's bytes.
   *
   * @param buffer The region's memory.
   * @param media Where durable bytes live.
   */
  constructor(readonly buffer: SharedArrayBuffer, readonly media: SimMedia) {
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
    for (let i = 0; i < count; i++) this.flush(ranges[2 * i]!, ranges[2 * i + 1]!);
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
      const at = r[i]!, length = r[i + 1]!, from = r[i + 2]!;
      if (mem && length <= 256) {
        for (let k = 0; k < length; k++) mem[at + k] = staging[from + k]!;
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
      const at = p.ranges[i]!, length = p.ranges[i + 1]!;
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
        const at = p.ranges[i]!, length = p.ranges[i + 1]!;
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
      const at = p.ranges[i]!, length = p.ranges[i + 1]!, from = p.ranges[i + 2]!;
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
      const at = p.ranges[i]!, length = p.ranges[i + 1]!, from = p.ranges[i + 2]!;
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
      const at = p.ranges[i]!, length = p.ranges[i + 1]!, from = p.ranges[i + 2]!;
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
  powerFail(options: PowerFailureOptions = {}): PowerFailureResult {
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
        const at = point.units[j]! * point.unit;
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

/**
 * A region reached through `plugin.attach` (a Worker's view of the owner's
 * buffer): it shares the owner's cache model, so its flushes only check
 * their range.
 */
export class SharedRegion implements AttachedRegion {
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

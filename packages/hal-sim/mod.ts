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
import * as fs from "node:fs";
import {
  type AttachedRegion,
  checkRange,
  cryptoEntropy,
  type Hal,
  HalError,
  type HalOpenOptions,
  type HalPlugin,
  type PersistentRegion,
  type PowerFailureOptions,
  type RegionShare,
  type RegionStats,
  stdioConsole,
  systemClock,
} from "@twz/kernel/hal";

/** Size of a simulated cache line. */
export const LINE = 64;

/** Where durable bytes live. */
interface Media {
  read(offset: number, target: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
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
  close(): void {}
}

class FileMedia implements Media {
  constructor(readonly fd: number, readonly path: string) {}
  read(offset: number, target: Uint8Array): void {
    let done = 0;
    while (done < target.length) {
      const n = fs.readSync(this.fd, target, done, target.length - done, offset + done);
      if (n === 0) throw new HalError(`Cannot read image ${this.path}: unexpected end of file`);
      done += n;
    }
  }
  write(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
    }
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

/** A small seeded generator (mulberry32) so that random crashes replay. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Flushed ranges waiting for the next drain, with their contents at flush
 * time (a later store to a flushed line is not made durable by the drain).
 * Snapshots go into one reusable staging buffer, so a flush allocates nothing.
 */
class PendingFlushes {
  staging = new Uint8Array(1 << 16);
  used = 0;
  /** Triples: region offset, length, staging position. */
  ranges: number[] = [];

  add(source: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (this.used + length > this.staging.length) {
      const bigger = new Uint8Array(Math.max(this.staging.length * 2, this.used + length));
      bigger.set(this.staging.subarray(0, this.used));
      this.staging = bigger;
    }
    this.staging.set(source.subarray(start, end), this.used);
    this.ranges.push(start, length, this.used);
    this.used += length;
  }

  clear(): void {
    this.ranges.length = 0;
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

/** The simulated region. Exported for hal-sim's own tests and the crash checker. */
export class SimRegion implements PersistentRegion {
  readonly granularity = "cache-line" as const;
  #bytes: Uint8Array;
  #pending = new PendingFlushes();
  #flushes = 0;
  #drains = 0;
  #closed = false;
  /** Called after every drain with the drain count (crash points hook here). */
  onDrain?: (drains: number) => void;
  #crashAt = 0;
  #crashOptions: PowerFailureOptions = {};

  /**
   * Arm a crash point: right after drain number `drain` (counted from when the
   * region was opened) the power fails with `options`, and that drain throws
   * {@linkcode PowerFailed}. The region then holds what survived.
   */
  armCrash(drain: number, options: PowerFailureOptions = {}): void {
    if (!Number.isInteger(drain) || drain < 1) {
      throw new RangeError(`Crash point ${drain} is not a drain number`);
    }
    this.#crashAt = drain;
    this.#crashOptions = options;
  }

  constructor(readonly buffer: SharedArrayBuffer, readonly media: Media) {
    this.#bytes = new Uint8Array(buffer);
  }

  get size(): number {
    return this.buffer.byteLength;
  }

  get bytes(): Uint8Array {
    return this.#bytes;
  }

  flush(offset: number, length: number): void {
    checkRange(this.size, offset, length);
    this.#flushes++;
    if (length === 0) return;
    const start = offset - (offset % LINE);
    const end = Math.min(this.size, Math.ceil((offset + length) / LINE) * LINE);
    this.#pending.add(this.#bytes, start, end);
  }

  drain(): void {
    this.#drains++;
    const p = this.#pending;
    const r = p.ranges;
    for (let i = 0; i < r.length; i += 3) {
      this.media.write(r[i], p.staging.subarray(r[i + 2], r[i + 2] + r[i + 1]));
    }
    p.clear();
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

  /** Lines whose cached contents differ from the media: what a crash may lose. */
  pendingLines(): number[] {
    const media = new Uint8Array(this.size);
    this.media.read(0, media);
    const a = new Int32Array(this.buffer);
    const b = new Int32Array(media.buffer);
    const lines: number[] = [];
    const words = LINE / 4;
    for (let line = 0; line * words < a.length; line++) {
      const base = line * words;
      for (let i = 0; i < words; i++) {
        if (a[base + i] !== b[base + i]) {
          lines.push(line);
          break;
        }
      }
    }
    return lines;
  }

  /** See {@linkcode PowerFailure.powerFail}. */
  powerFail(options: PowerFailureOptions = {}): { pending: number; survived: number } {
    const policy = options.policy ?? "strict";
    const probability = options.probability ?? 0.5;
    const random = seededRandom(options.seed ?? 1);
    const lines = this.pendingLines();
    let survived = 0;
    for (const line of lines) {
      const keep = policy === "all" || (policy === "random" && random() < probability);
      if (keep) {
        this.media.write(line * LINE, this.#bytes.slice(line * LINE, (line + 1) * LINE));
        survived++;
      }
    }
    this.#pending.clear();
    const image = new Uint8Array(this.size);
    this.media.read(0, image);
    this.#bytes.set(image);
    return { pending: lines.length, survived };
  }

  /** Write everything back and release the media. Harmless twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending.clear();
    this.media.write(0, this.#bytes);
    this.media.close();
    this.#bytes = new Uint8Array(0);
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

function openImage(
  path: string,
  options: HalOpenOptions,
): { media: FileMedia; created: boolean; size: number } {
  let created = false;
  let fd: number;
  try {
    fd = fs.openSync(path, "r+");
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") {
      throw new HalError(`Cannot open image ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!options.create) throw new HalError(`Cannot open image ${path}: no such file`);
    if (!options.size) throw new HalError(`Cannot create image ${path}: no size given`);
    try {
      fd = fs.openSync(path, "wx+");
      fs.ftruncateSync(fd, options.size);
    } catch (cause) {
      throw new HalError(`Cannot create image ${path}: ${(cause as Error).message}`, { cause });
    }
    created = true;
  }
  const size = fs.fstatSync(fd).size;
  if (options.size !== undefined && options.size !== size) {
    fs.closeSync(fd);
    throw new HalError(
      `Cannot open image ${path}: it holds ${size} bytes, not the ${options.size} asked for`,
    );
  }
  if (size === 0) {
    fs.closeSync(fd);
    throw new HalError(`Cannot open image ${path}: the file is empty`);
  }
  return { media: new FileMedia(fd, path), created, size };
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
      details: { granularity: "cache-line", "power-failure": "yes" },
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
 * @returns The open HAL.
 * @throws {HalError} The image cannot be opened or created.
 */
export function openSim(options: HalOpenOptions): SimHal {
  let media: Media;
  let created: boolean;
  let size: number;
  let buffer: SharedArrayBuffer;
  if (options.image === undefined) {
    if (!options.size || options.size <= 0 || !Number.isInteger(options.size)) {
      throw new HalError("An anonymous sim region needs a positive integer size");
    }
    size = options.size;
    created = true;
    buffer = new SharedArrayBuffer(size);
    media = new MemoryMedia(new Uint8Array(size));
  } else {
    const opened = openImage(options.image, options);
    ({ media, created, size } = opened);
    buffer = new SharedArrayBuffer(size);
    if (!created) media.read(0, new Uint8Array(buffer));
  }
  const region = new SimRegion(buffer, media);
  return {
    name: "sim",
    image: options.image,
    created,
    region,
    clock: systemClock(),
    entropy: cryptoEntropy(),
    console: options.console ?? stdioConsole(),
    power: { powerFail: (o?: PowerFailureOptions) => region.powerFail(o) },
    close: () => region.close(),
  };
}

/** Build a sim HAL over an existing media snapshot (the crash checker's entry). */
export function openSimFromBytes(image: Uint8Array): SimHal {
  const buffer = new SharedArrayBuffer(image.length);
  new Uint8Array(buffer).set(image);
  const region = new SimRegion(buffer, new MemoryMedia(image.slice()));
  return {
    name: "sim",
    image: undefined,
    created: false,
    region,
    clock: systemClock(),
    entropy: cryptoEntropy(),
    console: stdioConsole(),
    power: { powerFail: (o?: PowerFailureOptions) => region.powerFail(o) },
    close: () => region.close(),
  };
}

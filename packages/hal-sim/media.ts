/**
 * hal-sim's media and cache model: where durable bytes live (an in-memory
 * array, or the image file) and the flushed lines waiting for a drain. A
 * store reaches the media only as a snapshot taken by `flush` and written by
 * the next `drain`; the region (`region.ts`) drives both.
 *
 * @module
 */
import * as fs from "node:fs";
import { type ImageFile, ioError, readWholeFile, writeWholeFile } from "@twz/kernel/hal";

/** Size of a simulated cache line. */
export const LINE = 64;

/**
 * Where a simulated region's durable bytes live: what a reboot finds. The
 * region writes to it only at drains, at a power failure (what survived) and
 * at a clean close.
 */
export interface SimMedia {
  /** Copy `target.length` bytes from `offset` into `target`. */
  read(offset: number, target: Uint8Array): void;
  /** Make `data` the media's bytes at `offset`. */
  write(offset: number, data: Uint8Array): void;
  /** End of a drain: with the `sync=data` setting, make the writes durable on the host. */
  sync(): void;
  /** Release the media (an image file: its descriptor and lock). */
  close(): void;
}

/** Media in memory: an anonymous region's, or the crash checker's. */
export class MemoryMedia implements SimMedia {
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
export class FileMedia implements SimMedia {
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
export class PendingFlushes {
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
      for (let i = 0; i < length; i++) staging[at + i] = source[start + i]!;
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

// fsck's undo file: the original bytes of every page a repair overwrites,
// appended and made durable before the page is written (as e2fsck's undo
// file), and put back by `restoreUndoFile` (deep_check.ts).
//
// Header (64 bytes): 0 magic "TWZUNDO1" · 8 version u32 (1) · 12 header bytes
// u32 (64) · 16 image size u64 · 24 store ID (16) · 40 created u64 (ms) ·
// 48 the first 12 bytes of the backup superblock's store ID · 60 CRC-32 of
// [0, 60). The store ID at 24 is the first intact copy's; the one at 48 lets
// the undo file be recognised after a repair that chose the backup copy's
// store ID over a primary's (both copies intact but different).
// Then records, appended: 0 offset u64 · 8 length u32 · 12 CRC-32 of the
// record's first 12 bytes and its data · 16 data. A record is appended and
// the file synced before the image bytes it saves are written, so a torn
// last record saves bytes that were never overwritten.
import fs from "node:fs";
import { dirname, resolve } from "node:path";
import { crc32, PAGE, superblockStoreId, superblockStoreIds } from "@twz/kernel/format";
import { HalError, type ImageFile, readWholeFile } from "@twz/kernel/hal";

export const UNDO_MAGIC = "TWZUNDO1";
export const UNDO_HEADER = 64;
export const UNDO_RECORD = 16;

/**
 * `repair` was asked to create an undo file that already exists (`twz fsck`
 * exits 2: a usage error).
 */
export class UndoFileExistsError extends Error {
  /** The error's name. */
  override name = "UndoFileExistsError";
}

/** The store ID (16 bytes, `superblockStoreId`) then the backup copy's (16 bytes). */
export function undoStoreIds(page: Uint8Array): Uint8Array {
  const ids = new Uint8Array(32);
  ids.set(superblockStoreId(page), 0);
  ids.set(superblockStoreIds(page)[1], 16);
  return ids;
}

export function writeAll(fd: number, data: Uint8Array, at: number): void {
  for (let done = 0; done < data.length;) {
    done += fs.writeSync(fd, data, done, data.length - done, at + done);
  }
}

/** Appends the original bytes of pages before they are overwritten. */
export class UndoJournal {
  readonly #saved = new Set<number>();
  #end = UNDO_HEADER;
  records = 0;
  bytes = 0;

  constructor(readonly path: string, readonly fd: number, readonly image: ImageFile) {}

  /** Create the undo file (refusing an existing one unless `force`), header synced. */
  static create(path: string, image: ImageFile, storeId: Uint8Array, force: boolean): UndoJournal {
    let fd: number;
    try {
      fd = fs.openSync(path, force ? "w" : "wx");
    } catch (e) {
      if ((e as { code?: string }).code === "EEXIST") {
        throw new UndoFileExistsError(
          `undo file ${path} already exists (from an earlier repair?): undo it with \`twz fsck --undo ${path} --image ${image.path}\`, remove it, or pass --force`,
        );
      }
      throw new HalError(`Cannot create undo file ${path}: ${(e as Error).message}`);
    }
    const h = new Uint8Array(UNDO_HEADER);
    const v = new DataView(h.buffer);
    h.set(new TextEncoder().encode(UNDO_MAGIC), 0);
    v.setUint32(8, 1, true);
    v.setUint32(12, UNDO_HEADER, true);
    v.setBigUint64(16, BigInt(image.size), true);
    h.set(storeId.subarray(0, 16), 24);
    h.set(storeId.subarray(16, 28), 48);
    v.setBigUint64(40, BigInt(Date.now()), true);
    v.setUint32(60, crc32(h.subarray(0, 60)), true);
    writeAll(fd, h, 0);
    fs.fsyncSync(fd);
    try {
      // Its directory entry too, so a crash cannot lose the file itself.
      const dir = Deno.openSync(dirname(resolve(path)), { read: true });
      try {
        dir.syncSync();
      } finally {
        dir.close();
      }
    } catch { /* not possible here: the file's own sync stands */ }
    return new UndoJournal(path, fd, image);
  }

  /** Save the pages not saved yet (read from the image file), then sync. */
  save(pages: number[]): void {
    const fresh = pages.filter((p) => !this.#saved.has(p));
    if (fresh.length === 0) return;
    for (let i = 0; i < fresh.length;) {
      let j = i + 1;
      while (j < fresh.length && fresh[j] === fresh[j - 1]! + 1 && j - i < 256) j++;
      const from = fresh[i]! * PAGE;
      const length = Math.min(this.image.size, fresh[j - 1]! * PAGE + PAGE) - from;
      const record = new Uint8Array(UNDO_RECORD + length);
      readWholeFile(this.image.fd, this.image.path, record.subarray(UNDO_RECORD), from);
      const v = new DataView(record.buffer);
      v.setBigUint64(0, BigInt(from), true);
      v.setUint32(8, length, true);
      v.setUint32(12, crc32(record.subarray(UNDO_RECORD), crc32(record.subarray(0, 12))), true);
      writeAll(this.fd, record, this.#end);
      this.#end += record.length;
      this.records++;
      this.bytes += length;
      i = j;
    }
    fs.fsyncSync(this.fd);
    for (const p of fresh) this.#saved.add(p);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

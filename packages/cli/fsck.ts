/**
 * `twz fsck`: check (and with `--repair`, repair) the kernel structures of an
 * image without booting it; with `--deep`, the libtwz structures inside its
 * objects too (FOTs, names, the transaction log, heaps and collections).
 *
 * ```
 * twz fsck --image PATH [--hal sim|pmem] [--repair [--undo-file FILE] [--force]] [--deep] [--json]
 * twz fsck --undo FILE --image PATH
 * twz fsck --upgrade --image PATH [--hal sim|pmem] [--force] [--json]   (see upgrade.ts)
 * ```
 *
 * The image is read piece by piece, never copied: the kernel check reads
 * the metadata area (superblock to the first data block) and only the
 * object bytes it needs; `--deep` reads the objects' blocks too. A plain
 * check writes nothing: a committed log (kernel or libtwz) is replayed in
 * memory only. It runs even while another process holds the image, and
 * then says that its result may be stale.
 *
 * `--repair` takes the image's exclusive lock (exit 5 when another process
 * holds it) and, before it changes anything, creates an undo file (default
 * `PATH.undo`; an existing one is refused without `--force`): the original
 * bytes of every range the repair writes are appended to it and made durable
 * before those bytes are written to the image (as e2fsck's undo file).
 * `twz fsck --undo FILE --image PATH` writes them back (running it twice is
 * harmless) and refuses an undo file of another image.
 *
 * A repair never destroys what it cannot place: the blocks of an object
 * whose record fsck cannot trust, and blocks no sound object owns, become
 * recovered objects, and with `--deep` those go to `/lost+found/<ID>`; a
 * lost naming root or `/kv` store is found again by scanning for its
 * structures. fsck reads and writes the image file itself (both HALs keep
 * the same file; device-DAX devices are refused), so `--hal` changes nothing.
 *
 * Exit codes: 0 the image is clean (or every problem was repaired and
 * nothing was put aside or dropped); 1 problems remain, the repair put
 * objects aside for /lost+found or dropped a tie it could not restore, or
 * `--deep` could not check the libtwz structures (read the report); 2 usage
 * (also: an undo file already exists); 3 the image (or undo file) cannot be
 * opened or does not belong to the image; 5 another process holds the image
 * (`--repair`, `--undo`).
 *
 * @module
 */
import fs from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  crc32,
  formatId,
  fsck,
  type FsckImage,
  type FsckReport,
  isRecoveredId,
  Kernel,
  Prot,
  TwzError,
} from "@twz/kernel";
import { Twz } from "@twz/libtwz";
import {
  cryptoEntropy,
  type Hal,
  HalError,
  type ImageFile,
  imageHolder,
  openImageFile,
  type PersistentRegion,
  readWholeFile,
  stdioConsole,
  systemClock,
  writeWholeFile,
} from "@twz/kernel/hal";
import * as check from "@twz/libtwz/check";
import type { CheckCounts, CheckFinding, CheckReport, CheckTxLog } from "@twz/libtwz/check";
import { HALS, loadPlugin, UsageError } from "./board.ts";

const USAGE =
  `usage: twz fsck --image PATH [--hal sim|pmem] [--repair [--undo-file FILE] [--force]] [--deep] [--json]
       twz fsck --undo FILE --image PATH
       twz fsck --upgrade --image PATH [--hal sim|pmem] [--force] [--json]   (format 1 -> 2)
exit codes: 0 clean; 1 problems remain, or objects were put aside for /lost+found;
            2 usage, or the undo file exists (--force overwrites it); 3 cannot open the image
            or undo file; 5 the image is in use by another process`;

/** The `--deep` part of a report. */
export interface DeepReport {
  /** Why the deep check did not run, if it did not. */
  skipped?: string;
  /** Problems found by the first check. */
  problems: CheckFinding[];
  /** Problems left after repairs (the same as `problems` without `--repair`). */
  remaining: CheckFinding[];
  /** Warnings (as checked last): not failures. */
  warnings: CheckFinding[];
  /** What `--repair` did. */
  repairs: string[];
  /** Paths under /lost+found the repair bound (one per object put aside). */
  lostFound: string[];
  /** The transaction log as first found. */
  txlog: CheckTxLog | null;
  /** Counts (as checked last). */
  checked?: CheckCounts;
}

// ---------------------------------------------------------------------------
// The image, read piece by piece.

const PAGE = 4096;

/**
 * An image file seen as an {@linkcode FsckImage}: `region.bytes` is as long
 * as the image but allocated lazily (untouched pages cost no memory); `load`
 * reads the pages asked for, once. With `write`, flushed byte ranges are
 * written to the file at the next drain (after the original bytes of their
 * pages went to the undo journal), then the file is synced; without it,
 * writes stay in memory (a private overlay).
 */
class ImageReader implements FsckImage {
  readonly region: PersistentRegion;
  readonly #loaded: Uint8Array;
  #dirty: Array<[number, number]> = [];
  /** Pages read from the file (for the memory test and --json). */
  pagesRead = 0;

  constructor(
    readonly file: ImageFile,
    readonly write: boolean,
    readonly journal?: UndoJournal,
  ) {
    const bytes = new Uint8Array(file.size);
    this.#loaded = new Uint8Array(Math.ceil(file.size / PAGE));
    const flush = (offset: number, length: number) => this.#flush(offset, length);
    const drain = () => this.#drain();
    this.region = {
      size: file.size,
      granularity: "byte",
      bytes,
      flush,
      drain,
      persist(offset: number, length: number) {
        flush(offset, length);
        drain();
      },
      share: () => {
        throw new TypeError("fsck's image region cannot be shared");
      },
    };
  }

  load(offset: number, length: number): void {
    this.#drain(); // flushed bytes reach the file before anything is read from it
    const size = this.file.size;
    const first = Math.floor(offset / PAGE);
    const end = Math.ceil(Math.min(size, offset + length) / PAGE);
    for (let p = first; p < end; p++) {
      if (this.#loaded[p]) continue;
      let q = p;
      while (q < end && !this.#loaded[q]) q++;
      const from = p * PAGE, to = Math.min(size, q * PAGE);
      readWholeFile(this.file.fd, this.file.path, this.region.bytes.subarray(from, to), from);
      this.#loaded.fill(1, p, q);
      this.pagesRead += q - p;
      p = q;
    }
  }

  #flush(offset: number, length: number): void {
    if (!this.write || length <= 0) return;
    this.#dirty.push([offset, Math.min(this.file.size, offset + length)]);
  }

  /**
   * Write the flushed byte ranges (exactly those: a page may hold bytes of
   * objects never read), after their original bytes went to the undo file.
   */
  #drain(): void {
    if (this.#dirty.length === 0) return;
    const ranges = this.#dirty.sort((a, b) => a[0] - b[0]);
    this.#dirty = [];
    const merged: Array<[number, number]> = [];
    for (const [from, to] of ranges) {
      const last = merged[merged.length - 1];
      if (last && from <= last[1]) last[1] = Math.max(last[1], to);
      else merged.push([from, to]);
    }
    if (this.journal) {
      const pages = new Set<number>();
      for (const [from, to] of merged) {
        for (let p = Math.floor(from / PAGE); p < Math.ceil(to / PAGE); p++) pages.add(p);
      }
      this.journal.save([...pages].sort((a, b) => a - b));
    }
    for (const [from, to] of merged) {
      writeWholeFile(this.file.fd, this.file.path, this.region.bytes.subarray(from, to), from);
    }
    fs.fdatasyncSync(this.file.fd);
  }

  /** A HAL over this image, for booting a kernel for the deep check. */
  hal(): Hal {
    return {
      name: "fsck",
      image: this.file.path,
      created: false,
      region: this.region,
      clock: systemClock(),
      entropy: cryptoEntropy(),
      console: stdioConsole(),
      close() {},
    };
  }
}

// ---------------------------------------------------------------------------
// The undo file.
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

const UNDO_MAGIC = "TWZUNDO1";
const UNDO_HEADER = 64;
const UNDO_RECORD = 16;

/**
 * The store ID the superblock page records: of the first copy (primary,
 * then the backup at 2048) whose checksum holds, else the primary's bytes.
 */
function storeIdOf(page: Uint8Array): Uint8Array {
  for (const at of [0, 2048]) {
    if (page.length < at + 256) continue;
    const sb = page.subarray(at, at + 256);
    const v = new DataView(sb.buffer, sb.byteOffset, 256);
    if (
      new TextDecoder().decode(sb.subarray(0, 8)) === "TWZIMAGE" &&
      v.getUint32(252, true) === crc32(sb.subarray(0, 252))
    ) return sb.slice(32, 48);
  }
  return page.slice(32, 48);
}

/** The store ID (16 bytes, {@linkcode storeIdOf}) then the backup copy's (16 bytes). */
function storeIdsOf(page: Uint8Array): Uint8Array {
  const ids = new Uint8Array(32);
  ids.set(storeIdOf(page), 0);
  if (page.length >= 2048 + 48) ids.set(page.subarray(2080, 2096), 16);
  return ids;
}

function writeAll(fd: number, data: Uint8Array, at: number): void {
  for (let done = 0; done < data.length;) {
    done += fs.writeSync(fd, data, done, data.length - done, at + done);
  }
}

/** Appends the original bytes of pages before they are overwritten. */
class UndoJournal {
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
        throw new UsageError(
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
      while (j < fresh.length && fresh[j] === fresh[j - 1] + 1 && j - i < 256) j++;
      const from = fresh[i] * PAGE;
      const length = Math.min(this.image.size, fresh[j - 1] * PAGE + PAGE) - from;
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

/** `twz fsck --undo FILE --image PATH`: write the saved bytes back. */
function undo(file: string, path: string, json: boolean): number {
  let data: Uint8Array;
  try {
    data = Deno.readFileSync(file);
  } catch (e) {
    console.error(
      `twz: cannot open undo file ${file}: ${
        e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
      }`,
    );
    return 3;
  }
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (
    data.length < UNDO_HEADER ||
    new TextDecoder().decode(data.subarray(0, 8)) !== UNDO_MAGIC ||
    v.getUint32(60, true) !== crc32(data.subarray(0, 60))
  ) {
    console.error(`twz: ${file} is not a twz fsck undo file (or its header is damaged)`);
    return 3;
  }
  const size = Number(v.getBigUint64(16, true));
  const storeId = data.slice(24, 40);
  const backupPrefix = data.slice(48, 60);
  let image: ImageFile;
  try {
    image = openImageFile({ image: path, lock: "exclusive", holder: "twz fsck --undo" });
  } catch (error) {
    return cannotOpen(path, error);
  }
  try {
    if (image.readOnly) {
      console.error(`twz: cannot undo into ${path}: ${image.readOnlyReason ?? "it is read-only"}`);
      return 3;
    }
    const page = new Uint8Array(Math.min(PAGE, image.size));
    readWholeFile(image.fd, path, page, 0);
    const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    const ids = [page.subarray(32, 48), page.length >= 2048 + 48 ? page.subarray(2080, 2096) : page]
      .map(hex);
    // (Undo files written before the backup's prefix was kept hold zeros there.)
    const mine = [hex(storeId)];
    if (backupPrefix.some((b) => b !== 0)) mine.push(hex(backupPrefix));
    if (image.size !== size || !mine.some((m) => ids.some((id) => id.startsWith(m)))) {
      console.error(
        `twz: undo file ${file} belongs to another image (store ${
          hex(storeId)
        }, ${size} bytes); ${path} is store ${ids[0]}, ${image.size} bytes: nothing restored`,
      );
      return 3;
    }
    let at = UNDO_HEADER;
    let records = 0, bytes = 0;
    let torn = false;
    while (at + UNDO_RECORD <= data.length) {
      const offset = Number(v.getBigUint64(at, true));
      const length = v.getUint32(at + 8, true);
      const end = at + UNDO_RECORD + length;
      if (
        end > data.length || offset + length > image.size ||
        v.getUint32(at + 12, true) !==
          crc32(data.subarray(at + UNDO_RECORD, end), crc32(data.subarray(at, at + 12)))
      ) {
        torn = true;
        break;
      }
      writeWholeFile(image.fd, path, data.subarray(at + UNDO_RECORD, end), offset);
      records++;
      bytes += length;
      at = end;
    }
    fs.fdatasyncSync(image.fd);
    const tail = torn
      ? `; the last record was cut short (a repair stopped before writing it) and was skipped`
      : "";
    if (json) {
      console.log(JSON.stringify({ image: path, undo: file, records, bytes, torn }));
    } else {
      console.log(
        `twz fsck: ${path}: restored ${records} range(s), ${bytes} bytes, from ${file}${tail}`,
      );
    }
    return 0;
  } finally {
    image.close();
  }
}

// ---------------------------------------------------------------------------
// The deep check.

/** Read the bytes of every object `kernel` lists (what a deep check reads), and only those. */
function loadObjects(image: ImageReader, kernel: Kernel): void {
  const base = image.region.bytes.byteOffset;
  for (const s of kernel.list()) {
    if (s.lifetime !== "persistent") continue;
    try {
      const m = kernel.map(s.id, Prot.Read);
      image.load(m.bytes.byteOffset - base, m.bytes.length);
    } catch { /* damaged: not read (the check reports it) */ }
  }
}

/**
 * The deep check on a kernel booted over `image`: without `repair` the
 * image's region writes nothing (replays stay in memory); with it, a
 * committed libtwz transaction is replayed on the image, a garbage log
 * header cleared, a lost naming root and /kv found again, and the objects
 * the kernel repair put aside bound under /lost+found.
 */
function deepCheck(
  image: ImageReader,
  kernelReport: FsckReport,
  repair: boolean,
): DeepReport {
  const none: DeepReport = {
    problems: [],
    remaining: [],
    warnings: [],
    repairs: [],
    lostFound: [],
    txlog: null,
  };
  const fatal = kernelReport.remaining.find((p) => p.area === "superblock" || p.area === "log");
  if (fatal) return { ...none, skipped: "the kernel structures have problems; fix them first" };
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(image.hal(), { formatBlank: false });
  } catch (error) {
    return { ...none, skipped: `the image does not boot: ${(error as Error).message}` };
  }
  try {
    loadObjects(image, kernel);
    const first: CheckReport = check.checkObjects(kernel, { replay: true });
    const repairs: string[] = [];
    const lostFound: string[] = [];
    let last = first;
    if (repair) {
      if (first.txlog?.state === "committed") {
        repairs.push(
          `txlog: replayed the committed transaction (${first.txlog.replayed} records), as opening a session would`,
        );
      }
      repairs.push(...check.repairObjects(kernel));
      // Damaged directory headers: magic, version and capacity follow from
      // the directory object's size, so libtwz rewrites them (only in an
      // object whose meta-info says it is a directory; entries untouched).
      const dirs = new Set<string>();
      for (const p of first.problems) if (p.area === "naming" && p.id) dirs.add(p.id);
      for (const hex of dirs) {
        try {
          const line = check.repairDirectoryHeader(kernel, BigInt(`0x${hex}`));
          if (line !== undefined) repairs.push(line);
        } catch (e) {
          // Not a directory object (or quarantined): nothing to rewrite here;
          // the last check reports what remains.
          if (!(e instanceof TwzError)) throw e;
        }
      }

      const problemText = first.problems.map((p) => `${p.area}: ${p.message}`).join("\n");
      const namingLost = kernel.rootObjectId() === 0n ||
        /root directory|naming root|root record/i.test(problemText);
      // A lost naming root: the directory that was the root, found by its structure.
      if (namingLost) {
        try {
          const dir = check.findRootDirCandidate(kernel);
          if (dir !== null) repairs.push(check.reattachNamingRoot(kernel, dir));
        } catch (e) {
          repairs.push(`naming: could not re-attach the naming root: ${(e as Error).message}`);
        }
      }
      // When names were damaged: a lost /kv store (the one intact
      // string/string B-tree no name reaches), and every structure no name
      // reaches goes to /lost+found.
      const namingDamaged = namingLost ||
        first.problems.some((p) => p.area === "naming" || p.area === "root");
      const found = namingDamaged ? safe(() => check.scanStructures(kernel)) ?? [] : [];
      if (found.length > 0) {
        const kvNamed = found.some((f) => f.paths.includes("/kv"));
        const kv = found.filter((f) =>
          f.kind === "btree" && !f.named && f.codecs === "string/string" && !f.problem
        );
        if (!kvNamed && kv.length === 1) {
          try {
            check.bindRecovered(kernel, "/kv", kv[0].id);
            repairs.push(`naming: bound the lost key-value store ${formatId(kv[0].id)} as /kv`);
          } catch (e) {
            repairs.push(`naming: could not bind /kv: ${(e as Error).message}`);
          }
        }
      }
      const aside = new Set<string>(kernelReport.lostFound.map((l) => l.id));
      // Objects an earlier repair recovered but did not bind (it was cut short,
      // or ran without --deep).
      // (No session opens while the naming root is damaged: the last check reports it.)
      const naming = safe(() => Twz.fromKernel(kernel).naming);
      for (const st of naming ? kernel.list() : []) {
        if (
          isRecoveredId(st.id) && !safe(() => naming!.exists(`/lost+found/${formatId(st.id)}`))
        ) {
          aside.add(formatId(st.id));
        }
      }
      for (const f of found) {
        if (!f.named && f.kind !== "naming-root" && f.kind !== "txlog") aside.add(formatId(f.id));
      }
      for (const hex of aside) {
        try {
          const path = check.bindLostFound(kernel, BigInt(`0x${hex}`));
          lostFound.push(path);
          repairs.push(`naming: bound ${hex} as ${path}`);
        } catch (e) {
          repairs.push(`naming: not bound under /lost+found: ${hex}: ${(e as Error).message}`);
        }
      }
      last = check.checkObjects(kernel);
    }
    return {
      problems: first.problems,
      remaining: last.problems,
      warnings: last.warnings,
      repairs,
      lostFound,
      txlog: first.txlog,
      checked: last.checked,
    };
  } finally {
    if (repair) kernel.shutdown();
    else kernel.halt();
  }
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Output.

function printDeep(path: string, d: DeepReport, repair: boolean): void {
  if (d.skipped) {
    console.log(`twz fsck: ${path}: libtwz: not checked (${d.skipped}): not clean`);
    return;
  }
  const at = (f: CheckFinding) => `${f.area}${f.id ? ` ${f.id}` : ""}: ${f.message}`;
  for (const p of d.problems) console.log(`libtwz: ${at(p)}`);
  for (const w of d.warnings) console.log(`libtwz: warning: ${at(w)}`);
  for (const line of d.repairs) console.log(`repaired: ${line}`);
  const c = d.checked!;
  const counts =
    `${c.libtwzObjects} libtwz objects, ${c.fotEntries} FOT entries, ${c.names} names, ${c.heaps} heaps, ${c.hashMaps} hash maps, ${c.btrees} B-trees, ${c.vectors} vectors, ${c.queues} queues, txlog ${
      d.txlog?.state ?? "none"
    }`;
  if (d.problems.length === 0 && d.lostFound.length === 0) {
    console.log(`twz fsck: ${path}: libtwz: clean (${counts})`);
  } else if (repair) {
    console.log(
      d.remaining.length === 0
        ? `twz fsck: ${path}: libtwz: repaired; no problem remains (${counts})`
        : `twz fsck: ${path}: libtwz: ${d.remaining.length} problem(s) remain`,
    );
    for (const p of d.remaining) console.log(`remaining: libtwz: ${at(p)}`);
  } else {
    console.log(`twz fsck: ${path}: libtwz: ${d.problems.length} problem(s) found`);
  }
}

function print(path: string, r: FsckReport, repair: boolean): void {
  const s = r.summary;
  const counts = s
    ? `${s.objects} objects, ${s.edges} tie edges, ${s.usedBlocks}/${s.dataBlocks} blocks used, log ${s.log}`
    : "superblock unreadable";
  for (const p of r.problems) {
    const fixable = repair ? "" : p.repairable ? " [repairable]" : "";
    console.log(`${p.area}: ${p.message}${fixable}`);
  }
  for (const line of r.repairs) console.log(`repaired: ${line}`);
  for (const n of r.notes) console.log(`note: ${n}`);
  for (const l of r.lostFound) {
    console.log(`lost+found: ${l.id}: ${l.reason}`);
  }
  for (const d of r.dropped ?? []) console.log(`dropped: ${d}`);
  if (r.problems.length === 0) {
    console.log(`twz fsck: ${path}: clean (${counts})`);
  } else if (repair) {
    const lost = r.dropped?.length ?? 0;
    const aside = (r.lostFound.length > 0
      ? `; ${r.lostFound.length} object(s) put aside for /lost+found: not clean, look at them`
      : "") + (lost > 0 ? `; ${lost} tie(s) could not be kept: not clean` : "");
    console.log(
      r.remaining.length === 0
        ? `twz fsck: ${path}: repaired ${r.problems.length} problem(s)${
          aside || "; now clean"
        } (${counts})`
        : `twz fsck: ${path}: ${r.remaining.length} problem(s) remain after repair${aside}`,
    );
    for (const p of r.remaining) {
      console.log(`remaining: ${p.area}: ${p.message}`);
    }
  } else {
    const n = r.problems.filter((p) => p.repairable).length;
    console.log(
      `twz fsck: ${path}: ${r.problems.length} problem(s) found; ${n} repairable with --repair`,
    );
  }
}

function cannotOpen(path: string, error: unknown, debug = false): number {
  if (error instanceof HalError && error.code === "busy") {
    console.error(`twz: ${error.message}`);
    return 5;
  }
  const why = error instanceof Deno.errors.NotFound
    ? "no such file"
    : error instanceof HalError
    ? error.message.replace(/^Cannot open image [^:]*: /, "")
    : (error as Error).message;
  console.error(`twz: cannot open ${path}: ${why}`);
  if (debug) console.error(error);
  return 3;
}

/**
 * `twz fsck` on the command line; returns the exit code.
 *
 * @param args Arguments after `fsck`.
 */
export async function main(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    options: {
      image: { type: "string" },
      hal: { type: "string", default: "sim" },
      repair: { type: "boolean", default: false },
      deep: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      debug: { type: "boolean", default: false },
      undo: { type: "string" },
      "undo-file": { type: "string" },
      force: { type: "boolean", default: false },
      upgrade: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  const values = { ...v };
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError("fsck takes no arguments besides options (see twz help)");
  }
  if (values.image === undefined) throw new UsageError("fsck needs --image PATH (see twz help)");
  if (!(values.hal! in HALS)) await loadPlugin(values.hal!); // an unknown name: usage error
  const path = values.image;
  if (values.upgrade) {
    if (values.repair || values.deep || values.undo !== undefined) {
      throw new UsageError("fsck --upgrade takes no --repair, --deep or --undo");
    }
    const { upgradeCommand } = await import("./upgrade.ts");
    return upgradeCommand(path, { ...values, hal: values.hal! });
  }
  if (values.undo !== undefined) {
    if (values.repair || values.deep) {
      throw new UsageError("fsck --undo restores an undo file; it takes no --repair or --deep");
    }
    return undo(values.undo, path, values.json!);
  }
  if (!values.repair && (values["undo-file"] !== undefined || values.force)) {
    throw new UsageError("--undo-file and --force go with --repair");
  }
  const repair = values.repair!;
  // The image file: a plain check reads it without a lock (and says when
  // someone holds it); a repair holds the exclusive lock throughout.
  let file: ImageFile;
  try {
    file = openImageFile({
      image: path,
      readOnly: !repair,
      lock: repair ? "exclusive" : "none",
      holder: "twz fsck --repair",
    });
  } catch (error) {
    return cannotOpen(path, error, values.debug);
  }
  let journal: UndoJournal | undefined;
  try {
    if (repair && file.readOnly) {
      console.error(`twz: cannot repair ${path}: ${file.readOnlyReason ?? "it is read-only"}`);
      return 3;
    }
    const staleNote: string[] = [];
    if (!repair) {
      const holder = imageHolder(path);
      if (holder) {
        staleNote.push(
          `the image is in use by ${
            holder.pid ? `process ${holder.pid} (${holder.what})` : holder.what
          }: this result may be stale`,
        );
      }
    }
    if (repair) {
      const page = new Uint8Array(Math.min(PAGE, file.size));
      readWholeFile(file.fd, path, page, 0);
      journal = UndoJournal.create(
        values["undo-file"] ?? `${path}.undo`,
        file,
        storeIdsOf(page),
        values.force!,
      );
    }
    const image = new ImageReader(file, repair, journal);
    const report = fsck(image, { repair });
    report.notes.push(...staleNote);
    let deep: DeepReport | undefined;
    if (values.deep) {
      try {
        deep = deepCheck(image, report, repair);
      } catch (error) {
        if (values.debug) console.error(error);
        deep = {
          skipped: `the deep check failed: ${(error as Error).message}`,
          problems: [],
          remaining: [],
          warnings: [],
          repairs: [],
          lostFound: [],
          txlog: null,
        };
      }
      if (deep.skipped) report.notes.push(`deep: libtwz structures skipped: ${deep.skipped}`);
    }
    if (repair && !values.deep && report.lostFound.length > 0) {
      report.notes.push(
        "objects were put aside: `twz fsck --repair --deep` binds them under /lost+found",
      );
    }
    if (journal) {
      journal.close();
      if (journal.records === 0) {
        Deno.removeSync(journal.path); // nothing was written: nothing to undo
        journal = undefined;
      } else {
        report.notes.push(
          `undo file ${journal.path} holds the ${journal.bytes} original bytes the repair overwrote: \`twz fsck --undo ${journal.path} --image ${path}\` puts them back`,
        );
      }
    }
    const aside = deep ? deep.lostFound.length : 0;
    // A deep check asked for but not done (skipped, or failed) is not clean either.
    const clean = report.clean &&
      (deep === undefined || (deep.skipped === undefined && deep.remaining.length === 0)) &&
      aside === 0;
    if (values.json) {
      console.log(
        JSON.stringify({
          image: path,
          ...report,
          clean,
          ...(deep ? { libtwz: deep } : {}),
          ...(journal ? { undoFile: journal.path } : {}),
          read: { bytes: image.pagesRead * PAGE, imageBytes: file.size },
        }),
      );
    } else {
      print(path, report, repair);
      if (deep) printDeep(path, deep, repair);
    }
    return clean ? 0 : 1;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (error instanceof HalError) return cannotOpen(path, error, values.debug);
    throw error;
  } finally {
    file.close();
  }
}

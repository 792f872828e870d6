/**
 * The deep check of an image: boot a kernel on a copy-on-write overlay of
 * the image ({@linkcode ImageOverlay} of `@twz/kernel`), check the libtwz
 * structures inside its objects (FOTs, names, the transaction log, heaps and
 * collections), and with `repair`, repair them and check again. What
 * `twz fsck --deep` runs; `twz fsck` itself ({@linkcode fsckImageFile}) is
 * here too, so a test or tool runs the whole check of an image file, with
 * its undo file, without the command line.
 *
 * Memory: the image file is read into one overlay, page by page, only the
 * pages the checks need (the kernel check reads the metadata area and the
 * object bytes it needs; the deep check the objects' blocks); a check
 * without `repair` writes nothing to the file: changes (a committed log
 * replayed, kernel or libtwz) stay in the overlay.
 *
 * A repair takes the image's exclusive lock and, before it changes
 * anything, creates an undo file: the original bytes of every page the
 * repair writes are appended to it and made durable before those bytes are
 * written to the image; {@linkcode restoreUndoFile} writes them back.
 *
 * @example Check an image file, its libtwz structures too
 * ```ts ignore
 * import { fsckImageFile } from "@twz/crashtest/deep-check";
 * const report = fsckImageFile("twz.img", { deep: true });
 * console.log(report.clean, report.libtwz?.problems);
 * ```
 *
 * @module
 */
import fs from "node:fs";
import {
  formatId,
  fsck,
  type FsckReport,
  ImageOverlay,
  isRecoveredId,
  Kernel,
  type OverlayBase,
  Prot,
  TwzError,
} from "@twz/kernel";
import { crc32, PAGE, superblockStoreIds } from "@twz/kernel/format";
import {
  cryptoEntropy,
  type Hal,
  type ImageFile,
  imageHolder,
  openImageFile,
  readWholeFile,
  stdioConsole,
  systemClock,
  writeWholeFile,
} from "@twz/kernel/hal";
import { Twz } from "@twz/libtwz";
import * as check from "@twz/libtwz/check";
import type { CheckCounts, CheckFinding, CheckReport, CheckTxLog } from "@twz/libtwz/check";
import {
  UNDO_HEADER,
  UNDO_MAGIC,
  UNDO_RECORD,
  UndoFileExistsError,
  UndoJournal,
  undoStoreIds,
} from "./deep_check_undo.ts";

export { UndoFileExistsError };

/** The `--deep` part of a report: what {@linkcode deepCheck} found and did. */
export interface DeepReport {
  /** Why the deep check did not run, if it did not. */
  skipped?: string;
  /** Problems found by the first check. */
  problems: CheckFinding[];
  /** Problems left after repairs (the same as `problems` without `repair`). */
  remaining: CheckFinding[];
  /** Warnings (as checked last): not failures. */
  warnings: CheckFinding[];
  /** What `repair` did. */
  repairs: string[];
  /** Paths under /lost+found the repair bound (one per object put aside). */
  lostFound: string[];
  /** The transaction log as first found. */
  txlog: CheckTxLog | null;
  /** Counts (as checked last). */
  checked?: CheckCounts;
}

/**
 * A check of an image file that cannot go on: the image is read-only but a
 * repair was asked for, or an undo file is not one or belongs to another
 * image (`twz fsck` prints `twz: MESSAGE` and exits 3).
 */
export class ImageCheckError extends Error {
  /** The error's name. */
  override name = "ImageCheckError";
}

/** A HAL over `overlay`'s region, for booting a kernel for the deep check. */
function overlayHal(overlay: ImageOverlay, image: string): Hal {
  return {
    name: "fsck",
    image,
    created: false,
    region: overlay.region,
    clock: systemClock(),
    entropy: cryptoEntropy(),
    console: stdioConsole(),
    close() {},
  };
}

/** Read the bytes of every object `kernel` lists (what a deep check reads), and only those. */
function loadObjects(overlay: ImageOverlay, kernel: Kernel): void {
  const base = overlay.bytes.byteOffset;
  for (const s of kernel.list()) {
    if (s.lifetime !== "persistent") continue;
    try {
      const m = kernel.map(s.id, Prot.Read);
      overlay.load(m.bytes.byteOffset - base, m.bytes.length);
    } catch { /* damaged: not read (the check reports it) */ }
  }
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/**
 * The deep check on a kernel booted over `overlay`, after the kernel check
 * `kernelReport` (with `repair`: after its repair, on the same overlay).
 * Without `repair` nothing reaches the image (replays stay in the overlay);
 * with it (an overlay made with `writeThrough`), a committed libtwz
 * transaction is replayed on the image, a garbage log header cleared, a lost
 * naming root and /kv found again, and the objects the kernel repair put
 * aside bound under /lost+found.
 *
 * @param overlay The image (see {@linkcode ImageOverlay}).
 * @param kernelReport What the kernel check found (`fsck` of `@twz/kernel`).
 * @param repair Whether to repair.
 * @param image The image's name, for the booted kernel's HAL.
 * @returns What was found and done; `skipped` when the kernel structures
 * keep the check from running.
 */
export function deepCheck(
  overlay: ImageOverlay,
  kernelReport: FsckReport,
  repair: boolean,
  image = "",
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
    kernel = Kernel.boot(overlayHal(overlay, image), { formatBlank: false });
  } catch (error) {
    return { ...none, skipped: `the image does not boot: ${(error as Error).message}` };
  }
  try {
    loadObjects(overlay, kernel);
    const first: CheckReport = check.checkObjects(kernel.port(), { replay: true });
    const repairs: string[] = [];
    const lostFound: string[] = [];
    let last = first;
    if (repair) {
      if (first.txlog?.state === "committed") {
        repairs.push(
          `txlog: replayed the committed transaction (${first.txlog.replayed} records), as opening a session would`,
        );
      }
      repairs.push(...check.repairObjects(kernel.port()));
      // Damaged directory headers: magic, version and capacity follow from
      // the directory object's size, so libtwz rewrites them (only in an
      // object whose meta-info says it is a directory; entries untouched).
      const dirs = new Set<string>();
      for (const p of first.problems) if (p.area === "naming" && p.id) dirs.add(p.id);
      for (const hex of dirs) {
        try {
          const line = check.repairDirectoryHeader(kernel.port(), BigInt(`0x${hex}`));
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
          const dir = check.findRootDirCandidate(kernel.port());
          if (dir !== null) repairs.push(check.reattachNamingRoot(kernel.port(), dir));
        } catch (e) {
          repairs.push(`naming: could not re-attach the naming root: ${(e as Error).message}`);
        }
      }
      // When names were damaged: a lost /kv store (the one intact
      // string/string B-tree no name reaches), and every structure no name
      // reaches goes to /lost+found.
      const namingDamaged = namingLost ||
        first.problems.some((p) => p.area === "naming" || p.area === "root");
      const found = namingDamaged ? safe(() => check.scanStructures(kernel.port())) ?? [] : [];
      if (found.length > 0) {
        const kvNamed = found.some((f) => f.paths.includes("/kv"));
        const kv = found.filter((f) =>
          f.kind === "btree" && !f.named && f.codecs === "string/string" && !f.problem
        );
        if (!kvNamed && kv.length === 1) {
          const store = kv[0]!;
          try {
            check.bindRecovered(kernel.port(), "/kv", store.id);
            repairs.push(`naming: bound the lost key-value store ${formatId(store.id)} as /kv`);
          } catch (e) {
            repairs.push(`naming: could not bind /kv: ${(e as Error).message}`);
          }
        }
      }
      const aside = new Set<string>(kernelReport.lostFound.map((l) => l.id));
      // Objects an earlier repair recovered but did not bind (it was cut short,
      // or ran without --deep).
      // (No session opens while the naming root is damaged: the last check reports it.)
      const naming = safe(() => Twz.attach(kernel.port()).naming);
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
          const path = check.bindLostFound(kernel.port(), BigInt(`0x${hex}`));
          lostFound.push(path);
          repairs.push(`naming: bound ${hex} as ${path}`);
        } catch (e) {
          repairs.push(`naming: not bound under /lost+found: ${hex}: ${(e as Error).message}`);
        }
      }
      last = check.checkObjects(kernel.port());
    }
    const report: DeepReport = {
      problems: first.problems,
      remaining: last.problems,
      warnings: last.warnings,
      repairs,
      lostFound,
      txlog: first.txlog,
    };
    report.checked = last.checked;
    return report;
  } finally {
    if (repair) kernel.shutdown();
    else kernel.halt();
  }
}

/** Options of {@linkcode fsckImageFile}. */
export interface ImageCheckOptions {
  /**
   * Repair what can be repaired (taking the image's exclusive lock, with an
   * undo file).
   * @default {false}
   */
  repair?: boolean | undefined;
  /**
   * Check (and with `repair`, repair) the libtwz structures too ({@linkcode deepCheck}).
   * @default {false}
   */
  deep?: boolean | undefined;
  /**
   * The undo file a repair creates.
   * @default {"PATH.undo"}
   */
  undoFile?: string | undefined;
  /**
   * Overwrite an existing undo file (else {@linkcode UndoFileExistsError}).
   * @default {false}
   */
  force?: boolean | undefined;
  /** Called with the error when the deep check fails (it is then reported as skipped). */
  onDeepError?: ((error: unknown) => void) | undefined;
}

/**
 * What {@linkcode fsckImageFile} found and did: the kernel report (see
 * `FsckReport` of `@twz/kernel`) with the deep check's, as `twz fsck --json`
 * prints it.
 */
export interface ImageCheckReport extends FsckReport {
  /** The image's path. */
  image: string;
  /**
   * Whether the image is clean: the kernel report is, the deep check (if
   * asked for) ran and left no problem, and nothing was put aside.
   */
  clean: boolean;
  /** The deep check's report (with `deep`). */
  libtwz?: DeepReport;
  /** The undo file the repair left (when it wrote anything). */
  undoFile?: string;
  /** Bytes read from the image file, and its size. */
  read: { bytes: number; imageBytes: number };
}

/**
 * Check (and with `repair`, repair) the image file at `path`, as `twz fsck`
 * does: the kernel structures (`fsck` of `@twz/kernel`), then with `deep`
 * the libtwz structures ({@linkcode deepCheck}), both over one
 * {@linkcode ImageOverlay} of the file. A check takes no lock (and notes
 * when another process holds the image: the result may be stale); a repair
 * holds the exclusive lock and writes an undo file first (removed again
 * when the repair wrote nothing).
 *
 * @param path The image file.
 * @param options `repair`, `deep`, `undoFile`, `force`.
 * @returns The report (`clean`: `twz fsck` exits 0, else 1).
 * @throws {HalError} The image cannot be opened (`code: "busy"`: another
 * process holds it), or the undo file cannot be created.
 * @throws {ImageCheckError} A repair of a read-only image.
 * @throws {UndoFileExistsError} The undo file exists and `force` is not given.
 */
export function fsckImageFile(path: string, options: ImageCheckOptions = {}): ImageCheckReport {
  const repair = options.repair ?? false;
  const file = openImageFile({
    image: path,
    readOnly: !repair,
    lock: repair ? "exclusive" : "none",
    holder: "twz fsck --repair",
  });
  let journal: UndoJournal | undefined;
  try {
    if (repair && file.readOnly) {
      throw new ImageCheckError(
        `cannot repair ${path}: ${file.readOnlyReason ?? "it is read-only"}`,
      );
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
        options.undoFile ?? `${path}.undo`,
        file,
        undoStoreIds(page),
        options.force ?? false,
      );
    }
    const j = journal;
    const overlay = new ImageOverlay(fileBase(file), {
      writeThrough: repair,
      beforeWrite: j ? (pages) => j.save(pages) : undefined,
    });
    const report = fsck(overlay, { repair });
    report.notes.push(...staleNote);
    let deep: DeepReport | undefined;
    if (options.deep) {
      try {
        deep = deepCheck(overlay, report, repair, path);
      } catch (error) {
        options.onDeepError?.(error);
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
    if (repair && !options.deep && report.lostFound.length > 0) {
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
    return {
      image: path,
      ...report,
      clean,
      ...(deep ? { libtwz: deep } : {}),
      ...(journal ? { undoFile: journal.path } : {}),
      read: { bytes: overlay.pagesRead * PAGE, imageBytes: file.size },
    };
  } finally {
    file.close();
  }
}

/** The image file as an overlay's base: read piece by piece, written with fdatasync. */
function fileBase(file: ImageFile): OverlayBase {
  return {
    size: file.size,
    read: (into: Uint8Array, offset: number) => readWholeFile(file.fd, file.path, into, offset),
    write: (from: Uint8Array, offset: number) => writeWholeFile(file.fd, file.path, from, offset),
    sync: () => fs.fdatasyncSync(file.fd),
  };
}

/** What {@linkcode restoreUndoFile} did (as `twz fsck --undo --json` prints it). */
export interface UndoReport {
  /** The image's path. */
  image: string;
  /** The undo file's path. */
  undo: string;
  /** Ranges written back. */
  records: number;
  /** Bytes written back. */
  bytes: number;
  /** Whether the last record was cut short (a repair stopped before writing it) and skipped. */
  torn: boolean;
}

/**
 * Write the bytes an undo file saved back into the image at `path`
 * (`twz fsck --undo FILE --image PATH`); running it twice is harmless. The
 * image's exclusive lock is held meanwhile.
 *
 * @param file The undo file.
 * @param path The image file it belongs to.
 * @returns What was restored.
 * @throws {ImageCheckError} The undo file cannot be read, is not one, or
 * belongs to another image (nothing restored); or the image is read-only.
 * @throws {HalError} The image cannot be opened (`code: "busy"`: another
 * process holds it).
 */
export function restoreUndoFile(file: string, path: string): UndoReport {
  let data: Uint8Array;
  try {
    data = Deno.readFileSync(file);
  } catch (e) {
    throw new ImageCheckError(
      `cannot open undo file ${file}: ${
        e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
      }`,
    );
  }
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (
    data.length < UNDO_HEADER ||
    new TextDecoder().decode(data.subarray(0, 8)) !== UNDO_MAGIC ||
    v.getUint32(60, true) !== crc32(data.subarray(0, 60))
  ) {
    throw new ImageCheckError(`${file} is not a twz fsck undo file (or its header is damaged)`);
  }
  const size = Number(v.getBigUint64(16, true));
  const storeId = data.slice(24, 40);
  const backupPrefix = data.slice(48, 60);
  const image = openImageFile({ image: path, lock: "exclusive", holder: "twz fsck --undo" });
  try {
    if (image.readOnly) {
      throw new ImageCheckError(
        `cannot undo into ${path}: ${image.readOnlyReason ?? "it is read-only"}`,
      );
    }
    const page = new Uint8Array(Math.min(PAGE, image.size));
    readWholeFile(image.fd, path, page, 0);
    const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    const ids = superblockStoreIds(page).map(hex);
    // (Undo files written before the backup's prefix was kept hold zeros there.)
    const mine = [hex(storeId)];
    if (backupPrefix.some((b) => b !== 0)) mine.push(hex(backupPrefix));
    if (image.size !== size || !mine.some((m) => ids.some((id) => id.startsWith(m)))) {
      throw new ImageCheckError(
        `undo file ${file} belongs to another image (store ${
          hex(storeId)
        }, ${size} bytes); ${path} is store ${ids[0]}, ${image.size} bytes: nothing restored`,
      );
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
    return { image: path, undo: file, records, bytes, torn };
  } finally {
    image.close();
  }
}

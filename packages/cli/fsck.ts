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
 * The check itself is `fsckImageFile` of `@twz/crashtest/deep-check` (the
 * deep check and the undo file live there, beside the crash checker); this
 * file parses the arguments, prints the report and picks the exit code.
 * The image is read piece by piece into one copy-on-write overlay, never
 * copied: the kernel check reads the metadata area (superblock to the first
 * data block) and only the object bytes it needs; `--deep` reads the
 * objects' blocks too. A plain check writes nothing: a committed log (kernel
 * or libtwz) is replayed in the overlay only. It runs even while another
 * process holds the image, and then says that its result may be stale.
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
import { parseArgs } from "node:util";
import type { FsckReport } from "@twz/kernel";
import { HalError } from "@twz/kernel/hal";
import type { CheckFinding } from "@twz/libtwz/check";
import {
  type DeepReport,
  fsckImageFile,
  ImageCheckError,
  restoreUndoFile,
  UndoFileExistsError,
} from "@twz/crashtest/deep-check";
import { HALS, loadPlugin, UsageError } from "./board.ts";

export type { DeepReport };

const USAGE =
  `usage: twz fsck --image PATH [--hal sim|pmem] [--repair [--undo-file FILE] [--force]] [--deep] [--json]
       twz fsck --undo FILE --image PATH
       twz fsck --upgrade --image PATH [--hal sim|pmem] [--force] [--json]   (format 1 -> 2)
exit codes: 0 clean; 1 problems remain, or objects were put aside for /lost+found;
            2 usage, or the undo file exists (--force overwrites it); 3 cannot open the image
            or undo file; 5 the image is in use by another process`;

/** `twz fsck --undo FILE --image PATH`: write the saved bytes back. */
function undo(file: string, path: string, json: boolean): number {
  try {
    const { records, bytes, torn } = restoreUndoFile(file, path);
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
  } catch (error) {
    if (error instanceof ImageCheckError) {
      console.error(`twz: ${error.message}`);
      return 3;
    }
    if (error instanceof HalError || error instanceof Deno.errors.NotFound) {
      return cannotOpen(path, error);
    }
    throw error;
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
  let report;
  try {
    report = fsckImageFile(path, {
      repair,
      deep: values.deep,
      undoFile: values["undo-file"],
      force: values.force,
      onDeepError: values.debug ? (error) => console.error(error) : undefined,
    });
  } catch (error) {
    if (error instanceof UndoFileExistsError) throw new UsageError(error.message);
    if (error instanceof ImageCheckError) {
      console.error(`twz: ${error.message}`);
      return 3;
    }
    if (error instanceof HalError || error instanceof Deno.errors.NotFound) {
      return cannotOpen(path, error, values.debug);
    }
    throw error;
  }
  if (values.json) console.log(JSON.stringify(report));
  else {
    print(path, report, repair);
    if (report.libtwz) printDeep(path, report.libtwz, repair);
  }
  return report.clean ? 0 : 1;
}

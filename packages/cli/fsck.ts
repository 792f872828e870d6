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
import { HALS, UsageError } from "./board.ts";
import { type CommandSpec, parseArgv, type Parsed } from "./_args.ts";

export type { DeepReport };

/** `twz fsck`'s options: what parses them and what `twz fsck --help` prints. */
export const FSCK: CommandSpec = {
  name: "twz fsck",
  summary: "check an image's kernel structures without booting it (--deep: libtwz's too); " +
    "--repair, --undo FILE, --upgrade",
  options: [
    { name: "--image", value: "PATH", required: true, summary: "the image" },
    {
      name: "--hal",
      value: "HAL",
      choices: Object.keys(HALS),
      summary: "the HAL, default sim; fsck reads the file itself, so it changes nothing",
    },
    {
      name: "--repair",
      summary: "fix what is safely fixable (takes the image lock; saves an undo file first)",
    },
    {
      name: "--undo-file",
      value: "FILE",
      summary: "with --repair: where the undo file goes (default PATH.undo)",
    },
    {
      name: "--force",
      summary: "with --repair: overwrite an existing undo file; with --upgrade: despite " +
        "format-1 problems",
    },
    { name: "--deep", summary: "check (and repair) the libtwz structures inside objects too" },
    { name: "--json", summary: "print one JSON object" },
    {
      name: "--undo",
      value: "FILE",
      summary: "write back the bytes an undo file saved (refuses another image's)",
    },
    {
      name: "--upgrade",
      summary: "upgrade an image of on-NVM format 1 to format 2 in place, then check it",
    },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  details: [
    "Modes: twz fsck --image PATH [--repair [--undo-file FILE] [--force]] [--deep] [--json]; " +
    "twz fsck --undo FILE --image PATH [--json]; " +
    "twz fsck --upgrade --image PATH [--force] [--json].",
    "A plain check writes nothing (a committed log is replayed in memory only) and runs even " +
    "while another process holds the image. --repair first saves the bytes it overwrites to " +
    "the undo file (an existing one is refused without --force); objects it cannot place go " +
    "to /lost+found (with --deep). --upgrade is crash-safe: run it again after a crash.",
    "Exit codes: 0 clean (or every problem repaired); 1 problems remain, or objects were put " +
    "aside for /lost+found; 2 usage, or the undo file exists; 3 the image (or undo file) " +
    "cannot be opened, or is not an image; 5 the image is in use by another process " +
    "(--repair, --undo, --upgrade).",
  ],
};

/** The first option of `names` that was given, if any. */
function givenOf(p: Parsed, names: readonly string[]): string | undefined {
  return names.find((n) => p.has(n));
}

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
  const p = parseArgv(FSCK, args);
  const image = p.value("--image")!;
  const values = {
    hal: p.value("--hal") ?? "sim",
    repair: p.has("--repair"),
    deep: p.has("--deep"),
    json: p.has("--json"),
    debug: p.has("--debug"),
    undo: p.value("--undo"),
    "undo-file": p.value("--undo-file"),
    force: p.has("--force"),
  };
  const path = image;
  const mode = p.has("--upgrade") ? "--upgrade" : values.undo !== undefined ? "--undo" : undefined;
  if (p.has("--upgrade") && values.undo !== undefined) {
    throw new UsageError("--undo does not apply with --upgrade");
  }
  const clash = mode === "--upgrade"
    ? givenOf(p, ["--repair", "--deep", "--undo-file"])
    : mode === "--undo"
    ? givenOf(p, ["--repair", "--deep", "--undo-file", "--force"])
    : undefined;
  if (mode !== undefined && clash !== undefined) {
    throw new UsageError(`${clash} does not apply with ${mode}`);
  }
  if (mode === "--upgrade") {
    const { upgradeCommand } = await import("./upgrade.ts");
    return upgradeCommand(path, values);
  }
  if (mode === "--undo") return undo(values.undo!, path, values.json);
  const needsRepair = givenOf(p, ["--undo-file", "--force"]);
  if (!values.repair && needsRepair !== undefined) {
    throw new UsageError(`${needsRepair} only applies with --repair`);
  }
  const repair = values.repair;
  let report;
  try {
    // As twz boot says it (exit 3; an empty --image: 2), and a file holding
    // no image at all is one it cannot open (exit 3), not a problem found.
    (await import("./board.ts")).checkImagePath(path, { exists: true, image: true });
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

/**
 * `twz fsck`: check (and with `--repair`, repair) the kernel structures of an
 * image without booting it; with `--deep`, the libtwz structures inside its
 * objects too (FOTs, names, the transaction log, heaps and collections).
 *
 * The deep check boots a kernel on a private copy of the image (an anonymous
 * hal-sim region), replays a committed libtwz transaction there as opening a
 * session would, and checks that: without `--repair` nothing is written.
 * With `--repair`, a committed transaction is replayed on the image itself
 * and a garbage log header is cleared, then the copy is checked again.
 *
 * ```
 * twz fsck --image PATH [--hal sim|pmem] [--repair] [--deep] [--json]
 * ```
 *
 * Exit codes: 0 the image is clean (or every problem was repaired); 1
 * problems remain; 2 usage; 3 the image cannot be opened.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fsck, type FsckReport, Kernel } from "@twz/kernel";
import { type Hal, HalError } from "@twz/kernel/hal";
import {
  type CheckCounts,
  type CheckFinding,
  checkObjects,
  type CheckReport,
  type CheckTxLog,
  repairObjects,
} from "@twz/libtwz/check";
import { HALS, loadPlugin, UsageError } from "./board.ts";

const USAGE = "usage: twz fsck --image PATH [--hal sim|pmem] [--repair] [--deep] [--json]";

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
  /** The transaction log as first found. */
  txlog: CheckTxLog | null;
  /** Counts (as checked last). */
  checked?: CheckCounts;
}

/** Check the libtwz structures on a private copy of the image (writes nothing). */
async function checkCopy(bytes: Uint8Array): Promise<CheckReport> {
  const { openSimFromBytes } = await import("@twz/hal-sim");
  const copy = openSimFromBytes(bytes);
  try {
    const kernel = Kernel.boot(copy, { formatBlank: false });
    try {
      return checkObjects(kernel, { replay: true });
    } finally {
      kernel.halt();
    }
  } finally {
    copy.close();
  }
}

/**
 * The deep check: on a private copy of `bytes`; with `hal` (`--repair`), a
 * committed transaction or a garbage log header is repaired on the image
 * itself and the copy checked again.
 */
async function deepCheck(
  bytes: Uint8Array,
  kernelReport: FsckReport,
  hal?: Hal,
): Promise<DeepReport> {
  const none: DeepReport = { problems: [], remaining: [], warnings: [], repairs: [], txlog: null };
  if (!kernelReport.clean) {
    return { ...none, skipped: "the kernel structures have problems; fix them first" };
  }
  const first = await checkCopy(bytes);
  let last = first;
  const repairs: string[] = [];
  const state = first.txlog?.state;
  if (hal && (state === "committed" || state === "garbage")) {
    const kernel = Kernel.boot(hal, { formatBlank: false });
    try {
      repairs.push(...repairObjects(kernel));
    } finally {
      kernel.shutdown();
    }
    last = await checkCopy(hal.region.bytes);
  }
  return {
    problems: first.problems,
    remaining: last.problems,
    warnings: last.warnings,
    repairs,
    txlog: first.txlog,
    checked: last.checked,
  };
}

function printDeep(path: string, d: DeepReport, repair: boolean): void {
  if (d.skipped) return;
  const at = (f: CheckFinding) => `${f.area}${f.id ? ` ${f.id}` : ""}: ${f.message}`;
  for (const p of d.problems) console.log(`libtwz: ${at(p)}`);
  for (const w of d.warnings) console.log(`libtwz: warning: ${at(w)}`);
  for (const line of d.repairs) console.log(`repaired: ${line}`);
  const c = d.checked!;
  const counts =
    `${c.libtwzObjects} libtwz objects, ${c.fotEntries} FOT entries, ${c.names} names, ${c.heaps} heaps, ${c.hashMaps} hash maps, ${c.btrees} B-trees, ${c.vectors} vectors, ${c.queues} queues, txlog ${
      d.txlog?.state ?? "none"
    }`;
  if (d.problems.length === 0) {
    console.log(`twz fsck: ${path}: libtwz: clean (${counts})`);
  } else if (repair) {
    console.log(
      d.remaining.length === 0
        ? `twz fsck: ${path}: libtwz: repaired; now clean (${counts})`
        : `twz fsck: ${path}: libtwz: ${d.remaining.length} problem(s) remain`,
    );
    if (d.repairs.length > 0) {
      for (const p of d.remaining) console.log(`remaining: libtwz: ${at(p)}`);
    }
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
  if (r.problems.length === 0) {
    console.log(`twz fsck: ${path}: clean (${counts})`);
  } else if (repair) {
    console.log(
      r.clean
        ? `twz fsck: ${path}: repaired ${r.problems.length} problem(s); now clean (${counts})`
        : `twz fsck: ${path}: ${r.remaining.length} problem(s) remain after repair`,
    );
    for (const p of r.remaining) console.log(`remaining: ${p.area}: ${p.message}`);
  } else {
    const n = r.problems.filter((p) => p.repairable).length;
    console.log(
      `twz fsck: ${path}: ${r.problems.length} problem(s) found; ${n} repairable with --repair`,
    );
  }
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
  const path = values.image;
  const cannotOpen = (error: unknown) => {
    const why = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof HalError
      ? error.message.replace(/^Cannot open image [^:]*: /, "")
      : (error as Error).message;
    console.error(`twz: cannot open ${path}: ${why}`);
    if (values.debug) console.error(error);
    return 3;
  };
  let report: FsckReport;
  let deep: DeepReport | undefined;
  if (!values.repair) {
    // Checking writes nothing: read the file and check its bytes in memory,
    // so a read-only image can be checked (and --hal does not matter).
    if (!(values.hal! in HALS)) await loadPlugin(values.hal!); // an unknown name: usage error
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(path);
    } catch (error) {
      return cannotOpen(error);
    }
    if (bytes.length === 0) return cannotOpen(new Error("the file is empty"));
    report = fsck(bytes);
    if (values.deep) {
      deep = await deepCheck(bytes, report);
      if (deep.skipped) report.notes.push(`deep: libtwz structures skipped: ${deep.skipped}`);
    }
  } else {
    const plugin = await loadPlugin(values.hal!);
    let hal: Hal;
    try {
      Deno.statSync(path);
      hal = await plugin.open({ image: path, create: false });
    } catch (error) {
      return cannotOpen(error);
    }
    try {
      report = fsck(hal, { repair: true });
      if (values.deep) {
        deep = await deepCheck(hal.region.bytes, report, hal);
        if (deep.skipped) report.notes.push(`deep: libtwz structures skipped: ${deep.skipped}`);
      }
    } finally {
      hal.close();
    }
  }
  const clean = report.clean && (deep === undefined || deep.remaining.length === 0);
  if (values.json) {
    console.log(
      JSON.stringify({ image: path, ...report, clean, ...(deep ? { libtwz: deep } : {}) }),
    );
  } else {
    print(path, report, values.repair!);
    if (deep) printDeep(path, deep, values.repair!);
  }
  return clean ? 0 : 1;
}

/**
 * `twz fsck`: check (and with `--repair`, repair) the kernel structures of an
 * image without booting it.
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
import { fsck, type FsckReport } from "@twz/kernel";
import { type Hal, HalError } from "@twz/kernel/hal";
import { loadPlugin, UsageError } from "./board.ts";

const USAGE = "usage: twz fsck --image PATH [--hal sim|pmem] [--repair] [--deep] [--json]";

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
    throw new UsageError(`fsck takes no arguments besides options\n${USAGE}`);
  }
  if (values.image === undefined) throw new UsageError(`fsck needs --image PATH\n${USAGE}`);
  const path = values.image;
  const plugin = await loadPlugin(values.hal!);
  let hal: Hal;
  try {
    Deno.statSync(path);
    hal = await plugin.open({ image: path, create: false });
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof HalError
      ? error.message.replace(/^Cannot open image [^:]*: /, "")
      : (error as Error).message;
    console.error(`twz: cannot open ${path}: ${why}`);
    if (values.debug) console.error(error);
    return 3;
  }
  let report: FsckReport;
  try {
    report = fsck(hal, { repair: values.repair, deep: values.deep });
  } finally {
    hal.close();
  }
  if (values.json) {
    console.log(JSON.stringify({ image: path, ...report }));
  } else {
    print(path, report, values.repair!);
  }
  return report.clean ? 0 : 1;
}

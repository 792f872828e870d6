/**
 * `twz fsck --upgrade`: upgrade an image of on-NVM format 1 to format 2 in
 * place (crash-safe: see `upgradeImage` in `@twz/kernel`), then check it.
 *
 * ```
 * twz fsck --upgrade --image PATH [--hal sim|pmem] [--force] [--json]
 * ```
 *
 * Exit codes: 0 upgraded (or already format 2) and clean; 1 upgraded but the
 * check finds problems; 3 the image cannot be opened or upgraded (damaged, an
 * unknown format, read-only; nothing was written); 5 another process holds it.
 *
 * @module
 */
import { fsck, TwzError, upgradeImage, type UpgradeReport } from "@twz/kernel";
import { type Hal, HalError } from "@twz/kernel/hal";
import { loadPlugin } from "./board.ts";

/** Options for {@linkcode upgradeCommand}. */
export interface UpgradeCommandOptions {
  /** The HAL plugin's name. @default {"sim"} */
  hal?: string;
  /** Upgrade despite format-1 metadata problems. @default {false} */
  force?: boolean;
  /** Print one JSON object instead of lines. @default {false} */
  json?: boolean;
  /** Print stack traces of errors. @default {false} */
  debug?: boolean;
}

/**
 * Run `twz fsck --upgrade` on the image at `path`; returns the exit code.
 *
 * @param path The image file.
 * @param options HAL, `force`, output form.
 * @returns 0, 1, 3 or 5 (see the module doc).
 */
export async function upgradeCommand(
  path: string,
  options: UpgradeCommandOptions = {},
): Promise<number> {
  const plugin = await loadPlugin(options.hal ?? "sim");
  const fail = (what: string, error: unknown, code: number) => {
    console.error(`twz: ${what}`);
    if (options.debug) console.error(error);
    return code;
  };
  let hal: Hal;
  try {
    Deno.statSync(path);
    hal = await plugin.open({ image: path, create: false, holder: "twz fsck --upgrade" });
  } catch (error) {
    if (error instanceof HalError && error.code === "busy") return fail(error.message, error, 5);
    const why = error instanceof Deno.errors.NotFound
      ? "no such file"
      : (error as Error).message.replace(/^Cannot open image [^:]*: /, "");
    return fail(`cannot open ${path}: ${why}`, error, 3);
  }
  let report: UpgradeReport;
  let clean = true;
  let problems: string[] = [];
  try {
    try {
      report = upgradeImage(hal, { force: options.force });
    } catch (error) {
      if (!(error instanceof TwzError)) throw error;
      return fail(`cannot upgrade ${path}: ${error.message}`, error, 3);
    }
    if (report.outcome !== "already") {
      const check = fsck(hal);
      clean = check.clean;
      problems = check.problems.map((p) => `${p.area}: ${p.message}`);
    }
  } finally {
    hal.close();
  }
  if (options.json) {
    console.log(JSON.stringify({ image: path, ...report, clean, problems }));
  } else if (report.outcome === "already") {
    console.log(`twz fsck: ${path}: already format ${report.version}; nothing to do`);
  } else {
    for (const line of report.lines) console.log(`upgrade: ${line}`);
    for (const p of problems) console.log(p);
    console.log(
      `twz fsck: ${path}: ${
        report.outcome === "finished" ? "finished the upgrade" : "upgraded"
      } to format ${report.version}; ${
        clean ? "clean" : `${problems.length} problem(s): run twz fsck --repair`
      }`,
    );
  }
  return clean ? 0 : 1;
}

/**
 * `deno doc --lint` over every public export of every workspace package, in
 * one run (so a type exported by one package and used by another counts as
 * public). Run by `deno task doc:lint`, part of `deno task ok`.
 *
 * @module
 */
import { join } from "node:path";

const root = join(import.meta.dirname!, "..");

/** The entry files of every package's `exports`, relative to the root. */
export function entryFiles(dir = root): string[] {
  const config = JSON.parse(Deno.readTextFileSync(join(dir, "deno.json")));
  const files: string[] = [];
  for (const member of config.workspace as string[]) {
    const pkg = JSON.parse(Deno.readTextFileSync(join(dir, member, "deno.json")));
    for (const target of Object.values(pkg.exports ?? {}) as string[]) {
      files.push(join(member, target));
    }
  }
  return files;
}

if (import.meta.main) {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", ...entryFiles()],
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}
